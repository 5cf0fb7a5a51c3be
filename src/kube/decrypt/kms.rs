//! KMS-encrypted values. Their data key is wrapped by an external KMS, so
//! only the plugin can unwrap it; offline, the envelope still names the
//! provider and (v2) the key ID, which tell the operator which KMS key to
//! bring back ([`describe`]). With the plugin reachable ([`Unwrap`], which
//! `live::kms` implements over its unix socket), [`open`] decrypts as the API
//! server does:
//! - v1: the data key is the plugin's `Decrypt` of `encDEK`; data written by
//!   1.25+ is AES-GCM (nonce 12 ‖ ct ‖ tag, AAD = etcd key), by 1.24 and
//!   before AES-CBC (IV ‖ ct, PKCS#7): GCM is tried first, then CBC;
//! - v2 type 0 (`AES_GCM_KEY`): the data key is the plugin's `Decrypt` of
//!   `encryptedDEKSource`; data is AES-GCM with AAD = etcd key;
//! - v2 type 1 (`HKDF_SHA256_XNONCE_AES_GCM_SEED`, 1.29+): the plugin returns
//!   a seed; the data key is HKDF-Expand-SHA256(seed, info) where `info` is
//!   the first 32 bytes of the data (no Extract step), then AES-GCM of the
//!   rest with AAD = etcd key.
//!
//! The API server caches each unwrapped key by what was sent to the plugin;
//! [`cache_key`] is that identity, so a caller asks the plugin once per
//! wrapped key, not once per value.
//!
//! v1: `k8s:enc:kms:v1:<provider>:` + `u16 BE len || encDEK || data`.
//! v2: `k8s:enc:kms:v2:<provider>:` + protobuf `EncryptedObject`
//! {1 encryptedData, 2 keyID, 3 encryptedDEKSource, 4 annotations, 5 type}.

use super::config::Cipher;
use super::providers::{OpenError, open as open_cipher};
use crate::protowire::{Fields, Value};

/// A KMS plugin as the EncryptionConfiguration names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsPlugin {
    /// `v1` or `v2`.
    pub version: String,
    /// The provider's name (in each value's prefix).
    pub name: String,
    /// Its socket, as written (`unix:///var/run/kms.sock`).
    pub endpoint: Option<String>,
    /// Its call timeout, as written (`3s`).
    pub timeout: Option<String>,
}

/// What the plugin is asked to unwrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwrapRequest<'v> {
    /// The wrapped data key (v1 `encDEK`, v2 `encryptedDEKSource`).
    pub wrapped: &'v [u8],
    /// v2: the key ID the plugin reported when it wrapped it.
    pub key_id: &'v str,
    /// v2: the annotations it returned then.
    pub annotations: Vec<(String, Vec<u8>)>,
}

/// A way to reach KMS plugins: asks `plugin` to unwrap a data key. The error
/// says why (unreachable, refused) without key material.
pub trait Unwrap: Send + Sync + std::fmt::Debug {
    /// The plaintext data key (v1, v2 type 0) or seed (v2 type 1).
    fn unwrap_key(&self, plugin: &KmsPlugin, req: &UnwrapRequest<'_>) -> Result<Vec<u8>, String>;
}

/// A KMS value's payload (what follows `k8s:enc:kms:<version>:<name>:`),
/// parsed for opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'v> {
    /// The request for the plugin.
    pub request: UnwrapRequest<'v>,
    /// v2's `encryptedDEKSourceType` (0 for v1).
    pub source_type: u64,
    /// The encrypted data.
    pub data: &'v [u8],
}

