//! Fuzzes what `ls`, `get` and `decode` run on untrusted bytes: the keyspace
//! scan over a (possibly damaged) file, and the Kubernetes value decoder
//! (and that `verify --deep`'s fast check agrees with it).
#![no_main]

use std::ops::ControlFlow;

use etcdsnap::bolt::Db;
use etcdsnap::mvcc::keyspace::KeySpace;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As a stored value.
    let full = etcdsnap::kube::value::decode(data);
    // The fast check of `verify --deep` never passes what the decoder refuses,
    // and reads the name and namespace the decoded object shows.
    if let etcdsnap::kube::validate::Fast::Decodes { name, namespace } =
        etcdsnap::kube::validate::check_protobuf(data)
    {
        let Ok(obj) = &full else {
            panic!("fast check passed a value the decoder refuses: {full:?}")
        };
        let meta = |k: &str| {
            obj.get("metadata")
                .and_then(|m| m.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!((meta("name"), meta("namespace")), (name, namespace));
    }
    if let Ok(v) = full {
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
