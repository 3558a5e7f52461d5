//! `vigil compare`: two cohorts of production runs (canary and production, release A and B)
//! through a running Vigil's `POST /api/v1/cohorts/compare`, printed as a table (or the JSON
//! answer). Exits 0 when no metric regressed, 1 when one did (so a canary step in a pipeline can
//! stop a rollout), 2 on a usage or server error.

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_query::metrics::ShadowRuns;
use vigil_schemas::time::now_ns;

use crate::{
    api_client::{ApiArgs, ApiClient, aligned, print},
    metrics_cmd::{RangeArgs, parse_filters},
};

/// `vigil compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// The baseline cohort's filter, e.g. environment=production (repeat; values of one field
    /// add up, fields must all hold).
    #[arg(long = "baseline", value_name = "FIELD=VALUE", required = true)]
    pub baseline: Vec<String>,
    /// The candidate cohort's filter, e.g. environment=canary (repeat).
    #[arg(long = "candidate", value_name = "FIELD=VALUE", required = true)]
    pub candidate: Vec<String>,
    /// Count shadow runs (`vigil.shadow = true`) in both cohorts; by default they are left out.
    #[arg(long)]
    pub include_shadow: bool,
    /// Shadow runs in the baseline: exclude, include or only (overrides --include-shadow).
    #[arg(long, value_name = "exclude|include|only")]
    pub baseline_shadow: Option<ShadowRuns>,
    /// Shadow runs in the candidate; `--candidate-shadow only` compares the shadow runs with the
    /// production runs they shadowed.
    #[arg(long, value_name = "exclude|include|only")]
    pub candidate_shadow: Option<ShadowRuns>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// The significance level of the verdicts.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where the API is, and a key with the `read` role.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs `vigil compare`: exit 0 no regression, 1 a metric regressed, 2 an error.
pub async fn run_cli(args: CompareArgs) -> anyhow::Result<()> {
    match compare(&args).await {
        Ok(false) => Ok(()),
        Ok(true) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

#[derive(Deserialize)]
struct Report {
    baseline_runs: u64,
    candidate_runs: u64,
    metrics: Vec<Metric>,
}

#[derive(Deserialize)]
struct Metric {
    metric: String,
    baseline: Option<f64>,
    candidate: Option<f64>,
    difference: Option<f64>,
    p_value: Option<f64>,
    verdict: String,
}

/// Whether a metric regressed.
async fn compare(args: &CompareArgs) -> anyhow::Result<bool> {
    if !(args.alpha > 0.0 && args.alpha <= 0.5) {
        bail!("--alpha {} must be in (0, 0.5]", args.alpha);
    }
    let (from, to) = args.range.resolve(now_ns())?;
    let cohort = |option: &str, filters: &[String], shadow: Option<ShadowRuns>| {
        let mut cohort = json!({"filters": parse_filters(option, filters)?});
        if let Some(shadow) = shadow {
            cohort["shadow"] = json!(shadow);
        }
        anyhow::Ok(cohort)
    };
    let body = json!({
        "from": from,
        "to": to,
        "baseline": cohort("--baseline", &args.baseline, args.baseline_shadow)?,
        "candidate": cohort("--candidate", &args.candidate, args.candidate_shadow)?,
        "alpha": args.alpha,
        "include_shadow": args.include_shadow,
    });
    let answer: Value = ApiClient::new(&args.api)?
        .post("/api/v1/cohorts/compare", &body)
        .await?;
    let report: Report =
        serde_json::from_value(answer.clone()).context("the comparison's answer")?;
    let regressed = report.metrics.iter().any(|m| m.verdict == "regressed");
    let output = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&answer)?)
    } else {
        table(&report, &from, &to)
    };
    print(&output)?;
    Ok(regressed)
}

fn number(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.4}"))
}

/// The cohorts' sizes, then a line per metric.
fn table(report: &Report, from: &str, to: &str) -> String {
    let header = [
        "metric",
        "baseline",
        "candidate",
        "difference",
        "p",
        "verdict",
    ]
    .map(String::from);
    let rows: Vec<[String; 6]> = report
        .metrics
        .iter()
        .map(|m| {
            [
                m.metric.clone(),
                number(m.baseline),
                number(m.candidate),
                number(m.difference),
                number(m.p_value),
                m.verdict.clone(),
            ]
        })
        .collect();
    format!(
        "runs from {from} to {to}: baseline {}, candidate {}\n{}",
        report.baseline_runs,
        report.candidate_runs,
        aligned(&header, &rows)
    )
}
