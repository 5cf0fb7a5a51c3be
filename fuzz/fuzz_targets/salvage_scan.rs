//! Fuzzes `salvage`'s page scanner and everything it feeds: page size
//! guessing, the scan of every page, the record checks, the recognisers of
//! etcd's other buckets, the tree labelling, the assembly and the writer. Any
//! bytes must give a result or an error; never a panic, hang or read out of
//! bounds.
#![no_main]

use etcdsnap::salvage::{buckets, output, salvage, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The recognisers on their own: the first byte splits key from value.
    if let Some((&n, rest)) = data.split_first() {
        let (key, value) = rest.split_at((n as usize).min(rest.len()));
        for b in buckets::RECOGNISED {
            let _ = buckets::fits(b, key, value);
        }
    }
    if let Some((size, _)) = scan::page_size(data) {
        let mut n = 0u64;
        let _ = scan::scan(data, size, |f| n += f.node.bytes.len() as u64);
    }
    if let Ok(s) = salvage(data, "fuzz", "/registry") {
        let _ = output::snapshot_bytes(&s);
    }
});
