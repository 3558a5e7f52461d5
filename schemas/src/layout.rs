//! The embedded store's on-disk layout, shared by its writer (the collector's Parquet sink) and its
//! reader (the query service's DataFusion tables):
//!
//! ```text
//! <data dir>/store/
//!   runs/day=2026-11-23/part-<unix-ns>-<seq>.parquet     fresh: as written
//!   runs/day=2026-11-23/sealed-<unix-ns>-<seq>.parquet   sealed: the day, one version per key
//!   spans/day=…/…
//!   scores/day=…/…
//!   _compaction/<id>.json          compactions whose inputs are not yet deleted
//! ```
//!
//! A row lives in the partition of its day (UTC): `day_of(start_time_ns)` for runs and spans,
//! `day_of(time_ns)` for scores. Files are immutable once renamed to `*.parquet`; a file still
//! being written ends in `.parquet.tmp` and readers never look at it. The same key may sit in
//! several files (retries, replays, a compaction's grace window): readers keep, per key, the
//! version that sorts first by [`Table::version_order`].
//!
//! A partition holds *fresh* files (`part-…`: what the writer and the small-file compaction
//! wrote) and at most one *sealed* file that counts (`sealed-…`, the one whose name sorts last:
//! names grow with time). A sealed file holds one version per key: every row the partition had when
//! it was sealed, ordered by the hour of its time column, then by key, no row group spanning two
//! hours (so that a reader skips the hours outside its range by their statistics). Its keys are read without de-duplication unless a fresh
//! file of the same partition holds a row of the same trace (a version written after the seal,
//! or a fresh file merged into the seal and not deleted yet); then the trace's rows of both are
//! de-duplicated together. Older sealed files are superseded: kept for a grace period so that
//! queries already reading them finish, and never read by a new query ([`PartitionFiles`]).
//! Every data file is sorted by key, newest version first within a key (a sealed file within
//! each hour).
//!
//! A key's versions may sit in different days when its time moved (a run synthesized from its
//! first spans, replaced by its real root that started before midnight). Two sealed files must
//! never both hold a version of one key, so a seal keeps out the keys that also have a version
//! in the day before or after: it writes them to a fresh file (`crossday-…`) that every read
//! de-duplicates (a run's spans on both sides of midnight are different keys: they are sealed). Versions further apart than a day are not looked for: reads, like the run
//! list, count the newest version among the days they read, and a version moved by more than a
//! day could be counted in both days once both are sealed.
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;

use crate::{
    RunRow, ScoreRow, SpanRow,
    arrow::{runs_schema, scores_schema, spans_schema},
    time::{day_of, day_string, parse_rfc3339},
};

/// The name of the hive partition column: `day=YYYY-MM-DD`.
pub const PARTITION_COLUMN: &str = "day";
/// The extension of a finished data file.
pub const DATA_FILE_EXTENSION: &str = ".parquet";
/// The suffix of a data file still being written (`part-….parquet.tmp`).
pub const TEMP_FILE_SUFFIX: &str = ".tmp";
/// The name prefix of a fresh data file.
pub const FRESH_FILE_PREFIX: &str = "part-";
/// The name prefix of a sealed data file.
pub const SEALED_FILE_PREFIX: &str = "sealed-";
/// The name prefix of the fresh file a seal writes for the keys that also have a version in a
/// neighbouring day (see the module docs).
pub const CROSS_DAY_FILE_PREFIX: &str = "crossday-";

/// One of the store's three tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Runs,
    Spans,
    Scores,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Runs, Table::Spans, Table::Scores];

    /// The table's name: its directory and its name in queries.
    pub fn name(self) -> &'static str {
        match self {
            Table::Runs => "runs",
            Table::Spans => "spans",
            Table::Scores => "scores",
        }
    }

    /// The table of this name.
    pub fn named(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The Arrow schema of the table's files (without the `day` partition column).
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Runs => runs_schema(),
            Table::Spans => spans_schema(),
            Table::Scores => scores_schema(),
        }
    }

    /// The column whose day names a row's partition.
    pub fn time_column(self) -> &'static str {
        match self {
            Table::Runs | Table::Spans => "start_time_ns",
            Table::Scores => "time_ns",
        }
    }

    /// The columns that identify a row; several versions of one key may be stored.
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            Table::Runs => &["project_id", "trace_id"],
            Table::Spans => &["project_id", "trace_id", "span_id"],
            Table::Scores => &["project_id", "trace_id", "score_id"],
        }
    }

    /// Integer columns that order the versions of one key, all descending: the first version in
    /// this order is the one every read keeps. `ingested_at_ns` decides; the rest only break ties
    /// (two versions accepted in the same nanosecond), so that every reader and the compactor
    /// keep the same one.
    pub fn version_order(self) -> &'static [&'static str] {
        match self {
            Table::Runs | Table::Spans => &["ingested_at_ns", "end_time_ns", "start_time_ns"],
            Table::Scores => &["ingested_at_ns", "time_ns"],
        }
    }
}

