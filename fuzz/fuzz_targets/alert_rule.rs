//! `PUT /api/v1/alert-rules/{name}` bodies: parsed and checked into a rule as the engine does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_alerts::rule::{Rule, RuleSpec};

const DEFAULT_INTERVAL_NS: i64 = 60_000_000_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<RuleSpec>(data) {
        let _ = Rule::new(spec, DEFAULT_INTERVAL_NS);
    }
});
