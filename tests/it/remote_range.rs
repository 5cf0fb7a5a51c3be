//! `get` and `history` of a snapshot in a bucket read by ranges: with a key
//! index of the object in the cache, only the pages the lookup needs are
//! read (the server's own access log counts the requests); without one the
//! object is read whole and the index made is cached; an object replaced
//! since the index was made is read whole again. The answers equal etcd's
//! own (`etcdctl get` of the member that wrote the snapshot).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::live::Etcd;
use crate::common::objstore::{SECRET_KEY, Versity, VersityOpts, with_s3_env};
use crate::common::{etcdsnap, stderr, stdout};

/// A real etcd 3.5 snapshot of 3,000 keys of 1 KB (about 750 pages), with
/// etcd's own value of `probe` (the key looked up).
fn snapshot(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let etcd = Etcd::start("3.5", None);
    for t in 0..30 {
        bulk(&etcd, t);
    }
    // One more change of the key looked up: it has history.
    etcd.put("/bench/k17-042", b"changed");
    let mut value = etcd
        .ctl(&["get", "/bench/k17-042", "--print-value-only"])
        .stdout;
    // etcdctl ends the value with a newline (the value has none).
    assert_eq!(value.pop(), Some(b'\n'));
    let snap = dir.join("snap.db");
    etcd.ctl(&["snapshot", "save", snap.to_str().unwrap()]);
    (snap, value)
}

/// versitygw with an access log (`DIR/access.log`), serving `snap` as
/// `s3://backups/nightly/snap.db`.
fn served(dir: &Path, snap: &Path) -> (Versity, std::path::PathBuf) {
    let log = dir.join("access.log");
    let v = Versity::start_with(VersityOpts {
        access_log: Some(log.clone()),
        ..VersityOpts::default()
    });
    v.create_bucket("backups");
    v.put("backups", "nightly/snap.db", snap);
    (v, log)
}

fn run(v: &Versity, cache: &Path, args: &[&str]) -> Output {
    let mut c: Command = etcdsnap();
    with_s3_env(&mut c, v, SECRET_KEY);
    c.env("ETCDSNAP_CACHE_DIR", cache).args(args);
    c.output().unwrap()
}

/// Requests of the access log after line `from`, by S3 operation, once the
/// server has written them (it logs each request as it ends).
fn requests_after(log: &Path, from: usize) -> Vec<String> {
    let read = || -> Vec<String> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .skip(from)
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("s3_")))
            .map(str::to_string)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = read();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = read();
        if now.len() == last.len() && !now.is_empty() {
            break;
        }
        last = now;
    }
    read()
}

