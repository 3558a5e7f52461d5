//! Versioned, idempotent migrations. Each node records what it applied in
//! `<database>.vigil_migrations`; `vigil migrate` (and `vigil serve` when `migrate_on_start`)
//! applies what is missing, in order, on every node of [`ClickHouseConfig::migration_nodes`].
//!
//! * Every statement is idempotent (`IF NOT EXISTS`), so a migration interrupted half-way, or
//!   two collectors migrating at once, end in the same state.
//! * A migration's checksum is recorded with it; a binary whose migration of the same version
//!   differs refuses to go on rather than guess.
//! * A migration may need a newer server (data-skipping indexes need 20.1): on an older one it
//!   is reported as skipped, not recorded, and applied by the first `migrate` after an upgrade.

use sha2::{Digest, Sha256};

use super::{ClickHouseConfig, ServerVersion, schema::Target};
use crate::layout::Table;

/// The table, in the configured database, that records applied migrations (on every node).
pub const MIGRATIONS_TABLE: &str = "vigil_migrations";

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    /// The oldest server that can apply it; older ones skip it.
    pub requires: Option<ServerVersion>,
    statements: fn(&Target) -> Vec<String>,
}

impl Migration {
    pub fn statements(&self, target: &Target) -> Vec<String> {
        (self.statements)(target)
    }

    /// A digest of what the migration does, independent of the database and cluster names.
    pub fn checksum(&self) -> String {
        let canonical = Target {
            database: "db".into(),
            cluster: None,
            replication: None,
        };
        hex::encode(Sha256::digest(self.statements(&canonical).join(";\n")))
    }
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tables runs, spans and scores",
        requires: None,
        statements: |target| {
            Table::ALL
                .into_iter()
                .flat_map(|t| target.create_table(t))
                .collect()
        },
    },
    Migration {
        version: 2,
        name: "bloom-filter skip indexes for look-ups by session, user, model, prompt and tool",
        requires: Some(ServerVersion {
            major: 20,
            minor: 1,
        }),
        statements: skip_indexes,
    },
    Migration {
        version: 3,
        name: "sealed days: inserted_at on runs, spans and scores, their _sealed tables, vigil_seals",
        requires: None,
        statements: |target| {
            Table::ALL
                .into_iter()
                .flat_map(|t| {
                    [
                        target.add_inserted_at(t),
                        target.create_sealed_table_by_day(t),
                    ]
                })
                .chain(std::iter::once(target.create_seals_table()))
                .collect()
        },
    },
    Migration {
        version: 4,
        name: "sealed days partitioned by hour: _sealed tables and vigil_seals re-created, days sealed again",
        requires: None,
        statements: |target| {
            let tables = Table::ALL.into_iter();
            tables
                .clone()
                .map(|t| target.drop_sealed_table(t))
                .chain(std::iter::once(target.drop_seals_table()))
                .chain(tables.map(|t| target.create_sealed_table(t)))
                .chain(std::iter::once(target.create_seals_table()))
                .collect()
        },
    },
    Migration {
        version: 5,
        name: "vigil_seals records the raw day's highest block number, so reads find late rows in system.parts",
        requires: None,
        statements: |target| vec![target.add_seal_blocks()],
    },
    Migration {
        version: 6,
        name: "vigil_control: the control state every Vigil node shares (API keys)",
        requires: None,
        statements: |target| vec![target.create_control_table()],
    },
];

/// Whether `statement` failing with `error` means it was applied before: 18.16 has no
/// `ADD COLUMN IF NOT EXISTS`, so a column that exists (code 44 on 18.16, 15 on current
/// releases) is the one the migration adds.
fn applied_before(statement: &str, error: &clickhouse::error::Error) -> bool {
    statement.contains(" ADD COLUMN ")
        && matches!(error, clickhouse::error::Error::BadResponse(text)
            if matches!(super::error_code(text), Some(15 | 44)))
}

fn skip_indexes(target: &Target) -> Vec<String> {
    let indexes: [(Table, &[&str]); 2] = [
        (Table::Runs, &["session_id", "user_hash"]),
        (Table::Spans, &["model", "prompt_version", "tool_name"]),
    ];
    indexes
        .iter()
        .flat_map(|(table, columns)| {
            let storage = target.storage_table(*table);
            columns.iter().map(move |column| {
                format!(
                    "ALTER TABLE {}.{storage} ADD INDEX IF NOT EXISTS idx_{column} {column} TYPE bloom_filter(0.01) GRANULARITY 4",
                    target.database
                )
            })
        })
        .collect()
}

