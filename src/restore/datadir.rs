//! Writes a member's data dir: `member/snap/db`, `member/snap/*.snap`,
//! `member/wal/0000000000000000-0000000000000000.wal`.
//!
//! The files are written into staged dirs and swapped in by `swap` (which
//! holds the invariants: only `member` and the WAL dir are replaced, the old
//! ones moved aside, both or neither, everything fsynced). The db is
//! written fresh (see `bolt::write`) from the snapshot's buckets with:
//! `members` replaced by the new members, `members_removed` emptied (for every
//! target: etcd 3.4's own restore leaves stale members), `meta/consistent_index`
//! = N and `meta/term` = 1 (not for 3.4), for a target below the snapshot's
//! release the version markers that release expects (`target::downgrade_edits`),
//! and optionally the revision bump, the compaction mark and cleared alarms. The written db is checked with our own
//! verifier before the rename.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use super::target::downgrade_edits;
use super::wal::{SEGMENT_BYTES, Target, member_json, snap_file, wal_bytes};
use crate::bolt::Db;
use crate::bolt::read::{self, ReadError};
use crate::bolt::write::{BucketData, Entry, write_db};
use crate::cluster::membership::{Cluster, Member};
use crate::durable::swap::{self, StageDirs, SwapError};
use crate::durable::{self, IoError};
use crate::mvcc::{Revision, RevisionKey};

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Raise the keyspace's revision by this much and mark it compacted there.
    pub bump_revision: Option<u64>,
    /// Drop the alarms recorded in the snapshot.
    pub clear_alarms: bool,
    /// Replace a non-empty target.
    pub force: bool,
    /// chown everything written to this uid:gid.
    pub owner: Option<(u32, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Swap(#[from] SwapError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("bucket {0} holds a nested bucket, which etcd never writes")]
    Nested(String),
    #[error("the restored db does not pass verification: {0}")]
    Unsound(String),
}

type Entries<'a> = BTreeMap<Cow<'a, [u8]>, Cow<'a, [u8]>>;

/// The snapshot's buckets as read, before the restore's changes (see
/// [`collect_buckets`], [`restored_from`]).
pub struct Collected<'a>(BTreeMap<Cow<'a, [u8]>, Vec<Entry<'a>>>);

impl Collected<'_> {
    /// The snapshot's `meta` bucket as read (malformed values left out: the
    /// verifier reports them).
    pub fn meta(&self) -> crate::backend::meta::MetaInfo {
        let mut meta = crate::backend::meta::MetaInfo::default();
        for (k, v) in self.0.get(&b"meta"[..]).into_iter().flatten() {
            let _ = meta.take(k, v);
        }
        meta
    }

    /// `cluster/clusterVersion`, if the snapshot has a readable one (as
    /// `target::cluster_version` reads it).
    pub fn cluster_version(&self) -> Option<String> {
        self.0
            .get(&b"cluster"[..])?
            .iter()
            .find(|(k, _)| k.as_ref() == b"clusterVersion")
            .and_then(|(_, v)| std::str::from_utf8(v).ok().map(str::to_string))
    }
}

/// The restored db's buckets: the snapshot's, with the restore's changes.
/// `snapshot` is the release the snapshot's storage is at: a lower `target`
/// gets the downgrade edits of [`downgrade_edits`].
pub fn restored_buckets<'a>(
    db: &Db<'a>,
    cluster: &Cluster,
    snapshot: Target,
    target: Target,
    opts: &Options,
) -> Result<Vec<BucketData<'a>>, RestoreError> {
    restored_from(collect_buckets(db)?, cluster, snapshot, target, opts)
}

/// Reads every bucket's entries (borrowed from the snapshot). Like every
/// reader it returns an error, never panics, on a damaged file, so it may run
/// while the snapshot is still being verified.
pub fn collect_buckets<'a>(db: &Db<'a>) -> Result<Collected<'a>, RestoreError> {
    let mut buckets: BTreeMap<Cow<'a, [u8]>, Vec<Entry<'a>>> = BTreeMap::new();
    for b in read::buckets(db)? {
        let mut entries = Vec::new();
        let mut nested = false;
        read::for_each(db, &b, |e| {
            if e.is_bucket() {
                nested = true;
                return ControlFlow::Break(());
            }
            entries.push((Cow::Borrowed(e.key), Cow::Borrowed(e.value)));
            ControlFlow::Continue(())
        })?;
        if nested {
            return Err(RestoreError::Nested(String::from_utf8_lossy(b.name).into()));
        }
        buckets.insert(Cow::Borrowed(b.name), entries);
    }
    Ok(Collected(buckets))
}

