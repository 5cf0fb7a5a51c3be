//! Values encrypted at rest by kube-apiserver, opened offline with the same
//! `EncryptionConfiguration` the API server reads (`config`).
//!
//! Dispatch is the API server's: the resource's entry (exact group/resource,
//! then `*.group`, then `*.*`), its providers in config order, and within
//! aescbc/aesgcm/secretbox the keys in order by their `<name>:` prefix — an
//! old key still listed after a rotation opens what it wrote. aesgcm binds
//! the value to its etcd key (AAD), so a value moved to another key does not
//! open. KMS values (`kms`) are opened by asking the plugin the config names
//! to unwrap their data key, through an [`Unwrap`] the caller attaches
//! ([`Decryptor::with_kms`]; `live::kms` reaches plugins over their unix
//! sockets), once per wrapped key; without one they are described, not
//! opened.
//! Values without the `k8s:enc:` prefix pass through (identity).

pub mod config;

/// Hex test vectors (the spec's §1.9) as bytes, for the tests of this module.
#[cfg(test)]
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
pub mod kms;
pub mod providers;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use config::{Cipher, Provider};
pub use config::{ConfigError, EncryptionConfig};
pub use kms::{KmsInfo, KmsPlugin, Unwrap};
use providers::OpenError;

use super::resource::parse_key;
use super::value::{ENCRYPTED_PREFIX, Encoding, detect};
use crate::problem::printable;

/// Why an encrypted value could not be opened. Each names the etcd key, the
/// provider and the key name; none holds key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The value is encrypted and no configuration was given.
    #[error(
        "{key}: encrypted at rest ({provider}, key {key_name:?}); give the API server's --encryption-config to decrypt it"
    )]
    NoConfig {
        /// The etcd key.
        key: String,
        /// The provider the value names.
        provider: String,
        /// The key name the value names.
        key_name: String,
    },
    /// Encrypted by a KMS plugin, which alone can decrypt it.
    #[error(
        "{key}: encrypted by {info}: only the KMS plugin can decrypt it (its data key is wrapped by the external KMS)"
    )]
    Kms {
        /// The etcd key.
        key: String,
        /// What the value's KMS envelope says.
        info: KmsInfo,
    },
    /// The KMS plugin could not unwrap the value's data key.
    #[error(
        "{key}: encrypted by kms {version} provider {provider:?}, whose plugin ({endpoint}) did not unwrap its data key: {reason}"
    )]
    KmsPlugin {
        /// The etcd key.
        key: String,
        /// `v1` or `v2`.
        version: String,
        /// The provider's name.
        provider: String,
        /// The plugin's endpoint.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// The configuration has no entry for the value's resource.
    #[error(
        "{key}: encrypted at rest ({provider}, key {key_name:?}), but the encryption config has no entry for resource {resource} (nor one for its group or *.*)"
    )]
    NoEntry {
        /// The etcd key.
        key: String,
        /// The provider the value names.
        provider: String,
        /// The key name the value names.
        key_name: String,
        /// The resource the key belongs to.
        resource: String,
    },
    /// The configuration does not list the key the value names.
    #[error(
        "{key}: encrypted with {provider} key {key_name:?}, which the encryption config does not list for resource {resource} ({configured})"
    )]
    UnknownKey {
        /// The etcd key.
        key: String,
        /// The provider the value names.
        provider: String,
        /// The key name the value names.
        key_name: String,
        /// The resource the key belongs to.
        resource: String,
        /// The provider's key names that are configured, or why none is.
        configured: String,
    },
    /// The named key does not decrypt the value.
    #[error("{key}: {provider} key {key_name:?} does not decrypt it: {reason}")]
    Failed {
        /// The etcd key.
        key: String,
        /// The provider the value names.
        provider: String,
        /// The key name the value names.
        key_name: String,
        /// Why it does not decrypt.
        reason: OpenError,
    },
}

impl DecryptError {
    /// The provider named in the error (`aesgcm`, `kms/v2` …).
    pub fn provider(&self) -> String {
        match self {
            DecryptError::NoConfig { provider, .. }
            | DecryptError::NoEntry { provider, .. }
            | DecryptError::UnknownKey { provider, .. }
            | DecryptError::Failed { provider, .. } => provider.clone(),
            DecryptError::Kms { info, .. } => format!("kms/{}", info.version),
            DecryptError::KmsPlugin { version, .. } => format!("kms/{version}"),
        }
    }
}

