//! The last step of the metric engine and the only one that differs per store: a
//! [`MetricPlan`] becomes SQL, for ClickHouse or for DataFusion.
//!
//! Each subject the plan asks about is one statement, of a fixed shape ([`super::rows`]):
//! the group keys `g0`…`g3`, `bucket`, then integer aggregates (counts, sums, exact
//! percentiles in ns). Ratios and units are computed afterwards, once, for both stores
//! ([`super::answer`]), so both answer to the last digit.
//!
//! Run statement, inside out:
//!
//! 1. `runs_v`: the newest version of each run in the range's days, then the range and the
//!    run-field filters.
//! 2. Per-run facts, each only when a metric or a grouping needs it, each over the newest
//!    versions of the spans (or scores) of the runs in `runs_v`: model calls (cost, tokens; per
//!    model-call group key when grouped by one, and only the calls passing the model-call
//!    filters), tool calls (count, repeated calls; per tool when grouped by tool), failed calls
//!    (silent partial failures), boolean scores (feedback).
//! 3. `runs_v` joined with the facts on `trace_id`: an inner join when the facts carry a filter
//!    (the run must have made such a call), a left join otherwise, so that a run without calls
//!    still counts (in the group `""`).
//! 4. Grouping (`classification` unnests the run's tags) and the aggregates.
//!
//! The run aggregates are split into parts, one statement each ([`Compiler::run_statements`]),
//! whose rows the answer adds up: the sums over each kind of call (cost and tokens; tool
//! calls) wherever no field of the other kind is grouped or filtered on, and the rest. A part
//! that sums one kind of call makes steps 2 and 3 one: each call of that kind, with its own
//! figures, beside its run (a run without such a call once, with none), and step 4 sums them
//! per group ([`Compiler::summed_calls`]). A run's calls are read from the day an hour before
//! the range to the day after it. A per-run plan (a cohort's facts) is one statement that answers
//! each run's own row without grouping the runs again ([`Compiler::row_per_run`]), and reads both
//! kinds of calls in one pass where no call is filtered on ([`Compiler::calls_in_one_pass`]).
//!
//! Call statement: the newest version of each call of the kind that started in the range,
//! the call-field filters, joined with its run's newest version (from the day before the range)
//! when a run field is grouped or filtered on, then grouped.
//!
//! The newest version of each row is picked per key in each store's fastest way: sorted versions
//! and `LIMIT 1 BY` in ClickHouse, an ordered `first_value` aggregate in DataFusion.
//!
//! ClickHouse 18.16 shapes the SQL: one join per `SELECT` (joins nest), no window functions
//! (repeated tool calls compare neighbours in a sorted array), no common table expressions.
//! DataFusion gets the same shapes, with `lag()` for repeated tool calls.

use std::collections::BTreeMap;

use vigil_schemas::{
    layout::Table,
    time::{NANOS_PER_DAY, NANOS_PER_HOUR, day_of},
};

use super::{
    aggregate::{Aggregate, CallAggregate, Percentile, RunAggregate, columns},
    catalog::{Field, Metric, Subject},
    percentile::EXACT_PERCENTILES,
    request::{MetricPlan, ShadowRuns},
};
use crate::{
    newest::{NO_SEALS, Seals, Source, Times, newest_versions},
    sql::{Placeholders, Quoting, Sql},
};

/// Which SQL to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    ClickHouse,
    DataFusion,
}

/// One statement per subject asked about.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub subject: Subject,
    pub sql: Sql,
}

