//! Sealing finished days in ClickHouse, so that reads stop de-duplicating them.
//!
//! A day of a table is sealed once it has been over for `seal_after` and nothing was inserted
//! into it for as long: its newest version of each key is copied into `<table>_sealed` under a
//! new generation (`INSERT … SELECT … LIMIT 1 BY key`, one statement), then the seal is recorded
//! in `vigil_seals` with its watermark: the server time, a settling margin before the copy
//! began, from which on rows of the raw table may be missing from it; and with the highest
//! block number of the raw day's parts before the copy began, past which every later insert
//! numbers its part. Reads take the recorded generation's rows as they are when no part of the
//! raw day reaches past that number (`system.parts`, no row read), and otherwise de-duplicate
//! only the raw rows inserted at or after the watermark (`vigil_query`'s `Seals`).
//!
//! * A generation is visible only once recorded, and complete when recorded: a copy that fails
//!   or is killed half-way leaves an unrecorded partition, dropped by a later pass.
//! * Rows that arrive later (a late version, a replay) are the raw table's; once the day is quiet
//!   again it is sealed again, into a new generation. The old one is dropped `grace` after the
//!   new one was recorded, so that running queries finish.
//! * A key that also has versions in a neighbouring day is copied with `crossday = 1`, and reads
//!   de-duplicate it like a late row: no key is counted twice from two sealed days.
//! * The raw tables keep every row: sealing copies, it never deletes, so no acknowledged row can
//!   be lost by it. Erasure and retention remove rows from both (`deletion.rs`), and hold the
//!   same lock as sealing so that no copy started before an erasure brings erased rows back.
//!
//! Only one server is sealed: on a cluster every read de-duplicates as before.