/// A stored row that comes in versions, read in memory by the same rule as in SQL: its key is
/// [`Table::key_columns`], and of several versions of one key the one with the greatest
/// [`Versioned::version`] (the values of [`Table::version_order`], in that order) is kept.
pub trait Versioned {
    const TABLE: Table;

    /// The values of [`Table::key_columns`], in that order.
    fn key(&self) -> Vec<String>;

    /// The values of [`Table::version_order`], in that order.
    fn version(&self) -> Vec<i64>;
}

impl Versioned for RunRow {
    const TABLE: Table = Table::Runs;

    fn key(&self) -> Vec<String> {
        vec![self.project_id.clone(), self.trace_id.clone()]
    }

    fn version(&self) -> Vec<i64> {
        vec![self.ingested_at_ns, self.end_time_ns, self.start_time_ns]
    }
}

impl Versioned for SpanRow {
    const TABLE: Table = Table::Spans;

    fn key(&self) -> Vec<String> {
        vec![
            self.project_id.clone(),
            self.trace_id.clone(),
            self.span_id.clone(),
        ]
    }

    fn version(&self) -> Vec<i64> {
        vec![self.ingested_at_ns, self.end_time_ns, self.start_time_ns]
    }
}

impl Versioned for ScoreRow {
    const TABLE: Table = Table::Scores;

    fn key(&self) -> Vec<String> {
        vec![
            self.project_id.clone(),
            self.trace_id.clone(),
            self.score_id.clone(),
        ]
    }

    fn version(&self) -> Vec<i64> {
        vec![self.ingested_at_ns, self.time_ns]
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The partition day of a run or span (`start_time_ns`) or a score (`time_ns`).
pub fn partition_day(time_ns: i64) -> i64 {
    day_of(time_ns)
}

/// `day=YYYY-MM-DD`: the name of a partition directory.
pub fn partition_dir_name(day: i64) -> String {
    format!("{PARTITION_COLUMN}={}", day_string(day))
}

/// The day of a partition directory name (`day=2026-11-23`), if it is one.
pub fn parse_partition_dir_name(name: &str) -> Option<i64> {
    let date = name.strip_prefix(PARTITION_COLUMN)?.strip_prefix('=')?;
    if date.len() != 10 {
        return None;
    }
    let day = day_of(parse_rfc3339(date)?);
    // Reject dates that only parse by rolling over (2026-02-31).
    (day_string(day) == date).then_some(day)
}

/// The store's directories under a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedLayout {
    root: PathBuf,
}

impl EmbeddedLayout {
    /// The layout under `data_dir` (the store is `data_dir/store`).
    pub fn new(data_dir: impl AsRef<Path>) -> EmbeddedLayout {
        EmbeddedLayout {
            root: data_dir.as_ref().join("store"),
        }
    }

    /// `<data dir>/store`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `store/<table>`.
    pub fn table_dir(&self, table: Table) -> PathBuf {
        self.root.join(table.name())
    }

    /// `store/<table>/day=YYYY-MM-DD`.
    pub fn partition_dir(&self, table: Table, day: i64) -> PathBuf {
        self.table_dir(table).join(partition_dir_name(day))
    }

    /// `store/_compaction`: the records of compactions whose input files are not deleted yet.
    /// Outside every table directory, so no reader ever lists it.
    pub fn compaction_dir(&self) -> PathBuf {
        self.root.join("_compaction")
    }

    /// Creates the table directories (and the compaction directory) when missing, so that an
    /// empty store can be listed.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        for table in Table::ALL {
            std::fs::create_dir_all(self.table_dir(table))?;
        }
        std::fs::create_dir_all(self.compaction_dir())
    }
}

/// Whether a file name is a finished data file (`*.parquet`, not `*.parquet.tmp`).
pub fn is_data_file(name: &str) -> bool {
    name.ends_with(DATA_FILE_EXTENSION) && !name.starts_with('.')
}