/// What `migrate` did on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    pub url: String,
    pub server_version: String,
    /// Applied now: (version, name).
    pub applied: Vec<(u32, String)>,
    /// Applied before.
    pub present: Vec<u32>,
    /// Not applicable to this server: (version, name, why).
    pub skipped: Vec<(u32, String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub nodes: Vec<NodeReport>,
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for node in &self.nodes {
            writeln!(f, "{} (ClickHouse {})", node.url, node.server_version)?;
            for (version, name) in &node.applied {
                writeln!(f, "  applied   {version:>3}  {name}")?;
            }
            for version in &node.present {
                writeln!(f, "  present   {version:>3}")?;
            }
            for (version, name, why) in &node.skipped {
                writeln!(f, "  skipped   {version:>3}  {name}: {why}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("{url}: {action}: {source}")]
    Server {
        url: String,
        action: String,
        #[source]
        source: clickhouse::error::Error,
    },
    #[error(
        "{url}: migration {version} was recorded with checksum {recorded}, but this build's is {expected}: the schema was changed by another version of Vigil"
    )]
    Checksum {
        url: String,
        version: u32,
        recorded: String,
        expected: String,
    },
    #[error("{url}: unrecognised server version {version:?}")]
    Version { url: String, version: String },
    #[error("ClickHouse did not answer within {0:?}")]
    TimedOut(std::time::Duration),
}

/// Every migration's statements for the configured database and cluster, as one SQL script
/// (`vigil migrate --print-sql`): to review before applying, or to apply by other means. It
/// leaves out what `migrate` itself does: `CREATE DATABASE`, the record table, version checks.
pub fn script(config: &ClickHouseConfig) -> String {
    let target = config.target();
    let mut out = String::new();
    if target.cluster.is_some() {
        out.push_str("-- Run on every node of the cluster.\n\n");
    }
    for migration in MIGRATIONS {
        out.push_str(&format!(
            "-- migration {}: {}",
            migration.version, migration.name
        ));
        if let Some(required) = migration.requires {
            out.push_str(&format!(" (ClickHouse {required} or newer)"));
        }
        out.push('\n');
        for statement in migration.statements(&target) {
            out.push_str(&statement);
            out.push_str(";\n\n");
        }
    }
    out
}

pub struct Migrator<'a> {
    config: &'a ClickHouseConfig,
}

