//! `ls`, `get` and `history` with `--salvage` on real snapshots (written by
//! etcd 3.5.1 and 3.6.16) damaged in known ways: a leaf of the key bucket's
//! tree zeroed, whose records also lie on a freed page; the key bucket's root
//! branch page broken. The plain commands refuse the damaged copy; with
//! `--salvage` every live key of the original that the damage did not touch
//! is shown at its revision with its value byte for byte, nothing is shown
//! that the original did not hold, and each object says where it came from
//! (`tree`, or `page N` naming a page that holds its record). The oracle is
//! the undamaged original: read by our strict reader (held to Go's by
//! `bbolt_check`), and in the real tier served by the release's etcd after
//! `etcdutl snapshot restore`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use etcdsnap::bolt::{Db, read};
use etcdsnap::mvcc::{KeyValue, RevisionKey};
use serde_json::Value;

use crate::common::cluster::{boot_dirs, layout, served};
use crate::common::{Rng, etcdsnap, etcdutl, fixture};
use crate::salvage::{PAGE, Rec, live_records, node_start, original_records};

/// A damaged copy: its bytes and the pages the damage touched.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    damaged: BTreeSet<usize>,
    /// The revision key of a live key's newest record that the damage took
    /// from the tree but a freed page still holds.
    moved: Option<Vec<u8>>,
}

fn db_len(orig: &[u8]) -> usize {
    orig.len() - orig.len() % PAGE
}

/// The first pages of the leaf nodes holding a copy of `value` (a whole
/// KeyValue: only leaves hold values).
fn holders(orig: &[u8], value: &[u8]) -> BTreeSet<usize> {
    let data = &orig[..db_len(orig)];
    data.windows(value.len())
        .enumerate()
        .filter(|(_, w)| *w == value)
        .map(|(off, _)| node_start(data, off))
        .collect()
}

/// The pages of a record's node, from its first page to its last byte's.
fn record_pages(orig: &[u8], r: &Rec) -> BTreeSet<usize> {
    (node_start(orig, r.start)..=(r.end - 1) / PAGE).collect()
}

/// The tree's leaf holding a live key's newest record of which a freed
/// page holds another copy, zeroed (its first page and overflow).
fn leaf_zeroed(orig: &[u8], recs: &[Rec]) -> Case {
    let live = live_records(recs);
    let newest: Vec<&Rec> = recs
        .iter()
        .filter(|r| live.values().any(|(rk, _)| *rk == r.rev_key))
        .collect();
    for r in newest {
        let node = node_start(orig, r.start);
        let mut elsewhere = holders(orig, &r.value);
        elsewhere.remove(&node);
        if elsewhere.is_empty() {
            continue;
        }
        let overflow =
            u32::from_le_bytes(orig[node * PAGE + 12..node * PAGE + 16].try_into().unwrap());
        let damaged: BTreeSet<usize> = (node..=node + overflow as usize).collect();
        let mut bytes = orig.to_vec();
        for &p in &damaged {
            bytes[p * PAGE..(p + 1) * PAGE].fill(0);
        }
        eprintln!(
            "leaf zeroed: pages {damaged:?}; {} (revision {}) also on {elsewhere:?}",
            String::from_utf8_lossy(&r.user_key),
            r.main
        );
        return Case {
            name: "leaf zeroed",
            bytes,
            damaged,
            moved: Some(r.rev_key.clone()),
        };
    }
    panic!("no live record of the tree also held by a freed page");
}

/// The key bucket's root branch page overwritten with random bytes.
fn root_branch_broken(orig: &[u8]) -> Case {
    let db = Db::open(&orig[..db_len(orig)]).expect("open the original");
    let key = read::bucket(&db, b"key").unwrap().unwrap();
    let root = match key.header.root {
        etcdsnap::bolt::page::BucketRoot::Page(p) => p as usize,
        etcdsnap::bolt::page::BucketRoot::Inline(_) => panic!("key bucket inline"),
    };
    let mut rng = Rng::new(7);
    let mut bytes = orig.to_vec();
    for b in &mut bytes[root * PAGE..(root + 1) * PAGE] {
        *b = rng.next() as u8;
    }
    Case {
        name: "root branch broken",
        bytes,
        damaged: [root].into(),
        moved: None,
    }
}

