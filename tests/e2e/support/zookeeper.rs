//! A real ZooKeeper server for the tests: Debian's `zookeeper` package, one standalone server on a
//! free loopback port with its own data directory, under a watchdog ([`Watched`]) as the
//! ClickHouse servers are. A missing package fails the test:
//! `tests/run.sh` installs it.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::{free_port, watched::Watched};

const JAR: &str = "/usr/share/java/zookeeper.jar";
/// ZooKeeper's tick: sessions last between 2 and 20 ticks.
const TICK_MS: u32 = 500;

pub struct ZooKeeper {
    dir: PathBuf,
    pub port: u16,
    server: Watched,
    _tmp: tempfile::TempDir,
}

impl ZooKeeper {
    pub fn start() -> ZooKeeper {
        assert!(
            Path::new(JAR).exists(),
            "{JAR} is missing: run tests/run.sh, which installs Debian's zookeeper"
        );
        let tmp = tempfile::Builder::new()
            .prefix("vigil-zk-")
            .tempdir()
            .unwrap();
        let zookeeper = ZooKeeper {
            dir: tmp.path().to_path_buf(),
            port: free_port(),
            server: Watched::new(tmp.path()),
            _tmp: tmp,
        };
        zookeeper.spawn();
        zookeeper
    }

    fn spawn(&self) {
        let dir = self.dir.display();
        // ZooKeeperServerMain: one standalone server, `<port> <data dir> <tick ms>`; sessions
        // may then be as short as two ticks (1 s), which the alerting failover tests use. The
        // admin web server would take port 8080, shared by every test.
        let server = format!(
            "java -Xmx256m -Dzookeeper.admin.enableServer=false \
             -cp /etc/zookeeper/conf:{JAR} org.apache.zookeeper.server.ZooKeeperServerMain \
             {} {dir}/data {TICK_MS}",
            self.port
        );
        self.server.spawn(&server, "log");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "zookeeper did not start; log:\n{}",
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: clients lose their connections at once; sessions are kept in the data directory.
    pub fn stop(&self) {
        self.server.kill();
    }

    /// Starts again on the same port and data directory.
    pub fn restart(&self) {
        self.spawn();
    }

    /// `host:port`, as clients are given it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
