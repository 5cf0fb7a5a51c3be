//! `salvage` on real snapshots damaged in known ways: the original file is
//! the oracle. For each kind of damage (seeded, so a failure reproduces):
//! every live key of the original whose record survives intact in the
//! damaged copy is recovered byte for byte at its revision; every other live
//! key is either recovered exactly from another copy, or named as lost, or
//! its revision is reported missing; nothing is recovered that the original
//! did not hold; the recovered file passes `etcdsnap verify` and (real tier)
//! `etcdutl snapshot status` and `snapshot restore` of the release that
//! wrote the original.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use etcdsnap::bolt::{Db, read};
use etcdsnap::mvcc::{KeyValue, RevisionKey};
use serde_json::Value;

use crate::common::{Rng, etcdsnap, etcdutl, fixture};

pub(crate) const PAGE: usize = 4096;

/// One record of the original's key bucket.
pub(crate) struct Rec {
    pub(crate) rev_key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) user_key: Vec<u8>,
    pub(crate) main: i64,
    pub(crate) tombstone: bool,
    /// File offsets of the record's key and value end.
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// The original's key bucket, read with the strict reader (the original is
/// sound: `verify` passes it, and `bbolt_check` holds the reader to Go's).
pub(crate) fn original_records(data: &[u8]) -> Vec<Rec> {
    let db = Db::open(data).expect("open the original");
    let b = read::bucket(&db, b"key")
        .expect("buckets")
        .expect("key bucket");
    let base = data.as_ptr() as usize;
    let mut out = Vec::new();
    read::for_each(&db, &b, |e| {
        let rk = RevisionKey::parse(e.key).expect("revision key");
        let kv = KeyValue::decode(e.value).expect("KeyValue");
        out.push(Rec {
            rev_key: e.key.to_vec(),
            value: e.value.to_vec(),
            user_key: kv.key.to_vec(),
            main: rk.revision.main,
            tombstone: rk.tombstone,
            start: e.key.as_ptr() as usize - base,
            end: e.value.as_ptr() as usize - base + e.value.len(),
        });
        ControlFlow::Continue(())
    })
    .expect("read the key bucket");
    out
}

/// The key bucket of a file as revision key -> value.
fn key_bucket(data: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = Db::open(data).expect("open the recovered file");
    let b = read::bucket(&db, b"key")
        .expect("buckets")
        .expect("key bucket");
    let mut out = BTreeMap::new();
    read::for_each(&db, &b, |e| {
        out.insert(e.key.to_vec(), e.value.to_vec());
        ControlFlow::Continue(())
    })
    .expect("read the recovered key bucket");
    out
}

/// The page of `off` back to the first page of its node: the nearest page at
/// or before it whose header names its own id as a leaf.
pub(crate) fn node_start(data: &[u8], off: usize) -> usize {
    let mut p = off / PAGE;
    loop {
        let h = &data[p * PAGE..p * PAGE + 16];
        let id = u64::from_le_bytes(h[0..8].try_into().unwrap());
        let flags = u16::from_le_bytes(h[8..10].try_into().unwrap());
        if id == p as u64 && flags == 0x02 {
            return p;
        }
        assert!(p > 0, "no node header before offset {off}");
        p -= 1;
    }
}

/// A kind of damage: what it does to a copy of the file, and which pages
/// (by page id) it touched; a cut touches every page from its length on.
struct Damage {
    name: &'static str,
    bytes: Vec<u8>,
    damaged_pages: BTreeSet<usize>,
    /// Keys the report must list as lost for certain.
    certain: Vec<String>,
}

pub(crate) fn random_page(rng: &mut Rng) -> Vec<u8> {
    (0..PAGE).map(|_| rng.next() as u8).collect()
}

fn with_pages(
    name: &'static str,
    orig: &[u8],
    pages: &[usize],
    rng: &mut Rng,
    zero: bool,
) -> Damage {
    let mut bytes = orig.to_vec();
    for &p in pages {
        let fill = if zero {
            vec![0u8; PAGE]
        } else {
            random_page(rng)
        };
        bytes[p * PAGE..(p + 1) * PAGE].copy_from_slice(&fill);
    }
    Damage {
        name,
        bytes,
        damaged_pages: pages.iter().copied().collect(),
        certain: Vec::new(),
    }
}

fn pick(rng: &mut Rng, pages: usize, n: usize) -> Vec<usize> {
    let mut set = BTreeSet::new();
    while set.len() < n.min(pages - 2) {
        set.insert(2 + rng.below((pages - 2) as u64) as usize);
    }
    set.into_iter().collect()
}

fn meta_field(data: &[u8], meta: usize, off: usize) -> u64 {
    let o = meta * PAGE + 16 + off;
    u64::from_le_bytes(data[o..o + 8].try_into().unwrap())
}

