//! The corruption suite: damaged copies of the real fixtures must make `verify`
//! fail (exit 1) with a message that says where and what, and never crash,
//! hang or read out of bounds.
//!
//! Most cases run twice: with the sha256 trailer (which catches any change) and
//! with the trailer removed, as for a data dir's `member/snap/db`, so that the
//! structure checks alone must find the damage.

use crate::common;

use std::panic;

use common::*;
use etcdsnap::bolt::page::{BucketRoot, FLAG_BRANCH, FLAG_LEAF, le_u64};
use etcdsnap::bolt::{Db, meta, read};
use etcdsnap::input::Compression;
use etcdsnap::verify::{CheckStatus, Report, verify_bytes};

const TRAILER: usize = 32;

fn load(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn strip(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len() - TRAILER].to_vec()
}

fn check(bytes: &[u8]) -> Report {
    let r = panic::catch_unwind(|| verify_bytes("test", bytes, Compression::None));
    r.expect("verify panicked")
}

fn failed(r: &Report, check_name: &str) -> bool {
    r.checks
        .iter()
        .any(|c| c.name == check_name && c.status == CheckStatus::Failed)
}

fn messages(r: &Report) -> String {
    let mut s = String::new();
    for c in &r.checks {
        for p in &c.problems {
            s.push_str(&format!("{}: {p}\n", c.name));
        }
    }
    s
}

/// Reachable branch and leaf pages: (pgid, flags), plus the key bucket's leaves.
struct Pages {
    page_size: usize,
    nodes: Vec<(u64, u16)>,
    key_leaves: Vec<u64>,
    hwm: u64,
}

fn pages(db_bytes: &[u8]) -> Pages {
    let db = Db::open(db_bytes).unwrap();
    let mut nodes = Vec::new();
    fn walk(db: &Db, pgid: u64, out: &mut Vec<(u64, u16)>) {
        let n = db.node(pgid).unwrap();
        out.push((pgid, n.header.flags));
        if n.header.flags == FLAG_BRANCH {
            for i in 0..n.count() {
                walk(db, n.branch(i).unwrap().child, out);
            }
        }
    }
    walk(&db, db.meta().root, &mut nodes);
    let mut key_leaves = Vec::new();
    for b in read::buckets(&db).unwrap() {
        if let BucketRoot::Page(root) = b.header.root {
            let mut sub = Vec::new();
            walk(&db, root, &mut sub);
            if b.name == b"key" {
                key_leaves = sub
                    .iter()
                    .filter(|(_, f)| *f == FLAG_LEAF)
                    .map(|(p, _)| *p)
                    .collect();
            }
            nodes.extend(sub);
        }
    }
    Pages {
        page_size: db.page_size(),
        nodes,
        key_leaves,
        hwm: db.hwm(),
    }
}

/// Asserts that `bytes` fails verification and that the problems mention `needle`.
fn assert_detected(bytes: &[u8], check_name: &str, needle: &str, what: &str) {
    let r = check(bytes);
    assert!(!r.passed, "{what}: verify passed");
    assert!(
        failed(&r, check_name),
        "{what}: check {check_name} did not fail; problems:\n{}",
        messages(&r)
    );
    let m = messages(&r);
    assert!(
        m.contains(needle),
        "{what}: no problem mentions {needle:?}:\n{m}"
    );
}

