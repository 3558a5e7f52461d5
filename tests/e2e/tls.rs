//! TLS on both ports, with real clients: the Python OpenTelemetry SDK's OTLP exporters (gRPC with a
//! client certificate, HTTP), curl and `openssl s_client`. Certificates are made by the test with
//! the openssl command line.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{
    ingest::{check_python_runs, send_with_python},
    support::{Vigil, cli_with, until},
};

/// A certificate authority in a temporary directory, issuing certificates with `openssl`.
struct Pki {
    dir: tempfile::TempDir,
}

/// A certificate and its key, as PEM files.
struct Issued {
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// A new CA called `name` (no spaces).
    fn new(name: &str) -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.openssl(&format!(
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout ca.key -out ca.pem -days 2 -subj /CN={name}"
        ));
        pki
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate named `name` (no spaces) for `localhost` and 127.0.0.1 with this serial
    /// number, for a server
    /// (`serverAuth`) or a client (`clientAuth`).
    fn issue(&self, name: &str, serial: u32, usage: &str) -> Issued {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.path().join(&ext),
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage={usage}\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
            ),
        )
        .unwrap();
        self.openssl(&format!(
            "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout {name}.key -out {name}.csr -subj /CN={name}"
        ));
        self.openssl(&format!(
            "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -set_serial {serial} -days 2 \
             -extfile {ext} -out {name}.pem"
        ));
        Issued {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
        }
    }

    /// Runs `openssl` with these arguments (split at white space) in the directory.
    fn openssl(&self, args: &str) {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Puts `file` at `to` the way certificate managers do: written aside, then renamed over.
fn replace(file: &Path, to: &Path) {
    let aside = to.with_extension("new");
    std::fs::copy(file, &aside).unwrap();
    std::fs::rename(&aside, to).unwrap();
}

/// curl's exit code and the HTTP status it got ("000" for none).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The serial number of the certificate served on `port`, as `openssl x509` prints it.
fn served_serial(port: u16) -> String {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null \
         | openssl x509 -noout -serial"
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_ports_speak_tls_and_follow_their_certificate_files() {
    let pki = Pki::new("vigil-test-ca");
    let first = pki.issue("server", 1, "serverAuth");
    let agent = pki.issue("agent", 2, "clientAuth");
    // The files the server is configured with; renewed in place below.
    let served = pki.dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let (cert, key) = (served.join("tls.crt"), served.join("tls.key"));
    replace(&first.cert, &cert);
    replace(&first.key, &key);
    let ca = pki.ca();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let ca_path = path(&ca);
    let env = vec![
        ("VIGIL_SERVER__GRPC_TLS__CERT_FILE".into(), path(&cert)),
        ("VIGIL_SERVER__GRPC_TLS__KEY_FILE".into(), path(&key)),
        ("VIGIL_SERVER__GRPC_TLS__CLIENT_CA_FILE".into(), path(&ca)),
        ("VIGIL_SERVER__HTTP_TLS__CERT_FILE".into(), path(&cert)),
        ("VIGIL_SERVER__HTTP_TLS__KEY_FILE".into(), path(&key)),
    ];
    let vigil = Vigil::spawn_https(env, Some(ca.clone()));
    let token = vigil.token.clone();
    let grpc = format!("https://localhost:{}", vigil.grpc_port);
    let traces = format!("{}/v1/traces", vigil.http());
    assert!(traces.starts_with("https://"));

    // The Python SDK over gRPC, presenting its client certificate, and over HTTP.
    let mtls = [
        "--ca-file",
        &path(&ca),
        "--client-cert",
        &path(&agent.cert),
        "--client-key",
        &path(&agent.key),
    ];
    let sent = send_with_python(
        &vigil,
        "grpc",
        &grpc,
        &[&["--token", &token][..], &mtls].concat(),
        2,
    );
    check_python_runs(&vigil, &sent).await;
    let ca_only = ["--token", &token, "--ca-file", &path(&ca)];
    let sent = send_with_python(&vigil, "http", &traces, &ca_only, 2);
    check_python_runs(&vigil, &sent).await;

    // curl reads the API over https.
    let runs = format!("{}/api/v1/runs", vigil.http());
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(
        curl(&["--cacert", &path(&ca), "-H", &bearer, &runs]),
        (0, "200".into())
    );
    let (_, list) = vigil.get("/api/v1/runs").await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 4, "{list}");

    // So does the command line, trusting the CA through SSL_CERT_FILE.
    let url = vigil.http();
    let trust = [("SSL_CERT_FILE".to_string(), path(&ca))];
    let created = cli_with(
        &[
            "datasets", "--url", &url, "--token", &token, "create", "over-tls",
        ],
        &trust,
    );
    assert!(created.contains("over-tls"), "{created}");

    // Plaintext gets nothing from either port; no answer means no HTTP status at all.
    let plain_http = format!("http://127.0.0.1:{}/healthz", vigil.http_port);
    let (exit, status) = curl(&[&plain_http]);
    assert!(
        exit != 0 && status == "000",
        "plaintext HTTP answered: {exit} {status}"
    );
    let plain_grpc = format!("http://127.0.0.1:{}/", vigil.grpc_port);
    let (exit, status) = curl(&["--http2-prior-knowledge", &plain_grpc]);
    assert!(
        exit != 0 && status == "000",
        "plaintext gRPC answered: {exit} {status}"
    );

    // The gRPC port wants a client certificate from its CA: none, or one from another CA, is
    // refused in the handshake; the agent's own gets an HTTP/2 answer.
    let grpc_root = format!("{grpc}/");
    let call_grpc = |client: Option<&Issued>| {
        let (cert, key) = client.map_or((String::new(), String::new()), |c| {
            (path(&c.cert), path(&c.key))
        });
        let mut args = vec!["--http2", "--cacert", ca_path.as_str(), &grpc_root];
        if client.is_some() {
            args.extend(["--cert", &cert, "--key", &key]);
        }
        curl(&args)
    };
    let (exit, status) = call_grpc(None);
    assert!(
        exit != 0 && status == "000",
        "no client certificate: {exit} {status}"
    );
    let stranger = Pki::new("another-ca").issue("intruder", 9, "clientAuth");
    let (exit, status) = call_grpc(Some(&stranger));
    assert!(
        exit != 0 && status == "000",
        "foreign client certificate: {exit} {status}"
    );
    let (exit, status) = call_grpc(Some(&agent));
    assert!(
        exit == 0 && status != "000",
        "the agent's certificate: {exit} {status}"
    );

    // A renewed certificate is served without a restart, on both ports.
    assert_eq!(served_serial(vigil.http_port), "serial=01");
    assert_eq!(served_serial(vigil.grpc_port), "serial=01");
    let renewed = pki.issue("renewed", 3, "serverAuth");
    replace(&renewed.key, &key);
    replace(&renewed.cert, &cert);
    until(
        Duration::from_secs(10),
        "the renewed certificate is served",
        || async {
            served_serial(vigil.http_port) == "serial=03"
                && served_serial(vigil.grpc_port) == "serial=03"
        },
    )
    .await;
    let sent = send_with_python(&vigil, "http", &traces, &ca_only, 1);
    check_python_runs(&vigil, &sent).await;

    // A file rewritten with something unusable leaves the last good certificate in place.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ntruncat").unwrap();
    // (The files are looked at when a client connects.)
    until(
        Duration::from_secs(10),
        "the unusable file is noticed",
        || async {
            served_serial(vigil.http_port) == "serial=03" && vigil.log().contains("cannot be used")
        },
    )
    .await;
    assert_eq!(
        curl(&["--cacert", &path(&ca), "-H", &bearer, &runs]),
        (0, "200".into())
    );
}

#[test]
fn unusable_tls_files_stop_the_start_naming_the_setting() {
    let pki = Pki::new("vigil-test-ca");
    let server = pki.issue("server", 1, "serverAuth");
    let other = pki.issue("other", 2, "serverAuth");
    let data = tempfile::tempdir().unwrap();
    let start = |key: &Path| {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data.path())
            .env("VIGIL_SERVER__HTTP_LISTEN", "127.0.0.1:0")
            .env("VIGIL_SERVER__GRPC_LISTEN", "127.0.0.1:0")
            .env("VIGIL_SERVER__HTTP_TLS__CERT_FILE", &server.cert)
            .env("VIGIL_SERVER__HTTP_TLS__KEY_FILE", key)
            .output()
            .unwrap()
    };
    for (key, says) in [
        (&server.cert, "no PEM private key in the file"),
        (&other.key, "does not go with cert_file"),
    ] {
        let out = start(key);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains(&format!("server.http_tls.key_file ({})", key.display()))
                && stderr.contains(says),
            "{stderr}"
        );
    }
}
