//! `pki issue`: new server, peer, healthcheck-client and apiserver-etcd-client
//! certificates for members that moved, signed by the cluster's existing
//! etcd CA, with kubeadm's profiles (spec §2): CN = member name,
//! serverAuth+clientAuth, SANs = the member's name, `localhost`, the hosts
//! of its URLs, `127.0.0.1` and `::1`; the healthcheck client
//! `kube-etcd-healthcheck-client` and kube-apiserver's client
//! `kube-apiserver-etcd-client` with clientAuth only and no organization
//! (current kubeadm sets none); keys of the CA's type (RSA-2048 for an RSA CA, P-256 for
//! an ECDSA CA), written as kubeadm writes them (PKCS#1 / SEC1), mode 0600.
//! Files are written atomically; an existing file is replaced only when
//! asked, and then moved aside first.
//!
//! What Go's TLS would refuse is refused before anything is signed: a CA
//! that is expired or not yet valid, leaves that would outlive their CA,
//! URL hosts that cannot be verified against a SAN (wildcards, zoned IPv6
//! addresses, non-ASCII names, anything that is neither an IP nor an RFC
//! 1123 name); and every certificate signed is checked, before it is
//! written, to verify for every host of its member's https URLs.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber,
};
use serde::Serialize;

use super::MemberUrls;
use super::cert::{self, Cert};
use super::layout::{Layout, Pair, Role};
use super::parse::{self, Curve, PrivateKey, PublicKey};
use crate::durable;

/// kubeadm's backdating of NotBefore (`CertificateBackdate`).
pub const BACKDATE_SECS: i64 = 5 * 60;

/// Why certificates could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// A file cannot be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA directory is not a PKI layout.
    #[error(transparent)]
    Layout(#[from] super::PkiError),
    /// The CA cannot sign (missing, not a CA, expired, no matching key).
    #[error("{}: {why}", .path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A member name that cannot be a directory name.
    #[error(
        "member name {0:?} cannot be a directory name under the output (it must not be empty, `etcd`, `.`, `..` or hold `/`)"
    )]
    BadName(String),
    /// --days 0.
    #[error("--days must be at least 1")]
    Days,
    /// A URL host no SAN can match.
    #[error("member {member}: URL {url}: {why}")]
    Host {
        /// The member.
        member: String,
        /// The URL.
        url: String,
        /// Why no SAN can match its host.
        why: String,
    },
    /// The certificates would end after their CA.
    #[error(
        "--days {days}: the certificates would end {leaf_end}, after their CA ({ca}) ends \
         {ca_end}; Go refuses a chain once its CA expires, so give --days {max} or fewer \
         (or renew the CA first)"
    )]
    Outlives {
        /// `--days` as given.
        days: u32,
        /// When the certificates would end (RFC 3339).
        leaf_end: String,
        /// The CA certificate.
        ca: PathBuf,
        /// When the CA ends (RFC 3339).
        ca_end: String,
        /// The most days that fit.
        max: i64,
    },
    /// Files that would be overwritten without --force.
    #[error(
        "would overwrite {}: give --force to replace (the old files are moved aside as \
         <file>.etcdsnap-bak-<UTC time>)",
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Exists(Vec<PathBuf>),
    /// Signing or checking a certificate failed.
    #[error("signing {what}: {why}")]
    Sign {
        /// The certificate being signed.
        what: String,
        /// What is wrong.
        why: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> IssueError + '_ {
    move |source| IssueError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// The PKI directory holding the etcd CA and its key.
    pub ca_dir: PathBuf,
    /// Where to write.
    pub out: PathBuf,
    /// Each member with every URL it is reached at (peer and client).
    pub members: Vec<MemberUrls>,
    /// Validity in days (at least 1).
    pub days: u32,
    /// Replace existing files (moved aside first).
    pub force: bool,
    /// The time to issue at.
    pub now: SystemTime,
}

/// What happened to one file of the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Written where there was nothing.
    Created,
    /// Replaced (`--force`); the old file was moved to `backup`.
    Replaced {
        /// Where the old file was moved.
        backup: PathBuf,
    },
    /// Already there with the same bytes.
    Unchanged,
}

