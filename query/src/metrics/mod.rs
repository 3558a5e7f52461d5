//! The metric engine (in progress): a request (`POST /api/v1/metrics/query`, API.md) becomes a
//! validated [`MetricPlan`]; then SQL for ClickHouse or for DataFusion, the only step that
//! differs per store. So far: the catalog of metrics and fields with the meaning of every
//! grouping ([`catalog`]), request validation ([`request`]), and the exact percentile aggregate
//! DataFusion needs to answer like ClickHouse's `quantileExact` ([`percentile`]).

pub mod catalog;
pub mod percentile;
pub mod request;

pub use catalog::{Field, Metric, Subject};
pub use request::{MetricPlan, MetricQuery};