/// Parses the payload of a `version` (`v1`/`v2`) KMS value.
pub fn envelope<'v>(version: &str, payload: &'v [u8]) -> Result<Envelope<'v>, String> {
    if version == "v1" {
        let len = payload
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or("the wrapped data key's length is cut short")?;
        let wrapped = payload
            .get(2..2 + len)
            .ok_or("the wrapped data key is cut short")?;
        return Ok(Envelope {
            request: UnwrapRequest {
                wrapped,
                key_id: "",
                annotations: Vec::new(),
            },
            source_type: 0,
            data: &payload[2 + len..],
        });
    }
    let (mut data, mut key_id, mut wrapped, mut source_type) = (None, None, None, 0);
    let mut annotations = Vec::new();
    for f in Fields::new(payload) {
        match f.map_err(|e| format!("the EncryptedObject does not parse: {e}"))? {
            (1, Value::Bytes(b)) => data = Some(b),
            (2, Value::Bytes(b)) => {
                key_id = Some(std::str::from_utf8(b).map_err(|_| "the key ID is not UTF-8")?)
            }
            (3, Value::Bytes(b)) => wrapped = Some(b),
            (4, Value::Bytes(entry)) => {
                let (mut k, mut v) = (String::new(), Vec::new());
                for e in Fields::new(entry) {
                    match e.map_err(|e| format!("an annotation does not parse: {e}"))? {
                        (1, Value::Bytes(b)) => k = String::from_utf8_lossy(b).into_owned(),
                        (2, Value::Bytes(b)) => v = b.to_vec(),
                        _ => {}
                    }
                }
                annotations.push((k, v));
            }
            (5, Value::Varint(t)) => source_type = t,
            _ => {}
        }
    }
    let (Some(data), Some(key_id), Some(wrapped)) = (data, key_id, wrapped) else {
        return Err("the EncryptedObject lacks its data, key ID or wrapped key".into());
    };
    if source_type > 1 {
        return Err(format!("unknown encryptedDEKSourceType {source_type}"));
    }
    annotations.sort();
    Ok(Envelope {
        request: UnwrapRequest {
            wrapped,
            key_id,
            annotations,
        },
        source_type,
        data,
    })
}

/// What identifies an unwrapped key: the plugin, the source type and what
/// the plugin is sent (as the API server's cache key).
pub fn cache_key(plugin: &KmsPlugin, e: &Envelope<'_>) -> Vec<u8> {
    let mut k = Vec::new();
    for part in [plugin.version.as_bytes(), plugin.name.as_bytes()] {
        k.extend_from_slice(&(part.len() as u64).to_be_bytes());
        k.extend_from_slice(part);
    }
    k.extend_from_slice(&e.source_type.to_be_bytes());
    for part in [e.request.wrapped, e.request.key_id.as_bytes()] {
        k.extend_from_slice(&(part.len() as u64).to_be_bytes());
        k.extend_from_slice(part);
    }
    for (a, v) in &e.request.annotations {
        for part in [a.as_bytes(), v.as_slice()] {
            k.extend_from_slice(&(part.len() as u64).to_be_bytes());
            k.extend_from_slice(part);
        }
    }
    k
}

/// Decrypts `e`'s data with what the plugin unwrapped (`unwrapped`), for the
/// value stored at `etcd_key`.
pub fn open(
    version: &str,
    e: &Envelope<'_>,
    unwrapped: &[u8],
    etcd_key: &[u8],
) -> Result<Vec<u8>, OpenError> {
    if version == "v1" {
        return open_cipher(Cipher::AesGcm, unwrapped, e.data, etcd_key).or_else(|gcm| {
            open_cipher(Cipher::AesCbc, unwrapped, e.data, etcd_key).map_err(|_| gcm)
        });
    }
    if e.source_type == 0 {
        return open_cipher(Cipher::AesGcm, unwrapped, e.data, etcd_key);
    }
    const INFO: usize = 32;
    let Some((info, rest)) = e.data.split_at_checked(INFO) else {
        return Err(OpenError::Short {
            need: INFO,
            has: e.data.len(),
        });
    };
    let dek = hkdf_expand(unwrapped, info)?;
    open_cipher(Cipher::AesGcm, &dek[..], rest, etcd_key)
}

