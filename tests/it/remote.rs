//! Snapshots read where they live: `s3://` against a real S3 server
//! (versitygw, objects put by curl's own SigV4 signing) and `http://` against
//! our Range-honouring file server. Every whole-file command prints for the
//! remote object exactly what it prints for the same bytes on disk (the name
//! aside: the URL where the path was), with the same exit code; access and
//! transfer faults exit 2, name the URL without its query, never print a
//! secret and leave no spool file behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::objstore::{Fault, HttpServer, SECRET_KEY, Versity, with_s3_env};
use crate::common::{etcdsnap, fixture, stderr, stdout};

const RELEASES: [&str; 4] = ["3.4.23", "3.5.1", "3.6.16", "3.7.3"];

/// The command lines compared, `{}` standing for the snapshot.
pub(crate) const COMMANDS: [&[&str]; 5] = [
    &["verify", "{}"],
    &["status", "{}", "-w", "json"],
    &["check", "{}"],
    &["check", "{}", "-w", "junit"],
    &["inspect", "{}"],
];

pub(crate) fn args_for(cmd: &[&str], snap: &str) -> Vec<String> {
    cmd.iter()
        .map(|a| {
            if *a == "{}" {
                snap.to_string()
            } else {
                a.to_string()
            }
        })
        .collect()
}

pub(crate) fn run_local(cmd: &[&str], file: &Path) -> Output {
    etcdsnap()
        .args(args_for(cmd, file.to_str().unwrap()))
        .output()
        .unwrap()
}

/// Runs `cmd` on `local` and on `url` (with `env` set on the remote run) and
/// asserts equal stdout (the URL read as the path) and exit codes; returns
/// the remote run's exit code.
pub(crate) fn assert_same(
    cmd: &[&str],
    local: &Path,
    url: &str,
    env: &dyn Fn(&mut Command),
) -> i32 {
    let l = run_local(cmd, local);
    let spool = tempfile::tempdir().unwrap();
    let mut c = etcdsnap();
    env(&mut c);
    c.args(args_for(cmd, url))
        .arg("--spool-dir")
        .arg(spool.path());
    let r = c.output().unwrap();
    let shown = stdout(&r).replace(url, local.to_str().unwrap());
    assert_eq!(
        shown,
        stdout(&l),
        "{cmd:?} on {url}: stdout differs from the local file's\nremote stderr: {}",
        stderr(&r)
    );
    assert_eq!(
        r.status.code(),
        l.status.code(),
        "{cmd:?} on {url}: exit codes differ\nremote stderr: {}\nlocal stderr: {}",
        stderr(&r),
        stderr(&l)
    );
    assert_no_spool(spool.path());
    r.status.code().unwrap()
}

pub(crate) fn assert_no_spool(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(
        left.is_empty(),
        "spool left behind in {}: {left:?}",
        dir.display()
    );
}

/// The test copies: each fixture, a zstd-compressed one and a damaged one
/// (cut at a page boundary: pages past the end of the file).
pub(crate) fn copies(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for r in RELEASES {
        let name = format!("etcd-{r}.db");
        let p = dir.join(&name);
        std::fs::copy(fixture(&name), &p).unwrap();
        out.push((name, p));
    }
    let bytes = std::fs::read(fixture("etcd-3.5.1.db")).unwrap();
    let z = dir.join("etcd-3.5.1.db.zst");
    std::fs::write(&z, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
    out.push(("etcd-3.5.1.db.zst".into(), z));
    let cut = dir.join("etcd-3.5.1-cut.db");
    std::fs::write(&cut, &bytes[..(bytes.len() / 2) & !4095]).unwrap();
    out.push(("etcd-3.5.1-cut.db".into(), cut));
    out
}

fn s3_env(v: &Versity) -> impl Fn(&mut Command) + '_ {
    move |c: &mut Command| with_s3_env(c, v, SECRET_KEY)
}

#[test]
#[ignore = "real: versitygw (bash .ci/versitygw) and curl"]
fn s3_outputs_equal_local_files() {
    let v = Versity::start();
    v.create_bucket("backups");
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = 0;
    for (name, path) in copies(dir.path()) {
        v.put("backups", &format!("nightly/{name}"), &path);
        let url = format!("s3://backups/nightly/{name}");
        for cmd in COMMANDS {
            if assert_same(cmd, &path, &url, &s3_env(&v)) == 1 {
                damaged += 1;
            }
        }
    }
    // The cut copy fails every command (exit 1), locally and remotely.
    assert!(damaged >= COMMANDS.len(), "{damaged} runs exited 1");
}

