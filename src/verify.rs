//! `verify`: every check of a snapshot file, run together.
//!
//! The sha256 of the db bytes is the slowest part on CPUs without SHA
//! instructions, so it runs on its own thread while the other core walks the
//! file once for the bbolt structure checks and etcd's layout checks. Each
//! check ends passed, failed or skipped, with its problems located.

use serde::Serialize;

use crate::backend::layout::{KeySpace, LayoutChecker};
use crate::backend::meta::MetaInfo;
use crate::bolt::check::{ProblemCollector, check_meta, open_problems};
use crate::bolt::{Db, LeafElement, Stats, Visitor, Walker};
use crate::input::{Compression, Digests, Excess, SnapshotFile, TRAILER_LEN, split_trailer};
use crate::problem::{Problem, Problems};

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The check ran and found nothing wrong.
    Passed,
    /// The check found something wrong.
    Failed,
    /// The check did not run (what it needs is missing or could not be read).
    Skipped,
}

/// One check of a snapshot: its outcome, what it saw, the problems found.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The check's name as outputs show it.
    pub name: &'static str,
    /// Its outcome.
    pub status: CheckStatus,
    /// What it saw (or why it was skipped).
    pub detail: String,
    /// The problems found, at most [`crate::problem::Problems::CAP`].
    pub problems: Vec<Problem>,
    /// Problems found beyond those listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Check {
    fn new(name: &'static str, problems: Problems, passed: String, failed: &str) -> Check {
        let status = if problems.is_empty() {
            CheckStatus::Passed
        } else {
            CheckStatus::Failed
        };
        let detail = if problems.is_empty() {
            passed
        } else {
            let n = problems.total();
            format!(
                "{n} {}: {failed}",
                if n == 1 { "problem" } else { "problems" }
            )
        };
        Check {
            name,
            status,
            detail,
            problems: problems.items,
            omitted: problems.omitted,
        }
    }

    fn skipped(name: &'static str, why: &str) -> Check {
        Check {
            name,
            status: CheckStatus::Skipped,
            detail: why.to_string(),
            problems: Vec::new(),
            omitted: 0,
        }
    }
}

/// What the file holds, as far as it could be read.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Bytes of the file as read (decompressed).
    pub file_size: u64,
    /// How the file was stored.
    pub compression: &'static str,
    /// Whether the file ends with a sha256 trailer.
    pub has_trailer: bool,
    /// The sha256 of the whole (decompressed) file, db and trailer, as
    /// `sha256sum` prints it; taken with the trailer check, so only for a
    /// file that has a trailer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The page size the meta page in force names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u64>,
    /// The meta page in force (0 or 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_in_force: Option<u64>,
    /// Its transaction id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<u64>,
    /// Its high-water mark (pages in use or free, from the start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_water_mark: Option<u64>,
    /// High-water mark times page size: the bytes bbolt considers the database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_size: Option<u64>,
    /// What the walk of the pages counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<Stats>,
    /// Every top-level bucket's name.
    pub buckets: Vec<String>,
    /// etcd's buckets that every snapshot has and this one lacks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_usual_buckets: Vec<String>,
    /// The key bucket's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyspace: Option<KeySpace>,
    /// What the meta bucket records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<MetaInfo>,
    /// What was noticed about the input besides the checks (e.g. what a
    /// compressed file held past its db).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What `verify` found: every check, and whether all passed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The file checked.
    pub file: String,
    /// Whether every check passed.
    pub passed: bool,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The file's figures.
    pub summary: Summary,
}

impl Report {
    /// The checks that failed.
    pub fn failed_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
    }
}

/// One visitor that feeds both the structure collector and the layout checker.
struct Both<'a> {
    pages: ProblemCollector,
    layout: LayoutChecker<'a>,
}

impl<'a> Visitor<'a> for Both<'a> {
    fn problem(&mut self, problem: Problem) -> std::ops::ControlFlow<()> {
        self.pages.problem(problem)
    }
    fn entry(&mut self, path: &[&'a [u8]], e: &LeafElement<'a>) -> std::ops::ControlFlow<()> {
        self.layout.entry(path, e)
    }
}

