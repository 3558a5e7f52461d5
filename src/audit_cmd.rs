//! `vigil audit verify`: checks the hash chain of `<data dir>/audit` from the first entry to the
//! head, prints a summary, and fails naming the first bad entry. On the ClickHouse store it also
//! checks every node's chain as shipped to the store, and this node's log against its shipped
//! copy. Given checkpoints published earlier (`vigil audit head`, or the ones `vigil serve`
//! sends to `[audit] head_receiver`), it checks the log still holds them: a log rewritten whole,
//! every hash recomputed, is valid by itself but not at a published checkpoint.

use anyhow::bail;
use clap::Subcommand;
use vigil_access::{
    audit::{AuditLog, Checkpoint, HEAD_FILE, LOG_FILE, verify},
    shared_audit::{chain_of, verify_all},
};
use vigil_control::ControlTable;

use crate::config::{Config, StoreKind};

#[derive(Subcommand)]
pub enum AuditAction {
    /// Check the audit log's hash chain and head (and, on ClickHouse, every node's chain as
    /// shipped to the store); exit 1 naming the first bad entry of each.
    Verify {
        /// A checkpoint published earlier, `SEQ:HASH` (repeatable): the log must hold that hash
        /// at that entry.
        #[arg(long = "expect", value_name = "SEQ:HASH")]
        expect: Vec<Checkpoint>,
    },
    /// Print the log's head as a checkpoint to keep outside Vigil: `SEQ:HASH`.
    Head,
}

#[allow(clippy::print_stdout)]
pub fn run(config: &Config, action: AuditAction) -> anyhow::Result<()> {
    match action {
        AuditAction::Head => {
            println!(
                "{}",
                AuditLog::open(config.data_dir.join("audit"))?.checkpoint()?
            );
        }
        AuditAction::Verify { expect } => {
            let mut failures = Vec::new();
            verify_local(config, &mut failures)?;
            check_checkpoints(config, &expect, &mut failures)?;
            if config.store.kind == StoreKind::Clickhouse {
                crate::runtime()?.block_on(verify_chains(config, &mut failures))?;
            }
            if !failures.is_empty() {
                bail!("{}", failures.join("; "));
            }
        }
    }
    Ok(())
}

/// This node's log, from its files.
#[allow(clippy::print_stdout)]
fn verify_local(config: &Config, failures: &mut Vec<String>) -> anyhow::Result<()> {
    let dir = config.data_dir.join("audit");
    let report = verify(&dir)?;
    if let Some(tampering) = &report.tampering {
        failures.push(format!(
            "audit log {} FAILED verification at {tampering} ({} entries before it check out)",
            dir.join(LOG_FILE).display(),
            report.entries
        ));
        return Ok(());
    }
    println!("audit log {}: valid", dir.join(LOG_FILE).display());
    println!("entries:   {}", report.entries);
    println!("last seq:  {}", report.last_seq);
    println!("head hash: {}", report.last_hash);
    if report.head_lags {
        println!(
            "note: {HEAD_FILE} is one entry behind, announcing the last entry (an append \
             interrupted after writing it); the next append moves it"
        );
    }
    if report.torn_tail_bytes > 0 {
        println!(
            "note: {} bytes after the last line end are a write torn by a crash (never \
             acknowledged); the next append cuts them off",
            report.torn_tail_bytes
        );
    }
    Ok(())
}

/// The checkpoints published earlier, against this node's log.
#[allow(clippy::print_stdout)]
fn check_checkpoints(
    config: &Config,
    expect: &[Checkpoint],
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let log = AuditLog::open(config.data_dir.join("audit"))?;
    for checkpoint in expect {
        match log.hash_at(checkpoint.seq)? {
            Some(hash) if hash == checkpoint.hash => {
                println!("checkpoint {checkpoint}: held");
            }
            Some(hash) => failures.push(format!(
                "the audit log holds {hash} at entry {}, not the published {}: it was \
                 rewritten after the checkpoint was published",
                checkpoint.seq, checkpoint.hash
            )),
            None => failures.push(format!(
                "the audit log holds no entry {} (published as {}): it was cut or rewritten",
                checkpoint.seq, checkpoint.hash
            )),
        }
    }
    Ok(())
}

/// Every node's chain as shipped to ClickHouse, and this node's log against its copy.
#[allow(clippy::print_stdout)]
async fn verify_chains(config: &Config, failures: &mut Vec<String>) -> anyhow::Result<()> {
    let table = ControlTable::new(&config.store.clickhouse, &crate::control::node_name(config));
    let dir = config.data_dir.join("audit");
    let own = chain_of(&dir)?;
    let local = match own {
        Some(_) => AuditLog::open(&dir)?.read(None, None, None, usize::MAX)?,
        None => Vec::new(),
    };
    let verified = verify_all(&table, own.as_deref(), &local).await?;
    println!(
        "chains shipped to ClickHouse ({}, database {}): {}",
        config.store.clickhouse.url,
        config.store.clickhouse.database,
        verified.chains.len()
    );
    for chain in &verified.chains {
        match &chain.tampering {
            None => println!(
                "  {}: valid, {} entries, last seq {}, head hash {}",
                chain.chain, chain.entries, chain.last_seq, chain.last_hash
            ),
            Some(tampering) => {
                println!("  {}: FAILED at {tampering}", chain.chain);
                failures.push(format!(
                    "the chain {} in ClickHouse FAILED verification at {tampering}",
                    chain.chain
                ));
            }
        }
    }
    if let Some(own) = verified.own {
        match own.differs {
            None => println!(
                "this node's chain {}: its log holds the {} entries shipped, as shipped ({} not shipped yet)",
                own.chain,
                own.shipped,
                own.local.saturating_sub(own.shipped)
            ),
            Some(tampering) => failures.push(format!(
                "this node's audit log differs from its chain {} in ClickHouse at {tampering}",
                own.chain
            )),
        }
    }
    Ok(())
}
