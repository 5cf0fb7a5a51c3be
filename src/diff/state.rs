//! One side of a diff: the live keys of a keyspace at a revision, sorted by
//! key.
//!
//! etcd's `key` bucket is ordered by revision, not by user key, so two
//! snapshots cannot be merged in the order their pages lie in: each side's
//! latest state is collected first ([`KeySpace::latest`]) and sorted. What is
//! kept is a [`Record`] per live key, borrowing key and value from the mapped
//! file: memory grows with the number of keys, never with value bytes.

use std::ops::ControlFlow;

use rayon::slice::ParallelSliceMut;

use crate::mvcc::keyspace::{KeySpace, KeySpaceError, Latest, Record};

/// The live records at `at` (default: the snapshot's revision) that `keep`
/// accepts, sorted by key. A revision the snapshot cannot serve is the same
/// error `get --revision` gives ([`KeySpaceError::Compacted`],
/// [`KeySpaceError::Future`]).
pub fn live_sorted<'a>(
    ks: &KeySpace<'_, 'a>,
    at: Option<i64>,
    mut keep: impl FnMut(&Record<'a>) -> bool,
) -> Result<Vec<Record<'a>>, KeySpaceError> {
    let mut out = Vec::new();
    ks.latest(at, |l| {
        if let Latest::Live(r) = l
            && keep(&r)
        {
            out.push(r);
        }
        ControlFlow::Continue(())
    })?;
    out.par_sort_unstable_by(|a, b| a.kv.key.cmp(b.kv.key));
    Ok(out)
}
