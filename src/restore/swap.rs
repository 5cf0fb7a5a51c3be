//! The write path every command that writes a member's data must take
//! (`restore` today; `bundle`/`install` later): stage the new files beside
//! the old ones, then swap them in, so that a failure or a kill at any moment
//! never loses the old data and never leaves half a member.
//!
//! Invariants:
//! - The unit replaced is `<data-dir>/member` (and the WAL dir, when one is
//!   given) — never the data dir itself. A data dir that is a mount point or a
//!   symlink stays what it is (the link is followed, the mount kept); every
//!   other file in it (a snapshot kept there, `lost+found`) stays untouched.
//! - New trees are staged on the same file system as what they replace:
//!   `<data-dir>/.member.etcdsnap-staging-<pid>` and, for a WAL dir `W`,
//!   `<parent of W>/.<W>.etcdsnap-staging-<pid>`; chowned, then every file
//!   and directory fsynced, and the staging parents fsynced, before any swap.
//! - Old contents are renamed aside to `member.etcdsnap-bak-<UTC time>`
//!   (`<W>.etcdsnap-bak-<UTC time>`), never deleted.
//! - Member dir and WAL dir change together: before the first rename the
//!   planned renames are written to a journal, `<data-dir>/.etcdsnap-swap-<pid>.journal`
//!   (fsynced). A failure undoes the renames done so far; a kill leaves the
//!   journal, and the next run undoes them (`clean_stale`). The journal is
//!   removed only when the caller calls `Committed::finish`, so a caller
//!   writing several members keeps every member undoable until all are in.
//! - After any failure the old state is back in place and the staging trees
//!   are gone. Staging, temp files and journals left by a killed run (of our
//!   own names only) are cleaned by the next run, which says what it did.
//! - A non-empty `member` (or WAL dir) is replaced only when the caller
//!   allows it (`--force`); an empty data dir or empty mount point needs no
//!   permission, as with etcdutl. A WAL dir that is itself a mount point
//!   cannot be renamed and is refused before anything is written.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use super::durable::{self, IoError};

/// Where one member's data goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(
        "data dir {} is not empty: it holds a member dir; use --force to move it aside",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error("wal dir {} is not empty; use --force to move it aside", .0.display())]
    WalNotEmpty(PathBuf),
    #[error("{}: not a directory", .0.display())]
    NotDir(PathBuf),
    #[error("{}: a symlink to nothing", .0.display())]
    Dangling(PathBuf),
    #[error(
        "wal dir {} is a mount point, which cannot be swapped; give a directory inside the volume (e.g. {}/wal)",
        .0.display(), .0.display()
    )]
    WalMountPoint(PathBuf),
    #[error("writing the staged files: {0}")]
    Write(Box<dyn std::error::Error + Send + Sync>),
}

/// A directory `parent/name` that gets replaced by a staged sibling.
#[derive(Debug, Clone)]
struct Unit {
    parent: PathBuf,
    name: OsString,
}

impl Unit {
    fn path(&self) -> PathBuf {
        self.parent.join(&self.name)
    }
    fn staging(&self) -> PathBuf {
        self.parent
            .join(staging_name(&self.name, std::process::id()))
    }
    /// `<name>.etcdsnap-bak-<stamp>`, with `-2`, `-3`… if taken.
    fn backup(&self, stamp: &str) -> PathBuf {
        let base = format!("{}.etcdsnap-bak-{stamp}", self.name.to_string_lossy());
        let mut p = self.parent.join(&base);
        let mut n = 2;
        while fs::symlink_metadata(&p).is_ok() {
            p = self.parent.join(format!("{base}-{n}"));
            n += 1;
        }
        p
    }
}

fn staging_name(name: &OsStr, pid: u32) -> String {
    format!(".{}.etcdsnap-staging-{pid}", name.to_string_lossy())
}

fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join(format!(".etcdsnap-swap-{}.journal", std::process::id()))
}

/// A target checked for writing; nothing has been written yet.
#[derive(Debug)]
pub struct Checked {
    data_dir: PathBuf,
    member: Unit,
    wal: Option<Unit>,
}

