//! The embedded store's read side against Parquet files written here directly, the way the
//! collector's sink lays them out (this crate must not depend on the collector).

#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeSet, HashMap},
    fs::File,
    path::PathBuf,
};

use datafusion::{
    arrow::array::RecordBatch,
    parquet::{
        arrow::ArrowWriter,
        basic::{Compression, ZstdLevel},
        file::properties::WriterProperties,
        schema::types::ColumnPath,
    },
};
use vigil_query::{
    EmbeddedStore, ErrorKind, MAX_LIMIT, RunFilter, TraceStore,
    metrics::{Metric, MetricQuery, MetricValue},
    page_size,
};
use vigil_schemas::{
    IngestBatch, Outcome, RunRow, ScoreRow, SpanKind, SpanRow, SpanStatus,
    arrow::{runs_to_batch, scores_to_batch, spans_to_batch},
    layout::{EmbeddedLayout, Table, partition_day},
    time::{NANOS_PER_DAY, NANOS_PER_SECOND, days_from_civil, rfc3339},
};

const P: &str = "proj";

/// A store in a temporary directory, and a writer of files in its layout.
struct Fixture {
    _dir: tempfile::TempDir,
    layout: EmbeddedLayout,
    store: EmbeddedStore,
    files: usize,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        Fixture {
            layout: EmbeddedLayout::new(dir.path()),
            _dir: dir,
            store,
            files: 0,
        }
    }

    fn write_file(&mut self, table: Table, day: i64, batch: RecordBatch) -> PathBuf {
        let dir = self.layout.partition_dir(table, day);
        std::fs::create_dir_all(&dir).unwrap();
        self.files += 1;
        let path = dir.join(format!("part-{:020}-{:06}.parquet", 1_000 + self.files, 0));
        // As the sink writes them: zstd, and a bloom filter on trace_id for look-ups.
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_column_bloom_filter_enabled(ColumnPath::from("trace_id"), true)
            .build();
        let file = File::create(&path).unwrap();
        let mut writer = ArrowWriter::try_new(file, table.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path
    }

    /// Writes a batch as the sink does: one file per (table, day).
    fn write(&mut self, batch: IngestBatch) {
        let mut runs: HashMap<i64, Vec<RunRow>> = HashMap::new();
        for r in batch.runs {
            runs.entry(partition_day(r.start_time_ns))
                .or_default()
                .push(r);
        }
        for (day, rows) in runs {
            self.write_file(Table::Runs, day, runs_to_batch(&rows).unwrap());
        }
        let mut spans: HashMap<i64, Vec<SpanRow>> = HashMap::new();
        for s in batch.spans {
            spans
                .entry(partition_day(s.start_time_ns))
                .or_default()
                .push(s);
        }
        for (day, rows) in spans {
            self.write_file(Table::Spans, day, spans_to_batch(&rows).unwrap());
        }
        let mut scores: HashMap<i64, Vec<ScoreRow>> = HashMap::new();
        for s in batch.scores {
            scores.entry(partition_day(s.time_ns)).or_default().push(s);
        }
        for (day, rows) in scores {
            self.write_file(Table::Scores, day, scores_to_batch(&rows).unwrap());
        }
    }

    fn write_runs(&mut self, runs: Vec<RunRow>) {
        self.write(IngestBatch {
            runs,
            ..Default::default()
        });
    }

    /// Every run of a listing, page by page.
    async fn walk(&self, filter: &RunFilter, limit: usize) -> Vec<RunRow> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let page = self
                .store
                .list_runs(P, filter, Some(limit), cursor.as_deref())
                .await
                .unwrap();
            assert!(page.runs.len() <= limit);
            all.extend(page.runs);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return all,
            }
        }
        panic!("the listing never ended");
    }
}

fn day0() -> i64 {
    days_from_civil(2026, 11, 23)
}

fn at(day: i64, secs: i64) -> i64 {
    day * NANOS_PER_DAY + secs * NANOS_PER_SECOND
}

fn run(trace: &str, start: i64, ingested: i64) -> RunRow {
    RunRow {
        project_id: P.into(),
        trace_id: trace.into(),
        start_time_ns: start,
        end_time_ns: start + NANOS_PER_SECOND,
        ingested_at_ns: ingested,
        ..Default::default()
    }
}

