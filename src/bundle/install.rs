//! Placing a member's archive on its node. Before anything is written:
//! the archive's sha256 is computed in a first pass over its raw bytes and
//! held against the digest that vouches for it (`SHA256SUMS` beside it, or
//! `--sha256`), so an archive nobody vouched for is never inflated onto a
//! disk; its manifest is read and checked; the member is held against the
//! node (its URLs against the node's addresses and hostname); an install
//! already done from the same archive, unchanged since, is recognised and
//! left alone; and the file systems must have room for what the manifest
//! declares. Under `--root`, every path is resolved inside the root as
//! `chroot` would (an absolute symlink restarts at the root, `..` stops at
//! it), so nothing lands outside it.
//!
//! Then the archive streams once more, every entry checked (`archive`)
//! while it is written into staging trees on the target file systems — the
//! data dir's through `durable::swap::stage`, the PKI's in
//! `<pki dir>/.etcdsnap-pki-staging-<pid>` — never more bytes than the
//! manifest declares, and its sha256 held against the vouched digest again.
//! Any mismatch removes the staging and leaves the target as it was. Only
//! when all of it checked: the data dir is swapped in (`swap::commit`: an
//! existing member needs `force` and is moved aside; a data dir that is a
//! mount point or a symlink stays one), existing PKI files are renamed to
//! `<file>.etcdsnap-bak-<UTC time>` and the new ones renamed into place
//! (keys 0600, certificates 0644, the bundle's directories 0700, owned as
//! asked); a failure there undoes the PKI renames and the data swap.
//! Missing parents (`/etc`, `/var/lib`, the PKI dir) are made 0755; only the
//! data dir and member dir are 0700, as etcd wants them.
//!
//! The PKI renames are journaled (`<pki dir>/.etcdsnap-pki-swap-<pid>.journal`)
//! like the data swap, and the data swap's journal stays until the PKI files
//! are in; its removal is the commit point. A kill before it is undone by
//! the next run — old data dir and old PKI files back; a kill after it
//! leaves a PKI journal that records the (now gone) data journal, which the
//! next run recognises as final — new data dir and new PKI files. Every temporary
//! name carries `.etcdsnap-` and the pid, so what a killed run left is
//! recognised and cleaned by the next.
//!
//! A join archive (format 2: `super::join`) goes through the same steps with
//! no data files: its member's IDs are the running cluster's, so only its
//! place in the initial cluster and its `--initial-cluster-state=existing`
//! are checked against its flags; a data dir whose `member/` holds anything
//! but empty directories is refused first, before anything is touched,
//! naming the member it holds by the IDs in its first WAL segment
//! (`cluster::datadir`), unless `force`; the swap then puts an empty member
//! tree in place (moving an old member aside, journaled as above), and after
//! the commit point that empty tree is removed, leaving the data dir empty
//! (0700, owned as asked) for etcd to create the member when it joins. An
//! empty member tree left by a run killed just then counts as empty. Already
//! installed means: the data dir empty, and the PKI files the archive's.

use std::fs;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::archive::Sink;
use super::manifest::{FileEntry, JoinInfo, Kind, Manifest};
use super::read::{
    Key, ReadError, hash_file, open_and_check, open_regular, read_manifest, read_sums,
};
use crate::cluster::datadir::held_member;
use crate::cluster::membership::Cluster;
use crate::durable::swap::{self, StageDirs, SwapError};
use crate::durable::{self, IoError};

/// The PKI staging dir's name in the PKI dir, before the pid.
pub const PKI_STAGING: &str = ".etcdsnap-pki-staging-";
/// The journal of the PKI renames: `<pki dir>/.etcdsnap-pki-swap-<pid>.journal`.
pub const PKI_JOURNAL: &str = ".etcdsnap-pki-swap-";

#[derive(Debug, Clone)]
/// How an archive is installed.
pub struct Options {
    /// Install under this prefix (`--root`).
    pub root: Option<PathBuf>,
    /// The data dir (before `root`).
    pub data_dir: PathBuf,
    /// The PKI dir (before `root`): `/etc/kubernetes/pki`.
    pub pki_dir: PathBuf,
    /// chown everything placed; default the manifest's owner.
    pub owner: Option<crate::restore::owner::Owner>,
    /// The key of an encrypted archive.
    pub key: Key,
    /// Replace an existing member dir (moved aside).
    pub force: bool,
    /// Check and plan; write nothing.
    pub dry_run: bool,
    /// The archive's sha256 as given on the command line (`--sha256`): it
    /// vouches for the archive when no `SHA256SUMS` is beside it.
    pub sha256: Option<String>,
    /// `--as-member NAME`: the member this node is meant to be (refused
    /// when the archive is another member's; confirms a member whose URLs
    /// do not name this node).
    pub as_member: Option<String>,
}

#[derive(Debug, thiserror::Error)]
/// Why an archive was not installed; the target is as it was.
pub enum InstallError {
    #[error(transparent)]
    /// The archive could not be read or failed a check.
    Read(#[from] ReadError),
    #[error(transparent)]
    /// The member could not be swapped in.
    Swap(#[from] SwapError),
    #[error(transparent)]
    /// A file could not be read or written.
    Io(#[from] IoError),
    #[error(
        "{}: sha256 {got}, but {by} {want}: the archive is not the one that was bundled",
        .path.display()
    )]
    /// The archive's sha256 is not the one vouched for.
    SumMismatch {
        /// The archive.
        path: PathBuf,
        /// Its sha256.
        got: String,
        /// The sha256 vouched for.
        want: String,
        /// Who vouched: "SHA256SUMS lists" or "--sha256 gives".
        by: &'static str,
    },
    #[error("{}: manifest.json is inconsistent: {why}", .path.display())]
    /// The manifest contradicts itself: the archive and why.
    Inconsistent {
        /// The path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    #[error(
        "{}: missing: nothing vouches for the archive; give its sha256 with --sha256 DIGEST",
        .0.display()
    )]
    /// No `SHA256SUMS` and no `--sha256`.
    NoSums(PathBuf),
    #[error("{err} (it is not this archive's install as it was: {why})")]
    /// A journal found does not match what is installed: the error and why.
    NotAsInstalled {
        /// The error.
        err: SwapError,
        /// Why.
        why: String,
    },
    #[error(
        "data dir {} holds a member dir ({held}); a join archive's member starts from an empty data dir: use --force to move it aside",
        .data_dir.display()
    )]
    /// A join archive's data dir holds a member: the data dir, and which
    /// member (its IDs, or why they could not be read).
    HoldsMember {
        /// The data dir.
        data_dir: PathBuf,
        /// `member ID … of cluster …`, or `its ID could not be read: …`.
        held: String,
    },
    #[error("--sha256 {0:?}: not 64 hex digits")]
    /// `--sha256` is not a sha256.
    BadDigest(String),
    #[error(
        "{}: lists {listed} for the archive, but --sha256 gives {given}",
        .path.display()
    )]
    /// `SHA256SUMS` and `--sha256` disagree.
    SumsConflict {
        /// `SHA256SUMS`.
        path: PathBuf,
        /// What it lists.
        listed: String,
        /// What `--sha256` gives.
        given: String,
    },
    #[error("the archive is member {member}'s, not {given}'s (--as-member {given})")]
    /// `--as-member` names another member: the archive's and the one given.
    AsMember {
        /// The member.
        member: String,
        /// What was given.
        given: String,
    },
    #[error(
        "the archive is member {member}'s, whose URLs ({urls}) name neither this node's addresses nor its hostname ({node}); if this node is {member}, say so with --as-member {member}"
    )]
    /// The member's URLs name neither this node's addresses nor its hostname.
    NotThisNode {
        /// The archive's member.
        member: String,
        /// Its URLs.
        urls: String,
        /// This node's addresses and hostname.
        node: String,
    },
    #[error(
        "{}: the archive declares {need} bytes to write on this file system, which has {free} free",
        .path.display()
    )]
    /// Not enough free space: where, what is needed, what is free.
    NoSpace {
        /// The path.
        path: PathBuf,
        /// The bytes needed.
        need: u64,
        /// The bytes free.
        free: u64,
    },
    #[error("{}: {why}", .path.display())]
    /// A path resolves outside `--root`: the path and why.
    InRoot {
        /// The path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    #[error(
        "{}: an install recorded here completed (its data swap was final), but what is installed has changed since ({why}: was etcd started on it?); nothing was changed. If the member in place is the one to keep, remove this journal and rerun",
        .journal.display()
    )]
    /// A completed install's journal, and what changed since.
    CompletedThenChanged {
        /// The journal.
        journal: PathBuf,
        /// Why.
        why: String,
    },
}

