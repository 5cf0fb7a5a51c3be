//! `bundle inspect` as a library operation: every archive of a bundle
//! directory (or one archive) opened and checked entry by entry against its
//! manifest, its sha256 held against `SHA256SUMS`, its member and cluster
//! IDs against its initial cluster; archives `SHA256SUMS` does not list
//! fail. Nothing is written.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::SUMS_NAME;
use super::archive::Discard;
use super::manifest::Manifest;
use super::read::{Key, ReadError, listed_sum, open_and_check, read_sums};
use crate::cluster::membership::Cluster;

/// Why a bundle could not be inspected at all.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The bundle path is not there.
    #[error("{}", .path.display())]
    Metadata {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        err: std::io::Error,
    },
    /// The bundle directory's `SHA256SUMS` could not be read.
    #[error("{0}")]
    Sums(#[source] ReadError),
    /// The bundle directory could not be listed.
    #[error("{0}")]
    ReadDir(#[source] std::io::Error),
}

/// One check of an archive.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One archive inspected.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspected {
    /// The archive's path.
    pub archive: String,
    /// Its sha256, once read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Whether it is encrypted with age.
    pub encrypted: bool,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Its manifest, once read and checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
}

/// Every archive of a bundle, inspected.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The archives: those `SHA256SUMS` does not list first, then those it
    /// lists in its order.
    pub archives: Vec<Inspected>,
    /// Some archive could not be read (a key missing or unusable, I/O), as
    /// opposed to failing a check.
    pub unreadable: bool,
}

impl Inspection {
    /// Whether every check of every archive passed.
    pub fn passed(&self) -> bool {
        self.archives
            .iter()
            .all(|r| r.checks.iter().all(|c| c.passed))
    }
}

fn check(name: &'static str, problem: Option<String>) -> Check {
    Check {
        name,
        passed: problem.is_none(),
        problem,
    }
}

/// Archives in `dir` that `listed` does not name, as failed inspections.
fn strays(dir: &Path, listed: &[&str]) -> Result<Vec<Inspected>, InspectError> {
    let mut stray = Vec::new();
    for e in std::fs::read_dir(dir).map_err(InspectError::ReadDir)? {
        let n = e
            .map_err(InspectError::ReadDir)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if (n.ends_with(".tar.zst") || n.ends_with(".tar.zst.age")) && !listed.contains(&n.as_str())
        {
            stray.push(n);
        }
    }
    stray.sort();
    Ok(stray
        .into_iter()
        .map(|n| Inspected {
            archive: dir.join(&n).display().to_string(),
            sha256: None,
            encrypted: n.ends_with(".age"),
            checks: vec![check(
                "listed in SHA256SUMS",
                Some(format!("{n} is not listed in {SUMS_NAME}")),
            )],
            manifest: None,
        })
        .collect())
}

/// Inspects a bundle directory (every archive `SHA256SUMS` lists, and any
/// it does not) or one archive, decrypting with `key`.
pub fn inspect(bundle: &Path, key: &Key) -> Result<Inspection, InspectError> {
    let meta = std::fs::metadata(bundle).map_err(|err| InspectError::Metadata {
        path: bundle.to_path_buf(),
        err,
    })?;
    let mut archives: Vec<PathBuf> = Vec::new();
    let mut results: Vec<Inspected> = Vec::new();
    if meta.is_dir() {
        let sums = read_sums(bundle).map_err(InspectError::Sums)?;
        let listed: Vec<&str> = sums.iter().map(|(n, _)| n.as_str()).collect();
        archives.extend(sums.iter().map(|(n, _)| bundle.join(n)));
        // Archives SHA256SUMS does not vouch for fail.
        results.extend(strays(bundle, &listed)?);
    } else {
        archives.push(bundle.to_path_buf());
    }
    let mut unreadable = false;
    for path in archives {
        let (r, readable) = inspect_archive(&path, key);
        unreadable |= !readable;
        results.push(r);
    }
    Ok(Inspection {
        archives: results,
        unreadable,
    })
}

/// One archive's checks; false when it could not be read at all.
fn inspect_archive(path: &Path, key: &Key) -> (Inspected, bool) {
    let mut checks = Vec::new();
    let want = match listed_sum(path) {
        Ok(s) => {
            checks.push(check("listed in SHA256SUMS", None));
            Some(s)
        }
        Err(e) => {
            checks.push(check("listed in SHA256SUMS", Some(e.to_string())));
            None
        }
    };
    let mut r = Inspected {
        archive: path.display().to_string(),
        sha256: None,
        encrypted: false,
        checks: Vec::new(),
        manifest: None,
    };
    let mut readable = true;
    match open_and_check(path, key, &mut Discard) {
        Ok(o) => {
            checks.push(check("every entry matches manifest.json", None));
            if let Some(w) = &want {
                checks.push(check(
                    "sha256 matches SHA256SUMS",
                    (*w != o.sha256).then(|| format!("sha256 {}, {SUMS_NAME} lists {w}", o.sha256)),
                ));
            }
            checks.push(if o.manifest.is_join() {
                // A join archive's IDs are the running cluster's, which no
                // flag computes: its member and flags are checked instead.
                check(
                    "member in the initial cluster, joining it (--initial-cluster-state=existing)",
                    super::join::consistency(&o.manifest).err(),
                )
            } else {
                check(
                    "member and cluster IDs match the initial cluster",
                    ids_problem(&o.manifest),
                )
            });
            r.sha256 = Some(o.sha256);
            r.encrypted = o.encrypted;
            r.manifest = Some(o.manifest);
        }
        Err(e) => {
            readable = e.is_check_failure();
            checks.push(check(
                "every entry matches manifest.json",
                Some(e.to_string()),
            ));
        }
    }
    r.checks = checks;
    (r, readable)
}

/// Why a manifest's member and cluster IDs are not those its initial
/// cluster gives, if they are not.
pub fn ids_problem(m: &Manifest) -> Option<String> {
    let c = match Cluster::parse(&m.initial_cluster, &m.initial_cluster_token) {
        Ok(c) => c,
        Err(e) => return Some(format!("initialCluster: {e}")),
    };
    let Some(x) = c.members.iter().find(|x| x.name == m.member.name) else {
        return Some(format!("member {} is not in initialCluster", m.member.name));
    };
    if m.member_id() != Some(x.id) {
        return Some(format!("member ID {} is not {:x}", m.member.id, x.id));
    }
    if u64::from_str_radix(&m.cluster_id, 16).ok() != Some(c.cluster_id) {
        return Some(format!(
            "cluster ID {} is not {:x}",
            m.cluster_id, c.cluster_id
        ));
    }
    None
}
