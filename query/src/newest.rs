//! The newest version of each key, in SQL: the one step every aggregate over a store takes
//! before it counts anything (the metric engine, the compliance queries).

use vigil_schemas::{
    clickhouse::schema::columns,
    layout::Table,
    time::{NANOS_PER_DAY, day_of, day_string},
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
    /// Sealed days: one version per key.
    Sealed,
    /// What is not sealed: the rows that may hold several versions of a key.
    Fresh,
}

/// ClickHouse's sealed days as one query sees them. They are read once, before the query's
/// statements, so that every part of a statement agrees on which rows a seal holds. (The
/// embedded store's are those of the listing each statement runs over: [`Seals::listed`].)
///
/// A sealed day's rows are those of its generation in `<table>_sealed` (`crossday = 0`); its
/// fresh rows are those of the raw table inserted at or after the seal's watermark, plus the
/// sealed keys that also have a version in a neighbouring day (`crossday = 1`). Rows inserted in
/// the second the seals were read, or later, are left out of the sealed days' fresh rows, so
/// that the statement's several reads of the raw table see the same ones; the next query sees
/// them.
#[derive(Debug, Clone, Default)]
pub struct Seals {
    days: Vec<(Table, SealedDay)>,
    /// The days each table has raw rows in (its partitions).
    data_days: Vec<(Table, i64)>,
    /// The server's clock when the seals were read, in seconds.
    read_at: i64,
}

/// One sealed day of a table: its current generation, and the server time (s) from which on
/// rows inserted into the raw table may be missing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedDay {
    pub day: i64,
    pub generation: u64,
    pub watermark: i64,
    /// Whether the generation is all there is: no raw row was inserted since its copy began (no
    /// raw part of the day numbered past the block number the seal recorded, when the seals were
    /// read) and no key also has versions in a neighbouring day.
    pub clean: bool,
}

/// How a statement reads a table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Every stored version, the newest per key picked (ClickHouse without a sealed day).
    Everything,
    /// Only sealed rows, as they are: every day read is sealed and clean (ClickHouse).
    Sealed,
    /// The sealed rows of traces without a fresh row as they are, the newest per key of the
    /// rest.
    SealedAndFresh,
}

/// The seals a statement reads a table under, the days it reads (every day when `None`), and
/// the times it wants: the newest versions whose time column lies in `times`, when given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    seals: &'a Seals,
    days: Option<(i64, i64)>,
    times: Option<Times>,
}

/// A half-open range of a table's time column, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Times {
    pub from_ns: i64,
    pub to_ns: i64,
}

impl Times {
    /// The (UTC) days the range touches.
    pub(crate) fn days(self) -> (i64, i64) {
        (day_of(self.from_ns), day_of(self.to_ns - 1))
    }

    /// ` AND <time> >= <from> AND <time> < <to>`.
    pub(crate) fn condition(self, sql: &mut Sql, time: &'static str) {
        sql.push(" AND ");
        sql.push(time);
        sql.push(" >= ");
        sql.int(self.from_ns);
        sql.push(" AND ");
        sql.push(time);
        sql.push(" < ");
        sql.int(self.to_ns);
    }
}

impl Scope<'_> {
    /// Whether `table` is read as sealed rows alone, each as it is (ClickHouse).
    pub(crate) fn reads_sealed_only(self, table: Table) -> bool {
        self.reading(table) == Reading::Sealed
    }

    /// How ClickHouse reads `table` in this scope.
    fn reading(self, table: Table) -> Reading {
        let in_days = |day: i64| {
            self.days
                .is_none_or(|(first, last)| (first..=last).contains(&day))
        };
        let sealed: Vec<&SealedDay> = self.seals.of(table).filter(|d| in_days(d.day)).collect();
        if sealed.is_empty() {
            return Reading::Everything;
        }
        // Every day read that has rows is sealed and clean: nothing is fresh.
        let clean = |day: i64| sealed.iter().any(|d| d.day == day && d.clean);
        let nothing_fresh = self
            .seals
            .data_days
            .iter()
            .filter(|(t, day)| *t == table && in_days(*day))
            .all(|(_, day)| clean(*day));
        if nothing_fresh {
            Reading::Sealed
        } else {
            Reading::SealedAndFresh
        }
    }
}

