//! Fuzzes the bundle archive entry checker over arbitrary tar bytes: the
//! manifest first, every entry held to it, links/devices/extension headers
//! refused. It must never panic nor allocate beyond its caps. Seeds:
//! fuzz/seeds/bundle_archive (a small valid archive, and one with a symlink).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sink = etcdsnap::bundle::archive::Discard;
    let _ = etcdsnap::bundle::archive::check_archive(data, &mut sink);
});