/// The sha256 check, and for a file with a trailer the sha256 of the whole
/// file (db and trailer: what `sha256sum` prints), taken in the same pass.
fn sha256_check(db: &[u8], trailer: Option<&[u8]>) -> (Check, Option<String>) {
    let Some(trailer) = trailer else {
        if !db.len().is_multiple_of(512) {
            let mut problems = Problems::default();
            problems.push(
                Problem::new(format!(
                    "file size {} is neither whole 512-byte blocks (a data dir's db) nor that plus a 32-byte sha256 trailer: truncated, or a damaged trailer",
                    db.len()
                ))
                .at_offset(db.len() as u64 - (db.len() % 512) as u64),
            );
            return (
                Check::new("sha256", problems, String::new(), "damaged or cut trailer"),
                None,
            );
        }
        if let Some(at) = trailer_inside(db) {
            let mut problems = Problems::default();
            problems.push(Problem::new(Excess::AfterTrailer { at }.describe()).at_offset(at));
            return (
                Check::new(
                    "sha256",
                    problems,
                    String::new(),
                    "the file does not end with its trailer",
                ),
                None,
            );
        }
        return (
            Check::skipped(
                "sha256",
                "no sha256 trailer (size % 512 != 32): a copy of a data dir's member/snap/db, not a `snapshot save` file",
            ),
            None,
        );
    };
    // The db bytes' digest, then (the same pass) the whole file's.
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(db);
    let mut digest = [0u8; 32];
    digest.copy_from_slice(ctx.clone().finish().as_ref());
    ctx.update(trailer);
    let mut file = [0u8; 32];
    file.copy_from_slice(ctx.finish().as_ref());
    trailer_check(db.len(), trailer, (digest, file))
}

/// The sha256 check from the db bytes' digest and the whole file's.
fn trailer_check(
    db_len: usize,
    trailer: &[u8],
    (digest, file): ([u8; 32], [u8; 32]),
) -> (Check, Option<String>) {
    let file = hex(&file);
    let mut problems = Problems::default();
    if digest != trailer {
        problems.push(
            Problem::new(format!(
                "sha256 of the {} db bytes is {} but the trailer says {}",
                db_len,
                hex(&digest),
                hex(trailer)
            ))
            .at_offset(db_len as u64),
        );
    }
    (
        Check::new(
            "sha256",
            problems,
            format!("trailer matches the db bytes ({})", hex(trailer)),
            "the file changed after `snapshot save` wrote it",
        ),
        Some(file),
    )
}

/// For a file without a trailer at its end: whether a `snapshot save` file's
/// trailer sits right after the db (its meta's high-water mark × page size)
/// with more data after it, as when whole blocks are appended to a snapshot.
/// Returns where the data after the trailer starts. A data dir's growth slack
/// (zeros, or anything that is not the db's digest) gives `None`.
fn trailer_inside(bytes: &[u8]) -> Option<u64> {
    let size = usize::try_from(crate::input::db_len(bytes)?).ok()?;
    let end = size.checked_add(TRAILER_LEN)?;
    let candidate = bytes.get(size..end)?;
    if end == bytes.len() || candidate.iter().all(|&b| b == 0) {
        return None;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes[..size]);
    (digest.as_ref() == candidate).then_some(end as u64)
}

/// The sha256 check from its thread's result. A thread that failed has not
/// checked anything, and an unchecked digest cannot pass: that is a failure,
/// never a skip.
fn joined_sha(result: std::thread::Result<(Check, Option<String>)>) -> (Check, Option<String>) {
    result.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no reason given".into());
        let mut problems = Problems::default();
        problems.push(Problem::new(format!(
            "the sha256 could not be computed: its thread failed ({why})"
        )));
        (
            Check::new("sha256", problems, String::new(), "not checked"),
            None,
        )
    })
}

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs every check on an opened snapshot file.
///
/// ```
/// use etcdsnap::input::SnapshotFile;
///
/// let file = SnapshotFile::open("fixtures/etcd-3.5.1.db".as_ref())?;
/// let report = etcdsnap::verify::verify(&file);
/// assert!(report.passed);
/// assert_eq!(report.failed_checks().count(), 0);
/// assert!(report.checks.iter().any(|c| c.name == "sha256"));
/// # Ok::<(), etcdsnap::input::InputError>(())
/// ```
pub fn verify(file: &SnapshotFile) -> Report {
    let mut report = verify_with_digests(
        &file.path().display().to_string(),
        file.bytes(),
        file.compression(),
        file.digests(),
    );
    if let Some(excess) = file.excess() {
        add_excess(&mut report, excess);
    }
    report
}

/// What a compressed file held past its db: a note, and for data after a
/// trailer a failed sha256 check (a `snapshot save` file ends there).
fn add_excess(report: &mut Report, excess: Excess) {
    report.summary.notes.push(excess.describe());
    let Excess::AfterTrailer { at } = excess else {
        return;
    };
    if let Some(sha) = report.checks.iter_mut().find(|c| c.name == "sha256") {
        sha.status = CheckStatus::Failed;
        sha.problems
            .push(Problem::new(excess.describe()).at_offset(at));
        let n = sha.problems.len();
        sha.detail = format!(
            "{n} {}: the file does not end with its trailer",
            if n == 1 { "problem" } else { "problems" }
        );
    }
    report.passed = false;
}