/// One file of the output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    /// The file, below the output directory.
    pub path: PathBuf,
    /// Its mode.
    #[serde(serialize_with = "octal")]
    pub mode: u32,
    /// What happened to it.
    #[serde(flatten)]
    pub action: Action,
    /// The certificate's subject and SANs (certificates only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The certificate's SANs, as `DNS:…` and `IP:…`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
}

fn octal<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

/// The result: every file, and the key type used.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    /// The CA certificate that signed.
    pub ca: PathBuf,
    /// The key type of the new keys.
    pub key_type: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Every file of the output.
    pub files: Vec<Written>,
}

/// The kinds of leaf key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeafKey {
    Rsa2048,
    P256,
    Ed25519,
}

/// One file signed and not yet written.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Where it goes: below `opts.out` (`etcd/ca.crt`,
    /// `NAME/etcd/server.key`, `NAME/apiserver-etcd-client.crt`, …).
    pub path: PathBuf,
    /// Its bytes (PEM).
    pub bytes: Vec<u8>,
    /// Its mode (0600 for keys, 0644 for certificates).
    pub mode: u32,
    /// The certificate's subject (certificates only).
    pub subject: Option<String>,
    /// The certificate's SANs, as `DNS:…` and `IP:…`.
    pub sans: Vec<String>,
}

/// Certificates signed in memory: what [`issue`] would write.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The CA certificate that signed.
    pub ca: PathBuf,
    /// The key type of the new keys.
    pub key_type: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// The files, paths below `opts.out`.
    pub files: Vec<Planned>,
}

/// Issues the certificates and writes them under `opts.out`.
pub fn issue(opts: &IssueOptions) -> Result<Issued, IssueError> {
    let s = sign(opts)?;
    let files = write_all(&opts.out, s.files, opts.force)?;
    Ok(Issued {
        ca: s.ca,
        key_type: s.key_type,
        not_before: s.not_before,
        not_after: s.not_after,
        files,
    })
}

/// Checks the CA and the members' hosts and signs every certificate, in
/// memory: nothing is written.
pub fn sign(opts: &IssueOptions) -> Result<Signed, IssueError> {
    if opts.days == 0 {
        return Err(IssueError::Days);
    }
    check_names(&opts.members)?;
    let now = match opts.now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(_) => 0,
    };
    let (ca_pair, ca) = read_ca(&opts.ca_dir, now)?;
    check_hosts(&opts.members)?;
    let (issuer, leaf_kind) = ca_issuer(&ca_pair, &ca)?;
    let (not_before, not_after) = validity(now, opts.days, &ca_pair.cert, &ca)?;
    let signer = LeafSigner {
        ca: &ca,
        issuer: &issuer,
        kind: leaf_kind,
        not_before: offset_time(not_before)?,
        not_after: offset_time(not_after)?,
    };

    let mut plan = vec![Planned {
        path: opts.out.join("etcd/ca.crt"),
        bytes: parse::pem("CERTIFICATE", &ca.der).into_bytes(),
        mode: 0o644,
        subject: Some(ca.subject.clone()),
        sans: Vec::new(),
    }];
    for m in &opts.members {
        member_files(&signer, m, &opts.out, &mut plan)?;
    }
    Ok(Signed {
        ca: ca_pair.cert.clone(),
        key_type: match leaf_kind {
            LeafKey::Rsa2048 => "RSA-2048",
            LeafKey::P256 => "ECDSA P-256",
            LeafKey::Ed25519 => "Ed25519",
        }
        .into(),
        not_before: cert::rfc3339(not_before),
        not_after: cert::rfc3339(not_after),
        files: plan,
    })
}

/// Member names become directory names under the output: refuses those
/// that cannot.
fn check_names(members: &[MemberUrls]) -> Result<(), IssueError> {
    for m in members {
        let n = m.name.as_str();
        if n.is_empty()
            || n == "etcd"
            || n == "."
            || n == ".."
            || n.contains('/')
            || n.contains('\0')
        {
            return Err(IssueError::BadName(m.name.clone()));
        }
    }
    Ok(())
}

