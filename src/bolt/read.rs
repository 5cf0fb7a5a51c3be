//! Strict reading: buckets and their entries, stopping at the first fault.
//!
//! Readers (status, get, ls …) use this; the same walk as the checker, with a
//! visitor that turns the first problem into an error that says where it is.

use std::ops::ControlFlow;

use super::db::Db;
use super::page::{BucketHeader, BucketRoot, LeafElement, Node, PageHeader};
use super::walk::{Visitor, Walker};
use crate::problem::Problem;

/// A read stopped at a structural fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub Problem);

/// A top-level bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    /// The bucket's name.
    pub name: &'a [u8],
    /// Its header in the root bucket.
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
    for b in &out {
        if let BucketRoot::Inline(bytes) = b.header.root {
            inline_node(db, b.name, bytes)?;
        }
    }
    Ok(out)
}

/// The leaf node of an inline bucket, checked like a page: a header, and
/// element data packed in order.
fn inline_node<'a>(db: &Db<'a>, name: &[u8], bytes: &'a [u8]) -> Result<Node<'a>, ReadError> {
    let offset = (bytes.as_ptr() as usize).wrapping_sub(db.data().as_ptr() as usize) as u64;
    let fail = |msg: String| {
        ReadError(
            Problem::new(msg)
                .at_page(offset / db.page_size() as u64, offset)
                .in_bucket(String::from_utf8_lossy(name)),
        )
    };
    let header = PageHeader::parse(bytes).ok_or_else(|| fail("inline bucket is cut off".into()))?;
    let node = Node { header, bytes };
    match node.layout_fault() {
        Some(fault) => Err(fail(format!("inline bucket: {fault}"))),
        None => Ok(node),
    }
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

/// The leaf nodes of a bucket, in key order, for readers that process leaves
/// in parallel or backwards. Walks only branch pages; every page is checked for
/// bounds, self-id and type, and reached at most once.
pub fn leaves<'a>(db: &Db<'a>, bucket: &Bucket<'a>) -> Result<Vec<Node<'a>>, ReadError> {
    use super::page::{FLAG_BRANCH, FLAG_LEAF};
    let mut out = Vec::new();
    let root = match bucket.header.root {
        BucketRoot::Inline(bytes) => {
            out.push(inline_node(db, bucket.name, bytes)?);
            return Ok(out);
        }
        BucketRoot::Page(p) => p,
    };
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![(root, 0usize)];
    let fail = |pgid: u64, msg: String| {
        ReadError(
            Problem::new(msg)
                .at_page(pgid, db.offset_of(pgid))
                .in_bucket(String::from_utf8_lossy(bucket.name)),
        )
    };
    while let Some((pgid, depth)) = stack.pop() {
        if depth > super::walk::MAX_DEPTH || !seen.insert(pgid) {
            return Err(fail(pgid, "page reached twice or tree too deep".into()));
        }
        let node = db.node(pgid).map_err(|f| fail(pgid, f.to_string()))?;
        if node.header.id != pgid {
            return Err(fail(
                pgid,
                format!("page self identifies as {}", node.header.id),
            ));
        }
        match node.header.flags {
            FLAG_LEAF => out.push(node),
            FLAG_BRANCH => {
                // Children pushed in reverse so they pop in key order.
                for i in (0..node.count()).rev() {
                    let e = node
                        .branch(i)
                        .map_err(|f| fail(pgid, format!("branch element {i}: {f}")))?;
                    stack.push((e.child, depth + 1));
                }
            }
            other => {
                return Err(fail(
                    pgid,
                    format!("unexpected page type {}", super::page::flags_name(other)),
                ));
            }
        }
    }
    Ok(out)
}
