//! The embedded store's writer: Parquet files under the data directory, one directory per table
//! and day (the layout is [`EmbeddedLayout`], shared with the reader in `vigil-query`).
//!
//! **Writes.** Each [`Sink::write`] puts the batch's rows of one (table, day) into one new file,
//! `store/<table>/day=YYYY-MM-DD/part-<unix-ns>-<seq>.parquet`, sorted by key then newest version
//! first, with the versions of one key collapsed to the newest. A file is written as
//! `*.parquet.tmp`, fsync'd, renamed, and its directory fsync'd: readers only ever list finished
//! files, and `Ok` means the rows survive a crash. A crash mid-write leaves a `.tmp` file that
//! readers ignore and [`EmbeddedSink::open`] removes; the batcher writes the batch again.
//!
//! **Compaction.** Frequent small writes make many small files. [`EmbeddedSink::compact_once`]
//! merges, per partition holding at least `min_files` files smaller than `small_file_bytes`,
//! the smallest of them (up to `max_merge_bytes`) into one file that keeps one row per key (the
//! newest version, by [`Table::version_order`]). The merged inputs are deleted `grace` later, so
//! that queries already planned over them finish; meanwhile both the inputs and the output exist,
//! which the read-side dedupe makes harmless. Crash safety, in order: the output is written as
//! `.tmp` and fsync'd; a record naming output and inputs is written to `store/_compaction/`; the
//! output is renamed into place; after the grace period the inputs and then the record are
//! deleted. On open, a record whose output exists schedules its inputs' deletion again; one whose
//! output does not is dropped. At every point the rows are in the inputs, the output, or both.
//!
//! **Sealing.** Once a partition's day has been over for `seal_after` and its newest fresh file
//! is that old too, the pass merges the partition's sealed file (if any) and all its fresh files
//! into a new sealed file: one version per key, by hour then key ([`hours`]), read by queries
//! without de-duplication (see `vigil_schemas::layout`). It is published like a compaction's output
//! (record, rename, inputs deleted after the grace period), so a crash at any point leaves every
//! row readable, exactly once: the new sealed file supersedes the old one by its name, and
//! fresh files still present are de-duplicated against it. A version written to a sealed day
//! later lands in a fresh file, is read exactly (newest wins), and is sealed in turn once it has
//! settled for `seal_after`. Merges stream ([`merge`]): memory does not grow with the day.

use std::{
    cmp::Ordering as CmpOrdering,
    collections::{BTreeMap, HashSet},
    fs::{self, File},
    io,
    path::{Component, Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;
use datafusion::{
    arrow::{
        array::{BooleanArray, RecordBatch, StringArray},
        compute::{filter_record_batch, kernels::boolean::not},
    },
    parquet::{
        arrow::{
            ArrowWriter, ProjectionMask,
            arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder},
        },
        basic::{Compression, ZstdLevel},
        file::{metadata::SortingColumn, properties::WriterProperties},
        schema::types::ColumnPath,
    },
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_schemas::{
    IngestBatch, RunRow, ScoreRow, SpanRow,
    arrow::{runs_to_batch, scores_to_batch, spans_to_batch},
    layout::{
        CROSS_DAY_FILE_PREFIX, DATA_FILE_EXTENSION, EmbeddedLayout, FRESH_FILE_PREFIX,
        PartitionFiles, SEALED_FILE_PREFIX, TEMP_FILE_SUFFIX, Table, is_data_file,
        parse_partition_dir_name, partition_day,
    },
    time::{NANOS_PER_DAY, now_ns},
};

use super::{Sink, SinkError};

mod deletion;
mod hours;
mod merge;

use hours::HourFiles;
use merge::{Merged, merge_files};

/// How the embedded sink writes and compacts.
#[derive(Debug, Clone)]
pub struct EmbeddedSinkConfig {
    /// Rows per Parquet row group (large groups compress well and keep footers small).
    pub row_group_rows: usize,
    pub compaction: CompactionConfig,
}

impl Default for EmbeddedSinkConfig {
    fn default() -> Self {
        EmbeddedSinkConfig {
            row_group_rows: 128 * 1024,
            compaction: CompactionConfig::default(),
        }
    }
}

/// When and how partitions are compacted.
#[derive(Debug, Clone)]
pub struct CompactionConfig {
    /// A partition is compacted once it holds at least this many small files (at least 2).
    pub min_files: usize,
    /// Files of this size or larger are done: never merged again.
    pub small_file_bytes: u64,
    /// Input bytes per merge, at most. A merge happens in memory (its peak is about twice the
    /// decoded size of its inputs); this bounds it. A partition with more small files is merged
    /// over several passes.
    pub max_merge_bytes: u64,
    /// Input files per merge, at most.
    pub max_merge_files: usize,
    /// How long merged files stay on disk after their replacement appeared.
    pub grace: Duration,
    /// A partition is sealed once its day has been over this long and its newest fresh file is
    /// this old.
    pub seal_after: Duration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            min_files: 8,
            small_file_bytes: 6 * 1024 * 1024,
            max_merge_bytes: 8 * 1024 * 1024,
            max_merge_files: 1024,
            grace: Duration::from_secs(120),
            seal_after: Duration::from_secs(3600),
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Partitions merged in this pass.
    pub partitions_compacted: usize,
    /// Partitions whose merge failed (logged; retried on the next pass).
    pub partitions_failed: usize,
    /// Files merged into new ones in this pass (deleted after the grace period).
    pub files_merged: usize,
    /// Files written by merges.
    pub files_written: usize,
    pub rows_read: usize,
    /// Rows in the merged files: `rows_read` minus superseded versions.
    pub rows_written: usize,
    /// Merged files whose grace period ended, deleted in this pass.
    pub files_deleted: usize,
    /// Partitions sealed in this pass (each also counted in `partitions_compacted`).
    pub partitions_sealed: usize,
}

/// The embedded store's [`Sink`]: day-partitioned Parquet files, compacted in the background.
pub struct EmbeddedSink {
    store: Arc<Store>,
}

struct Store {
    layout: EmbeddedLayout,
    config: EmbeddedSinkConfig,
    next_seq: AtomicU64,
    /// Merged inputs waiting for their grace period to end.
    pending: Mutex<Vec<PendingDeletion>>,
    /// One compaction pass at a time.
    compacting: Mutex<()>,
}

#[derive(Debug)]
struct PendingDeletion {
    record: PathBuf,
    inputs: Vec<PathBuf>,
    due: Instant,
}

/// The durable note of a compaction whose inputs are not deleted yet; paths relative to the
/// store root.
#[derive(Debug, Serialize, Deserialize)]
struct CompactionRecord {
    output: String,
    inputs: Vec<String>,
}

/// A data file written under a temporary name, not yet visible to readers.
#[derive(Debug, Default)]
struct TempFile {
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    rows: usize,
}

/// The largest page of a stored file's trace ids: the writer closes a page once its encoded ids
/// pass this size (it checks every 1,024 rows), where the default closes one at 20,000 rows.
const TRACE_ID_PAGE_BYTES: usize = 4 * 1024;

/// What a file is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileUse {
    /// A file of the store: compressed for reading many times, with a bloom filter on trace ids,
    /// fsynced when finished.
    Stored,
    /// A seal's scratch file, read back once and removed: lightly compressed, no bloom filter,
    /// never fsynced (a crash leaves it under its temporary name, removed at the next open).
    Scratch,
}

/// A data file being written under its temporary name; removed unless finished.
struct TempWriter {
    writer: Option<ArrowWriter<File>>,
    file: TempFile,
    usage: FileUse,
}

impl TempWriter {
    /// Rows written since the last row group ended.
    fn in_progress_rows(&self) -> usize {
        self.writer
            .as_ref()
            .map_or(0, ArrowWriter::in_progress_rows)
    }

    /// Ends the current row group: the next row starts a new one.
    fn flush(&mut self) -> Result<(), SinkError> {
        if let Some(writer) = &mut self.writer {
            writer.flush().map_err(SinkError::parquet(&self.file.tmp))?;
        }
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if let Some(writer) = &mut self.writer {
            writer
                .write(batch)
                .map_err(SinkError::parquet(&self.file.tmp))?;
            self.file.rows += batch.num_rows();
        }
        Ok(())
    }

    /// Closes the file and, unless it is scratch, fsyncs it, still under its temporary name.
    fn finish(mut self) -> Result<TempFile, SinkError> {
        let tmp = self.file.tmp.clone();
        let usage = self.usage;
        let closed = self
            .writer
            .take()
            .map(|writer| {
                let file = writer.into_inner().map_err(SinkError::parquet(&tmp))?;
                match usage {
                    FileUse::Stored => file.sync_all().map_err(SinkError::io(&tmp)),
                    FileUse::Scratch => Ok(()),
                }
            })
            .transpose();
        match closed {
            Ok(_) => Ok(std::mem::take(&mut self.file)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

impl Drop for TempWriter {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = fs::remove_file(&self.file.tmp);
        }
    }
}

/// A data file in a partition.
#[derive(Debug, Clone)]
struct DataFile {
    path: PathBuf,
    name: String,
    bytes: u64,
    modified: SystemTime,
}

impl EmbeddedSink {
    /// Opens (creating when missing) the store under `data_dir`, removes what a crash left half
    /// written, and takes up compactions whose inputs were not yet deleted.
    pub fn open(
        data_dir: impl AsRef<Path>,
        config: EmbeddedSinkConfig,
    ) -> Result<EmbeddedSink, SinkError> {
        let layout = EmbeddedLayout::new(data_dir);
        layout.create_dirs().map_err(SinkError::io(layout.root()))?;
        sync_dir(layout.root())?;
        if let Some(parent) = layout.root().parent() {
            sync_dir(parent)?;
        }
        let store = Store {
            layout,
            config,
            next_seq: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
            compacting: Mutex::new(()),
        };
        store.remove_temp_files()?;
        store.recover_compactions()?;
        Ok(EmbeddedSink {
            store: Arc::new(store),
        })
    }

    /// Opens the store for reading and dry runs only: nothing a crash left behind is touched
    /// (a running server may own the store and be writing it).
    pub fn inspect(data_dir: impl AsRef<Path>) -> Result<EmbeddedSink, SinkError> {
        Ok(EmbeddedSink {
            store: Arc::new(Store {
                layout: EmbeddedLayout::new(data_dir),
                config: EmbeddedSinkConfig::default(),
                next_seq: AtomicU64::new(0),
                pending: Mutex::new(Vec::new()),
                compacting: Mutex::new(()),
            }),
        })
    }

    pub fn layout(&self) -> &EmbeddedLayout {
        &self.store.layout
    }

    /// One compaction pass over every partition: deletes merged files whose grace period
    /// ended, then merges the partitions that have enough small files. A partition whose merge
    /// fails is logged, counted and left as it was.
    pub async fn compact_once(&self) -> Result<CompactionStats, SinkError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.compact())
            .await
            .map_err(|e| SinkError::Internal(format!("compaction task failed: {e}")))?
    }

    /// Runs [`Self::compact_once`] every `interval` until `shutdown` is cancelled.
    pub fn spawn_compactor(
        self: Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        super::spawn_every(interval, shutdown, move || {
            let sink = self.clone();
            async move {
                match sink.compact_once().await {
                    Ok(stats) if stats != CompactionStats::default() => tracing::info!(
                        partitions = stats.partitions_compacted,
                        failed = stats.partitions_failed,
                        files_merged = stats.files_merged,
                        rows_read = stats.rows_read,
                        rows_written = stats.rows_written,
                        files_deleted = stats.files_deleted,
                        "compaction pass done"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "compaction pass failed"),
                }
            }
        })
    }
}

#[async_trait]
impl Sink for EmbeddedSink {
    async fn write(&self, batch: Arc<IngestBatch>) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.write_batch(&batch))
            .await
            .map_err(|e| SinkError::Internal(format!("write task failed: {e}")))?
    }
}

