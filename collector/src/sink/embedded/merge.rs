//! Merging data files of one partition into one file that keeps the newest version of each key,
//! streaming. Every data file is sorted by key, newest version first within a key (the order
//! the writer and every merge write in), or, when sealed, so within each hour
//! ([`super::hours`]); the merge reads each such run of a file a batch at a time, takes the rows
//! in that order across them and keeps the first row of each key. Memory holds one batch per
//! run and one output batch, whatever the size of the files: a whole day can be sealed on a
//! small machine.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    path::{Path, PathBuf},
};

use datafusion::{
    arrow::{
        array::{ArrayRef, RecordBatch},
        compute::{SortOptions, interleave_record_batch},
        error::ArrowError,
        row::{OwnedRow, RowConverter, Rows, SortField},
    },
    parquet::arrow::arrow_reader::ParquetRecordBatchReader,
};
use vigil_schemas::layout::Table;

use super::{conform, hours::segments, open_reader};
use crate::sink::SinkError;

/// Rows per batch read from an input and written to the output.
const BATCH_ROWS: usize = 8 * 1024;

/// What a merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Merged {
    pub rows_read: usize,
    /// Rows read minus the superseded versions.
    pub rows_written: usize,
}

/// Hands `write` the newest version of every key of `inputs` (files of `table`, each sorted by
/// key then newest version first, by runs of row groups), batch by batch, in that order. An input
/// out of that order is an error naming it: merging it would keep older versions.
pub(super) fn merge_files(
    table: Table,
    inputs: &[PathBuf],
    mut write: impl FnMut(&RecordBatch) -> Result<(), SinkError>,
) -> Result<Merged, SinkError> {
    let order = Order::of(table).map_err(|source| SinkError::Encode { table, source })?;
    let mut cursors = Vec::new();
    for path in inputs {
        for row_groups in segments(table, path)? {
            if let Some(cursor) = Cursor::open(table, path, row_groups.collect(), &order)? {
                cursors.push(cursor);
            }
        }
    }
    let mut heap: BinaryHeap<Reverse<(OwnedRow, usize)>> = cursors
        .iter()
        .enumerate()
        .map(|(i, cursor)| Reverse((cursor.order_row(), i)))
        .collect();
    let mut out = Output {
        table,
        pending: Vec::new(),
        merged: Merged::default(),
    };
    let mut last_key: Option<OwnedRow> = None;
    while let Some(Reverse((_, i))) = heap.pop() {
        out.merged.rows_read += 1;
        let cursor = &cursors[i];
        let key = cursor.keys.row(cursor.row);
        if last_key.as_ref().is_none_or(|last| last.row() != key) {
            last_key = Some(key.owned());
            out.pending.push((i, cursor.row));
        }
        let more = if cursors[i].row + 1 < cursors[i].batch.num_rows() {
            cursors[i].row += 1;
            cursors[i].check_order()?;
            true
        } else {
            // The output refers to the current batches: write it before this one is replaced.
            out.flush(&cursors, &mut write)?;
            cursors[i].next_batch(&order)?
        };
        if more {
            heap.push(Reverse((cursors[i].order_row(), i)));
        }
        if out.pending.len() >= BATCH_ROWS {
            out.flush(&cursors, &mut write)?;
        }
    }
    out.flush(&cursors, &mut write)?;
    Ok(out.merged)
}

/// How rows compare: by key, then newest version first; and by key alone.
struct Order {
    rows: RowConverter,
    keys: RowConverter,
}

impl Order {
    fn of(table: Table) -> Result<Order, ArrowError> {
        let schema = table.schema();
        let field = |name: &str, descending: bool| -> Result<SortField, ArrowError> {
            let data_type = schema.field_with_name(name)?.data_type().clone();
            Ok(SortField::new_with_options(
                data_type,
                SortOptions {
                    descending,
                    nulls_first: !descending,
                },
            ))
        };
        let keys = table
            .key_columns()
            .iter()
            .map(|name| field(name, false))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rows = keys.clone();
        for name in table.version_order() {
            rows.push(field(name, true)?);
        }
        Ok(Order {
            rows: RowConverter::new(rows)?,
            keys: RowConverter::new(keys)?,
        })
    }

