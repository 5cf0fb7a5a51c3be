//! Fuzzes the strict reader: open, list buckets, iterate every bucket, status.
//! Any input must give a value or an error; never a panic, hang or bad read.
#![no_main]

use std::ops::ControlFlow;

use etcdsnap::bolt::{Db, read};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(db) = Db::open(data) else { return };
    if let Ok(buckets) = read::buckets(&db) {
        for b in &buckets {
            let mut n = 0u64;
            let _ = read::for_each(&db, b, |e| {
                n += e.key.len() as u64 + e.value.len() as u64;
                ControlFlow::Continue(())
            });
        }
    }
    let _ = etcdsnap::backend::status::status(&db);
});
