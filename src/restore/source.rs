//! The snapshot read once for every command that restores from it (`restore`,
//! `bundle`): verified in full on one core while the other collects the
//! buckets and does the caller's work from them (building and staging the
//! data dirs), so the disk works from the start. Readers return errors, never
//! panic, on any bytes; what the work made is handed back for discarding
//! unless the file passed every check, its sha256 trailer is there (unless
//! skipped), and the release read from the collected buckets equals the one
//! read from the bytes the verifier passed.

use crate::bolt::Db;
use crate::bolt::db::OpenError;
use std::path::Path;

use crate::input::{Excess, ExcessDamage, InputError, SnapshotFile};
use crate::verify::{Report, verify};

use super::datadir::{Collected, Options, RestoreError, Source, collect_buckets, restored_from};
use super::target::{self, Target, TargetError};
use crate::bolt::write::BucketData;
use crate::cluster::membership::Cluster;

#[derive(Debug, thiserror::Error)]
/// Why a snapshot may not be restored from.
pub enum SourceError {
    /// The file fails verification (the report says why).
    #[error("{path}: not restoring from a snapshot that fails verification")]
    /// The snapshot's path and the verifier's report.
    Unsound {
        /// The path.
        path: String,
        /// The verifier's report.
        report: Box<Report>,
    },
    #[error(
        "{0}: snapshot missing hash but --skip-hash-check=false (a copy of a data dir's member/snap/db has no sha256 trailer)"
    )]
    /// No sha256 trailer and no `--skip-hash-check`.
    NoTrailer(String),
    #[error("{path}: not a readable snapshot: {err}")]
    /// The file does not open as a db.
    Open {
        /// The snapshot.
        path: String,
        #[source]
        /// What the open found.
        err: OpenError,
    },
    #[error("{0}: the snapshot's release read twice gave two answers")]
    /// The release read from the buckets and from the verified bytes differ.
    ReleaseDisagrees(String),
    #[error(transparent)]
    /// No release to write for.
    Target(#[from] TargetError),
    #[error(transparent)]
    /// The restored db could not be built.
    Restore(#[from] RestoreError),
}

/// What the work beside the verifier starts from.
pub struct Opened<'a> {
    /// The snapshot's db.
    pub db: Db<'a>,
    /// Its buckets, collected.
    pub collected: Collected<'a>,
    /// The release that wrote the snapshot, and the one to write for.
    pub snapshot_release: Target,
    /// The release the data dirs are written for.
    pub target: Target,
}

impl<'a> Opened<'a> {
    /// The restored db's buckets (the snapshot's, with the restore's
    /// changes for `cluster`), ready to write.
    pub fn restored(self, cluster: &Cluster, opts: &Options) -> Result<Restored<'a>, RestoreError> {
        Ok(Restored {
            page_size: self.db.page_size(),
            buckets: restored_from(
                self.collected,
                cluster,
                self.snapshot_release,
                self.target,
                opts,
            )?,
            target: self.target,
        })
    }
}

/// What every member's data dir is written from.
pub struct Restored<'a> {
    buckets: Vec<BucketData<'a>>,
    page_size: usize,
    target: Target,
}

impl<'a> Restored<'a> {
    /// What every member's files are written from, for `cluster`.
    pub fn source<'s>(&'s self, cluster: &'s Cluster) -> Source<'s, 'a> {
        Source {
            buckets: &self.buckets,
            page_size: self.page_size,
            cluster,
            target: self.target,
        }
    }
}

/// A snapshot that passed, and what the work made from it.
pub struct Passed<R> {
    /// The verifier's report.
    pub checks: Report,
    /// The release that wrote the snapshot.
    pub snapshot_release: Target,
    /// The release written for.
    pub target: Target,
    /// The keyspace's revision (0 when the file has none).
    pub revision: i64,
    /// The sha256 of the whole (decompressed) file, taken by the verifier.
    pub sha256: String,
    /// What the work made.
    pub work: R,
}

/// Why nothing made from the snapshot may be used; `work` is what the work
/// made anyway (to discard), if it ran.
pub struct Refused<R> {
    /// Why.
    pub err: SourceError,
    /// What the work made, if it ran.
    pub work: Option<R>,
}

impl<R> Refused<R> {
    /// What every command that restores does with a refused snapshot: what
    /// the work made, if it ran, goes to `discard`; the reason is returned.
    pub fn discard_with(self, discard: impl FnOnce(Option<R>)) -> SourceError {
        discard(self.work);
        self.err
    }
}

