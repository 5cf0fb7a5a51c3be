//! Key indexes (`etcdsnap index`, the cache after a scan): what an index finds
//! is exactly what a scan finds, for every key of snapshots made by real etcd
//! 3.4 and 3.5; damaged, foreign and lying indexes are reported and passed
//! over, never believed.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use etcdsnap::input::SnapshotFile;
use etcdsnap::mvcc::index::{self, Identity, KeyIndex};
use etcdsnap::mvcc::keyspace::KeySpace;

const FIXTURES: &[&str] = &["fixtures/etcd-3.4.23.db", "fixtures/etcd-3.5.1.db"];

fn index_of(path: &Path) -> Vec<u8> {
    let file = SnapshotFile::open(path).unwrap();
    let db = etcdsnap::bolt::Db::open(file.db()).unwrap();
    let ks = KeySpace::open(&db).unwrap();
    let id = Identity::of(&ks, file.trailer()).unwrap();
    index::build(&ks, &id).unwrap()
}

fn index_agrees_with_the_scan_for_every_key(f: &str) {
    let path = root().join(f);
    let file = SnapshotFile::open(&path).unwrap();
    let db = etcdsnap::bolt::Db::open(file.db()).unwrap();
    let ks = KeySpace::open(&db).unwrap();
    let bytes = index_of(&path);
    let idx = KeyIndex::parse(&bytes).unwrap();
    // The same keys as a scan sees, each once.
    let mut scanned: Vec<&[u8]> = ks
        .collect(|_| true)
        .unwrap()
        .iter()
        .map(|r| r.kv.key)
        .collect();
    scanned.sort();
    scanned.dedup();
    let indexed: Vec<&[u8]> = idx.keys().map(|(_, k)| k).collect();
    assert_eq!(indexed, scanned, "{f}: keys");
    assert!(idx.entry_count() >= idx.key_count());
    // Every key: the same records, in the same order.
    for (i, key) in idx.keys() {
        let via_index = ks.records_at(key, idx.locations(i)).unwrap();
        let via_scan = ks.history(key).unwrap();
        let sig = |rs: &[etcdsnap::mvcc::keyspace::Record<'_>]| -> Vec<(i64, i64, bool, Vec<u8>)> {
            rs.iter()
                .map(|r| {
                    (
                        r.revision.main,
                        r.revision.sub,
                        r.tombstone,
                        r.kv.value.to_vec(),
                    )
                })
                .collect()
        };
        assert_eq!(
            sig(&via_index),
            sig(&via_scan),
            "{f}: {}",
            String::from_utf8_lossy(key)
        );
        assert_eq!(idx.find(key), Some(i));
        // What real etcd wrote has no version gap (no false alarm).
        assert_eq!(
            index::version_gap(&via_scan, ks.compact_revision),
            None,
            "{f}: {}",
            String::from_utf8_lossy(key)
        );
    }
    assert_eq!(idx.find(b"/registry/no/such/key"), None);
    assert_eq!(idx.find(b""), None);
    // Both fixtures differ, and so do their identities.
    assert_eq!(idx.identity().len(), index::IDENTITY_LEN);
    let a = index_of(&root().join(FIXTURES[0]));
    let b = index_of(&root().join(FIXTURES[1]));
    assert_ne!(
        KeyIndex::parse(&a).unwrap().identity(),
        KeyIndex::parse(&b).unwrap().identity()
    );
}
per_release!(
    index_agrees_with_the_scan_for_every_key:
    v3_4("fixtures/etcd-3.4.23.db"),
    v3_5("fixtures/etcd-3.5.1.db"),
);

/// A copy of the 3.5 fixture in a temporary folder, and a cache folder.
struct Scratch {
    _dir: tempfile::TempDir,
    snap: PathBuf,
    cache: PathBuf,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snapshot.db");
    std::fs::copy(root().join(FIXTURES[1]), &snap).unwrap();
    let cache = dir.path().join("cache");
    Scratch {
        _dir: dir,
        snap,
        cache,
    }
}

