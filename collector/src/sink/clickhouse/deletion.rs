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
use crate::sink::{DELETION_ORDER, DeletedRows, Deleter, Doomed, SinkError};

/// How long a deletion waits for its mutations before giving up (it can be run again).
const MUTATION_TIMEOUT: Duration = Duration::from_secs(600);

/// Keys written into one mutation on replicated tables: about 60 kB of SQL, well under the
/// server's 256 kB `max_query_size`.
const KEYS_PER_MUTATION: usize = 1000;

#[async_trait]
impl Deleter for ClickHouseSink {
    async fn delete(&self, doomed: &Doomed, dry_run: bool) -> Result<DeletedRows, SinkError> {
        let _maintenance = self.maintenance.lock().await;
        let mut deleted = DeletedRows::default();
        for shard in self.shards().await? {
            let (counted, mutations) = shard.first.delete(doomed, dry_run).await?;
            deleted += counted;
            // The mutations reach the other replicas through ZooKeeper: the deletion is done
            // once every replica that answers holds none of the keys (one that is down applies
            // them when it comes back, in the order of the shard's log).
            for replica in &shard.others {
                replica.wait_until_gone(&mutations).await?;
            }
        }
        Ok(deleted)
    }

    async fn drop_days_before(&self, day: i64, dry_run: bool) -> Result<DeletedRows, SinkError> {
        let _maintenance = self.maintenance.lock().await;
        let mut dropped = DeletedRows::default();
        for shard in self.shards().await? {
            dropped += shard.first.drop_days_before(day, dry_run).await?;
            if !dry_run {
                for replica in &shard.others {
                    replica.wait_until_dropped(day).await?;
                }
            }
        }
        Ok(dropped)
    }
}

/// The servers holding one shard's rows: the first that answered deletes, the others are its
/// replicas (none unless the tables are replicated).
struct Shard {
    first: Node,
    others: Vec<Node>,
}

impl ClickHouseSink {
    fn nodes(&self) -> Vec<Node> {
        let target = self.config.target();
        self.config
            .migration_nodes()
            .iter()
            .map(|url| Node {
                url: url.clone(),
                client: self.config.client_for(url),
                target: target.clone(),
            })
            .collect()
    }

    /// The nodes by shard. Without replication every node is a shard of its own and must
    /// answer. With replication a shard is the nodes whose `{shard}` macro is the same, a node
    /// that does not answer is left out, and every shard of the cluster must keep one that
    /// does.
    async fn shards(&self) -> Result<Vec<Shard>, SinkError> {
        let nodes = self.nodes();
        if self.config.target().replication.is_none() {
            return Ok(nodes
                .into_iter()
                .map(|first| Shard {
                    first,
                    others: Vec::new(),
                })
                .collect());
        }
        let mut shards: Vec<(String, Shard)> = Vec::new();
        let mut away = Vec::new();
        let mut cluster_shards = None;
        for node in nodes {
            let answer = node
                .client
                .query("SELECT substitution FROM system.macros WHERE macro = 'shard'")
                .fetch_one::<String>()
                .await;
            let name = match answer {
                Ok(name) => name,
                Err(e) if vigil_schemas::clickhouse::is_transient(&e) => {
                    away.push(node.url);
                    continue;
                }
                Err(e) => return Err(classify(Table::Runs, e)),
            };
            if cluster_shards.is_none() {
                cluster_shards = Some(
                    node.client
                        .query("SELECT uniqExact(shard_num) FROM system.clusters WHERE cluster = ?")
                        .bind(self.config.cluster.as_deref().unwrap_or_default())
                        .fetch_one::<u64>()
                        .await
                        .map_err(|e| classify(Table::Runs, e))?,
                );
            }
            match shards.iter_mut().find(|(shard, _)| *shard == name) {
                Some((_, shard)) => shard.others.push(node),
                None => shards.push((
                    name,
                    Shard {
                        first: node,
                        others: Vec::new(),
                    },
                )),
            }
        }
        if cluster_shards.is_none_or(|n| (shards.len() as u64) < n) {
            return Err(SinkError::Unavailable(format!(
                "a shard has no replica answering ({} did not answer): nothing was deleted",
                away.join(", ")
            )));
        }
        Ok(shards.into_iter().map(|(_, shard)| shard).collect())
    }
}

/// One server, and the names of its storage tables.
struct Node {
    url: String,
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

