//! The object commands (`ls`, `get`, `history`, `index`, `decode`) as a user
//! meets them: exit codes on damaged files, Secrets under a wrong prefix, flags
//! that must work or not exist, suggestions that must be usable, unknown
//! resources, where key indexes are written, and the documented
//! `etcdctl get --print-value-only | etcdsnap decode` pipe against real etcd.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const SNAP: &str = "fixtures/etcd-3.5.1.db";

fn snap() -> String {
    root().join(SNAP).to_string_lossy().into_owned()
}

fn testdata() -> PathBuf {
    let d = root().join("fixtures/k8s-api-testdata/HEAD");
    assert!(d.is_dir(), "{} is missing", d.display());
    d
}

/// A copy of the 3.5 fixture whose first key-bucket leaf has its element
/// headers overwritten: the file opens, but reading keys fails.
fn damaged_copy(dir: &Path) -> PathBuf {
    use etcdsnap::bolt::Db;
    use etcdsnap::bolt::page::{FLAG_LEAF, PAGE_HEADER_SIZE};
    let mut bytes = std::fs::read(root().join(SNAP)).unwrap();
    let (offset, len) = {
        let file = etcdsnap::input::SnapshotFile::open(&root().join(SNAP)).unwrap();
        let db = Db::open(file.db()).unwrap();
        let bucket = etcdsnap::bolt::read::bucket(&db, b"key").unwrap().unwrap();
        let leaves = etcdsnap::bolt::read::leaves(&db, &bucket).unwrap();
        let leaf = leaves
            .iter()
            .find(|l| l.header.flags == FLAG_LEAF && l.count() > 0)
            .expect("a key leaf");
        (db.offset_of(leaf.header.id) as usize, leaf.count() * 16)
    };
    for b in &mut bytes[offset + PAGE_HEADER_SIZE..offset + PAGE_HEADER_SIZE + len] {
        *b = 0xff;
    }
    let p = dir.join("damaged.db");
    std::fs::write(&p, &bytes).unwrap();
    p
}

