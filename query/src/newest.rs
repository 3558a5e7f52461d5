//! The newest version of each key, in SQL: the one step every aggregate over a store takes
//! before it counts anything (the metric engine, the compliance queries).

use vigil_schemas::layout::Table;

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

/// `(SELECT <key columns but the project>, <columns> …)`: the newest version of each key of
/// `table` among the rows `rows_of` writes (` FROM <table> WHERE …`).
///
/// Each store picks it the way it does fastest (measured on 10,000,000 spans, BENCHMARKS.md):
/// ClickHouse 18.16 sorts the versions (`ORDER BY <version order> DESC LIMIT 1 BY key`;
/// `argMax` per column was slower), DataFusion aggregates per key
/// (`first_value(c ORDER BY <version order> DESC)`; a `row_number()` window was 2.5x slower).
/// Both keep the same row.
pub(crate) fn newest_versions(
    sql: &mut Sql,
    dialect: Dialect,
    table: Table,
    columns: &[&'static str],
    rows_of: impl FnOnce(&mut Sql),
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
    let version_order = table.version_order();
    match dialect {
        Dialect::ClickHouse => {
            sql.push("(SELECT ");
            sql.list(keys, "");
            for column in &values {
                sql.push(", ");
                sql.push(column);
            }
            rows_of(sql);
            newest_per_key(sql, table);
            sql.push(")");
        }
        Dialect::DataFusion => {
            // Outer level: the columns under their own names again.
            sql.push("(SELECT ");
            sql.list(keys, "");
            for (i, column) in values.iter().enumerate() {
                sql.push(", ");
                sql.push(NEWEST_ALIASES[i]);
                sql.push(" AS ");
                sql.push(column);
            }
            // Inner level: one row per key.
            sql.push(" FROM (SELECT ");
            sql.list(keys, "");
            for (i, column) in values.iter().enumerate() {
                sql.push(", first_value(");
                sql.push(column);
                sql.push(" ORDER BY ");
                sql.list(version_order, " DESC");
                sql.push(") AS ");
                sql.push(NEWEST_ALIASES[i]);
            }
            rows_of(sql);
            sql.push(" GROUP BY ");
            sql.list(keys, "");
            sql.push(") AS newest)");
        }
    }
}
