//! The metric engine: a request (`POST /api/v1/metrics/query`, docs/api.md#metrics-query) becomes a
//! validated [`MetricPlan`] ([`request`]), then SQL for ClickHouse or for DataFusion ([`compile`],
//! the only step that differs per store); each store runs it and reads back integer aggregates
//! ([`rows`]), and [`answer`] turns those into the metrics, the same way for both stores.
//! [`catalog`] holds every metric and field, and what each grouping means; [`percentile`] the exact
//! percentile DataFusion needs to answer like ClickHouse's `quantileExact`.

pub(crate) mod aggregate;
pub mod answer;
pub mod catalog;
pub(crate) mod compile;
pub mod openapi;
pub mod percentile;
pub mod request;
pub(crate) mod rows;

pub use answer::{MetricAnswer, MetricRow, MetricValue};
pub use catalog::{Field, Metric, Subject};
pub use compile::{Dialect, metric_sql};
pub use request::{MetricPlan, MetricQuery, ShadowRuns};
