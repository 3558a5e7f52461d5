//! Production cohorts compared through the real binary, on both stores: a seeded mix of runs
//! (two releases, prompt versions on model calls, failed calls, unpriced calls, feedback, noise
//! of other releases and agents, and runs sent again with another outcome), two cohorts chosen by
//! filters, and every figure checked against values computed here from the runs sent, with the
//! p-values from SciPy on the same samples. Then the refusals, a role check and `vigil compare`;
//! and the worst of these runs added to a dataset (`vigil datasets add-worst`), ranked here.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use vigil_proto::v1;
use vigil_schemas::time::rfc3339;

use crate::support::{Store, Vigil, calls};

/// One run as sent, and what the documented definitions make of it.
#[derive(Clone)]
struct Sent {
    trace_id: String,
    release: &'static str,
    agent: &'static str,
    outcome: v1::Outcome,
    start_ns: i64,
    duration_ns: i64,
    /// Model calls: (prompt version, cost in nano-dollars, or none: unpriced).
    model_calls: Vec<(&'static str, Option<i64>)>,
    /// Tool calls: failed or not.
    tool_calls: Vec<bool>,
    feedback: Vec<bool>,
}

impl Sent {
    fn completed(&self) -> bool {
        self.outcome == v1::Outcome::Success
    }

    fn failed(&self) -> bool {
        matches!(self.outcome, v1::Outcome::Failure | v1::Outcome::Timeout)
    }

    /// Completed with a failed call (the model calls here never fail).
    fn silent(&self) -> bool {
        self.completed() && self.tool_calls.iter().any(|failed| *failed)
    }

    /// The cost of its model calls of `prompt` (all of them without): a run's sums count only
    /// the calls passing the call filters. `None` when one of them is unpriced.
    fn cost_nanos(&self, prompt: Option<&str>) -> Option<i64> {
        self.model_calls
            .iter()
            .filter(|(p, _)| prompt.is_none_or(|wanted| *p == wanted))
            .map(|(_, cost)| *cost)
            .sum()
    }