/// The restored db's buckets from the collected ones: see [`restored_buckets`].
pub fn restored_from<'a>(
    collected: Collected<'a>,
    cluster: &Cluster,
    snapshot: Target,
    target: Target,
    opts: &Options,
) -> Result<Vec<BucketData<'a>>, RestoreError> {
    let Collected(mut buckets) = collected;
    let n = cluster.members.len() as u64;
    // Going down a release: the version markers the lower release expects.
    let cluster_version = buckets.get(&b"cluster"[..]).and_then(|c| {
        c.iter()
            .find(|(k, _)| k.as_ref() == b"clusterVersion")
            .map(|(_, v)| v.to_vec())
    });
    for (bucket, key, value) in downgrade_edits(snapshot, target, cluster_version.as_deref()) {
        let Some(entries) = buckets.get_mut(bucket) else {
            continue;
        };
        entries.retain(|(k, _)| k.as_ref() != key);
        if let Some(v) = value {
            entries.push((Cow::Borrowed(key), Cow::Owned(v.into_bytes())));
            entries.sort();
        }
    }
    // Membership: only the new members.
    let mut members: Vec<Entry<'a>> = cluster
        .members
        .iter()
        .map(|m: &Member| {
            (
                Cow::Owned(format!("{:x}", m.id).into_bytes()),
                Cow::Owned(member_json(m).into_bytes()),
            )
        })
        .collect();
    members.sort();
    buckets.insert(Cow::Borrowed(b"members"), members);
    buckets.insert(Cow::Borrowed(b"members_removed"), Vec::new());
    buckets.entry(Cow::Borrowed(b"cluster")).or_default();
    if opts.clear_alarms {
        buckets.insert(Cow::Borrowed(b"alarm"), Vec::new());
    }
    // meta: the consistent index is the member count, the term 1.
    let mut meta: Entries<'a> = buckets
        .remove(&b"meta"[..])
        .unwrap_or_default()
        .into_iter()
        .collect();
    meta.insert(
        Cow::Borrowed(b"consistent_index"),
        Cow::Owned(n.to_be_bytes().to_vec()),
    );
    if target == Target::V34 {
        meta.remove(&b"term"[..]);
    } else {
        meta.insert(
            Cow::Borrowed(b"term"),
            Cow::Owned(1u64.to_be_bytes().to_vec()),
        );
    }
    if let Some(bump) = opts.bump_revision {
        let key = buckets.entry(Cow::Borrowed(b"key")).or_default();
        let latest = key
            .last()
            .and_then(|(k, _)| RevisionKey::parse(k).ok())
            .map_or(0, |rk| rk.revision.main);
        let rev = Revision {
            main: latest.saturating_add(bump as i64),
            sub: 0,
        };
        let rk = RevisionKey::encode(rev, false);
        key.push((Cow::Owned(rk.clone()), Cow::Owned(Vec::new())));
        meta.insert(Cow::Borrowed(b"scheduledCompactRev"), Cow::Owned(rk));
    }
    buckets.insert(Cow::Borrowed(b"meta"), meta.into_iter().collect());
    Ok(buckets
        .into_iter()
        .map(|(name, entries)| BucketData { name, entries })
        .collect())
}

/// What every member's data dir is made from.
pub struct Source<'s, 'a> {
    pub buckets: &'s [BucketData<'a>],
    pub page_size: usize,
    pub cluster: &'s Cluster,
    pub target: Target,
}