/// Refuses a URL host that no SAN can match (see [`host_problem`]).
fn check_hosts(members: &[MemberUrls]) -> Result<(), IssueError> {
    for m in members {
        for u in m.peer_urls.iter().chain(&m.client_urls) {
            if let Some(why) = host_problem(u) {
                return Err(IssueError::Host {
                    member: m.name.clone(),
                    url: u.clone(),
                    why,
                });
            }
        }
    }
    Ok(())
}

fn ca_err(path: &Path, why: String) -> IssueError {
    IssueError::Ca {
        path: path.to_path_buf(),
        why,
    }
}

/// The etcd CA of the PKI at `ca_dir`: its files and its certificate, which
/// must be a CA valid at `now` (Unix seconds).
fn read_ca(ca_dir: &Path, now: i64) -> Result<(Pair, Cert), IssueError> {
    let layout = Layout::read(ca_dir, &[])?;
    let ca_pair = layout
        .top
        .as_ref()
        .and_then(|t| t.get(Role::Ca))
        .ok_or_else(|| IssueError::Ca {
            path: ca_dir.to_path_buf(),
            why: "no etcd CA certificate here (etcd/ca.crt, ca.crt or etcdCA.crt)".into(),
        })?
        .clone();
    let ca_bytes = crate::input::read_bounded(&ca_pair.cert, crate::input::SMALL_FILE_LIMIT)
        .map_err(io(&ca_pair.cert))?;
    let ca = cert::read_certs(&ca_bytes)
        .map_err(|e| ca_err(&ca_pair.cert, e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| ca_err(&ca_pair.cert, "no certificate".into()))?;
    if !ca.is_ca() {
        return Err(ca_err(
            &ca_pair.cert,
            "not a CA certificate (no basicConstraints CA:true)".into(),
        ));
    }
    if now < ca.not_before || now > ca.not_after {
        return Err(ca_err(
            &ca_pair.cert,
            format!(
                "x509: certificate has expired or is not yet valid: current time {} is {} {}: \
                 Go refuses every certificate it signs until it is valid; renew the CA first",
                cert::rfc3339(now),
                if now < ca.not_before {
                    "before"
                } else {
                    "after"
                },
                cert::rfc3339(if now < ca.not_before {
                    ca.not_before
                } else {
                    ca.not_after
                })
            ),
        ));
    }
    Ok((ca_pair, ca))
}

/// The CA as a signer (its private key, which must match its certificate)
/// and the kind of leaf key that goes with its key type.
fn ca_issuer(ca_pair: &Pair, ca: &Cert) -> Result<(Issuer<'static, KeyPair>, LeafKey), IssueError> {
    let key_path = ca_pair.key.clone().ok_or_else(|| {
        ca_err(
            &ca_pair.cert.with_extension("key"),
            "no CA private key beside the CA certificate: pki issue needs it to sign".into(),
        )
    })?;
    let key_bytes = crate::input::read_bounded(&key_path, crate::input::SMALL_FILE_LIMIT)
        .map_err(io(&key_path))?;
    let ca_key = parse::read_key(&key_bytes).map_err(|e| ca_err(&key_path, e.to_string()))?;
    if ca_key.public.is_some() && ca_key.public != ca.public {
        return Err(ca_err(
            &key_path,
            format!(
                "tls: private key does not match public key (of {})",
                ca_pair.cert.display()
            ),
        ));
    }
    let leaf_kind = match &ca_key.public {
        Some(PublicKey::Rsa { .. }) => LeafKey::Rsa2048,
        Some(PublicKey::Ec {
            curve: Curve::P256 | Curve::P384,
            ..
        }) => LeafKey::P256,
        Some(PublicKey::Ed25519(_)) => LeafKey::Ed25519,
        _ => {
            return Err(ca_err(
                &key_path,
                format!("cannot sign with a {} key", ca_key.describe()),
            ));
        }
    };
    let pkcs8 = ca_key
        .pkcs8_der()
        .map_err(|e| ca_err(&key_path, e.to_string()))?;
    let signer = KeyPair::try_from(pkcs8.as_slice())
        .map_err(|e| ca_err(&key_path, format!("cannot sign with this key: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(&parse::pem("CERTIFICATE", &ca.der), signer)
        .map_err(|e| ca_err(&ca_pair.cert, format!("cannot use as issuer: {e}")))?;
    Ok((issuer, leaf_kind))
}

/// The leaves' validity (Unix seconds): from `now` backdated by
/// [`BACKDATE_SECS`], for `days`; refused when it would end after the CA.
fn validity(now: i64, days: u32, ca_path: &Path, ca: &Cert) -> Result<(i64, i64), IssueError> {
    let not_before = now - BACKDATE_SECS;
    let not_after = not_before + i64::from(days) * 86_400;
    if not_after > ca.not_after {
        return Err(IssueError::Outlives {
            days,
            leaf_end: cert::rfc3339(not_after),
            ca: ca_path.to_path_buf(),
            ca_end: cert::rfc3339(ca.not_after),
            max: (ca.not_after - not_before) / 86_400,
        });
    }
    Ok((not_before, not_after))
}

fn offset_time(unix: i64) -> Result<time::OffsetDateTime, IssueError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| IssueError::Sign {
        what: "validity".into(),
        why: e.to_string(),
    })
}

/// What signs every leaf: the CA, its issuer, the leaf key kind, the
/// validity.
struct LeafSigner<'a> {
    ca: &'a Cert,
    issuer: &'a Issuer<'static, KeyPair>,
    kind: LeafKey,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
}

/// One member's certificates and keys with kubeadm's profiles, added to
/// `plan`: server and peer (serverAuth and clientAuth, with SANs), the
/// healthcheck client and kube-apiserver's client (clientAuth only).
fn member_files(
    signer: &LeafSigner,
    m: &MemberUrls,
    out: &Path,
    plan: &mut Vec<Planned>,
) -> Result<(), IssueError> {
    let (dns, ips) = sans_of(m);
    let member_dir = out.join(&m.name);
    let dir = member_dir.join("etcd");
    for (base, cn, usages) in [
        (
            "server",
            m.name.as_str(),
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ][..],
        ),
        (
            "peer",
            m.name.as_str(),
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ][..],
        ),
        (
            "healthcheck-client",
            "kube-etcd-healthcheck-client",
            &[ExtendedKeyUsagePurpose::ClientAuth][..],
        ),
        (
            "apiserver-etcd-client",
            "kube-apiserver-etcd-client",
            &[ExtendedKeyUsagePurpose::ClientAuth][..],
        ),
    ] {
        let client_only = !usages.contains(&ExtendedKeyUsagePurpose::ServerAuth);
        // kube-apiserver's client pair sits beside etcd/, as kubeadm puts it.
        let (dir, sub) = if base == "apiserver-etcd-client" {
            (&member_dir, "")
        } else {
            (&dir, "etcd/")
        };
        let what = format!("{}/{sub}{base}.crt", m.name);
        let (no_dns, no_ips) = (Vec::new(), Vec::new());
        let (dns, ips) = if client_only {
            (&no_dns, &no_ips)
        } else {
            (&dns, &ips)
        };
        let (cert_pem, parsed, sans, key_pem) =
            sign_leaf(signer, cn, usages, dns, ips).map_err(|why| IssueError::Sign {
                what: what.clone(),
                why,
            })?;
        if !client_only {
            for u in m.peer_urls.iter().chain(&m.client_urls) {
                if let Some((_, host, _)) = crate::cluster::flags::url_parts(u)
                    && !host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
                    && let Err(why) = super::hostname::verify_hostname(&parsed, host)
                {
                    return Err(IssueError::Sign {
                        what,
                        why: format!("{u}: {why}"),
                    });
                }
            }
        }
        plan.push(Planned {
            path: dir.join(format!("{base}.crt")),
            bytes: cert_pem.into_bytes(),
            mode: 0o644,
            subject: Some(parsed.subject.clone()),
            sans,
        });
        plan.push(Planned {
            path: dir.join(format!("{base}.key")),
            bytes: key_pem.into_bytes(),
            mode: 0o600,
            subject: None,
            sans: Vec::new(),
        });
    }
    Ok(())
}

