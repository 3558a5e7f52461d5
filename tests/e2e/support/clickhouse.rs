//! Real ClickHouse servers for the tests: Debian's `clickhouse-server` started on free loopback
//! ports with its own directory (config, data, logs), as
//! docs/design.md#testing-against-real-clickhouse describes.
//!
//! Each runs under a watchdog ([`Watched`]), so no server outlives its tests. A missing `clickhouse-server` fails the test: `tests/run.sh` installs it.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use super::{free_port, http_blocking, watched::Watched, zookeeper::ZooKeeper};

/// Debian installs the server in /usr/sbin, which is not on every user's PATH.
const SERVER: &str = "/usr/sbin/clickhouse-server";
const BASE_CONFIG_DIR: &str = "/etc/clickhouse-server";

pub struct ClickHouse {
    dir: PathBuf,
    pub http_port: u16,
    pub tcp_port: u16,
    interserver_port: u16,
    server: Watched,
    /// Removed by the watchdog; kept here so `Drop` can too.
    _tmp: Option<tempfile::TempDir>,
}

impl ClickHouse {
    /// A fresh, isolated server.
    pub fn start() -> ClickHouse {
        ClickHouse::start_nodes(1, 1, None, None)
            .into_iter()
            .flatten()
            .next()
            .unwrap()
    }

    /// `n` servers forming the cluster `name`: one shard each, on loopback.
    pub fn start_cluster(name: &str, n: usize) -> Vec<ClickHouse> {
        ClickHouse::start_nodes(n, 1, Some(name), None)
            .into_iter()
            .flatten()
            .collect()
    }

    /// `shards` × `replicas` servers forming the cluster `name`, the replicas of each shard
    /// kept in step through `zookeeper`: servers by shard, each with the macros `{shard}`
    /// (`s1`, `s2`, …) and `{replica}` (`r1`, `r2`, …).
    pub fn start_replicated(
        name: &str,
        shards: usize,
        replicas: usize,
        zookeeper: &ZooKeeper,
    ) -> Vec<Vec<ClickHouse>> {
        ClickHouse::start_nodes(shards, replicas, Some(name), Some(zookeeper.port))
    }