impl InstallError {
    /// Whether the bundle failed a check (exit 1) rather than the install
    /// could not run (exit 2).
    pub fn is_check_failure(&self) -> bool {
        match self {
            InstallError::Read(e) => e.is_check_failure(),
            InstallError::SumMismatch { .. }
            | InstallError::Inconsistent { .. }
            | InstallError::SumsConflict { .. }
            | InstallError::AsMember { .. }
            | InstallError::NotThisNode { .. } => true,
            _ => false,
        }
    }
}

/// One file or directory placed (or to be placed).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    /// Its path in the archive.
    pub path: String,
    /// Where it goes.
    pub dest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Where the old one went.
    pub moved_aside: Option<String>,
}

/// What install did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The archive's path.
    pub archive: String,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// The member's name.
    pub member: String,
    /// Its ID, hex.
    pub member_id: String,
    /// The cluster ID, hex.
    pub cluster_id: String,
    /// The snapshot's revision (none for a join archive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// A join archive: how the member joins its running cluster (its data
    /// dir is placed empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinInfo>,
    /// The archive's sha256.
    pub sha256: String,
    /// Whether it was encrypted.
    pub encrypted: bool,
    /// Every check passed (the archive is listed in SHA256SUMS with this
    /// sha256, every entry matches the manifest).
    pub checks_passed: bool,
    /// The data dir.
    pub data_dir: String,
    /// The PKI dir.
    pub pki_dir: String,
    /// The existing member dir moved aside (or, dry run, that needs --force).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_moved_aside: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why the install was refused, in a dry run.
    pub refusal: Option<String>,
    /// Every PKI file placed.
    pub pki_files: Vec<Placed>,
    /// The member's start flags.
    pub flags: Vec<String>,
    /// What was cleaned up after an interrupted run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cleaned: Vec<String>,
    /// Where the archive's sha256 came from: `SHA256SUMS` or `--sha256`.
    pub vouched_by: String,
    /// How the member was matched to this node.
    pub node: String,
    /// The member and PKI files in place are exactly this archive's,
    /// unchanged since: nothing was (or would be) written.
    pub already_installed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// Warnings for the operator.
    pub warnings: Vec<String>,
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
    /// The manifest read in the first pass.
    expected: Option<&'a Manifest>,
    /// Bytes still allowed: the manifest's declared total of the files
    /// placed; extraction never writes more.
    budget: u64,
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
        // The manifest of this read must be the one read (and vouched for)
        // before: the total it declares is what was checked for room.
        if self.expected.is_some_and(|x| x != m) {
            return Err(
                "not the manifest read before: the archive changed between its reads".into(),
            );
        }
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
        self.budget = m
            .files
            .iter()
            .filter(|f| self.dest(&f.path).is_some())
            .map(|f| f.size)
            .sum();
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
        if e.size > self.budget {
            return Err(io::Error::other(
                "more bytes than manifest.json declares in all",
            ));
        }
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let n = io::copy(&mut crate::interrupt::Checked(data.take(e.size)), &mut w)?;
        self.budget -= n;
        w.into_inner().map_err(|e| e.into_error())?;
        durable::set_mode(&d, e.mode).map_err(|e| io::Error::other(e.to_string()))
    }
}

fn owner_of(m: &Manifest) -> (u32, u32) {
    m.entry("data/member/snap/db")
        .or_else(|| m.entry("data"))
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
    if m.is_join() {
        // The IDs of a join archive are the running cluster's: no flag
        // computes them (see `join::consistency`).
        super::join::consistency(m).map_err(bad)?;
        return Ok(relocated_flags(m, data_dir, pki_dir));
    }
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
    Ok(relocated_flags(m, data_dir, pki_dir))
}

/// The manifest's flags with the data dir and the PKI files moved to where
/// they were installed.
fn relocated_flags(m: &Manifest, data_dir: &Path, pki_dir: &Path) -> Vec<String> {
    m.flags
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
        .collect()
}

/// The planned PKI placements: destination and whether a file is there.
/// Under `root`, each destination is resolved inside it (a directory
/// followed, a file's last component left as it is).
fn pki_plan(m: &Manifest, pki_dir: &Path, root: Option<&Path>) -> Result<PkiPlan, InstallError> {
    let mut v = Vec::new();
    for f in &m.files {
        let Some(rest) = f.path.strip_prefix("pki/") else {
            continue;
        };
        let dest = match root {
            Some(r) => {
                let inside = pki_dir.strip_prefix(r).unwrap_or(pki_dir).join(rest);
                let dest = resolve_in_root(r, &inside, f.kind == Kind::Dir)?;
                if !dest.starts_with(pki_dir) {
                    return Err(InstallError::InRoot {
                        path: pki_dir.join(rest),
                        why: format!(
                            "resolves to {}, outside the PKI dir {} (a symlink inside it leads elsewhere); install places PKI files only inside the PKI dir",
                            dest.display(),
                            pki_dir.display()
                        ),
                    });
                }
                dest
            }
            None => pki_dir.join(rest),
        };
        let exists = fs::symlink_metadata(&dest).is_ok();
        v.push((f.clone(), dest, exists));
    }
    Ok(v)
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

/// The root made absolute with its symlinks resolved (on the host: the
/// root is the caller's choice); a root that does not exist yet is its
/// nearest existing ancestor, resolved, with the rest appended (made when
/// the parents are).
fn canonical_root(r: &Path) -> Result<PathBuf, IoError> {
    let abs = std::path::absolute(r).map_err(IoError::at(r))?;
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        match fs::canonicalize(cur) {
            Ok(c) => {
                let mut out = c;
                out.extend(rest.iter().rev());
                return Ok(out);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (cur.parent(), cur.file_name()) else {
                    return Err(IoError::at(r)(e));
                };
                rest.push(name.to_os_string());
                cur = parent;
            }
            Err(e) => return Err(IoError::at(cur)(e)),
        }
    }
}

/// Most symlinks followed while resolving one path (as Linux's ELOOP).
const MAX_LINKS: usize = 40;

