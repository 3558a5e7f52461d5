//! The native gRPC export: protobuf `vigil.v1.ExportRequest` bytes, decoded and validated as the
//! ingest path does (each item accepted or refused naming its field).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use vigil_collector::native::decode_native;
use vigil_proto::v1::ExportRequest;
use vigil_schemas::limits::Limits;

/// 2026-12-01T00:00:00Z: a fixed "now", so a run is reproducible from its input.
const NOW_NS: i64 = 1_796_083_200_000_000_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ExportRequest::decode(data) {
        decode_native(request, &Limits::default(), NOW_NS);
    }
});
