//! X.509 certificates read into what Go's TLS looks at (spec §3.4): raw
//! subject and issuer (chains are built by raw DER name), validity, CA flag,
//! extended key usages, DNS and IP SANs, the public key; and signature
//! checks of a certificate by its issuer's key (ring), refusing SHA-1 and
//! MD5 as Go does. Parsing is x509-parser's; this module copies out the
//! fields so nothing borrows the file's bytes.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use der::{Decode, Encode};

use super::parse::{self, ParseError, PublicKey};

/// Extended key usages, when the certificate has the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Eku {
    /// anyExtendedKeyUsage.
    pub any: bool,
    /// serverAuth.
    pub server_auth: bool,
    /// clientAuth.
    pub client_auth: bool,
}

/// What an EKU check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server authentication.
    ServerAuth,
    /// TLS client authentication.
    ClientAuth,
}

impl Usage {
    /// The usage's name as Go prints it.
    pub fn name(self) -> &'static str {
        match self {
            Usage::ServerAuth => "serverAuth",
            Usage::ClientAuth => "clientAuth",
        }
    }
}

/// One certificate.
#[derive(Debug, Clone)]
pub struct Cert {
    /// The certificate's DER.
    pub der: Vec<u8>,
    /// The subject as openssl prints it in RFC 4514 order (`CN=etcd-ca`).
    pub subject: String,
    /// The subject's common name (empty if none).
    pub common_name: String,
    /// The subject's DER, as issuers are matched.
    pub raw_subject: Vec<u8>,
    /// The issuer's DER.
    pub raw_issuer: Vec<u8>,
    /// Seconds since the epoch.
    pub not_before: i64,
    /// Seconds since the epoch.
    pub not_after: i64,
    /// The X.509 version (3 for v3).
    pub version: u32,
    /// Whether basicConstraints is present, and its CA flag.
    pub basic_constraints: Option<bool>,
    /// `None`: no EKU extension (any usage, for Go).
    pub eku: Option<Eku>,
    /// Whether a subjectAltName extension is present.
    pub has_san_ext: bool,
    /// Its DNS names.
    pub dns_names: Vec<String>,
    /// Its IP addresses.
    pub ips: Vec<IpAddr>,
    /// The public key, when of a type this reader knows.
    pub public: Option<PublicKey>,
    /// The SPKI algorithm, for messages when `public` is `None`.
    pub key_alg: String,
    /// The signature algorithm's OID, as text.
    pub sig_alg: String,
    /// The signature algorithm's parameters' DER, if any.
    pub sig_params: Option<Vec<u8>>,
    /// The signature's bytes.
    pub signature: Vec<u8>,
    /// The signed part (tbsCertificate), DER.
    pub tbs: Vec<u8>,
}

