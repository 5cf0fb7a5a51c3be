//! Fuzzes what `ls`, `get` and `decode` run on untrusted bytes: the keyspace
//! scan over a (possibly damaged) file, and the Kubernetes value decoder.
#![no_main]

use std::ops::ControlFlow;

use etcdsnap::bolt::Db;
use etcdsnap::mvcc::keyspace::KeySpace;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As a stored value.
    if let Ok(v) = etcdsnap::kube::value::decode(data) {
        let _ = etcdsnap::report::to_yaml(&v);
    }
    // As a snapshot.
    let Ok(db) = Db::open(data) else { return };
    let Ok(ks) = KeySpace::open(&db) else { return };
    let _ = ks.latest(None, |l| {
        let _ = etcdsnap::kube::value::decode(l.record().kv.value);
        ControlFlow::Continue(())
    });
    let _ = ks.history(b"/registry/pods/default/web-0");
    let _ = etcdsnap::restore::stale::report(&db, "/registry");
    let _ = etcdsnap::mvcc::hashkv::hash_kv(&db, 0, etcdsnap::mvcc::hashkv::TombstoneRule::New);
});