/// Resolves `p` inside `root` as the kernel would after `chroot(root)`:
/// every symlink met is followed with an absolute target restarting at the
/// root and `..` never rising above it. The last component is followed
/// only when `follow_last` (a directory we write into); otherwise it is
/// left as it is (a file renamed aside if it is a link). Returns a host
/// path below `root` (which must be canonical). A dangling link where a
/// directory is wanted is refused, as is a file where a directory is.
pub fn resolve_in_root(root: &Path, p: &Path, follow_last: bool) -> Result<PathBuf, InstallError> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::path::Component;
    let err = |why: String| InstallError::InRoot {
        path: under_root(Some(root), p),
        why,
    };
    let parts = |q: &Path| -> Vec<OsString> {
        q.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let mut todo: VecDeque<OsString> = parts(p).into();
    let mut stack: Vec<OsString> = Vec::new();
    let mut links = 0;
    let mut followed_last = false;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            stack.pop();
            continue;
        }
        let last = todo.is_empty();
        let mut cand = root.to_path_buf();
        cand.extend(&stack);
        cand.push(&c);
        match fs::symlink_metadata(&cand) {
            Ok(m) if m.file_type().is_symlink() && (!last || follow_last) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(err(format!(
                        "more than {MAX_LINKS} symlinks (a loop?) resolving it inside {}",
                        root.display()
                    )));
                }
                let t = fs::read_link(&cand).map_err(IoError::at(&cand))?;
                if t.is_absolute() {
                    stack.clear();
                }
                for x in parts(&t).into_iter().rev() {
                    todo.push_front(x);
                }
                followed_last = last;
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(err(format!("{} is not a directory", cand.display())));
            }
            Ok(_) => stack.push(c),
            Err(e) if e.kind() == io::ErrorKind::NotFound => stack.push(c),
            Err(e) => return Err(IoError::at(&cand)(e).into()),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&stack);
    if followed_last && fs::symlink_metadata(&out).is_err() {
        return Err(err(format!(
            "a symlink to nothing (resolved inside the root: {})",
            out.display()
        )));
    }
    Ok(out)
}

/// The sha256 that vouches for `archive`, and who gave it: `--sha256`
/// when given (a `SHA256SUMS` beside the archive must then agree, if it
/// lists it), else `SHA256SUMS`.
fn vouched_sum(archive: &Path, given: Option<&str>) -> Result<Vouch, InstallError> {
    let dir = archive.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sums_path = dir.join(super::SUMS_NAME);
    let Some(given) = given else {
        if fs::symlink_metadata(&sums_path).is_err() {
            return Err(InstallError::NoSums(sums_path));
        }
        let want = read_sums(dir)?
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s)
            .ok_or_else(|| ReadError::Sums {
                path: sums_path.clone(),
                why: format!(
                    "does not list {name}: refusing an archive it does not vouch for (or give its sha256 with --sha256)"
                ),
            })?;
        return Ok(Vouch {
            want,
            by: "SHA256SUMS lists",
        });
    };
    let g = given.trim().to_ascii_lowercase();
    if g.len() != 64 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InstallError::BadDigest(given.to_string()));
    }
    if fs::symlink_metadata(&sums_path).is_ok() {
        let listed = read_sums(dir)?.into_iter().find(|(n, _)| *n == name);
        if let Some((_, listed)) = listed
            && listed != g
        {
            return Err(InstallError::SumsConflict {
                path: sums_path,
                listed,
                given: g,
            });
        }
    }
    Ok(Vouch {
        want: g,
        by: "--sha256 gives",
    })
}

/// The host part of a URL (`scheme://host:port/…`), lowercase, without
/// the brackets of an IPv6 literal.
fn url_host(u: &str) -> Option<String> {
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let rest = rest.split(['/', '?', '#']).next().unwrap_or("");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        rest.rsplit_once(':').map_or(rest, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// This machine's hostname.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let h = String::from_utf8_lossy(&buf[..end])
        .trim()
        .to_ascii_lowercase();
    (!h.is_empty()).then_some(h)
}

/// The addresses of this machine's interfaces.
fn local_addrs() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let a = (*cur).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        out.push(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                            u32::from_be(sin.sin_addr.s_addr),
                        )));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push(std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                            sin6.sin6_addr.s6_addr,
                        )));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// The first label of a host name (`node1` of `node1.example.com`).
fn short(h: &str) -> &str {
    h.split('.').next().unwrap_or(h)
}

/// The hostname of the image under `root` (its `/etc/hostname`), if it
/// names one (`localhost` does not).
fn image_hostname(root: &Path) -> Option<String> {
    let p = resolve_in_root(root, Path::new("/etc/hostname"), true).ok()?;
    let f = open_regular(&p).ok()?;
    let mut s = String::new();
    f.take(4096).read_to_string(&mut s).ok()?;
    let h = s.lines().next()?.trim().to_ascii_lowercase();
    // A generic image's placeholder names no node.
    (!h.is_empty() && short(&h) != "localhost").then_some(h)
}

