//! `vigil eval gate`: the regression gate for CI. Compares a candidate experiment with a baseline
//! through a running Vigil (`POST /api/v1/experiments/compare`, one read that also carries the
//! candidate's own figures) and checks the thresholds given; exits 0 when every check passes, 1 on a regression (a
//! threshold crossed, or a metric whose verdict is `regressed`), 2 on a usage or server error.
//! Prints a table; writes JUnit XML (`quick-junit`) and JSON for CI systems.
//!
//! The checks are made by a pure function ([`checks`]) of the server's answers.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api_client::{ApiArgs, ApiClient, aligned, print};

/// `vigil eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: EvalCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum EvalCommand {
    /// Fail a CI build when a candidate experiment regressed from a baseline.
    Gate(GateArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct GateArgs {
    /// The baseline experiment's id (e.g. the current release's).
    #[arg(long)]
    pub baseline: String,
    /// The candidate experiment's id (the change under test); same dataset version.
    #[arg(long)]
    pub candidate: String,
    /// The largest drop of the completion rate allowed, as a fraction (0.02 = 2 points).
    #[arg(long, value_name = "FRACTION")]
    pub max_completion_drop: Option<f64>,
    /// The largest increase of the cost per item allowed: `10%` or a fraction (`0.1`).
    #[arg(long, value_name = "PERCENT", value_parser = parse_share)]
    pub max_cost_increase: Option<f64>,
    /// The lowest pass rate of an evaluator allowed in the candidate: `exact=0.9` (repeat).
    #[arg(long, value_name = "EVALUATOR=RATE", value_parser = parse_min_pass_rate)]
    pub min_pass_rate: Vec<(String, f64)>,
    /// The significance level: a metric whose paired test says it got worse at this level fails.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Also write the checks as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where the API is, and a key with the `read` role.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `10%` or `0.1`: the same share.
fn parse_share(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let share = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.parse::<f64>(),
    }
    .map_err(|_| format!("{text:?} is not a share (e.g. 10% or 0.1)"))?;
    if !share.is_finite() || share < 0.0 {
        return Err(format!("{text:?} must be at least 0"));
    }
    Ok(share)
}

fn parse_min_pass_rate(text: &str) -> Result<(String, f64), String> {
    let (name, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not EVALUATOR=RATE (e.g. exact=0.9)"))?;
    let rate: f64 = rate
        .trim()
        .parse()
        .map_err(|_| format!("{rate:?} is not a rate between 0 and 1"))?;
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!("{rate} is not a rate between 0 and 1"));
    }
    Ok((name.trim().to_string(), rate))
}

