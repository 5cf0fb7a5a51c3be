//! Fuzzes the `check` policy reader (a YAML file from the user's disk): any
//! bytes give a policy or an error naming the file, never a panic; a policy
//! that reads serializes and reads back to itself. Seeds:
//! fuzz/seeds/check_policy (every rule, broken ones, and nesting thousands
//! deep in flow, maps, compact sequences and indentation, which must be
//! refused quickly with its line).
#![no_main]

use etcdsnap::check::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse("policy.yaml", text) {
        Ok(p) => {
            let back = serde_yaml_ng::to_string(&p).expect("a policy serializes");
            if let Ok(again) = Policy::parse("policy.yaml", &back) {
                assert_eq!(again, p, "a policy reads back as written");
            }
        }
        Err(e) => {
            let s = e.to_string();
            assert!(s.starts_with("policy.yaml: "), "{s}");
            // Nesting past the cap is refused before parsing, on a line the
            // text has.
            if let Some(rest) = s.strip_prefix("policy.yaml: line ")
                && s.contains("nested deeper than")
            {
                let line: usize = rest
                    .split(':')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a line number");
                assert!(line >= 1 && line <= text.lines().count(), "{s}");
            }
        }
    }
});
