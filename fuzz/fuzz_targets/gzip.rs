//! `Content-Encoding: gzip` bodies, inflated up to a limit (64 KiB here, so a zip bomb is cheap).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_collector::gzip::gunzip;

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(inflated) = gunzip(data, LIMIT) {
        assert!(inflated.len() <= LIMIT);
    }
});
