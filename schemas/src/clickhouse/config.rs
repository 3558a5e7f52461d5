//! How to reach ClickHouse, and the client every part of Vigil builds from it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::schema::Target;

/// `[store.clickhouse]` in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// The HTTP interface, `http://host:8123` (or `https://…` for TLS, verified against the
    /// system's trusted roots: install a private CA there).
    pub url: String,
    /// Created by the migrations when missing.
    pub database: String,
    pub user: String,
    pub password: String,
    /// The cluster (from the servers' `<remote_servers>`) to shard over: local tables on every
    /// node plus `Distributed` tables in front of them. None for a single server.
    pub cluster: Option<String>,
    /// With a cluster, the HTTP URL of every node, where `vigil migrate` creates the tables
    /// (ClickHouse's own `ON CLUSTER` needs ZooKeeper). Defaults to `url` alone.
    pub nodes: Vec<String>,
    /// With a cluster whose shards have several replicas: the storage tables are
    /// `ReplicatedReplacingMergeTree`, kept in step through the servers' ZooKeeper (or
    /// ClickHouse Keeper), each server named by its `{replica}` macro.
    pub replicated: bool,
    /// Where in ZooKeeper a replicated table's replicas meet, before `/<database>/<table>`: it
    /// must hold the servers' `{shard}` macro, or two shards would take each other for replicas.
    pub replication_path: String,
    /// Apply pending migrations when `vigil serve` starts.
    pub migrate_on_start: bool,
    /// LZ4-compress inserts and answers (worth it over a network, not on loopback).
    pub compression: bool,
    /// An insert or query taking longer than this fails (and a write is retried).
    pub timeout_secs: u64,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            database: "vigil".into(),
            user: "default".into(),
            password: String::new(),
            cluster: None,
            nodes: Vec::new(),
            replicated: false,
            replication_path: "/clickhouse/tables/{shard}".into(),
            migrate_on_start: true,
            compression: false,
            timeout_secs: 60,
        }
    }
}

/// A setting that cannot work, named.
#[derive(Debug, thiserror::Error)]
#[error("store.clickhouse.{field}: {message}")]
pub struct ConfigError {
    pub field: &'static str,
    pub message: String,
}

