//! Which keys the command line names, and which of their stored revisions is
//! the answer: the newest, the one at a past revision, or a deleted object's
//! last live one; when none fits, why, and what would.

use std::fmt;

use super::finder::{Finder, Select};
use super::prepare::{ResourceCheck, UnknownResource};
use crate::kube::resource::{ObjectKey, ResourceRef, parse_key};
use crate::mvcc::keyspace::{KeySpaceError, Record};
use crate::report::escape_bytes;

/// Which key(s) the arguments name: an etcd key as is, or a resource as
/// kubectl names it, a name and a namespace.
#[derive(Debug, Clone)]
pub enum Wanted {
    /// This key, exactly.
    Key(Vec<u8>),
    /// The object of this resource, name and namespace (`None`: cluster-wide,
    /// or any namespace for a custom resource given none).
    Object {
        /// The resource as typed.
        resource: ResourceRef,
        /// Its namespace.
        namespace: Option<String>,
        /// Its name.
        name: String,
    },
}

/// A key and a name together: a key is used as is.
#[derive(Debug, Clone, thiserror::Error)]
#[error("a key is used as is; give either KEY or RESOURCE NAME")]
pub struct KeyWithName;

impl Wanted {
    /// KEY, or RESOURCE NAME [-n NS], as `get`, `history` and `put-back`
    /// take them. A namespaced built-in resource defaults to `default`.
    pub fn from_args(
        target: &str,
        name: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Wanted, KeyWithName> {
        if target.starts_with('/') || name.is_none() {
            // A key is used as is: one starting with `/`, or any single argument
            // (keys outside the storage prefix such as `compact_rev_key`).
            if name.is_some() {
                return Err(KeyWithName);
            }
            return Ok(Wanted::Key(target.as_bytes().to_vec()));
        }
        let name = name.unwrap_or_default().to_string();
        let resource = ResourceRef::parse(target);
        let namespace = match resource.built_in() {
            Some(r) if !r.namespaced => None,
            Some(_) => Some(namespace.unwrap_or("default").to_string()),
            None => namespace.map(str::to_string),
        };
        Ok(Wanted::Object {
            resource,
            namespace,
            name,
        })
    }

    /// Whether `key` (under the storage `prefix`) is one of the wanted.
    pub fn matches(&self, key: &[u8], prefix: &str) -> bool {
        match self {
            Wanted::Key(k) => key == k.as_slice(),
            Wanted::Object {
                resource,
                namespace,
                name,
            } => parse_key(key, prefix).is_some_and(|ok: ObjectKey| {
                resource.matches(&ok)
                    && ok.name == *name
                    && (namespace.is_none() || ok.namespace == *namespace || ok.namespace.is_none())
            }),
        }
    }

    /// The lookup of the wanted keys, `matches` being [`Wanted::matches`]
    /// under the prefix.
    pub fn select<'w>(&'w self, matches: &'w (dyn Fn(&[u8]) -> bool + Sync)) -> Select<'w> {
        match self {
            Wanted::Key(k) => Select::Key(k),
            Wanted::Object { .. } => Select::Matching(matches),
        }
    }

    /// What is wanted, for messages: the key escaped, or `RESOURCE NAME [in
    /// namespace NS]`.
    pub fn describe(&self) -> String {
        match self {
            Wanted::Key(k) => escape_bytes(k),
            Wanted::Object {
                resource,
                namespace,
                name,
            } => {
                let r = match resource {
                    ResourceRef::BuiltIn(p) => p.to_string(),
                    ResourceRef::Custom { plural, group } => group
                        .as_ref()
                        .map_or(plural.clone(), |g| format!("{plural}.{g}")),
                };
                match namespace {
                    Some(ns) => format!("{r} {name} in namespace {ns}"),
                    None => format!("{r} {name}"),
                }
            }
        }
    }
}

/// The records of a lookup name more than one key (a bare custom resource
/// name can match several groups).
#[derive(Debug, Clone, thiserror::Error)]
#[error("matches several keys; name one: {}", .0.join(", "))]
pub struct SeveralKeys(
    /// The keys, escaped, sorted.
    pub Vec<String>,
);

/// The one key of `records` (none if empty); more than one is an error.
pub fn single_key<'r>(records: &'r [Record<'_>]) -> Result<Option<&'r [u8]>, SeveralKeys> {
    let mut keys: Vec<&[u8]> = records.iter().map(|r| r.kv.key).collect();
    keys.sort();
    keys.dedup();
    if keys.len() > 1 {
        return Err(SeveralKeys(keys.iter().map(|k| escape_bytes(k)).collect()));
    }
    Ok(keys.first().copied())
}

/// Why no revision fits what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotChosen {
    /// The key is not in the snapshot at all.
    NotFound,
    /// Asked at a revision older than every record.
    NotYet {
        /// The revision asked for.
        revision: i64,
        /// The oldest revision the snapshot holds of the key.
        oldest: i64,
    },
    /// Deleted; a live revision is left (`--deleted`, or an older
    /// `--revision`, would give it).
    Deleted {
        /// The deletion.
        at: i64,
        /// The last live revision.
        last_live: i64,
        /// A revision `--revision` accepts at which it was live, when older
        /// than the deletion.
        servable: Option<i64>,
    },
    /// Deleted, and no live revision is left (compacted).
    Compacted {
        /// The deletion.
        at: i64,
        /// The newest record of the key.
        newest: i64,
    },
}

impl fmt::Display for NotChosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotChosen::NotFound => f.write_str("not found in the snapshot"),
            NotChosen::NotYet { revision, oldest } => write!(
                f,
                "did not exist at revision {revision}; the oldest revision the snapshot holds is {oldest}"
            ),
            NotChosen::Deleted {
                at,
                last_live,
                servable,
            } => {
                write!(
                    f,
                    "deleted at revision {at}; its last live revision {last_live} is still in the snapshot: add --deleted"
                )?;
                if let Some(s) = servable {
                    write!(f, " (or --revision {s})")?;
                }
                Ok(())
            }
            NotChosen::Compacted { at, newest } => write!(
                f,
                "deleted at revision {at}, and no earlier revision is left in the snapshot (compacted); newest record {newest}"
            ),
        }
    }
}