    /// Deletes the doomed traces from this node's tables: the rows counted, and the mutations
    /// run (none for a dry run).
    async fn delete(
        &self,
        doomed: &Doomed,
        dry_run: bool,
    ) -> Result<(DeletedRows, Vec<Mutation>), SinkError> {
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
    ) -> Result<(DeletedRows, Vec<Mutation>), SinkError> {
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
            return Ok((counted, Vec::new()));
        }
        let mutations = self.mutations(scratch, &of_doomed).await?;
        for table in DELETION_ORDER {
            for name in self.stored_in(table).await? {
                for Mutation { condition, values } in &mutations {
                    self.execute(
                        table,
                        &format!("ALTER TABLE {name} DELETE WHERE {condition}"),
                        values,
                    )
                    .await?;
                }
                self.wait_for_mutations(table).await?;
                if self.target.replication.is_some() {
                    // A replica takes a mutation into its queue from ZooKeeper a moment after
                    // the ALTER answered: the rows, not `system.mutations`, tell.
                    self.wait_until_gone_from(table, &mutations).await?;
                }
                let left = self.count_in(table, &name, &of_doomed).await?;
                if left > 0 {
                    return Err(SinkError::Internal(format!(
                        "{name}: {left} rows of the deleted traces are still there after the mutation finished"
                    )));
                }
            }
        }
        Ok((counted, mutations))
    }

    /// Waits until this node's storage tables hold no row that `mutations` delete.
    async fn wait_until_gone(&self, mutations: &[Mutation]) -> Result<(), SinkError> {
        for table in DELETION_ORDER {
            self.wait_until_gone_from(table, mutations).await?;
        }
        Ok(())
    }

    /// Waits until this node's storage table of `table` holds no row that `mutations` delete.
    async fn wait_until_gone_from(
        &self,
        table: Table,
        mutations: &[Mutation],
    ) -> Result<(), SinkError> {
        let deadline = tokio::time::Instant::now() + MUTATION_TIMEOUT;
        for Mutation { condition, values } in mutations {
            let sql = format!(
                "SELECT count() FROM {} WHERE {condition}",
                self.table(table)
            );
            loop {
                let mut query = self.client.query(&sql);
                for value in values {
                    query = value.bind(query);
                }
                let left: u64 = query.fetch_one().await.map_err(|e| classify(table, e))?;
                if left == 0 {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(SinkError::Unavailable(format!(
                        "{}: {left} rows of the deleted traces still on {} after {MUTATION_TIMEOUT:?}",
                        self.table(table),
                        self.url
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The conditions of the `DELETE` mutations that remove the traces in `scratch`: one that
    /// reads it, or on replicated tables, whose replicas each run a mutation themselves and
    /// have no copy of this node's scratch table, the keys themselves, a chunk per mutation.
    async fn mutations(&self, scratch: &str, of_doomed: &str) -> Result<Vec<Mutation>, SinkError> {
        if self.target.replication.is_none() {
            return Ok(vec![Mutation {
                condition: of_doomed.to_string(),
                values: Vec::new(),
            }]);
        }
        let keys: Vec<(String, String)> = self
            .client
            .query(&format!(
                "SELECT project_id, trace_id FROM {scratch} ORDER BY project_id, trace_id"
            ))
            .fetch_all()
            .await
            .map_err(|e| classify(Table::Runs, e))?;
        // By project, then by trace: `IN` over one column (a one-element list of tuples would
        // read as a tuple of scalars).
        Ok(keys
            .chunk_by(|a, b| a.0 == b.0)
            .flat_map(|project| project.chunks(KEYS_PER_MUTATION))
            .map(|chunk| {
                let marks = vec!["?"; chunk.len()].join(", ");
                let values = std::iter::once(Value::Text(chunk[0].0.clone()))
                    .chain(chunk.iter().map(|(_, trace)| Value::Text(trace.clone())))
                    .collect();
                Mutation {
                    condition: format!("project_id = ? AND trace_id IN ({marks})"),
                    values,
                }
            })
            .collect())
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
            query = value.bind(query);
        }
        query.execute().await.map_err(|e| classify(table, e))
    }

    /// Waits until no mutation of `table` (or of its sealed copy) is left to do on this node
    /// (on a replicated table, `is_done` is the shard's: its parts to do are this replica's).
    async fn wait_for_mutations(&self, table: Table) -> Result<(), SinkError> {
        let deadline = tokio::time::Instant::now() + MUTATION_TIMEOUT;
        loop {
            let pending = self
                .client
                .query(
                    "SELECT count() FROM system.mutations WHERE database = ? AND table IN (?, ?) AND (is_done = 0 OR parts_to_do > 0)",
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

    /// Waits until this replica has dropped the days before `before` too (the drop reaches it
    /// through ZooKeeper).
    async fn wait_until_dropped(&self, before: i64) -> Result<(), SinkError> {
        let deadline = tokio::time::Instant::now() + MUTATION_TIMEOUT;
        while self.drop_days_before(before, true).await?.total() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return Err(SinkError::Unavailable(format!(
                    "{}: days before {before} still there after {MUTATION_TIMEOUT:?}",
                    self.url
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
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

impl Value {
    fn bind(&self, query: clickhouse::query::Query) -> clickhouse::query::Query {
        match self {
            Value::Text(text) => query.bind(text),
            Value::Int(n) => query.bind(n),
        }
    }
}

/// One `DELETE` mutation: its condition, with `?` for its values.
struct Mutation {
    condition: String,
    values: Vec<Value>,
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
