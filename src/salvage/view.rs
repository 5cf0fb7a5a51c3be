//! A damaged snapshot read as far as it survives: `ls`, `get` and `history`
//! with `--salvage` answer from what `salvage` recovers, assembled in memory
//! and never written, and say where each record came from.
//!
//! Nothing here salvages on its own: one file's findings ([`super::collect`]),
//! joined with other sources' ([`super::merge::join`]) when there are any,
//! go through [`super::build_from`] exactly as for the `salvage` command; the
//! result is held as a bbolt file in memory ([`super::output::db_bytes`])
//! that the ordinary readers open. What this module adds is the origin of
//! every record kept: the surviving tree, a page the tree does not reach
//! (freed or orphaned), or another source.

use std::collections::HashMap;
use std::fmt;

use crate::mvcc::Revision;

use super::report::Report;
use super::{SalvageError, build_from, collect, merge, output};

/// Where a record of a salvaged view was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A leaf the surviving tree of the damaged file reaches.
    Tree,
    /// Only a page of the damaged file that its tree does not reach (freed
    /// or orphaned): the page id of the copy taken.
    Page(u64),
    /// Another source (`--from`), by its name.
    Source(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Tree => f.write_str("tree"),
            Origin::Page(p) => write!(f, "page {p}"),
            Origin::Source(name) => f.write_str(name),
        }
    }
}

impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Another file of the same cluster that fills gaps (as `salvage --from`).
pub struct Source<'a> {
    /// Its name, for messages and origins.
    pub name: String,
    /// Its bytes (a whole snapshot or db file).
    pub bytes: &'a [u8],
}

/// Why there is no view.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Nothing usable in a file.
    #[error(transparent)]
    Salvage(#[from] SalvageError),
    /// A source of another cluster.
    #[error(transparent)]
    Source(#[from] merge::SourceError),
}

/// What survives of a damaged snapshot, as a bbolt file in memory, with the
/// origin of every record in it and the salvage report.
pub struct View {
    db: Vec<u8>,
    origins: HashMap<Revision, Origin>,
    /// What the salvage found, kept and lost (no output file).
    pub report: Report,
    /// Sources taken although they are of another cluster (`force_source`).
    pub forced: Vec<merge::SourceError>,
}

impl View {
    /// The salvaged bbolt file (no trailer), for `bolt::Db::open`.
    pub fn db(&self) -> &[u8] {
        &self.db
    }

    /// Where the record written at `revision` came from.
    pub fn origin(&self, revision: Revision) -> Option<&Origin> {
        self.origins.get(&revision)
    }

    /// Whether nothing is known or suspected lost.
    pub fn complete(&self) -> bool {
        self.report.complete
    }
}

/// Salvages `bytes` (named `name`) in memory, with `sources` filling gaps;
/// a source of another cluster is refused unless `force_source`. `prefix`
/// is the API server's storage prefix (for the report's object names).
pub fn open<'a>(
    bytes: &'a [u8],
    name: &str,
    sources: &[Source<'a>],
    force_source: bool,
    prefix: &str,
) -> Result<View, ViewError> {
    let findings = collect(bytes, name)?;
    let own: HashMap<Revision, Origin> = findings
        .records
        .iter()
        .map(|r| {
            let o = if r.in_tree {
                Origin::Tree
            } else {
                Origin::Page(r.page)
            };
            (r.revision, o)
        })
        .collect();
    let mut found = Vec::with_capacity(sources.len());
    let mut forced = Vec::new();
    for s in sources {
        let f = collect(s.bytes, &s.name)?;
        let checked = match merge::same_cluster(&findings, name, &f, &s.name) {
            Ok(c) => c,
            Err(e) if force_source => {
                forced.push(e);
                false
            }
            Err(e) => return Err(e.into()),
        };
        found.push((s.name.clone(), f, checked));
    }
    let (salvaged, origins) = if found.is_empty() {
        (build_from(findings, None, name, prefix), own)
    } else {
        let (joined, p) = merge::join(findings, name, found);
        let origins = p
            .by_revision
            .iter()
            .filter_map(|(rev, &i)| {
                let o = if i == 0 {
                    own.get(rev).cloned()?
                } else {
                    Origin::Source(p.names.get(i)?.clone())
                };
                Some((*rev, o))
            })
            .collect();
        (build_from(joined, Some(&p), name, prefix), origins)
    };
    Ok(View {
        db: output::db_bytes(&salvaged),
        origins,
        report: salvaged.report,
        forced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_read_as_said() {
        assert_eq!(Origin::Tree.to_string(), "tree");
        assert_eq!(Origin::Page(123).to_string(), "page 123");
        assert_eq!(Origin::Source("m2.db".into()).to_string(), "m2.db");
        assert_eq!(
            serde_json::to_string(&Origin::Page(7)).unwrap(),
            "\"page 7\""
        );
    }
}