/// Sets both meta pages' freelist field to `pgid`, with their checksums.
fn point_freelist_at(bytes: &mut [u8], pgid: u64) {
    for m in 0..2 {
        let o = m * PAGE + 16;
        bytes[o + 32..o + 40].copy_from_slice(&pgid.to_le_bytes());
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in &bytes[o..o + 56] {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        bytes[o + 56..o + 64].copy_from_slice(&h.to_le_bytes());
    }
}

fn damages(orig: &[u8], seed: u64) -> Vec<Damage> {
    let mut rng = Rng::new(seed);
    let db_len = orig.len() - orig.len() % PAGE;
    let pages = db_len / PAGE;
    let pct = |p: usize| (pages * p).div_ceil(100);
    let mut out = Vec::new();
    let one = pick(&mut rng, pages, 1);
    out.push(with_pages("one page random", orig, &one, &mut rng, false));
    for (name, p, zero) in [
        ("1% pages random", 1, false),
        ("1% pages zero", 1, true),
        ("10% pages random", 10, false),
        ("10% pages zero", 10, true),
    ] {
        let set = pick(&mut rng, pages, pct(p));
        out.push(with_pages(name, orig, &set, &mut rng, zero));
    }
    let run = pct(10).max(2);
    let start = 2 + rng.below((pages - 2 - run) as u64) as usize;
    let range: Vec<usize> = (start..start + run).collect();
    out.push(with_pages("zeroed range", orig, &range, &mut rng, true));
    for (name, frac) in [("cut at 50%", 50), ("cut at 90%", 90)] {
        let len = orig.len() * frac / 100;
        out.push(Damage {
            name,
            bytes: orig[..len].to_vec(),
            damaged_pages: (len / PAGE..pages + 1).collect(),
            certain: Vec::new(),
        });
    }
    out.push(with_pages(
        "both meta pages",
        orig,
        &[0, 1],
        &mut rng,
        false,
    ));
    // The root bucket's page (the meta's root) and the key bucket's root
    // branch page.
    let root = meta_field(orig, 0, 16) as usize;
    out.push(with_pages(
        "root bucket page",
        orig,
        &[root],
        &mut rng,
        false,
    ));
    let db = Db::open(&orig[..db_len]).expect("open");
    let key = read::bucket(&db, b"key").unwrap().unwrap();
    let key_root = match key.header.root {
        etcdsnap::bolt::page::BucketRoot::Page(p) => p as usize,
        etcdsnap::bolt::page::BucketRoot::Inline(_) => panic!("key bucket inline"),
    };
    out.push(with_pages(
        "key root branch page",
        orig,
        &[key_root],
        &mut rng,
        false,
    ));
    // etcd writes no freelist (NoFreelistSync): both meta pages are made to
    // name one, and that page is broken.
    let victim = pick(&mut rng, pages, 1);
    let mut d = with_pages("freelist page", orig, &victim, &mut rng, false);
    point_freelist_at(&mut d.bytes, victim[0] as u64);
    out.push(d);
    // Inside a large value: the page holding the end of the largest record,
    // an overflow page of its leaf (the leaf's header and element list, on
    // its first page, survive).
    let recs = original_records(&orig[..db_len]);
    let big = recs.iter().max_by_key(|r| r.end - r.start).unwrap();
    let last = (big.end - 1) / PAGE;
    assert!(
        last > node_start(orig, big.start),
        "the largest value spans overflow pages"
    );
    let mut d = with_pages("overflow of a value", orig, &[last], &mut rng, false);
    // Its revision key (17 bytes) and the KeyValue's first field, the user
    // key, lie before the damaged page: they name it.
    // When it is its key's newest record, that key is lost for certain.
    let newest = !recs
        .iter()
        .any(|r| r.user_key == big.user_key && r.main > big.main);
    if newest && (big.start + 17 + 4 + big.user_key.len()) / PAGE < last {
        d.certain
            .push(String::from_utf8_lossy(&big.user_key).into_owned());
    }
    out.push(d);
    out
}

/// What one damaged copy gave.
struct Outcome {
    name: &'static str,
    live: usize,
    survived: usize,
    recovered_exactly: usize,
    listed_lost: usize,
    listed_stale: usize,
    missing_revision: usize,
    older_copies: usize,
    exit: i32,
    output: PathBuf,
}

fn run_one(orig: &[u8], recs: &[Rec], d: &Damage, dir: &Path) -> Outcome {
    let slug = d.name.replace([' ', '%'], "-");
    let input = dir.join(format!("{slug}.db"));
    let output = dir.join(format!("{slug}.recovered.db"));
    std::fs::write(&input, &d.bytes).unwrap();
    let o = etcdsnap()
        .args([
            "salvage",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            "-w",
            "json",
        ])
        .output()
        .unwrap();
    let exit = o.status.code().unwrap_or(-1);
    assert!(
        exit == 0 || exit == 1,
        "{}: exit {exit}: {}",
        d.name,
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read(&input).unwrap(),
        d.bytes,
        "{}: input changed",
        d.name
    );
    let report: Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    assert_eq!(
        report["complete"].as_bool() == Some(true),
        exit == 0,
        "{}",
        d.name
    );

    // The recovered file passes our verify.
    let v = etcdsnap()
        .args(["verify", "-q", output.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{}: verify of the recovered file failed:\n{}",
        d.name,
        String::from_utf8_lossy(&v.stdout)
    );
    let recovered_file = std::fs::read(&output).unwrap();
    assert_eq!(recovered_file.len() % 512, 32, "{}: sha256 trailer", d.name);
    let recovered = key_bucket(&recovered_file[..recovered_file.len() - 32]);

    // Nothing the original did not hold (compacted history found on freed
    // pages aside, which the compaction rule keeps out when meta survives).
    let keys_of = |list: &str| -> BTreeSet<String> {
        report[list]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_string())
            .collect()
    };
    // Lost for certain, and possibly out of date: both name a key.
    let definite = keys_of("lost");
    let stale = keys_of("possiblyStale");
    let lost: BTreeSet<String> = definite.union(&stale).cloned().collect();
    for k in &d.certain {
        assert!(
            definite.contains(k),
            "{}: {k} not listed as lost: {report:#}",
            d.name
        );
    }
    // Nothing the original did not hold, except a revision at or below the
    // compaction revision found only on a freed page (compaction had removed
    // it; the original's own revision of that key is gone): its key is then
    // listed as lost.
    let compact = report["records"]["compactRevision"].as_i64();
    let by_rev: BTreeMap<&[u8], &Rec> = recs.iter().map(|r| (r.rev_key.as_slice(), r)).collect();
    let mut older_copies = 0;
    for (k, v) in &recovered {
        match by_rev.get(k.as_slice()) {
            Some(r) => assert_eq!(&r.value, v, "{}: revision {k:?} differs", d.name),
            None => {
                let rk = RevisionKey::parse(k).unwrap();
                let user = String::from_utf8_lossy(KeyValue::decode(v).unwrap().key).into_owned();
                assert!(
                    compact.is_none_or(|c| rk.revision.main <= c) && lost.contains(&user),
                    "{}: revision {rk:?} of {user} recovered that the original does not hold, and not flagged",
                    d.name,
                );
                older_copies += 1;
            }
        }
    }
    let missing: Vec<(i64, i64)> = report["missingRanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap()))
        .collect();
    let newest_known = report["newestRevisionsKnown"].as_bool().unwrap();
    let newest_found = report["records"]["revision"].as_i64().unwrap();
    // The newest record of each user key, original and recovered.
    let mut newest: BTreeMap<&[u8], &Rec> = BTreeMap::new();
    for r in recs {
        newest.insert(&r.user_key, r);
    }
    let mut recovered_newest: BTreeMap<Vec<u8>, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
    for (k, v) in &recovered {
        let kv = KeyValue::decode(v).unwrap();
        recovered_newest.insert(kv.key.to_vec(), (k.clone(), v.clone()));
    }
    // The report's list of recovered keys is the output's.
    let listed: BTreeMap<String, i64> = report["recovered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_string(),
                k["revision"].as_i64().unwrap(),
            )
        })
        .collect();
    let written: BTreeMap<String, i64> = recovered_newest
        .iter()
        .map(|(user, (k, _))| {
            let rev = RevisionKey::parse(k).unwrap().revision.main;
            (String::from_utf8_lossy(user).into_owned(), rev)
        })
        .collect();
    assert_eq!(listed, written, "{}: recovered list", d.name);
    let mut out = Outcome {
        name: d.name,
        live: 0,
        survived: 0,
        recovered_exactly: 0,
        listed_lost: definite.len(),
        listed_stale: stale.len(),
        missing_revision: 0,
        older_copies,
        exit,
        output: output.clone(),
    };
    for (user, r) in &newest {
        let name = String::from_utf8_lossy(user).into_owned();
        let exact = recovered_newest
            .get(*user)
            .is_some_and(|(k, v)| *k == r.rev_key && *v == r.value);
        // "Lost" is certain: never a key recovered as the original has it.
        assert!(
            !(exact && definite.contains(&name)),
            "{}: {name} listed as lost but recovered exactly at revision {}",
            d.name,
            r.main
        );
        if !r.tombstone {
            out.live += 1;
            let first = node_start(orig, r.start);
            let last = (r.end - 1) / PAGE;
            let survives = (first..=last).all(|p| !d.damaged_pages.contains(&p));
            if survives {
                out.survived += 1;
                assert!(
                    exact,
                    "{}: live key {name} survives intact at revision {} but was not recovered exactly",
                    d.name, r.main
                );
            }
            if exact {
                out.recovered_exactly += 1;
                continue;
            }
        } else if exact || !recovered_newest.contains_key(*user) {
            // A deleted key: recovered as deleted, or not at all.
            continue;
        }
        // Not recovered as the original has it: named as lost, or its
        // revision reported missing.
        // Past the newest revision found, when the report says the newest
        // revisions are unknown, nothing can name the key.
        let in_missing = missing.iter().any(|&(a, b)| a <= r.main && r.main <= b)
            || (!newest_known && r.main > newest_found);
        if !lost.contains(&name) {
            assert!(
                in_missing,
                "{}: key {name} (revision {}) neither recovered, listed as lost, nor its revision missing",
                d.name, r.main
            );
            out.missing_revision += 1;
        }
    }
    out
}

