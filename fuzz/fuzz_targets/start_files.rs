//! Fuzzes the start-file writers (`etcd.env`, the `etcd.yaml` static pod)
//! with arbitrary member names, URLs, token, client URLs and image: what
//! is not refused when parsed comes out with no raw control character, and
//! the pod reads back with exactly its flags (`start_files_check.rs`).
//! Seeds: fuzz/seeds/start_files.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "start_files_check.rs"]
mod start_files_check;

fuzz_target!(|data: &[u8]| {
    start_files_check::check(data);
});
