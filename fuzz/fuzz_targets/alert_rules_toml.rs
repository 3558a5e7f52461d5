//! The alerting rules file (TOML: rules, receivers, inhibit rules), parsed and checked as a
//! reload does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_alerts::config::{RulesFile, check_file};

const DEFAULT_INTERVAL_NS: i64 = 60_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = toml::from_str::<RulesFile>(text) {
        let secret = |_: &str| Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string());
        let _ = check_file(file, DEFAULT_INTERVAL_NS, &secret);
    }
});