fn run(args: &[&str]) -> Output {
    etcdsnap().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Checks the salvage view of `case` against the original (`recs`) and the
/// original's live values `live` (key -> value, from the oracle).
fn check(orig: &[u8], recs: &[Rec], case: &Case, live: &BTreeMap<String, Vec<u8>>, dir: &Path) {
    let name = case.name;
    let input = dir.join(format!("{}.db", name.replace(' ', "-")));
    std::fs::write(&input, &case.bytes).unwrap();
    let file = input.to_str().unwrap();

    // Plainly read, the damaged copy is refused as damaged (exit 1).
    let o = run(&["ls", file]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{name}: plain ls: {}",
        text(&o.stderr)
    );
    let any_key = live.keys().next().unwrap();
    let o = run(&[
        "get",
        file,
        any_key,
        "--no-index",
        "-o",
        "raw",
        "--show-secrets",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{name}: plain get: {}",
        text(&o.stderr)
    );
    assert!(o.stdout.is_empty(), "{name}: plain get printed a value");

    // The salvage's verdict sets the exit code of every salvage view.
    let out = dir.join("out.db");
    let o = run(&[
        "salvage",
        file,
        "-o",
        out.to_str().unwrap(),
        "--force",
        "-w",
        "json",
    ]);
    let verdict = o.status.code().unwrap();
    assert!(
        verdict == 0 || verdict == 1,
        "{name}: salvage: {}",
        text(&o.stderr)
    );

    let o = run(&["ls", file, "--salvage", "-w", "json"]);
    assert_eq!(
        o.status.code(),
        Some(verdict),
        "{name}: ls --salvage: {}",
        text(&o.stderr)
    );
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains("warning")
            && stderr.contains("salvage view")
            && stderr.contains("etcdsnap salvage") == (verdict == 1),
        "{name}: {stderr}"
    );
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).expect("ls JSON");
    let by_key_rev: BTreeMap<(Vec<u8>, i64), &Rec> = recs
        .iter()
        .filter(|r| !r.tombstone)
        .map(|r| ((r.user_key.clone(), r.main), r))
        .collect();
    let mut shown: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for row in &rows {
        let key = row["key"].as_str().unwrap();
        let rev = row["modRevision"].as_i64().unwrap();
        let from = row["from"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no from: {row}"));
        let r = by_key_rev
            .get(&(key.as_bytes().to_vec(), rev))
            .unwrap_or_else(|| {
                panic!("{name}: {key} at {rev} shown; the original holds no such record")
            });
        let value = KeyValue::decode(&r.value).unwrap().value.to_vec();
        assert_eq!(
            row["size"].as_u64(),
            Some(value.len() as u64),
            "{name}: {key}"
        );
        assert_from(orig, r, from, &case.damaged, name);
        shown.insert(key.to_string(), (rev, from.to_string()));
    }

    // Every live key the damage did not touch: shown at its revision, its
    // value byte for byte.
    let newest: BTreeMap<String, &Rec> = {
        let l = live_records(recs);
        recs.iter()
            .filter(|r| l.values().any(|(rk, _)| *rk == r.rev_key))
            .map(|r| (text(&r.user_key), r))
            .collect()
    };
    let mut untouched = 0;
    for (key, value) in live {
        let r = newest
            .get(key)
            .unwrap_or_else(|| panic!("{key}: live for the oracle, not in the original's records"));
        if !record_pages(orig, r).is_disjoint(&case.damaged) {
            continue;
        }
        untouched += 1;
        let (rev, _) = shown
            .get(key)
            .unwrap_or_else(|| panic!("{name}: untouched live key {key} not listed"));
        assert_eq!(*rev, r.main, "{name}: {key} listed at another revision");
        let o = run(&["get", file, key, "--salvage", "-o", "raw", "--show-secrets"]);
        assert_eq!(
            o.status.code(),
            Some(verdict),
            "{name}: get {key}: {}",
            text(&o.stderr)
        );
        assert!(
            o.stdout == *value,
            "{name}: {key}: value differs from the original's"
        );
        let stderr = text(&o.stderr);
        assert!(
            stderr.contains(&format!("at revision {} ", r.main)) && stderr.contains(", from "),
            "{name}: {key}: {stderr}"
        );
    }
    assert!(untouched > 0, "{name}: no live key untouched");

    // The record the damage took from the tree: shown from the freed page.
    if let Some(rk) = &case.moved {
        let r = recs.iter().find(|r| r.rev_key == *rk).unwrap();
        let key = text(&r.user_key);
        let (rev, from) = shown
            .get(&key)
            .unwrap_or_else(|| panic!("{name}: {key} (on a freed page too) not listed"));
        assert_eq!(*rev, r.main, "{name}: {key}");
        assert!(from.starts_with("page "), "{name}: {key} from {from}");
        let o = run(&[
            "get",
            file,
            &key,
            "--salvage",
            "-o",
            "raw",
            "--show-secrets",
        ]);
        assert_eq!(
            o.stdout,
            KeyValue::decode(&r.value).unwrap().value,
            "{name}: {key}"
        );
        assert!(
            text(&o.stderr).contains(&format!(", from {from})")),
            "{name}: {key}: {}",
            text(&o.stderr)
        );
        check_history(file, recs, &key, name, verdict);
    }
    // The key of the original with the most revisions, through history.
    let mut counts: BTreeMap<&[u8], usize> = BTreeMap::new();
    for r in recs {
        *counts.entry(&r.user_key).or_default() += 1;
    }
    let busiest = counts.iter().max_by_key(|(_, n)| **n).unwrap().0;
    check_history(file, recs, &text(busiest), name, verdict);
    eprintln!(
        "{name}: {} rows, {untouched} untouched live keys shown exactly, {} from pages",
        rows.len(),
        shown
            .values()
            .filter(|(_, f)| f.starts_with("page "))
            .count()
    );
}

/// `from` of a record: `tree` when the tree still reaches it (its pages
/// undamaged), or `page N` where N is an undamaged page holding a copy.
fn assert_from(orig: &[u8], r: &Rec, from: &str, damaged: &BTreeSet<usize>, name: &str) {
    let key = text(&r.user_key);
    if from == "tree" {
        assert!(
            record_pages(orig, r).is_disjoint(damaged),
            "{name}: {key} from the tree, but its leaf is damaged"
        );
        return;
    }
    let page: usize = from
        .strip_prefix("page ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{name}: {key}: from {from:?}"));
    assert!(
        !damaged.contains(&page),
        "{name}: {key} from damaged page {page}"
    );
    assert!(
        holders(orig, &r.value).contains(&page),
        "{name}: {key} from page {page}, which holds no copy of its record"
    );
}