/// A new key and a certificate for it with common name `cn`, extended key
/// usages `usages` and the SANs `dns` and `ips`, signed by the CA and
/// checked to chain to it as Go checks it: the certificate's PEM, the
/// certificate parsed, its SANs as text, the key's PEM.
fn sign_leaf(
    signer: &LeafSigner,
    cn: &str,
    usages: &[ExtendedKeyUsagePurpose],
    dns: &[String],
    ips: &[IpAddr],
) -> Result<(String, Cert, Vec<String>, String), String> {
    let (key_pem, key_pair) = new_key(signer.kind)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.not_before = signer.not_before;
    params.not_after = signer.not_after;
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = usages.to_vec();
    params.use_authority_key_identifier_extension = true;
    let mut sans = Vec::new();
    for d in dns {
        let ia5 = rcgen::string::Ia5String::try_from(d.clone())
            .map_err(|e| format!("DNS name {d:?}: {e}"))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
        sans.push(format!("DNS:{d}"));
    }
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
        sans.push(format!("IP:{ip}"));
    }
    let leaf = params
        .signed_by(&key_pair, signer.issuer)
        .map_err(|e| e.to_string())?;
    // What was signed must chain to the CA as Go checks it.
    let parsed = Cert::from_der(leaf.der()).map_err(|e| e.to_string())?;
    if parsed.raw_issuer != signer.ca.raw_subject {
        return Err("the issuer name differs from the CA's subject".into());
    }
    parsed
        .check_signature_from(signer.ca)
        .map_err(|e| format!("the new certificate does not verify: {e}"))?;
    Ok((leaf.pem(), parsed, sans, key_pem))
}

