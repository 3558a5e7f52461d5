//! Evaluation: what comes before and during a release. Datasets, named sets of tasks (an input,
//! what a good answer is, where the task came from), versioned so that a result can always say
//! which version of its dataset it was run on; experiments, a version run by a system version.
//!
//! - [`dataset`]: the data model, its validation and how a change makes a version (pure);
//! - [`datasets`]: the datasets of every project, kept in an append-only log ([`log`]) in the
//!   data directory, each change fsync'd before it is acknowledged.
//! - [`evaluation`]: where every change to datasets and experiments goes, one at a time: the
//!   node's own logs, or the log every node shares when the store is ClickHouse.
//! - [`experiment`]: an experiment (a dataset version run by a system version), its evaluators,
//!   and what its items' runs add up to (pure); [`experiments`]: every project's experiments
//!   and the runs linked to their items, in a log of their own.
//! - [`compare`]: two experiments on the same dataset version, item by item, with paired tests
//!   and verdicts; [`stats`]: the statistics they rest on, equal to SciPy's.
//! - [`cohort`]: two cohorts of production runs compared with unpaired tests.
//! - [`kill_switch`]: the state agents poll before they run, set by people or by alert rules.

pub mod cohort;
pub mod compare;
pub mod dataset;
pub mod datasets;
pub mod evaluation;
pub mod experiment;
pub mod experiments;
pub mod kill_switch;
pub mod log;
pub mod shared_switches;
pub mod stats;

pub use dataset::{
    Dataset, DatasetName, DatasetSummary, EvalError, Item, ItemInput, Version, VersionChange,
};
pub use datasets::DatasetStore;
pub use evaluation::Evaluation;
pub use log::StoreError;