    /// One server shared by every test of this test binary; each test takes its own database
    /// ([`unique_database`]).
    pub fn shared() -> &'static ClickHouse {
        static SHARED: OnceLock<ClickHouse> = OnceLock::new();
        SHARED.get_or_init(ClickHouse::start)
    }

    fn start_nodes(
        shards: usize,
        replicas: usize,
        cluster: Option<&str>,
        zookeeper: Option<u16>,
    ) -> Vec<Vec<ClickHouse>> {
        assert!(
            Path::new(&format!("/usr/sbin/{SERVER}")).exists()
                || Command::new("which")
                    .arg(SERVER)
                    .output()
                    .is_ok_and(|o| o.status.success()),
            "{SERVER} is not installed: run tests/run.sh, which installs Debian's clickhouse-server"
        );
        let nodes: Vec<Vec<ClickHouse>> = (0..shards)
            .map(|_| (0..replicas).map(|_| ClickHouse::new()).collect())
            .collect();
        let remote_servers: String = nodes
            .iter()
            .map(|shard| {
                let replicas: String = shard
                    .iter()
                    .map(|node| {
                        format!(
                            "<replica><host>127.0.0.1</host><port>{}</port></replica>",
                            node.tcp_port
                        )
                    })
                    .collect();
                // Replicated tables copy rows between replicas themselves: the Distributed
                // table writes to one replica of the shard.
                format!(
                    "<shard><internal_replication>{}</internal_replication>{replicas}</shard>",
                    zookeeper.is_some()
                )
            })
            .collect();
        for (s, shard) in nodes.iter().enumerate() {
            for (r, node) in shard.iter().enumerate() {
                let mut config = String::new();
                if let Some(name) = cluster {
                    config += &format!(
                        "<remote_servers><{name}>{remote_servers}</{name}></remote_servers>"
                    );
                }
                if let Some(port) = zookeeper {
                    config += &format!(
                        "<zookeeper><node><host>127.0.0.1</host><port>{port}</port></node></zookeeper>\
                         <macros><shard>s{}</shard><replica>r{}</replica></macros>\
                         <interserver_http_host>127.0.0.1</interserver_http_host>",
                        s + 1,
                        r + 1
                    );
                }
                node.write_config(&config);
                node.spawn();
            }
        }
        for node in nodes.iter().flatten() {
            node.wait_ready();
        }
        nodes
    }

    fn new() -> ClickHouse {
        let tmp = tempfile::Builder::new()
            .prefix("vigil-ch-")
            .tempdir()
            .unwrap();
        ClickHouse {
            dir: tmp.path().to_path_buf(),
            http_port: free_port(),
            tcp_port: free_port(),
            interserver_port: free_port(),
            server: Watched::new(tmp.path()),
            _tmp: Some(tmp),
        }
    }

    /// The server's configuration: Debian's, and `extra` (XML inside `<yandex>`) in config.d.
    fn write_config(&self, extra: &str) {
        std::fs::create_dir_all(self.dir.join("config.d")).unwrap();
        for file in ["config.xml", "users.xml"] {
            std::fs::copy(Path::new(BASE_CONFIG_DIR).join(file), self.dir.join(file)).unwrap();
        }
        std::fs::write(
            self.dir.join("config.d/vigil-test.xml"),
            format!("<yandex>{extra}</yandex>"),
        )
        .unwrap();
    }

    /// Starts the server process under its watchdog.
    fn spawn(&self) {
        let dir = self.dir.display();
        let server = format!(
            "{SERVER} --config-file={dir}/config.xml -- --path={dir}/data/ --tmp_path={dir}/tmp/ \
             --user_files_path={dir}/uf/ --format_schema_path={dir}/fs/ --http_port={} \
             --tcp_port={} --interserver_http_port={} --logger.log={dir}/log \
             --logger.errorlog={dir}/err.log --logger.level=warning",
            self.http_port, self.tcp_port, self.interserver_port
        );
        self.server.spawn(&server, "stdout");
    }

    fn wait_ready(&self) {
        // Generous: a replica restarted while the whole suite loads both cores has been seen to
        // take over a minute to finish its ZooKeeper handshakes.
        let deadline = Instant::now() + Duration::from_secs(150);
        while self.query_blocking("SELECT 1").as_deref() != Some("1\n") {
            assert!(
                Instant::now() < deadline,
                "clickhouse on :{} did not start; log:\n{}",
                self.http_port,
                std::fs::read_to_string(self.dir.join("err.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// SIGKILL: the server is gone at once (the 18.16 server takes ~15 s to stop on SIGTERM).
    /// Data it confirmed is in its parts on disk and survives.
    pub fn stop(&self) {
        self.server.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.query_blocking("SELECT 1").is_some() {
            assert!(Instant::now() < deadline, "clickhouse did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// SIGSTOP: the server keeps its connections but answers nothing (a stalled server).
    pub fn pause(&self) {
        self.server.signal("-STOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        self.server.signal("-CONT");
    }

    /// Starts the server again on the same directory and ports.
    pub fn restart(&self) {
        self.spawn();
        self.wait_ready();
    }

    /// Runs one statement over HTTP; its text answer (TabSeparated), or panics with the error.
    pub async fn query(&self, sql: &str) -> String {
        let response = reqwest::Client::new()
            .post(self.url())
            .body(sql.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{sql}: {text}");
        text
    }

    /// A number answered by `sql`.
    pub async fn number(&self, sql: &str) -> u64 {
        let text = self.query(sql).await;
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{sql}: {text}"))
    }

    /// Distinct keys stored in `db`: (runs, spans).
    pub async fn stored_keys(&self, db: &str) -> (u64, u64) {
        let runs = self
            .number(&format!("SELECT uniqExact(trace_id) FROM {db}.runs"))
            .await;
        let spans = self
            .number(&format!(
                "SELECT uniqExact(trace_id, span_id) FROM {db}.spans"
            ))
            .await;
        (runs, spans)
    }

    /// Forces ClickHouse to merge `db`'s runs and spans (OPTIMIZE … FINAL), then checks that
    /// exactly one row per key is left: no replay left a second copy that a merge cannot fold.
    pub async fn assert_one_row_per_key(&self, db: &str) {
        let (runs, spans) = self.stored_keys(db).await;
        for table in ["runs", "spans"] {
            self.query(&format!("OPTIMIZE TABLE {db}.{table} FINAL"))
                .await;
        }
        let count = |table: &str| format!("SELECT count() FROM {db}.{table}");
        assert_eq!(self.number(&count("runs")).await, runs, "rows of {db}.runs");
        assert_eq!(
            self.number(&count("spans")).await,
            spans,
            "rows of {db}.spans"
        );
    }

    /// `SELECT …` without a runtime; `None` when the server does not answer it.
    fn query_blocking(&self, sql: &str) -> Option<String> {
        http_blocking(self.http_port, "POST", "/", sql)
            .and_then(|(status, body)| (status == 200).then_some(body))
    }
}

/// A database name no other test of this process uses.
pub fn unique_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "vigil_t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
