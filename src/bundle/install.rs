//! Placing a member's archive on its node: the archive streams once, every
//! entry checked (`archive`) while it is written into staging trees on the
//! target file systems — the data dir's through `restore::swap::stage`, the
//! PKI's in `<pki dir>/.etcdsnap-pki-staging-<pid>` — and the archive's
//! sha256 held against `SHA256SUMS`. Any mismatch removes the staging and
//! leaves the target as it was. Only when all of it checked: the data dir is
//! swapped in (`swap::commit`: an existing member needs `force` and is moved
//! aside; a data dir that is a mount point or a symlink stays one), existing
//! PKI files are renamed to `<file>.etcdsnap-bak-<UTC time>` and the new ones
//! renamed into place (keys 0600, certificates 0644, directories 0700, owned
//! as asked); a failure there undoes the PKI renames and the data swap.
//!
//! The PKI renames are journaled (`<pki dir>/.etcdsnap-pki-swap-<pid>.journal`)
//! like the data swap, and the data swap's journal stays until the PKI files
//! are in: a kill at any moment is undone by the next run — old data dir and
//! old PKI files back — except in the instant between removing the PKI
//! journal and the data journal, after which both are new.

use std::fs;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::archive::Sink;
use super::manifest::{FileEntry, Kind, Manifest};
use super::read::{Key, ReadError, listed_sum, open_and_check};
use crate::restore::durable::{self, IoError};
use crate::restore::membership::Cluster;
use crate::restore::swap::{self, StageDirs, SwapError};

pub const PKI_STAGING: &str = ".etcdsnap-pki-staging-";
/// The journal of the PKI renames: `<pki dir>/.etcdsnap-pki-swap-<pid>.journal`.
pub const PKI_JOURNAL: &str = ".etcdsnap-pki-swap-";

#[derive(Debug, Clone)]
pub struct Options {
    /// Install under this prefix (`--root`).
    pub root: Option<PathBuf>,
    /// The data dir (before `root`).
    pub data_dir: PathBuf,
    /// The PKI dir (before `root`): `/etc/kubernetes/pki`.
    pub pki_dir: PathBuf,
    /// chown everything placed; default the manifest's owner.
    pub owner: Option<(u32, u32)>,
    pub key: Key,
    pub force: bool,
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Swap(#[from] SwapError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(
        "{}: sha256 {got}, but SHA256SUMS lists {want}: the archive changed since it was bundled",
        .path.display()
    )]
    SumMismatch {
        path: PathBuf,
        got: String,
        want: String,
    },
    #[error("{}: manifest.json is inconsistent: {why}", .path.display())]
    Inconsistent { path: PathBuf, why: String },
}

impl InstallError {
    /// Whether the bundle failed a check (exit 1) rather than the install
    /// could not run (exit 2).
    pub fn is_check_failure(&self) -> bool {
        match self {
            InstallError::Read(e) => e.is_check_failure(),
            InstallError::SumMismatch { .. } | InstallError::Inconsistent { .. } => true,
            _ => false,
        }
    }
}

/// One file or directory placed (or to be placed).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    pub path: String,
    pub dest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_aside: Option<String>,
}

/// What install did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub archive: String,
    pub dry_run: bool,
    pub member: String,
    pub member_id: String,
    pub cluster_id: String,
    pub revision: i64,
    pub sha256: String,
    pub encrypted: bool,
    /// Every check passed (the archive is listed in SHA256SUMS with this
    /// sha256, every entry matches the manifest).
    pub checks_passed: bool,
    pub data_dir: String,
    pub pki_dir: String,
    /// The existing member dir moved aside (or, dry run, that needs --force).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_moved_aside: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    pub pki_files: Vec<Placed>,
    pub flags: Vec<String>,
    /// What was cleaned up after an interrupted run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cleaned: Vec<String>,
}

fn under_root(root: Option<&Path>, p: &Path) -> PathBuf {
    match root {
        Some(r) => r.join(p.strip_prefix("/").unwrap_or(p)),
        None => p.to_path_buf(),
    }
}

/// The sink writing checked entries into the staging trees.
struct Staging<'a> {
    dirs: Option<&'a StageDirs>,
    pki: Option<&'a Path>,
    manifest: Option<Manifest>,
}

impl Staging<'_> {
    /// Where an entry goes in staging (`None`: checked, not placed, or
    /// already made by `swap::stage`).
    fn dest(&self, path: &str) -> Option<PathBuf> {
        if let Some(rest) = path.strip_prefix("data/member") {
            let dirs = self.dirs?;
            let rest = rest.strip_prefix('/').unwrap_or(rest);
            if rest.is_empty() || rest == "wal" {
                return None;
            }
            return Some(match rest.strip_prefix("wal/") {
                Some(w) => dirs.wal.join(w),
                None => dirs.member.join(rest),
            });
        }
        let rest = path.strip_prefix("pki/")?;
        Some(self.pki?.join(rest))
    }
}