/// A value ready to decode, and how it was stored.
#[derive(Debug, Clone)]
pub struct Plain<'v> {
    /// The plaintext (borrowed when stored in clear).
    pub bytes: Cow<'v, [u8]>,
    /// The provider and key name that opened it (`None`: stored in clear).
    pub via: Option<(&'static str, String)>,
}

/// What a plugin unwrapped (or why not), once per wrapped key.
type Unwrapped = Arc<OnceLock<Result<zeroize::Zeroizing<Vec<u8>>, String>>>;

/// Opens the values of one snapshot: with a config, or without one (then
/// only plain values pass, and encrypted ones say what they need).
#[derive(Debug, Clone)]
pub struct Decryptor {
    config: Option<EncryptionConfig>,
    /// `None`: any storage prefix (see [`Decryptor::any_prefix`]).
    prefix: Option<String>,
    /// How KMS plugins are reached (none: KMS values are described only).
    kms: Option<Arc<dyn Unwrap>>,
    /// Data keys unwrapped so far, by [`kms::cache_key`].
    unwrapped: Arc<Mutex<HashMap<Vec<u8>, Unwrapped>>>,
}

impl Decryptor {
    /// `prefix` is the API server's `--etcd-prefix` (how keys name resources).
    pub fn new(config: Option<EncryptionConfig>, prefix: &str) -> Decryptor {
        Decryptor {
            config,
            prefix: Some(prefix.to_string()),
            kms: None,
            unwrapped: Arc::default(),
        }
    }

    /// For a command that takes a key and no `--prefix` (`history`): the
    /// resource is read from the key under whichever storage prefix makes it
    /// one the config names (exactly or by group), else under `/registry`.
    pub fn any_prefix(config: Option<EncryptionConfig>) -> Decryptor {
        Decryptor {
            config,
            prefix: None,
            kms: None,
            unwrapped: Arc::default(),
        }
    }

    /// KMS values are opened by asking their plugin through `kms`.
    pub fn with_kms(mut self, kms: Arc<dyn Unwrap>) -> Decryptor {
        self.kms = Some(kms);
        self
    }

    /// The KMS plugins the config names (to decide whether to reach them).
    pub fn kms_plugins(&self) -> Vec<KmsPlugin> {
        let mut out: Vec<KmsPlugin> = Vec::new();
        for p in self
            .config
            .iter()
            .flat_map(|c| &c.entries)
            .flat_map(|e| &e.providers)
        {
            if let Provider::Kms(k) = p
                && !out.contains(k)
            {
                out.push(k.clone());
            }
        }
        out
    }

