//! Fuzzes the EncryptionConfiguration reader (`--encryption-config`: YAML or
//! JSON from the user's disk) and what a config that reads then does: the
//! API server's dispatch over the spec's team vectors (aescbc, aesgcm,
//! secretbox, kms v2) and over the input itself as a stored value. A config
//! must never print its keys (`Debug` shows `<redacted>`). KMS values go
//! through a stand-in plugin (it "unwraps" to the wrapped bytes), so the
//! envelope reader, the key derivation and the ciphers see any bytes. Seeds:
//! fuzz/seeds/encryption_config (every provider, rotations, JSON, kms).
#![no_main]

use std::sync::Arc;

use etcdsnap::kube::decrypt::kms::{KmsPlugin, UnwrapRequest, envelope};
use etcdsnap::kube::decrypt::{Decryptor, EncryptionConfig, Unwrap};
use libfuzzer_sys::fuzz_target;

/// A plugin that returns what it is sent.
#[derive(Debug)]
struct Echo;

impl Unwrap for Echo {
    fn unwrap_key(&self, _: &KmsPlugin, req: &UnwrapRequest<'_>) -> Result<Vec<u8>, String> {
        Ok(req.wrapped.to_vec())
    }
}

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
    "6b38733a656e633a6b6d733a76323a6b6d732d70726f76696465723a0a25deadbeef01ca9a3b000000005cbc54fe3d0e964badc50ed96ba32055dda9d43869ff3e9d101201311a2c6f4b47696f36536c7071656f71617172724b32757237437873724f3074626133754c6d36753779397672383d",
    "6b38733a656e633a6b6d733a76313a7465737470726f76696465723a002c774d484377385446787366497963724c7a4d334f7a3944523074505531646258324e6e6132397a643374383de0e1e2e3e4e5e6e7e8e9eaebc54ded3320cf4b0a27521316d10a761a397adb2fc2ac5be77c",
];

fuzz_target!(|data: &[u8]| {
    for version in ["v1", "v2"] {
        let _ = envelope(version, data);
    }
    let Ok(config) = EncryptionConfig::parse(data) else {
        return;
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("secret: ["), "key bytes in Debug output");
    let d = Decryptor::new(Some(config), "/registry").with_kms(Arc::new(Echo));
    for v in VECTORS {
        let v = unhex(v);
        for key in [&b"/registry/secrets/default/s1"[..], b"/registry/configmaps/x", b"other"] {
            let _ = d.plaintext(key, &v).map_err(|e| e.to_string());
        }
    }
    let _ = d.plaintext(b"/registry/secrets/default/s1", data);
});
