//! The three ciphers of the API server's encryption at rest, opened with
//! RustCrypto's crates (never hand-written): aescbc (`IV(16) || AES-CBC with
//! PKCS#7`, no authentication, no AAD), aesgcm (`nonce(12) || ct || tag(16)`,
//! AAD = the etcd key) and secretbox (`nonce(24) || tag(16) || XSalsa20`, no
//! AAD). Each returns the plaintext or why it could not be had, worded as the
//! API server words it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use crypto_secretbox::XSalsa20Poly1305;

use super::config::Cipher;

/// Why a payload did not open with a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than the cipher's nonce, IV or tag.
    #[error("the stored data was shorter than the required size ({need} bytes, has {has})")]
    Short {
        /// Bytes the cipher needs.
        need: usize,
        /// Bytes there are.
        has: usize,
    },
    /// Not a whole number of AES blocks.
    #[error("the stored data is not a multiple of the block size")]
    NotBlocks,
    /// The PKCS#7 padding is wrong.
    #[error("invalid PKCS7 padding (wrong key, or damaged data)")]
    Padding,
    /// Decrypted to something that is not a stored Kubernetes value.
    #[error(
        "the decrypted bytes are not a Kubernetes value (wrong key: aescbc is not authenticated)"
    )]
    NotAValue,
    /// The authentication tag does not verify.
    #[error(
        "message authentication failed (wrong key, a value moved from another key, or damaged data)"
    )]
    Auth,
    /// A key of a size the cipher does not take.
    #[error("the key is {0} bytes, which the cipher does not take")]
    KeySize(usize),
}

/// Opens `payload` (what follows `<prefix><key name>:`) with `key`.
pub fn open(cipher: Cipher, key: &[u8], payload: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
    match cipher {
        Cipher::AesCbc => aescbc(key, payload),
        Cipher::AesGcm => aesgcm(key, payload, aad),
        Cipher::Secretbox => secretbox(key, payload),
    }
}

/// Whether decrypted bytes start like a stored Kubernetes value: protobuf's
/// `k8s\0`, JSON's `{` (after white space), self-described CBOR.
pub fn looks_like_value(plain: &[u8]) -> bool {
    use crate::kube::value::{CBOR_SELF_DESCRIBED, PROTOBUF_MAGIC};
    plain.starts_with(PROTOBUF_MAGIC)
        || plain.starts_with(CBOR_SELF_DESCRIBED)
        || plain
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{')
}

fn aescbc(key: &[u8], payload: &[u8]) -> Result<Vec<u8>, OpenError> {
    const BLOCK: usize = 16;
    if payload.len() < BLOCK {
        return Err(OpenError::Short {
            need: BLOCK,
            has: payload.len(),
        });
    }
    let (iv, ct) = payload.split_at(BLOCK);
    if ct.is_empty() || !ct.len().is_multiple_of(BLOCK) {
        return Err(OpenError::NotBlocks);
    }
    let bad_key = || OpenError::KeySize(key.len());
    let plain = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| bad_key())?
            .decrypt_padded_vec_mut::<Pkcs7>(ct),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
            .map_err(|_| bad_key())?
            .decrypt_padded_vec_mut::<Pkcs7>(ct),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| bad_key())?
            .decrypt_padded_vec_mut::<Pkcs7>(ct),
        n => return Err(OpenError::KeySize(n)),
    }
    .map_err(|_| OpenError::Padding)?;
    if !looks_like_value(&plain) {
        return Err(OpenError::NotAValue);
    }
    Ok(plain)
}

fn aesgcm(key: &[u8], payload: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
    const NONCE: usize = 12;
    const TAG: usize = 16;
    if payload.len() < NONCE + TAG {
        return Err(OpenError::Short {
            need: NONCE + TAG,
            has: payload.len(),
        });
    }
    let (nonce, msg) = payload.split_at(NONCE);
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    let p = Payload { msg, aad };
    let bad_key = || OpenError::KeySize(key.len());
    match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .map_err(|_| bad_key())?
            .decrypt(nonce, p),
        24 => AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(key)
            .map_err(|_| bad_key())?
            .decrypt(nonce, p),
        32 => Aes256Gcm::new_from_slice(key)
            .map_err(|_| bad_key())?
            .decrypt(nonce, p),
        n => return Err(OpenError::KeySize(n)),
    }
    .map_err(|_| OpenError::Auth)
}

fn secretbox(key: &[u8], payload: &[u8]) -> Result<Vec<u8>, OpenError> {
    const NONCE: usize = 24;
    const TAG: usize = 16;
    if payload.len() < NONCE + TAG {
        return Err(OpenError::Short {
            need: NONCE + TAG,
            has: payload.len(),
        });
    }
    let (nonce, sealed) = payload.split_at(NONCE);
    let cipher =
        XSalsa20Poly1305::new_from_slice(key).map_err(|_| OpenError::KeySize(key.len()))?;
    cipher
        .decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
        .map_err(|_| OpenError::Auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kube::decrypt::unhex;

    /// kubernetes/apiserver `pkg/storage/value/encrypt/aes/aes_test.go`,
    /// `TestGCMLegacyDataCompatibility` (output recorded at commit 3b1fc60d),
    /// as hex in docs/design/pki.md §1.9 (V1).
    #[test]
    fn kubernetes_gcm_legacy_vector() {
        let payload = unhex(
            "9f27c8fcea8a58c467d8e437dbf2d85955f9b4bd912f4ef967d788a0cb07797dac0a3f0a0845605ca85ac8562b4ae1",
        );
        let plain = open(Cipher::AesGcm, b"snorlax_awesomes", &payload, b"bamboo").unwrap();
        assert_eq!(plain, b"pandas are the best");
        assert_eq!(
            open(Cipher::AesGcm, b"snorlax_awesomes", &payload, b"bamboo2"),
            Err(OpenError::Auth)
        );
    }

    /// The team vectors T1-T3 of docs/design/pki.md §1.9
    /// (pyca/cryptography and PyNaCl, fixed IVs/nonces), whole etcd values.
    #[test]
    fn team_vectors() {
        let key: Vec<u8> = (0u8..32).collect();
        let aad = b"/registry/secrets/default/s1";
        for (cipher, hex) in [
            (
                Cipher::AesCbc,
                "6b38733a656e633a6165736362633a76313a6b6579313a101112131415161718191a1b1c1d1e1fb68d97d627cd7e1eac86a4000ea7ef9d",
            ),
            (
                Cipher::AesGcm,
                "6b38733a656e633a61657367636d3a76313a6b6579313a202122232425262728292a2bb902d57004fd7662753e7b7aaed5f31ad46ba8583461de60f8",
            ),
            (
                Cipher::Secretbox,
                "6b38733a656e633a736563726574626f783a76313a6b6579313a303132333435363738393a3b3c3d3e3f4041424344454647396a9e095688459313a65f13bbac7346f5081432febab2ad9e",
            ),
        ] {
            let value = unhex(hex);
            let prefix = format!("{}key1:", cipher.prefix());
            let payload = value.strip_prefix(prefix.as_bytes()).unwrap();
            assert_eq!(
                open(cipher, &key, payload, aad).unwrap(),
                b"k8s\x00hello",
                "{}",
                cipher.name()
            );
            // Cut short, and a wrong key: errors, never garbage.
            assert!(open(cipher, &key, &payload[..payload.len() - 1], aad).is_err());
            let mut other = key.clone();
            other[0] ^= 1;
            assert!(open(cipher, &other, payload, aad).is_err());
        }
    }
}