/// HKDF-Expand with SHA-256 of `seed` (used as the pseudorandom key, no
/// Extract) and `info`, 32 bytes.
fn hkdf_expand(seed: &[u8], info: &[u8]) -> Result<zeroize::Zeroizing<[u8; 32]>, OpenError> {
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = ring::hkdf::Prk::new_less_safe(ring::hkdf::HKDF_SHA256, seed);
    let mut dek = zeroize::Zeroizing::new([0u8; 32]);
    prk.expand(&[info], Len)
        .and_then(|okm| okm.fill(&mut dek[..]))
        .map_err(|_| OpenError::KeySize(seed.len()))?;
    Ok(dek)
}

/// What the envelope of a KMS value says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsInfo {
    /// "v1" or "v2".
    pub version: &'static str,
    /// The KMS provider's name.
    pub provider: String,
    /// v2: the key ID the plugin reported when the value was written.
    pub key_id: Option<String>,
    /// Something about the envelope that is not as it should be.
    pub damage: Option<String>,
}

impl std::fmt::Display for KmsInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kms {} provider {:?}", self.version, self.provider)?;
        if let Some(k) = &self.key_id {
            write!(f, ", key ID {k:?}")?;
        }
        if let Some(d) = &self.damage {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// The KMS envelope of `value`, if it is a KMS value.
pub fn describe(value: &[u8]) -> Option<KmsInfo> {
    let (version, rest) = if let Some(r) = value.strip_prefix(b"k8s:enc:kms:v1:") {
        ("v1", r)
    } else if let Some(r) = value.strip_prefix(b"k8s:enc:kms:v2:") {
        ("v2", r)
    } else {
        return None;
    };
    // v2 names have no ':'; v1 names may, but the payload starts with a
    // length: the first ':' is the best offline guess for both.
    let Some(colon) = rest.iter().position(|&b| b == b':') else {
        return Some(KmsInfo {
            version,
            provider: String::from_utf8_lossy(rest).into_owned(),
            key_id: None,
            damage: Some("no ':' after the provider name".into()),
        });
    };
    let provider = String::from_utf8_lossy(&rest[..colon]).into_owned();
    let payload = &rest[colon + 1..];
    let mut info = KmsInfo {
        version,
        provider,
        key_id: None,
        damage: None,
    };
    if version == "v1" {
        let len = payload
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize);
        if len.is_none_or(|l| payload.len() < 2 + l) {
            info.damage = Some("the wrapped data key is cut short".into());
        }
        return Some(info);
    }
    let mut has_data = false;
    for f in Fields::new(payload) {
        match f {
            Ok((1, Value::Bytes(_))) => has_data = true,
            Ok((2, Value::Bytes(id))) => info.key_id = Some(String::from_utf8_lossy(id).into()),
            Ok(_) => {}
            Err(e) => {
                info.damage = Some(format!("the EncryptedObject does not parse: {e}"));
                break;
            }
        }
    }
    if info.damage.is_none() && (!has_data || info.key_id.is_none()) {
        info.damage = Some("the EncryptedObject lacks its data or key ID".into());
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kube::decrypt::unhex;

    /// Team vectors T4-T6 of docs/design/pki.md §1.9.
    #[test]
    fn team_kms_vectors() {
        let t4 = unhex(
            "6b38733a656e633a6b6d733a76323a6b6d732d70726f76696465723a0a45606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b0ba2e28fd99aa2a2330334dc839a15faf9ea14e938bf1c64e41201311a2c5145464351305246526b64495355704c5445314f54314252556c4e5556565a5857466c6157317864586c383d22320a1b6c6f63616c2d6b656b2e6b6d732e6b756265726e657465732e696f1213656e637279707465642d6c6f63616c2d6b656b2801",
        );
        let i = describe(&t4).unwrap();
        assert_eq!((i.version, i.provider.as_str()), ("v2", "kms-provider"));
        assert_eq!(i.key_id.as_deref(), Some("1"));
        assert_eq!(i.damage, None);
        let t5 = unhex(
            "6b38733a656e633a6b6d733a76323a6b6d732d70726f76696465723a0a25deadbeef01ca9a3b000000005cbc54fe3d0e964badc50ed96ba32055dda9d43869ff3e9d101201311a2c6f4b47696f36536c7071656f71617172724b32757237437873724f3074626133754c6d36753779397672383d",
        );
        assert_eq!(describe(&t5).unwrap().key_id.as_deref(), Some("1"));
        let t6 = unhex(
            "6b38733a656e633a6b6d733a76313a7465737470726f76696465723a002c774d484377385446787366497963724c7a4d334f7a3944523074505531646258324e6e6132397a643374383de0e1e2e3e4e5e6e7e8e9eaebc54ded3320cf4b0a27521316d10a761a397adb2fc2ac5be77c",
        );
        let i = describe(&t6).unwrap();
        assert_eq!(
            (i.version, i.provider.as_str(), i.damage),
            ("v1", "testprovider", None)
        );
        assert!(
            describe(b"k8s:enc:kms:v2:p:\xff\xff")
                .unwrap()
                .damage
                .is_some()
        );
        assert!(describe(b"k8s:enc:aesgcm:v1:k:").is_none());
    }

    /// The team vectors opened with what a base64 "KMS" unwraps (the mock
    /// plugin of Kubernetes' tests wraps so).
    #[test]
    fn team_kms_vectors_open() {
        use base64::Engine as _;
        let key = b"/registry/secrets/default/s1";
        for (hex, version, name) in [
            (
                "6b38733a656e633a6b6d733a76323a6b6d732d70726f76696465723a0a45606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b0ba2e28fd99aa2a2330334dc839a15faf9ea14e938bf1c64e41201311a2c5145464351305246526b64495355704c5445314f54314252556c4e5556565a5857466c6157317864586c383d22320a1b6c6f63616c2d6b656b2e6b6d732e6b756265726e657465732e696f1213656e637279707465642d6c6f63616c2d6b656b2801",
                "v2",
                "kms-provider",
            ),
            (
                "6b38733a656e633a6b6d733a76323a6b6d732d70726f76696465723a0a25deadbeef01ca9a3b000000005cbc54fe3d0e964badc50ed96ba32055dda9d43869ff3e9d101201311a2c6f4b47696f36536c7071656f71617172724b32757237437873724f3074626133754c6d36753779397672383d",
                "v2",
                "kms-provider",
            ),
            (
                "6b38733a656e633a6b6d733a76313a7465737470726f76696465723a002c774d484377385446787366497963724c7a4d334f7a3944523074505531646258324e6e6132397a643374383de0e1e2e3e4e5e6e7e8e9eaebc54ded3320cf4b0a27521316d10a761a397adb2fc2ac5be77c",
                "v1",
                "testprovider",
            ),
        ] {
            let v = unhex(hex);
            let prefix = format!("k8s:enc:kms:{version}:{name}:");
            let e = envelope(version, &v[prefix.len()..]).unwrap();
            let dek = base64::engine::general_purpose::STANDARD
                .decode(e.request.wrapped)
                .unwrap();
            assert_eq!(
                open(version, &e, &dek, key).unwrap(),
                b"k8s\0hello",
                "{version}"
            );
            assert!(open(version, &e, &dek, b"/registry/secrets/default/s2").is_err());
        }
    }

    #[test]
    fn envelopes_that_do_not_parse_say_why() {
        assert!(envelope("v1", b"\x00").is_err());
        assert!(envelope("v1", b"\x00\x05abc").is_err());
        assert!(envelope("v2", b"\x0a\x01x").is_err());
        assert!(envelope("v2", b"\x0a\x01x\x12\x01k\x1a\x01w\x28\x07").is_err());
        assert!(envelope("v2", b"\x0a\x01x\x12\x01k\x1a\x01w").is_ok());
    }
}
