//! `vigil wal inspect|drain|quarantine`: the write-ahead log in the data directory, read without
//! writing to it (a running server may be appending); the draining of a dead node's log into
//! the store (`wal_drain.rs`); and the deliberate setting aside of a record the server cannot
//! read, recorded on the audit log with key id `cli`.

use anyhow::Context;
use clap::Subcommand;
use vigil_access::audit::{ALL_PROJECTS, AuditLog, AuditRecord, CLI_KEY_ID, WAL_QUARANTINE};
use vigil_collector::quarantine::{self, Inspection, QuarantineEntry};
use vigil_schemas::time::{now_ns, rfc3339};

use crate::config::Config;

#[derive(Subcommand)]
pub enum WalAction {
    /// Summarize the log after the checkpoint; list every record that cannot be read.
    Inspect {
        /// Also describe the record starting at this LSN.
        #[arg(long)]
        lsn: Option<u64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the log of a node that will not come back to the ClickHouse store (configured as
    /// for that node), from its checkpoint to its end; refused while a server runs on the
    /// data directory.
    Drain {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Set aside a record that cannot be read, so the server writes what follows it. Its bytes
    /// are kept in `<data dir>/wal/quarantine/`.
    Quarantine {
        /// The record's LSN, as `vigil wal inspect` and `/readyz` name it.
        #[arg(long)]
        lsn: u64,
        /// Why (kept with the record and on the audit log).
        #[arg(long)]
        reason: String,
    },
}

#[allow(clippy::print_stdout)]
pub fn run(config: &Config, action: WalAction) -> anyhow::Result<()> {
    let wal_dir = config.data_dir.join("wal");
    match action {
        WalAction::Inspect { lsn, json } => {
            let inspection = quarantine::inspect(&wal_dir, lsn)
                .with_context(|| format!("reading the wal in {}", wal_dir.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&inspection)?);
            } else {
                print!("{}", describe(&inspection));
            }
        }
        WalAction::Drain { json } => {
            let drained = crate::runtime()?.block_on(crate::wal_drain::drain(config))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&drained)?);
            } else {
                println!(
                    "drained LSN {}..{} ({} bytes) of {} into {}",
                    drained.from_lsn,
                    drained.to_lsn,
                    drained.bytes,
                    config.data_dir.join("wal").display(),
                    config.store.clickhouse.url
                );
                if let Some(chain) = &drained.audit_chain {
                    println!(
                        "shipped {} audit entries of chain {chain}",
                        drained.audit_entries_shipped
                    );
                }
            }
        }
        WalAction::Quarantine { lsn, reason } => {
            let entry = quarantine::quarantine(&wal_dir, lsn, &reason, rfc3339(now_ns()), |e| {
                audit(config, e)
            })?;
            println!(
                "quarantined the record at LSN {} ({} bytes) into {}",
                entry.lsn,
                entry.payload_bytes,
                wal_dir
                    .join(quarantine::QUARANTINE_DIR)
                    .join(&entry.payload_file)
                    .display()
            );
        }
    }
    Ok(())
}

fn audit(config: &Config, entry: &QuarantineEntry) -> Result<(), String> {
    let record = AuditRecord {
        project_id: ALL_PROJECTS.to_string(),
        key_id: CLI_KEY_ID.to_string(),
        action: WAL_QUARANTINE.to_string(),
        parameters: serde_json::to_value(entry).map_err(|e| e.to_string())?,
        result_count: 1,
    };
    AuditLog::open(config.data_dir.join("audit"))
        .and_then(|log| log.append(record))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn describe(inspection: &Inspection) -> String {
    let mut out = format!(
        "checkpoint LSN {}, end LSN {} ({} bytes waiting), {} segment(s), {} record(s) after \
         the checkpoint\n",
        inspection.checkpoint_lsn,
        inspection.end_lsn,
        inspection.end_lsn - inspection.checkpoint_lsn,
        inspection.segments,
        inspection.records
    );
    if let Some((lsn, reason)) = &inspection.corruption {
        out += &format!(
            "frames stop at LSN {lsn}: {reason} (a torn tail of the newest segment is cut away \
             at the next start; anywhere else the server refuses to start)\n"
        );
    }
    for r in &inspection.reported {
        let format = r.format.map_or("unknown".into(), |f| f.to_string());
        match &r.error {
            None => {
                out += &format!(
                    "LSN {}..{}: format {format}, {} bytes, {} run(s), {} span(s), {} score(s)\n",
                    r.lsn, r.end_lsn, r.payload_bytes, r.runs, r.spans, r.scores
                )
            }
            Some(error) => {
                let state = if r.quarantined {
                    "quarantined, passed by the server"
                } else {
                    "UNREADABLE: the server's store writer stops here"
                };
                out += &format!(
                    "LSN {}..{}: format {format}, {} bytes, {state}: {error}\n",
                    r.lsn, r.end_lsn, r.payload_bytes
                );
            }
        }
    }
    if !inspection.reported.iter().any(|r| r.error.is_some()) {
        out += "every record can be read\n";
    }
    for q in &inspection.quarantined {
        out += &format!(
            "quarantined {}: LSN {} ({} bytes), {}: {}\n",
            q.quarantined_at, q.lsn, q.payload_bytes, q.reason, q.payload_file
        );
    }
    out
}
