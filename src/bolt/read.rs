//! Strict reading: buckets and their entries, stopping at the first fault.
//!
//! Readers (status, get, ls …) use this; the same walk as the checker, with a
//! visitor that turns the first problem into an error that says where it is.

use std::ops::ControlFlow;

use super::db::Db;
use super::page::{BucketHeader, LeafElement};
use super::walk::{Visitor, Walker};
use crate::problem::Problem;

/// A read stopped at a structural fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub Problem);

/// A top-level bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    pub name: &'a [u8],
    pub header: BucketHeader<'a>,
}

struct Strict<F> {
    depth: usize,
    f: F,
    fault: Option<Problem>,
}

impl<'a, F> Visitor<'a> for Strict<F>
where
    F: FnMut(&[&'a [u8]], &LeafElement<'a>) -> ControlFlow<()>,
{
    fn problem(&mut self, problem: Problem) -> ControlFlow<()> {
        self.fault = Some(problem);
        ControlFlow::Break(())
    }
    fn entry(&mut self, path: &[&'a [u8]], e: &LeafElement<'a>) -> ControlFlow<()> {
        if path.len() == self.depth {
            (self.f)(path, e)
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// The top-level buckets in key order. Non-bucket entries at the root are an
/// error, as they are for etcd.
pub fn buckets<'a>(db: &Db<'a>) -> Result<Vec<Bucket<'a>>, ReadError> {
    let mut out = Vec::new();
    let mut bad: Option<Problem> = None;
    let mut v = Strict {
        depth: 0,
        f: |_: &[&'a [u8]], e: &LeafElement<'a>| {
            let header = if e.is_bucket() {
                BucketHeader::parse(e.value)
            } else {
                None
            };
            match header {
                Some(header) => {
                    out.push(Bucket {
                        name: e.key,
                        header,
                    });
                    ControlFlow::Continue(())
                }
                None => {
                    bad = Some(
                        Problem::new("root entry is not a valid bucket")
                            .with_key(e.key)
                            .at_offset(0),
                    );
                    ControlFlow::Break(())
                }
            }
        },
        fault: None,
    };
    let _ = Walker::shallow(db).walk_root_tree(&mut v);
    if let Some(p) = v.fault.take() {
        return Err(ReadError(p));
    }
    if let Some(mut p) = bad {
        p.offset = None;
        return Err(ReadError(p));
    }
    Ok(out)
}

/// Finds a top-level bucket by name.
pub fn bucket<'a>(db: &Db<'a>, name: &[u8]) -> Result<Option<Bucket<'a>>, ReadError> {
    Ok(buckets(db)?.into_iter().find(|b| b.name == name))
}

/// Calls `f` for every entry of `bucket` in key order. `f` may stop early by
/// returning `Break`. Entries of nested buckets are not passed on.
pub fn for_each<'a>(
    db: &Db<'a>,
    bucket: &Bucket<'a>,
    mut f: impl FnMut(&LeafElement<'a>) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    let path = [bucket.name];
    let mut v = Strict {
        depth: 1,
        f: |_: &[&'a [u8]], e: &LeafElement<'a>| f(e),
        fault: None,
    };
    let _ = Walker::shallow(db).walk_bucket(&path, &bucket.header, &mut v);
    match v.fault {
        Some(p) => Err(ReadError(p)),
        None => Ok(()),
    }
}
