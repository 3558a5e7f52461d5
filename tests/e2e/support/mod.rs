//! Test support: runs the real `vigil` binary on free ports in a temporary data directory, and
//! talks to it over real sockets.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;
use tonic::{Request, Status, metadata::MetadataValue};
use vigil_proto::v1::{self, ingest_service_client::IngestServiceClient};
use vigil_schemas::layout::{EmbeddedLayout, SEALED_FILE_PREFIX, Table, is_data_file};

pub mod calls;
pub mod clickhouse;
pub mod conformance;
pub mod load;
pub mod watched;
pub mod zookeeper;

use clickhouse::{ClickHouse, unique_database};

/// Which store a Vigil under test writes to and reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Embedded,
    /// A database of its own on this test binary's shared ClickHouse server.
    ClickHouse,
}

impl Store {
    /// The server a Vigil on this store keeps its data in (none: the embedded store).
    pub fn clickhouse(self) -> Option<&'static ClickHouse> {
        match self {
            Store::Embedded => None,
            Store::ClickHouse => Some(ClickHouse::shared()),
        }
    }
}

/// Settings pointing a Vigil at `database` on the ClickHouse server at `url`.
pub fn clickhouse_env(url: &str, database: &str) -> Vec<(String, String)> {
    vec![
        ("VIGIL_STORE__KIND".into(), "clickhouse".into()),
        ("VIGIL_STORE__CLICKHOUSE__URL".into(), url.into()),
        ("VIGIL_STORE__CLICKHOUSE__DATABASE".into(), database.into()),
    ]
}

/// Generates, for an `async fn name(store: Store)`, the tests `name::embedded` and
/// `name::clickhouse`: every end-to-end scenario runs against both stores.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$name($crate::support::Store::Embedded).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn clickhouse() {
                super::$name($crate::support::Store::ClickHouse).await
            }
        }
    )+};
}

pub struct Vigil {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub grpc_port: u16,
    pub http_port: u16,
    pub token: String,
    extra_env: Vec<(String, String)>,
    /// The ClickHouse database this Vigil uses, when it uses one.
    pub database: Option<String>,
    /// With TLS on the HTTP port: the CA that issued its certificate (the harness then talks
    /// https to `localhost`).
    https_ca: Option<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
}