/// Holds the member against the node: `--as-member` must name it; else
/// one of its peer or client URLs must name one of the node's addresses or
/// its hostname, or its name must be the hostname (kubeadm names members
/// after their node). Under `--root` the node is the image: its
/// `/etc/hostname`, and no addresses. Returns how it matched and warnings.
fn node_check(
    m: &Manifest,
    opts: &Options,
    root: Option<&Path>,
) -> Result<(String, Vec<String>), InstallError> {
    let member = &m.member.name;
    if let Some(given) = &opts.as_member
        && given != member
    {
        return Err(InstallError::AsMember {
            member: member.clone(),
            given: given.clone(),
        });
    }
    let (host, addrs) = match root {
        Some(r) => (image_hostname(r), Vec::new()),
        None => (hostname(), local_addrs()),
    };
    let urls: Vec<&String> = m
        .member
        .peer_urls
        .iter()
        .chain(&m.member.client_urls)
        .collect();
    let mut matched: Option<String> = None;
    for u in &urls {
        let Some(h) = url_host(u) else { continue };
        if h == "localhost" && root.is_none() {
            matched = Some(format!("{u} names this node (localhost)"));
            break;
        }
        if let Ok(ip) = h.parse::<std::net::IpAddr>() {
            if addrs.contains(&ip) {
                matched = Some(format!("{u} is an address of this node"));
                break;
            }
        } else if let Some(hn) = &host
            && (h == *hn || short(&h) == short(hn))
        {
            matched = Some(format!("{u} names this node's hostname {hn}"));
            break;
        }
    }
    if matched.is_none()
        && let Some(hn) = &host
        && short(&member.to_ascii_lowercase()) == short(hn)
    {
        matched = Some(format!("the member's name is this node's hostname {hn}"));
    }
    let shown_urls = urls
        .iter()
        .map(|u| u.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let unknown = root.is_some() && host.is_none();
    match (matched, &opts.as_member) {
        (Some(how), _) => Ok((how, Vec::new())),
        (None, Some(_)) if unknown => Ok((format!("{member}, as --as-member says"), Vec::new())),
        (None, Some(_)) => Ok((
            format!("{member}, as --as-member says"),
            vec![format!(
                "member {member}'s URLs ({shown_urls}) name neither this node's addresses nor its hostname; installing it as --as-member says"
            )],
        )),
        (None, None) if unknown => Ok((
            "not checked".into(),
            vec![format!(
                "the image under --root has no /etc/hostname and its addresses are unknown: whether it is member {member}'s node was not checked (give --as-member {member} to say it is)"
            )],
        )),
        (None, None) => {
            let mut node: Vec<String> = host.iter().cloned().collect();
            node.extend(addrs.iter().map(|a| a.to_string()));
            Err(InstallError::NotThisNode {
                member: member.clone(),
                urls: shown_urls,
                node: node.join(", "),
            })
        }
    }
}

/// Whether the member and the PKI files in place are exactly the
/// archive's (every file's bytes, size, mode and owner; no file in the
/// member dir the archive does not hold): `None` when they are, else the
/// first difference. Metadata is compared before any file is hashed.
fn installed_difference(
    m: &Manifest,
    data_dir: &Path,
    plan: &[(FileEntry, PathBuf, bool)],
    owner: (u32, u32),
) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut wanted: Vec<(&FileEntry, PathBuf, bool)> = Vec::new();
    for f in m.files.iter().filter(|f| f.path.starts_with("data/member")) {
        let rel = f.path.strip_prefix("data/").unwrap_or(&f.path);
        wanted.push((f, data_dir.join(rel), true));
    }
    for (f, dest, _) in plan {
        wanted.push((f, dest.clone(), false));
    }
    let mut to_hash = Vec::new();
    for (f, dest, strict_dir) in &wanted {
        let Ok(meta) = fs::symlink_metadata(dest) else {
            return Some(format!("{} is missing", dest.display()));
        };
        let same_kind = match f.kind {
            Kind::File => meta.is_file(),
            Kind::Dir => meta.is_dir(),
        };
        if !same_kind {
            return Some(format!("{} is not a {}", dest.display(), kind_word(f.kind)));
        }
        // A PKI directory that was there before keeps its own mode and owner.
        if f.kind == Kind::Dir && !strict_dir {
            continue;
        }
        if meta.mode() & 0o7777 != f.mode {
            return Some(format!(
                "{} has mode {:o}, not {:o}",
                dest.display(),
                meta.mode() & 0o7777,
                f.mode
            ));
        }
        if (meta.uid(), meta.gid()) != owner {
            return Some(format!(
                "{} is owned by {}:{}, not {}:{}",
                dest.display(),
                meta.uid(),
                meta.gid(),
                owner.0,
                owner.1
            ));
        }
        if f.kind == Kind::File {
            if meta.len() != f.size {
                return Some(format!(
                    "{} holds {} bytes, not {}",
                    dest.display(),
                    meta.len(),
                    f.size
                ));
            }
            to_hash.push((dest.clone(), f.sha256.clone().unwrap_or_default()));
        }
    }
    if m.is_join() {
        // The data dir is empty (its vacancy is checked by the caller),
        // 0700, owned as asked.
        return match fs::metadata(data_dir) {
            Ok(meta) if meta.mode() & 0o7777 != 0o700 => Some(format!(
                "{} has mode {:o}, not 700",
                data_dir.display(),
                meta.mode() & 0o7777
            )),
            Ok(meta) if (meta.uid(), meta.gid()) != owner => Some(format!(
                "{} is owned by {}:{}, not {}:{}",
                data_dir.display(),
                meta.uid(),
                meta.gid(),
                owner.0,
                owner.1
            )),
            Ok(_) => None,
            Err(e) => Some(format!("{}: {e}", data_dir.display())),
        };
    }
    // Nothing in the member dir the archive does not hold (etcd, once
    // started, adds WAL segments and snapshots).
    let member = data_dir.join("member");
    let listed: std::collections::HashSet<PathBuf> =
        wanted.iter().filter(|w| w.2).map(|w| w.1.clone()).collect();
    let mut dirs = vec![member];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = fs::read_dir(&d) else {
            return Some(format!("{} cannot be listed", d.display()));
        };
        for e in rd.flatten() {
            let p = e.path();
            if !listed.contains(&p) {
                return Some(format!("{} is not the archive's", p.display()));
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(p);
            }
        }
    }
    for (p, want) in to_hash {
        match hash_file(&p) {
            Ok(got) if got == want => {}
            Ok(_) => return Some(format!("{}: its bytes changed", p.display())),
            Err(e) => return Some(e.to_string()),
        }
    }
    None
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "directory",
    }
}

/// Free bytes (for an unprivileged user; root may use a little more) on
/// the file system holding `p` or its nearest existing ancestor, and that
/// file system's device.
fn free_space(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let mut cur = Some(p);
    while let Some(c) = cur {
        if let Ok(meta) = fs::metadata(c) {
            let cs = std::ffi::CString::new(c.as_os_str().as_bytes()).ok()?;
            // SAFETY: an all-zero statvfs is a valid value of that plain C struct.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: statvfs fills the struct we pass; cs is a valid C string.
            if unsafe { libc::statvfs(cs.as_ptr(), &mut st) } != 0 {
                return None;
            }
            #[allow(clippy::unnecessary_cast)]
            let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
            return Some((free, meta.dev()));
        }
        cur = c.parent();
    }
    None
}

/// Refuses before writing when a file system cannot hold what the
/// manifest declares for it (the data files, the PKI files).
fn check_room(m: &Manifest, data_dir: &Path, pki_dir: &Path) -> Result<(), InstallError> {
    let total = |prefix: &str| -> u64 {
        m.files
            .iter()
            .filter(|f| f.path.starts_with(prefix))
            .map(|f| f.size)
            .sum()
    };
    let (data_need, pki_need) = (total("data/member"), total("pki/"));
    let (Some((data_free, data_dev)), Some((pki_free, pki_dev))) =
        (free_space(data_dir), free_space(pki_dir))
    else {
        return Ok(());
    };
    let mut checks = vec![(data_dir, data_need, data_free)];
    if data_dev == pki_dev {
        checks[0].1 += pki_need;
    } else {
        checks.push((pki_dir, pki_need, pki_free));
    }
    for (path, need, free) in checks {
        if need > free {
            return Err(InstallError::NoSpace {
                path: path.to_path_buf(),
                need,
                free,
            });
        }
    }
    Ok(())
}

/// Creates `p`'s missing ancestors (and `p` itself when `with_self`) as
/// 0755 directories — `/etc`, `/var/lib`, the PKI dir: made for everyone to
/// traverse, as a system's are — returning those made, outermost first.
fn make_parents(p: &Path, with_self: bool) -> Result<Vec<PathBuf>, IoError> {
    let mut missing = Vec::new();
    let mut cur = if with_self { Some(p) } else { p.parent() };
    while let Some(c) = cur {
        if c.as_os_str().is_empty() || fs::symlink_metadata(c).is_ok() {
            break;
        }
        missing.push(c.to_path_buf());
        cur = c.parent();
    }
    missing.reverse();
    let mut made = Vec::new();
    for d in missing {
        let r = fs::create_dir(&d)
            .map_err(IoError::at(&d))
            .and_then(|()| durable::set_mode(&d, 0o755));
        match r {
            Ok(()) => made.push(d),
            Err(e) if e.err.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => {
                swap::remove_created_dirs(&made);
                return Err(e);
            }
        }
    }
    for d in &made {
        durable::sync_path(durable::parent_of(d))?;
    }
    Ok(made)
}

/// Whether the run of `pid` is gone (its pid free, or taken by another
/// program), or is this one.
fn run_gone(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    match fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => !comm.trim().starts_with("etcdsnap"),
        Err(_) => true,
    }
}

