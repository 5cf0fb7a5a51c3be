//! The write path every command that writes a member's data must take
//! (`restore` and `bundle install`; `bundle` lays out its members' trees
//! with [`StageDirs`]): stage the new files beside the old ones, then swap
//! them in, so that a failure or a kill at any moment never loses the old
//! data and never leaves half a member.
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
//!   planned renames are written to a journal in the directory they happen
//!   in (`<data-dir>/.etcdsnap-swap-<pid>.journal`, and for a WAL dir `W`
//!   `.<W>.etcdsnap-swap-<pid>.journal` beside it), written to a temporary
//!   name, fsynced and renamed into place. A journal names entries relative to
//!   its own directory and records the identity of every tree it moves (device
//!   and inode; for a staged tree, a fingerprint of every entry's inode, size
//!   and mtime), so it acts only inside the directory it lives in, wherever
//!   that directory has been moved, and only on the trees it moved.
//! - A failure undoes the renames done so far. A kill leaves the journal; it
//!   is removed only when the caller calls `Committed::finish`, so a caller
//!   writing several members keeps every member undoable until all are in.
//! - A journal left by a killed run is never acted on before the next run's
//!   own checks, and only by a run allowed to replace the member (`force`):
//!   [`check`] refuses without it, and [`commit`], once the new trees are
//!   staged, puts the old state back first. It is acted on only while what it
//!   describes is still what is on disk: when a tree it moved is gone or has
//!   changed since (etcd started on the new member), nothing is touched and
//!   the run is refused with what is where and how to settle it.
//! - A member dir or WAL dir whose files a running process holds locked
//!   (etcd's WAL locks, bbolt's lock on `snap/db`) is refused, with the PID,
//!   in [`check`] and again just before the swap.
//! - After any failure the old state is back in place and the staging trees
//!   are gone. Staging and temp files left by a killed run (of our own names
//!   only, never one a journal still names) are removed by the next run,
//!   which says what it did.
//! - A non-empty `member` (or WAL dir) is replaced only when the caller
//!   allows it (`--force`); an empty data dir or empty mount point needs no
//!   permission, as with etcdutl. A WAL dir that is itself a mount point
//!   cannot be renamed and is refused before anything is written.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use crate::durable::{self, IoError};

/// Where one member's data goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The member's data dir; its `member` subdirectory is what gets
    /// replaced, never the data dir itself.
    pub data_dir: PathBuf,
    /// A separate WAL dir (`--wal-dir`), replaced together with `member`;
    /// `None` keeps the WAL in `<data-dir>/member/wal`.
    pub wal_dir: Option<PathBuf>,
}

/// Why a member's data could not be staged or swapped in; after any of
/// these, the old state is in place.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// A file-system step failed at a path.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The data dir holds a non-empty `member` and replacing it was not
    /// allowed; the value is the data dir.
    #[error(
        "data dir {} is not empty: it holds a member dir; use --force to move it aside",
        .0.display()
    )]
    NotEmpty(PathBuf),
    /// The WAL dir is not empty and replacing it was not allowed; the value
    /// is the WAL dir.
    #[error("wal dir {} is not empty; use --force to move it aside", .0.display())]
    WalNotEmpty(PathBuf),
    /// The data dir or WAL dir exists but is not a directory (or the WAL
    /// dir has no final name); the value is that path.
    #[error("{}: not a directory", .0.display())]
    NotDir(PathBuf),
    /// The data dir or WAL dir is a symlink whose target does not exist;
    /// the value is the link.
    #[error("{}: a symlink to nothing", .0.display())]
    Dangling(PathBuf),
    /// The WAL dir is a mount point, which cannot be renamed aside; the
    /// value is the WAL dir.
    #[error(
        "wal dir {} is a mount point, which cannot be swapped; give a directory inside the volume (e.g. {}/wal)",
        .0.display(), .0.display()
    )]
    WalMountPoint(PathBuf),
    /// The caller's writer failed while filling the staged trees; the value
    /// is its error.
    #[error("writing the staged files: {0}")]
    Write(Box<dyn std::error::Error + Send + Sync>),
    /// A stop was requested (a signal) before the swap; nothing was
    /// swapped.
    #[error(transparent)]
    Stopped(crate::interrupt::Interrupted),
    /// A running process holds a file of the member dir or WAL dir locked;
    /// the value names the file and the processes.
    #[error("{0}: stop it before writing over this member")]
    InUse(crate::durable::Holder),
    /// Another live etcdsnap is staging or swapping into the same place.
    #[error(
        "{}: another etcdsnap (pid {pid}) is writing this target now; wait for it to finish",
        .journal.display()
    )]
    Busy {
        /// Its journal, or its staging dir when found by that.
        journal: PathBuf,
        /// Its process ID, from the file name.
        pid: u32,
    },
    /// A journal left by a killed run was found and replacing was not
    /// allowed, so it is not acted on.
    #[error(
        "{}: an interrupted run left this journal ({what}); rerun with --force to put the old state back and replace it, or settle it by hand: {settle}",
        .journal.display()
    )]
    InterruptedNeedsForce {
        /// The journal found.
        journal: PathBuf,
        /// What that run was doing, as the journal describes it.
        what: String,
        /// How to settle it by hand.
        settle: String,
    },
    /// A journal left by a killed run cannot be acted on safely (it cannot
    /// be read, its other half is missing, or what it moved has changed on
    /// disk since); nothing was changed.
    #[error(
        "{}: an interrupted run left this journal, and what it describes is no longer what is on disk: {why}; nothing was changed. {settle}",
        .journal.display()
    )]
    Interrupted {
        /// The journal found.
        journal: PathBuf,
        /// Why it cannot be acted on.
        why: String,
        /// What to do about it, as one or more sentences.
        settle: String,
    },
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

