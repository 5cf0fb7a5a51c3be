//! `pki check`: every certificate of a PKI judged as Go's TLS would judge it
//! at the handshake (spec §3.6): it parses, it is valid at the given time,
//! it chains to the etcd CA (signature verified), its key matches it, its
//! usages fit its role, and each member's URLs are in its SANs; key files
//! are not readable by others.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::cert::{self, Cert, Usage};
use super::hostname::verify_hostname;
use super::layout::{Kind, Layout, NodePki, Pair, Role};
use super::parse::{self, ParseError};
use super::{Finding, MemberUrls, PkiError, Severity};

/// Certificates expiring within this many days are a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The result of a check: the layout found and every finding.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The layout found.
    pub layout: Layout,
    /// Every finding, errors and warnings.
    pub findings: Vec<Finding>,
    /// What was not checked, and why (said once).
    pub notes: Vec<String>,
    /// Every certificate file read.
    pub certificates: Vec<PathBuf>,
}

impl Report {
    /// How many findings are errors.
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    /// How many findings are warnings.
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }
}

/// Checks `dir` for `members` at time `at`. Without members, every
/// subdirectory holding PKI files is read as a member's, and the per-member
/// SAN checks are skipped (a note says so).
pub fn check_dir(dir: &Path, members: &[MemberUrls], at: SystemTime) -> Result<Report, PkiError> {
    let names: Vec<String> = if members.is_empty() {
        subdir_names(dir)
    } else {
        members.iter().map(|m| m.name.clone()).collect()
    };
    let layout = Layout::read(dir, &names)?;
    let at = match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let mut c = Checker {
        at,
        loaded: HashMap::new(),
        findings: Vec::new(),
        done: BTreeSet::new(),
    };
    let mut nodes: Vec<&NodePki> = layout.top.iter().collect();
    nodes.extend(layout.members.iter().map(|(_, n)| n));
    for node in nodes {
        c.check_node(node);
    }
    let mut notes = Vec::new();
    if members.is_empty() {
        notes.push(
            "no --initial-cluster: the per-member SAN checks (peer and client URLs) were skipped"
                .to_string(),
        );
    }
    for m in members {
        c.check_member(&layout, m);
    }
    let mut findings = c.findings;
    findings.sort_by(|a, b| (&a.file, &a.member, &a.reason).cmp(&(&b.file, &b.member, &b.reason)));
    findings.dedup();
    let certificates = c.done.into_iter().collect();
    Ok(Report {
        layout,
        findings,
        notes,
        certificates,
    })
}

/// Subdirectories that may be members' (not kubeadm's `etcd`).
fn subdir_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "etcd")
        .collect();
    names.sort();
    names
}

type Loaded = Result<Vec<Cert>, String>;

struct Checker {
    at: i64,
    loaded: HashMap<PathBuf, Loaded>,
    findings: Vec<Finding>,
    /// Certificate files already judged.
    done: BTreeSet<PathBuf>,
}

fn finding(
    severity: Severity,
    file: &Path,
    subject: Option<&Cert>,
    member: Option<&str>,
    reason: String,
) -> Finding {
    Finding {
        severity,
        file: file.to_path_buf(),
        subject: subject.map(|c| c.subject.clone()),
        member: member.map(str::to_string),
        reason,
    }
}

impl Checker {
    fn load(&mut self, path: &Path) -> Loaded {
        if let Some(l) = self.loaded.get(path) {
            return l.clone();
        }
        let l = match crate::input::read_bounded(path, crate::input::SMALL_FILE_LIMIT) {
            Ok(b) => cert::read_certs(&b).map_err(|e| format!("not a usable certificate: {e}")),
            Err(e) => Err(format!("cannot read: {e}")),
        };
        self.loaded.insert(path.to_path_buf(), l.clone());
        l
    }

    fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }

    fn check_node(&mut self, node: &NodePki) {
        let ca_pair = node.get(Role::Ca).cloned();
        let cas: Option<Vec<Cert>> = match &ca_pair {
            Some(p) => self.load(&p.cert).ok(),
            None => {
                let expected = match node.kind {
                    Kind::Kubeadm => node.dir.join("etcd/ca.crt"),
                    Kind::GkeOnPrem => node.dir.join("etcdCA.crt"),
                };
                self.push(finding(
                    Severity::Error,
                    &expected,
                    None,
                    None,
                    "no etcd CA certificate: nothing to check the chains against, and etcd needs \
                     it (--trusted-ca-file)"
                        .into(),
                ));
                None
            }
        };
        for pair in &node.pairs {
            if self.done.insert(pair.cert.clone()) {
                self.check_pair(pair, node.kind, cas.as_deref());
            }
        }
    }

    fn check_pair(&mut self, pair: &Pair, kind: Kind, cas: Option<&[Cert]>) {
        let certs = match self.load(&pair.cert) {
            Ok(c) => c,
            Err(why) => {
                self.push(finding(Severity::Error, &pair.cert, None, None, why));
                return;
            }
        };
        let Some(leaf) = certs.first() else { return };
        let file = &pair.cert;
        if crate::input::read_bounded(file, crate::input::SMALL_FILE_LIMIT)
            .is_ok_and(|b| !parse::is_pem(&b))
        {
            self.push(finding(
                Severity::Error,
                file,
                Some(leaf),
                None,
                der_reason("certificate", file),
            ));
        }
        self.check_validity(file, leaf);
        if pair.role == Role::Ca {
            for ca in &certs {
                if !ca.is_ca() {
                    self.push(finding(
                        Severity::Error,
                        file,
                        Some(ca),
                        None,
                        "x509: certificate is not authorized to sign other certificates (no \
                         basicConstraints CA:true): Go refuses it as the etcd CA"
                            .into(),
                    ));
                }
            }
            for ca in certs.iter().skip(1) {
                self.check_validity(file, ca);
            }
        } else {
            if let Some(cas) = cas
                && let Err(why) = chain(leaf, cas)
            {
                self.push(finding(Severity::Error, file, Some(leaf), None, why));
            }
            let needs: &[Usage] = match (pair.role, kind) {
                (Role::Server | Role::Peer, Kind::Kubeadm) => {
                    &[Usage::ServerAuth, Usage::ClientAuth]
                }
                _ => &[Usage::ClientAuth],
            };
            self.check_usages(file, leaf, pair.role, kind, needs, cas);
        }
        self.check_key(pair, leaf);
    }

    fn check_validity(&mut self, file: &Path, c: &Cert) {
        let now = cert::rfc3339(self.at);
        let prefix = "x509: certificate has expired or is not yet valid: current time";
        if self.at < c.not_before {
            let r = format!("{prefix} {now} is before {}", cert::rfc3339(c.not_before));
            self.push(finding(Severity::Error, file, Some(c), None, r));
        } else if self.at > c.not_after {
            let r = format!("{prefix} {now} is after {}", cert::rfc3339(c.not_after));
            self.push(finding(Severity::Error, file, Some(c), None, r));
        } else if c.not_after - self.at < EXPIRY_WARNING_DAYS * 86_400 {
            let days = (c.not_after - self.at) / 86_400;
            let r = format!(
                "expires in {days} days (NotAfter {}): renew it before it is shipped",
                cert::rfc3339(c.not_after)
            );
            self.push(finding(Severity::Warning, file, Some(c), None, r));
        }
    }

    fn check_usages(
        &mut self,
        file: &Path,
        leaf: &Cert,
        role: Role,
        kind: Kind,
        needs: &[Usage],
        cas: Option<&[Cert]>,
    ) {
        let missing: Vec<&str> = needs
            .iter()
            .filter(|u| !leaf.allows(**u))
            .map(|u| u.name())
            .collect();
        if !missing.is_empty() {
            let why = match (role, kind) {
                (Role::Server, Kind::Kubeadm) => {
                    "an etcd server certificate needs serverAuth (clients check it) and \
                     clientAuth (etcd's own gateway presents it)"
                }
                (Role::Peer, _) => {
                    "a peer certificate needs serverAuth and clientAuth (peers dial each other)"
                }
                _ => "a client certificate needs clientAuth",
            };
            self.push(finding(
                Severity::Error,
                file,
                Some(leaf),
                None,
                format!(
                    "x509: certificate specifies an incompatible key usage: {why}; it lacks {}",
                    missing.join(" and ")
                ),
            ));
        }
        // Go checks the usages along the chain: a CA that lists EKUs must
        // list the ones asked for.
        if let Some(ca) = cas.and_then(|cas| cas.iter().find(|c| c.raw_subject == leaf.raw_issuer))
        {
            let ca_missing: Vec<&str> = needs
                .iter()
                .filter(|u| leaf.allows(**u) && !ca.allows(**u))
                .map(|u| u.name())
                .collect();
            if !ca_missing.is_empty() {
                self.push(finding(
                    Severity::Error,
                    file,
                    Some(leaf),
                    None,
                    format!(
                        "x509: certificate specifies an incompatible key usage: its CA {:?} \
                         restricts extended key usages and lacks {}",
                        ca.subject,
                        ca_missing.join(" and ")
                    ),
                ));
            }
        }
    }

    fn check_key(&mut self, pair: &Pair, leaf: &Cert) {
        let Some(key_path) = &pair.key else {
            if pair.role != Role::Ca {
                self.push(finding(
                    Severity::Error,
                    &pair.cert.with_extension("key"),
                    Some(leaf),
                    None,
                    format!(
                        "no private key for {}: etcd needs the key beside its certificate",
                        pair.cert.display()
                    ),
                ));
            }
            return;
        };
        let key = match crate::input::read_bounded(key_path, crate::input::SMALL_FILE_LIMIT) {
            Err(e) => Err(format!("cannot read: {e}")),
            Ok(b) => {
                let k = parse::read_key(&b).map_err(|e| match e {
                    ParseError::Encrypted(_) => e.to_string(),
                    ParseError::Bad(w) => format!("not a usable private key: {w}"),
                });
                if k.is_ok() && !parse::is_pem(&b) {
                    self.push(finding(
                        Severity::Error,
                        key_path,
                        Some(leaf),
                        None,
                        der_reason("key", key_path),
                    ));
                }
                k
            }
        };
        match key {
            Err(why) => self.push(finding(Severity::Error, key_path, Some(leaf), None, why)),
            Ok(k) => match (&k.public, &leaf.public) {
                (Some(kp), Some(cp)) if kp != cp => self.push(finding(
                    Severity::Error,
                    key_path,
                    Some(leaf),
                    None,
                    format!(
                        "tls: private key does not match public key (the key is not the one of {}; \
                         key {}, certificate {})",
                        pair.cert.display(),
                        kp.describe(),
                        cp.describe()
                    ),
                )),
                (None, _) => self.push(finding(
                    Severity::Warning,
                    key_path,
                    Some(leaf),
                    None,
                    "the key file holds no public key, so it could not be matched with its \
                     certificate"
                        .into(),
                )),
                (_, None) => self.push(finding(
                    Severity::Error,
                    &pair.cert,
                    Some(leaf),
                    None,
                    format!(
                        "x509: unsupported public key algorithm {} (Go reads RSA, ECDSA and Ed25519)",
                        leaf.key_alg
                    ),
                )),
                _ => {}
            },
        }
        self.check_mode(key_path, leaf);
    }

    fn check_mode(&mut self, key_path: &Path, leaf: &Cert) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(key_path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
                (true, true) => "its group and others",
                (true, false) => "its group",
                _ => "others",
            };
            self.push(finding(
                Severity::Warning,
                key_path,
                Some(leaf),
                None,
                format!(
                    "private key is open to {who} (mode {mode:04o}); fix: chmod 600 {}",
                    key_path.display()
                ),
            ));
        }
    }

    fn check_member(&mut self, layout: &Layout, m: &MemberUrls) {
        let Some(node) = layout.node(&m.name) else {
            self.push(finding(
                Severity::Error,
                &layout.dir.join(&m.name),
                None,
                Some(&m.name),
                format!("no PKI files for member {}", m.name),
            ));
            return;
        };
        let https_hosts = |urls: &[String]| -> Vec<(String, String)> {
            let mut out: Vec<(String, String)> = Vec::new();
            for u in urls.iter().filter(|u| u.starts_with("https://")) {
                if let Some((_, host, _)) = crate::cluster::flags::url_parts(u) {
                    let unspecified = host.parse::<IpAddr>().is_ok_and(|i| i.is_unspecified());
                    if !unspecified && !out.iter().any(|(_, h)| h == host) {
                        out.push((u.clone(), host.to_string()));
                    }
                }
            }
            out
        };
        let gke = node.kind == Kind::GkeOnPrem;
        let server = node.get(Role::Server).cloned();
        let peer = node
            .get(Role::Peer)
            .cloned()
            .or_else(|| server.clone().filter(|_| gke));
        for (what, pair, urls, default_name) in [
            ("peer URL", peer, &m.peer_urls, "etcd/peer.crt"),
            ("client URL", server, &m.client_urls, "etcd/server.crt"),
        ] {
            let hosts = https_hosts(urls);
            if hosts.is_empty() {
                continue;
            }
            let Some(pair) = pair else {
                self.push(finding(
                    Severity::Error,
                    &node.dir.join(default_name),
                    None,
                    Some(&m.name),
                    format!(
                        "member {} serves {what}s over https ({}) but there is no certificate for them",
                        m.name,
                        hosts
                            .iter()
                            .map(|(u, _)| u.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            };
            let Ok(certs) = self.load(&pair.cert) else {
                continue;
            };
            let Some(leaf) = certs.first() else { continue };
            if gke {
                for u in [Usage::ServerAuth, Usage::ClientAuth] {
                    if !leaf.allows(u) {
                        self.push(finding(
                            Severity::Error,
                            &pair.cert,
                            Some(leaf),
                            Some(&m.name),
                            format!(
                                "x509: certificate specifies an incompatible key usage: it serves \
                                 member {}'s {what}s, which needs {}",
                                m.name,
                                u.name()
                            ),
                        ));
                    }
                }
            }
            for (url, host) in hosts {
                if let Err(why) = verify_hostname(leaf, &host) {
                    self.push(finding(
                        Severity::Error,
                        &pair.cert,
                        Some(leaf),
                        Some(&m.name),
                        format!("{what} {url} of member {}: {why}", m.name),
                    ));
                }
            }
        }
    }
}

/// Why a DER file is an error: etcd (Go's `tls.LoadX509KeyPair` and its CA
/// pool) reads PEM only, so the file parses here but the member would not
/// start; with the openssl command that converts it.
fn der_reason(what: &str, file: &Path) -> String {
    let f = file.display();
    let (cmd, input) = if what == "key" {
        ("pkey", "key")
    } else {
        ("x509", "certificate")
    };
    format!(
        "tls: failed to find any PEM data in {input} input: the file is DER, and etcd reads \
         PEM only; convert it: openssl {cmd} -inform DER -in {f} -out {f}.pem && mv {f}.pem {f}"
    )
}

/// Go's chain building against the etcd CA file (the only roots): a
/// candidate is a CA certificate whose raw subject is the leaf's raw
/// issuer, and the leaf's signature must verify with its key.
fn chain(leaf: &Cert, cas: &[Cert]) -> Result<(), String> {
    let mut hint: Option<(String, String)> = None;
    for ca in cas.iter().filter(|c| c.raw_subject == leaf.raw_issuer) {
        match leaf.check_signature_from(ca) {
            Ok(()) => return Ok(()),
            Err(e) => {
                if hint.is_none() {
                    hint = Some((e, ca.common_name.clone()));
                }
            }
        }
    }
    let base = "x509: certificate signed by unknown authority";
    Err(match hint {
        Some((e, cn)) => format!(
            "{base} (possibly because of {e:?} while trying to verify candidate authority \
             certificate {cn:?})"
        ),
        None => format!(
            "{base} (issuer {:?} is not the etcd CA {:?})",
            issuer_text(leaf),
            cas.first().map(|c| c.subject.as_str()).unwrap_or("")
        ),
    })
}

fn issuer_text(leaf: &Cert) -> String {
    use x509_parser::prelude::FromDer;
    x509_parser::x509::X509Name::from_der(&leaf.raw_issuer)
        .map(|(_, n)| n.to_string())
        .unwrap_or_default()
}