/// The PKI journals of installs that are gone and were killed after their
/// commit point. An install writes its PKI journal only while its data
/// swap's journal (`<data dir>/.etcdsnap-swap-<pid>.journal`, the same pid)
/// exists, and removes that data journal first (the commit point): a PKI
/// journal whose run is gone and whose data journal is gone belongs to a
/// completed install. Nothing is changed here.
fn committed_pki_journals(pki_dir: &Path, data_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(pki_dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(PKI_JOURNAL)
                .and_then(|r| r.strip_suffix(".journal"))
                .and_then(|r| r.parse::<u32>().ok())
                .is_some_and(|pid| {
                    run_gone(pid)
                        && fs::symlink_metadata(
                            data_dir.join(format!(".etcdsnap-swap-{pid}.journal")),
                        )
                        .is_err()
                })
        })
        .map(|e| e.path())
        .collect()
}

/// The PKI placements planned for a manifest: each entry, its destination,
/// and whether something is there.
type PkiPlan = Vec<(FileEntry, PathBuf, bool)>;

/// The sha256 that vouches for the archive, and who gave it.
struct Vouch {
    /// The sha256 vouched for.
    want: String,
    /// Who vouched: "SHA256SUMS lists" or "--sha256 gives".
    by: &'static str,
}

impl Vouch {
    /// Holds `got`, a sha256 of the archive's bytes, against the vouched
    /// one: a difference is `SumMismatch`.
    fn hold(&self, archive: &Path, got: &str) -> Result<(), InstallError> {
        if got != self.want {
            return Err(InstallError::SumMismatch {
                path: archive.to_path_buf(),
                got: got.to_string(),
                want: self.want.clone(),
                by: self.by,
            });
        }
        Ok(())
    }
}

/// What every step of one install works from: the archive, its vouched
/// digest and manifest, and where it goes.
struct Ctx<'a> {
    archive: &'a Path,
    opts: &'a Options,
    vouch: Vouch,
    /// The manifest read in the first pass.
    m: Manifest,
    /// `--root`, canonical.
    root: Option<PathBuf>,
    /// The data dir, resolved (inside the root, or absolute).
    data_dir: PathBuf,
    /// The PKI dir, resolved (inside the root, or absolute).
    pki_dir: PathBuf,
    /// Where the PKI journal lives.
    journal_dir: PathBuf,
    /// The uid and gid of everything placed.
    owner: (u32, u32),
    /// What the data swap replaces.
    target: swap::Target,
}

impl<'a> Ctx<'a> {
    /// Resolves where the archive goes: `--root` made canonical, the data
    /// and PKI dirs resolved inside it (as `chroot` would) or made absolute.
    /// Nothing is written.
    fn resolve(
        archive: &'a Path,
        opts: &'a Options,
        vouch: Vouch,
        m: Manifest,
    ) -> Result<Ctx<'a>, InstallError> {
        let root = match &opts.root {
            Some(r) => Some(canonical_root(r)?),
            None => None,
        };
        let (data_dir, pki_dir) = match root.as_deref() {
            Some(r) => (
                resolve_in_root(r, &opts.data_dir, true)?,
                resolve_in_root(r, &opts.pki_dir, true)?,
            ),
            None => (
                std::path::absolute(&opts.data_dir).map_err(IoError::at(&opts.data_dir))?,
                std::path::absolute(&opts.pki_dir).map_err(IoError::at(&opts.pki_dir))?,
            ),
        };
        // The PKI journal lives in the PKI dir and names paths relative to it,
        // so every PKI file must resolve inside it (under --root a link in the
        // PKI dir leading elsewhere in the root is refused: see `pki_plan`).
        let journal_dir = pki_dir.clone();
        let owner = opts
            .owner
            .map_or_else(|| owner_of(&m), crate::restore::owner::Owner::ids);
        let target = swap::Target {
            data_dir: data_dir.clone(),
            wal_dir: None,
        };
        Ok(Ctx {
            archive,
            opts,
            vouch,
            m,
            root,
            data_dir,
            pki_dir,
            journal_dir,
            owner,
            target,
        })
    }

    fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// This run's PKI journal: `<pki dir>/.etcdsnap-pki-swap-<pid>.journal`.
    fn pki_journal(&self) -> PathBuf {
        self.journal_dir
            .join(format!("{PKI_JOURNAL}{}.journal", std::process::id()))
    }
}

/// Installs the archive at `archive` (see the module comment).
pub fn install(archive: &Path, opts: &Options) -> Result<Report, InstallError> {
    // The digest that vouches for the archive, and the archive's own, before
    // a byte of it is inflated.
    let vouch = vouched_sum(archive, opts.sha256.as_deref())?;
    let sha256 = hash_file(archive)?;
    vouch.hold(archive, &sha256)?;
    let (m, encrypted) = read_manifest(archive, &opts.key)?;
    let cx = Ctx::resolve(archive, opts, vouch, m)?;
    let (mut report, plan) = check_member(&cx, sha256, encrypted)?;
    if opts.dry_run {
        return dry_run(&cx, report, &plan);
    }
    // A join archive's member starts from an empty data dir: a member in
    // the way is named and refused before anything is touched.
    check_join_vacancy(&cx)?;
    // What a killed run left is cleaned (and said): first its staging that
    // no journal names, and the PKI journal of an install killed after its
    // commit point (finished: the new files are kept, nothing is deleted).
    // An interrupted run's PKI renames are undone only once this run's own
    // checks pass (a journal is acted on only by a run allowed to replace
    // the member); its data swap is undone by `swap::commit`.
    clean_stale_staging(&cx, &mut report)?;
    let plan = pki_plan(&cx.m, &cx.pki_dir, cx.root())?;
    finish_completed_installs(&cx, &mut report, &plan)?;
    let why_not = match already_installed(&cx, &mut report, &plan) {
        Ok(()) => return Ok(report),
        Err(w) => w,
    };
    if cx.m.is_join() {
        remove_vacant_member(&cx, &mut report)?;
    }
    let checked = check_target(&cx, why_not)?;
    undo_interrupted_pki(&cx, &mut report)?;
    check_room(&cx.m, &cx.data_dir, &cx.pki_dir)?;
    let pki = PkiStaging::create(&cx)?;
    let staged = stage(&cx, &pki, checked)?;
    report.checks_passed = true;
    let committed = swap_data_dir(staged, &pki, &mut report)?;
    report.pki_files = match place_pki(&cx, &pki.dir) {
        Ok(placed) => placed,
        Err(e) => {
            committed.rollback();
            pki.cleanup();
            return Err(e);
        }
    };
    report.data_moved_aside = committed
        .backups
        .iter()
        .map(|b| b.display().to_string())
        .collect();
    commit_point(&cx, &pki, committed)?;
    if cx.m.is_join() {
        empty_data_dir(&cx)?;
    }
    Ok(report)
}