/// `history KEY --salvage` lists only revisions the original holds of the
/// key, each with where it came from.
fn check_history(file: &str, recs: &[Rec], key: &str, name: &str, verdict: i32) {
    let o = run(&["history", file, key, "--salvage", "-w", "json"]);
    if o.status.code() == Some(1) && o.stdout.is_empty() {
        // Not found: every revision of it was lost.
        assert!(
            text(&o.stderr).contains("not found"),
            "{name}: {}",
            text(&o.stderr)
        );
        return;
    }
    assert_eq!(
        o.status.code(),
        Some(verdict),
        "{name}: history {key}: {}",
        text(&o.stderr)
    );
    let h: Value = serde_json::from_slice(&o.stdout).expect("history JSON");
    let original: BTreeSet<(i64, i64, bool)> = recs
        .iter()
        .filter(|r| r.user_key == key.as_bytes())
        .map(|r| {
            let rk = RevisionKey::parse(&r.rev_key).unwrap();
            (rk.revision.main, rk.revision.sub, rk.tombstone)
        })
        .collect();
    let revs = h["revisions"].as_array().unwrap();
    assert!(!revs.is_empty(), "{name}: {key}");
    for rev in revs {
        let got = (
            rev["revision"].as_i64().unwrap(),
            rev["sub"].as_i64().unwrap(),
            rev["deleted"].as_bool().unwrap(),
        );
        assert!(
            original.contains(&got),
            "{name}: {key}: revision {got:?} not the original's"
        );
        let from = rev["from"].as_str().unwrap();
        assert!(
            from == "tree" || from.starts_with("page "),
            "{name}: {key}: {from}"
        );
    }
}

