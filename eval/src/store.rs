//! The datasets of every project, kept in one append-only log, `<data dir>/datasets.jsonl`: one
//! JSON line per event (a dataset created, a version made), fsync'd before the change is
//! acknowledged, read back whole at start. A last line cut short by a crash was never
//! acknowledged: it is cut off when the log is opened. Any other line that cannot be read stops
//! the server from starting, with the line's number, rather than forget a dataset.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::dataset::{
    Dataset, DatasetError, DatasetName, DatasetSummary, Item, Version, VersionChange,
    check_description,
};

/// The log's file name in the data directory.
pub const LOG_FILE: &str = "datasets.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
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
}

/// One line of the log.
#[derive(Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Created {
        project: String,
        name: DatasetName,
        description: String,
        at_ns: i64,
        by: String,
    },
    Changed {
        project: String,
        name: DatasetName,
        version: Version,
        change: VersionChange,
    },
}

struct State {
    file: File,
    datasets: BTreeMap<(String, DatasetName), Dataset>,
}

/// Every project's datasets: read from memory, each change appended to the log.
pub struct DatasetStore {
    path: PathBuf,
    state: Mutex<State>,
}

impl DatasetStore {
    /// Opens (or starts) the log in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<DatasetStore, StoreError> {
        let path = data_dir.join(LOG_FILE);
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
        let mut datasets = BTreeMap::new();
        let mut complete = 0u64;
        let mut reader = BufReader::new(&file);
        let mut line = String::new();
        for number in 1.. {
            line.clear();
            let read = reader.read_line(&mut line).map_err(io)?;
            if read == 0 || !line.ends_with('\n') {
                break;
            }
            let event: Event = serde_json::from_str(&line).map_err(|e| StoreError::Unreadable {
                path: path.clone(),
                line: number,
                message: e.to_string(),
            })?;
            replay(&mut datasets, event).map_err(|message| StoreError::Unreadable {
                path: path.clone(),
                line: number,
                message,
            })?;
            complete += read as u64;
        }
        drop(reader);
        if file.metadata().map_err(io)?.len() > complete {
            // A torn last line: never acknowledged.
            file.set_len(complete).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(DatasetStore {
            path,
            state: Mutex::new(State { file, datasets }),
        })
    }

    /// Creates an empty dataset.
    pub fn create(
        &self,
        project: &str,
        name: DatasetName,
        description: String,
        at_ns: i64,
        by: &str,
    ) -> Result<DatasetSummary, StoreError> {
        check_description(&description)?;
        let mut state = self.state.lock();
        let key = (project.to_string(), name.clone());
        if state.datasets.contains_key(&key) {
            return Err(DatasetError::Exists(name.to_string()).into());
        }
        let event = Event::Created {
            project: project.to_string(),
            name: name.clone(),
            description: description.clone(),
            at_ns,
            by: by.to_string(),
        };
        self.append(&mut state.file, &event)?;
        let dataset = Dataset::new(name, description, at_ns, by.to_string());
        let summary = dataset.summary().clone();
        state.datasets.insert(key, dataset);
        Ok(summary)
    }

    /// The project's datasets, by name.
    pub fn list(&self, project: &str) -> Vec<DatasetSummary> {
        self.state
            .lock()
            .datasets
            .iter()
            .filter(|((p, _), _)| p == project)
            .map(|(_, d)| d.summary().clone())
            .collect()
    }

    /// A dataset and its versions, oldest first.
    pub fn get(
        &self,
        project: &str,
        name: &DatasetName,
    ) -> Result<(DatasetSummary, Vec<Version>), StoreError> {
        self.read(project, name, |d| {
            Ok((d.summary().clone(), d.versions().cloned().collect()))
        })
    }

    /// The items of a version (the newest when `None`).
    pub fn items(
        &self,
        project: &str,
        name: &DatasetName,
        version: Option<u32>,
    ) -> Result<(u32, Vec<Item>), StoreError> {
        self.read(project, name, |d| Ok(d.items(version)?))
    }

    /// Writes `upserts` and deletes `deletes` as one new version; `None` when that changes
    /// nothing (no version is made).
    pub fn change(
        &self,
        project: &str,
        name: &DatasetName,
        upserts: Vec<Item>,
        deletes: Vec<String>,
        at_ns: i64,
        by: &str,
    ) -> Result<Option<Version>, StoreError> {
        let mut state = self.state.lock();
        let state = &mut *state;
        let dataset = state
            .datasets
            .get_mut(&(project.to_string(), name.clone()))
            .ok_or_else(|| DatasetError::NotFound(name.to_string()))?;
        let Some((version, change)) = dataset.next_version(upserts, deletes, at_ns, by)? else {
            return Ok(None);
        };
        let event = Event::Changed {
            project: project.to_string(),
            name: name.clone(),
            version,
            change,
        };
        self.append(&mut state.file, &event)?;
        let Event::Changed {
            version, change, ..
        } = event
        else {
            unreachable!("built above as Changed")
        };
        dataset.apply(version.clone(), change);
        Ok(Some(version))
    }

