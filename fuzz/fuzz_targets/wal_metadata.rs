//! Fuzzes the reader of the member a data dir holds
//! (`cluster::datadir::wal_metadata`): any bytes give the two IDs or an
//! error with an offset inside the bytes, never a panic; IDs read are
//! never zero.
//! Seeds: fuzz/seeds/wal_metadata (the first 4 KiB of a WAL segment
//! written by etcd 3.5.1).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match etcdsnap::cluster::datadir::wal_metadata(data) {
        Ok(h) => assert!(h.member_id != 0 && h.cluster_id != 0),
        Err((offset, why)) => {
            assert!(offset <= data.len() as u64);
            assert!(!why.is_empty());
        }
    }
});
