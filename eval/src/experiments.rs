//! Every project's experiments, in memory, each change appended to
//! `<data dir>/experiments.jsonl` ([`crate::log`]) before it is applied: an experiment created
//! (pinned to a dataset version), runs linked to its items.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::Arc,
};

use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    dataset::{DatasetName, EvalError, Item},
    datasets::DatasetStore,
    experiment::{Compiled, Evaluator, MAX_EXPERIMENT_NAME_BYTES, SystemVersion},
    log::{EventLog, StoreError},
};

/// The log's file name in the data directory.
pub const LOG_FILE: &str = "experiments.jsonl";
/// Most links one request makes.
pub const MAX_LINKS_PER_REQUEST: usize = 1000;

/// An experiment to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// What is tried, e.g. `support-bot prompt v8`.
    #[schema(max_length = 200)]
    pub name: String,
    /// The dataset run.
    pub dataset: String,
    /// Its version (default: the newest); at least 1.
    #[serde(default)]
    pub dataset_version: Option<u32>,
    #[serde(default)]
    pub system: SystemVersion,
    #[serde(default)]
    pub evaluators: Vec<Evaluator>,
}

/// An experiment as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = StoredExperiment)]
pub struct Experiment {
    /// `exp_` and 16 hexadecimal characters.
    pub id: String,
    pub name: String,
    #[schema(value_type = String)]
    pub dataset: DatasetName,
    pub dataset_version: u32,
    pub system: SystemVersion,
    pub evaluators: Vec<Evaluator>,
    pub created_at_ns: i64,
    pub created_by: String,
}

/// A run executing an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub item_id: String,
    #[schema(pattern = "^[0-9a-fA-F]{32}$")]
    pub trace_id: String,
}

/// One change: a line of the log, or an entry of the shared log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Created {
        project: String,
        experiment: Box<Experiment>,
    },
    Linked {
        project: String,
        id: String,
        links: Vec<Link>,
    },
}

impl Event {
    /// The experiment changed: its project and id.
    pub fn experiment(&self) -> (&str, &str) {
        match self {
            Event::Created {
                project,
                experiment,
            } => (project, &experiment.id),
            Event::Linked { project, id, .. } => (project, id),
        }
    }
}

/// An experiment and the run linked to each item (the last link of an item wins: a retried
/// item is linked again).
#[derive(Debug, Clone)]
struct Entry {
    experiment: Experiment,
    links: BTreeMap<String, String>,
}

type Experiments = BTreeMap<(String, String), Entry>;

struct State {
    /// The node's own log; none when the changes come from the shared log.
    log: Option<EventLog<Event>>,
    experiments: Experiments,
}

/// Every project's experiments, read from memory; changed in two steps like
/// [`DatasetStore`]: prepared, then committed.
pub struct ExperimentStore {
    datasets: Arc<DatasetStore>,
    state: Mutex<State>,
}

/// An experiment with what it needs to be read: its dataset version's items and the runs linked.
pub struct ExperimentWithItems {
    pub experiment: Experiment,
    pub items: Vec<Item>,
    pub links: BTreeMap<String, String>,
    pub evaluators: Compiled,
}

impl ExperimentStore {
    /// Opens (or starts) the log in `data_dir`; experiments read their items from `datasets`.
    pub fn open(
        data_dir: &Path,
        datasets: Arc<DatasetStore>,
    ) -> Result<ExperimentStore, StoreError> {
        let mut experiments = Experiments::new();
        let log = EventLog::open(data_dir, LOG_FILE, |event| replay(&mut experiments, event))?;
        Ok(ExperimentStore::with(datasets, Some(log), experiments))
    }

    /// An empty store without a log, its changes committed from the shared log.
    pub fn in_memory(datasets: Arc<DatasetStore>) -> ExperimentStore {
        ExperimentStore::with(datasets, None, Experiments::new())
    }

    fn with(
        datasets: Arc<DatasetStore>,
        log: Option<EventLog<Event>>,
        experiments: Experiments,
    ) -> ExperimentStore {
        ExperimentStore {
            datasets,
            state: Mutex::new(State { log, experiments }),
        }
    }