fn suite(file: &str, seed: u64) -> (Vec<Outcome>, tempfile::TempDir) {
    let orig = std::fs::read(fixture(file)).unwrap();
    let db_len = orig.len() - orig.len() % PAGE;
    let recs = original_records(&orig[..db_len]);
    // SALVAGE_KEEP=1 keeps the damaged copies and their outputs.
    let keep = std::env::var_os("SALVAGE_KEEP").is_some();
    let dir = tempfile::Builder::new()
        .disable_cleanup(keep)
        .tempdir()
        .unwrap();
    if keep {
        eprintln!("damaged copies in {}", dir.path().display());
    }
    let mut outcomes = Vec::new();
    for d in damages(&orig, seed) {
        eprintln!("{file}, seed {seed}: {}", d.name);
        outcomes.push(run_one(&orig, &recs, &d, dir.path()));
    }
    eprintln!("salvage of {file} (seed {seed}):");
    eprintln!(
        "  {:<22} {:>4} {:>8} {:>9} {:>5} {:>5} {:>8} {:>6} {:>4}",
        "damage", "live", "survived", "recovered", "lost", "stale", "missing", "older", "exit"
    );
    for o in &outcomes {
        eprintln!(
            "  {:<22} {:>4} {:>8} {:>9} {:>5} {:>5} {:>8} {:>6} {:>4}",
            o.name,
            o.live,
            o.survived,
            o.recovered_exactly,
            o.listed_lost,
            o.listed_stale,
            o.missing_revision,
            o.older_copies,
            o.exit
        );
    }
    (outcomes, dir)
}

per_release!(
    damage_suite: v3_5("etcd-3.5.1.db"), v3_6("etcd-3.6.16.db")
);

fn damage_suite(file: &str) {
    let seeds: Vec<u64> = match std::env::var("SALVAGE_SEEDS") {
        Ok(v) => v.split(',').map(|s| s.parse().unwrap()).collect(),
        Err(_) => vec![1, 2, 3],
    };
    for seed in seeds {
        suite(file, seed);
    }
}

