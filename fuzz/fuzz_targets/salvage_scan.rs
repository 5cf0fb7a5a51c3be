//! Fuzzes `salvage`'s page scanner and everything it feeds: page size
//! guessing, the scan of every page, the record checks, the tree labelling,
//! the assembly and the writer. Any bytes must give a result or an error;
//! never a panic, hang or read out of bounds.
#![no_main]

use etcdsnap::salvage::{output, salvage, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((size, _)) = scan::page_size(data) {
        let mut n = 0u64;
        let _ = scan::scan(data, size, |f| n += f.node.bytes.len() as u64);
    }
    if let Ok(s) = salvage(data, "fuzz", "/registry") {
        let _ = output::snapshot_bytes(&s);
    }
});
