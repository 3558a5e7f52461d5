//! The three tables, as ClickHouse DDL. One column list per table is the single source: the
//! `CREATE TABLE` statements are rendered from it, and a test checks that the RowBinary row types
//! in [`super::rows`] name the same columns in the same order.
//!
//! Design (reasons in `schemas/CLICKHOUSE.md`):
//! * `ReplacingMergeTree(ingested_at_ns)` ordered by the row's key, so background merges fold
//!   the versions of a key into its newest. Reads never rely on that (no `FINAL`): they pick the
//!   newest version themselves (`ORDER BY ingested_at_ns DESC … LIMIT 1 BY key`), so a replayed
//!   batch or a retried export is counted once before and after merges alike.
//! * Partitioned by UTC day of the row's time (`intDiv(ns, 86400e9)`), the same days as the
//!   embedded store: a time range reads only its days, and retention drops whole days.
//! * Plain columns only: enums are `Enum8`, times are `Int64` nanoseconds plus a `DateTime`
//!   materialized for people reading the tables, attributes are parallel arrays.
//! * With a cluster, each table is `<name>_local` on every node plus a `Distributed` table named
//!   `<name>` sharded by `cityHash64(trace_id)`: a run, its spans and its scores share a shard,
//!   so every per-trace read and every "newest version" choice is local to one shard.

use crate::{
    layout::Table,
    model::{Outcome, SpanKind, SpanStatus},
    time::{NANOS_PER_DAY, NANOS_PER_HOUR},
};

/// One column: its name and its ClickHouse type.
pub type Column = (&'static str, ColumnType);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int64,
    UInt64,
    UInt32,
    /// A boolean, 0 or 1.
    UInt8,
    NullableInt64,
    NullableFloat64,
    NullableUInt8,
    StringArray,
    Outcome,
    SpanKind,
    SpanStatus,
}

impl ColumnType {
    pub fn sql(self) -> String {
        match self {
            ColumnType::String => "String".into(),
            ColumnType::Int64 => "Int64".into(),
            ColumnType::UInt64 => "UInt64".into(),
            ColumnType::UInt32 => "UInt32".into(),
            ColumnType::UInt8 => "UInt8".into(),
            ColumnType::NullableInt64 => "Nullable(Int64)".into(),
            ColumnType::NullableFloat64 => "Nullable(Float64)".into(),
            ColumnType::NullableUInt8 => "Nullable(UInt8)".into(),
            ColumnType::StringArray => "Array(String)".into(),
            ColumnType::Outcome => enum8(Outcome::ALL.iter().map(|o| o.as_str())),
            ColumnType::SpanKind => enum8(SpanKind::ALL.iter().map(|k| k.as_str())),
            ColumnType::SpanStatus => enum8(SPAN_STATUSES.iter().map(|s| s.as_str())),
        }
    }
}

/// Span statuses in their `Enum8` order.
pub const SPAN_STATUSES: [SpanStatus; 3] = [SpanStatus::Unset, SpanStatus::Ok, SpanStatus::Error];

/// `Enum8('a' = 1, 'b' = 2, …)`: the codes are positions in the list, from 1.
fn enum8<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let values: Vec<String> = names
        .enumerate()
        .map(|(i, name)| format!("'{name}' = {}", i + 1))
        .collect();
    format!("Enum8({})", values.join(", "))
}

use ColumnType as T;

pub const RUN_COLUMNS: &[Column] = &[
    ("project_id", T::String),
    ("trace_id", T::String),
    ("session_id", T::String),
    ("user_hash", T::String),
    ("task_type", T::String),
    ("agent_name", T::String),
    ("agent_version", T::String),
    ("environment", T::String),
    ("release", T::String),
    ("start_time_ns", T::Int64),
    ("end_time_ns", T::Int64),
    ("outcome", T::Outcome),
    ("error_message", T::String),
    ("input", T::String),
    ("output", T::String),
    ("tags", T::StringArray),
    ("classification", T::StringArray),
    ("retention", T::String),
    ("audit_ref", T::String),
    ("synthesized", T::UInt8),
    ("ingested_at_ns", T::Int64),
];

