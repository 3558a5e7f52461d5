//! [`Deleter`] for ClickHouse, run on every node's storage tables (a trace's rows share a
//! shard, so each node deletes its own).
//!
//! The doomed traces are first written to a scratch table (`vigil_doomed_<id>`, `TinyLog`), so
//! every later step sees the same set even while rows disappear: counted, then deleted with one
//! `ALTER TABLE … DELETE` mutation per table (spans and scores first, runs last), each waited
//! on in `system.mutations` and verified by counting again. The scratch table is dropped at
//! the end, whatever happened. Whole days go with `ALTER TABLE … DROP PARTITION`. Sealed days
//! (`seal.rs`) are copies: each deletion runs on a table's sealed copy too, under the lock a
//! seal's copy holds.

use std::time::Duration;

use async_trait::async_trait;
use clickhouse::Client;
use vigil_schemas::{clickhouse::schema::Target, layout::Table, time::now_ns};

use super::{
    ClickHouseSink, classify,
    seal::{HOURS_PER_DAY, sealed_partition},
};
use crate::sink::{DeletedRows, Deleter, Doomed, SinkError};

/// How long a deletion waits for its mutations before giving up (it can be run again).
const MUTATION_TIMEOUT: Duration = Duration::from_secs(600);

/// Spans and scores first: the runs are what picks the traces.
const DELETION_ORDER: [Table; 3] = [Table::Spans, Table::Scores, Table::Runs];

#[async_trait]
impl Deleter for ClickHouseSink {
    async fn delete(&self, doomed: &Doomed, dry_run: bool) -> Result<DeletedRows, SinkError> {
        let _maintenance = self.maintenance.lock().await;
        let mut deleted = DeletedRows::default();
        for node in self.nodes() {
            deleted += node.delete(doomed, dry_run).await?;
        }
        Ok(deleted)
    }

    async fn drop_days_before(&self, day: i64, dry_run: bool) -> Result<DeletedRows, SinkError> {
        let _maintenance = self.maintenance.lock().await;
        let mut dropped = DeletedRows::default();
        for node in self.nodes() {
            dropped += node.drop_days_before(day, dry_run).await?;
        }
        Ok(dropped)
    }
}

impl ClickHouseSink {
    fn nodes(&self) -> Vec<Node> {
        let target = Target {
            database: self.config.database.clone(),
            cluster: self.config.cluster.clone(),
        };
        self.config
            .migration_nodes()
            .iter()
            .map(|url| Node {
                client: self.config.client_for(url),
                target: target.clone(),
            })
            .collect()
    }
}

/// One server, and the names of its storage tables.
struct Node {
    client: Client,
    target: Target,
}

impl Node {
    fn table(&self, table: Table) -> String {
        format!(
            "{}.{}",
            self.target.database,
            self.target.storage_table(table)
        )
    }

    async fn delete(&self, doomed: &Doomed, dry_run: bool) -> Result<DeletedRows, SinkError> {
        let scratch = format!(
            "{}.vigil_doomed_{}_{}",
            self.target.database,
            now_ns().max(0),
            rand::random::<u32>()
        );
        self.execute(
            Table::Runs,
            &format!(
                "CREATE TABLE {scratch} (project_id String, trace_id String) ENGINE = TinyLog"
            ),
            &[],
        )
        .await?;
        let result = self.delete_using(&scratch, doomed, dry_run).await;
        let dropped = self
            .execute(Table::Runs, &format!("DROP TABLE IF EXISTS {scratch}"), &[])
            .await;
        let deleted = result?;
        dropped?;
        Ok(deleted)
    }

    async fn delete_using(
        &self,
        scratch: &str,
        doomed: &Doomed,
        dry_run: bool,
    ) -> Result<DeletedRows, SinkError> {
        let (condition, values) = condition(doomed);
        let runs = self.table(Table::Runs);
        self.execute(
            Table::Runs,
            &format!(
                "INSERT INTO {scratch} SELECT DISTINCT project_id, trace_id FROM {runs} WHERE {condition}"
            ),
            &values,
        )
        .await?;
        let of_doomed =
            format!("(project_id, trace_id) IN (SELECT project_id, trace_id FROM {scratch})");
        let mut counted = DeletedRows::default();
        for table in Table::ALL {
            counted.add(table, self.count(table, &of_doomed).await?);
        }
        if dry_run {
            return Ok(counted);
        }
        for table in DELETION_ORDER {
            for name in self.stored_in(table).await? {
                self.execute(
                    table,
                    &format!("ALTER TABLE {name} DELETE WHERE {of_doomed}"),
                    &[],
                )
                .await?;
                self.wait_for_mutations(table).await?;
                let left = self.count_in(table, &name, &of_doomed).await?;
                if left > 0 {
                    return Err(SinkError::Internal(format!(
                        "{name}: {left} rows of the deleted traces are still there after the mutation finished"
                    )));
                }
            }
        }
        Ok(counted)
    }

    /// The tables that hold `table`'s rows on this node: the storage table, and its sealed
    /// copy once the migrations created it.
    async fn stored_in(&self, table: Table) -> Result<Vec<String>, SinkError> {
        let sealed = self.target.sealed_table(table);
        let exists: u64 = self
            .client
            .query("SELECT count() FROM system.tables WHERE database = ? AND name = ?")
            .bind(&self.target.database)
            .bind(&sealed)
            .fetch_one()
            .await
            .map_err(|e| classify(table, e))?;
        let mut names = vec![self.table(table)];
        if exists > 0 {
            names.push(format!("{}.{sealed}", self.target.database));
        }
        Ok(names)
    }

