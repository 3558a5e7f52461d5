//! OTLP over gRPC or OTLP/HTTP protobuf: `ExportTraceServiceRequest` bytes, decoded and mapped to
//! runs and spans as the ingest path does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use vigil_collector::otlp::decode_otlp;
use vigil_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use vigil_schemas::limits::Limits;

const NOW_NS: i64 = 1_796_083_200_000_000_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ExportTraceServiceRequest::decode(data) {
        decode_otlp(request, &Limits::default(), NOW_NS);
    }
});
