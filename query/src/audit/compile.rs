//! The SQL of the compliance queries, for both stores (the values bound, never spliced).
//!
//! Every answer is computed over one relation, the *affected runs*: the newest version of each
//! run that started in the range, passes the run filters, and — when there are call filters —
//! made a model call (in its newest version) matching every model-call filter and a tool call
//! matching every tool-call filter. Each step first narrows to the keys having *any* version
//! that matches (cheap, selective), then picks the newest version of just those keys and
//! applies the filters again, so an older version never matches in place of a newer one.
//!
//! Versions of one run (or span) are taken to start within a day of each other (a synthesized
//! run is replaced by its real root, a retried export re-sends the same times), as the run list
//! does: the newest-version step reads the range's days widened by one day on each side.

use vigil_schemas::{layout::Table, time::day_of};

use super::request::{AffectedPlan, SessionPageRequest};
use crate::{
    metrics::{
        Dialect, Field, Subject,
        compile::{column, distinct_nonempty, filter_conditions},
    },
    newest::{Part, Seals, Source, newest_versions},
    sql::{Placeholders, Sql},
};

/// The run columns an export carries, in [`super::AffectedRun`]'s order.
pub(crate) const EXPORT_COLUMNS: [&str; 14] = [
    "trace_id",
    "session_id",
    "user_hash",
    "agent_name",
    "agent_version",
    "task_type",
    "environment",
    "release",
    "start_time_ns",
    "end_time_ns",
    "outcome",
    "classification",
    "retention",
    "audit_ref",
];

/// Columns of the affected runs the aggregates read (the run filters' columns are added).
const SUMMARY_COLUMNS: [&str; 4] = ["trace_id", "session_id", "user_hash", "start_time_ns"];

/// Writes the compliance statements of one plan for one project.
pub(crate) struct AuditSql<'a> {
    plan: &'a AffectedPlan,
    project_id: &'a str,
    dialect: Dialect,
    seals: &'a Seals,
}

impl<'a> AuditSql<'a> {
    /// ClickHouse reads the sealed days in `seals` as sealed.
    pub(crate) fn new(
        plan: &'a AffectedPlan,
        project_id: &'a str,
        dialect: Dialect,
        seals: &'a Seals,
    ) -> Self {
        AuditSql {
            plan,
            project_id,
            dialect,
            seals,
        }
    }

    fn sql(&self, fragment: &'static str) -> Sql {
        let placeholders = match self.dialect {
            Dialect::ClickHouse => Placeholders::Question,
            Dialect::DataFusion => Placeholders::Numbered,
        };
        Sql::new(placeholders, fragment)
    }

    /// One row: `runs, sessions, users, first_seen, last_seen`.
    pub(crate) fn summary(&self) -> Sql {
        let mut sql = self.sql("SELECT count(*) AS runs, ");
        self.distinct_nonempty(&mut sql, "session_id");
        sql.push(" AS sessions, ");
        self.distinct_nonempty(&mut sql, "user_hash");
        sql.push(" AS users, min(start_time_ns) AS first_seen, max(start_time_ns) AS last_seen");
        self.affected(&mut sql, &SUMMARY_COLUMNS);
        sql
    }

    /// Per UTC day (days since the epoch): `day, runs, sessions, users`, by day.
    pub(crate) fn by_day(&self) -> Sql {
        let mut sql = self.sql("SELECT ");
        self.day_expr(&mut sql);
        sql.push(" AS day, count(*) AS runs, ");
        self.distinct_nonempty(&mut sql, "session_id");
        sql.push(" AS sessions, ");
        self.distinct_nonempty(&mut sql, "user_hash");
        sql.push(" AS users");
        self.affected(&mut sql, &SUMMARY_COLUMNS);
        sql.push(" GROUP BY day ORDER BY day");
        sql
    }

    /// `day, session_id, user_hash, runs, first_seen, last_seen`: the affected runs folded by
    /// day, session and user, at most `cap + 1` rows. Everything an investigation answers can
    /// be computed from these rows, so one pass over the data answers it when they are few.
    pub(crate) fn digest(&self, cap: usize) -> Sql {
        let mut sql = self.sql("SELECT ");
        self.day_expr(&mut sql);
        sql.push(
            " AS day, session_id, user_hash, count(*) AS runs, min(start_time_ns) AS first_seen, max(start_time_ns) AS last_seen",
        );
        self.affected(&mut sql, &SUMMARY_COLUMNS);
        sql.push(" GROUP BY day, session_id, user_hash LIMIT ");
        sql.int(cap as i64 + 1);
        sql
    }