impl Cert {
    /// Parses one DER certificate.
    pub fn from_der(der_bytes: &[u8]) -> Result<Cert, ParseError> {
        let (rest, x) = x509_parser::certificate::X509Certificate::from_der(der_bytes)
            .map_err(|e| ParseError::Bad(format!("x509: malformed certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(ParseError::Bad("x509: trailing data".into()));
        }
        let tbs = &x.tbs_certificate;
        let bad_ext = |e: x509_parser::error::X509Error| {
            ParseError::Bad(format!("x509: malformed extension: {e}"))
        };
        let basic_constraints = tbs
            .basic_constraints()
            .map_err(bad_ext)?
            .map(|b| b.value.ca);
        let eku = tbs.extended_key_usage().map_err(bad_ext)?.map(|e| Eku {
            any: e.value.any,
            server_auth: e.value.server_auth,
            client_auth: e.value.client_auth,
        });
        let mut dns_names = Vec::new();
        let mut ips = Vec::new();
        let san = tbs.subject_alternative_name().map_err(bad_ext)?;
        let has_san_ext = san.is_some();
        for n in san.iter().flat_map(|s| s.value.general_names.iter()) {
            match n {
                GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                    16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                    n => {
                        return Err(ParseError::Bad(format!(
                            "x509: certificate contained IP address of length {n}"
                        )));
                    }
                },
                _ => {}
            }
        }
        let spki = &tbs.subject_pki;
        let key_alg = spki.algorithm.algorithm.to_id_string();
        let public = PublicKey::from_spki_der(spki.raw);
        let common_name = tbs
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("")
            .to_string();
        Ok(Cert {
            der: der_bytes.to_vec(),
            subject: tbs.subject().to_string(),
            common_name,
            raw_subject: tbs.subject().as_raw().to_vec(),
            raw_issuer: tbs.issuer().as_raw().to_vec(),
            not_before: tbs.validity().not_before.timestamp(),
            not_after: tbs.validity().not_after.timestamp(),
            // 1-based, as Go counts (X.509 v3 is 2 on the wire).
            version: tbs.version().0 + 1,
            basic_constraints,
            eku,
            has_san_ext,
            dns_names,
            ips,
            public,
            key_alg,
            sig_alg: x.signature_algorithm.algorithm.to_id_string(),
            sig_params: x.signature_algorithm.parameters.as_ref().and_then(|p| {
                {
                    use x509_parser::der_parser::asn1_rs::ToDer;
                    p.to_der_vec_raw()
                }
                .ok()
            }),
            signature: x.signature_value.data.to_vec(),
            tbs: tbs.as_ref().to_vec(),
        })
    }

    /// Whether Go would accept the certificate as a CA (an issuer).
    pub fn is_ca(&self) -> bool {
        self.basic_constraints == Some(true)
    }

    /// Whether the EKU extension allows `u` (Go: no extension = any).
    pub fn allows(&self, u: Usage) -> bool {
        match self.eku {
            None => true,
            Some(e) => {
                e.any
                    || match u {
                        Usage::ServerAuth => e.server_auth,
                        Usage::ClientAuth => e.client_auth,
                    }
            }
        }
    }

    /// Go's `CheckSignatureFrom(parent)`: the parent may sign, and its key
    /// verifies this certificate's signature. The error is Go's wording.
    pub fn check_signature_from(&self, parent: &Cert) -> Result<(), String> {
        if parent.version == 3 && parent.basic_constraints.is_none()
            || parent.basic_constraints == Some(false)
        {
            return Err(
                "x509: invalid signature: parent certificate cannot sign this kind of certificate"
                    .into(),
            );
        }
        verify_signature(
            &self.sig_alg,
            self.sig_params.as_deref(),
            parent,
            &self.tbs,
            &self.signature,
        )
    }
}

/// Reads every certificate of a file (PEM blocks labelled CERTIFICATE, or
/// one DER certificate).
pub fn read_certs(bytes: &[u8]) -> Result<Vec<Cert>, ParseError> {
    if bytes.is_empty() {
        return Err(ParseError::Bad("the file is empty".into()));
    }
    if !parse::is_pem(bytes) {
        return Cert::from_der(bytes)
            .map(|c| vec![c])
            .map_err(|e| ParseError::Bad(format!("neither PEM nor a DER certificate: {e}")));
    }
    let blocks = parse::pem_blocks(bytes)?;
    let mut out = Vec::new();
    let mut labels = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        if b.label == "CERTIFICATE" {
            out.push(
                Cert::from_der(&b.der)
                    .map_err(|e| ParseError::Bad(format!("PEM block {}: {e}", i + 1)))?,
            );
        } else {
            labels.push(b.label.clone());
        }
    }
    if out.is_empty() {
        return Err(ParseError::Bad(if labels.is_empty() {
            "no PEM block in the file".into()
        } else {
            format!(
                "no CERTIFICATE block in the file (PEM blocks: {})",
                labels.join(", ")
            )
        }));
    }
    Ok(out)
}

/// Go's name of a signature algorithm, for the insecure-algorithm message.
fn insecure_name(oid: &str) -> Option<&'static str> {
    match oid {
        "1.2.840.113549.1.1.5" => Some("SHA1-RSA"),
        "1.2.840.113549.1.1.4" => Some("MD5-RSA"),
        "1.2.840.113549.1.1.2" => Some("MD2-RSA"),
        "1.2.840.10045.4.1" => Some("ECDSA-SHA1"),
        "1.2.840.10040.4.3" => Some("DSA-SHA1"),
        _ => None,
    }
}