// ---- writing ---------------------------------------------------------------------------------

/// Groups rows by partition day, each group sorted by key then newest version first, with the
/// older versions of a key dropped.
fn by_day<R>(
    rows: &[R],
    day: impl Fn(&R) -> i64,
    order: impl Fn(&R, &R) -> CmpOrdering,
    same_key: impl Fn(&R, &R) -> bool,
) -> BTreeMap<i64, Vec<&R>> {
    let mut days: BTreeMap<i64, Vec<&R>> = BTreeMap::new();
    for row in rows {
        days.entry(day(row)).or_default().push(row);
    }
    for rows in days.values_mut() {
        rows.sort_by(|a, b| order(a, b));
        rows.dedup_by(|later, earlier| same_key(later, earlier));
    }
    days
}

fn run_order(a: &RunRow, b: &RunRow) -> CmpOrdering {
    (&a.project_id, &a.trace_id)
        .cmp(&(&b.project_id, &b.trace_id))
        .then_with(|| {
            (b.ingested_at_ns, b.end_time_ns, b.start_time_ns).cmp(&(
                a.ingested_at_ns,
                a.end_time_ns,
                a.start_time_ns,
            ))
        })
}

fn span_order(a: &SpanRow, b: &SpanRow) -> CmpOrdering {
    (&a.project_id, &a.trace_id, &a.span_id)
        .cmp(&(&b.project_id, &b.trace_id, &b.span_id))
        .then_with(|| {
            (b.ingested_at_ns, b.end_time_ns, b.start_time_ns).cmp(&(
                a.ingested_at_ns,
                a.end_time_ns,
                a.start_time_ns,
            ))
        })
}

fn score_order(a: &ScoreRow, b: &ScoreRow) -> CmpOrdering {
    (&a.project_id, &a.trace_id, &a.score_id)
        .cmp(&(&b.project_id, &b.trace_id, &b.score_id))
        .then_with(|| (b.ingested_at_ns, b.time_ns).cmp(&(a.ingested_at_ns, a.time_ns)))
}

impl Store {
    fn write_batch(&self, batch: &IngestBatch) -> Result<(), SinkError> {
        let IngestBatch {
            runs,
            spans,
            scores,
        } = batch;
        let mut files = Vec::new();
        let result = (|| {
            let runs = by_day(
                runs,
                |r| partition_day(r.start_time_ns),
                run_order,
                |a, b| a.project_id == b.project_id && a.trace_id == b.trace_id,
            );
            for (day, rows) in runs {
                let batch = runs_to_batch(&rows).map_err(|source| SinkError::Encode {
                    table: Table::Runs,
                    source,
                })?;
                files.push(self.write_temp(Table::Runs, day, &batch)?);
            }
            let spans = by_day(
                spans,
                |s| partition_day(s.start_time_ns),
                span_order,
                |a, b| {
                    a.project_id == b.project_id
                        && a.trace_id == b.trace_id
                        && a.span_id == b.span_id
                },
            );
            for (day, rows) in spans {
                let batch = spans_to_batch(&rows).map_err(|source| SinkError::Encode {
                    table: Table::Spans,
                    source,
                })?;
                files.push(self.write_temp(Table::Spans, day, &batch)?);
            }
            let scores = by_day(
                scores,
                |s| partition_day(s.time_ns),
                score_order,
                |a, b| {
                    a.project_id == b.project_id
                        && a.trace_id == b.trace_id
                        && a.score_id == b.score_id
                },
            );
            for (day, rows) in scores {
                let batch = scores_to_batch(&rows).map_err(|source| SinkError::Encode {
                    table: Table::Scores,
                    source,
                })?;
                files.push(self.write_temp(Table::Scores, day, &batch)?);
            }
            Ok(())
        })();
        if let Err(e) = result {
            for file in &files {
                let _ = fs::remove_file(&file.tmp);
            }
            return Err(e);
        }
        // Every file is fsync'd under its temporary name: publish them all.
        let mut dirs = HashSet::new();
        for (i, file) in files.iter().enumerate() {
            if let Err(e) = fs::rename(&file.tmp, &file.path) {
                for rest in &files[i..] {
                    let _ = fs::remove_file(&rest.tmp);
                }
                return Err(SinkError::io(&file.path)(e));
            }
            dirs.insert(file.dir.clone());
        }
        for dir in dirs {
            sync_dir(&dir)?;
        }
        tracing::debug!(
            files = files.len(),
            rows = files.iter().map(|f| f.rows).sum::<usize>(),
            "wrote store files"
        );
        Ok(())
    }

    fn writer_properties(&self, table: Table, usage: FileUse) -> WriterProperties {
        let schema = table.schema();
        let sorting: Vec<SortingColumn> = table
            .key_columns()
            .iter()
            .filter_map(|name| schema.index_of(name).ok())
            .filter_map(|i| i32::try_from(i).ok())
            .map(|column_idx| SortingColumn {
                column_idx,
                descending: false,
                nulls_first: true,
            })
            .collect();
        let builder = WriterProperties::builder()
            .set_max_row_group_row_count(Some(self.config.row_group_rows.max(1)))
            .set_sorting_columns(Some(sorting));
        match usage {
            FileUse::Stored => builder
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                // Run look-ups filter on trace_id across every partition: a bloom filter lets
                // them skip the row groups that do not hold it…
                .set_column_bloom_filter_enabled(ColumnPath::from("trace_id"), true)
                // …and small pages of trace ids, sorted within each hour of a sealed file, let
                // the page index narrow a look-up to the pages that hold it (at the default
                // 20,000 rows a page, a look-up decoded most of a row group).
                .set_column_data_page_size_limit(ColumnPath::from("trace_id"), TRACE_ID_PAGE_BYTES)
                .build(),
            FileUse::Scratch => builder.set_compression(Compression::LZ4_RAW).build(),
        }
    }

