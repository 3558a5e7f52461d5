//! Alerting end to end: the real `vigil` binary evaluates rules over runs it ingested, and posts
//! webhooks to real HTTP receivers (a Python process each) that verify the signatures with the
//! Standard Webhooks reference library. On both stores:
//!
//! - an error spike gives exactly one firing notification, validly signed, in Alertmanager's
//!   format; recovery gives exactly one resolved notification;
//! - a receiver that answers 500 twice gets the notification on the third try, with the same
//!   `webhook-id` every time;
//! - Vigil killed (SIGKILL) and restarted while alerts fire sends no duplicate;
//! - a silence suppresses its alert until it is expired.
//!
//! And on the embedded store: rules through the API (refused with the field when invalid), the
//! rules file reloaded on change and on SIGHUP, a broken file leaving the rules in force.

use crate::support;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{Store, Vigil, free_port, python};
use vigil_proto::v1::{self, ExportRequest};
use vigil_schemas::time::now_ns;

pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A webhook receiver process and the requests it logged.
pub(crate) struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    pub(crate) fn start(fail_first: u32) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let port = free_port();
        let child = Receiver::spawn(port, &log, fail_first);
        Receiver {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn spawn(port: u16, log: &Path, fail_first: u32) -> Child {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alerts/receiver.py");
        let child = Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string(), "--secret", SECRET])
            .args(["--fail-first", &fail_first.to_string()])
            .arg("--log")
            .arg(log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the receiver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Kills the receiver: its port refuses connections until [`Receiver::restart`].
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the receiver again on the same port, appending to the same log.
    pub(crate) fn restart(&mut self) {
        self.child = Receiver::spawn(self.port, &self.log, 0);
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Every request received so far, in order.
    pub(crate) fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The requests about one alert rule (the group `alertname`).
    pub(crate) fn about(&self, rule: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["body"]["groupLabels"]["alertname"] == rule)
            .collect()
    }

    /// Waits until `rule` has `n` requests.
    pub(crate) async fn wait_for(&self, rule: &str, n: usize, vigil: &Vigil) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let got = self.about(rule);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{rule}: {} of {n} requests; alerts: {}\nlog tail:\n{}",
                got.len(),
                vigil.get("/api/v1/alerts").await.1,
                support::tail(&vigil.log(), 30)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checks the signature here too, independently of the receiver's library: HMAC-SHA256 of
/// `id.timestamp.body` under the base64-decoded `whsec_` key.
pub(crate) fn assert_signed(request: &Value) {
    use base64::Engine as _;
    assert_eq!(
        request["verified"], true,
        "standardwebhooks refused {request}"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.{}",
            request["id"].as_str().unwrap(),
            request["timestamp"].as_str().unwrap(),
            request["raw"].as_str().unwrap()
        )
        .as_bytes(),
    );
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(request["signature"], expected);
}

