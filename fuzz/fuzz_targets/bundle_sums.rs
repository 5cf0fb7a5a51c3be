//! Fuzzes the `SHA256SUMS` reader (`bundle::read::parse_sums`): any bytes
//! give a list or an error naming the line, never a panic; every name and
//! digest it accepts is written back as the same line.
//! Seeds: fuzz/seeds/bundle_sums (a real SHA256SUMS, and edits of it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = etcdsnap::bundle::read::parse_sums(data) {
        let mut text = String::new();
        for (name, sum) in &v {
            assert_eq!(sum.len(), 64);
            assert!(!name.is_empty());
            text.push_str(&format!("{sum}  {name}\n"));
        }
        let again = etcdsnap::bundle::read::parse_sums(text.as_bytes()).expect("re-reads");
        assert_eq!(again, v);
    }
});
