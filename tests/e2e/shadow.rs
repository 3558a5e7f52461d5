//! Shadow runs through the real binary, on both stores: runs marked `vigil.shadow` (natively, and
//! by the Python OpenTelemetry SDK's root-span attribute) stay out of metric queries unless one
//! asks for them, calls included, whichever way the engine reads the calls; they can be counted
//! alone, and compared as a cohort with the production runs they shadowed. Every expected figure
//! is computed here from the runs sent.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use vigil_proto::v1;
use vigil_schemas::time::rfc3339;

use crate::support::{Store, Vigil, calls};

/// One native run as sent.
struct Sent {
    trace_id: String,
    shadow: bool,
    completed: bool,
    /// The SDK-reported cost of each model call, in nano-dollars.
    model_costs: Vec<i64>,
    /// Each tool call: failed or not.
    tool_calls: Vec<bool>,
}

impl Sent {
    fn export(&self, start_ns: i64) -> v1::ExportRequest {
        let mut request = v1::ExportRequest::default();
        request.runs.push(v1::Run {
            trace_id: self.trace_id.clone(),
            agent_name: "support-bot".into(),
            release: "2.4".into(),
            environment: "production".into(),
            start_time_unix_nano: start_ns,
            end_time_unix_nano: start_ns + 1_000_000_000,
            outcome: if self.completed {
                v1::Outcome::Success
            } else {
                v1::Outcome::Failure
            } as i32,
            shadow: self.shadow,
            ..Default::default()
        });
        for (i, cost) in self.model_costs.iter().enumerate() {
            let call = v1::ModelCall {
                model: "in-house-llm".into(),
                cost_usd: Some(*cost as f64 / 1e9),
                ..Default::default()
            };
            request
                .spans
                .push(calls::model_call(&self.trace_id, i, start_ns, call));
        }
        for (i, failed) in self.tool_calls.iter().enumerate() {
            request
                .spans
                .push(calls::tool_call(&self.trace_id, i, start_ns, *failed));
        }
        request
    }
}

/// Twelve production runs and eight shadow runs of release 2.4, of varied shapes; each shadow run
/// like the production run it shadowed (the first eight), so that no metric regresses.
fn native_runs() -> Vec<Sent> {
    (0..20)
        .map(|n: usize| {
            let i = n % 12;
            Sent {
                trace_id: format!("{:032x}", 0x5ad0_0000 + n),
                shadow: n >= 12,
                completed: i % 4 != 1,
                model_costs: (0..i % 3)
                    .map(|c| 1_000 * (i as i64 + 1) + c as i64)
                    .collect(),
                tool_calls: (0..(i % 4)).map(|t| (i + t).is_multiple_of(5)).collect(),
            }
        })
        .collect()
}

/// The figures a metric query answers over `runs`: runs, completed runs, model calls, tool
/// calls, failed tool calls, cost in USD.
fn figures<'a>(runs: impl Iterator<Item = &'a Sent>) -> [f64; 6] {
    let mut f = [0.0; 6];
    for run in runs {
        f[0] += 1.0;
        f[1] += f64::from(u8::from(run.completed));
        f[2] += run.model_costs.len() as f64;
        f[3] += run.tool_calls.len() as f64;
        f[4] += run.tool_calls.iter().filter(|failed| **failed).count() as f64;
        f[5] += run.model_costs.iter().sum::<i64>() as f64;
    }
    f[5] /= 1e9;
    f
}

const METRICS: [&str; 6] = [
    "runs",
    "completed_runs",
    "model_calls",
    "tool_calls",
    "tool_errors",
    "cost_usd",
];

/// The answer's single row as the six figures.
fn row(answer: &Value) -> [f64; 6] {
    let row = &answer["rows"][0];
    METRICS.map(|m| row[m].as_f64().unwrap_or(f64::NAN))
}

fn assert_figures(got: [f64; 6], want: [f64; 6], what: &str) {
    for ((name, g), w) in METRICS.iter().zip(got).zip(want) {
        assert!((g - w).abs() <= 1e-9, "{what}: {name} is {g}, expected {w}");
    }
}

