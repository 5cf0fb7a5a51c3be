//! Private keys and PEM files as kubeadm, openssl and Go write them: PEM
//! blocks (with RFC 1421 headers, which mark an encrypted key) or bare DER;
//! RSA keys in PKCS#1 (`RSA PRIVATE KEY`), EC keys in SEC1 (`EC PRIVATE
//! KEY`), and RSA, ECDSA and Ed25519 keys in PKCS#8 (`PRIVATE KEY`). An
//! encrypted key is recognised and named, never decrypted. Only the public
//! half leaves this module (to compare with a certificate); the secret
//! bytes are kept for signing and never printed (`Debug` hides them).

use base64::Engine;

use super::der::{self, Reader};

pub const OID_RSA: &str = "1.2.840.113549.1.1.1";
pub const OID_EC: &str = "1.2.840.10045.2.1";
pub const OID_ED25519: &str = "1.3.101.112";
pub const OID_P256: &str = "1.2.840.10045.3.1.7";
pub const OID_P384: &str = "1.3.132.0.34";
pub const OID_P521: &str = "1.3.132.0.35";

/// Why bytes are not a usable key or certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Bad(String),
    /// An encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY`, or a
    /// traditional key with `Proc-Type: 4,ENCRYPTED`).
    #[error(
        "the private key is encrypted ({0}); etcd cannot use an encrypted key: decrypt it \
         (openssl pkey -in FILE -out FILE.plain) and keep it mode 0600"
    )]
    Encrypted(String),
}

fn bad(s: impl Into<String>) -> ParseError {
    ParseError::Bad(s.into())
}

/// One PEM block.
#[derive(Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub headers: Vec<(String, String)>,
    pub der: Vec<u8>,
}

/// Whether the bytes look like PEM text (a `-----BEGIN ` line).
pub fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every PEM block of `text`, in order. Text between blocks is ignored (as
/// openssl and Go do); a block that does not end, or whose base64 is bad, is
/// an error naming the block.
pub fn pem_blocks(text: &[u8]) -> Result<Vec<PemBlock>, ParseError> {
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let mut n = 0;
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        n += 1;
        let label = label.to_string();
        let end = format!("-----END {label}-----");
        let mut headers = Vec::new();
        let mut body = String::new();
        let mut in_headers = true;
        let mut ended = false;
        for l in lines.by_ref() {
            let l = l.trim();
            if l == end {
                ended = true;
                break;
            }
            if in_headers {
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                    continue;
                }
                in_headers = false;
                if l.is_empty() {
                    continue;
                }
            }
            body.push_str(l);
        }
        if !ended {
            return Err(bad(format!("PEM block {n} ({label}) has no END line")));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| bad(format!("PEM block {n} ({label}): bad base64: {e}")))?;
        out.push(PemBlock {
            label,
            headers,
            der,
        });
    }
    Ok(out)
}

/// The form a key file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum KeyForm {
    #[serde(rename = "PKCS#1")]
    Pkcs1,
    #[serde(rename = "SEC1")]
    Sec1,
    #[serde(rename = "PKCS#8")]
    Pkcs8,
}

/// An elliptic curve, by its OID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
    Other(String),
}

impl Curve {
    fn from_oid(body: &[u8]) -> Curve {
        match der::oid_text(body).as_str() {
            OID_P256 => Curve::P256,
            OID_P384 => Curve::P384,
            OID_P521 => Curve::P521,
            o => Curve::Other(o.to_string()),
        }
    }

    pub fn oid(&self) -> &str {
        match self {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
            Curve::P521 => OID_P521,
            Curve::Other(o) => o,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Curve::P256 => "P-256".into(),
            Curve::P384 => "P-384".into(),
            Curve::P521 => "P-521".into(),
            Curve::Other(o) => format!("curve {o}"),
        }
    }
}

/// A public key, in the form two keys are compared by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Modulus and exponent, without leading zero bytes.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The curve and the encoded point (as in the certificate).
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// `RSA-2048`, `ECDSA P-256`, `Ed25519`.
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { n, .. } => {
                let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
                format!("RSA-{bits}")
            }
            PublicKey::Ec { curve, .. } => format!("ECDSA {}", curve.name()),
            PublicKey::Ed25519(_) => "Ed25519".into(),
        }
    }

    /// From a SubjectPublicKeyInfo's algorithm OID, parameters (the DER
    /// element, if any) and key bits.
    pub fn from_spki(alg: &str, params: Option<&[u8]>, key: &[u8]) -> Option<PublicKey> {
        match alg {
            OID_RSA => rsa_public(key).ok(),
            OID_EC => {
                let p = params?;
                let oid = der::whole(p, der::OID).ok()?;
                Some(PublicKey::Ec {
                    curve: Curve::from_oid(oid),
                    point: key.to_vec(),
                })
            }
            OID_ED25519 if key.len() == 32 => Some(PublicKey::Ed25519(key.to_vec())),
            _ => None,
        }
    }
}