/// Verifies `sig` over `msg` with `parent`'s key, for signature algorithm
/// `alg`. Errors are Go's strings.
pub fn verify_signature(
    alg: &str,
    params: Option<&[u8]>,
    parent: &Cert,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    use ring::signature as s;
    if let Some(name) = insecure_name(alg) {
        return Err(format!(
            "x509: cannot verify signature: insecure algorithm {name}"
        ));
    }
    let Some(key) = &parent.public else {
        return Err(format!(
            "x509: cannot verify signature: algorithm unimplemented (issuer key {})",
            parent.key_alg
        ));
    };
    let mismatch = || {
        "x509: signature algorithm specifies an RSA public key, but have public key of another type"
            .to_string()
    };
    let (algo, key_bytes): (&dyn s::VerificationAlgorithm, Vec<u8>) = match (alg, key) {
        (
            "1.2.840.113549.1.1.11"
            | "1.2.840.113549.1.1.12"
            | "1.2.840.113549.1.1.13"
            | "1.2.840.113549.1.1.10",
            PublicKey::Rsa { n, e },
        ) => {
            let algo: &dyn s::VerificationAlgorithm = match alg {
                "1.2.840.113549.1.1.11" => &s::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                "1.2.840.113549.1.1.12" => &s::RSA_PKCS1_2048_8192_SHA384,
                "1.2.840.113549.1.1.13" => &s::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
                _ => pss_algorithm(params)?,
            };
            (algo, rsa_public_der(n, e)?)
        }
        ("1.2.840.10045.4.3.2" | "1.2.840.10045.4.3.3", PublicKey::Ec { curve, point }) => {
            let sha256 = alg.ends_with(".2");
            let algo: &dyn s::VerificationAlgorithm = match (curve, sha256) {
                (parse::Curve::P256, true) => &s::ECDSA_P256_SHA256_ASN1,
                (parse::Curve::P256, false) => &s::ECDSA_P256_SHA384_ASN1,
                (parse::Curve::P384, true) => &s::ECDSA_P384_SHA256_ASN1,
                (parse::Curve::P384, false) => &s::ECDSA_P384_SHA384_ASN1,
                (c, _) => {
                    return Err(format!(
                        "x509: cannot verify signature: algorithm unimplemented (ECDSA {})",
                        c.name()
                    ));
                }
            };
            (algo, point.clone())
        }
        ("1.3.101.112", PublicKey::Ed25519(k)) => (&s::ED25519, k.clone()),
        (
            "1.2.840.113549.1.1.11"
            | "1.2.840.113549.1.1.12"
            | "1.2.840.113549.1.1.13"
            | "1.2.840.113549.1.1.10",
            _,
        ) => {
            return Err(mismatch());
        }
        ("1.2.840.10045.4.3.2" | "1.2.840.10045.4.3.3" | "1.2.840.10045.4.3.4", _)
            if !matches!(key, PublicKey::Ec { .. }) =>
        {
            return Err("x509: signature algorithm specifies an ECDSA public key, but have public key of another type".into());
        }
        ("1.3.101.112", _) => {
            return Err("x509: signature algorithm specifies an Ed25519 public key, but have public key of another type".into());
        }
        (other, _) => {
            return Err(format!(
                "x509: cannot verify signature: algorithm unimplemented ({other})"
            ));
        }
    };
    s::UnparsedPublicKey::new(algo, key_bytes)
        .verify(msg, sig)
        .map_err(|_| {
            match key {
                PublicKey::Rsa { .. } => "crypto/rsa: verification error",
                PublicKey::Ec { .. } => "x509: ECDSA verification failure",
                PublicKey::Ed25519(_) => "x509: Ed25519 verification failure",
            }
            .to_string()
        })
}

/// `RSAPublicKey` DER (what ring verifies with), written by `pkcs1`.
fn rsa_public_der(n: &[u8], e: &[u8]) -> Result<Vec<u8>, String> {
    let int = |b| der::asn1::UintRef::new(b);
    int(n)
        .and_then(|modulus| {
            pkcs1::RsaPublicKey {
                modulus,
                public_exponent: int(e)?,
            }
            .to_der()
        })
        .map_err(|e| format!("x509: cannot verify signature: bad RSA public key: {e}"))
}

/// RSASSA-PSS: the hash of the parameters (`pkcs1`'s RsaPssParams;
/// SHA-256/384/512).
fn pss_algorithm(
    params: Option<&[u8]>,
) -> Result<&'static dyn ring::signature::VerificationAlgorithm, String> {
    use der::asn1::ObjectIdentifier as Oid;
    use ring::signature as s;
    const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
    let hash = params.and_then(|p| pkcs1::RsaPssParams::from_der(p).ok().map(|p| p.hash.oid));
    match hash {
        Some(SHA256) => Ok(&s::RSA_PSS_2048_8192_SHA256),
        Some(SHA384) => Ok(&s::RSA_PSS_2048_8192_SHA384),
        Some(SHA512) => Ok(&s::RSA_PSS_2048_8192_SHA512),
        _ => Err(
            "x509: cannot verify signature: algorithm unimplemented (RSASSA-PSS with this hash)"
                .into(),
        ),
    }
}

/// Seconds since the epoch as RFC 3339 UTC, as Go formats times in its
/// messages (`2026-01-02T03:04:05Z`).
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{secs}"))
}
