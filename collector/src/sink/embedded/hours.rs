//! The hour-major layout of sealed files: a sealed file's rows are ordered by the hour of their
//! time column, then by key (newest version first), and no row group spans two hours. A query
//! over an hour's window then reads that hour's row groups alone (the reader skips the others by
//! their statistics), where a file sorted by key alone has every hour in every row group.
//!
//! A merge produces its rows in key order, so a seal spreads them over one scratch file per
//! hour ([`HourFiles`]) and then copies those into the sealed file, hour by hour. A merge reads a
//! file back in key order by taking it as [`segments`]: runs of row groups that each are in key
//! order.

use std::{
    collections::{BTreeMap, btree_map::Entry},
    fs::{self, File},
    ops::Range,
    path::{Path, PathBuf},
};

use datafusion::{
    arrow::{
        array::{BooleanArray, Int64Array, RecordBatch},
        compute::filter_record_batch,
    },
    parquet::{
        file::reader::{FileReader, SerializedFileReader},
        file::{metadata::ParquetMetaData, statistics::Statistics},
    },
};
use vigil_schemas::{layout::Table, time::hour_of};

use super::{FileUse, Store, TempWriter, conform, open_reader};
use crate::sink::SinkError;

/// Rows per row group of the scratch files: small, so that a day's 24 open writers hold little.
const SCRATCH_ROW_GROUP_ROWS: usize = 16 * 1024;

/// Rows per batch copied from a scratch file into the sealed file.
const COPY_BATCH_ROWS: usize = 8 * 1024;

/// Prefix of the scratch files; they are written under temporary names only, so that a crash
/// leaves nothing a reader sees and the next open removes them.
const SCRATCH_FILE_PREFIX: &str = "hour-";

/// One scratch file per hour, taking rows in key order.
pub(super) struct HourFiles<'a> {
    store: &'a Store,
    table: Table,
    day: i64,
    hours: BTreeMap<i64, TempWriter>,
}

impl<'a> HourFiles<'a> {
    pub(super) fn new(store: &'a Store, table: Table, day: i64) -> HourFiles<'a> {
        HourFiles {
            store,
            table,
            day,
            hours: BTreeMap::new(),
        }
    }

    /// Appends each row of `batch` to its hour's scratch file, keeping their order.
    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let table = self.table;
        let hours = hours_of(table, batch)?;
        let mut distinct: Vec<i64> = hours.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let distinct_count = distinct.len();
        for hour in distinct {
            let rows = if distinct_count == 1 {
                batch.clone()
            } else {
                let mask: BooleanArray = hours.iter().map(|h| Some(*h == hour)).collect();
                filter_record_batch(batch, &mask)
                    .map_err(|source| SinkError::Encode { table, source })?
            };
            let writer = match self.hours.entry(hour) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => entry.insert(self.store.create_temp(
                    table,
                    self.day,
                    SCRATCH_FILE_PREFIX,
                    FileUse::Scratch,
                )?),
            };
            writer.write(&rows)?;
            if writer.in_progress_rows() >= SCRATCH_ROW_GROUP_ROWS {
                writer.flush()?;
            }
        }
        Ok(())
    }

    /// Copies every hour's rows into `output`, hour by hour, ending a row group at the end of
    /// each hour. The scratch files are removed, whatever happens.
    pub(super) fn copy_into(self, output: &mut TempWriter) -> Result<(), SinkError> {
        let table = self.table;
        let mut left: Vec<Scratch> = Vec::new();
        for writer in self.hours.into_values() {
            left.push(Scratch(writer.finish()?.tmp));
        }
        for scratch in &left {
            let corrupt = SinkError::corrupt(&scratch.0);
            for batch in open_reader(&scratch.0, None, COPY_BATCH_ROWS, None)? {
                let batch = batch.map_err(|e| corrupt(e.to_string()))?;
                output.write(&conform(table, &batch).map_err(&corrupt)?)?;
            }
            output.flush()?;
        }
        Ok(())
    }
}

/// A scratch file, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The hour of each row of `batch`, by the table's time column.
fn hours_of(table: Table, batch: &RecordBatch) -> Result<Vec<i64>, SinkError> {
    let name = table.time_column();
    let times = batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| SinkError::Internal(format!("{table}: {name} is not Int64")))?;
    Ok(times.values().iter().map(|t| hour_of(*t)).collect())
}

/// The row groups of a file (of `table`) as runs that each are in key order: consecutive row
/// groups whose time column spans the same hours. A sealed file's hours are such runs; a file
/// sorted by key alone has the same (widest) span in nearly every row group, and any run of its
/// row groups is in key order too. Without statistics, each row group is a run.
pub(super) fn segments(table: Table, path: &Path) -> Result<Vec<Range<usize>>, SinkError> {
    let file = File::open(path).map_err(SinkError::io(path))?;
    let reader = SerializedFileReader::new(file).map_err(SinkError::parquet(path))?;
    Ok(segments_of(reader.metadata(), table.time_column()))
}

fn segments_of(metadata: &ParquetMetaData, time_column: &str) -> Vec<Range<usize>> {
    let column = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == time_column);
    let span = |group: usize| -> Option<(i64, i64)> {
        match metadata.row_group(group).column(column?).statistics()? {
            Statistics::Int64(stats) => {
                Some((hour_of(*stats.min_opt()?), hour_of(*stats.max_opt()?)))
            }
            _ => None,
        }
    };
    let mut segments: Vec<Range<usize>> = Vec::new();
    let mut last: Option<(i64, i64)> = None;
    for group in 0..metadata.num_row_groups() {
        let current = span(group);
        match segments.last_mut() {
            Some(segment) if current.is_some() && current == last => segment.end = group + 1,
            _ => segments.push(group..group + 1),
        }
        last = current;
    }
    segments
}