    /// `<prefix><unix-ns>-<seq><extension>`: unique within the process, ordered by time.
    fn next_file_name(&self, prefix: &str, extension: &str) -> String {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}{:020}-{seq:06}{extension}", now_ns().max(0))
    }

    /// Creates a partition directory, making its entry durable when it is new.
    fn partition_dir(&self, table: Table, day: i64) -> Result<PathBuf, SinkError> {
        let dir = self.layout.partition_dir(table, day);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(SinkError::io(&dir))?;
            sync_dir(&self.layout.table_dir(table))?;
        }
        Ok(dir)
    }

    /// Writes `batch` (already in table order) to a new fresh file under a temporary name,
    /// fsync'd.
    fn write_temp(
        &self,
        table: Table,
        day: i64,
        batch: &RecordBatch,
    ) -> Result<TempFile, SinkError> {
        let mut writer = self.create_temp(table, day, FRESH_FILE_PREFIX, FileUse::Stored)?;
        writer.write(batch)?;
        writer.finish()
    }

    /// A new file named `<prefix>…` in a partition, under a temporary name, to write batches
    /// (in table order) to.
    fn create_temp(
        &self,
        table: Table,
        day: i64,
        prefix: &str,
        usage: FileUse,
    ) -> Result<TempWriter, SinkError> {
        let dir = self.partition_dir(table, day)?;
        let mut attempt = 0;
        let (file, name, tmp) = loop {
            let name = self.next_file_name(prefix, DATA_FILE_EXTENSION);
            let tmp = dir.join(format!("{name}{TEMP_FILE_SUFFIX}"));
            match File::options().write(true).create_new(true).open(&tmp) {
                Ok(file) => break (file, name, tmp),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => {
                    attempt += 1;
                }
                Err(e) => return Err(SinkError::io(&tmp)(e)),
            }
        };
        let writer = match ArrowWriter::try_new(
            file,
            table.schema(),
            Some(self.writer_properties(table, usage)),
        ) {
            Ok(writer) => writer,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(SinkError::parquet(&tmp)(e));
            }
        };
        Ok(TempWriter {
            writer: Some(writer),
            file: TempFile {
                path: dir.join(name),
                tmp,
                dir,
                rows: 0,
            },
            usage,
        })
    }

    /// Partition directories of a table, with their days.
    fn partitions(&self, table: Table) -> Result<Vec<(i64, PathBuf)>, SinkError> {
        let table_dir = self.layout.table_dir(table);
        let mut partitions = Vec::new();
        for entry in fs::read_dir(&table_dir).map_err(SinkError::io(&table_dir))? {
            let entry = entry.map_err(SinkError::io(&table_dir))?;
            let Some(day) = entry
                .file_name()
                .to_str()
                .and_then(parse_partition_dir_name)
            else {
                continue;
            };
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                partitions.push((day, entry.path()));
            }
        }
        partitions.sort();
        Ok(partitions)
    }

    /// Finished data files of a partition.
    fn data_files(&self, dir: &Path) -> Result<Vec<DataFile>, SinkError> {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(SinkError::io(dir))? {
            let entry = entry.map_err(SinkError::io(dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_data_file(&name) {
                continue;
            }
            // A file deleted since the listing is simply not there any more.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                files.push(DataFile {
                    path: entry.path(),
                    name,
                    bytes: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// Removes the `.tmp` files a crash left behind. Only called before the sink writes.
    fn remove_temp_files(&self) -> Result<(), SinkError> {
        let mut dirs = vec![self.layout.compaction_dir()];
        for table in Table::ALL {
            dirs.extend(self.partitions(table)?.into_iter().map(|(_, dir)| dir));
        }
        for dir in dirs {
            let mut removed = false;
            for entry in fs::read_dir(&dir).map_err(SinkError::io(&dir))? {
                let entry = entry.map_err(SinkError::io(&dir))?;
                if entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.ends_with(TEMP_FILE_SUFFIX))
                {
                    tracing::info!(path = %entry.path().display(), "removing a half-written file");
                    fs::remove_file(entry.path()).map_err(SinkError::io(entry.path()))?;
                    removed = true;
                }
            }
            if removed {
                sync_dir(&dir)?;
            }
        }
        Ok(())
    }

    // ---- compaction --------------------------------------------------------------------------

    /// Takes up the compactions a previous run recorded: inputs of a published output are
    /// deleted after a new grace period; a record whose output never appeared is dropped.
    fn recover_compactions(&self) -> Result<(), SinkError> {
        let dir = self.layout.compaction_dir();
        let mut changed = false;
        for entry in fs::read_dir(&dir).map_err(SinkError::io(&dir))? {
            let entry = entry.map_err(SinkError::io(&dir))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let (output, inputs) = match self.read_record(&path) {
                Ok(parsed) => parsed,
                Err(e) => {
                    // Deleting on the word of a record we cannot trust could lose data: leave
                    // it, and its files, for a person to look at.
                    tracing::error!(error = %e, "ignoring an unreadable compaction record");
                    continue;
                }
            };
            if output.is_file() {
                self.pending.lock().push(PendingDeletion {
                    record: path,
                    inputs,
                    due: Instant::now() + self.config.compaction.grace,
                });
            } else {
                fs::remove_file(&path).map_err(SinkError::io(&path))?;
                changed = true;
            }
        }
        if changed {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// The output and inputs named by a compaction record.
    fn read_record(&self, path: &Path) -> Result<(PathBuf, Vec<PathBuf>), SinkError> {
        let text = fs::read_to_string(path).map_err(SinkError::io(path))?;
        let record: CompactionRecord =
            serde_json::from_str(&text).map_err(|e| SinkError::Corrupt {
                path: path.to_path_buf(),
                message: format!("not a compaction record: {e}"),
            })?;
        let output = self.resolve(path, &record.output)?;
        let inputs = record
            .inputs
            .iter()
            .map(|input| self.resolve(path, input))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((output, inputs))
    }

    /// A data file path from a compaction record: `<table>/day=…/<file>.parquet`, nothing else.
    fn resolve(&self, record: &Path, relative: &str) -> Result<PathBuf, SinkError> {
        let parts: Vec<&str> = Path::new(relative)
            .components()
            .map(|c| match c {
                Component::Normal(part) => part.to_str(),
                _ => None,
            })
            .collect::<Option<_>>()
            .unwrap_or_default();
        let valid = matches!(
            parts.as_slice(),
            [table, partition, file]
                if Table::ALL.iter().any(|t| t.name() == *table)
                    && parse_partition_dir_name(partition).is_some()
                    && is_data_file(file)
        );
        if !valid {
            return Err(SinkError::Corrupt {
                path: record.to_path_buf(),
                message: format!("{relative:?} is not a data file of the store"),
            });
        }
        Ok(self.layout.root().join(relative))
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(self.layout.root())
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    fn compact(&self) -> Result<CompactionStats, SinkError> {
        let _one_at_a_time = self.compacting.lock();
        let mut stats = CompactionStats {
            files_deleted: self.delete_due(Instant::now())?,
            ..Default::default()
        };
        let pending: HashSet<PathBuf> = self
            .pending
            .lock()
            .iter()
            .flat_map(|p| p.inputs.iter().cloned())
            .collect();
        let now = SystemTime::now();
        for table in Table::ALL {
            for (day, dir) in self.partitions(table)? {
                let files: Vec<DataFile> = self
                    .data_files(&dir)?
                    .into_iter()
                    .filter(|f| !pending.contains(&f.path))
                    .collect();
                let files = PartitionFiles::classify(files, |f| f.name.as_str());
                let seal = self.seal_due(day, &files.fresh, now);
                let inputs: Vec<DataFile> = if seal {
                    files.sealed.into_iter().chain(files.fresh).collect()
                } else {
                    match self.choose_inputs(files.fresh) {
                        Some(inputs) => inputs,
                        None => continue,
                    }
                };
                match self.merge(table, day, &inputs, seal) {
                    Ok((merged, outputs)) => {
                        stats.partitions_compacted += 1;
                        stats.partitions_sealed += usize::from(seal);
                        stats.files_merged += inputs.len();
                        stats.files_written += outputs;
                        stats.rows_read += merged.rows_read;
                        stats.rows_written += merged.rows_written;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, partition = %dir.display(), seal, "compaction of a partition failed");
                        stats.partitions_failed += 1;
                    }
                }
            }
        }
        Ok(stats)
    }

    /// Whether a partition with these fresh files is due to be sealed: it has files written
    /// since its last seal (a seal's own cross-day file does not count), its day has been over
    /// for `seal_after`, and the newest of them is that old.
    fn seal_due(&self, day: i64, fresh: &[DataFile], now: SystemTime) -> bool {
        let after = self.config.compaction.seal_after;
        let day_over = (day + 1) * NANOS_PER_DAY;
        let settled = |time: SystemTime| now.duration_since(time).is_ok_and(|age| age >= after);
        let day_end = SystemTime::UNIX_EPOCH + Duration::from_nanos(day_over.max(0) as u64);
        let written: Vec<&DataFile> = fresh
            .iter()
            .filter(|f| !f.name.starts_with(CROSS_DAY_FILE_PREFIX))
            .collect();
        !written.is_empty() && settled(day_end) && written.iter().all(|f| settled(f.modified))
    }

    /// The keys of `inputs` (files of `table` in `day`) that also have a row in the day before
    /// or after (any file): read in two passes over the key columns only, first the traces of
    /// `inputs`, then the neighbours' keys of those traces.
    fn crossing_keys(
        &self,
        table: Table,
        day: i64,
        inputs: &[DataFile],
    ) -> Result<CrossingKeys, SinkError> {
        let neighbours: Vec<PathBuf> = [day - 1, day + 1]
            .into_iter()
            .map(|neighbour| self.layout.partition_dir(table, neighbour))
            .filter(|dir| dir.is_dir())
            .collect();
        let mut crossing = CrossingKeys::default();
        if neighbours.is_empty() {
            return Ok(crossing);
        }
        let mut traces: HashSet<String> = HashSet::new();
        for input in inputs {
            for_each_row(&input.path, &["trace_id"], |row| {
                if !traces.contains(row[0]) {
                    traces.insert(row[0].to_string());
                }
            })?;
        }
        for dir in &neighbours {
            for file in self.data_files(dir)? {
                // Every table's key is (project_id, trace_id, …).
                for_each_row(&file.path, table.key_columns(), |key| {
                    if traces.contains(key[1]) {
                        crossing.insert(key);
                    }
                })?;
            }
        }
        Ok(crossing)
    }

    /// The files to merge in a partition, smallest first, or none when it has too few small files.
    fn choose_inputs(&self, files: Vec<DataFile>) -> Option<Vec<DataFile>> {
        let config = &self.config.compaction;
        let mut small: Vec<DataFile> = files
            .into_iter()
            .filter(|f| f.bytes < config.small_file_bytes)
            .collect();
        if small.len() < config.min_files.max(2) {
            return None;
        }
        small.sort_by(|a, b| a.bytes.cmp(&b.bytes).then_with(|| a.name.cmp(&b.name)));
        let mut chosen = Vec::new();
        let mut total = 0u64;
        for file in small {
            if chosen.len() >= config.max_merge_files.max(2)
                || (!chosen.is_empty() && total.saturating_add(file.bytes) > config.max_merge_bytes)
            {
                break;
            }
            total = total.saturating_add(file.bytes);
            chosen.push(file);
        }
        (chosen.len() >= 2).then_some(chosen)
    }

    /// Merges `inputs` (files of one partition) into one file holding the newest version of
    /// each key: a fresh file, or, when sealing (`inputs` are then the partition's sealed file
    /// and every fresh one), a sealed file and, for the keys with a version in a neighbouring
    /// day, a cross-day fresh file (see `vigil_schemas::layout`). Publishes them and schedules
    /// the inputs' deletion. Returns what was merged and the files written.
    fn merge(
        &self,
        table: Table,
        day: i64,
        inputs: &[DataFile],
        seal: bool,
    ) -> Result<(Merged, usize), SinkError> {
        let (crossing, prefix) = if seal {
            (self.crossing_keys(table, day, inputs)?, SEALED_FILE_PREFIX)
        } else {
            (CrossingKeys::default(), FRESH_FILE_PREFIX)
        };
        let paths: Vec<PathBuf> = inputs.iter().map(|f| f.path.clone()).collect();
        let mut output = self.create_temp(table, day, prefix, FileUse::Stored)?;
        // A sealed file is written hour by hour ([`hours`]).
        let mut hours = seal.then(|| HourFiles::new(self, table, day));
        let mut cross_day: Option<TempWriter> = None;
        let merged = merge_files(table, &paths, |batch| {
            let (alone, crossed) = crossing.split(table, batch)?;
            if crossed.num_rows() > 0 {
                let writer = match &mut cross_day {
                    Some(writer) => writer,
                    None => cross_day.insert(self.create_temp(
                        table,
                        day,
                        CROSS_DAY_FILE_PREFIX,
                        FileUse::Stored,
                    )?),
                };
                writer.write(&crossed)?;
            }
            if alone.num_rows() > 0 {
                match &mut hours {
                    Some(hours) => hours.write(&alone)?,
                    None => output.write(&alone)?,
                }
            }
            Ok(())
        })?;
        if let Some(hours) = hours {
            hours.copy_into(&mut output)?;
        }
        let output = output.finish()?;
        let also = match cross_day.map(TempWriter::finish).transpose() {
            Ok(also) => also.into_iter().collect::<Vec<_>>(),
            Err(e) => {
                let _ = fs::remove_file(&output.tmp);
                return Err(e);
            }
        };
        let written = 1 + also.len();
        self.publish(table, inputs, also, output, &merged)?;
        Ok((merged, written))
    }

    /// Makes a merge's outputs visible and schedules its inputs' deletion: `also` first, then
    /// `output`, whose presence the durable record ties the inputs' deletion to.
    fn publish(
        &self,
        table: Table,
        inputs: &[DataFile],
        also: Vec<TempFile>,
        output: TempFile,
        merged: &Merged,
    ) -> Result<(), SinkError> {
        let discard = |files: &[&TempFile]| {
            for file in files {
                let _ = fs::remove_file(&file.tmp);
            }
        };
        let all: Vec<&TempFile> = also.iter().chain([&output]).collect();
        // Record the merge before the output becomes visible, so that a crash after the
        // rename still leads to the inputs' deletion, and a crash before it to the record's (a
        // file of `also` already renamed then holds rows the inputs hold too: harmless, as
        // fresh rows are de-duplicated).
        let record = CompactionRecord {
            output: self.relative(&output.path),
            inputs: inputs.iter().map(|f| self.relative(&f.path)).collect(),
        };
        let record_path = match self.write_record(&record) {
            Ok(path) => path,
            Err(e) => {
                discard(&all);
                return Err(e);
            }
        };
        for (i, file) in all.iter().enumerate() {
            if let Err(e) = fs::rename(&file.tmp, &file.path) {
                discard(&all[i..]);
                let _ = fs::remove_file(&record_path);
                return Err(SinkError::io(&file.path)(e));
            }
        }
        sync_dir(&output.dir)?;
        self.pending.lock().push(PendingDeletion {
            record: record_path,
            inputs: inputs.iter().map(|f| f.path.clone()).collect(),
            due: Instant::now() + self.config.compaction.grace,
        });
        tracing::debug!(
            %table,
            inputs = inputs.len(),
            rows_read = merged.rows_read,
            rows_written = merged.rows_written,
            output = %output.path.display(),
            "merged partition files"
        );
        Ok(())
    }

    fn write_record(&self, record: &CompactionRecord) -> Result<PathBuf, SinkError> {
        let dir = self.layout.compaction_dir();
        let name = self.next_file_name("compaction-", ".json");
        let path = dir.join(&name);
        let tmp = dir.join(format!("{name}{TEMP_FILE_SUFFIX}"));
        let text = serde_json::to_vec(record).map_err(|e| SinkError::Internal(e.to_string()))?;
        let written = (|| {
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(SinkError::io(&tmp))?;
            io::Write::write_all(&mut file, &text).map_err(SinkError::io(&tmp))?;
            file.sync_all().map_err(SinkError::io(&tmp))?;
            fs::rename(&tmp, &path).map_err(SinkError::io(&path))?;
            sync_dir(&dir)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(path)
    }

    /// Deletes the merged inputs whose grace period has ended, then their records.
    fn delete_due(&self, now: Instant) -> Result<usize, SinkError> {
        let due: Vec<PendingDeletion> = {
            let mut pending = self.pending.lock();
            let (due, waiting) = std::mem::take(&mut *pending)
                .into_iter()
                .partition(|p| p.due <= now);
            *pending = waiting;
            due
        };
        let mut deleted = 0;
        let mut failed = Vec::new();
        for item in due {
            match delete_inputs(&item) {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(error = %e, "could not delete merged files; will retry");
                    failed.push(item);
                }
            }
        }
        self.pending.lock().extend(failed);
        Ok(deleted)
    }
}

fn delete_inputs(item: &PendingDeletion) -> Result<usize, SinkError> {
    let mut deleted = 0;
    let mut dirs = HashSet::new();
    for input in &item.inputs {
        match fs::remove_file(input) {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SinkError::io(input)(e)),
        }
        if let Some(dir) = input.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for dir in dirs {
        sync_dir(&dir)?;
    }
    match fs::remove_file(&item.record) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SinkError::io(&item.record)(e)),
    }
    if let Some(dir) = item.record.parent() {
        sync_dir(dir)?;
    }
    Ok(deleted)
}

/// A reader of a data file's rows, `batch_rows` at a time: every column, or only `columns`; of
/// every row group, or only `row_groups`.
fn open_reader(
    path: &Path,
    columns: Option<&[&str]>,
    batch_rows: usize,
    row_groups: Option<Vec<usize>>,
) -> Result<ParquetRecordBatchReader, SinkError> {
    let file = File::open(path).map_err(SinkError::io(path))?;
    let mut builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(SinkError::parquet(path))?;
    if let Some(columns) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        builder = builder.with_projection(mask);
    }
    if let Some(row_groups) = row_groups {
        builder = builder.with_row_groups(row_groups);
    }
    builder
        .with_batch_size(batch_rows)
        .build()
        .map_err(SinkError::parquet(path))
}

/// Every row of a data file, with the table's exact schema.
fn read_file(table: Table, path: &Path) -> Result<Vec<RecordBatch>, SinkError> {
    let corrupt = SinkError::corrupt(path);
    open_reader(path, None, 64 * 1024, None)?
        .map(|batch| {
            let batch = batch.map_err(|e| corrupt(e.to_string()))?;
            conform(table, &batch).map_err(&corrupt)
        })
        .collect()
}

/// Calls `each` with the values of the text columns `columns` of every row of a data file (only
/// those columns are read).
fn for_each_row(
    path: &Path,
    columns: &[&str],
    mut each: impl FnMut(&[&str]),
) -> Result<(), SinkError> {
    let reader = open_reader(path, Some(columns), 64 * 1024, None)?;
    let corrupt = SinkError::corrupt(path);
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(e.to_string()))?;
        let arrays = text_columns(&batch, columns).map_err(&corrupt)?;
        let mut row = Vec::with_capacity(columns.len());
        for i in 0..batch.num_rows() {
            row.clear();
            row.extend(arrays.iter().map(|a| a.value(i)));
            each(&row);
        }
    }
    Ok(())
}

