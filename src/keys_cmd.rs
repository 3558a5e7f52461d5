//! `vigil keys create|list|revoke`: API keys, in the data directory's key registry. Works while
//! the server runs (it notices the change).

use std::collections::BTreeSet;

use anyhow::bail;
use clap::Subcommand;
use vigil_schemas::{
    keys::{KeyStore, Role},
    time::rfc3339,
};

use crate::config::Config;

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
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id (`vk_…`).
    Revoke { id: String },
}

#[allow(clippy::print_stdout)]
pub fn run(config: &Config, action: KeysAction) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let keys = KeyStore::open(config.data_dir.join("keys.json"))?;
    match action {
        KeysAction::Create {
            project,
            roles,
            description,
        } => {
            let mut parsed = BTreeSet::new();
            for r in &roles {
                match Role::parse(r) {
                    Some(role) => {
                        parsed.insert(role);
                    }
                    None => bail!("--role {r:?}: expected one of ingest, read, audit, admin"),
                }
            }
            let key = keys.create(&project, parsed, &description)?;
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
            for k in keys.list()? {
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
            let k = keys.revoke(&id)?;
            println!("revoked {}", k.id);
        }
    }
    Ok(())
}
