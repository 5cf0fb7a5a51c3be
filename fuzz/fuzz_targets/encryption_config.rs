//! Fuzzes the EncryptionConfiguration reader (`--encryption-config`: YAML or
//! JSON from the user's disk) and what a config that reads then does: the
//! API server's dispatch over the spec's team vectors (aescbc, aesgcm,
//! secretbox, kms v2) and over the input itself as a stored value. A config
//! must never print its keys (`Debug` shows `<redacted>`). Seeds:
//! fuzz/seeds/encryption_config (every provider, rotations, JSON, kms).
#![no_main]

use etcdsnap::kube::decrypt::{Decryptor, EncryptionConfig};
use libfuzzer_sys::fuzz_target;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

const VECTORS: &[&str] = &[
    "6b38733a656e633a6165736362633a76313a6b6579313a101112131415161718191a1b1c1d1e1fb68d97d627cd7e1eac86a4000ea7ef9d",
    "6b38733a656e633a61657367636d3a76313a6b6579313a202122232425262728292a2bb902d57004fd7662753e7b7aaed5f31ad46ba8583461de60f8",
    "6b38733a656e633a736563726574626f783a76313a6b6579313a303132333435363738393a3b3c3d3e3f4041424344454647396a9e095688459313a65f13bbac7346f5081432febab2ad9e",
    "6b38733a656e633a6b6d733a76323a6b6d732d70726f76696465723a0a0201021201311a0101",
];

fuzz_target!(|data: &[u8]| {
    let Ok(config) = EncryptionConfig::parse(data) else {
        return;
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("secret: ["), "key bytes in Debug output");
    let d = Decryptor::new(Some(config), "/registry");
    for v in VECTORS {
        let v = unhex(v);
        for key in [&b"/registry/secrets/default/s1"[..], b"/registry/configmaps/x", b"other"] {
            let _ = d.plaintext(key, &v).map_err(|e| e.to_string());
        }
    }
    let _ = d.plaintext(b"/registry/secrets/default/s1", data);
});
