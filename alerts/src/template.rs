//! Annotation templates, Prometheus-style placeholders: `{{ $value }}`, `{{ $threshold }}`,
//! `{{ $baseline }}`, `{{ $labels.<name> }}`. Parsed when the rule is loaded, so a typo is a
//! refused rule rather than a garbled page at 3 a.m.

use crate::labels::Labels;

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Value,
    Threshold,
    Baseline,
    Label(String),
}

/// What a template is rendered with.
pub struct Context<'a> {
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub baseline: Option<f64>,
    pub labels: &'a Labels,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ at {:?}", &rest[open..]))?;
            let name = after[..close].trim();
            parts.push(match name {
                "$value" => Part::Value,
                "$threshold" => Part::Threshold,
                "$baseline" => Part::Baseline,
                _ => match name.strip_prefix("$labels.") {
                    Some(label) if !label.is_empty() => Part::Label(label.to_string()),
                    _ => {
                        return Err(format!(
                            "unknown placeholder {{{{ {name} }}}}: use $value, $threshold, $baseline or $labels.<name>"
                        ));
                    }
                },
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    pub fn render(&self, context: &Context) -> String {
        let number = |x: Option<f64>| x.map_or_else(|| "none".to_string(), format_number);
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Value => out.push_str(&number(context.value)),
                Part::Threshold => out.push_str(&number(context.threshold)),
                Part::Baseline => out.push_str(&number(context.baseline)),
                Part::Label(name) => {
                    out.push_str(context.labels.get(name).map_or("", String::as_str))
                }
            }
        }
        out
    }
}

/// Integers as integers; other numbers rounded to 4 decimals, trailing zeros dropped.
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        let text = format!("{x:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        let labels: Labels = [("agent".to_string(), "bot".to_string())].into();
        let t = Template::parse("{{ $labels.agent }}: {{$value}} > {{ $threshold }} (base {{ $baseline }}){{ $labels.none }}")
            .unwrap();
        let text = t.render(&Context {
            value: Some(0.123456),
            threshold: Some(3.0),
            baseline: None,
            labels: &labels,
        });
        assert_eq!(text, "bot: 0.1235 > 3 (base none)");
        assert!(Template::parse("{{ $value").is_err());
        assert!(Template::parse("{{ value }}").is_err());
        assert!(Template::parse("{{ $labels. }}").is_err());
        assert_eq!(format_number(1500.0), "1500");
        assert_eq!(format_number(0.5), "0.5");
    }
}