/// Writes `member`'s files into staged dirs: `snap/db` (checked with our
/// verifier), `snap/<term>-<index>.snap` under `dirs.member`, and the first
/// WAL segment (preallocated with real blocks) under `dirs.wal`. Nothing is
/// fsynced here: `swap::stage` chowns, then fsyncs every file and directory.
///
/// The db does not depend on the member (every member gets the same
/// buckets: the new membership is the whole cluster's), so with `db_from` —
/// another member's db, already written and verified from the same `src` —
/// the db is copied from it (in the kernel where the file system can) and the
/// copy checked byte for byte against it instead of being built again.
pub fn write_member_files(
    src: &Source<'_, '_>,
    member: &Member,
    dirs: &StageDirs,
    db_from: Option<&Path>,
) -> Result<(), RestoreError> {
    let db_path = snap_db_path(dirs)?;
    match db_from {
        Some(from) => copy_checked_db(from, &db_path)?,
        None => {
            write_fresh_db(src, &db_path)?;
            check_written_db(&db_path)?;
        }
    }
    write_snap_and_wal(src, member, dirs)
}

/// Writes `member`'s files except the db (its `snap` dir, `.snap` file and
/// first WAL segment): for callers that ship one db for every member
/// (`bundle`), which every member's db equals.
pub fn write_member_files_without_db(
    src: &Source<'_, '_>,
    member: &Member,
    dirs: &StageDirs,
) -> Result<(), RestoreError> {
    snap_db_path(dirs)?;
    write_snap_and_wal(src, member, dirs)
}

/// Creates `<member>/snap` and returns the path of the db in it.
fn snap_db_path(dirs: &StageDirs) -> Result<std::path::PathBuf, RestoreError> {
    let snap_dir = dirs.member.join("snap");
    durable::mkdir_0700(&snap_dir)?;
    Ok(snap_dir.join("db"))
}

/// Writes the db from `src` at `db_path` (not yet checked, not fsynced; its
/// write-out started).
fn write_fresh_db(src: &Source<'_, '_>, db_path: &Path) -> Result<(), RestoreError> {
    let f = durable::Windowed::new(durable::create_0600(db_path)?);
    let mut bw = std::io::BufWriter::with_capacity(1 << 20, f);
    write_db(&mut bw, src.page_size, src.buckets).map_err(IoError::at(db_path))?;
    let f = bw
        .into_inner()
        .map_err(|e| IoError::at(db_path)(e.into_error()))?;
    drop(f.into_inner());
    Ok(())
}

/// The member's `.snap` file beside the db and its first WAL segment.
fn write_snap_and_wal(
    src: &Source<'_, '_>,
    member: &Member,
    dirs: &StageDirs,
) -> Result<(), RestoreError> {
    let (cluster, target) = (src.cluster, src.target);
    // The .snap.
    let (snap_name, snap_bytes) = snap_file(cluster, target);
    durable::write_new(&dirs.member.join("snap").join(snap_name), &snap_bytes)?;
    // The WAL segment, preallocated as etcd preallocates it.
    let wal = dirs.wal.join("0000000000000000-0000000000000000.wal");
    let mut f = durable::create_0600(&wal)?;
    f.write_all(&wal_bytes(cluster, member.id, target))
        .map_err(IoError::at(&wal))?;
    durable::preallocate(&f, &wal, SEGMENT_BYTES)?;
    Ok(())
}