    /// `day, runs` by day: all an export needs to cut itself into chunks, without the distinct
    /// counts (whose memory grows with the runs).
    pub(crate) fn day_runs(&self) -> Sql {
        let mut sql = self.sql("SELECT ");
        self.day_expr(&mut sql);
        sql.push(" AS day, count(*) AS runs");
        self.affected(&mut sql, &["trace_id", "start_time_ns"]);
        sql.push(" GROUP BY day ORDER BY day");
        sql
    }

    /// One page of `session_id, user_hash, runs, first_seen, last_seen`, by first run, session
    /// id, user hash; `limit + 1` rows, to tell whether another page follows.
    pub(crate) fn sessions(&self, page: &SessionPageRequest) -> Sql {
        let mut sql = self.sql(
            "SELECT session_id, user_hash, runs, first_seen, last_seen FROM (SELECT session_id, user_hash, count(*) AS runs, min(start_time_ns) AS first_seen, max(start_time_ns) AS last_seen",
        );
        self.affected(&mut sql, &SUMMARY_COLUMNS);
        sql.push(" GROUP BY session_id, user_hash) AS items");
        if let Some(after) = &page.after {
            sql.push(" WHERE first_seen > ");
            sql.int(after.first_seen_ns);
            sql.push(" OR (first_seen = ");
            sql.int(after.first_seen_ns);
            sql.push(" AND (session_id > ");
            sql.text(&after.session_id);
            sql.push(" OR (session_id = ");
            sql.text(&after.session_id);
            sql.push(" AND user_hash > ");
            sql.text(&after.user_hash);
            sql.push(")))");
        }
        sql.push(" ORDER BY first_seen, session_id, user_hash LIMIT ");
        sql.int(page.limit as i64 + 1);
        sql
    }

