//! The README's tour, run as written: every ```sh block of README.md, in order, in one bash
//! session, against a real `vigil serve` (and a real ClickHouse for the ClickHouse block). What
//! stands in for the reader is in `tests/readme/prelude.sh`; the only rewrites of the README's
//! text are the ports (free ones instead of 4317/4318/8123) and the placeholders in angle
//! brackets, which become real values read from the server. A README example that fails, or
//! whose request answers an HTTP error, fails this test.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{self, clickhouse::ClickHouse, free_port};

/// One ```sh block: where it starts in README.md, and its text.
struct Block {
    line: usize,
    text: String,
}

fn shell_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in readme.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == "```sh" => {
                current = Some(Block {
                    line: i + 1,
                    text: String::new(),
                })
            }
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
        }
    }
    assert!(current.is_none(), "README.md ends inside a code block");
    blocks
}

/// `<trace_id>` and the like become `$(readme_placeholder trace_id)`.
fn fill_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('>') {
            out.push_str(&format!("$(readme_placeholder {})", &after[..name_len]));
            rest = &after[name_len + 1..];
        } else {
            out.push('<');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn every_command_of_the_readme_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = shell_blocks(&readme);
    assert!(
        blocks.len() >= 8,
        "only {} sh blocks in README.md",
        blocks.len()
    );

    let clickhouse = ClickHouse::start();
    let (grpc, http) = (free_port(), free_port());
    let scratch = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("deploy"), scratch.path().join("deploy")).unwrap();

    let mut script = format!(
        "source {}\n",
        root.join("tests/readme/prelude.sh").display()
    );
    for block in &blocks {
        let text = fill_placeholders(&block.text)
            .replace(":4317", &format!(":{grpc}"))
            .replace(":4318", &format!(":{http}"))
            .replace("http://127.0.0.1:8123", &clickhouse.url());
        script.push_str(&format!(
            "echo '=== README.md line {}' >&2\n{text}\n",
            block.line
        ));
    }
    let script_path = scratch.path().join("tour.sh");
    std::fs::write(&script_path, &script).unwrap();

    // Into files, not pipes: nothing reads a pipe until the tour ends, and a full one would
    // stop it.
    let (stdout_path, stderr_path) = (scratch.path().join("stdout"), scratch.path().join("stderr"));
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(&script_path)
        .current_dir(scratch.path())
        .env("VIGIL_BIN", env!("CARGO_BIN_EXE_vigil"))
        .env("README_GRPC_PORT", grpc.to_string())
        .env("README_HTTP_PORT", http.to_string())
        .env_remove("VIGIL_CONFIG")
        .env_remove("VIGIL_DATA_DIR")
        .stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .spawn()
        .unwrap();
    let deadline = started + Duration::from_secs(600);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let server_log =
        std::fs::read_to_string(scratch.path().join("vigil-serve.log")).unwrap_or_default();
    let tail = |text: &str| support::tail(text, 60);
    assert!(
        status.success(),
        "the README tour failed ({:?}) after {:?}\n--- stderr (the failing block is the last \
         '=== README.md line'):\n{}\n--- stdout:\n{}\n--- vigil serve log:\n{}",
        status,
        started.elapsed(),
        tail(&stderr),
        tail(&stdout),
        tail(&server_log)
    );

    // The tour did what it says, not just answer 200.
    for expected in [
        "\"runs\":[{",              // runs read back after the demo
        "\"rows\":",                // a metric query
        "revoked vk_",              // vigil keys revoke
        "\"wal_segments_deleted\"", // the erasure's receipt
        "audit log ",               // vigil audit verify
        "CREATE TABLE",             // vigil migrate --print-sql
        "\"user_hash\":",           // the user look-up
        "\"state\":\"active\"",     // the silence
        "every record can be read", // vigil wal inspect
    ] {
        assert!(
            stdout.contains(expected),
            "the README tour's output lacks {expected:?}:\n{}",
            tail(&stdout)
        );
    }
    assert!(
        scratch.path().join("affected.csv").exists(),
        "the CSV export was not written"
    );
}

#[test]
fn placeholders_become_values_read_from_the_server() {
    assert_eq!(
        fill_placeholders("runs/<trace_id> x<y <key_id>> a < b"),
        "runs/$(readme_placeholder trace_id) x<y $(readme_placeholder key_id)> a < b"
    );
}