/// The original's live keys and values, by our strict reader.
fn live_values(recs: &[Rec]) -> BTreeMap<String, Vec<u8>> {
    live_records(recs)
        .into_iter()
        .map(|(k, (_, v))| (text(&k), KeyValue::decode(&v).unwrap().value.to_vec()))
        .collect()
}

per_release!(
    salvage_view: v3_5("etcd-3.5.1.db"), v3_6("etcd-3.6.16.db")
);

fn salvage_view(file: &str) {
    let orig = std::fs::read(fixture(file)).unwrap();
    let recs = original_records(&orig[..db_len(&orig)]);
    let live = live_values(&recs);
    let dir = tempfile::tempdir().unwrap();
    for case in [leaf_zeroed(&orig, &recs), root_branch_broken(&orig)] {
        check(&orig, &recs, &case, &live, dir.path());
    }
}

per_release!(
    #[ignore = "real: etcd of the release serves the original"]
    salvage_view_etcd: v3_5("etcd-3.5.1.db", "3.5"), v3_6("etcd-3.6.16.db", "3.6")
);

/// The oracle is etcd itself: the original restored by the release's
/// etcdutl and served by its etcd; every key it serves that the damage did
/// not touch is shown by `--salvage` with the value etcd serves.
fn salvage_view_etcd(file: &str, line: &str) {
    let orig = std::fs::read(fixture(file)).unwrap();
    let recs = original_records(&orig[..db_len(&orig)]);
    let dir = tempfile::tempdir().unwrap();
    let l = layout(1);
    let (member, peer, _) = &l.members[0];
    let data = dir.path().join("original.etcd");
    let o = std::process::Command::new(etcdutl(line))
        .args(["snapshot", "restore"])
        .arg(fixture(file))
        .args(["--name", member, "--initial-cluster", &l.initial])
        .args(["--initial-cluster-token", "salvage-view"])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "etcdutl {line} restore: {}",
        text(&o.stderr)
    );
    let booted = boot_dirs(line, &l.members, &[data], "salvage-view", &[]);
    let mut served: BTreeMap<String, Vec<u8>> = served(&booted).into_iter().collect();
    served.remove("/etcdsnap/after-restore");
    assert_eq!(
        served.keys().collect::<Vec<_>>(),
        live_values(&recs).keys().collect::<Vec<_>>(),
        "{file}: etcd serves other keys than the original's live ones"
    );
    for case in [leaf_zeroed(&orig, &recs), root_branch_broken(&orig)] {
        check(&orig, &recs, &case, &served, dir.path());
    }
}

/// A file of which nothing is usable is exit 2 with --salvage, as for
/// `salvage`; `--from` without `--salvage` is a usage error (2).
#[test]
fn salvage_view_nothing_usable_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    let mut rng = Rng::new(3);
    std::fs::write(
        &junk,
        (0..64 * 1024)
            .map(|_| rng.next() as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let junk = junk.to_str().unwrap();
    let good = fixture("etcd-3.5.1.db");
    let good = good.to_str().unwrap();
    for args in [
        vec!["ls", junk, "--salvage"],
        vec!["get", junk, "/registry/namespaces/default", "--salvage"],
        vec!["history", junk, "/registry/namespaces/default", "--salvage"],
        vec!["ls", good, "--salvage", "--from", junk],
        vec!["ls", good, "--from", good],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // A sound file read with --salvage: nothing lost, exit 0, every row
    // from the tree.
    let o = run(&["ls", good, "--salvage", "-w", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["from"] == "tree"), "{rows:?}");
    assert!(text(&o.stderr).contains("nothing known lost"));
}
