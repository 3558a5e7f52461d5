//! Compliance end to end, on both stores: affected-session investigations compared with answers
//! computed here from the generated runs (never through Vigil's queries), complete CSV and
//! NDJSON exports, user look-ups, erasure that leaves no trace in any table or WAL segment,
//! hostile filters, and every one of these on the audit log.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};
use vigil_proto::v1;
use vigil_schemas::time::{NANOS_PER_DAY, day_string, parse_rfc3339, rfc3339};

use support::{Store, Vigil, cli, clickhouse::ClickHouse, conformance::wait_drained};

const HOUR: i64 = 3_600_000_000_000;
const WINDOW_START: &str = "2026-11-20T00:00:00Z";
const WINDOW_HOURS: i64 = 72;
const USERS: [&str; 6] = ["", "ann@example.com", "bob", "carol", "dave", "eve"];
const SESSIONS: [&str; 8] = ["", "s-1", "s-2", "s-3", "s-4", "s-5", "s-6", "s-7"];

#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) trace_id: String,
    session: String,
    pub(crate) user: String,
    agent_version: String,
    classification: Vec<String>,
    start: i64,
    /// model, model version, prompt id, prompt version
    models: Vec<[String; 4]>,
    /// tool, tool version
    tools: Vec<[String; 2]>,
}

fn pick(rng: &mut StdRng, values: &[&str]) -> String {
    values.choose(rng).unwrap().to_string()
}

pub(crate) fn generate(seed: u64, n: usize) -> Vec<Run> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start0 = parse_rfc3339(WINDOW_START).unwrap();
    (0..n)
        .map(|i| Run {
            trace_id: format!("{seed:016x}{i:016x}"),
            session: pick(&mut rng, &SESSIONS),
            user: pick(&mut rng, &USERS),
            agent_version: pick(&mut rng, &["1.0", "1.1"]),
            classification: ["pii", "financial"]
                .iter()
                .filter(|_| rng.random_bool(0.3))
                .map(|t| t.to_string())
                .collect(),
            start: start0 + rng.random_range(0..WINDOW_HOURS * HOUR),
            models: (0..rng.random_range(0..=3))
                .map(|_| {
                    [
                        pick(&mut rng, &["gpt-x", "claude-y"]),
                        pick(&mut rng, &["2025-01", "2025-06"]),
                        pick(&mut rng, &["refund-policy", "greeting"]),
                        pick(&mut rng, &["v6", "v7"]),
                    ]
                })
                .collect(),
            tools: (0..rng.random_range(0..=3))
                .map(|_| {
                    [
                        pick(&mut rng, &["search", "sql"]),
                        pick(&mut rng, &["1", "2"]),
                    ]
                })
                .collect(),
        })
        .collect()
}

