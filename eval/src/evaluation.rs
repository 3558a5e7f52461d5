//! Where every change to datasets and experiments goes, one at a time: on one node, the
//! stores' own logs in the data directory; on many nodes, the log they share
//! ([`vigil_control::shared_log`]), whose entries every node applies in one order. A change is
//! prepared against the state all earlier changes made, then committed; with the shared log,
//! a change that lost a race with another node's is prepared again against the newer state (so
//! two nodes changing one dataset at once make two consecutive versions, each with its change).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::Mutex;
use vigil_control::{
    ControlError,
    shared_log::{Appended, Position, SharedLog},
};

use crate::{
    dataset::{DatasetName, DatasetSummary, Item, Version},
    datasets::{self, DatasetStore},
    experiments::{self, Experiment, ExperimentSpec, ExperimentStore, Link},
    log::{EventLog, StoreError},
};

/// How long a change waits for the shared log's entries to be readable from this node's
/// ClickHouse replica before it gives up (unavailable).
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(10);
/// How many races with other nodes one change runs before it gives up (unavailable).
const MAX_RACES: usize = 20;

/// One change to the evaluation state, as the shared log keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Change {
    Dataset(datasets::Event),
    Experiment(experiments::Event),
    /// A node's own datasets and experiments, brought into the shared log at once.
    Imported(Vec<Change>),
}

/// The datasets and experiments of every project, and how their changes are made.
pub struct Evaluation {
    pub datasets: Arc<DatasetStore>,
    pub experiments: Arc<ExperimentStore>,
    shared: Option<SharedLog>,
    /// Held by each change from preparation to commit; with the shared log, the position of
    /// the last entry applied.
    applied: Mutex<Position>,
    /// With the shared log: the data directory whose own logs are still to be imported.
    import_from: parking_lot::Mutex<Option<PathBuf>>,
}

