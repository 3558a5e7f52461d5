//! Label sets, their fingerprints, and the matchers silences and inhibition rules select with
//! (Alertmanager's `=`, `!=`, `=~`, `!~`; regular expressions are anchored).

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An alert's identity: sorted name → value. A missing label and an empty one are the same.
pub type Labels = BTreeMap<String, String>;

/// The label every alert carries: its rule's name.
pub const ALERTNAME: &str = "alertname";

/// A stable 16-hex-digit identity of a label set (empty values ignored).
pub fn fingerprint(labels: &Labels) -> String {
    let mut hash = Sha256::new();
    for (name, value) in labels.iter().filter(|(_, v)| !v.is_empty()) {
        hash.update(name.as_bytes());
        hash.update([0xff]);
        hash.update(value.as_bytes());
        hash.update([0xfe]);
    }
    hex::encode(&hash.finalize()[..8])
}

/// `name="value", …` in label order, the way Alertmanager prints a group key.
pub fn render(labels: &Labels) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// How a matcher compares; regular expressions are anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum MatchOp {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

/// One condition on one label, as sent: `{"name": "agent", "op": "=~", "value": "support-.*"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Matcher)]
pub struct MatcherSpec {
    /// Label name.
    pub name: String,
    /// Default `=`.
    #[serde(default = "default_op")]
    pub op: MatchOp,
    pub value: String,
}

fn default_op() -> MatchOp {
    MatchOp::Equal
}

/// A checked matcher; regular expressions compiled and anchored.
#[derive(Debug, Clone)]
pub struct Matcher {
    spec: MatcherSpec,
    regex: Option<Regex>,
}

impl Matcher {
    /// Checks `spec`; the error says what is wrong with it.
    pub fn new(spec: MatcherSpec) -> Result<Matcher, String> {
        if spec.name.is_empty() {
            return Err("a matcher needs a label name".into());
        }
        let regex = match spec.op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{})$", spec.value))
                    .map_err(|e| format!("label {}: bad regular expression: {e}", spec.name))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher { spec, regex })
    }

    pub fn spec(&self) -> &MatcherSpec {
        &self.spec
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.spec.name).map_or("", String::as_str);
        match (self.spec.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.spec.value,
            (MatchOp::NotEqual, _) => value != self.spec.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => unreachable!("compiled in new()"),
        }
    }
}

/// Checks a list of matchers.
pub fn matchers(specs: &[MatcherSpec]) -> Result<Vec<Matcher>, String> {
    specs.iter().cloned().map(Matcher::new).collect()
}

/// True when every matcher matches.
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn matcher(name: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher::new(MatcherSpec {
            name: name.into(),
            op,
            value: value.into(),
        })
        .unwrap()
    }

    #[test]
    fn fingerprints_ignore_empty_labels_and_order() {
        let a = labels(&[("alertname", "X"), ("agent", "a")]);
        let b = labels(&[("agent", "a"), ("alertname", "X"), ("tool", "")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&labels(&[("alertname", "X")])));
        // Name/value boundaries cannot be shifted to collide.
        assert_ne!(
            fingerprint(&labels(&[("ab", "c")])),
            fingerprint(&labels(&[("a", "bc")]))
        );
    }

    #[test]
    fn matchers_follow_alertmanager() {
        let l = labels(&[("agent", "support-bot"), ("severity", "page")]);
        assert!(matcher("agent", MatchOp::Equal, "support-bot").matches(&l));
        assert!(!matcher("agent", MatchOp::NotEqual, "support-bot").matches(&l));
        assert!(matcher("agent", MatchOp::Regex, "support-.*").matches(&l));
        // Anchored: a substring match is not a match.
        assert!(!matcher("agent", MatchOp::Regex, "support").matches(&l));
        assert!(matcher("agent", MatchOp::NotRegex, "billing.*").matches(&l));
        // A missing label reads as "".
        assert!(matcher("tool", MatchOp::Equal, "").matches(&l));
        assert!(matcher("tool", MatchOp::NotEqual, "search").matches(&l));
        let bad = Matcher::new(MatcherSpec {
            name: "agent".into(),
            op: MatchOp::Regex,
            value: "(".into(),
        })
        .unwrap_err();
        assert!(bad.contains("agent"), "{bad}");
    }
}
