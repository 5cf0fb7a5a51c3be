//! Checks of etcd's layout on top of a sound bbolt file: the buckets etcd needs,
//! every revision key and KeyValue of the `key` bucket, and the `meta` bucket.
//!
//! [`LayoutChecker`] is a walk visitor, so `verify` runs these checks in the same
//! pass as the page checks. Rules, each reported with the bucket and key:
//! - a revision key is 17 bytes (18 with the tombstone mark), `main_sub`;
//! - a value decodes as mvccpb.KeyValue with a non-empty key;
//! - a put's mod_revision is its key's main revision; create_revision is in
//!   `[1, mod_revision]`; version ≥ 1; version 1 means create = mod; within one
//!   generation of a key (puts since its creation) create_revision is constant
//!   and version grows by exactly one per put (compaction removes only a
//!   prefix of a key's history, so the revisions left are consecutive);
//! - after the finished compaction revision C, each key keeps at most one
//!   revision ≤ C (compaction deletes the rest);
//! - meta values have their documented sizes and forms; finished ≤ scheduled.
//!
//! The empty-valued entry that `restore --bump-revision` writes is recognised
//! ([`is_bump_marker`]); any other empty value is a problem.

use std::collections::HashMap;
use std::ops::ControlFlow;

use serde::Serialize;

use super::meta::MetaInfo;
use super::{KEY, META, REQUIRED_BUCKETS, USUAL_BUCKETS};
use crate::bolt::{LeafElement, Visitor};
use crate::mvcc::{KeyValue, RevisionKey};
use crate::problem::{Problem, Problems, printable};

/// What the checker learnt about the keyspace.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySpace {
    /// Entries in the `key` bucket (puts, tombstones, bump markers).
    pub revisions: u64,
    /// Revisions that put a value.
    pub puts: u64,
    /// Revisions that delete a key.
    pub tombstones: u64,
    /// Distinct user keys seen.
    pub keys: u64,
    /// Keys whose newest revision is a put (etcd 3.6's `totalKey`).
    pub live_keys: u64,
    /// Largest main revision in the `key` bucket.
    pub revision: i64,
    /// Empty-valued entries, as `restore --bump-revision` writes.
    pub bump_markers: u64,
    /// Puts attached to a lease.
    pub leased_keys: u64,
}

#[derive(Clone, Copy)]
struct KeyState {
    create: i64,
    version: i64,
    live: bool,
    last_main: i64,
    /// The key's second-oldest main revision in the file (`i64::MAX` if none):
    /// compaction at C leaves at most one revision ≤ C, i.e. `second > C`.
    second_main: i64,
}

/// Checks etcd's layout as a walk visits the leaves: which buckets exist, the key bucket's revisions, the meta bucket's records.
#[derive(Default)]
pub struct LayoutChecker<'a> {
    /// Every top-level bucket's name, in file order.
    pub buckets: Vec<String>,
    /// The key bucket's figures.
    pub keyspace: KeySpace,
    /// What the meta bucket records.
    pub meta: MetaInfo,
    /// Problems with the set of buckets.
    pub bucket_problems: Problems,
    /// Problems with the key bucket's records.
    pub key_problems: Problems,
    /// Problems with the meta bucket's records.
    pub meta_problems: Problems,
    state: HashMap<&'a [u8], KeyState>,
    /// Revision keys with an empty value, judged once meta is read.
    empty_values: Vec<&'a [u8]>,
}

/// Whether an empty value stored under `rev_key` in the `key` bucket is the
/// marker a revision bump writes (`etcdutl snapshot restore --bump-revision`,
/// and ours): a put key `main_0` whose main revision is the one the bump
/// schedules for compaction, meta's `scheduledCompactRev`. Any other empty
/// value is damage: a KeyValue always holds at least its key.
pub fn is_bump_marker(rev_key: &RevisionKey, value: &[u8], scheduled_compact: Option<i64>) -> bool {
    value.is_empty()
        && !rev_key.tombstone
        && rev_key.revision.sub == 0
        && scheduled_compact == Some(rev_key.revision.main)
}

impl<'a> LayoutChecker<'a> {
    fn key_problem(&mut self, rev_key: &[u8], msg: String) {
        self.key_problems
            .push(Problem::new(msg).in_bucket("key").with_key(rev_key));
    }

