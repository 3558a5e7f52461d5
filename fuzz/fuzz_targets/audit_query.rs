//! `POST /api/v1/audit/affected` bodies (filters, time range, cursor): parsed and checked into a
//! plan as the handler does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_query::audit::AffectedQuery;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = serde_json::from_slice::<AffectedQuery>(data) {
        let _ = query.plan();
    }
});
