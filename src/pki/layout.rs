//! Which etcd PKI files a directory holds, recognised by their names, and
//! which of them each member's node needs.
//!
//! Three layouts (spec §2, §4):
//! - kubeadm: a copy of `/etc/kubernetes/pki` (`etcd/ca.crt`, `etcd/server.*`,
//!   `etcd/peer.*`, `etcd/healthcheck-client.*`, `apiserver-etcd-client.*`),
//!   or of `/etc/kubernetes/pki/etcd` alone (the same names without `etcd/`);
//! - GKE on-prem user clusters: `etcdCA.crt`, `etcd.crt`, `etcd.key`;
//! - per member: `DIR/<member name>/` holding one of the above for that
//!   member; files missing there are taken from `DIR` itself (a shared CA).
//!
//! Roles come from the names here; `check` then judges each certificate by
//! its contents (CA flag, usages, SANs), never by its name alone.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::PkiError;

/// What a file is for, by kubeadm's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The etcd CA (`etcd/ca`, `etcdCA`).
    Ca,
    /// The member's serving certificate for clients (`etcd/server`; GKE `etcd`).
    Server,
    /// The member's peer certificate (`etcd/peer`).
    Peer,
    /// The probe's client certificate (`etcd/healthcheck-client`).
    HealthcheckClient,
    /// kube-apiserver's client certificate (`apiserver-etcd-client`).
    ApiserverClient,
}

impl Role {
    /// Every role, in the order reports list them.
    pub const ALL: [Role; 5] = [
        Role::Ca,
        Role::Server,
        Role::Peer,
        Role::HealthcheckClient,
        Role::ApiserverClient,
    ];

    /// The file's base name under `/etc/kubernetes/pki`, as kubeadm names it.
    pub fn kubeadm_base(self) -> &'static str {
        match self {
            Role::Ca => "etcd/ca",
            Role::Server => "etcd/server",
            Role::Peer => "etcd/peer",
            Role::HealthcheckClient => "etcd/healthcheck-client",
            Role::ApiserverClient => "apiserver-etcd-client",
        }
    }
}

/// A certificate (and its key, when present) found for a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pair {
    /// The role the files play.
    pub role: Role,
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file, when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// The layouts a PKI directory is recognised in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `/etc/kubernetes/pki` (with `etcd/`) or `/etc/kubernetes/pki/etcd`.
    Kubeadm,
    /// `etcdCA.crt`, `etcd.crt`, `etcd.key`.
    GkeOnPrem,
}

/// The files of one node's PKI (the directory itself, or one member's
/// subdirectory with the shared files filled in from the top).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePki {
    /// The layout the files were recognised in.
    pub kind: Kind,
    /// The directory the files were found in.
    pub dir: PathBuf,
    /// The certificate and key files found, by role.
    pub pairs: Vec<Pair>,
}

impl NodePki {
    /// The files of `role`, if present.
    pub fn get(&self, role: Role) -> Option<&Pair> {
        self.pairs.iter().find(|p| p.role == role)
    }
}

/// A file to ship to a node: where it is now, and where it goes below the
/// node's PKI dir (kubeadm's names, e.g. `etcd/server.key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFile {
    /// Where the file is now.
    pub source: PathBuf,
    /// Where it goes, below the node's PKI dir.
    pub dest: PathBuf,
    /// Whether it is a private key (mode 0600).
    pub private_key: bool,
}

fn is_file(p: &Path) -> bool {
    p.is_file()
}