/// Which keys a newest-version subquery reads. Picking the newest version is the costly step of
/// every statement, so the keys are narrowed first, always to a superset of those that count.
/// On the embedded store only what may hold several versions is de-duplicated, and only the
/// counted runs narrow its reads.
#[derive(Debug, Clone, Copy)]
enum Restrict {
    /// The keys of the counted runs' traces (their calls and scores), where rows are
    /// de-duplicated, the range covers little of its days, or the read has no time range of its
    /// own (scores). The rest (ClickHouse's sealed calls over a wide range, read from an hour
    /// before the range to a day after it) are left for the statement's join with the counted
    /// runs to narrow: there the `IN` look-up costs more than the calls it leaves out (cost by
    /// model over 1,000,000 sealed runs: 0.5 s of 1.4 s; runs by model with repeated tool calls
    /// and feedback, 24 hours, BENCHMARKS.md: see the seventh step).
    CountedRuns,
    /// The traces with a row of this table (passing the condition) that started in the range.
    /// A key whose newest version started in the range is among them, so the answer is exact;
    /// the newest version is then picked among the range's traces rather than among every
    /// trace of its days (on 10,000,000 spans in one day, embedded store: a 5-minute window's
    /// tool error rate takes 1.1 s, against 6.0 s for the whole day, BENCHMARKS.md). Only for
    /// ranges covering less than half of their days: narrowing a 24-hour range made it 17 s.
    StartedInRange(Table, Option<&'static str>),
}

/// The statements that answer `plan` for one project, with bound parameters; ClickHouse reads
/// the sealed days in `seals` as sealed.
pub(crate) fn compile(
    plan: &MetricPlan,
    project_id: &str,
    dialect: Dialect,
    seals: &Seals,
) -> Vec<Statement> {
    let placeholders = match dialect {
        Dialect::ClickHouse => Placeholders::Question,
        Dialect::DataFusion => Placeholders::Numbered,
    };
    Compiler {
        plan,
        project_id,
        dialect,
        placeholders,
        seals,
        part: None,
    }
    .statements()
}

/// The statements a store runs for `plan`, with the values written in as literals: for people
/// (what does Vigil ask the store?) and for benchmarks that run the same SQL in another client.
pub fn metric_sql(plan: &MetricPlan, project_id: &str, dialect: Dialect) -> Vec<String> {
    let quoting = match dialect {
        Dialect::ClickHouse => Quoting::Backslash,
        Dialect::DataFusion => Quoting::Standard,
    };
    Compiler {
        plan,
        project_id,
        dialect,
        placeholders: Placeholders::Inline(quoting),
        seals: &NO_SEALS,
        part: None,
    }
    .statements()
    .into_iter()
    .map(|statement| statement.sql.text)
    .collect()
}

/// How long before its run's start a call may start and still be counted (clock skew between
/// the processes that report a run and its calls).
const CALLS_BEFORE_THEIR_RUN_NS: i64 = NANOS_PER_HOUR;

/// How long after its run's start a call may start and still be counted.
const CALLS_AFTER_THEIR_RUN_NS: i64 = NANOS_PER_DAY;

/// The range asked for: the start times of the runs and calls counted.
fn range(plan: &MetricPlan) -> Times {
    Times {
        from_ns: plan.from_ns,
        to_ns: plan.to_ns,
    }
}

/// The start times of the runs of calls that started in the range: from 24 hours before it
/// (a run goes on after it started) to an hour after it (clocks disagree).
fn runs_of_calls(plan: &MetricPlan) -> Times {
    Times {
        from_ns: plan.from_ns - CALLS_AFTER_THEIR_RUN_NS,
        to_ns: plan.to_ns + CALLS_BEFORE_THEIR_RUN_NS,
    }
}

/// The start times of the counted runs' calls: from an hour before the range to 24 hours after
/// it. Bounded, so that a statement reads the hours around its range (the sealed rows are laid
/// out by hour in both stores), and ClickHouse reads them under those days' seals alone: over
/// every day, a day without a seal in the query's view (today, or any day outside the range)
/// made every row of it fresh, to be de-duplicated, however far from the range (13 s for an
/// hour's window, BENCHMARKS.md).
fn calls_of_runs(plan: &MetricPlan) -> Times {
    Times {
        from_ns: plan.from_ns - CALLS_BEFORE_THEIR_RUN_NS,
        to_ns: plan.to_ns + CALLS_AFTER_THEIR_RUN_NS,
    }
}

/// Every day the statements for `plan` read rows from: the days whose seals ClickHouse looks up
/// before running them.
pub(crate) fn days_read(plan: &MetricPlan) -> (i64, i64) {
    let (runs, calls) = (runs_of_calls(plan).days(), calls_of_runs(plan).days());
    (runs.0.min(calls.0), runs.1.max(calls.1))
}

/// Output names of the group keys, by position in `group_by`.
const GROUP_ALIASES: [&str; 4] = ["g0", "g1", "g2", "g3"];
/// Names of a fact's group-key columns, by the same position.
const FACT_KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
/// `tupleElement` positions of the tool-call fields after (start, span, tool, arguments).
const EXTRA_TUPLE_ELEMENTS: [&str; 4] = ["5", "6", "7", "8"];
/// A run's classification tags, one row per tag, when grouped by them.
const CLASS_KEY: &str = "class_key";
/// A run row carries the shadow mark ([`vigil_schemas::SHADOW_TAG`]).
const SHADOW_MARK_CLICKHOUSE: &str = "has(tags, 'vigil.shadow')";
const SHADOW_MARK_DATAFUSION: &str = "array_has(tags, 'vigil.shadow')";

/// `AND <field> IN (…)` for each filter on a field of `subject` (a classification filter: the
/// run has any of the tags).
pub(crate) fn filter_conditions(
    sql: &mut Sql,
    dialect: Dialect,
    filters: &BTreeMap<Field, Vec<String>>,
    subject: Subject,
) {
    for (field, values) in filters {
        if field.subject() != subject {
            continue;
        }
        sql.push(" AND ");
        if *field == Field::Classification {
            sql.push(match dialect {
                Dialect::ClickHouse => "hasAny(classification, [",
                Dialect::DataFusion => "array_has_any(classification, make_array(",
            });
            sql.texts(values);
            sql.push(match dialect {
                Dialect::ClickHouse => "])",
                Dialect::DataFusion => "))",
            });
        } else {
            sql.push(column(*field));
            sql.push(" IN (");
            sql.texts(values);
            sql.push(")");
        }
    }
}

/// ` AND <the rows of days first..=last>`: by the table's time column in ClickHouse (whose
/// partitions are those days), by the `day` partition column in DataFusion.
/// `inner` as a 64-bit integer, whatever type the dialect's aggregate gives.
pub(crate) fn integer(sql: &mut Sql, dialect: Dialect, inner: impl FnOnce(&mut Sql)) {
    sql.push(match dialect {
        Dialect::ClickHouse => "toInt64(",
        Dialect::DataFusion => "CAST(",
    });
    inner(sql);
    sql.push(match dialect {
        Dialect::ClickHouse => ")",
        Dialect::DataFusion => " AS BIGINT)",
    });
}

/// `sum(expr)`, as a 64-bit integer.
pub(crate) fn sum(sql: &mut Sql, dialect: Dialect, expr: &'static str) {
    integer(sql, dialect, |sql| {
        sql.push("sum(");
        sql.push(expr);
        sql.push(")");
    });
}

/// How many rows meet `condition`, as a 64-bit integer.
pub(crate) fn count_if(sql: &mut Sql, dialect: Dialect, condition: &'static str) {
    integer(sql, dialect, |sql| match dialect {
        Dialect::ClickHouse => {
            sql.push("countIf(");
            sql.push(condition);
            sql.push(")");
        }
        Dialect::DataFusion => {
            sql.push("sum(CASE WHEN ");
            sql.push(condition);
            sql.push(" THEN 1 ELSE 0 END)");
        }
    });
}

/// How many distinct non-empty values `column` holds.
pub(crate) fn distinct_nonempty(sql: &mut Sql, dialect: Dialect, column: &'static str) {
    match dialect {
        Dialect::ClickHouse => {
            sql.push("uniqExactIf(");
            sql.push(column);
            sql.push(", ");
            sql.push(column);
            sql.push(" != '')");
        }
        Dialect::DataFusion => {
            sql.push("count(DISTINCT CASE WHEN ");
            sql.push(column);
            sql.push(" <> '' THEN ");
            sql.push(column);
            sql.push(" END)");
        }
    }
}

/// The column a field is stored in.
pub(crate) fn column(field: Field) -> &'static str {
    match field {
        Field::Agent => "agent_name",
        Field::AgentVersion => "agent_version",
        Field::TaskType => "task_type",
        Field::Environment => "environment",
        Field::Release => "release",
        Field::Outcome => "outcome",
        Field::SessionId => "session_id",
        Field::UserHash => "user_hash",
        Field::Model => "model",
        Field::ModelVersion => "model_version",
        Field::Provider => "provider",
        Field::PromptId => "prompt_id",
        Field::PromptVersion => "prompt_version",
        Field::Tool => "tool_name",
        Field::ToolVersion => "tool_version",
        Field::Classification => "classification",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallKind {
    Model,
    Tool,
}

impl CallKind {
    fn subject(self) -> Subject {
        match self {
            CallKind::Model => Subject::ModelCall,
            CallKind::Tool => Subject::ToolCall,
        }
    }

    fn other(self) -> CallKind {
        match self {
            CallKind::Model => CallKind::Tool,
            CallKind::Tool => CallKind::Model,
        }
    }

    fn condition(self) -> &'static str {
        match self {
            CallKind::Model => "kind = 'model'",
            CallKind::Tool => "kind = 'tool'",
        }
    }
}

/// Model and tool calls, the calls whose failures make a silent partial failure.
const BOTH_KINDS: &str = "kind IN ('model', 'tool')";

/// What one call adds to a figure the run statement sums.
#[derive(Debug, Clone, Copy)]
enum PerCall {
    /// This value of the call.
    Value(&'static str),
    /// 1 when the call meets this condition.
    Counted(&'static str),
}

/// A figure of calls that the run statement sums.
#[derive(Debug, Clone, Copy)]
struct CallFigure {
    /// The aggregate it answers.
    aggregate: RunAggregate,
    /// The facts column it is carried in.
    column: &'static str,
    /// What one call adds.
    per_call: PerCall,
    /// The stored column that reads, if any.
    reads: Option<&'static str>,
}

const fn figure(
    aggregate: RunAggregate,
    column: &'static str,
    per_call: PerCall,
    reads: Option<&'static str>,
) -> CallFigure {
    CallFigure {
        aggregate,
        column,
        per_call,
        reads,
    }
}

/// The figures of model calls.
const MODEL_FIGURES: [CallFigure; 7] = {
    use PerCall::{Counted, Value};
    use RunAggregate::*;
    let cost = Some("cost_nanos");
    [
        figure(CostNanos, "m_cost", Value("coalesce(cost_nanos, 0)"), cost),
        figure(
            PricedCalls,
            "m_priced",
            Counted("cost_nanos IS NOT NULL"),
            cost,
        ),
        figure(
            UnpricedCalls,
            "m_unpriced",
            Counted("cost_nanos IS NULL"),
            cost,
        ),
        figure(
            InputTokens,
            "m_input",
            Value("input_tokens"),
            Some("input_tokens"),
        ),
        figure(
            OutputTokens,
            "m_output",
            Value("output_tokens"),
            Some("output_tokens"),
        ),
        figure(
            CachedInputTokens,
            "m_cached",
            Value("cached_input_tokens"),
            Some("cached_input_tokens"),
        ),
        figure(
            ReasoningTokens,
            "m_reasoning",
            Value("reasoning_tokens"),
            Some("reasoning_tokens"),
        ),
    ]
};

/// The figures of tool calls (`t_repeat` from [`Compiler::tool_calls_with_repeats`]).
const TOOL_FIGURES: [CallFigure; 2] = [
    figure(
        RunAggregate::ToolCalls,
        "t_calls",
        PerCall::Value("1"),
        None,
    ),
    figure(
        RunAggregate::RepeatedToolCalls,
        "t_repeated",
        PerCall::Value("t_repeat"),
        None,
    ),
];

impl CallKind {
    fn figures(self) -> &'static [CallFigure] {
        match self {
            CallKind::Model => &MODEL_FIGURES,
            CallKind::Tool => &TOOL_FIGURES,
        }
    }

    /// The kind of call, and the figure of it, that `aggregate` sums; `None` for an aggregate
    /// of runs.
    fn summed_by(aggregate: RunAggregate) -> Option<(CallKind, &'static CallFigure)> {
        [CallKind::Model, CallKind::Tool]
            .into_iter()
            .find_map(|kind| {
                kind.figures()
                    .iter()
                    .find(|figure| figure.aggregate == aggregate)
                    .map(|figure| (kind, figure))
            })
    }
}

/// Writes one facts subquery.
type Facts<'p> = fn(&Compiler<'p>, &mut Sql);
/// A facts subquery to join, and whether the join is inner (the facts carry a filter).
type Join<'p> = (bool, Facts<'p>);

