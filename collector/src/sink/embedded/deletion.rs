//! [`Deleter`] for the embedded store. Parquet files are immutable, so a deletion rewrites
//! every file holding a doomed trace without it: the new file is written under a temporary
//! name, fsync'd, and renamed over the old one (an atomic replace: a reader sees the old file or
//! the new one, never a mix), then the directory is fsync'd. A file left with no row is
//! removed. Compaction is held off meanwhile, so it cannot bring back rows it read before. The
//! runs go last ([`DELETION_ORDER`]): a deletion cut short is finished by running it again.
//! Retention's whole-day drops remove the day's directory.

use std::{
    collections::{HashMap, HashSet},
    fs,
    sync::Arc,
};

use async_trait::async_trait;
use datafusion::{
    arrow::{
        array::{Array, BooleanArray, Int64Array, RecordBatch, StringArray},
        compute::filter_record_batch,
    },
    parquet::file::reader::{FileReader, SerializedFileReader},
};
use vigil_schemas::{
    layout::{FRESH_FILE_PREFIX, Table},
    time::day_of,
};

use super::{
    DataFile, EmbeddedSink, FileUse, Store, conform, hours::segments, open_reader, read_file,
    sync_dir,
};
use crate::sink::{DELETION_ORDER, DeletedRows, Deleter, Doomed, SinkError};

/// Project id → trace ids.
type Traces = HashMap<String, HashSet<String>>;

#[async_trait]
impl Deleter for EmbeddedSink {
    async fn delete(&self, doomed: &Doomed, dry_run: bool) -> Result<DeletedRows, SinkError> {
        let (store, doomed) = (Arc::clone(&self.store), doomed.clone());
        tokio::task::spawn_blocking(move || store.delete(&doomed, dry_run))
            .await
            .map_err(|e| SinkError::Internal(format!("deletion task failed: {e}")))?
    }

    async fn drop_days_before(&self, day: i64, dry_run: bool) -> Result<DeletedRows, SinkError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.drop_days_before(day, dry_run))
            .await
            .map_err(|e| SinkError::Internal(format!("deletion task failed: {e}")))?
    }
}

impl Store {
    fn delete(&self, doomed: &Doomed, dry_run: bool) -> Result<DeletedRows, SinkError> {
        let _no_compaction = self.compacting.lock();
        let traces = self.doomed_traces(doomed)?;
        let mut deleted = DeletedRows::default();
        if traces.is_empty() {
            return Ok(deleted);
        }
        for table in DELETION_ORDER {
            for (day, dir) in self.partitions(table)? {
                let mut changed = false;
                for file in self.data_files(&dir)? {
                    let removed = self.rewrite_without(table, day, &file, &traces, dry_run)?;
                    changed |= removed > 0;
                    deleted.add(table, removed);
                }
                if changed && !dry_run {
                    sync_dir(&dir)?;
                }
            }
        }
        Ok(deleted)
    }

    /// The traces with a run, in any stored version, that `doomed` picks.
    fn doomed_traces(&self, doomed: &Doomed) -> Result<Traces, SinkError> {
        // Nothing started on or after the latest cutoff has expired, nor before `from_ns`.
        let (first_day, last_day) = match doomed {
            Doomed::User { .. } => (None, None),
            Doomed::Expired(cutoffs) => match cutoffs.latest() {
                Some(latest) => (cutoffs.from_ns.map(day_of), Some(day_of(latest))),
                None => return Ok(Traces::new()),
            },
        };
        let mut traces = Traces::new();
        for (day, dir) in self.partitions(Table::Runs)? {
            if last_day.is_some_and(|last| day > last) || first_day.is_some_and(|f| day < f) {
                continue;
            }
            for file in self.data_files(&dir)? {
                for batch in read_file(Table::Runs, &file.path)? {
                    let text = |name| strings(&batch, name);
                    let (projects, ids) = (text("project_id")?, text("trace_id")?);
                    let (users, policies) = (text("user_hash")?, text("retention")?);
                    let starts = batch
                        .column_by_name("start_time_ns")
                        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                        .ok_or_else(|| corrupt(&file, "start_time_ns is not Int64"))?;
                    for i in 0..batch.num_rows() {
                        let (project, user) = (projects.value(i), users.value(i));
                        if doomed.picks(project, user, policies.value(i), starts.value(i)) {
                            traces
                                .entry(project.to_string())
                                .or_default()
                                .insert(ids.value(i).to_string());
                        }
                    }
                }
            }
        }
        Ok(traces)
    }