/// `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
fn rsa_public(key: &[u8]) -> Result<PublicKey, &'static str> {
    let mut r = Reader::new(der::whole(key, der::SEQUENCE)?);
    let n = der::unsigned(r.expect(der::INTEGER)?).to_vec();
    let e = der::unsigned(r.expect(der::INTEGER)?).to_vec();
    Ok(PublicKey::Rsa { n, e })
}

#[derive(Clone, PartialEq, Eq)]
enum Secret {
    /// The whole RSAPrivateKey (PKCS#1) DER.
    Rsa(Vec<u8>),
    /// The EC private scalar.
    Ec { scalar: Vec<u8> },
    /// The 32-byte seed.
    Ed25519(Vec<u8>),
}

/// A private key, read from a file.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    pub form: KeyForm,
    /// The public half: for SEC1 EC keys without their public key, `None`.
    pub public: Option<PublicKey>,
    /// The curve of an EC key (known even without the public point).
    pub curve: Option<Curve>,
    secret: Secret,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("form", &self.form)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// `RSA`, `ECDSA P-256`, `Ed25519`.
    pub fn describe(&self) -> String {
        match (&self.public, &self.secret, &self.curve) {
            (Some(p), _, _) => p.describe(),
            (None, _, Some(c)) => format!("ECDSA {}", c.name()),
            (None, Secret::Rsa(_), _) => "RSA".into(),
            (None, Secret::Ed25519(_), _) => "Ed25519".into(),
            (None, Secret::Ec { .. }, None) => "ECDSA".into(),
        }
    }

    /// The key as unencrypted PKCS#8 DER (what ring signs with); EC keys
    /// need their public point.
    pub fn pkcs8_der(&self) -> Result<Vec<u8>, ParseError> {
        let version = der::tlv(der::INTEGER, &[0]);
        match &self.secret {
            Secret::Rsa(pkcs1) => {
                let alg = [
                    der::tlv(der::OID, &der::oid_body(OID_RSA)),
                    der::tlv(der::NULL, &[]),
                ]
                .concat();
                Ok(der::tlv(
                    der::SEQUENCE,
                    &[
                        version,
                        der::tlv(der::SEQUENCE, &alg),
                        der::tlv(der::OCTET_STRING, pkcs1),
                    ]
                    .concat(),
                ))
            }
            Secret::Ec { scalar } => {
                let (Some(curve), Some(PublicKey::Ec { point, .. })) = (&self.curve, &self.public)
                else {
                    return Err(bad(
                        "the EC key holds no public key and no curve; cannot use it to sign",
                    ));
                };
                let mut bits = vec![0u8];
                bits.extend_from_slice(point);
                let sec1 = der::tlv(
                    der::SEQUENCE,
                    &[
                        der::tlv(der::INTEGER, &[1]),
                        der::tlv(der::OCTET_STRING, scalar),
                        der::tlv(der::CTX1, &der::tlv(der::BIT_STRING, &bits)),
                    ]
                    .concat(),
                );
                let alg = [
                    der::tlv(der::OID, &der::oid_body(OID_EC)),
                    der::tlv(der::OID, &der::oid_body(curve.oid())),
                ]
                .concat();
                Ok(der::tlv(
                    der::SEQUENCE,
                    &[
                        version,
                        der::tlv(der::SEQUENCE, &alg),
                        der::tlv(der::OCTET_STRING, &sec1),
                    ]
                    .concat(),
                ))
            }
            Secret::Ed25519(seed) => {
                let alg = der::tlv(der::OID, &der::oid_body(OID_ED25519));
                Ok(der::tlv(
                    der::SEQUENCE,
                    &[
                        version,
                        der::tlv(der::SEQUENCE, &alg),
                        der::tlv(der::OCTET_STRING, &der::tlv(der::OCTET_STRING, seed)),
                    ]
                    .concat(),
                ))
            }
        }
    }

    /// The key as PEM in the form kubeadm writes it: `RSA PRIVATE KEY`
    /// (PKCS#1) for RSA, `EC PRIVATE KEY` (SEC1, with the curve and the
    /// public key, as openssl wants them) for EC, `PRIVATE KEY` (PKCS#8) for
    /// Ed25519.
    pub fn kubeadm_pem(&self) -> Result<String, ParseError> {
        match &self.secret {
            Secret::Rsa(pkcs1) => Ok(pem("RSA PRIVATE KEY", pkcs1)),
            Secret::Ec { scalar } => {
                let (Some(curve), Some(PublicKey::Ec { point, .. })) = (&self.curve, &self.public)
                else {
                    return Err(bad("the EC key holds no public key"));
                };
                let mut bits = vec![0u8];
                bits.extend_from_slice(point);
                let sec1 = der::tlv(
                    der::SEQUENCE,
                    &[
                        der::tlv(der::INTEGER, &[1]),
                        der::tlv(der::OCTET_STRING, scalar),
                        der::tlv(der::CTX0, &der::tlv(der::OID, &der::oid_body(curve.oid()))),
                        der::tlv(der::CTX1, &der::tlv(der::BIT_STRING, &bits)),
                    ]
                    .concat(),
                );
                Ok(pem("EC PRIVATE KEY", &sec1))
            }
            Secret::Ed25519(_) => Ok(pem("PRIVATE KEY", &self.pkcs8_der()?)),
        }
    }
}