/// Stages every member's data dir at once (`swap::stage` each: written,
/// chowned, every file and directory fsynced), nothing swapped in yet: the
/// caller commits them all, or [`swap::Staged::discard`]s them.
///
/// The first member's db is written from `src`; as soon as its bytes are
/// written the other members' copies are made from it (see
/// [`write_member_files`]: length and both ends checked against it) while it
/// is verified with our own verifier, and every member's files are fsynced
/// on their own thread, so the disk is kept busy while the checks run. No
/// tree is returned unless every one was staged and the first db passed its
/// verification: the copies are then of verified bytes. On any failure every
/// staged tree is discarded and the first error returned (the first member's,
/// when its db failed).
pub fn stage_members(
    src: &Source<'_, '_>,
    members: &[&Member],
    checked: Vec<swap::Checked>,
    owner: Option<(u32, u32)>,
) -> Result<Vec<swap::Staged>, RestoreError> {
    use std::sync::mpsc;
    let (senders, receivers): (Vec<_>, Vec<_>) = (1..members.len())
        .map(|_| mpsc::channel::<std::path::PathBuf>())
        .unzip();
    let results: Vec<Result<swap::Staged, RestoreError>> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        let mut receivers = receivers.into_iter();
        let mut senders = Some(senders);
        for (i, (member, c)) in members.iter().zip(checked).enumerate() {
            let member: &Member = member;
            if i == 0 {
                let senders = senders.take().unwrap_or_default();
                handles.push(s.spawn(move || {
                    stage_one(c, owner, |dirs| {
                        let db_path = snap_db_path(dirs)?;
                        write_fresh_db(src, &db_path)?;
                        // The copies start from the written bytes now.
                        for tx in senders {
                            let _ = tx.send(db_path.clone());
                        }
                        write_snap_and_wal(src, member, dirs)?;
                        check_written_db(&db_path)
                    })
                }));
            } else {
                let rx = receivers.next();
                handles.push(s.spawn(move || {
                    stage_one(c, owner, |dirs| {
                        let db_path = snap_db_path(dirs)?;
                        write_snap_and_wal(src, member, dirs)?;
                        let from = rx.and_then(|rx| rx.recv().ok()).ok_or_else(|| {
                            RestoreError::Unsound(
                                "the first member's db was not written: no copy made".into(),
                            )
                        })?;
                        copy_checked_db(&from, &db_path)
                    })
                }));
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(RestoreError::Unsound("a writer thread panicked".into()))
                })
            })
            .collect()
    });
    if results.iter().all(Result::is_ok) {
        return Ok(results.into_iter().filter_map(Result::ok).collect());
    }
    let mut first = None;
    for r in results {
        match r {
            Ok(staged) => staged.discard(),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.unwrap_or_else(|| RestoreError::Unsound("no member staged".into())))
}

/// `swap::stage` with a writer of ours (its error reported as
/// [`write_member`] reports it).
fn stage_one(
    checked: swap::Checked,
    owner: Option<(u32, u32)>,
    write: impl FnOnce(&StageDirs) -> Result<(), RestoreError>,
) -> Result<swap::Staged, RestoreError> {
    Ok(swap::stage(checked, owner, |dirs| {
        write(dirs).map_err(|e| e.into())
    })?)
}

/// Writes `member`'s data at `target` through the swap (see `swap`): checks,
/// stages, swaps in. The result stays undoable until `Committed::finish`.
/// With `db_from` (a db written and verified for another member from the same
/// `src`), the db is a checked copy of it (see [`write_member_files`]).
pub fn write_member(
    src: &Source<'_, '_>,
    member: &Member,
    checked: swap::Checked,
    opts: &Options,
    db_from: Option<&Path>,
) -> Result<swap::Committed, RestoreError> {
    let staged = swap::stage(checked, opts.owner, |dirs| {
        write_member_files(src, member, dirs, db_from).map_err(|e| e.into())
    })?;
    Ok(swap::commit(staged)?)
}

/// Copies a verified db to `to` (copy_file_range on Linux: no trip through
/// user space, a shared extent where the file system can). The copy is
/// trusted as a write() would be — reading 1 GB back costs more than the copy
/// itself — and checked where a short or misplaced copy shows: its length,
/// and its first and last 64 KiB (the meta pages, the root pages) byte for
/// byte against the verified db. `swap::stage` then fsyncs it.
fn copy_checked_db(from: &Path, to: &Path) -> Result<(), RestoreError> {
    use std::io::Read;
    let src = std::fs::File::open(from).map_err(IoError::at(from))?;
    let mut dst = durable::create_0600(to)?;
    // In windows, each one's write-out started once it is copied.
    let mut copied = 0;
    loop {
        crate::interrupt::check_io().map_err(IoError::at(to))?;
        let n = std::io::copy(&mut (&src).take(durable::WRITEBACK_WINDOW), &mut dst)
            .map_err(IoError::at(to))?;
        if n == 0 {
            break;
        }
        durable::start_writeback_range(&dst, copied, n);
        copied += n;
    }
    let want = src.metadata().map_err(IoError::at(from))?.len();
    let got = dst.metadata().map_err(IoError::at(to))?.len();
    if copied != want || got != want {
        return Err(RestoreError::Unsound(format!(
            "{}: the copy of {} holds {got} bytes, not {want}",
            to.display(),
            from.display()
        )));
    }
    drop(dst);
    if let Some(at) = ends_differ(from, to, want)? {
        return Err(RestoreError::Unsound(format!(
            "{}: the copy of {} differs from it at offset {at}",
            to.display(),
            from.display()
        )));
    }
    Ok(())
}

