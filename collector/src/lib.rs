//! Vigil's ingest path. Data moves forward only:
//!
//! ```text
//! grpc (auth) → native | otlp (decode + validate) → enrich → assemble → wal (ack) → batcher → sink
//! ```
//!
//! `pipeline` is the service both front doors share (this crate's gRPC server, and the HTTP
//! server in `vigil-api`). Everything the stores need to agree on lives in `vigil-schemas`.

pub mod assemble;
pub mod batcher;
pub mod draft;
pub mod enrich;
pub mod erasure;
pub mod error;
pub mod grpc;
pub mod gzip;
pub mod native;
pub mod otlp;
pub mod otlp_json;
pub mod pipeline;
pub mod quarantine;
pub mod record;
pub mod retention;
pub mod sink;
pub mod telemetry;
pub mod validate;
pub mod wal;
