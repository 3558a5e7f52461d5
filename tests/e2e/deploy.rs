//! The deployable units in `deploy/`, checked with the tools this machine has: the systemd unit
//! with `systemd-analyze` (its syntax and directives, and its exposure score), the Kubernetes
//! manifests against Kubernetes' own schemas (`kubernetes-validate`, strict: no unknown field).
//! The container file is not built here (no container engine); the command lines all three run
//! are parsed by the binary's unit tests, and the manifests' configurations by the config's.

use std::{path::Path, process::Command};

fn deploy(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// `systemd-analyze verify` accepts the unit (with the binary where the unit expects it: the
/// one under test), and `systemd-analyze security` scores it 2.0 or less ("OK", out of 10).
#[test]
fn the_systemd_unit_verifies_and_is_locked_down() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(deploy("systemd/vigil.service"))
        .unwrap()
        .replace("/usr/local/bin/vigil", env!("CARGO_BIN_EXE_vigil"));
    let path = dir.path().join("vigil.service");
    std::fs::write(&path, unit).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd; tests/run.sh installs it)");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "exposure above 2.0:\n{report}{}",
        String::from_utf8_lossy(&security.stderr)
    );
    let score = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_default();
    println!("{}", score.trim());
}

#[test]
fn the_kubernetes_manifests_match_kubernetes_schemas() {
    let python = crate::support::python();
    let validator = Path::new(&python).with_file_name("kubernetes-validate");
    let out = Command::new(&validator)
        .args(["--strict", "--kubernetes-version", "1.30.0"])
        .arg(deploy("kubernetes/one-node.yaml"))
        .arg(deploy("kubernetes/scale-out.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (tests/run.sh installs it)", validator.display()));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every resource was checked: 3 in the one-node file, 8 in the scale-out one.
    assert_eq!(said.matches(" passed for resource ").count(), 11, "{said}");
}
