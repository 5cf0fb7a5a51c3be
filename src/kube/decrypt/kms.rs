//! KMS-encrypted values: what can be said of them offline. Their data key is
//! wrapped by an external KMS, so only the plugin can open them; the envelope
//! still names the provider and (v2) the key ID, which tell the operator which
//! KMS key to bring back.
//!
//! v1: `k8s:enc:kms:v1:<provider>:` + `u16 BE len || encDEK || data`.
//! v2: `k8s:enc:kms:v2:<provider>:` + protobuf `EncryptedObject`
//! {1 encryptedData, 2 keyID, 3 encryptedDEKSource, 4 annotations, 5 type}.

use crate::protowire::{Fields, Value};

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
}
