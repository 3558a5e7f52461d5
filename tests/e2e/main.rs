//! Vigil end to end: the real `vigil` binary, real ClickHouse servers, the real Python
//! OpenTelemetry SDK and real HTTP receivers, one module per area. One test binary, so DataFusion
//! and the ClickHouse client are linked once; `cargo test --test e2e <area>::` runs one area.

#![allow(clippy::unwrap_used)]

// First: its macros (`on_both_stores!`) are used by the areas below.
#[macro_use]
mod support;

mod access;
mod alerts;
mod api_fuzz;
mod cluster;
mod cohorts;
mod compliance;
mod crash;
mod demo;
mod deploy;
mod evaluation;
mod failover;
mod faults;
mod hostile;
mod ingest;
mod kill_switch;
mod metrics;
mod nodes;
mod on_clickhouse;
mod readme;
mod shadow;
mod soak;
mod tls;
mod wal;
mod web;