/// What the gate reads of the comparison.
#[derive(Debug, Clone, Deserialize)]
pub struct Comparison {
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub items: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metric {
    pub metric: String,
    pub pairs: usize,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    pub p_value: Option<f64>,
    pub verdict: String,
}

/// What the gate reads of the candidate's own figures: the comparison's `candidate_summary`.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    #[serde(rename = "candidate_summary")]
    pub summary: Summary,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    pub pass_rates: std::collections::BTreeMap<String, PassRate>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PassRate {
    pub rate: Option<f64>,
}

/// One check of the gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// What it was held to.
    pub rule: String,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Every check the arguments ask for, from the comparison and the candidate's figures.
pub fn checks(
    args: &GateArgs,
    comparison: &Comparison,
    candidate: &Report,
) -> anyhow::Result<Vec<Check>> {
    let metric = |name: &str| comparison.metrics.iter().find(|m| m.metric == name);
    let mut checks = Vec::new();
    for m in &comparison.metrics {
        let regressed = m.verdict == "regressed";
        checks.push(Check {
            name: format!("{}: no significant regression", m.metric),
            passed: !regressed,
            baseline: m.baseline,
            candidate: m.candidate,
            rule: format!("paired test, alpha {}", args.alpha),
            failure: regressed.then(|| {
                format!(
                    "got worse over {} items (p = {})",
                    m.pairs,
                    m.p_value.map_or("-".into(), |p| format!("{p:.3e}"))
                )
            }),
        });
    }
    if let Some(max_drop) = args.max_completion_drop {
        let m = metric("completion_rate").context("the comparison has no completion rate")?;
        let drop = m.baseline.zip(m.candidate).map(|(b, c)| b - c);
        let failed = drop.is_some_and(|d| d > max_drop + 1e-12);
        checks.push(Check {
            name: "completion_rate: max drop".into(),
            passed: !failed,
            baseline: m.baseline,
            candidate: m.candidate,
            rule: format!("drop at most {max_drop}"),
            failure: failed.then(|| format!("dropped by {:.4}", drop.unwrap_or_default())),
        });
    }
    if let Some(max_increase) = args.max_cost_increase {
        let m = metric("cost_usd").context("the comparison has no cost")?;
        let increase = match (m.baseline, m.candidate) {
            (Some(b), Some(c)) if b > 0.0 => Some(c / b - 1.0),
            (Some(_), Some(c)) => Some(if c > 0.0 { f64::INFINITY } else { 0.0 }),
            _ => None,
        };
        let failed = increase.is_some_and(|i| i > max_increase + 1e-12);
        checks.push(Check {
            name: "cost_usd: max increase".into(),
            passed: !failed,
            baseline: m.baseline,
            candidate: m.candidate,
            rule: format!("increase at most {:.1}%", max_increase * 100.0),
            failure: failed
                .then(|| format!("increased by {:.1}%", increase.unwrap_or_default() * 100.0)),
        });
    }
    for (evaluator, min) in &args.min_pass_rate {
        let Some(rate) = candidate.summary.pass_rates.get(evaluator) else {
            bail!(
                "--min-pass-rate {evaluator}: the candidate has no evaluator {evaluator:?} (it has: {})",
                candidate
                    .summary
                    .pass_rates
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let failed = rate.rate.is_none_or(|r| r < *min);
        checks.push(Check {
            name: format!("pass_rate.{evaluator}: minimum"),
            passed: !failed,
            baseline: None,
            candidate: rate.rate,
            rule: format!("at least {min}"),
            failure: failed.then(|| match rate.rate {
                Some(r) => format!("{r:.4} is below {min}"),
                None => "no item was evaluated".into(),
            }),
        });
    }
    Ok(checks)
}

/// Runs the gate: exit status 0 (passed), 1 (regression), 2 (usage or server error).
pub async fn run_cli(args: EvalArgs) -> anyhow::Result<()> {
    let EvalCommand::Gate(args) = args.command;
    match gate(&args).await {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Whether the candidate passed.
async fn gate(args: &GateArgs) -> anyhow::Result<bool> {
    if !(args.alpha > 0.0 && args.alpha <= 0.5) {
        bail!("--alpha {} must be in (0, 0.5]", args.alpha);
    }
    let client = ApiClient::new(&args.api)?;
    // One read: the comparison carries the candidate's own figures.
    let answer: serde_json::Value = client
        .post(
            "/api/v1/experiments/compare",
            &json!({"baseline": args.baseline, "candidate": args.candidate, "alpha": args.alpha}),
        )
        .await?;
    let comparison: Comparison =
        serde_json::from_value(answer.clone()).context("the comparison's answer")?;
    let candidate: Report = serde_json::from_value(answer).context("the comparison's answer")?;
    let checks = checks(args, &comparison, &candidate)?;
    let passed = checks.iter().all(|c| c.passed);
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&checks)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let output = if args.json {
        serde_json::to_string_pretty(&json!({
            "passed": passed,
            "baseline": args.baseline,
            "candidate": args.candidate,
            "checks": checks,
            "changed_items": comparison.items,
        }))? + "\n"
    } else {
        table(&checks, passed)
    };
    print(&output)?;
    Ok(passed)
}

fn number(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.4}"))
}

/// The checks as aligned columns, then the result.
pub fn table(checks: &[Check], passed: bool) -> String {
    let rows: Vec<[String; 5]> = checks
        .iter()
        .map(|c| {
            [
                if c.passed { "ok" } else { "FAIL" }.to_string(),
                c.name.clone(),
                number(c.baseline),
                number(c.candidate),
                c.failure.clone().unwrap_or_else(|| c.rule.clone()),
            ]
        })
        .collect();
    let header = ["", "check", "baseline", "candidate", "rule / failure"].map(String::from);
    let mut out = aligned(&header, &rows);
    let failed = checks.iter().filter(|c| !c.passed).count();
    out.push_str(&if passed {
        format!("PASSED: {} checks\n", checks.len())
    } else {
        format!("FAILED: {failed} of {} checks\n", checks.len())
    });
    out
}

/// The checks as a JUnit report: one test case per check.
pub fn junit(checks: &[Check]) -> anyhow::Result<String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("vigil eval gate");
    for c in checks {
        let status = match &c.failure {
            None => TestCaseStatus::success(),
            Some(failure) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(format!(
                    "{failure} (baseline {}, candidate {})",
                    number(c.baseline),
                    number(c.candidate)
                ));
                status
            }
        };
        suite.add_test_case(TestCase::new(c.name.clone(), status));
    }
    let mut report = Report::new("vigil");
    report.add_test_suite(suite);
    Ok(report.to_string()?)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        gate: GateArgs,
    }