/// The files of one directory, by name; `None` when it holds no etcd PKI.
fn scan(dir: &Path) -> Option<NodePki> {
    let mut pairs = Vec::new();
    // kubeadm, either the whole pki dir or its etcd/ subdir.
    for role in Role::ALL {
        let base = role.kubeadm_base();
        let candidates: Vec<PathBuf> = match base.strip_prefix("etcd/") {
            Some(short) => vec![dir.join(base), dir.join(short)],
            None => vec![dir.join(base)],
        };
        for b in candidates {
            let cert = b.with_extension("crt");
            if is_file(&cert) {
                let key = b.with_extension("key");
                pairs.push(Pair {
                    role,
                    cert,
                    key: is_file(&key).then_some(key),
                });
                break;
            }
        }
    }
    if !pairs.is_empty() {
        return Some(NodePki {
            kind: Kind::Kubeadm,
            dir: dir.to_path_buf(),
            pairs,
        });
    }
    let ca = dir.join("etcdCA.crt");
    let leaf = dir.join("etcd.crt");
    if is_file(&ca) || is_file(&leaf) {
        if is_file(&ca) {
            let key = dir.join("etcdCA.key");
            pairs.push(Pair {
                role: Role::Ca,
                cert: ca,
                key: is_file(&key).then_some(key),
            });
        }
        if is_file(&leaf) {
            let key = dir.join("etcd.key");
            pairs.push(Pair {
                role: Role::Server,
                cert: leaf,
                key: is_file(&key).then_some(key),
            });
        }
        return Some(NodePki {
            kind: Kind::GkeOnPrem,
            dir: dir.to_path_buf(),
            pairs,
        });
    }
    None
}

/// A PKI directory as found: the shared files at its top, and one entry per
/// member subdirectory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    /// The directory given.
    pub dir: PathBuf,
    /// The files directly in it (or its `etcd/`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top: Option<NodePki>,
    /// `(member name, its files with the top's filling the gaps)`.
    pub members: Vec<(String, NodePki)>,
}

impl Layout {
    /// Reads `dir`'s layout. Member subdirectories are the subdirectories
    /// named after a member in `member_names` that hold PKI files.
    pub fn read(dir: &Path, member_names: &[String]) -> Result<Layout, PkiError> {
        let meta = std::fs::metadata(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(PkiError::Layout {
                path: dir.to_path_buf(),
                why: "not a directory".into(),
            });
        }
        let top = scan(dir);
        let mut members = Vec::new();
        for name in member_names {
            if name.is_empty()
                || name.contains('/')
                || name == "."
                || name == ".."
                || name == "etcd"
            {
                continue;
            }
            let sub = dir.join(name);
            if let Some(mut node) = scan(&sub) {
                if let Some(top) = &top {
                    for p in &top.pairs {
                        if node.get(p.role).is_none() {
                            node.pairs.push(p.clone());
                        }
                    }
                    node.pairs.sort_by_key(|p| p.role);
                }
                members.push((name.clone(), node));
            }
        }
        if top.is_none() && members.is_empty() {
            return Err(PkiError::Layout {
                path: dir.to_path_buf(),
                why: "no etcd PKI files here: expected kubeadm's (etcd/ca.crt, etcd/server.crt, \
                      etcd/peer.crt, …), GKE on-prem's (etcdCA.crt, etcd.crt, etcd.key) or one \
                      subdirectory per member holding them"
                    .into(),
            });
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
            top,
            members,
        })
    }

    /// The files member `name`'s node uses: its own subdirectory's, else
    /// the top's.
    pub fn node(&self, name: &str) -> Option<&NodePki> {
        self.members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
            .or(self.top.as_ref())
    }

    /// What to ship to member `name`'s node, under kubeadm's names: the CA
    /// certificate, the server, peer and healthcheck-client pairs and the
    /// apiserver's client pair; the CA key only with `include_ca_key`.
    /// GKE's `etcd.crt`/`etcd.key` go where kubeadm's server pair goes.
    pub fn node_files(&self, name: &str, include_ca_key: bool) -> Vec<NodeFile> {
        let Some(node) = self.node(name) else {
            return Vec::new();
        };
        let mut files = Vec::new();
        for p in &node.pairs {
            let base = PathBuf::from(p.role.kubeadm_base());
            files.push(NodeFile {
                source: p.cert.clone(),
                dest: base.with_extension("crt"),
                private_key: false,
            });
            if let Some(key) = &p.key
                && (p.role != Role::Ca || include_ca_key)
            {
                files.push(NodeFile {
                    source: key.clone(),
                    dest: base.with_extension("key"),
                    private_key: true,
                });
            }
        }
        files.sort_by(|a, b| a.dest.cmp(&b.dest));
        files
    }
}