/// A loopback port nothing listens on, never handed out twice by this process: taken in turn
/// from 20000-32767, below Linux's ephemeral range (32768-60999). Ports the kernel picks
/// (`bind` to port 0, then let go) may come back twice in a row, and two servers given one
/// port leave one of them dead and the other answering for both.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id() % COUNT;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(
            n < COUNT,
            "no free loopback port left in {FIRST}-{}",
            FIRST + COUNT - 1
        );
        let port = (FIRST + (offset + n) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Vigil {
    /// Starts a fresh Vigil with its own data directory.
    pub fn start() -> Vigil {
        Vigil::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Vigil {
        Vigil::start_on_with(Store::Embedded, env)
    }

    /// Starts a fresh Vigil on `store` (on ClickHouse: a new database on the shared server).
    pub fn start_on(store: Store) -> Vigil {
        Vigil::start_on_with(store, &[])
    }

    pub fn start_on_with(store: Store, env: &[(&str, &str)]) -> Vigil {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut database = None;
        if store == Store::ClickHouse {
            let name = unique_database();
            env.extend(clickhouse_env(&ClickHouse::shared().url(), &name));
            database = Some(name);
        }
        let mut vigil = Vigil::spawn_with(env);
        vigil.database = database;
        vigil
    }

    /// Starts a fresh Vigil (own data directory, free ports) with these settings.
    pub fn spawn_with(env: Vec<(String, String)>) -> Vigil {
        Vigil::spawn_https(env, None)
    }

    /// [`Vigil::spawn_with`] for settings that put TLS on the HTTP port with a certificate
    /// issued by `https_ca`.
    pub fn spawn_https(env: Vec<(String, String)>, https_ca: Option<PathBuf>) -> Vigil {
        let tmp = tempfile::tempdir().unwrap();
        let mut vigil = Vigil {
            child: None,
            data_dir: tmp.path().to_path_buf(),
            grpc_port: free_port(),
            http_port: free_port(),
            token: String::new(),
            extra_env: env,
            database: None,
            https_ca,
            _tmp: Some(tmp),
        };
        vigil.spawn();
        // A node that joins others sharing their keys makes none: its test sets the token.
        vigil.token = std::fs::read_to_string(vigil.data_dir.join("bootstrap.key"))
            .unwrap_or_default()
            .trim()
            .to_string();
        vigil
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("vigil.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env(
                "VIGIL_SERVER__GRPC_LISTEN",
                format!("127.0.0.1:{}", self.grpc_port),
            )
            .env(
                "VIGIL_SERVER__HTTP_LISTEN",
                format!("127.0.0.1:{}", self.http_port),
            )
            .env("VIGIL_BATCHER__MAX_DELAY", "200ms")
            .env("VIGIL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.extra_env {
            command.env(k, v);
        }
        self.child = Some(command.spawn().unwrap());
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.healthy() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "vigil exited with {status} during start; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "vigil did not become healthy; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthy(&self) -> bool {
        let Some(ca) = &self.https_ca else {
            return http_blocking(self.http_port, "GET", "/healthz", "")
                .is_some_and(|(s, _)| s == 200);
        };
        let curl = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(ca)
            .arg(format!("{}/healthz", self.http()))
            .output()
            .unwrap();
        curl.stdout == b"200"
    }

    /// An HTTP client for this Vigil (trusting its CA when it speaks https).
    pub fn client(&self) -> reqwest::Client {
        let mut client = reqwest::Client::builder();
        if let Some(ca) = &self.https_ca {
            let pem = std::fs::read(ca).unwrap();
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        client.build().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("vigil.log")).unwrap_or_default()
    }

    pub fn http(&self) -> String {
        match self.https_ca {
            Some(_) => format!("https://localhost:{}", self.http_port),
            None => format!("http://127.0.0.1:{}", self.http_port),
        }
    }

    pub fn grpc(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: no flush, no fsync, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM and wait for the graceful exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .arg(child.id().to_string())
                .status()
                .unwrap();
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "graceful shutdown failed: {status}; log:\n{}",
                self.log()
            );
        }
    }

    /// Starts again on the same data directory and ports.
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }

    /// Starts again on the same data directory and ports, with these settings added (a setting
    /// given again replaces the earlier value).
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.extra_env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.restart();
    }

    /// The settings this Vigil was started with (its store among them).
    pub fn env(&self) -> &[(String, String)] {
        &self.extra_env
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// GET with the admin key; returns (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(path, &self.token).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> (u16, Value) {
        let request = self.client().get(format!("{}{path}", self.http()));
        answer(request.bearer_auth(token)).await
    }

    /// DELETE with `token`; returns (status, JSON body).
    pub async fn delete_as(&self, path: &str, token: &str) -> (u16, Value) {
        let request = self.client().delete(format!("{}{path}", self.http()));
        answer(request.bearer_auth(token)).await
    }

    /// POST a JSON body with the admin key; returns (status, JSON body).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_as(path, &self.token, body).await
    }

    /// POST a JSON body with `token`; returns (status, JSON body).
    pub async fn post_as(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let request = self.client().post(format!("{}{path}", self.http()));
        answer(request.bearer_auth(token).json(body)).await
    }

    /// PUT a JSON body with the admin key; returns (status, JSON body).
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let request = self.client().put(format!("{}{path}", self.http()));
        answer(request.bearer_auth(&self.token).json(body)).await
    }

    /// The answer of `POST /api/v1/metrics/query` to `query`, which must succeed.
    pub async fn metrics(&self, query: &Value) -> Value {
        let (status, answer) = self.post("/api/v1/metrics/query", query).await;
        assert_eq!(
            status,
            200,
            "{answer}; the log ends:\n{}",
            tail(&self.log(), 40)
        );
        answer
    }

    /// Every run `GET /api/v1/runs?{query}` lists, following `next_cursor` to the end.
    pub async fn list_all_runs(&self, query: &str) -> Vec<Value> {
        self.list_runs_in_pages(query, 1000).await
    }

    /// [`Self::list_all_runs`], `limit` runs a page.
    pub async fn list_runs_in_pages(&self, query: &str, limit: usize) -> Vec<Value> {
        let mut runs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/runs?limit={limit}&{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = self.get(&path).await;
            assert_eq!(status, 200, "{body}");
            runs.extend(body["runs"].as_array().unwrap().iter().cloned());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return runs,
            }
        }
    }

    /// Polls `GET /api/v1/runs/{trace_id}` until the run and `spans` spans are readable.
    pub async fn wait_run(&self, trace_id: &str, spans: usize) -> Value {
        self.wait_trace(trace_id, spans, true).await
    }

    /// [`Self::wait_run`], where `with_run: false` waits for the spans alone (a trace whose root
    /// span has not come has no run).
    pub async fn wait_trace(&self, trace_id: &str, spans: usize, with_run: bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get(&format!("/api/v1/runs/{trace_id}")).await;
            if status == 200
                && (!with_run || !body["run"].is_null())
                && body["spans"].as_array().map_or(0, |s| s.len()) >= spans
            {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "run {trace_id} not readable: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a key for project `default` with the given roles through the CLI.
    pub fn create_key(&self, roles: &str) -> CreatedKey {
        let data_dir = self.data_dir.display().to_string();
        // With the server's settings: on ClickHouse the keys are in the store.
        let text = cli_with(
            &["keys", "--data-dir", &data_dir, "create", "--role", roles],
            &self.extra_env,
        );
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .to_string()
        };
        let key = CreatedKey {
            id: field("id:"),
            secret: field("secret:"),
            token: field("token:"),
        };
        // Shared keys reach a running server at its next poll of the store (about a second).
        let deadline = Instant::now() + Duration::from_secs(30);
        let auth = format!("Authorization: Bearer {}", key.token);
        while http_blocking_with(self.http_port, "GET", "/api/v1/whoami", &auth)
            .is_none_or(|(status, _)| status == 401)
        {
            assert!(Instant::now() < deadline, "the new key is not accepted");
            std::thread::sleep(Duration::from_millis(50));
        }
        key
    }

    /// The sum of the samples of a `/metrics` family (which must exist).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client()
            .get(format!("{}/metrics", self.http()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .collect();
        assert!(!values.is_empty(), "/metrics has no {name}");
        values.iter().sum()
    }
}

impl Drop for Vigil {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Settings that make the embedded store seal every finished day at once (`seal_after` 0), in
/// passes 100 ms apart, and delete merged files at once: queries answering meanwhile see files
/// vanish under them, and are run again over a new listing.
pub const SEAL_AT_ONCE: &[(&str, &str)] = &[
    ("VIGIL_STORE__SEAL_AFTER", "0s"),
    ("VIGIL_STORE__COMPACTION_INTERVAL", "100ms"),
    ("VIGIL_STORE__COMPACTION_GRACE", "0s"),
];

/// Settings that make the ClickHouse store seal every finished day as soon as it is quiet, in
/// passes 100 ms apart. Superseded generations stay for the default grace, so that queries
/// running while a day is sealed again finish over the generation they chose.
pub const CLICKHOUSE_SEAL_AT_ONCE: &[(&str, &str)] = &[
    ("VIGIL_STORE__SEAL_AFTER", "0s"),
    ("VIGIL_STORE__COMPACTION_INTERVAL", "100ms"),
];

/// Consolidates every finished day of a Vigil's store and waits until it is done. The embedded
/// store is restarted with [`SEAL_AT_ONCE`]; done when every partition of every table holds
/// exactly one file, a sealed one. The ClickHouse store is restarted with
/// [`CLICKHOUSE_SEAL_AT_ONCE`]; done when every finished day of every table has a recorded seal
/// holding every row inserted into it.
pub async fn consolidate(vigil: &mut Vigil) {
    if let Some(db) = vigil.database.clone() {
        vigil.stop();
        vigil.restart_with(CLICKHOUSE_SEAL_AT_ONCE);
        let ch = ClickHouse::shared();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut unsealed = 0;
            for table in Table::ALL {
                unsealed += ch.number(&unsealed_days(&db, table)).await;
            }
            if unsealed == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{unsealed} finished days of {db} were not sealed within 90 s; log:\n{}",
                vigil.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    vigil.stop();
    vigil.restart_with(SEAL_AT_ONCE);
    let sealed = || {
        let partitions = store_partitions(vigil.data_dir());
        !partitions.is_empty()
            && partitions.iter().all(|names| {
                let data: Vec<&String> = names.iter().filter(|n| is_data_file(n)).collect();
                data.len() == 1 && data[0].starts_with(SEALED_FILE_PREFIX)
            })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sealed() {
        assert!(
            Instant::now() < deadline,
            "the store was not sealed within 60 s; log:\n{}",
            vigil.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `SELECT count() …`: the finished days of `table` in ClickHouse database `db` with a row
/// inserted at or after their seal's watermark, or without a seal.
pub fn unsealed_days(db: &str, table: Table) -> String {
    let time = table.time_column();
    let name = table.name();
    format!(
        "SELECT count() FROM (SELECT intDiv({time}, 86400000000000) AS day, max(inserted_at) AS last \
         FROM {db}.{name} GROUP BY day) ANY LEFT JOIN (SELECT day, argMax(watermark, generation) AS w \
         FROM {db}.vigil_seals WHERE table_name = '{name}' GROUP BY day) USING day \
         WHERE (day + 1) * 86400 <= toUInt32(now()) AND last >= w"
    )
}

/// Waits for `done` (polled every 50 ms; a test failure naming `what` after `limit`), and
/// says how long it took.
pub async fn until<F: Future<Output = bool>>(
    limit: Duration,
    what: &str,
    done: impl Fn() -> F,
) -> Duration {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "{what}: not after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// The last `lines` lines of `text` (a log, a command's output), for a failure message.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The entries of each partition directory of the embedded store under `data_dir`, by name.
pub fn store_partitions(data_dir: &Path) -> Vec<Vec<String>> {
    let names = |dir: PathBuf| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let layout = EmbeddedLayout::new(data_dir);
    Table::ALL
        .iter()
        .flat_map(|table| {
            std::fs::read_dir(layout.table_dir(*table))
                .into_iter()
                .flatten()
        })
        .filter_map(|day| Some(names(day.ok()?.path())))
        .collect()
}

/// A gRPC request carrying `token` as its bearer key.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

impl Vigil {
    /// A native `vigil.v1` export with `token`, on a new connection; the gRPC answer.
    pub async fn export_native_as(
        &self,
        token: &str,
        request: v1::ExportRequest,
    ) -> Result<v1::ExportResponse, Status> {
        let mut client = IngestServiceClient::connect(self.grpc()).await.unwrap();
        client
            .export(authed(request, token))
            .await
            .map(|r| r.into_inner())
    }

    /// A native export with the admin key, which must succeed.
    pub async fn export_native(&self, request: v1::ExportRequest) -> v1::ExportResponse {
        self.export_native_as(&self.token, request).await.unwrap()
    }
}

/// Sends a request; its status and JSON body (null when the body is not JSON).
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A tiny blocking HTTP/1.0 request to a loopback port, for start-up polling without a runtime:
/// the status and the body, or `None` when nothing answers.
pub fn http_blocking(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    request_blocking(port, method, path, "", body)
}

/// [`http_blocking`] with one more header line (`Name: value`) and no body.
pub fn http_blocking_with(
    port: u16,
    method: &str,
    path: &str,
    header: &str,
) -> Option<(u16, String)> {
    request_blocking(port, method, path, header, "")
}

fn request_blocking(
    port: u16,
    method: &str,
    path: &str,
    header: &str,
    body: &str,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let header = if header.is_empty() {
        String::new()
    } else {
        format!("{header}\r\n")
    };
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{header}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// A key as `vigil keys create` printed it.
pub struct CreatedKey {
    pub id: String,
    pub secret: String,
    pub token: String,
}

/// Runs the `vigil` binary with `args`, asserts it succeeded, returns its standard output.
pub fn cli(args: &[&str]) -> String {
    cli_with(args, &[])
}

/// [`cli`] with these `VIGIL_*` settings (a server's, so that it finds the same store).
pub fn cli_with(args: &[&str], env: &[(String, String)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vigil {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `vigil bench <bench> --smoke --json` over a fresh data directory and the shared ClickHouse
/// server (plus `extra` arguments): its JSON report. One at a time: the benchmarks load the
/// same database, dropping it first.
pub fn bench_smoke(bench: &str, extra: &[&str]) -> Value {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ch = clickhouse::ClickHouse::shared();
    let dir = tempfile::tempdir().unwrap();
    let url = ch.url();
    let mut args = vec![
        "bench",
        bench,
        "--smoke",
        "--json",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--clickhouse-url",
        &url,
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&cli(&args)).unwrap()
}

/// Runs a Python `script` of the test venv with `input` as JSON on its standard input, and
/// reads the JSON it prints (the SciPy references of the statistics tests).
pub fn python_json(script: &str, input: &Value) -> Value {
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        input.to_string().as_bytes(),
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The Python interpreter with the OpenTelemetry SDK (set by tests/run.sh).
pub fn python() -> String {
    std::env::var("VIGIL_TEST_PYTHON").unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.venv/bin/python");
        assert!(
            venv.exists(),
            "the OpenTelemetry SDK venv is missing: run tests/run.sh (it installs it)"
        );
        venv.display().to_string()
    })
}