    fn export(&self) -> v1::ExportRequest {
        let mut request = v1::ExportRequest::default();
        request.runs.push(v1::Run {
            trace_id: self.trace_id.clone(),
            agent_name: self.agent.into(),
            release: self.release.into(),
            environment: "production".into(),
            start_time_unix_nano: self.start_ns,
            end_time_unix_nano: self.start_ns + self.duration_ns,
            outcome: self.outcome as i32,
            input: format!("{{\"ticket\": \"{}\"}}", self.trace_id),
            output: format!("answer to {}", self.trace_id),
            ..Default::default()
        });
        for (i, (prompt, cost)) in self.model_calls.iter().enumerate() {
            let call = v1::ModelCall {
                // A model no price catalog knows: unpriced unless the SDK gives its cost.
                model: "in-house-llm".into(),
                prompt_version: (*prompt).into(),
                cost_usd: cost.map(|c| c as f64 / 1e9),
                ..Default::default()
            };
            request
                .spans
                .push(calls::model_call(&self.trace_id, i, self.start_ns, call));
        }
        for (i, failed) in self.tool_calls.iter().enumerate() {
            request
                .spans
                .push(calls::tool_call(&self.trace_id, i, self.start_ns, *failed));
        }
        for (i, positive) in self.feedback.iter().enumerate() {
            request.scores.push(v1::Score {
                score_id: format!("{}-feedback-{i}", self.trace_id),
                trace_id: self.trace_id.clone(),
                name: "thumbs_up".into(),
                value: Some(v1::score::Value::Boolean(*positive)),
                ..Default::default()
            });
        }
        request
    }
}

/// The runs: release 2.3 (the baseline), 2.4 (the candidate when a model call used prompt v8;
/// slower and failing more), and noise: release 2.2, and another agent on both releases.
fn runs(now_ns: i64) -> Vec<Sent> {
    let mut rng = StdRng::seed_from_u64(1505);
    let outcomes = [
        v1::Outcome::Success,
        v1::Outcome::Success,
        v1::Outcome::Success,
        v1::Outcome::Failure,
        v1::Outcome::Timeout,
        v1::Outcome::Partial,
        v1::Outcome::Cancelled,
    ];
    (0..160)
        .map(|i| {
            let release = ["2.3", "2.4", "2.3", "2.4", "2.2"][i % 5];
            let agent = if i % 11 == 0 {
                "other-bot"
            } else {
                "support-bot"
            };
            let candidate = release == "2.4";
            let outcome = if candidate && rng.random_bool(0.3) {
                v1::Outcome::Failure
            } else {
                outcomes[rng.random_range(0..outcomes.len())]
            };
            let model_calls = (0..rng.random_range(0..=2))
                .map(|_| {
                    let prompt = if candidate && rng.random_bool(0.7) {
                        "v8"
                    } else {
                        "v7"
                    };
                    let cost = (!rng.random_bool(0.08)).then(|| rng.random_range(1_000..900_000));
                    (prompt, cost)
                })
                .collect();
            Sent {
                trace_id: format!("{:032x}", 0xc0_0000 + i),
                release,
                agent,
                outcome,
                start_ns: now_ns - 3_600_000_000_000 + i as i64 * 1_000_000_000,
                duration_ns: rng.random_range(100..20_000) * 1_000_000
                    + if candidate { 2_000_000_000 } else { 0 },
                model_calls,
                tool_calls: (0..rng.random_range(0..=3))
                    .map(|_| rng.random_bool(0.15))
                    .collect(),
                feedback: (0..rng.random_range(0..=2))
                    .map(|_| rng.random_bool(if candidate { 0.5 } else { 0.7 }))
                    .collect(),
            }
        })
        .collect()
}

/// SciPy's p-values for the same samples: Fisher's exact test of each pair of counts, the
/// Mann–Whitney U test (its defaults) of each pair of samples.
/// The endpoint under test.
const COMPARE: &str = "/api/v1/cohorts/compare";

const SCIPY_PVALUES: &str = r#"
import json, sys
from scipy import stats
d = json.load(sys.stdin)
print(json.dumps({
    "fisher": {k: float(stats.fisher_exact([[a, n - a], [b, m - b]]).pvalue)
               for k, (a, n, b, m) in d["rates"].items()},
    "mwu": {k: float(stats.mannwhitneyu(x, y).pvalue) for k, (x, y) in d["samples"].items()},
}))
"#;

/// The exact percentile of docs/design.md: the value at index min(⌊q·n⌋, n − 1), sorted.
fn percentile(sorted: &[i64], q: f64) -> f64 {
    let index = ((q * sorted.len() as f64).floor() as usize).min(sorted.len() - 1);
    sorted[index] as f64 / 1e6
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// What the comparison should say of each metric (name, baseline, candidate), and the counts and
/// samples SciPy tests. The candidate is filtered on prompt version v8.
fn expected(base: &[&Sent], cand: &[&Sent]) -> (Vec<(&'static str, f64, f64)>, Value) {
    let rate = |runs: &[&Sent], yes: fn(&Sent) -> bool, of: fn(&Sent) -> bool| {
        let n = runs.iter().filter(|r| of(r)).count();
        let k = runs.iter().filter(|r| of(r) && yes(r)).count();
        (k, n)
    };
    let feedback = |runs: &[&Sent]| {
        let positive = runs
            .iter()
            .flat_map(|r| &r.feedback)
            .filter(|f| **f)
            .count();
        let total = runs.iter().map(|r| r.feedback.len()).sum::<usize>();
        (positive, total)
    };
    let all = |_: &Sent| true;
    let counts = [
        (
            "completion_rate",
            rate(base, Sent::completed, all),
            rate(cand, Sent::completed, all),
        ),
        (
            "failure_rate",
            rate(base, Sent::failed, all),
            rate(cand, Sent::failed, all),
        ),
        (
            "silent_partial_failure_rate",
            rate(base, Sent::silent, Sent::completed),
            rate(cand, Sent::silent, Sent::completed),
        ),
        ("feedback_positive_rate", feedback(base), feedback(cand)),
    ];
    let durations = |runs: &[&Sent]| {
        let mut d: Vec<i64> = runs.iter().map(|r| r.duration_ns).collect();
        d.sort_unstable();
        d
    };
    let costs = |runs: &[&Sent], prompt: Option<&str>| -> Vec<f64> {
        runs.iter()
            .filter_map(|r| r.cost_nanos(prompt))
            .map(|c| c as f64 / 1e9)
            .collect()
    };
    let (base_costs, cand_costs) = (costs(base, None), costs(cand, Some("v8")));
    let tools =
        |runs: &[&Sent]| -> Vec<f64> { runs.iter().map(|r| r.tool_calls.len() as f64).collect() };
    let (bd, cd) = (durations(base), durations(cand));
    let mut figures: Vec<(&'static str, f64, f64)> = counts
        .iter()
        .map(|(name, (k, n), (l, m))| (*name, *k as f64 / *n as f64, *l as f64 / *m as f64))
        .collect();
    for (name, q) in [
        ("latency_p50_ms", 0.5),
        ("latency_p90_ms", 0.9),
        ("latency_p99_ms", 0.99),
    ] {
        figures.push((name, percentile(&bd, q), percentile(&cd, q)));
    }
    figures.push(("cost_per_run_usd", mean(&base_costs), mean(&cand_costs)));
    figures.push(("tool_calls_per_run", mean(&tools(base)), mean(&tools(cand))));
    let ms = |d: &[i64]| d.iter().map(|x| *x as f64 / 1e6).collect::<Vec<_>>();
    let reference = json!({
        "rates": counts.iter().map(|(name, (k, n), (l, m))| (name.to_string(), json!([k, n, l, m])))
            .collect::<serde_json::Map<_, _>>(),
        "samples": {
            "latency": [ms(&bd), ms(&cd)],
            "cost_per_run_usd": [base_costs, cand_costs],
            "tool_calls_per_run": [tools(base), tools(cand)],
        },
    });
    (figures, reference)
}

async fn cohorts_compare_exactly(store: Store) {
    let vigil = Vigil::start_on(store);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut sent = runs(now);
    for run in &sent {
        vigil.export_native(run.export()).await;
    }
    // Sent again, later, with another outcome and duration: the newest version counts.
    for run in sent.iter_mut().filter(|r| r.trace_id.ends_with('7')) {
        run.outcome = v1::Outcome::Success;
        run.duration_ns += 500_000_000;
        let mut again = run.export();
        again.spans.clear();
        again.scores.clear();
        vigil.export_native(again).await;
    }
    let (from, to) = (
        rfc3339(now - 7_200_000_000_000),
        rfc3339(now + 60_000_000_000),
    );
    let totals = json!({"from": from, "to": to, "metrics": ["runs", "completed_runs", "model_calls", "tool_calls"]});
    let want = json!([{
        "runs": sent.len(),
        "completed_runs": sent.iter().filter(|r| r.completed()).count(),
        "model_calls": sent.iter().map(|r| r.model_calls.len()).sum::<usize>(),
        "tool_calls": sent.iter().map(|r| r.tool_calls.len()).sum::<usize>(),
    }]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = vigil.metrics(&totals).await;
        if got["rows"] == want {
            break;
        }
        assert!(Instant::now() < deadline, "not all stored: {got} of {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let base: Vec<&Sent> = sent
        .iter()
        .filter(|r| r.release == "2.3" && r.agent == "support-bot")
        .collect();
    let cand: Vec<&Sent> = sent
        .iter()
        .filter(|r| r.release == "2.4" && r.agent == "support-bot")
        .filter(|r| r.model_calls.iter().any(|(p, _)| *p == "v8"))
        .collect();
    let body = json!({
        "from": from, "to": to,
        "baseline": {"filters": {"release": ["2.3"], "agent": ["support-bot"]}},
        "candidate": {"filters": {"release": ["2.4"], "agent": ["support-bot"], "prompt_version": ["v8"]}},
        "alpha": 0.05,
    });
    let (status, answer) = vigil.post_as(COMPARE, &vigil.token, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["baseline_runs"], base.len(), "{answer}");
    assert_eq!(answer["candidate_runs"], cand.len(), "{answer}");
    assert_eq!(answer["baseline"], body["baseline"]);

    let (figures, reference) = expected(&base, &cand);
    let scipy = crate::support::python_json(SCIPY_PVALUES, &reference);
    let metrics = answer["metrics"].as_array().unwrap();
    let names: Vec<&str> = metrics
        .iter()
        .map(|m| m["metric"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        figures.iter().map(|f| f.0).collect::<Vec<_>>(),
        "{answer}"
    );
    let close = |ours: &Value, theirs: f64, what: &str| {
        let ours = ours
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: {ours} in {answer}"));
        assert!(
            (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0),
            "{what}: Vigil {ours}, expected {theirs}"
        );
    };
    for (metric, (name, baseline, candidate)) in metrics.iter().zip(&figures) {
        close(&metric["baseline"], *baseline, &format!("{name} baseline"));
        close(
            &metric["candidate"],
            *candidate,
            &format!("{name} candidate"),
        );
        let sample = match *name {
            n if n.starts_with("latency_") => Some("latency"),
            "cost_per_run_usd" | "tool_calls_per_run" => Some(*name),
            _ => None,
        };
        let p = match sample {
            Some(sample) => &scipy["mwu"][sample],
            None => &scipy["fisher"][name],
        };
        close(
            &metric["p_value"],
            p.as_f64().unwrap(),
            &format!("{name} p"),
        );
        let p = p.as_f64().unwrap();
        let better = if metric["higher_is_better"] == true {
            candidate > baseline
        } else {
            candidate < baseline
        };
        let verdict = match (p < 0.05, better) {
            (false, _) => "no_significant_change",
            (true, true) => "improved",
            (true, false) => "regressed",
        };
        assert_eq!(metric["verdict"], verdict, "{name}: {metric}");
    }

    // Refusals name the field; an ingest-only key may not read.
    let mut bad = body.clone();
    bad["candidate"]["filters"] = json!({"colour": ["red"]});
    let (status, refused) = vigil.post_as(COMPARE, &vigil.token, &bad).await;
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (400, Some("candidate.filters")),
        "{refused}"
    );
    let mut bad = body.clone();
    bad["alpha"] = json!(0.9);
    let (status, refused) = vigil.post_as(COMPARE, &vigil.token, &bad).await;
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (400, Some("alpha"))
    );
    let mut bad = body.clone();
    bad["to"] = json!(from);
    assert_eq!(vigil.post_as(COMPARE, &vigil.token, &bad).await.0, 400);
    let ingest = vigil.create_key("ingest").token;
    assert_eq!(vigil.post_as(COMPARE, &ingest, &body).await.0, 403);

    // `vigil compare`: the table, and exit 1 exactly when a metric regressed.
    let regressed = metrics.iter().any(|m| m["verdict"] == "regressed");
    let url = vigil.http();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["compare", "--url", &url, "--token", &vigil.token])
        .args(["--from", &from, "--to", &to])
        .args([
            "--baseline",
            "release=2.3",
            "--baseline",
            "agent=support-bot",
        ])
        .args([
            "--candidate",
            "release=2.4",
            "--candidate",
            "agent=support-bot",
        ])
        .args(["--candidate", "prompt_version=v8"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(i32::from(regressed)),
        "{table}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        table.starts_with(&format!(
            "runs from {from} to {to}: baseline {}, candidate {}\n",
            base.len(),
            cand.len()
        )),
        "{table}"
    );
    for name in &names {
        assert!(table.contains(name), "{name} missing from\n{table}");
    }

    the_worst_runs_join_a_dataset(&vigil, &sent, &from, &to).await;
}

/// The worst of `runs` by the documented order, worst first.
fn ranked_worst(runs: &[&Sent], by: &str) -> Vec<String> {
    let negative = |r: &Sent| r.feedback.iter().filter(|f| !**f).count();
    let share = |r: &Sent| {
        r.feedback.iter().filter(|f| **f).count() as f64 / r.feedback.len().max(1) as f64
    };
    let mut picked: Vec<&Sent> = runs
        .iter()
        .copied()
        .filter(|r| match by {
            "failure" => r.failed() || r.silent(),
            _ => negative(r) > 0,
        })
        .collect();
    picked.sort_by(|a, b| {
        let ranked = match by {
            "failure" => (b.failed(), b.silent())
                .cmp(&(a.failed(), a.silent()))
                .then(negative(b).cmp(&negative(a))),
            _ => negative(b)
                .cmp(&negative(a))
                .then(share(a).total_cmp(&share(b))),
        };
        ranked
            .then(b.duration_ns.cmp(&a.duration_ns))
            .then(a.trace_id.cmp(&b.trace_id))
    });
    picked.into_iter().map(|r| r.trace_id.clone()).collect()
}

/// `vigil datasets add-worst` over the runs of the range: the trace ids it reports adding.
fn add_worst(vigil: &Vigil, from: &str, to: &str, by: &str) -> Vec<String> {
    let url = vigil.http();
    let output = crate::support::cli(&[
        "datasets",
        "--url",
        &url,
        "--token",
        &vigil.token,
        "add-worst",
        "--dataset",
        "weekly",
        "--from",
        from,
        "--to",
        to,
        "--by",
        by,
        "--limit",
        "5",
        "--filter",
        "agent=support-bot",
    ]);
    output
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(str::to_string)
        .collect()
}

async fn the_worst_runs_join_a_dataset(vigil: &Vigil, sent: &[Sent], from: &str, to: &str) {
    let (status, created) = vigil
        .post("/api/v1/datasets", &json!({"name": "weekly"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let support: Vec<&Sent> = sent.iter().filter(|r| r.agent == "support-bot").collect();
    let failures = ranked_worst(&support, "failure");
    // Twice: the second time, the runs the dataset holds are left out.
    assert_eq!(add_worst(vigil, from, to, "failure"), failures[..5]);
    assert_eq!(add_worst(vigil, from, to, "failure"), failures[5..10]);
    let held: Vec<&str> = failures[..10].iter().map(String::as_str).collect();
    let by_feedback: Vec<String> = ranked_worst(&support, "feedback")
        .into_iter()
        .filter(|id| !held.contains(&id.as_str()))
        .take(5)
        .collect();
    assert_eq!(add_worst(vigil, from, to, "feedback"), by_feedback);

    let (_, page) = vigil.get("/api/v1/datasets/weekly/items").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 15, "{page}");
    let first = items
        .iter()
        .find(|i| i["source_trace_id"] == failures[0].as_str())
        .unwrap_or_else(|| panic!("{} not in {page}", failures[0]));
    assert_eq!(first["input"], json!({"ticket": failures[0]}));
    assert_eq!(
        first["expected_output"],
        Value::Null,
        "for a person to write"
    );
    assert_eq!(
        first["metadata"]["observed_output"],
        format!("answer to {}", failures[0])
    );
}

on_both_stores!(cohorts_compare_exactly);

/// A smoke run of `vigil bench cohorts` on both stores: the harness works, both stores split the
/// runs into the same two cohorts, and the plain read in `clickhouse-client` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cohorts_benchmark_runs() {
    let port = crate::support::clickhouse::ClickHouse::shared()
        .tcp_port
        .to_string();
    let report = crate::support::bench_smoke("cohorts", &["--clickhouse-port", &port]);
    let comparisons = report["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 2, "{report}");
    for side in ["baseline_runs", "candidate_runs"] {
        assert_eq!(comparisons[0][side], comparisons[1][side], "{report}");
        assert!(comparisons[0][side].as_u64().unwrap() > 0, "{report}");
    }
    assert!(
        report["clickhouse_client_ms"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}
