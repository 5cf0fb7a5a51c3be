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
use crate::input::SnapshotFile;
use crate::verify::{Report, verify};

use super::datadir::{Collected, Options, RestoreError, Source, collect_buckets, restored_from};
use super::target::{self, Target, TargetError};
use crate::bolt::write::BucketData;
use crate::cluster::membership::Cluster;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file fails verification (the report says why).
    #[error("{path}: not restoring from a snapshot that fails verification")]
    Unsound { path: String, report: Box<Report> },
    #[error(
        "{0}: snapshot missing hash but --skip-hash-check=false (a copy of a data dir's member/snap/db has no sha256 trailer)"
    )]
    NoTrailer(String),
    #[error("{path}: not a readable snapshot: {err}")]
    Open {
        path: String,
        #[source]
        err: OpenError,
    },
    #[error("{0}: the snapshot's release read twice gave two answers")]
    ReleaseDisagrees(String),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

/// What the work beside the verifier starts from.
pub struct Opened<'a> {
    pub db: Db<'a>,
    pub collected: Collected<'a>,
    /// The release that wrote the snapshot, and the one to write for.
    pub snapshot_release: Target,
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
    pub checks: Report,
    pub snapshot_release: Target,
    pub target: Target,
    /// The keyspace's revision (0 when the file has none).
    pub revision: i64,
    /// The sha256 of the whole (decompressed) file, taken by the verifier.
    pub sha256: String,
    pub work: R,
}

/// Why nothing made from the snapshot may be used; `work` is what the work
/// made anyway (to discard), if it ran.
pub struct Refused<R> {
    pub err: SourceError,
    pub work: Option<R>,
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
        target::snapshot_release(
            meta.storage_version.as_deref(),
            cluster_version,
            meta.term.is_some_and(|t| t > 0),
        )
        .or_else(|e| match requested {
            Some(t) => Target::parse(t).ok_or(e),
            None => Err(e),
        })
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