/// The named text columns of a batch.
fn text_columns<'a>(
    batch: &'a RecordBatch,
    columns: &[&str],
) -> Result<Vec<&'a StringArray>, String> {
    columns
        .iter()
        .map(|name| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| format!("{name} is not a text column"))
        })
        .collect()
}

/// Keys with versions in two days (see [`Store::crossing_keys`]), and their traces.
#[derive(Debug, Default)]
struct CrossingKeys {
    keys: HashSet<Vec<String>>,
    traces: HashSet<String>,
}

impl CrossingKeys {
    fn insert(&mut self, key: &[&str]) {
        self.traces.insert(key[1].to_string());
        self.keys
            .insert(key.iter().map(|v| v.to_string()).collect());
    }

    /// A batch's rows of the keys not crossing, and those of the keys crossing.
    fn split(
        &self,
        table: Table,
        batch: &RecordBatch,
    ) -> Result<(RecordBatch, RecordBatch), SinkError> {
        let encode = |source| SinkError::Encode { table, source };
        if self.keys.is_empty() {
            return Ok((batch.clone(), batch.slice(0, 0)));
        }
        let keys = text_columns(batch, table.key_columns()).map_err(SinkError::Internal)?;
        let crossing: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let crosses = self.traces.contains(keys[1].value(i))
                    && self.keys.contains(
                        &keys
                            .iter()
                            .map(|k| k.value(i).to_string())
                            .collect::<Vec<_>>(),
                    );
                Some(crosses)
            })
            .collect();
        let alone = filter_record_batch(batch, &not(&crossing).map_err(encode)?).map_err(encode)?;
        let crossed = filter_record_batch(batch, &crossing).map_err(encode)?;
        Ok((alone, crossed))
    }
}