/// Runs every check on the bytes of a (decompressed) snapshot file.
pub fn verify_bytes(name: &str, bytes: &[u8], compression: Compression) -> Report {
    verify_with_digests(name, bytes, compression, None)
}

/// [`verify_bytes`] with the bytes' digests already taken (a remote object's,
/// as it streamed in): the trailer is checked against them, not hashed again.
fn verify_with_digests(
    name: &str,
    bytes: &[u8],
    compression: Compression,
    digests: Option<&Digests>,
) -> Report {
    verify_parts(name, bytes, compression, digests, None)
}

/// The report from its parts: the structure checks, when they were run
/// already (beside a transfer), else run here beside the sha256.
fn verify_parts(
    name: &str,
    bytes: &[u8],
    compression: Compression,
    digests: Option<&Digests>,
    structure: Option<Structure>,
) -> Report {
    let (db, trailer) = split_trailer(bytes);
    let known = digests.and_then(|d| Some((d.but_last_32?, d.all)));
    let (sha, (mut checks, mut summary)) = std::thread::scope(|s| {
        if let (Some(known), Some(trailer)) = (known, trailer) {
            let rest = structure.unwrap_or_else(|| structure_checks(db, None));
            return (Ok(trailer_check(db.len(), trailer, known)), rest);
        }
        if let Some(rest) = structure {
            return (Ok(sha256_check(db, trailer)), rest);
        }
        let sha = std::thread::Builder::new()
            .name("sha256".into())
            .spawn_scoped(s, || sha256_check(db, trailer));
        let rest = structure_checks(db, None);
        let sha = match sha {
            Ok(handle) => handle.join(),
            // No thread to be had: hash here, after the walk.
            Err(_) => Ok(sha256_check(db, trailer)),
        };
        (sha, rest)
    });
    summary.file_size = bytes.len() as u64;
    summary.compression = compression.name();
    summary.has_trailer = trailer.is_some();
    let (sha, file_sha) = joined_sha(sha);
    summary.sha256 = file_sha;
    checks.insert(0, sha);
    let passed = checks.iter().all(|c| c.status != CheckStatus::Failed);
    Report {
        file: name.to_string(),
        passed,
        checks,
        summary,
    }
}

/// What the structure checks give: every check but the sha256, and the
/// figures.
type Structure = (Vec<Check>, Summary);

/// Opens `path` and verifies it. A remote object stored uncompressed is
/// checked while it streams in: the structure checks walk its pages as they
/// arrive (reading the few that a walk needs long before the stream gets
/// there by range requests), and the sha256 is the one taken of the
/// stream, so the report is ready soon after the last byte; the report
/// then comes with the file. Otherwise the report is `None`: the caller
/// runs [`verify`] on the file (or `kube::deep::verify_with_values`).
pub fn open_verifying(
    path: &std::path::Path,
) -> Result<(SnapshotFile, Option<Report>), crate::input::InputError> {
    #[cfg(feature = "remote")]
    {
        let (file, structure) = SnapshotFile::open_beside(path, structure_beside)?;
        let report = structure.flatten().map(|st| {
            verify_parts(
                &file.path().display().to_string(),
                file.bytes(),
                file.compression(),
                file.digests(),
                Some(st),
            )
        });
        Ok((file, report))
    }
    #[cfg(not(feature = "remote"))]
    Ok((SnapshotFile::open(path)?, None))
}

/// The structure checks of a remote object as it streams in; `None` for a
/// compressed one (what is checked is the inflated file).
#[cfg(feature = "remote")]
fn structure_beside(g: &crate::remote::Growing) -> Option<Structure> {
    /// Bytes the opening reads: both meta pages at the largest page size,
    /// and the probe for meta page 1 (up to 16 MiB in).
    const HEAD: u64 = (16 << 20) + 2 * crate::bolt::meta::MAX_PAGE_SIZE as u64;
    let size = g.size();
    g.reach(0, size.min(4)).ok()?;
    let head = g.bytes().get(..size.min(4) as usize)?;
    if Compression::detect(head) != Compression::None {
        return None;
    }
    let (db, _) = split_trailer(g.bytes());
    let len = db.len() as u64;
    // A valid meta page 0 names the page size, and both meta pages are in
    // the first two pages; else the opening probes for meta page 1.
    g.reach(0, len.min(4096)).ok()?;
    let head = match crate::bolt::meta::Meta::parse(db) {
        Ok(m) => 2 * u64::from(m.page_size),
        Err(_) => HEAD,
    };
    g.reach(0, len.min(head)).ok()?;
    // The page size the walk will read with (a file that does not open
    // reads no pages).
    let page_size = Db::open(db).map_or(4096, |d| d.page_size() as u64);
    let pager = GrowingPager(g, page_size);
    Some(structure_checks(db, Some(&pager)))
}