    /// Rewrites `file` without the rows of `traces`; returns how many rows went (or would go).
    /// The file's runs of row groups stay apart (a sealed file's hours, [`segments`]).
    fn rewrite_without(
        &self,
        table: Table,
        day: i64,
        file: &DataFile,
        traces: &Traces,
        dry_run: bool,
    ) -> Result<u64, SinkError> {
        let mut removed = 0;
        let mut kept: Vec<Vec<RecordBatch>> = Vec::new();
        let corrupt = SinkError::corrupt(&file.path);
        for row_groups in segments(table, &file.path)? {
            let mut segment = Vec::new();
            for batch in open_reader(&file.path, None, 64 * 1024, Some(row_groups.collect()))? {
                let batch = batch.map_err(|e| corrupt(e.to_string()))?;
                let batch = conform(table, &batch).map_err(&corrupt)?;
                let (projects, ids) =
                    (strings(&batch, "project_id")?, strings(&batch, "trace_id")?);
                let keep: BooleanArray = (0..batch.num_rows())
                    .map(|i| {
                        let doomed = traces
                            .get(projects.value(i))
                            .is_some_and(|ids_of| ids_of.contains(ids.value(i)));
                        Some(!doomed)
                    })
                    .collect();
                removed += (batch.num_rows() - keep.true_count()) as u64;
                segment.push(
                    filter_record_batch(&batch, &keep)
                        .map_err(|source| SinkError::Encode { table, source })?,
                );
            }
            kept.push(segment);
        }
        if removed == 0 || dry_run {
            return Ok(removed);
        }
        if kept.iter().flatten().all(|batch| batch.num_rows() == 0) {
            fs::remove_file(&file.path).map_err(SinkError::io(&file.path))?;
            return Ok(removed);
        }
        let mut output = self.create_temp(table, day, FRESH_FILE_PREFIX, FileUse::Stored)?;
        for segment in &kept {
            for batch in segment {
                output.write(batch)?;
            }
            output.flush()?;
        }
        let output = output.finish()?;
        if let Err(e) = fs::rename(&output.tmp, &file.path) {
            let _ = fs::remove_file(&output.tmp);
            return Err(SinkError::io(&file.path)(e));
        }
        Ok(removed)
    }

    fn drop_days_before(&self, before: i64, dry_run: bool) -> Result<DeletedRows, SinkError> {
        let _no_compaction = self.compacting.lock();
        let mut dropped = DeletedRows::default();
        for table in Table::ALL {
            let mut changed = false;
            for (day, dir) in self.partitions(table)? {
                if day >= before {
                    continue;
                }
                for file in self.data_files(&dir)? {
                    dropped.add(table, row_count(&file)?);
                }
                if !dry_run {
                    fs::remove_dir_all(&dir).map_err(SinkError::io(&dir))?;
                    changed = true;
                }
            }
            if changed {
                sync_dir(&self.layout.table_dir(table))?;
            }
        }
        Ok(dropped)
    }
}

/// A file's row count, from its footer.
fn row_count(file: &DataFile) -> Result<u64, SinkError> {
    let handle = fs::File::open(&file.path).map_err(SinkError::io(&file.path))?;
    let reader = SerializedFileReader::new(handle).map_err(SinkError::parquet(&file.path))?;
    Ok(reader.metadata().file_metadata().num_rows().max(0) as u64)
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, SinkError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| SinkError::Internal(format!("column {name} is not text")))
}

fn corrupt(file: &DataFile, message: &str) -> SinkError {
    SinkError::Corrupt {
        path: file.path.clone(),
        message: message.to_string(),
    }
}
