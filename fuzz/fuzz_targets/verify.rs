//! Fuzzes `verify` end to end on the bytes of a (decompressed) snapshot file.
#![no_main]

use etcdsnap::input::Compression;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = etcdsnap::verify::verify_bytes("fuzz", data, Compression::None);
    let _ = serde_json::to_string(&report.passed);
});