fn fixtures_pass(name: &str) {
    let bytes = load(name);
    let r = check(&bytes);
    assert!(r.passed, "{name}:\n{}", messages(&r));
    let r = check(&strip(&bytes));
    assert!(r.passed, "{name} without trailer:\n{}", messages(&r));
    assert!(r.checks[0].status == CheckStatus::Skipped);
}
per_release!(
    fixtures_pass:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

fn truncations_fail_via_the_binary(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = load(name);
    let len = bytes.len();
    let cuts = [
        0,
        1,
        16,
        100,
        4095,
        4096,
        8191,
        8192,
        8192 + 100,
        12288,
        len / 2,
        len - 4096,
        len - 4096 - 32,
        len - 33,
        len - 1,
    ];
    for cut in cuts {
        let p = dir.path().join(format!("{name}.cut{cut}"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let o = run(&["verify", p.to_str().unwrap()]);
        let out = stdout(&o) + &stderr(&o);
        assert_eq!(o.status.code(), Some(1), "cut at {cut}: {out}");
        assert!(out.contains("FAILED"), "cut at {cut}: {out}");
        assert!(
            out.contains("page ")
                || out.contains("offset ")
                || out.contains("empty")
                || out.contains("sha256"),
            "cut at {cut}: message does not locate the problem: {out}"
        );
        // status fails too when the db part is cut (like etcdutl, it ignores
        // the trailer), with an exit code and a message, not a crash.
        let s = run(&["status", p.to_str().unwrap()]);
        if cut < len - TRAILER {
            assert_eq!(
                s.status.code(),
                Some(1),
                "status, cut at {cut}: {}",
                stderr(&s)
            );
            assert!(!stderr(&s).is_empty());
        } else {
            assert_eq!(
                s.status.code(),
                Some(0),
                "status, cut at {cut}: {}",
                stderr(&s)
            );
        }
    }
}
per_release!(
    truncations_fail_via_the_binary:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

#[test]
fn missing_file_is_exit_2() {
    let o = run(&["verify", "/nonexistent/snapshot.db"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/snapshot.db"));
    // Every command says the OS error once.
    for cmd in [
        "status", "verify", "ls", "get", "history", "index", "restore",
    ] {
        let args: &[&str] = match cmd {
            "get" | "history" => &[cmd, "/nonexistent/snapshot.db", "/registry/x"],
            _ => &[cmd, "/nonexistent/snapshot.db"],
        };
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).matches("os error 2").count(),
            1,
            "{cmd}: {}",
            stderr(&o)
        );
    }
    let o = run(&["verify"]);
    assert_eq!(o.status.code(), Some(2), "usage error");
}

fn flipped_meta_bytes_are_found_in_either_meta_page(name: &str) {
    let bytes = load(name);
    let ps = pages(&strip(&bytes)).page_size;
    for page in [0usize, 1] {
        // magic, version, page size, flags, root, sequence, freelist, pgid, txid, checksum
        for field in [16usize, 20, 24, 28, 32, 40, 48, 56, 64, 72] {
            let off = page * ps + field;
            for with_trailer in [true, false] {
                let mut b = if with_trailer {
                    bytes.clone()
                } else {
                    strip(&bytes)
                };
                b[off] ^= 0x01;
                let what = format!("{name}: meta page {page} byte {field}");
                assert_detected(&b, "bolt-meta", &format!("page {page}"), &what);
                if with_trailer {
                    assert!(failed(&check(&b), "sha256"), "{what}");
                }
            }
        }
        // The page header of a meta page: id and flags.
        for field in [0usize, 8] {
            let mut b = strip(&bytes);
            b[page * ps + field] ^= 0x02;
            assert_detected(
                &b,
                "bolt-meta",
                &format!("page {page}"),
                &format!("{name}: meta page {page} header byte {field}"),
            );
        }
    }
}
per_release!(
    flipped_meta_bytes_are_found_in_either_meta_page:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

fn flipped_page_headers_are_found(name: &str) {
    let db = strip(&load(name));
    let p = pages(&db);
    for &(pgid, _) in &p.nodes {
        let base = pgid as usize * p.page_size;
        // id, flags, the high byte of overflow
        for (field, mask) in [(0usize, 0x04u8), (8, 0x08), (8, 0x01), (15, 0x80)] {
            let mut b = db.clone();
            b[base + field] ^= mask;
            assert_detected(
                &b,
                "bolt-pages",
                &format!("page {pgid}"),
                &format!("{name}: page {pgid} header byte {field} ^ {mask:#x}"),
            );
        }
    }
}
per_release!(
    flipped_page_headers_are_found:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

fn damaged_branch_and_leaf_elements_are_found(name: &str) {
    let db = strip(&load(name));
    let p = pages(&db);
    let mut branches = 0;
    for &(pgid, flags) in &p.nodes {
        let base = pgid as usize * p.page_size;
        let count = u16::from_le_bytes([db[base + 10], db[base + 11]]) as usize;
        for i in 0..count {
            let e = base + 16 + i * 16;
            if flags == FLAG_BRANCH {
                branches += 1;
                // child pgid past the high-water mark, and pointing at a meta page
                for child in [p.hwm + 7, 0] {
                    let mut b = db.clone();
                    b[e + 8..e + 16].copy_from_slice(&child.to_le_bytes());
                    assert_detected(
                        &b,
                        "bolt-pages",
                        &format!("page {child}"),
                        &format!("{name}: branch page {pgid} element {i} child {child}"),
                    );
                }
                // key position out of the page
                let mut b = db.clone();
                b[e + 3] = 0x7f;
                assert_detected(
                    &b,
                    "bolt-pages",
                    &format!("page {pgid}"),
                    &format!("{name}: branch page {pgid} element {i} pos"),
                );
            } else {
                // key size and value size out of the page
                for field in [4 + 3, 8 + 3, 12 + 3] {
                    let mut b = db.clone();
                    b[e + field] = 0x7f;
                    assert_detected(
                        &b,
                        "bolt-pages",
                        &format!("page {pgid}"),
                        &format!("{name}: leaf page {pgid} element {i} byte {field}"),
                    );
                }
            }
        }
    }
    let _ = branches;
    // A revision key changed in place: order or mod_revision no longer fit.
    for &leaf in &p.key_leaves {
        let base = leaf as usize * p.page_size;
        let count = u16::from_le_bytes([db[base + 10], db[base + 11]]) as usize;
        for i in 0..count {
            let e = base + 16 + i * 16;
            let pos = u32::from_le_bytes(db[e + 4..e + 8].try_into().unwrap()) as usize;
            let key_at = e + pos;
            let mut b = db.clone();
            b[key_at + 7] ^= 0x40; // low byte of the main revision
            let r = check(&b);
            assert!(
                failed(&r, "bolt-pages") || failed(&r, "etcd-keys"),
                "{name}: key bucket leaf {leaf} element {i}: not detected\n{}",
                messages(&r)
            );
            // The bucket flag on a plain key/value.
            let mut b = db.clone();
            b[e] |= 0x01;
            let r = check(&b);
            assert!(!r.passed, "{name}: bucket flag on key {i} of page {leaf}");
        }
    }
}
per_release!(
    damaged_branch_and_leaf_elements_are_found:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

fn sha_trailer_damage_is_found(name: &str) {
    let bytes = load(name);
    for back in [1usize, 16, 32] {
        let mut b = bytes.clone();
        let at = b.len() - back;
        b[at] ^= 0xff;
        assert_detected(
            &b,
            "sha256",
            "trailer",
            &format!("{name}: trailer byte -{back}"),
        );
    }
    // A byte of a free page: invisible to the structure, not to the digest.
    let mut b = bytes.clone();
    let db = strip(&bytes);
    let p = pages(&db);
    let reached: std::collections::HashSet<u64> = p.nodes.iter().map(|x| x.0).collect();
    if let Some(free) = (2..p.hwm).find(|id| !reached.contains(id)) {
        b[free as usize * p.page_size + 100] ^= 1;
        assert_detected(&b, "sha256", "sha256", &format!("{name}: free page {free}"));
    }
}
per_release!(
    sha_trailer_damage_is_found:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

/// Writes a persisted freelist into a copy (etcd on Linux never persists one,
/// but files from other platforms and tools do), listing `ids`.
fn with_freelist(db: &[u8], at: u64, ids: &[u64]) -> Vec<u8> {
    let mut b = db.to_vec();
    let d = Db::open(db).unwrap();
    let ps = d.page_size();
    let base = at as usize * ps;
    b[base..base + ps].fill(0);
    b[base..base + 8].copy_from_slice(&at.to_le_bytes());
    b[base + 8..base + 10].copy_from_slice(&0x10u16.to_le_bytes());
    b[base + 10..base + 12].copy_from_slice(&(ids.len() as u16).to_le_bytes());
    for (i, id) in ids.iter().enumerate() {
        b[base + 16 + 8 * i..base + 24 + 8 * i].copy_from_slice(&id.to_le_bytes());
    }
    for page in 0..2 {
        let m = page * ps + 16;
        b[m + 32..m + 40].copy_from_slice(&at.to_le_bytes());
        let sum = meta::checksum(&b[m..m + 56]);
        b[m + 56..m + 64].copy_from_slice(&sum.to_le_bytes());
    }
    b
}

fn freelist_damage_is_found(name: &str) {
    let db = strip(&load(name));
    let p = pages(&db);
    let reached: std::collections::HashSet<u64> = p.nodes.iter().map(|x| x.0).collect();
    // Overflow pages are reached too: mark them.
    let d = Db::open(&db).unwrap();
    let mut covered = reached.clone();
    for &id in &reached {
        let h = d.header(id).unwrap();
        for extra in 1..=u64::from(h.overflow) {
            covered.insert(id + extra);
        }
    }
    let free: Vec<u64> = (2..p.hwm).filter(|id| !covered.contains(id)).collect();
    assert!(
        free.len() >= 3,
        "{name}: fixture needs free pages, has {free:?}"
    );
    let at = free[0];
    let rest = &free[1..];

    let good = with_freelist(&db, at, rest);
    assert_eq!(le_u64(&good, 16 + 32), Some(at));
    let r = check(&good);
    assert!(
        r.passed,
        "{name}: a correct persisted freelist fails:\n{}",
        messages(&r)
    );

    let mut dup = rest.to_vec();
    dup.push(rest[0]);
    assert_detected(
        &with_freelist(&db, at, &dup),
        "bolt-pages",
        "already freed",
        name,
    );

    let reachable = *reached.iter().max().unwrap();
    let mut with_reached = rest.to_vec();
    with_reached.push(reachable);
    with_reached.sort();
    assert_detected(
        &with_freelist(&db, at, &with_reached),
        "bolt-pages",
        "reachable freed",
        name,
    );

    let mut past = rest.to_vec();
    past.push(p.hwm + 3);
    assert_detected(
        &with_freelist(&db, at, &past),
        "bolt-pages",
        "outside",
        name,
    );

    assert_detected(
        &with_freelist(&db, at, &rest[1..]),
        "bolt-pages",
        "unreachable unfreed",
        name,
    );

    let mut bad_type = good.clone();
    bad_type[at as usize * p.page_size + 8] = 0x02;
    assert_detected(&bad_type, "bolt-pages", "freelist", name);
}
per_release!(
    freelist_damage_is_found:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

#[test]
fn random_and_mutated_inputs_never_crash() {
    let mut rng = Rng::new(0x5eed);
    let base = strip(&load("etcd-3.5.1.db"));
    let ps = 4096usize;
    for round in 0..300 {
        let len = match round % 3 {
            0 => rng.below(3 * ps as u64) as usize,
            1 => (rng.below(40) as usize + 2) * ps,
            _ => base.len(),
        };
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 3 == 2 {
            // A real file with a burst of random bytes: most structure stays valid.
            b.copy_from_slice(&base);
            let at = rng.below(len as u64) as usize;
            let n = (rng.below(64) as usize).min(len - at);
            for x in &mut b[at..at + n] {
                *x = rng.next() as u8;
            }
        } else if round % 3 == 1 {
            // Valid meta pages over random data: the walk must stay in bounds.
            b[..2 * ps].copy_from_slice(&base[..2 * ps]);
        }
        let r = check(&b);
        if round % 3 != 2 {
            assert!(!r.passed, "round {round}: random bytes passed");
        }
    }
}

#[test]
fn every_byte_of_a_file_can_be_damaged_safely() {
    // Strided over the whole file: each flip must leave verify able to finish.
    let base = strip(&load("etcd-3.4.23.db"));
    for off in (0..base.len()).step_by(29) {
        let mut b = base.clone();
        b[off] ^= 0xa5;
        let _ = check(&b);
        panic::catch_unwind(|| {
            if let Ok(db) = Db::open(&b) {
                let _ = etcdsnap::backend::status::status(&db);
            }
        })
        .expect("status panicked");
    }
}

/// An emptied value in the `key` bucket is damage: only the bump marker that
/// a revision bump writes (the revision meta's scheduledCompactRev names) may
/// be empty.
fn an_emptied_key_value_fails_verify(name: &str) {
    let db = strip(&load(name));
    let p = pages(&db);
    let leaf = p.key_leaves[0];
    let base = leaf as usize * p.page_size;
    let count = u16::from_le_bytes([db[base + 10], db[base + 11]]) as usize;
    for i in [0usize, count - 1] {
        let e = base + 16 + i * 16;
        let mut b = db.clone();
        b[e + 12..e + 16].copy_from_slice(&0u32.to_le_bytes());
        assert_detected(
            &b,
            "etcd-keys",
            "empty value",
            &format!("{name}: key leaf {leaf} element {i} emptied"),
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("emptied.db");
        std::fs::write(&f, &b).unwrap();
        let o = run(&["verify", "-q", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    }
}
per_release!(
    an_emptied_key_value_fails_verify:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

/// The marker `restore --bump-revision` writes passes; the same file with
/// scheduledCompactRev pointing elsewhere does not.
#[test]
fn the_bump_marker_alone_may_be_empty() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("m1.etcd");
    let snap = fixture("etcd-3.5.1.db");
    let o = run(&[
        "restore",
        snap.to_str().unwrap(),
        "--name",
        "m1",
        "--initial-cluster",
        "m1=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--bump-revision",
        "1000",
        "--mark-compacted",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let db_path = data_dir.join("member/snap/db");
    let r = run(&["verify", db_path.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0), "{}", stdout(&r));
    // Move scheduledCompactRev one revision down: the marker is now unexplained.
    let mut b = std::fs::read(&db_path).unwrap();
    let at = b
        .windows(19)
        .position(|w| w == b"scheduledCompactRev")
        .expect("meta holds scheduledCompactRev");
    let value = at + 19;
    let main = i64::from_be_bytes(b[value..value + 8].try_into().unwrap());
    b[value..value + 8].copy_from_slice(&(main - 1).to_be_bytes());
    assert_detected(
        &b,
        "etcd-keys",
        "empty value",
        "marker without its scheduledCompactRev",
    );
}

/// Without a trailer the sha256 is not checked, and `verify` says so instead of
/// "every check passed", quiet or not.
#[test]
fn verify_says_when_the_sha256_was_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("db");
    std::fs::write(&f, strip(&load("etcd-3.5.1.db"))).unwrap();
    for quiet in [true, false] {
        let mut args = vec!["verify", f.to_str().unwrap()];
        if quiet {
            args.push("-q");
        }
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        assert!(!out.contains("every check passed"), "{out}");
        assert!(out.contains("not checked: sha256"), "{out}");
    }
    let o = run(&["verify", "-q", fixture("etcd-3.5.1.db").to_str().unwrap()]);
    assert!(
        stdout(&o).contains("OK: every check passed"),
        "{}",
        stdout(&o)
    );
}

/// `verify -q -w json` prints only the failed and unchecked checks and the
/// verdict, like the quiet table.
#[test]
fn quiet_json_keeps_only_failed_and_unchecked_checks() {
    let dir = tempfile::tempdir().unwrap();
    let good = fixture("etcd-3.5.1.db");
    let full: serde_json::Value = serde_json::from_str(&stdout(&run(&[
        "verify",
        "-w",
        "json",
        good.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(full["checks"].as_array().unwrap().len(), 6);
    let q: serde_json::Value = serde_json::from_str(&stdout(&run(&[
        "verify",
        "-q",
        "-w",
        "json",
        good.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(q["passed"], true);
    assert_eq!(q["checks"], serde_json::json!([]));
    assert!(q.get("summary").is_none(), "{q}");

    let mut b = strip(&load("etcd-3.5.1.db"));
    let p = pages(&b);
    let e = p.key_leaves[0] as usize * p.page_size + 16;
    b[e + 12..e + 16].copy_from_slice(&0u32.to_le_bytes());
    let f = dir.path().join("bad.db");
    std::fs::write(&f, &b).unwrap();
    let o = run(&["verify", "-q", "-w", "json", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let q: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(q["passed"], false);
    let names: Vec<(&str, &str)> = q["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("sha256", "skipped"), ("etcd-keys", "failed")]);
}

/// Element data out of element order (two elements' data swapped, so their
/// keys stay in order) is reported, as bbolt writes them packed in order
///.
fn element_data_out_of_order_is_found(name: &str) {
    let db = strip(&load(name));
    let p = pages(&db);
    let mut tried = 0;
    for &(pgid, flags) in &p.nodes {
        let base = pgid as usize * p.page_size;
        let count = u16::from_le_bytes([db[base + 10], db[base + 11]]) as usize;
        if flags != FLAG_LEAF || count < 2 {
            continue;
        }
        let field = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let (e0, e1) = (base + 16, base + 32);
        let (start0, start1) = (
            e0 + field(&db, e0 + 4) as usize,
            e1 + field(&db, e1 + 4) as usize,
        );
        let mut b = db.clone();
        // Element 0 takes element 1's data and the other way round.
        b[e0 + 4..e0 + 8].copy_from_slice(&((start1 - e0) as u32).to_le_bytes());
        b[e1 + 4..e1 + 8].copy_from_slice(&((start0 - e1) as u32).to_le_bytes());
        for off in [8usize, 12] {
            let (x, y) = (field(&db, e0 + off), field(&db, e1 + off));
            b[e0 + off..e0 + off + 4].copy_from_slice(&y.to_le_bytes());
            b[e1 + off..e1 + off + 4].copy_from_slice(&x.to_le_bytes());
        }
        assert_detected(
            &b,
            "bolt-pages",
            "overlaps",
            &format!("{name}: page {pgid} elements 0 and 1 swapped"),
        );
        tried += 1;
    }
    assert!(tried > 3, "{name}: {tried} leaves tried");
}
per_release!(
    element_data_out_of_order_is_found:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);