/// What a facts subquery answers for the run statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// A row per run (and group key): its calls summed.
    PerRun,
    /// A row per call: its own figures, summed by the statement per group.
    PerCall,
}

/// A part of the run aggregates that one run statement answers, when they are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunPart {
    /// Aggregates of the runs themselves (with their failed calls and scores).
    Runs,
    /// The figures of one kind of call, summed.
    Calls(CallKind),
}

impl RunPart {
    const ALL: [RunPart; 3] = [
        RunPart::Runs,
        RunPart::Calls(CallKind::Model),
        RunPart::Calls(CallKind::Tool),
    ];
}

struct Compiler<'a> {
    plan: &'a MetricPlan,
    project_id: &'a str,
    dialect: Dialect,
    placeholders: Placeholders,
    seals: &'a Seals,
    /// The part of the run aggregates this compiler's run statement answers; `None`: all.
    part: Option<RunPart>,
}

impl<'p> Compiler<'p> {
    fn sql(&self) -> Sql {
        Sql::new(self.placeholders, "")
    }

    fn statements(&self) -> Vec<Statement> {
        self.plan
            .subjects()
            .into_iter()
            .flat_map(|subject| {
                let statements = match subject {
                    Subject::Run => self.run_statements(),
                    Subject::ModelCall => vec![self.calls(CallKind::Model)],
                    Subject::ToolCall => vec![self.calls(CallKind::Tool)],
                };
                statements.into_iter().map(move |statement| Statement {
                    subject,
                    sql: self.gathered(subject, statement),
                })
            })
            .collect()
    }

    /// The run statements: one per part ([`RunPart`]) of the aggregates asked, each in its
    /// fastest shape, instead of every run joined with facts of each kind: the sums of one kind
    /// of call, each call beside its run ([`Compiler::summed_calls`]), wherever no field of the
    /// other kind is grouped or filtered on; everything else in the runs' own statement (the runs
    /// alone when no call field is used). Every part answers a row for each group that has runs
    /// (a run without such a call in `""`, or none with a filter on its kind, alike); the answer
    /// adds the parts' rows up ([`super::answer`]).
    fn run_statements(&self) -> Vec<Sql> {
        let parts: Vec<RunPart> = RunPart::ALL
            .into_iter()
            .filter(|part| {
                RunAggregate::ALL.iter().any(|&aggregate| {
                    self.part_of(aggregate) == *part && self.asks(aggregate.needed_by())
                })
            })
            .collect();
        // A per-run plan keeps every figure of a run in one row: one statement, whose joins
        // read the runs once (three parts read them three times over half a million groups).
        if parts.len() < 2 || self.plan.per_run {
            return vec![self.runs()];
        }
        parts
            .into_iter()
            .map(|part| {
                Compiler {
                    part: Some(part),
                    ..*self
                }
                .runs()
            })
            .collect()
    }

    /// The part of the run statements that answers `aggregate`: its kind of call's, unless a
    /// field of the other kind is grouped or filtered on (then the runs', which read both).
    fn part_of(&self, aggregate: RunAggregate) -> RunPart {
        match CallKind::summed_by(aggregate) {
            Some((kind, _)) if !self.groups_or_filters(kind.other().subject()) => {
                RunPart::Calls(kind)
            }
            _ => RunPart::Runs,
        }
    }

    /// Whether this compiler's run statement answers `aggregate`: it is asked for, and in the
    /// statement's part.
    fn asked(&self, aggregate: RunAggregate) -> bool {
        self.asks(aggregate.needed_by()) && self.part.is_none_or(|p| p == self.part_of(aggregate))
    }