impl<'a> Migrator<'a> {
    pub fn new(config: &'a ClickHouseConfig) -> Migrator<'a> {
        Migrator { config }
    }

    /// Applies every pending migration on every node, failing with `TimedOut` when ClickHouse
    /// does not finish within the configured timeout (a stalled server must not hang a start).
    pub async fn run(&self) -> Result<MigrationReport, MigrationError> {
        let timeout = self.config.timeout();
        tokio::time::timeout(timeout, self.run_on_every_node())
            .await
            .unwrap_or(Err(MigrationError::TimedOut(timeout)))
    }

    /// Migration by migration, each on every node before the next: a replicated table's
    /// replicas must be created alike, and a later migration's change reaches the replicas
    /// already there by replication.
    async fn run_on_every_node(&self) -> Result<MigrationReport, MigrationError> {
        let mut nodes = Vec::new();
        for url in self.config.migration_nodes() {
            nodes.push(self.prepare(&url).await?);
        }
        let target = self.config.target();
        for migration in MIGRATIONS {
            for node in &mut nodes {
                node.apply(migration, &target).await?;
            }
        }
        Ok(MigrationReport {
            nodes: nodes.into_iter().map(|node| node.report).collect(),
        })
    }

    /// Reads a node's version and what it applied, creating the database and the record.
    async fn prepare(&self, url: &str) -> Result<Node, MigrationError> {
        let client = self.config.client_for(url);
        let db = &self.config.database;
        let version_text: String = client
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(failed(url, "asking the server's version"))?;
        let server =
            ServerVersion::parse(&version_text).ok_or_else(|| MigrationError::Version {
                url: url.into(),
                version: version_text.clone(),
            })?;

        for statement in [
            format!("CREATE DATABASE IF NOT EXISTS {db}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} (version UInt32, name String, checksum String, applied_at DateTime) ENGINE = MergeTree ORDER BY version"
            ),
        ] {
            client
                .query(&statement)
                .execute()
                .await
                .map_err(failed(url, &statement))?;
        }
        let recorded: Vec<(u32, String)> = client
            .query(&format!(
                "SELECT version, any(checksum) FROM {db}.{MIGRATIONS_TABLE} GROUP BY version"
            ))
            .fetch_all()
            .await
            .map_err(failed(url, "reading the applied migrations"))?;
        Ok(Node {
            client,
            server,
            recorded,
            report: NodeReport {
                url: url.into(),
                server_version: version_text.trim().to_string(),
                ..Default::default()
            },
        })
    }
}

/// A node being migrated: its client, version, what it applied before, what happened now.
struct Node {
    client: clickhouse::Client,
    server: ServerVersion,
    recorded: Vec<(u32, String)>,
    report: NodeReport,
}

impl Node {
    async fn apply(
        &mut self,
        migration: &Migration,
        target: &Target,
    ) -> Result<(), MigrationError> {
        let url = self.report.url.clone();
        if let Some((_, checksum)) = self.recorded.iter().find(|(v, _)| *v == migration.version) {
            if *checksum != migration.checksum() {
                return Err(MigrationError::Checksum {
                    url,
                    version: migration.version,
                    recorded: checksum.clone(),
                    expected: migration.checksum(),
                });
            }
            self.report.present.push(migration.version);
            return Ok(());
        }
        if let Some(required) = migration.requires
            && self.server < required
        {
            self.report.skipped.push((
                migration.version,
                migration.name.into(),
                format!("needs ClickHouse {required} or newer"),
            ));
            return Ok(());
        }
        for statement in migration.statements(target) {
            match self.client.query(&statement).execute().await {
                Err(error) if !applied_before(&statement, &error) => {
                    return Err(failed(&url, &format!("migration {}", migration.version))(
                        error,
                    ));
                }
                _ => {}
            }
        }
        self.client
            .query(&format!(
                "INSERT INTO {}.{MIGRATIONS_TABLE} (version, name, checksum, applied_at) VALUES (?, ?, ?, now())",
                target.database
            ))
            .bind(migration.version)
            .bind(migration.name)
            .bind(migration.checksum())
            .execute()
            .await
            .map_err(failed(&url, &format!("recording migration {}", migration.version)))?;
        self.report
            .applied
            .push((migration.version, migration.name.into()));
        Ok(())
    }
}

/// The error of `action` failing on the node at `url`.
fn failed(url: &str, action: &str) -> impl FnOnce(clickhouse::error::Error) -> MigrationError {
    let (url, action) = (url.to_string(), action.to_string());
    move |source| MigrationError::Server {
        url,
        action,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_checksums_ignore_names() {
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted);
        let cluster = Target {
            database: "other".into(),
            cluster: Some("c".into()),
            replication: None,
        };
        assert_eq!(MIGRATIONS[1].statements(&cluster).len(), 5);
        assert!(
            MIGRATIONS[1].statements(&cluster)[0]
                .starts_with("ALTER TABLE other.runs_local ADD INDEX")
        );
        // A released migration never changes: servers that applied it refuse a binary whose
        // statements differ.
        let released = [
            "e1e8d2680b5464c6002ffc24723b85edf075c2ed591878d6f50095e8b85f7cf5",
            "117cf7eb78976909ed718e5789ad83d129277e35580b988fe0431bce69e05c89",
            "eb7d607b71b00e2601bfea82db0937cc22bb64dc1b34f42bea4ca5654088ac69",
            "c956baddea855a37408422ac4c445ffa25ce154f94aa8c79502898e0a036f632",
        ];
        for (migration, checksum) in MIGRATIONS.iter().zip(released) {
            assert_eq!(
                migration.checksum(),
                checksum,
                "migration {}",
                migration.version
            );
        }
        let sql = script(&ClickHouseConfig::default());
        // The three tables, their sealed copies and the record of seals, the last four twice
        // (migration 4 re-creates them by hour), and the control table.
        assert_eq!(sql.matches("CREATE TABLE IF NOT EXISTS vigil.").count(), 12);
        assert!(sql.contains("-- migration 2: bloom-filter"));
        assert!(sql.contains(
            "ALTER TABLE vigil.spans ADD COLUMN inserted_at DateTime MATERIALIZED now()"
        ));
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS vigil.runs_sealed ("));
        // On a cluster, each node's storage tables.
        assert!(
            MIGRATIONS[2].statements(&cluster)[1]
                .starts_with("CREATE TABLE IF NOT EXISTS other.runs_local_sealed (")
        );
        let by_hour = MIGRATIONS[3].statements(&cluster);
        assert_eq!(by_hour[0], "DROP TABLE IF EXISTS other.runs_local_sealed");
        assert!(
            by_hour[4].contains("PARTITION BY (intDiv(start_time_ns, 3600000000000), generation)")
        );
        assert_eq!(
            MIGRATIONS[4].statements(&cluster),
            ["ALTER TABLE other.vigil_seals ADD COLUMN raw_max_block Int64 DEFAULT -1"]
        );
        // Replicated, the control table has one replica on every server of every shard.
        let replicated = Target {
            replication: Some("/ch/{shard}".into()),
            ..cluster
        };
        assert!(MIGRATIONS[5].statements(&replicated)[0].contains(
            "ReplicatedReplacingMergeTree('/ch/all/other/vigil_control', '{shard}-{replica}', version)"
        ));
    }
}