/// The release a snapshot is at ([`target::snapshot_release`]); an unknown
/// storage version leaves it to the operator's word (`requested`, the
/// `--target-version`).
pub fn release_of(
    storage_version: Option<&str>,
    cluster_version: Option<&str>,
    has_term: bool,
    requested: Option<&str>,
) -> Result<Target, TargetError> {
    target::snapshot_release(storage_version, cluster_version, has_term).or_else(
        |e| match requested {
            Some(t) => Target::parse(t).ok_or(e),
            None => Err(e),
        },
    )
}

/// Why a snapshot could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenSnapshotError {
    /// It could not be read, or its compression does not decode.
    #[error("{0}")]
    Input(#[source] InputError),
    /// A compressed snapshot holds data after its trailer.
    #[error("{0}")]
    Excess(#[source] ExcessDamage),
}

/// Opens the snapshot at `path` (`-`: standard input) for a command that
/// restores from it: data after a compressed snapshot's trailer is refused as
/// damage; any other excess past the db is not, and is handed to `note`.
pub fn open(
    path: &Path,
    note: &mut dyn FnMut(&Path, Excess),
) -> Result<SnapshotFile, OpenSnapshotError> {
    let file = SnapshotFile::open(path).map_err(OpenSnapshotError::Input)?;
    if let Some(excess) = file.excess() {
        if excess.is_damage() {
            return Err(OpenSnapshotError::Excess(ExcessDamage {
                path: file.path().to_path_buf(),
                excess,
            }));
        }
        note(file.path(), excess);
    }
    Ok(file)
}

/// Verifies `file` while `work` runs on its collected buckets (see the module
/// comment). `requested` is `--target-version`.
pub fn verify_beside<'a, R, W>(
    file: &'a SnapshotFile,
    skip_hash_check: bool,
    requested: Option<&str>,
    work: W,
) -> Result<Passed<R>, Refused<R>>
where
    R: Send,
    W: FnOnce(Opened<'a>) -> R + Send,
{
    let path = file.path().display().to_string();
    let open = || {
        Db::open(file.db()).map_err(|err| SourceError::Open {
            path: path.clone(),
            err,
        })
    };
    let release = |meta: &crate::backend::meta::MetaInfo, cluster_version: Option<&str>| {
        release_of(
            meta.storage_version.as_deref(),
            cluster_version,
            meta.term.is_some_and(|t| t > 0),
            requested,
        )
    };
    let (checks, started) = rayon::join(
        || verify(file),
        || -> Result<(Target, Target, R), SourceError> {
            if !file.has_trailer() && !skip_hash_check {
                return Err(SourceError::NoTrailer(path.clone()));
            }
            let db = open()?;
            let collected = collect_buckets(&db)?;
            let snapshot_release =
                release(&collected.meta(), collected.cluster_version().as_deref())?;
            let target = target::choose(snapshot_release, requested.and_then(Target::parse))?;
            let r = work(Opened {
                db,
                collected,
                snapshot_release,
                target,
            });
            Ok((snapshot_release, target, r))
        },
    );
    let (snapshot_release, target, r) = match started {
        Ok(s) => s,
        Err(err) if checks.passed => return Err(Refused { err, work: None }),
        Err(_) => {
            return Err(Refused {
                err: SourceError::Unsound {
                    path,
                    report: Box::new(checks),
                },
                work: None,
            });
        }
    };
    if !checks.passed {
        return Err(Refused {
            err: SourceError::Unsound {
                path,
                report: Box::new(checks),
            },
            work: Some(r),
        });
    }
    // The release from the bytes the verifier passed must be the one the
    // work was given.
    let verified_release = match (open(), checks.summary.meta.as_ref()) {
        (Ok(db), Some(meta)) => release(meta, target::cluster_version(&db).as_deref()).ok(),
        _ => None,
    };
    if verified_release != Some(snapshot_release) {
        return Err(Refused {
            err: SourceError::ReleaseDisagrees(path),
            work: Some(r),
        });
    }
    // Only a file without a trailer has no digest from the verifier.
    let sha256 = checks.summary.sha256.clone().unwrap_or_else(|| {
        crate::verify::hex(ring::digest::digest(&ring::digest::SHA256, file.bytes()).as_ref())
    });
    Ok(Passed {
        revision: checks.summary.keyspace.as_ref().map_or(0, |k| k.revision),
        sha256,
        checks,
        snapshot_release,
        target,
        work: r,
    })
}