#[test]
fn http_outputs_equal_local_files() {
    let s = HttpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = 0;
    for (name, path) in copies(dir.path()) {
        std::fs::copy(&path, s.path(&name)).unwrap();
        for cmd in COMMANDS {
            if assert_same(cmd, &path, &s.url(&name), &|_| {}) == 1 {
                damaged += 1;
            }
        }
    }
    assert!(damaged >= COMMANDS.len(), "{damaged} runs exited 1");
}

#[test]
fn http_verbose_says_where_and_how_large() {
    let s = HttpServer::start();
    std::fs::copy(fixture("etcd-3.5.1.db"), s.path("a.db")).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let o = etcdsnap()
        .args(["verify", "-v", &s.url("a.db"), "--spool-dir"])
        .arg(spool.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let len = std::fs::metadata(fixture("etcd-3.5.1.db")).unwrap().len();
    let err = stderr(&o);
    assert!(err.contains(&format!("{len} bytes")), "{err}");
    assert!(err.contains(spool.path().to_str().unwrap()), "{err}");
    // Without -v and with stderr not a terminal: nothing said.
    let o = etcdsnap()
        .args(["verify", &s.url("a.db")])
        .output()
        .unwrap();
    assert_eq!(stderr(&o), "");
    assert_no_spool(spool.path());
}

pub(crate) fn run_env(args: &[&str], spool: &Path, env: &dyn Fn(&mut Command)) -> Output {
    let mut c = etcdsnap();
    env(&mut c);
    c.args(args).arg("--spool-dir").arg(spool).output().unwrap()
}

#[test]
#[ignore = "real: versitygw (bash .ci/versitygw) and curl"]
fn s3_missing_object_or_bucket_exits_2_naming_the_url() {
    let v = Versity::start();
    v.create_bucket("backups");
    let spool = tempfile::tempdir().unwrap();
    for url in ["s3://backups/none.db", "s3://no-such-bucket/snap.db"] {
        for cmd in ["verify", "status", "inspect", "check"] {
            let o = run_env(&[cmd, url], spool.path(), &s3_env(&v));
            assert_eq!(o.status.code(), Some(2), "{cmd} {url}: {}", stderr(&o));
            assert!(stderr(&o).contains(url), "{cmd}: {}", stderr(&o));
            assert!(stderr(&o).contains("not found"), "{cmd}: {}", stderr(&o));
        }
    }
    assert_no_spool(spool.path());
}

#[test]
#[ignore = "real: versitygw (bash .ci/versitygw) and curl"]
fn s3_wrong_credentials_exit_2_and_never_print_the_secret() {
    let v = Versity::start();
    v.create_bucket("backups");
    v.put("backups", "a.db", &fixture("etcd-3.5.1.db"));
    let spool = tempfile::tempdir().unwrap();
    let wrong_secret = "wrong-secret-4b1d7c0e9a";
    type Env<'a> = &'a dyn Fn(&mut Command);
    let cases: [(&str, Env); 2] = [
        ("wrong secret", &|c: &mut Command| {
            with_s3_env(c, &v, wrong_secret)
        }),
        ("wrong key id", &|c: &mut Command| {
            with_s3_env(c, &v, SECRET_KEY);
            c.env("AWS_ACCESS_KEY_ID", "NOSUCHKEYID");
        }),
    ];
    for (what, env) in cases {
        for cmd in ["verify", "status", "inspect", "check"] {
            let o = run_env(&[cmd, "s3://backups/a.db", "-v"], spool.path(), env);
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert_eq!(o.status.code(), Some(2), "{what} {cmd}: {all}");
            assert!(all.contains("s3://backups/a.db"), "{what}: {all}");
            assert!(!all.contains(wrong_secret), "{what}: secret printed: {all}");
            assert!(!all.contains(SECRET_KEY), "{what}: secret printed: {all}");
        }
    }
    assert_no_spool(spool.path());
}

#[test]
#[ignore = "real: versitygw (bash .ci/versitygw) and curl"]
fn s3_endpoint_flag_and_no_credentials() {
    let v = Versity::start();
    v.create_bucket("backups");
    v.put("backups", "a.db", &fixture("etcd-3.5.1.db"));
    let spool = tempfile::tempdir().unwrap();
    let endpoint = v.endpoint();
    // --s3-endpoint in place of AWS_ENDPOINT_URL: path-style requests.
    let o = run_env(
        &["verify", "s3://backups/a.db", "--s3-endpoint", &endpoint],
        spool.path(),
        &|c: &mut Command| {
            with_s3_env(c, &v, SECRET_KEY);
            c.env_remove("AWS_ENDPOINT_URL");
        },
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // No credentials at all: refused by the server, exit 2, access denied.
    let o = run_env(
        &["verify", "s3://backups/a.db", "--s3-endpoint", &endpoint],
        spool.path(),
        &|c: &mut Command| {
            with_s3_env(c, &v, SECRET_KEY);
            c.env_remove("AWS_ENDPOINT_URL")
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY");
        },
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("s3://backups/a.db: access denied"),
        "{}",
        stderr(&o)
    );
    assert_no_spool(spool.path());
}

/// Runs `c` (a command whose spool goes to `spool`, on an object of `total`
/// bytes), stops it (SIGSTOP) once part of the body is in its spool, calls
/// `replace` (which puts a new object under the key), lets it go on, and
/// returns its output.
pub(crate) fn replace_mid_read(
    mut c: Command,
    spool: &Path,
    total: usize,
    replace: impl FnOnce(),
) -> Output {
    let child = c
        .arg("--spool-dir")
        .arg(spool)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let size = std::fs::read_dir(spool)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .next()
            .unwrap_or(0);
        if size > 0 {
            // SAFETY: a plain kill(2) of our own child.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
            assert!(
                (size as usize) < total,
                "the transfer ended before it could be stopped"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no spool data");
        std::thread::sleep(Duration::from_millis(1));
    }
    replace();
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    child.wait_with_output().unwrap()
}

/// An object overwritten on the S3 server while it streams: the reader is
/// stopped (SIGSTOP) once part of the body is in its spool, curl puts a new
/// object under the key, the reader goes on; the pin refuses what it read.
#[test]
#[ignore = "real: versitygw (bash .ci/versitygw) and curl"]
fn s3_object_replaced_mid_read_is_refused() {
    let v = Versity::start();
    v.create_bucket("backups");
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    let total = 64usize << 20;
    std::fs::write(&old, vec![1u8; total]).unwrap();
    std::fs::write(&new, vec![2u8; 4096]).unwrap();
    v.put("backups", "big.db", &old);
    let spool = tempfile::tempdir().unwrap();
    let mut c = etcdsnap();
    with_s3_env(&mut c, &v, SECRET_KEY);
    c.args(["verify", "s3://backups/big.db"]);
    let o = replace_mid_read(c, spool.path(), total, || v.put("backups", "big.db", &new));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("s3://backups/big.db: the object changed while it was read"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("ETag"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_no_spool(spool.path());
}

#[test]
#[ignore = "real: versitygw (bash .ci/versitygw) and curl"]
fn s3_server_gone_exits_2() {
    let mut v = Versity::start();
    v.create_bucket("backups");
    v.put("backups", "a.db", &fixture("etcd-3.5.1.db"));
    v.child.kill().unwrap();
    v.child.wait().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let o = run_env(&["verify", "s3://backups/a.db"], spool.path(), &s3_env(&v));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("s3://backups/a.db"), "{}", stderr(&o));
    assert_no_spool(spool.path());
}

#[test]
fn http_not_found_names_the_url_without_its_query() {
    let s = HttpServer::start();
    let spool = tempfile::tempdir().unwrap();
    let url = format!(
        "{}?X-Amz-Credential=AKIDSECRETSCOPE&X-Amz-Signature=deadbeefsignature",
        s.url("gone.db")
    );
    let o = run_env(&["verify", &url], spool.path(), &|_| {});
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(
        all.contains(&format!("{}?REDACTED", s.url("gone.db"))),
        "{all}"
    );
    assert!(all.contains("not found"), "{all}");
    assert!(!all.contains("deadbeefsignature"), "{all}");
    assert!(!all.contains("AKIDSECRETSCOPE"), "{all}");
    assert_no_spool(spool.path());
}

#[test]
fn http_presigned_query_is_sent_and_not_shown() {
    // The server ignores the query; the name shown is the redacted URL.
    let s = HttpServer::start();
    std::fs::copy(fixture("etcd-3.5.1.db"), s.path("a.db")).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let url = format!("{}?X-Amz-Signature=deadbeefsignature", s.url("a.db"));
    let o = run_env(&["verify", &url, "-w", "json"], spool.path(), &|_| {});
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!all.contains("deadbeefsignature"), "{all}");
    assert!(
        all.contains(&format!("{}?REDACTED", s.url("a.db"))),
        "{all}"
    );
}

#[test]
fn http_truncated_body_exits_2_and_leaves_no_spool() {
    let s = HttpServer::start();
    std::fs::copy(fixture("etcd-3.5.1.db"), s.path("a.db")).unwrap();
    s.fault("a.db", Fault::Cut(70_000));
    let spool = tempfile::tempdir().unwrap();
    for cmd in ["verify", "status", "inspect", "check"] {
        let o = run_env(&[cmd, &s.url("a.db")], spool.path(), &|_| {});
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        assert!(stderr(&o).contains(&s.url("a.db")), "{}", stderr(&o));
        assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    }
    assert_no_spool(spool.path());
}

#[test]
fn http_a_body_cut_once_is_resumed_and_reads_as_the_local_file() {
    let s = HttpServer::start();
    std::fs::copy(fixture("etcd-3.5.1.db"), s.path("a.db")).unwrap();
    s.fault("a.db", Fault::CutOnce(70_000));
    let local = fixture("etcd-3.5.1.db");
    assert_same(
        &["verify", "{}", "-w", "json"],
        &local,
        &s.url("a.db"),
        &|_| {},
    );
}

#[test]
fn http_throttling_is_retried_with_backoff() {
    let s = HttpServer::start();
    std::fs::copy(fixture("etcd-3.5.1.db"), s.path("a.db")).unwrap();
    // Two 503 SlowDown answers, then the object.
    s.fault("a.db", Fault::Throttle(2));
    let local = fixture("etcd-3.5.1.db");
    assert_same(&["verify", "{}"], &local, &s.url("a.db"), &|_| {});
    assert_eq!(s.throttled.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn http_throttling_that_does_not_end_is_a_clear_error_after_bounded_retries() {
    let s = HttpServer::start();
    std::fs::copy(fixture("etcd-3.5.1.db"), s.path("a.db")).unwrap();
    s.fault("a.db", Fault::Throttle(usize::MAX));
    let spool = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let o = run_env(&["verify", &s.url("a.db")], spool.path(), &|_| {});
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&s.url("a.db")), "{err}");
    assert!(err.contains("503") && err.contains("SlowDown"), "{err}");
    assert!(err.contains("(after 4 retries)"), "{err}");
    // The first request and four retries, backing off 0.2 s doubling (with
    // jitter): bounded, and not instant.
    assert_eq!(s.throttled.load(std::sync::atomic::Ordering::SeqCst), 5);
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(stdout(&o), "");
    assert_no_spool(spool.path());
}

/// Starts `verify` on a paused body and returns the child once the server
/// sent the first part, with the spool checked: one private file.
fn start_paused(s: &HttpServer, name: &str, spool: &Path) -> std::process::Child {
    std::fs::copy(fixture("etcd-3.5.1.db"), s.path(name)).unwrap();
    s.fault(name, Fault::Pause(65_536));
    let child = etcdsnap()
        .args(["verify", &s.url(name), "--spool-dir"])
        .arg(spool)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s.paused
        .recv_timeout(Duration::from_secs(30))
        .expect("the body paused");
    // The spool exists while the transfer runs: one file, 0600.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let files: Vec<_> = std::fs::read_dir(spool)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        if files.len() == 1 && std::fs::metadata(&files[0]).unwrap().len() > 0 {
            let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", files[0].display());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no spool file in {}: {files:?}",
            spool.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn http_server_killed_mid_read_exits_2_and_leaves_no_spool() {
    let s = HttpServer::start();
    let spool = tempfile::tempdir().unwrap();
    let child = start_paused(&s, "a.db", spool.path());
    s.kill();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(&s.url("a.db")), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_no_spool(spool.path());
}

#[test]
fn http_object_replaced_mid_read_is_refused() {
    let s = HttpServer::start();
    let spool = tempfile::tempdir().unwrap();
    let child = start_paused(&s, "a.db", spool.path());
    // A new object under the name while the old one streams: other bytes,
    // another mtime, so another ETag.
    let tmp = s.path("a.db.new");
    std::fs::copy(fixture("etcd-3.6.16.db"), &tmp).unwrap();
    std::fs::rename(&tmp, s.path("a.db")).unwrap();
    s.go();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed while it was read"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    assert_no_spool(spool.path());
}

#[test]
fn http_ctrl_c_mid_read_removes_the_spool() {
    let s = HttpServer::start();
    let spool = tempfile::tempdir().unwrap();
    let child = start_paused(&s, "a.db", spool.path());
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert_no_spool(spool.path());
    s.go();
}
