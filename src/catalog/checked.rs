//! `check` over several snapshots in one call: each one verified and judged
//! by the policy and, with a catalog, added to it and judged by the trend
//! rules against the entries before it. It lives with the catalog because
//! the catalog records what `check` read (`check` does not know the catalog).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::entry::Entry;
use super::store::{Added, CatalogError, Store, add_read};
use super::trend;
use crate::check::facts::{self, Facts};
use crate::check::policy::Policy;
use crate::check::rules::{RuleResult, judge};
use crate::input::InputError;

/// One snapshot's result: the rules (verify among them) and the facts read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checked {
    /// The snapshot's path, as given.
    pub snapshot: String,
    /// Every rule passed.
    pub passed: bool,
    /// Each rule's result.
    pub rules: Vec<RuleResult>,
    /// What was read of the snapshot.
    pub facts: Facts,
}

/// The catalog each snapshot is added to, and its trend rules' settings.
#[derive(Debug, Clone)]
pub struct CatalogSeries {
    /// The catalog file (made when missing).
    pub path: PathBuf,
    /// How long to wait for another process's lock.
    pub wait: Duration,
    /// The labels of the entries (their series).
    pub labels: BTreeMap<String, String>,
    /// The largest drop allowed in a resource's objects, in percent.
    pub max_drop: f64,
}

/// Why [`check_snapshots`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum CheckRunError {
    /// The catalog could not be opened or written.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A snapshot could not be read at all (missing, unreadable: not damage,
    /// which fails its verify rule instead).
    #[error("{name}")]
    Open {
        /// The snapshot's path.
        name: String,
        /// Why.
        #[source]
        source: InputError,
    },
}

/// Checks each snapshot of `paths` against `policy` (`taken_at` for
/// `maxAge`, else the file's mtime; `now` the time of the run); with
/// `catalog`, adds each to it (the catalog is opened first, so that a damaged
/// or foreign one is said before any snapshot is read; its lock is then held
/// only while an entry is written), tells `on_added`, and adds the trend
/// rules' results to the snapshot's.
pub fn check_snapshots(
    paths: &[PathBuf],
    policy: &Policy,
    prefix: &str,
    taken_at: Option<SystemTime>,
    now: SystemTime,
    catalog: Option<&CatalogSeries>,
    on_added: &mut dyn FnMut(&Store, &Entry, Added),
) -> Result<Vec<Checked>, CheckRunError> {
    if let Some(c) = catalog {
        drop(Store::open(&c.path, true, c.wait)?);
    }
    let mut runs = Vec::new();
    for path in paths {
        let name = crate::remote::display_name(path);
        let (rules, f) = match crate::verify::open_verifying(path) {
            Ok((file, done)) => {
                let read = facts::read(&file, done, policy, prefix);
                let mut rules = judge(&read, policy, taken_at, now);
                if let Some(c) = catalog {
                    let store = Store::open(&c.path, true, c.wait)?;
                    let (entry, added) = add_read(&store, &file, &read, &c.labels)?;
                    on_added(&store, &entry, added);
                    let seq = match added {
                        Added::New(s) | Added::Already(s) => s,
                    };
                    rules.extend(trend::judge(&store.heads()?, seq, c.max_drop, &mut |s| {
                        store.entry(s)
                    })?);
                }
                (rules, read.facts)
            }
            // A compressed stream that does not decode is a damaged file: the
            // verify rule fails; anything else (missing, unreadable) is I/O.
            Err(e) if e.is_damage() => (
                vec![RuleResult {
                    rule: "verify".into(),
                    passed: false,
                    message: e.to_string(),
                }],
                Facts::default(),
            ),
            Err(source) => return Err(CheckRunError::Open { name, source }),
        };
        runs.push(Checked {
            passed: rules.iter().all(|r| r.passed),
            snapshot: name,
            rules,
            facts: f,
        });
    }
    Ok(runs)
}