/// No sealed day: ClickHouse de-duplicates every row; the embedded store reads its files.
pub static NO_SEALS: Seals = Seals {
    days: Vec::new(),
    data_days: Vec::new(),
    read_at: 0,
};

impl Seals {
    pub fn new(days: Vec<(Table, SealedDay)>, data_days: Vec<(Table, i64)>, read_at: i64) -> Seals {
        Seals {
            days,
            data_days,
            read_at,
        }
    }

    /// The embedded store's sealed days as one statement's listing shows them: `(table, day,
    /// clean)` for each partition holding a sealed file, clean when no other data file lies
    /// beside it; `data_days`, every partition holding a data file. They only tell which days
    /// may be read as they are: the statement's tables of files already name its sealed and
    /// fresh files, so the days carry no generation or watermark.
    pub(crate) fn listed(sealed: Vec<(Table, i64, bool)>, data_days: Vec<(Table, i64)>) -> Seals {
        let days = sealed
            .into_iter()
            .map(|(table, day, clean)| {
                let day = SealedDay {
                    day,
                    generation: 0,
                    watermark: 0,
                    clean,
                };
                (table, day)
            })
            .collect();
        Seals {
            days,
            data_days,
            read_at: 0,
        }
    }

    fn of(&self, table: Table) -> impl Iterator<Item = &SealedDay> {
        self.days
            .iter()
            .filter(move |(t, _)| *t == table)
            .map(|(_, day)| day)
    }

    /// Whether a day of `table` is sealed.
    pub(crate) fn any(&self, table: Table) -> bool {
        self.of(table).next().is_some()
    }

    /// These seals, for a statement reading the days `first..=last` (every day when `None`).
    pub(crate) fn scope(&self, days: Option<(i64, i64)>) -> Scope<'_> {
        Scope {
            seals: self,
            days,
            times: None,
        }
    }

    /// These seals, for a statement that wants the newest versions whose time column lies in
    /// `times`: it reads the whole days of the range where versions are compared (a key's
    /// versions may lie on both sides of its bounds), and only the range where a row is its
    /// key's only version, so that a store skips what lies outside (the sealed files' row groups
    /// and ClickHouse's sealed partitions are by hour).
    pub(crate) fn scope_of(&self, times: Times) -> Scope<'_> {
        Scope {
            seals: self,
            days: Some(times.days()),
            times: Some(times),
        }
    }

    /// `crossday = … AND generation IN (…) AND `: the rows of the current generations of
    /// `table`'s sealed days whose keys cross midnight, or the others.
    fn generations(&self, sql: &mut Sql, table: Table, crossday: bool) {
        sql.push(if crossday {
            "crossday = 1"
        } else {
            "crossday = 0"
        });
        sql.push(" AND generation IN (");
        for (i, day) in self.of(table).enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.int(day.generation as i64);
        }
        sql.push(") AND ");
    }

    /// ` AND …`: leaves out the raw rows of sealed days that their seal holds, and those
    /// inserted since the seals were read. A clean day is left out whole, by its time range, so
    /// that ClickHouse skips its partition.
    fn not_sealed(&self, sql: &mut Sql, table: Table) {
        let time = table.time_column();
        for day in self.of(table).filter(|d| d.clean) {
            sql.push(" AND (");
            sql.push(time);
            sql.push(" < ");
            sql.int(day.day * NANOS_PER_DAY);
            sql.push(" OR ");
            sql.push(time);
            sql.push(" >= ");
            sql.int((day.day + 1) * NANOS_PER_DAY);
            sql.push(")");
        }
        sql.push(" AND NOT (0");
        for day in self.of(table).filter(|d| !d.clean) {
            sql.push(" OR (intDiv(");
            sql.push(time);
            sql.push(", 86400000000000) = ");
            sql.int(day.day);
            sql.push(" AND (toInt64(toUInt32(inserted_at)) < ");
            sql.int(day.watermark);
            sql.push(" OR toInt64(toUInt32(inserted_at)) >= ");
            sql.int(self.read_at);
            sql.push("))");
        }
        sql.push(")");
    }
}