per_release!(
    #[ignore = "real: etcdutl of the release"]
    etcdutl_accepts_recovered: v3_5("etcd-3.5.1.db", "3.5"), v3_6("etcd-3.6.16.db", "3.6")
);

fn etcdutl_accepts_recovered(file: &str, line: &str) {
    let (outcomes, _dir) = suite(file, 1);
    for o in outcomes {
        let s = std::process::Command::new(etcdutl(line))
            .args(["snapshot", "status", "-w", "json"])
            .arg(&o.output)
            .output()
            .unwrap();
        assert!(
            s.status.success(),
            "{}: etcdutl {line} snapshot status refused the recovered file: {}",
            o.name,
            String::from_utf8_lossy(&s.stderr)
        );
        // And etcd's own restore takes it (sha256 trailer checked).
        let data_dir = o.output.with_extension("etcd");
        let r = std::process::Command::new(etcdutl(line))
            .args(["snapshot", "restore"])
            .arg(&o.output)
            .args([
                "--name",
                "m1",
                "--initial-cluster",
                "m1=http://127.0.0.1:2380",
            ])
            .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
            .arg("--data-dir")
            .arg(&data_dir)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{}: etcdutl {line} snapshot restore refused the recovered file: {}",
            o.name,
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(data_dir.join("member/snap/db").exists(), "{}", o.name);
    }
}

/// An undamaged snapshot comes back whole: every revision of its key bucket,
/// exit 0, and `etcdutl` (real tier) reads the same revision and key count.
#[test]
fn intact_snapshot_is_recovered_whole() {
    for (file, _) in [("etcd-3.5.1.db", "3.5"), ("etcd-3.6.16.db", "3.6")] {
        let orig = std::fs::read(fixture(file)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.db");
        let o = etcdsnap()
            .args([
                "salvage",
                fixture(file).to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        let recovered = std::fs::read(&out).unwrap();
        let db_len = orig.len() - 32;
        assert_eq!(
            key_bucket(&recovered[..recovered.len() - 32]),
            key_bucket(&orig[..db_len]),
            "{file}"
        );
    }
}

/// Ctrl-C mid-write, then a rerun: a real SIGINT sent to `salvage --force`
/// while it writes (its writes slowed down by strace so the signal lands
/// there) ends it with exit 2, saying it was interrupted and that the
/// existing output is as it was: no partial output, no temporary file, nothing
/// moved aside. A rerun then writes the output and moves the old one aside.
#[test]
fn ctrl_c_while_writing_keeps_the_old_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.db");
    std::fs::write(&out, b"an older salvage").unwrap();
    let args = |force: bool| {
        let mut a = vec![
            "salvage".to_string(),
            fixture("etcd-3.6.16.db").display().to_string(),
            "-o".to_string(),
            out.display().to_string(),
        ];
        if force {
            a.push("--force".to_string());
        }
        a
    };
    let (child, pid) = slowed_salvage(&args(true), dir.path());
    std::thread::sleep(std::time::Duration::from_millis(100));
    // SAFETY: a plain kill(2) of the child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(err.contains("is as it was"), "{err}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["r.db".to_string()], "left behind");
    assert_eq!(std::fs::read(&out).unwrap(), b"an older salvage");
    // The rerun, uninterrupted.
    let o = etcdsnap().args(args(true)).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = etcdsnap()
        .args(["verify", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(0));
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("r.db.etcdsnap-bak-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), b"an older salvage");
}

/// `etcdsnap ARGS` with its writes slowed down by strace, once its temporary
/// output has appeared in `dir`; returns it and the salvage's pid.
fn slowed_salvage(args: &[String], dir: &Path) -> (std::process::Child, i32) {
    let child = std::process::Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=write"])
        .args(["-e", "inject=write:delay_enter=300000"])
        .arg(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strace is required (apt-get install strace)");
    // The temporary output names the pid of the salvage.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let pid = loop {
        let found = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.contains(".etcdsnap-tmp-"));
        if let Some(n) = found {
            break n.rsplit('-').next().unwrap().parse::<i32>().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no temporary output appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    (child, pid)
}

/// Killed (kill -9) mid-write, then a rerun: the killed run's temporary
/// output (as large as the output) is removed by the rerun, the older output
/// having survived the kill.
#[test]
fn a_rerun_removes_what_a_killed_salvage_left() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.db");
    std::fs::write(&out, b"an older salvage").unwrap();
    let args: Vec<String> = [
        "salvage",
        fixture("etcd-3.6.16.db").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--force",
    ]
    .map(String::from)
    .to_vec();
    let (child, pid) = slowed_salvage(&args, dir.path());
    // SAFETY: a plain kill(2) of the child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let _ = child.wait_with_output().unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"an older salvage");
    let o = etcdsnap().args(&args).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let temps: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".etcdsnap-tmp-"))
        .collect();
    assert!(temps.is_empty(), "left behind: {temps:?}");
}

/// An existing output is never replaced without --force; with it, it is
/// moved aside; the input is refused as the output.
#[test]
fn output_is_never_overwritten_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.db");
    std::fs::copy(fixture("etcd-3.6.16.db"), &input).unwrap();
    let out = dir.path().join("out.db");
    std::fs::write(&out, b"precious").unwrap();
    let args = |force: bool| {
        let mut v = vec![
            "salvage",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        if force {
            v.push("--force");
        }
        etcdsnap().args(v).output().unwrap()
    };
    let o = args(false);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let o = args(true);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("out.db.etcdsnap-bak-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read(dir.path().join(&aside[0])).unwrap(),
        b"precious"
    );
    let same = etcdsnap()
        .args([
            "salvage",
            input.to_str().unwrap(),
            "-o",
            input.to_str().unwrap(),
            "--force",
        ])
        .output()
        .unwrap();
    assert_eq!(same.status.code(), Some(2));
    assert_eq!(
        std::fs::read(&input).unwrap(),
        std::fs::read(fixture("etcd-3.6.16.db")).unwrap()
    );
}

/// Bytes that hold no bbolt page, or no record: exit 2, nothing written.
#[test]
fn nothing_usable_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("junk.db");
    let mut rng = Rng::new(7);
    let junk: Vec<u8> = (0..64 * 1024).map(|_| rng.next() as u8).collect();
    std::fs::write(&input, &junk).unwrap();
    let out = dir.path().join("out.db");
    let o = etcdsnap()
        .args([
            "salvage",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.exists());
}

/// The scanner and everything after it never panic on hostile bytes: the
/// fixtures with bytes flipped, header fields set to extremes (overflow and
/// counts to their maximum, ids shifted) and cut anywhere, through the
/// library and the writer (the fuzz target `salvage_scan` does the same
/// with arbitrary bytes).
#[test]
fn hostile_bytes_never_panic() {
    let mut rng = Rng::new(0x5a17);
    for file in ["etcd-3.5.1.db", "etcd-3.6.16.db"] {
        let orig = std::fs::read(fixture(file)).unwrap();
        for round in 0..150 {
            let mut b = orig.clone();
            match round % 3 {
                0 => {
                    for _ in 0..1 + rng.below(64) {
                        let i = rng.below(b.len() as u64) as usize;
                        b[i] = rng.next() as u8;
                    }
                }
                1 => {
                    let pages = b.len() / PAGE;
                    for _ in 0..1 + rng.below(8) {
                        let p = rng.below(pages as u64) as usize * PAGE;
                        let field = [10usize, 12, 16, 20, 24][rng.below(5) as usize];
                        b[p + field..p + field + 4].copy_from_slice(&u32::MAX.to_le_bytes());
                    }
                }
                _ => b.truncate(rng.below(b.len() as u64) as usize),
            }
            if let Ok(s) = etcdsnap::salvage::salvage(&b, "hostile", "/registry") {
                let out = etcdsnap::salvage::output::snapshot_bytes(&s);
                assert_eq!(out.len() % 512, 32);
            }
        }
    }
}

/// `--report` writes the report (0600) as well as printing it; the text
/// report names a lost Kubernetes object by resource, namespace and name.
#[test]
fn report_file_and_text() {
    let orig = std::fs::read(fixture("etcd-3.6.16.db")).unwrap();
    let recs = original_records(&orig[..orig.len() - 32]);
    // Break the page holding the newest record of a configmap.
    let cm = recs
        .iter()
        .rev()
        .find(|r| r.user_key.starts_with(b"/registry/configmaps/") && !r.tombstone)
        .unwrap();
    let page = node_start(&orig, cm.start);
    let mut rng = Rng::new(11);
    let d = with_pages("one leaf", &orig, &[page], &mut rng, false);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("d.db");
    std::fs::write(&input, &d.bytes).unwrap();
    let out = dir.path().join("r.db");
    let rep = dir.path().join("report.txt");
    let o = etcdsnap()
        .args([
            "salvage",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--report",
        ])
        .arg(&rep)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(std::fs::read_to_string(&rep).unwrap(), text);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&rep).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(text.contains("INCOMPLETE"), "{text}");
    assert!(text.contains("[configmaps "), "{text}");
}

/// The original's live keys: revision key and value of each key's newest
/// record, when that is a put.
pub(crate) fn live_records(recs: &[Rec]) -> BTreeMap<Vec<u8>, (Vec<u8>, Vec<u8>)> {
    let mut newest: BTreeMap<Vec<u8>, &Rec> = BTreeMap::new();
    for r in recs {
        let e = newest.entry(r.user_key.clone()).or_insert(r);
        if r.main >= e.main {
            *e = r;
        }
    }
    newest
        .into_iter()
        .filter(|(_, r)| !r.tombstone)
        .map(|(k, r)| (k, (r.rev_key.clone(), r.value.clone())))
        .collect()
}

/// Pages of `data` holding a copy of `needle`.
fn pages_holding(data: &[u8], needle: &[u8]) -> BTreeSet<usize> {
    data.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i / PAGE)
        .collect()
}

