//! An append-only log of JSON events in the data directory: the durable half of each evaluation
//! store. One line per event, fsync'd before [`EventLog::append`] returns (so before a change is
//! acknowledged), read back whole at start. A last line cut short by a crash was never
//! acknowledged: it is cut off when the log is opened. Any other line that cannot be read (or
//! that its store cannot apply) stops the open, with the line's number, rather than forget state.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Seek, SeekFrom, Write},
    marker::PhantomData,
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

use crate::dataset::EvalError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    Unreadable {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The log every node shares (`crate::evaluation`) could not be read or written.
    #[error(transparent)]
    Shared(#[from] vigil_control::ControlError),
}

impl StoreError {
    /// An event just written to the log `file` that its store could not apply (a bug: the
    /// change was checked before it was written).
    pub(crate) fn not_applied(file: &str, result: Result<(), String>) -> Result<(), StoreError> {
        result.map_err(|message| StoreError::Unreadable {
            path: file.into(),
            line: 0,
            message,
        })
    }
}

/// The open log of events of type `E`.
pub struct EventLog<E> {
    path: PathBuf,
    file: File,
    events: PhantomData<fn(E)>,
}

impl<E: Serialize + DeserializeOwned> EventLog<E> {
    /// Opens (or starts) `<data_dir>/<name>`, handing every event to `apply` in order; an
    /// `Err` from `apply` makes that line unreadable.
    pub fn open(
        data_dir: &Path,
        name: &str,
        mut apply: impl FnMut(E) -> Result<(), String>,
    ) -> Result<EventLog<E>, StoreError> {
        let path = data_dir.join(name);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut complete = 0u64;
        let mut reader = BufReader::new(&file);
        let mut line = String::new();
        for number in 1.. {
            line.clear();
            let read = reader.read_line(&mut line).map_err(io)?;
            if read == 0 || !line.ends_with('\n') {
                break;
            }
            let unreadable = |message: String| StoreError::Unreadable {
                path: path.clone(),
                line: number,
                message,
            };
            let event: E = serde_json::from_str(&line).map_err(|e| unreadable(e.to_string()))?;
            apply(event).map_err(unreadable)?;
            complete += read as u64;
        }
        drop(reader);
        if file.metadata().map_err(io)?.len() > complete {
            // A torn last line: never acknowledged.
            file.set_len(complete).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(EventLog {
            path,
            file,
            events: PhantomData,
        })
    }

    /// Appends one event and makes it durable.
    pub fn append(&mut self, event: &E) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(event).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(io)
    }
}