/// kubeadm's SANs: DNS the member name (when it is a valid DNS name) and
/// `localhost` and the URL hosts that are names; IPs of the URL hosts,
/// `127.0.0.1`, `::1`. Unspecified addresses (a listen-on-all) are left out.
pub fn sans_of(m: &MemberUrls) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns: Vec<String> = Vec::new();
    let mut ips: Vec<IpAddr> = Vec::new();
    let add_dns = |d: &str, dns: &mut Vec<String>| {
        let d = d.to_ascii_lowercase();
        if is_dns_name(&d) && !dns.contains(&d) {
            dns.push(d);
        }
    };
    add_dns(&m.name, &mut dns);
    add_dns("localhost", &mut dns);
    for u in m.peer_urls.iter().chain(&m.client_urls) {
        let Some((_, host, _)) = crate::cluster::flags::url_parts(u) else {
            continue;
        };
        match host.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => {}
            Ok(ip) => {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            Err(_) => add_dns(host, &mut dns),
        }
    }
    for ip in [
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ] {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    (dns, ips)
}

/// Why the host of URL `u` cannot be put in a SAN that Go would match,
/// if it cannot: a wildcard (a certificate for `*.x` serves every name
/// under `x`), an IPv6 address with a zone (Go parses no zone in a
/// verified name, and a SAN holds none), a non-ASCII name (SANs are ASCII;
/// Go compares the name as given), or anything else that is neither an IP
/// address nor an RFC 1123 name.
pub fn host_problem(u: &str) -> Option<String> {
    let (_, host, _) = crate::cluster::flags::url_parts(u)?;
    if host.contains('*') {
        return Some(format!(
            "{host:?} is a wildcard: a member is reached at one name, and a wildcard SAN would \
             vouch for every name under it"
        ));
    }
    if host.contains('%') {
        return Some(format!(
            "{host:?} is an IPv6 address with a zone: a certificate cannot hold the zone and Go \
             cannot verify such a host; give an address without %zone"
        ));
    }
    if !host.is_ascii() {
        return Some(format!(
            "{host:?} is not ASCII: certificates hold names in their ASCII (xn--) form, and Go \
             compares the host as given; write the URL with the xn-- form"
        ));
    }
    if host.parse::<IpAddr>().is_err() && !is_dns_name(&host.to_ascii_lowercase()) {
        return Some(format!(
            "{host:?} is neither an IP address nor a host name (RFC 1123: letters, digits and \
             hyphens, dot-separated), so no SAN would match it"
        ));
    }
    None
}

