//! The datasets of every project, in memory, each change appended to `<data dir>/datasets.jsonl`
//! ([`crate::log`]) before it is applied: a JSON line per event (a dataset created, a version
//! made).

use std::{collections::BTreeMap, path::Path};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{
    dataset::{
        Dataset, DatasetName, DatasetSummary, EvalError, Item, Version, VersionChange,
        check_description,
    },
    log::{EventLog, StoreError},
};

/// The log's file name in the data directory.
pub const LOG_FILE: &str = "datasets.jsonl";

/// One change: a line of the log, or an entry of the shared log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
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

impl Event {
    /// The dataset changed: its project and name.
    pub fn dataset(&self) -> (&str, &DatasetName) {
        match self {
            Event::Created { project, name, .. } | Event::Changed { project, name, .. } => {
                (project, name)
            }
        }
    }
}

type Datasets = BTreeMap<(String, DatasetName), Dataset>;

struct State {
    /// The node's own log; none when the changes come from the shared log.
    log: Option<EventLog<Event>>,
    datasets: Datasets,
}

/// Every project's datasets, read from memory. A change is made in two steps: prepared
/// against the current datasets (checked, nothing changed), then committed (appended to the
/// log, if the store has one, and applied); `crate::Evaluation` runs them one change at a time.
pub struct DatasetStore {
    state: Mutex<State>,
}

impl DatasetStore {
    /// Opens (or starts) the log in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<DatasetStore, StoreError> {
        let mut datasets = Datasets::new();
        let log = EventLog::open(data_dir, LOG_FILE, |event| replay(&mut datasets, event))?;
        Ok(DatasetStore::with(Some(log), datasets))
    }

    /// An empty store without a log, its changes committed from the shared log.
    pub fn in_memory() -> DatasetStore {
        DatasetStore::with(None, Datasets::new())
    }

    fn with(log: Option<EventLog<Event>>, datasets: Datasets) -> DatasetStore {
        DatasetStore {
            state: Mutex::new(State { log, datasets }),
        }
    }

    /// The creation of an empty dataset.
    pub fn prepare_create(
        &self,
        project: &str,
        name: DatasetName,
        description: String,
        at_ns: i64,
        by: &str,
    ) -> Result<Event, StoreError> {
        check_description(&description)?;
        if self.contains(project, &name) {
            return Err(EvalError::Exists(name.to_string()).into());
        }
        Ok(Event::Created {
            project: project.to_string(),
            name,
            description,
            at_ns,
            by: by.to_string(),
        })
    }

    /// The new version writing `upserts` and deleting `deletes` makes; `None` when that
    /// changes nothing (no version is made).
    pub fn prepare_change(
        &self,
        project: &str,
        name: &DatasetName,
        upserts: Vec<Item>,
        deletes: Vec<String>,
        at_ns: i64,
        by: &str,
    ) -> Result<Option<(Event, Version)>, StoreError> {
        self.read(project, name, |dataset| {
            let Some((version, change)) = dataset.next_version(upserts, deletes, at_ns, by)? else {
                return Ok(None);
            };
            let event = Event::Changed {
                project: project.to_string(),
                name: name.clone(),
                version: version.clone(),
                change,
            };
            Ok(Some((event, version)))
        })
    }

    /// Appends a prepared change to the log (if the store has one) and applies it.
    pub fn commit(&self, event: Event) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        if let Some(log) = state.log.as_mut() {
            log.append(&event)?;
        }
        // What was checked (and written) applies: the same step as a replay at start.
        StoreError::not_applied(LOG_FILE, replay(&mut state.datasets, event))
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

    /// Whether the project has a dataset of this name.
    pub fn contains(&self, project: &str, name: &DatasetName) -> bool {
        self.state
            .lock()
            .datasets
            .contains_key(&(project.to_string(), name.clone()))
    }

    /// A dataset's summary (its newest version and item count).
    pub fn summary(&self, project: &str, name: &DatasetName) -> Result<DatasetSummary, StoreError> {
        self.read(project, name, |d| Ok(d.summary().clone()))
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
            .ok_or_else(|| EvalError::no_dataset(name))?;
        f(dataset)
    }
}

/// Applies one event read back from the log.
fn replay(datasets: &mut Datasets, event: Event) -> Result<(), String> {
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
    use crate::{Evaluation, dataset::ItemInput};

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

    #[tokio::test]
    async fn datasets_survive_a_restart_per_project() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let store = Evaluation::open(dir.path()).expect("open");
            store
                .create_dataset("p1", name("golden"), "g".into(), 1, "k1")
                .await
                .expect("create");
            store
                .create_dataset("p2", name("golden"), String::new(), 1, "k2")
                .await
                .expect("the same name in another project");
            assert!(matches!(
                store
                    .create_dataset("p1", name("golden"), String::new(), 1, "k1")
                    .await,
                Err(StoreError::Eval(EvalError::Exists(_)))
            ));
            let v = store
                .change_dataset(
                    "p1",
                    &name("golden"),
                    vec![item("a", json!(1))],
                    vec![],
                    2,
                    "k1",
                )
                .await
                .expect("change");
            assert_eq!(v.map(|v| v.version), Some(1));
            store
                .change_dataset("p1", &name("golden"), vec![], vec!["a".into()], 3, "k1")
                .await
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
            Err(StoreError::Eval(EvalError::NotFound(_)))
        ));
    }

    #[tokio::test]
    async fn a_torn_last_line_is_cut_off_and_a_bad_line_stops_the_open() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let store = Evaluation::open(dir.path()).expect("open");
            store
                .create_dataset("p", name("d"), String::new(), 1, "k")
                .await
                .expect("create");
        }
        let path = dir.path().join(LOG_FILE);
        let whole = std::fs::read(&path).expect("read");
        let mut torn = whole.clone();
        torn.extend_from_slice(b"{\"event\":\"changed\",\"proj");
        std::fs::write(&path, &torn).expect("write");
        {
            let store = Evaluation::open(dir.path()).expect("open a torn log");
            assert_eq!(std::fs::read(&path).expect("read"), whole);
            store
                .change_dataset("p", &name("d"), vec![item("a", json!(1))], vec![], 2, "k")
                .await
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
