//! `manifest.json`, the first entry of every archive: who the member is, what
//! it was restored from, and every file with its mode, owner, size and
//! sha256. Parsed from outside input: size-capped, unknown fields refused,
//! and every rule of the format (`super` invariants 2–4) checked before any
//! entry is trusted.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{FORMAT_VERSION, MAX_ENTRIES, MAX_MANIFEST_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
}

/// One file or directory of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Permission bits (e.g. 384 = 0o600).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes (0 for a directory).
    pub size: u64,
    /// Lowercase hex sha256 of the bytes (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The member the archive is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberInfo {
    pub name: String,
    /// Hex, as etcd prints member IDs.
    pub id: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

/// The snapshot the data dir was restored from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotInfo {
    /// sha256 of the snapshot's bytes as read (after decompression).
    pub sha256: String,
    pub revision: i64,
    /// The etcd release whose storage it holds.
    pub release: String,
}

/// How the data dir was restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreInfo {
    /// The etcd release the data dir is written for.
    pub target_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bump_revision: Option<u64>,
    pub mark_compacted: bool,
    pub clear_alarms: bool,
    /// `snapshot status`'s hash of the restored db (CRC-32C).
    pub db_hash: u32,
    /// The restored db's revision.
    pub db_revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub etcdsnap_version: String,
    pub member: MemberInfo,
    /// Hex.
    pub cluster_id: String,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    pub snapshot: SnapshotInfo,
    pub restore: RestoreInfo,
    /// `bundle --force-pki`: packed although `pki check` found errors.
    pub force_pki: bool,
    /// Where the bundle's flags put the data dir and the PKI (kubeadm's).
    pub data_dir: String,
    pub pki_dir: String,
    /// The member's start flags for those places (`etcd.env` holds the same).
    pub flags: Vec<String>,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest.json: larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
    #[error("manifest.json: not a manifest: {0}")]
    Json(String),
    #[error("manifest.json: format {0}, this etcdsnap reads format {FORMAT_VERSION}")]
    Format(u32),
    #[error("manifest.json: {0}")]
    Invalid(String),
    #[error("manifest.json: file {path:?}: {why}")]
    File { path: String, why: String },
}

/// Why `p` is not a path an archive may hold, if it is not.
pub fn path_problem(p: &str) -> Option<String> {
    if p.is_empty() {
        return Some("empty path".into());
    }
    if p.len() > 255 {
        return Some("longer than 255 bytes".into());
    }
    if p.starts_with('/') {
        return Some("an absolute path".into());
    }
    if p.chars().any(|c| c == '\0' || c == '\\' || c.is_control()) {
        return Some("a NUL, backslash or control character in the path".into());
    }
    for c in p.split('/') {
        match c {
            "" => return Some("an empty path component".into()),
            "." | ".." => return Some(format!("a {c:?} component")),
            _ => {}
        }
    }
    let top = p.split('/').next().unwrap_or("");
    if !matches!(top, "data" | "pki") && p != "etcd.env" && p != "etcd.yaml" {
        return Some("outside data/, pki/, etcd.env, etcd.yaml".into());
    }
    None
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Manifest {
    /// Parses and validates manifest bytes.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge);
        }
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// The manifest as written into archives (pretty, stable field order).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// The member ID as a number.
    pub fn member_id(&self) -> Option<u64> {
        u64::from_str_radix(&self.member.id, 16).ok()
    }

    pub fn entry(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// Checks every rule of the format (see `super`).
    pub fn validate(&self) -> Result<(), ManifestError> {
        let bad = |s: String| Err(ManifestError::Invalid(s));
        if self.format != FORMAT_VERSION {
            return Err(ManifestError::Format(self.format));
        }
        let name = &self.member.name;
        if !crate::cluster::membership::is_plain_name(name) {
            return bad(format!(
                "member name {name:?} is not a plain name (letters, digits, - _ .)"
            ));
        }
        if self.member_id().is_none() || self.member.id.is_empty() || self.member.id.len() > 16 {
            return bad(format!("member id {:?} is not hex", self.member.id));
        }
        if self.cluster_id.is_empty()
            || self.cluster_id.len() > 16
            || u64::from_str_radix(&self.cluster_id, 16).is_err()
        {
            return bad(format!("cluster id {:?} is not hex", self.cluster_id));
        }
        if !is_hex(&self.snapshot.sha256, 64) {
            return bad("snapshot sha256 is not 64 lowercase hex digits".into());
        }
        for (what, d) in [("dataDir", &self.data_dir), ("pkiDir", &self.pki_dir)] {
            if !d.starts_with('/') || d.contains('\0') {
                return bad(format!("{what} {d:?} is not an absolute path"));
            }
        }
        if self.files.len() > MAX_ENTRIES {
            return bad(format!("more than {MAX_ENTRIES} files"));
        }
        let mut dirs: HashSet<&str> = HashSet::new();
        let mut prev: Option<&str> = None;
        for f in &self.files {
            let file_err = |why: String| {
                Err(ManifestError::File {
                    path: f.path.clone(),
                    why,
                })
            };
            if let Some(why) = path_problem(&f.path) {
                return file_err(why);
            }
            if prev.is_some_and(|p| p >= f.path.as_str()) {
                return file_err("files are not sorted by path, or a path repeats".into());
            }
            prev = Some(&f.path);
            if f.mode > 0o777 {
                return file_err(format!("mode {:o} has bits beyond 0777", f.mode));
            }
            if let Some((parent, _)) = f.path.rsplit_once('/')
                && !dirs.contains(parent)
            {
                return file_err(format!("its directory {parent:?} is not listed before it"));
            }
            match f.kind {
                Kind::Dir => {
                    if f.size != 0 || f.sha256.is_some() {
                        return file_err("a directory with a size or a sha256".into());
                    }
                    if f.mode != 0o700 {
                        return file_err(format!("directory mode {:o}, not 700", f.mode));
                    }
                    dirs.insert(&f.path);
                }
                Kind::File => {
                    if !f.sha256.as_deref().is_some_and(|s| is_hex(s, 64)) {
                        return file_err("no sha256 of 64 lowercase hex digits".into());
                    }
                    let want = if f.path.starts_with("pki/") && !f.path.ends_with(".key") {
                        0o644
                    } else {
                        0o600
                    };
                    if f.mode != want {
                        return file_err(format!("mode {:o}, not {want:o}", f.mode));
                    }
                }
            }
        }
        for need in ["data/member/snap/db", "etcd.env", "etcd.yaml"] {
            if self.entry(need).is_none_or(|f| f.kind != Kind::File) {
                return bad(format!("no {need} listed"));
            }
        }
        Ok(())
    }
}
