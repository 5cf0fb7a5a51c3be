//! Fuzzes the bundle manifest reader (`manifest.json`: JSON parse and every
//! format rule, the member-name rule `--initial-cluster` shares). A manifest
//! that passes must survive its own round trip, and its initial cluster and
//! token go through the `--initial-cluster` parser `bundle inspect` and
//! `install` use to check the IDs (any result, no panic).
//! Seeds: fuzz/seeds/bundle_manifest (a real manifest, and edits of it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = etcdsnap::bundle::manifest::Manifest::parse(data) {
        let again = etcdsnap::bundle::manifest::Manifest::parse(&m.to_bytes())
            .expect("a valid manifest re-reads");
        assert_eq!(again, m);
        assert!(etcdsnap::cluster::membership::is_plain_name(&m.member.name));
        if let Ok(c) = etcdsnap::cluster::membership::Cluster::parse(
            &m.initial_cluster,
            &m.initial_cluster_token,
        ) {
            for member in &c.members {
                assert!(etcdsnap::cluster::membership::is_plain_name(&member.name));
            }
        }
    }
});
