//! Membership of a restored cluster: `--initial-cluster` parsing and the member
//! and cluster IDs etcd computes from it.
//!
//! etcd derives every ID from the flags, so all members must be restored with the
//! same `--initial-cluster` and `--initial-cluster-token` or they will refuse each
//! other ("cluster ID mismatch"). The rules (`docs/design/formats.md` §6.1):
//! - a member's peer URLs are sorted by their string form;
//! - member ID = first 8 bytes (big-endian) of SHA-1(concatenated sorted URLs ‖ token);
//! - cluster ID = first 8 bytes of SHA-1(the member IDs, ascending, as 8-byte
//!   big-endian numbers).
//!
//! Names become file and directory names (`<name>.etcd`, `<name>.tar.zst`,
//! a PKI subdirectory), and names, URLs and the token reach the start files
//! (`etcd.env`, `etcd.yaml`): so a name must be plain ([`is_plain_name`]), a
//! URL holds no spaces or control characters, the token no control
//! characters, all refused here, before any command writes anything.

use std::collections::BTreeMap;

use serde::Serialize;

/// Why `--initial-cluster` or `--initial-cluster-token` cannot describe a
/// cluster to restore; refused before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// An entry has no `=`; the value is that entry.
    #[error("--initial-cluster entry {0:?} is not NAME=URL")]
    Entry(String),
    /// A member's peer URL is not one etcd accepts or one safe to write
    /// into the start files.
    #[error("--initial-cluster URL {url:?} of {name}: {why}")]
    Url {
        /// The member the URL was given for.
        name: String,
        /// The URL as given (trimmed of surrounding blanks).
        url: String,
        /// What is wrong with it, as a phrase.
        why: String,
    },
    /// A member name that is not plain (see [`is_plain_name`]); the value
    /// is that name.
    #[error(
        "--initial-cluster member name {0:?}: a name becomes a file and directory name \
         (<name>.etcd, <name>.tar.zst, a PKI subdirectory), so it must be 1 to 200 of \
         A-Z a-z 0-9 - _ . and not start with a dot"
    )]
    Name(String),
    /// The token holds a control character; the value is the token.
    #[error(
        "--initial-cluster-token {0:?} holds a control character (it would reach the start files)"
    )]
    Token(String),
    /// `--initial-cluster` names no member.
    #[error("--initial-cluster is empty")]
    Empty,
    /// The same peer URL is given twice (for one member or two); the value
    /// is that URL.
    #[error("initial cluster has duplicate url {0}")]
    DuplicateUrl(String),
    /// Two members' URLs and the token hash to the same member ID; the
    /// values are their names.
    #[error("members {0} and {1} have the same ID")]
    DuplicateId(String, String),
    /// A member's URLs and the token hash to ID 0; the value is its name.
    #[error("member {0} hashes to ID 0, which etcd refuses; change its URLs or the token")]
    ZeroId(String),
}

/// A member of the cluster to restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The member's name (a plain name, see [`is_plain_name`]).
    pub name: String,
    /// Sorted by their string form, as etcd sorts them.
    pub peer_urls: Vec<String>,
    /// The member ID etcd computes from the sorted peer URLs and the token
    /// ([`member_id`]); never 0. Serialized as lowercase hex.
    #[serde(serialize_with = "as_hex")]
    pub id: u64,
}

fn as_hex<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:x}"))
}

/// The cluster to restore: members sorted by ID, and the cluster ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// The `--initial-cluster-token` every member ID is derived with (no
    /// control characters).
    pub token: String,
    /// The members, sorted by ID, IDs all distinct.
    pub members: Vec<Member>,
    /// The cluster ID etcd computes from the member IDs ([`cluster_id`]).
    /// Serialized as lowercase hex.
    #[serde(serialize_with = "as_hex")]
    pub cluster_id: u64,
    /// The `--initial-cluster` value every member must start with.
    pub initial_cluster: String,
}

fn sha1_prefix(data: &[u8]) -> u64 {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    let mut a = [0u8; 8];
    a.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(a)
}

/// A member's ID from its sorted peer URLs and the cluster token.
pub fn member_id(sorted_urls: &[String], token: &str) -> u64 {
    let mut b = Vec::new();
    for u in sorted_urls {
        b.extend_from_slice(u.as_bytes());
    }
    b.extend_from_slice(token.as_bytes());
    sha1_prefix(&b)
}

/// The cluster ID from the member IDs.
pub fn cluster_id(ids: &[u64]) -> u64 {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let mut b = Vec::with_capacity(8 * sorted.len());
    for id in sorted {
        b.extend_from_slice(&id.to_be_bytes());
    }
    sha1_prefix(&b)
}

