//! `manifest.json`, the first entry of every archive: who the member is, what
//! it was restored from (format 1) or how it joins its running cluster
//! (format 2, a join archive), and every file with its mode, owner, size and
//! sha256. Parsed from outside input: size-capped, the format version read
//! and held first, unknown fields refused, and every rule of the format
//! (`super` invariants 2–4, and the rules of its version) checked before any
//! entry is trusted.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{FORMAT_VERSION, JOIN_FORMAT_VERSION, MAX_ENTRIES, MAX_MANIFEST_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// What an entry is.
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// One file or directory of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileEntry {
    /// The entry's path in the archive (see the format's path rules).
    pub path: String,
    #[serde(rename = "type")]
    /// File or directory.
    pub kind: Kind,
    /// Permission bits (e.g. 384 = 0o600).
    pub mode: u32,
    /// The owner's user ID.
    pub uid: u32,
    /// The owner's group ID.
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
    /// The member's name.
    pub name: String,
    /// Hex, as etcd prints member IDs.
    pub id: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// The client URLs it advertises.
    pub client_urls: Vec<String>,
}

/// The snapshot the data dir was restored from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotInfo {
    /// sha256 of the snapshot's bytes as read (after decompression).
    pub sha256: String,
    /// The snapshot's keyspace revision.
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
    /// `--bump-revision`, when above 0.
    pub bump_revision: Option<u64>,
    /// `--mark-compacted`.
    pub mark_compacted: bool,
    /// `--clear-alarms`.
    pub clear_alarms: bool,
    /// `snapshot status`'s hash of the restored db (CRC-32C).
    pub db_hash: u32,
    /// The restored db's revision.
    pub db_revision: i64,
}

/// How a join archive's member joins its running cluster (format 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinInfo {
    /// `--initial-cluster-state`: always `existing` (the member was added
    /// to a running cluster and syncs from its leader).
    pub initial_cluster_state: String,
    /// The cluster's version when the archive was made (`3.5.0`…), as the
    /// running members report it: the release the node's etcd must speak.
    pub cluster_version: String,
}

/// `--initial-cluster-state` of every join archive.
pub const JOIN_CLUSTER_STATE: &str = "existing";

/// What a manifest's `format` says, read before the rest so that a
/// manifest of another version is refused by its version, whatever else
/// it holds.
#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
/// `manifest.json`: what an archive holds and what it was made from.
pub struct Manifest {
    /// The format version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// The etcdsnap that wrote it.
    pub etcdsnap_version: String,
    /// The member the archive is for.
    pub member: MemberInfo,
    /// Hex.
    pub cluster_id: String,
    /// The `--initial-cluster` every member starts with.
    pub initial_cluster: String,
    /// The cluster token.
    pub initial_cluster_token: String,
    /// The snapshot restored (format 1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotInfo>,
    /// How it was restored (format 1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreInfo>,
    /// How the member joins its running cluster (format 2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinInfo>,
    /// `bundle --force-pki`: packed although `pki check` found errors.
    pub force_pki: bool,
    /// Where the bundle's flags put the data dir and the PKI (kubeadm's).
    pub data_dir: String,
    /// Where the PKI goes on the node.
    pub pki_dir: String,
    /// The member's start flags for those places (`etcd.env` holds the same).
    pub flags: Vec<String>,
    /// Every entry after the manifest, sorted by path.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, thiserror::Error)]
/// Why a manifest is refused.
pub enum ManifestError {
    #[error("manifest.json: larger than {MAX_MANIFEST_BYTES} bytes")]
    /// Larger than [`MAX_MANIFEST_BYTES`].
    TooLarge,
    #[error("manifest.json: not a manifest: {0}")]
    /// Not JSON of a manifest.
    Json(String),
    #[error(
        "manifest.json: format {0}, this etcdsnap reads formats {FORMAT_VERSION} (restored member) and {JOIN_FORMAT_VERSION} (join archive)"
    )]
    /// Another format version.
    Format(u32),
    #[error("manifest.json: {0}")]
    /// A field breaks the format's rules.
    Invalid(String),
    #[error("manifest.json: file {path:?}: {why}")]
    /// A file entry breaks the format's rules: its path and why.
    File {
        /// The path.
        path: String,
        /// Why.
        why: String,
    },
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