    fn read<T>(
        &self,
        project: &str,
        name: &DatasetName,
        f: impl FnOnce(&Dataset) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let state = self.state.lock();
        let dataset = state
            .datasets
            .get(&(project.to_string(), name.clone()))
            .ok_or_else(|| DatasetError::NotFound(name.to_string()))?;
        f(dataset)
    }

    /// Appends one event and makes it durable.
    fn append(&self, file: &mut File, event: &Event) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(event).map_err(|e| StoreError::Io {
            path: self.path.clone(),
            source: e.into(),
        })?;
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|source| StoreError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// Applies one event read back from the log.
fn replay(
    datasets: &mut BTreeMap<(String, DatasetName), Dataset>,
    event: Event,
) -> Result<(), String> {
    match event {
        Event::Created {
            project,
            name,
            description,
            at_ns,
            by,
        } => {
            let dataset = Dataset::new(name.clone(), description, at_ns, by);
            if datasets.insert((project, name.clone()), dataset).is_some() {
                return Err(format!("dataset {name} is created twice"));
            }
        }
        Event::Changed {
            project,
            name,
            version,
            change,
        } => {
            let dataset = datasets
                .get_mut(&(project, name.clone()))
                .ok_or_else(|| format!("dataset {name} is changed before it is created"))?;
            let expected = dataset.summary().latest_version + 1;
            if version.version != expected {
                return Err(format!(
                    "dataset {name}: version {} follows version {}",
                    version.version,
                    expected - 1
                ));
            }
            dataset.apply(version, change);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::dataset::ItemInput;

    fn name(text: &str) -> DatasetName {
        DatasetName::parse("name", text).expect("name")
    }

    fn item(id: &str, input: serde_json::Value) -> Item {
        ItemInput {
            id: Some(id.into()),
            input: Some(input),
            ..Default::default()
        }
        .into_item("items[0]")
        .expect("item")
    }

    #[test]
    fn datasets_survive_a_restart_per_project() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let store = DatasetStore::open(dir.path()).expect("open");
            store
                .create("p1", name("golden"), "g".into(), 1, "k1")
                .expect("create");
            store
                .create("p2", name("golden"), String::new(), 1, "k2")
                .expect("the same name in another project");
            assert!(matches!(
                store.create("p1", name("golden"), String::new(), 1, "k1"),
                Err(StoreError::Dataset(DatasetError::Exists(_)))
            ));
            let v = store
                .change(
                    "p1",
                    &name("golden"),
                    vec![item("a", json!(1))],
                    vec![],
                    2,
                    "k1",
                )
                .expect("change");
            assert_eq!(v.map(|v| v.version), Some(1));
            store
                .change("p1", &name("golden"), vec![], vec!["a".into()], 3, "k1")
                .expect("delete");
        }
        let store = DatasetStore::open(dir.path()).expect("reopen");
        let (summary, versions) = store.get("p1", &name("golden")).expect("get");
        assert_eq!((summary.latest_version, summary.items), (2, 0));
        assert_eq!(versions.len(), 2);
        let (_, v1) = store.items("p1", &name("golden"), Some(1)).expect("v1");
        assert_eq!(v1, vec![item("a", json!(1))]);
        assert_eq!(store.list("p2").len(), 1);
        assert!(store.list("p3").is_empty());
        assert!(matches!(
            store.items("p3", &name("golden"), None),
            Err(StoreError::Dataset(DatasetError::NotFound(_)))
        ));
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_a_bad_line_stops_the_open() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let store = DatasetStore::open(dir.path()).expect("open");
            store
                .create("p", name("d"), String::new(), 1, "k")
                .expect("create");
        }
        let path = dir.path().join(LOG_FILE);
        let whole = std::fs::read(&path).expect("read");
        let mut torn = whole.clone();
        torn.extend_from_slice(b"{\"event\":\"changed\",\"proj");
        std::fs::write(&path, &torn).expect("write");
        {
            let store = DatasetStore::open(dir.path()).expect("open a torn log");
            assert_eq!(std::fs::read(&path).expect("read"), whole);
            store
                .change("p", &name("d"), vec![item("a", json!(1))], vec![], 2, "k")
                .expect("append after the cut");
        }
        assert_eq!(
            DatasetStore::open(dir.path())
                .expect("reopen")
                .items("p", &name("d"), None)
                .expect("items")
                .1
                .len(),
            1
        );

        let mut bad = std::fs::read(&path).expect("read");
        bad.extend_from_slice(b"not json\n");
        std::fs::write(&path, &bad).expect("write");
        match DatasetStore::open(dir.path()) {
            Err(StoreError::Unreadable { line, .. }) => assert_eq!(line, 3),
            Err(other) => panic!("expected an unreadable line, got {other}"),
            Ok(_) => panic!("expected an unreadable line, the log opened"),
        }
    }
}