fn span(trace: &str, id: &str, parent: &str, start: i64, ingested: i64) -> SpanRow {
    SpanRow {
        project_id: P.into(),
        trace_id: trace.into(),
        span_id: id.into(),
        parent_span_id: parent.into(),
        start_time_ns: start,
        end_time_ns: start + 1,
        ingested_at_ns: ingested,
        ..Default::default()
    }
}

fn score(trace: &str, id: &str, time: i64, ingested: i64, value: f64) -> ScoreRow {
    ScoreRow {
        project_id: P.into(),
        trace_id: trace.into(),
        score_id: id.into(),
        name: "quality".into(),
        value: Some(value),
        time_ns: time,
        ingested_at_ns: ingested,
        ..Default::default()
    }
}

fn ids(runs: &[RunRow]) -> Vec<&str> {
    runs.iter().map(|r| r.trace_id.as_str()).collect()
}

/// Listing order, computed independently: start time, then trace id, both descending.
fn newest_first(mut runs: Vec<RunRow>) -> Vec<RunRow> {
    runs.sort_by(|a, b| (b.start_time_ns, &b.trace_id).cmp(&(a.start_time_ns, &a.trace_id)));
    runs
}

#[tokio::test]
async fn an_empty_store_answers_empty() {
    let f = Fixture::new();
    f.store.health().await.unwrap();
    assert_eq!(f.store.get_run(P, "nope").await.unwrap(), None);
    let page = f
        .store
        .list_runs(P, &RunFilter::default(), None, None)
        .await
        .unwrap();
    assert!(page.runs.is_empty());
    assert_eq!(page.next_cursor, None);
    let filter = RunFilter {
        from_ns: Some(at(day0(), 0)),
        to_ns: Some(at(day0() + 1, 0)),
        model: Some("gpt".into()),
        ..Default::default()
    };
    assert!(
        f.store
            .list_runs(P, &filter, None, None)
            .await
            .unwrap()
            .runs
            .is_empty()
    );
    assert!(f.store.session(P, "s").await.unwrap().is_empty());
}

#[tokio::test]
async fn duplicates_across_files_are_returned_once_in_their_newest_version() {
    let mut f = Fixture::new();
    let d = day0();
    let version = |ingested: i64, outcome: Outcome, session: &str| RunRow {
        outcome,
        session_id: session.into(),
        output: format!("v{ingested}"),
        ..run("t1", at(d, 100), ingested)
    };
    // Written out of order, each version in its own file; one file repeats a version (replay).
    f.write_runs(vec![version(20, Outcome::Success, "s-new")]);
    f.write_runs(vec![version(10, Outcome::Failure, "s-old")]);
    f.write_runs(vec![
        version(20, Outcome::Success, "s-new"),
        run("t2", at(d, 50), 1),
    ]);
    f.write(IngestBatch {
        spans: vec![
            SpanRow {
                name: "old".into(),
                ..span("t1", "a", "", at(d, 100), 1)
            },
            span("t1", "b", "a", at(d, 101), 1),
        ],
        scores: vec![score("t1", "x", at(d, 200), 1, 0.0)],
        ..Default::default()
    });
    f.write(IngestBatch {
        spans: vec![
            SpanRow {
                name: "new".into(),
                ..span("t1", "a", "", at(d, 100), 2)
            },
            span("t1", "b", "a", at(d, 101), 1),
        ],
        scores: vec![score("t1", "x", at(d, 200), 2, 1.0)],
        ..Default::default()
    });

    let detail = f.store.get_run(P, "t1").await.unwrap().unwrap();
    let run = detail.run.unwrap();
    assert_eq!(
        (run.output.as_str(), run.outcome),
        ("v20", Outcome::Success)
    );
    assert_eq!(detail.spans.len(), 2);
    assert_eq!(detail.spans[0].name, "new");
    assert_eq!(detail.scores.len(), 1);
    assert_eq!(detail.scores[0].value, Some(1.0));

    let all = f.walk(&RunFilter::default(), 10).await;
    assert_eq!(ids(&all), vec!["t1", "t2"]);
    assert_eq!(all[0].output, "v20");

    // An old version never matches a filter its newest version does not.
    let failed = RunFilter {
        outcome: Some("failure".into()),
        ..Default::default()
    };
    assert!(f.walk(&failed, 10).await.is_empty());
    let old_session = RunFilter {
        session_id: Some("s-old".into()),
        ..Default::default()
    };
    assert!(f.walk(&old_session, 10).await.is_empty());
    assert!(f.store.session(P, "s-old").await.unwrap().is_empty());
    assert_eq!(ids(&f.store.session(P, "s-new").await.unwrap()), vec!["t1"]);
}

