//! `vigil.toml`: parsed over the defaults and checked, as `vigil serve` does at start. The
//! configuration lives in the binary crate; its module is compiled into this target as is.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/config.rs"]
mod config;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = config::Config::parse(Some(text), None, std::iter::empty());
    }
});
