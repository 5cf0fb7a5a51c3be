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
        let mut ops = String::from("\n");
        for i in 0..100 {
            ops.push_str(&format!(
                "put /bench/k{t:02}-{i:03} v{t}-{i}-{}\n",
                "x".repeat(1000)
            ));
        }
        // The end of the success operations, then of the (no) failure ones.
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
    let log = dir.path().join("access.log");
    let v = Versity::start_with(VersityOpts {
        access_log: Some(log.clone()),
        ..VersityOpts::default()
    });
    v.create_bucket("backups");
    v.put("backups", "nightly/snap.db", &snap);
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
    let said: u64 = err
        .split("requests, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
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
    let log = dir.path().join("access.log");
    let v = Versity::start_with(VersityOpts {
        access_log: Some(log.clone()),
        ..VersityOpts::default()
    });
    v.create_bucket("backups");
    v.put("backups", "nightly/snap.db", &snap);
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
