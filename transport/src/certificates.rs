//! A port's TLS settings, read from PEM files and read again when the files change, so a renewed
//! certificate is served without a restart.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use parking_lot::Mutex;
use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde::{Deserialize, Serialize};

/// How often the files are looked at (their modification time and size) for a change.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// TLS for one port: `[server.grpc_tls]` or `[server.http_tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (PEM), the server's own certificate first.
    pub cert_file: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When set, every client must present a certificate issued by one of these CAs (PEM):
    /// mutual TLS. A connection without one is refused during the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

/// A file of a TLS setting that cannot be used, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("{setting} ({}): {reason}", path.display())]
pub struct TlsError {
    /// E.g. `server.grpc_tls.key_file`.
    pub setting: String,
    pub path: PathBuf,
    pub reason: String,
}

/// Which application protocols a port speaks, offered by ALPN during the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// gRPC: HTTP/2 only (gRPC clients insist on `h2`).
    Grpc,
    /// HTTP/2 or HTTP/1.1 (browsers, curl, OTLP/HTTP exporters).
    Http,
}

impl Protocols {
    fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            Protocols::Grpc => vec![b"h2".to_vec()],
            Protocols::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// The server side of TLS for one port, following its files.
pub struct Certificates {
    config: TlsConfig,
    section: String,
    protocols: Protocols,
    current: Mutex<Current>,
}

struct Current {
    server: Arc<ServerConfig>,
    /// What the files looked like when `server` was made (or when a change failed to load).
    stamps: Vec<Stamp>,
    checked: Instant,
}

/// A file's modification time and length: a rewrite or a renamed-over file changes one of them.
type Stamp = Option<(SystemTime, u64)>;

impl Certificates {
    /// Reads the files named in `config` (under `section`, e.g. `server.grpc_tls`, for errors).
    pub fn load(
        config: &TlsConfig,
        section: &str,
        protocols: Protocols,
    ) -> Result<Certificates, TlsError> {
        let stamps = stamps(config);
        let server = server_config(config, section, protocols)?;
        Ok(Certificates {
            config: config.clone(),
            section: section.to_string(),
            protocols,
            current: Mutex::new(Current {
                server,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The settings for the next handshake: the files are read again first if they changed since
    /// they were last read (looked at once a second at most). Files that changed but cannot be
    /// used (a half-written key, a key that does not match) leave the last good settings in place.
    pub fn current(&self) -> Arc<ServerConfig> {
        let mut current = self.current.lock();
        if current.checked.elapsed() >= CHECK_EVERY {
            current.checked = Instant::now();
            let now = stamps(&self.config);
            if now != current.stamps {
                current.stamps = now;
                match server_config(&self.config, &self.section, self.protocols) {
                    Ok(server) => {
                        tracing::info!(section = self.section, "TLS certificate reloaded");
                        current.server = server;
                    }
                    Err(error) => tracing::warn!(
                        %error,
                        "TLS files changed but cannot be used; still serving the previous certificate"
                    ),
                }
            }
        }
        current.server.clone()
    }
}

fn stamps(config: &TlsConfig) -> Vec<Stamp> {
    [
        Some(&config.cert_file),
        Some(&config.key_file),
        config.client_ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    })
    .collect()
}

fn server_config(
    config: &TlsConfig,
    section: &str,
    protocols: Protocols,
) -> Result<Arc<ServerConfig>, TlsError> {
    let fail = |field: &str, path: &Path, reason: String| TlsError {
        setting: format!("{section}.{field}"),
        path: path.to_path_buf(),
        reason,
    };
    let certs = read_certificates(&config.cert_file)
        .map_err(|reason| fail("cert_file", &config.cert_file, reason))?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|e| fail("key_file", &config.key_file, pem_reason(e, "private key")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail("cert_file", &config.cert_file, e.to_string()))?;
    let builder = match &config.client_ca_file {
        Some(path) => {
            let verifier = client_verifier(path, provider)
                .map_err(|reason| fail("client_ca_file", path, reason))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder.with_single_cert(certs, key).map_err(|e| {
        fail(
            "key_file",
            &config.key_file,
            format!("does not go with cert_file: {e}"),
        )
    })?;
    server.alpn_protocols = protocols.alpn();
    Ok(Arc::new(server))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_reason(e, "certificate"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_reason(e, "certificate"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in the file".into());
    }
    Ok(certs)
}

fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())
}

fn pem_reason(error: rustls_pki_types::pem::Error, what: &str) -> String {
    match error {
        rustls_pki_types::pem::Error::NoItemsFound => format!("no PEM {what} in the file"),
        rustls_pki_types::pem::Error::Io(e) => format!("cannot be read: {e}"),
        other => format!("not a PEM {what}: {other}"),
    }
}
