//! `--bump-revision` and `--mark-compacted`, shared by `restore` and
//! `bundle`: the rule that they come together, and the bump `restore
//! --suggest-bump` explains.

use crate::bolt::Db;
use crate::bolt::db::OpenError;
use crate::input::SnapshotFile;
use crate::mvcc::keyspace::{KeySpace, KeySpaceError};

/// `--bump-revision` without `--mark-compacted`, or the other way round.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--mark-compacted required if --bump-revision > 0 (and the other way round)")]
pub struct BumpError;

/// The bump to apply: `Some(n)` for a bump of `n > 0`, which must come with
/// `mark_compacted`; `None` for no bump (0 or absent), which must come
/// without.
pub fn bump(bump_revision: Option<u64>, mark_compacted: bool) -> Result<Option<u64>, BumpError> {
    let bump = bump_revision.filter(|b| *b > 0);
    if bump.is_some() != mark_compacted {
        return Err(BumpError);
    }
    Ok(bump)
}

/// Why no bump could be suggested.
#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    /// The file does not open as a db.
    #[error("{path}: not a readable snapshot")]
    Open {
        /// The snapshot.
        path: String,
        /// What the open found.
        #[source]
        err: OpenError,
    },
    /// The keyspace could not be read.
    #[error("{0}")]
    KeySpace(#[source] KeySpaceError),
}

/// A safe `--bump-revision` for a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The snapshot's revision.
    pub revision: i64,
    /// The live cluster's newest revision and how far past the snapshot it
    /// is, when it was given and is ahead.
    pub live: Option<(i64, u64)>,
    /// The bump: the gap plus 20%, at least 1,000, rounded up to a multiple
    /// of 1,000; 1,000,000,000 without the live revision.
    pub bump: u64,
}

/// The bump that keeps every watcher of the live cluster from seeing
/// revisions go backwards, for the snapshot in `file`.
pub fn suggest(
    file: &SnapshotFile,
    live_revision: Option<i64>,
) -> Result<Suggestion, SuggestError> {
    let db = Db::open(file.db()).map_err(|err| SuggestError::Open {
        path: file.path().display().to_string(),
        err,
    })?;
    let r = KeySpace::open(&db)
        .map_err(SuggestError::KeySpace)?
        .current_revision;
    Ok(match live_revision {
        Some(live) if live > r => {
            let gap = (live - r) as u64;
            Suggestion {
                revision: r,
                live: Some((live, gap)),
                bump: (gap + gap / 5).max(1000).next_multiple_of(1000),
            }
        }
        _ => Suggestion {
            revision: r,
            live: None,
            bump: 1_000_000_000,
        },
    })
}
