//! Private keys and PEM files as kubeadm, openssl and Go write them: PEM
//! blocks (with RFC 1421 headers, which mark an encrypted key) or bare DER;
//! RSA keys in PKCS#1 (`RSA PRIVATE KEY`), EC keys in SEC1 (`EC PRIVATE
//! KEY`), and RSA, ECDSA and Ed25519 keys in PKCS#8 (`PRIVATE KEY`). An
//! encrypted key is recognised and named, never decrypted. Only the public
//! half leaves this module (to compare with a certificate); the secret
//! bytes are kept for signing and never printed (`Debug` hides them).
//!
//! No parsing is ours: the `pem` crate splits PEM text into blocks and
//! headers, and RustCrypto's `pkcs1`, `sec1`, `pkcs8` and `spki` (on `der`)
//! read and write the key structures. This module picks the form, checks
//! what Go checks on top, and words the errors.

use der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode, Reader};
use pkcs8::PrivateKeyInfo;
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

/// rsaEncryption.
pub const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey.
pub const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// id-Ed25519.
pub const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// The P-256 curve (prime256v1, secp256r1).
pub const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// The P-384 curve (secp384r1).
pub const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// The P-521 curve (secp521r1).
pub const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// Why bytes are not a usable key or certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not a key or certificate this reader takes.
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
    /// The block's label (`CERTIFICATE`, `EC PRIVATE KEY` …).
    pub label: String,
    /// Its RFC 1421 headers (`Proc-Type`, `DEK-Info`).
    pub headers: Vec<(String, String)>,
    /// Its DER.
    pub der: Vec<u8>,
}

const BEGIN: &[u8] = b"-----BEGIN ";

/// Whether the bytes look like PEM text (a `-----BEGIN ` line).
pub fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(BEGIN.len()).any(|w| w == BEGIN)
}

/// Every PEM block of `text`, in order (the `pem` crate's reading). Text
/// between blocks is ignored (as openssl and Go do); a block whose END line
/// is missing or names another label, or whose base64 or headers are bad,
/// is an error.
pub fn pem_blocks(text: &[u8]) -> Result<Vec<PemBlock>, ParseError> {
    let blocks = pem::parse_many(text).map_err(|e| bad(format!("bad PEM: {e}")))?;
    // The crate stops at a BEGIN line with no END after it; Go skips such a
    // block too, but a cut-off file is worth naming.
    let begins = text.windows(BEGIN.len()).filter(|w| *w == BEGIN).count();
    if begins > blocks.len() {
        return Err(bad(format!(
            "PEM block {} has no END line",
            blocks.len() + 1
        )));
    }
    Ok(blocks
        .into_iter()
        .map(|p| PemBlock {
            label: p.tag().to_string(),
            headers: p
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            der: p.into_contents(),
        })
        .collect())
}

/// PEM text of one block, 64 columns, LF line ends (as Go and openssl
/// write it).
pub fn pem(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The form a key file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum KeyForm {
    /// An RSA key in PKCS#1 (`RSA PRIVATE KEY`).
    #[serde(rename = "PKCS#1")]
    Pkcs1,
    /// An EC key in SEC1 (`EC PRIVATE KEY`).
    #[serde(rename = "SEC1")]
    Sec1,
    /// Any key in PKCS#8 (`PRIVATE KEY`).
    #[serde(rename = "PKCS#8")]
    Pkcs8,
}

/// An elliptic curve, by its OID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
    /// NIST P-521.
    P521,
    /// Another curve, by its object identifier.
    Other(ObjectIdentifier),
}

impl Curve {
    fn from_oid(oid: ObjectIdentifier) -> Curve {
        match oid {
            OID_P256 => Curve::P256,
            OID_P384 => Curve::P384,
            OID_P521 => Curve::P521,
            o => Curve::Other(o),
        }
    }

    /// The curve's object identifier.
    pub fn oid(&self) -> ObjectIdentifier {
        match self {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
            Curve::P521 => OID_P521,
            Curve::Other(o) => *o,
        }
    }