/// The pages of an object streaming in, of the page size given, for the
/// walk.
#[cfg(feature = "remote")]
struct GrowingPager<'g>(&'g crate::remote::Growing, u64);

#[cfg(feature = "remote")]
impl crate::bolt::db::Pager for GrowingPager<'_> {
    fn ensure(&self, first: u64, count: u64) -> Result<(), String> {
        let start = first.saturating_mul(self.1);
        self.0
            .reach(start, start.saturating_add(count.saturating_mul(self.1)))
    }
}

fn structure_checks(db_bytes: &[u8], pager: Option<&dyn crate::bolt::db::Pager>) -> Structure {
    let mut summary = Summary::default();
    let skip = "skipped: the bbolt file cannot be opened";
    let db = match Db::open(db_bytes) {
        Ok(db) => match pager {
            Some(p) => db.with_pager(p),
            None => db,
        },
        Err(e) => {
            let checks = vec![
                Check::new(
                    "bolt-meta",
                    open_problems(&e),
                    String::new(),
                    "not a readable bbolt file",
                ),
                Check::skipped("bolt-pages", skip),
                Check::skipped("etcd-buckets", skip),
                Check::skipped("etcd-keys", skip),
                Check::skipped("etcd-meta", skip),
            ];
            return (checks, summary);
        }
    };
    let meta = *db.meta();
    summary.page_size = Some(db.page_size() as u64);
    summary.meta_in_force = Some(db.active_meta_index() as u64);
    summary.txid = Some(meta.txid);
    summary.high_water_mark = Some(meta.pgid);
    summary.total_size = Some(db.size());

    let meta_check = Check::new(
        "bolt-meta",
        check_meta(&db),
        format!(
            "both meta pages valid; page {} in force (txid {}), page size {}, {} pages",
            db.active_meta_index(),
            meta.txid,
            db.page_size(),
            meta.pgid
        ),
        "meta pages damaged",
    );

    let mut both = Both {
        pages: ProblemCollector::default(),
        layout: LayoutChecker::default(),
    };
    let mut walker = Walker::new(&db);
    let _ = walker.walk_root(&mut both);
    let stats = walker.stats.clone();
    both.layout.finish();
    let layout = both.layout;

    let pages_check = Check::new(
        "bolt-pages",
        both.pages.problems,
        format!(
            "{} branch, {} leaf, {} overflow, {} free pages; {} buckets, {} entries; every page reached once, keys in order",
            stats.branch_pages,
            stats.leaf_pages,
            stats.overflow_pages,
            stats.free_pages,
            stats.buckets,
            stats.entries
        ),
        "bbolt structure damaged",
    );
    let missing = layout.missing_usual_buckets();
    let buckets_check = Check::new(
        "etcd-buckets",
        layout.bucket_problems.clone(),
        if missing.is_empty() {
            format!("all {} of etcd's buckets present", layout.buckets.len())
        } else {
            format!(
                "key and meta present; absent (etcd creates them at start): {}",
                missing.join(", ")
            )
        },
        "not an etcd backend",
    );
    let ks = &layout.keyspace;
    let keys_check = Check::new(
        "etcd-keys",
        layout.key_problems.clone(),
        format!(
            "{} revisions ({} puts, {} tombstones) of {} keys, {} live; revision {}",
            ks.revisions, ks.puts, ks.tombstones, ks.keys, ks.live_keys, ks.revision
        ),
        "key bucket inconsistent",
    );
    let m = &layout.meta;
    let meta_bucket_check = Check::new(
        "etcd-meta",
        layout.meta_problems.clone(),
        format!(
            "consistent_index {}, term {}, compacted at {}",
            opt(m.consistent_index),
            opt(m.term),
            opt(m.finished_compact_revision)
        ),
        "meta bucket inconsistent",
    );
    summary.pages = Some(stats);
    summary.missing_usual_buckets = missing;
    summary.buckets = layout.buckets.clone();
    summary.keyspace = Some(layout.keyspace.clone());
    summary.meta = Some(layout.meta.clone());
    (
        vec![
            meta_check,
            pages_check,
            buckets_check,
            keys_check,
            meta_bucket_check,
        ],
        summary,
    )
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_sha256_thread_fails_the_check() {
        let (c, digest) = joined_sha(Err(Box::new("boom")));
        assert!(digest.is_none());
        assert_eq!(c.status, CheckStatus::Failed);
        assert!(c.problems[0].message.contains("boom"), "{:?}", c.problems);
    }
}
