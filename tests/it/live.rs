//! The live commands (`save`, `put-back`, `compare`, `verify-cluster`)
//! against real etcd 3.5.1 and 3.4.23 members on loopback, with and without
//! TLS (a PKI made by the openssl command line); etcdctl and etcdutl are the
//! oracles.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::layout;
use common::live::{Etcd, Tls};
use common::pki::{make_pki, openssl};
use common::*;
use serde_json::Value;

/// `etcdutl snapshot status -w json` (3.5.1 reads 3.4 files too).
fn status_json(file: &Path) -> Value {
    serde_json::from_str(&real_status("3.5", file, "json")).unwrap()
}

/// etcdsnap with the connection of `e` (endpoints and TLS flags).
fn live_cmd(e: &Etcd, args: &[&str]) -> Command {
    let mut c = etcdsnap();
    c.env_remove("ETCDCTL_ENDPOINTS").args(args);
    c.arg("--endpoints").arg(e.endpoints.join(","));
    if let Some(t) = &e.tls {
        c.arg("--cacert")
            .arg(&t.ca)
            .arg("--cert")
            .arg(&t.cert)
            .arg("--key")
            .arg(&t.key);
    }
    c
}

fn live_run(e: &Etcd, args: &[&str]) -> Output {
    live_cmd(e, args).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Some keys with history (overwrites, a delete).
fn fill(e: &Etcd) {
    fill_variant(e, false);
}

/// `fill`, with `odd` one value different (the same revisions).
fn fill_variant(e: &Etcd, odd: bool) {
    for i in 0..20 {
        e.put(
            &format!("/registry/configmaps/default/cm{i}"),
            format!("value {i}").as_bytes(),
        );
    }
    for i in 0..5 {
        let again = if odd && i == 3 { "changed" } else { "again" };
        e.put(
            &format!("/registry/configmaps/default/cm{i}"),
            format!("value {i} {again}").as_bytes(),
        );
    }
    e.ctl(&["del", "/registry/configmaps/default/cm19"]);
}

fn save_equals_etcdctl(line: &str) {
    let e = Etcd::start(line, None);
    fill(&e);
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.db");
    let theirs = dir.path().join("theirs.db");
    // Under the usual umask (022) the file is still its owner's only, as
    // etcdctl writes it.
    // SAFETY: the pre_exec closure only calls umask(2), which is
    // async-signal-safe, between fork and exec.
    let o = unsafe {
        use std::os::unix::process::CommandExt;
        live_cmd(&e, &["save", ours.to_str().unwrap()])
            .pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            })
            .output()
            .unwrap()
    };
    assert_eq!(code(&o), 0, "save: {}", stderr(&o));
    assert!(stdout(&o).contains("Snapshot saved at"), "{}", stdout(&o));
    assert!(stderr(&o).contains("verify"), "verify ran: {}", stderr(&o));
    assert_eq!(mode(&ours), 0o600, "save's file mode");
    // The sha256 printed is the file's, as sha256sum (and verify) print it.
    let sum = sha256sum(&ours);
    assert!(
        stderr(&o).contains(&format!("sha256 {sum} ")),
        "sha256sum says {sum}: {}",
        stderr(&o)
    );
    let v = run(&["verify", ours.to_str().unwrap(), "-w", "json"]);
    assert!(
        stdout(&v).contains(&sum),
        "verify -w json names {sum}: {}",
        stdout(&v)
    );
    e.ctl(&["snapshot", "save", theirs.to_str().unwrap()]);
    let (a, b) = (status_json(&ours), status_json(&theirs));
    assert_eq!(a["hash"], b["hash"], "{a} vs {b}");
    assert_eq!(a["revision"], b["revision"]);
    assert_eq!(a["totalKey"], b["totalKey"]);
    assert_eq!(a["revision"].as_i64().unwrap(), e.revision());
    assert!(!dir.path().join("ours.db.part").exists());
    assert_eq!(temps(dir.path()), Vec::<String>::new());
    // An existing OUT is not replaced without --force.
    let o = live_run(&e, &["save", ours.to_str().unwrap(), "--no-verify"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = live_run(
        &e,
        &["save", ours.to_str().unwrap(), "--no-verify", "--force"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(mode(&ours), 0o600, "save --force's file mode");
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The `sha256sum` tool's digest of a file.
fn sha256sum(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    assert!(o.status.success(), "sha256sum: {}", stderr(&o));
    stdout(&o).split_whitespace().next().unwrap().to_string()
}

/// Temporary files a save left in `dir` (anything but the outputs).
fn temps(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    v.sort();
    v
}

/// Whether `file` is a sound snapshot: etcdutl reads it and our verify
/// passes.
fn sound(file: &Path) -> bool {
    let o = Command::new(common::etcdutl35())
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .output()
        .unwrap();
    o.status.success() && run(&["verify", file.to_str().unwrap()]).status.success()
}

/// A member holding ~24 MiB, so that a save takes long enough for two to
/// overlap.
fn big_member() -> Etcd {
    let e = Etcd::start("3.5", None);
    let big: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for i in 0..24 {
        e.put(&format!("/big/{i}"), &big);
    }
    e
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn two_saves_to_one_out_at_once_leave_one_sound_file() {
    let e = big_member();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snap.db");
    for force in [false, true] {
        for round in 0..5 {
            let _ = std::fs::remove_file(&out);
            let mut args = vec!["save", out.to_str().unwrap(), "--no-verify"];
            if force {
                args.push("--force");
            }
            let kids: Vec<_> = (0..2)
                .map(|_| {
                    live_cmd(&e, &args)
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            let outs: Vec<Output> = kids
                .into_iter()
                .map(|k| k.wait_with_output().unwrap())
                .collect();
            let codes: Vec<i32> = outs.iter().map(code).collect();
            let why: Vec<String> = outs.iter().map(stderr).collect();
            for (c, w) in codes.iter().zip(&why) {
                // Each either saved, or (without --force) refused to replace
                // the file the other wrote.
                assert!(
                    *c == 0
                        || (!force
                            && *c == 2
                            && (w.contains("nothing was written") || w.contains("already exists"))),
                    "force {force} round {round}: {codes:?} {why:?}"
                );
            }
            assert!(codes.contains(&0), "{codes:?} {why:?}");
            assert!(
                sound(&out),
                "force {force} round {round}: OUT is not a sound snapshot ({codes:?} {why:?})"
            );
            assert_eq!(mode(&out), 0o600);
            assert_eq!(temps(dir.path()), Vec::<String>::new(), "round {round}");
        }
    }
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn save_follows_no_symlink_planted_at_the_temporary_name() {
    let e = Etcd::start("3.5", None);
    fill(&e);
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"not to be overwritten").unwrap();
    let out = dir.path().join("snap.db");
    // The name earlier releases wrote to.
    std::os::unix::fs::symlink(&victim, dir.path().join("snap.db.part")).unwrap();
    let o = live_run(&e, &["save", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        std::fs::read(&victim).unwrap() == b"not to be overwritten",
        "the symbolic link was followed"
    );
    assert!(!std::fs::symlink_metadata(&out).unwrap().is_symlink());
    assert!(sound(&out));
    // A symbolic link at OUT itself is replaced (with --force), not followed.
    std::fs::remove_file(&out).unwrap();
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    let o = live_run(&e, &["save", out.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = live_run(&e, &["save", out.to_str().unwrap(), "--force"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        std::fs::read(&victim).unwrap() == b"not to be overwritten",
        "the symbolic link was followed"
    );
    assert!(!std::fs::symlink_metadata(&out).unwrap().is_symlink());
    assert!(sound(&out));
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn save_force_that_fails_keeps_the_old_backup() {
    let e = Etcd::start("3.5", None);
    fill(&e);
    e.put("/registry/configmaps/default/zzz", &[b'Z'; 4096]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snap.db");
    let o = live_run(&e, &["save", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let old = std::fs::read(&out).unwrap();
    e.put("/registry/configmaps/default/later", b"later");
    // A stream damaged on the way: the digest fails, OUT stays.
    let upstream = e.endpoints[0].trim_start_matches("http://").to_string();
    let proxy = corrupting_proxy(upstream);
    let o = etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .args([
            "save",
            out.to_str().unwrap(),
            "--force",
            "--endpoints",
            &proxy,
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        std::fs::read(&out).unwrap() == old,
        "the old backup was replaced"
    );
    // A member that cannot be reached: OUT stays.
    let refused = format!("http://127.0.0.1:{}", common::cluster::free_port());
    let o = etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .args([
            "save",
            out.to_str().unwrap(),
            "--force",
            "--endpoints",
            &refused,
        ])
        .args(["--dial-timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        std::fs::read(&out).unwrap() == old,
        "the old backup was replaced"
    );
    assert_eq!(temps(dir.path()), Vec::<String>::new());
    // A save that works replaces it, and says so.
    let o = live_run(&e, &["save", out.to_str().unwrap(), "--force"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("replaced"), "{}", stderr(&o));
    assert!(std::fs::read(&out).unwrap() != old, "not replaced");
    assert!(sound(&out));
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn save_equals_etcdctl_snapshot_save_on_3_5() {
    save_equals_etcdctl("3.5");
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn save_equals_etcdctl_snapshot_save_on_3_4() {
    save_equals_etcdctl("3.4");
}

#[test]
fn save_refuses_several_endpoints() {
    let o = etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .args([
            "save",
            "/nonexistent/x.db",
            "--endpoints",
            "http://127.0.0.1:1,http://127.0.0.1:2",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("one member"), "{}", stderr(&o));
}

/// A client key in each form etcd's users meet, all from one PKI made with
/// openssl: PKCS#8 (openssl req's default), SEC1, PKCS#1 (RSA), and DER.
fn client_keys(dir: &Path) -> Vec<(&'static str, PathBuf, PathBuf)> {
    openssl(dir, &["ec", "-in", "server.key", "-out", "sec1.key"]);
    openssl(
        dir,
        &[
            "pkey",
            "-in",
            "server.key",
            "-outform",
            "DER",
            "-out",
            "key.der",
        ],
    );
    openssl(dir, &["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "rsa.key",
            "-out",
            "rsa.csr",
            "-subj",
            "/CN=rsa-client",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "rsa.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "rsa.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let head =
        |p: &str| String::from_utf8_lossy(&std::fs::read(dir.join(p)).unwrap()[..40]).to_string();
    assert!(head("server.key").contains("BEGIN PRIVATE KEY"));
    assert!(head("sec1.key").contains("BEGIN EC PRIVATE KEY"));
    assert!(head("rsa.key").contains("BEGIN RSA PRIVATE KEY"));
    vec![
        ("PKCS#8", dir.join("server.crt"), dir.join("server.key")),
        ("SEC1", dir.join("server.crt"), dir.join("sec1.key")),
        ("PKCS#1", dir.join("rsa.crt"), dir.join("rsa.key")),
        ("DER", dir.join("server.crt"), dir.join("key.der")),
    ]
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn save_over_tls_with_every_key_form_and_env_vars() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let p = pki.path();
    let tls = Tls {
        ca: p.join("ca.crt"),
        cert: p.join("server.crt"),
        key: p.join("server.key"),
    };
    let e = Etcd::start(
        "3.5",
        Some((tls, p.join("server.crt"), p.join("server.key"))),
    );
    fill(&e);
    let out = tempfile::tempdir().unwrap();
    for (form, cert, key) in client_keys(p) {
        let file = out.path().join(format!("{form}.db"));
        let o = etcdsnap()
            .args(["save", file.to_str().unwrap(), "--no-verify"])
            .arg("--endpoints")
            .arg(&e.endpoints[0])
            .arg("--cacert")
            .arg(p.join("ca.crt"))
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{form}: {}", stderr(&o));
        assert_eq!(status_json(&file)["revision"].as_i64(), Some(e.revision()));
    }
    // The same through ETCDCTL_* only; a flag wins over its variable.
    let file = out.path().join("env.db");
    let o = etcdsnap()
        .args(["save", file.to_str().unwrap(), "--no-verify"])
        .env("ETCDCTL_ENDPOINTS", &e.endpoints[0])
        .env("ETCDCTL_CACERT", p.join("ca.crt"))
        .env("ETCDCTL_CERT", p.join("server.crt"))
        .env("ETCDCTL_KEY", "/nonexistent/key")
        .arg("--key")
        .arg(p.join("server.key"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "env: {}", stderr(&o));
    // Without the CA the server is not trusted: an error naming the endpoint.
    let o = etcdsnap()
        .args(["save", out.path().join("no-ca.db").to_str().unwrap()])
        .arg("--endpoints")
        .arg(&e.endpoints[0])
        .args(["--dial-timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains(&e.endpoints[0]), "{}", stderr(&o));
    assert!(!out.path().join("no-ca.db").exists());
    assert!(temps(out.path()).is_empty());
    // With --insecure-skip-tls-verify the server's certificate is not
    // checked (no CA given), as etcdctl's flag does; the client certificate
    // is still presented, and the snapshot is the server's.
    let file = out.path().join("insecure.db");
    let o = etcdsnap()
        .args(["save", file.to_str().unwrap(), "--insecure-skip-tls-verify"])
        .arg("--endpoints")
        .arg(&e.endpoints[0])
        .arg("--cert")
        .arg(p.join("server.crt"))
        .arg("--key")
        .arg(p.join("server.key"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "insecure: {}", stderr(&o));
    assert_eq!(status_json(&file)["revision"].as_i64(), Some(e.revision()));
    // Without the client certificate the server still refuses us.
    let o = etcdsnap()
        .args(["save", out.path().join("nocert.db").to_str().unwrap()])
        .args(["--insecure-skip-tls-verify", "--dial-timeout", "1s"])
        .arg("--endpoints")
        .arg(&e.endpoints[0])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!out.path().join("nocert.db").exists());
}

#[test]
fn unreachable_endpoint_errors_within_the_dial_timeout() {
    // A listener that accepts connections and never answers, and a port
    // nobody listens on.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let refused_url = format!("http://127.0.0.1:{}", common::cluster::free_port());
    let dir = tempfile::tempdir().unwrap();
    for (url, via_env) in [
        (&silent_url, false),
        (&silent_url, true),
        (&refused_url, false),
    ] {
        let out = dir.path().join("s.db");
        let mut c = etcdsnap();
        c.args(["save", out.to_str().unwrap()]);
        if via_env {
            c.env("ETCDCTL_ENDPOINTS", url)
                .env("ETCDCTL_DIAL_TIMEOUT", "1s");
        } else {
            c.env_remove("ETCDCTL_ENDPOINTS")
                .args(["--endpoints", url, "--dial-timeout", "1s"]);
        }
        let o = c.output().unwrap();
        assert_eq!(code(&o), 2, "{url}: {}", stderr(&o));
        assert!(stderr(&o).contains(url.as_str()), "{}", stderr(&o));
        assert!(!out.exists() && temps(dir.path()).is_empty());
    }
    drop(silent);
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn a_server_killed_during_save_leaves_no_output() {
    let e = Etcd::start("3.5", None);
    // ~48 MiB of values, more than the socket buffers hold.
    let big: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for i in 0..48 {
        e.put(&format!("/big/{i}"), &big);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("killed.db");
    let child = live_cmd(&e, &["save", out.to_str().unwrap(), "--timeout", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the server once bytes arrived, then kill it: the stream breaks
    // in the middle.
    let deadline = Instant::now() + Duration::from_secs(30);
    let part = loop {
        let grown = temps(dir.path())
            .into_iter()
            .map(|n| dir.path().join(n))
            .find(|p| std::fs::metadata(p).map_or(0, |m| m.len()) > 0);
        if let Some(p) = grown {
            break p;
        }
        assert!(Instant::now() < deadline, "no bytes arrived");
        std::thread::sleep(Duration::from_millis(1));
    };
    let pid = e.pid(0) as i32;
    // SAFETY: kill(2) on the PID of the etcd member this test started.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
        libc::kill(pid, libc::SIGKILL);
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing written"), "{}", stderr(&o));
    assert!(!out.exists(), "OUT left behind");
    assert!(!part.exists(), "the temporary file was left behind");
    assert_eq!(temps(dir.path()), Vec::<String>::new());
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn the_next_save_removes_what_a_killed_save_left() {
    let e = big_member();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snap.db");
    // Killed as soon as bytes arrived.
    let mut child = live_cmd(&e, &["save", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let part = loop {
        let grown = temps(dir.path())
            .into_iter()
            .map(|n| dir.path().join(n))
            .find(|p| std::fs::metadata(p).map_or(0, |m| m.len()) > 0);
        if let Some(p) = grown {
            break p;
        }
        assert!(Instant::now() < deadline, "no bytes arrived");
        std::thread::sleep(Duration::from_millis(1));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(part.exists(), "SIGKILL leaves the temporary file");
    assert!(!out.exists());
    let o = live_run(&e, &["save", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("removed {}", part.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(temps(dir.path()), Vec::<String>::new());
    assert!(sound(&out));
}

/// Ctrl-C (SIGINT) while the snapshot streams: the temporary file is
/// removed, nothing is written, and the message says so.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn ctrl_c_during_save_removes_the_partial_download() {
    let e = big_member();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snap.db");
    let child = live_cmd(&e, &["save", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let grown = temps(dir.path())
            .into_iter()
            .any(|n| std::fs::metadata(dir.path().join(n)).map_or(0, |m| m.len()) > 0);
        if grown {
            break;
        }
        assert!(Instant::now() < deadline, "no bytes arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: kill(2) with the PID of a child this test spawned and has not reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("SIGINT"), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing was written"), "{}", stderr(&o));
    assert!(!out.exists());
    assert_eq!(temps(dir.path()), Vec::<String>::new());
}

fn put_back(line: &str) {
    let e = Etcd::start(line, None);
    fill(&e);
    let key = "/registry/configmaps/default/app";
    // Bytes as the API server stores them (protobuf envelope), binary.
    let value: Vec<u8> =
        b"k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12\x05\xff\x00\xfe\x01\x02".to_vec();
    e.put(key, &value);
    e.put(
        "/registry/secrets/default/s",
        b"k8s\x00\n\x0c\n\x02v1\x12\x06Secret",
    );
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    e.ctl(&["snapshot", "save", snap.to_str().unwrap()]);
    let s = snap.to_str().unwrap();
    e.ctl(&["del", key]);
    // --dry-run writes nothing.
    let o = live_run(
        &e,
        &[
            "put-back",
            s,
            "configmaps",
            "app",
            "-n",
            "default",
            "--dry-run",
            "--no-index",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("would succeed"), "{}", stdout(&o));
    let got = e.ctl(&["get", key, "--print-value-only"]);
    assert!(got.stdout.is_empty());
    // Put back: the exact bytes, no lease.
    let o = live_run(
        &e,
        &[
            "put-back",
            s,
            "configmaps",
            "app",
            "-n",
            "default",
            "--no-index",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("watch cache"), "{}", stderr(&o));
    let got = e.ctl(&["get", key, "--print-value-only"]);
    let mut want = value.clone();
    want.push(b'\n');
    assert_eq!(got.stdout, want);
    let j: Value = serde_json::from_slice(&e.ctl(&["get", key, "-w", "json"]).stdout).unwrap();
    let kv = &j["kvs"][0];
    assert!(
        kv.get("lease").is_none_or(|l| l.as_i64() == Some(0)),
        "{kv}"
    );
    let mod_rev = kv["mod_revision"].as_i64().unwrap();
    // Present now: refused, with its mod revision.
    let o = live_run(&e, &["put-back", s, key, "--no-index"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("mod revision {mod_rev}")),
        "{}",
        stderr(&o)
    );
    assert_eq!(e.revision(), mod_rev, "nothing written");
    // --if-mod-revision: a stale one is refused, the current one writes.
    let stale = (mod_rev - 1).to_string();
    let o = live_run(
        &e,
        &[
            "put-back",
            s,
            key,
            "--no-index",
            "--if-mod-revision",
            &stale,
        ],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let cur = mod_rev.to_string();
    let o = live_run(
        &e,
        &["put-back", s, key, "--no-index", "--if-mod-revision", &cur],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(e.revision(), mod_rev + 1);
    // A Secret needs --show-secrets.
    e.ctl(&["del", "/registry/secrets/default/s"]);
    let o = live_run(&e, &["put-back", s, "secret", "s", "--no-index"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("--show-secrets"), "{}", stderr(&o));
    let o = live_run(
        &e,
        &["put-back", s, "secret", "s", "--no-index", "--show-secrets"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Another cluster: refused, naming both cluster IDs (etcdctl's), with
    // nothing written, unless --allow-other-cluster.
    let other = Etcd::start(line, None);
    let (ours, theirs) = (cluster_id(&e), cluster_id(&other));
    assert_ne!(ours, theirs);
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec![
            "put-back",
            s,
            "configmaps",
            "app",
            "-n",
            "default",
            "--no-index",
        ];
        args.extend(extra);
        let o = live_run(&other, &args);
        assert_eq!(code(&o), 2, "{extra:?}: {}", stderr(&o));
        for id in [&ours, &theirs] {
            assert!(stderr(&o).contains(id.as_str()), "{id}: {}", stderr(&o));
        }
        assert!(
            stderr(&o).contains("--allow-other-cluster"),
            "{}",
            stderr(&o)
        );
        assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    }
    assert!(
        other
            .ctl(&["get", key, "--print-value-only"])
            .stdout
            .is_empty(),
        "written to the other cluster"
    );
    let o = live_run(
        &other,
        &[
            "put-back",
            s,
            "configmaps",
            "app",
            "-n",
            "default",
            "--no-index",
            "--allow-other-cluster",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(other.ctl(&["get", key, "--print-value-only"]).stdout, want);
    // A member added since the cluster started (a learner, not started): the
    // ID computed from the snapshot's members is no longer the cluster's,
    // but a shared member says it is the same cluster.
    let purl = format!("http://127.0.0.1:{}", common::cluster::free_port());
    e.ctl(&[
        "member",
        "add",
        "learner",
        "--learner",
        "--peer-urls",
        &purl,
    ]);
    let snap2 = dir.path().join("snap2.db");
    e.ctl(&["snapshot", "save", snap2.to_str().unwrap()]);
    e.ctl(&["del", key]);
    let o = live_run(
        &e,
        &[
            "put-back",
            snap2.to_str().unwrap(),
            "configmaps",
            "app",
            "-n",
            "default",
            "--no-index",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("membership changed"), "{}", stderr(&o));
    assert_eq!(e.ctl(&["get", key, "--print-value-only"]).stdout, want);
}

/// The cluster ID `etcdctl endpoint status` reports, in hex.
fn cluster_id(e: &Etcd) -> String {
    let o = e.ctl(&["endpoint", "status", "-w", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    format!(
        "{:x}",
        v[0]["Status"]["header"]["cluster_id"].as_u64().unwrap()
    )
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn put_back_restores_a_deleted_key_and_refuses_an_existing_one_on_3_5() {
    put_back("3.5");
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn put_back_restores_a_deleted_key_and_refuses_an_existing_one_on_3_4() {
    put_back("3.4");
}

fn compare(line: &str) {
    let e = Etcd::start(line, None);
    fill(&e);
    let first = e.revision();
    e.ctl(&["compact", &first.to_string()]);
    for i in 0..5 {
        e.put(&format!("/registry/configmaps/default/cm{i}"), b"third");
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    e.ctl(&["snapshot", "save", snap.to_str().unwrap()]);
    let s = snap.to_str().unwrap();
    let at = e.revision();
    let o = live_run(&e, &["compare", s]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok"), "{}", stdout(&o));
    // Later writes and a new compaction below the snapshot's revision leave
    // the member's hash at that revision as it was: still a match.
    for i in 0..3 {
        e.put(&format!("/registry/configmaps/default/cm{i}"), b"fourth");
    }
    e.ctl(&["compact", &(at - 1).to_string()]);
    let o = live_run(&e, &["compare", s]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    // A member whose history differs at that revision (another cluster
    // written to the same revision): a mismatch, naming the member and both
    // hashes.
    let other = Etcd::start(line, None);
    fill(&other);
    while other.revision() < at + 2 {
        other.put("/registry/configmaps/default/other", b"diverged");
    }
    let o = live_run(&other, &["compare", s, "-w", "json"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &j["findings"][0];
    assert_eq!(f["verdict"], "fail", "{j}");
    assert_eq!(f["member"], "live");
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("at revision {at}")),
        "{j}"
    );
    drop(other);
    // Compacted past the snapshot's revision: cannot tell, with the reason.
    e.ctl(&["compact", &e.revision().to_string()]);
    let o = live_run(&e, &["compare", s]);
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("compacted"), "{}", stdout(&o));
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn compare_matches_then_reports_a_diverged_member_and_a_compaction_on_3_5() {
    compare("3.5");
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn compare_matches_then_reports_a_diverged_member_and_a_compaction_on_3_4() {
    compare("3.4");
}

/// Restores `snap` for the members of `l` into `dir` with our restore.
fn restore_into(snap: &Path, l: &common::cluster::Layout, token: &str, dir: &Path) {
    restore_with(snap, l, token, dir, &[]);
}

fn restore_with(snap: &Path, l: &common::cluster::Layout, token: &str, dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "restore",
        snap.to_str().unwrap(),
        "--out-dir",
        dir.to_str().unwrap(),
        "--initial-cluster",
        &l.initial,
        "--initial-cluster-token",
        token,
        "--target-version",
        "3.5",
    ];
    args.extend(extra);
    let o = run(&args);
    assert!(o.status.success(), "restore: {}", stderr(&o));
}

/// After a restore with --bump-revision, HashKV at the snapshot's revision
/// is compacted away; with the same --bump-revision, verify-cluster compares
/// the members' keys at the bumped revision instead, and says so.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn verify_cluster_after_a_restore_with_bump_revision() {
    let l = layout(3);
    let token = "etcdsnap-verify-bump";
    // A snapshot with history, a delete and a lease-less set of keys.
    let src = Etcd::start("3.5", None);
    fill(&src);
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    src.ctl(&["snapshot", "save", snap.to_str().unwrap()]);
    let rev = src.revision();
    drop(src);
    let bump = ["--bump-revision", "1000", "--mark-compacted"];
    let good = tempfile::tempdir().unwrap();
    restore_with(&snap, &l, token, good.path(), &bump);
    let dirs: Vec<PathBuf> = l
        .members
        .iter()
        .map(|(n, _, _)| good.path().join(format!("{n}.etcd")))
        .collect();
    let e = Etcd::start_dirs("3.5", &l.members, &dirs, &l.initial, token);
    assert_eq!(e.revision(), rev + 1000);
    let s = snap.to_str().unwrap();
    // Without the bump: cannot tell, and the output says what to pass.
    let o = live_run(&e, &["verify-cluster", "--expect", s]);
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("pass --bump-revision 1000"),
        "{}",
        stdout(&o)
    );
    // With it: every member's keys compared, HashKV reported as skipped.
    let o = live_run(
        &e,
        &[
            "verify-cluster",
            "--expect",
            s,
            "--initial-cluster",
            &l.initial,
            "--bump-revision",
            "1000",
            "-w",
            "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let of = |check: &str, verdict: &str| {
        j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] == check && f["verdict"] == verdict)
            .count()
    };
    assert_eq!(of("content", "pass"), 3, "{j:#}");
    assert_eq!(of("hashkv", "skipped"), 3, "{j:#}");
    // 20 keys were put, one deleted: 19 live.
    assert!(
        j["findings"]
            .to_string()
            .contains("the 19 keys served at revision"),
        "{j:#}"
    );
    // A write after the restore leaves the keys at the bumped revision as
    // they were: still a match ...
    e.put("/registry/configmaps/default/new", b"new");
    let o = live_run(
        &e,
        &["verify-cluster", "--expect", s, "--bump-revision", "1000"],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    // ... and a wrong bump is named: the member is not at that revision.
    let o = live_run(
        &e,
        &["verify-cluster", "--expect", s, "--bump-revision", "5000"],
    );
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("+ the bump 5000"), "{}", stdout(&o));
    drop(e);

    // m3 restored (with the same bump) from another snapshot: only m3 fails,
    // with the keys named.
    let other_src = Etcd::start("3.5", None);
    fill_variant(&other_src, true);
    let other = dir.path().join("other.db");
    other_src.ctl(&["snapshot", "save", other.to_str().unwrap()]);
    drop(other_src);
    let good2 = tempfile::tempdir().unwrap();
    restore_with(&snap, &l, token, good2.path(), &bump);
    let odd = tempfile::tempdir().unwrap();
    restore_with(&other, &l, token, odd.path(), &bump);
    let mut dirs2: Vec<PathBuf> = l
        .members
        .iter()
        .map(|(n, _, _)| good2.path().join(format!("{n}.etcd")))
        .collect();
    dirs2[2] = odd.path().join("m3.etcd");
    let e = Etcd::start_dirs("3.5", &l.members, &dirs2, &l.initial, token);
    let o = live_run(
        &e,
        &[
            "verify-cluster",
            "--expect",
            s,
            "--bump-revision",
            "1000",
            "-w",
            "json",
        ],
    );
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<&Value> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] == "fail")
        .collect();
    assert!(!failed.is_empty(), "{j:#}");
    assert!(failed.iter().all(|f| f["member"] == "m3"), "{j:#}");
    assert!(
        failed
            .iter()
            .any(|f| f["check"] == "content" && f["detail"].as_str().unwrap().contains("cm3")),
        "{j:#}"
    );
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn verify_cluster_passes_on_a_restored_cluster_and_names_the_odd_member() {
    let l = layout(3);
    let token = "etcdsnap-verify-cluster";
    let snap = fixture("etcd-3.5.1.db");
    let dir = tempfile::tempdir().unwrap();
    restore_into(&snap, &l, token, dir.path());
    let dirs: Vec<PathBuf> = l
        .members
        .iter()
        .map(|(n, _, _)| dir.path().join(format!("{n}.etcd")))
        .collect();
    let e = Etcd::start_dirs("3.5", &l.members, &dirs, &l.initial, token);
    let s = snap.to_str().unwrap();
    let o = live_run(
        &e,
        &[
            "verify-cluster",
            "--expect",
            s,
            "--initial-cluster",
            &l.initial,
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = live_run(
        &e,
        &[
            "verify-cluster",
            "--expect",
            s,
            "--initial-cluster",
            &l.initial,
            "-w",
            "json",
        ],
    );
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let hashes: Vec<&Value> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "hashkv" && f["verdict"] == "pass")
        .collect();
    assert_eq!(hashes.len(), 3, "{j:#}");
    // Expected names that are not the cluster's: named.
    let wrong = l.initial.replace("m2=", "m9=");
    let o = live_run(
        &e,
        &["verify-cluster", "--expect", s, "--initial-cluster", &wrong],
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("m9"), "{}", stdout(&o));
    drop(e);

    // m3 restored from another snapshot (same members, different data).
    let other_src = Etcd::start("3.5", None);
    fill(&other_src);
    let other = dir.path().join("other.db");
    other_src.ctl(&["snapshot", "save", other.to_str().unwrap()]);
    drop(other_src);
    let dir2 = tempfile::tempdir().unwrap();
    restore_into(&snap, &l, token, dir2.path());
    let odd = tempfile::tempdir().unwrap();
    restore_into(&other, &l, token, odd.path());
    let mut dirs2: Vec<PathBuf> = l
        .members
        .iter()
        .map(|(n, _, _)| dir2.path().join(format!("{n}.etcd")))
        .collect();
    dirs2[2] = odd.path().join("m3.etcd");
    let e = Etcd::start_dirs("3.5", &l.members, &dirs2, &l.initial, token);
    let o = live_run(
        &e,
        &[
            "verify-cluster",
            "--expect",
            s,
            "--initial-cluster",
            &l.initial,
            "-w",
            "json",
        ],
    );
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<&Value> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["verdict"] == "fail")
        .collect();
    assert!(!failed.is_empty(), "{j:#}");
    assert!(
        failed.iter().all(|f| f["member"] == "m3"),
        "only m3 fails: {j:#}"
    );
}

/// A TCP proxy to `upstream` that changes one byte inside the first run of
/// 64 `Z`s the server sends (value bytes, never gRPC or HTTP/2 framing,
/// which would break the run).
fn corrupting_proxy(upstream: String) -> String {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let done = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                return;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
            });
            let (mut s_read, mut c_write) = (server, client);
            let done = done.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                let run = [b'Z'; 64];
                loop {
                    let n = match s_read.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if !done.load(Ordering::SeqCst)
                        && let Some(i) = buf[..n].windows(64).position(|w| w == run)
                    {
                        buf[i + 32] = b'Y';
                        done.store(true, Ordering::SeqCst);
                    }
                    if c_write.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn a_corrupted_stream_fails_the_digest_and_leaves_no_output() {
    let e = Etcd::start("3.5", None);
    fill(&e);
    e.put("/registry/configmaps/default/zzz", &[b'Z'; 4096]);
    let upstream = e.endpoints[0].trim_start_matches("http://").to_string();
    let proxy = corrupting_proxy(upstream);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("corrupt.db");
    let o = etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .args(["save", out.to_str().unwrap(), "--endpoints", &proxy])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("sha256 mismatch"), "{}", stderr(&o));
    assert!(!out.exists(), "OUT left behind");
    assert_eq!(
        temps(dir.path()),
        Vec::<String>::new(),
        "a temporary file left behind"
    );
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn save_compare_and_put_back_over_tls_on_3_4() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let p = pki.path();
    let tls = Tls {
        ca: p.join("ca.crt"),
        cert: p.join("server.crt"),
        key: p.join("server.key"),
    };
    let e = Etcd::start(
        "3.4",
        Some((tls, p.join("server.crt"), p.join("server.key"))),
    );
    fill(&e);
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.db");
    let o = live_run(&e, &["save", ours.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(status_json(&ours)["revision"].as_i64(), Some(e.revision()));
    let s = ours.to_str().unwrap();
    let o = live_run(&e, &["compare", s]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    e.ctl(&["del", "/registry/configmaps/default/cm3"]);
    let o = live_run(&e, &["put-back", s, "cm", "cm3", "--no-index"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = e.ctl(&[
        "get",
        "/registry/configmaps/default/cm3",
        "--print-value-only",
    ]);
    assert_eq!(got.stdout, b"value 3 again\n");
}

/// An object as JSON (how the API server stores custom resources), with a
/// uid and owners.
fn object(kind: &str, ns: &str, name: &str, uid: &str, owners: &[&str]) -> Vec<u8> {
    let refs: Vec<Value> = owners
        .iter()
        .map(|u| serde_json::json!({"apiVersion": "v1", "kind": "Thing", "name": "o", "uid": u}))
        .collect();
    let mut meta = serde_json::json!({"name": name, "uid": uid, "ownerReferences": refs});
    if kind != "Namespace" {
        meta["namespace"] = ns.into();
    }
    serde_json::json!({"apiVersion": "v1", "kind": kind, "metadata": meta})
        .to_string()
        .into_bytes()
}

/// `put-back -n NS` on a real etcd, in the sequences that hurt: an object
/// recreated in the cluster since the backup (left as it is), owners gone
/// (nothing written until the user chooses; left out with what they own),
/// a Namespace already being deleted in the snapshot, a namespace the
/// snapshot does not hold, `--key-prefix`, and two put-backs at once (each
/// object written by exactly one of them, never twice).
fn namespace_put_back(line: &str) {
    let e = Etcd::start(line, None);
    let objects = [
        (
            "/registry/namespaces/shop",
            object("Namespace", "", "shop", "u-ns", &[]),
        ),
        (
            "/registry/configmaps/shop/a",
            object("ConfigMap", "shop", "a", "u-a", &[]),
        ),
        (
            "/registry/configmaps/shop/b",
            object("ConfigMap", "shop", "b", "u-b", &["u-gone"]),
        ),
        (
            "/registry/configmaps/shop/c",
            object("ConfigMap", "shop", "c", "u-c", &["u-b"]),
        ),
        (
            "/registry/configmaps/shop/d",
            object("ConfigMap", "shop", "d", "u-d", &["u-r"]),
        ),
        (
            "/registry/replicasets/shop/r",
            object("ReplicaSet", "shop", "r", "u-r", &["u-a"]),
        ),
    ];
    for (k, v) in &objects {
        e.put(k, v);
    }
    let mut dying: Value =
        serde_json::from_slice(&object("Namespace", "", "dying", "u-dy", &[])).unwrap();
    dying["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z".into();
    e.put("/registry/namespaces/dying", dying.to_string().as_bytes());
    e.put(
        "/registry/configmaps/dying/x",
        &object("ConfigMap", "dying", "x", "u-x", &[]),
    );
    // Many small objects, for two put-backs racing through their batches.
    const MANY: usize = 1500;
    for chunk in (0..MANY).collect::<Vec<_>>().chunks(100) {
        let mut txn = String::from("\n");
        for i in chunk {
            txn += &format!("put /registry/configmaps/many/cm{i:05} v{i}\n");
        }
        txn += "\n\n";
        let mut c = e.ctl_cmd();
        let mut child = c
            .args(["txn"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(txn.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    e.ctl(&["snapshot", "save", snap.to_str().unwrap()]);
    let s = snap.to_str().unwrap();
    let get = |k: &str| e.ctl(&["get", k, "--print-value-only"]).stdout;
    let wipe = || {
        for (k, _) in &objects {
            e.ctl(&["del", k]);
        }
    };
    wipe();
    e.ctl(&[
        "del",
        "/registry/namespaces/dying",
        "/registry/namespaces/dyinh",
    ]);
    e.ctl(&["del", "/registry/configmaps/dying/x"]);
    // Recreated since the backup (a new uid): stays as the cluster has it,
    // and what the old one owned would be collected.
    let newer = object("ConfigMap", "shop", "a", "u-a2", &[]);
    e.put("/registry/configmaps/shop/a", &newer);

    let o = live_run(&e, &["put-back", s, "-n", "shop", "--no-index"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("owner gone: configmaps/shop/b names Thing o (uid u-gone)"),
        "{}",
        stdout(&o)
    );
    assert!(
        get("/registry/namespaces/shop").is_empty(),
        "written though stopped"
    );

    let o = live_run(
        &e,
        &[
            "put-back",
            s,
            "-n",
            "shop",
            "--no-index",
            "--dangling",
            "leave-out",
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("namespaces/shop "), "{out}");
    let at = |what: &str| lines.iter().position(|l| l.starts_with(what)).unwrap();
    assert!(
        at("configmaps/shop/a ") < at("replicasets.apps/shop/r "),
        "{out}"
    );
    assert!(
        at("replicasets.apps/shop/r ") < at("configmaps/shop/d "),
        "{out}"
    );
    assert!(
        lines[at("configmaps/shop/a ")].contains("already there"),
        "{out}"
    );
    for left in ["b", "c", "d"] {
        let l = lines[at(&format!("configmaps/shop/{left} "))];
        assert!(l.contains("left out: its owner"), "{out}");
    }
    assert!(
        lines[at("replicasets.apps/shop/r ")].contains("(uid u-a) is gone"),
        "{out}"
    );
    for (k, v) in &objects {
        let want = match *k {
            "/registry/configmaps/shop/a" => newer.clone(),
            "/registry/namespaces/shop" => v.clone(),
            _ => Vec::new(),
        };
        let mut got = get(k);
        got.pop_if(|b| *b == b'\n');
        assert_eq!(got, want, "{k}");
    }

    // Already being deleted in the snapshot: written back it would go again.
    let o = live_run(&e, &["put-back", s, "-n", "dying", "--no-index"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("already being deleted"),
        "{}",
        stderr(&o)
    );
    assert!(get("/registry/namespaces/dying").is_empty());
    assert!(get("/registry/configmaps/dying/x").is_empty());
    // Not in the snapshot.
    let o = live_run(&e, &["put-back", s, "-n", "nowhere", "--no-index"]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("no live object of namespace"),
        "{}",
        stderr(&o)
    );

    // Two at once: every object written by exactly one (of a few, and of
    // many, where one's reads and the other's writes interleave).
    wipe();
    e.ctl(&["del", "/registry/configmaps/many/", "--prefix"]);
    let race = |ns: &str| -> Vec<Value> {
        let runs: Vec<_> = (0..2)
            .map(|_| {
                live_cmd(
                    &e,
                    &[
                        "put-back",
                        s,
                        "-n",
                        ns,
                        "--no-index",
                        "--dangling",
                        "write",
                        "-w",
                        "json",
                    ],
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        runs.into_iter()
            .map(|c| {
                let o = c.wait_with_output().unwrap();
                assert!(code(&o) <= 1, "{}", stderr(&o));
                serde_json::from_slice(&o.stdout).unwrap()
            })
            .collect()
    };
    let many = race("many");
    for i in 0..MANY {
        let written = many
            .iter()
            .filter(|r| r["objects"][i]["fate"] == "written")
            .count();
        assert_eq!(
            written, 1,
            "cm{i:05}: {:?} {:?}",
            many[0]["objects"][i], many[1]["objects"][i]
        );
    }
    let runs: Vec<_> = (0..2)
        .map(|_| {
            live_cmd(
                &e,
                &[
                    "put-back",
                    s,
                    "-n",
                    "shop",
                    "--no-index",
                    "--dangling",
                    "write",
                    "-w",
                    "json",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let reports: Vec<Value> = runs
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(code(&o) <= 1, "{}", stderr(&o));
            serde_json::from_slice(&o.stdout).unwrap()
        })
        .collect();
    for (i, (k, v)) in objects.iter().enumerate() {
        let written = reports
            .iter()
            .filter(|r| r["objects"][i]["fate"] == "written")
            .count();
        assert_eq!(written, 1, "{k}: {reports:#?}");
        let mut got = get(k);
        got.pop_if(|b| *b == b'\n');
        assert_eq!(&got, v, "{k}");
    }

    // --key-prefix: only what is under it.
    e.ctl(&["del", "/registry/configmaps/shop/", "--prefix"]);
    e.ctl(&["del", "/registry/replicasets/shop/r"]);
    let o = live_run(
        &e,
        &[
            "put-back",
            s,
            "--key-prefix",
            "/registry/configmaps/shop/",
            "--no-index",
            "--dangling",
            "write",
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(!get("/registry/configmaps/shop/d").is_empty());
    assert!(get("/registry/replicasets/shop/r").is_empty());
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn namespace_put_back_writes_only_what_is_absent_owners_first_on_3_6() {
    namespace_put_back("3.6");
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn namespace_put_back_writes_only_what_is_absent_owners_first_on_3_4() {
    namespace_put_back("3.4");
}
