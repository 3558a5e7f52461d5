//! `vigil bench alerts`: 1,000 alert rules evaluated over 1,000,000 runs / 10,000,000 spans, on
//! each store, against the 60 s evaluation interval they must fit in.
//!
//! 1. Loads the same data as `vigil bench metrics` (the same generator, and the same kept store
//!    when `--data-dir` already holds it), into the embedded store and, given
//!    `--clickhouse-url`, into ClickHouse.
//! 2. Generates `--rules` rules, seeded: a mix of run, model-call and tool-call metrics, with
//!    and without grouping (agent, model, tool, task type), filters (none, an environment, one
//!    of the six agents), windows (5m, 15m, 1h, 24h) and one in ten an anomaly rule (its
//!    baseline: the same window on each of the 7 days before).
//! 3. Evaluates all of them once, the way the alert engine does: rules that share a query are
//!    batched into one metric request, `--concurrency` batches at once (the engine's
//!    `max_concurrent_evaluations`), each answer fed to the evaluator. The evaluation instant is
//!    the end of the generated data, so every window holds data. Repeated `--repetitions`
//!    times; the median round is reported, with its slowest batch.
//! 4. With `--verify` (and in the smoke run), evaluates every rule again in a batch of its own and
//!    counts the rules whose readings differ from the shared round's: sharing a request must not
//!    change an answer.

use std::{collections::BTreeMap, fmt, sync::Arc, time::Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde::Serialize;
use tokio::{sync::Semaphore, task::JoinSet};
use vigil_alerts::{
    batch::{Batch, batches},
    evaluator::{Evaluation, RuleState, step},
    rule::{Rule, RuleSpec},
};
use vigil_query::{ClickHouseStore, EmbeddedStore, TraceStore};
use vigil_schemas::time::parse_rfc3339;

use super::metrics::{AGENTS, DataArgs, END, Loaded};

/// The interval the whole rule set must be evaluated within.
const INTERVAL_SECONDS: f64 = 60.0;

#[derive(clap::Args, Debug, Clone)]
pub struct AlertsBenchArgs {
    /// Alert rules to evaluate.
    #[arg(long, default_value_t = 1_000)]
    pub rules: usize,
    /// The data, shared with `vigil bench metrics` (the same generator and kept store).
    #[command(flatten)]
    pub data: DataArgs,
    /// Batches evaluated at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Timed rounds (after one warm-up round).
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
    /// Also evaluate every rule alone and count those whose readings differ from the round's.
    #[arg(long)]
    pub verify: bool,
    /// 2,000 runs, 50 rules, one round, verified: checks the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct AlertsBenchReport {
    runs: usize,
    spans: usize,
    rules: usize,
    anomaly_rules: usize,
    batches: usize,
    metric_requests: usize,
    cores: usize,
    concurrency: usize,
    repetitions: usize,
    stores: Vec<StoreTimes>,
}

#[derive(Debug, Serialize)]
struct StoreTimes {
    store: String,
    /// Median wall time of one round over every rule.
    round_seconds: f64,
    /// `round_seconds` / rules.
    per_rule_ms: f64,
    /// The slowest batch of the median round.
    slowest_batch_seconds: f64,
    /// Alert instances active (pending or firing) after a round.
    active_alerts: usize,
    /// Batches whose query failed in the median round (e.g. ClickHouse's 60 s query timeout).
    failed_batches: usize,
    /// With `--verify`: rules whose readings, evaluated alone, differ from the round's.
    #[serde(skip_serializing_if = "Option::is_none")]
    rules_differing_alone: Option<usize>,
}

impl fmt::Display for AlertsBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} rules ({} anomaly) in {} batches = {} metric requests, over {} runs / {} spans; {} cores, {} batches at once, median of {} rounds",
            self.rules,
            self.anomaly_rules,
            self.batches,
            self.metric_requests,
            self.runs,
            self.spans,
            self.cores,
            self.concurrency,
            self.repetitions
        )?;
        writeln!(
            f,
            "{:<12} {:>10} {:>12} {:>15} {:>8} {:>8} {:>10}",
            "store", "round s", "per rule ms", "slowest batch s", "active", "failed", "in 60 s?"
        )?;
        for s in &self.stores {
            writeln!(
                f,
                "{:<12} {:>10.2} {:>12.2} {:>15.2} {:>8} {:>8} {:>10}",
                s.store,
                s.round_seconds,
                s.per_rule_ms,
                s.slowest_batch_seconds,
                s.active_alerts,
                s.failed_batches,
                if s.round_seconds <= INTERVAL_SECONDS && s.failed_batches == 0 {
                    "yes"
                } else {
                    "NO"
                }
            )?;
        }
        for s in &self.stores {
            if let Some(differing) = s.rules_differing_alone {
                writeln!(
                    f,
                    "{}: {differing} rules read differently when evaluated alone",
                    s.store
                )?;
            }
        }
        Ok(())
    }
}

