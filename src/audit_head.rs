//! The audit chain's head, published outside Vigil: every `[audit] head_interval`, when the head
//! moved, this node sends `{node, seq, hash, at}` to the rules file's receiver named by
//! `[audit] head_receiver`, signed as alert webhooks are (Standard Webhooks). Whoever keeps those
//! checkpoints can later show that the log still holds them (`vigil audit verify --expect
//! SEQ:HASH`): a log rewritten whole, every hash recomputed, verifies by itself, not against a
//! checkpoint published before the rewrite.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use vigil_access::audit::{AuditLog, Checkpoint};
use vigil_alerts::{
    AlertEngine,
    webhook::{Attempt, attempt},
};
use vigil_schemas::time::{now_ns, rfc3339};

/// Publishes `audit`'s head to `receiver` every `interval` until `shutdown` (the first at once).
pub fn spawn_publisher(
    receiver: String,
    interval: Duration,
    audit: Arc<AuditLog>,
    alerts: Arc<AlertEngine>,
    node: String,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut published: Option<Checkpoint> = None;
        loop {
            match publish(&client, &receiver, &audit, &alerts, &node, &published).await {
                Ok(Some(checkpoint)) => {
                    tracing::info!(%checkpoint, receiver, "the audit chain's head is published");
                    published = Some(checkpoint);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(receiver, error = %e, "the audit chain's head could not be published; trying again next interval")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
}

/// Sends the head unless it is the one last published; what was published.
async fn publish(
    client: &reqwest::Client,
    receiver: &str,
    audit: &AuditLog,
    alerts: &AlertEngine,
    node: &str,
    published: &Option<Checkpoint>,
) -> anyhow::Result<Option<Checkpoint>> {
    let checkpoint = audit.checkpoint()?;
    if published.as_ref() == Some(&checkpoint) {
        return Ok(None);
    }
    let Some(to) = alerts.receiver(receiver) else {
        anyhow::bail!("the alerting rules file has no receiver {receiver:?}");
    };
    let body = serde_json::to_vec(&json!({
        "kind": "vigil.audit_head",
        "node": node,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "checkpoint": checkpoint.to_string(),
        "at": rfc3339(now_ns()),
    }))?;
    let id = format!("audit-head-{node}-{}", checkpoint.seq);
    match attempt(client, &to, &id, None, &body).await {
        Attempt::Delivered(_) => Ok(Some(checkpoint)),
        Attempt::Retryable(why) => anyhow::bail!("{why}"),
        Attempt::Rejected(status) => anyhow::bail!("the receiver answered HTTP {status}"),
    }
}
