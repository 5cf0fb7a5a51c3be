//! The keys a member serves at a revision compared one by one with the keys
//! live in a snapshot.
//!
//! After a restore with a revision bump (`--bump-revision N
//! --mark-compacted`), the restored members start compacted at the
//! snapshot's revision R + N: HashKV at R is refused, and HashKV at R + N
//! hashes a compacted history (and the bump's marker) that the file does not
//! hold. What can still be compared is the content: each member is read at
//! R + N (Range, member-local, in pages of bounded size) and every key must
//! be there with the value, create and mod revisions, version and lease it
//! has in the snapshot at R, and no other key.

use std::cmp::Ordering;

use etcd_client::GetOptions;

use super::connect::{Live, Member};
use crate::mvcc::keyvalue::KeyValue;
use crate::report::escape_bytes;

/// Keys per Range page.
const PAGE: i64 = 128;
/// The largest Range answer accepted: a page of values of etcd's largest
/// request size (1.5 MiB by default) with room to spare.
const MAX_PAGE_BYTES: usize = 256 << 20;
/// Differences named in the detail (the rest are counted).
const SHOWN: usize = 5;

/// What the comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentReport {
    /// Keys the same on both sides.
    pub same: u64,
    /// Keys in the snapshot that the member does not have.
    pub missing: u64,
    /// Keys the member has that the snapshot does not.
    pub extra: u64,
    /// Keys on both sides that differ (value or revisions).
    pub differ: u64,
    /// The first differences, described.
    pub examples: Vec<String>,
}

impl ContentReport {
    /// Whether the member holds exactly the snapshot's keys.
    pub fn matches(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.differ == 0
    }

    fn note(&mut self, what: String) {
        if self.examples.len() < SHOWN {
            self.examples.push(what);
        }
    }
}

/// One key as the member serves it.
struct Served {
    key: Vec<u8>,
    value: Vec<u8>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
}

/// How `want` and `got` differ, if they do.
fn difference(want: &KeyValue<'_>, got: &Served) -> Option<String> {
    let mut parts = Vec::new();
    if want.value != got.value.as_slice() {
        parts.push(format!(
            "value ({} bytes in the snapshot, {} on the member)",
            want.value.len(),
            got.value.len()
        ));
    }
    for (name, a, b) in [
        ("create revision", want.create_revision, got.create_revision),
        ("mod revision", want.mod_revision, got.mod_revision),
        ("version", want.version, got.version),
        ("lease", want.lease, got.lease),
    ] {
        if a != b {
            parts.push(format!("{name} {a} in the snapshot, {b} on the member"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Compares the keys `m` serves at `at` with `want`, the snapshot's live
/// keys (sorted by key). An error says why the member could not be read.
pub fn compare_content(
    live: &Live,
    m: &Member,
    at: i64,
    want: &[KeyValue<'_>],
) -> Result<ContentReport, String> {
    let mut report = ContentReport::default();
    let mut i = 0usize;
    // Every key is at least "\0": start there, and after each page just past
    // its last key.
    let mut from: Vec<u8> = vec![0];
    loop {
        let mut kv = m
            .client
            .kv_client()
            .max_decoding_message_size(MAX_PAGE_BYTES);
        let opts = GetOptions::new()
            .with_from_key()
            .with_revision(at)
            .with_limit(PAGE)
            .with_serializable();
        let key = from.clone();
        let mut resp = live
            .unary(m, "Range", async move { kv.get(key, Some(opts)).await })
            .map_err(|e| e.to_string())?;
        let more = resp.more();
        let page: Vec<Served> = resp
            .take_kvs()
            .into_iter()
            .map(|k| Served {
                key: k.key().to_vec(),
                value: k.value().to_vec(),
                create_revision: k.create_revision(),
                mod_revision: k.mod_revision(),
                version: k.version(),
                lease: k.lease(),
            })
            .collect();
        for got in &page {
            // Snapshot keys before this one are missing on the member.
            while let Some(w) = want.get(i)
                && w.key < got.key.as_slice()
            {
                report.missing += 1;
                report.note(format!("{} is missing", escape_bytes(w.key)));
                i += 1;
            }
            match want.get(i).map(|w| w.key.cmp(got.key.as_slice())) {
                Some(Ordering::Equal) => {
                    match difference(&want[i], got) {
                        None => report.same += 1,
                        Some(d) => {
                            report.differ += 1;
                            report.note(format!("{}: {d}", escape_bytes(&got.key)));
                        }
                    }
                    i += 1;
                }
                _ => {
                    report.extra += 1;
                    report.note(format!("{} is not in the snapshot", escape_bytes(&got.key)));
                }
            }
        }
        match page.last() {
            Some(last) if more => {
                from = last.key.clone();
                from.push(0);
            }
            _ => break,
        }
    }
    for w in &want[i.min(want.len())..] {
        report.missing += 1;
        report.note(format!("{} is missing", escape_bytes(w.key)));
    }
    Ok(report)
}