pub const SPAN_COLUMNS: &[Column] = &[
    ("project_id", T::String),
    ("trace_id", T::String),
    ("span_id", T::String),
    ("parent_span_id", T::String),
    ("kind", T::SpanKind),
    ("name", T::String),
    ("start_time_ns", T::Int64),
    ("end_time_ns", T::Int64),
    ("status", T::SpanStatus),
    ("error_type", T::String),
    ("status_message", T::String),
    ("input", T::String),
    ("output", T::String),
    ("attr_keys", T::StringArray),
    ("attr_values", T::StringArray),
    ("provider", T::String),
    ("model", T::String),
    ("model_version", T::String),
    ("prompt_id", T::String),
    ("prompt_version", T::String),
    ("input_tokens", T::UInt64),
    ("output_tokens", T::UInt64),
    ("cached_input_tokens", T::UInt64),
    ("cache_write_tokens", T::UInt64),
    ("reasoning_tokens", T::UInt64),
    ("cost_nanos", T::NullableInt64),
    ("cost_source", T::String),
    ("tool_name", T::String),
    ("tool_version", T::String),
    ("tool_call_id", T::String),
    ("tool_args_hash", T::String),
    ("retry_count", T::UInt32),
    ("ingested_at_ns", T::Int64),
];

pub const SCORE_COLUMNS: &[Column] = &[
    ("project_id", T::String),
    ("trace_id", T::String),
    ("score_id", T::String),
    ("span_id", T::String),
    ("name", T::String),
    ("value", T::NullableFloat64),
    ("bool_value", T::NullableUInt8),
    ("string_value", T::String),
    ("source", T::String),
    ("comment", T::String),
    ("time_ns", T::Int64),
    ("ingested_at_ns", T::Int64),
];

pub fn columns(table: Table) -> &'static [Column] {
    match table {
        Table::Runs => RUN_COLUMNS,
        Table::Spans => SPAN_COLUMNS,
        Table::Scores => SCORE_COLUMNS,
    }
}

/// Where the tables go: one server, or local tables behind `Distributed` ones on a cluster,
/// optionally replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub database: String,
    pub cluster: Option<String>,
    /// With replication, the coordination-service path under which each table's replicas meet
    /// (`/clickhouse/tables/{shard}`: the servers' `{shard}` macro keeps shards apart); the
    /// database and table names are appended.
    pub replication: Option<String>,
}

impl Target {
    /// The table that holds the rows: `<name>` on one server, `<name>_local` on a cluster.
    pub fn storage_table(&self, table: Table) -> String {
        match self.cluster {
            Some(_) => format!("{}_local", table.name()),
            None => table.name().to_string(),
        }
    }

    /// `CREATE TABLE` statements for `table` on one node: the storage table, and with a cluster
    /// the `Distributed` table in front of it.
    pub fn create_table(&self, table: Table) -> Vec<String> {
        let db = &self.database;
        let storage = self.storage_table(table);
        let time = table.time_column();
        let columns: Vec<String> = columns(table)
            .iter()
            .map(|(name, ty)| format!("    {name} {}", ty.sql()))
            .chain(std::iter::once(format!(
                "    {} DateTime MATERIALIZED toDateTime(intDiv({time}, 1000000000))",
                time.trim_end_matches("_ns")
            )))
            .collect();
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS {db}.{storage} (\n{}\n) ENGINE = {}\nPARTITION BY intDiv({time}, {NANOS_PER_DAY})\nORDER BY ({})",
            columns.join(",\n"),
            self.replacing_engine(&storage),
            table.key_columns().join(", "),
        )];
        if let Some(cluster) = &self.cluster {
            statements.push(format!(
                "CREATE TABLE IF NOT EXISTS {db}.{name} AS {db}.{storage}\nENGINE = Distributed({cluster}, {db}, {storage}, cityHash64(trace_id))",
                name = table.name(),
            ));
        }
        statements
    }

    /// The engine of a storage table: `ReplacingMergeTree` keeping the newest version, its
    /// `Replicated` form (one replica per server, named by the servers' `{replica}` macro) when
    /// replicated.
    fn replacing_engine(&self, storage: &str) -> String {
        match &self.replication {
            None => "ReplacingMergeTree(ingested_at_ns)".to_string(),
            Some(prefix) => format!(
                "ReplicatedReplacingMergeTree('{prefix}/{}/{storage}', '{{replica}}', ingested_at_ns)",
                self.database
            ),
        }
    }
}

