//! Fuzzes the bundle manifest reader (`manifest.json`: JSON parse and every
//! format rule). A manifest that passes must survive its own round trip.
//! Seeds: fuzz/seeds/bundle_manifest (a real manifest, and edits of it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = etcdsnap::bundle::manifest::Manifest::parse(data) {
        let again = etcdsnap::bundle::manifest::Manifest::parse(&m.to_bytes())
            .expect("a valid manifest re-reads");
        assert_eq!(again, m);
    }
});