    /// The data key of `e` as `plugin` unwraps it: asked once per wrapped
    /// key (concurrent callers wait for the first).
    fn unwrap_once(
        &self,
        kms: &dyn Unwrap,
        plugin: &KmsPlugin,
        e: &kms::Envelope<'_>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        let slot = {
            let mut map = self.unwrapped.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(kms::cache_key(plugin, e)).or_default().clone()
        };
        slot.get_or_init(|| {
            kms.unwrap_key(plugin, &e.request)
                .map(zeroize::Zeroizing::new)
        })
        .clone()
    }

    /// A KMS value, opened through its plugin when the config names it and
    /// a way to reach plugins is attached.
    fn open_kms<'v>(
        &self,
        key: &[u8],
        value: &'v [u8],
        info: KmsInfo,
    ) -> Result<Plain<'v>, DecryptError> {
        let shown = printable(key);
        let (Some(config), Some(unwrap)) = (&self.config, &self.kms) else {
            return Err(DecryptError::Kms { key: shown, info });
        };
        let (group, resource, label) = self.resource_of(config, key);
        let Some(entry) = config.providers_for(&group, &resource) else {
            return Err(DecryptError::NoEntry {
                key: shown,
                provider: format!("kms/{}", info.version),
                key_name: info.provider,
                resource: label,
            });
        };
        // v1 names may hold ':': the configured names say where the payload starts.
        let found = entry.providers.iter().find_map(|p| match p {
            Provider::Kms(k) => value
                .strip_prefix(format!("k8s:enc:kms:{}:{}:", k.version, k.name).as_bytes())
                .map(|payload| (k, payload)),
            _ => None,
        });
        let Some((plugin, payload)) = found else {
            return Err(DecryptError::UnknownKey {
                key: shown,
                provider: format!("kms/{}", info.version),
                key_name: info.provider.clone(),
                resource: label,
                configured: format!(
                    "no kms {} provider named {:?} there",
                    info.version, info.provider
                ),
            });
        };
        let failed = |reason: OpenError| DecryptError::Failed {
            key: printable(key),
            provider: format!("kms/{}", plugin.version),
            key_name: plugin.name.clone(),
            reason,
        };
        let e =
            kms::envelope(&plugin.version, payload).map_err(|reason| DecryptError::KmsPlugin {
                key: printable(key),
                version: plugin.version.clone(),
                provider: plugin.name.clone(),
                endpoint: plugin.endpoint.clone().unwrap_or_default(),
                reason: format!("the stored envelope is damaged: {reason}"),
            })?;
        let dek = self
            .unwrap_once(unwrap.as_ref(), plugin, &e)
            .map_err(|reason| DecryptError::KmsPlugin {
                key: printable(key),
                version: plugin.version.clone(),
                provider: plugin.name.clone(),
                endpoint: plugin.endpoint.clone().unwrap_or_default(),
                reason,
            })?;
        let plain = kms::open(&plugin.version, &e, &dek, key).map_err(failed)?;
        Ok(Plain {
            bytes: Cow::Owned(plain),
            via: Some(("kms", plugin.name.clone())),
        })
    }

    /// The group, resource and how to name it in messages, of `key`.
    fn resource_of(&self, config: &EncryptionConfig, key: &[u8]) -> (String, String, String) {
        let read = |prefix: &str| {
            parse_key(key, prefix).map(|ok| {
                let group = ok.group.clone().unwrap_or_else(|| {
                    crate::kube::resource::BUILT_IN
                        .iter()
                        .find(|b| b.plural == ok.resource)
                        .map_or(String::new(), |b| b.group.to_string())
                });
                let label = if group.is_empty() {
                    ok.resource.clone()
                } else {
                    format!("{}.{group}", ok.resource)
                };
                (group, ok.resource, label)
            })
        };
        let found = match &self.prefix {
            Some(p) => read(p),
            None => (1..key.len())
                .filter(|&i| key[i] == b'/')
                .filter_map(|i| std::str::from_utf8(&key[..i]).ok())
                .filter_map(read)
                .find(|(g, r, _)| {
                    config
                        .providers_for(g, r)
                        .is_some_and(|e| !e.resources.iter().all(|x| x == "*.*"))
                })
                .or_else(|| read("/registry")),
        };
        found.unwrap_or_else(|| {
            (
                String::new(),
                String::new(),
                "(a key outside the storage prefix)".into(),
            )
        })
    }

    /// Whether an EncryptionConfiguration was given.
    pub fn has_config(&self) -> bool {
        self.config.is_some()
    }

    /// The plaintext of the value stored at `key`.
    pub fn plaintext<'v>(&self, key: &[u8], value: &'v [u8]) -> Result<Plain<'v>, DecryptError> {
        if !value.starts_with(ENCRYPTED_PREFIX) {
            return Ok(Plain {
                bytes: Cow::Borrowed(value),
                via: None,
            });
        }
        let shown = printable(key);
        if let Some(info) = kms::describe(value) {
            return self.open_kms(key, value, info);
        }
        let (provider, key_name) = match detect(value) {
            Encoding::Encrypted { provider, key_name } => (provider, key_name),
            _ => (String::new(), String::new()),
        };
        let Some(config) = &self.config else {
            return Err(DecryptError::NoConfig {
                key: shown,
                provider,
                key_name,
            });
        };
        let (group, resource, label) = self.resource_of(config, key);
        let Some(entry) = config.providers_for(&group, &resource) else {
            return Err(DecryptError::NoEntry {
                key: shown,
                provider,
                key_name,
                resource: label,
            });
        };
        let mut failures: Vec<(Cipher, String, OpenError)> = Vec::new();
        let mut same_cipher_keys: Option<Vec<String>> = None;
        for p in &entry.providers {
            let Provider::Cipher { cipher, keys } = p else {
                continue;
            };
            let cprefix = cipher.prefix();
            let Some(rest) = value.strip_prefix(cprefix.as_bytes()) else {
                continue;
            };
            same_cipher_keys
                .get_or_insert_with(Vec::new)
                .extend(keys.iter().map(|k| k.name.clone()));
            for k in keys {
                let Some(payload) = rest
                    .strip_prefix(k.name.as_bytes())
                    .and_then(|r| r.strip_prefix(b":"))
                else {
                    continue;
                };
                match providers::open(*cipher, k.secret.bytes(), payload, key) {
                    Ok(plain) => {
                        return Ok(Plain {
                            bytes: Cow::Owned(plain),
                            via: Some((cipher.name(), k.name.clone())),
                        });
                    }
                    Err(e) => failures.push((*cipher, k.name.clone(), e)),
                }
            }
        }
        if let Some((cipher, name, reason)) = failures.into_iter().next() {
            return Err(DecryptError::Failed {
                key: shown,
                provider: cipher.name().into(),
                key_name: name,
                reason,
            });
        }
        let configured = match same_cipher_keys {
            Some(names) => format!(
                "its {provider} keys: {}",
                names
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!("no {provider} provider there"),
        };
        Err(DecryptError::UnknownKey {
            key: shown,
            provider,
            key_name,
            resource: label,
            configured,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn config(providers: &str) -> EncryptionConfig {
        EncryptionConfig::parse(
            format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers: {providers}\n")
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn dispatches_as_the_api_server() {
        // T2 of docs/design/pki.md §1.9: aesgcm key1, AAD the key.
        let t2 = unhex(
            "6b38733a656e633a61657367636d3a76313a6b6579313a202122232425262728292a2bb902d57004fd7662753e7b7aaed5f31ad46ba8583461de60f8",
        );
        let key = b"/registry/secrets/default/s1";
        let other = "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        // Rotation: the new key first, the old one second.
        let d = Decryptor::new(
            Some(config(&format!(
                "[{{aesgcm: {{keys: [{{name: key2, secret: {other}}}, {{name: key1, secret: {K}}}]}}}}, {{identity: {{}}}}]"
            ))),
            "/registry",
        );
        let p = d.plaintext(key, &t2).unwrap();
        assert_eq!(&*p.bytes, b"k8s\x00hello");
        assert_eq!(p.via, Some(("aesgcm", "key1".to_string())));
        // Moved to another key: the AAD differs.
        let e = d
            .plaintext(b"/registry/secrets/default/s2", &t2)
            .unwrap_err();
        assert!(
            matches!(
                e,
                DecryptError::Failed {
                    reason: OpenError::Auth,
                    ..
                }
            ),
            "{e}"
        );
        // Plain values pass.
        assert_eq!(&*d.plaintext(key, b"k8s\x00x").unwrap().bytes, b"k8s\x00x");
        // Wrong key under the same name.
        let d2 = Decryptor::new(
            Some(config(&format!(
                "[{{aesgcm: {{keys: [{{name: key1, secret: {other}}}]}}}}]"
            ))),
            "/registry",
        );
        let e = d2.plaintext(key, &t2).unwrap_err().to_string();
        assert!(
            e.contains("aesgcm")
                && e.contains("key1")
                && e.contains("/registry/secrets/default/s1"),
            "{e}"
        );
        assert!(!e.contains(other) && !e.contains(K));
        // Unknown key name; no provider; no entry; no config.
        let d3 = Decryptor::new(
            Some(config(&format!(
                "[{{aesgcm: {{keys: [{{name: key9, secret: {K}}}]}}}}]"
            ))),
            "/registry",
        );
        assert!(matches!(
            d3.plaintext(key, &t2),
            Err(DecryptError::UnknownKey { .. })
        ));
        let d4 = Decryptor::new(Some(config("[{identity: {}}]")), "/registry");
        assert!(matches!(
            d4.plaintext(key, &t2),
            Err(DecryptError::UnknownKey { .. })
        ));
        assert!(matches!(
            d4.plaintext(b"/registry/configmaps/default/c", &t2),
            Err(DecryptError::NoEntry { .. })
        ));
        assert!(matches!(
            Decryptor::new(None, "/registry").plaintext(key, &t2),
            Err(DecryptError::NoConfig { .. })
        ));
    }

    #[test]
    fn any_prefix_finds_the_resource_under_another_storage_prefix() {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let k: Vec<u8> = (0u8..32).collect();
        let key = b"/kubernetes.io/secrets/default/s1";
        let nonce = [7u8; 12];
        let ct = aes_gcm::Aes256Gcm::new_from_slice(&k)
            .unwrap()
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload {
                    msg: b"k8s\x00hi",
                    aad: key,
                },
            )
            .unwrap();
        let mut value = b"k8s:enc:aesgcm:v1:key1:".to_vec();
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&ct);
        let c = config(&format!(
            "[{{aesgcm: {{keys: [{{name: key1, secret: {K}}}]}}}}]"
        ));
        let d = Decryptor::any_prefix(Some(c.clone()));
        assert_eq!(&*d.plaintext(key, &value).unwrap().bytes, b"k8s\x00hi");
        // With the default prefix the key is no Secret's: no entry.
        let d = Decryptor::new(Some(c), "/registry");
        assert!(matches!(
            d.plaintext(key, &value),
            Err(DecryptError::NoEntry { .. })
        ));
    }
}