pub async fn run(mut args: AlertsBenchArgs) -> anyhow::Result<AlertsBenchReport> {
    if args.smoke {
        args.data.shrink_for_smoke(&mut args.repetitions);
        args.rules = args.rules.min(50);
        args.verify = true;
    }
    let Loaded {
        data,
        dir,
        clickhouse,
        ..
    } = args.data.load().await?;
    let mut stores: Vec<(String, Arc<dyn TraceStore>)> =
        vec![("embedded".into(), Arc::new(EmbeddedStore::open(&dir)?))];
    if let Some(config) = &clickhouse {
        stores.push(("clickhouse".into(), Arc::new(ClickHouseStore::new(config))));
    }

    let rules: Vec<Arc<Rule>> = rule_set(args.rules)?.into_iter().map(Arc::new).collect();
    let anomaly_rules = rules.iter().filter(|r| r.is_anomaly()).count();
    let batches = batches(rules.iter().cloned());
    let metric_requests = batches
        .iter()
        .map(|b| {
            if b.rules.iter().any(|r| r.is_anomaly()) {
                8
            } else {
                1
            }
        })
        .sum();
    let at = parse_rfc3339(END).context("END")?;

    let mut times = Vec::new();
    for (name, store) in stores {
        let mut rounds = Vec::new();
        let mut readings = BTreeMap::new();
        for round in 0..=args.repetitions {
            let (measured, evaluations) =
                evaluate_round(&store, &batches, at, args.concurrency).await?;
            readings = evaluations;
            if round > 0 {
                rounds.push(measured);
            }
        }
        let rules_differing_alone = if args.verify {
            let alone: Vec<Batch> = rules.iter().cloned().map(Batch::alone).collect();
            let (_, each) = evaluate_round(&store, &alone, at, args.concurrency).await?;
            // A rule with no readings on either side (its batch failed) counts as differing:
            // nothing was compared.
            let differing: Vec<&Arc<Rule>> = rules
                .iter()
                .filter(
                    |rule| match (readings.get(rule.name()), each.get(rule.name())) {
                        (Some(shared), Some(alone)) => shared != alone,
                        _ => true,
                    },
                )
                .collect();
            for rule in &differing {
                eprintln!(
                    "{name}: {} reads {:?} in its batch and {:?} alone",
                    rule.name(),
                    readings.get(rule.name()),
                    each.get(rule.name())
                );
            }
            Some(differing.len())
        } else {
            None
        };
        rounds.sort_by(|a, b| a.round_seconds.total_cmp(&b.round_seconds));
        let median = &rounds[rounds.len() / 2];
        let store = StoreTimes {
            store: name,
            round_seconds: median.round_seconds,
            per_rule_ms: median.round_seconds * 1000.0 / args.rules as f64,
            slowest_batch_seconds: median.slowest_batch_seconds,
            active_alerts: median.active_alerts,
            failed_batches: median.failed_batches,
            rules_differing_alone,
        };
        eprintln!("{store:?}");
        times.push(store);
    }
    Ok(AlertsBenchReport {
        runs: data.runs,
        spans: data.runs * data.spans_per_run,
        rules: rules.len(),
        anomaly_rules,
        batches: batches.len(),
        metric_requests,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        concurrency: args.concurrency,
        repetitions: args.repetitions,
        stores: times,
    })
}

struct Round {
    round_seconds: f64,
    slowest_batch_seconds: f64,
    active_alerts: usize,
    failed_batches: usize,
}