    fn args(argv: &[&str]) -> GateArgs {
        let mut all = vec!["gate", "--baseline", "exp_a", "--candidate", "exp_b"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).expect("arguments").gate
    }

    fn metric(name: &str, baseline: f64, candidate: f64, verdict: &str) -> Metric {
        Metric {
            metric: name.into(),
            pairs: 40,
            baseline: Some(baseline),
            candidate: Some(candidate),
            p_value: Some(0.01),
            verdict: verdict.into(),
        }
    }

    fn report(exact: f64) -> Report {
        Report {
            summary: Summary {
                pass_rates: [("exact".to_string(), PassRate { rate: Some(exact) })].into(),
            },
        }
    }

    #[test]
    fn thresholds_and_verdicts_decide() {
        let comparison = Comparison {
            metrics: vec![
                metric("completion_rate", 0.90, 0.87, "no_significant_change"),
                metric("cost_usd", 0.010, 0.0115, "no_significant_change"),
            ],
            items: Vec::new(),
        };
        let passed = |argv: &[&str], exact: f64| {
            checks(&args(argv), &comparison, &report(exact))
                .expect("checks")
                .iter()
                .all(|c| c.passed)
        };
        assert!(passed(&[], 0.5));
        assert!(!passed(&["--max-completion-drop", "0.02"], 0.5));
        assert!(passed(&["--max-completion-drop", "0.05"], 0.5));
        assert!(!passed(&["--max-cost-increase", "10%"], 0.5));
        assert!(passed(&["--max-cost-increase", "0.2"], 0.5));
        assert!(!passed(&["--min-pass-rate", "exact=0.9"], 0.85));
        assert!(passed(&["--min-pass-rate", "exact=0.9"], 0.95));
        assert!(
            checks(
                &args(&["--min-pass-rate", "judge=0.5"]),
                &comparison,
                &report(1.0)
            )
            .is_err()
        );

        let regressed = Comparison {
            metrics: vec![metric("completion_rate", 0.90, 0.70, "regressed")],
            items: Vec::new(),
        };
        let result = checks(&args(&[]), &regressed, &report(1.0)).expect("checks");
        assert!(!result[0].passed);
        let text = table(&result, false);
        assert!(
            text.contains("FAIL") && text.ends_with("FAILED: 1 of 1 checks\n"),
            "{text}"
        );
        let xml = junit(&result).expect("junit");
        assert!(
            xml.contains("<failure") && xml.contains("completion_rate"),
            "{xml}"
        );
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        let refused = |argv: &[&str]| {
            let mut all = vec!["gate", "--baseline", "a", "--candidate", "b"];
            all.extend_from_slice(argv);
            Cli::try_parse_from(all).is_err()
        };
        assert!(refused(&["--max-cost-increase", "ten"]));
        assert!(refused(&["--min-pass-rate", "exact"]));
        assert!(refused(&["--min-pass-rate", "exact=1.5"]));
        assert_eq!(parse_share("10%"), Ok(0.1));
        assert_eq!(parse_share("0.25"), Ok(0.25));
    }
}
