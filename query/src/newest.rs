//! The newest version of each key, in SQL: the one step every aggregate over a store takes
//! before it counts anything (the metric engine, the compliance queries).

use vigil_schemas::{
    layout::Table,
    time::{NANOS_PER_DAY, day_string},
};

use crate::{metrics::compile::Dialect, sql::Sql};

/// Names of the newest versions' columns inside [`newest_versions`], by position.
const NEWEST_ALIASES: [&str; 16] = [
    "n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10", "n11", "n12", "n13", "n14",
    "n15",
];

/// The most columns (keys aside) [`newest_versions`] can select.
pub(crate) const MAX_NEWEST_COLUMNS: usize = NEWEST_ALIASES.len();

/// ClickHouse's ` ORDER BY <version order> DESC LIMIT 1 BY <key but the project>`: after the rows
/// of one project, their newest version per key.
pub(crate) fn newest_per_key(sql: &mut Sql, table: Table) {
    sql.push(" ORDER BY ");
    sql.list(table.version_order(), " DESC");
    sql.push(" LIMIT 1 BY ");
    sql.list(&table.key_columns()[1..], "");
}

/// Which of a table's rows a relation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Every stored version (ClickHouse's tables; the embedded store's raw tables).
    All,
    /// The embedded store's sealed files: one version per key.
    Sealed,
    /// The embedded store's fresh files.
    Fresh,
}

/// A relation a statement reads a table's rows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    pub table: Table,
    pub part: Part,
}

impl Source {
    pub(crate) fn all(table: Table) -> Source {
        Source {
            table,
            part: Part::All,
        }
    }

    /// The relation's name in SQL: `runs`, `runs_sealed`, `runs_fresh`, …
    pub fn name(self) -> &'static str {
        match (self.table, self.part) {
            (Table::Runs, Part::All) => "runs",
            (Table::Runs, Part::Sealed) => "runs_sealed",
            (Table::Runs, Part::Fresh) => "runs_fresh",
            (Table::Spans, Part::All) => "spans",
            (Table::Spans, Part::Sealed) => "spans_sealed",
            (Table::Spans, Part::Fresh) => "spans_fresh",
            (Table::Scores, Part::All) => "scores",
            (Table::Scores, Part::Sealed) => "scores_sealed",
            (Table::Scores, Part::Fresh) => "scores_fresh",
        }
    }

    /// ` AND <the rows of the days first..=last>`: by the `day` partition column on the
    /// embedded store's raw tables (so that DataFusion lists only those directories), by the
    /// table's time column elsewhere (a row's day is the day of its time column).
    pub(crate) fn days(self, sql: &mut Sql, dialect: Dialect, first: i64, last: i64) {
        if dialect == Dialect::DataFusion && self.part == Part::All {
            sql.push(" AND day >= ");
            sql.text(&day_string(first));
            sql.push(" AND day <= ");
            sql.text(&day_string(last));
        } else {
            let time = self.table.time_column();
            sql.push(" AND ");
            sql.push(time);
            sql.push(" >= ");
            sql.int(first * NANOS_PER_DAY);
            sql.push(" AND ");
            sql.push(time);
            sql.push(" < ");
            sql.int((last + 1) * NANOS_PER_DAY);
        }
    }
}

/// `(SELECT <key columns but the project>, <columns> …)`: the newest version of each key of
/// `table` among the rows `rows_of` writes (` FROM <source> WHERE …`, cheap conditions: it may be
/// written several times), of the traces `traces` selects (`SELECT trace_id …`, written once) when
/// given.
///
/// ClickHouse picks the newest version among all rows: it sorts the versions (`ORDER BY
/// <version order> DESC LIMIT 1 BY key`; `argMax` per column was slower, BENCHMARKS.md).
///
/// The embedded store de-duplicates only what may hold several versions (`vigil_schemas::layout`):
/// the sealed rows of traces without a fresh row are read as they are; the sealed rows of the
/// other traces and every fresh row are grouped per key and the newest kept
/// (`first_value(c ORDER BY <version order> DESC)`; a `row_number()` window was 2.5x slower).
/// Both keep the same row.
pub(crate) fn newest_versions(
    sql: &mut Sql,
    dialect: Dialect,
    table: Table,
    columns: &[&'static str],
    rows_of: impl Fn(&mut Sql, Source),
    traces: Option<&dyn Fn(&mut Sql)>,
) {
    let keys = &table.key_columns()[1..];
    let values: Vec<&'static str> = columns
        .iter()
        .copied()
        .filter(|c| !keys.contains(c))
        .collect();
    assert!(
        values.len() <= MAX_NEWEST_COLUMNS,
        "too many newest columns"
    );
    let of_traces = |sql: &mut Sql| {
        if let Some(traces) = traces {
            sql.push(" AND trace_id IN (");
            traces(sql);
            sql.push(")");
        }
    };
    match dialect {
        Dialect::ClickHouse => {
            sql.push("(SELECT ");
            sql.list(keys, "");
            for column in &values {
                sql.push(", ");
                sql.push(column);
            }
            rows_of(sql, Source::all(table));
            of_traces(sql);
            newest_per_key(sql, table);
            sql.push(")");
        }
        Dialect::DataFusion => {
            let sealed = Source {
                table,
                part: Part::Sealed,
            };
            let fresh = Source {
                table,
                part: Part::Fresh,
            };
            let fresh_traces = |sql: &mut Sql| {
                sql.push("(SELECT trace_id");
                rows_of(sql, fresh);
                sql.push(")");
            };
            let select = |sql: &mut Sql, columns: &[&'static str]| {
                sql.push("SELECT ");
                sql.list(keys, "");
                for column in columns {
                    sql.push(", ");
                    sql.push(column);
                }
            };
            sql.push("(SELECT * FROM (");
            // The sealed rows of traces without a fresh row: one version per key.
            select(sql, &values);
            rows_of(sql, sealed);
            sql.push(" AND trace_id NOT IN ");
            fresh_traces(sql);
            sql.push(" UNION ALL ");
            // The rest, grouped per key: the outer level names the columns again.
            sql.push("SELECT ");
            sql.list(keys, "");
            for (i, column) in values.iter().enumerate() {
                sql.push(", ");
                sql.push(NEWEST_ALIASES[i]);
                sql.push(" AS ");
                sql.push(column);
            }
            sql.push(" FROM (SELECT ");
            sql.list(keys, "");
            for (i, column) in values.iter().enumerate() {
                sql.push(", first_value(");
                sql.push(column);
                sql.push(" ORDER BY ");
                sql.list(table.version_order(), " DESC");
                sql.push(") AS ");
                sql.push(NEWEST_ALIASES[i]);
            }
            let mut versioned = values.clone();
            for column in table.version_order() {
                if !versioned.contains(column) {
                    versioned.push(column);
                }
            }
            sql.push(" FROM (");
            select(sql, &versioned);
            rows_of(sql, sealed);
            sql.push(" AND trace_id IN ");
            fresh_traces(sql);
            sql.push(" UNION ALL ");
            select(sql, &versioned);
            rows_of(sql, fresh);
            sql.push(") AS versions GROUP BY ");
            sql.list(keys, "");
            sql.push(") AS newest) AS kept WHERE 1 = 1");
            of_traces(sql);
            sql.push(")");
        }
    }
}
