//! Synthetic LLM-agent traffic, and what Vigil does with it:
//!
//! - [`generator`]: a deterministic workload (agents, models, tools, loops, failures, sessions,
//!   feedback) as plain values, so a test computes every expected answer on its own, and as the
//!   requests an SDK would send (native `vigil.v1` or OTLP);
//! - [`demo`]: `vigil demo`, sending it to a running Vigil;
//! - [`bench`]: `vigil bench`, the benchmarks (ingest, ClickHouse ingest, metric queries,
//!   alert evaluation, compliance) against the physical limits they are compared with.
//!
//! The binary only parses the command line and calls in; the end-to-end tests call the
//! generator directly.

pub mod bench;
pub mod demo;
pub mod generator;