    /// The creation of an experiment of `spec`: its dataset version pinned, its evaluators
    /// checked.
    pub fn prepare_create(
        &self,
        project: &str,
        spec: ExperimentSpec,
        at_ns: i64,
        by: &str,
    ) -> Result<(Event, Experiment), StoreError> {
        if spec.name.trim().is_empty() || spec.name.len() > MAX_EXPERIMENT_NAME_BYTES {
            return Err(EvalError::invalid(
                "name",
                format!("1-{MAX_EXPERIMENT_NAME_BYTES} bytes, not blank"),
            )
            .into());
        }
        let dataset = DatasetName::parse("dataset", &spec.dataset)?;
        let summary = self.datasets.summary(project, &dataset)?;
        let version = spec.dataset_version.unwrap_or(summary.latest_version);
        if version == 0 || version > summary.latest_version {
            return Err(EvalError::invalid(
                "dataset_version",
                format!(
                    "dataset {dataset} has versions 1 to {} to run (version 0 is empty); got \
                     {version}",
                    summary.latest_version
                ),
            )
            .into());
        }
        Compiled::new(&spec.evaluators)?;
        let experiment = Experiment {
            id: format!("exp_{:016x}", rand::rng().random::<u64>()),
            name: spec.name,
            dataset,
            dataset_version: version,
            system: spec.system,
            evaluators: spec.evaluators,
            created_at_ns: at_ns,
            created_by: by.to_string(),
        };
        let event = Event::Created {
            project: project.to_string(),
            experiment: Box::new(experiment.clone()),
        };
        Ok((event, experiment))
    }

    /// Appends a prepared change to the log (if the store has one) and applies it.
    pub fn commit(&self, event: Event) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        if let Some(log) = state.log.as_mut() {
            log.append(&event)?;
        }
        StoreError::not_applied(LOG_FILE, replay(&mut state.experiments, event))
    }

    /// The project's experiments (of one dataset, when given), newest first.
    pub fn list(&self, project: &str, dataset: Option<&DatasetName>) -> Vec<Experiment> {
        let mut list: Vec<Experiment> = self
            .state
            .lock()
            .experiments
            .iter()
            .filter(|((p, _), entry)| {
                p == project && dataset.is_none_or(|d| entry.experiment.dataset == *d)
            })
            .map(|(_, entry)| entry.experiment.clone())
            .collect();
        list.sort_by(|a, b| b.created_at_ns.cmp(&a.created_at_ns).then(a.id.cmp(&b.id)));
        list
    }

    /// An experiment with its items and links.
    pub fn view(&self, project: &str, id: &str) -> Result<ExperimentWithItems, StoreError> {
        let entry = self.entry(project, id)?;
        let items = self.pinned_items(project, &entry.experiment)?;
        let evaluators = Compiled::new(&entry.experiment.evaluators)?;
        Ok(ExperimentWithItems {
            experiment: entry.experiment,
            items,
            links: entry.links,
            evaluators,
        })
    }

    /// The links of runs to items of the experiment's dataset version (each checked as
    /// `items[i]`) that are not in place yet; `None` when all are.
    pub fn prepare_link(
        &self,
        project: &str,
        id: &str,
        links: Vec<Link>,
    ) -> Result<Option<Event>, StoreError> {
        if links.is_empty() || links.len() > MAX_LINKS_PER_REQUEST {
            return Err(EvalError::invalid(
                "items",
                format!("{} links, give 1 to {MAX_LINKS_PER_REQUEST}", links.len()),
            )
            .into());
        }
        let entry = self.entry(project, id)?;
        let items = self.pinned_items(project, &entry.experiment)?;
        let known: BTreeSet<&str> = items.iter().map(|item| item.id.as_str()).collect();
        let mut checked = Vec::with_capacity(links.len());
        for (i, link) in links.into_iter().enumerate() {
            if !known.contains(link.item_id.as_str()) {
                return Err(EvalError::invalid(
                    format!("items[{i}].item_id"),
                    format!(
                        "no item {:?} in version {} of dataset {}",
                        link.item_id, entry.experiment.dataset_version, entry.experiment.dataset
                    ),
                )
                .into());
            }
            vigil_schemas::limits::check_hex_id(
                &format!("items[{i}].trace_id"),
                &link.trace_id,
                32,
            )
            .map_err(|e| EvalError::invalid(e.field, e.reason))?;
            checked.push(Link {
                item_id: link.item_id,
                trace_id: link.trace_id.to_ascii_lowercase(),
            });
        }
        // A link already in place is not written again (runs linked by their attributes are
        // linked again whenever their batch is written again).
        checked.retain(|link| entry.links.get(&link.item_id) != Some(&link.trace_id));
        Ok((!checked.is_empty()).then(|| Event::Linked {
            project: project.to_string(),
            id: id.to_string(),
            links: checked,
        }))
    }

    /// Whether the project has an experiment of this id.
    pub fn contains(&self, project: &str, id: &str) -> bool {
        self.with_entry(project, id, |_| ()).is_ok()
    }

    /// How many items of an experiment have a run linked.
    pub fn linked(&self, project: &str, id: &str) -> Result<usize, StoreError> {
        self.with_entry(project, id, |entry| entry.links.len())
    }

    /// The items of the dataset version `experiment` runs.
    fn pinned_items(
        &self,
        project: &str,
        experiment: &Experiment,
    ) -> Result<Vec<Item>, StoreError> {
        let (_, items) = self.datasets.items(
            project,
            &experiment.dataset,
            Some(experiment.dataset_version),
        )?;
        Ok(items)
    }

    fn entry(&self, project: &str, id: &str) -> Result<Entry, StoreError> {
        self.with_entry(project, id, Entry::clone)
    }

    fn with_entry<T>(
        &self,
        project: &str,
        id: &str,
        f: impl FnOnce(&Entry) -> T,
    ) -> Result<T, StoreError> {
        self.state
            .lock()
            .experiments
            .get(&(project.to_string(), id.to_string()))
            .map(f)
            .ok_or_else(|| {
                EvalError::NotFound(format!("no experiment {id:?} in this project")).into()
            })
    }
}