impl ClickHouseConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, message: String| Err(ConfigError { field, message });
        for url in std::iter::once(&self.url).chain(&self.nodes) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return err(
                    "url",
                    format!(
                        "{url:?} is not an http:// or https:// URL of ClickHouse's HTTP interface"
                    ),
                );
            }
        }
        // Identifiers cannot be bound as parameters; they are checked instead.
        if !is_identifier(&self.database) {
            return err(
                "database",
                format!(
                    "{:?} must be letters, digits and underscores",
                    self.database
                ),
            );
        }
        if let Some(cluster) = &self.cluster {
            if !is_identifier(cluster) {
                return err(
                    "cluster",
                    format!("{cluster:?} must be letters, digits and underscores"),
                );
            }
            if self.nodes.len() < 2 {
                return err(
                    "nodes",
                    format!(
                        "cluster {cluster:?} is set: list the HTTP URL of every node (at least two), where migrations create the tables"
                    ),
                );
            }
        }
        if self.replicated {
            if self.cluster.is_none() {
                return err(
                    "replicated",
                    "needs `cluster`: replicas are the servers of a cluster's shards".into(),
                );
            }
            let path = &self.replication_path;
            if !path.starts_with('/')
                || !path.contains("{shard}")
                || !path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-.{}".contains(c))
            {
                return err(
                    "replication_path",
                    format!(
                        "{path:?} must be an absolute ZooKeeper path of letters, digits, `/_-.` and the servers' macros, holding {{shard}}"
                    ),
                );
            }
        }
        if self.timeout_secs == 0 {
            return err("timeout_secs", "must be at least 1".into());
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Where the tables go, as the migrations create them.
    pub fn target(&self) -> Target {
        Target {
            database: self.database.clone(),
            cluster: self.cluster.clone(),
            replication: self.replicated.then(|| self.replication_path.clone()),
        }
    }

    /// The nodes migrations run on.
    pub fn migration_nodes(&self) -> Vec<String> {
        if self.nodes.is_empty() {
            vec![self.url.clone()]
        } else {
            self.nodes.clone()
        }
    }

    /// A client for the database (which must exist: see [`crate::clickhouse::Migrator`]).
    pub fn client(&self) -> clickhouse::Client {
        self.client_for(&self.url).with_database(&self.database)
    }

    /// A client for the node that holds the shared control state (`vigil-control`): `url` on
    /// one server or a replicated cluster (every server holds a replica), the first of `nodes`
    /// on a cluster without replicas.
    pub fn control_client(&self) -> clickhouse::Client {
        let url = match (&self.cluster, self.replicated) {
            (Some(_), false) => self.migration_nodes().swap_remove(0),
            _ => self.url.clone(),
        };
        self.client_for(&url).with_database(&self.database)
    }

    /// A client for one node, with no database selected.
    pub fn client_for(&self, url: &str) -> clickhouse::Client {
        let compression = if self.compression {
            clickhouse::Compression::Lz4
        } else {
            clickhouse::Compression::None
        };
        let mut client = clickhouse::Client::default()
            .with_url(url)
            .with_user(&self.user)
            .with_compression(compression)
            // Schema validation asks the server for metadata 18.16 cannot give.
            .with_validation(false)
            .with_setting("max_execution_time", self.timeout_secs.to_string());
        if !self.password.is_empty() {
            client = client.with_password(&self.password);
        }
        if self.cluster.is_some() {
            // An insert returns once every shard has its rows, so the WAL checkpoint never moves
            // past rows still queued on the way to a shard. Sub-queries over a Distributed table
            // read the local shard: a trace's rows all live on one shard.
            // The shards' tables have MATERIALIZED columns, which a Distributed table forwards
            // along with the rest; the shard must be allowed to take them.
            client = client
                .with_setting("insert_distributed_sync", "1")
                .with_setting("insert_allow_materialized_columns", "1")
                .with_setting("distributed_product_mode", "local");
        }
        client
    }
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_setting() {
        assert!(ClickHouseConfig::default().validate().is_ok());
        let bad_db = ClickHouseConfig {
            database: "vigil; DROP TABLE x".into(),
            ..Default::default()
        };
        assert!(
            bad_db
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("store.clickhouse.database")
        );
        let bad_url = ClickHouseConfig {
            url: "tcp://localhost:9000".into(),
            ..Default::default()
        };
        assert!(
            bad_url
                .validate()
                .unwrap_err()
                .to_string()
                .contains("store.clickhouse.url")
        );
        let bad_cluster = ClickHouseConfig {
            cluster: Some("a-b".into()),
            nodes: vec!["http://a:8123".into(), "http://b:8123".into()],
            ..Default::default()
        };
        assert!(bad_cluster.validate().is_err());
        let no_nodes = ClickHouseConfig {
            cluster: Some("two".into()),
            ..Default::default()
        };
        assert!(
            no_nodes
                .validate()
                .unwrap_err()
                .to_string()
                .contains("store.clickhouse.nodes")
        );
        let cluster = ClickHouseConfig {
            cluster: Some("two".into()),
            nodes: vec!["http://a:8123".into(), "http://b:8123".into()],
            ..Default::default()
        };
        let replicated = ClickHouseConfig {
            replicated: true,
            ..cluster.clone()
        };
        assert!(replicated.validate().is_ok());
        assert_eq!(
            replicated.target().replication.as_deref(),
            Some("/clickhouse/tables/{shard}")
        );
        for (config, field) in [
            (
                ClickHouseConfig {
                    replicated: true,
                    ..Default::default()
                },
                "store.clickhouse.replicated",
            ),
            (
                ClickHouseConfig {
                    replication_path: "/clickhouse/tables".into(),
                    ..replicated.clone()
                },
                "store.clickhouse.replication_path",
            ),
            (
                ClickHouseConfig {
                    replication_path: "/t/{shard}'); DROP".into(),
                    ..replicated
                },
                "store.clickhouse.replication_path",
            ),
        ] {
            assert!(
                config
                    .validate()
                    .unwrap_err()
                    .to_string()
                    .starts_with(field)
            );
        }
    }
}
