//! A server process that cannot outlive the tests: a watchdog shell starts it, writes its pid to
//! `<dir>/pid`, and SIGKILLs it (then removes `dir`) as soon as the test process is gone, however
//! the test ends (a panic, a timeout, kill -9). The ClickHouse and ZooKeeper servers run this way.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
};

pub struct Watched {
    dir: PathBuf,
    /// The watchdog shell of the running server.
    watchdog: Mutex<Option<Child>>,
}

impl Watched {
    pub fn new(dir: &Path) -> Watched {
        Watched {
            dir: dir.to_path_buf(),
            watchdog: Mutex::new(None),
        }
    }

    /// Starts `command` (a shell command line) under a new watchdog, its output in
    /// `<dir>/<output>`.
    pub fn spawn(&self, command: &str, output: &str) {
        let dir = self.dir.display();
        let watchdog = format!(
            "{command} >{dir}/{output} 2>&1 & server=$!; echo $server > {dir}/pid; \
             while kill -0 {parent} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 0.5; done; \
             kill -9 $server 2>/dev/null; kill -0 {parent} 2>/dev/null || rm -rf {dir}",
            parent = std::process::id()
        );
        let _ = std::fs::remove_file(self.dir.join("pid"));
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(watchdog)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        *self.watchdog.lock().unwrap() = Some(watchdog);
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        let pid = std::fs::read_to_string(self.dir.join("pid")).unwrap();
        pid.trim().parse().unwrap()
    }

    /// Sends `signal` (`-STOP`, `-CONT`, …) to the server.
    pub fn signal(&self, signal: &str) {
        assert!(
            Command::new("kill")
                .args([signal, &self.pid().to_string()])
                .status()
                .unwrap()
                .success()
        );
    }

    /// SIGKILLs the server and reaps its watchdog (which ends when the server does).
    pub fn kill(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
        if let Some(mut watchdog) = self.watchdog.lock().unwrap().take() {
            let _ = watchdog.wait();
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.kill();
    }
}
