//! etcd 3.6.16 and 3.7.3 (built by .ci/etcd-build) as oracles: snapshots
//! written by real servers of each release (Kubernetes-shaped protobuf, JSON
//! and CBOR values, leases, updates, deletes, a compaction, values near 1 MiB;
//! made at test time by fixtures/live_dump.py), and what each release's
//! etcdutl/etcdctl says about them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use common::*;
use serde_json::Value;

const LINES: &[&str] = &["3.6", "3.7"];

/// A live server's snapshot and what it served, made once per test binary and
/// line: OUT/snapshot.db, OUT/live.json, OUT/values.json (see live_dump.py).
fn dump(line: &str) -> &'static Path {
    static D36: OnceLock<tempfile::TempDir> = OnceLock::new();
    static D37: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cell = match line {
        "3.6" => &D36,
        "3.7" => &D37,
        _ => panic!("no dump for {line}"),
    };
    cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("python3")
            .arg(root().join("fixtures/live_dump.py"))
            .arg(line)
            .arg(dir.path())
            .status()
            .expect("run fixtures/live_dump.py");
        assert!(st.success(), "live_dump.py {line} failed");
        dir
    })
    .path()
}

fn snapshot(line: &str) -> PathBuf {
    dump(line).join("snapshot.db")
}

#[test]
fn built_releases_report_their_pinned_versions() {
    for (line, version) in BUILT_RELEASES {
        for (tool, args, want) in [
            (
                "etcd",
                &["--version"][..],
                format!("etcd Version: {version}"),
            ),
            (
                "etcdctl",
                &["version"][..],
                format!("etcdctl version: {version}"),
            ),
            (
                "etcdutl",
                &["version"][..],
                format!("etcdutl version: {version}"),
            ),
        ] {
            let o = Command::new(etcd_bin(line, tool))
                .args(args)
                .output()
                .unwrap();
            assert!(
                stdout(&o).contains(&want),
                "{tool} {line}: {}{}",
                stdout(&o),
                stderr(&o)
            );
        }
        let o = Command::new(etcd_bin(line, "bbolt"))
            .arg("version")
            .output()
            .unwrap();
        assert!(o.status.success(), "bbolt {line}: {}", stderr(&o));
    }
}

/// `status` equals the writing release's `etcdutl snapshot status` in every
/// format, by default (from the storage version) and with --etcd-version.
#[test]
fn status_matches_etcdutl_of_the_release_that_wrote_the_file() {
    for line in LINES {
        let f = snapshot(line);
        let p = f.to_str().unwrap();
        for format in ["json", "table", "simple", "fields"] {
            let want = real_status(line, &f, format);
            assert!(
                want.contains(&format!("{line}.0")),
                "etcd {line} did not record its storage version: {want}"
            );
            let o = run(&["status", p, "-w", format]);
            assert!(o.status.success(), "{line}: {}", stderr(&o));
            assert_eq!(stdout(&o), want, "status -w {format} of a {line} file");
            let o = run(&["status", p, "-w", format, "--etcd-version", line]);
            assert_eq!(stdout(&o), want, "status --etcd-version {line} -w {format}");
        }
    }
}

/// Files without a storage version (3.4/3.5 ones) as etcdutl 3.6/3.7 print
/// them: live keys, an empty version column.
#[test]
fn status_as_3_6_and_3_7_on_older_files() {
    for line in LINES {
        for (name, _) in FIXTURES {
            let f = fixture(name);
            for format in ["json", "table", "simple", "fields"] {
                let want = real_status(line, &f, format);
                let o = run(&[
                    "status",
                    f.to_str().unwrap(),
                    "-w",
                    format,
                    "--etcd-version",
                    line,
                ]);
                assert_eq!(stdout(&o), want, "{name} as etcdutl {line} -w {format}");
            }
        }
    }
}

#[test]
fn verify_passes_snapshots_of_3_6_and_3_7() {
    for line in LINES {
        let f = snapshot(line);
        let o = run(&["verify", f.to_str().unwrap(), "-w", "json"]);
        assert!(o.status.success(), "{line}: {}{}", stdout(&o), stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let text = v.to_string();
        assert!(
            text.contains(&format!("{line}.0")),
            "{line}: verify does not report the storage version: {text}"
        );
        // The real bbolt of that release agrees the file is sound (trailer cut).
        let db = tempfile::NamedTempFile::new().unwrap();
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(db.path(), &bytes[..bytes.len() - 32]).unwrap();
        let o = Command::new(etcd_bin(line, "bbolt"))
            .arg("check")
            .arg(db.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "bbolt {line} check: {}", stdout(&o));
    }
}

/// `get -o raw` returns what the live server returned for every key, at its
/// latest revision and at each revision the snapshot holds; `ls` lists
/// exactly the keys `etcdctl get "" --from-key` listed.
#[test]
fn values_equal_what_the_live_server_served() {
    let b64 = base64::engine::general_purpose::STANDARD;
    for line in LINES {
        let d = dump(line);
        let snap = snapshot(line);
        let p = snap.to_str().unwrap();
        let values: Vec<Value> =
            serde_json::from_slice(&std::fs::read(d.join("values.json")).unwrap()).unwrap();
        assert!(values.len() > 30, "{line}: only {} values", values.len());
        let mut big = 0;
        let mut cbor = 0;
        for v in &values {
            let key = v["key"].as_str().unwrap();
            let rev = v["rev"].as_i64().unwrap();
            let want = b64.decode(v["value_b64"].as_str().unwrap()).unwrap();
            big += usize::from(want.len() > 900_000);
            cbor += usize::from(want.starts_with(&[0xd9, 0xd9, 0xf7]));
            let r = rev.to_string();
            let mut args = vec!["get", p, key, "-o", "raw", "--show-secrets"];
            if rev > 0 {
                args.extend(["--revision", &r]);
            }
            let o = run(&args);
            assert!(o.status.success(), "{line} {key}@{rev}: {}", stderr(&o));
            assert!(o.stdout == want, "{line}: {key} at revision {rev} differs");
        }
        assert!(
            big >= 3 && cbor >= 1,
            "{line}: {big} big, {cbor} CBOR values"
        );
        // The live listing: every key with its size, mod revision and version
        // as etcdctl get "" --from-key -w json gave them.
        let live: Value =
            serde_json::from_slice(&std::fs::read(d.join("live.json")).unwrap()).unwrap();
        let field = |kv: &Value, f: &str| kv[f].as_i64().or_else(|| kv[f].as_str()?.parse().ok());
        let mut want: Vec<(String, usize, i64, i64)> = live["kvs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| {
                let key = b64.decode(kv["key"].as_str().unwrap()).unwrap();
                let value = b64.decode(kv["value"].as_str().unwrap_or("")).unwrap();
                (
                    String::from_utf8(key).unwrap(),
                    value.len(),
                    field(kv, "mod_revision").unwrap(),
                    field(kv, "version").unwrap(),
                )
            })
            .collect();
        want.sort();
        let o = run(&["ls", p, "-w", "json", "--sort", "key"]);
        assert!(o.status.success(), "{line} ls: {}", stderr(&o));
        let listed: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
        let mut got: Vec<(String, usize, i64, i64)> = listed
            .iter()
            .map(|e| {
                (
                    e["key"].as_str().unwrap().to_string(),
                    e["size"].as_u64().unwrap() as usize,
                    e["modRevision"].as_i64().unwrap(),
                    e["version"].as_i64().unwrap(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got, want,
            "{line}: ls differs from the live server's listing"
        );
    }
}