use std::{collections::BTreeSet, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_schemas::{
    clickhouse::schema::{INSERTED_AT, SEAL_BLOCK, SEALS_TABLE, Target, column_list},
    layout::Table,
    time::{NANOS_PER_DAY, now_ns},
};

use super::{ClickHouseSink, classify};
use crate::sink::SinkError;

/// How long before a seal's copy begins its watermark lies: an insert whose rows the server
/// stamped before the copy began but that committed after it is younger than this.
const SETTLE: i64 = 10;

/// An unrecorded generation older than this is an abandoned copy.
const ABANDONED_AFTER_NS: i64 = 3_600 * 1_000_000_000;

/// The copy may sort more than memory holds: it spills beyond this.
const EXTERNAL_SORT_BYTES: &str = "2000000000";

/// How long a copy may take. Not the store's query timeout (`timeout_secs`, 60 s by default),
/// which is for requests someone waits on: a day's copy grows with the day (a day of
/// 15,000,000 spans took over 60 s on two cores, BENCHMARKS.md), and one that always timed
/// out would leave the day unsealed for good, re-copied in vain on every pass.
const COPY_TIMEOUT_SECS: &str = "3600";

/// When days are sealed.
#[derive(Debug, Clone, Copy)]
pub struct SealConfig {
    /// A day is sealed once it has been over this long and nothing was inserted into it for as
    /// long.
    pub seal_after: Duration,
    /// How long a superseded generation stays readable.
    pub grace: Duration,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SealStats {
    /// (table, day) sealed, with the rows of the new generation.
    pub sealed: Vec<(Table, i64, u64)>,
    /// Superseded or abandoned generations dropped.
    pub generations_dropped: usize,
    /// Days over, unsealed or with late rows, that were not quiet yet.
    pub waiting: usize,
}

/// A recorded seal.
#[derive(Debug, Clone, Copy)]
struct Recorded {
    generation: u64,
    watermark: i64,
    sealed_at: i64,
    /// The raw day's highest block number when the copy began; `-1` when recorded before the
    /// column existed (such a day is sealed again, so that reads can tell it clean cheaply).
    block: i64,
}

impl ClickHouseSink {
    /// Seals due days every `interval` until `shutdown`.
    pub fn spawn_sealer(
        self: std::sync::Arc<Self>,
        config: SealConfig,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        crate::sink::spawn_every(interval, shutdown, move || {
            let sink = self.clone();
            async move {
                match sink.seal_once(config).await {
                    Ok(stats) if !stats.sealed.is_empty() || stats.generations_dropped > 0 => {
                        tracing::info!(
                            sealed = ?stats.sealed,
                            generations_dropped = stats.generations_dropped,
                            "seal pass done"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "seal pass failed"),
                }
            }
        })
    }

    /// One pass: seals every due day of every table, then drops superseded generations.
    pub async fn seal_once(&self, config: SealConfig) -> Result<SealStats, SinkError> {
        let mut stats = SealStats::default();
        if self.config.cluster.is_some() {
            return Ok(stats);
        }
        let target = self.config.target();
        // Quiet for at least the settling margin too: a seal's watermark then lies after every
        // row of the day, and the next pass finds nothing late.
        let seal_after = (config.seal_after.as_secs() as i64).max(SETTLE);
        for table in Table::ALL {
            let recorded = self.recorded(&target, table).await?;
            let now = self.server_now(table).await?;
            for (day, last) in self.days(&target, table).await? {
                let over = (day + 1) * 86_400 + seal_after <= now;
                // Strictly: the watermark (now less the margin) then lies after the last row.
                let quiet = last + seal_after < now;
                let late = recorded
                    .iter()
                    .find(|(d, _)| *d == day)
                    .is_none_or(|(_, seal)| last >= seal.watermark || seal.block < 0);
                if over && late && quiet {
                    let rows = self.seal(&target, table, day).await?;
                    stats.sealed.push((table, day, rows));
                } else if over && late {
                    stats.waiting += 1;
                }
            }
            let recorded = self.recorded(&target, table).await?;
            stats.generations_dropped += self
                .drop_superseded(&target, table, &recorded, config.grace)
                .await?;
        }
        Ok(stats)
    }

    /// Copies the newest version of each key of `table`'s `day` into a new generation and
    /// records it; the number of rows copied.
    async fn seal(&self, target: &Target, table: Table, day: i64) -> Result<u64, SinkError> {
        let _maintenance = self.maintenance.lock().await;
        let db = &target.database;
        let raw = target.storage_table(table);
        let sealed = target.sealed_table(table);
        let time = table.time_column();
        let keys = table.key_columns().join(", ");
        let columns = column_list(table);
        let watermark = self.server_now(table).await? - SETTLE;
        // Read before the copy begins: an insert committed after this takes a higher number.
        let block = self.raw_block(target, table, day).await?;
        let generation = now_ns().max(1) as u64;
        let copy = format!(
            "INSERT INTO {db}.{sealed} ({columns}, generation, crossday) \
             SELECT {columns}, {generation}, ({keys}) IN (SELECT {keys} FROM {db}.{raw} \
             WHERE intDiv({time}, {NANOS_PER_DAY}) IN ({before}, {after})) \
             FROM {db}.{raw} WHERE intDiv({time}, {NANOS_PER_DAY}) = {day} \
             ORDER BY {versions} LIMIT 1 BY {keys}",
            before = day - 1,
            after = day + 1,
            versions = table
                .version_order()
                .iter()
                .map(|c| format!("{c} DESC"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        self.client
            .query(&copy)
            .with_setting("max_bytes_before_external_sort", EXTERNAL_SORT_BYTES)
            .with_setting("max_execution_time", COPY_TIMEOUT_SECS)
            .execute()
            .await
            .map_err(|e| classify(table, e))?;
        let (rows, crossday_rows): (u64, u64) = self
            .client
            .query(&format!(
                "SELECT count(), countIf(crossday = 1) FROM {db}.{sealed} WHERE generation = ?"
            ))
            .bind(generation)
            .fetch_one()
            .await
            .map_err(|e| classify(table, e))?;
        self.client
            .query(&format!(
                "INSERT INTO {db}.{SEALS_TABLE} (table_name, day, generation, watermark, rows, crossday_rows, sealed_at, {SEAL_BLOCK}) \
                 VALUES (?, ?, ?, toDateTime(?), ?, ?, now(), ?)"
            ))
            .bind(table.name())
            .bind(day)
            .bind(generation)
            .bind(watermark)
            .bind(rows)
            .bind(crossday_rows)
            .bind(block)
            .execute()
            .await
            .map_err(|e| classify(table, e))?;
        Ok(rows)
    }

    /// The highest block number among the active parts of `table`'s raw `day`. Every insert
    /// takes a number above all before it (the part becomes visible as it takes it), and merges
    /// and mutations keep the numbers they cover.
    async fn raw_block(&self, target: &Target, table: Table, day: i64) -> Result<i64, SinkError> {
        self.client
            .query(
                "SELECT toInt64(max(max_block_number)) FROM system.parts \
                 WHERE database = ? AND table = ? AND partition_id = ? AND active",
            )
            .bind(&target.database)
            .bind(target.storage_table(table))
            .bind(day.to_string())
            .fetch_one()
            .await
            .map_err(|e| classify(table, e))
    }

    /// Each day of `table` with rows, and when a row was last inserted into it (s).
    async fn days(&self, target: &Target, table: Table) -> Result<Vec<(i64, i64)>, SinkError> {
        let sql = format!(
            "SELECT intDiv({time}, {NANOS_PER_DAY}) AS day, toInt64(toUInt32(max({INSERTED_AT}))) \
             FROM {db}.{raw} GROUP BY day ORDER BY day",
            time = table.time_column(),
            db = target.database,
            raw = target.storage_table(table),
        );
        self.client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(|e| classify(table, e))
    }

    /// The recorded seals of `table`: the newest per day.
    async fn recorded(
        &self,
        target: &Target,
        table: Table,
    ) -> Result<Vec<(i64, Recorded)>, SinkError> {
        let sql = format!(
            "SELECT day, max(generation), toInt64(toUInt32(argMax(watermark, generation))), \
             toInt64(toUInt32(argMax(sealed_at, generation))), argMax({SEAL_BLOCK}, generation) \
             FROM {}.{SEALS_TABLE} WHERE table_name = ? GROUP BY day",
            target.database
        );
        let rows: Vec<(i64, u64, i64, i64, i64)> = self
            .client
            .query(&sql)
            .bind(table.name())
            .fetch_all()
            .await
            .map_err(|e| classify(table, e))?;
        Ok(rows
            .into_iter()
            .map(|(day, generation, watermark, sealed_at, block)| {
                (
                    day,
                    Recorded {
                        generation,
                        watermark,
                        sealed_at,
                        block,
                    },
                )
            })
            .collect())
    }

    /// Drops the generations of `table` that a newer seal superseded `grace` ago, and copies
    /// that were never recorded and are long abandoned.
    async fn drop_superseded(
        &self,
        target: &Target,
        table: Table,
        recorded: &[(i64, Recorded)],
        grace: Duration,
    ) -> Result<usize, SinkError> {
        let sealed = target.sealed_table(table);
        let partitions: Vec<String> = self
            .client
            .query(
                "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active",
            )
            .bind(&target.database)
            .bind(&sealed)
            .fetch_all()
            .await
            .map_err(|e| classify(table, e))?;
        let now = self.server_now(table).await?;
        let mut dropped = BTreeSet::new();
        for partition in partitions {
            let Some((hour, generation)) = sealed_partition(&partition) else {
                continue;
            };
            let day = hour.div_euclid(HOURS_PER_DAY);
            let doomed = match recorded.iter().find(|(d, _)| *d == day) {
                Some((_, current)) if current.generation == generation => false,
                Some((_, current)) if generation < current.generation => {
                    current.sealed_at + grace.as_secs() as i64 <= now
                }
                _ => (generation as i64) < now_ns() - ABANDONED_AFTER_NS,
            };
            if doomed {
                let _maintenance = self.maintenance.lock().await;
                self.client
                    .query(&format!(
                        "ALTER TABLE {}.{sealed} DROP PARTITION ({hour}, {generation})",
                        target.database
                    ))
                    .execute()
                    .await
                    .map_err(|e| classify(table, e))?;
                dropped.insert((day, generation));
            }
        }
        Ok(dropped.len())
    }

    /// The server's clock, in seconds.
    async fn server_now(&self, table: Table) -> Result<i64, SinkError> {
        self.client
            .query("SELECT toInt64(toUInt32(now()))")
            .fetch_one()
            .await
            .map_err(|e| classify(table, e))
    }
}

/// Hours in a (UTC) day.
pub(super) const HOURS_PER_DAY: i64 = 24;

/// The (hour, generation) of a sealed table's partition as `system.parts` writes it:
/// `(472416,1764892800000000000)`.
pub(super) fn sealed_partition(partition: &str) -> Option<(i64, u64)> {
    let (day, generation) = partition
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?
        .split_once(',')?;
    Some((day.trim().parse().ok()?, generation.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sealed_partitions() {
        assert_eq!(
            sealed_partition("(472416,1764892800000000000)"),
            Some((472_416, 1_764_892_800_000_000_000))
        );
        assert_eq!(sealed_partition("19684"), None);
        assert_eq!(sealed_partition("(a,1)"), None);
    }
}
