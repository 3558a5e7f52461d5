//! Golden tests of the metric engine: a seeded generator makes runs with known properties, sends
//! them through a real Vigil on each store (with SDK retries, and a kill -9 and restart so that
//! the WAL replays), and every answer of `POST /api/v1/metrics/query` is compared with values
//! computed here, in plain Rust over the generated records, never through the engine. The
//! queries are random combinations of metrics, groupings, filters, ranges and steps (a property
//! test: the seed is printed, and `VIGIL_GOLDEN_SEED` replays one).

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};
use vigil_proto::v1;
use vigil_query::metrics::{Field, Metric, Subject};
use vigil_schemas::time::{NANOS_PER_DAY, parse_rfc3339, rfc3339};

use support::{Store, Vigil, conformance::wait_drained};

const HOUR: i64 = 3_600_000_000_000;
/// The generated runs start within 48 hours from here.
const WINDOW_START: &str = "2026-11-20T00:00:00Z";
const WINDOW_HOURS: i64 = 48;
/// The price of `golden-alpha` changes here, inside the window.
const PRICE_CHANGE: &str = "2026-11-21T00:00:00Z";

// ---- prices: written into Vigil's config, and applied here independently ----

/// Nano-dollars per million tokens: input, cached input, cache write, output, reasoning.
type Rates = [i64; 5];
const ALPHA_BEFORE: Rates = [
    2_500_000_000,
    1_250_000_000,
    3_125_000_000,
    10_000_000_000,
    10_000_000_000,
];
const ALPHA_AFTER: Rates = [
    3_000_000_000,
    300_000_000,
    3_750_000_000,
    15_000_000_000,
    12_000_000_000,
];
const BETA: Rates = [
    150_000_000,
    75_000_000,
    150_000_000,
    600_000_000,
    2_400_000_000,
];

fn pricing_config() -> String {
    let usd = |n: i64| n as f64 / 1e9;
    let entry = |from: &str, r: Rates| {
        format!(
            "{{ from = \"{from}\", input = {}, cached_input = {}, cache_write = {}, output = {}, reasoning = {} }}",
            usd(r[0]),
            usd(r[1]),
            usd(r[2]),
            usd(r[3]),
            usd(r[4])
        )
    };
    format!(
        "[[pricing.models]]\nname = \"golden-alpha\"\nprovider = \"acme\"\nprices = [{}, {}]\n\n\
         [[pricing.models]]\nname = \"golden-beta\"\nprovider = \"other\"\nprices = [{}]\n",
        entry("2026-01-01", ALPHA_BEFORE),
        entry(PRICE_CHANGE, ALPHA_AFTER),
        entry("2026-01-01", BETA),
    )
}

/// Cost of a model call in nano-dollars as the provider bills it; `None` when unpriced.
fn expected_cost(call: &Call) -> Option<i64> {
    if let Some(usd) = call.sdk_cost_usd {
        return Some((usd * 1e9).round() as i64);
    }
    let rates = match call.model.as_str() {
        "golden-alpha" if call.start < ns(PRICE_CHANGE) => ALPHA_BEFORE,
        "golden-alpha" => ALPHA_AFTER,
        "golden-beta" => BETA,
        _ => return None,
    };
    let [input, output, cached, write, reasoning] = call.tokens.map(i128::from);
    let billed = [
        input - cached - write,
        cached,
        write,
        output - reasoning,
        reasoning,
    ];
    let total: i128 = billed
        .iter()
        .zip(rates)
        .map(|(t, r)| t * i128::from(r))
        .sum();
    Some(((total + 500_000) / 1_000_000) as i64)
}

// ---- the generated data ----

#[derive(Debug, Clone)]
struct Run {
    trace_id: String,
    fields: BTreeMap<Field, String>,
    classification: Vec<String>,
    start: i64,
    end: i64,
    outcome: &'static str,
    model_calls: Vec<Call>,
    tool_calls: Vec<Call>,
    /// Boolean feedback scores.
    thumbs: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Call {
    span_id: String,
    start: i64,
    end: i64,
    error: bool,
    model: String,
    fields: BTreeMap<Field, String>,
    /// input, output, cached input, cache write, reasoning.
    tokens: [u64; 5],
    sdk_cost_usd: Option<f64>,
    tool: String,
    arguments: String,
    /// Filled after generation: the run's tool call just before had the same tool and arguments.
    repeat: bool,
}

const OUTCOMES: [(&str, v1::Outcome); 5] = [
    ("success", v1::Outcome::Success),
    ("success", v1::Outcome::Success),
    ("success", v1::Outcome::Success),
    ("failure", v1::Outcome::Failure),
    ("timeout", v1::Outcome::Timeout),
];
const RARE_OUTCOMES: [(&str, v1::Outcome); 2] = [
    ("partial", v1::Outcome::Partial),
    ("cancelled", v1::Outcome::Cancelled),
];

/// The values each field takes (and one it never takes, for filters that match nothing).
fn pool(field: Field) -> &'static [&'static str] {
    match field {
        Field::Agent => &["support-bot", "sql-analyst", "researcher"],
        Field::AgentVersion => &["1.0.0", "1.1.0"],
        Field::TaskType => &["answer", "plan", "query"],
        Field::Environment => &["production", "staging"],
        Field::Release => &["r1", "r2"],
        Field::Outcome => &["success", "failure", "timeout", "partial", "cancelled"],
        Field::SessionId => &["", "s-1", "s-2", "s-3", "s-4", "s-5", "s-6"],
        Field::UserHash => &["", "u1a2", "u3b4", "u5c6", "u7d8"],
        Field::Model => &["golden-alpha", "golden-beta", "golden-unpriced"],
        Field::ModelVersion => &["2025-01", "2025-06"],
        Field::Provider => &["acme", "other", "self"],
        Field::PromptId => &["greet", "solve"],
        Field::PromptVersion => &["v1", "v2", "v3"],
        Field::Tool => &["search", "sql", "fetch"],
        Field::ToolVersion => &["1", "2"],
        Field::Classification => &["pii", "financial", "phi"],
    }
}

