//! Vigil's read side: trace and session look-ups and the run list, over either store.
//!
//! [`TraceStore`] is the contract; [`EmbeddedStore`] answers it from the embedded store's
//! Parquet files with DataFusion, [`ClickHouseStore`] from ClickHouse with bound SQL. Every read
//! keeps, per key, only the newest version of a row (highest `ingested_at_ns`), so retries, WAL
//! replays and rebuilt runs are counted once.
//!
//! This crate never writes the store and never depends on the collector: the two meet in
//! `vigil-schemas` (row types, Arrow schemas, the on-disk layout).

pub mod audit;
mod clickhouse;
pub mod cohort;
mod cursor;
mod embedded;
mod error;
pub mod metrics;
mod newest;
pub mod rollup;
mod run_list;
pub mod sessions;
mod sql;
mod store;
mod tree;
mod unordered_parquet;
mod versions;

pub use clickhouse::ClickHouseStore;
pub use embedded::EmbeddedStore;
pub use error::{ErrorKind, QueryError};
pub use rollup::RunRollup;
pub use store::{
    DEFAULT_LIMIT, MAX_LIMIT, RunDetail, RunFilter, RunPage, RunWithScores, TraceStore, page_size,
};
