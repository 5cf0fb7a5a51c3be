//! Fuzzes the JSON reader of stored values (custom resources, aggregated
//! types) and everything `get` does with what it reads: redaction (a `kind`
//! said twice), `--for-apply`, JSON and YAML output. The input follows a `{`,
//! so every run is read as JSON. Seeds: fuzz/seeds/json_value (duplicate
//! kinds, deep nesting, invalid UTF-8, surrogates, numbers).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut v = b"{".to_vec();
    v.extend_from_slice(data);
    // Values nest to 10,000 levels: print and drop them on a large stack, as
    // the command line does.
    let t = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || render(&v))
        .expect("spawn");
    t.join().expect("no panic");
});

fn render(v: &[u8]) {
    let Ok(d) = etcdsnap::kube::value::decode_checked(v) else {
        return;
    };
    let mut obj = d.object;
    etcdsnap::kube::redact::redact_as(&mut obj, etcdsnap::kube::redact::value_is_secret(v));
    let _ = etcdsnap::kube::apply::for_apply(&mut obj, Default::default());
    let _ = etcdsnap::report::to_yaml(&obj);
    let _ = serde_json::to_vec_pretty(&obj);
    etcdsnap::kube::budget::drop_deep(obj);
}