fn ns(rfc: &str) -> i64 {
    parse_rfc3339(rfc).unwrap()
}

fn generate(seed: u64, runs: usize) -> Vec<Run> {
    let mut rng = StdRng::seed_from_u64(seed);
    let window_start = ns(WINDOW_START);
    let mut out = Vec::new();
    for i in 0..runs {
        let start = window_start + rng.random_range(0..WINDOW_HOURS * HOUR);
        let mut fields = BTreeMap::new();
        for field in [
            Field::Agent,
            Field::AgentVersion,
            Field::TaskType,
            Field::Environment,
            Field::Release,
            Field::SessionId,
            Field::UserHash,
        ] {
            fields.insert(field, pool(field).choose(&mut rng).unwrap().to_string());
        }
        let (outcome, _) = if rng.random_bool(0.05) {
            *RARE_OUTCOMES.choose(&mut rng).unwrap()
        } else {
            *OUTCOMES.choose(&mut rng).unwrap()
        };
        fields.insert(Field::Outcome, outcome.to_string());
        let classification: Vec<String> = pool(Field::Classification)
            .iter()
            .filter(|_| rng.random_bool(0.3))
            .map(|t| t.to_string())
            .collect();
        let mut at = start;
        let mut call = |rng: &mut StdRng, n: usize, kind: u8| {
            let begin = at + rng.random_range(0..2_000_000_000);
            // Some calls share a start: the span id breaks the tie.
            let end = begin + rng.random_range(1_000_000..9_000_000_000);
            at = if rng.random_bool(0.2) { at } else { begin };
            Call {
                span_id: format!("{:08x}{:04x}{:04x}", i, kind, n),
                start: begin,
                end,
                error: rng.random_bool(0.12),
                model: String::new(),
                fields: BTreeMap::new(),
                tokens: [0; 5],
                sdk_cost_usd: None,
                tool: String::new(),
                arguments: String::new(),
                repeat: false,
            }
        };
        let mut model_calls = Vec::new();
        for n in 0..rng.random_range(0..=4) {
            let mut c = call(&mut rng, n, 1);
            c.model = pool(Field::Model).choose(&mut rng).unwrap().to_string();
            let provider = match c.model.as_str() {
                "golden-alpha" => "acme",
                "golden-beta" => "other",
                _ => "self",
            };
            c.fields.insert(Field::Model, c.model.clone());
            c.fields.insert(Field::Provider, provider.into());
            for field in [Field::ModelVersion, Field::PromptId, Field::PromptVersion] {
                c.fields
                    .insert(field, pool(field).choose(&mut rng).unwrap().to_string());
            }
            let input = rng.random_range(0..20_000u64);
            let output = rng.random_range(0..4_000u64);
            let cached = rng.random_range(0..=input / 2);
            let write = rng.random_range(0..=(input - cached) / 4);
            let reasoning = rng.random_range(0..=output / 2);
            c.tokens = [input, output, cached, write, reasoning];
            if rng.random_bool(0.1) {
                c.sdk_cost_usd = Some(rng.random_range(1..50_000) as f64 / 1e6);
            }
            model_calls.push(c);
        }
        let mut tool_calls: Vec<Call> = Vec::new();
        for n in 0..rng.random_range(0..=5) {
            let mut c = call(&mut rng, n, 2);
            c.tool = pool(Field::Tool).choose(&mut rng).unwrap().to_string();
            c.fields.insert(Field::Tool, c.tool.clone());
            c.fields.insert(
                Field::ToolVersion,
                pool(Field::ToolVersion)
                    .choose(&mut rng)
                    .unwrap()
                    .to_string(),
            );
            c.arguments = ["", "q=1", "q=2"].choose(&mut rng).unwrap().to_string();
            tool_calls.push(c);
        }
        // The loop signal, by the definition: ordered by start then span id.
        let mut order: Vec<usize> = (0..tool_calls.len()).collect();
        order.sort_by(|a, b| {
            let (a, b) = (&tool_calls[*a], &tool_calls[*b]);
            (a.start, &a.span_id).cmp(&(b.start, &b.span_id))
        });
        for pair in order.windows(2) {
            let (previous, current) = (&tool_calls[pair[0]], &tool_calls[pair[1]]);
            let repeat = !current.arguments.is_empty()
                && current.arguments == previous.arguments
                && current.tool == previous.tool;
            tool_calls[pair[1]].repeat = repeat;
        }
        let last_end = model_calls
            .iter()
            .chain(&tool_calls)
            .map(|c| c.end)
            .max()
            .unwrap_or(start);
        let end = last_end + rng.random_range(1_000_000..3_000_000_000);
        let thumbs = (0..rng.random_range(0..=2))
            .map(|_| rng.random_bool(0.6))
            .collect();
        out.push(Run {
            trace_id: format!("{:016x}{:016x}", seed, i),
            fields,
            classification,
            start,
            end,
            outcome,
            model_calls,
            tool_calls,
            thumbs,
        });
    }
    out
}