/// A target checked for writing; nothing has been written yet.
#[derive(Debug)]
pub struct Checked {
    data_dir: PathBuf,
    member: Unit,
    wal: Option<Unit>,
    /// Journals of an interrupted swap of this target, to be undone by
    /// `commit` before its own swap.
    pending: Vec<Journal>,
}

impl Checked {
    /// The target's data dir, made absolute.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What `commit` does first besides the run's own swap: one line per
    /// interrupted swap it undoes.
    pub fn notes(&self) -> Vec<String> {
        self.pending
            .iter()
            .map(|j| {
                format!(
                    "an interrupted run's swap ({}) is undone first: {}",
                    j.path.display(),
                    j.describe()
                )
            })
            .collect()
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
    if let Some(h) = durable::held_by_a_process(&mp) {
        return Err(SwapError::InUse(h));
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
                    if let Some(h) = durable::held_by_a_process(&w) {
                        return Err(SwapError::InUse(h));
                    }
                    if durable::is_mount_point(&w)? {
                        return Err(SwapError::WalMountPoint(w));
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
    let mut checked = Checked {
        data_dir,
        member,
        wal,
        pending: Vec::new(),
    };
    // Another etcdsnap staging into the same place now.
    for unit in checked.wal.iter().chain(std::iter::once(&checked.member)) {
        if unit.parent.is_dir() {
            let prefix = format!(".{}.etcdsnap-staging-", unit.name.to_string_lossy());
            for (p, rest) in ours(&unit.parent, &prefix)? {
                if let Ok(pid) = rest.parse::<u32>()
                    && !stale_pid(&rest)
                {
                    return Err(SwapError::Busy { journal: p, pid });
                }
            }
        }
    }
    checked.pending = interrupted(&checked)?;
    if let Some(j) = checked.pending.first()
        && !force
    {
        return Err(SwapError::InterruptedNeedsForce {
            journal: j.path.clone(),
            what: j.describe(),
            settle: j.settle(),
        });
    }
    if !force && exists(&mp) && !durable::is_empty_dir(&mp) {
        return Err(SwapError::NotEmpty(checked.data_dir));
    }
    if let Some(w) = &checked.wal {
        let wp = w.path();
        if !force && exists(&wp) && !durable::is_empty_dir(&wp) {
            return Err(SwapError::WalNotEmpty(wp));
        }
    }
    Ok(checked)
}

/// Where the writer puts the new files: the staged member dir (holding
/// `snap/`) and the staged WAL dir (`<member>/wal` without `--wal-dir`).
pub struct StageDirs {
    /// The staged member dir; becomes `<data-dir>/member` at the swap.
    pub member: PathBuf,
    /// The staged WAL dir: the staged `--wal-dir`, or `wal` inside
    /// [`StageDirs::member`] when there is none.
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
    /// This swap's journals (the WAL dir's first, then the data dir's).
    journals: Vec<PathBuf>,
    /// Where the old member (and WAL) went, if there was one.
    pub backups: Vec<PathBuf>,
    /// What was undone first (an interrupted run's swap), one line each.
    pub undone: Vec<String>,
}

/// Swaps the staged trees in: first checks again that no process holds the
/// member (or WAL) dir and undoes an interrupted run's swap (see [`check`]),
/// then writes this swap's journals and renames: WAL dir, then member dir,
/// each old one renamed aside first. On failure everything done is undone
/// and the staging removed.
pub fn commit(staged: Staged) -> Result<Committed, SwapError> {
    let before = {
        let c = &staged.checked;
        let busy = |u: &Unit| durable::held_by_a_process(&u.path());
        if let Some(sig) = crate::interrupt::requested() {
            Err(SwapError::Stopped(sig))
        } else {
            match busy(&c.member).or_else(|| c.wal.as_ref().and_then(busy)) {
                Some(h) => Err(SwapError::InUse(h)),
                None => undo_interrupted(&c.pending),
            }
        }
    };
    let undone = match before {
        Ok(u) => u,
        Err(e) => {
            staged.discard();
            return Err(e);
        }
    };
    let stamp = durable::utc_stamp();
    let c = &staged.checked;
    let units: Vec<&Unit> = c.wal.iter().chain(std::iter::once(&c.member)).collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{}-{nanos}", std::process::id());
    let note = match &c.wal {
        Some(w) => format!(
            "data dir {}, WAL dir {}",
            c.data_dir.display(),
            w.path().display()
        ),
        None => format!("data dir {}", c.data_dir.display()),
    };
    let mut plan: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut backups = Vec::new();
    let mut journals: Vec<Journal> = Vec::new();
    let mut done: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut written: Vec<PathBuf> = Vec::new();
    let r = (|| -> Result<(), SwapError> {
        for unit in &units {
            let mut entries = Vec::new();
            let path = unit.path();
            if let Ok(m) = fs::symlink_metadata(&path) {
                let bak = unit.backup(&stamp);
                entries.push(Entry::new(&unit.name, name_of(&bak), &m, None));
                backups.push(bak.clone());
                plan.push((path.clone(), bak));
            }
            let st = unit.staging();
            let m = fs::symlink_metadata(&st).map_err(IoError::at(&st))?;
            let print = fingerprint(&st)?;
            entries.push(Entry::new(name_of(&st), &unit.name, &m, Some(print)));
            plan.push((st, path));
            journals.push(Journal {
                path: unit_journal(unit, std::process::id()),
                dir: unit.parent.clone(),
                id: id.clone(),
                units: units.len(),
                note: note.clone(),
                entries,
            });
        }
        for j in &journals {
            j.write()?;
            written.push(j.path.clone());
        }
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
        journals: written,
        backups,
        undone,
    };
    match r {
        Ok(()) => Ok(committed),
        Err(e) => {
            committed.rollback();
            Err(e)
        }
    }
}

fn name_of(p: &Path) -> &OsStr {
    p.file_name().unwrap_or(p.as_os_str())
}

fn sync_parents(c: &Checked) -> Result<(), IoError> {
    durable::sync_path(&c.data_dir)?;
    if let Some(w) = &c.wal {
        durable::sync_path(&w.parent)?;
    }
    Ok(())
}

impl Committed {
    /// The swap is final: the journals go.
    pub fn finish(self) -> Result<(), SwapError> {
        for j in &self.journals {
            fs::remove_file(j).map_err(IoError::at(j))?;
            durable::sync_path(durable::parent_of(j))?;
        }
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
        for j in &self.journals {
            let _ = fs::remove_file(j);
        }
        let _ = sync_parents(c);
        remove_created(&self.staged.created);
    }
}

/// Undoes this process's own renames, newest first, where the move is still
/// visible.
fn undo(renames: &[(PathBuf, PathBuf)]) {
    for (from, to) in renames.iter().rev() {
        if exists(to) && !exists(from) {
            let _ = fs::rename(to, from);
        }
    }
}

// ---- journals ----

const JOURNAL_MAGIC: &str = "etcdsnap-swap-journal 2";

/// A unit's journal: `<data-dir>/.etcdsnap-swap-<pid>.journal` for the
/// member dir, `.<W>.etcdsnap-swap-<pid>.journal` beside a WAL dir `W`.
fn unit_journal(unit: &Unit, pid: u32) -> PathBuf {
    unit.parent
        .join(format!("{}{pid}.journal", journal_prefix(unit)))
}

fn journal_prefix(unit: &Unit) -> String {
    if unit.name == "member" {
        ".etcdsnap-swap-".to_string()
    } else {
        format!(".{}.etcdsnap-swap-", unit.name.to_string_lossy())
    }
}

/// One planned rename, names relative to the journal's directory, with the
/// identity of what it moves.
#[derive(Debug, Clone)]
struct Entry {
    from: PathBuf,
    to: PathBuf,
    dev: u64,
    ino: u64,
    /// For a tree this run made: [`fingerprint`] of it when the journal was
    /// written; it must be unchanged for the tree to be moved back.
    print: Option<String>,
}

impl Entry {
    fn new(from: &OsStr, to: &OsStr, m: &fs::Metadata, print: Option<String>) -> Entry {
        use std::os::unix::fs::MetadataExt;
        Entry {
            from: PathBuf::from(from),
            to: PathBuf::from(to),
            dev: m.dev(),
            ino: m.ino(),
            print,
        }
    }
}

/// A journal as read from (or written to) `path` in `dir`.
#[derive(Debug, Clone)]
struct Journal {
    path: PathBuf,
    dir: PathBuf,
    /// One id for the journals of one swap (member dir and WAL dir).
    id: String,
    /// How many journals that swap wrote.
    units: usize,
    /// What the run was writing (for messages only; never acted on).
    note: String,
    entries: Vec<Entry>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A relative path made only of names (no `..`, no root): a journal acts
/// only inside its own directory.
fn inside(p: &Path) -> bool {
    !p.as_os_str().is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

impl Journal {
    fn write(&self) -> Result<(), IoError> {
        use std::os::unix::ffi::OsStrExt;
        let mut t = format!(
            "{JOURNAL_MAGIC}\nid {}\nunits {}\nnote {}\n",
            self.id,
            self.units,
            hex(self.note.as_bytes())
        );
        for e in &self.entries {
            t.push_str(&format!(
                "rename {} {} {} {} {}\n",
                hex(e.from.as_os_str().as_bytes()),
                hex(e.to.as_os_str().as_bytes()),
                e.dev,
                e.ino,
                e.print.as_deref().unwrap_or("-")
            ));
        }
        // A temporary name, fsynced, then renamed: a kill never leaves half
        // a journal.
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let r = (|| {
            let mut f = durable::create_0600(&tmp)?;
            std::io::Write::write_all(&mut f, t.as_bytes()).map_err(IoError::at(&tmp))?;
            f.sync_all().map_err(IoError::at(&tmp))?;
            drop(f);
            fs::rename(&tmp, &self.path).map_err(IoError::at(&self.path))?;
            durable::sync_path(&self.dir)
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    fn read(path: &Path) -> Result<Journal, String> {
        use std::os::unix::ffi::OsStrExt;
        let dir = durable::parent_of(path).to_path_buf();
        let text = fs::read(path).map_err(|e| e.to_string())?;
        let text =
            String::from_utf8(text).map_err(|_| "not a journal of this version".to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some(JOURNAL_MAGIC) {
            return Err("not a journal of this version (an older etcdsnap wrote it?)".into());
        }
        let mut j = Journal {
            path: path.to_path_buf(),
            dir,
            id: String::new(),
            units: 1,
            note: String::new(),
            entries: Vec::new(),
        };
        let bad = |l: &str| format!("unreadable line {l:?}");
        for l in lines {
            let f: Vec<&str> = l.split(' ').collect();
            match f.as_slice() {
                ["id", id] => j.id = id.to_string(),
                ["units", n] => j.units = n.parse().map_err(|_| bad(l))?,
                ["note", n] => {
                    j.note = String::from_utf8_lossy(&unhex(n).ok_or_else(|| bad(l))?).into_owned()
                }
                ["rename", from, to, dev, ino, print] => {
                    let name = |h: &str| -> Result<PathBuf, String> {
                        let p = PathBuf::from(OsStr::from_bytes(&unhex(h).ok_or_else(|| bad(l))?));
                        if inside(&p) {
                            Ok(p)
                        } else {
                            Err(format!(
                                "{} is not inside the journal's directory",
                                p.display()
                            ))
                        }
                    };
                    j.entries.push(Entry {
                        from: name(from)?,
                        to: name(to)?,
                        dev: dev.parse().map_err(|_| bad(l))?,
                        ino: ino.parse().map_err(|_| bad(l))?,
                        print: (*print != "-").then(|| print.to_string()),
                    });
                }
                _ => return Err(bad(l)),
            }
        }
        if j.id.is_empty() {
            return Err("it has no id".into());
        }
        Ok(j)
    }

    /// "member → member.etcdsnap-bak-…, .member.etcdsnap-staging-12 → member (in DIR)".
    fn describe(&self) -> String {
        let r: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} → {}", e.from.display(), e.to.display()))
            .collect();
        format!(
            "renames {} in {} (the run was writing {})",
            r.join(", "),
            self.dir.display(),
            self.note
        )
    }

    /// How an operator settles a journal by hand.
    fn settle(&self) -> String {
        let staged: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.print.is_some())
            .map(|e| e.from.display().to_string())
            .collect();
        let aside: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.print.is_none())
            .map(|e| format!("{} was moved to {}", e.from.display(), e.to.display()))
            .collect();
        let mut s = format!(
            "to keep what is in {} now, remove {}",
            self.dir.display(),
            self.path.display()
        );
        if !staged.is_empty() {
            s.push_str(&format!(
                " (and {} if it is still there: the new tree that run staged)",
                staged.join(", ")
            ));
        }
        if !aside.is_empty() {
            s.push_str(&format!(
                "; the previous data is kept: {} (to go back to it, move the current one away, rename it back, then remove the journal)",
                aside.join(", ")
            ));
        }
        s
    }

    /// Where each entry stands now: `Ok(true)` done, `Ok(false)` not done,
    /// or why the journal no longer describes what is on disk.
    fn assess(&self) -> Result<Vec<bool>, String> {
        use std::os::unix::fs::MetadataExt;
        let id = |p: &Path| fs::symlink_metadata(p).ok().map(|m| (m.dev(), m.ino()));
        let mut v = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let (from, to) = (self.dir.join(&e.from), self.dir.join(&e.to));
            let want = Some((e.dev, e.ino));
            // A later rename of the same run may have put its tree where
            // this one's came from (the new member where the old one was).
            let refilled = self.entries[i + 1..]
                .iter()
                .any(|l| l.to == e.from && id(&self.dir.join(&l.to)) == Some((l.dev, l.ino)));
            if id(&from) == want {
                v.push(false);
            } else if id(&to) == want {
                if exists(&from) && !refilled {
                    return Err(format!(
                        "{} now holds a tree the interrupted run did not put there (made since: has etcd run here?), so {} cannot go back",
                        from.display(),
                        to.display()
                    ));
                }
                if let Some(p) = &e.print
                    && fingerprint(&to).ok().as_ref() != Some(p)
                {
                    return Err(format!(
                        "{} has changed since the interrupted run put it there (has etcd run on it?)",
                        to.display()
                    ));
                }
                v.push(true);
            } else {
                return Err(format!(
                    "what the interrupted run moved from {} to {} is at neither place",
                    from.display(),
                    to.display()
                ));
            }
        }
        Ok(v)
    }
}

/// A fingerprint of the tree at `p`: every entry's relative name, type,
/// inode, size and mtime (not the contents: cheap for any size, and any
/// write changes an mtime; a file created or removed changes its directory's
/// listing).
fn fingerprint(p: &Path) -> Result<String, IoError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    fn walk(rel: &Path, p: &Path, ctx: &mut ring::digest::Context) -> Result<(), IoError> {
        let m = fs::symlink_metadata(p).map_err(IoError::at(p))?;
        // The top directory's own mtime is left out (a rename of it may
        // touch it on some file systems); its entries are all listed.
        let mtime = if rel == Path::new(".") && m.is_dir() {
            (0, 0)
        } else {
            (m.mtime(), m.mtime_nsec())
        };
        ctx.update(rel.as_os_str().as_bytes());
        ctx.update(
            format!(
                "\0{:o}\0{}\0{}\0{}.{}\n",
                m.mode() & 0o170000,
                m.ino(),
                m.size(),
                mtime.0,
                mtime.1
            )
            .as_bytes(),
        );
        if m.is_dir() {
            let mut names: Vec<OsString> = fs::read_dir(p)
                .map_err(IoError::at(p))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(IoError::at(p))?;
            names.sort();
            for n in names {
                walk(&rel.join(&n), &p.join(&n), ctx)?;
            }
        }
        Ok(())
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    walk(Path::new("."), p, &mut ctx)?;
    Ok(hex(ctx.finish().as_ref()))
}

/// The journals `<prefix><pid>.journal` in `dir`, with their pids.
fn journals_in(dir: &Path, prefix: &str) -> Result<Vec<(PathBuf, u32)>, IoError> {
    let mut v = Vec::new();
    if !dir.is_dir() {
        return Ok(v);
    }
    for (p, rest) in ours(dir, prefix)? {
        if let Some(pid) = rest.strip_suffix(".journal").and_then(|d| d.parse().ok()) {
            v.push((p, pid));
        }
    }
    Ok(v)
}

/// Reads a journal left by a run that is gone; refuses one of a live run.
fn stale_journal(path: &Path, pid: u32) -> Result<Journal, SwapError> {
    if !stale_pid(&pid.to_string()) {
        return Err(SwapError::Busy {
            journal: path.to_path_buf(),
            pid,
        });
    }
    Journal::read(path).map_err(|why| SwapError::Interrupted {
        journal: path.to_path_buf(),
        why: format!("it cannot be read: {why}"),
        settle: "Look at what it names, put the directory as you want it, then remove the journal."
            .into(),
    })
}

/// The journals of interrupted swaps of `c` (its data dir's, its WAL dir's),
/// each checked against what is on disk.
fn interrupted(c: &Checked) -> Result<Vec<Journal>, SwapError> {
    let mut found = Vec::new();
    for unit in c.wal.iter().chain(std::iter::once(&c.member)) {
        for (p, pid) in journals_in(&unit.parent, &journal_prefix(unit))? {
            found.push(stale_journal(&p, pid)?);
        }
    }
    for j in &found {
        let with = found.iter().filter(|o| o.id == j.id).count();
        if with < j.units {
            return Err(SwapError::Interrupted {
                journal: j.path.clone(),
                why: format!(
                    "that run was writing {} and changes both directories together, but the journal of the other one is not where this run looks",
                    j.note
                ),
                settle: format!(
                    "Rerun with the same --data-dir and --wal-dir. If you did, that run had already finished the other half (it was stopped between removing its two journals): {}.",
                    j.settle()
                ),
            });
        }
        if let Err(why) = j.assess() {
            return Err(SwapError::Interrupted {
                journal: j.path.clone(),
                why,
                settle: format!("To settle it: {}.", j.settle()),
            });
        }
    }
    Ok(found)
}

/// Puts back what interrupted swaps moved (checked again now), removes the
/// trees they staged and their journals; one line each.
fn undo_interrupted(pending: &[Journal]) -> Result<Vec<String>, SwapError> {
    let mut states = Vec::new();
    for j in pending {
        states.push(j.assess().map_err(|why| SwapError::Interrupted {
            journal: j.path.clone(),
            why,
            settle: format!("To settle it: {}.", j.settle()),
        })?);
    }
    let mut lines = Vec::new();
    for (j, done) in pending.iter().zip(states) {
        for (e, done) in j.entries.iter().zip(done).rev() {
            if done {
                let (from, to) = (j.dir.join(&e.from), j.dir.join(&e.to));
                fs::rename(&to, &from).map_err(IoError::at(&to))?;
            }
        }
        durable::sync_path(&j.dir)?;
        // The trees that run staged, back under their staging names: still
        // the ones it made (same inode), so removed.
        for e in j.entries.iter().filter(|e| e.print.is_some()) {
            use std::os::unix::fs::MetadataExt;
            let from = j.dir.join(&e.from);
            if fs::symlink_metadata(&from).is_ok_and(|m| (m.dev(), m.ino()) == (e.dev, e.ino)) {
                fs::remove_dir_all(&from).map_err(IoError::at(&from))?;
            }
        }
        fs::remove_file(&j.path).map_err(IoError::at(&j.path))?;
        durable::sync_path(&j.dir)?;
        lines.push(format!(
            "undid the interrupted swap recorded in {} ({}): the previous state is back before this run's swap",
            j.path.display(),
            j.entries
                .iter()
                .map(|e| format!("{} → {}", e.from.display(), e.to.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(lines)
}

/// The pid in a name of ours (`…-<pid>`, `…-<pid>.journal`,
/// `…-<pid>.journal.tmp`), when that process is gone (or is this one, which
/// has made nothing yet).
fn stale_pid(rest: &str) -> bool {
    let digits = rest.strip_suffix(".tmp").unwrap_or(rest);
    let digits = digits.strip_suffix(".journal").unwrap_or(digits);
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

/// Cleans what a killed run left for `target` before it swapped anything:
/// staging dirs and temp files of our own names are removed:
/// `<data-dir>/.member.etcdsnap-staging-<pid>`, `.<W>.etcdsnap-staging-<pid>`
/// beside the WAL dir, half-written journals, and the older naming
/// `.<data-dir name>.etcdsnap-tmp-<pid>` beside the data dir. A staging dir
/// that a journal still names is left to that journal ([`commit`] acts on
/// it, [`check`] reports it); journals are never acted on here. Never
/// touches a live etcdsnap's files.
pub fn clean_stale(target: &Target) -> Result<Cleaned, SwapError> {
    let mut done = Vec::new();
    let data_dir = std::path::absolute(&target.data_dir).map_err(IoError::at(&target.data_dir))?;
    if fs::metadata(&data_dir).is_ok_and(|m| m.is_dir()) {
        let member = Unit {
            parent: data_dir.clone(),
            name: "member".into(),
        };
        clean_unit(&member, &mut done)?;
        durable::sync_path(&data_dir)?;
    }
    if let Some(name) = data_dir.file_name() {
        let parent = durable::parent_of(&data_dir);
        if parent.is_dir() {
            let prefix = format!(".{}.etcdsnap-tmp-", name.to_string_lossy());
            remove_stale(parent, &prefix, &[], &mut done)?;
        }
    }
    if let Some(w) = &target.wal_dir {
        let w = std::path::absolute(w).map_err(IoError::at(w))?;
        let w = fs::canonicalize(&w).unwrap_or(w);
        if let Some(name) = w.file_name() {
            let parent = durable::parent_of(&w);
            if parent.is_dir() {
                let unit = Unit {
                    parent: parent.to_path_buf(),
                    name: name.to_os_string(),
                };
                clean_unit(&unit, &mut done)?;
            }
        }
    }
    Ok(done)
}

/// A unit's stale staging (unless a journal names it) and half-written journals.
fn clean_unit(unit: &Unit, done: &mut Cleaned) -> Result<(), IoError> {
    let prefix = journal_prefix(unit);
    let keep: Vec<String> = journals_in(&unit.parent, &prefix)?
        .into_iter()
        .map(|(_, pid)| pid.to_string())
        .collect();
    for (p, rest) in ours(&unit.parent, &prefix)? {
        if rest.ends_with(".journal.tmp") && stale_pid(&rest) {
            fs::remove_file(&p).map_err(IoError::at(&p))?;
            done.push(format!(
                "removed {} (a journal an interrupted run had not finished writing)",
                p.display()
            ));
        }
    }
    let staging = format!(".{}.etcdsnap-staging-", unit.name.to_string_lossy());
    remove_stale(&unit.parent, &staging, &keep, done)
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

/// Removes `dir`'s entries `<prefix><pid>` of runs that are gone, except
/// those whose pid is in `keep`.
fn remove_stale(
    dir: &Path,
    prefix: &str,
    keep: &[String],
    done: &mut Cleaned,
) -> Result<(), IoError> {
    for (p, rest) in ours(dir, prefix)? {
        if !stale_pid(&rest) || keep.contains(&rest) {
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
/// names such as install's PKI staging), except those of a run whose
/// journal (`…-<pid>.journal`) is still in `dir`.
pub fn clean_stale_prefixed(dir: &Path, prefix: &str) -> Result<Cleaned, SwapError> {
    let mut done = Vec::new();
    if dir.is_dir() {
        // Staging a journal of the same run still names is left to it.
        let keep: Vec<String> = ours(dir, "")?
            .into_iter()
            .filter_map(|(_, name)| {
                let stem = name.strip_suffix(".journal")?;
                name.contains("etcdsnap")
                    .then(|| stem.rsplit_once('-').map(|(_, pid)| pid.to_string()))?
            })
            .collect();
        remove_stale(dir, prefix, &keep, &mut done)?;
    }
    Ok(done)
}

/// Writes a journal of planned renames `(from, to)` at `p` (written to a
/// temporary name, fsynced, renamed), as `commit` does before its first
/// rename, for callers swapping other files (install's PKI files). Every
/// path must lie below `p`'s directory; the journal names them relative to
/// it, with the identity of each `from` as it is now, so that
/// [`undo_stale_journals`] moves back only what this run moved.
pub fn write_rename_journal(p: &Path, plan: &[(PathBuf, PathBuf)]) -> Result<(), IoError> {
    let dir = durable::parent_of(p).to_path_buf();
    let rel = |q: &Path| -> Result<PathBuf, IoError> {
        q.strip_prefix(&dir)
            .ok()
            .filter(|r| inside(r))
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                IoError::at(q)(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("not inside {}", dir.display()),
                ))
            })
    };
    let mut entries = Vec::new();
    for (from, to) in plan {
        let m = fs::symlink_metadata(from).map_err(IoError::at(from))?;
        let print = fingerprint(from)?;
        let e = Entry::new(
            rel(from)?.as_os_str(),
            rel(to)?.as_os_str(),
            &m,
            Some(print),
        );
        entries.push(e);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Journal {
        path: p.to_path_buf(),
        dir,
        id: format!("{}-{nanos}", std::process::id()),
        units: 1,
        note: "files renamed in this directory".into(),
        entries,
    }
    .write()
}

/// Undoes the renames recorded in `dir`'s journals `<prefix><pid>.journal`
/// left by runs that are gone (newest rename first), then removes the
/// journals — only while every file each names is still what that run left
/// where it left it (same inode, unchanged); otherwise nothing is touched
/// and the journal is reported ([`SwapError::Interrupted`]). A journal of a
/// live run is refused ([`SwapError::Busy`]).
pub fn undo_stale_journals(dir: &Path, prefix: &str) -> Result<Cleaned, SwapError> {
    let mut done = Vec::new();
    let mut found = Vec::new();
    if dir.is_dir() {
        for (p, rest) in ours(dir, prefix)? {
            if rest.ends_with(".journal.tmp") && stale_pid(&rest) {
                fs::remove_file(&p).map_err(IoError::at(&p))?;
                done.push(format!(
                    "removed {} (a journal an interrupted run had not finished writing)",
                    p.display()
                ));
            }
        }
    }
    for (p, pid) in journals_in(dir, prefix)? {
        let j = stale_journal(&p, pid)?;
        if let Err(why) = j.assess() {
            return Err(SwapError::Interrupted {
                journal: p,
                why,
                settle: format!("To settle it: {}.", j.settle()),
            });
        }
        found.push(j);
    }
    for j in &found {
        let states = j.assess().map_err(|why| SwapError::Interrupted {
            journal: j.path.clone(),
            why,
            settle: format!("To settle it: {}.", j.settle()),
        })?;
        for (e, moved) in j.entries.iter().zip(states).rev() {
            if moved {
                let (from, to) = (j.dir.join(&e.from), j.dir.join(&e.to));
                fs::rename(&to, &from).map_err(IoError::at(&to))?;
            }
        }
        fs::remove_file(&j.path).map_err(IoError::at(&j.path))?;
        durable::sync_path(&j.dir)?;
        done.push(format!(
            "undid the interrupted swap recorded in {} (the old files are back in place)",
            j.path.display()
        ));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_text(from: &str, to: &str) -> String {
        format!(
            "{JOURNAL_MAGIC}\nid 1-2\nunits 1\nnote {}\nrename {} {} 1 2 -\n",
            hex(b"x"),
            hex(from.as_bytes()),
            hex(to.as_bytes())
        )
    }

    #[test]
    fn a_journal_names_only_paths_inside_its_directory() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join(".etcdsnap-swap-1.journal");
        for bad in ["/etc/passwd", "../member", "a/../../b", ""] {
            std::fs::write(&p, journal_text(bad, "member")).unwrap();
            assert!(Journal::read(&p).is_err(), "{bad:?} accepted");
            std::fs::write(&p, journal_text("member", bad)).unwrap();
            assert!(Journal::read(&p).is_err(), "{bad:?} accepted");
        }
        std::fs::write(&p, journal_text("member", "member.etcdsnap-bak-x")).unwrap();
        let j = Journal::read(&p).unwrap();
        assert_eq!(j.dir, t.path());
        // The version-1 format (absolute paths, NUL-separated) is not acted on.
        std::fs::write(&p, b"/a/member\0/a/member.bak\0").unwrap();
        assert!(Journal::read(&p).is_err());
    }

    #[test]
    fn a_changed_tree_is_not_moved_back() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("member/wal")).unwrap();
        std::fs::write(d.join("member/wal/0.wal"), b"new").unwrap();
        let m = fs::symlink_metadata(d.join("member")).unwrap();
        let print = fingerprint(&d.join("member")).unwrap();
        let j = Journal {
            path: d.join(".etcdsnap-swap-1.journal"),
            dir: d.to_path_buf(),
            id: "1-2".into(),
            units: 1,
            note: String::new(),
            entries: vec![Entry::new(
                OsStr::new(".member.etcdsnap-staging-1"),
                OsStr::new("member"),
                &m,
                Some(print),
            )],
        };
        j.write().unwrap();
        let read = Journal::read(&j.path).unwrap();
        assert_eq!(read.assess(), Ok(vec![true]), "swapped in, unchanged");
        // etcd writes: a new WAL file appears.
        std::fs::write(d.join("member/wal/0.tmp"), b"").unwrap();
        let why = read.assess().unwrap_err();
        assert!(why.contains("has changed"), "{why}");
        assert!(undo_interrupted(&[read]).is_err());
        assert!(d.join("member/wal/0.wal").exists());
    }
}
