//! Fuzzes key indexes, which `get` and `history` read from disk (a sidecar or
//! the cache, either of which may be damaged or hostile):
//! - any bytes as an index: parsing never panics, and lookups through a parsed
//!   index against a real snapshot either succeed or say the index is stale;
//! - any bytes as a snapshot: an index made of a file that opens parses, and
//!   finds for every key exactly the revisions it was made from.
#![no_main]

use etcdsnap::bolt::Db;
use etcdsnap::mvcc::index::{self, Identity, KeyIndex};
use etcdsnap::mvcc::keyspace::KeySpace;
use libfuzzer_sys::fuzz_target;

static FIXTURE: &[u8] = include_bytes!("../../fixtures/etcd-3.5.1.db");

fuzz_target!(|data: &[u8]| {
    // As an index, against the real fixture.
    if let Ok(idx) = KeyIndex::parse(data) {
        let db = Db::open(&FIXTURE[..FIXTURE.len() - 32]).expect("fixture opens");
        let ks = KeySpace::open(&db).expect("fixture keyspace");
        for (i, key) in idx.keys() {
            assert_eq!(idx.find(key), Some(i), "parsed keys are sorted and unique");
            let _ = ks.records_at(key, idx.locations(i));
        }
    }
    // As a snapshot: our own index of it must parse and agree with it.
    let Ok(db) = Db::open(data) else { return };
    let Ok(ks) = KeySpace::open(&db) else { return };
    let Ok(id) = Identity::of(&ks, None) else { return };
    let Ok(bytes) = index::build(&ks, &id) else { return };
    let idx = KeyIndex::parse(&bytes).expect("an index we made parses");
    for (i, key) in idx.keys() {
        let found = ks.records_at(key, idx.locations(i)).expect("our index agrees");
        assert!(!found.is_empty());
    }
});