/// One round: every batch, `concurrency` at once; each answer through the evaluator. Returns
/// the round's figures and each rule's readings (by rule name; none for a failed batch).
async fn evaluate_round(
    store: &Arc<dyn TraceStore>,
    batches: &[Batch],
    at: i64,
    concurrency: usize,
) -> anyhow::Result<(Round, BTreeMap<String, Evaluation>)> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for batch in batches.iter().cloned() {
        let store = store.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let began = Instant::now();
            let evaluations = match batch.evaluate(store.as_ref(), at).await {
                Ok(evaluations) => evaluations,
                Err(e) => {
                    eprintln!("a batch of {} rules failed: {e}", batch.rules.len());
                    return anyhow::Ok((began.elapsed().as_secs_f64(), None));
                }
            };
            let active: usize = evaluations
                .iter()
                .map(|(rule, evaluation)| {
                    step(rule, RuleState::default(), evaluation, at)
                        .0
                        .instances
                        .len()
                })
                .sum();
            anyhow::Ok((began.elapsed().as_secs_f64(), Some((active, evaluations))))
        });
    }
    let (mut slowest, mut active, mut failed) = (0.0f64, 0, 0);
    let mut readings = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (seconds, evaluated) = done??;
        slowest = slowest.max(seconds);
        match evaluated {
            Some((alerts, evaluations)) => {
                active += alerts;
                readings.extend(
                    evaluations
                        .into_iter()
                        .map(|(rule, evaluation)| (rule.name().to_string(), evaluation)),
                );
            }
            None => failed += 1,
        }
    }
    let round = Round {
        round_seconds: started.elapsed().as_secs_f64(),
        slowest_batch_seconds: slowest,
        active_alerts: active,
        failed_batches: failed,
    };
    Ok((round, readings))
}

/// A seeded rule set of the shape on-call teams write.
fn rule_set(n: usize) -> anyhow::Result<Vec<Rule>> {
    const RUN_METRICS: [&str; 8] = [
        "completion_rate",
        "failed_runs",
        "run_latency_p99_ms",
        "cost_usd",
        "cost_per_run_usd",
        "input_tokens",
        "repeated_tool_calls",
        "feedback_positive_rate",
    ];
    const MODEL_METRICS: [&str; 3] = ["model_error_rate", "model_latency_p99_ms", "model_calls"];
    const TOOL_METRICS: [&str; 3] = ["tool_error_rate", "tool_latency_p99_ms", "tool_errors"];
    let mut rng = StdRng::seed_from_u64(11);
    let mut rules = Vec::with_capacity(n);
    for i in 0..n {
        let (metric, groupings): (&str, &[&[&str]]) = match rng.random_range(0..10) {
            0..=5 => (
                RUN_METRICS.choose(&mut rng).copied().unwrap_or("runs"),
                &[&[], &["agent"], &["model"], &["task_type"]],
            ),
            6..=7 => (
                MODEL_METRICS
                    .choose(&mut rng)
                    .copied()
                    .unwrap_or("model_calls"),
                &[&[], &["model"], &["agent"]],
            ),
            _ => (
                TOOL_METRICS
                    .choose(&mut rng)
                    .copied()
                    .unwrap_or("tool_calls"),
                &[&[], &["tool"], &["agent"]],
            ),
        };
        let group_by: Vec<String> = groupings
            .choose(&mut rng)
            .map(|g| g.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        let mut filters = std::collections::BTreeMap::new();
        match rng.random_range(0..4) {
            0 => {
                filters.insert("environment".to_string(), vec!["production".to_string()]);
            }
            1 => {
                let agent = AGENTS.choose(&mut rng).copied().unwrap_or("triage");
                filters.insert("agent".to_string(), vec![agent.to_string()]);
            }
            _ => {}
        }
        let window = ["5m", "5m", "15m", "15m", "1h", "1h", "1h", "24h"]
            .choose(&mut rng)
            .copied()
            .unwrap_or("5m");
        let anomaly = rng.random_bool(0.1);
        let spec = RuleSpec {
            name: format!("rule-{i:04}"),
            project: "default".into(),
            metric: metric.into(),
            filters,
            group_by,
            window: window.into(),
            interval: Some("1m".into()),
            op: (!anomaly).then(|| ">".to_string()),
            threshold: (!anomaly).then(|| rng.random_range(0.0..1000.0)),
            baseline: anomaly.then(|| "same_window_last_7d".to_string()),
            ratio_above: anomaly.then_some(3.0),
            min_baseline: anomaly.then_some(1.0),
            for_: "5m".into(),
            keep_firing_for: "0s".into(),
            no_data: Default::default(),
            labels: [("severity".to_string(), "page".to_string())].into(),
            annotations: [("summary".to_string(), "{{ $value }}".to_string())].into(),
            receivers: Vec::new(),
            kill_switch: None,
            kill_switch_reenable_on_resolve: false,
        };
        rules.push(Rule::new(spec, 60_000_000_000)?);
    }
    Ok(rules)
}