async fn shadow_runs_stay_out_unless_asked(store: Store) {
    let vigil = Vigil::start_on(store);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let sent = native_runs();
    for (i, run) in sent.iter().enumerate() {
        vigil
            .export_native(run.export(now - 600_000_000_000 + i as i64 * 1_000_000_000))
            .await;
    }
    // Three shadow runs from the OpenTelemetry SDK: each a model call and a tool call, the
    // third tool call failed (tests/otel/send_traces.py), of release 2026.11.2.
    let endpoint = format!("{}/v1/traces", vigil.http());
    let args = [
        "--token",
        &vigil.token,
        "--root-attribute",
        "vigil.shadow=true",
    ];
    let python = crate::ingest::send_with_python(&vigil, "http", &endpoint, &args, 3);
    let python_trace = python["runs"][0]["trace_id"].as_str().unwrap().to_string();

    let (from, to) = (
        rfc3339(now - 3_600_000_000_000),
        rfc3339(now + 60_000_000_000),
    );
    let query = |shadow: &str, filters: Value| json!({"from": from, "to": to, "metrics": METRICS, "filters": filters, "shadow": shadow});
    let production = figures(sent.iter().filter(|r| !r.shadow));
    let native_shadow = figures(sent.iter().filter(|r| r.shadow));
    let mut everything = figures(sent.iter());
    // The SDK's runs, counted apart: 3 runs, all completed, 3 model calls, 3 tool calls, 1
    // failed; their cost is the catalog's, not compared here.
    for (i, n) in [3.0, 3.0, 3.0, 3.0, 1.0].into_iter().enumerate() {
        everything[i] += n;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = row(&vigil.metrics(&query("include", json!({}))).await);
        if got[..5] == everything[..5] {
            break;
        }
        assert!(Instant::now() < deadline, "not all stored: {got:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Left out by default: the runs and, read with or without their runs, the calls.
    let by_default = json!({"from": from, "to": to, "metrics": METRICS});
    let release = json!({"release": ["2.4"]});
    for (what, asked, want) in [
        ("default", by_default, production),
        (
            "exclude, filtered on a run field",
            query("exclude", release.clone()),
            production,
        ),
        (
            "only, filtered on a run field",
            query("only", release),
            native_shadow,
        ),
    ] {
        assert_figures(row(&vigil.metrics(&asked).await), want, what);
    }
    let only = row(&vigil.metrics(&query("only", json!({}))).await);
    for (i, n) in [3.0, 3.0, 3.0, 3.0, 1.0].into_iter().enumerate() {
        assert_eq!(only[i], native_shadow[i] + n, "only: {}", METRICS[i]);
    }
    // A call metric grouped by a run field joins the calls with their runs.
    let grouped = vigil
        .metrics(&json!({
            "from": from, "to": to, "metrics": ["model_calls", "tool_errors"],
            "group_by": ["release"],
        }))
        .await;
    assert_eq!(
        grouped["rows"],
        json!([{
            "release": "2.4",
            "model_calls": production[2] as u64,
            "tool_errors": production[4] as u64,
        }]),
        "{grouped}"
    );
    let (status, refused) = vigil
        .post_as(
            "/api/v1/metrics/query",
            &vigil.token,
            &query("some", json!({})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");

    // The mark is a run tag, on the run as read.
    for trace in [python_trace.as_str(), sent[12].trace_id.as_str()] {
        let (status, run) = vigil.get(&format!("/api/v1/runs/{trace}")).await;
        assert_eq!(status, 200, "{run}");
        assert!(
            run["run"]["tags"]
                .as_array()
                .unwrap()
                .contains(&json!("vigil.shadow")),
            "{run}"
        );
    }

    // The shadow runs compared with the runs they shadowed, then both cohorts with shadow runs.
    let cohort = json!({"filters": {"agent": ["support-bot"], "release": ["2.4"]}});
    let mut shadow_cohort = cohort.clone();
    shadow_cohort["shadow"] = json!("only");
    let body = json!({"from": from, "to": to, "baseline": cohort, "candidate": shadow_cohort});
    let (status, answer) = vigil
        .post_as("/api/v1/cohorts/compare", &vigil.token, &body)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["baseline_runs"], &answer["candidate_runs"]),
        (
            &json!(production[0] as u64),
            &json!(native_shadow[0] as u64)
        ),
        "{answer}"
    );
    let completion = &answer["metrics"][0];
    assert_eq!(completion["metric"], "completion_rate");
    let rate = |f: [f64; 6]| f[1] / f[0];
    for (side, want) in [
        ("baseline", rate(production)),
        ("candidate", rate(native_shadow)),
    ] {
        let got = completion[side].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-12,
            "{side}: {got}, expected {want}"
        );
    }
    let both = json!({"from": from, "to": to, "baseline": cohort, "candidate": cohort,
                      "include_shadow": true});
    let (status, answer) = vigil
        .post_as("/api/v1/cohorts/compare", &vigil.token, &both)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["baseline_runs"], json!(sent.len()), "{answer}");

    // The same from the command line.
    let url = vigil.http();
    let against = [
        "--url",
        &url,
        "--token",
        &vigil.token,
        "--from",
        &from,
        "--to",
        &to,
    ];
    let cli = |command: &str, rest: &[&str]| {
        let args: Vec<&str> = [command]
            .iter()
            .chain(&against)
            .chain(rest)
            .copied()
            .collect();
        crate::support::cli(&args)
    };
    let counted = cli(
        "metrics",
        &["--metric", "runs", "--shadow", "only", "--format", "csv"],
    );
    assert_eq!(counted, format!("runs\r\n{}\r\n", only[0]), "{counted}");
    let compared = cli(
        "compare",
        &[
            "--baseline",
            "release=2.4",
            "--candidate",
            "release=2.4",
            "--candidate-shadow",
            "only",
            "--json",
        ],
    );
    let compared: Value = serde_json::from_str(&compared).unwrap();
    assert_eq!(compared["candidate_runs"], json!(native_shadow[0] as u64));
}

on_both_stores!(shadow_runs_stay_out_unless_asked);