    /// (rows in merge order, rows of the key alone) of a batch.
    fn convert(&self, table: Table, batch: &RecordBatch) -> Result<(Rows, Rows), ArrowError> {
        let column = |name: &&str| -> Result<ArrayRef, ArrowError> {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is missing")))
        };
        let keys: Vec<ArrayRef> = table
            .key_columns()
            .iter()
            .map(column)
            .collect::<Result<_, _>>()?;
        let mut all = keys.clone();
        for name in table.version_order() {
            all.push(column(name)?);
        }
        Ok((
            self.rows.convert_columns(&all)?,
            self.keys.convert_columns(&keys)?,
        ))
    }
}

/// One input's run of row groups, positioned on a row.
struct Cursor {
    table: Table,
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    batch: RecordBatch,
    order: Rows,
    keys: Rows,
    row: usize,
    /// The last row of the previous batch, to check the order across batches.
    previous: Option<OwnedRow>,
}

impl Cursor {
    /// The input's `row_groups` on their first row; `None` when they have no row.
    fn open(
        table: Table,
        path: &Path,
        row_groups: Vec<usize>,
        order: &Order,
    ) -> Result<Option<Cursor>, SinkError> {
        let reader = open_reader(path, None, BATCH_ROWS, Some(row_groups))?;
        let schema = table.schema();
        let mut cursor = Cursor {
            table,
            path: path.to_path_buf(),
            reader,
            batch: RecordBatch::new_empty(schema),
            order: order.rows.empty_rows(0, 0),
            keys: order.keys.empty_rows(0, 0),
            row: 0,
            previous: None,
        };
        Ok(cursor.next_batch(order)?.then_some(cursor))
    }

    fn order_row(&self) -> OwnedRow {
        self.order.row(self.row).owned()
    }

    /// Moves to the first row of the next non-empty batch; `false` at the end of the file.
    fn next_batch(&mut self, order: &Order) -> Result<bool, SinkError> {
        if self.batch.num_rows() > 0 {
            self.previous = Some(self.order.row(self.batch.num_rows() - 1).owned());
        }
        loop {
            let Some(batch) = self.reader.next() else {
                self.batch = RecordBatch::new_empty(self.table.schema());
                return Ok(false);
            };
            let batch = batch.map_err(|e| self.corrupt(e.to_string()))?;
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = conform(self.table, &batch).map_err(|e| self.corrupt(e))?;
            let (rows, keys) = order
                .convert(self.table, &batch)
                .map_err(|e| self.corrupt(e.to_string()))?;
            (self.batch, self.order, self.keys, self.row) = (batch, rows, keys, 0);
            self.check_order()?;
            return Ok(true);
        }
    }

    /// The current row does not sort before the one read just before it.
    fn check_order(&self) -> Result<(), SinkError> {
        let current = self.order.row(self.row);
        let sorted = match self.row {
            0 => self.previous.as_ref().is_none_or(|p| p.row() <= current),
            row => self.order.row(row - 1) <= current,
        };
        if sorted {
            Ok(())
        } else {
            Err(self.corrupt(
                "rows are not sorted by key, newest version first; the file cannot be merged"
                    .to_string(),
            ))
        }
    }

    fn corrupt(&self, message: String) -> SinkError {
        SinkError::corrupt(&self.path)(message)
    }
}

/// Rows chosen but not written yet: (input, row in its current batch).
struct Output {
    table: Table,
    pending: Vec<(usize, usize)>,
    merged: Merged,
}

impl Output {
    fn flush(
        &mut self,
        cursors: &[Cursor],
        write: &mut impl FnMut(&RecordBatch) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batches: Vec<&RecordBatch> = cursors.iter().map(|c| &c.batch).collect();
        let batch = interleave_record_batch(&batches, &self.pending).map_err(|source| {
            SinkError::Encode {
                table: self.table,
                source,
            }
        })?;
        write(&batch)?;
        self.merged.rows_written += batch.num_rows();
        self.pending.clear();
        Ok(())
    }
}