/// The bytes `-v` says were read by ranges.
fn bytes_said(stderr: &str) -> u64 {
    stderr
        .split("requests, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn lines(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
#[ignore = "real: etcd 3.5.1, versitygw (bash .ci/versitygw)"]
fn get_with_a_cached_index_reads_only_the_pages_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (snap, value) = snapshot(dir.path());
    let size = std::fs::metadata(&snap).unwrap().len();
    let (v, log) = served(dir.path(), &snap);
    let url = "s3://backups/nightly/snap.db";
    let cache = dir.path().join("cache");
    let get = ["get", url, "/bench/k17-042", "-o", "raw", "-v"];

    // No index yet: read whole, index cached.
    let from = lines(&log);
    let first = run(&v, &cache, &get);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(first.stdout, value, "etcd's value");
    assert!(
        stderr(&first).contains("wrote a key index"),
        "{}",
        stderr(&first)
    );
    let whole = requests_after(&log, from);
    assert!(whole.contains(&"s3_GetObject".to_string()), "{whole:?}");

    // With it: a few ranges.
    let from = lines(&log);
    let second = run(&v, &cache, &get);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(second.stdout, value);
    let err = stderr(&second);
    assert!(err.contains("read by ranges"), "{err}");
    let ranged = requests_after(&log, from);
    let gets = ranged.iter().filter(|r| *r == "s3_GetObject").count();
    assert!(
        (2..=12).contains(&gets),
        "{gets} GetObject requests: {ranged:?}\n{err}"
    );
    let said = bytes_said(&err);
    assert!(said * 10 < size, "{said} of {size} bytes read");
    eprintln!("get by ranges: {gets} GetObject requests of the server's log; {err}");

    // history too.
    let from = lines(&log);
    let h = run(
        &v,
        &cache,
        &["history", url, "/bench/k17-042", "-w", "json", "-v"],
    );
    assert_eq!(h.status.code(), Some(0), "{}", stderr(&h));
    let hist: serde_json::Value = serde_json::from_str(&stdout(&h)).unwrap();
    assert_eq!(
        hist["revisions"].as_array().map(Vec::len),
        Some(2),
        "{hist:#}"
    );
    assert!(stderr(&h).contains("read by ranges"), "{}", stderr(&h));
    let gets = requests_after(&log, from)
        .iter()
        .filter(|r| *r == "s3_GetObject")
        .count();
    assert!(gets <= 12, "{gets}");

    // The object replaced under its name: the cached index names another
    // content, so the new object is read whole, and answers as it is now.
    let other = dir.path().join("other.db");
    let mut bytes = std::fs::read(&snap).unwrap();
    let etcd = Etcd::start("3.5", None);
    etcd.put("/bench/k17-042", b"another cluster");
    etcd.ctl(&["snapshot", "save", other.to_str().unwrap()]);
    bytes.clear();
    v.put("backups", "nightly/snap.db", &other);
    let third = run(&v, &cache, &get);
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert_eq!(third.stdout, b"another cluster");
    assert!(
        !stderr(&third).contains("read by ranges"),
        "{}",
        stderr(&third)
    );
}

/// `index URL --beside` puts the key index into the bucket beside the
/// object (`URL.etcdsnap-index`): a machine with an empty cache then reads
/// `get` by ranges (the index fetched once into its cache) and answers
/// etcd's value; a check of the prefix does not take the index for a
/// snapshot; an index beside the object that is of another snapshot is
/// passed over (the object is read whole, the answer still etcd's).
#[test]
#[ignore = "real: etcd 3.5.1, versitygw (bash .ci/versitygw)"]
fn an_index_beside_the_object_lets_an_empty_cache_read_by_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (snap, value) = snapshot(dir.path());
    let (v, log) = served(dir.path(), &snap);
    let url = "s3://backups/nightly/snap.db";
    let o = run(&v, &dir.path().join("cache-a"), &["index", url, "--beside"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    eprintln!("index --beside: {}", stdout(&o));
    assert!(
        stdout(&o).starts_with("s3://backups/nightly/snap.db.etcdsnap-index: "),
        "{}",
        stdout(&o)
    );

    let get = ["get", url, "/bench/k17-042", "-o", "raw", "-v"];
    let from = lines(&log);
    let o = run(&v, &dir.path().join("cache-b"), &get);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, value, "etcd's value");
    assert!(stderr(&o).contains("read by ranges"), "{}", stderr(&o));
    let reqs = requests_after(&log, from);
    let gets = reqs.iter().filter(|r| *r == "s3_GetObject").count();
    assert!(
        (3..=14).contains(&gets),
        "{gets} GetObject requests: {reqs:?}"
    );
    eprintln!(
        "get by ranges with the index beside: {} requests ({gets} GetObject)",
        reqs.len()
    );

    let o = run(
        &v,
        &dir.path().join("cache-b"),
        &["check", "s3://backups/nightly/"],
    );
    // (The default policy fails this snapshot of no Kubernetes objects: what
    // matters is which objects were judged.)
    assert!(
        stdout(&o).contains("s3://backups/nightly/snap.db: "),
        "{}",
        stdout(&o)
    );
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!said.contains("etcdsnap-index"), "{said}");

    // Another snapshot's index under that name: not taken.
    let etcd = Etcd::start("3.5", None);
    etcd.put("/bench/k17-042", b"another cluster");
    let other = dir.path().join("other.db");
    etcd.ctl(&["snapshot", "save", other.to_str().unwrap()]);
    let other_index = dir.path().join("other.etcdsnap-index");
    let o = run(
        &v,
        &dir.path().join("cache-a"),
        &[
            "index",
            other.to_str().unwrap(),
            "-o",
            other_index.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    v.put("backups", "nightly/snap.db.etcdsnap-index", &other_index);
    let o = run(&v, &dir.path().join("cache-c"), &get);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, value, "etcd's value");
    assert!(!stderr(&o).contains("read by ranges"), "{}", stderr(&o));
}

/// Puts group `t` of 100 keys of 1 KB under `/bench/` in one transaction.
fn bulk(etcd: &Etcd, t: usize) {
    let mut ops = String::from("\n");
    for i in 0..100 {
        ops.push_str(&format!(
            "put /bench/k{t:02}-{i:03} v{t}-{i}-{}\n",
            "x".repeat(1000)
        ));
    }
    ops.push_str("\n\n");
    let mut c = etcd
        .ctl_cmd()
        .arg("txn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(ops.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success());
}

/// etcd's own listing of `prefix` at `rev` (0: now): each key with its
/// mod revision.
fn etcd_listing(etcd: &Etcd, prefix: &str, rev: i64) -> Vec<(String, i64)> {
    let rev = format!("--rev={rev}");
    let o = etcd.ctl(&["get", prefix, "--prefix", "-w", "json", &rev]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut out: Vec<(String, i64)> = v["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    use base64::Engine;
                    let key = base64::engine::general_purpose::STANDARD
                        .decode(kv["key"].as_str().unwrap())
                        .unwrap();
                    (
                        String::from_utf8(key).unwrap(),
                        kv["mod_revision"].as_i64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // Newest change first, as `ls` lists.
    out.sort_by_key(|kv| std::cmp::Reverse(kv.1));
    out
}

/// `ls`'s JSON rows as (key, modRevision), and the deletion revisions.
fn ls_rows(o: &Output) -> Vec<(String, i64, Option<i64>)> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["modRevision"].as_i64().unwrap(),
                r["deletedAt"].as_i64(),
            )
        })
        .collect()
}

/// `ls URL PREFIX` with a key index of the object in the cache reads the
/// meta pages and the leaves of the keys under the prefix by ranges (the
/// server's access log counts a few GetObject), not the object. Its rows
/// are etcd's (`etcdctl get --prefix`, now and at an older revision: keys
/// and mod revisions, newest change first), the deleted keys are shown with
/// their last put (a key put twice then deleted), and every output — table,
/// JSON, `--deleted`, `--revision`, `--sort key`, `--resource -n` — is
/// byte for byte that of the same file read locally, exit codes equal. A
/// custom resource the prefix's keys do not show is read whole and fails
/// as locally.
#[test]
#[ignore = "real: etcd 3.5.1, versitygw (bash .ci/versitygw)"]
fn ls_prefix_with_a_cached_index_reads_by_ranges_and_lists_as_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start("3.5", None);
    let cm = |ns: &str, name: &str| format!("/registry/configmaps/{ns}/{name}");
    let rev_of = |key: &str| etcd_listing(&etcd, key, 0)[0].1;
    // The configmaps' records spread among 3,000 keys of bulk.
    let mut b_second_put = 0;
    for t in 0..30 {
        bulk(&etcd, t);
        match t {
            2 => {
                etcd.put(&cm("ns1", "a"), br#"{"kind":"ConfigMap"}"#);
                etcd.put(&cm("ns1", "b"), b"first");
                etcd.put(&cm("ns2", "d"), b"d");
            }
            8 => {
                etcd.put(&cm("ns1", "b"), b"second");
                b_second_put = rev_of(&cm("ns1", "b"));
                etcd.put(&cm("ns1", "c"), b"c1");
                etcd.put("/registry/secrets/ns1/s", b"secret");
            }
            14 => {
                etcd.ctl(&["del", &cm("ns1", "b")]);
                etcd.ctl(&["del", &cm("ns1", "c")]);
            }
            20 => {
                etcd.put(&cm("ns1", "c"), b"c2");
                etcd.put(&cm("ns1", "e"), b"e1");
            }
            26 => etcd.put(&cm("ns1", "e"), b"e2"),
            _ => {}
        }
    }
    let mid = etcd_listing(&etcd, &cm("ns1", "c"), 0)[0].1 - 1;
    let now_listing = etcd_listing(&etcd, "/registry/configmaps/", 0);
    let mid_listing = etcd_listing(&etcd, "/registry/configmaps/", mid);
    let snap = dir.path().join("snap.db");
    etcd.ctl(&["snapshot", "save", snap.to_str().unwrap()]);
    let size = std::fs::metadata(&snap).unwrap().len();
    let local = snap.to_str().unwrap();

    let (v, log) = served(dir.path(), &snap);
    let url = "s3://backups/nightly/snap.db";
    let cache = dir.path().join("cache");
    // A lookup caches the key index (reading the object whole).
    let o = run(&v, &cache, &["get", url, &cm("ns1", "a"), "-o", "raw"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let mid_s = mid.to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["/registry/configmaps/"],
        vec!["/registry/configmaps/", "-w", "json"],
        vec!["/registry/configmaps/", "--deleted", "-w", "json"],
        vec!["/registry/configmaps/", "--deleted"],
        vec!["/registry/configmaps/", "--revision", &mid_s, "-w", "json"],
        vec!["/registry/configmaps/", "--sort", "key"],
        vec!["--resource", "configmaps", "-n", "ns1"],
        vec!["--resource", "cm", "-n", "ns2", "-w", "json"],
        vec!["/registry/configmaps/ns3/"],
    ];
    for case in &cases {
        let remote_args: Vec<&str> = ["ls", url]
            .iter()
            .chain(case)
            .copied()
            .chain(["-v"])
            .collect();
        let from = lines(&log);
        let r = run(&v, &cache, &remote_args);
        let reqs = requests_after(&log, from);
        let local_args: Vec<&str> = ["ls", local].iter().chain(case).copied().collect();
        let l = run(&v, &cache, &local_args);
        assert_eq!(l.status.code(), Some(0), "{case:?}: {}", stderr(&l));
        assert_eq!(r.status.code(), l.status.code(), "{case:?}: {}", stderr(&r));
        assert_eq!(stdout(&r), stdout(&l), "{case:?}: remote and local differ");
        let err = stderr(&r);
        assert!(err.contains("read by ranges"), "{case:?}: {err}");
        let gets = reqs.iter().filter(|q| *q == "s3_GetObject").count();
        assert!(gets <= 16, "{case:?}: {gets} GetObject: {reqs:?}");
        let said = bytes_said(&err);
        assert!(said * 10 < size, "{case:?}: {said} of {size} bytes read");
        eprintln!("ls {case:?} by ranges: {gets} GetObject; {}", err.trim());
        if case.len() == 1 {
            eprintln!("{}", stdout(&r));
        }
    }

    // etcd's answers.
    let as_etcd = |o: &Output| -> Vec<(String, i64)> {
        ls_rows(o).into_iter().map(|(k, r, _)| (k, r)).collect()
    };
    let live = run(
        &v,
        &cache,
        &["ls", url, "/registry/configmaps/", "-w", "json"],
    );
    assert_eq!(
        as_etcd(&live),
        now_listing,
        "live keys, newest change first"
    );
    let old = run(
        &v,
        &cache,
        &[
            "ls",
            url,
            "/registry/configmaps/",
            "--revision",
            &mid_s,
            "-w",
            "json",
        ],
    );
    assert_eq!(as_etcd(&old), mid_listing, "keys at revision {mid}");
    let deleted = run(
        &v,
        &cache,
        &[
            "ls",
            url,
            "/registry/configmaps/",
            "--deleted",
            "-w",
            "json",
        ],
    );
    let rows = ls_rows(&deleted);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, cm("ns1", "b"));
    assert_eq!(rows[0].1, b_second_put, "shown with its last put");
    assert!(rows[0].2.is_some_and(|d| d > b_second_put), "{rows:?}");

    // A custom resource no key under its prefix shows: read whole, and the
    // same error as locally.
    let r = run(
        &v,
        &cache,
        &["ls", url, "--resource", "widgets.example.com", "-v"],
    );
    let l = run(
        &v,
        &cache,
        &["ls", local, "--resource", "widgets.example.com"],
    );
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert_eq!(r.status.code(), l.status.code());
    assert_eq!(stdout(&r), stdout(&l));
    assert!(stderr(&r).contains("streamed into"), "{}", stderr(&r));
    assert!(stderr(&r).contains("unknown resource"), "{}", stderr(&r));
}

/// `ls PREFIX` by ranges over values larger than a page: each leaf's value
/// continues on overflow pages that only the leaf's header names. Seventy
/// secrets of 6 KB, each written between 100 KB of other keys (so no two
/// leaves are near), are listed by ranges — the leaves, then their
/// overflow pages, each round fetched at once — with the rows and sizes of
/// the local listing and of etcd (`etcdctl get --prefix`).
#[test]
#[ignore = "real: etcd 3.5.1, versitygw (bash .ci/versitygw)"]
fn ls_prefix_of_large_values_reads_their_overflow_pages_by_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start("3.5", None);
    for i in 0..70 {
        bulk(&etcd, i);
        etcd.put(
            &format!("/registry/secrets/ns1/s{i:02}"),
            format!("{i:02}{}", "s".repeat(6000)).as_bytes(),
        );
    }
    let listing = etcd_listing(&etcd, "/registry/secrets/", 0);
    assert_eq!(listing.len(), 70);
    let snap = dir.path().join("snap.db");
    etcd.ctl(&["snapshot", "save", snap.to_str().unwrap()]);
    let size = std::fs::metadata(&snap).unwrap().len();
    let (v, _log) = served(dir.path(), &snap);
    let url = "s3://backups/nightly/snap.db";
    let cache = dir.path().join("cache");
    let o = run(&v, &cache, &["index", url]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let r = run(
        &v,
        &cache,
        &["ls", url, "/registry/secrets/", "-w", "json", "-v"],
    );
    let l = run(
        &v,
        &cache,
        &[
            "ls",
            snap.to_str().unwrap(),
            "/registry/secrets/",
            "-w",
            "json",
        ],
    );
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert_eq!(stdout(&r), stdout(&l), "remote and local differ");
    let err = stderr(&r);
    assert!(err.contains("read by ranges"), "{err}");
    assert!(bytes_said(&err) * 10 < size, "{err}");
    let rows = ls_rows(&r);
    let as_etcd: Vec<(String, i64)> = rows.into_iter().map(|(k, r, _)| (k, r)).collect();
    assert_eq!(as_etcd, listing);
    let json: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert!(
        json.as_array().unwrap().iter().all(|r| r["size"] == 6002),
        "{json}"
    );
    eprintln!("ls of 70 values of 6 KB by ranges: {}", err.trim());
}
