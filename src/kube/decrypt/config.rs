//! The API server's `EncryptionConfiguration` (`apiserver.config.k8s.io/v1`,
//! the file `--encryption-provider-config` points to), read from YAML or JSON.
//!
//! Only what reading values needs is kept: per resource entry, its providers
//! in order, and for aescbc/aesgcm/secretbox the keys by name. Key material
//! lives only in memory, in [`KeyBytes`], whose `Debug` prints `<redacted>`;
//! no error message quotes a secret (base64 errors are worded without the
//! offending bytes).

use base64::Engine;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Bytes of a key: never printed, zeroed when dropped.
#[derive(Clone)]
pub struct KeyBytes(Zeroizing<Vec<u8>>);

impl KeyBytes {
    /// The key's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A `secret:` string of the file, as read: never printed.
#[derive(Clone)]
struct SecretText(Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SecretText, D::Error> {
        String::deserialize(d).map(|s| SecretText(Zeroizing::new(s)))
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why an EncryptionConfiguration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read the encryption config: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an EncryptionConfiguration.
    #[error("{path}: not an EncryptionConfiguration: {detail}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The configuration is not one the API server accepts.
    #[error("{path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileV1 {
    api_version: String,
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    resources: Vec<ResourceV1>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceV1 {
    resources: Vec<String>,
    providers: Vec<ProviderV1>,
}

/// One list item: exactly one provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderV1 {
    aesgcm: Option<KeysV1>,
    aescbc: Option<KeysV1>,
    secretbox: Option<KeysV1>,
    identity: Option<IdentityV1>,
    kms: Option<KmsV1>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysV1 {
    keys: Vec<KeyV1>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyV1 {
    name: String,
    secret: SecretText,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityV1 {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KmsV1 {
    #[serde(default)]
    api_version: Option<String>,
    name: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    cachesize: Option<serde_json::Value>,
    #[serde(default)]
    timeout: Option<serde_json::Value>,
}

/// The ciphers whose keys are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// AES-CBC with PKCS#7 padding (`aescbc`).
    AesCbc,
    /// AES-GCM (`aesgcm`).
    AesGcm,
    /// XSalsa20-Poly1305 (`secretbox`).
    Secretbox,
}

impl Cipher {
    /// The provider's name in the configuration and in stored prefixes.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::AesCbc => "aescbc",
            Cipher::AesGcm => "aesgcm",
            Cipher::Secretbox => "secretbox",
        }
    }

    /// The stored value's prefix before the key name.
    pub fn prefix(self) -> String {
        format!("k8s:enc:{}:v1:", self.name())
    }
}

/// A named key of a cipher provider.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key's name, which the stored prefix names.
    pub name: String,
    /// The key's bytes.
    pub secret: KeyBytes,
}

/// One provider of a resource entry, in config order.
#[derive(Debug, Clone)]
pub enum Provider {
    /// A cipher with its keys, the first one writing.
    Cipher {
        /// The cipher.
        cipher: Cipher,
        /// Its keys, the first one writing.
        keys: Vec<Key>,
    },
    /// Values stored as they are.
    Identity,
    /// A KMS plugin (`version` is "v1" or "v2").
    Kms(super::kms::KmsPlugin),
}

/// One `resources:` entry: what it covers and its providers in order.
#[derive(Debug, Clone)]
pub struct ResourceEntry {
    /// As written: `secrets`, `deployments.apps`, `*.apps`, `*.`, `*.*`.
    pub resources: Vec<String>,
    /// The providers, the first one writing, every one reading.
    pub providers: Vec<Provider>,
}

/// A parsed EncryptionConfiguration.
#[derive(Debug, Clone)]
pub struct EncryptionConfig {
    /// The resource entries, in file order (the first matching wins).
    pub entries: Vec<ResourceEntry>,
}

impl EncryptionConfig {
    /// Every key name the config lists (cipher keys and KMS provider names),
    /// for judging which keys a snapshot's encrypted values name.
    pub fn key_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .flat_map(|e| &e.providers)
            .flat_map(|p| match p {
                Provider::Cipher { keys, .. } => keys.iter().map(|k| k.name.clone()).collect(),
                Provider::Kms(p) => vec![p.name.clone()],
                Provider::Identity => Vec::new(),
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Reads and checks a config file.
    pub fn load(path: &std::path::Path) -> Result<EncryptionConfig, ConfigError> {
        let shown = path.display().to_string();
        let bytes = Zeroizing::new(
            crate::input::read_bounded(path, crate::input::SMALL_FILE_LIMIT).map_err(|source| {
                ConfigError::Io {
                    path: shown.clone(),
                    source,
                }
            })?,
        );
        EncryptionConfig::parse(&bytes).map_err(|e| match e {
            ConfigError::Parse { detail, .. } => ConfigError::Parse {
                path: shown.clone(),
                detail,
            },
            ConfigError::Invalid { detail, .. } => ConfigError::Invalid {
                path: shown.clone(),
                detail,
            },
            other => other,
        })
    }

    /// Parses a config's bytes (YAML, of which JSON is a subset).
    pub fn parse(bytes: &[u8]) -> Result<EncryptionConfig, ConfigError> {
        let parse = |detail: String| ConfigError::Parse {
            path: String::new(),
            detail,
        };
        let invalid = |detail: String| ConfigError::Invalid {
            path: String::new(),
            detail,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| parse("the file is not UTF-8".into()))?;
        crate::yaml::check_depth(text, crate::yaml::MAX_READ_DEPTH)
            .map_err(|e| parse(e.to_string()))?;
        let file: FileV1 = serde_yaml_ng::from_str(text).map_err(|e| parse(e.to_string()))?;
        match (file.api_version.as_str(), file.kind.as_str()) {
            ("apiserver.config.k8s.io/v1", "EncryptionConfiguration") => {}
            // Still accepted by the API server ("due to a docs bug").
            ("v1", "EncryptionConfig") => {}
            (a, k) => {
                return Err(parse(format!(
                    "apiVersion {a:?} kind {k:?}; expected apiserver.config.k8s.io/v1 EncryptionConfiguration"
                )));
            }
        }
        let mut entries = Vec::new();
        for (i, r) in file.resources.into_iter().enumerate() {
            if r.resources.is_empty() {
                return Err(invalid(format!("resources[{i}]: no resources listed")));
            }
            if r.providers.is_empty() {
                return Err(invalid(format!("resources[{i}]: no providers listed")));
            }
            let mut providers = Vec::new();
            for (j, p) in r.providers.into_iter().enumerate() {
                let at = format!("resources[{i}].providers[{j}]");
                providers.push(provider(p).map_err(|d| invalid(format!("{at}: {d}")))?);
            }
            entries.push(ResourceEntry {
                resources: r.resources,
                providers,
            });
        }
        Ok(EncryptionConfig { entries })
    }

    /// The providers for a resource, as the API server picks them: the first
    /// entry naming the exact group/resource, else `*.group`, else `*.*`.
    /// `group` is "" for the core group.
    pub fn providers_for(&self, group: &str, resource: &str) -> Option<&ResourceEntry> {
        let exact = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        let whole_group = format!("*.{group}");
        [exact.as_str(), whole_group.as_str(), "*.*"]
            .iter()
            .find_map(|want| {
                self.entries
                    .iter()
                    .find(|e| e.resources.iter().any(|r| r == want))
            })
    }
}

fn provider(p: ProviderV1) -> Result<Provider, String> {
    let ProviderV1 {
        aesgcm,
        aescbc,
        secretbox,
        identity,
        kms,
    } = p;
    let count = [
        aesgcm.is_some(),
        aescbc.is_some(),
        secretbox.is_some(),
        identity.is_some(),
        kms.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count != 1 {
        return Err(format!(
            "each provider item names exactly one provider, this one names {count}"
        ));
    }
    if identity.is_some() {
        return Ok(Provider::Identity);
    }
    if let Some(k) = kms {
        let version = k.api_version.unwrap_or_else(|| "v1".into());
        if version != "v1" && version != "v2" {
            return Err(format!("kms apiVersion {version:?} is not v1 or v2"));
        }
        if k.name.is_empty() {
            return Err("kms provider without a name".into());
        }
        let timeout = k.timeout.map(|t| match t {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
        return Ok(Provider::Kms(super::kms::KmsPlugin {
            version,
            name: k.name,
            endpoint: k.endpoint,
            timeout,
        }));
    }
    let (cipher, keys) = match (aesgcm, aescbc, secretbox) {
        (Some(k), _, _) => (Cipher::AesGcm, k),
        (_, Some(k), _) => (Cipher::AesCbc, k),
        (_, _, Some(k)) => (Cipher::Secretbox, k),
        _ => return Err("no provider".into()),
    };
    if keys.keys.is_empty() {
        return Err(format!("{}: no keys", cipher.name()));
    }
    let mut out = Vec::new();
    for k in keys.keys {
        if k.name.is_empty() {
            return Err(format!("{}: a key without a name", cipher.name()));
        }
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(k.secret.0.trim().as_bytes())
                .map_err(|_| {
                    format!(
                        "{} key {:?}: the secret is not valid standard base64",
                        cipher.name(),
                        k.name
                    )
                })?,
        );
        let ok = match cipher {
            Cipher::Secretbox => bytes.len() == 32,
            _ => matches!(bytes.len(), 16 | 24 | 32),
        };
        if !ok {
            return Err(format!(
                "{} key {:?}: the secret is {} bytes; {} takes {}",
                cipher.name(),
                k.name,
                bytes.len(),
                cipher.name(),
                if cipher == Cipher::Secretbox {
                    "32"
                } else {
                    "16, 24 or 32"
                }
            ));
        }
        out.push(Key {
            name: k.name,
            secret: KeyBytes(bytes),
        });
    }
    Ok(Provider::Cipher { cipher, keys: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn parses_yaml_and_json_and_never_prints_keys() {
        let yaml = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets, '*.apps']\n    providers:\n      - aesgcm: {{keys: [{{name: key1, secret: {K}}}]}}\n      - kms: {{apiVersion: v2, name: myKms, endpoint: unix:///x.sock}}\n      - identity: {{}}\n  - resources: ['*.*']\n    providers: [{{secretbox: {{keys: [{{name: k2, secret: {K}}}]}}}}]\n"
        );
        let c = EncryptionConfig::parse(yaml.as_bytes()).unwrap();
        assert_eq!(c.entries.len(), 2);
        assert!(!format!("{c:?}").contains(K));
        assert!(format!("{c:?}").contains("<redacted>"));
        assert_eq!(
            c.providers_for("", "secrets").unwrap().resources[0],
            "secrets"
        );
        assert_eq!(
            c.providers_for("apps", "deployments").unwrap().resources[1],
            "*.apps"
        );
        assert_eq!(
            c.providers_for("", "configmaps").unwrap().resources[0],
            "*.*"
        );
        let json = format!(
            r#"{{"apiVersion":"apiserver.config.k8s.io/v1","kind":"EncryptionConfiguration","resources":[{{"resources":["secrets"],"providers":[{{"aescbc":{{"keys":[{{"name":"a","secret":"{K}"}}]}}}}]}}]}}"#
        );
        assert!(EncryptionConfig::parse(json.as_bytes()).is_ok());
    }

    #[test]
    fn refuses_bad_files_without_quoting_secrets() {
        let bad = [
            "apiVersion: v1\nkind: Pod\n".to_string(),
            format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{{resources: [secrets], providers: [{{aesgmc: {{keys: [{{name: a, secret: {K}}}]}}}}]}}]\n"),
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{aescbc: {keys: [{name: a, secret: 'c2VjcmV0IGtleQ=='}]}}]}]\n".into(),
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{aescbc: {keys: [{name: a, secret: 'not*base64!'}]}}]}]\n".into(),
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{identity: {}, aescbc: {keys: []}}]}]\n".into(),
        ];
        for b in bad {
            let e = EncryptionConfig::parse(b.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(
                !e.contains(K) && !e.contains("c2VjcmV0") && !e.contains("base64!"),
                "{e}"
            );
        }
    }
}
