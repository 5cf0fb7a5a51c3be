//! Names from a snapshot cannot spoof `verify`'s output:
//! control characters in bucket names and keys reach the terminal escaped,
//! so a crafted name can neither clear the screen nor print a fake verdict.
//! (The object commands are covered with hostile keys in a real etcd by
//! tests/it/object_commands.rs.)

use crate::common;
use crate::craft;

use common::{run, stdout};
use craft::{bucket, db, inline_bucket, meta_entries, plain};

#[test]
fn verify_escapes_bucket_names_and_keys() {
    let evil = b"\x1b[2J\nOK: every check passed".to_vec();
    let root = vec![
        bucket(&evil, inline_bucket(&[])),
        bucket(
            b"key",
            inline_bucket(&[plain(b"bad\x1b[31m\nOK: every check passed", b"x".to_vec())]),
        ),
        bucket(b"meta", inline_bucket(&meta_entries())),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("evil.db");
    std::fs::write(&path, db(&root, &[])).expect("write");
    let o = run(&["verify", path.to_str().expect("utf-8 path")]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        !out.contains('\x1b'),
        "a raw ESC reached the output:\n{out}"
    );
    assert!(
        !out.lines().any(|l| l.trim() == "OK: every check passed"),
        "a name printed a fake verdict:\n{out}"
    );
    assert!(out.contains("\\x1b[2J\\x0aOK: every check passed"), "{out}");
    assert!(
        out.lines().last().is_some_and(|l| l.starts_with("FAILED")),
        "{out}"
    );
}

/// A node named with an ESC sequence and a newline, put into a real etcd
/// 3.5.1: the restore plan's stale-data report shows it escaped.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn restore_plan_escapes_names_from_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let value = dir.path().join("node.json");
    std::fs::write(
        &value,
        br#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n"}}"#,
    )
    .expect("write");
    let snap = dir.path().join("snap.db");
    let key = "/registry/minions/evil\x1b[2J\nOK: every check passed";
    let o = std::process::Command::new("python3")
        .arg(common::root().join("fixtures/put_and_save.py"))
        .arg("3.5")
        .arg(&snap)
        .arg(format!("{key}={}", value.display()))
        .output()
        .expect("run put_and_save.py");
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = run(&[
        "restore",
        snap.to_str().expect("utf-8"),
        "--dry-run",
        "--initial-cluster",
        "m1=http://127.0.0.1:2380",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", common::stderr(&o));
    assert!(out.contains("evil\\x1b[2J\\x0aOK"), "{out}");
    assert!(
        !out.contains('\x1b'),
        "a raw ESC reached the output:\n{out}"
    );
}