/// PEM text of one block, 64 columns.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Reads a private key file's bytes (PEM or DER).
pub fn read_key(bytes: &[u8]) -> Result<PrivateKey, ParseError> {
    if !is_pem(bytes) {
        return key_from_der(bytes);
    }
    let blocks = pem_blocks(bytes)?;
    let mut labels = Vec::new();
    for b in &blocks {
        let encrypted = b
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("Proc-Type") && v.contains("ENCRYPTED"));
        let r = match b.label.as_str() {
            "ENCRYPTED PRIVATE KEY" => {
                return Err(ParseError::Encrypted("PEM ENCRYPTED PRIVATE KEY".into()));
            }
            l @ ("RSA PRIVATE KEY" | "EC PRIVATE KEY") if encrypted => {
                return Err(ParseError::Encrypted(format!(
                    "PEM {l} with Proc-Type ENCRYPTED"
                )));
            }
            "RSA PRIVATE KEY" => pkcs1(&b.der),
            "EC PRIVATE KEY" => sec1(&b.der, None),
            "PRIVATE KEY" => pkcs8(&b.der),
            l => {
                labels.push(l.to_string());
                continue;
            }
        };
        return r.map_err(|e| bad(format!("PEM {}: {e}", b.label)));
    }
    Err(bad(if labels.is_empty() {
        "no PEM block in the file".to_string()
    } else {
        format!(
            "no private key in the file (PEM blocks: {})",
            labels.join(", ")
        )
    }))
}

/// A DER key: PKCS#8, PKCS#1 or SEC1, whichever parses.
fn key_from_der(bytes: &[u8]) -> Result<PrivateKey, ParseError> {
    if bytes.is_empty() {
        return Err(bad("the file is empty"));
    }
    if looks_encrypted_pkcs8(bytes) {
        return Err(ParseError::Encrypted("DER EncryptedPrivateKeyInfo".into()));
    }
    match pkcs8(bytes) {
        Ok(k) => Ok(k),
        Err(e8) => {
            if let Ok(k) = pkcs1(bytes) {
                return Ok(k);
            }
            if let Ok(k) = sec1(bytes, None) {
                return Ok(k);
            }
            Err(bad(format!(
                "neither PEM nor a DER private key (PKCS#8: {e8}; not PKCS#1 nor SEC1 either)"
            )))
        }
    }
}

/// `EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }`.
fn looks_encrypted_pkcs8(bytes: &[u8]) -> bool {
    let Ok(body) = der::whole(bytes, der::SEQUENCE) else {
        return false;
    };
    let mut r = Reader::new(body);
    r.expect(der::SEQUENCE).is_ok() && r.expect(der::OCTET_STRING).is_ok() && r.is_empty()
}

/// `RSAPrivateKey` (PKCS#1).
fn pkcs1(bytes: &[u8]) -> Result<PrivateKey, ParseError> {
    let e = |w: &str| bad(format!("not a PKCS#1 RSA private key: {w}"));
    let body = der::whole(bytes, der::SEQUENCE).map_err(e)?;
    let mut r = Reader::new(body);
    let v = r.expect(der::INTEGER).map_err(e)?;
    if der::small(v).is_none_or(|v| v > 1) {
        return Err(e("bad version"));
    }
    let n = der::unsigned(r.expect(der::INTEGER).map_err(e)?).to_vec();
    let ex = der::unsigned(r.expect(der::INTEGER).map_err(e)?).to_vec();
    for _ in 0..6 {
        r.expect(der::INTEGER).map_err(e)?;
    }
    if n.is_empty() || ex.is_empty() {
        return Err(e("zero modulus or exponent"));
    }
    Ok(PrivateKey {
        form: KeyForm::Pkcs1,
        public: Some(PublicKey::Rsa { n, e: ex }),
        curve: None,
        secret: Secret::Rsa(bytes.to_vec()),
    })
}

