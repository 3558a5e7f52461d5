//! The kill switch through the real binary: what agents are told (with an `ingest` key, `ETag`
//! and 304), narrowing to a prompt version, role checks, refusals that name the field, the CLI,
//! alert rules that flip it within one evaluation interval of firing and back on resolve (told
//! to the rule's receiver, a real HTTP process), a person's change that the rule then leaves
//! alone, the audit log, and a kill -9.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_proto::v1;
use vigil_schemas::time::parse_rfc3339;

use crate::{
    alerts::{Receiver, SECRET, assert_signed, send_runs},
    support::{Store, Vigil, cli},
};

/// `vigil kill-switch <args>` with `token`.
fn kill_switch_cli(vigil: &Vigil, token: &str, args: &[&str]) -> String {
    let url = vigil.http();
    let mut all = vec!["kill-switch", "--url", &url, "--token", token];
    all.extend_from_slice(args);
    cli(&all)
}

/// GET of a switch with `token`: status, `ETag`, body.
async fn poll(vigil: &Vigil, path: &str, token: &str, etag: Option<&str>) -> (u16, String, Value) {
    let mut request = reqwest::Client::new()
        .get(format!("{}/api/v1/kill-switch/{path}", vigil.http()))
        .bearer_auth(token);
    if let Some(etag) = etag {
        request = request.header("If-None-Match", etag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let tag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, tag, response.json().await.unwrap_or(Value::Null))
}

async fn put(
    vigil: &Vigil,
    agent: &str,
    token: &str,
    body: Value,
    if_match: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .put(format!("{}/api/v1/kill-switch/{agent}", vigil.http()))
        .bearer_auth(token)
        .json(&body);
    if let Some(tag) = if_match {
        request = request.header("If-Match", tag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until `agent`'s switch answers `state`.
async fn wait_state(vigil: &Vigil, agent: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, body) = poll(vigil, agent, &vigil.token, None).await;
        if body["state"] == state {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{agent} is not {state}: {body}\nlog tail:\n{}",
            crate::support::tail(&vigil.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rules_file(dir: &std::path::Path, oncall: &Receiver) -> std::path::PathBuf {
    let rule = |agent: &str, reenable: bool| {
        format!(
            "[[rules]]\nname = \"{agent}-failing\"\nmetric = \"completion_rate\"\nop = \"<\"\n\
             threshold = 0.5\nfilters = {{ agent = [\"{agent}\"] }}\nwindow = \"1h\"\n\
             interval = \"1s\"\nreceivers = [\"oncall\"]\nkill_switch = \"{agent}\"\n\
             kill_switch_reenable_on_resolve = {reenable}\n"
        )
    };
    let text = format!(
        "[[receivers]]\nname = \"oncall\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\
         group_wait = \"1s\"\ngroup_interval = \"2s\"\nrepeat_interval = \"1h\"\n\
         retry_initial = \"300ms\"\ntimeout = \"5s\"\n\n{}\n{}",
        oncall.url(),
        rule("billing-bot", true),
        rule("search-bot", true),
    );
    let path = dir.join("alerts.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_switches_answer_agents_and_follow_their_alerts() {
    let oncall = Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let file = rules_file(dir.path(), &oncall);
    let mut vigil = Vigil::start_on_with(
        Store::Embedded,
        &[("VIGIL_ALERTING__RULES_FILE", file.to_str().unwrap())],
    );
    let ingest = vigil.create_key("ingest").token;
    let read = vigil.create_key("read").token;
    let admin = vigil.token.clone();

    // Never set: enabled, nothing else, for an ingest key; 304 with the tag.
    let (status, etag, never) = poll(&vigil, "support-bot", &ingest, None).await;
    assert_eq!(status, 200, "{never}");
    assert_eq!(
        never,
        json!({"state": "enabled", "reason": null, "since": null, "source": null, "scope": null})
    );
    assert_eq!(
        poll(&vigil, "support-bot", &ingest, Some(&etag)).await.0,
        304
    );
    assert_eq!(poll(&vigil, "support-bot", &read, None).await.0, 200);

    // Only admin sets; refusals name the field.
    let disable =
        json!({"state": "disabled", "reason": "v8 loops on refunds", "prompt_version": "v8"});
    for token in [&ingest, &read] {
        assert_eq!(
            put(&vigil, "support-bot", token, disable.clone(), None)
                .await
                .0,
            403
        );
    }
    for (body, field) in [
        (json!({"state": "disabled"}), "reason"),
        (json!({"state": "off", "reason": "x"}), "body"),
        (
            json!({"state": "disabled", "reason": "x", "agent_version": ""}),
            "agent_version",
        ),
        (
            json!({"state": "disabled", "reason": "x".repeat(1025)}),
            "reason",
        ),
    ] {
        let (status, answer) = put(&vigil, "support-bot", &admin, body.clone(), None).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let named = answer["error"]["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(field), "{body}: {answer}");
    }
    let (status, _, _) = poll(&vigil, "support-bot?color=red", &ingest, None).await;
    assert_eq!(status, 400, "unknown query parameter");

    // Disabled for one prompt version, with the CLI: that version stops, the others run.
    let said = kill_switch_cli(
        &vigil,
        &admin,
        &[
            "disable",
            "support-bot",
            "--prompt-version",
            "v8",
            "--reason",
            "v8 loops on refunds",
        ],
    );
    assert!(
        said.starts_with("disabled since ") && said.contains("v8 loops on refunds"),
        "{said}"
    );
    let (_, v8_tag, v8) = poll(
        &vigil,
        "support-bot?agent_version=2.1&prompt_version=v8",
        &ingest,
        None,
    )
    .await;
    assert_eq!(v8["state"], "disabled");
    assert_eq!(v8["reason"], "v8 loops on refunds");
    assert_eq!(
        v8["scope"],
        json!({"agent": "support-bot", "prompt_version": "v8"})
    );
    assert_eq!(v8["source"]["type"], "api");
    let (_, _, v7) = poll(&vigil, "support-bot?prompt_version=v7", &ingest, None).await;
    assert_eq!(v7["state"], "enabled");
    // The agent-wide answer did not change; v8's did: a full answer for the old tag.
    assert_eq!(
        poll(&vigil, "support-bot", &ingest, Some(&etag)).await.0,
        304
    );
    assert_eq!(
        poll(
            &vigil,
            "support-bot?prompt_version=v8",
            &ingest,
            Some(&etag)
        )
        .await
        .0,
        200
    );

    // If-Match: a stale tag is refused, the current one goes through.
    let enable_v8 = json!({"state": "enabled", "reason": "fixed in v9", "prompt_version": "v8"});
    let (status, _) = put(
        &vigil,
        "support-bot",
        &admin,
        enable_v8.clone(),
        Some(&etag),
    )
    .await;
    assert_eq!(status, 412);
    let (status, answer) = put(
        &vigil,
        "support-bot",
        &admin,
        enable_v8.clone(),
        Some(&v8_tag),
    )
    .await;
    assert_eq!((status, &answer["state"]), (200, &json!("enabled")));

    // An alert fires: its rule disables the agent within one evaluation interval (1 s).
    send_runs(&vigil, "billing-bot", v1::Outcome::Failure, 6, 71).await;
    let disabled = wait_state(&vigil, "billing-bot", "disabled").await;
    assert_eq!(
        disabled["source"],
        json!({"type": "alert_rule", "rule": "billing-bot-failing"})
    );
    assert_eq!(
        disabled["reason"],
        "alert rule \"billing-bot-failing\" fired"
    );
    let fired = oncall.wait_for("billing-bot-failing", 1, &vigil).await;
    assert_signed(&fired[0]);
    let alert = &fired[0]["body"]["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["annotations"]["kill_switch"], "billing-bot");
    assert_eq!(alert["annotations"]["kill_switch_state"], "disabled");
    let fired_at = parse_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap();
    let since = parse_rfc3339(disabled["since"].as_str().unwrap()).unwrap();
    assert!(
        (0..=1_000_000_000).contains(&(since - fired_at)),
        "fired at {fired_at}, switched at {since}"
    );

    // The other rule fires too; then a person takes its switch over.
    send_runs(&vigil, "search-bot", v1::Outcome::Failure, 6, 72).await;
    wait_state(&vigil, "search-bot", "disabled").await;
    oncall.wait_for("search-bot-failing", 1, &vigil).await;
    let mine = json!({"state": "disabled", "reason": "keep it off until the index is rebuilt"});
    assert_eq!(put(&vigil, "search-bot", &admin, mine, None).await.0, 200);

    // Killed and restarted: every switch as it was.
    let (_, before, _) = poll(&vigil, "billing-bot", &ingest, None).await;
    vigil.kill9();
    vigil.restart();
    assert_eq!(
        poll(&vigil, "billing-bot", &ingest, Some(&before)).await.0,
        304
    );

    // Both recover: billing-bot is re-enabled by its rule, and the resolved notification says
    // so; search-bot stays as the person left it.
    send_runs(&vigil, "billing-bot", v1::Outcome::Success, 30, 73).await;
    send_runs(&vigil, "search-bot", v1::Outcome::Success, 30, 74).await;
    let enabled = wait_state(&vigil, "billing-bot", "enabled").await;
    assert_eq!(
        enabled["reason"],
        "alert rule \"billing-bot-failing\" resolved"
    );
    let both = oncall.wait_for("billing-bot-failing", 2, &vigil).await;
    let resolved = &both[1]["body"]["alerts"][0];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["annotations"]["kill_switch_state"], "enabled");
    oncall.wait_for("search-bot-failing", 2, &vigil).await;
    let (_, _, search) = poll(&vigil, "search-bot", &ingest, None).await;
    assert_eq!(search["state"], "disabled");
    assert_eq!(search["reason"], "keep it off until the index is rebuilt");

    // Every change is on the audit log: by the admin key, or by the system for a rule.
    let (_, log) = vigil.get("/api/v1/audit/log?limit=1000").await;
    let changes: Vec<(String, String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "kill_switch.set")
        .map(|e| {
            let p = &e["parameters"];
            let agent = p["agent"].as_str().or(p["scope"]["agent"].as_str());
            (
                e["key_id"].as_str().unwrap().to_string(),
                agent.unwrap().to_string(),
                p["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let admin_id = vigil.get("/api/v1/whoami").await.1["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let by = |who: &str, agent: &str, state: &str| (who.to_string(), agent.into(), state.into());
    assert_eq!(
        changes,
        vec![
            by(&admin_id, "support-bot", "disabled"),
            by(&admin_id, "support-bot", "enabled"),
            by("system", "billing-bot", "disabled"),
            by("system", "search-bot", "disabled"),
            by(&admin_id, "search-bot", "disabled"),
            by("system", "billing-bot", "enabled"),
        ],
        "{log}"
    );

    // The CLI lists every switch.
    let listed = kill_switch_cli(&vigil, &read, &["list"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        listed.contains("agent billing-bot\tenabled\t")
            && listed.contains("alert rule billing-bot-failing"),
        "{listed}"
    );
}
