//! Vigil's wire types: the native `vigil.v1` gRPC API, generated from `proto/`, and the
//! OpenTelemetry (OTLP) trace types Vigil also accepts, re-exported so every crate uses one copy.

/// The native ingest API (`vigil.v1.IngestService`).
pub mod v1 {
    tonic::include_proto!("vigil.v1");
}

/// The write-ahead log's record payload (`vigil.wal.v1.Batch`): rows as the collector stores
/// them, in a form that later versions keep reading.
pub mod wal {
    pub mod v1 {
        tonic::include_proto!("vigil.wal.v1");
    }
}

/// OTLP trace types and the `TraceService` server/client.
pub use opentelemetry_proto::tonic as otlp;