/// Whether `member` is absent or holds nothing but directories (at most a
/// few): no member etcd would start from, as a join install leaves it when
/// killed after its commit point.
fn vacant(member: &Path) -> bool {
    match fs::symlink_metadata(member) {
        Err(e) => return e.kind() == io::ErrorKind::NotFound,
        Ok(m) if !m.is_dir() => return false,
        Ok(_) => {}
    }
    let mut dirs = vec![member.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = dirs.pop() {
        let Ok(rd) = fs::read_dir(&d) else {
            return false;
        };
        for e in rd {
            let Ok(e) = e else { return false };
            seen += 1;
            if seen > 16 || !e.file_type().is_ok_and(|t| t.is_dir()) {
                return false;
            }
            dirs.push(e.path());
        }
    }
    true
}

/// Which member `member` holds, for a message: its IDs from its WAL, or
/// why they could not be read.
fn held(member: &Path) -> String {
    match held_member(member) {
        Ok(h) => h.to_string(),
        Err(e) => format!("its ID could not be read: {e}"),
    }
}

/// A join archive's data dir holding a member is refused without `force`,
/// naming the member. Nothing is written.
fn check_join_vacancy(cx: &Ctx) -> Result<(), InstallError> {
    let member = cx.data_dir.join("member");
    if cx.m.is_join() && !cx.opts.force && !vacant(&member) {
        return Err(InstallError::HoldsMember {
            data_dir: cx.data_dir.clone(),
            held: held(&member),
        });
    }
    Ok(())
}

/// The directories of a vacant member tree, outermost first.
fn vacant_dirs(member: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![member.to_path_buf()];
    while let Some(d) = todo.pop() {
        if let Ok(rd) = fs::read_dir(&d) {
            todo.extend(rd.flatten().map(|e| e.path()));
        }
        out.push(d);
    }
    out
}

/// Removes a vacant member tree (directories only, deepest first) and
/// syncs the data dir; `Ok(false)` when there is none.
fn remove_vacant(data_dir: &Path) -> Result<bool, IoError> {
    let member = data_dir.join("member");
    if fs::symlink_metadata(&member).is_err() || !vacant(&member) {
        return Ok(false);
    }
    for d in vacant_dirs(&member).iter().rev() {
        fs::remove_dir(d).map_err(IoError::at(d))?;
    }
    durable::sync_path(data_dir)?;
    Ok(true)
}

/// Before a join install's swap: an empty member tree left in the data dir
/// (by a join install killed after its commit point) is removed, and said.
/// Not while a swap journal is there: the tree may be what that journal
/// moved, which the swap undoes (with `force`) or refuses to touch.
fn remove_vacant_member(cx: &Ctx, report: &mut Report) -> Result<(), InstallError> {
    if !settled(&cx.data_dir, ".etcdsnap-swap-") {
        return Ok(());
    }
    if remove_vacant(&cx.data_dir)? {
        report.cleaned.push(format!(
            "{}: an empty member dir (directories only) was removed",
            cx.data_dir.join("member").display()
        ));
    }
    Ok(())
}

/// After a join install's commit point: the empty member tree the swap put
/// in place goes, leaving the data dir empty, 0700 (owned as asked): etcd
/// creates the member when it joins.
fn empty_data_dir(cx: &Ctx) -> Result<(), InstallError> {
    remove_vacant(&cx.data_dir)?;
    durable::set_mode(&cx.data_dir, 0o700)?;
    Ok(())
}

/// Holds the manifest against where it goes and against this node (its
/// IDs and flags, the member's URLs or `--as-member`, every PKI destination
/// inside the PKI dir), and starts the report with the PKI plan. Nothing is
/// written.
fn check_member(
    cx: &Ctx,
    sha256: String,
    encrypted: bool,
) -> Result<(Report, PkiPlan), InstallError> {
    let m = &cx.m;
    let flags = flags_for(cx.archive, m, &cx.data_dir, &cx.pki_dir)?;
    let (node, warnings) = node_check(m, cx.opts, cx.root())?;
    let plan = pki_plan(m, &cx.pki_dir, cx.root())?;
    let report = Report {
        archive: cx.archive.display().to_string(),
        dry_run: cx.opts.dry_run,
        member: m.member.name.clone(),
        member_id: m.member.id.clone(),
        cluster_id: m.cluster_id.clone(),
        revision: m.revision(),
        join: m.join.clone(),
        sha256,
        encrypted,
        checks_passed: false,
        data_dir: cx.data_dir.display().to_string(),
        pki_dir: cx.pki_dir.display().to_string(),
        data_moved_aside: Vec::new(),
        refusal: None,
        pki_files: Vec::new(),
        flags,
        cleaned: Vec::new(),
        vouched_by: if cx.vouch.by.starts_with("SHA256SUMS") {
            "SHA256SUMS".into()
        } else {
            "--sha256".into()
        },
        node,
        already_installed: false,
        warnings,
    };
    Ok((report, plan))
}

/// The report's lines for planned PKI placements; with `aside`, a file
/// that is there is said to be moved aside.
fn planned(plan: &[(FileEntry, PathBuf, bool)], aside: bool) -> Vec<Placed> {
    plan.iter()
        .map(|(f, dest, exists)| Placed {
            path: f.path.clone(),
            dest: dest.display().to_string(),
            moved_aside: (aside && *exists && !(f.kind == Kind::Dir && dest.is_dir()))
                .then(|| format!("{}.etcdsnap-bak-<UTC time>", dest.display())),
        })
        .collect()
}

/// Whether `dir` holds no name starting with `prefix` (no journal a killed
/// run left); a directory that cannot be read holds none.
fn settled(dir: &Path, prefix: &str) -> bool {
    fs::read_dir(dir).map_or(true, |rd| {
        !rd.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
    })
}

/// The same archive installed before and nothing changed since: `Ok`, the
/// report saying so, and nothing is to be written. Judged only on a
/// settled target: a journal left by a killed run means what is in place
/// may yet be undone (a real run cleans first). Otherwise `Err(why not)`
/// when a member is there, `Err(None)` when none is. Nothing is written.
fn already_installed(
    cx: &Ctx,
    report: &mut Report,
    plan: &[(FileEntry, PathBuf, bool)],
) -> Result<(), Option<String>> {
    let member = cx.data_dir.join("member");
    if cx.m.is_join() {
        if !vacant(&member) {
            return Err(Some(format!("it holds a member dir ({})", held(&member))));
        }
        if !cx.data_dir.is_dir() {
            return Err(None);
        }
    } else if fs::symlink_metadata(&member).is_err() {
        return Err(None);
    }
    if !settled(&cx.data_dir, ".etcdsnap-swap-") || !settled(&cx.journal_dir, PKI_JOURNAL) {
        return Err(Some(format!(
            "an interrupted install's journal is there ({})",
            cx.journal_dir
                .join(format!("{PKI_JOURNAL}<pid>.journal"))
                .display()
        )));
    }
    let diff = installed_difference(&cx.m, &cx.data_dir, plan, cx.owner);
    if diff.is_none() {
        report.already_installed = true;
        report.pki_files = planned(plan, false);
        // Its entries were checked when it was installed, and its bytes
        // are the vouched ones.
        report.checks_passed = true;
    }
    match diff {
        None => Ok(()),
        Some(d) => Err(Some(d)),
    }
}

/// `--dry-run`: unless already installed, the archive is read in full and
/// every entry checked (inflated into nothing), then the target's own
/// checks run; a refusal is reported, not returned. Nothing is written.
fn dry_run(cx: &Ctx, mut report: Report, plan: &PkiPlan) -> Result<Report, InstallError> {
    let why_not = match already_installed(cx, &mut report, plan) {
        Ok(()) => return Ok(report),
        Err(w) => w,
    };
    let opened = open_and_check(cx.archive, &cx.opts.key, &mut super::archive::Discard)?;
    cx.vouch.hold(cx.archive, &opened.sha256)?;
    report.checks_passed = true;
    // A join archive: a member in the way is refused (named) without
    // --force; an empty member tree is removed before the swap, so the
    // swap's own check does not count it.
    let member = cx.data_dir.join("member");
    let vacant_join = cx.m.is_join() && vacant(&member);
    let swap_checked = swap::check(&cx.target, cx.opts.force);
    if let Err(e) = check_join_vacancy(cx) {
        report.refusal = Some(e.to_string());
    } else if let Err(e) = swap_checked
        && !(vacant_join && matches!(e, SwapError::NotEmpty(_)))
    {
        report.refusal = Some(match (&e, why_not) {
            (SwapError::NotEmpty(_), Some(w)) => {
                format!("{e} (it is not this archive's install as it was: {w})")
            }
            _ => e.to_string(),
        });
    } else if let Err(e) = check_room(&cx.m, &cx.data_dir, &cx.pki_dir) {
        report.refusal = Some(e.to_string());
    } else if !vacant_join && member.exists() {
        report.data_moved_aside = vec![format!(
            "{} (moved aside to member.etcdsnap-bak-<UTC time>)",
            cx.data_dir.join("member").display()
        )];
    }
    report.pki_files = planned(plan, true);
    Ok(report)
}

/// Removes (and reports) the data and PKI staging trees of runs that are
/// gone, where no journal names them. No journal is acted on.
fn clean_stale_staging(cx: &Ctx, report: &mut Report) -> Result<(), InstallError> {
    report.cleaned.extend(swap::clean_stale(&cx.target)?);
    report
        .cleaned
        .extend(swap::clean_stale_prefixed(&cx.pki_dir, PKI_STAGING)?);
    Ok(())
}

/// A completed install's leftover PKI journal is finished (removed, its
/// files kept) only while what is installed is still exactly the
/// archive's; otherwise the run stops, changing nothing, and says how to
/// settle it.
fn finish_completed_installs(
    cx: &Ctx,
    report: &mut Report,
    plan: &[(FileEntry, PathBuf, bool)],
) -> Result<(), InstallError> {
    for journal in committed_pki_journals(&cx.journal_dir, &cx.data_dir) {
        if fs::symlink_metadata(cx.data_dir.join("member")).is_ok()
            && let Some(why) = installed_difference(&cx.m, &cx.data_dir, plan, cx.owner)
        {
            return Err(InstallError::CompletedThenChanged { journal, why });
        }
        fs::remove_file(&journal).map_err(IoError::at(&journal))?;
        durable::sync_path(&cx.journal_dir)?;
        report.cleaned.push(format!(
            "the interrupted install recorded in {} had completed (its data swap was final): its PKI files stay",
            journal.display()
        ));
    }
    Ok(())
}

/// The data swap's checks (`swap::check`: an existing member needs
/// `force`, no process holds it, an interrupted run's journal can be acted
/// on). A member refused for lacking `force` is said not to be this
/// archive's install, and why. Nothing is written.
fn check_target(cx: &Ctx, why_not: Option<String>) -> Result<swap::Checked, InstallError> {
    match swap::check(&cx.target, cx.opts.force) {
        Ok(c) => Ok(c),
        Err(e @ SwapError::NotEmpty(_)) if why_not.is_some() => Err(InstallError::NotAsInstalled {
            err: e,
            why: why_not.unwrap_or_default(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Once this run's checks passed: an interrupted run's PKI renames are
/// undone (old files back; its data swap is undone by `swap::commit`), and
/// the PKI staging of runs that are gone is removed again.
fn undo_interrupted_pki(cx: &Ctx, report: &mut Report) -> Result<(), InstallError> {
    report
        .cleaned
        .extend(swap::undo_stale_journals(&cx.journal_dir, PKI_JOURNAL)?);
    report
        .cleaned
        .extend(swap::clean_stale_prefixed(&cx.pki_dir, PKI_STAGING)?);
    Ok(())
}

/// This run's PKI staging dir, and the missing parents made for it and
/// for the data dir: what `cleanup` removes when the install fails.
struct PkiStaging {
    dir: PathBuf,
    created: Vec<PathBuf>,
}

impl PkiStaging {
    /// Makes the missing parents as a system has them (0755; the data dir
    /// itself is made 0700 by the swap) and the PKI staging dir (0700). On
    /// failure, what it made is removed.
    fn create(cx: &Ctx) -> Result<PkiStaging, InstallError> {
        let mut created = make_parents(&cx.data_dir, false)?;
        match make_parents(&cx.pki_dir, true) {
            Ok(made) => created.extend(made),
            Err(e) => {
                swap::remove_created_dirs(&created);
                return Err(e.into());
            }
        }
        let pki = PkiStaging {
            dir: cx
                .pki_dir
                .join(format!("{PKI_STAGING}{}", std::process::id())),
            created,
        };
        if let Err(e) = durable::mkdir_0700(&pki.dir) {
            pki.cleanup();
            return Err(e.into());
        }
        Ok(pki)
    }

    /// Removes the PKI staging dir and the parents made for it.
    fn cleanup(&self) {
        let _ = fs::remove_dir_all(&self.dir);
        swap::remove_created_dirs(&self.created);
    }
}

/// Streams the archive a second time into the staging trees
/// (`write_staging`), then `swap::stage` fsyncs the data's. On any failure
/// every staging tree (and parent made for it) is removed: the target is
/// as it was.
fn stage(cx: &Ctx, pki: &PkiStaging, checked: swap::Checked) -> Result<swap::Staged, InstallError> {
    let mut outcome: Option<Result<(), InstallError>> = None;
    let staged = swap::stage(checked, None, |dirs| {
        let r = write_staging(cx, dirs, &pki.dir);
        let failed = r.is_err();
        outcome = Some(r);
        if failed {
            return Err("the archive failed its checks".into());
        }
        Ok(())
    });
    match (staged, outcome) {
        (Ok(s), Some(Ok(()))) => Ok(s),
        (_, Some(Err(e))) => {
            pki.cleanup();
            Err(e)
        }
        (Err(e), _) => {
            pki.cleanup();
            Err(e.into())
        }
        (Ok(_), None) => unreachable!("stage runs the writer"),
    }
}

/// Writes the archive's entries into the staging trees, each checked as it
/// streams and never more bytes than the manifest declares (`Staging`);
/// then holds its sha256 and manifest against the first read, sets the
/// owner, and fsyncs the PKI staging and the PKI dir.
fn write_staging(cx: &Ctx, dirs: &StageDirs, pki_staging: &Path) -> Result<(), InstallError> {
    let mut sink = Staging {
        dirs: Some(dirs),
        pki: Some(pki_staging),
        expected: Some(&cx.m),
        budget: 0,
    };
    let opened = open_and_check(cx.archive, &cx.opts.key, &mut sink)?;
    cx.vouch.hold(cx.archive, &opened.sha256)?;
    if opened.manifest != cx.m {
        return Err(InstallError::Inconsistent {
            path: cx.archive.to_path_buf(),
            why: "changed between its two reads".into(),
        });
    }
    let owner = cx.owner;
    durable::chown_tree(&dirs.member, owner.0, owner.1)?;
    durable::chown_tree(pki_staging, owner.0, owner.1)?;
    #[cfg(unix)]
    std::os::unix::fs::chown(&cx.data_dir, Some(owner.0), Some(owner.1))
        .map_err(IoError::at(&cx.data_dir))?;
    durable::sync_tree(pki_staging)?;
    durable::sync_path(&cx.pki_dir)?;
    Ok(())
}

/// Swaps the data dir in (`swap::commit`: a running etcd is looked for
/// again, an interrupted run's swap undone, the journal written, the old
/// member moved aside). Undoable until `commit_point`; on failure the PKI
/// staging is removed too.
fn swap_data_dir(
    staged: swap::Staged,
    pki: &PkiStaging,
    report: &mut Report,
) -> Result<swap::Committed, InstallError> {
    match swap::commit(staged) {
        Ok(c) => {
            report.cleaned.extend(c.undone.iter().cloned());
            Ok(c)
        }
        Err(e) => {
            pki.cleanup();
            Err(e.into())
        }
    }
}

/// The PKI renames, planned before any is done.
struct PkiMoves {
    /// (from, to) in order: an old file aside, then a staged one in.
    renames: Vec<(PathBuf, PathBuf)>,
    /// The bundle's directories that are not there yet.
    mkdirs: Vec<PathBuf>,
    /// What the report says was placed.
    placed: Vec<Placed>,
}

/// Plans the PKI renames: each existing file to
/// `<file>.etcdsnap-bak-<UTC time>` (`-2`, `-3`… if taken), each staged
/// file into place. Planned again, not reused from the checks: the
/// cleaning may have put old files back. Nothing is written.
fn plan_pki_moves(cx: &Ctx, pki_staging: &Path) -> Result<PkiMoves, InstallError> {
    let stamp = durable::utc_stamp();
    let mut moves = PkiMoves {
        renames: Vec::new(),
        mkdirs: Vec::new(),
        placed: Vec::new(),
    };
    for (f, dest, exists) in pki_plan(&cx.m, &cx.pki_dir, cx.root())? {
        let rel = f.path.strip_prefix("pki/").unwrap_or(&f.path).to_string();
        let is_dir = f.kind == Kind::Dir;
        let mut aside = None;
        if exists && !(is_dir && dest.is_dir()) {
            let bak = backup_name(&dest, &stamp);
            moves.renames.push((dest.clone(), bak.clone()));
            aside = Some(bak.display().to_string());
        }
        if is_dir {
            if !dest.is_dir() {
                moves.mkdirs.push(dest.clone());
            }
        } else {
            moves.renames.push((pki_staging.join(&rel), dest.clone()));
        }
        moves.placed.push(Placed {
            path: f.path.clone(),
            dest: dest.display().to_string(),
            moved_aside: aside,
        });
    }
    Ok(moves)
}

/// The PKI files: old ones aside, new ones in — planned and journaled
/// first, so a failure here puts every old file back (the caller then
/// undoes the data swap), and a kill is undone by the next run, which also
/// undoes the data swap.
fn place_pki(cx: &Ctx, pki_staging: &Path) -> Result<Vec<Placed>, InstallError> {
    let moves = plan_pki_moves(cx, pki_staging)?;
    let journal = cx.pki_journal();
    let mut done: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut made_dirs: Vec<PathBuf> = Vec::new();
    if let Err(e) = journal_and_rename(cx, &moves, &journal, &mut done, &mut made_dirs) {
        for (from, to) in done.iter().rev() {
            let _ = fs::rename(to, from);
        }
        for d in made_dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
        let _ = fs::remove_file(&journal);
        return Err(e);
    }
    Ok(moves.placed)
}

/// Writes the PKI journal (fsynced, and its directory), then does the
/// renames in plan order, each directory made once what stood in its place
/// (if anything) is aside, then fsyncs every directory changed. Written
/// while the data swap's journal (same pid) exists: while it exists the
/// PKI renames are undone with the data swap; once it is gone (the commit
/// point) they are final (`committed_pki_journals`). Each rename done and
/// directory made is recorded in `done` and `made_dirs`, for the caller
/// to undo on failure.
fn journal_and_rename(
    cx: &Ctx,
    moves: &PkiMoves,
    journal: &Path,
    done: &mut Vec<(PathBuf, PathBuf)>,
    made_dirs: &mut Vec<PathBuf>,
) -> Result<(), InstallError> {
    swap::write_rename_journal(journal, &moves.renames)?;
    durable::sync_path(&cx.journal_dir)?;
    for (from, to) in &moves.renames {
        if let Some(d) = moves
            .mkdirs
            .iter()
            .find(|d| to.starts_with(d) && !d.exists())
        {
            mkdir_owned(d, cx.owner)?;
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
    for d in &moves.mkdirs {
        if !d.exists() {
            mkdir_owned(d, cx.owner)?;
            made_dirs.push(d.clone());
        }
    }
    for d in made_dirs.iter().chain(std::iter::once(&cx.pki_dir)) {
        durable::sync_path(d)?;
    }
    for (_, to) in done.iter() {
        durable::sync_path(durable::parent_of(to))?;
    }
    Ok(())
}

/// Makes the PKI directory `d` (0700) owned by `owner`.
fn mkdir_owned(d: &Path, owner: (u32, u32)) -> Result<(), InstallError> {
    durable::mkdir_0700(d)?;
    #[cfg(unix)]
    std::os::unix::fs::chown(d, Some(owner.0), Some(owner.1)).map_err(IoError::at(d))?;
    Ok(())
}

/// The commit point: the data swap's journal goes first (`finish`); a kill
/// after it leaves a PKI journal the next run recognises as final. Then
/// this run's PKI journal and staging dir go (a failure there is harmless).
fn commit_point(
    cx: &Ctx,
    pki: &PkiStaging,
    committed: swap::Committed,
) -> Result<(), InstallError> {
    committed.finish()?;
    let _ = fs::remove_file(cx.pki_journal());
    let _ = fs::remove_dir_all(&pki.dir);
    let _ = durable::sync_path(&cx.journal_dir);
    let _ = durable::sync_path(&cx.pki_dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{resolve_in_root, url_host};
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap().join("r");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        symlink("/a", root.join("abs")).unwrap();
        symlink("../../../../..", root.join("a/up")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("/nowhere", root.join("dangling")).unwrap();
        let r = |p: &str, follow: bool| resolve_in_root(&root, std::path::Path::new(p), follow);
        assert_eq!(r("/abs/b/c", true).unwrap(), root.join("a/b/c"));
        assert_eq!(r("/a/up/etc", true).unwrap(), root.join("etc"));
        assert_eq!(r("/../../x", true).unwrap(), root.join("x"));
        assert_eq!(r("/abs", false).unwrap(), root.join("abs"));
        assert!(
            r("/loop1/x", true)
                .unwrap_err()
                .to_string()
                .contains("symlinks")
        );
        assert!(
            r("/dangling", true)
                .unwrap_err()
                .to_string()
                .contains("nothing")
        );
        assert_eq!(r("/dangling", false).unwrap(), root.join("dangling"));
        std::fs::write(root.join("file"), b"").unwrap();
        assert!(
            r("/file/x", true)
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
    }

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://10.0.0.1:2380").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            url_host("https://[fd00::2]:2379").as_deref(),
            Some("fd00::2")
        );
        assert_eq!(
            url_host("http://Node1.Example.com").as_deref(),
            Some("node1.example.com")
        );
        assert_eq!(url_host("unix://u@h:1/p").as_deref(), Some("h"));
        assert_eq!(url_host("https://:2379"), None);
    }
}
