//! Each run's calls rolled up: what a run list shows beside each run. Counted from the newest
//! version of each span, by the metric definitions (docs/design.md#metric-definitions): cost and
//! tokens are those of the run's model calls, wherever they started; a call failed when its
//! status is `error`. Both stores run the same statement, each in its dialect.

use serde::Deserialize;
use vigil_schemas::layout::Table;

use crate::{
    metrics::{
        Dialect,
        compile::{count_if, sum},
    },
    newest::{NO_SEALS, Source, newest_versions},
    sql::{Placeholders, Sql},
};

/// One run's model and tool calls, summed: what the API shows as a run's `calls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = RunCalls)]
pub struct RunRollup {
    pub model_calls: u64,
    /// Model calls without a price.
    pub unpriced_model_calls: u64,
    /// The priced model calls' cost (summed exactly in nano-dollars); null when none was
    /// priced: an unpriced run is not a free one.
    #[schema(required = true)]
    pub cost_usd: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub reasoning_tokens: u64,
    pub tool_calls: u64,
    /// Model and tool calls whose status is `error`.
    pub failed_calls: u64,
    /// The priced calls' cost in nano-dollars, exact: what `cost_usd` is computed from.
    #[serde(skip)]
    pub cost_nanos: i64,
}

impl RunRollup {
    /// The calls of several runs together (a session's); the cost summed exactly.
    pub fn add(&mut self, other: &RunRollup) {
        self.model_calls += other.model_calls;
        self.unpriced_model_calls += other.unpriced_model_calls;
        self.cost_nanos += other.cost_nanos;
        self.cost_usd = cost_usd(self.model_calls, self.unpriced_model_calls, self.cost_nanos);
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.tool_calls += other.tool_calls;
        self.failed_calls += other.failed_calls;
    }

    /// From the values of [`ROLLUP_COLUMNS`], in order.
    pub(crate) fn from_columns(values: [i64; 9]) -> RunRollup {
        let count = |n: i64| n.max(0) as u64;
        let [
            model,
            unpriced,
            cost_nanos,
            input,
            output,
            cached,
            reasoning,
            tools,
            failed,
        ] = values;
        RunRollup {
            model_calls: count(model),
            unpriced_model_calls: count(unpriced),
            cost_usd: cost_usd(count(model), count(unpriced), cost_nanos),
            input_tokens: count(input),
            output_tokens: count(output),
            cached_input_tokens: count(cached),
            reasoning_tokens: count(reasoning),
            tool_calls: count(tools),
            failed_calls: count(failed),
            cost_nanos,
        }
    }
}

/// The priced calls' cost in USD; `None` when no model call was priced (not free: unknown).
fn cost_usd(model_calls: u64, unpriced_model_calls: u64, cost_nanos: i64) -> Option<f64> {
    (model_calls > unpriced_model_calls).then(|| cost_nanos as f64 / 1e9)
}

/// A row of [`rollup_sql`]'s answer, as ClickHouse sends it: every count a 64-bit integer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, clickhouse::Row)]
pub(crate) struct RollupRecord {
    pub trace_id: String,
    pub model_calls: i64,
    pub unpriced_model_calls: i64,
    pub model_cost_nanos: i64,
    pub model_input_tokens: i64,
    pub model_output_tokens: i64,
    pub model_cached_input_tokens: i64,
    pub model_reasoning_tokens: i64,
    pub tool_calls: i64,
    pub failed_calls: i64,
}

/// The answer's columns after `trace_id`, as [`RollupRecord`] names them. None is named as a
/// span column: ClickHouse would read the alias inside the aggregates.
pub(crate) const ROLLUP_COLUMNS: [&str; 9] = [
    "model_calls",
    "unpriced_model_calls",
    "model_cost_nanos",
    "model_input_tokens",
    "model_output_tokens",
    "model_cached_input_tokens",
    "model_reasoning_tokens",
    "tool_calls",
    "failed_calls",
];

impl From<RollupRecord> for (String, RunRollup) {
    fn from(r: RollupRecord) -> Self {
        let values = [
            r.model_calls,
            r.unpriced_model_calls,
            r.model_cost_nanos,
            r.model_input_tokens,
            r.model_output_tokens,
            r.model_cached_input_tokens,
            r.model_reasoning_tokens,
            r.tool_calls,
            r.failed_calls,
        ];
        (r.trace_id, RunRollup::from_columns(values))
    }
}

/// `SELECT trace_id, <ROLLUP_COLUMNS> …` over the newest version of every span of the traces.
pub(crate) fn rollup_sql(dialect: Dialect, project_id: &str, trace_ids: &[String]) -> Sql {
    let placeholders = match dialect {
        Dialect::ClickHouse => Placeholders::Question,
        Dialect::DataFusion => Placeholders::Numbered,
    };
    let mut sql = Sql::new(placeholders, "SELECT trace_id");
    // In ROLLUP_COLUMNS' order.
    let aggregates: [fn(&mut Sql, Dialect); 9] = [
        |sql, d| count_if(sql, d, "kind = 'model'"),
        |sql, d| count_if(sql, d, "kind = 'model' AND cost_nanos IS NULL"),
        |sql, d| {
            sum(
                sql,
                d,
                "CASE WHEN kind = 'model' THEN coalesce(cost_nanos, 0) ELSE 0 END",
            )
        },
        |sql, d| {
            sum(
                sql,
                d,
                "CASE WHEN kind = 'model' THEN input_tokens ELSE 0 END",
            )
        },
        |sql, d| {
            sum(
                sql,
                d,
                "CASE WHEN kind = 'model' THEN output_tokens ELSE 0 END",
            )
        },
        |sql, d| {
            sum(
                sql,
                d,
                "CASE WHEN kind = 'model' THEN cached_input_tokens ELSE 0 END",
            )
        },
        |sql, d| {
            sum(
                sql,
                d,
                "CASE WHEN kind = 'model' THEN reasoning_tokens ELSE 0 END",
            )
        },
        |sql, d| count_if(sql, d, "kind = 'tool'"),
        |sql, d| count_if(sql, d, "kind IN ('model', 'tool') AND status = 'error'"),
    ];
    for (aggregate, column) in aggregates.iter().zip(ROLLUP_COLUMNS) {
        sql.push(", ");
        aggregate(&mut sql, dialect);
        sql.push(" AS ");
        sql.push(column);
    }
    sql.push(" FROM ");
    let columns = [
        "kind",
        "status",
        "cost_nanos",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
    ];
    let rows_of = |sql: &mut Sql, source: Source| {
        source.rows(sql, |sql| {
            sql.push("project_id = ");
            sql.text(project_id);
            sql.push(" AND trace_id IN (");
            sql.texts(trace_ids);
            sql.push(")");
        });
    };
    // A look-up of a few traces by key: ClickHouse picks the newest among all their rows.
    newest_versions(
        &mut sql,
        dialect,
        NO_SEALS.scope(None),
        Table::Spans,
        &columns,
        rows_of,
        None,
    );
    sql.push(" AS s GROUP BY trace_id");
    sql
}