/// Two copies of `file` damaged in different pages: `a` loses every page
/// holding a copy of the oldest third of the live keys' newest records
/// (but the tree's branch pages, its root leaf and the leaves holding the
/// newest third: `a` keeps its tree and its newest revisions), `b` every
/// other page but the tree's holding one of the newest third's.
fn two_damaged(file: &str, dir: &Path) -> (PathBuf, PathBuf, Vec<Rec>) {
    let orig = std::fs::read(fixture(file)).unwrap();
    let db_len = orig.len() - orig.len() % PAGE;
    let recs = original_records(&orig[..db_len]);
    let mut live: Vec<&Rec> = {
        let l = live_records(&recs);
        recs.iter()
            .filter(|r| l.values().any(|(rk, _)| *rk == r.rev_key))
            .collect()
    };
    live.sort_by_key(|r| r.main);
    let third = live.len() / 3;
    let mut pa = BTreeSet::new();
    for r in &live[..third] {
        pa.extend(pages_holding(&orig[..db_len], &r.rev_key));
    }
    let mut pb = BTreeSet::new();
    for r in &live[live.len() - third..] {
        pb.extend(pages_holding(&orig[..db_len], &r.rev_key));
    }
    let structural: BTreeSet<usize> = (0..db_len / PAGE)
        .filter(|&p| {
            let page = &orig[p * PAGE..(p + 1) * PAGE];
            page[8] == 0x01
        })
        .collect();
    let pa: BTreeSet<usize> = pa
        .difference(&pb)
        .copied()
        .filter(|p| !structural.contains(p))
        .collect();
    let pb: BTreeSet<usize> = pb
        .difference(&pa)
        .copied()
        .filter(|p| !structural.contains(p))
        .collect();
    assert!(!pa.is_empty() && !pb.is_empty(), "{file}");
    let zero = |pages: &BTreeSet<usize>| {
        let mut c = orig.clone();
        for &p in pages {
            c[p * PAGE..(p + 1) * PAGE].fill(0);
        }
        c
    };
    let (a, b) = (dir.join("a.db"), dir.join("b.db"));
    std::fs::write(&a, zero(&pa)).unwrap();
    std::fs::write(&b, zero(&pb)).unwrap();
    eprintln!("{file}: a without pages {pa:?}, b without pages {pb:?}");
    (a, b, recs)
}

