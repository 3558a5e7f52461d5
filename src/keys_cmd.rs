//! `vigil keys create|list|revoke`: API keys, in the data directory's key registry, or with the
//! ClickHouse store the one every node shares. Works while the server runs (it notices the
//! change). Creations and revocations go to the audit log in
//! `<data dir>/audit` with key id `cli`, as `POST` / `DELETE /api/v1/keys` record theirs.

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;
use vigil_access::{
    audit::{AuditLog, AuditRecord, CLI_KEY_ID, KEY_CREATE, KEY_REVOKE},
    keys::{KeySpec, RateLimit, Role},
};
use vigil_schemas::time::rfc3339;

use crate::{config::Config, control};

#[derive(Subcommand)]
pub enum KeysAction {
    /// Create a key; its secret is printed once.
    Create {
        /// Project the key belongs to.
        #[arg(long, default_value = "default")]
        project: String,
        /// Roles: ingest, read, audit, admin (repeat or comma-separate).
        #[arg(long = "role", value_delimiter = ',', required = true)]
        roles: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// This key's REST rate limit, requests per second (default: `[rate_limits]`).
        #[arg(long, requires = "burst")]
        requests_per_second: Option<f64>,
        /// Requests at once, with --requests-per-second.
        #[arg(long, requires = "requests_per_second")]
        burst: Option<u32>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id (`vk_…`).
    Revoke { id: String },
}

#[allow(clippy::print_stdout)]
pub async fn run(config: &Config, action: KeysAction) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let keys = control::open_keys(config, CLI_KEY_ID)?;
    keys.refresh()
        .await
        .with_context(|| format!("reading the keys in {}", keys.location()))?;
    match action {
        KeysAction::Create {
            project,
            roles,
            description,
            requests_per_second,
            burst,
        } => {
            let rate_limit = requests_per_second
                .zip(burst)
                .map(|(requests_per_second, burst)| RateLimit {
                    requests_per_second,
                    burst,
                });
            let key = keys
                .create_key(KeySpec {
                    project_id: project,
                    roles: Role::parse_list(&roles).context("--role")?,
                    description,
                    rate_limit,
                })
                .await?;
            audit(
                config,
                &key.record.project_id,
                KEY_CREATE,
                serde_json::json!(key.record.public_view()),
            )?;
            println!("id:     {}", key.record.id);
            println!("secret: {}", key.secret);
            println!("token:  {}", key.token);
            println!("(Bearer token = token; Basic auth = id:secret. Shown once.)");
        }
        KeysAction::List => {
            println!(
                "{:<20} {:<16} {:<28} {:<22} STATE",
                "ID", "PROJECT", "ROLES", "CREATED"
            );
            for k in keys.list().await? {
                let roles: Vec<&str> = k.roles.iter().map(|r| r.as_str()).collect();
                let state = match k.revoked_at_ns {
                    Some(t) => format!("revoked {}", rfc3339(t)),
                    None => "active".into(),
                };
                println!(
                    "{:<20} {:<16} {:<28} {:<22} {}",
                    k.id,
                    k.project_id,
                    roles.join(","),
                    rfc3339(k.created_at_ns - k.created_at_ns % 1_000_000_000),
                    state
                );
            }
        }
        KeysAction::Revoke { id } => {
            let k = keys.revoke(&id).await?;
            audit(
                config,
                &k.project_id,
                KEY_REVOKE,
                serde_json::json!(k.public_view()),
            )?;
            println!("revoked {}", k.id);
        }
    }
    Ok(())
}

/// Records a key change made here; the change is made by then, so a failure says so.
fn audit(config: &Config, project_id: &str, action: &str, parameters: Value) -> anyhow::Result<()> {
    let record = AuditRecord {
        project_id: project_id.to_string(),
        key_id: CLI_KEY_ID.to_string(),
        action: action.to_string(),
        parameters,
        result_count: 1,
    };
    AuditLog::open(config.data_dir.join("audit"))
        .and_then(|log| log.append(record))
        .with_context(|| format!("{action} was done but could not be recorded in the audit log"))?;
    Ok(())
}
