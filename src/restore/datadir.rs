//! Writes a member's data dir: `member/snap/db`, `member/snap/*.snap`,
//! `member/wal/0000000000000000-0000000000000000.wal`.
//!
//! Everything is built in a temporary directory beside the target and renamed
//! into place at the end (directories 0700, files 0600, each fsynced), so a
//! kill at any point leaves either nothing or a complete data dir. The db is
//! written fresh (see `dbwrite`) from the snapshot's buckets with:
//! `members` replaced by the new members, `members_removed` emptied (for every
//! target: etcd 3.4's own restore leaves stale members), `meta/consistent_index`
//! = N and `meta/term` = 1 (not for 3.4), and optionally the revision bump, the
//! compaction mark and cleared alarms. The written db is checked with our own
//! verifier before the rename.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::dbwrite::{BucketData, Entry, write_db};
use super::membership::{Cluster, Member};
use super::wal::{SEGMENT_BYTES, Target, member_json, snap_file, wal_bytes};
use crate::bolt::Db;
use crate::bolt::read::{self, ReadError};
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
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("data dir {0} is not empty; use --force to replace it")]
    NotEmpty(PathBuf),
    #[error("wal dir {0} exists")]
    WalExists(PathBuf),
    #[error("bucket {0} holds a nested bucket, which etcd never writes")]
    Nested(String),
    #[error("the restored db does not pass verification: {0}")]
    Unsound(String),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> RestoreError + '_ {
    move |source| RestoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

type Entries<'a> = BTreeMap<Cow<'a, [u8]>, Cow<'a, [u8]>>;

/// The restored db's buckets: the snapshot's, with the restore's changes.
pub fn restored_buckets<'a>(
    db: &Db<'a>,
    cluster: &Cluster,
    target: Target,
    opts: &Options,
) -> Result<Vec<BucketData<'a>>, RestoreError> {
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
    let n = cluster.members.len() as u64;
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

fn mkdir_0700(p: &Path) -> Result<(), RestoreError> {
    fs::create_dir_all(p).map_err(io_err(p))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(0o700)).map_err(io_err(p))?;
    }
    Ok(())
}

fn create_0600(p: &Path) -> Result<fs::File, RestoreError> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(p).map_err(io_err(p))
}

fn write_file(p: &Path, bytes: &[u8], len: Option<u64>) -> Result<(), RestoreError> {
    let mut f = create_0600(p)?;
    f.write_all(bytes).map_err(io_err(p))?;
    if let Some(len) = len {
        f.set_len(len).map_err(io_err(p))?;
    }
    f.sync_all().map_err(io_err(p))
}

fn sync_dir(p: &Path) -> Result<(), RestoreError> {
    fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(io_err(p))
}

fn chown_tree(p: &Path, uid: u32, gid: u32) -> Result<(), RestoreError> {
    #[cfg(unix)]
    {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(io_err(p))?;
        if p.is_dir() {
            for e in fs::read_dir(p).map_err(io_err(p))? {
                let e = e.map_err(io_err(p))?;
                chown_tree(&e.path(), uid, gid)?;
            }
        }
    }
    Ok(())
}

fn is_empty_dir(p: &Path) -> bool {
    fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

/// A temporary sibling of `target` (same filesystem, so the rename is atomic).
fn temp_beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    target.with_file_name(format!(".{name}.etcdsnap-tmp-{}", std::process::id()))
}

/// What every member's data dir is made from.
pub struct Source<'s, 'a> {
    pub buckets: &'s [BucketData<'a>],
    pub page_size: usize,
    pub cluster: &'s Cluster,
    pub target: Target,
}

/// Writes `member`'s data dir at `data_dir` (and its WAL at `wal_dir`, if given).
pub fn write_member(
    src: &Source<'_, '_>,
    member: &Member,
    data_dir: &Path,
    wal_dir: Option<&Path>,
    opts: &Options,
) -> Result<(), RestoreError> {
    let Source {
        buckets,
        page_size,
        cluster,
        target,
    } = *src;
    if data_dir.exists() && !is_empty_dir(data_dir) && !opts.force {
        return Err(RestoreError::NotEmpty(data_dir.to_path_buf()));
    }
    if let Some(w) = wal_dir
        && w.exists()
        && !opts.force
    {
        return Err(RestoreError::WalExists(w.to_path_buf()));
    }
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let tmp = temp_beside(data_dir);
    let _ = fs::remove_dir_all(&tmp);
    let result = (|| {
        let snap_dir = tmp.join("member/snap");
        mkdir_0700(&tmp)?;
        mkdir_0700(&tmp.join("member"))?;
        mkdir_0700(&snap_dir)?;
        // The db.
        let db_path = snap_dir.join("db");
        let f = create_0600(&db_path)?;
        let mut bw = std::io::BufWriter::with_capacity(1 << 20, f);
        write_db(&mut bw, page_size, buckets).map_err(io_err(&db_path))?;
        let f = bw
            .into_inner()
            .map_err(|e| io_err(&db_path)(e.into_error()))?;
        f.sync_all().map_err(io_err(&db_path))?;
        drop(f);
        check_written_db(&db_path)?;
        // The .snap.
        let (snap_name, snap_bytes) = snap_file(cluster);
        write_file(&snap_dir.join(snap_name), &snap_bytes, None)?;
        // The WAL, in the data dir or in its own temporary sibling.
        let wal_tmp = match wal_dir {
            Some(w) => temp_beside(w),
            None => tmp.join("member/wal"),
        };
        let _ = fs::remove_dir_all(&wal_tmp);
        mkdir_0700(&wal_tmp)?;
        write_file(
            &wal_tmp.join("0000000000000000-0000000000000000.wal"),
            &wal_bytes(cluster, member.id, target),
            Some(SEGMENT_BYTES),
        )?;
        sync_dir(&wal_tmp)?;
        sync_dir(&snap_dir)?;
        sync_dir(&tmp.join("member"))?;
        if let Some((uid, gid)) = opts.owner {
            chown_tree(&tmp, uid, gid)?;
            chown_tree(&wal_tmp, uid, gid)?;
        }
        if let Some(w) = wal_dir {
            if w.exists() {
                fs::remove_dir_all(w).map_err(io_err(w))?;
            }
            fs::rename(&wal_tmp, w).map_err(io_err(w))?;
        }
        if data_dir.exists() {
            fs::remove_dir_all(data_dir).map_err(io_err(data_dir))?;
        }
        fs::rename(&tmp, data_dir).map_err(io_err(data_dir))?;
        if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
        if let Some(w) = wal_dir {
            let _ = fs::remove_dir_all(temp_beside(w));
        }
    }
    result
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