/// A partition's data files as a reader takes them (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFiles<F> {
    /// The sealed file that counts: the newest.
    pub sealed: Option<F>,
    /// Older sealed files, replaced by `sealed` and waiting to be deleted.
    pub superseded: Vec<F>,
    /// Every other data file.
    pub fresh: Vec<F>,
}

impl<F> PartitionFiles<F> {
    /// Sorts a partition's data files, each named by `name`, into sealed, superseded and fresh.
    pub fn classify(files: Vec<F>, name: impl Fn(&F) -> &str) -> PartitionFiles<F> {
        let (mut sealed, fresh): (Vec<F>, Vec<F>) = files
            .into_iter()
            .partition(|f| name(f).starts_with(SEALED_FILE_PREFIX));
        sealed.sort_by(|a, b| name(a).cmp(name(b)));
        PartitionFiles {
            sealed: sealed.pop(),
            superseded: sealed,
            fresh,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::time::{NANOS_PER_DAY, days_from_civil};

    #[test]
    fn paths_follow_the_layout() {
        let layout = EmbeddedLayout::new("/data");
        let day = days_from_civil(2026, 11, 23);
        assert_eq!(
            layout.table_dir(Table::Spans),
            PathBuf::from("/data/store/spans")
        );
        assert_eq!(
            layout.partition_dir(Table::Runs, day),
            PathBuf::from("/data/store/runs/day=2026-11-23")
        );
        assert_eq!(parse_partition_dir_name("day=2026-11-23"), Some(day));
        assert_eq!(parse_partition_dir_name("day=2026-02-31"), None);
        assert_eq!(parse_partition_dir_name("hour=2026-11-23"), None);
        assert_eq!(partition_day(day * NANOS_PER_DAY + 5), day);
        assert_eq!(partition_day(day * NANOS_PER_DAY - 1), day - 1);
        assert!(is_data_file("part-1-0.parquet"));
        assert!(!is_data_file("part-1-0.parquet.tmp"));
    }

    #[test]
    fn the_newest_sealed_file_counts_and_older_ones_are_superseded() {
        let names = vec![
            "part-00000000000000000005-000001.parquet",
            "sealed-00000000000000000009-000002.parquet",
            "sealed-00000000000000000003-000000.parquet",
            "part-00000000000000000010-000003.parquet",
        ];
        let files = PartitionFiles::classify(names, |n| n);
        assert_eq!(
            files.sealed,
            Some("sealed-00000000000000000009-000002.parquet")
        );
        assert_eq!(
            files.superseded,
            vec!["sealed-00000000000000000003-000000.parquet"]
        );
        assert_eq!(
            files.fresh,
            vec![
                "part-00000000000000000005-000001.parquet",
                "part-00000000000000000010-000003.parquet"
            ]
        );
        let none = PartitionFiles::classify(vec!["part-1.parquet"], |n| n);
        assert_eq!(none.sealed, None);
    }

    #[test]
    fn tables_know_their_keys_and_time_columns() {
        for table in Table::ALL {
            let schema = table.schema();
            for column in table.key_columns().iter().chain(table.version_order()) {
                assert!(schema.field_with_name(column).is_ok(), "{table}.{column}");
            }
            assert!(schema.field_with_name(table.time_column()).is_ok());
            assert_eq!(table.version_order()[0], "ingested_at_ns");
        }
    }

    /// A row whose key and version columns (by name) hold distinct values reads them back, in
    /// order, through [`Versioned`]: the in-memory rule is the SQL one.
    fn reads_its_columns<T>()
    where
        T: Versioned + Default + serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut row = serde_json::to_value(T::default()).unwrap();
        let keys: Vec<String> = T::TABLE
            .key_columns()
            .iter()
            .map(|column| format!("{column}-value"))
            .collect();
        for (column, value) in T::TABLE.key_columns().iter().zip(&keys) {
            row[*column] = serde_json::json!(value);
        }
        let versions: Vec<i64> = (1..=T::TABLE.version_order().len() as i64)
            .map(|i| i * 10)
            .collect();
        for (column, value) in T::TABLE.version_order().iter().zip(&versions) {
            row[*column] = serde_json::json!(value);
        }
        let row: T = serde_json::from_value(row).unwrap();
        assert_eq!(row.key(), keys, "{}", T::TABLE);
        assert_eq!(row.version(), versions, "{}", T::TABLE);
    }

    #[test]
    fn rows_compare_versions_by_the_tables_columns() {
        reads_its_columns::<RunRow>();
        reads_its_columns::<SpanRow>();
        reads_its_columns::<ScoreRow>();
    }
}