    fn key_entry(&mut self, e: &LeafElement<'a>) {
        self.keyspace.revisions += 1;
        let rk = match RevisionKey::parse(e.key) {
            Ok(rk) => rk,
            Err(err) => return self.key_problem(e.key, err.to_string()),
        };
        let main = rk.revision.main;
        self.keyspace.revision = self.keyspace.revision.max(main);
        if e.value.is_empty() && !rk.tombstone {
            // Legitimate only as a revision bump's marker; meta (walked after
            // key) says which revision that is, so it is decided in `finish`.
            self.empty_values.push(e.key);
            return;
        }
        let kv = match KeyValue::decode(e.value) {
            Ok(kv) => kv,
            Err(err) => return self.key_problem(e.key, format!("revision {}: {err}", rk.revision)),
        };
        if kv.key.is_empty() {
            return self.key_problem(
                e.key,
                format!("revision {}: KeyValue has an empty key", rk.revision),
            );
        }
        let user = printable(kv.key);
        if rk.tombstone {
            self.keyspace.tombstones += 1;
            match self.state.get_mut(kv.key) {
                Some(st) => {
                    st.second_main = st.second_main.min(main);
                    st.live = false;
                    st.last_main = main;
                }
                None => {
                    self.state.insert(
                        kv.key,
                        KeyState {
                            create: 0,
                            version: 0,
                            live: false,
                            last_main: main,
                            second_main: i64::MAX,
                        },
                    );
                }
            }
            return;
        }
        self.keyspace.puts += 1;
        if kv.lease != 0 {
            self.keyspace.leased_keys += 1;
        }
        let mut faults = Vec::new();
        if kv.mod_revision != main {
            faults.push(format!(
                "mod_revision {} differs from the key's revision {main}",
                kv.mod_revision
            ));
        }
        if kv.create_revision < 1 || kv.create_revision > main {
            faults.push(format!(
                "create_revision {} is outside [1, {main}]",
                kv.create_revision
            ));
        }
        if kv.version < 1 {
            faults.push(format!("version {} is below 1", kv.version));
        } else if kv.version == 1 && kv.create_revision != main {
            faults.push(format!(
                "version 1 but create_revision {} is not the revision {main}",
                kv.create_revision
            ));
        }
        match self.state.get(kv.key).copied() {
            Some(prev) if prev.live => {
                if kv.create_revision != prev.create {
                    faults.push(format!(
                        "create_revision {} differs from {} of the key's previous revision {}",
                        kv.create_revision, prev.create, prev.last_main
                    ));
                }
                // Compaction only removes a prefix of a key's history, so the
                // revisions left are consecutive: each put is one version more.
                if kv.version != prev.version.saturating_add(1) {
                    faults.push(format!(
                        "version {} does not follow version {} at revision {}",
                        kv.version, prev.version, prev.last_main
                    ));
                }
            }
            // After a tombstone the key starts a new generation.
            Some(prev) if kv.version != 1 => faults.push(format!(
                "version {} after the tombstone at revision {} (expected 1)",
                kv.version, prev.last_main
            )),
            _ => {}
        }
        let second_main = match self.state.get(kv.key) {
            Some(prev) => prev.second_main.min(main),
            None => i64::MAX,
        };
        self.state.insert(
            kv.key,
            KeyState {
                create: kv.create_revision,
                version: kv.version,
                live: true,
                last_main: main,
                second_main,
            },
        );
        for f in faults {
            self.key_problem(
                e.key,
                format!("revision {} of \"{user}\": {f}", rk.revision),
            );
        }
    }

    /// Checks that need the whole walk; call once after it.
    pub fn finish(&mut self) {
        let scheduled = self.meta.scheduled_compact_revision;
        for key in std::mem::take(&mut self.empty_values) {
            let legit = RevisionKey::parse(key).is_ok_and(|rk| is_bump_marker(&rk, &[], scheduled));
            if legit {
                self.keyspace.bump_markers += 1;
            } else {
                let why = match scheduled {
                    Some(s) => format!("scheduledCompactRev is {s}"),
                    None => "meta has no scheduledCompactRev".to_string(),
                };
                self.key_problem(
                    key,
                    format!(
                        "empty value: only a revision bump's marker may be empty, at the revision meta's scheduledCompactRev names ({why})"
                    ),
                );
            }
        }
        self.keyspace.keys = self.state.len() as u64;
        self.keyspace.live_keys = self.state.values().filter(|s| s.live).count() as u64;
        for required in REQUIRED_BUCKETS {
            let name = String::from_utf8_lossy(required);
            if !self.buckets.iter().any(|b| *b == name) {
                self.bucket_problems
                    .push(Problem::new(format!("bucket {name} is missing")).in_bucket(name));
            }
        }
        let m = &self.meta;
        if self.buckets.iter().any(|b| b == "meta") && m.consistent_index.is_none() {
            self.meta_problems.push(
                Problem::new("consistent_index is missing")
                    .in_bucket("meta")
                    .with_key(b"consistent_index"),
            );
        }
        if let (Some(s), Some(f)) = (m.scheduled_compact_revision, m.finished_compact_revision)
            && f > s
        {
            self.meta_problems.push(
                Problem::new(format!(
                    "finishedCompactRev {f} is past scheduledCompactRev {s}"
                ))
                .in_bucket("meta"),
            );
        }
        if let Some(c) = m.finished_compact_revision {
            let mut bad: Vec<(&[u8], i64)> = self
                .state
                .iter()
                .filter(|(_, st)| st.second_main <= c)
                .map(|(k, st)| (*k, st.second_main))
                .collect();
            bad.sort();
            for (k, second) in bad {
                self.key_problems.push(
                    Problem::new(format!(
                        "key still has revision {second} and an older one, both at or below the finished compaction revision {c} (compaction keeps at most one)"
                    ))
                    .in_bucket("key")
                    .with_key(k),
                );
            }
        }
    }

    /// Buckets etcd usually has that the file lacks (a note, not a failure).
    pub fn missing_usual_buckets(&self) -> Vec<String> {
        USUAL_BUCKETS
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .filter(|b| !self.buckets.contains(b))
            .collect()
    }
}

impl<'a> Visitor<'a> for LayoutChecker<'a> {
    fn problem(&mut self, _: Problem) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    fn entry(&mut self, path: &[&'a [u8]], e: &LeafElement<'a>) -> ControlFlow<()> {
        match path {
            [] => self
                .buckets
                .push(String::from_utf8_lossy(e.key).into_owned()),
            [b] if *b == KEY => self.key_entry(e),
            [b] if *b == META => {
                if let Some(p) = self.meta.take(e.key, e.value) {
                    self.meta_problems.push(p);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