fn export_request(runs: &[Run]) -> v1::ExportRequest {
    let mut request = v1::ExportRequest::default();
    for run in runs {
        let f = |field| run.fields[&field].clone();
        let outcome = OUTCOMES
            .iter()
            .chain(&RARE_OUTCOMES)
            .find(|(name, _)| *name == run.outcome)
            .unwrap()
            .1;
        request.runs.push(v1::Run {
            trace_id: run.trace_id.clone(),
            session_id: f(Field::SessionId),
            user_hash: f(Field::UserHash),
            task_type: f(Field::TaskType),
            agent_name: f(Field::Agent),
            agent_version: f(Field::AgentVersion),
            environment: f(Field::Environment),
            release: f(Field::Release),
            start_time_unix_nano: run.start,
            end_time_unix_nano: run.end,
            outcome: outcome as i32,
            classification: run.classification.clone(),
            ..Default::default()
        });
        for call in run.model_calls.iter().chain(&run.tool_calls) {
            let is_model = !call.model.is_empty();
            request.spans.push(v1::Span {
                trace_id: run.trace_id.clone(),
                span_id: call.span_id.clone(),
                kind: if is_model {
                    v1::SpanKind::Model
                } else {
                    v1::SpanKind::Tool
                } as i32,
                name: if is_model { "llm" } else { "tool" }.into(),
                start_time_unix_nano: call.start,
                end_time_unix_nano: call.end,
                status: if call.error {
                    v1::SpanStatus::Error
                } else {
                    v1::SpanStatus::Ok
                } as i32,
                model: is_model.then(|| v1::ModelCall {
                    provider: call.fields[&Field::Provider].clone(),
                    model: call.model.clone(),
                    model_version: call.fields[&Field::ModelVersion].clone(),
                    prompt_id: call.fields[&Field::PromptId].clone(),
                    prompt_version: call.fields[&Field::PromptVersion].clone(),
                    input_tokens: call.tokens[0],
                    output_tokens: call.tokens[1],
                    cached_input_tokens: call.tokens[2],
                    cache_write_tokens: call.tokens[3],
                    reasoning_tokens: call.tokens[4],
                    cost_usd: call.sdk_cost_usd,
                }),
                tool: (!is_model).then(|| v1::ToolCall {
                    name: call.tool.clone(),
                    version: call.fields[&Field::ToolVersion].clone(),
                    arguments: call.arguments.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        for (n, thumb) in run.thumbs.iter().enumerate() {
            request.scores.push(v1::Score {
                score_id: format!("{}-{n}", run.trace_id),
                trace_id: run.trace_id.clone(),
                name: "thumbs".into(),
                value: Some(v1::score::Value::Boolean(*thumb)),
                time_unix_nano: run.end,
                ..Default::default()
            });
        }
        // A numeric score: not feedback, must not count.
        request.scores.push(v1::Score {
            score_id: format!("{}-quality", run.trace_id),
            trace_id: run.trace_id.clone(),
            name: "quality".into(),
            value: Some(v1::score::Value::Numeric(0.5)),
            time_unix_nano: run.end,
            ..Default::default()
        });
    }
    request
}

/// Sends every run, then a third of the batches again (an SDK retrying after a lost answer).
async fn send(vigil: &Vigil, runs: &[Run]) {
    let batches: Vec<&[Run]> = runs.chunks(40).collect();
    let retried = batches.iter().step_by(3);
    for batch in batches.iter().chain(retried) {
        let response = vigil.export_native(export_request(batch)).await;
        assert!(response.rejections.is_empty(), "{:?}", response.rejections);
    }
}

// ---- the reference: every metric, computed from the records ----

#[derive(Debug, Clone)]
struct Query {
    from: i64,
    to: i64,
    metrics: Vec<Metric>,
    group_by: Vec<Field>,
    filters: BTreeMap<Field, Vec<String>>,
    step: Option<(&'static str, i64)>,
}

impl Query {
    fn body(&self) -> Value {
        let mut body = json!({
            "from": rfc3339(self.from),
            "to": rfc3339(self.to),
            "metrics": self.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "group_by": self.group_by.iter().map(|f| f.name()).collect::<Vec<_>>(),
            "filters": self.filters.iter().map(|(f, v)| (f.name().to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        });
        if let Some((step, _)) = self.step {
            body["step"] = json!(step);
        }
        body
    }

    fn uses(&self, subject: Subject) -> bool {
        self.group_by
            .iter()
            .chain(self.filters.keys())
            .any(|f| f.subject() == subject)
    }

    fn passes(&self, field: Field, value: &str) -> bool {
        self.filters
            .get(&field)
            .is_none_or(|values| values.iter().any(|v| v == value))
    }

    fn run_passes(&self, run: &Run) -> bool {
        self.filters.iter().all(|(field, values)| match field {
            Field::Classification => run.classification.iter().any(|t| values.contains(t)),
            f if f.subject() == Subject::Run => values.contains(&run.fields[f]),
            _ => true,
        })
    }

    fn call_passes(&self, call: &Call, subject: Subject) -> bool {
        self.filters
            .iter()
            .filter(|(f, _)| f.subject() == subject)
            .all(|(f, values)| values.contains(&call.fields[f]))
    }

    /// The tags a run is grouped under: each of its tags (`""` without any) that passes the
    /// filter.
    fn tags(&self, run: &Run) -> Vec<String> {
        if !self.group_by.contains(&Field::Classification) {
            return vec![String::new()];
        }
        let tags = if run.classification.is_empty() {
            vec![String::new()]
        } else {
            run.classification.clone()
        };
        tags.into_iter()
            .filter(|t| self.passes(Field::Classification, t))
            .collect()
    }

    fn key(&self, run: &Run, tag: &str, call: Option<&Call>) -> Vec<String> {
        self.group_by
            .iter()
            .map(|field| match field {
                Field::Classification => tag.to_string(),
                f if f.subject() == Subject::Run => run.fields[f].clone(),
                f => call.map(|c| c.fields[f].clone()).unwrap_or_default(),
            })
            .collect()
    }

    fn bucket(&self, at: i64) -> Option<i64> {
        self.step.map(|(_, step)| at.div_euclid(step) * step)
    }

    /// Why the engine must refuse the query (the request field), if it must.
    fn refusal(&self) -> Option<&'static str> {
        let groups_model_call = self
            .group_by
            .iter()
            .any(|f| f.subject() == Subject::ModelCall);
        let groups_tool_call = self
            .group_by
            .iter()
            .any(|f| f.subject() == Subject::ToolCall);
        if groups_model_call && groups_tool_call {
            return Some("group_by");
        }
        let bad_outcome = self.filters.get(&Field::Outcome).is_some_and(|values| {
            values
                .iter()
                .any(|v| !pool(Field::Outcome).contains(&v.as_str()))
        });
        if bad_outcome {
            return Some("filters");
        }
        for metric in &self.metrics {
            for (fields, name) in [
                (&self.group_by.iter().collect::<Vec<_>>(), "group_by"),
                (&self.filters.keys().collect::<Vec<_>>(), "filters"),
            ] {
                let crosses = fields.iter().any(|f| {
                    matches!(
                        (metric.subject(), f.subject()),
                        (Subject::ToolCall, Subject::ModelCall)
                            | (Subject::ModelCall, Subject::ToolCall)
                    )
                });
                if crosses {
                    return Some(name);
                }
            }
        }
        None
    }
}

#[derive(Debug, Default)]
struct RunTotals {
    runs: i64,
    completed: i64,
    failed: i64,
    silent: i64,
    durations: Vec<i64>,
    sessions: BTreeSet<String>,
    users: BTreeSet<String>,
    cost: i64,
    priced: i64,
    unpriced: i64,
    tokens: [i64; 5],
    tool_calls: i64,
    repeated: i64,
    thumbs_up: i64,
    thumbs: i64,
}

#[derive(Debug, Default)]
struct CallTotals {
    calls: i64,
    errors: i64,
    durations: Vec<i64>,
}

type Key = (Vec<String>, Option<i64>);

#[derive(Default)]
struct Expected {
    runs: BTreeMap<Key, RunTotals>,
    model_calls: BTreeMap<Key, CallTotals>,
    tool_calls: BTreeMap<Key, CallTotals>,
}

fn expected(query: &Query, data: &[Run]) -> Expected {
    let mut out = Expected::default();
    let asks = |subject| query.metrics.iter().any(|m| m.subject() == subject);
    if asks(Subject::Run) {
        for run in data {
            if run.start < query.from || run.start >= query.to || !query.run_passes(run) {
                continue;
            }
            let models: Vec<&Call> = run
                .model_calls
                .iter()
                .filter(|c| query.call_passes(c, Subject::ModelCall))
                .collect();
            let tools: Vec<&Call> = run
                .tool_calls
                .iter()
                .filter(|c| query.call_passes(c, Subject::ToolCall))
                .collect();
            let filtered_on = |s| query.filters.keys().any(|f| f.subject() == s);
            if (filtered_on(Subject::ModelCall) && models.is_empty())
                || (filtered_on(Subject::ToolCall) && tools.is_empty())
            {
                continue;
            }
            // The calls whose keys make the run's groups: one group per distinct key of the
            // grouped call kind, or one group `""` for a run without such calls.
            let grouped_kind = query
                .group_by
                .iter()
                .map(|f| f.subject())
                .find(|s| *s != Subject::Run);
            let representatives: Vec<Option<&Call>> = match grouped_kind {
                None => vec![None],
                Some(kind) => {
                    let calls = if kind == Subject::ModelCall {
                        &models
                    } else {
                        &tools
                    };
                    let mut seen = BTreeSet::new();
                    let mut reps: Vec<Option<&Call>> = calls
                        .iter()
                        .filter(|c| seen.insert(query.key(run, "", Some(c))))
                        .map(|c| Some(*c))
                        .collect();
                    if reps.is_empty() {
                        reps.push(None);
                    }
                    reps
                }
            };
            for tag in query.tags(run) {
                for rep in &representatives {
                    let key = query.key(run, &tag, *rep);
                    let same_key = |c: &&&Call| query.key(run, &tag, Some(c)) == key;
                    let t = out
                        .runs
                        .entry((key.clone(), query.bucket(run.start)))
                        .or_default();
                    t.runs += 1;
                    let success = run.outcome == "success";
                    t.completed += i64::from(success);
                    t.failed += i64::from(matches!(run.outcome, "failure" | "timeout"));
                    let any_failed = run
                        .model_calls
                        .iter()
                        .chain(&run.tool_calls)
                        .any(|c| c.error);
                    t.silent += i64::from(success && any_failed);
                    t.durations.push(run.end - run.start);
                    for (field, set) in [
                        (Field::SessionId, &mut t.sessions),
                        (Field::UserHash, &mut t.users),
                    ] {
                        if !run.fields[&field].is_empty() {
                            set.insert(run.fields[&field].clone());
                        }
                    }
                    let grouped_models = grouped_kind == Some(Subject::ModelCall);
                    for call in models.iter().filter(|c| !grouped_models || same_key(c)) {
                        match expected_cost(call) {
                            Some(cost) => {
                                t.cost += cost;
                                t.priced += 1;
                            }
                            None => t.unpriced += 1,
                        }
                        let [input, output, cached, _write, reasoning] = call.tokens;
                        for (i, n) in [input, output, cached, reasoning].into_iter().enumerate() {
                            t.tokens[i] += n as i64;
                        }
                    }
                    let grouped_tools = grouped_kind == Some(Subject::ToolCall);
                    for call in tools.iter().filter(|c| !grouped_tools || same_key(c)) {
                        t.tool_calls += 1;
                        t.repeated += i64::from(call.repeat);
                    }
                    t.thumbs += run.thumbs.len() as i64;
                    t.thumbs_up += run.thumbs.iter().filter(|b| **b).count() as i64;
                }
            }
        }
    }
    for (subject, totals) in [
        (Subject::ModelCall, &mut out.model_calls),
        (Subject::ToolCall, &mut out.tool_calls),
    ] {
        if !asks(subject) {
            continue;
        }
        // A call's run is looked up among the runs that started from 24 hours before the range
        // to an hour after it.
        let (hour, day) = (NANOS_PER_DAY / 24, NANOS_PER_DAY);
        for run in data {
            let run_visible = run.start >= query.from - day && run.start < query.to + hour;
            if query.uses(Subject::Run) && !(run_visible && query.run_passes(run)) {
                continue;
            }
            let calls = if subject == Subject::ModelCall {
                &run.model_calls
            } else {
                &run.tool_calls
            };
            for call in calls {
                if call.start < query.from
                    || call.start >= query.to
                    || !query.call_passes(call, subject)
                {
                    continue;
                }
                for tag in query.tags(run) {
                    let t = totals
                        .entry((query.key(run, &tag, Some(call)), query.bucket(call.start)))
                        .or_default();
                    t.calls += 1;
                    t.errors += i64::from(call.error);
                    t.durations.push(call.end - call.start);
                }
            }
        }
    }
    out
}

/// Element at index min(⌊p·n/100⌋, n−1) of the sorted values (docs/design.md#percentiles).
fn percentile(values: &[i64], p: usize) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    (n > 0).then(|| sorted[(p * n / 100).min(n - 1)])
}

fn metric_value(
    metric: Metric,
    r: Option<&RunTotals>,
    m: Option<&CallTotals>,
    t: Option<&CallTotals>,
) -> Value {
    use Metric::*;
    let empty_run = RunTotals::default();
    let empty_call = CallTotals::default();
    let r = r.unwrap_or(&empty_run);
    let ratio = |a: i64, b: i64| {
        if b == 0 {
            Value::Null
        } else {
            json!(a as f64 / b as f64)
        }
    };
    let ms =
        |values: &[i64], p| percentile(values, p).map_or(Value::Null, |v| json!(v as f64 / 1e6));
    let (m, t) = (m.unwrap_or(&empty_call), t.unwrap_or(&empty_call));
    let all_unpriced = r.priced == 0 && r.unpriced > 0;
    match metric {
        Runs => json!(r.runs),
        CompletedRuns => json!(r.completed),
        FailedRuns => json!(r.failed),
        CompletionRate => ratio(r.completed, r.runs),
        SilentPartialFailures => json!(r.silent),
        SilentPartialFailureRate => ratio(r.silent, r.completed),
        RunLatencyP50Ms => ms(&r.durations, 50),
        RunLatencyP90Ms => ms(&r.durations, 90),
        RunLatencyP99Ms => ms(&r.durations, 99),
        CostUsd if all_unpriced || r.runs == 0 => Value::Null,
        CostUsd => json!(r.cost as f64 / 1e9),
        CostPerRunUsd if all_unpriced || r.runs == 0 => Value::Null,
        CostPerRunUsd => json!(r.cost as f64 / 1e9 / r.runs as f64),
        UnpricedModelCalls => json!(r.unpriced),
        InputTokens => json!(r.tokens[0]),
        OutputTokens => json!(r.tokens[1]),
        CachedInputTokens => json!(r.tokens[2]),
        ReasoningTokens => json!(r.tokens[3]),
        ToolCallsPerRun => ratio(r.tool_calls, r.runs),
        RepeatedToolCalls => json!(r.repeated),
        FeedbackPositiveRate => ratio(r.thumbs_up, r.thumbs),
        Sessions => json!(r.sessions.len()),
        Users => json!(r.users.len()),
        ModelCalls => json!(m.calls),
        ModelErrorRate => ratio(m.errors, m.calls),
        ModelLatencyP50Ms => ms(&m.durations, 50),
        ModelLatencyP90Ms => ms(&m.durations, 90),
        ModelLatencyP99Ms => ms(&m.durations, 99),
        ToolCalls => json!(t.calls),
        ToolErrors => json!(t.errors),
        ToolErrorRate => ratio(t.errors, t.calls),
        ToolLatencyP50Ms => ms(&t.durations, 50),
        ToolLatencyP90Ms => ms(&t.durations, 90),
        ToolLatencyP99Ms => ms(&t.durations, 99),
    }
}

/// The expected rows, keyed like the answer's: group values and bucket.
fn expected_rows(query: &Query, data: &[Run]) -> BTreeMap<Key, BTreeMap<String, Value>> {
    let e = expected(query, data);
    let keys: BTreeSet<&Key> = e
        .runs
        .keys()
        .chain(e.model_calls.keys())
        .chain(e.tool_calls.keys())
        .collect();
    let mut metrics = query.metrics.clone();
    let asks_cost = metrics.contains(&Metric::CostUsd) || metrics.contains(&Metric::CostPerRunUsd);
    if asks_cost && !metrics.contains(&Metric::UnpricedModelCalls) {
        metrics.push(Metric::UnpricedModelCalls);
    }
    keys.into_iter()
        .map(|key| {
            let values = metrics
                .iter()
                .map(|m| {
                    let value = metric_value(
                        *m,
                        e.runs.get(key),
                        e.model_calls.get(key),
                        e.tool_calls.get(key),
                    );
                    (m.name().to_string(), value)
                })
                .collect();
            (key.clone(), values)
        })
        .collect()
}

fn answered_rows(query: &Query, answer: &Value) -> BTreeMap<Key, BTreeMap<String, Value>> {
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let mut row = row.as_object().unwrap().clone();
            let group = query
                .group_by
                .iter()
                .map(|f| row.remove(f.name()).unwrap().as_str().unwrap().to_string())
                .collect();
            let bucket = row
                .remove("bucket")
                .map(|b| parse_rfc3339(b.as_str().unwrap()).unwrap());
            ((group, bucket), row.into_iter().collect())
        })
        .collect()
}

/// What a query was answered with.
enum Checked {
    Refused,
    Empty,
    Rows,
}

async fn check(vigil: &Vigil, query: &Query, data: &[Run], store: Store) -> Checked {
    let (status, answer) = vigil.post("/api/v1/metrics/query", &query.body()).await;
    if let Some(field) = query.refusal() {
        assert_eq!(
            status,
            400,
            "{store:?} must refuse {}: {answer}",
            query.body()
        );
        assert_eq!(answer["error"]["field"], field, "{answer}");
        return Checked::Refused;
    }
    assert_eq!(
        status,
        200,
        "{store:?} {}: {answer}; the log ends:\n{}",
        query.body(),
        support::tail(&vigil.log(), 40)
    );
    let got = answered_rows(query, &answer);
    let want = expected_rows(query, data);
    if got != want {
        let mut differences = Vec::new();
        for key in got.keys().chain(want.keys()).collect::<BTreeSet<_>>() {
            let (g, w) = (got.get(key), want.get(key));
            if g == w {
                continue;
            }
            let detail = match (g, w) {
                (Some(g), Some(w)) => g
                    .iter()
                    .filter(|(name, value)| w.get(*name) != Some(*value))
                    .map(|(name, value)| format!("{name}: answered {value}, expected {}", w[name]))
                    .collect::<Vec<_>>()
                    .join("; "),
                (Some(_), None) => "answered, not expected".into(),
                _ => "expected, not answered".into(),
            };
            differences.push(format!("{key:?}: {detail}"));
        }
        panic!(
            "{store:?}: the answer to {} differs from the records in {} of {} rows:\n{}",
            query.body(),
            differences.len(),
            want.len(),
            differences
                .iter()
                .take(8)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    if got.is_empty() {
        Checked::Empty
    } else {
        Checked::Rows
    }
}

fn random_query(rng: &mut StdRng) -> Query {
    let window_start = ns(WINDOW_START);
    let from = window_start - 2 * HOUR + rng.random_range(0..(WINDOW_HOURS + 2) * HOUR);
    let to = from + rng.random_range(HOUR / 4..(WINDOW_HOURS + 4) * HOUR);
    let metrics = pick(rng, Metric::ALL, 1..=6);
    let group_by = pick(rng, Field::ALL, 0..=2);
    let mut filters = BTreeMap::new();
    for field in pick(rng, Field::ALL, 0..=2) {
        let mut values: Vec<String> = pick(rng, pool(field), 1..=2)
            .into_iter()
            .map(|v| v.to_string())
            .collect();
        if rng.random_bool(0.1) {
            values.push("no-such-value".into());
        }
        values.sort();
        values.dedup();
        filters.insert(field, values);
    }
    let step = [
        None,
        None,
        Some(("1h", HOUR)),
        Some(("6h", 6 * HOUR)),
        Some(("90m", 90 * 60 * 1_000_000_000)),
        Some(("1d", 24 * HOUR)),
    ]
    .choose(rng)
    .copied()
    .unwrap();
    Query {
        from,
        to,
        metrics,
        group_by,
        filters,
        step,
    }
}

/// A random number (in `count`) of distinct items.
fn pick<T: Copy>(rng: &mut StdRng, items: &[T], count: std::ops::RangeInclusive<usize>) -> Vec<T> {
    let n = rng.random_range(count);
    items.choose_multiple(rng, n).copied().collect()
}

/// The dashboard's questions, always asked.
fn fixed_queries() -> Vec<Query> {
    let from = ns(WINDOW_START);
    let to = from + WINDOW_HOURS * HOUR;
    let q = |metrics: &[Metric], group_by: &[Field], step| Query {
        from,
        to,
        metrics: metrics.to_vec(),
        group_by: group_by.to_vec(),
        filters: BTreeMap::new(),
        step,
    };
    let all: Vec<Metric> = Metric::ALL.to_vec();
    let run_metrics: Vec<Metric> = all
        .iter()
        .copied()
        .filter(|m| m.subject() == Subject::Run)
        .collect();
    vec![
        q(&all, &[], None),
        q(&all, &[Field::Agent], Some(("1h", HOUR))),
        q(
            &[
                Metric::RunLatencyP50Ms,
                Metric::RunLatencyP90Ms,
                Metric::RunLatencyP99Ms,
            ],
            &[Field::Agent],
            Some(("1h", HOUR)),
        ),
        q(&run_metrics, &[Field::Model], None),
        q(&run_metrics, &[Field::Tool], None),
        q(
            &[Metric::CostUsd, Metric::InputTokens, Metric::ModelCalls],
            &[Field::Model, Field::PromptVersion],
            None,
        ),
        q(
            &[
                Metric::ToolErrorRate,
                Metric::ToolCalls,
                Metric::RepeatedToolCalls,
            ],
            &[Field::Tool],
            None,
        ),
        q(&[Metric::CompletionRate], &[Field::PromptVersion], None),
        // Sums of one kind of call alone: each call beside its run, runs without one in "".
        q(&[Metric::CostUsd], &[Field::Model], None),
        q(
            &[Metric::RepeatedToolCalls],
            &[Field::Agent, Field::ToolVersion],
            Some(("6h", 6 * HOUR)),
        ),
        q(
            &all,
            &[Field::Classification, Field::Outcome],
            Some(("1d", 24 * HOUR)),
        ),
    ]
}

const RANDOM_QUERIES: usize = 120;

async fn golden_metrics(store: Store) {
    let seed: u64 = std::env::var("VIGIL_GOLDEN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261124);
    eprintln!("golden metrics: seed {seed} (set VIGIL_GOLDEN_SEED to replay)");
    let data = generate(seed, 700);

    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), pricing_config()).unwrap();
    let config_path = config.path().to_str().unwrap().to_string();
    let mut vigil = Vigil::start_on_with(store, &[("VIGIL_CONFIG", &config_path)]);
    send(&vigil, &data).await;
    // Whatever was not yet written is replayed from the WAL after a crash: counted once.
    vigil.kill9();
    vigil.restart();
    send(&vigil, &data[..50]).await;
    wait_drained(&vigil).await;

    check_all(&vigil, &data, store, seed).await;

    // Consolidated: every finished day in one file per table, read without de-duplication.
    support::consolidate(&mut vigil).await;
    check_all(&vigil, &data, store, seed).await;

    // Newer versions of consolidated runs (another agent, another outcome) win over the
    // consolidated ones, and are counted once.
    let mut data = data;
    for run in data.iter_mut().step_by(17) {
        let agent = if run.fields[&Field::Agent] == "researcher" {
            "support-bot"
        } else {
            "researcher"
        };
        run.fields.insert(Field::Agent, agent.to_string());
        run.outcome = if run.outcome == "failure" {
            "success"
        } else {
            "failure"
        };
        run.fields.insert(Field::Outcome, run.outcome.to_string());
    }
    let late: Vec<Run> = data.iter().step_by(17).cloned().collect();
    send(&vigil, &late).await;
    wait_drained(&vigil).await;
    if store == Store::ClickHouse {
        // A late row of a sealed ClickHouse day is read from the second after its insert on.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    check_all(&vigil, &data, store, seed).await;
}

/// The fixed queries and [`RANDOM_QUERIES`] random ones, each checked against the reference.
async fn check_all(vigil: &Vigil, data: &[Run], store: Store, seed: u64) {
    for query in fixed_queries() {
        check(vigil, &query, data, store).await;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut refused, mut empty, mut rows) = (0, 0, 0);
    for _ in 0..RANDOM_QUERIES {
        match check(vigil, &random_query(&mut rng), data, store).await {
            Checked::Refused => refused += 1,
            Checked::Empty => empty += 1,
            Checked::Rows => rows += 1,
        }
    }
    eprintln!("random queries: {rows} answered with rows, {empty} empty, {refused} refused");
    // The generator must mostly ask questions that have answers, or the test proves little.
    assert!(
        rows >= RANDOM_QUERIES * 6 / 10 && refused >= 5,
        "{rows} {empty} {refused}"
    );
}

on_both_stores!(golden_metrics);

/// The reference itself is checked on a case small enough to do by hand.
#[test]
fn the_reference_percentile_is_the_definition() {
    assert_eq!(percentile(&[5, 1, 3, 2, 4], 50), Some(3));
    assert_eq!(percentile(&[5, 1, 3, 2, 4], 99), Some(5));
    assert_eq!(percentile(&[7], 90), Some(7));
    assert_eq!(percentile(&(1..=100).collect::<Vec<_>>(), 99), Some(100));
    assert_eq!(percentile(&(1..=100).collect::<Vec<_>>(), 90), Some(91));
    assert_eq!(percentile(&[], 50), None);
}

#[test]
fn the_reference_cost_follows_the_price_change() {
    let mut call = generate(1, 1).remove(0);
    let mut c = call
        .model_calls
        .pop()
        .unwrap_or_else(|| call.tool_calls.pop().unwrap());
    c.model = "golden-alpha".into();
    c.sdk_cost_usd = None;
    c.tokens = [1_000_000, 1_000_000, 0, 0, 0];
    c.start = ns(PRICE_CHANGE) - 1;
    assert_eq!(expected_cost(&c), Some(12_500_000_000));
    c.start = ns(PRICE_CHANGE);
    assert_eq!(expected_cost(&c), Some(18_000_000_000));
    c.model = "golden-unpriced".into();
    assert_eq!(expected_cost(&c), None);
    c.sdk_cost_usd = Some(0.25);
    assert_eq!(expected_cost(&c), Some(250_000_000));
}

/// A smoke run of `vigil bench metrics` on both stores, with DuckDB and clickhouse-client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_benchmark_runs() {
    let port = support::clickhouse::ClickHouse::shared()
        .tcp_port
        .to_string();
    let python = support::python();
    let report = support::bench_smoke(
        "metrics",
        &["--clickhouse-port", &port, "--python", &python],
    );
    let queries = report["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 4, "{report}");
    for query in queries {
        assert!(query["rows"].as_u64().unwrap() > 0, "{report}");
        for timing in [
            "embedded_api_ms",
            "duckdb_ms",
            "duckdb_plain_ms",
            "clickhouse_api_ms",
            "clickhouse_plain_ms",
        ] {
            assert!(query[timing].as_f64().unwrap() > 0.0, "{timing}: {report}");
        }
    }
}
