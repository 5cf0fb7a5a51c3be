//! bbolt structure checks: the meta pages, then the page tree via [`Walker`].
//!
//! This is the `bbolt check` / `tx.Check()` part of `verify`, plus what bbolt
//! only asserts (page self-ids, single page flags) and what it does not look at
//! (the non-active meta page, the file's length against the high-water mark).
//! Nothing here stops at the first problem.

use std::ops::ControlFlow;

use super::db::{Db, OpenError};
use super::meta::MetaFault;
use super::page::{FLAG_META, LeafElement, NO_FREELIST, flags_name};
use super::walk::{Stats, Visitor, Walker};
use crate::problem::{Problem, Problems};

/// Problems with the meta pages of an opened database.
pub fn check_meta(db: &Db<'_>) -> Problems {
    let mut out = Problems::default();
    let ps = db.page_size() as u64;
    for (i, m) in db.metas().iter().enumerate() {
        let pgid = i as u64;
        match m {
            Ok(meta) => {
                if meta.header.id != pgid {
                    out.push(
                        Problem::new(format!(
                            "meta page self identifies as page {}",
                            meta.header.id
                        ))
                        .at_page(pgid, pgid * ps),
                    );
                }
                if meta.header.flags != FLAG_META {
                    out.push(
                        Problem::new(format!(
                            "meta page has type {}",
                            flags_name(meta.header.flags)
                        ))
                        .at_page(pgid, pgid * ps),
                    );
                }
                if meta.page_size as u64 != ps {
                    out.push(
                        Problem::new(format!(
                            "page size {} differs from the other meta page's {ps}",
                            meta.page_size
                        ))
                        .at_page(pgid, pgid * ps),
                    );
                }
            }
            Err(fault) => out.push(meta_problem(pgid, pgid * ps, fault)),
        }
    }
    let meta = db.meta();
    let at = db.active_meta_index() as u64;
    let here = |msg: String| Problem::new(msg).at_page(at, at * ps);
    if meta.pgid < 2 {
        out.push(here(format!(
            "high-water mark {} leaves no room for data",
            meta.pgid
        )));
    }
    if meta.root < 2 || meta.root >= meta.pgid {
        out.push(here(format!(
            "root bucket page {} is outside [2, {})",
            meta.root, meta.pgid
        )));
    }
    if meta.freelist != NO_FREELIST && (meta.freelist < 2 || meta.freelist >= meta.pgid) {
        out.push(here(format!(
            "freelist page {} is outside [2, {})",
            meta.freelist, meta.pgid
        )));
    }
    let needed = db.size();
    let have = db.data().len() as u64;
    if have < needed {
        out.push(Problem::new(format!(
            "database is {have} bytes but its high-water mark of {} pages of {ps} bytes needs {needed} (truncated?)",
            meta.pgid
        )).at_offset(have));
    }
    out
}

/// The problem reported for an invalid meta page.
pub fn meta_problem(pgid: u64, offset: u64, fault: &MetaFault) -> Problem {
    Problem::new(format!("invalid meta page: {fault}")).at_page(pgid, offset)
}

/// Problems for a file that does not open at all.
pub fn open_problems(err: &OpenError) -> Problems {
    let mut out = Problems::default();
    match err {
        OpenError::NoValidMeta { meta0, meta1 } => {
            out.push(meta_problem(0, 0, meta0));
            out.push(meta_problem(1, 4096, meta1));
            out.push(Problem::new(
                "neither meta page is valid, so the page size and the tree cannot be found",
            ));
        }
        other => out.push(Problem::new(other.to_string())),
    }
    out
}

/// Collects structural problems and ignores entries.
#[derive(Default)]
pub struct ProblemCollector {
    /// Everything found so far.
    pub problems: Problems,
}

impl<'a> Visitor<'a> for ProblemCollector {
    fn problem(&mut self, problem: Problem) -> ControlFlow<()> {
        self.problems.push(problem);
        ControlFlow::Continue(())
    }
    fn entry(&mut self, _: &[&'a [u8]], _: &LeafElement<'a>) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// Walks every page and collects the structural problems.
pub fn check_pages(db: &Db<'_>) -> (Problems, Stats) {
    let mut collector = ProblemCollector::default();
    let mut walker = Walker::new(db);
    let _ = walker.walk_root(&mut collector);
    (collector.problems, walker.stats)
}