/// The `MATERIALIZED` column that records, in the server's clock, when a row was inserted:
/// sealing tells the rows a seal holds from the rows that came after it by this column
/// (`schemas/CLICKHOUSE.md`, "Sealed days"). A row stored before the column existed reads the
/// query's `now()`, so it is always taken for a late one: exact, only not sped up.
pub const INSERTED_AT: &str = "inserted_at";

/// The table that records each seal: which generation of a table's sealed day is current, and
/// from when on rows of that day are not in it.
pub const SEALS_TABLE: &str = "vigil_seals";

/// The column of [`SEALS_TABLE`] that records the highest block number among the raw day's
/// parts when the seal's copy began (`-1` for seals recorded before migration 5). Every insert
/// takes a higher number and merges and mutations keep it, so a day whose parts reach past it
/// has rows the seal may not hold: `system.parts` tells, without reading a row.
pub const SEAL_BLOCK: &str = "raw_max_block";

impl Target {
    /// The table of `table`'s sealed days: one version per key of each sealed day.
    pub fn sealed_table(&self, table: Table) -> String {
        format!("{}_sealed", self.storage_table(table))
    }

    /// Adds [`INSERTED_AT`] to `table` (an existing column is the migration already applied).
    pub fn add_inserted_at(&self, table: Table) -> String {
        format!(
            "ALTER TABLE {}.{} ADD COLUMN {INSERTED_AT} DateTime MATERIALIZED now()",
            self.database,
            self.storage_table(table)
        )
    }

    /// `CREATE TABLE` for `table`'s sealed days: its columns, the seal's `generation` and
    /// whether the key also has versions in a neighbouring day (`crossday`: then reads
    /// de-duplicate it like a fresh row). A plain `MergeTree` partitioned by (hour, generation):
    /// a superseded generation is dropped as whole partitions, and a read of a window skips the
    /// parts of other hours by their time column's range (a part of a whole day holds every
    /// hour).
    pub fn create_sealed_table(&self, table: Table) -> String {
        self.create_sealed_table_partitioned(table, NANOS_PER_HOUR)
    }

    /// The sealed tables as migration 3 created them, partitioned by (day, generation); kept as
    /// they were, as an applied migration's statements never change.
    pub fn create_sealed_table_by_day(&self, table: Table) -> String {
        self.create_sealed_table_partitioned(table, NANOS_PER_DAY)
    }

    /// Drops `table`'s sealed days (a migration re-creating them; the raw tables hold every row,
    /// and the days are sealed again).
    pub fn drop_sealed_table(&self, table: Table) -> String {
        format!(
            "DROP TABLE IF EXISTS {}.{}",
            self.database,
            self.sealed_table(table)
        )
    }

    /// Drops the record of seals.
    pub fn drop_seals_table(&self) -> String {
        format!("DROP TABLE IF EXISTS {}.{SEALS_TABLE}", self.database)
    }