/// A relation a statement reads a table's rows from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub table: Table,
    pub part: Part,
    /// ClickHouse's seals, when the part is read from its tables; `None` for the embedded
    /// store's tables of files.
    pub seals: Option<&'a Seals>,
}

impl Source<'_> {
    pub(crate) fn all(table: Table) -> Source<'static> {
        Source {
            table,
            part: Part::All,
            seals: None,
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

    /// ` FROM <the relation> WHERE <conditions>`; `conditions` may be written more than once.
    pub(crate) fn rows(self, sql: &mut Sql, conditions: impl Fn(&mut Sql)) {
        // ` FROM <table> WHERE <visibility> AND <conditions>`.
        let from = |sql: &mut Sql, source: Source, visibility: &dyn Fn(&mut Sql)| {
            sql.push(" FROM ");
            sql.push(source.name());
            sql.push(" WHERE ");
            visibility(sql);
            conditions(sql);
        };
        let sealed = Source {
            part: Part::Sealed,
            ..self
        };
        match (self.part, self.seals) {
            (Part::All, _) | (_, None) => from(sql, self, &|_| {}),
            (Part::Sealed, Some(seals)) => {
                from(sql, self, &|sql| seals.generations(sql, self.table, false));
            }
            (Part::Fresh, Some(seals)) => {
                let columns: Vec<&'static str> =
                    columns(self.table).iter().map(|(name, _)| *name).collect();
                sql.push(" FROM (SELECT ");
                sql.list(&columns, "");
                from(sql, Source::all(self.table), &|sql| {
                    sql.push("1 = 1");
                    seals.not_sealed(sql, self.table);
                    sql.push(" AND ");
                });
                sql.push(" UNION ALL SELECT ");
                sql.list(&columns, "");
                from(sql, sealed, &|sql| seals.generations(sql, self.table, true));
                sql.push(") WHERE 1 = 1");
            }
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
/// `table` among the rows `rows_of` writes (` FROM <source> WHERE …` through [`Source::rows`],
/// cheap conditions: it may be written several times), of the traces `traces` selects
/// (`SELECT trace_id …`, written once) when given.
///
/// Only what may hold several versions is de-duplicated: the sealed rows of traces without a
/// fresh row are read as they are; the sealed rows of the other traces and every fresh row are
/// grouped per key and the newest kept. The embedded store always reads so (its file tables);
/// ClickHouse when `scope` has a sealed day of `table` among the statement's days; when every
/// day it reads is sealed and clean, it reads the sealed rows alone, as they are; and without a
/// sealed day, it picks the newest version among all rows.
///
/// When `scope` has times, only the newest versions whose time column lies in them are kept:
/// rows read as they are are narrowed as they are read (where the stores skip the hours outside),
/// the others once their newest version is picked, never before (a newer version outside the
/// range must still hide an older one inside).
///
/// Each store picks the newest in its fastest way: ClickHouse sorts the versions (`ORDER BY
/// <version order> DESC LIMIT 1 BY key`; `argMax` per column was slower, BENCHMARKS.md),
/// DataFusion takes `first_value(c ORDER BY <version order> DESC)` per key (a `row_number()`
/// window was 2.5x slower). Both keep the same row.
pub(crate) fn newest_versions(
    sql: &mut Sql,
    dialect: Dialect,
    scope: Scope,
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
    // The columns read inside: also the time column when the range is applied to the newest
    // versions picked.
    let time = table.time_column();
    let mut read = values.clone();
    if scope.times.is_some() && !read.contains(&time) {
        read.push(time);
    }
    assert!(read.len() <= MAX_NEWEST_COLUMNS, "too many newest columns");
    let of_traces = |sql: &mut Sql| {
        if let Some(traces) = traces {
            sql.push(" AND trace_id IN (");
            traces(sql);
            sql.push(")");
        }
    };
    let in_times = |sql: &mut Sql| {
        if let Some(times) = scope.times {
            times.condition(sql, time);
        }
    };
    let select = |sql: &mut Sql, columns: &[&'static str]| {
        sql.push("SELECT ");
        sql.list(keys, "");
        for column in columns {
            sql.push(", ");
            sql.push(column);
        }
    };
    // `SELECT *`, or the columns asked for where the time column was added.
    let select_asked = |sql: &mut Sql| {
        if read.len() == values.len() {
            sql.push("SELECT *");
        } else {
            select(sql, &values);
        }
    };
    let reading = match dialect {
        Dialect::ClickHouse => scope.reading(table),
        Dialect::DataFusion => Reading::SealedAndFresh,
    };
    let seals = (dialect == Dialect::ClickHouse).then_some(scope.seals);
    let sealed = Source {
        table,
        part: Part::Sealed,
        seals,
    };
    match reading {
        Reading::Everything => {
            sql.push("(");
            if scope.times.is_some() {
                select_asked(sql);
                sql.push(" FROM (");
            }
            select(sql, &read);
            rows_of(sql, Source::all(table));
            of_traces(sql);
            newest_per_key(sql, table);
            if scope.times.is_some() {
                sql.push(") AS kept WHERE 1 = 1");
                in_times(sql);
            }
            sql.push(")");
            return;
        }
        Reading::Sealed => {
            // Each row its key's only version: narrowed to the range as it is read.
            sql.push("(");
            select(sql, &values);
            rows_of(sql, sealed);
            in_times(sql);
            of_traces(sql);
            sql.push(")");
            return;
        }
        Reading::SealedAndFresh => {}
    }
    let fresh = Source {
        table,
        part: Part::Fresh,
        seals,
    };
    let fresh_traces = |sql: &mut Sql| {
        sql.push("(SELECT trace_id");
        rows_of(sql, fresh);
        sql.push(")");
    };
    let mut versioned = read.clone();
    for column in table.version_order() {
        if !versioned.contains(column) {
            versioned.push(column);
        }
    }
    // Every version that may not be the only one: the sealed rows of traces with a fresh row,
    // and the fresh rows.
    let versions = |sql: &mut Sql| {
        sql.push(" FROM (");
        select(sql, &versioned);
        rows_of(sql, sealed);
        sql.push(" AND trace_id IN ");
        fresh_traces(sql);
        sql.push(" UNION ALL ");
        select(sql, &versioned);
        rows_of(sql, fresh);
        sql.push(") AS versions");
    };
    sql.push("(");
    select_asked(sql);
    sql.push(" FROM (");
    // The sealed rows of traces without a fresh row: one version per key, narrowed to the
    // range as they are read.
    select(sql, &read);
    rows_of(sql, sealed);
    in_times(sql);
    sql.push(" AND trace_id NOT IN ");
    fresh_traces(sql);
    sql.push(" UNION ALL ");
    match dialect {
        Dialect::ClickHouse => {
            sql.push("SELECT * FROM (");
            select(sql, &read);
            versions(sql);
            newest_per_key(sql, table);
            sql.push(")");
        }
        Dialect::DataFusion => {
            // Grouped per key: the outer level names the columns again.
            sql.push("SELECT ");
            sql.list(keys, "");
            for (i, column) in read.iter().enumerate() {
                sql.push(", ");
                sql.push(NEWEST_ALIASES[i]);
                sql.push(" AS ");
                sql.push(column);
            }
            sql.push(" FROM (SELECT ");
            sql.list(keys, "");
            for (i, column) in read.iter().enumerate() {
                sql.push(", first_value(");
                sql.push(column);
                sql.push(" ORDER BY ");
                sql.list(table.version_order(), " DESC");
                sql.push(") AS ");
                sql.push(NEWEST_ALIASES[i]);
            }
            versions(sql);
            sql.push(" GROUP BY ");
            sql.list(keys, "");
            sql.push(") AS newest");
        }
    }
    // The newest versions of the rest, kept when they lie in the range.
    sql.push(") AS kept WHERE 1 = 1");
    in_times(sql);
    of_traces(sql);
    sql.push(")");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Placeholders;

    fn newest_runs(dialect: Dialect, seals: &Seals) -> String {
        newest_runs_in(dialect, seals, Some((20_000, 20_000)))
    }

    fn newest_runs_in(dialect: Dialect, seals: &Seals, days: Option<(i64, i64)>) -> String {
        let mut sql = Sql::new(Placeholders::Question, "SELECT * FROM ");
        let rows_of = |sql: &mut Sql, source: Source| {
            source.rows(sql, |sql| {
                sql.push("project_id = ");
                sql.text("p");
            })
        };
        newest_versions(
            &mut sql,
            dialect,
            seals.scope(days),
            Table::Runs,
            &["outcome"],
            rows_of,
            None,
        );
        sql.text
    }

    #[test]
    fn clickhouse_reads_sealed_days_as_they_are_and_the_rest_by_watermark() {
        let unsealed = newest_runs(Dialect::ClickHouse, &NO_SEALS);
        assert!(unsealed.contains("LIMIT 1 BY trace_id"), "{unsealed}");
        assert!(!unsealed.contains("_sealed"), "{unsealed}");

        let day = SealedDay {
            day: 20_000,
            generation: 7,
            watermark: 1_000,
            clean: false,
        };
        let seals = Seals::new(vec![(Table::Runs, day)], vec![(Table::Runs, 20_000)], 2_000);
        let sealed = newest_runs(Dialect::ClickHouse, &seals);
        // The plain sealed rows, of traces without a fresh row.
        assert!(
            sealed.contains(
                "FROM runs_sealed WHERE crossday = 0 AND generation IN (?) AND project_id = ? AND trace_id NOT IN"
            ),
            "{sealed}"
        );
        // Fresh: raw rows but those the seal holds or inserted since the seals were read, and
        // the sealed keys with versions in a neighbouring day.
        assert!(
            sealed.contains(
                "AND NOT (0 OR (intDiv(start_time_ns, 86400000000000) = ? AND (toInt64(toUInt32(inserted_at)) < ? OR toInt64(toUInt32(inserted_at)) >= ?))"
            ),
            "{sealed}"
        );
        assert!(sealed.contains("WHERE crossday = 1"), "{sealed}");
        assert!(sealed.contains("LIMIT 1 BY trace_id"), "{sealed}");
        // Seals of another table, or of days not read, change nothing.
        let spans_only = Seals::new(vec![(Table::Spans, day)], vec![], 2_000);
        assert_eq!(newest_runs(Dialect::ClickHouse, &spans_only), unsealed);
        assert_eq!(
            newest_runs_in(Dialect::ClickHouse, &seals, Some((20_001, 20_002))),
            unsealed
        );

        // Every day read sealed and clean: the sealed rows alone, as they are.
        let clean_day = SealedDay { clean: true, ..day };
        let clean = Seals::new(
            vec![(Table::Runs, clean_day)],
            vec![(Table::Runs, 19_999), (Table::Runs, 20_000)],
            2_000,
        );
        let plain = newest_runs(Dialect::ClickHouse, &clean);
        assert_eq!(
            plain,
            "SELECT * FROM (SELECT trace_id, outcome FROM runs_sealed WHERE crossday = 0 AND generation IN (?) AND project_id = ?)"
        );
        // But not when a day read has rows and is not sealed: then the clean day's raw rows
        // are left out by its time range.
        for days in [Some((19_999, 20_000)), None] {
            let split = newest_runs_in(Dialect::ClickHouse, &clean, days);
            assert!(
                split.contains("AND (start_time_ns < ? OR start_time_ns >= ?) AND NOT (0)"),
                "{split}"
            );
        }
    }
}
