//! OTLP/HTTP JSON: an `ExportTraceServiceRequest` in OTLP/JSON (hex ids, string numbers), parsed
//! as the HTTP handler does, then mapped to runs and spans.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_collector::{otlp::decode_otlp, otlp_json};
use vigil_schemas::limits::Limits;

const NOW_NS: i64 = 1_796_083_200_000_000_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = otlp_json::parse(data) {
        decode_otlp(request, &Limits::default(), NOW_NS);
    }
});