impl Evaluation {
    /// The node's own stores, their logs in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Evaluation, StoreError> {
        let datasets = Arc::new(DatasetStore::open(data_dir)?);
        let experiments = Arc::new(ExperimentStore::open(data_dir, datasets.clone())?);
        Ok(Evaluation::with(datasets, experiments, None))
    }

    /// The stores every node shares through `log`: empty until [`Self::refresh`] reads it.
    /// The datasets and experiments this node kept in `data_dir` before are imported at the
    /// first refresh (see [`Self::refresh`]).
    pub fn shared(log: SharedLog, data_dir: &Path) -> Evaluation {
        let datasets = Arc::new(DatasetStore::in_memory());
        let experiments = Arc::new(ExperimentStore::in_memory(datasets.clone()));
        let evaluation = Evaluation::with(datasets, experiments, Some(log));
        *evaluation.import_from.lock() = Some(data_dir.to_path_buf());
        evaluation
    }

    fn with(
        datasets: Arc<DatasetStore>,
        experiments: Arc<ExperimentStore>,
        shared: Option<SharedLog>,
    ) -> Evaluation {
        Evaluation {
            datasets,
            experiments,
            shared,
            applied: Mutex::new(Position::default()),
            import_from: parking_lot::Mutex::new(None),
        }
    }

    /// Whether the changes go through the shared log.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Creates an empty dataset.
    pub async fn create_dataset(
        &self,
        project: &str,
        name: DatasetName,
        description: String,
        at_ns: i64,
        by: &str,
    ) -> Result<DatasetSummary, StoreError> {
        self.change(|| {
            let event = self.datasets.prepare_create(
                project,
                name.clone(),
                description.clone(),
                at_ns,
                by,
            )?;
            Ok(Some((Change::Dataset(event), ())))
        })
        .await?;
        self.datasets.summary(project, &name)
    }

    /// Writes `upserts` and deletes `deletes` as one new version; `None` when that changes
    /// nothing (no version is made).
    pub async fn change_dataset(
        &self,
        project: &str,
        name: &DatasetName,
        upserts: Vec<Item>,
        deletes: Vec<String>,
        at_ns: i64,
        by: &str,
    ) -> Result<Option<Version>, StoreError> {
        self.change(|| {
            let prepared = self.datasets.prepare_change(
                project,
                name,
                upserts.clone(),
                deletes.clone(),
                at_ns,
                by,
            )?;
            Ok(prepared.map(|(event, version)| (Change::Dataset(event), version)))
        })
        .await
    }

    /// Creates an experiment of `spec`.
    pub async fn create_experiment(
        &self,
        project: &str,
        spec: ExperimentSpec,
        at_ns: i64,
        by: &str,
    ) -> Result<Experiment, StoreError> {
        let created = self
            .change(|| {
                let (event, experiment) =
                    self.experiments
                        .prepare_create(project, spec.clone(), at_ns, by)?;
                Ok(Some((Change::Experiment(event), experiment)))
            })
            .await?;
        created.ok_or_else(|| {
            StoreError::Shared(ControlError::Refused(
                "the experiment was not created".into(),
            ))
        })
    }

    /// Links runs to items of an experiment's dataset version (a link already in place
    /// changes nothing). How many items are linked now.
    pub async fn link(
        &self,
        project: &str,
        id: &str,
        links: Vec<Link>,
    ) -> Result<usize, StoreError> {
        self.change(|| {
            let event = self.experiments.prepare_link(project, id, links.clone())?;
            Ok(event.map(|event| (Change::Experiment(event), ())))
        })
        .await?;
        self.experiments.linked(project, id)
    }

    /// Applies what other nodes appended to the shared log since the last read (nothing to do
    /// with the node's own logs). The first that succeeds imports what the node kept in its
    /// own logs before it shared them.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let Some(log) = &self.shared else {
            return Ok(());
        };
        let import_from = self.import_from.lock().clone();
        if let Some(data_dir) = import_from {
            self.import(&data_dir).await?;
            *self.import_from.lock() = None;
        }
        let mut applied = self.applied.lock().await;
        let head = log.head().await?;
        self.catch_up(log, &mut applied, &head.position, Duration::ZERO)
            .await
            .map(|_| ())
    }

    /// Imports the datasets this node kept in `data_dir`'s own logs whose names no node shares
    /// yet, with their experiments, as one entry of the shared log; then the logs are renamed
    /// `*.imported`. A dataset whose name is taken is left out (its experiments too), and said.
    async fn import(&self, data_dir: &Path) -> Result<(), StoreError> {
        let files = [datasets::LOG_FILE, experiments::LOG_FILE].map(|f| data_dir.join(f));
        if !files.iter().any(|f| f.exists()) {
            return Ok(());
        }
        let own_datasets: Vec<datasets::Event> = own_events(data_dir, datasets::LOG_FILE)?;
        let own_experiments: Vec<experiments::Event> = own_events(data_dir, experiments::LOG_FILE)?;
        let imported = self
            .change(|| {
                let mut taken = BTreeSet::new();
                let mut batch = Vec::new();
                for event in &own_datasets {
                    let (project, name) = event.dataset();
                    if matches!(event, datasets::Event::Created { .. })
                        && self.datasets.contains(project, name)
                    {
                        taken.insert((project, name));
                    }
                    if !taken.contains(&(project, name)) {
                        batch.push(Change::Dataset(event.clone()));
                    }
                }
                let mut left_out = BTreeSet::new();
                for event in &own_experiments {
                    let (project, id) = event.experiment();
                    if let experiments::Event::Created { experiment, .. } = event
                        && (taken.contains(&(project, &experiment.dataset))
                            || self.experiments.contains(project, id))
                    {
                        left_out.insert((project, id));
                    }
                    if !left_out.contains(&(project, id)) {
                        batch.push(Change::Experiment(event.clone()));
                    }
                }
                let taken: Vec<String> = taken
                    .into_iter()
                    .map(|(project, name)| format!("{project}/{name}"))
                    .collect();
                let answer = (batch.len(), taken);
                Ok((!batch.is_empty()).then_some((Change::Imported(batch), answer)))
            })
            .await?;
        if let Some((changes, taken)) = imported {
            tracing::info!(
                changes,
                "this node's own datasets and experiments are imported into the shared log"
            );
            for dataset in taken {
                tracing::warn!(
                    dataset,
                    "this node's own dataset is not imported into the shared log (nor its experiments): another node's has its name"
                );
            }
        }
        for file in files.iter().filter(|f| f.exists()) {
            let mut renamed = file.clone().into_os_string();
            renamed.push(".imported");
            std::fs::rename(file, &renamed).map_err(|source| StoreError::Io {
                path: file.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Makes one change: `prepare` gives it (and what the caller is answered), or `None` when
    /// there is nothing to change, against the state every earlier change made.
    async fn change<R>(
        &self,
        prepare: impl Fn() -> Result<Option<(Change, R)>, StoreError>,
    ) -> Result<Option<R>, StoreError> {
        let mut applied = self.applied.lock().await;
        let Some(log) = &self.shared else {
            let Some((change, answer)) = prepare()? else {
                return Ok(None);
            };
            // The commit fsyncs: off the async threads.
            let (datasets, experiments) = (self.datasets.clone(), self.experiments.clone());
            tokio::task::spawn_blocking(move || commit(&datasets, &experiments, change))
                .await
                .map_err(|e| {
                    StoreError::Shared(ControlError::Refused(format!(
                        "the change did not finish: {e}"
                    )))
                })??;
            return Ok(Some(answer));
        };
        for _ in 0..MAX_RACES {
            let head = log.head().await?;
            if !self
                .catch_up(log, &mut applied, &head.position, CATCH_UP_PATIENCE)
                .await?
            {
                return Err(StoreError::Shared(ControlError::Unavailable(format!(
                    "the shared evaluation log's entries up to {} are not readable from \
                     ClickHouse yet",
                    head.position.seq
                ))));
            }
            let Some((change, answer)) = prepare()? else {
                return Ok(None);
            };
            let event = serde_json::to_value(&change)
                .map_err(|e| StoreError::Shared(ControlError::Refused(e.to_string())))?;
            match log.append(&head, event).await? {
                Appended::At(position) => {
                    commit(&self.datasets, &self.experiments, change)?;
                    *applied = position;
                    return Ok(Some(answer));
                }
                Appended::Raced => continue,
            }
        }
        Err(StoreError::Shared(ControlError::Unavailable(format!(
            "{MAX_RACES} changes of other nodes came first; try again"
        ))))
    }

    /// Applies the shared log's entries after `applied` up to `head`, waiting up to `patience`
    /// for them to be readable. Whether it got there.
    async fn catch_up(
        &self,
        log: &SharedLog,
        applied: &mut Position,
        head: &Position,
        patience: Duration,
    ) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(entries) = log.read(applied, head).await? {
                for (position, event) in entries {
                    let change: Change = serde_json::from_value(event).map_err(|e| {
                        StoreError::Shared(ControlError::Refused(format!(
                            "{} entry {}: {e}",
                            log.path(),
                            position.seq
                        )))
                    })?;
                    commit(&self.datasets, &self.experiments, change)?;
                    *applied = position;
                }
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The events of a store's own log in `data_dir` (none when it has none).
fn own_events<E: Serialize + DeserializeOwned>(
    data_dir: &Path,
    file: &str,
) -> Result<Vec<E>, StoreError> {
    let mut events = Vec::new();
    if data_dir.join(file).exists() {
        EventLog::open(data_dir, file, |event| {
            events.push(event);
            Ok(())
        })?;
    }
    Ok(events)
}

fn commit(
    datasets: &DatasetStore,
    experiments: &ExperimentStore,
    change: Change,
) -> Result<(), StoreError> {
    match change {
        Change::Dataset(event) => datasets.commit(event),
        Change::Experiment(event) => experiments.commit(event),
        Change::Imported(changes) => changes
            .into_iter()
            .try_for_each(|change| commit(datasets, experiments, change)),
    }
}
