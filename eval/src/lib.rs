//! Evaluation: what comes before and during a release. Today: datasets, named sets of tasks
//! (an input, what a good answer is, where the task came from), versioned so that a result can
//! always say which version of its dataset it was run on.
//!
//! - [`dataset`]: the data model, its validation and how a change makes a version (pure);
//! - [`store`]: the datasets of every project in one append-only log in the data directory,
//!   each change fsync'd before it is acknowledged.

pub mod dataset;
pub mod store;

pub use dataset::{
    Dataset, DatasetError, DatasetName, DatasetSummary, Item, ItemInput, Version, VersionChange,
};
pub use store::{DatasetStore, StoreError};