impl Sink for Staging<'_> {
    fn manifest(&mut self, m: &Manifest) -> Result<(), String> {
        if let Some(f) = m
            .files
            .iter()
            .find(|f| f.path.starts_with("data/") && !f.path.starts_with("data/member"))
        {
            return Err(format!(
                "{:?}: only data/member/ is placed in a data dir",
                f.path
            ));
        }
        self.manifest = Some(m.clone());
        Ok(())
    }
    fn dir(&mut self, e: &FileEntry) -> io::Result<()> {
        if let Some(d) = self.dest(&e.path) {
            durable::mkdir_0700(&d).map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(())
    }
    fn file(&mut self, e: &FileEntry, data: &mut dyn Read) -> io::Result<()> {
        let Some(d) = self.dest(&e.path) else {
            return io::copy(data, &mut io::sink()).map(|_| ());
        };
        let f = durable::create_0600(&d).map_err(|e| io::Error::other(e.to_string()))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        io::copy(data, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?;
        durable::set_mode(&d, e.mode).map_err(|e| io::Error::other(e.to_string()))
    }
}

fn owner_of(m: &Manifest) -> (u32, u32) {
    m.entry("data/member/snap/db")
        .map_or((0, 0), |f| (f.uid, f.gid))
}

/// The member's flags for where it was installed, and a check that the
/// manifest's IDs are those its cluster spec gives.
fn flags_for(
    archive: &Path,
    m: &Manifest,
    data_dir: &Path,
    pki_dir: &Path,
) -> Result<Vec<String>, InstallError> {
    let bad = |why: String| InstallError::Inconsistent {
        path: archive.to_path_buf(),
        why,
    };
    let cluster = Cluster::parse(&m.initial_cluster, &m.initial_cluster_token)
        .map_err(|e| bad(format!("initialCluster: {e}")))?;
    let member = cluster
        .members
        .iter()
        .find(|x| x.name == m.member.name)
        .ok_or_else(|| bad(format!("member {} is not in initialCluster", m.member.name)))?;
    if Some(member.id) != m.member_id() {
        return Err(bad(format!(
            "member ID {} is not {:x}, the ID its peer URLs and token give",
            m.member.id, member.id
        )));
    }
    if u64::from_str_radix(&m.cluster_id, 16).ok() != Some(cluster.cluster_id) {
        return Err(bad(format!(
            "cluster ID {} is not {:x}, the ID its members give",
            m.cluster_id, cluster.cluster_id
        )));
    }
    // The flags the bundle recorded (as `bundle` printed them), with the
    // data dir and the PKI files moved to where they were installed; every
    // URL stays as recorded (recomputing them from the advertised client
    // URLs alone would drop the loopback listener kubeadm's apiserver dials).
    let name_flag = format!("--name={}", m.member.name);
    if !m.flags.contains(&name_flag) {
        return Err(bad(format!("flags do not start member {}", m.member.name)));
    }
    Ok(m.flags
        .iter()
        .map(|f| match f.split_once('=') {
            Some(("--data-dir", _)) => format!("--data-dir={}", data_dir.display()),
            Some((k, v)) => match Path::new(v).strip_prefix(&m.pki_dir) {
                Ok(rest) if !rest.as_os_str().is_empty() => {
                    format!("{k}={}", pki_dir.join(rest).display())
                }
                _ => f.clone(),
            },
            None => f.clone(),
        })
        .collect())
}

/// The planned PKI placements: destination and whether a file is there.
fn pki_plan(m: &Manifest, pki_dir: &Path) -> Vec<(FileEntry, PathBuf, bool)> {
    m.files
        .iter()
        .filter_map(|f| {
            let rest = f.path.strip_prefix("pki/")?;
            let dest = pki_dir.join(rest);
            let exists = fs::symlink_metadata(&dest).is_ok();
            Some((f.clone(), dest, exists))
        })
        .collect()
}

/// `<path>.etcdsnap-bak-<stamp>`, `-2`, `-3`… if taken.
fn backup_name(p: &Path, stamp: &str) -> PathBuf {
    let base = format!("{}.etcdsnap-bak-{stamp}", p.display());
    let mut b = PathBuf::from(&base);
    let mut n = 2;
    while fs::symlink_metadata(&b).is_ok() {
        b = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    b
}

/// Installs the archive at `archive` (see the module comment).
pub fn install(archive: &Path, opts: &Options) -> Result<Report, InstallError> {
    let want = listed_sum(archive)?;
    let root = opts.root.as_deref();
    let data_dir = std::path::absolute(under_root(root, &opts.data_dir))
        .map_err(IoError::at(&opts.data_dir))?;
    let pki_dir =
        std::path::absolute(under_root(root, &opts.pki_dir)).map_err(IoError::at(&opts.pki_dir))?;
    let target = swap::Target {
        data_dir: data_dir.clone(),
        wal_dir: None,
    };
    let mut report = Report {
        archive: archive.display().to_string(),
        dry_run: opts.dry_run,
        member: String::new(),
        member_id: String::new(),
        cluster_id: String::new(),
        revision: 0,
        sha256: String::new(),
        encrypted: false,
        checks_passed: false,
        data_dir: data_dir.display().to_string(),
        pki_dir: pki_dir.display().to_string(),
        data_moved_aside: Vec::new(),
        refusal: None,
        pki_files: Vec::new(),
        flags: Vec::new(),
        cleaned: Vec::new(),
    };
    let fill = |report: &mut Report, m: &Manifest, sha: &str, enc: bool| {
        report.member = m.member.name.clone();
        report.member_id = m.member.id.clone();
        report.cluster_id = m.cluster_id.clone();
        report.revision = m.restore.db_revision;
        report.sha256 = sha.to_string();
        report.encrypted = enc;
    };
    if opts.dry_run {
        let opened = open_and_check(archive, &opts.key, &mut super::archive::Discard)?;
        if opened.sha256 != want {
            return Err(InstallError::SumMismatch {
                path: archive.to_path_buf(),
                got: opened.sha256,
                want,
            });
        }
        let m = &opened.manifest;
        fill(&mut report, m, &opened.sha256, opened.encrypted);
        report.flags = flags_for(archive, m, &data_dir, &pki_dir)?;
        report.checks_passed = true;
        if let Err(e) = swap::check(&target, opts.force) {
            report.refusal = Some(e.to_string());
        } else if data_dir.join("member").exists() {
            report.data_moved_aside = vec![format!(
                "{} (moved aside to member.etcdsnap-bak-<UTC time>)",
                data_dir.join("member").display()
            )];
        }
        report.pki_files = pki_plan(m, &pki_dir)
            .into_iter()
            .map(|(f, dest, exists)| Placed {
                path: f.path,
                dest: dest.display().to_string(),
                moved_aside: exists.then(|| format!("{}.etcdsnap-bak-<UTC time>", dest.display())),
            })
            .collect();
        return Ok(report);
    }
    // What a killed run left is cleaned (and said): first its staging that
    // no journal names; then, only once the run's own checks pass (a
    // journal is acted on only by a run allowed to replace the member), its
    // PKI renames undone and that staging removed. Its data swap is undone
    // by `swap::commit`.
    report.cleaned.extend(swap::clean_stale(&target)?);
    report
        .cleaned
        .extend(swap::clean_stale_prefixed(&pki_dir, PKI_STAGING)?);
    let checked = swap::check(&target, opts.force)?;
    report
        .cleaned
        .extend(swap::undo_stale_journals(&pki_dir, PKI_JOURNAL)?);
    report
        .cleaned
        .extend(swap::clean_stale_prefixed(&pki_dir, PKI_STAGING)?);
    let created_pki = swap::create_dirs_0700(&pki_dir)?;
    let pki_staging = pki_dir.join(format!("{PKI_STAGING}{}", std::process::id()));
    let cleanup_pki = |created: &[PathBuf]| {
        let _ = fs::remove_dir_all(&pki_staging);
        swap::remove_created_dirs(created);
    };
    if let Err(e) = durable::mkdir_0700(&pki_staging) {
        cleanup_pki(&created_pki);
        return Err(e.into());
    }
    // Stream, check and stage; the data swap's staging is removed on error.
    let mut outcome: Option<Result<super::read::Opened, InstallError>> = None;
    let staged = swap::stage(checked, None, |dirs| {
        let mut sink = Staging {
            dirs: Some(dirs),
            pki: Some(&pki_staging),
            manifest: None,
        };
        let r = (|| -> Result<super::read::Opened, InstallError> {
            let opened = open_and_check(archive, &opts.key, &mut sink)?;
            if opened.sha256 != want {
                return Err(InstallError::SumMismatch {
                    path: archive.to_path_buf(),
                    got: opened.sha256,
                    want: want.clone(),
                });
            }
            let owner = opts.owner.unwrap_or(owner_of(&opened.manifest));
            durable::chown_tree(&dirs.member, owner.0, owner.1)?;
            durable::chown_tree(&pki_staging, owner.0, owner.1)?;
            #[cfg(unix)]
            std::os::unix::fs::chown(&data_dir, Some(owner.0), Some(owner.1))
                .map_err(IoError::at(&data_dir))?;
            durable::sync_tree(&pki_staging)?;
            durable::sync_path(&pki_dir)?;
            Ok(opened)
        })();
        let failed = r.is_err();
        outcome = Some(r);
        if failed {
            return Err("the archive failed its checks".into());
        }
        Ok(())
    });
    let staged = match (staged, outcome) {
        (Ok(s), Some(Ok(o))) => (s, o),
        (_, Some(Err(e))) => {
            cleanup_pki(&created_pki);
            return Err(e);
        }
        (Err(e), _) => {
            cleanup_pki(&created_pki);
            return Err(e.into());
        }
        (Ok(_), None) => unreachable!("stage runs the writer"),
    };
    let (staged, opened) = staged;
    let m = &opened.manifest;
    fill(&mut report, m, &opened.sha256, opened.encrypted);
    let flags = match flags_for(archive, m, &data_dir, &pki_dir) {
        Ok(f) => f,
        Err(e) => {
            // Nothing swapped yet: commit then roll back removes the staging.
            if let Ok(c) = swap::commit(staged) {
                c.rollback();
            }
            cleanup_pki(&created_pki);
            return Err(e);
        }
    };
    report.checks_passed = true;
    let committed = match swap::commit(staged) {
        Ok(c) => {
            report.cleaned.extend(c.undone.iter().cloned());
            c
        }
        Err(e) => {
            cleanup_pki(&created_pki);
            return Err(e.into());
        }
    };
    // The PKI files: old ones aside, new ones in — planned and journaled
    // first, so a failure here, or a kill (undone by the next run, which also
    // undoes the data swap), puts every old file back.
    let owner = opts.owner.unwrap_or(owner_of(m));
    let stamp = durable::utc_stamp();
    let mut renames: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut mkdirs: Vec<PathBuf> = Vec::new();
    let mut placed_plan = Vec::new();
    for (f, dest, exists) in pki_plan(m, &pki_dir) {
        let rel = f.path.strip_prefix("pki/").unwrap_or(&f.path).to_string();
        let is_dir = f.kind == Kind::Dir;
        let mut aside = None;
        if exists && !(is_dir && dest.is_dir()) {
            let bak = backup_name(&dest, &stamp);
            renames.push((dest.clone(), bak.clone()));
            aside = Some(bak.display().to_string());
        }
        if is_dir {
            if !dest.is_dir() {
                mkdirs.push(dest.clone());
            }
        } else {
            renames.push((pki_staging.join(&rel), dest.clone()));
        }
        placed_plan.push(Placed {
            path: f.path.clone(),
            dest: dest.display().to_string(),
            moved_aside: aside,
        });
    }
    let journal = pki_dir.join(format!("{PKI_JOURNAL}{}.journal", std::process::id()));
    let mut done: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut made_dirs: Vec<PathBuf> = Vec::new();
    let placed = (|| -> Result<(), InstallError> {
        swap::write_rename_journal(&journal, &renames)?;
        durable::sync_path(&pki_dir)?;
        // Renames in plan order; a directory is made once what stood in
        // its place (if anything) is aside.
        for (from, to) in &renames {
            if let Some(d) = mkdirs.iter().find(|d| to.starts_with(d) && !d.exists()) {
                durable::mkdir_0700(d)?;
                #[cfg(unix)]
                std::os::unix::fs::chown(d, Some(owner.0), Some(owner.1))
                    .map_err(IoError::at(d))?;
                made_dirs.push(d.clone());
            }
            fs::rename(from, to).map_err(|err| {
                IoError::at(from)(io::Error::new(
                    err.kind(),
                    format!("cannot rename to {}: {err}", to.display()),
                ))
            })?;
            done.push((from.clone(), to.clone()));
        }
        for d in &mkdirs {
            if !d.exists() {
                durable::mkdir_0700(d)?;
                made_dirs.push(d.clone());
            }
        }
        for d in made_dirs.iter().chain(std::iter::once(&pki_dir)) {
            durable::sync_path(d)?;
        }
        for (_, to) in &done {
            durable::sync_path(durable::parent_of(to))?;
        }
        Ok(())
    })();
    if let Err(e) = placed {
        for (from, to) in done.iter().rev() {
            let _ = fs::rename(to, from);
        }
        for d in made_dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
        let _ = fs::remove_file(&journal);
        committed.rollback();
        cleanup_pki(&created_pki);
        return Err(e);
    }
    report.pki_files = placed_plan;
    let _ = fs::remove_file(&journal);
    let _ = fs::remove_dir_all(&pki_staging);
    let _ = durable::sync_path(&pki_dir);
    report.data_moved_aside = committed
        .backups
        .iter()
        .map(|b| b.display().to_string())
        .collect();
    committed.finish()?;
    report.flags = flags;
    Ok(report)
}