pub(crate) fn salvage_json(args: &[&str]) -> (i32, Value, String) {
    let o = etcdsnap()
        .arg("salvage")
        .args(args)
        .args(["-w", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let report = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), report, stderr)
}

/// `--from` another damaged copy fills what the damaged file lost: every
/// live key of the original comes back byte for byte at its revision,
/// nothing is reported lost, each key names its source, and the result
/// passes `verify`. Returns the recovered file (in `dir`).
fn from_fills_gaps(file: &str, dir: &Path) -> PathBuf {
    let (a, b, recs) = two_damaged(file, dir);
    let out = dir.join("r.db");
    let p = |x: &Path| x.to_str().unwrap().to_string();
    // Alone, the damaged file loses something.
    let (exit, alone, _) = salvage_json(&[&p(&a), "-o", &p(&dir.join("alone.db"))]);
    assert_eq!(exit, 1, "{file}: the damaged copy alone is incomplete");
    assert!(
        !alone["lost"].as_array().unwrap().is_empty()
            || !alone["possiblyStale"].as_array().unwrap().is_empty()
            || alone["missingRevisions"] != 0
    );
    let (exit, report, stderr) = salvage_json(&[&p(&a), "--from", &p(&b), "-o", &p(&out)]);
    assert_eq!(exit, 0, "{file}: {stderr}\n{report:#}");
    assert_eq!(report["lost"].as_array().unwrap().len(), 0, "{file}");
    assert_eq!(
        report["possiblyStale"].as_array().unwrap().len(),
        0,
        "{file}"
    );
    assert_eq!(report["missingRevisions"], 0, "{file}");
    let bytes = std::fs::read(&out).unwrap();
    let got = key_bucket(&bytes[..bytes.len() - 32]);
    let live = live_records(&recs);
    for (k, (rk, v)) in &live {
        assert_eq!(
            got.get(rk),
            Some(v),
            "{file}: {} not recovered at its revision",
            String::from_utf8_lossy(k)
        );
    }
    // Every written revision is the original's, byte for byte.
    let orig: BTreeMap<&[u8], &[u8]> = recs
        .iter()
        .map(|r| (&r.rev_key[..], &r.value[..]))
        .collect();
    for (rk, v) in &got {
        assert_eq!(orig.get(&rk[..]), Some(&&v[..]), "{file}: invented record");
    }
    // Each source named, both used; each key names one.
    let sources = report["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{report:#}");
    for s in sources {
        assert!(s["revisionsWritten"].as_u64().unwrap() > 0, "{report:#}");
        assert_eq!(s["clusterChecked"], true, "{report:#}");
    }
    // A live key whose revision the damaged copy alone did not give names
    // the other copy as its source; every key names one of the two.
    let alone_bytes = std::fs::read(dir.join("alone.db")).unwrap();
    let alone_got = key_bucket(&alone_bytes[..alone_bytes.len() - 32]);
    let source_of: BTreeMap<&str, &str> = report["recovered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["key"].as_str().unwrap(), k["source"].as_str().unwrap()))
        .collect();
    let mut from_b = 0;
    for (k, (rk, _)) in &live {
        let src = source_of[String::from_utf8_lossy(k).as_ref()];
        assert!(src == p(&a) || src == p(&b), "{src}");
        if !alone_got.contains_key(rk) {
            assert_eq!(src, p(&b), "{}", String::from_utf8_lossy(k));
            from_b += 1;
        }
    }
    assert!(
        from_b > 0,
        "{file}: the damaged copy alone lacked no live key"
    );
    let v = etcdsnap()
        .args(["verify", "-q", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(v.status.success(), "{file}: verify failed");
    eprintln!(
        "{file}: {} live keys of the original, all recovered exactly from a --from b ({from_b} from b)",
        live.len()
    );
    out
}

per_release!(
    salvage_from: v3_5("etcd-3.5.1.db"), v3_6("etcd-3.6.16.db")
);

fn salvage_from(file: &str) {
    let dir = tempfile::tempdir().unwrap();
    from_fills_gaps(file, dir.path());
}

per_release!(
    #[ignore = "real: etcdutl of the release"]
    salvage_from_etcdutl: v3_5("etcd-3.5.1.db", "3.5"), v3_6("etcd-3.6.16.db", "3.6")
);

fn salvage_from_etcdutl(file: &str, line: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = from_fills_gaps(file, dir.path());
    let s = std::process::Command::new(etcdutl(line))
        .args(["snapshot", "status", "-w", "json"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        s.status.success(),
        "etcdutl {line} snapshot status: {}",
        String::from_utf8_lossy(&s.stderr)
    );
}

/// A source holding a revision with other bytes than the damaged file's: a
/// conflict, reported, the revision left out, exit 1.
#[test]
fn salvage_from_conflict() {
    let file = "etcd-3.5.1.db";
    let orig = std::fs::read(fixture(file)).unwrap();
    let db_len = orig.len() - orig.len() % PAGE;
    let recs = original_records(&orig[..db_len]);
    // The newest live record holding a plain value, its last byte changed:
    // the last byte of the KeyValue is the end of the value (fields key,
    // create, mod, version, value, in that order; no lease).
    let live = live_records(&recs);
    let target = recs
        .iter()
        .filter(|r| live.values().any(|(rk, _)| *rk == r.rev_key))
        .filter(|r| {
            let kv = KeyValue::decode(&r.value).unwrap();
            // Not a Kubernetes object (protobuf, JSON, CBOR): any byte
            // of the value may change and the record still checks out.
            let object = kv.value.starts_with(b"k8s\0")
                || kv.value.starts_with(b"{")
                || kv.value.starts_with(&[0xd9, 0xd9, 0xf7]);
            kv.lease == 0 && r.value.ends_with(kv.value) && !kv.value.is_empty() && !object
        })
        .max_by_key(|r| r.main)
        .expect("a live record whose KeyValue ends with its value");
    let dir = tempfile::tempdir().unwrap();
    let mut other = orig.clone();
    let last = target.end - 1;
    other[last] = if other[last] == b'x' { b'y' } else { b'x' };
    {
        let kv = KeyValue::decode(&other[target.end - target.value.len()..target.end]).unwrap();
        assert_eq!(kv.mod_revision, target.main, "still parses");
    }
    let src = dir.path().join("other.db");
    std::fs::write(&src, &other).unwrap();
    let out = dir.path().join("r.db");
    let (exit, report, stderr) = salvage_json(&[
        fixture(file).to_str().unwrap(),
        "--from",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(exit, 1, "{stderr}\n{report:#}");
    let conflicts = report["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{report:#}");
    assert_eq!(conflicts[0]["revision"], target.main);
    let key = String::from_utf8_lossy(&target.user_key).into_owned();
    assert!(
        report["lost"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == key.as_str()),
        "{key} listed as lost: {report:#}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let got = key_bucket(&bytes[..bytes.len() - 32]);
    assert!(
        !got.contains_key(&target.rev_key),
        "the revision is left out"
    );
}

/// A source of another cluster is refused (exit 2) unless --force-source.
#[test]
fn salvage_from_unrelated_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.db");
    let a = fixture("etcd-3.5.1.db");
    let b = fixture("etcd-3.6.16.db");
    let (exit, _, stderr) = salvage_json(&[
        a.to_str().unwrap(),
        "--from",
        b.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(exit, 2, "{stderr}");
    assert!(stderr.contains("another cluster"), "{stderr}");
    assert!(!out.exists(), "nothing written");
    let (exit, report, stderr) = salvage_json(&[
        a.to_str().unwrap(),
        "--from",
        b.to_str().unwrap(),
        "--force-source",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(exit == 0 || exit == 1, "{stderr}");
    assert!(stderr.contains("warning"), "{stderr}");
    assert_eq!(report["sources"][1]["clusterChecked"], false);
}

/// A --from source is an input: refused as the output, left as it was.
#[test]
fn salvage_from_source_is_never_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    std::fs::copy(fixture("etcd-3.5.1.db"), &src).unwrap();
    let before = std::fs::read(&src).unwrap();
    let (exit, _, stderr) = salvage_json(&[
        fixture("etcd-3.5.1.db").to_str().unwrap(),
        "--from",
        src.to_str().unwrap(),
        "-o",
        src.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(exit, 2, "{stderr}");
    assert_eq!(std::fs::read(&src).unwrap(), before);
}

per_release!(
    #[ignore = "real: etcd of the release boots the restored members"]
    salvaged_cluster_boots: v3_5("etcd-3.5.1.db", "3.5"), v3_6("etcd-3.6.16.db", "3.6")
);

/// A real cluster boots from a salvaged snapshot: `etcdsnap restore` makes
/// three members from what `salvage` recovered of a damaged copy (the
/// oldest third of the live keys' pages gone), the release's etcd boots
/// them, and they serve exactly the live keys the report recovered, each
/// with the original's value at the recovered revision; the same with the
/// other damaged copy as `--from`, where that is every live key.
fn salvaged_cluster_boots(file: &str, line: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, recs) = two_damaged(file, dir.path());
    for from in [None, Some(&b)] {
        boot_recovered(file, line, dir.path(), &a, from, &recs);
    }
}

fn boot_recovered(
    file: &str,
    line: &str,
    dir: &Path,
    a: &Path,
    from: Option<&PathBuf>,
    recs: &[Rec],
) {
    use crate::common::cluster::{boot_dirs, layout, served};
    let tag = if from.is_some() { "from" } else { "alone" };
    let out = dir.join(format!("recovered-{tag}.db"));
    let mut args = vec![a.to_str().unwrap(), "-o", out.to_str().unwrap()];
    if let Some(b) = from {
        args.extend(["--from", b.to_str().unwrap()]);
    }
    let (exit, report, stderr) = salvage_json(&args);
    assert!(exit == 0 || exit == 1, "{stderr}");
    assert_eq!(exit == 0, from.is_some(), "{report:#}");
    let l = layout(3);
    let token = format!("salvaged-{line}");
    let dirs_root = dir.join(format!("members-{tag}"));
    let o = etcdsnap()
        .args(["restore", out.to_str().unwrap(), "--out-dir"])
        .arg(&dirs_root)
        .args(["--initial-cluster", &l.initial])
        .args(["--initial-cluster-token", &token])
        .args(["--target-version", line])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dirs: Vec<PathBuf> = l
        .members
        .iter()
        .map(|(n, _, _)| dirs_root.join(format!("{n}.etcd")))
        .collect();
    let booted = boot_dirs(line, &l.members, &dirs, &token, &[]);
    assert_eq!(booted["leaders"].as_array().unwrap().len(), 1, "one leader");
    let got = served(&booted);
    // The oracle: the original's record at each recovered live key's revision.
    let by_rev: BTreeMap<(Vec<u8>, i64), &Rec> = recs
        .iter()
        .filter(|r| !r.tombstone)
        .map(|r| ((r.user_key.clone(), r.main), r))
        .collect();
    let mut want = std::collections::HashMap::new();
    for k in report["recovered"].as_array().unwrap() {
        if k["deleted"] == true {
            continue;
        }
        let key = k["key"].as_str().unwrap();
        let rec = by_rev[&(key.as_bytes().to_vec(), k["revision"].as_i64().unwrap())];
        let kv = KeyValue::decode(&rec.value).unwrap();
        want.insert(key.to_string(), kv.value.to_vec());
    }
    assert!(!want.is_empty());
    let live_in_original = live_records(recs).len();
    eprintln!(
        "{file} ({tag}): {} of {live_in_original} live keys recovered; etcd {line} serves {} keys",
        want.len(),
        got.len()
    );
    if from.is_some() {
        assert_eq!(want.len(), live_in_original, "{file}: every live key");
    }
    assert_eq!(
        got, want,
        "{file}: served keys differ from the recovered ones"
    );
}

per_release!(
    #[ignore = "real: etcd of the release"]
    explained_changes_make_no_key_stale: v3_5("3.5"), v3_6("3.6")
);

/// A file written one change per revision, as the kube-apiserver writes it:
/// a lost leaf of creations of keys that changed since (their newer records
/// intact) costs those keys' history and makes no other key suspect; a lost
/// leaf of newest changes makes every key older than it possibly stale, those
/// whose newest change it held included. Etcd's own `get` of the cluster is
/// the oracle for each key's newest revision.
fn explained_changes_make_no_key_stale(line: &str) {
    let etcd = crate::common::live::Etcd::start(line, None);
    let value = |k: &str, v: u32| format!("{k} version {v} {}", "x".repeat(200)).into_bytes();
    for i in 0..40 {
        let k = format!("old/{i:03}");
        etcd.put(&k, &value(&k, 1));
    }
    for v in 1..=2 {
        for i in 0..100 {
            let k = format!("new/{i:03}");
            etcd.put(&k, &value(&k, v));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("single-op.db");
    etcd.ctl(&["snapshot", "save", snap.to_str().unwrap()]);
    let served: Value =
        serde_json::from_slice(&etcd.ctl(&["get", "", "--prefix", "-w", "json"]).stdout).unwrap();
    let newest: BTreeMap<String, i64> = served["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let key = STANDARD.decode(kv["key"].as_str().unwrap()).unwrap();
            (
                String::from_utf8(key).unwrap(),
                kv["mod_revision"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(newest.len(), 140);
    let orig = std::fs::read(&snap).unwrap();
    let recs = original_records(&orig[..orig.len() - orig.len() % PAGE]);
    // Revisions: old/* created at 2..=41, new/* created at 42..=141 and
    // changed at 142..=241.
    let page_of = |main: i64| {
        let r = recs.iter().find(|r| r.main == main).unwrap();
        node_start(&orig, r.start)
    };
    let on_page = |p: usize| -> Vec<&Rec> {
        recs.iter()
            .filter(|r| node_start(&orig, r.start) == p)
            .collect()
    };
    let zeroed = |p: usize, name: &str| {
        let mut bytes = orig.clone();
        bytes[p * PAGE..(p + 1) * PAGE].fill(0);
        let input = dir.path().join(format!("{name}.db"));
        std::fs::write(&input, &bytes).unwrap();
        let out = dir.path().join(format!("{name}.recovered.db"));
        let (code, report, err) =
            salvage_json(&[input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {err}");
        report
    };
    let listed = |report: &Value, list: &str| -> BTreeSet<String> {
        report[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_string())
            .collect()
    };
    let recovered = |report: &Value| -> BTreeMap<String, i64> {
        report["recovered"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["key"].as_str().unwrap().to_string(),
                    k["revision"].as_i64().unwrap(),
                )
            })
            .collect()
    };

    // A leaf of creations only: every key's newest record survives.
    let p = page_of(90);
    let held = on_page(p);
    assert!(
        held.iter().all(|r| (42..=141).contains(&r.main)),
        "page {p} holds creations of new/* only"
    );
    let report = zeroed(p, "creations");
    let missing = report["missingRevisions"].as_u64().unwrap();
    assert!(missing as usize >= held.len(), "{report:#}");
    assert_eq!(
        report["missingExplained"].as_u64(),
        Some(missing),
        "{report:#}"
    );
    assert_eq!(
        listed(&report, "possiblyStale"),
        BTreeSet::new(),
        "{report:#}"
    );
    assert_eq!(listed(&report, "lost"), BTreeSet::new());
    assert_eq!(
        recovered(&report),
        newest,
        "every key at its newest revision"
    );

    // A leaf of newest changes: the keys whose change it held, and every
    // key older than it, may be stale; nothing explains it.
    let p = page_of(200);
    let held = on_page(p);
    assert!(held.iter().all(|r| (142..=241).contains(&r.main)));
    let report = zeroed(p, "changes");
    assert_eq!(report["missingExplained"].as_u64(), Some(0), "{report:#}");
    let stale = listed(&report, "possiblyStale");
    let first_lost = held.iter().map(|r| r.main).min().unwrap();
    for (key, rev) in &newest {
        let on_it = held.iter().any(|r| r.user_key == key.as_bytes());
        if on_it || *rev < first_lost {
            assert!(
                stale.contains(key),
                "{key} (revision {rev}) not listed: {report:#}"
            );
        }
    }
    for r in &held {
        let key = String::from_utf8(r.user_key.clone()).unwrap();
        assert!(
            recovered(&report).get(&key) < Some(&r.main),
            "{key} recovered older than its lost newest revision"
        );
    }
}