/// A batch read back from a file, with the table's exact schema (columns picked by name).
fn conform(table: Table, batch: &RecordBatch) -> Result<RecordBatch, String> {
    let schema = table.schema();
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            batch
                .column_by_name(field.name())
                .cloned()
                .ok_or_else(|| format!("column {} is missing", field.name()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())
}

fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SinkError::io(dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use vigil_schemas::{
        arrow::{runs_from_batch, scores_from_batch, spans_from_batch},
        time::{day_of, days_from_civil},
    };

    use super::*;

    fn day0() -> i64 {
        days_from_civil(2026, 11, 23)
    }

    fn at(day: i64, secs: i64) -> i64 {
        day * NANOS_PER_DAY + secs * 1_000_000_000
    }

    fn run(trace: &str, start: i64, ingested: i64) -> RunRow {
        RunRow {
            project_id: "p".into(),
            trace_id: trace.into(),
            start_time_ns: start,
            end_time_ns: start + 1,
            ingested_at_ns: ingested,
            output: format!("version {ingested}"),
            ..Default::default()
        }
    }

    fn span(trace: &str, span_id: &str, start: i64, ingested: i64) -> SpanRow {
        SpanRow {
            project_id: "p".into(),
            trace_id: trace.into(),
            span_id: span_id.into(),
            start_time_ns: start,
            end_time_ns: start + 1,
            ingested_at_ns: ingested,
            ..Default::default()
        }
    }

    fn score(trace: &str, id: &str, time: i64, ingested: i64) -> ScoreRow {
        ScoreRow {
            project_id: "p".into(),
            trace_id: trace.into(),
            score_id: id.into(),
            time_ns: time,
            ingested_at_ns: ingested,
            value: Some(1.0),
            ..Default::default()
        }
    }

    fn config(grace: Duration) -> EmbeddedSinkConfig {
        EmbeddedSinkConfig {
            row_group_rows: 1000,
            compaction: CompactionConfig {
                min_files: 4,
                grace,
                ..Default::default()
            },
        }
    }

    /// Every entry of a directory, by name.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn read_file(path: &Path) -> Vec<RecordBatch> {
        ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect()
    }

    /// Rows of every finished file of a partition.
    fn read_runs(dir: &Path) -> Vec<RunRow> {
        let mut rows = Vec::new();
        for name in names(dir).into_iter().filter(|n| is_data_file(n)) {
            for batch in read_file(&dir.join(name)) {
                rows.extend(runs_from_batch(&batch).unwrap());
            }
        }
        rows
    }

    #[tokio::test]
    async fn writes_one_durable_file_per_table_and_day() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap();
        let (d0, d1) = (day0(), day0() + 1);
        let batch = IngestBatch {
            runs: vec![
                run("b", at(d0, 5), 1),
                run("a", at(d0, 9), 1),
                run("c", at(d1, 1), 1),
            ],
            spans: vec![span("a", "s2", at(d0, 9), 1), span("a", "s1", at(d1, 0), 1)],
            scores: vec![score("a", "x", at(d1, 3), 1)],
        };
        sink.write(Arc::new(batch.clone())).await.unwrap();

        let layout = sink.layout();
        let runs_d0 = layout.partition_dir(Table::Runs, d0);
        let files = names(&runs_d0);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].starts_with("part-") && files[0].ends_with(".parquet"));
        // Sorted by key inside the file.
        let rows = read_runs(&runs_d0);
        assert_eq!(rows, vec![batch.runs[1].clone(), batch.runs[0].clone()]);
        assert_eq!(
            read_runs(&layout.partition_dir(Table::Runs, d1)),
            vec![batch.runs[2].clone()]
        );

        let span_rows: Vec<SpanRow> = [d0, d1]
            .iter()
            .flat_map(|d| {
                let dir = layout.partition_dir(Table::Spans, *d);
                assert_eq!(names(&dir).len(), 1);
                read_file(&dir.join(&names(&dir)[0]))
            })
            .flat_map(|b| spans_from_batch(&b).unwrap())
            .collect();
        assert_eq!(
            span_rows,
            vec![batch.spans[0].clone(), batch.spans[1].clone()]
        );
        let score_dir = layout.partition_dir(Table::Scores, d1);
        let scores: Vec<ScoreRow> = read_file(&score_dir.join(&names(&score_dir)[0]))
            .iter()
            .flat_map(|b| scores_from_batch(b).unwrap())
            .collect();
        assert_eq!(scores, batch.scores);
        assert!(!layout.partition_dir(Table::Scores, d0).exists());

        // A second write adds files and never touches the first ones.
        sink.write(Arc::new(batch)).await.unwrap();
        assert_eq!(names(&runs_d0).len(), 2);
        assert!(names(&runs_d0).contains(&files[0]));
    }

    #[tokio::test]
    async fn keeps_only_the_newest_version_of_a_key_within_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap();
        let d = day0();
        let batch = IngestBatch {
            runs: vec![
                run("a", at(d, 1), 5),
                run("a", at(d, 1), 9),
                run("a", at(d, 1), 7),
            ],
            ..Default::default()
        };
        sink.write(Arc::new(batch)).await.unwrap();
        let rows = read_runs(&sink.layout().partition_dir(Table::Runs, d));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].ingested_at_ns, 9);
    }

    #[tokio::test]
    async fn an_empty_batch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap();
        sink.write(Arc::new(IngestBatch::default())).await.unwrap();
        for table in Table::ALL {
            assert!(names(&sink.layout().table_dir(table)).is_empty());
        }
    }

    #[tokio::test]
    async fn open_removes_half_written_files_and_compaction_ignores_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = day0();
        let partition = {
            let sink = EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap();
            for i in 0..4 {
                let batch = IngestBatch {
                    runs: vec![run(&format!("t{i}"), at(d, i), 1)],
                    ..Default::default()
                };
                sink.write(Arc::new(batch)).await.unwrap();
            }
            let partition = sink.layout().partition_dir(Table::Runs, d);
            fs::write(partition.join("part-1-0.parquet.tmp"), b"half a file").unwrap();
            partition
        };
        assert_eq!(names(&partition).len(), 5);
        let sink = EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap();
        assert_eq!(names(&partition).len(), 4);
        assert!(names(&partition).iter().all(|n| is_data_file(n)));

        // A leftover appearing while running is not an input either.
        fs::write(partition.join("part-2-0.parquet.tmp"), b"half a file").unwrap();
        let stats = sink.compact_once().await.unwrap();
        assert_eq!((stats.partitions_compacted, stats.files_merged), (1, 4));
        assert_eq!(stats.partitions_failed, 0);
        assert!(partition.join("part-2-0.parquet.tmp").exists());
    }

    #[tokio::test]
    async fn compaction_keeps_each_key_once_and_deletes_inputs_after_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let grace = Duration::from_millis(300);
        let sink = EmbeddedSink::open(dir.path(), config(grace)).unwrap();
        let d = day0();
        // 10 writes; trace k gets a version in every write w with (k + w) % 3 != 0, so
        // versions of a key are spread over files.
        let mut newest: HashMap<String, i64> = HashMap::new();
        let mut spans_newest: HashMap<String, i64> = HashMap::new();
        for w in 0..10i64 {
            let mut batch = IngestBatch::default();
            for k in 0..20i64 {
                if (k + w) % 3 == 0 {
                    continue;
                }
                let trace = format!("trace-{k:02}");
                let ingested = 100 + w * 10 + k % 4;
                batch.runs.push(run(&trace, at(d, k), ingested));
                batch.spans.push(span(&trace, "root", at(d, k), ingested));
                newest.insert(trace.clone(), ingested);
                spans_newest.insert(trace, ingested);
            }
            sink.write(Arc::new(batch)).await.unwrap();
        }
        let partition = sink.layout().partition_dir(Table::Runs, d);
        let inputs = names(&partition);
        assert_eq!(inputs.len(), 10);

        let stats = sink.compact_once().await.unwrap();
        assert_eq!(stats.partitions_compacted, 2, "{stats:?}");
        assert_eq!(stats.files_merged, 20);
        assert_eq!(stats.rows_written, 2 * newest.len());
        assert_eq!(stats.files_deleted, 0);

        // During the grace period the inputs and the output both exist.
        let after = names(&partition);
        assert_eq!(after.len(), 11);
        let output: Vec<&String> = after.iter().filter(|n| !inputs.contains(n)).collect();
        assert_eq!(output.len(), 1);
        let merged: Vec<RunRow> = read_file(&partition.join(output[0]))
            .iter()
            .flat_map(|b| runs_from_batch(b).unwrap())
            .collect();
        let got: HashMap<String, i64> = merged
            .iter()
            .map(|r| (r.trace_id.clone(), r.ingested_at_ns))
            .collect();
        assert_eq!(merged.len(), newest.len(), "each key exactly once");
        assert_eq!(got, newest, "the newest version of each key");
        assert!(
            merged
                .iter()
                .all(|r| r.output == format!("version {}", r.ingested_at_ns))
        );
        let mut keys: Vec<&String> = merged.iter().map(|r| &r.trace_id).collect();
        let sorted = {
            let mut k = keys.clone();
            k.sort();
            k
        };
        assert_eq!(keys, sorted, "sorted by key");
        keys.dedup();
        assert_eq!(keys.len(), merged.len());
        assert_eq!(names(&sink.layout().compaction_dir()).len(), 2);

        // Inputs in their grace period are not merged again.
        let again = sink.compact_once().await.unwrap();
        assert_eq!(again.partitions_compacted, 0);

        tokio::time::sleep(grace + Duration::from_millis(50)).await;
        let stats = sink.compact_once().await.unwrap();
        assert_eq!(stats.files_deleted, 20);
        assert_eq!(names(&partition), vec![output[0].clone()]);
        assert!(names(&sink.layout().compaction_dir()).is_empty());
        let span_dir = sink.layout().partition_dir(Table::Spans, d);
        assert_eq!(names(&span_dir).len(), 1);
    }

    #[tokio::test]
    async fn partitions_with_few_small_files_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap();
        for i in 0..3 {
            let batch = IngestBatch {
                runs: vec![run("a", at(day0(), i), i)],
                ..Default::default()
            };
            sink.write(Arc::new(batch)).await.unwrap();
        }
        assert_eq!(
            sink.compact_once().await.unwrap(),
            CompactionStats::default()
        );
    }

    async fn four_files(sink: &EmbeddedSink) -> PathBuf {
        for i in 0..4 {
            let batch = IngestBatch {
                runs: vec![
                    run("a", at(day0(), 0), i),
                    run(&format!("t{i}"), at(day0(), i), 1),
                ],
                ..Default::default()
            };
            sink.write(Arc::new(batch)).await.unwrap();
        }
        sink.layout().partition_dir(Table::Runs, day0())
    }

    #[tokio::test]
    async fn a_crash_before_the_output_was_published_keeps_the_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let (partition, inputs) = {
            let sink = EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap();
            let partition = four_files(&sink).await;
            let inputs = names(&partition);
            // What a crash between the record and the rename leaves: the record, a .tmp output.
            let record = CompactionRecord {
                output: format!("runs/{}/part-9-0.parquet", partition_name(&partition)),
                inputs: inputs
                    .iter()
                    .map(|n| format!("runs/{}/{n}", partition_name(&partition)))
                    .collect(),
            };
            let compaction_dir = sink.layout().compaction_dir();
            fs::write(
                compaction_dir.join("c.json"),
                serde_json::to_vec(&record).unwrap(),
            )
            .unwrap();
            fs::write(partition.join("part-9-0.parquet.tmp"), b"partial").unwrap();
            (partition, inputs)
        };
        let sink = EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap();
        assert!(names(&sink.layout().compaction_dir()).is_empty());
        assert_eq!(names(&partition), inputs);
        // Nothing is scheduled for deletion: a pass merges, it deletes nothing.
        let stats = sink.compact_once().await.unwrap();
        assert_eq!((stats.files_deleted, stats.files_merged), (0, 4));
        assert_eq!(read_runs(&partition).len(), 8 + 5);
    }

    fn partition_name(dir: &Path) -> String {
        dir.file_name().unwrap().to_string_lossy().into_owned()
    }

    #[tokio::test]
    async fn a_crash_after_the_output_was_published_deletes_the_inputs_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (partition, output) = {
            let sink = EmbeddedSink::open(dir.path(), config(Duration::from_secs(3600))).unwrap();
            let partition = four_files(&sink).await;
            let inputs = names(&partition);
            let stats = sink.compact_once().await.unwrap();
            assert_eq!(stats.files_merged, 4);
            let output: Vec<String> = names(&partition)
                .into_iter()
                .filter(|n| !inputs.contains(n))
                .collect();
            (partition, output)
            // Dropped with the deletion still pending: as if the process died.
        };
        assert_eq!(names(&partition).len(), 5);
        let sink = EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap();
        let stats = sink.compact_once().await.unwrap();
        assert_eq!(stats.files_deleted, 4);
        assert_eq!(names(&partition), output);
        let rows = read_runs(&partition);
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows.iter()
                .find(|r| r.trace_id == "a")
                .unwrap()
                .ingested_at_ns,
            3
        );
        assert!(names(&sink.layout().compaction_dir()).is_empty());
    }

    #[tokio::test]
    async fn a_record_naming_files_outside_the_store_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap());
        let layout = EmbeddedLayout::new(dir.path());
        fs::write(dir.path().join("precious.parquet"), b"x").unwrap();
        let record = CompactionRecord {
            output: "runs/day=2026-11-23/part-1-0.parquet".into(),
            inputs: vec!["../precious.parquet".into()],
        };
        let out = layout.partition_dir(Table::Runs, day0());
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("part-1-0.parquet"), b"x").unwrap();
        fs::write(
            layout.compaction_dir().join("c.json"),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        fs::write(layout.compaction_dir().join("d.json"), b"{not json").unwrap();
        let sink = EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap();
        let stats = sink.compact_once().await.unwrap();
        assert_eq!(stats.files_deleted, 0);
        assert!(dir.path().join("precious.parquet").exists());
        // Left in place for a person to look at.
        assert_eq!(names(&layout.compaction_dir()), vec!["c.json", "d.json"]);
    }

    fn sealing(grace: Duration) -> EmbeddedSinkConfig {
        let mut config = config(grace);
        config.compaction.seal_after = Duration::ZERO;
        config
    }

    /// A partition's files as readers take them, by name.
    fn classified(dir: &Path) -> PartitionFiles<String> {
        let files = names(dir).into_iter().filter(|n| is_data_file(n)).collect();
        PartitionFiles::classify(files, |n| n.as_str())
    }

    fn runs_of(path: &Path) -> Vec<RunRow> {
        read_file(path)
            .iter()
            .flat_map(|b| runs_from_batch(b).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_finished_day_is_sealed_into_one_file_with_each_key_once_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), sealing(Duration::ZERO)).unwrap();
        // Three writes; "a" and "c" get newer versions in later files.
        for (i, traces) in [vec!["c", "a", "b"], vec!["a"], vec!["c", "d"]]
            .into_iter()
            .enumerate()
        {
            let mut runs: Vec<RunRow> = traces
                .iter()
                .map(|t| run(t, at(day0(), 1), i as i64 + 1))
                .collect();
            for r in &mut runs {
                r.output = format!("{}@{}", r.trace_id, r.ingested_at_ns);
            }
            sink.write(Arc::new(IngestBatch {
                runs,
                ..Default::default()
            }))
            .await
            .unwrap();
        }
        let stats = sink.compact_once().await.unwrap();
        assert_eq!(stats.partitions_sealed, 1, "{stats:?}");
        assert_eq!((stats.rows_read, stats.rows_written), (6, 4));
        let partition = sink.layout().partition_dir(Table::Runs, day0());
        let files = classified(&partition);
        let sealed = files.sealed.expect("a sealed file");
        assert_eq!(
            files.fresh.len(),
            3,
            "the inputs wait for their grace period"
        );
        let outputs: Vec<String> = runs_of(&partition.join(&sealed))
            .into_iter()
            .map(|r| r.output)
            .collect();
        assert_eq!(outputs, vec!["a@2", "b@1", "c@3", "d@3"]);

        // A sealed partition without fresh files is left alone; the inputs go after the grace.
        let stats = sink.compact_once().await.unwrap();
        assert_eq!(stats.partitions_compacted, 0);
        assert_eq!(stats.files_deleted, 3);
        assert_eq!(names(&partition), vec![sealed]);
    }

    /// A sealed file's row groups each hold one hour; its rows are ordered by hour, then key.
    /// Returns the file's spans.
    fn assert_hour_major(path: &Path) -> Vec<SpanRow> {
        use vigil_schemas::time::hour_of;

        let open = || ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        let mut spans = Vec::new();
        let mut previous: Option<(i64, String, String)> = None;
        for group in 0..open().metadata().num_row_groups() {
            let rows: Vec<SpanRow> = open()
                .with_row_groups(vec![group])
                .build()
                .unwrap()
                .flat_map(|b| spans_from_batch(&b.unwrap()).unwrap())
                .collect();
            let hour = hour_of(rows[0].start_time_ns);
            for row in &rows {
                assert_eq!(hour_of(row.start_time_ns), hour, "row group {group}");
                let at = (hour, row.trace_id.clone(), row.span_id.clone());
                assert!(
                    previous.as_ref().is_none_or(|p| *p < at),
                    "{at:?} after {previous:?}"
                );
                previous = Some(at);
            }
            spans.extend(rows);
        }
        spans
    }

    #[tokio::test]
    async fn a_sealed_file_is_laid_out_by_hour_then_key_and_stays_so_when_sealed_again() {
        use crate::sink::{Deleter, Doomed};

        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), sealing(Duration::ZERO)).unwrap();
        // 3,000 spans of two traces over five hours, in scrambled order, in three writes that
        // each give some of them a newer version (in another hour, for some).
        let n = 3_000i64;
        let start = |i: i64, version: i64| at(day0(), (i * 7_919 + version * 3_001) % (5 * 3_600));
        let trace = |i: i64| if i % 2 == 0 { "t" } else { "u" };
        // (trace, span) → (start, version) of the newest version.
        type Newest = BTreeMap<(String, String), (i64, i64)>;
        let versions = |newest: &mut Newest, every: i64, version: i64| -> Vec<SpanRow> {
            (0..n)
                .filter(|i| i % every == 0)
                .map(|i| {
                    let (trace, id) = (trace(i), format!("s{i:05}"));
                    newest.insert((trace.into(), id.clone()), (start(i, version), version));
                    span(trace, &id, start(i, version), version)
                })
                .collect()
        };
        let mut newest = Newest::new();
        let writes = [(1, 1), (5, 2), (3, 3)].map(|(every, v)| versions(&mut newest, every, v));
        let before = newest.clone();
        let late = versions(&mut newest, 7, 9);
        let runs = [("t", "gone"), ("u", "kept")]
            .into_iter()
            .map(|(trace, user)| RunRow {
                user_hash: user.into(),
                ..run(trace, at(day0(), 0), 1)
            })
            .collect();
        sink.write(Arc::new(IngestBatch {
            runs,
            ..Default::default()
        }))
        .await
        .unwrap();
        for spans in writes {
            sink.write(Arc::new(IngestBatch {
                spans,
                ..Default::default()
            }))
            .await
            .unwrap();
        }
        let partition = sink.layout().partition_dir(Table::Spans, day0());
        let sealed_spans = || {
            let sealed = classified(&partition).sealed.expect("a sealed file");
            let mut got: Vec<((String, String), (i64, i64))> =
                assert_hour_major(&partition.join(sealed))
                    .into_iter()
                    .map(|s| ((s.trace_id, s.span_id), (s.start_time_ns, s.ingested_at_ns)))
                    .collect();
            got.sort();
            got
        };
        let expected = |newest: &Newest| -> Vec<((String, String), (i64, i64))> {
            newest.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        assert!(sink.compact_once().await.unwrap().partitions_sealed >= 1);
        assert_eq!(sealed_spans(), expected(&before));

        // Late versions: merged with the sealed file, read back hour by hour in key order.
        sink.write(Arc::new(IngestBatch {
            spans: late,
            ..Default::default()
        }))
        .await
        .unwrap();
        assert_eq!(sink.compact_once().await.unwrap().partitions_sealed, 1);
        assert_eq!(sealed_spans(), expected(&newest));

        // An erasure rewrites the sealed file with its hours still apart.
        sink.compact_once().await.unwrap();
        let doomed = Doomed::User {
            project_id: "p".into(),
            user_hash: "gone".into(),
        };
        let erased = sink.delete(&doomed, false).await.unwrap();
        assert_eq!(erased.spans, (n / 2) as u64);
        newest.retain(|(trace, _), _| trace == "u");
        assert_eq!(sealed_spans(), expected(&newest));
    }

    #[tokio::test]
    async fn a_version_written_after_the_seal_is_sealed_again_and_supersedes_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), sealing(Duration::from_secs(600))).unwrap();
        let write = |trace: &str, ingested: i64| {
            let mut run = run(trace, at(day0(), 1), ingested);
            run.output = format!("{trace}@{ingested}");
            IngestBatch {
                runs: vec![run],
                ..Default::default()
            }
        };
        sink.write(Arc::new(write("a", 1))).await.unwrap();
        sink.write(Arc::new(write("b", 1))).await.unwrap();
        sink.compact_once().await.unwrap();
        let partition = sink.layout().partition_dir(Table::Runs, day0());
        let first = classified(&partition).sealed.unwrap();

        sink.write(Arc::new(write("a", 5))).await.unwrap();
        let stats = sink.compact_once().await.unwrap();
        assert_eq!(stats.partitions_sealed, 1, "{stats:?}");
        let files = classified(&partition);
        let second = files.sealed.unwrap();
        assert!(second > first);
        assert_eq!(files.superseded, vec![first]);
        let outputs: Vec<String> = runs_of(&partition.join(&second))
            .into_iter()
            .map(|r| r.output)
            .collect();
        assert_eq!(outputs, vec!["a@5", "b@1"]);
    }

    #[tokio::test]
    async fn keys_with_versions_in_a_neighbouring_day_stay_out_of_the_sealed_files() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), sealing(Duration::ZERO)).unwrap();
        let d = day0();
        // "t" was synthesized just after midnight, then replaced by its root that started
        // just before: a version in each day.
        // Its spans cross midnight too, each span in one day: those are sealed.
        sink.write(Arc::new(IngestBatch {
            runs: vec![run("t", at(d, 1), 1), run("a", at(d, 2), 1)],
            spans: vec![span("t", "s1", at(d, 1), 1)],
            ..Default::default()
        }))
        .await
        .unwrap();
        sink.write(Arc::new(IngestBatch {
            runs: vec![run("t", at(d, -1), 2), run("b", at(d, -5), 2)],
            spans: vec![span("t", "s0", at(d, -1), 2)],
            ..Default::default()
        }))
        .await
        .unwrap();
        let stats = sink.compact_once().await.unwrap();
        assert_eq!(stats.partitions_sealed, 4, "{stats:?}");
        for day in [d, d - 1] {
            let files = classified(&sink.layout().partition_dir(Table::Spans, day));
            let cross_day = files
                .fresh
                .iter()
                .any(|n| n.starts_with(CROSS_DAY_FILE_PREFIX));
            assert!(files.sealed.is_some() && !cross_day, "{files:?}");
        }
        for (day, alone) in [(d, "a"), (d - 1, "b")] {
            let partition = sink.layout().partition_dir(Table::Runs, day);
            let files = classified(&partition);
            let sealed: Vec<String> = runs_of(&partition.join(files.sealed.as_ref().unwrap()))
                .into_iter()
                .map(|r| r.trace_id)
                .collect();
            assert_eq!(sealed, vec![alone], "day {day}");
            let cross_day: Vec<&String> = files
                .fresh
                .iter()
                .filter(|n| n.starts_with(CROSS_DAY_FILE_PREFIX))
                .collect();
            assert_eq!(cross_day.len(), 1, "{files:?}");
            let crossed: Vec<String> = runs_of(&partition.join(cross_day[0]))
                .into_iter()
                .map(|r| r.trace_id)
                .collect();
            assert_eq!(crossed, vec!["t"]);
        }
        // A seal's own cross-day file does not call for another seal.
        let stats = sink.compact_once().await.unwrap();
        assert_eq!(stats.partitions_sealed, 0, "{stats:?}");
    }

    #[tokio::test]
    async fn the_current_day_and_unsettled_files_are_not_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let today = day_of(now_ns());
        let sink = EmbeddedSink::open(dir.path(), sealing(Duration::ZERO)).unwrap();
        sink.write(Arc::new(IngestBatch {
            runs: vec![run("a", at(today, 0), 1)],
            ..Default::default()
        }))
        .await
        .unwrap();
        assert_eq!(sink.compact_once().await.unwrap().partitions_sealed, 0);

        // A finished day whose newest file is younger than `seal_after` waits.
        let mut config = config(Duration::ZERO);
        config.compaction.seal_after = Duration::from_secs(3600);
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), config).unwrap();
        sink.write(Arc::new(IngestBatch {
            runs: vec![run("a", at(day0(), 0), 1)],
            ..Default::default()
        }))
        .await
        .unwrap();
        assert_eq!(sink.compact_once().await.unwrap().partitions_sealed, 0);
    }

    #[tokio::test]
    async fn a_file_out_of_key_order_is_not_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), sealing(Duration::ZERO)).unwrap();
        sink.write(Arc::new(IngestBatch {
            runs: vec![run("a", at(day0(), 0), 1)],
            ..Default::default()
        }))
        .await
        .unwrap();
        // A file written by something else, keys descending.
        let partition = sink.layout().partition_dir(Table::Runs, day0());
        let rows = [run("z", at(day0(), 0), 1), run("b", at(day0(), 0), 1)];
        let batch = runs_to_batch(&rows.iter().collect::<Vec<_>>()).unwrap();
        let file = File::create(partition.join("part-9-9.parquet")).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let before = names(&partition);

        let stats = sink.compact_once().await.unwrap();
        assert_eq!((stats.partitions_sealed, stats.partitions_failed), (0, 1));
        assert_eq!(names(&partition), before, "left as it was");
    }

    #[tokio::test]
    async fn the_compactor_task_compacts_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(EmbeddedSink::open(dir.path(), config(Duration::ZERO)).unwrap());
        let partition = four_files(&sink).await;
        let shutdown = CancellationToken::new();
        let task = Arc::clone(&sink).spawn_compactor(Duration::from_millis(20), shutdown.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while names(&partition).len() != 1 {
            assert!(Instant::now() < deadline, "{:?}", names(&partition));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read_runs(&partition).len(), 5);
    }

    #[tokio::test]
    async fn deletion_rewrites_files_without_the_doomed_traces() {
        use crate::sink::{Cutoffs, Deleter, Doomed};

        let dir = tempfile::tempdir().unwrap();
        let sink = EmbeddedSink::open(dir.path(), config(Duration::from_secs(3600))).unwrap();
        let user_run = |trace: &str, user: &str, day: i64, ingested: i64| RunRow {
            user_hash: user.into(),
            ..run(trace, at(day, 10), ingested)
        };
        let d = day0();
        // Two writes, so the doomed traces sit in several files, in two versions.
        for ingested in [1, 2] {
            let batch = IngestBatch {
                runs: vec![
                    user_run("a", "hash-of-ann", d, ingested),
                    user_run("b", "hash-of-ann", d + 1, ingested),
                    user_run("c", "hash-of-bob", d, ingested),
                ],
                spans: ["a", "b", "c"]
                    .iter()
                    .map(|t| span(t, "s1", at(d, 11), ingested))
                    .collect(),
                scores: vec![score("a", "f1", at(d, 12), ingested)],
            };
            sink.write(Arc::new(batch)).await.unwrap();
        }
        let ann = Doomed::User {
            project_id: "p".into(),
            user_hash: "hash-of-ann".into(),
        };
        let dry = sink.delete(&ann, true).await.unwrap();
        assert_eq!((dry.runs, dry.spans, dry.scores), (4, 4, 2));
        let runs_dir = sink.layout().partition_dir(Table::Runs, d);
        assert_eq!(read_runs(&runs_dir).len(), 4, "a dry run changes nothing");

        assert_eq!(sink.delete(&ann, false).await.unwrap(), dry);
        let left: Vec<String> = read_runs(&runs_dir)
            .into_iter()
            .map(|r| r.trace_id)
            .collect();
        assert_eq!(left, vec!["c".to_string(), "c".to_string()]);
        let next_day = sink.layout().partition_dir(Table::Runs, d + 1);
        assert!(read_runs(&next_day).is_empty());
        for table in Table::ALL {
            for (_, partition) in sink.store.partitions(table).unwrap() {
                for name in names(&partition) {
                    let bytes = fs::read(partition.join(&name)).unwrap();
                    assert!(!bytes.windows(11).any(|w| w == b"hash-of-ann"), "{name}");
                    assert!(!name.ends_with(TEMP_FILE_SUFFIX), "{name}");
                }
            }
        }
        // Again: nothing left to delete.
        assert_eq!(sink.delete(&ann, false).await.unwrap().runs, 0);

        // Retention: runs without a policy expire after a day.
        let expired = Doomed::Expired(Cutoffs {
            named: Vec::new(),
            default: Some(at(d + 1, 0)),
            from_ns: None,
        });
        let gone = sink.delete(&expired, false).await.unwrap();
        assert_eq!((gone.runs, gone.spans, gone.scores), (2, 2, 0));
        let dropped = sink.drop_days_before(d + 1, false).await.unwrap();
        assert_eq!(dropped.total(), 0, "day {d} had nothing left");
        assert!(!sink.layout().partition_dir(Table::Runs, d).exists());
    }
}
