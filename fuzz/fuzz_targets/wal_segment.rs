//! WAL segment files: walked frame by frame as the server does when it opens the log (a torn or
//! corrupt tail stops the walk), and each whole record decoded as the batcher and `vigil wal`
//! do, in every record format this binary reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_collector::{record, wal::walk_segment};

fuzz_target!(|data: &[u8]| {
    walk_segment(data, |_, payload| {
        let _ = record::decode(payload);
    });
    // A payload on its own, as if its frame had checked out.
    let _ = record::decode(data);
});