/// The first offset in the first or last 64 KiB of two files of length `len`
/// where they differ, if any.
fn ends_differ(a: &Path, b: &Path, len: u64) -> Result<Option<u64>, RestoreError> {
    use std::os::unix::fs::FileExt;
    const SPAN: u64 = 64 << 10;
    let fa = std::fs::File::open(a).map_err(IoError::at(a))?;
    let fb = std::fs::File::open(b).map_err(IoError::at(b))?;
    let head = 0..len.min(SPAN);
    let tail = len.saturating_sub(SPAN).max(head.end)..len;
    for r in [head, tail] {
        let n = (r.end - r.start) as usize;
        let (mut ba, mut bb) = (vec![0u8; n], vec![0u8; n]);
        fa.read_exact_at(&mut ba, r.start).map_err(IoError::at(a))?;
        fb.read_exact_at(&mut bb, r.start).map_err(IoError::at(b))?;
        if let Some(i) = ba.iter().zip(&bb).position(|(x, y)| x != y) {
            return Ok(Some(r.start + i as u64));
        }
    }
    Ok(None)
}

/// Our own verifier over the db we just wrote: structure and etcd layout.
fn check_written_db(path: &Path) -> Result<(), RestoreError> {
    let file =
        crate::input::SnapshotFile::open(path).map_err(|e| RestoreError::Unsound(e.to_string()))?;
    let report = crate::verify::verify(&file);
    if report.passed {
        return Ok(());
    }
    let problems: Vec<String> = report
        .failed_checks()
        .flat_map(|c| c.problems.iter().map(move |p| format!("{}: {p}", c.name)))
        .take(5)
        .collect();
    Err(RestoreError::Unsound(problems.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The restore reads the snapshot's release from the collected buckets
    /// while the verifier runs; both readings agree on every fixture release.
    #[test]
    fn collected_meta_reads_as_the_verifier_reads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        for name in [
            "etcd-3.4.23.db",
            "etcd-3.5.1.db",
            "etcd-3.6.16.db",
            "etcd-3.7.3.db",
        ] {
            let file = crate::input::SnapshotFile::open(&dir.join(name)).unwrap();
            let report = crate::verify::verify(&file);
            assert!(report.passed, "{name}");
            let db = Db::open(file.db()).unwrap();
            let collected = collect_buckets(&db).unwrap();
            assert_eq!(Some(collected.meta()), report.summary.meta, "{name}");
            assert_eq!(
                collected.cluster_version(),
                super::super::target::cluster_version(&db),
                "{name}"
            );
        }
    }

    #[test]
    fn a_copy_is_checked_against_the_verified_db() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("db");
        let mut bytes: Vec<u8> = (0..(1u32 << 20) + 123).map(|i| i as u8).collect();
        std::fs::write(&from, &bytes).unwrap();
        let good = dir.path().join("good");
        copy_checked_db(&from, &good).unwrap();
        assert_eq!(std::fs::read(&good).unwrap(), bytes);
        let len = bytes.len() as u64;
        assert_eq!(ends_differ(&from, &good, len).unwrap(), None);
        // A byte changed in the meta pages or the last pages is found, at its offset.
        for at in [5, bytes.len() - 5] {
            bytes[at] ^= 1;
            let bad = dir.path().join(format!("bad{at}"));
            std::fs::write(&bad, &bytes).unwrap();
            assert_eq!(ends_differ(&from, &bad, len).unwrap(), Some(at as u64));
            bytes[at] ^= 1;
        }
        // A file shorter than the spans compares whole.
        let small = dir.path().join("small");
        std::fs::write(&small, b"abc").unwrap();
        let copy = dir.path().join("small-copy");
        copy_checked_db(&small, &copy).unwrap();
        assert_eq!(ends_differ(&small, &copy, 3).unwrap(), None);
    }
}