impl std::error::Error for NotChosen {}

/// Why [`choose_one`] chose nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unchosen {
    /// The records are of several keys.
    #[error("{0}")]
    Several(SeveralKeys),
    /// No revision answers.
    #[error("{0}")]
    Not(NotChosen),
}

/// [`choose`] among `records` once they are known to be of one key
/// ([`single_key`]).
pub fn choose_one<'a>(
    records: &[Record<'a>],
    revision: Option<i64>,
    deleted: bool,
    compacted: Option<i64>,
) -> Result<Record<'a>, Unchosen> {
    single_key(records).map_err(Unchosen::Several)?;
    choose(records, revision, deleted, compacted).map_err(Unchosen::Not)
}

/// Picks the revision to show among one key's `records` (oldest first): the
/// newest at or below `revision` (default: the newest); when that is a
/// deletion, with `deleted` the last live one before it. `compacted` is the
/// snapshot's compaction revision.
pub fn choose<'a>(
    records: &[Record<'a>],
    revision: Option<i64>,
    deleted: bool,
    compacted: Option<i64>,
) -> Result<Record<'a>, NotChosen> {
    let (Some(oldest), Some(newest)) = (records.first(), records.last()) else {
        return Err(NotChosen::NotFound);
    };
    let upto: Vec<&Record<'a>> = match revision {
        Some(r) => records.iter().filter(|x| x.revision.main <= r).collect(),
        None => records.iter().collect(),
    };
    let Some(at) = upto.last() else {
        return Err(NotChosen::NotYet {
            revision: revision.unwrap_or_default(),
            oldest: oldest.revision.main,
        });
    };
    if !at.tombstone {
        return Ok(**at);
    }
    let last_live = upto.iter().rev().find(|x| !x.tombstone);
    match (last_live, deleted) {
        (Some(live), true) => Ok(**live),
        (Some(live), false) => {
            // A revision at which the object was live and that --revision
            // accepts: not below the compaction.
            let servable = live.revision.main.max(compacted.unwrap_or(0));
            Err(NotChosen::Deleted {
                at: at.revision.main,
                last_live: live.revision.main,
                servable: (servable < at.revision.main).then_some(servable),
            })
        }
        (None, _) => Err(NotChosen::Compacted {
            at: at.revision.main,
            newest: newest.revision.main,
        }),
    }
}

/// Why nothing was found, when more can be said than "not found": a custom
/// resource the snapshot does not know (the error), or the namespaces other
/// than the one asked that hold an object of that name (sorted; empty when
/// none, or for a key).
pub fn missing_elsewhere(
    typed: &str,
    wanted: &Wanted,
    prefix: &str,
    finder: &mut Finder<'_, '_, '_, '_>,
) -> Result<Vec<String>, MissingError> {
    let Wanted::Object {
        resource,
        namespace,
        name,
    } = wanted
    else {
        return Ok(Vec::new());
    };
    if let Some(mut check) = ResourceCheck::new(typed, resource) {
        let related = |k: &[u8]| {
            parse_key(k, prefix).is_some_and(|ok| {
                resource.matches(&ok) || ok.resource == "customresourcedefinitions"
            })
        };
        for r in finder.records(Select::Matching(&related))? {
            if let Some(ok) = parse_key(r.kv.key, prefix) {
                check.observe(&ok);
            }
        }
        check.check()?;
    }
    let Some(ns) = namespace else {
        return Ok(Vec::new());
    };
    let elsewhere = |k: &[u8]| {
        parse_key(k, prefix)
            .is_some_and(|ok| resource.matches(&ok) && ok.name == *name && ok.namespace.is_some())
    };
    let mut namespaces: Vec<String> = finder
        .records(Select::Matching(&elsewhere))?
        .iter()
        .filter_map(|r| parse_key(r.kv.key, prefix)?.namespace)
        .filter(|n| n != ns)
        .collect();
    namespaces.sort();
    namespaces.dedup();
    Ok(namespaces)
}

/// Why [`missing_elsewhere`] could not look.
#[derive(Debug, thiserror::Error)]
pub enum MissingError {
    /// The keyspace could not be read.
    #[error("{0}")]
    KeySpace(#[from] KeySpaceError),
    /// The resource is neither built in nor in the snapshot (a usage error).
    #[error(transparent)]
    Unknown(#[from] UnknownResource),
}
