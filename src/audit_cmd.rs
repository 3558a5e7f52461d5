//! `vigil audit verify`: checks the hash chain of `<data dir>/audit` from the first entry to the
//! head, prints a summary, and fails naming the first bad entry.

use anyhow::bail;
use clap::Subcommand;
use vigil_access::audit::{HEAD_FILE, LOG_FILE, verify};

use crate::config::Config;

#[derive(Subcommand)]
pub enum AuditAction {
    /// Check the audit log's hash chain and head; exit 1 naming the first bad entry.
    Verify,
}

#[allow(clippy::print_stdout)]
pub fn run(config: &Config, action: AuditAction) -> anyhow::Result<()> {
    match action {
        AuditAction::Verify => {
            let dir = config.data_dir.join("audit");
            let report = verify(&dir)?;
            if let Some(tampering) = &report.tampering {
                bail!(
                    "audit log {} FAILED verification at {tampering} ({} entries before it check \
                     out)",
                    dir.join(LOG_FILE).display(),
                    report.entries
                );
            }
            println!("audit log {}: valid", dir.join(LOG_FILE).display());
            println!("entries:   {}", report.entries);
            println!("last seq:  {}", report.last_seq);
            println!("head hash: {}", report.last_hash);
            if report.head_lags {
                println!(
                    "note: {HEAD_FILE} is one entry behind, announcing the last entry (an \
                     append interrupted after writing it); the next append moves it"
                );
            }
            if report.torn_tail_bytes > 0 {
                println!(
                    "note: {} bytes after the last line end are a write torn by a crash (never \
                     acknowledged); the next append cuts them off",
                    report.torn_tail_bytes
                );
            }
        }
    }
    Ok(())
}