impl Checked {
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Checks a target before anything is written: the data dir is a directory
/// (or a link to one, or absent), `member` and the WAL dir are empty unless
/// `force`, the WAL dir is no mount point.
pub fn check(target: &Target, force: bool) -> Result<Checked, SwapError> {
    let data_dir = std::path::absolute(&target.data_dir).map_err(IoError::at(&target.data_dir))?;
    match fs::metadata(&data_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(SwapError::NotDir(data_dir)),
        // Absent: created when staging. A link to nothing is refused.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if exists(&data_dir) {
                return Err(SwapError::Dangling(data_dir));
            }
        }
        Err(e) => return Err(IoError::at(&data_dir)(e).into()),
    }
    let member = Unit {
        parent: data_dir.clone(),
        name: "member".into(),
    };
    let mp = member.path();
    if !force && exists(&mp) && !durable::is_empty_dir(&mp) {
        return Err(SwapError::NotEmpty(data_dir));
    }
    let wal = match &target.wal_dir {
        None => None,
        Some(w) => {
            let mut w = std::path::absolute(w).map_err(IoError::at(w))?;
            if fs::symlink_metadata(&w).is_ok_and(|m| m.file_type().is_symlink()) {
                // Keep the link: swap its target.
                w = fs::canonicalize(&w).map_err(|_| SwapError::Dangling(w.clone()))?;
            }
            match fs::metadata(&w) {
                Ok(m) if !m.is_dir() => return Err(SwapError::NotDir(w)),
                Ok(_) => {
                    if durable::is_mount_point(&w)? {
                        return Err(SwapError::WalMountPoint(w));
                    }
                    if !force && !durable::is_empty_dir(&w) {
                        return Err(SwapError::WalNotEmpty(w));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(IoError::at(&w)(e).into()),
            }
            let name = w
                .file_name()
                .map(OsStr::to_os_string)
                .ok_or_else(|| SwapError::NotDir(w.clone()))?;
            Some(Unit {
                parent: durable::parent_of(&w).to_path_buf(),
                name,
            })
        }
    };
    Ok(Checked {
        data_dir,
        member,
        wal,
    })
}

/// Where the writer puts the new files: the staged member dir (holding
/// `snap/`) and the staged WAL dir (`<member>/wal` without `--wal-dir`).
pub struct StageDirs {
    pub member: PathBuf,
    pub wal: PathBuf,
}

/// New trees staged, chowned and fsynced; nothing swapped yet.
#[derive(Debug)]
pub struct Staged {
    checked: Checked,
    /// Directories created for the target (deepest last), removed on failure.
    created: Vec<PathBuf>,
}

/// Creates `p` and its missing ancestors (0700), returning those created.
fn create_dirs(p: &Path) -> Result<Vec<PathBuf>, IoError> {
    let mut missing = Vec::new();
    let mut cur = Some(p);
    while let Some(c) = cur {
        if c.as_os_str().is_empty() || exists(c) {
            break;
        }
        missing.push(c.to_path_buf());
        cur = c.parent();
    }
    missing.reverse();
    let mut created = Vec::new();
    for d in missing {
        match durable::mkdir_0700(&d) {
            Ok(()) => created.push(d),
            // Made in between by another writer (the members of one restore
            // are staged by parallel threads under one --out-dir): there, and
            // not ours to remove.
            Err(e) if e.err.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => {
                remove_created(&created);
                return Err(e);
            }
        }
    }
    Ok(created)
}

fn remove_created(created: &[PathBuf]) {
    for d in created.iter().rev() {
        let _ = fs::remove_dir(d);
    }
}

/// Stages the new trees: creates the data dir if needed, the staging dirs,
/// lets `write` fill them, chowns (to `owner`), then fsyncs every file and
/// directory and the staging parents. On failure, removes what it made.
pub fn stage<F>(checked: Checked, owner: Option<(u32, u32)>, write: F) -> Result<Staged, SwapError>
where
    F: FnOnce(&StageDirs) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
{
    let mut created = Vec::new();
    let mut made: Vec<PathBuf> = Vec::new();
    let r = (|| -> Result<(), SwapError> {
        created.extend(create_dirs(&checked.data_dir)?);
        if let Some(w) = &checked.wal {
            created.extend(create_dirs(&w.parent)?);
        }
        let member = checked.member.staging();
        let _ = fs::remove_dir_all(&member);
        durable::mkdir_0700(&member)?;
        made.push(member.clone());
        let wal = match &checked.wal {
            Some(w) => {
                let s = w.staging();
                let _ = fs::remove_dir_all(&s);
                durable::mkdir_0700(&s)?;
                made.push(s.clone());
                s
            }
            None => {
                let s = member.join("wal");
                durable::mkdir_0700(&s)?;
                s
            }
        };
        let dirs = StageDirs { member, wal };
        write(&dirs).map_err(SwapError::Write)?;
        // Ownership first, then every fsync.
        if let Some((uid, gid)) = owner {
            for p in &made {
                durable::chown_tree(p, uid, gid)?;
            }
            #[cfg(unix)]
            std::os::unix::fs::chown(&checked.data_dir, Some(uid), Some(gid))
                .map_err(IoError::at(&checked.data_dir))?;
        }
        for p in &made {
            durable::sync_tree(p)?;
        }
        durable::sync_path(&checked.data_dir)?;
        if let Some(w) = &checked.wal {
            durable::sync_path(&w.parent)?;
        }
        // Each directory created is recorded in its parent.
        for d in &created {
            durable::sync_path(durable::parent_of(d))?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => Ok(Staged { checked, created }),
        Err(e) => {
            for p in &made {
                let _ = fs::remove_dir_all(p);
            }
            remove_created(&created);
            Err(e)
        }
    }
}

impl Staged {
    /// Gives the staged trees up: they and the directories created for them
    /// are removed; the target is as it was.
    pub fn discard(self) {
        let c = &self.checked;
        let _ = fs::remove_dir_all(c.member.staging());
        if let Some(w) = &c.wal {
            let _ = fs::remove_dir_all(w.staging());
        }
        remove_created(&self.created);
    }
}

/// The swap done; undoable until `finish`.
#[derive(Debug)]
#[must_use = "call finish() once every member is in, or rollback()"]
pub struct Committed {
    staged: Staged,
    /// (from, to) renames done, in order.
    renames: Vec<(PathBuf, PathBuf)>,
    journal: PathBuf,
    /// Where the old member (and WAL) went, if there was one.
    pub backups: Vec<PathBuf>,
}

/// Swaps the staged trees in: WAL dir, then member dir, each old one renamed
/// aside first. On failure everything done is undone and the staging removed.
pub fn commit(staged: Staged) -> Result<Committed, SwapError> {
    let stamp = durable::utc_stamp();
    let c = &staged.checked;
    let mut plan: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut backups = Vec::new();
    for unit in c.wal.iter().chain(std::iter::once(&c.member)) {
        let path = unit.path();
        if exists(&path) {
            let bak = unit.backup(&stamp);
            backups.push(bak.clone());
            plan.push((path.clone(), bak));
        }
        plan.push((unit.staging(), path));
    }
    let journal = journal_path(&c.data_dir);
    let mut done: Vec<(PathBuf, PathBuf)> = Vec::new();
    let r = (|| -> Result<(), SwapError> {
        write_journal(&journal, &plan)?;
        durable::sync_path(&c.data_dir)?;
        for (from, to) in &plan {
            fs::rename(from, to).map_err(|err| {
                IoError::at(from)(std::io::Error::new(
                    err.kind(),
                    format!("cannot rename to {}: {err}", to.display()),
                ))
            })?;
            done.push((from.clone(), to.clone()));
        }
        sync_parents(c)?;
        Ok(())
    })();
    let committed = Committed {
        staged,
        renames: done,
        journal,
        backups,
    };
    match r {
        Ok(()) => Ok(committed),
        Err(e) => {
            committed.rollback();
            Err(e)
        }
    }
}

fn sync_parents(c: &Checked) -> Result<(), IoError> {
    durable::sync_path(&c.data_dir)?;
    if let Some(w) = &c.wal {
        durable::sync_path(&w.parent)?;
    }
    Ok(())
}

impl Committed {
    /// The swap is final: the journal goes.
    pub fn finish(self) -> Result<(), SwapError> {
        fs::remove_file(&self.journal).map_err(IoError::at(&self.journal))?;
        durable::sync_path(&self.staged.checked.data_dir)?;
        Ok(())
    }

    /// Puts the old state back: renames undone in reverse, the new trees (now
    /// under their staging names again) removed, created dirs removed.
    pub fn rollback(self) {
        undo(&self.renames);
        let c = &self.staged.checked;
        let _ = fs::remove_dir_all(c.member.staging());
        if let Some(w) = &c.wal {
            let _ = fs::remove_dir_all(w.staging());
        }
        let _ = fs::remove_file(&self.journal);
        let _ = sync_parents(c);
        remove_created(&self.staged.created);
    }
}

/// Undoes renames, newest first, where the move is still visible.
fn undo(renames: &[(PathBuf, PathBuf)]) {
    for (from, to) in renames.iter().rev() {
        if exists(to) && !exists(from) {
            let _ = fs::rename(to, from);
        }
    }
}

fn write_journal(p: &Path, plan: &[(PathBuf, PathBuf)]) -> Result<(), IoError> {
    use std::os::unix::ffi::OsStrExt;
    let mut bytes = Vec::new();
    for (from, to) in plan {
        bytes.extend_from_slice(from.as_os_str().as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(to.as_os_str().as_bytes());
        bytes.push(0);
    }
    let _ = fs::remove_file(p);
    let mut f = durable::create_0600(p)?;
    std::io::Write::write_all(&mut f, &bytes).map_err(IoError::at(p))?;
    f.sync_all().map_err(IoError::at(p))
}

fn read_journal(p: &Path) -> Option<Vec<(PathBuf, PathBuf)>> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = fs::read(p).ok()?;
    let parts: Vec<&[u8]> = bytes.split(|b| *b == 0).collect();
    let parts = &parts[..parts.len().saturating_sub(1)];
    Some(
        parts
            .chunks_exact(2)
            .map(|c| {
                (
                    PathBuf::from(OsStr::from_bytes(c[0])),
                    PathBuf::from(OsStr::from_bytes(c[1])),
                )
            })
            .collect(),
    )
}

/// The pid in a name of ours (`…-<pid>` or `…-<pid>.journal`), when that
/// process is gone (or is this one, which has made nothing yet).
fn stale_pid(rest: &str) -> bool {
    let digits = rest.strip_suffix(".journal").unwrap_or(rest);
    let Ok(pid) = digits.parse::<u32>() else {
        return false;
    };
    if pid == std::process::id() {
        return true;
    }
    match fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => !comm.trim().starts_with("etcdsnap"),
        Err(_) => true,
    }
}

/// What `clean_stale` did, one line each.
pub type Cleaned = Vec<String>;

/// Cleans what a killed run left for `target`: interrupted swaps (journals)
/// are undone, then staging dirs and temp files of our own names are removed:
/// `<data-dir>/.member.etcdsnap-staging-<pid>`, `<data-dir>/.etcdsnap-swap-<pid>.journal`,
/// `.<W>.etcdsnap-staging-<pid>` beside the WAL dir, and the older naming
/// `.<data-dir name>.etcdsnap-tmp-<pid>` beside the data dir. Never touches a
/// live etcdsnap's files.
pub fn clean_stale(target: &Target) -> Result<Cleaned, SwapError> {
    let mut done = Vec::new();
    let data_dir = std::path::absolute(&target.data_dir).map_err(IoError::at(&target.data_dir))?;
    if fs::metadata(&data_dir).is_ok_and(|m| m.is_dir()) {
        for (p, rest) in ours(&data_dir, ".etcdsnap-swap-")? {
            if rest.ends_with(".journal") && stale_pid(&rest) {
                done.push(format!(
                    "undoing the interrupted swap recorded in {} (the old data goes back in place)",
                    p.display()
                ));
                if let Some(renames) = read_journal(&p) {
                    undo(&renames);
                    for (from, _) in &renames {
                        let staging = from
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().contains(".etcdsnap-staging-"));
                        if staging && exists(from) {
                            fs::remove_dir_all(from).map_err(IoError::at(from))?;
                            done.push(format!(
                                "removed stale staging {} (left by an interrupted run)",
                                from.display()
                            ));
                        }
                    }
                }
                fs::remove_file(&p).map_err(IoError::at(&p))?;
            }
        }
        remove_stale(&data_dir, ".member.etcdsnap-staging-", &mut done)?;
        durable::sync_path(&data_dir)?;
    }
    if let Some(name) = data_dir.file_name() {
        let parent = durable::parent_of(&data_dir);
        if parent.is_dir() {
            let prefix = format!(".{}.etcdsnap-tmp-", name.to_string_lossy());
            remove_stale(parent, &prefix, &mut done)?;
        }
    }
    if let Some(w) = &target.wal_dir {
        let w = std::path::absolute(w).map_err(IoError::at(w))?;
        let w = fs::canonicalize(&w).unwrap_or(w);
        if let Some(name) = w.file_name() {
            let parent = durable::parent_of(&w);
            if parent.is_dir() {
                let prefix = format!(".{}.etcdsnap-staging-", name.to_string_lossy());
                remove_stale(parent, &prefix, &mut done)?;
            }
        }
    }
    Ok(done)
}

/// Removes `dir`'s stale temp files `.<name>.etcdsnap-tmp-<pid>` (of
/// atomic writes such as the `.env` files).
pub fn clean_stale_temp_files(dir: &Path) -> Result<Cleaned, SwapError> {
    let mut done = Vec::new();
    if dir.is_dir() {
        for (p, rest) in ours(dir, "")? {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(name) = name else { continue };
            if name.starts_with('.')
                && let Some((_, pid)) = name.rsplit_once(".etcdsnap-tmp-")
                && stale_pid(pid)
                && fs::symlink_metadata(&p).is_ok_and(|m| m.is_file())
            {
                fs::remove_file(&p).map_err(IoError::at(&p))?;
                done.push(format!(
                    "removed {} (left by an interrupted run)",
                    p.display()
                ));
            }
            let _ = rest;
        }
    }
    Ok(done)
}

/// Entries of `dir` whose names start with `prefix`, with the rest of the name.
fn ours(dir: &Path, prefix: &str) -> Result<Vec<(PathBuf, String)>, IoError> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).map_err(IoError::at(dir))? {
        let e = e.map_err(IoError::at(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix(prefix) {
            v.push((e.path(), rest.to_string()));
        }
    }
    Ok(v)
}

fn remove_stale(dir: &Path, prefix: &str, done: &mut Cleaned) -> Result<(), IoError> {
    for (p, rest) in ours(dir, prefix)? {
        if !stale_pid(&rest) {
            continue;
        }
        let meta = fs::symlink_metadata(&p).map_err(IoError::at(&p))?;
        if meta.is_dir() {
            fs::remove_dir_all(&p).map_err(IoError::at(&p))?;
        } else {
            fs::remove_file(&p).map_err(IoError::at(&p))?;
        }
        done.push(format!(
            "removed stale staging {} (left by an interrupted run)",
            p.display()
        ));
    }
    Ok(())
}

/// Creates `p` and its missing ancestors (0700), returning those created
/// (deepest last), for callers that stage beside other trees (install's PKI).
pub fn create_dirs_0700(p: &Path) -> Result<Vec<PathBuf>, IoError> {
    create_dirs(p)
}

/// Removes directories made by [`create_dirs_0700`] (deepest first) that are
/// empty.
pub fn remove_created_dirs(created: &[PathBuf]) {
    remove_created(created)
}

/// Removes `dir`'s entries named `<prefix><pid>` left by a run that is gone
/// (what [`clean_stale`] does for the data dir's staging, for other staging
/// names such as install's PKI staging).
pub fn clean_stale_prefixed(dir: &Path, prefix: &str) -> Result<Cleaned, SwapError> {
    let mut done = Vec::new();
    if dir.is_dir() {
        remove_stale(dir, prefix, &mut done)?;
    }
    Ok(done)
}

/// Writes a journal of planned renames `(from, to)` at `p` (fsynced), as
/// `commit` does before its first rename, for callers swapping other files
/// (install's PKI files); [`undo_stale_journals`] undoes what a killed run
/// did.
pub fn write_rename_journal(p: &Path, plan: &[(PathBuf, PathBuf)]) -> Result<(), IoError> {
    write_journal(p, plan)
}

/// Undoes the renames recorded in `dir`'s journals `<prefix><pid>.journal`
/// left by runs that are gone (newest rename first, where the move is still
/// visible), then removes the journals.
pub fn undo_stale_journals(dir: &Path, prefix: &str) -> Result<Cleaned, SwapError> {
    let mut done = Vec::new();
    if !dir.is_dir() {
        return Ok(done);
    }
    for (p, rest) in ours(dir, prefix)? {
        if rest.ends_with(".journal") && stale_pid(&rest) {
            done.push(format!(
                "undoing the interrupted swap recorded in {} (the old files go back in place)",
                p.display()
            ));
            if let Some(renames) = read_journal(&p) {
                undo(&renames);
            }
            fs::remove_file(&p).map_err(IoError::at(&p))?;
            durable::sync_path(dir)?;
        }
    }
    Ok(done)
}