/// `ECPrivateKey` (SEC1); `curve` from PKCS#8's algorithm parameters.
fn sec1(bytes: &[u8], curve: Option<Curve>) -> Result<PrivateKey, ParseError> {
    let e = |w: &str| bad(format!("not a SEC1 EC private key: {w}"));
    let body = der::whole(bytes, der::SEQUENCE).map_err(e)?;
    let mut r = Reader::new(body);
    if der::small(r.expect(der::INTEGER).map_err(e)?) != Some(1) {
        return Err(e("bad version"));
    }
    let scalar = r.expect(der::OCTET_STRING).map_err(e)?.to_vec();
    if scalar.is_empty() {
        return Err(e("empty private scalar"));
    }
    let mut curve = curve;
    if let Some(p) = r.optional(der::CTX0).map_err(e)? {
        let oid = der::whole(p, der::OID).map_err(e)?;
        let c = Curve::from_oid(oid);
        if curve.as_ref().is_some_and(|k| *k != c) {
            return Err(e("the curve in the key differs from the algorithm's"));
        }
        curve = Some(c);
    }
    let mut public = None;
    if let Some(p) = r.optional(der::CTX1).map_err(e)? {
        let bits = der::whole(p, der::BIT_STRING).map_err(e)?;
        match bits.split_first() {
            Some((0, point)) if !point.is_empty() => {
                public = curve.clone().map(|curve| PublicKey::Ec {
                    curve,
                    point: point.to_vec(),
                });
            }
            _ => return Err(e("bad public key bits")),
        }
    }
    Ok(PrivateKey {
        form: KeyForm::Sec1,
        public,
        curve,
        secret: Secret::Ec { scalar },
    })
}

/// `PrivateKeyInfo` / `OneAsymmetricKey` (PKCS#8, unencrypted).
fn pkcs8(bytes: &[u8]) -> Result<PrivateKey, ParseError> {
    let e = |w: &str| bad(format!("not a PKCS#8 private key: {w}"));
    let body = der::whole(bytes, der::SEQUENCE).map_err(e)?;
    let mut r = Reader::new(body);
    if der::small(r.expect(der::INTEGER).map_err(e)?).is_none_or(|v| v > 1) {
        return Err(e("bad version"));
    }
    let mut alg = Reader::new(r.expect(der::SEQUENCE).map_err(e)?);
    let oid = der::oid_text(alg.expect(der::OID).map_err(e)?);
    let params = if alg.is_empty() {
        None
    } else {
        Some(alg.element().map_err(e)?)
    };
    let inner = r.expect(der::OCTET_STRING).map_err(e)?;
    let mut k = match oid.as_str() {
        OID_RSA => pkcs1(inner)?,
        OID_EC => {
            let curve = match params {
                Some((der::OID, c)) => Some(Curve::from_oid(c)),
                _ => None,
            };
            sec1(inner, curve)?
        }
        OID_ED25519 => {
            let seed = der::whole(inner, der::OCTET_STRING).map_err(e)?;
            if seed.len() != 32 {
                return Err(e("an Ed25519 seed is 32 bytes"));
            }
            let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
                .map_err(|_| e("bad Ed25519 seed"))?;
            use ring::signature::KeyPair;
            PrivateKey {
                form: KeyForm::Pkcs8,
                public: Some(PublicKey::Ed25519(pair.public_key().as_ref().to_vec())),
                curve: None,
                secret: Secret::Ed25519(seed.to_vec()),
            }
        }
        other => {
            return Err(bad(format!(
                "unsupported private key algorithm {other} (etcd's Go reads RSA, ECDSA and Ed25519)"
            )));
        }
    };
    k.form = KeyForm::Pkcs8;
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error() {
        for b in [
            &b""[..],
            b"\x30",
            b"\x30\x03\x02\x01\x00",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n",
            b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(read_key(b).is_err(), "{b:?}");
        }
    }

    #[test]
    fn encrypted_is_named() {
        let t = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(read_key(t), Err(ParseError::Encrypted(_))));
    }

    #[test]
    fn ed25519_round_trip() {
        let seed = [7u8; 32];
        let k = PrivateKey {
            form: KeyForm::Pkcs8,
            public: None,
            curve: None,
            secret: Secret::Ed25519(seed.to_vec()),
        };
        let der = k.pkcs8_der().unwrap();
        let back = read_key(&der).unwrap();
        assert!(back.secret == k.secret);
        assert!(matches!(back.public, Some(PublicKey::Ed25519(_))));
        assert!(!format!("{back:?}").contains("7, 7"));
    }
}