    async fn count(&self, table: Table, condition: &str) -> Result<u64, SinkError> {
        self.count_in(table, &self.table(table), condition).await
    }

    async fn count_in(&self, table: Table, name: &str, condition: &str) -> Result<u64, SinkError> {
        let sql = format!("SELECT count() FROM {name} WHERE {condition}");
        self.client
            .query(&sql)
            .fetch_one::<u64>()
            .await
            .map_err(|e| classify(table, e))
    }

    async fn execute(&self, table: Table, sql: &str, values: &[Value]) -> Result<(), SinkError> {
        let mut query = self.client.query(sql);
        for value in values {
            query = match value {
                Value::Text(text) => query.bind(text),
                Value::Int(n) => query.bind(n),
            };
        }
        query.execute().await.map_err(|e| classify(table, e))
    }

    /// Waits until no mutation of `table` (or of its sealed copy) is left to do.
    async fn wait_for_mutations(&self, table: Table) -> Result<(), SinkError> {
        let deadline = tokio::time::Instant::now() + MUTATION_TIMEOUT;
        loop {
            let pending = self
                .client
                .query(
                    "SELECT count() FROM system.mutations WHERE database = ? AND table IN (?, ?) AND is_done = 0",
                )
                .bind(&self.target.database)
                .bind(self.target.storage_table(table))
                .bind(self.target.sealed_table(table))
                .fetch_one::<u64>()
                .await
                .map_err(|e| classify(table, e))?;
            if pending == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SinkError::Unavailable(format!(
                    "{}: {pending} mutations still running after {MUTATION_TIMEOUT:?}",
                    self.table(table)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn drop_days_before(&self, before: i64, dry_run: bool) -> Result<DeletedRows, SinkError> {
        let mut dropped = DeletedRows::default();
        for table in Table::ALL {
            for (name, partition, rows) in self.partitions(table).await? {
                // The raw tables' partition key is the day number, the sealed tables' (hour,
                // generation) (schema.rs); anything else is not ours.
                let sealed = sealed_partition(&partition);
                let day = match sealed {
                    Some((hour, _)) => hour.div_euclid(HOURS_PER_DAY),
                    None => match partition.trim_matches('\'').parse::<i64>() {
                        Ok(day) => day,
                        Err(_) => continue,
                    },
                };
                if day >= before {
                    continue;
                }
                // The sealed rows are copies of raw ones: counted once.
                if sealed.is_none() {
                    dropped.add(table, rows);
                }
                if !dry_run {
                    let sql = format!("ALTER TABLE {name} DROP PARTITION {partition}");
                    self.execute(table, &sql, &[]).await?;
                }
            }
        }
        Ok(dropped)
    }

    /// The active partitions of `table`'s tables on this node: (table, partition, rows).
    async fn partitions(&self, table: Table) -> Result<Vec<(String, String, u64)>, SinkError> {
        let mut all = Vec::new();
        for name in self.stored_in(table).await? {
            let (_, bare) = name.split_once('.').unwrap_or(("", &name));
            let partitions = self
                .client
                .query(
                    "SELECT partition, sum(rows) FROM system.parts WHERE database = ? AND table = ? AND active GROUP BY partition",
                )
                .bind(&self.target.database)
                .bind(bare)
                .fetch_all::<(String, u64)>()
                .await
                .map_err(|e| classify(table, e))?;
            all.extend(
                partitions
                    .into_iter()
                    .map(|(partition, rows)| (name.clone(), partition, rows)),
            );
        }
        Ok(all)
    }
}

/// A bound value of a condition.
enum Value {
    Text(String),
    Int(i64),
}

/// The runs a deletion picks, as a condition on the runs table with `?` placeholders.
fn condition(doomed: &Doomed) -> (String, Vec<Value>) {
    match doomed {
        Doomed::User {
            project_id,
            user_hash,
        } => (
            "project_id = ? AND user_hash = ?".into(),
            vec![
                Value::Text(project_id.clone()),
                Value::Text(user_hash.clone()),
            ],
        ),
        Doomed::Expired(cutoffs) => {
            let mut clauses = Vec::new();
            let mut values = Vec::new();
            for (name, cutoff) in &cutoffs.named {
                if let Some(cutoff) = cutoff {
                    clauses.push("(retention = ? AND start_time_ns < ?)".to_string());
                    values.push(Value::Text(name.clone()));
                    values.push(Value::Int(*cutoff));
                }
            }
            if let Some(cutoff) = cutoffs.default {
                if cutoffs.named.is_empty() {
                    clauses.push("(start_time_ns < ?)".into());
                } else {
                    let marks = vec!["?"; cutoffs.named.len()].join(", ");
                    clauses.push(format!(
                        "(retention NOT IN ({marks}) AND start_time_ns < ?)"
                    ));
                    values.extend(cutoffs.named.iter().map(|(n, _)| Value::Text(n.clone())));
                }
                values.push(Value::Int(cutoff));
            }
            if clauses.is_empty() {
                return ("0".into(), Vec::new());
            }
            let mut condition = format!("({})", clauses.join(" OR "));
            if let Some(from) = cutoffs.from_ns {
                condition.push_str(" AND start_time_ns >= ?");
                values.push(Value::Int(from));
            }
            (condition, values)
        }
    }
}
