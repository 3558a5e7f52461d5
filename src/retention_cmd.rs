//! `vigil retention --dry-run`: what the retention job of `vigil serve` would delete if it ran
//! now, with the configured policies, on the configured store. Nothing is changed; the job
//! itself runs inside `vigil serve` every `retention.check_interval`.

use anyhow::{Context, bail};
use vigil_collector::{
    retention::{FOREVER, enforce},
    sink::{ClickHouseSink, DeletedRows, Deleter, EmbeddedSink},
};
use vigil_schemas::time::{now_ns, rfc3339};

use crate::{
    StoreArgs,
    config::{Config, StoreKind},
};

#[derive(clap::Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only report what would be deleted (required: the deleting job runs in `vigil serve`).
    #[arg(long)]
    dry_run: bool,
}

#[allow(clippy::print_stdout)]
pub fn run(args: RetentionArgs) -> anyhow::Result<()> {
    if !args.dry_run {
        bail!(
            "retention deletes from inside `vigil serve` (every retention.check_interval); \
             pass --dry-run to see what it would delete now"
        );
    }
    let config = args.store.load()?;
    let deleter = deleter(&config)?;
    let now = now_ns();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime
        .block_on(enforce(&config.retention, deleter.as_ref(), now, true))
        .context("reading the store")?;

    let settings = &config.retention;
    println!(
        "retention dry run at {} (nothing was deleted)",
        rfc3339(now)
    );
    println!("policies: default = {}", settings.default);
    for (name, keep) in &settings.policies {
        println!("          {name} = {keep}");
    }
    let cutoffs = settings.cutoffs(now);
    for (name, cutoff) in &cutoffs.named {
        println!("  runs with retention {name:?}: {}", describe(*cutoff));
    }
    println!("  every other run: {}", describe(cutoffs.default));
    match &report.dropped_days_before {
        Some(day) => println!(
            "whole days before {day} would be dropped: {}",
            rows(&report.dropped)
        ),
        None => println!(
            "no whole day would be dropped (a policy keeps data {FOREVER}, or nothing is old enough)"
        ),
    }
    println!(
        "expired runs in the days kept would go with their spans and scores: {}",
        rows(&report.expired)
    );
    println!("total rows: {}", report.total());
    Ok(())
}

fn describe(cutoff: Option<i64>) -> String {
    match cutoff {
        Some(cutoff) => format!("expire when started before {}", rfc3339(cutoff)),
        None => format!("kept {FOREVER}"),
    }
}

fn rows(rows: &DeletedRows) -> String {
    format!(
        "{} runs, {} spans, {} scores (stored versions)",
        rows.runs, rows.spans, rows.scores
    )
}

/// The store's deleter, opened for reading only (a running server may own the store).
fn deleter(config: &Config) -> anyhow::Result<Box<dyn Deleter>> {
    Ok(match config.store.kind {
        StoreKind::Embedded => Box::new(EmbeddedSink::inspect(&config.data_dir)?),
        StoreKind::Clickhouse => Box::new(ClickHouseSink::new(&config.store.clickhouse)),
    })
}