/// `3.5.0`-like: two or three dot-separated numbers.
fn is_version(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
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
        // The version first: a manifest of another format is refused as
        // such, not for a field this reader does not know.
        if let Ok(FormatOnly { format }) = serde_json::from_slice::<FormatOnly>(bytes)
            && format != FORMAT_VERSION
            && format != JOIN_FORMAT_VERSION
        {
            return Err(ManifestError::Format(format));
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

    /// Whether this is a join archive (format 2): no data, the member
    /// joins a running cluster.
    pub fn is_join(&self) -> bool {
        self.format == JOIN_FORMAT_VERSION
    }

    /// The restored db's revision (format 1; `None` for a join archive).
    pub fn revision(&self) -> Option<i64> {
        self.restore.as_ref().map(|r| r.db_revision)
    }

    /// The snapshot and restore records of a restored member's archive
    /// (format 1), for a caller that needs a restored data dir; a join
    /// archive is refused.
    pub fn restored(&self) -> Result<(&SnapshotInfo, &RestoreInfo), ManifestError> {
        match (&self.snapshot, &self.restore) {
            (Some(s), Some(r)) if self.format == FORMAT_VERSION => Ok((s, r)),
            _ => Err(ManifestError::Invalid(format!(
                "format {}: a join archive (no data dir), where a restored member's archive (format {FORMAT_VERSION}) is needed",
                self.format
            ))),
        }
    }

    /// The member ID as a number.
    pub fn member_id(&self) -> Option<u64> {
        u64::from_str_radix(&self.member.id, 16).ok()
    }

    /// The entry for `path`, if listed.
    pub fn entry(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// Checks every rule of the format (see `super`).
    pub fn validate(&self) -> Result<(), ManifestError> {
        let bad = |s: String| Err(ManifestError::Invalid(s));
        let join = match self.format {
            FORMAT_VERSION => false,
            JOIN_FORMAT_VERSION => true,
            f => return Err(ManifestError::Format(f)),
        };
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
        if join {
            if self.snapshot.is_some() || self.restore.is_some() {
                return bad(format!(
                    "format {JOIN_FORMAT_VERSION} (a join archive) has no snapshot or restore"
                ));
            }
            let Some(j) = &self.join else {
                return bad(format!("format {JOIN_FORMAT_VERSION} needs join"));
            };
            if j.initial_cluster_state != JOIN_CLUSTER_STATE {
                return bad(format!(
                    "join.initialClusterState {:?}, not {JOIN_CLUSTER_STATE:?}",
                    j.initial_cluster_state
                ));
            }
            if !is_version(&j.cluster_version) {
                return bad(format!(
                    "join.clusterVersion {:?} is not a version (3.5.0)",
                    j.cluster_version
                ));
            }
        } else {
            if self.join.is_some() {
                return bad(format!(
                    "format {FORMAT_VERSION} (a restored member) has no join"
                ));
            }
            let Some(snapshot) = &self.snapshot else {
                return bad(format!("format {FORMAT_VERSION} needs snapshot"));
            };
            if self.restore.is_none() {
                return bad(format!("format {FORMAT_VERSION} needs restore"));
            }
            if !is_hex(&snapshot.sha256, 64) {
                return bad("snapshot sha256 is not 64 lowercase hex digits".into());
            }
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
            if join && f.path.starts_with("data/") {
                return file_err(format!(
                    "a join archive (format {JOIN_FORMAT_VERSION}) places an empty data dir: nothing below data/"
                ));
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
        if join {
            if self.entry("data").is_none_or(|f| f.kind != Kind::Dir) {
                return bad("no data directory listed".into());
            }
        } else if self
            .entry("data/member/snap/db")
            .is_none_or(|f| f.kind != Kind::File)
        {
            return bad("no data/member/snap/db listed".into());
        }
        for need in ["etcd.env", "etcd.yaml"] {
            if self.entry(need).is_none_or(|f| f.kind != Kind::File) {
                return bad(format!("no {need} listed"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const OK: &str = include_str!("../../fuzz/seeds/bundle_manifest/ok.json");

    fn v1() -> Value {
        serde_json::from_str(OK).unwrap()
    }

    /// The v1 seed turned into a join manifest: format 2, `join`, no
    /// snapshot or restore, the `data` directory alone.
    fn v2() -> Value {
        let mut v = v1();
        let o = v.as_object_mut().unwrap();
        o.insert("format".into(), json!(2));
        o.remove("snapshot");
        o.remove("restore");
        o.insert(
            "join".into(),
            json!({"initialClusterState": "existing", "clusterVersion": "3.5.0"}),
        );
        let files = o["files"].as_array_mut().unwrap();
        files.retain(|f| !f["path"].as_str().unwrap().starts_with("data/"));
        v
    }

    fn parse(v: &Value) -> Result<Manifest, ManifestError> {
        Manifest::parse(&serde_json::to_vec(v).unwrap())
    }

    fn err(v: &Value) -> String {
        parse(v).unwrap_err().to_string()
    }

    #[test]
    fn format_1_keeps_its_rules_and_its_bytes() {
        let m = parse(&v1()).unwrap();
        assert!(!m.is_join());
        assert_eq!(m.revision(), Some(48));
        assert!(m.restored().is_ok());
        // Written as before: no `join`, snapshot and restore in place.
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert!(!text.contains("join"), "{text}");
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
        for gone in ["snapshot", "restore"] {
            let mut v = v1();
            v.as_object_mut().unwrap().remove(gone);
            assert!(
                err(&v).contains(&format!("format 1 needs {gone}")),
                "{gone}"
            );
        }
        let mut v = v1();
        v["join"] = json!({"initialClusterState": "existing", "clusterVersion": "3.5.0"});
        assert!(err(&v).contains("has no join"), "{}", err(&v));
        let mut v = v1();
        v["files"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["path"] != "data/member/snap/db");
        assert!(err(&v).contains("no data/member/snap/db"), "{}", err(&v));
    }

    #[test]
    fn format_2_is_a_join_archive_without_data() {
        let m = parse(&v2()).unwrap();
        assert!(m.is_join());
        assert_eq!(m.revision(), None);
        assert_eq!(m.join.as_ref().unwrap().cluster_version, "3.5.0");
        let e = m.restored().unwrap_err().to_string();
        assert!(e.contains("a join archive"), "{e}");
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert!(!text.contains("snapshot") && !text.contains("\"restore\""));
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);

        // snapshot or restore: refused.
        for (k, val) in [
            ("snapshot", v1()["snapshot"].clone()),
            ("restore", v1()["restore"].clone()),
        ] {
            let mut v = v2();
            v[k] = val;
            assert!(err(&v).contains("has no snapshot or restore"), "{k}");
        }
        // No join.
        let mut v = v2();
        v.as_object_mut().unwrap().remove("join");
        assert!(err(&v).contains("format 2 needs join"), "{}", err(&v));
        // Any entry below data/.
        let mut v = v2();
        let files = v["files"].as_array_mut().unwrap();
        files.insert(
            1,
            json!({"path": "data/member", "type": "dir", "mode": 448, "uid": 0, "gid": 0, "size": 0}),
        );
        let e = err(&v);
        assert!(
            e.contains("\"data/member\"") && e.contains("nothing below data/"),
            "{e}"
        );
        // No data directory.
        let mut v = v2();
        v["files"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["path"] != "data");
        assert!(err(&v).contains("no data directory"), "{}", err(&v));
        // The start files are still required.
        for need in ["etcd.env", "etcd.yaml"] {
            let mut v = v2();
            v["files"]
                .as_array_mut()
                .unwrap()
                .retain(|f| f["path"] != need);
            assert!(err(&v).contains(&format!("no {need} listed")), "{need}");
        }
        // Another cluster state, a version that is none.
        let mut v = v2();
        v["join"]["initialClusterState"] = json!("new");
        assert!(err(&v).contains("not \"existing\""), "{}", err(&v));
        let mut v = v2();
        v["join"]["clusterVersion"] = json!("3.5.0\n");
        assert!(err(&v).contains("is not a version"), "{}", err(&v));
        // Unknown fields stay refused.
        let mut v = v2();
        v["join"]["extra"] = json!(1);
        assert!(err(&v).contains("unknown field"), "{}", err(&v));
    }

    #[test]
    fn another_format_is_refused_by_its_version_first() {
        // Even with fields this reader does not know, or without the ones
        // it needs, the version is what is named.
        let mut v = v2();
        v["format"] = json!(3);
        v["somethingNew"] = json!(true);
        let e = err(&v);
        assert!(
            e.contains("format 3, this etcdsnap reads formats 1") && e.contains("and 2"),
            "{e}"
        );
        let e = err(&json!({"format": 9}));
        assert!(e.contains("format 9"), "{e}");
        // A format-2 manifest where a format-1 one is required.
        let m = parse(&v2()).unwrap();
        assert!(m.restored().is_err());
    }
}