#[tokio::test]
async fn every_filter_selects_exactly_the_matching_runs() {
    let mut f = Fixture::new();
    let d = day0();
    let agents = ["planner", "coder", "reviewer"];
    let envs = ["production", "staging"];
    let mut runs = Vec::new();
    let mut spans = Vec::new();
    let mut models: HashMap<String, Vec<&str>> = HashMap::new();
    let mut prompts: HashMap<String, Vec<&str>> = HashMap::new();
    for i in 0..60i64 {
        let trace = format!("trace-{i:03}");
        runs.push(RunRow {
            session_id: format!("s{}", i % 4),
            user_hash: format!("u{}", i % 5),
            agent_name: agents[(i % 3) as usize].into(),
            task_type: if i % 2 == 0 { "support" } else { "coding" }.into(),
            outcome: Outcome::ALL[(i % 5) as usize],
            environment: envs[(i % 2) as usize].into(),
            // Three days, with ties of start time.
            ..run(&trace, at(d + i % 3, 1000 + (i / 6)), 1)
        });
        let model = ["gpt-4o", "claude", "llama"][(i % 3) as usize];
        let second = ["claude", "mistral"][(i % 2) as usize];
        let prompt = format!("v{}", i % 4);
        for (n, m) in [(0, model), (1, second)] {
            spans.push(SpanRow {
                model: m.into(),
                prompt_version: if n == 0 {
                    prompt.clone()
                } else {
                    String::new()
                },
                ..span(
                    &trace,
                    &format!("m{n}"),
                    "",
                    at(d + i % 3, 1000 + (i / 6) + n),
                    1,
                )
            });
        }
        models
            .entry(trace.clone())
            .or_default()
            .extend([model, second]);
        prompts
            .entry(trace)
            .or_default()
            .push(["v0", "v1", "v2", "v3"][(i % 4) as usize]);
    }
    // Spread over several files.
    for chunk in runs.chunks(13) {
        f.write_runs(chunk.to_vec());
    }
    for chunk in spans.chunks(17) {
        f.write(IngestBatch {
            spans: chunk.to_vec(),
            ..Default::default()
        });
    }
    // A span whose model changed in a newer version: the old model no longer matches.
    f.write(IngestBatch {
        spans: vec![SpanRow {
            model: "retired".into(),
            ..span("trace-000", "m0", "", at(d, 1000), 0)
        }],
        ..Default::default()
    });

    type Check = Box<dyn Fn(&RunRow) -> bool>;
    let cases: Vec<(RunFilter, Check)> = vec![
        (
            RunFilter {
                session_id: Some("s1".into()),
                ..Default::default()
            },
            Box::new(|r| r.session_id == "s1"),
        ),
        (
            RunFilter {
                user_hash: Some("u3".into()),
                ..Default::default()
            },
            Box::new(|r| r.user_hash == "u3"),
        ),
        (
            RunFilter {
                agent: Some("coder".into()),
                ..Default::default()
            },
            Box::new(|r| r.agent_name == "coder"),
        ),
        (
            RunFilter {
                task_type: Some("support".into()),
                ..Default::default()
            },
            Box::new(|r| r.task_type == "support"),
        ),
        (
            RunFilter {
                outcome: Some("TIMEOUT".into()),
                ..Default::default()
            },
            Box::new(|r| r.outcome == Outcome::Timeout),
        ),
        (
            RunFilter {
                environment: Some("staging".into()),
                ..Default::default()
            },
            Box::new(|r| r.environment == "staging"),
        ),
        (
            RunFilter {
                from_ns: Some(at(d + 1, 0)),
                to_ns: Some(at(d + 2, 0)),
                ..Default::default()
            },
            Box::new(move |r| r.start_time_ns >= at(d + 1, 0) && r.start_time_ns < at(d + 2, 0)),
        ),
        (
            RunFilter {
                from_ns: Some(at(d, 1003)),
                ..Default::default()
            },
            Box::new(move |r| r.start_time_ns >= at(d, 1003)),
        ),
        (
            RunFilter {
                to_ns: Some(at(d + 2, 1004)),
                ..Default::default()
            },
            Box::new(move |r| r.start_time_ns < at(d + 2, 1004)),
        ),
        (
            RunFilter {
                model: Some("claude".into()),
                ..Default::default()
            },
            Box::new({
                let models = models.clone();
                move |r| models[&r.trace_id].contains(&"claude")
            }),
        ),
        (
            RunFilter {
                model: Some("retired".into()),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
        (
            RunFilter {
                prompt_version: Some("v2".into()),
                ..Default::default()
            },
            Box::new({
                let prompts = prompts.clone();
                move |r| prompts[&r.trace_id].contains(&"v2")
            }),
        ),
        (
            RunFilter {
                agent: Some("planner".into()),
                environment: Some("production".into()),
                model: Some("claude".into()),
                from_ns: Some(at(d, 0)),
                to_ns: Some(at(d + 3, 0)),
                ..Default::default()
            },
            Box::new({
                let models = models.clone();
                move |r| {
                    r.agent_name == "planner"
                        && r.environment == "production"
                        && models[&r.trace_id].contains(&"claude")
                }
            }),
        ),
    ];
    for (filter, check) in cases {
        let expected = newest_first(runs.iter().filter(|r| check(r)).cloned().collect());
        assert!(
            !expected.is_empty() || filter.model.as_deref() == Some("retired"),
            "{filter:?} selects nothing: a weak case"
        );
        for limit in [4, 100] {
            let got = f.walk(&filter, limit).await;
            assert_eq!(ids(&got), ids(&expected), "{filter:?} limit {limit}");
        }
    }
}

#[tokio::test]
async fn cursor_pagination_walks_every_run_exactly_once_under_ties() {
    let mut f = Fixture::new();
    let d = day0();
    let mut runs = Vec::new();
    for i in 0..230i64 {
        // Only 9 distinct start times, across two days: long runs of ties.
        let start = at(d + i % 2, 60 * (i % 9 / 2));
        runs.push(run(
            &format!("{:08x}", i * 2_654_435_761 % 4_294_967_296),
            start,
            1,
        ));
    }
    for chunk in runs.chunks(40) {
        f.write_runs(chunk.to_vec());
    }
    // Replays of some runs in later files.
    f.write_runs(runs[..50].to_vec());
    let expected = newest_first(runs.clone());
    for limit in [1, 7, 50, 229, 230, 1000] {
        let got = f.walk(&RunFilter::default(), limit).await;
        assert_eq!(ids(&got), ids(&expected), "limit {limit}");
    }
    // A page boundary falling inside a tie: both sides of it are complete.
    let first = f
        .store
        .list_runs(P, &RunFilter::default(), Some(3), None)
        .await
        .unwrap();
    assert_eq!(ids(&first.runs), ids(&expected[..3]));
    assert_eq!(first.runs[0].start_time_ns, first.runs[2].start_time_ns);
    let second = f
        .store
        .list_runs(
            P,
            &RunFilter::default(),
            Some(3),
            first.next_cursor.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(ids(&second.runs), ids(&expected[3..6]));

    // With a time range.
    let filter = RunFilter {
        from_ns: Some(at(d + 1, 0)),
        to_ns: Some(at(d + 1, 150)),
        ..Default::default()
    };
    let expected: Vec<RunRow> = expected
        .into_iter()
        .filter(|r| r.start_time_ns >= at(d + 1, 0) && r.start_time_ns < at(d + 1, 150))
        .collect();
    assert!(expected.len() > 20);
    assert_eq!(ids(&f.walk(&filter, 6).await), ids(&expected));
}

/// The list reads matching versions by position and keeps those that are their run's newest
/// version. Here the twelve top positions hold superseded versions (their runs moved to the
/// bottom of the day, or stopped matching the filter), so a page needs several rounds.
#[tokio::test]
async fn superseded_versions_at_the_top_of_the_list_are_passed_over() {
    let mut f = Fixture::new();
    let d = day0();
    let mut old = Vec::new();
    let mut new = Vec::new();
    for i in 0..12i64 {
        let trace = format!("moved{i:02}");
        let mut first = run(&trace, at(d, 3_000 + i), 1);
        first.agent_name = "planner".into();
        old.push(first);
        let mut second = run(&trace, at(d, 10 + i), 2);
        // Half of them are no longer the planner's.
        second.agent_name = if i % 2 == 0 { "planner" } else { "router" }.into();
        new.push(second);
    }
    let mut steady = Vec::new();
    for i in 0..5i64 {
        let mut r = run(&format!("steady{i}"), at(d, 1_000 + i), 1);
        r.agent_name = "planner".into();
        steady.push(r);
    }
    f.write_runs(old.iter().chain(&steady).cloned().collect());
    f.write_runs(new.clone());

    let everything: Vec<RunRow> = newest_first(new.iter().chain(&steady).cloned().collect());
    for limit in [1, 2, 5, 100] {
        let got = f.walk(&RunFilter::default(), limit).await;
        assert_eq!(ids(&got), ids(&everything), "limit {limit}");
        for (listed, wanted) in got.iter().zip(&everything) {
            assert_eq!(
                listed.ingested_at_ns, wanted.ingested_at_ns,
                "the newest version"
            );
        }
    }
    let planner = RunFilter {
        agent: Some("planner".into()),
        ..Default::default()
    };
    let expected: Vec<RunRow> = everything
        .iter()
        .filter(|r| r.agent_name == "planner")
        .cloned()
        .collect();
    assert_eq!(expected.len(), 11);
    for limit in [1, 3, 100] {
        assert_eq!(
            ids(&f.walk(&planner, limit).await),
            ids(&expected),
            "limit {limit}"
        );
    }
}

/// A model only the oldest runs used: the list probes the newest runs' spans first, then reads
/// candidates among the runs with such a span, and finds them all; a model nobody used ends the
/// list at once, empty.
#[tokio::test]
async fn a_rare_model_is_found_past_the_probed_runs() {
    let mut f = Fixture::new();
    let d = day0();
    let mut runs = Vec::new();
    let mut spans = Vec::new();
    for i in 0..1_500i64 {
        let trace = format!("t{i:05}");
        runs.push(run(&trace, at(d, i), 1));
        let model = if i < 3 { "rare" } else { "common" };
        spans.push(SpanRow {
            model: model.into(),
            ..span(&trace, "m0", "", at(d, i), 1)
        });
    }
    // The newest run once used the rare model, and no longer does.
    spans.push(SpanRow {
        model: "rare".into(),
        ..span("t01499", "m0", "", at(d, 1_499), 0)
    });
    f.write(IngestBatch {
        runs,
        spans,
        ..Default::default()
    });
    let rare = RunFilter {
        model: Some("rare".into()),
        ..Default::default()
    };
    for limit in [1, 2, 50] {
        assert_eq!(
            ids(&f.walk(&rare, limit).await),
            ["t00002", "t00001", "t00000"],
            "limit {limit}"
        );
    }
    let nobody = RunFilter {
        model: Some("nobody".into()),
        ..Default::default()
    };
    assert!(f.walk(&nobody, 50).await.is_empty());
}

#[tokio::test]
async fn the_calls_of_a_page_of_runs_are_rolled_up_whatever_their_number() {
    let mut f = Fixture::new();
    let d = day0();
    // 45 runs, more than one statement looks up at once: run i has i % 4 model calls costing
    // 10 nano-dollars each and one failed tool call; an older version of each model call
    // cost 1,000 and must not count.
    let mut spans = Vec::new();
    let mut older = Vec::new();
    let mut expected = HashMap::new();
    for i in 0..45i64 {
        let trace = format!("r{i:02}");
        for call in 0..i % 4 {
            let model_call = |cost, ingested| SpanRow {
                kind: SpanKind::Model,
                cost_nanos: Some(cost),
                ..span(&trace, &format!("m{call}"), "", at(d, i), ingested)
            };
            spans.push(model_call(10, 2));
            older.push(model_call(1_000, 1));
        }
        spans.push(SpanRow {
            kind: SpanKind::Tool,
            status: SpanStatus::Error,
            ..span(&trace, "tool", "", at(d, i), 2)
        });
        expected.insert(trace, (i % 4, 10 * (i % 4)));
    }
    f.write(IngestBatch {
        spans: older,
        ..Default::default()
    });
    f.write(IngestBatch {
        spans,
        ..Default::default()
    });
    let mut traces: Vec<String> = expected.keys().cloned().collect();
    traces.push("no-such-run".into());
    let rollups = f.store.run_rollups(P, &traces).await.unwrap();
    assert_eq!(
        rollups.len(),
        expected.len(),
        "one rollup per run with calls"
    );
    for (trace, (model_calls, cost_nanos)) in expected {
        let rollup = &rollups[&trace];
        assert_eq!(rollup.model_calls, model_calls as u64, "{trace}");
        assert_eq!(rollup.cost_nanos, cost_nanos, "{trace}");
        assert_eq!((rollup.tool_calls, rollup.failed_calls), (1, 1), "{trace}");
    }
}

#[tokio::test]
async fn spans_come_in_tree_order_and_scores_in_time_order() {
    let mut f = Fixture::new();
    let d = day0();
    // The root started before midnight; some children after: two partitions.
    let t0 = at(d, 0) - 5 * NANOS_PER_SECOND;
    let spans = vec![
        span("t", "tool-2", "agent", t0 + 9 * NANOS_PER_SECOND, 1),
        span("t", "llm-1", "agent", t0 + 2 * NANOS_PER_SECOND, 1),
        span("t", "root", "", t0, 1),
        span("t", "agent", "root", t0 + NANOS_PER_SECOND, 1),
        span("t", "retrieval", "llm-1", t0 + 3 * NANOS_PER_SECOND, 1),
        span("t", "final", "root", t0 + 20 * NANOS_PER_SECOND, 1),
        span("other", "x", "", t0, 1),
    ];
    f.write(IngestBatch {
        runs: vec![run("t", t0, 1)],
        spans,
        scores: vec![
            score("t", "late", t0 + 100, 1, 1.0),
            score("t", "early", t0 + 10, 1, 0.5),
        ],
    });
    let detail = f.store.get_run(P, "t").await.unwrap().unwrap();
    let order: Vec<&str> = detail.spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(
        order,
        vec!["root", "agent", "llm-1", "retrieval", "tool-2", "final"]
    );
    let scores: Vec<&str> = detail.scores.iter().map(|s| s.score_id.as_str()).collect();
    assert_eq!(scores, vec!["early", "late"]);

    // Spans without their run still make a detail, with no run.
    let other = f.store.get_run(P, "other").await.unwrap().unwrap();
    assert!(other.run.is_none());
    assert_eq!(other.spans.len(), 1);
    // Another project sees nothing.
    assert_eq!(f.store.get_run("elsewhere", "t").await.unwrap(), None);
}

#[tokio::test]
async fn a_session_lists_its_runs_in_time_order() {
    let mut f = Fixture::new();
    let d = day0();
    let in_session = |trace: &str, start: i64, session: &str, ingested: i64| RunRow {
        session_id: session.into(),
        ..run(trace, start, ingested)
    };
    f.write_runs(vec![
        in_session("c", at(d + 1, 5), "s", 1),
        in_session("a", at(d, 5), "s", 1),
        in_session("b", at(d, 5), "s", 1),
        in_session("moved-out", at(d, 1), "s", 1),
        in_session("moved-in", at(d, 2), "other", 1),
        in_session("z", at(d, 0), "other", 1),
    ]);
    f.write_runs(vec![
        in_session("moved-out", at(d, 1), "other", 2),
        in_session("moved-in", at(d, 2), "s", 2),
    ]);
    f.write_runs(vec![RunRow {
        project_id: "elsewhere".into(),
        ..in_session("foreign", at(d, 3), "s", 1)
    }]);
    let runs = f.store.session(P, "s").await.unwrap();
    assert_eq!(ids(&runs), vec!["moved-in", "a", "b", "c"]);
    assert!(
        runs.iter()
            .all(|r| r.session_id == "s" && r.project_id == P)
    );
}

#[tokio::test]
async fn new_files_are_seen_at_once_and_half_written_files_never() {
    let mut f = Fixture::new();
    let d = day0();
    assert!(f.walk(&RunFilter::default(), 10).await.is_empty());
    f.write_runs(vec![run("a", at(d, 1), 1)]);
    assert_eq!(ids(&f.walk(&RunFilter::default(), 10).await), vec!["a"]);

    // What a crash mid-write leaves: a .tmp file, in a known and in a new partition.
    for day in [d, d + 5] {
        let dir = f.layout.partition_dir(Table::Runs, day);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("part-00000000000000000009-000000.parquet.tmp"),
            b"PAR1 garbage",
        )
        .unwrap();
    }
    f.write_runs(vec![run("b", at(d, 2), 1)]);
    assert_eq!(
        ids(&f.walk(&RunFilter::default(), 10).await),
        vec!["b", "a"]
    );
    assert!(f.store.get_run(P, "b").await.unwrap().is_some());
    assert_eq!(ids(&f.store.session(P, "").await.unwrap()), vec!["a", "b"]);
    f.store.health().await.unwrap();
}

#[tokio::test]
async fn a_newer_version_in_another_day_wins_over_the_range() {
    let mut f = Fixture::new();
    let d = day0();
    // A synthesized run just after midnight, replaced by its real root that started just before.
    f.write_runs(vec![RunRow {
        synthesized: true,
        ..run("t", at(d, 1), 1)
    }]);
    f.write_runs(vec![run("t", at(d, -1), 2), run("u", at(d, 10), 1)]);
    let today = RunFilter {
        from_ns: Some(at(d, 0)),
        to_ns: Some(at(d + 1, 0)),
        ..Default::default()
    };
    assert_eq!(ids(&f.walk(&today, 10).await), vec!["u"]);
    let yesterday = RunFilter {
        from_ns: Some(at(d - 1, 0)),
        to_ns: Some(at(d, 0)),
        ..Default::default()
    };
    let runs = f.walk(&yesterday, 10).await;
    assert_eq!(ids(&runs), vec!["t"]);
    assert!(!runs[0].synthesized);
    let everything = f.walk(&RunFilter::default(), 10).await;
    assert_eq!(ids(&everything), vec!["u", "t"]);
}

#[tokio::test]
async fn bad_requests_say_which_field_is_wrong() {
    let f = Fixture::new();
    let cases = [
        (RunFilter::default(), Some(0), Some("abc"), "limit"),
        (RunFilter::default(), None, Some("%%%"), "cursor"),
        (
            RunFilter {
                outcome: Some("exploded".into()),
                ..Default::default()
            },
            None,
            None,
            "outcome",
        ),
        (
            RunFilter {
                from_ns: Some(10),
                to_ns: Some(5),
                ..Default::default()
            },
            None,
            None,
            "to",
        ),
    ];
    for (filter, limit, cursor, field) in cases {
        let err = f
            .store
            .list_runs(P, &filter, limit, cursor)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert_eq!(err.field(), Some(field), "{err}");
        assert!(!err.is_retryable());
    }
    // An empty range is not an error, just empty.
    let empty = RunFilter {
        from_ns: Some(5),
        to_ns: Some(5),
        ..Default::default()
    };
    assert!(
        f.store
            .list_runs(P, &empty, None, None)
            .await
            .unwrap()
            .runs
            .is_empty()
    );
    assert_eq!(page_size(None).unwrap(), 100);
    assert_eq!(page_size(Some(5000)).unwrap(), MAX_LIMIT);
}

#[tokio::test]
async fn the_default_page_is_a_hundred_runs() {
    let mut f = Fixture::new();
    let runs: Vec<RunRow> = (0..150)
        .map(|i| run(&format!("r{i:03}"), at(day0(), i), 1))
        .collect();
    f.write_runs(runs);
    let page = f
        .store
        .list_runs(P, &RunFilter::default(), None, None)
        .await
        .unwrap();
    assert_eq!(page.runs.len(), 100);
    assert!(page.next_cursor.is_some());
    let seen: BTreeSet<&str> = page.runs.iter().map(|r| r.trace_id.as_str()).collect();
    assert_eq!(seen.len(), 100);
}

#[tokio::test]
async fn a_store_can_be_opened_over_a_directory_that_does_not_exist_yet() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("not/yet")).unwrap();
    store.health().await.unwrap();
    assert!(store.session(P, "s").await.unwrap().is_empty());
    let df = store
        .newest_rows(Table::Spans, P, None, None)
        .await
        .unwrap();
    assert_eq!(df.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_time_range_reads_only_its_days() {
    let mut f = Fixture::new();
    let d = day0();
    f.write_runs(vec![
        run("in", at(d, 10), 1),
        run("before", at(d - 3, 10), 1),
    ]);
    // An unreadable file far from the range: reading it would fail the query.
    let far = f.layout.partition_dir(Table::Runs, d + 5);
    std::fs::create_dir_all(&far).unwrap();
    std::fs::write(
        far.join("part-00000000000000000001-000000.parquet"),
        b"not parquet",
    )
    .unwrap();
    let filter = RunFilter {
        from_ns: Some(at(d, 0)),
        to_ns: Some(at(d + 1, 0)),
        ..Default::default()
    };
    assert_eq!(ids(&f.walk(&filter, 10).await), vec!["in"]);
    let err = f
        .store
        .list_runs(P, &RunFilter::default(), None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
}

/// Writes a sealed file (`sealed-<n>…`): rows sorted by key, one version per key.
fn write_sealed(f: &mut Fixture, table: Table, day: i64, generation: u64, batch: RecordBatch) {
    let fresh = f.write_file(table, day, batch);
    let sealed = fresh.with_file_name(format!("sealed-{generation:020}-000000.parquet"));
    std::fs::rename(fresh, sealed).unwrap();
}

fn model_call(trace: &str, start: i64, ingested: i64, cost: i64) -> SpanRow {
    SpanRow {
        kind: SpanKind::Model,
        model: "m".into(),
        cost_nanos: Some(cost),
        ..span(trace, &format!("{trace}1"), "", start, ingested)
    }
}

#[tokio::test]
async fn sealed_rows_are_read_once_and_fresh_versions_are_weighed_against_them() {
    let mut f = Fixture::new();
    let d = day0();
    let agent = |mut run: RunRow, agent: &str| {
        run.agent_name = agent.into();
        run
    };
    // An older sealed file, superseded: never read.
    write_sealed(
        &mut f,
        Table::Runs,
        d,
        1,
        runs_to_batch(&[agent(run("a", at(d, 1), 1), "stale"), run("z", at(d, 1), 1)]).unwrap(),
    );
    // The sealed day.
    write_sealed(
        &mut f,
        Table::Runs,
        d,
        2,
        runs_to_batch(&[
            agent(run("a", at(d, 1), 10), "x"),
            agent(run("b", at(d, 2), 10), "x"),
            agent(run("c", at(d, 3), 10), "y"),
        ])
        .unwrap(),
    );
    write_sealed(
        &mut f,
        Table::Spans,
        d,
        2,
        spans_to_batch(&[
            model_call("a", at(d, 1), 10, 100),
            model_call("b", at(d, 2), 10, 200),
            model_call("c", at(d, 3), 10, 400),
        ])
        .unwrap(),
    );
    // Each metric row: its group's values, then its metrics' values.
    let ask = async |f: &Fixture, metrics: &[&str], group_by: &[&str]| {
        let query = MetricQuery {
            from: rfc3339(at(d, 0)),
            to: rfc3339(at(d + 1, 0)),
            metrics: metrics.iter().map(|m| m.to_string()).collect(),
            group_by: group_by.iter().map(|g| g.to_string()).collect(),
            filters: Default::default(),
            step: None,
            shadow: Default::default(),
        };
        let answer = f.store.metrics(P, &query.plan().unwrap()).await.unwrap();
        answer
            .rows
            .into_iter()
            .map(|row| {
                let group: Vec<String> = row.group.into_iter().map(|(_, v)| v).collect();
                (group, row.values)
            })
            .collect::<Vec<_>>()
    };
    // Sealed only: read as it is.
    let cost = ask(&f, &["cost_usd", "model_calls"], &[]).await;
    assert_eq!(
        cost[0].1[..2],
        [
            (Metric::CostUsd, MetricValue::Number(700e-9)),
            (Metric::ModelCalls, MetricValue::Integer(3))
        ]
    );

    // Fresh: a newer version of b, an older version of c (the sealed one wins), a new run d.
    f.write(IngestBatch {
        runs: vec![
            agent(run("b", at(d, 2), 20), "y"),
            agent(run("c", at(d, 3), 5), "x"),
            agent(run("d", at(d, 4), 20), "x"),
        ],
        spans: vec![
            model_call("b", at(d, 2), 20, 250),
            model_call("c", at(d, 3), 5, 999),
            model_call("d", at(d, 4), 20, 800),
        ],
        ..Default::default()
    });
    let counts: Vec<(String, MetricValue)> = ask(&f, &["runs"], &["agent"])
        .await
        .into_iter()
        .map(|(group, values)| (group[0].clone(), values[0].1))
        .collect();
    // x: a, d; y: b (its newer version), c (its sealed version).
    assert_eq!(
        counts,
        vec![
            ("x".to_string(), MetricValue::Integer(2)),
            ("y".to_string(), MetricValue::Integer(2))
        ]
    );
    let cost = ask(&f, &["cost_usd", "model_calls"], &[]).await;
    // 100 (a) + 250 (b, newer) + 400 (c, sealed) + 800 (d) nano-dollars; four calls.
    assert_eq!(
        cost[0].1[..2],
        [
            (Metric::CostUsd, MetricValue::Number(1550e-9)),
            (Metric::ModelCalls, MetricValue::Integer(4))
        ]
    );
    // The run rollups read the same way.
    let rollups = f
        .store
        .run_rollups(P, &["b".to_string(), "c".to_string()])
        .await
        .unwrap();
    assert_eq!(rollups.len(), 2);
    assert_eq!(rollups["b"].cost_usd, Some(250e-9));
    assert_eq!(rollups["c"].cost_usd, Some(400e-9));
}