    /// ClickHouse answers with the aggregates gathered in one array, so that one row type
    /// ([`super::rows::AggregateRecord`]) reads every statement.
    fn gathered(&self, subject: Subject, statement: Sql) -> Sql {
        if self.dialect == Dialect::DataFusion {
            return statement;
        }
        let mut sql = Sql::new(self.placeholders, "SELECT g0, g1, g2, g3, bucket, [");
        let names = match subject {
            Subject::Run => columns::<RunAggregate>(),
            _ => columns::<CallAggregate>(),
        };
        for (i, name) in names.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push(name);
        }
        sql.push("] AS aggregates FROM (");
        sql.append(statement);
        sql.push(")");
        sql
    }

    /// Whether an aggregate needed by `needed_by` (by every request when empty) is asked for.
    fn asks(&self, needed_by: &[Metric]) -> bool {
        needed_by.is_empty() || self.asks_any_of(needed_by)
    }

    fn groups_or_filters(&self, subject: Subject) -> bool {
        self.plan
            .group_by
            .iter()
            .chain(self.plan.filters.keys())
            .any(|f| f.subject() == subject)
    }

    fn filters_on(&self, subject: Subject) -> bool {
        self.plan.filters.keys().any(|f| f.subject() == subject)
    }

    /// Run columns the statements read: the key, every run field used, and with `aggregated`
    /// the start and what the run aggregates asked for read.
    fn run_columns(&self, aggregated: bool) -> Vec<&'static str> {
        let mut columns = vec!["trace_id"];
        if aggregated {
            columns.push("start_time_ns");
            for &aggregate in RunAggregate::ALL {
                if !self.asked(aggregate) {
                    continue;
                }
                use RunAggregate::*;
                let read = match aggregate {
                    Completed | Failed | Silent => "outcome",
                    LatencyP50 | LatencyP90 | LatencyP99 => "end_time_ns",
                    Sessions => "session_id",
                    Users => "user_hash",
                    _ => continue,
                };
                if !columns.contains(&read) {
                    columns.push(read);
                }
            }
        }
        for field in self.plan.group_by.iter().chain(self.plan.filters.keys()) {
            if field.subject() == Subject::Run && !columns.contains(&column(*field)) {
                columns.push(column(*field));
            }
        }
        columns
    }

    // ---- the run statement ----

    fn runs(&self) -> Sql {
        let mut sql = self.sql();
        sql.push("SELECT ");
        self.group_keys(&mut sql, Subject::Run);
        self.bucket(&mut sql);
        let row_per_run = self.row_per_run();
        for &aggregate in RunAggregate::ALL {
            sql.push(", ");
            if self.asked(aggregate) {
                self.run_aggregate(&mut sql, aggregate, row_per_run);
            } else {
                self.integer(&mut sql, "0");
            }
            sql.push(" AS ");
            sql.push(aggregate.column());
        }
        sql.push(" FROM ");
        match self.summed_calls() {
            Some(kind) => {
                self.with_tags(&mut sql, |this, sql| this.calls_with_their_runs(sql, kind));
            }
            None => {
                let needs_failures = self.asked(RunAggregate::Silent);
                let needs_scores = self.asked(RunAggregate::FeedbackPositive)
                    || self.asked(RunAggregate::FeedbackTotal);
                let needs_calls = self.needs_calls(CallKind::Model)
                    || self.needs_calls(CallKind::Tool)
                    || needs_failures;
                let joins: Vec<Join<'p>> = if self.calls_in_one_pass() {
                    [
                        (needs_calls, Self::call_facts as Facts<'p>),
                        (needs_scores, Self::score_facts),
                    ]
                    .into_iter()
                    .filter(|(needed, _)| *needed)
                    .map(|(_, facts)| (false, facts))
                    .collect()
                } else {
                    [
                        (
                            self.needs_calls(CallKind::Model),
                            (|this, sql| this.model_facts(sql, Rows::PerRun)) as Facts<'p>,
                            Subject::ModelCall,
                        ),
                        (
                            self.needs_calls(CallKind::Tool),
                            |this, sql| this.tool_facts(sql, Rows::PerRun),
                            Subject::ToolCall,
                        ),
                        (needs_failures, Self::failure_facts, Subject::Run),
                        (needs_scores, Self::score_facts, Subject::Run),
                    ]
                    .into_iter()
                    .filter(|(needed, _, _)| *needed)
                    .map(|(_, facts, subject)| {
                        (subject != Subject::Run && self.filters_on(subject), facts)
                    })
                    .collect()
                };
                self.with_tags(&mut sql, |this, sql| this.joined(sql, &joins));
            }
        }
        if !row_per_run {
            self.group_by(&mut sql);
        }
        sql
    }

    /// Whether the run statement answers each run's own row, ungrouped: per run
    /// (`MetricPlan::per_run`) over the runs joined with their facts, where each run is one row
    /// (the facts are grouped by run, and nothing unnests it). Grouping 500,000 runs again by
    /// their own ids took a third of a cohort's statement (1.1 s of 2.9 s, ClickHouse).
    fn row_per_run(&self) -> bool {
        self.plan.per_run && self.summed_calls().is_none()
    }

    /// Whether the run statement reads calls of `kind`: a figure of them is asked for, or a
    /// field of them is grouped or filtered on.
    fn needs_calls(&self, kind: CallKind) -> bool {
        kind.figures()
            .iter()
            .any(|figure| self.asked(figure.aggregate))
            || self.groups_or_filters(kind.subject())
    }

    fn asks_any_of(&self, metrics: &[Metric]) -> bool {
        metrics.iter().any(|m| self.plan.metrics.contains(m))
    }

    /// The kind of call whose figures are every run aggregate asked for (cost and tokens of
    /// model calls; tool calls), when nothing is grouped or filtered by the other kind. Such a
    /// statement sums the calls per group directly, each beside its run, instead of summing
    /// them per run first and joining those sums back to the runs: on 1,000,000 runs with
    /// 5,000,000 model calls, cost by model went from 5.1 s to under 1 s in ClickHouse
    /// (BENCHMARKS.md). Counting runs needs each run once per group, so that keeps the per-run
    /// shape.
    fn summed_calls(&self) -> Option<CallKind> {
        let mut kinds = RunAggregate::ALL
            .iter()
            .filter(|aggregate| self.asked(**aggregate))
            .map(|aggregate| CallKind::summed_by(*aggregate).map(|(kind, _)| kind));
        let kind = kinds.next()??;
        (kinds.all(|k| k == Some(kind)) && !self.groups_or_filters(kind.other().subject()))
            .then_some(kind)
    }

    /// Each call of `kind` of the counted runs that passes the call filters, beside its run's
    /// fields; and each counted run without such a call once, with no call, unless the calls
    /// are filtered on (then a run counts only with such a call, as in the per-run shape).
    fn calls_with_their_runs(&self, sql: &mut Sql, kind: CallKind) {
        let inner = self.filters_on(kind.subject());
        let calls = |sql: &mut Sql| match kind {
            CallKind::Model => self.model_facts(sql, Rows::PerCall),
            CallKind::Tool => self.tool_facts(sql, Rows::PerCall),
        };
        sql.push("(SELECT * FROM ");
        match self.dialect {
            // ClickHouse hashes the right side of a join: the runs, fewer than their calls.
            // Without table aliases: with them, 18.16 answers a right join's unmatched rows
            // with one column too many.
            Dialect::ClickHouse => {
                calls(sql);
                sql.push(if inner {
                    " ALL INNER JOIN "
                } else {
                    " ALL RIGHT JOIN "
                });
                self.runs_v(sql);
                sql.push(" USING trace_id)");
            }
            // DataFusion picks the hashed side itself.
            Dialect::DataFusion => {
                self.runs_v(sql);
                sql.push(if inner {
                    " AS l INNER JOIN "
                } else {
                    " AS l LEFT JOIN "
                });
                calls(sql);
                sql.push(" AS r USING (trace_id))");
            }
        }
    }

    /// `runs_v` joined with each facts subquery in turn (ClickHouse 18.16: one join per level).
    fn joined(&self, sql: &mut Sql, joins: &[Join<'p>]) {
        let Some(((inner, facts), rest)) = joins.split_last() else {
            self.runs_v(sql);
            return;
        };
        sql.push("(SELECT * FROM ");
        self.joined(sql, rest);
        sql.push(" AS l ");
        sql.push(match (self.dialect, inner) {
            (Dialect::ClickHouse, true) => "ALL INNER JOIN ",
            (Dialect::ClickHouse, false) => "ALL LEFT JOIN ",
            (Dialect::DataFusion, true) => "INNER JOIN ",
            (Dialect::DataFusion, false) => "LEFT JOIN ",
        });
        facts(self, sql);
        sql.push(match self.dialect {
            Dialect::ClickHouse => " AS r USING trace_id)",
            Dialect::DataFusion => " AS r USING (trace_id))",
        });
    }

    /// The newest version of each run that started in the range and passes the run filters.
    fn runs_v(&self, sql: &mut Sql) {
        sql.push("(SELECT * FROM ");
        self.newest(
            sql,
            Table::Runs,
            &self.run_columns(true),
            Some(range(self.plan)),
            None,
            Restrict::StartedInRange(Table::Runs, None),
        );
        // In the range already: `newest` keeps only the newest versions that started in it.
        sql.push(" AS v WHERE 1 = 1");
        self.filters(sql, Subject::Run);
        self.shadow(sql, range(self.plan));
        sql.push(")");
    }

    /// Per run (and per model-call group key) or per call: the figures asked for (cost,
    /// priced and unpriced calls, tokens) of the model calls passing the model-call filters.
    fn model_facts(&self, sql: &mut Sql, rows: Rows) {
        let mut columns = vec!["trace_id"];
        for figure in &MODEL_FIGURES {
            if let Some(read) = figure.reads
                && self.asked(figure.aggregate)
                && !columns.contains(&read)
            {
                columns.push(read);
            }
        }
        self.call_fields(&mut columns, Subject::ModelCall);
        sql.push("(SELECT trace_id");
        self.fact_keys(sql, Subject::ModelCall);
        self.figures(sql, CallKind::Model, rows);
        sql.push(" FROM ");
        self.newest_calls_of_counted_runs(sql, CallKind::Model.condition(), &columns);
        sql.push(" AS s WHERE 1 = 1");
        self.filters(sql, Subject::ModelCall);
        if rows == Rows::PerRun {
            self.group_by_fact_keys(sql, Subject::ModelCall);
        }
        sql.push(")");
    }

    /// Per run (and per tool when grouped by tool) or per call: tool calls and repeated tool
    /// calls, of the calls passing the tool filter. A call repeats when the run's tool call
    /// just before it (by start, then span id; whatever its tool) had the same tool and the
    /// same non-empty argument hash.
    fn tool_facts(&self, sql: &mut Sql, rows: Rows) {
        sql.push("(SELECT trace_id");
        self.fact_keys(sql, Subject::ToolCall);
        self.figures(sql, CallKind::Tool, rows);
        sql.push(" FROM ");
        if self.asked(RunAggregate::RepeatedToolCalls) {
            self.tool_calls_with_repeats(sql);
        } else {
            let mut columns = vec!["trace_id"];
            self.call_fields(&mut columns, Subject::ToolCall);
            self.newest_calls_of_counted_runs(sql, CallKind::Tool.condition(), &columns);
        }
        sql.push(" AS s WHERE 1 = 1");
        self.filters(sql, Subject::ToolCall);
        if rows == Rows::PerRun {
            self.group_by_fact_keys(sql, Subject::ToolCall);
        }
        sql.push(")");
    }

    /// `, <figure> AS <column>` for each figure of `kind` asked for: summed per run, or each
    /// call's own.
    fn figures(&self, sql: &mut Sql, kind: CallKind, rows: Rows) {
        for figure in kind.figures() {
            if !self.asked(figure.aggregate) {
                continue;
            }
            sql.push(", ");
            match (rows, figure.per_call) {
                (Rows::PerRun, PerCall::Value(expr)) => self.sum(sql, expr),
                (Rows::PerRun, PerCall::Counted(condition)) => self.count_if(sql, condition),
                (Rows::PerCall, PerCall::Value(expr)) => self.integer(sql, expr),
                (Rows::PerCall, PerCall::Counted(condition)) => self.indicator(sql, condition),
            }
            sql.push(" AS ");
            sql.push(figure.column);
        }
    }

    /// One row per tool call of the counted runs: `trace_id`, `tool_name`, the other tool-call
    /// fields grouped or filtered on, `t_repeat` (0 or 1). Each run's calls are sorted before
    /// any join, so they are narrowed to the counted runs' first wherever [`Restrict`] narrows
    /// (over every trace of its days, an hour's window took 5 s, BENCHMARKS.md).
    fn tool_calls_with_repeats(&self, sql: &mut Sql) {
        let mut columns = vec![
            "trace_id",
            "span_id",
            "start_time_ns",
            "tool_name",
            "tool_args_hash",
        ];
        self.call_fields(&mut columns, Subject::ToolCall);
        let extra: Vec<&'static str> = columns[5..].to_vec();
        match self.dialect {
            Dialect::ClickHouse => {
                // The calls of a run as sorted tuples: (start, span, tool, arguments, extra…).
                sql.push("(SELECT trace_id, tupleElement(call, 3) AS tool_name");
                for (i, column) in extra.iter().enumerate() {
                    sql.push(", tupleElement(call, ");
                    sql.push(EXTRA_TUPLE_ELEMENTS[i]);
                    sql.push(") AS ");
                    sql.push(column);
                }
                sql.push(
                    ", t_repeat FROM (SELECT trace_id, arraySort(groupArray((start_time_ns, \
                     span_id, tool_name, tool_args_hash",
                );
                for column in &extra {
                    sql.push(", ");
                    sql.push(column);
                }
                sql.push("))) AS calls FROM ");
                self.newest_calls_of_counted_runs(sql, CallKind::Tool.condition(), &columns);
                sql.push(
                    " AS s GROUP BY trace_id) ARRAY JOIN calls AS call, arrayConcat([0], \
                     arrayMap((a, b) -> toUInt8(tupleElement(a, 3) = tupleElement(b, 3) AND \
                     tupleElement(a, 4) = tupleElement(b, 4) AND tupleElement(a, 4) != ''), \
                     arrayPopFront(calls), arrayPopBack(calls))) AS t_repeat)",
                );
            }
            Dialect::DataFusion => {
                let extra_columns = |sql: &mut Sql| {
                    for column in &extra {
                        sql.push(", ");
                        sql.push(column);
                    }
                };
                sql.push("(SELECT trace_id, tool_name");
                extra_columns(sql);
                sql.push(
                    ", CASE WHEN tool_args_hash <> '' AND tool_args_hash = previous_hash AND \
                     tool_name = previous_tool THEN 1 ELSE 0 END AS t_repeat FROM (SELECT \
                     trace_id, tool_name, tool_args_hash",
                );
                extra_columns(sql);
                sql.push(
                    ", lag(tool_name) OVER (PARTITION BY trace_id ORDER BY start_time_ns, \
                     span_id) AS previous_tool, lag(tool_args_hash) OVER (PARTITION BY trace_id \
                     ORDER BY start_time_ns, span_id) AS previous_hash FROM ",
                );
                self.newest_calls_of_counted_runs(sql, CallKind::Tool.condition(), &columns);
                sql.push(" AS s) AS w)");
            }
        }
    }

    /// Whether a run's calls of both kinds are read in one pass ([`Self::call_facts`]): per
    /// run (a cohort's facts), where no call is filtered on and nothing needs each tool call on
    /// its own (repeated tool calls). One pass over the spans instead of one per kind and one
    /// for the failed calls: the three were each a grouping of every call of the range by run.
    fn calls_in_one_pass(&self) -> bool {
        self.plan.per_run
            && !self.filters_on(Subject::ModelCall)
            && !self.filters_on(Subject::ToolCall)
            && !self.asked(RunAggregate::RepeatedToolCalls)
    }

    /// Per run, in one pass over its model and tool calls: the figures of each kind asked for
    /// (each counting only its kind's calls) and, for silent partial failures, its failed calls.
    fn call_facts(&self, sql: &mut Sql) {
        let mut columns = vec!["trace_id", "kind"];
        sql.push("(SELECT trace_id");
        for kind in [CallKind::Model, CallKind::Tool] {
            for figure in kind.figures() {
                if !self.asked(figure.aggregate) {
                    continue;
                }
                if let Some(read) = figure.reads
                    && !columns.contains(&read)
                {
                    columns.push(read);
                }
                sql.push(", ");
                self.wrap_integer(sql, |sql| {
                    sql.push("sum(CASE WHEN ");
                    sql.push(kind.condition());
                    match figure.per_call {
                        PerCall::Value(expr) => {
                            sql.push(" THEN ");
                            sql.push(expr);
                        }
                        PerCall::Counted(condition) => {
                            sql.push(" AND ");
                            sql.push(condition);
                            sql.push(" THEN 1");
                        }
                    }
                    sql.push(" ELSE 0 END)");
                });
                sql.push(" AS ");
                sql.push(figure.column);
            }
        }
        if self.asked(RunAggregate::Silent) {
            columns.push("status");
            sql.push(", ");
            self.count_if(sql, "status = 'error'");
            sql.push(" AS f_failed");
        }
        sql.push(" FROM ");
        self.newest_calls_of_counted_runs(sql, BOTH_KINDS, &columns);
        sql.push(" AS s GROUP BY trace_id)");
    }

    /// Per run: its failed model and tool calls (silent partial failures).
    fn failure_facts(&self, sql: &mut Sql) {
        sql.push("(SELECT trace_id, ");
        self.integer(sql, "count(*)");
        sql.push(" AS f_failed FROM ");
        let columns = ["trace_id", "span_id", "status"];
        self.newest_calls_of_counted_runs(sql, BOTH_KINDS, &columns);
        sql.push(" AS s WHERE status = 'error' GROUP BY trace_id)");
    }

    /// Per run: its boolean scores, and how many are true.
    fn score_facts(&self, sql: &mut Sql) {
        sql.push("(SELECT trace_id, ");
        self.count_if(
            sql,
            match self.dialect {
                Dialect::ClickHouse => "bool_value = 1",
                Dialect::DataFusion => "bool_value = true",
            },
        );
        sql.push(" AS s_positive, ");
        self.integer(sql, "count(bool_value)");
        sql.push(" AS s_total FROM ");
        self.newest(
            sql,
            Table::Scores,
            &["trace_id", "score_id", "bool_value"],
            None,
            None,
            Restrict::CountedRuns,
        );
        sql.push(" AS s GROUP BY trace_id)");
    }

    /// The newest version of each call of `kind` of the counted runs (or of more, where
    /// `restrict` leaves the narrowing to the statement's join).
    fn newest_calls_of_counted_runs(
        &self,
        sql: &mut Sql,
        kinds: &'static str,
        columns: &[&'static str],
    ) {
        // The key (`trace_id`, `span_id`) is always selected by `newest`.
        self.newest(
            sql,
            Table::Spans,
            columns,
            Some(calls_of_runs(self.plan)),
            Some(kinds),
            Restrict::CountedRuns,
        );
    }

    /// A run aggregate over a group of runs or, with `one_run` ([`Self::row_per_run`]), of one
    /// run from its own row: what the aggregate gives over a group of that run alone.
    fn run_aggregate(&self, sql: &mut Sql, aggregate: RunAggregate, one_run: bool) {
        use RunAggregate::*;
        let counted = |sql: &mut Sql, condition: &'static str| {
            if one_run {
                self.indicator(sql, condition);
            } else {
                self.count_if(sql, condition);
            }
        };
        let distinct = |sql: &mut Sql, column: &'static str, nonempty: &'static str| {
            if one_run {
                self.indicator(sql, nonempty);
            } else {
                self.distinct_nonempty(sql, column);
            }
        };
        // A facts column, NULL for a run without such calls (or scores).
        let fact = |sql: &mut Sql, column: &'static str| {
            self.wrap_integer(sql, |sql| {
                sql.push(if one_run {
                    "coalesce("
                } else {
                    "sum(coalesce("
                });
                sql.push(column);
                sql.push(if one_run { ", 0)" } else { ", 0))" });
            });
        };
        match aggregate {
            Runs => self.integer(sql, if one_run { "1" } else { "count(*)" }),
            Completed => counted(sql, "outcome = 'success'"),
            Failed => counted(sql, "outcome IN ('failure', 'timeout')"),
            Silent => counted(sql, "outcome = 'success' AND coalesce(f_failed, 0) > 0"),
            LatencyP50 | LatencyP90 | LatencyP99 if one_run => {
                self.integer(sql, "end_time_ns - start_time_ns");
            }
            LatencyP50 => self.percentile(sql, Percentile::P50),
            LatencyP90 => self.percentile(sql, Percentile::P90),
            LatencyP99 => self.percentile(sql, Percentile::P99),
            Sessions => distinct(sql, "session_id", "session_id <> ''"),
            Users => distinct(sql, "user_hash", "user_hash <> ''"),
            CostNanos | PricedCalls | UnpricedCalls | InputTokens | OutputTokens
            | CachedInputTokens | ReasoningTokens | ToolCalls | RepeatedToolCalls => {
                fact(
                    sql,
                    CallKind::summed_by(aggregate).map_or("0", |(_, figure)| figure.column),
                );
            }
            FeedbackPositive => fact(sql, "s_positive"),
            FeedbackTotal => fact(sql, "s_total"),
        }
    }

    // ---- the call statements ----

    fn calls(&self, kind: CallKind) -> Sql {
        let mut sql = self.sql();
        sql.push("SELECT ");
        self.group_keys(&mut sql, kind.subject());
        self.bucket(&mut sql);
        for &aggregate in CallAggregate::ALL {
            sql.push(", ");
            if !self.asks(aggregate.needed_by()) {
                self.integer(&mut sql, "0");
            } else {
                match aggregate {
                    CallAggregate::Calls => self.integer(&mut sql, "count(*)"),
                    CallAggregate::Errors => self.count_if(&mut sql, "status = 'error'"),
                    CallAggregate::LatencyP50 => self.percentile(&mut sql, Percentile::P50),
                    CallAggregate::LatencyP90 => self.percentile(&mut sql, Percentile::P90),
                    CallAggregate::LatencyP99 => self.percentile(&mut sql, Percentile::P99),
                }
            }
            sql.push(" AS ");
            sql.push(aggregate.column());
        }
        sql.push(" FROM ");
        self.with_tags(&mut sql, |this, sql| this.calls_of_runs(sql, kind));
        self.group_by(&mut sql);
        sql
    }

    /// The calls of `kind` in the range, joined with their runs when a run field is used.
    fn calls_of_runs(&self, sql: &mut Sql, kind: CallKind) {
        let mut columns = vec!["trace_id", "start_time_ns", "end_time_ns", "status"];
        self.call_fields(&mut columns, kind.subject());
        let with_runs = self.groups_or_filters(Subject::Run);
        if with_runs {
            sql.push("(SELECT * FROM ");
        }
        sql.push("(SELECT * FROM ");
        self.newest(
            sql,
            Table::Spans,
            &columns,
            Some(range(self.plan)),
            Some(kind.condition()),
            Restrict::StartedInRange(Table::Spans, Some(kind.condition())),
        );
        // In the range already: `newest` keeps only the newest versions that started in it.
        sql.push(" AS v WHERE 1 = 1");
        self.filters(sql, kind.subject());
        self.shadow(sql, runs_of_calls(self.plan));
        sql.push(")");
        if with_runs {
            sql.push(match self.dialect {
                Dialect::ClickHouse => " AS l ALL INNER JOIN ",
                Dialect::DataFusion => " AS l INNER JOIN ",
            });
            // The calls' runs: newest versions that started from a day before the range to an
            // hour after it, passing the run filters.
            sql.push("(SELECT * FROM ");
            self.newest(
                sql,
                Table::Runs,
                &self.run_columns(false),
                Some(runs_of_calls(self.plan)),
                None,
                Restrict::StartedInRange(Table::Spans, Some(kind.condition())),
            );
            sql.push(" AS v WHERE 1 = 1");
            self.filters(sql, Subject::Run);
            sql.push(match self.dialect {
                Dialect::ClickHouse => ") AS r USING trace_id)",
                Dialect::DataFusion => ") AS r USING (trace_id))",
            });
        }
    }

    // ---- shared pieces ----

    /// Adds the columns of the call fields used (grouped or filtered on) for `subject`.
    fn call_fields(&self, columns: &mut Vec<&'static str>, subject: Subject) {
        for field in self.plan.group_by.iter().chain(self.plan.filters.keys()) {
            if field.subject() == subject && !columns.contains(&column(*field)) {
                columns.push(column(*field));
            }
        }
    }

    /// `, <column> AS k<i>` for each group field of `subject` (facts keyed by it).
    fn fact_keys(&self, sql: &mut Sql, subject: Subject) {
        for (i, field) in self.plan.group_by.iter().enumerate() {
            if field.subject() == subject {
                sql.push(", ");
                sql.push(column(*field));
                sql.push(" AS ");
                sql.push(FACT_KEYS[i]);
            }
        }
    }

    fn group_by_fact_keys(&self, sql: &mut Sql, subject: Subject) {
        sql.push(" GROUP BY trace_id");
        for (i, field) in self.plan.group_by.iter().enumerate() {
            if field.subject() == subject {
                sql.push(", ");
                sql.push(FACT_KEYS[i]);
            }
        }
    }

    /// `g0, g1, g2, g3` of a statement about `subject`; unused positions are `''`.
    fn group_keys(&self, sql: &mut Sql, subject: Subject) {
        for (i, alias) in GROUP_ALIASES.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            match self.plan.group_by.get(i) {
                // One group per run (`MetricPlan::per_run`, whose plans group by nothing else).
                None if i == 0 && self.plan.per_run && subject == Subject::Run => {
                    sql.push("trace_id")
                }
                None => sql.push("''"),
                Some(Field::Classification) => sql.push(CLASS_KEY),
                Some(Field::Outcome) if self.dialect == Dialect::ClickHouse => {
                    sql.push("toString(outcome)")
                }
                // A call field in the run statement: the fact's key, `''` for a run without
                // such calls.
                Some(field) if subject == Subject::Run && field.subject() != Subject::Run => {
                    sql.push("coalesce(");
                    sql.push(FACT_KEYS[i]);
                    sql.push(", '')");
                }
                Some(field) => sql.push(column(*field)),
            }
            sql.push(" AS ");
            sql.push(alias);
        }
    }

    fn bucket(&self, sql: &mut Sql) {
        sql.push(", ");
        match self.plan.step_ns {
            None => self.integer(sql, "0"),
            Some(step) => {
                match self.dialect {
                    Dialect::ClickHouse => sql.push("toInt64(intDiv(start_time_ns, "),
                    Dialect::DataFusion => sql.push("CAST((start_time_ns / "),
                }
                sql.int(step);
                sql.push(") * ");
                sql.int(step);
                match self.dialect {
                    Dialect::ClickHouse => sql.push(")"),
                    Dialect::DataFusion => sql.push(" AS BIGINT)"),
                }
            }
        }
        sql.push(" AS bucket");
    }

    fn group_by(&self, sql: &mut Sql) {
        sql.push(" GROUP BY bucket");
        let keys = self.plan.group_by.len().max(usize::from(self.plan.per_run));
        for alias in GROUP_ALIASES.iter().take(keys) {
            sql.push(", ");
            sql.push(alias);
        }
    }

    /// `FROM` source with one row per classification tag (`''` for a run without tags) when
    /// grouped by classification, then filtered to the filter's tags.
    fn with_tags(&self, sql: &mut Sql, source: impl FnOnce(&Self, &mut Sql)) {
        if !self.plan.group_by.contains(&Field::Classification) {
            source(self, sql);
            sql.push(" AS t");
            return;
        }
        sql.push("(SELECT * FROM (SELECT *, ");
        sql.push(match self.dialect {
            Dialect::ClickHouse => "arrayJoin(if(empty(classification), [''], classification))",
            Dialect::DataFusion => {
                "unnest(CASE WHEN cardinality(classification) = 0 THEN make_array('') ELSE \
                 classification END)"
            }
        });
        sql.push(" AS ");
        sql.push(CLASS_KEY);
        sql.push(" FROM ");
        source(self, sql);
        sql.push(" AS u) AS x");
        if let Some(tags) = self.plan.filters.get(&Field::Classification) {
            sql.push(" WHERE ");
            sql.push(CLASS_KEY);
            sql.push(" IN (");
            sql.texts(tags);
            sql.push(")");
        }
        sql.push(") AS t");
    }

    /// `AND <field> IN (…)` for each filter on a field of `subject`.
    fn filters(&self, sql: &mut Sql, subject: Subject) {
        filter_conditions(sql, self.dialect, &self.plan.filters, subject);
    }

    /// ` AND` the row's trace is (not) a shadow run's, as the plan asks: (not) among the traces
    /// with a run version carrying the mark that started in `times`. A condition on the trace
    /// rather than on the run row, so that a call statement needs no join with the runs for it
    /// (a call whose run is not stored counts as production), and so that a run and its calls
    /// are always on the same side. The marked runs are few, or they are the half asked for.
    fn shadow(&self, sql: &mut Sql, times: Times) {
        sql.push(match self.plan.shadow {
            ShadowRuns::Include => return,
            ShadowRuns::Exclude => " AND trace_id NOT IN (SELECT trace_id",
            ShadowRuns::Only => " AND trace_id IN (SELECT trace_id",
        });
        let marked = match self.dialect {
            Dialect::ClickHouse => SHADOW_MARK_CLICKHOUSE,
            Dialect::DataFusion => SHADOW_MARK_DATAFUSION,
        };
        self.rows_of(
            sql,
            Source::all(Table::Runs),
            Some(times.days()),
            Some(marked),
        );
        times.condition(sql, "start_time_ns");
        sql.push(")");
    }

    /// `(SELECT <columns> …)`: the newest version of each key of `table` in the project whose
    /// time column lies in `times` (read from the whole days of the range), or of every key, of
    /// the keys `restrict` lets through ([`newest_versions`]).
    fn newest(
        &self,
        sql: &mut Sql,
        table: Table,
        columns: &[&'static str],
        times: Option<Times>,
        condition: Option<&'static str>,
        restrict: Restrict,
    ) {
        let days = times.map(Times::days);
        let rows_of = |sql: &mut Sql, source: Source| {
            self.rows_of(sql, source, days, condition);
        };
        let traces = |sql: &mut Sql| self.traces(sql, restrict);
        let scope = match times {
            Some(times) => self.seals.scope_of(times),
            None => self.seals.scope(None),
        };
        let restricted = match restrict {
            // A read with no time range of its own (scores) is always narrowed: unbounded, it
            // would grow with every day kept.
            Restrict::CountedRuns => {
                self.dialect == Dialect::DataFusion
                    || !scope.reads_sealed_only(table)
                    || self.range_is_narrow()
                    || times.is_none()
            }
            // Narrowing pays only where every row is de-duplicated, and only when the range
            // covers little of its days: on a wider range it would not narrow anything worth
            // the extra scan. Sealed rows of the table the range is on are narrowed by the
            // range itself, right after; the look-up would only scan it twice (a 5-minute
            // window's call statement: 0.24 s with it, 0.17 s without).
            Restrict::StartedInRange(of, _) => {
                self.dialect == Dialect::ClickHouse
                    && self.range_is_narrow()
                    && !(of == table && scope.reads_sealed_only(table))
            }
        };
        let traces: Option<&dyn Fn(&mut Sql)> = if restricted { Some(&traces) } else { None };
        newest_versions(sql, self.dialect, scope, table, columns, rows_of, traces);
    }

    /// ` FROM <source> WHERE …`: the project's rows, in `days`, passing `condition`.
    fn rows_of(
        &self,
        sql: &mut Sql,
        source: Source,
        days: Option<(i64, i64)>,
        condition: Option<&'static str>,
    ) {
        source.rows(sql, |sql| {
            sql.push("project_id = ");
            sql.text(self.project_id);
            if let Some(condition) = condition {
                sql.push(" AND ");
                sql.push(condition);
            }
            if let Some((first, last)) = days {
                source.days(sql, self.dialect, first, last);
            }
        });
    }

    /// `SELECT trace_id …`: the traces `restrict` lets through.
    fn traces(&self, sql: &mut Sql, restrict: Restrict) {
        match restrict {
            Restrict::CountedRuns => {
                sql.push("SELECT trace_id FROM ");
                self.runs_v(sql);
                sql.push(" AS counted");
            }
            Restrict::StartedInRange(table, condition) => {
                sql.push("SELECT trace_id");
                self.rows_of(
                    sql,
                    Source::all(table),
                    Some(range(self.plan).days()),
                    condition,
                );
                range(self.plan).condition(sql, "start_time_ns");
            }
        }
    }

    /// Whether the range covers less than half of the days it touches.
    fn range_is_narrow(&self) -> bool {
        let days = day_of(self.plan.to_ns - 1) - day_of(self.plan.from_ns) + 1;
        (self.plan.to_ns - self.plan.from_ns).saturating_mul(2) < days * NANOS_PER_DAY
    }

    fn integer(&self, sql: &mut Sql, expr: &'static str) {
        self.wrap_integer(sql, |sql| sql.push(expr));
    }

    fn wrap_integer(&self, sql: &mut Sql, inner: impl FnOnce(&mut Sql)) {
        integer(sql, self.dialect, inner);
    }

    fn sum(&self, sql: &mut Sql, expr: &'static str) {
        sum(sql, self.dialect, expr);
    }

    fn count_if(&self, sql: &mut Sql, condition: &'static str) {
        count_if(sql, self.dialect, condition);
    }

    /// 1 when `condition` holds, else 0, as a 64-bit integer.
    fn indicator(&self, sql: &mut Sql, condition: &'static str) {
        let dialect = self.dialect;
        self.wrap_integer(sql, |sql| match dialect {
            Dialect::ClickHouse => sql.push(condition),
            Dialect::DataFusion => {
                sql.push("CASE WHEN ");
                sql.push(condition);
                sql.push(" THEN 1 ELSE 0 END");
            }
        });
    }

    fn distinct_nonempty(&self, sql: &mut Sql, column: &'static str) {
        let dialect = self.dialect;
        self.wrap_integer(sql, |sql| distinct_nonempty(sql, dialect, column));
    }

    /// The exact percentile (docs/design.md#percentiles) of the durations, in ns: an element of
    /// all three percentiles, the same expression each time, which both stores aggregate once
    /// (one `quantileExact` per percentile gathered and sorted the durations three times; latency
    /// by agent over 3,000,000 runs in ClickHouse: 0.24–0.30 s → 0.18–0.19 s, the same answer;
    /// BENCHMARKS.md).
    fn percentile(&self, sql: &mut Sql, percentile: Percentile) {
        let dialect = self.dialect;
        self.wrap_integer(sql, |sql| {
            match dialect {
                Dialect::ClickHouse => {
                    sql.push("quantilesExact(");
                    sql.push(Percentile::CLICKHOUSE_LEVELS);
                    sql.push(")(");
                }
                Dialect::DataFusion => {
                    sql.push(EXACT_PERCENTILES);
                    sql.push("(");
                }
            }
            sql.push("end_time_ns - start_time_ns)[");
            sql.push(percentile.element());
            sql.push("]");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricQuery;

    fn plan(json: serde_json::Value) -> MetricPlan {
        serde_json::from_value::<MetricQuery>(json)
            .unwrap()
            .plan()
            .unwrap()
    }

    #[test]
    fn the_shadow_mark_is_the_tag_the_collector_writes() {
        let quoted = format!("'{}'", vigil_schemas::SHADOW_TAG);
        assert!(SHADOW_MARK_CLICKHOUSE.contains(&quoted));
        assert!(SHADOW_MARK_DATAFUSION.contains(&quoted));
    }

    #[test]
    fn every_summed_aggregate_reads_its_figure() {
        let plan = plan(serde_json::json!({
            "from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z", "metrics": ["runs"],
        }));
        let compiler = Compiler {
            plan: &plan,
            project_id: "p",
            dialect: Dialect::ClickHouse,
            placeholders: Placeholders::Question,
            seals: &NO_SEALS,
            part: None,
        };
        for (&aggregate, one_run) in RunAggregate::ALL
            .iter()
            .flat_map(|a| [(a, false), (a, true)])
        {
            let mut sql = compiler.sql();
            compiler.run_aggregate(&mut sql, aggregate, one_run);
            assert!(
                !sql.text.contains("coalesce(0,"),
                "{aggregate:?}: {}",
                sql.text
            );
            if let Some((_, figure)) = CallKind::summed_by(aggregate) {
                assert!(
                    sql.text.contains(figure.column),
                    "{aggregate:?}: {}",
                    sql.text
                );
            }
        }
    }

    #[test]
    fn a_cohort_reads_its_runs_calls_in_one_pass_and_answers_a_row_per_run() {
        let statements = |filters: serde_json::Value| {
            let plan = crate::cohort::plan(
                "2026-11-23T00:00:00Z",
                "2026-11-24T00:00:00Z",
                &serde_json::from_value(filters).unwrap(),
                ShadowRuns::Include,
            )
            .unwrap();
            compile(&plan, "p", Dialect::ClickHouse, &NO_SEALS)
                .into_iter()
                .map(|statement| statement.sql.text)
                .collect::<Vec<_>>()
        };
        let [facts] = &statements(serde_json::json!({"agent": ["a"]}))[..] else {
            panic!("one statement")
        };
        assert_eq!(facts.matches("FROM spans WHERE").count(), 1, "{facts}");
        assert!(!facts.contains("GROUP BY bucket"), "{facts}");
        // A call filter keeps the calls apart: only those calls count in the run's sums.
        let [filtered] = &statements(serde_json::json!({"prompt_version": ["v8"]}))[..] else {
            panic!("one statement")
        };
        assert_eq!(
            filtered.matches("FROM spans WHERE").count(),
            3,
            "{filtered}"
        );
        assert!(!filtered.contains("GROUP BY bucket"), "{filtered}");
    }

    #[test]
    fn run_aggregates_are_split_into_the_runs_and_the_sums_of_each_kind_of_call() {
        let statements = |group_by: &str, filters: serde_json::Value| {
            let plan = plan(serde_json::json!({
                "from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z",
                "metrics": ["cost_per_run_usd", "input_tokens", "repeated_tool_calls",
                    "silent_partial_failure_rate"],
                "group_by": [group_by],
                "filters": filters,
            }));
            compile(&plan, "p", Dialect::DataFusion, &NO_SEALS)
                .into_iter()
                .map(|statement| statement.sql.text)
                .collect::<Vec<_>>()
        };
        let split = statements("agent", serde_json::json!({}));
        assert_eq!(split.len(), 3, "{split:#?}");
        // Each part computes only its own aggregates; the others are a constant 0.
        let [runs, model, tool] = &split[..] else {
            unreachable!()
        };
        assert!(runs.contains("count(*) AS BIGINT) AS runs") && runs.contains("f_failed"));
        assert!(!runs.contains("kind = 'model'") && !runs.contains("kind = 'tool'"));
        assert!(model.contains("m_cost") && model.contains("m_input"));
        assert!(model.contains("CAST(0 AS BIGINT) AS runs") && !model.contains("kind = 'tool'"));
        assert!(tool.contains("t_repeated") && !tool.contains("kind = 'model'"));
        assert!(tool.contains("CAST(0 AS BIGINT) AS silent"));
        // Grouped by model, the tool calls of each model's runs need the runs' models: the
        // runs' statement reads them; cost and tokens are still summed beside the runs.
        let by_model = statements("model", serde_json::json!({}));
        let [runs, model] = &by_model[..] else {
            panic!("{by_model:#?}")
        };
        assert!(runs.contains("t_repeated") && runs.contains("kind = 'model'"));
        assert!(!runs.contains("m_cost") && !model.contains("kind = 'tool'"));
        assert!(model.contains("m_cost") && model.contains("m_input"));
        // With fields of both kinds, every sum needs both: one statement.
        let both = statements("model", serde_json::json!({"tool": ["search"]}));
        assert_eq!(both.len(), 1, "{both:#?}");
    }

    #[test]
    fn request_values_are_bound_not_written() {
        let plan = plan(serde_json::json!({
            "from": "2026-11-23T00:00:00Z", "to": "2026-11-24T00:00:00Z",
            "metrics": ["runs", "cost_usd", "tool_error_rate"],
            "group_by": ["agent"],
            "filters": {"environment": ["prod'; DROP TABLE runs --"]},
        }));
        for dialect in [Dialect::ClickHouse, Dialect::DataFusion] {
            let statements = compile(&plan, "p'x", dialect, &NO_SEALS);
            assert_eq!(statements.len(), 3);
            for statement in statements {
                assert!(
                    !statement.sql.text.contains("DROP"),
                    "{}",
                    statement.sql.text
                );
                assert!(!statement.sql.text.contains("p'x"));
            }
        }
    }
}