fn rules_file(dir: &Path, oncall: &Receiver, flaky: &Receiver) -> PathBuf {
    let receiver = |name: &str, url: String| {
        format!(
            "[[receivers]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\
             group_wait = \"1s\"\ngroup_interval = \"2s\"\nrepeat_interval = \"1h\"\n\
             retry_initial = \"300ms\"\ntimeout = \"5s\"\n"
        )
    };
    let rule = |name: &str, agent: &str, receiver: &str, condition: &str| {
        format!(
            "[[rules]]\nname = \"{name}\"\nfilters = {{ agent = [\"{agent}\"] }}\nwindow = \"1h\"\n\
             interval = \"1s\"\n{condition}\nlabels = {{ severity = \"page\" }}\n\
             annotations = {{ summary = \"{{{{ $labels.alertname }}}}: {{{{ $value }}}}\" }}\n\
             receivers = [\"{receiver}\"]\n"
        )
    };
    let text = [
        receiver("oncall", oncall.url()),
        receiver("flaky", flaky.url()),
        rule(
            "run-error-spike",
            "support-bot",
            "oncall",
            "metric = \"completion_rate\"\nop = \"<\"\nthreshold = 0.5",
        ),
        rule(
            "billing-errors",
            "billing-bot",
            "flaky",
            "metric = \"failed_runs\"\nop = \">\"\nthreshold = 3",
        ),
        rule(
            "search-errors",
            "search-bot",
            "oncall",
            "metric = \"failed_runs\"\nop = \">\"\nthreshold = 3",
        ),
    ]
    .join("\n");
    let path = dir.join("alerts.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Sends `n` runs of `agent`, each with this outcome, started a second ago.
pub(crate) async fn send_runs(
    vigil: &Vigil,
    agent: &str,
    outcome: v1::Outcome,
    n: usize,
    seed: u64,
) {
    send_runs_at(vigil, agent, outcome, n, seed, now_ns() - 1_000_000_000).await
}

async fn send_runs_at(
    vigil: &Vigil,
    agent: &str,
    outcome: v1::Outcome,
    n: usize,
    seed: u64,
    start: i64,
) {
    let runs = (0..n)
        .map(|i| v1::Run {
            trace_id: format!("{:016x}{:016x}", seed, i as u64 + 1),
            session_id: format!("session-{agent}"),
            agent_name: agent.into(),
            environment: "production".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 500_000_000,
            outcome: outcome as i32,
            ..Default::default()
        })
        .collect();
    let response = vigil
        .export_native(ExportRequest {
            runs,
            ..Default::default()
        })
        .await;
    assert_eq!(response.accepted_runs as usize, n, "{response:?}");
}

async fn request(
    vigil: &Vigil,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", vigil.http()))
        .bearer_auth(&vigil.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn delete(vigil: &Vigil, path: &str) -> u16 {
    request(vigil, reqwest::Method::DELETE, path, None).await.0
}

/// Waits until every rule has been evaluated after `since_ns` (a start or a restart).
async fn wait_evaluated(vigil: &Vigil, since_ns: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = vigil.get("/api/v1/alert-rules").await;
        let rules = body["rules"].as_array().cloned().unwrap_or_default();
        let done = !rules.is_empty()
            && rules.iter().all(|r| {
                r["last_evaluation"]
                    .as_str()
                    .and_then(vigil_schemas::time::parse_rfc3339)
                    .is_some_and(|t| t >= since_ns - 1_000_000_000)
            });
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "rules not evaluated: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn alerts_fire_resolve_and_survive_restarts(store: Store) {
    let oncall = Receiver::start(0);
    let flaky = Receiver::start(2);
    let dir = tempfile::tempdir().unwrap();
    let file = rules_file(dir.path(), &oncall, &flaky);
    let mut vigil = Vigil::start_on_with(
        store,
        &[
            ("VIGIL_ALERTING__RULES_FILE", file.to_str().unwrap()),
            ("VIGIL_ALERTING__EXTERNAL_URL", "http://vigil.test:4318"),
        ],
    );

    // A silence on one rule, before anything fires.
    let (status, silence) = vigil
        .post(
            "/api/v1/silences",
            &json!({
                "matchers": [{"name": "alertname", "value": "search-errors"}],
                "ends_at": "2099-01-01T00:00:00Z",
                "comment": "known incident",
            }),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["state"], "active");

    // The spike: every support-bot run fails; billing-bot and search-bot fail 5 times each.
    send_runs(&vigil, "support-bot", v1::Outcome::Failure, 10, 1).await;
    send_runs(&vigil, "billing-bot", v1::Outcome::Failure, 5, 2).await;
    send_runs(&vigil, "search-bot", v1::Outcome::Failure, 5, 3).await;

    // Exactly one firing notification, signed, in Alertmanager's format.
    let fired = oncall.wait_for("run-error-spike", 1, &vigil).await;
    let first = &fired[0];
    assert_signed(first);
    assert_eq!(first["answered"], 200);
    let body = &first["body"];
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "oncall");
    assert_eq!(body["externalURL"], "http://vigil.test:4318");
    assert_eq!(body["commonLabels"]["severity"], "page");
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["labels"]["alertname"], "run-error-spike");
    assert_eq!(alerts[0]["annotations"]["summary"], "run-error-spike: 0");
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        alerts[0]["generatorURL"],
        "http://vigil.test:4318/api/v1/alert-rules/run-error-spike"
    );
    assert_eq!(alerts[0]["fingerprint"].as_str().unwrap().len(), 16);

    // The flaky receiver: 500, 500, then delivered, all with one webhook-id.
    let tries = flaky.wait_for("billing-errors", 3, &vigil).await;
    let answered: Vec<i64> = tries
        .iter()
        .map(|t| t["answered"].as_i64().unwrap())
        .collect();
    assert_eq!(answered, vec![500, 500, 200]);
    assert!(tries.iter().all(|t| t["id"] == tries[0]["id"]), "{tries:?}");
    tries.iter().for_each(assert_signed);
    assert_metrics(
        &vigil,
        &[
            "vigil_alert_webhook_attempts_total{receiver=\"flaky\",outcome=\"retryable_error\"} 2",
            "vigil_alert_webhook_attempts_total{receiver=\"flaky\",outcome=\"delivered\"} 1",
            "vigil_alert_notifications_total{receiver=\"flaky\",outcome=\"delivered\"} 1",
        ],
    )
    .await;

    // The silenced alert fires, but is not sent.
    let (_, active) = vigil.get("/api/v1/alerts").await;
    let silenced = active["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "search-errors")
        .cloned()
        .unwrap_or_else(|| panic!("search-errors is not firing: {active}"));
    assert_eq!(silenced["state"], "firing");
    assert_eq!(silenced["silenced_by"], json!([silence["id"]]));

    // Killed and restarted while firing: no duplicate to anyone.
    vigil.kill9();
    let restarted_at = now_ns();
    vigil.restart();
    wait_evaluated(&vigil, restarted_at).await;
    // Past group_wait and two group intervals after the first evaluation since the restart.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        oncall.about("run-error-spike").len(),
        1,
        "duplicate after restart"
    );
    assert_eq!(
        flaky.about("billing-errors").len(),
        3,
        "duplicate after restart"
    );
    assert!(
        oncall.about("search-errors").is_empty(),
        "the silence was ignored"
    );

    // Recovery: 40 successes make the completion rate 0.8; exactly one resolved notification.
    send_runs(&vigil, "support-bot", v1::Outcome::Success, 40, 4).await;
    let both = oncall.wait_for("run-error-spike", 2, &vigil).await;
    let resolved = &both[1];
    assert_signed(resolved);
    assert_ne!(resolved["id"], first["id"]);
    assert_eq!(resolved["body"]["status"], "resolved");
    let alert = &resolved["body"]["alerts"][0];
    assert_eq!(alert["status"], "resolved");
    assert_ne!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alert["startsAt"], alerts[0]["startsAt"]);

    // Expiring the silence lets its alert through, once.
    let id = silence["id"].as_str().unwrap();
    let (status, expired) = request(
        &vigil,
        reqwest::Method::DELETE,
        &format!("/api/v1/silences/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{expired}");
    assert_eq!(expired["state"], "expired");
    let unsilenced = oncall.wait_for("search-errors", 1, &vigil).await;
    assert_eq!(unsilenced[0]["body"]["status"], "firing");

    // Nothing more is said about anything.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(oncall.about("run-error-spike").len(), 2);
    assert_eq!(oncall.about("search-errors").len(), 1);
    assert_eq!(flaky.about("billing-errors").len(), 3);

    // Delivery outcomes are in /metrics (counted since the restart).
    assert_metrics(
        &vigil,
        &[
            "vigil_alert_notifications_total{receiver=\"oncall\",outcome=\"delivered\"} 2",
            "vigil_alerts_firing 2",
        ],
    )
    .await;
}

async fn metrics_text(vigil: &Vigil) -> String {
    reqwest::get(format!("{}/metrics", vigil.http()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits (up to 10 s) for every line to be in /metrics: a receiver records a
/// request before Vigil has read its answer and counted the outcome.
async fn assert_metrics(vigil: &Vigil, lines: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = metrics_text(vigil).await;
        let missing = lines.iter().find(|line| !metrics.contains(*line));
        match missing {
            None => return,
            Some(line) if Instant::now() >= deadline => panic!("{line} not in\n{metrics}"),
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn rules_through_the_api_and_the_file(store: Store) {
    let oncall = Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.toml");
    let receiver = format!(
        "[[receivers]]\nname = \"oncall\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
        oncall.url()
    );
    let file_rule = |name: &str| {
        format!(
            "[[rules]]\nname = \"{name}\"\nmetric = \"runs\"\nwindow = \"5m\"\nop = \">\"\nthreshold = 1000\n"
        )
    };
    std::fs::write(&file, format!("{receiver}\n{}", file_rule("from-file"))).unwrap();
    let vigil = Vigil::start_on_with(
        store,
        &[
            ("VIGIL_ALERTING__RULES_FILE", file.to_str().unwrap()),
            ("VIGIL_ALERTING__RELOAD_CHECK_INTERVAL", "200ms"),
        ],
    );
    let names = |body: &Value| -> Vec<String> {
        body["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let put = |name: &str, body: Value| {
        let path = format!("/api/v1/alert-rules/{name}");
        let vigil = &vigil;
        async move { request(vigil, reqwest::Method::PUT, &path, Some(body)).await }
    };

    // Invalid rules are refused with the field and the reason.
    for (body, field) in [
        (
            json!({"metric": "p99", "window": "5m", "op": ">", "threshold": 1}),
            "metric",
        ),
        (
            json!({"metric": "model_calls", "group_by": ["tool"], "window": "5m", "op": ">", "threshold": 1}),
            "group_by",
        ),
        (
            json!({"metric": "runs", "window": "soon", "op": ">", "threshold": 1}),
            "window",
        ),
        (
            json!({"metric": "runs", "window": "5m", "threshold": 1}),
            "op",
        ),
        (
            json!({"metric": "runs", "window": "5m", "op": ">", "threshold": 1, "receivers": ["pager"]}),
            "receivers",
        ),
        (
            json!({"metric": "runs", "window": "5m", "baseline": "last_week", "ratio_above": 2}),
            "baseline",
        ),
        (
            json!({"metric": "runs", "window": "5m", "op": ">", "threshold": 1, "annotations": {"summary": "{{ $valeu }}"}}),
            "annotations.summary",
        ),
    ] {
        let (status, answer) = put("bad", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, _) = put(
        "from-file",
        json!({"metric": "runs", "window": "5m", "op": ">", "threshold": 1}),
    )
    .await;
    assert_eq!(
        status, 409,
        "a file rule cannot be replaced through the API"
    );

    // An anomaly rule: failed runs in the last 10 minutes against the same 10 minutes on each of
    // the 7 days before. anomaly-bot failed 10 times a day and 100 times now (ratio 10): it
    // fires; steady-bot failed 10 times a day and 20 times now (ratio 2): it does not.
    let day = 86_400 * 1_000_000_000i64;
    let now = now_ns();
    for k in 1..=7 {
        let at = now - k * day - 60_000_000_000;
        send_runs_at(
            &vigil,
            "anomaly-bot",
            v1::Outcome::Failure,
            10,
            100 + k as u64,
            at,
        )
        .await;
        send_runs_at(
            &vigil,
            "steady-bot",
            v1::Outcome::Failure,
            10,
            200 + k as u64,
            at,
        )
        .await;
    }
    send_runs(&vigil, "anomaly-bot", v1::Outcome::Failure, 100, 300).await;
    send_runs(&vigil, "steady-bot", v1::Outcome::Failure, 20, 301).await;
    let anomaly = json!({"metric": "failed_runs", "group_by": ["agent"], "window": "10m",
        "interval": "1s", "baseline": "same_window_last_7d", "ratio_above": 3, "min_baseline": 5,
        "annotations": {"summary": "{{ $value }} failed, {{ $baseline }} usually"}});
    assert_eq!(put("failed-runs-anomaly", anomaly).await.0, 201);
    let deadline = Instant::now() + Duration::from_secs(60);
    let firing = loop {
        let (_, body) = vigil.get("/api/v1/alerts").await;
        let alerts = body["alerts"].as_array().unwrap().clone();
        if let Some(alert) = alerts.iter().find(|a| a["rule"] == "failed-runs-anomaly") {
            break (alert.clone(), alerts);
        }
        assert!(
            Instant::now() < deadline,
            "the anomaly did not fire: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (alert, alerts) = firing;
    assert_eq!(alert["labels"]["agent"], "anomaly-bot");
    assert_eq!(alert["value"], 100.0);
    assert_eq!(alert["baseline"], 10.0);
    assert_eq!(alert["annotations"]["summary"], "100 failed, 10 usually");
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a["rule"] == "failed-runs-anomaly")
            .count(),
        1,
        "steady-bot must not fire: {alerts:?}"
    );
    assert_eq!(
        delete(&vigil, "/api/v1/alert-rules/failed-runs-anomaly").await,
        200
    );

    // Created (201), replaced (200), read, listed, deleted.
    let rule = json!({"metric": "tool_error_rate", "group_by": ["tool"], "window": "15m", "op": ">", "threshold": 0.2, "for": "5m"});
    assert_eq!(put("tool-failures", rule.clone()).await.0, 201);
    let mut replaced = rule.clone();
    replaced["threshold"] = json!(0.3);
    let (status, view) = put("tool-failures", replaced).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["threshold"], 0.3);
    assert_eq!(view["source"], "api");
    let (_, listed) = vigil.get("/api/v1/alert-rules").await;
    assert_eq!(names(&listed), vec!["from-file", "tool-failures"]);

    // A read-only key reads, but cannot change rules.
    let reader = vigil.create_key("read");
    let (status, _) = vigil
        .get_as("/api/v1/alert-rules/tool-failures", &reader.token)
        .await;
    assert_eq!(status, 200);
    let (status, _) = vigil
        .delete_as("/api/v1/alert-rules/tool-failures", &reader.token)
        .await;
    assert_eq!(status, 403);

    // API rules survive a restart.
    let mut vigil = vigil;
    vigil.stop();
    vigil.restart();
    let (_, listed) = vigil.get("/api/v1/alert-rules").await;
    assert_eq!(names(&listed), vec!["from-file", "tool-failures"]);
    assert_eq!(
        delete(&vigil, "/api/v1/alert-rules/tool-failures").await,
        200
    );
    assert_eq!(
        delete(&vigil, "/api/v1/alert-rules/tool-failures").await,
        404
    );

    // The file changes: reloaded without a signal.
    std::fs::write(
        &file,
        format!(
            "{receiver}\n{}\n{}",
            file_rule("from-file"),
            file_rule("added")
        ),
    )
    .unwrap();
    let listed = wait_rules(&vigil, |n| n.len() == 2).await;
    assert_eq!(listed, vec!["added", "from-file"]);

    // A broken file leaves the rules in force, and says so in /metrics.
    std::fs::write(
        &file,
        format!("{receiver}\n{}\nop = \"~\"", file_rule("broken")),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if metrics_text(&vigil)
            .await
            .contains("vigil_alert_config_last_reload_successful 0")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the broken file was not noticed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, listed) = vigil.get("/api/v1/alert-rules").await;
    assert_eq!(names(&listed), vec!["added", "from-file"]);
    assert!(vigil.log().contains("the rules file did not load"));

    // SIGHUP reloads too (the file is put back with its modification time unchanged, so only the
    // signal can explain the reload).
    let text = format!("{receiver}\n{}", file_rule("after-hup"));
    let before = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(before)
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        names(&vigil.get("/api/v1/alert-rules").await.1),
        vec!["added", "from-file"]
    );
    let status = Command::new("kill")
        .args(["-HUP", &vigil.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let listed = wait_rules(&vigil, |n| n == ["after-hup"]).await;
    assert_eq!(listed, vec!["after-hup"]);
}

async fn wait_rules(vigil: &Vigil, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = vigil.get("/api/v1/alert-rules").await;
        let mut names: Vec<String> = body["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        if done(&names) {
            return names;
        }
        assert!(Instant::now() < deadline, "rules are {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_stores!(alerts_fire_resolve_and_survive_restarts);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rules_through_the_api_and_the_file_embedded() {
    rules_through_the_api_and_the_file(Store::Embedded).await
}

/// A smoke run of `vigil bench alerts` on both stores: the harness works, the two stores,
/// holding the same data, raise the same number of alerts for the same rules, and every rule
/// reads the same in its shared batch as alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_benchmark_runs() {
    let report = support::bench_smoke("alerts", &[]);
    assert_eq!(report["rules"], 50, "{report}");
    assert!(report["batches"].as_u64().unwrap() > 1, "{report}");
    let stores = report["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 2, "{report}");
    for store in stores {
        assert!(store["round_seconds"].as_f64().unwrap() > 0.0, "{report}");
        // Rules sharing a request read what each would read alone.
        assert_eq!(store["rules_differing_alone"], 0, "{report}");
    }
    assert!(stores[0]["active_alerts"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        stores[0]["active_alerts"], stores[1]["active_alerts"],
        "{report}"
    );
}