/// Whether `name` can be a member's name here: it names files and
/// directories (`<name>.etcd`, `<name>.tar.zst`, `DIR/<name>/` of a PKI), so
/// it is 1–200 ASCII letters, digits, `-`, `_`, `.`, not starting with a dot
/// (no `..`, no `/`, no hidden file, nothing a shell or a terminal reads).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

pub(crate) fn check_url(name: &str, url: &str) -> Result<(), MembershipError> {
    let bad = |why: &str| MembershipError::Url {
        name: name.to_string(),
        url: url.to_string(),
        why: why.to_string(),
    };
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(
            "a URL holds no spaces or control characters (they would reach the start files)",
        ));
    }
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    match scheme {
        "http" | "https" => {
            let host_port = rest.trim_end_matches('/');
            if host_port.contains('/') {
                return Err(bad("a peer URL has no path"));
            }
            let port = host_port.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
            if port.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad("needs host:port"));
            }
            Ok(())
        }
        "unix" | "unixs" => Ok(()),
        _ => Err(bad("the scheme must be http, https, unix or unixs")),
    }
}

impl Cluster {
    /// Parses `--initial-cluster` (`n1=URL,n2=URL,…`; a name may repeat for
    /// several URLs) and computes the IDs.
    pub fn parse(initial_cluster: &str, token: &str) -> Result<Cluster, MembershipError> {
        if token.chars().any(char::is_control) {
            return Err(MembershipError::Token(token.to_string()));
        }
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seen_urls = std::collections::HashSet::new();
        // The flag every member starts with, rebuilt from what was read (no
        // empty entries, no blanks around URLs).
        let mut normalized: Vec<String> = Vec::new();
        for entry in initial_cluster.split(',').filter(|e| !e.trim().is_empty()) {
            let (name, url) = entry
                .split_once('=')
                .ok_or_else(|| MembershipError::Entry(entry.to_string()))?;
            if !is_plain_name(name) {
                return Err(MembershipError::Name(name.to_string()));
            }
            let url = url.trim().to_string();
            check_url(name, &url)?;
            if !seen_urls.insert(url.clone()) {
                return Err(MembershipError::DuplicateUrl(url));
            }
            normalized.push(format!("{name}={url}"));
            by_name.entry(name.to_string()).or_default().push(url);
        }
        if by_name.is_empty() {
            return Err(MembershipError::Empty);
        }
        let mut members: Vec<Member> = by_name
            .into_iter()
            .map(|(name, mut peer_urls)| {
                peer_urls.sort();
                let id = member_id(&peer_urls, token);
                Member {
                    name,
                    peer_urls,
                    id,
                }
            })
            .collect();
        members.sort_by_key(|m| m.id);
        for m in &members {
            if m.id == 0 {
                return Err(MembershipError::ZeroId(m.name.clone()));
            }
        }
        for w in members.windows(2) {
            if w[0].id == w[1].id {
                return Err(MembershipError::DuplicateId(
                    w[0].name.clone(),
                    w[1].name.clone(),
                ));
            }
        }
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        Ok(Cluster {
            token: token.to_string(),
            cluster_id: cluster_id(&ids),
            members,
            initial_cluster: normalized.join(","),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcd() {
        // Verified with etcd 3.5.1 (docs/design/formats.md §6.1).
        let c = Cluster::parse("n1=http://127.0.0.1:23800", "tok1").unwrap();
        assert_eq!(c.members[0].id, 0x628e_d94a_d692_e8a1);
        assert_eq!(c.cluster_id, 15_982_699_985_640_266_139);
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(Cluster::parse("n1", "t").is_err());
        assert!(Cluster::parse("n1=ftp://x:1", "t").is_err());
        assert!(Cluster::parse("n1=http://a:1,n2=http://a:1", "t").is_err());
        assert!(Cluster::parse("", "t").is_err());
        for bad in [
            "../x",
            "../../../x",
            "a/b",
            ".hidden",
            "",
            "*.evil.com",
            "a b",
            "\u{1b}[2J",
        ] {
            assert_eq!(
                Cluster::parse(&format!("{bad}=http://a:1"), "t"),
                Err(MembershipError::Name(bad.to_string())),
                "{bad:?}"
            );
        }
        assert!(Cluster::parse("etcd-1.example.com=http://a:1,M_2=http://b:1", "t").is_ok());
        assert!(Cluster::parse("n1=http://a\n:1", "t").is_err());
        assert!(Cluster::parse("n1=http://a b:1", "t").is_err());
        assert_eq!(
            Cluster::parse("n1=http://a:1", "t\nETCD_X=1"),
            Err(MembershipError::Token("t\nETCD_X=1".into()))
        );
    }
}
