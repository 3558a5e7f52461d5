//! Configuration: defaults, then the TOML file, then `VIGIL_*` environment variables (the
//! environment wins), then one `validate()` that says what is wrong.
//!
//! Environment variables address settings by path: `VIGIL_DATA_DIR` for a top-level key and
//! `VIGIL_<SECTION>__<KEY>` (double underscore; deeper sections likewise) inside a section, e.g.
//! `VIGIL_SERVER__GRPC_LISTEN=0.0.0.0:4317`, `VIGIL_WAL__FSYNC=false`,
//! `VIGIL_STORE__CLICKHOUSE__URL=http://ch:8123`. Values are read as TOML
//! (numbers, booleans) and fall back to strings.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use vigil_access::keys::{KeyError, RateLimit};
use vigil_alerts::AlertingSettings;
use vigil_api::{Component, Components};
use vigil_collector::retention::RetentionSettings;
use vigil_schemas::{
    clickhouse::ClickHouseConfig,
    limits::Limits,
    prices::{ModelEntry, SelfHostedPrice},
    time::ConfigDuration,
};
use vigil_transport::TlsConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the WAL, the embedded store, keys and secrets live.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub wal: WalSettings,
    pub batcher: BatcherSettings,
    pub assembler: AssemblerSettings,
    pub limits: Limits,
    pub security: SecurityConfig,
    pub rate_limits: RateLimitSettings,
    pub pricing: PricingConfig,
    pub log: LogConfig,
    pub alerting: AlertingSettings,
    pub retention: RetentionSettings,
    pub evaluation: EvaluationConfig,
    pub audit: AuditSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("vigil-data"),
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            wal: WalSettings::default(),
            batcher: BatcherSettings::default(),
            assembler: AssemblerSettings::default(),
            limits: Limits::default(),
            security: SecurityConfig::default(),
            rate_limits: RateLimitSettings::default(),
            pricing: PricingConfig::default(),
            log: LogConfig::default(),
            alerting: AlertingSettings::default(),
            retention: RetentionSettings::default(),
            evaluation: EvaluationConfig::default(),
            audit: AuditSettings::default(),
        }
    }
}

/// `[audit]`: where the audit chain's head is published, outside Vigil.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// A receiver of the alerting rules file: sent the head (`{seq, hash}`, signed as its
    /// webhooks are) whenever it moved, every `head_interval`. Unset: not published.
    pub head_receiver: Option<String>,
    pub head_interval: ConfigDuration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            head_receiver: None,
            head_interval: ConfigDuration::from_secs(3600),
        }
    }
}

/// `[evaluation]`: where datasets and experiments are kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Many nodes on ClickHouse: ZooKeeper (or ClickHouse Keeper), `host:port[,host:port…]`,
    /// which orders the log of changes every node shares. Unset: each node keeps its own in the
    /// data directory.
    pub zookeeper: Option<String>,
    /// The log head's znode (default `/vigil/<database>/evaluation`).
    pub path: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC: native `vigil.v1` and OTLP.
    pub grpc_listen: String,
    /// HTTP: OTLP/HTTP, REST API, health, metrics.
    pub http_listen: String,
    /// How long shutdown waits for in-flight requests and the final flush.
    pub shutdown_grace: ConfigDuration,
    /// What this process runs (`vigil serve --components` overrides it): by default all.
    pub components: Components,
    /// TLS on the gRPC port (`[server.grpc_tls]`); without it the port speaks plain TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_tls: Option<TlsConfig>,
    /// TLS on the HTTP port (`[server.http_tls]`); without it the port speaks plain TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            grpc_listen: "0.0.0.0:4317".into(),
            http_listen: "0.0.0.0:4318".into(),
            shutdown_grace: ConfigDuration::from_secs(20),
            components: Component::ALL.into(),
            grpc_tls: None,
            http_tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// Parquet files under the data directory, queried with DataFusion.
    #[default]
    Embedded,
    /// A ClickHouse server or cluster (`[store.clickhouse]`).
    Clickhouse,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// How often small Parquet files are merged (embedded store) and finished days sealed (both
    /// stores).
    pub compaction_interval: ConfigDuration,
    /// A day is sealed (one version per key, read without de-duplication: one file on the
    /// embedded store, a generation of `<table>_sealed` on ClickHouse) once it has been over this
    /// long and nothing has been written to it for this long.
    pub seal_after: ConfigDuration,
    /// How long merged files (embedded store) and superseded sealed generations (ClickHouse)
    /// stay after their replacement appeared, so that queries already reading them finish.
    pub compaction_grace: ConfigDuration,
    pub clickhouse: ClickHouseConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Embedded,
            compaction_interval: ConfigDuration::from_secs(30),
            seal_after: ConfigDuration::from_secs(3600),
            compaction_grace: ConfigDuration::from_secs(120),
            clickhouse: ClickHouseConfig::default(),
        }
    }
}