    /// The curve's name as Go prints it.
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
    /// Modulus and exponent, without leading zero bytes (`der`'s unsigned
    /// INTEGER magnitudes).
    Rsa {
        /// The modulus, big-endian.
        n: Vec<u8>,
        /// The public exponent, big-endian.
        e: Vec<u8>,
    },
    /// The curve and the encoded point (as in the certificate).
    Ec {
        /// The curve.
        curve: Curve,
        /// The encoded point (as in the certificate).
        point: Vec<u8>,
    },
    /// An Ed25519 public key's 32 bytes.
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// `RSA-2048`, `ECDSA P-256`, `Ed25519`.
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { n, .. } => {
                let bits = (n.len() * 8)
                    .saturating_sub(n.first().map_or(8, |b| b.leading_zeros() as usize));
                format!("RSA-{bits}")
            }
            PublicKey::Ec { curve, .. } => format!("ECDSA {}", curve.name()),
            PublicKey::Ed25519(_) => "Ed25519".into(),
        }
    }

    /// From a DER SubjectPublicKeyInfo (`spki`); `None` for other
    /// algorithms and for keys that do not parse.
    pub fn from_spki_der(spki_der: &[u8]) -> Option<PublicKey> {
        let spki = SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
        let key = spki.subject_public_key.as_bytes()?;
        match spki.algorithm.oid {
            OID_RSA => {
                let k = pkcs1::RsaPublicKey::from_der(key).ok()?;
                Some(PublicKey::Rsa {
                    n: k.modulus.as_bytes().to_vec(),
                    e: k.public_exponent.as_bytes().to_vec(),
                })
            }
            OID_EC => {
                let curve = spki.algorithm.parameters?.decode_as::<ObjectIdentifier>();
                Some(PublicKey::Ec {
                    curve: Curve::from_oid(curve.ok()?),
                    point: key.to_vec(),
                })
            }
            OID_ED25519 if key.len() == 32 => Some(PublicKey::Ed25519(key.to_vec())),
            _ => None,
        }
    }
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
    /// How the key was encoded.
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

/// A key structure `der` could not write (it can only be a length past
/// DER's limits, which no key read from a file reaches).
fn encode_err(e: der::Error) -> ParseError {
    bad(format!("cannot encode the key: {e}"))
}