/// Applies one event read back from the log.
fn replay(experiments: &mut Experiments, event: Event) -> Result<(), String> {
    match event {
        Event::Created {
            project,
            experiment,
        } => {
            let key = (project, experiment.id.clone());
            let id = experiment.id.clone();
            let entry = Entry {
                experiment: *experiment,
                links: BTreeMap::new(),
            };
            if experiments.insert(key, entry).is_some() {
                return Err(format!("experiment {id} is created twice"));
            }
        }
        Event::Linked { project, id, links } => {
            let entry = experiments
                .get_mut(&(project, id.clone()))
                .ok_or_else(|| format!("experiment {id} is linked before it is created"))?;
            for link in links {
                entry.links.insert(link.item_id, link.trace_id);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Evaluation, dataset::ItemInput};

    fn spec(version: Option<u32>) -> ExperimentSpec {
        serde_json::from_value(json!({
            "name": "prompt v8",
            "dataset": "golden",
            "dataset_version": version,
            "system": {"prompt_version": "v8"},
            "evaluators": [{"type": "exact_match", "name": "exact"}],
        }))
        .expect("spec")
    }

    #[tokio::test]
    async fn experiments_pin_a_version_and_keep_their_links_across_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let id = {
            let evaluation = Evaluation::open(dir.path()).expect("open");
            let name = DatasetName::parse("name", "golden").expect("name");
            evaluation
                .create_dataset("p", name.clone(), String::new(), 1, "k")
                .await
                .expect("dataset");
            assert!(matches!(
                evaluation.create_experiment("p", spec(None), 2, "k").await,
                Err(StoreError::Eval(EvalError::Invalid { field, .. })) if field == "dataset_version"
            ));
            let items = ["a", "b"]
                .iter()
                .map(|id| {
                    ItemInput {
                        id: Some(id.to_string()),
                        input: Some(json!(id)),
                        ..Default::default()
                    }
                    .into_item("items[0]")
                    .expect("item")
                })
                .collect();
            evaluation
                .change_dataset("p", &name, items, vec![], 3, "k")
                .await
                .expect("v1");
            let experiment = evaluation
                .create_experiment("p", spec(None), 4, "k")
                .await
                .expect("create");
            assert_eq!(experiment.dataset_version, 1);
            // A newer dataset version does not change what the experiment runs.
            evaluation
                .change_dataset("p", &name, vec![], vec!["b".into()], 5, "k")
                .await
                .expect("v2");
            let link = |item: &str, trace: &str| Link {
                item_id: item.into(),
                trace_id: trace.into(),
            };
            let t = |n: u8| format!("{n:032x}");
            assert_eq!(
                evaluation
                    .link(
                        "p",
                        &experiment.id,
                        vec![link("a", &t(1)), link("b", &t(2))]
                    )
                    .await
                    .expect("link"),
                2
            );
            // Linking again replaces the item's run.
            evaluation
                .link("p", &experiment.id, vec![link("b", &t(3))])
                .await
                .expect("relink");
            assert!(matches!(
                evaluation.link("p", &experiment.id, vec![link("z", &t(1))]).await,
                Err(StoreError::Eval(EvalError::Invalid { field, .. })) if field == "items[0].item_id"
            ));
            assert!(matches!(
                evaluation.link("p", &experiment.id, vec![link("a", "xyz")]).await,
                Err(StoreError::Eval(EvalError::Invalid { field, .. })) if field == "items[0].trace_id"
            ));
            assert!(matches!(
                evaluation.experiments.view("q", &experiment.id),
                Err(StoreError::Eval(EvalError::NotFound(_)))
            ));
            experiment.id
        };
        let experiments = Evaluation::open(dir.path()).expect("reopen").experiments;
        let view = experiments.view("p", &id).expect("view");
        assert_eq!(view.items.len(), 2, "version 1 holds a and b");
        assert_eq!(
            view.links.into_iter().collect::<Vec<_>>(),
            vec![
                ("a".to_string(), format!("{:032x}", 1)),
                ("b".to_string(), format!("{:032x}", 3))
            ]
        );
        assert_eq!(experiments.list("p", None).len(), 1);
        assert!(experiments.list("q", None).is_empty());
    }
}
