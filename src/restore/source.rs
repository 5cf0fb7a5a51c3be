//! The snapshot read once for every command that restores from it (`restore`,
//! `bundle`): verified in full while the other core collects the buckets to
//! write (readers return errors, never panic, on any bytes, and what they read
//! is used only once the file passed), the sha256 trailer required unless
//! skipped, and the release to write for chosen from what the file records.

use crate::bolt::Db;
use crate::bolt::db::OpenError;
use crate::input::SnapshotFile;
use crate::verify::{Report, verify};

use super::datadir::{Collected, RestoreError, collect_buckets};
use super::target::{self, Target, TargetError};

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
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
}

/// A verified snapshot, read once: its checks, the buckets to restore, the
/// release it was written by and the one to write for.
pub struct Verified<'a> {
    pub checks: Report,
    pub db: Db<'a>,
    pub collected: Collected<'a>,
    pub snapshot_release: Target,
    pub target: Target,
    /// The keyspace's revision (0 when the file has none).
    pub revision: i64,
}

/// Verifies `file` and collects its buckets in one read (see the module
/// comment). `requested` is `--target-version`.
pub fn read_verified<'a>(
    file: &'a SnapshotFile,
    skip_hash_check: bool,
    requested: Option<&str>,
) -> Result<Verified<'a>, SourceError> {
    let path = file.path().display().to_string();
    let open = || {
        Db::open(file.db()).map_err(|err| SourceError::Open {
            path: path.clone(),
            err,
        })
    };
    let (checks, collected) = rayon::join(
        || verify(file),
        || -> Result<_, SourceError> { Ok(collect_buckets(&open()?)?) },
    );
    if !checks.passed {
        return Err(SourceError::Unsound {
            path,
            report: Box::new(checks),
        });
    }
    if !file.has_trailer() && !skip_hash_check {
        return Err(SourceError::NoTrailer(path));
    }
    let db = open()?;
    let collected = collected?;
    let meta = checks.summary.meta.as_ref();
    let snapshot_release = target::snapshot_release(
        meta.and_then(|m| m.storage_version.as_deref()),
        target::cluster_version(&db).as_deref(),
        meta.is_some_and(|m| m.term.is_some_and(|t| t > 0)),
    )
    .or_else(|e| match requested {
        Some(t) => Target::parse(t).ok_or(e),
        None => Err(e),
    })?;
    let target = target::choose(snapshot_release, requested.and_then(Target::parse))?;
    let revision = checks.summary.keyspace.as_ref().map_or(0, |k| k.revision);
    Ok(Verified {
        checks,
        db,
        collected,
        snapshot_release,
        target,
        revision,
    })
}
