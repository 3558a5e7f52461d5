//! Vigil's data model: the contract between the collector (write side) and the query service
//! (read side). It owns the row types, the field limits, the Arrow schemas both stores share and
//! the model price catalog with nano-dollar cost arithmetic. Access-control state (API keys, the
//! audit log) is `vigil-access`'s.
//!
//! Nothing here does I/O on the hot path. The two stores' layouts live in `layout` (embedded) and
//! `clickhouse` (tables, migrations, row types).

pub mod arrow;
pub mod clickhouse;
pub mod layout;
pub mod limits;
pub mod model;
pub mod openapi;
pub mod percentile;
pub mod prices;
pub mod time;

pub use model::{
    CohortRun, IngestBatch, Outcome, RunRow, SHADOW_TAG, ScoreRow, SpanKind, SpanRow, SpanStatus,
};
