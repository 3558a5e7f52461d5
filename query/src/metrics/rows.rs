//! What a statement of [`super::compile`] answers, read back from either store: per group and
//! bucket, the integer aggregates in the order the compiler wrote them.

use clickhouse::Row;
use datafusion::arrow::{
    array::{Array, AsArray, RecordBatch},
    compute::cast,
    datatypes::{DataType, Int64Type},
    error::ArrowError,
};
use serde::Deserialize;

use super::{
    aggregate::{CallAggregate, RunAggregate, columns},
    catalog::Subject,
};
use crate::error::QueryError;

/// A statement timed for the `debug` log (`VIGIL_LOG=vigil_query=debug`): when it started,
/// and its SQL, copied only where that level is on.
pub(crate) struct StatementLog {
    sql: Option<String>,
    started: std::time::Instant,
}

impl StatementLog {
    pub(crate) fn start(sql: &crate::sql::Sql) -> StatementLog {
        StatementLog {
            sql: tracing::enabled!(tracing::Level::DEBUG).then(|| sql.text.clone()),
            started: std::time::Instant::now(),
        }
    }

    /// Logs the statement's answer: its subject, rows, time and SQL.
    pub(crate) fn answered(self, subject: Subject, rows: &[Aggregates]) {
        tracing::debug!(
            ?subject,
            rows = rows.len(),
            ms = self.started.elapsed().as_secs_f64() * 1e3,
            sql = self.sql.as_deref().unwrap_or(""),
            "metric statement answered"
        );
    }
}

/// One answered row of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Aggregates {
    /// `g0`…`g3`; the positions past `group_by`'s length are `""`.
    pub keys: [String; 4],
    /// Start of the time bucket (ns), 0 without `step`.
    pub bucket: i64,
    /// In the compiler's aggregate order.
    pub values: Vec<i64>,
}

/// ClickHouse's answer: the aggregates gathered in one array column (so one row type reads
/// every statement).
#[derive(Row, Deserialize)]
pub(crate) struct AggregateRecord {
    g0: String,
    g1: String,
    g2: String,
    g3: String,
    bucket: i64,
    aggregates: Vec<i64>,
}

/// ClickHouse's rows of a statement about `subject`, each checked to hold every aggregate.
pub(crate) fn from_records(
    subject: Subject,
    records: Vec<AggregateRecord>,
) -> Result<Vec<Aggregates>, QueryError> {
    let expected = aggregate_names(subject).len();
    records
        .into_iter()
        .map(|r| {
            if r.aggregates.len() != expected {
                return Err(QueryError::Store(format!(
                    "a {subject:?} statement answered {} aggregates, {expected} were asked for",
                    r.aggregates.len()
                )));
            }
            Ok(Aggregates {
                keys: [r.g0, r.g1, r.g2, r.g3],
                bucket: r.bucket,
                values: r.aggregates,
            })
        })
        .collect()
}

/// The aggregate columns of a statement about `subject`, in order.
pub(crate) fn aggregate_names(subject: Subject) -> Vec<&'static str> {
    match subject {
        Subject::Run => columns::<RunAggregate>(),
        Subject::ModelCall | Subject::ToolCall => columns::<CallAggregate>(),
    }
}

/// DataFusion's answer, column by column.
pub(crate) fn from_batches(
    batches: &[RecordBatch],
    aggregates: &[&str],
) -> Result<Vec<Aggregates>, ArrowError> {
    let mut rows = Vec::new();
    for batch in batches {
        let column = |name: &str, data_type: &DataType| {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is missing")))?;
            cast(column, data_type)
        };
        let keys = ["g0", "g1", "g2", "g3"]
            .into_iter()
            .map(|name| column(name, &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()?;
        let integers = std::iter::once("bucket")
            .chain(aggregates.iter().copied())
            .map(|name| column(name, &DataType::Int64))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let key = |i: usize| keys[i].as_string::<i32>().value(row).to_string();
            let integer = |array: &dyn Array| {
                let array = array.as_primitive::<Int64Type>();
                // An aggregate over no values (never happens in a group that exists) reads 0.
                if array.is_null(row) {
                    0
                } else {
                    array.value(row)
                }
            };
            rows.push(Aggregates {
                keys: [key(0), key(1), key(2), key(3)],
                bucket: integer(&integers[0]),
                values: integers[1..].iter().map(|a| integer(a)).collect(),
            });
        }
    }
    Ok(rows)
}