    fn create_sealed_table_partitioned(&self, table: Table, period_ns: i64) -> String {
        let columns: Vec<String> = columns(table)
            .iter()
            .map(|(name, ty)| format!("    {name} {}", ty.sql()))
            .chain([
                "    generation UInt64".to_string(),
                "    crossday UInt8".to_string(),
            ])
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {}.{} (\n{}\n) ENGINE = MergeTree\nPARTITION BY (intDiv({}, {period_ns}), generation)\nORDER BY ({})",
            self.database,
            self.sealed_table(table),
            columns.join(",\n"),
            table.time_column(),
            table.key_columns().join(", "),
        )
    }

    /// `CREATE TABLE` for the record of seals ([`SEALS_TABLE`]).
    pub fn create_seals_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {}.{SEALS_TABLE} (table_name String, day Int64, generation UInt64, watermark DateTime, rows UInt64, crossday_rows UInt64, sealed_at DateTime) ENGINE = MergeTree ORDER BY (table_name, day, generation)",
            self.database
        )
    }

    /// Adds [`SEAL_BLOCK`] to the record of seals (an existing column is the migration already
    /// applied).
    pub fn add_seal_blocks(&self) -> String {
        format!(
            "ALTER TABLE {}.{SEALS_TABLE} ADD COLUMN {SEAL_BLOCK} Int64 DEFAULT -1",
            self.database
        )
    }
}

/// The table of the control state every Vigil node shares (`vigil-control`): versioned records.
pub const CONTROL_TABLE: &str = "vigil_control";

impl Target {
    /// `CREATE TABLE` for [`CONTROL_TABLE`]: one row per version of a record, the newest kept
    /// by merges. Replicated, every server of the cluster is a replica of the one table (its
    /// ZooKeeper path has no shard; a replica is named `<shard>-<replica>`), so each holds all
    /// of the state; without replication it is created on every node and used on the first.
    pub fn create_control_table(&self) -> String {
        let db = &self.database;
        let engine = match &self.replication {
            None => "ReplacingMergeTree(version)".to_string(),
            Some(prefix) => format!(
                "ReplicatedReplacingMergeTree('{}/{db}/{CONTROL_TABLE}', '{{shard}}-{{replica}}', version)",
                prefix.replace("{shard}", "all")
            ),
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{CONTROL_TABLE} (kind String, key String, version Int64, node String, deleted UInt8, body String) ENGINE = {engine} ORDER BY (kind, key)"
        )
    }
}

/// The column list of a table, for `SELECT` and `INSERT`.
pub fn column_list(table: Table) -> String {
    columns(table)
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_single_node_and_cluster_ddl() {
        let single = Target {
            database: "vigil".into(),
            cluster: None,
            replication: None,
        };
        let ddl = single.create_table(Table::Spans);
        assert_eq!(ddl.len(), 1);
        assert!(ddl[0].starts_with("CREATE TABLE IF NOT EXISTS vigil.spans ("));
        assert!(ddl[0].contains(
            "kind Enum8('model' = 1, 'tool' = 2, 'retrieval' = 3, 'agent' = 4, 'other' = 5)"
        ));
        assert!(ddl[0].contains(
            "start_time DateTime MATERIALIZED toDateTime(intDiv(start_time_ns, 1000000000))"
        ));
        assert!(ddl[0].ends_with("ORDER BY (project_id, trace_id, span_id)"));

        let cluster = Target {
            database: "vigil".into(),
            cluster: Some("two".into()),
            replication: None,
        };
        let ddl = cluster.create_table(Table::Scores);
        assert!(ddl[0].starts_with("CREATE TABLE IF NOT EXISTS vigil.scores_local ("));
        assert!(ddl[0].contains("ENGINE = ReplacingMergeTree(ingested_at_ns)\n"));
        assert!(ddl[0].contains("PARTITION BY intDiv(time_ns, 86400000000000)"));
        assert_eq!(
            ddl[1],
            "CREATE TABLE IF NOT EXISTS vigil.scores AS vigil.scores_local\nENGINE = Distributed(two, vigil, scores_local, cityHash64(trace_id))"
        );

        let replicated = Target {
            replication: Some("/clickhouse/tables/{shard}".into()),
            ..cluster
        };
        let ddl = replicated.create_table(Table::Runs);
        assert!(ddl[0].contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/vigil/runs_local', '{replica}', ingested_at_ns)\n"
        ));
        assert!(ddl[1].contains("Distributed(two, vigil, runs_local, cityHash64(trace_id))"));
    }
}
