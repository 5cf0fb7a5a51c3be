//! etcd's TLS files, checked offline before they are shipped: which files a
//! PKI copy holds (`layout`), and whether each member would start and be
//! reached with them (`check`: the checks Go's TLS makes at the handshake,
//! made ahead of time), and new member certificates signed by the cluster's
//! own CA when members move (`issue`).
//!
//! The spec of the layouts, profiles and Go's checks:
//! `docs/design/pki.md` §2–§4.

pub mod cert;
pub mod check;
pub mod hostname;
pub mod issue;
pub mod layout;
pub mod parse;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

/// One member as the PKI must serve it: the host of each URL must be in the
/// matching certificate's SANs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberUrls {
    /// The member's name.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its client URLs.
    pub client_urls: Vec<String>,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Go accepts it, but it needs attention.
    Warning,
    /// Go refuses it.
    Error,
}

/// One problem: the file, the certificate's subject when one parsed, and the
/// exact reason (with the fix where there is one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The file it is about.
    pub file: PathBuf,
    /// The certificate's subject, when about a certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The member the finding is about, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// Why a PKI directory cannot be checked.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file cannot be read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory is not a PKI layout etcdsnap knows.
    #[error("{}: {why}", .path.display())]
    Layout {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Why `--initial-cluster` and `--client-urls` give no members to check or
/// issue for.
#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    /// `--initial-cluster` does not parse.
    #[error("--initial-cluster")]
    InitialCluster(#[source] crate::cluster::membership::MembershipError),
    /// `--client-urls` is wrong.
    #[error("{0}")]
    ClientUrls(#[source] crate::cluster::flags::FlagsError),
}

impl MemberUrls {
    /// The members and their URLs from `--initial-cluster` and
    /// `--client-urls` ([`MemberUrls::of_cluster`]), sorted by name.
    pub fn from_flags(
        initial_cluster: &str,
        client_urls: Option<&str>,
    ) -> Result<Vec<MemberUrls>, MembersError> {
        let cluster = crate::cluster::membership::Cluster::parse(initial_cluster, "etcd-cluster")
            .map_err(MembersError::InitialCluster)?;
        let refs: Vec<&_> = cluster.members.iter().collect();
        let given = crate::cluster::flags::client_urls(client_urls, &refs)
            .map_err(MembersError::ClientUrls)?;
        let mut ms = MemberUrls::of_cluster(&cluster, &given);
        ms.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ms)
    }

    /// Every member of `cluster` with the URLs restore and bundle start it
    /// with: its peer URLs, and the client URLs it advertises and listens
    /// on ([`crate::cluster::flags::client_urls_of`]: the given ones, else
    /// kubeadm's `<peer host>:2379` and loopback).
    pub fn of_cluster(
        cluster: &crate::cluster::membership::Cluster,
        given_client: &HashMap<String, Vec<String>>,
    ) -> Vec<MemberUrls> {
        cluster
            .members
            .iter()
            .map(|m| {
                let (advertise, listen) =
                    crate::cluster::flags::client_urls_of(m, given_client.get(&m.name));
                let mut client_urls = advertise;
                for u in listen {
                    if !client_urls.contains(&u) {
                        client_urls.push(u);
                    }
                }
                MemberUrls {
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                    client_urls,
                }
            })
            .collect()
    }
}