fn export_request(runs: &[Run]) -> v1::ExportRequest {
    let mut request = v1::ExportRequest::default();
    for run in runs {
        request.runs.push(v1::Run {
            trace_id: run.trace_id.clone(),
            session_id: run.session.clone(),
            user_id: run.user.clone(),
            agent_name: "support-bot".into(),
            agent_version: run.agent_version.clone(),
            start_time_unix_nano: run.start,
            end_time_unix_nano: run.start + 5_000_000_000,
            outcome: v1::Outcome::Success as i32,
            classification: run.classification.clone(),
            ..Default::default()
        });
        for (n, [model, version, prompt_id, prompt_version]) in run.models.iter().enumerate() {
            request.spans.push(v1::Span {
                trace_id: run.trace_id.clone(),
                span_id: format!("{:016x}", 0x100 + n),
                kind: v1::SpanKind::Model as i32,
                name: "llm".into(),
                start_time_unix_nano: run.start + 1_000_000,
                end_time_unix_nano: run.start + 2_000_000,
                model: Some(v1::ModelCall {
                    model: model.clone(),
                    model_version: version.clone(),
                    prompt_id: prompt_id.clone(),
                    prompt_version: prompt_version.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        for (n, [tool, version]) in run.tools.iter().enumerate() {
            request.spans.push(v1::Span {
                trace_id: run.trace_id.clone(),
                span_id: format!("{:016x}", 0x200 + n),
                kind: v1::SpanKind::Tool as i32,
                name: "tool".into(),
                start_time_unix_nano: run.start + 3_000_000,
                end_time_unix_nano: run.start + 4_000_000,
                tool: Some(v1::ToolCall {
                    name: tool.clone(),
                    version: version.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        request.scores.push(v1::Score {
            score_id: format!("{}-thumbs", run.trace_id),
            trace_id: run.trace_id.clone(),
            name: "thumbs".into(),
            value: Some(v1::score::Value::Boolean(true)),
            time_unix_nano: run.start + 6_000_000_000,
            ..Default::default()
        });
    }
    request
}

pub(crate) async fn send(vigil: &Vigil, runs: &[Run]) {
    for batch in runs.chunks(50) {
        let response = vigil.export_native(export_request(batch)).await;
        assert!(response.rejections.is_empty(), "{:?}", response.rejections);
    }
}

/// Sends the runs, then a fifth of them again in a changed version (the prompt version of their
/// model calls and their agent version flipped): the newest version is the one that counts.
async fn send_with_new_versions(vigil: &Vigil, runs: &mut [Run]) {
    send(vigil, runs).await;
    let mut changed = Vec::new();
    for run in runs.iter_mut().step_by(5) {
        for call in &mut run.models {
            call[3] = if call[3] == "v7" { "v6" } else { "v7" }.into();
        }
        run.agent_version = if run.agent_version == "1.0" {
            "1.1"
        } else {
            "1.0"
        }
        .into();
        changed.push(run.clone());
    }
    send(vigil, &changed).await;
}

// ---- the reference ----

type Filters = BTreeMap<&'static str, Vec<&'static str>>;

fn matches(run: &Run, filters: &Filters, hashes: &BTreeMap<String, String>) -> bool {
    let any = |field: &str, value: &str| filters.get(field).is_none_or(|v| v.contains(&value));
    let run_level = any("agent_version", &run.agent_version)
        && any("session_id", &run.session)
        && any("user_hash", &hashes[&run.user])
        && filters.get("classification").is_none_or(|tags| {
            run.classification
                .iter()
                .any(|t| tags.contains(&t.as_str()))
        });
    let model_fields = ["model", "model_version", "prompt_id", "prompt_version"];
    let wants_model = model_fields.iter().any(|f| filters.contains_key(f));
    let model_ok = !wants_model
        || run.models.iter().any(|call| {
            model_fields
                .iter()
                .zip(call)
                .all(|(field, value)| any(field, value))
        });
    let tool_fields = ["tool", "tool_version"];
    let wants_tool = tool_fields.iter().any(|f| filters.contains_key(f));
    let tool_ok = !wants_tool
        || run
            .tools
            .iter()
            .any(|call| tool_fields.iter().zip(call).all(|(f, v)| any(f, v)));
    run_level && model_ok && tool_ok
}

/// The answer `POST /api/v1/audit/affected` must give (without `items` paging and the audit
/// entry): computed from the records.
fn expected(runs: &[&Run], hashes: &BTreeMap<String, String>) -> Value {
    let distinct = |values: Vec<&str>| {
        values
            .into_iter()
            .filter(|v| !v.is_empty())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let mut days: BTreeMap<i64, Vec<&Run>> = BTreeMap::new();
    let mut sessions: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for run in runs {
        days.entry(run.start.div_euclid(NANOS_PER_DAY))
            .or_default()
            .push(run);
        sessions
            .entry((run.session.clone(), hashes[&run.user].clone()))
            .or_default()
            .push(run.start);
    }
    let mut items: Vec<Value> = sessions
        .into_iter()
        .map(|((session, user), starts)| {
            let (first, last) = (*starts.iter().min().unwrap(), *starts.iter().max().unwrap());
            json!({"session_id": session, "user_hash": user, "runs": starts.len(),
                "first_seen": rfc3339(first), "last_seen": rfc3339(last), "_first": first})
        })
        .collect();
    items.sort_by_key(|i| {
        (
            i["_first"].as_i64().unwrap(),
            i["session_id"].as_str().unwrap().to_string(),
            i["user_hash"].as_str().unwrap().to_string(),
        )
    });
    for item in &mut items {
        item.as_object_mut().unwrap().remove("_first");
    }
    let starts: Vec<i64> = runs.iter().map(|r| r.start).collect();
    json!({
        "runs": runs.len(),
        "sessions": distinct(runs.iter().map(|r| r.session.as_str()).collect()),
        "users": distinct(runs.iter().map(|r| hashes[&r.user].as_str()).collect()),
        "first_seen": starts.iter().min().map(|s| rfc3339(*s)),
        "last_seen": starts.iter().max().map(|s| rfc3339(*s)),
        "by_day": days.iter().map(|(day, runs)| json!({
            "day": day_string(*day),
            "runs": runs.len(),
            "sessions": distinct(runs.iter().map(|r| r.session.as_str()).collect()),
            "users": distinct(runs.iter().map(|r| hashes[&r.user].as_str()).collect()),
        })).collect::<Vec<_>>(),
        "items": items,
    })
}

/// Every page of an investigation, merged into one answer (`items` from all pages).
async fn investigate(vigil: &Vigil, token: &str, body: &Value, page: usize) -> Value {
    let mut body = body.clone();
    body["limit"] = json!(page);
    let (status, mut answer) = vigil.post_as("/api/v1/audit/affected", token, &body).await;
    assert_eq!(status, 200, "{body}: {answer}");
    let mut items = answer["items"].as_array().unwrap().clone();
    let mut cursor = answer["next_cursor"].clone();
    while let Some(c) = cursor.as_str() {
        body["cursor"] = json!(c);
        let (status, next) = vigil.post_as("/api/v1/audit/affected", token, &body).await;
        assert_eq!(status, 200, "{next}");
        assert!(next["items"].as_array().unwrap().len() <= page);
        items.extend(next["items"].as_array().unwrap().iter().cloned());
        cursor = next["next_cursor"].clone();
    }
    let object = answer.as_object_mut().unwrap();
    object.insert("items".into(), Value::Array(items));
    object.remove("next_cursor");
    object.remove("audit_entry");
    answer
}

/// An investigation answered by the store's statements (a digest is never folded).
async fn by_statements(
    vigil: &Vigil,
    store: Store,
    body: &Value,
    limit: usize,
) -> (
    vigil_query::audit::AffectedSummary,
    vigil_query::audit::SessionPage,
) {
    let query: vigil_query::audit::AffectedQuery = serde_json::from_value(body.clone()).unwrap();
    let (plan, mut page) = query.plan().unwrap();
    page.limit = limit;
    let reader: Box<dyn vigil_query::TraceStore> = match store {
        Store::Embedded => Box::new(vigil_query::EmbeddedStore::open(vigil.data_dir()).unwrap()),
        Store::ClickHouse => Box::new(vigil_query::ClickHouseStore::new(
            &vigil_schemas::clickhouse::ClickHouseConfig {
                url: ClickHouse::shared().url(),
                database: vigil.database.clone().unwrap(),
                ..Default::default()
            },
        )),
    };
    vigil_query::audit::investigate_folding_at_most(reader.as_ref(), "default", &plan, &page, 0)
        .await
        .unwrap()
}

/// An export's body, with its status and headers checked.
async fn export(vigil: &Vigil, token: &str, body: &Value, format: &str) -> (String, u64) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/audit/affected?format={format}",
            vigil.http()
        ))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| {
        response.headers()[name]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let (count, entry) = (header("vigil-affected-runs"), header("vigil-audit-entry"));
    assert!(entry > 0);
    (response.text().await.unwrap(), count)
}

pub(crate) fn traces_of(runs: &[&Run]) -> BTreeSet<String> {
    runs.iter().map(|r| r.trace_id.clone()).collect()
}

async fn investigations_exports_and_erasure(store: Store) {
    let mut vigil = Vigil::start_on(store);
    let mut runs = generate(7, 400);
    send_with_new_versions(&vigil, &mut runs).await;
    wait_drained(&vigil).await;
    let audit = vigil.create_key("audit");
    let read = vigil.create_key("read");

    // Look-ups: every person's hash and sessions.
    let mut hashes = BTreeMap::from([(String::new(), String::new())]);
    for user in USERS.iter().filter(|u| !u.is_empty()) {
        let (status, found) = vigil
            .post_as(
                "/api/v1/audit/user-lookup",
                &audit.token,
                &json!({"user_id": user, "limit": 2}),
            )
            .await;
        assert_eq!(status, 200, "{found}");
        let hash = found["user_hash"].as_str().unwrap().to_string();
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(user));
        hashes.insert(user.to_string(), hash);
        let theirs: Vec<&Run> = runs.iter().filter(|r| r.user == *user).collect();
        assert_eq!(found["runs"], json!(theirs.len()), "{user}");
        assert_eq!(found["users"], json!(1));
    }
    let (status, _) = vigil
        .post_as(
            "/api/v1/audit/user-lookup",
            &audit.token,
            &json!({"user_id": ""}),
        )
        .await;
    assert_eq!(status, 400);

    // Investigations, each compared with the reference, paged 7 sessions at a time.
    let investigations: Vec<Filters> = vec![
        BTreeMap::from([("prompt_version", vec!["v7"])]),
        BTreeMap::from([
            ("prompt_id", vec!["refund-policy"]),
            ("prompt_version", vec!["v7"]),
        ]),
        BTreeMap::from([
            ("model_version", vec!["2025-06"]),
            ("tool_version", vec!["2"]),
        ]),
        BTreeMap::from([("tool", vec!["sql"]), ("agent_version", vec!["1.1"])]),
        BTreeMap::from([("classification", vec!["pii"])]),
        BTreeMap::from([("session_id", vec!["s-3", "s-4"])]),
        BTreeMap::new(),
        BTreeMap::from([("model", vec!["never-used"])]),
    ];
    let (from, to) = ("2026-11-20T12:00:00Z", "2026-11-22T18:00:00Z");
    let in_range =
        |r: &&Run| r.start >= parse_rfc3339(from).unwrap() && r.start < parse_rfc3339(to).unwrap();
    // As written, then with every finished day sealed (read without de-duplication; the
    // erasure below then removes the person from the sealed data too).
    for sealed in [false, true] {
        if sealed {
            support::consolidate(&mut vigil).await;
        }
        // The run list over the same range, by the filters it takes, in pages of 7 (sealed:
        // read in place where every day it reads is sealed and clean).
        let listings: [(&str, Filters); 4] = [
            ("model=gpt-x", BTreeMap::from([("model", vec!["gpt-x"])])),
            (
                "prompt_version=v7",
                BTreeMap::from([("prompt_version", vec!["v7"])]),
            ),
            (
                "session_id=s-3",
                BTreeMap::from([("session_id", vec!["s-3"])]),
            ),
            ("", BTreeMap::new()),
        ];
        for (query, filters) in &listings {
            let mut expected: Vec<&Run> = runs
                .iter()
                .filter(in_range)
                .filter(|r| matches(r, filters, &hashes))
                .collect();
            expected.sort_by(|a, b| (b.start, &b.trace_id).cmp(&(a.start, &a.trace_id)));
            let range = format!("from={from}&to={to}");
            let query = [range.as_str(), query].join("&");
            let listed = vigil
                .list_runs_in_pages(query.trim_end_matches('&'), 7)
                .await;
            let listed: Vec<&str> = listed
                .iter()
                .map(|r| r["trace_id"].as_str().unwrap())
                .collect();
            let expected: Vec<&str> = expected.iter().map(|r| r.trace_id.as_str()).collect();
            assert_eq!(listed, expected, "sealed: {sealed}, {query}");
        }
        for filters in &investigations {
            let body = json!({"from": from, "to": to, "filters": filters});
            let affected: Vec<&Run> = runs
                .iter()
                .filter(in_range)
                .filter(|r| matches(r, filters, &hashes))
                .collect();
            let answer = investigate(&vigil, &audit.token, &body, 7).await;
            assert_eq!(answer, expected(&affected, &hashes), "{body}");
            // The store's statements, not folding a digest (what large investigations take).
            let (summary, first_page) = by_statements(&vigil, store, &body, 7).await;
            assert_eq!(summary.runs, affected.len() as u64, "{body}");
            assert_eq!(
                summary.by_day.len(),
                answer["by_day"].as_array().unwrap().len()
            );
            assert_eq!(json!(summary.sessions), answer["sessions"], "{body}");
            assert_eq!(json!(summary.users), answer["users"], "{body}");
            let sessions: Vec<Value> = first_page
                .items
                .iter()
                .map(|i| json!([i.session_id, i.user_hash, i.runs]))
                .collect();
            let expected_first: Vec<Value> = answer["items"]
                .as_array()
                .unwrap()
                .iter()
                .take(7)
                .map(|i| json!([i["session_id"], i["user_hash"], i["runs"]]))
                .collect();
            assert_eq!(sessions, expected_first, "{body}");

            // Exports: every affected run, once.
            let (csv, count) = export(&vigil, &audit.token, &body, "csv").await;
            assert_eq!(count, affected.len() as u64);
            let mut lines = csv.lines();
            assert!(
                lines
                    .next()
                    .unwrap()
                    .starts_with("trace_id,session_id,user_hash,agent,")
            );
            let exported: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
            assert_eq!(exported.len(), affected.len(), "{body}");
            let exported: BTreeSet<String> = exported.iter().map(|t| t.to_string()).collect();
            assert_eq!(exported, traces_of(&affected), "{body}");
            let (ndjson, _) = export(&vigil, &audit.token, &body, "ndjson").await;
            let rows: Vec<Value> = ndjson
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(rows.len(), affected.len());
            for (row, run) in rows.iter().zip({
                let mut sorted = affected.clone();
                sorted.sort_by(|a, b| (a.start, &a.trace_id).cmp(&(b.start, &b.trace_id)));
                sorted
            }) {
                assert_eq!(row["trace_id"], json!(run.trace_id));
                assert_eq!(row["user_hash"], json!(hashes[&run.user]));
                assert_eq!(row["agent_version"], json!(run.agent_version));
                assert_eq!(row["start_time"], json!(rfc3339(run.start)));
            }
        }
    }

    // Roles: audit for investigations and look-ups, admin for erasure.
    let body = json!({"from": from, "to": to});
    let (status, _) = vigil
        .post_as("/api/v1/audit/affected", &read.token, &body)
        .await;
    assert_eq!(status, 403);
    let (status, _) = vigil
        .post_as(
            "/api/v1/audit/user-lookup",
            &read.token,
            &json!({"user_id": "bob"}),
        )
        .await;
    assert_eq!(status, 403);

    hostile_filters_are_harmless(&vigil, &audit.token, runs.len()).await;

    // Erasure of ann.
    let ann = hashes["ann@example.com"].clone();
    let erase = |token: String| {
        let url = format!("{}/api/v1/users/{ann}", vigil.http());
        async move {
            let response = reqwest::Client::new()
                .delete(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, _) = erase(audit.token.clone()).await;
    assert_eq!(status, 403, "erasure needs admin");
    let anns: Vec<&Run> = runs
        .iter()
        .filter(|r| r.user == "ann@example.com")
        .collect();
    assert!(!anns.is_empty());
    let (status, receipt) = erase(vigil.token.clone()).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["user_hash"], json!(ann));
    let deleted = &receipt["deleted"];
    // Every stored version counts: at least one row per run, span and score.
    let spans: usize = anns.iter().map(|r| r.models.len() + r.tools.len()).sum();
    assert!(
        deleted["runs"].as_u64().unwrap() >= anns.len() as u64,
        "{receipt}"
    );
    assert!(
        deleted["spans"].as_u64().unwrap() >= spans as u64,
        "{receipt}"
    );
    assert!(
        deleted["scores"].as_u64().unwrap() >= anns.len() as u64,
        "{receipt}"
    );
    assert!(receipt["audit_entry"].as_u64().unwrap() > 0);

    // Gone from every answer; everyone else untouched.
    let (_, found) = vigil
        .post_as(
            "/api/v1/audit/user-lookup",
            &audit.token,
            &json!({"user_id": "ann@example.com"}),
        )
        .await;
    assert_eq!(found["runs"], json!(0));
    for run in &anns {
        let (status, _) = vigil.get(&format!("/api/v1/runs/{}", run.trace_id)).await;
        assert_eq!(status, 404, "{}", run.trace_id);
    }
    let everyone = json!({"from": WINDOW_START, "to": "2026-11-24T00:00:00Z"});
    let left: Vec<&Run> = runs
        .iter()
        .filter(|r| r.user != "ann@example.com")
        .collect();
    let answer = investigate(&vigil, &audit.token, &everyone, 1000).await;
    assert_eq!(answer, expected(&left, &hashes));
    no_trace_left(&vigil, store.clickhouse(), &ann, &traces_of(&anns)).await;

    // Erasing again finds nothing more.
    let (status, receipt) = erase(vigil.token.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(receipt["deleted"]["runs"], json!(0));

    // The audit log holds every look-up, investigation, export and erasure, and verifies.
    let (status, log) = vigil
        .get_as("/api/v1/audit/log?limit=1000", &audit.token)
        .await;
    assert_eq!(status, 200, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("audit.user_lookup"), USERS.len() - 1 + 1);
    // One entry per page of every investigation, and the hostile ones.
    assert!(count("audit.affected") >= investigations.len() + 15);
    assert!(
        entries
            .iter()
            .filter(|e| e["action"] == "audit.export")
            .all(|e| e["parameters"]["format"].is_string())
    );
    // Two formats, as written and sealed.
    assert_eq!(count("audit.export"), 2 * 2 * investigations.len());
    assert_eq!(count("user.erase"), 2);
    let erasure = entries
        .iter()
        .find(|e| e["action"] == "user.erase")
        .unwrap();
    assert_eq!(erasure["parameters"]["user_hash"], json!(ann));
    assert_eq!(erasure["result_count"], deleted["runs"]);
    assert!(
        !log.to_string().contains("ann@example.com"),
        "raw ids never reach the log"
    );
    let data_dir = vigil.data_dir().display().to_string();
    let verified = cli(&["audit", "verify", "--data-dir", &data_dir]);
    assert!(verified.contains("valid"), "{verified}");
}

/// Injection attempts in every filter field change nothing and match nothing; malformed and
/// oversized requests are refused naming the field.
async fn hostile_filters_are_harmless(vigil: &Vigil, token: &str, runs: usize) {
    let attempts = [
        "x' OR '1'='1",
        "x'); DROP TABLE runs; --",
        "\\' OR 1=1 --",
        "x\" OR \"\"=\"",
        "v7' UNION SELECT * FROM system.tables --",
        "%' OR trace_id LIKE '%",
        "\u{0}\u{7f}ü😀",
    ];
    let fields = [
        "agent",
        "agent_version",
        "task_type",
        "environment",
        "release",
        "session_id",
        "user_hash",
        "model",
        "model_version",
        "provider",
        "prompt_id",
        "prompt_version",
        "tool",
        "tool_version",
        "classification",
    ];
    for field in fields {
        let body = json!({"from": WINDOW_START, "to": "2026-11-24T00:00:00Z",
            "filters": {field: attempts}});
        let (status, answer) = vigil.post_as("/api/v1/audit/affected", token, &body).await;
        assert_eq!(status, 200, "{field}: {answer}");
        assert_eq!(answer["runs"], json!(0), "{field}: {answer}");
    }
    let body = json!({"from": WINDOW_START, "to": "2026-11-24T00:00:00Z"});
    let (_, all) = vigil.post_as("/api/v1/audit/affected", token, &body).await;
    assert_eq!(all["runs"], json!(runs), "the tables are intact");

    let refusals = [
        (
            json!({"from": "yesterday", "to": "2026-11-24T00:00:00Z"}),
            "from",
        ),
        (
            json!({"from": WINDOW_START, "to": "2026-11-24T00:00:00Z", "filters": {"colour": ["x"]}}),
            "filters",
        ),
        (
            json!({"from": WINDOW_START, "to": "2026-11-24T00:00:00Z", "filters": {"model": ["x".repeat(5000)]}}),
            "filters",
        ),
        (
            json!({"from": WINDOW_START, "to": "2026-11-24T00:00:00Z", "filters": {"model": vec!["x"; 1001]}}),
            "filters",
        ),
        (
            json!({"from": WINDOW_START, "to": "2026-11-24T00:00:00Z", "cursor": "forged"}),
            "cursor",
        ),
        (
            json!({"from": WINDOW_START, "to": "2026-11-24T00:00:00Z", "drop": true}),
            "body",
        ),
    ];
    for (body, field) in refusals {
        let (status, answer) = vigil.post_as("/api/v1/audit/affected", token, &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], json!(field), "{answer}");
    }
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/audit/affected?format=xml", vigil.http()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/audit/affected", vigil.http()))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{\"from\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

/// No table holds a row of the erased traces or the user's hash, and no WAL file their bytes;
/// `clickhouse` is the server `vigil` stores in (none: the embedded store).
pub(crate) async fn no_trace_left(
    vigil: &Vigil,
    clickhouse: Option<&ClickHouse>,
    user_hash: &str,
    traces: &BTreeSet<String>,
) {
    let list = traces
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    match clickhouse {
        Some(ch) => {
            let db = vigil.database.clone().unwrap();
            // Every table of the database, every String and Array(String) column.
            let columns = ch
                .query(&format!(
                    "SELECT table, name, type FROM system.columns WHERE database = '{db}' FORMAT TSV"
                ))
                .await;
            let mut checked = BTreeSet::new();
            for line in columns.lines() {
                let [table, column, kind]: [&str; 3] =
                    line.split('\t').collect::<Vec<_>>().try_into().unwrap();
                let condition = match kind {
                    "String" => format!("{column} = '{user_hash}' OR {column} IN ({list})"),
                    "Array(String)" => format!("has({column}, '{user_hash}')"),
                    _ => continue,
                };
                let left = ch
                    .number(&format!(
                        "SELECT count() FROM {db}.{table} WHERE {condition}"
                    ))
                    .await;
                assert_eq!(left, 0, "{table}.{column} still holds the erased user");
                checked.insert(table.to_string());
            }
            for table in ["runs", "spans", "scores"] {
                assert!(checked.contains(table), "{checked:?}");
            }
        }
        None => {
            let store = vigil_query::EmbeddedStore::open(vigil.data_dir()).unwrap();
            for (table, extra) in [
                ("runs", format!(" OR user_hash = '{user_hash}'")),
                ("spans", String::new()),
                ("scores", String::new()),
            ] {
                let sql = format!("SELECT * FROM {table} WHERE trace_id IN ({list}){extra}");
                let left = store
                    .context()
                    .sql(&sql)
                    .await
                    .unwrap()
                    .count()
                    .await
                    .unwrap();
                assert_eq!(left, 0, "{table} still holds the erased user");
            }
        }
    }
    // The WAL: no segment holds the hash or a trace id (the records are not compressed).
    for entry in std::fs::read_dir(vigil.data_dir().join("wal")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            !holds(user_hash.as_bytes()),
            "{} holds the hash",
            path.display()
        );
        for trace in traces {
            assert!(!holds(trace.as_bytes()), "{} holds {trace}", path.display());
        }
    }
}

/// Runs at `age` before now with a retention policy, for the retention test.
fn aged_run(n: usize, age_ns: i64, policy: &str) -> v1::ExportRequest {
    let now = vigil_schemas::time::now_ns();
    let run = Run {
        trace_id: format!("{:016x}{n:016x}", 0xdead_u64),
        session: format!("s-{n}"),
        user: String::new(),
        agent_version: "1.0".into(),
        classification: Vec::new(),
        start: now - age_ns,
        models: vec![["gpt-x".into(), "2025-01".into(), "p".into(), "v1".into()]],
        tools: Vec::new(),
    };
    let mut request = export_request(&[run]);
    request.runs[0].retention = policy.into();
    request
}

async fn retention_deletes_what_expired(store: Store) {
    let policies = [
        ("VIGIL_RETENTION__DEFAULT", "30d"),
        ("VIGIL_RETENTION__POLICIES__SHORT", "2d"),
    ];
    let mut settings = policies.to_vec();
    settings.push(("VIGIL_RETENTION__ENABLED", "false"));
    let mut vigil = Vigil::start_on_with(store, &settings);
    // (age, policy, expired?)
    let runs = [
        (40 * NANOS_PER_DAY, "", true), // a day older than every policy: dropped whole
        (40 * NANOS_PER_DAY, "unknown", true), // an unknown policy is the default
        (5 * NANOS_PER_DAY, "short", true), // past its policy: deleted by row
        (5 * NANOS_PER_DAY, "", false), // within the default
        (HOUR, "short", false),         // within its policy
    ];
    for (n, (age, policy, _)) in runs.iter().enumerate() {
        let response = vigil.export_native(aged_run(n, *age, policy)).await;
        assert!(response.rejections.is_empty(), "{:?}", response.rejections);
    }
    wait_drained(&vigil).await;
    let trace = |n: usize| format!("{:016x}{n:016x}", 0xdead_u64);

    // The dry run says what would go and deletes nothing.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["retention", "--dry-run", "--data-dir"])
        .arg(vigil.data_dir())
        .envs(vigil.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let number_after = |label: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("{text}"));
        let rows = line.rsplit(": ").next().unwrap();
        rows.split_whitespace().next().unwrap().parse().unwrap()
    };
    let dropped = number_after("whole days before");
    let expired = number_after("expired runs in the days kept");
    assert_eq!(dropped + expired, 3, "{text}");
    assert!(
        dropped >= 2,
        "the 40-day-old runs sit in days older than every policy: {text}"
    );
    for n in 0..runs.len() {
        let (status, _) = vigil.get(&format!("/api/v1/runs/{}", trace(n))).await;
        assert_eq!(status, 200, "a dry run deletes nothing");
    }

    // The job: its first pass runs at start.
    vigil.stop();
    vigil.restart_with(&[("VIGIL_RETENTION__ENABLED", "true")]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for (n, (_, _, expired)) in runs.iter().enumerate() {
        let want = if *expired { 404 } else { 200 };
        loop {
            let (status, _) = vigil.get(&format!("/api/v1/runs/{}", trace(n))).await;
            if status == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {n}: {status}, want {want}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    // The pass is on the audit log, visible to every project's auditors. It is written when the
    // whole pass has finished, which can be a moment after the runs stop being served.
    let auditor = vigil.create_key("audit");
    let pass = loop {
        let (status, log) = vigil.get_as("/api/v1/audit/log", &auditor.token).await;
        assert_eq!(status, 200, "{log}");
        let entry = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "retention.delete")
            .cloned();
        if let Some(entry) = entry {
            break entry;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no retention entry: {log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(pass["key_id"], json!("system"));
    assert_eq!(pass["result_count"], json!(3));
    let data_dir = vigil.data_dir().display().to_string();
    cli(&["audit", "verify", "--data-dir", &data_dir]);
}

on_both_stores!(
    investigations_exports_and_erasure,
    retention_deletes_what_expired
);

/// A smoke run of `vigil bench audit` on both stores: the harness works, and both stores find
/// the same runs and export all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_benchmark_runs() {
    let report = support::bench_smoke("audit", &[]);
    let investigations = report["investigations"].as_array().unwrap();
    assert_eq!(investigations.len(), 10, "{report}");
    let (embedded, clickhouse) = investigations.split_at(5);
    for (e, c) in embedded.iter().zip(clickhouse) {
        assert_eq!(e["question"], c["question"]);
        assert_eq!(e["affected_runs"], c["affected_runs"], "{report}");
        assert_eq!(e["sessions"], c["sessions"], "{report}");
    }
    assert!(
        embedded
            .iter()
            .any(|i| i["affected_runs"].as_u64().unwrap() > 0)
    );
    let exports = report["exports"].as_array().unwrap();
    assert_eq!(exports.len(), 4, "{report}");
    for export in exports.iter().filter(|e| e["what"] == "every run") {
        assert_eq!(export["rows"], report["runs"], "{report}");
    }
}