    /// Every affected run ([`EXPORT_COLUMNS`]), by start time then trace id.
    pub(crate) fn runs(&self) -> Sql {
        let mut sql = self.sql("SELECT ");
        for (i, column) in EXPORT_COLUMNS.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            if *column == "outcome" && self.dialect == Dialect::ClickHouse {
                sql.push("toString(outcome) AS outcome");
            } else {
                sql.push(column);
            }
        }
        self.affected(&mut sql, &EXPORT_COLUMNS);
        sql.push(" ORDER BY start_time_ns, trace_id");
        sql
    }

    /// ` FROM …`: the affected runs (module docs), with at least `columns`.
    ///
    /// Where every day read is sealed and clean (ClickHouse's seals; the embedded store's
    /// listing, [`Seals::listed`]), each sealed row is its run's only version: the affected runs
    /// are then the sealed rows in the range that pass the filters, read in place (` FROM
    /// runs_sealed WHERE …`) rather than through the candidates and a subquery. ClickHouse 18.16
    /// aggregates the same read about twice as fast in place (the totals of a tool
    /// investigation over 1,000,000 sealed runs: 1.22–1.28 s in a subquery, 0.58–0.63 s in
    /// place; BENCHMARKS.md), and neither store reads the raw runs for candidates.
    fn affected(&self, sql: &mut Sql, columns: &[&'static str]) {
        let scope = self.seals.scope(self.days(true));
        if scope.reads_sealed_only(Table::Runs) {
            let sealed = Source {
                table: Table::Runs,
                part: Part::Sealed,
                seals: (self.dialect == Dialect::ClickHouse).then_some(self.seals),
            };
            self.rows(sql, sealed, false);
            self.run_conditions(sql);
            self.with_matching_calls(sql);
            return;
        }
        let mut columns = columns.to_vec();
        for field in self.plan.filters.keys() {
            if field.subject() == Subject::Run && !columns.contains(&column(*field)) {
                columns.push(column(*field));
            }
        }
        sql.push(" FROM (SELECT ");
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push(column);
        }
        sql.push(" FROM ");
        // The candidates: traces with any version passing the conditions (cheap, selective).
        let candidates = |sql: &mut Sql| {
            sql.push("SELECT trace_id");
            self.rows(sql, Source::all(Table::Runs), false);
            self.run_conditions(sql);
            self.with_matching_calls(sql);
        };
        newest_versions(
            sql,
            self.dialect,
            scope,
            Table::Runs,
            &columns,
            |sql, source| self.rows(sql, source, true),
            Some(&candidates),
        );
        sql.push(" AS runs_v WHERE 1 = 1");
        self.run_conditions(sql);
        sql.push(") AS affected");
    }

    /// ` AND trace_id IN (…)` for each kind of call filtered on: the run made a call of that
    /// kind matching every filter on it.
    fn with_matching_calls(&self, sql: &mut Sql) {
        for subject in [Subject::ModelCall, Subject::ToolCall] {
            if self.filters_on(subject) {
                sql.push(" AND trace_id IN (");
                self.matching_calls(sql, subject);
                sql.push(")");
            }
        }
    }

    /// `SELECT trace_id …`: the traces having a call of `subject`, in its newest version,
    /// matching every filter on that subject.
    ///
    /// ClickHouse groups only the calls with a version that matches, and keeps a call when its
    /// newest version matches (`argMax` of the condition), which on 10,000,000 spans took 0.85 s
    /// where sorting the versions (`LIMIT 1 BY`) took 1.46 s. The embedded store reads the
    /// newest versions the way it always does ([`newest_versions`]: sealed calls as they are),
    /// then filters them.
    fn matching_calls(&self, sql: &mut Sql, subject: Subject) {
        let kind = match subject {
            Subject::ModelCall => "kind = 'model'",
            _ => "kind = 'tool'",
        };
        if self.dialect == Dialect::DataFusion || self.seals.any(Table::Spans) {
            let mut columns = vec!["trace_id", "span_id", "kind"];
            for field in self.plan.filters.keys() {
                if field.subject() == subject && !columns.contains(&column(*field)) {
                    columns.push(column(*field));
                }
            }
            sql.push("SELECT trace_id FROM ");
            newest_versions(
                sql,
                self.dialect,
                self.seals.scope(self.days(true)),
                Table::Spans,
                &columns,
                |sql, source| self.rows(sql, source, true),
                None,
            );
            sql.push(" AS calls WHERE ");
            sql.push(kind);
            filter_conditions(sql, self.dialect, &self.plan.filters, subject);
            return;
        }
        let spans = Source::all(Table::Spans);
        sql.push("SELECT trace_id");
        self.rows(sql, spans, true);
        sql.push(" AND trace_id IN (SELECT trace_id");
        self.rows(sql, spans, true);
        sql.push(" AND ");
        sql.push(kind);
        filter_conditions(sql, self.dialect, &self.plan.filters, subject);
        sql.push(") GROUP BY trace_id, span_id HAVING argMax(");
        sql.push(kind);
        filter_conditions(sql, self.dialect, &self.plan.filters, subject);
        sql.push(", (");
        sql.list(Table::Spans.version_order(), "");
        sql.push(")) = 1");
    }

    /// ` AND start_time_ns in the range AND <run filters>`.
    fn run_conditions(&self, sql: &mut Sql) {
        if let Some((from, to)) = self.plan.range {
            sql.push(" AND start_time_ns >= ");
            sql.int(from);
            sql.push(" AND start_time_ns < ");
            sql.int(to);
        }
        filter_conditions(sql, self.dialect, &self.plan.filters, Subject::Run);
    }

    /// ` FROM <source> WHERE project_id = … AND <days>`: the range's days, widened by one on
    /// each side when `widened`; every day without a range.
    fn rows(&self, sql: &mut Sql, source: Source, widened: bool) {
        source.rows(sql, |sql| {
            sql.push("project_id = ");
            sql.text(self.project_id);
            if let Some((first, last)) = self.days(widened) {
                source.days(sql, self.dialect, first, last);
            }
        });
    }

    /// The range's days, widened by one on each side when `widened`; every day without a
    /// range.
    fn days(&self, widened: bool) -> Option<(i64, i64)> {
        let (from, to) = self.plan.range?;
        let widen = i64::from(widened);
        Some((day_of(from) - widen, day_of(to - 1) + widen))
    }

    fn filters_on(&self, subject: Subject) -> bool {
        self.plan
            .filters
            .keys()
            .any(|f: &Field| f.subject() == subject)
    }

    fn day_expr(&self, sql: &mut Sql) {
        sql.push(match self.dialect {
            Dialect::ClickHouse => "toInt64(intDiv(start_time_ns, 86400000000000))",
            Dialect::DataFusion => "(start_time_ns / 86400000000000)",
        });
    }

    fn distinct_nonempty(&self, sql: &mut Sql, column: &'static str) {
        distinct_nonempty(sql, self.dialect, column);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use vigil_schemas::time::NANOS_PER_DAY;

    use super::*;
    use crate::{
        newest::{SealedDay, Seals},
        sql::Value,
    };

    #[test]
    fn request_values_are_bound_in_every_statement() {
        let hostile = "v7'); DROP TABLE runs; --".to_string();
        let plan = AffectedPlan {
            range: Some((0, NANOS_PER_DAY)),
            filters: BTreeMap::from([
                (Field::PromptVersion, vec![hostile.clone()]),
                (Field::ToolVersion, vec![hostile.clone()]),
                (Field::Classification, vec![hostile.clone()]),
                (Field::Agent, vec![hostile.clone()]),
            ]),
        };
        for dialect in [Dialect::ClickHouse, Dialect::DataFusion] {
            let audit = AuditSql::new(&plan, "p'", dialect, &crate::newest::NO_SEALS);
            let page = SessionPageRequest {
                limit: 10,
                after: None,
            };
            for sql in [
                audit.summary(),
                audit.by_day(),
                audit.sessions(&page),
                audit.runs(),
            ] {
                assert!(!sql.text.contains("DROP"), "{}", sql.text);
                assert!(!sql.text.contains("p'"), "{}", sql.text);
                assert!(sql.values.contains(&Value::Text(hostile.clone())));
            }
        }
    }

    #[test]
    fn clickhouse_reads_the_affected_runs_of_clean_sealed_days_in_place() {
        let plan = AffectedPlan {
            range: Some((20_000 * NANOS_PER_DAY, 20_001 * NANOS_PER_DAY)),
            filters: BTreeMap::from([
                (Field::Tool, vec!["sql.query".to_string()]),
                (Field::Agent, vec!["triage".to_string()]),
            ]),
        };
        let seals_of = |clean: bool| {
            let sealed = |table, day| {
                let day = SealedDay {
                    day,
                    generation: 7,
                    watermark: 1_000,
                    clean,
                };
                (table, day)
            };
            let days = 19_999..=20_001;
            Seals::new(
                days.clone()
                    .flat_map(|day| [sealed(Table::Runs, day), sealed(Table::Spans, day)])
                    .collect(),
                days.flat_map(|day| [(Table::Runs, day), (Table::Spans, day)])
                    .collect(),
                2_000,
            )
        };
        let summary =
            |dialect, seals: &Seals| AuditSql::new(&plan, "p", dialect, seals).summary().text;
        let (clean, unclean) = (seals_of(true), seals_of(false));
        // Every day read sealed and clean: the sealed runs in place (the embedded store's
        // sealed files hold no generations).
        let in_place = [
            (
                Dialect::ClickHouse,
                " AS last_seen FROM runs_sealed WHERE crossday = 0 AND generation IN (?, ?, ?) AND project_id = ? AND start_time_ns >= ? AND start_time_ns < ? AND start_time_ns >= ? AND start_time_ns < ? AND agent_name IN (?) AND trace_id IN (SELECT trace_id FROM (SELECT trace_id, span_id, kind, tool_name FROM spans_sealed",
            ),
            (
                Dialect::DataFusion,
                " AS last_seen FROM runs_sealed WHERE project_id = $1 AND start_time_ns >= $2",
            ),
        ];
        for (dialect, expected) in in_place {
            let text = summary(dialect, &clean);
            assert!(text.contains(expected), "{text}");
            assert!(
                !text.contains("runs_v") && !text.contains("FROM runs "),
                "{text}"
            );
            // A day read that is not clean (rows inserted since its seal, or keys across
            // midnight): the newest versions of the candidates, in a subquery, as before.
            let text = summary(dialect, &unclean);
            assert!(text.contains(") AS runs_v WHERE 1 = 1"), "{text}");
        }
        let text = summary(Dialect::ClickHouse, &unclean);
        assert!(text.contains("LIMIT 1 BY trace_id"), "{text}");
    }
}
