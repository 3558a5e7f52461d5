//! `POST /api/v1/metrics/query` bodies: parsed and checked into a plan, then compiled to SQL for
//! both stores, as the handler and the stores do before anything is read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_query::metrics::{Dialect, MetricQuery, metric_sql};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = serde_json::from_slice::<MetricQuery>(data) else {
        return;
    };
    if let Ok(plan) = query.plan() {
        for dialect in [Dialect::DataFusion, Dialect::ClickHouse] {
            let _ = metric_sql(&plan, "default", dialect);
        }
    }
});