fn sidecar(s: &Scratch) -> PathBuf {
    PathBuf::from(format!("{}.etcdsnap-index", s.snap.display()))
}

fn cache_files(s: &Scratch) -> usize {
    std::fs::read_dir(&s.cache).map(|d| d.count()).unwrap_or(0)
}

/// `get` and `history` output with the given cache, and their stderr.
fn lookups(s: &Scratch, extra: &[&str]) -> (String, String) {
    let snap = s.snap.to_string_lossy().into_owned();
    let mut outs = String::new();
    let mut errs = String::new();
    let keys = [
        "/registry/configmaps/default/app-config",
        "/registry/pods/default/web-0",
    ];
    for key in keys {
        for args in [
            vec!["history", &snap, key, "-w", "json"],
            vec!["get", &snap, key, "-o", "raw", "--deleted"],
        ] {
            let o = etcdsnap()
                .args(&args)
                .args(extra)
                .env("ETCDSNAP_CACHE_DIR", &s.cache)
                .output()
                .unwrap();
            outs.push_str(&format!("{:?}\n{}\n", o.status.code(), stdout(&o)));
            errs.push_str(&stderr(&o));
        }
    }
    (outs, errs)
}

#[test]
fn sidecar_and_cache_give_what_the_scan_gives() {
    let s = scratch();
    let (want, _) = lookups(&s, &["--no-index"]);
    assert!(want.contains("\"revisions\""), "{want}");
    assert_eq!(cache_files(&s), 0, "--no-index writes no cache");

    // A scan leaves an index in the cache; the next lookups use it.
    let (got, errs) = lookups(&s, &[]);
    assert_eq!(got, want);
    assert!(!errs.contains("note: "), "{errs}");
    assert_eq!(cache_files(&s), 1);

    // `index` writes the sidecar; lookups then need no cache at all.
    let o = run(&["index", &s.snap.to_string_lossy(), "--beside"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(" keys, "), "{}", stdout(&o));
    assert!(sidecar(&s).is_file());
    std::fs::remove_dir_all(&s.cache).unwrap();
    let (got, errs) = lookups(&s, &[]);
    assert_eq!(got, want);
    assert!(!errs.contains("note: "), "{errs}");
    assert_eq!(cache_files(&s), 0, "the sidecar answered every lookup");
}

fn fix_crc(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn bad_indexes_are_reported_and_passed_over() {
    let s = scratch();
    let (want, _) = lookups(&s, &["--no-index"]);
    let good = index_of(&s.snap);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("checksum mismatch", {
            let mut b = good.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0x40;
            b
        }),
        ("not an etcdsnap key index", b"not an index at all".to_vec()),
        (
            "made from another snapshot",
            index_of(&root().join(FIXTURES[0])),
        ),
        ("does not match the snapshot", {
            // Same identity, but every entry points at the first entry's place.
            let idx = KeyIndex::parse(&good).unwrap();
            let mut b = good.clone();
            let entries_at = index::HEADER_LEN + idx.key_count() * 16;
            let first: Vec<u8> = b[entries_at..entries_at + 12].to_vec();
            for e in 0..idx.entry_count() {
                b[entries_at + e * 12..entries_at + e * 12 + 12].copy_from_slice(&first);
            }
            fix_crc(&mut b);
            b
        }),
        ("instead", {
            // Same identity, entries rotated by one: some key's last entry
            // names a revision of the next key.
            let idx = KeyIndex::parse(&good).unwrap();
            let mut b = good.clone();
            let entries_at = index::HEADER_LEN + idx.key_count() * 16;
            let area = entries_at..entries_at + idx.entry_count() * 12;
            b[area].rotate_left(12);
            fix_crc(&mut b);
            b
        }),
    ];
    for (what, bytes) in cases {
        std::fs::write(sidecar(&s), &bytes).unwrap();
        let _ = std::fs::remove_dir_all(&s.cache);
        let (got, errs) = lookups(&s, &[]);
        assert_eq!(got, want, "{what}: output differs from the scan's");
        assert!(errs.contains(what), "{what}: stderr was {errs}");
        assert!(errs.contains("not used"), "{what}: {errs}");
        // The lookup fell back to the scan, which cached a good index.
        assert_eq!(cache_files(&s), 1, "{what}");
    }
}

#[test]
fn index_command_never_overwrites_other_files() {
    let s = scratch();
    let snap = s.snap.to_string_lossy().into_owned();
    let target = s.snap.with_file_name("precious.txt");
    std::fs::write(&target, "keep me").unwrap();
    let o = run(&["index", &snap, "-o", &target.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    let o = run(&["index", &snap, "-o", &target.to_string_lossy(), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(KeyIndex::parse(&std::fs::read(&target).unwrap()).is_ok());
    // An index is replaced without asking; standard input needs -o.
    let o = run(&["index", &snap, "-o", &target.to_string_lossy()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = etcdsnap()
        .args(["index", "-", "--beside"])
        .stdin(std::fs::File::open(&s.snap).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("-o FILE"), "{}", stderr(&o));
    // The snapshot itself is never touched.
    assert_eq!(
        std::fs::read(&s.snap).unwrap(),
        std::fs::read(root().join(FIXTURES[1])).unwrap()
    );
}

#[test]
fn parse_checks_every_invariant() {
    let good = index_of(&root().join(FIXTURES[1]));
    let idx = KeyIndex::parse(&good).unwrap();
    let (k, e) = (idx.key_count(), idx.entry_count());
    assert!(k >= 2);
    // Any single flipped bit is caught (by the CRC, or the magic).
    for pos in (0..good.len()).step_by(7) {
        let mut b = good.clone();
        b[pos] ^= 1 << (pos % 8);
        assert!(KeyIndex::parse(&b).is_err(), "flip at {pos} accepted");
    }
    // Every cut is caught.
    for len in [0, 7, 8, 100, 131, good.len() - 1] {
        assert!(
            KeyIndex::parse(&good[..len]).is_err(),
            "cut at {len} accepted"
        );
    }
    // Layout breaches with a correct CRC.
    let rows = index::HEADER_LEN;
    let row = move |i: usize| rows + i * 16;
    type Breach = Box<dyn Fn(&mut Vec<u8>)>;
    let breaches: Vec<(&str, Breach)> = vec![
        ("version", Box::new(|b: &mut Vec<u8>| b[8] = 2)),
        (
            "key count",
            Box::new(move |b: &mut Vec<u8>| b[80] = b[80].wrapping_add(1)),
        ),
        (
            "huge count",
            Box::new(|b: &mut Vec<u8>| b[80..88].copy_from_slice(&u64::MAX.to_le_bytes())),
        ),
        (
            "entry count",
            Box::new(move |b: &mut Vec<u8>| {
                b[88..96].copy_from_slice(&((e as u64) << 33).to_le_bytes())
            }),
        ),
        (
            "name outside",
            Box::new(move |b: &mut Vec<u8>| {
                b[row(0)..row(0) + 8].copy_from_slice(&u64::MAX.to_le_bytes())
            }),
        ),
        (
            "keys out of order",
            Box::new(move |b: &mut Vec<u8>| {
                let (a, c) = (
                    b[row(0)..row(0) + 12].to_vec(),
                    b[row(1)..row(1) + 12].to_vec(),
                );
                b[row(0)..row(0) + 12].copy_from_slice(&c);
                b[row(1)..row(1) + 12].copy_from_slice(&a);
            }),
        ),
        (
            "empty run",
            Box::new(move |b: &mut Vec<u8>| {
                let first = b[row(0) + 12..row(0) + 16].to_vec();
                b[row(1) + 12..row(1) + 16].copy_from_slice(&first);
            }),
        ),
        (
            "first entry not 0",
            Box::new(move |b: &mut Vec<u8>| b[row(0) + 12] = 1),
        ),
    ];
    for (what, breach) in breaches {
        let mut b = good.clone();
        breach(&mut b);
        fix_crc(&mut b);
        assert!(KeyIndex::parse(&b).is_err(), "{what} accepted");
    }
}

/// The 3.5 fixture (without its trailer) with the revision keys of two puts of
/// one user key swapped, so that key's revisions are out of order; the key.
fn out_of_order_copy(dir: &Path) -> (PathBuf, String) {
    let bytes = std::fs::read(root().join(FIXTURES[1])).unwrap();
    let data = &bytes[..bytes.len() - 32];
    let db = etcdsnap::bolt::Db::open(data).unwrap();
    let ks = KeySpace::open(&db).unwrap();
    let base = data.as_ptr() as usize;
    let elems: Vec<_> = ks
        .leaves()
        .unwrap()
        .iter()
        .flat_map(|leaf| (0..leaf.count()).map(|i| leaf.leaf(i).unwrap()))
        .collect();
    for i in 0..elems.len() {
        for j in i + 1..elems.len() {
            let (a, b) = (elems[i], elems[j]);
            let same_key = etcdsnap::mvcc::keyspace::record(a.key, a.value)
                .unwrap()
                .zip(etcdsnap::mvcc::keyspace::record(b.key, b.value).unwrap())
                .filter(|(x, y)| x.kv.key == y.kv.key && !x.tombstone && !y.tombstone);
            if let Some((x, _)) = same_key {
                let user_key = String::from_utf8(x.kv.key.to_vec()).unwrap();
                let (oa, ob) = (
                    a.key.as_ptr() as usize - base,
                    b.key.as_ptr() as usize - base,
                );
                let mut out = data.to_vec();
                let (ka, kb) = (a.key.to_vec(), b.key.to_vec());
                out[oa..oa + ka.len()].copy_from_slice(&kb);
                out[ob..ob + kb.len()].copy_from_slice(&ka);
                let path = dir.join("out-of-order.db");
                std::fs::write(&path, out).unwrap();
                return (path, user_key);
            }
        }
    }
    panic!("no key has two stored revisions");
}

#[test]
fn a_key_bucket_out_of_order_gets_no_index_but_an_answer() {
    let s = scratch();
    let (snap, key) = out_of_order_copy(s.snap.parent().unwrap());
    let snap = snap.to_string_lossy().into_owned();
    let get = |extra: &[&str]| {
        etcdsnap()
            .args(["history", &snap, &key, "-w", "json"])
            .args(extra)
            .env("ETCDSNAP_CACHE_DIR", &s.cache)
            .output()
            .unwrap()
    };
    let scan = get(&["--no-index"]);
    let default = get(&[]);
    assert_eq!(default.status.code(), scan.status.code());
    assert_eq!(stdout(&default), stdout(&scan));
    assert!(
        stderr(&default).contains("no key index made"),
        "{}",
        stderr(&default)
    );
    assert!(
        stderr(&default).contains("out of order"),
        "{}",
        stderr(&default)
    );
    assert_eq!(cache_files(&s), 0, "no index of a damaged file is cached");
    let o = run(&[
        "index",
        &snap,
        "-o",
        &s.cache.with_extension("idx").to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(1), "a damaged file: {}", stderr(&o));
    assert!(stderr(&o).contains("out of order"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&key),
        "the error names the key: {}",
        stderr(&o)
    );
}

/// `good` without entry `which` (0 = oldest) of `key`: a lying index with a
/// correct CRC and layout that omits one stored revision.
fn omitting(good: &[u8], key: &[u8], which: usize) -> Vec<u8> {
    let idx = KeyIndex::parse(good).unwrap();
    let (k, e) = (idx.key_count(), idx.entry_count());
    let i = idx.find(key).unwrap();
    let rows = index::HEADER_LEN;
    let first = |b: &[u8], j: usize| {
        u32::from_le_bytes(
            b[rows + j * 16 + 12..rows + j * 16 + 16]
                .try_into()
                .unwrap(),
        ) as usize
    };
    let drop = first(good, i) + which;
    let entries_at = rows + k * 16;
    let mut b = good[..entries_at + drop * 12].to_vec();
    b.extend_from_slice(&good[entries_at + (drop + 1) * 12..]);
    b[88..96].copy_from_slice(&((e - 1) as u64).to_le_bytes());
    for j in i + 1..k {
        let f = (first(&b, j) - 1) as u32;
        b[rows + j * 16 + 12..rows + j * 16 + 16].copy_from_slice(&f.to_le_bytes());
    }
    fix_crc(&mut b);
    assert_eq!(KeyIndex::parse(&b).unwrap().entry_count(), e - 1);
    b
}

/// Item 13: an index that leaves out one revision of a key with three is
/// caught: `history` shows all three (as the scan does) and says why.
#[test]
fn an_index_omitting_a_revision_is_reported_and_not_believed() {
    let s = scratch();
    let key = "/registry/configmaps/bulk/cm-00";
    let snap = s.snap.to_string_lossy().into_owned();
    let history = |extra: &[&str]| {
        etcdsnap()
            .args(["history", &snap, key, "-w", "json"])
            .args(extra)
            .env("ETCDSNAP_CACHE_DIR", &s.cache)
            .output()
            .unwrap()
    };
    let scan = history(&["--no-index"]);
    let revs = |o: &std::process::Output| -> Vec<i64> {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["revision"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(revs(&scan), [37, 43, 44]);
    let good = index_of(&s.snap);
    for which in 0..3 {
        let lying = omitting(&good, key.as_bytes(), which);
        {
            let idx = KeyIndex::parse(&lying).unwrap();
            let i = idx.find(key.as_bytes()).unwrap();
            assert_eq!(idx.locations(i).count(), 2, "the lie omits one");
        }
        std::fs::write(sidecar(&s), &lying).unwrap();
        let _ = std::fs::remove_dir_all(&s.cache);
        let o = history(&[]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(revs(&o), [37, 43, 44], "omitted #{which}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("omits"),
            "omitted #{which}: no note: {}",
            stderr(&o)
        );
        // `get` of the key by resource and name goes the same way.
        let o = etcdsnap()
            .args(["get", &snap, "cm", "cm-00", "-n", "bulk", "-o", "json"])
            .env("ETCDSNAP_CACHE_DIR", &s.cache)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("omits"), "{}", stderr(&o));
    }
}

/// Item 13, where only the versions can tell: a key whose three revisions lie
/// in three different leaves (large values between them, in a snapshot of a
/// real etcd), an index leaving out the middle one. The leaves the lookup reads
/// do not hold it; the version gap (1 → 3) betrays it.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn an_omission_in_a_leaf_not_read_is_found_by_the_versions() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::write(&small, b"{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\"}").unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 3500]).unwrap();
    let key = "/registry/configmaps/default/spread";
    let mut pairs = Vec::new();
    for round in 0..3 {
        pairs.push(format!("{key}={}", small.display()));
        for i in 0..3 {
            pairs.push(format!("/registry/filler/f{round}-{i}={}", big.display()));
        }
    }
    let snap = dir.path().join("snap.db");
    let st = std::process::Command::new("python3")
        .arg(root().join("fixtures/put_and_save.py"))
        .arg("3.5")
        .arg(&snap)
        .args(&pairs)
        .status()
        .unwrap();
    assert!(st.success());
    let good = index_of(&snap);
    {
        let idx = KeyIndex::parse(&good).unwrap();
        let i = idx.find(key.as_bytes()).unwrap();
        let pages: Vec<u64> = idx.locations(i).map(|l| l.pgid).collect();
        assert_eq!(pages.len(), 3);
        assert!(
            pages[0] != pages[1] && pages[1] != pages[2] && pages[0] != pages[2],
            "the revisions share a leaf: {pages:?}"
        );
    }
    let sidecar = PathBuf::from(format!("{}.etcdsnap-index", snap.display()));
    std::fs::write(&sidecar, omitting(&good, key.as_bytes(), 1)).unwrap();
    let s = snap.to_string_lossy().into_owned();
    let o = etcdsnap()
        .args(["history", &s, key, "-w", "json"])
        .env("ETCDSNAP_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let versions: Vec<i64> = v["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3], "{}", stderr(&o));
    assert!(
        stderr(&o).contains("omits revisions") && stderr(&o).contains("version 3"),
        "{}",
        stderr(&o)
    );
}