impl StoreConfig {
    /// `--clickhouse-url URL`: the ClickHouse store at that address.
    pub fn use_clickhouse_at(&mut self, url: &str) {
        self.kind = StoreKind::Clickhouse;
        self.clickhouse.url = url.to_string();
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalSettings {
    pub segment_bytes: u64,
    /// Past this many bytes not yet in the store, ingest is refused with a retryable status.
    pub max_backlog_bytes: u64,
    /// fsync before acknowledging. Only benchmarks of everything-but-the-disk turn this off.
    pub fsync: bool,
}

impl Default for WalSettings {
    fn default() -> Self {
        WalSettings {
            segment_bytes: 64 * 1024 * 1024,
            max_backlog_bytes: 2 * 1024 * 1024 * 1024,
            fsync: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatcherSettings {
    pub max_rows: usize,
    /// Upper bound on how long acknowledged data waits before it is written to the store.
    pub max_delay: ConfigDuration,
    /// Batches written to the store at once; the checkpoint still advances in log order.
    /// Unset: 1 for the embedded store (its writes use this machine's CPU), 2 for ClickHouse
    /// (while ClickHouse works on one insert, the next is prepared and sent).
    pub max_in_flight: Option<usize>,
}

impl BatcherSettings {
    pub fn max_in_flight(&self, store: StoreKind) -> usize {
        self.max_in_flight.unwrap_or(match store {
            StoreKind::Embedded => 1,
            StoreKind::Clickhouse => 2,
        })
    }
}

impl Default for BatcherSettings {
    fn default() -> Self {
        BatcherSettings {
            max_rows: 25_000,
            max_delay: ConfigDuration::from_millis(500),
            max_in_flight: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssemblerSettings {
    /// A trace whose root span has not come this long after its last span gets a synthesized run.
    pub orphan_after: ConfigDuration,
    pub max_traces: usize,
}

impl Default for AssemblerSettings {
    fn default() -> Self {
        AssemblerSettings {
            orphan_after: ConfigDuration::from_secs(300),
            max_traces: 100_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Hex key of the HMAC that hashes user ids. Unset: generated on first start into
    /// `<data_dir>/user-hash.key`. Changing it changes every user's hash.
    pub user_hash_secret: Option<String>,
}

/// The REST API's per-key rate limit for keys without their own (trace ingest is not counted).
/// Meant to stop a runaway client, not to shape normal traffic: lower it per key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Refill rate of each key's bucket; 0: no default limit.
    pub requests_per_second: f64,
    /// Requests a key may make at once.
    pub burst: u32,
    /// Failed authentications a source address may make per second (HTTP and gRPC); past
    /// its burst the address is refused (429 / RESOURCE_EXHAUSTED) until it refills. 0: off.
    pub failed_auth_per_second: f64,
    pub failed_auth_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            requests_per_second: 500.0,
            burst: 1000,
            failed_auth_per_second: 5.0,
            failed_auth_burst: 50,
        }
    }
}

impl RateLimitSettings {
    /// The limit of keys without their own; `None` when turned off.
    pub fn default_limit(&self) -> Option<RateLimit> {
        (self.requests_per_second != 0.0).then_some(RateLimit {
            requests_per_second: self.requests_per_second,
            burst: self.burst,
        })
    }

    /// The limit of failed authentications per address; `None` when turned off.
    pub fn failed_auth_limit(&self) -> Option<RateLimit> {
        (self.failed_auth_per_second != 0.0).then_some(RateLimit {
            requests_per_second: self.failed_auth_per_second,
            burst: self.failed_auth_burst,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PricingConfig {
    /// Price (USD per million tokens) of self-hosted models from the catalog (vLLM etc.).
    pub self_hosted: Option<SelfHostedPrice>,
    /// Models added to the catalog, or price entries replacing the catalog's.
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `vigil_collector=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

impl Config {
    /// Defaults, then `path` if given, then the environment.
    pub fn load(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
        let text = match path {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?,
            ),
            None => None,
        };
        let origin = path.map(|p| format!("config file {}", p.display()));
        Config::parse(text.as_deref(), origin.as_deref(), std::env::vars())
    }

    /// Defaults, then the TOML `text` if given (from `origin`, for errors), then `VIGIL_*`
    /// variables among `env`; checked.
    pub fn parse(
        text: Option<&str>,
        origin: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table = match text {
            Some(text) => text.parse::<toml::Table>().with_context(|| {
                format!(
                    "{} is not valid TOML",
                    origin.unwrap_or("the configuration")
                )
            })?,
            None => toml::Table::new(),
        };
        apply_env(&mut table, env.into_iter())?;
        // The path names the setting at fault (`server.shutdown_grace: "soon" is not …`).
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                anyhow::anyhow!(
                    "invalid configuration: {}: {}",
                    e.path(),
                    e.inner().message()
                )
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks everything that parsing alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, addr) in [
            ("server.grpc_listen", &self.server.grpc_listen),
            ("server.http_listen", &self.server.http_listen),
        ] {
            addr.parse::<SocketAddr>().with_context(|| {
                format!("{name} = {addr:?} is not an address like 0.0.0.0:4317")
            })?;
        }
        if self.server.components.is_empty() {
            bail!("server.components is empty: name at least one of ingest, query, alerting");
        }
        if self.store.kind == StoreKind::Clickhouse {
            self.store.clickhouse.validate()?;
        }
        if let Some(lease) = &self.alerting.lease {
            self.check_zookeeper("alerting.lease", &lease.zookeeper, lease.path.as_deref())?;
            if lease.session_timeout.get() < Duration::from_secs(1) {
                bail!("alerting.lease.session_timeout must be at least 1s");
            }
        }
        if let Some(zookeeper) = &self.evaluation.zookeeper {
            self.check_zookeeper("evaluation", zookeeper, self.evaluation.path.as_deref())?;
        }
        self.retention.validate().map_err(anyhow::Error::msg)?;
        if self.audit.head_receiver.is_some() {
            if self.alerting.rules_file.is_none() {
                bail!(
                    "audit.head_receiver names a receiver of the alerting rules file: set \
                     alerting.rules_file"
                );
            }
            if self.audit.head_interval.get() < Duration::from_secs(1) {
                bail!("audit.head_interval must be at least 1s");
            }
        }
        if self.batcher.max_rows == 0 {
            bail!("batcher.max_rows must be at least 1");
        }
        if self.batcher.max_in_flight == Some(0) {
            bail!("batcher.max_in_flight must be at least 1");
        }
        if self.wal.segment_bytes < 4096 {
            bail!(
                "wal.segment_bytes = {} is below the minimum of 4096",
                self.wal.segment_bytes
            );
        }
        if self.limits.max_message_bytes < 1024 || self.limits.max_items_per_request == 0 {
            bail!("limits.max_message_bytes must be ≥ 1024 and limits.max_items_per_request ≥ 1");
        }
        if let Some(secret) = &self.security.user_hash_secret
            && (secret.len() < 32 || hex::decode(secret).is_err())
        {
            bail!("security.user_hash_secret must be at least 16 bytes written as hex");
        }
        if let Some(limit) = self.rate_limits.default_limit()
            && let Err(KeyError::BadRateLimit { field, message }) = limit.validate()
        {
            bail!("rate_limits.{field}: {message}");
        }
        if let Some(limit) = self.rate_limits.failed_auth_limit()
            && let Err(KeyError::BadRateLimit { field, message }) = limit.validate()
        {
            let field = field.replace("requests_per_second", "per_second");
            bail!("rate_limits.failed_auth_{field}: {message}");
        }
        let mut catalog = vigil_schemas::prices::PriceCatalog::builtin()?;
        catalog
            .apply(&self.pricing.models)
            .context("pricing.models")?;
        Ok(())
    }

    /// A section that shares state across nodes through ZooKeeper (`section.zookeeper`,
    /// `section.path`): only on ClickHouse, with servers named and a znode path.
    fn check_zookeeper(
        &self,
        section: &str,
        zookeeper: &str,
        path: Option<&str>,
    ) -> anyhow::Result<()> {
        if self.store.kind != StoreKind::Clickhouse {
            bail!(
                "{section}.zookeeper is for many nodes, which share their state in ClickHouse: \
                 set store.kind = \"clickhouse\" or remove it"
            );
        }
        if zookeeper.trim().is_empty() {
            bail!(
                "{section}.zookeeper is empty: name the ZooKeeper servers, host:port[,host:port…]"
            );
        }
        if let Some(path) = path
            && (!path.starts_with('/') || path.ends_with('/'))
        {
            bail!("{section}.path = {path:?} must start with / and not end with one");
        }
        Ok(())
    }
}

/// Overlays `VIGIL_DATA_DIR` and `VIGIL_<SECTION>__<KEY>` variables onto the table.
fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    for (name, value) in vars {
        let Some(path) = name.strip_prefix("VIGIL_") else {
            continue;
        };
        let parsed = value
            .parse::<toml::Value>()
            .ok()
            .filter(|v| !v.is_table())
            .or_else(|| {
                format!("v = {value}")
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|t| t.get("v").cloned())
            })
            .unwrap_or(toml::Value::String(value.clone()));
        if path == "DATA_DIR" {
            table.insert("data_dir".into(), toml::Value::String(value));
            continue;
        }
        let segments: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        let Some((key, sections)) = segments.split_last().filter(|(_, s)| !s.is_empty()) else {
            continue;
        };
        let mut section_table = &mut *table;
        for section in sections {
            let entry = section_table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(inner) = entry.as_table_mut() else {
                bail!("{name}: {section} is not a section");
            };
            section_table = inner;
        }
        section_table.insert(key.clone(), parsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn the_example_config_in_deploy_parses_and_validates() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/vigil.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config: Config = toml::from_str(&text).unwrap();
        config.validate().unwrap();
        assert!(config.pricing.self_hosted.is_some());
    }

    #[test]
    fn the_example_tls_sections_parse_once_uncommented() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/vigil.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // From its first section header on, while the lines stay comments.
        let block: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# [server.grpc_tls]"))
            .take_while(|l| l.starts_with("# "))
            .map(|l| &l[2..])
            .collect::<Vec<_>>()
            .join("\n");
        let config: Config = toml::from_str(&block).unwrap();
        let grpc = config.server.grpc_tls.unwrap();
        assert_eq!(grpc.key_file, PathBuf::from("/etc/vigil/tls/tls.key"));
        assert!(grpc.client_ca_file.is_some());
        let http = config.server.http_tls.unwrap();
        assert_eq!(http.cert_file, PathBuf::from("/etc/vigil/tls/tls.crt"));
        assert!(http.client_ca_file.is_none());
    }

    #[test]
    fn the_default_rule_pack_in_deploy_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/alerts.toml");
        let secret = |_: &str| Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string());
        let loaded = vigil_alerts::config::load_file(&path, 60_000_000_000, &secret).unwrap();
        let names: Vec<&str> = loaded.rules.iter().map(|r| r.name()).collect();
        for name in [
            "run-error-spike",
            "run-p99-over-sla",
            "token-usage-anomaly",
            "tool-failure-rate-increase",
            "completion-rate-low",
            "cost-per-run-spike",
            "tool-call-loops",
        ] {
            assert!(names.contains(&name), "{name} is missing from {names:?}");
        }
        assert_eq!(loaded.receivers.len(), 2);
        assert_eq!(loaded.inhibit_rules.len(), 1);
    }

    #[test]
    fn the_example_clickhouse_configs_parse_and_validate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/clickhouse");
        for (file, cluster, replicated) in [
            ("single-node.toml", None, false),
            ("cluster.toml", Some("vigil"), false),
            ("replicated.toml", Some("vigil_replicated"), true),
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let config: Config = toml::from_str(&text).unwrap();
            config.validate().unwrap();
            let clickhouse = &config.store.clickhouse;
            assert_eq!(config.store.kind, StoreKind::Clickhouse, "{file}");
            assert_eq!(clickhouse.cluster.as_deref(), cluster, "{file}");
            assert_eq!(clickhouse.replicated, replicated, "{file}");
            assert_eq!(config.alerting.lease.is_some(), replicated, "{file}");
            assert_eq!(config.evaluation.zookeeper.is_some(), replicated, "{file}");
        }
        // The cluster a replicated config names is the one its server file defines, with
        // internal replication on each shard and a replica for each of its nodes.
        let xml = std::fs::read_to_string(dir.join("replicated.xml")).unwrap();
        let text = std::fs::read_to_string(dir.join("replicated.toml")).unwrap();
        let config: Config = toml::from_str(&text).unwrap();
        assert!(xml.contains("<vigil_replicated>"));
        assert_eq!(xml.matches("<internal_replication>true").count(), 2);
        for node in &config.store.clickhouse.nodes {
            let host = node.trim_start_matches("http://").trim_end_matches(":8123");
            assert!(
                xml.contains(&format!("<replica><host>{host}</host>")),
                "{host}"
            );
        }
    }

    #[test]
    fn evaluation_sharing_needs_the_clickhouse_store_and_a_zookeeper() {
        let sharing = |store: &str, zookeeper: &str, path: &str| {
            let text = format!(
                "[store]\nkind = \"{store}\"\n[evaluation]\nzookeeper = \"{zookeeper}\"\n\
                 path = \"{path}\"\n"
            );
            let config: Config = toml::from_str(&text).unwrap();
            config.validate().map_err(|e| e.to_string())
        };
        sharing("clickhouse", "zk:2181", "/vigil/eval").unwrap();
        for (store, zookeeper, path, named) in [
            ("embedded", "zk:2181", "/v", "evaluation.zookeeper"),
            ("clickhouse", "", "/v", "evaluation.zookeeper"),
            ("clickhouse", "zk:2181", "v", "evaluation.path"),
        ] {
            let refused = sharing(store, zookeeper, path).unwrap_err();
            assert!(refused.contains(named), "{refused}");
        }
    }

    #[test]
    fn a_lease_needs_the_clickhouse_store_and_a_zookeeper() {
        let lease = |store: &str, zookeeper: &str, timeout: &str| {
            let text = format!(
                "[store]\nkind = \"{store}\"\n[alerting.lease]\nzookeeper = \"{zookeeper}\"\n\
                 session_timeout = \"{timeout}\"\n"
            );
            let config: Config = toml::from_str(&text).unwrap();
            config.validate().map_err(|e| e.to_string())
        };
        lease("clickhouse", "zk:2181", "10s").unwrap();
        let refused = lease("embedded", "zk:2181", "10s").unwrap_err();
        assert!(refused.contains("alerting.lease"), "{refused}");
        let refused = lease("clickhouse", " ", "10s").unwrap_err();
        assert!(refused.contains("alerting.lease.zookeeper"), "{refused}");
        let refused = lease("clickhouse", "zk:2181", "500ms").unwrap_err();
        assert!(
            refused.contains("alerting.lease.session_timeout"),
            "{refused}"
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut table: toml::Table = "[server]\ngrpc_listen = \"127.0.0.1:1\"\n".parse().unwrap();
        let vars = [
            ("VIGIL_SERVER__GRPC_LISTEN", "127.0.0.1:9999"),
            ("VIGIL_WAL__FSYNC", "false"),
            ("VIGIL_LIMITS__MAX_ITEMS_PER_REQUEST", "5"),
            ("VIGIL_DATA_DIR", "/tmp/x"),
            ("VIGIL_STORE__KIND", "clickhouse"),
            ("VIGIL_STORE__CLICKHOUSE__URL", "http://10.0.0.1:8123"),
            ("UNRELATED", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()));
        apply_env(&mut table, vars).unwrap();
        let config: Config = toml::Value::Table(table).try_into().unwrap();
        assert_eq!(config.server.grpc_listen, "127.0.0.1:9999");
        assert!(!config.wal.fsync);
        assert_eq!(config.limits.max_items_per_request, 5);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.store.kind, StoreKind::Clickhouse);
        assert_eq!(config.store.clickhouse.url, "http://10.0.0.1:8123");
    }

    #[test]
    fn tls_is_set_per_port_from_the_environment() {
        let mut table = toml::Table::new();
        let vars = [
            ("VIGIL_SERVER__HTTP_TLS__CERT_FILE", "/tls/c.pem"),
            ("VIGIL_SERVER__HTTP_TLS__KEY_FILE", "/tls/k.pem"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()));
        apply_env(&mut table, vars).unwrap();
        let config: Config = toml::Value::Table(table).try_into().unwrap();
        let http = config.server.http_tls.unwrap();
        assert_eq!(http.cert_file, PathBuf::from("/tls/c.pem"));
        assert_eq!(http.key_file, PathBuf::from("/tls/k.pem"));
        assert!(config.server.grpc_tls.is_none());
        let err = toml::from_str::<Config>("[server.grpc_tls]\ncert_file = \"c\"\n").unwrap_err();
        assert!(err.to_string().contains("key_file"), "{err}");
    }

    #[test]
    fn mistakes_are_named() {
        let err = toml::from_str::<Config>("[server]\ngrpc_lisen = \"x\"").unwrap_err();
        assert!(err.to_string().contains("grpc_lisen"), "{err}");
        // A duration is parsed once, when the file is read, and refused by its path.
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "[batcher]\nmax_delay = \"soon\"\n").unwrap();
        let err = Config::load(Some(file.path())).unwrap_err().to_string();
        assert!(
            err.contains("batcher.max_delay") && err.contains("\"soon\" is not a duration"),
            "{err}"
        );
        let config = Config {
            rate_limits: RateLimitSettings {
                requests_per_second: 10.0,
                burst: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("rate_limits.burst: 0 is outside 1..="),
            "{err}"
        );
        let config = Config {
            rate_limits: RateLimitSettings {
                failed_auth_per_second: -1.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("rate_limits.failed_auth_per_second:"),
            "{err}"
        );
    }

    /// The `vigil.toml` each Kubernetes manifest puts in its ConfigMap is a valid configuration.
    #[test]
    fn the_kubernetes_manifests_configure_vigil_validly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
        for (file, kind) in [
            ("one-node.yaml", StoreKind::Embedded),
            ("scale-out.yaml", StoreKind::Clickhouse),
        ] {
            let manifest = std::fs::read_to_string(dir.join(file)).unwrap();
            // The block under `vigil.toml: |`, its indentation taken off.
            let toml: String = manifest
                .lines()
                .skip_while(|l| l.trim() != "vigil.toml: |")
                .skip(1)
                .take_while(|l| l.starts_with("    "))
                .map(|l| format!("{}\n", &l[4..]))
                .collect();
            let config: Config = toml::from_str(&toml).unwrap_or_else(|e| panic!("{file}: {e}"));
            config.validate().unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(config.store.kind, kind, "{file}");
            assert_eq!(config.data_dir, PathBuf::from("/var/lib/vigil"), "{file}");
        }
    }

    #[test]
    fn the_audit_head_receiver_needs_the_rules_file() {
        let mut config = Config::default();
        config.audit.head_receiver = Some("auditors".into());
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("alerting.rules_file"), "{refused}");
        config.alerting.rules_file = Some("alerts.toml".into());
        config.validate().unwrap();
        config.audit.head_interval = ConfigDuration::from_secs(0);
        let refused = config.validate().unwrap_err().to_string();
        assert!(refused.contains("audit.head_interval"), "{refused}");
    }

    #[test]
    fn rate_limits_can_be_turned_off() {
        assert!(Config::default().rate_limits.default_limit().is_some());
        let off = RateLimitSettings {
            requests_per_second: 0.0,
            burst: 0,
            failed_auth_per_second: 0.0,
            failed_auth_burst: 0,
        };
        assert!(off.default_limit().is_none());
        assert!(off.failed_auth_limit().is_none());
        Config {
            rate_limits: off,
            ..Default::default()
        }
        .validate()
        .unwrap();
    }
}