/// Item 15: corruption is exit 1 in every command; 2 stays for usage and I/O.
#[test]
fn damaged_files_are_exit_1_in_every_object_command() {
    let dir = tempfile::tempdir().unwrap();
    let bad = damaged_copy(dir.path());
    let b = bad.to_str().unwrap();
    let v = run(&["verify", b, "-q"]);
    assert_eq!(v.status.code(), Some(1), "verify: {}", stderr(&v));
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let e = empty.to_str().unwrap();
    let half = dir.path().join("half.db");
    let full = std::fs::read(root().join(SNAP)).unwrap();
    std::fs::write(&half, &full[..full.len() / 2]).unwrap();
    let h = half.to_str().unwrap();
    let key = "/registry/configmaps/default/app-config";
    let idx = dir.path().join("out.idx");
    let idx = idx.to_str().unwrap();
    for file in [b, e, h] {
        for args in [
            vec!["ls", file],
            vec!["ls", file, "--deleted", "-w", "json"],
            vec!["get", file, key],
            vec!["get", file, key, "--no-index"],
            vec!["get", file, "configmaps", "--all"],
            vec!["history", file, key],
            vec!["history", file, key, "--no-index"],
            vec!["index", file, "-o", idx],
            vec!["index", file],
        ] {
            let o = etcdsnap()
                .args(&args)
                .env("ETCDSNAP_CACHE_DIR", dir.path().join("cache"))
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
            assert!(!stderr(&o).is_empty(), "{args:?}: no message");
        }
    }
    // I/O and usage errors stay 2.
    let o = run(&["ls", "/nonexistent/snapshot.db"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(&["get", &snap(), "pod", "web-0", "--revision", "20"]);
    assert_eq!(o.status.code(), Some(2), "compacted: {}", stderr(&o));
    // The top-level help says so.
    let help = stdout(&run(&["--help"]));
    assert!(help.contains("1 a check failed"), "{help}");
    assert!(help.contains("damaged"), "{help}");
}

/// Item 16: `get -o raw` refuses a Secret under any prefix, or any value whose
/// envelope says kind Secret, without --show-secrets.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn raw_secrets_are_refused_under_any_prefix_or_key() {
    use k8s_pb::api::core::v1::Secret;
    use prost::Message;
    let secret = Secret {
        data: [("password".to_string(), b"hunter2".to_vec())].into(),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let sec = dir.path().join("sec");
    std::fs::write(&sec, envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
    let json_sec = dir.path().join("jsec");
    std::fs::write(
        &json_sec,
        br#"{"apiVersion":"example.com/v1","kind":"Secret","data":{"k":"aHVudGVyMg=="}}"#,
    )
    .unwrap();
    let snapshot = dir.path().join("snap.db");
    let st = Command::new("python3")
        .arg(root().join("fixtures/put_and_save.py"))
        .arg("3.5")
        .arg(&snapshot)
        .arg(format!(
            "/kubernetes.io/secrets/prod/creds={}",
            sec.display()
        ))
        .arg(format!("/registry/misc/prod/creds={}", sec.display()))
        .arg(format!(
            "/registry/example.com/things/prod/x={}",
            json_sec.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let s = snapshot.to_str().unwrap();
    for (key, prefix) in [
        ("/kubernetes.io/secrets/prod/creds", "/registry"),
        ("/registry/misc/prod/creds", "/registry"),
        ("/registry/example.com/things/prod/x", "/registry"),
        (
            "/registry/secrets/kube-system/bootstrap-token",
            "/kubernetes.io",
        ),
    ] {
        let file = if key.contains("bootstrap") {
            snap()
        } else {
            s.to_string()
        };
        let o = run(&["get", &file, key, "-o", "raw", "--prefix", prefix]);
        assert_eq!(o.status.code(), Some(2), "{key}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{key}: bytes printed");
        assert!(stderr(&o).contains("--show-secrets"), "{}", stderr(&o));
        let o = run(&[
            "get",
            &file,
            key,
            "-o",
            "raw",
            "--prefix",
            prefix,
            "--show-secrets",
        ]);
        assert!(o.status.success(), "{key}: {}", stderr(&o));
        assert!(!o.stdout.is_empty());
    }
}

/// Item 17: flags that did nothing are gone; `--help` offers only what works;
/// `ls --revision` past the end gives the error and no header.
#[test]
fn flags_work_or_do_not_exist() {
    let key = "/registry/configmaps/default/app-config";
    for args in [
        vec!["history", &snap(), key, "--prefix", "/kubernetes.io"],
        vec!["history", &snap(), key, "--show-secrets"],
        vec!["ls", &snap(), "--show-secrets"],
        vec!["decode", "/dev/null", "-o", "raw"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    for cmd in ["history", "ls"] {
        let help = stdout(&run(&[cmd, "--help"]));
        assert!(!help.contains("--show-secrets"), "{cmd}: {help}");
    }
    // history's --prefix is for RESOURCE NAME only.
    assert!(stdout(&run(&["history", "--help"])).contains("RESOURCE NAME only"));
    let help = stdout(&run(&["decode", "--help"]));
    assert!(!help.contains("raw"), "decode --help offers raw: {help}");
    let help = stdout(&run(&["get", "--help"]));
    assert!(help.contains("not with --all"), "get --help: {help}");
    let o = run(&["ls", &snap(), "--revision", "99999"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "a header was printed before the error");
    assert!(stderr(&o).contains("future"), "{}", stderr(&o));
}

/// Item 23: the revision `get` suggests for a deleted object can be served.
#[test]
fn deleted_object_suggestion_is_a_revision_the_snapshot_holds() {
    let o = run(&["get", &snap(), "pod", "web-0"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let n: i64 = err
        .split("--revision ")
        .nth(1)
        .and_then(|t| {
            t.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|d| d.parse().ok())
        })
        .unwrap_or_else(|| panic!("no --revision suggested: {err}"));
    let o = run(&[
        "get",
        &snap(),
        "pod",
        "web-0",
        "--revision",
        &n.to_string(),
        "-o",
        "json",
    ]);
    assert!(
        o.status.success(),
        "suggested --revision {n}: {}",
        stderr(&o)
    );
    let deleted = run(&["get", &snap(), "pod", "web-0", "--deleted", "-o", "json"]);
    assert_eq!(o.stdout, deleted.stdout);
}

/// Item 26: an unknown resource is exit 2 with the closest names; a miss
/// because `-n` was forgotten says which namespaces hold that name.
#[test]
fn unknown_resources_and_forgotten_namespaces_are_explained() {
    for args in [
        vec!["ls", &snap(), "--resource", "configmapz"],
        vec!["get", &snap(), "configmapz", "x"],
        vec!["get", &snap(), "configmapz", "--all"],
        vec!["ls", &snap(), "--resource", "widgetz.example.com"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), "", "{args:?}");
        let err = stderr(&o);
        assert!(err.contains("unknown resource"), "{args:?}: {err}");
        let want = if args.contains(&"widgetz.example.com") {
            "widgets.example.com"
        } else {
            "configmaps"
        };
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // A custom resource known by its objects (bare plural or with group) is not unknown.
    for r in ["widgets", "widgets.example.com"] {
        let o = run(&["ls", &snap(), "--resource", r, "-w", "json"]);
        assert!(o.status.success(), "{r}: {}", stderr(&o));
    }
    // coredns lives in kube-system, not in default.
    let o = run(&["get", &snap(), "cm", "coredns"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("-n kube-system"), "{}", stderr(&o));
    let o = run(&["get", &snap(), "cm", "coredns", "--no-index"]);
    assert!(stderr(&o).contains("-n kube-system"), "{}", stderr(&o));
}

/// Item 27: writing an index into the cache is said on stderr; the help names
/// ETCDSNAP_CACHE_DIR; `index` writes beside the snapshot only with --beside.
#[test]
fn index_writes_are_announced_and_only_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("snapshot.db");
    std::fs::copy(root().join(SNAP), &s).unwrap();
    let cache = dir.path().join("cache");
    let key = "/registry/configmaps/default/app-config";
    let go = |args: &[&str]| {
        etcdsnap()
            .args(args)
            .env("ETCDSNAP_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };
    let o = go(&["history", s.to_str().unwrap(), key]);
    assert!(o.status.success());
    let cached: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1);
    assert!(
        stderr(&o).contains(&cached[0].display().to_string()),
        "the cache write is not said: {}",
        stderr(&o)
    );
    // Next time the index is used, and nothing is written.
    let o = go(&["get", s.to_str().unwrap(), key]);
    assert!(!stderr(&o).contains("wrote"), "{}", stderr(&o));
    for cmd in ["get", "history", "index"] {
        let help = stdout(&run(&[cmd, "--help"]));
        assert!(help.contains("ETCDSNAP_CACHE_DIR"), "{cmd} --help: {help}");
    }
    assert!(stdout(&run(&["--help"])).contains("ETCDSNAP_CACHE_DIR"));
    // `index` alone writes into the cache, never beside the input.
    std::fs::remove_dir_all(&cache).unwrap();
    let o = go(&["index", s.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let beside = dir.path().join("snapshot.db.etcdsnap-index");
    assert!(!beside.exists(), "index wrote beside the input unasked");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    let o = go(&["index", s.to_str().unwrap(), "--beside"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(beside.is_file());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

/// One etcd member on loopback for a test; stopped when dropped.
struct Etcd {
    child: std::process::Child,
    endpoint: String,
    etcdctl: PathBuf,
    _dir: tempfile::TempDir,
}

use crate::common::cluster::free_port;

impl Etcd {
    fn start(etcd: &Path, etcdctl: &Path) -> Etcd {
        assert!(etcd.exists(), "{} is missing", etcd.display());
        assert!(etcdctl.exists(), "{} is missing", etcdctl.display());
        let dir = tempfile::tempdir().unwrap();
        let (c, p) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{c}");
        let peer = format!("http://127.0.0.1:{p}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new(etcd)
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let e = Etcd {
            child,
            endpoint,
            etcdctl: etcdctl.to_path_buf(),
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if e.ctl()
                .args(["endpoint", "health"])
                .output()
                .unwrap()
                .status
                .success()
            {
                return e;
            }
            assert!(std::time::Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    fn ctl(&self) -> Command {
        let mut c = Command::new(&self.etcdctl);
        c.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint]);
        c
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Item 21: the pipe `decode --help` shows works with real etcdctl 3.4 and
/// 3.5 (which append a newline), for a protobuf value, checked against the
/// official fixture's JSON.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn decode_reads_the_documented_etcdctl_pipe() {
    let pb = testdata().join("core.v1.ConfigMap.pb");
    let want: Value =
        serde_json::from_slice(&std::fs::read(pb.with_extension("json")).unwrap()).unwrap();
    let help = stdout(&run(&["decode", "--help"]));
    assert!(
        help.contains("--print-value-only | etcdsnap decode"),
        "{help}"
    );
    let d35 = etcd35_dir();
    for (etcd, etcdctl) in [
        (PathBuf::from("/usr/bin/etcd"), etcdctl34()),
        (d35.join("etcd"), d35.join("etcdctl")),
    ] {
        let server = Etcd::start(&etcd, &etcdctl);
        let key = "/registry/configmaps/default/cm";
        let mut put = server
            .ctl()
            .args(["put", key])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        put.stdin
            .take()
            .unwrap()
            .write_all(&std::fs::read(&pb).unwrap())
            .unwrap();
        assert!(put.wait().unwrap().success());
        // The pipe, as a shell runs it.
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ETCDCTL_API=3 '{}' --endpoints {} get {key} --print-value-only | '{}' decode -o json",
                etcdctl.display(),
                server.endpoint,
                env!("CARGO_BIN_EXE_etcdsnap")
            ))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}: {}", etcdctl.display(), stderr(&o));
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(got, want, "{}", etcdctl.display());
        // And as YAML.
        let raw = server
            .ctl()
            .args(["get", key, "--print-value-only"])
            .output()
            .unwrap();
        assert!(raw.stdout.ends_with(b"\n"));
        let mut d = etcdsnap()
            .arg("decode")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        d.stdin.take().unwrap().write_all(&raw.stdout).unwrap();
        let o = d.wait_with_output().unwrap();
        assert!(o.status.success());
        assert_eq!(serde_yaml_ng::from_slice::<Value>(&o.stdout).unwrap(), want);
    }
}

/// `get --for-apply` of a Secret without --show-secrets would hand `kubectl
/// apply` the redaction placeholders as the Secret's data: refused, as `-o
/// raw` is (by resource, by key under any prefix, and with --all).
#[test]
fn for_apply_of_a_secret_needs_show_secrets() {
    let key = "/registry/secrets/kube-system/bootstrap-token";
    for args in [
        vec![
            "get",
            &snap(),
            "secret",
            "bootstrap-token",
            "-n",
            "kube-system",
            "--for-apply",
        ],
        vec!["get", &snap(), key, "--for-apply"],
        vec![
            "get",
            &snap(),
            key,
            "--for-apply",
            "--prefix",
            "/kubernetes.io",
        ],
        vec!["get", &snap(), key, "--for-apply", "-o", "json"],
        vec!["get", &snap(), "secrets", "--all", "--for-apply"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}: printed {}", stdout(&o));
        assert!(stderr(&o).contains("--show-secrets"), "{}", stderr(&o));
    }
    // Without --for-apply it is shown redacted; with --show-secrets in clear.
    let o = run(&["get", &snap(), key]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["get", &snap(), key, "--for-apply", "--show-secrets"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("redacted"), "{}", stdout(&o));
    let o = run(&[
        "get",
        &snap(),
        "secrets",
        "--all",
        "--for-apply",
        "--show-secrets",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Other resources are not concerned.
    let o = run(&["get", &snap(), "configmaps", "--all", "--for-apply"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `history` takes RESOURCE NAME [-n NS] as `get` does, and shows the same
/// revisions as for the key.
#[test]
fn history_takes_a_resource_and_name_as_get_does() {
    let key = "/registry/configmaps/default/app-config";
    let by_key = run(&["history", &snap(), key, "-w", "json"]);
    assert!(by_key.status.success(), "{}", stderr(&by_key));
    for args in [
        vec![
            "history",
            &snap(),
            "configmap",
            "app-config",
            "-n",
            "default",
        ],
        vec!["history", &snap(), "cm", "app-config"],
        vec!["history", &snap(), "configmaps", "app-config", "--no-index"],
        vec![
            "history",
            &snap(),
            "configmaps",
            "app-config",
            "--prefix",
            "/registry",
        ],
    ] {
        let mut a = args.clone();
        a.extend(["-w", "json"]);
        let o = run(&a);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), stdout(&by_key), "{args:?}");
        let o = run(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).starts_with(key), "{args:?}: {}", stdout(&o));
    }
    // Not in that namespace: not found (1); under another prefix: not found.
    let o = run(&["history", &snap(), "cm", "app-config", "-n", "nowhere"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    let o = run(&[
        "history",
        &snap(),
        "cm",
        "app-config",
        "--prefix",
        "/kubernetes.io",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // A key and a name together is a usage error.
    let o = run(&["history", &snap(), key, "app-config"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