/// RFC 1123 names, as kubeadm keeps them (no wildcards).
fn is_dns_name(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A serial uniform in [1, 2^63), as kubeadm draws it.
fn random_serial() -> SerialNumber {
    use rand_core::RngCore;
    loop {
        let v = rand_core::OsRng.next_u64() & (u64::MAX >> 1);
        if v != 0 {
            return SerialNumber::from(v.to_be_bytes().to_vec());
        }
    }
}

/// A new leaf key: its PEM as kubeadm writes it, and the signing pair.
fn new_key(kind: LeafKey) -> Result<(String, KeyPair), String> {
    let pkcs8: Vec<u8> = match kind {
        LeafKey::Rsa2048 => {
            use rsa::pkcs8::EncodePrivateKey;
            let k =
                rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).map_err(|e| e.to_string())?;
            k.to_pkcs8_der()
                .map_err(|e| e.to_string())?
                .as_bytes()
                .to_vec()
        }
        LeafKey::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| e.to_string())?
            .serialize_der(),
        LeafKey::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| e.to_string())?
            .serialize_der(),
    };
    let key: PrivateKey = parse::read_key(&pkcs8).map_err(|e| e.to_string())?;
    let pem = key.kubeadm_pem().map_err(|e| e.to_string())?;
    let pair = KeyPair::try_from(pkcs8.as_slice()).map_err(|e| e.to_string())?;
    Ok((pem, pair))
}

/// Writes the planned files: nothing at all when one exists with other
/// bytes and `force` is off; each file through a temporary sibling with its
/// final mode, fsynced, renamed into place; a replaced file is first linked
/// (else renamed) aside as `<file>.etcdsnap-bak-<UTC time>`.
fn write_all(out: &Path, plan: Vec<Planned>, force: bool) -> Result<Vec<Written>, IssueError> {
    let mut conflicts = Vec::new();
    let mut same = Vec::new();
    for p in &plan {
        match fs::symlink_metadata(&p.path) {
            Ok(_) => {
                if fs::read(&p.path).is_ok_and(|b| b == p.bytes) {
                    same.push(p.path.clone());
                } else {
                    conflicts.push(p.path.clone());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p.path)(e)),
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(IssueError::Exists(conflicts));
    }
    make_dir(out)?;
    let stamp = durable::utc_stamp();
    let mut written = Vec::new();
    for p in plan {
        let action = if same.contains(&p.path) {
            Action::Unchanged
        } else {
            let dir = durable::parent_of(&p.path).to_path_buf();
            make_dirs(out, &dir)?;
            let backup = if conflicts.contains(&p.path) {
                Some(backup_of(&p.path, &stamp))
            } else {
                None
            };
            write_one(&p.path, &p.bytes, p.mode, backup.as_deref())?;
            match backup {
                Some(b) => Action::Replaced { backup: b },
                None => Action::Created,
            }
        };
        written.push(Written {
            path: p.path,
            mode: p.mode,
            action,
            subject: p.subject,
            sans: p.sans,
        });
    }
    Ok(written)
}

fn make_dir(d: &Path) -> Result<(), IssueError> {
    match fs::create_dir(d) {
        Ok(()) => {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(io(d))?;
            durable::sync_path(durable::parent_of(d)).map_err(|e| IssueError::Io {
                path: d.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => Ok(()),
        Err(e) => Err(io(d)(e)),
    }
}

/// Creates `dir` and its parents below `out`, each 0755.
fn make_dirs(out: &Path, dir: &Path) -> Result<(), IssueError> {
    let rel = dir.strip_prefix(out).unwrap_or(dir);
    let mut cur = out.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        make_dir(&cur)?;
    }
    Ok(())
}

fn backup_of(p: &Path, stamp: &str) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = format!("{name}.etcdsnap-bak-{stamp}");
    let dir = durable::parent_of(p);
    let mut b = dir.join(&base);
    let mut n = 2;
    while fs::symlink_metadata(&b).is_ok() {
        b = dir.join(format!("{base}-{n}"));
        n += 1;
    }
    b
}

fn write_one(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    backup: Option<&Path>,
) -> Result<(), IssueError> {
    let tmp = durable::temp_sibling(path);
    let _ = fs::remove_file(&tmp);
    let r = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        // The umask may have taken bits away.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        if let Some(b) = backup
            && fs::hard_link(path, b).is_err()
        {
            fs::rename(path, b).map_err(io(path))?;
        }
        fs::rename(&tmp, path).map_err(io(path))?;
        durable::sync_path(durable::parent_of(path)).map_err(|e| IssueError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}