/// `PrivateKeyInfo` (PKCS#8 v1) around an inner key.
fn pkcs8_wrap(
    oid: ObjectIdentifier,
    parameters: Option<AnyRef<'_>>,
    inner: &[u8],
) -> Result<Vec<u8>, ParseError> {
    PrivateKeyInfo {
        algorithm: AlgorithmIdentifierRef { oid, parameters },
        private_key: inner,
        public_key: None,
    }
    .to_der()
    .map_err(encode_err)
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

    /// The EC key's curve and point, which writing it needs.
    fn ec_parts(&self) -> Result<(ObjectIdentifier, &[u8]), ParseError> {
        match (&self.curve, &self.public) {
            (Some(curve), Some(PublicKey::Ec { point, .. })) => Ok((curve.oid(), point)),
            _ => Err(bad(
                "the EC key holds no public key and no curve; cannot use it to sign",
            )),
        }
    }

    /// The key as unencrypted PKCS#8 DER (what ring signs with); EC keys
    /// need their public point.
    pub fn pkcs8_der(&self) -> Result<Vec<u8>, ParseError> {
        match &self.secret {
            Secret::Rsa(pkcs1) => pkcs8_wrap(OID_RSA, Some(AnyRef::NULL), pkcs1),
            Secret::Ec { scalar } => {
                let (curve, point) = self.ec_parts()?;
                let sec1 = sec1::EcPrivateKey {
                    private_key: scalar,
                    parameters: None,
                    public_key: Some(point),
                }
                .to_der()
                .map_err(encode_err)?;
                pkcs8_wrap(OID_EC, Some(AnyRef::from(&curve)), &sec1)
            }
            Secret::Ed25519(seed) => {
                let inner = OctetStringRef::new(seed)
                    .and_then(|s| s.to_der())
                    .map_err(encode_err)?;
                pkcs8_wrap(OID_ED25519, None, &inner)
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
                let (curve, point) = self.ec_parts()?;
                let sec1 = sec1::EcPrivateKey {
                    private_key: scalar,
                    parameters: Some(sec1::EcParameters::NamedCurve(curve)),
                    public_key: Some(point),
                }
                .to_der()
                .map_err(encode_err)?;
                Ok(pem("EC PRIVATE KEY", &sec1))
            }
            Secret::Ed25519(_) => Ok(pem("PRIVATE KEY", &self.pkcs8_der()?)),
        }
    }
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

/// `EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET
/// STRING }`, whatever the encryption scheme (pkcs8's own type reads only
/// the PBES2 schemes it can decrypt; an old PBES1 key is still encrypted).
fn looks_encrypted_pkcs8(bytes: &[u8]) -> bool {
    let Ok(mut r) = der::SliceReader::new(bytes) else {
        return false;
    };
    r.sequence(|r| {
        AlgorithmIdentifierRef::decode(r)?;
        OctetStringRef::decode(r)
    })
    .and_then(|_| r.finish(()))
    .is_ok()
}

/// `RSAPrivateKey` (PKCS#1, `pkcs1`).
fn pkcs1(bytes: &[u8]) -> Result<PrivateKey, ParseError> {
    let e = |w: &dyn std::fmt::Display| bad(format!("not a PKCS#1 RSA private key: {w}"));
    let k = pkcs1::RsaPrivateKey::from_der(bytes).map_err(|x| e(&x))?;
    let n = k.modulus.as_bytes();
    let ex = k.public_exponent.as_bytes();
    if is_zero(n) || is_zero(ex) {
        return Err(e(&"zero modulus or exponent"));
    }
    Ok(PrivateKey {
        form: KeyForm::Pkcs1,
        public: Some(PublicKey::Rsa {
            n: n.to_vec(),
            e: ex.to_vec(),
        }),
        curve: None,
        secret: Secret::Rsa(bytes.to_vec()),
    })
}

fn is_zero(int: &[u8]) -> bool {
    int.iter().all(|&b| b == 0)
}

/// `ECPrivateKey` (SEC1, `sec1`); `curve` from PKCS#8's algorithm
/// parameters.
fn sec1(bytes: &[u8], curve: Option<Curve>) -> Result<PrivateKey, ParseError> {
    let e = |w: &dyn std::fmt::Display| bad(format!("not a SEC1 EC private key: {w}"));
    let k = sec1::EcPrivateKey::from_der(bytes).map_err(|x| e(&x))?;
    if k.private_key.is_empty() {
        return Err(e(&"empty private scalar"));
    }
    let mut curve = curve;
    if let Some(c) = k.parameters.and_then(|p| p.named_curve()) {
        let c = Curve::from_oid(c);
        if curve.as_ref().is_some_and(|k| *k != c) {
            return Err(e(&"the curve in the key differs from the algorithm's"));
        }
        curve = Some(c);
    }
    let public = match k.public_key {
        Some([]) => return Err(e(&"bad public key bits")),
        Some(point) => curve.clone().map(|curve| PublicKey::Ec {
            curve,
            point: point.to_vec(),
        }),
        None => None,
    };
    Ok(PrivateKey {
        form: KeyForm::Sec1,
        public,
        curve,
        secret: Secret::Ec {
            scalar: k.private_key.to_vec(),
        },
    })
}

/// `PrivateKeyInfo` / `OneAsymmetricKey` (PKCS#8, unencrypted, `pkcs8`).
fn pkcs8(bytes: &[u8]) -> Result<PrivateKey, ParseError> {
    let e = |w: &dyn std::fmt::Display| bad(format!("not a PKCS#8 private key: {w}"));
    let info = PrivateKeyInfo::from_der(bytes).map_err(|x| e(&x))?;
    let alg = info.algorithm;
    let mut k = match alg.oid {
        OID_RSA => pkcs1(info.private_key)?,
        OID_EC => {
            let curve = alg
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .map(Curve::from_oid);
            sec1(info.private_key, curve)?
        }
        OID_ED25519 => {
            let seed = OctetStringRef::from_der(info.private_key)
                .map_err(|x| e(&x))?
                .as_bytes();
            if seed.len() != 32 {
                return Err(e(&"an Ed25519 seed is 32 bytes"));
            }
            let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
                .map_err(|_| e(&"bad Ed25519 seed"))?;
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

    /// Runs openssl in `dir`; a missing openssl fails the test.
    fn openssl(dir: &std::path::Path, args: &[&str]) {
        let o = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl must be installed");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn openssl_text(dir: &std::path::Path, args: &[&str]) -> String {
        let o = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl must be installed");
        assert!(o.status.success(), "openssl {args:?}");
        String::from_utf8(o.stdout).unwrap()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02X}")).collect()
    }

    /// openssl's Ed25519 key (PKCS#8, PEM and DER) reads, its public key is
    /// openssl's, and it is written back byte for byte as openssl wrote it.
    #[test]
    fn openssl_ed25519_pkcs8() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        openssl(d, &["genpkey", "-algorithm", "ed25519", "-out", "k.pem"]);
        openssl(
            d,
            &["pkey", "-in", "k.pem", "-outform", "DER", "-out", "k.der"],
        );
        openssl(
            d,
            &[
                "pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "k.pub",
            ],
        );
        let read = |f: &str| std::fs::read(d.join(f)).unwrap();
        let spki = read("k.pub");
        for f in ["k.pem", "k.der"] {
            let k = read_key(&read(f)).unwrap();
            assert_eq!(k.form, KeyForm::Pkcs8, "{f}");
            assert_eq!(k.describe(), "Ed25519");
            assert_eq!(
                k.public,
                Some(PublicKey::Ed25519(spki[spki.len() - 32..].to_vec())),
                "{f}"
            );
            assert_eq!(k.pkcs8_der().unwrap(), read("k.der"), "{f}");
            assert_eq!(k.kubeadm_pem().unwrap().into_bytes(), read("k.pem"), "{f}");
        }
    }

    /// openssl's RSA key in PKCS#1 and PKCS#8: the modulus is openssl's,
    /// and PKCS#8 and PKCS#1 come out as openssl writes them.
    #[test]
    fn openssl_rsa_forms() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        openssl(d, &["genrsa", "-traditional", "-out", "k.pem", "2048"]);
        openssl(
            d,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-outform", "DER", "-out", "k8.der",
            ],
        );
        openssl(
            d,
            &[
                "rsa",
                "-in",
                "k.pem",
                "-traditional",
                "-outform",
                "DER",
                "-out",
                "k1.der",
            ],
        );
        let read = |f: &str| std::fs::read(d.join(f)).unwrap();
        let modulus = openssl_text(d, &["rsa", "-in", "k.pem", "-noout", "-modulus"]);
        for (f, form) in [
            ("k.pem", KeyForm::Pkcs1),
            ("k1.der", KeyForm::Pkcs1),
            ("k8.der", KeyForm::Pkcs8),
        ] {
            let k = read_key(&read(f)).unwrap();
            assert_eq!(k.form, form, "{f}");
            assert_eq!(k.describe(), "RSA-2048", "{f}");
            let Some(PublicKey::Rsa { n, e }) = &k.public else {
                panic!("{f}: {k:?}")
            };
            assert_eq!(format!("Modulus={}\n", hex(n)), modulus, "{f}");
            assert_eq!(e, &[1, 0, 1], "{f}");
            assert_eq!(k.pkcs8_der().unwrap(), read("k8.der"), "{f}");
            assert_eq!(k.kubeadm_pem().unwrap().into_bytes(), read("k.pem"), "{f}");
            assert!(!format!("{k:?}").contains(&hex(&read("k1.der")[20..40])));
        }
    }

    /// openssl's EC keys (SEC1 and PKCS#8, each curve Go reads): the point
    /// is openssl's, SEC1 comes out as `openssl ec` writes it and PKCS#8 as
    /// `openssl pkcs8` does.
    #[test]
    fn openssl_ec_forms() {
        for (name, curve, desc) in [
            ("prime256v1", Curve::P256, "ECDSA P-256"),
            ("secp384r1", Curve::P384, "ECDSA P-384"),
            ("secp521r1", Curve::P521, "ECDSA P-521"),
        ] {
            let t = tempfile::tempdir().unwrap();
            let d = t.path();
            openssl(
                d,
                &[
                    "ecparam", "-name", name, "-genkey", "-noout", "-out", "k.pem",
                ],
            );
            openssl(
                d,
                &[
                    "pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-outform", "DER", "-out",
                    "k8.der",
                ],
            );
            openssl(
                d,
                &[
                    "pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-out", "k8.pem",
                ],
            );
            openssl(
                d,
                &["ec", "-in", "k.pem", "-outform", "DER", "-out", "k1.der"],
            );
            openssl(
                d,
                &[
                    "ec", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "k.pub",
                ],
            );
            let read = |f: &str| std::fs::read(d.join(f)).unwrap();
            let spki = read("k.pub");
            // The point is the BIT STRING that ends the SubjectPublicKeyInfo.
            let point_len = match curve {
                Curve::P256 => 65,
                Curve::P384 => 97,
                _ => 133,
            };
            let point = spki[spki.len() - point_len..].to_vec();
            for (f, form) in [
                ("k.pem", KeyForm::Sec1),
                ("k1.der", KeyForm::Sec1),
                ("k8.der", KeyForm::Pkcs8),
                ("k8.pem", KeyForm::Pkcs8),
            ] {
                let k = read_key(&read(f)).unwrap();
                assert_eq!(k.form, form, "{name} {f}");
                assert_eq!(k.describe(), desc, "{name} {f}");
                assert_eq!(k.curve.as_ref(), Some(&curve), "{name} {f}");
                assert_eq!(
                    k.public,
                    Some(PublicKey::Ec {
                        curve: curve.clone(),
                        point: point.clone()
                    }),
                    "{name} {f}"
                );
                assert_eq!(k.pkcs8_der().unwrap(), read("k8.der"), "{name} {f}");
                assert_eq!(
                    k.kubeadm_pem().unwrap().into_bytes(),
                    read("k.pem"),
                    "{name} {f}"
                );
            }
        }
    }

    /// openssl's encrypted keys, in every form it writes them (PKCS#8 PBES2
    /// and the old PBES1, PEM and DER; traditional RSA and EC PEM with
    /// Proc-Type), are named as encrypted, never read as something else.
    #[test]
    fn openssl_encrypted_keys_are_named() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        openssl(d, &["genrsa", "-traditional", "-out", "rsa.pem", "2048"]);
        openssl(
            d,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec.pem",
            ],
        );
        let p8 = ["pkcs8", "-topk8", "-in", "rsa.pem", "-passout", "pass:x"];
        openssl(d, &[&p8[..], &["-out", "p8.pem"]].concat());
        openssl(
            d,
            &[&p8[..], &["-outform", "DER", "-out", "p8.der"]].concat(),
        );
        openssl(
            d,
            &[
                &p8[..],
                &["-v1", "PBE-SHA1-3DES", "-outform", "DER", "-out", "p5.der"],
            ]
            .concat(),
        );
        openssl(
            d,
            &[
                "rsa",
                "-in",
                "rsa.pem",
                "-traditional",
                "-aes128",
                "-passout",
                "pass:x",
                "-out",
                "trad-rsa.pem",
            ],
        );
        openssl(
            d,
            &[
                "ec",
                "-in",
                "ec.pem",
                "-aes128",
                "-passout",
                "pass:x",
                "-out",
                "trad-ec.pem",
            ],
        );
        for (f, what) in [
            ("p8.pem", "PEM ENCRYPTED PRIVATE KEY"),
            ("p8.der", "DER EncryptedPrivateKeyInfo"),
            ("p5.der", "DER EncryptedPrivateKeyInfo"),
            (
                "trad-rsa.pem",
                "PEM RSA PRIVATE KEY with Proc-Type ENCRYPTED",
            ),
            ("trad-ec.pem", "PEM EC PRIVATE KEY with Proc-Type ENCRYPTED"),
        ] {
            let bytes = std::fs::read(d.join(f)).unwrap();
            assert_eq!(
                read_key(&bytes),
                Err(ParseError::Encrypted(what.into())),
                "{f}"
            );
        }
    }

    /// PEM as other tools leave it: CRLF line ends and text around the
    /// block read; a block cut off before its END line is an error even
    /// after a good block.
    #[test]
    fn pem_framing() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        openssl(
            d,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "k.pem",
            ],
        );
        let text = std::fs::read_to_string(d.join("k.pem")).unwrap();
        let want = read_key(text.as_bytes()).unwrap();
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(read_key(crlf.as_bytes()).unwrap(), want);
        let around = format!("subject=CN = x\n{text}\nsome trailer\n");
        assert_eq!(read_key(around.as_bytes()).unwrap(), want);
        let cut = format!("{text}-----BEGIN CERTIFICATE-----\nMIIB\n");
        assert!(read_key(cut.as_bytes()).is_err());
        let cut = format!("-----BEGIN CERTIFICATE-----\nMIIB\n{text}");
        assert!(read_key(cut.as_bytes()).is_err());
    }

    /// A certificate's RSA key with a zero modulus is described, not a
    /// panic (the old reader stripped the zero to nothing and `describe`
    /// subtracted past zero).
    #[test]
    fn zero_rsa_modulus_is_described() {
        let spki = [
            0x30, 0x1a, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
            0x01, 0x05, 0x00, 0x03, 0x09, 0x00, 0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x03,
        ];
        let k = PublicKey::from_spki_der(&spki).unwrap();
        assert_eq!(k.describe(), "RSA-0");
    }
}
