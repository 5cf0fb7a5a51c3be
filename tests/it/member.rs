//! `member add-learner` / `member promote` / `member list` against real
//! etcd: a snapshot restored as a one-member cluster grown to three members,
//! each new one started from the env file we wrote alone; the refusals
//! (name or peer URL in use, no quorum, a promote before the learner
//! started). etcdctl of the same release is the oracle for what every
//! member serves and for the member list.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::cluster::free_port;
use crate::common::live::Etcd;
use crate::common::{etcdsnap, fixture, stderr, stdout};

pub(crate) const TOKEN: &str = "grow-test";

/// `etcdsnap member ARGS --endpoints EP`.
pub(crate) fn member(endpoint: &str, args: &[&str]) -> Output {
    etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg("member")
        .args(args)
        .args(["--endpoints", endpoint])
        .output()
        .unwrap()
}

/// etcdctl's member list (JSON), from one endpoint.
pub(crate) fn ctl_members(e: &Etcd, endpoint: &str) -> Vec<(String, Vec<String>, bool)> {
    members_by(&e.ctl_bin, endpoint, &[])
}

/// The member list as one member has it, without a quorum (a serializable
/// MemberList: etcdctl 3.6's --consistency s; 3.5.1's etcdctl has no such flag).
pub(crate) fn local_members(endpoint: &str) -> Vec<(String, Vec<String>, bool)> {
    members_by(
        &crate::common::etcd_bin("3.6", "etcdctl"),
        endpoint,
        &["--consistency", "s"],
    )
}

fn members_by(ctl: &Path, endpoint: &str, extra: &[&str]) -> Vec<(String, Vec<String>, bool)> {
    let o = std::process::Command::new(ctl)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "member", "list", "-w", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "etcdctl member list: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut m: Vec<(String, Vec<String>, bool)> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                serde_json::from_value(m["peerURLs"].clone()).unwrap(),
                m.get("isLearner").and_then(Value::as_bool).unwrap_or(false),
            )
        })
        .collect();
    m.sort();
    m
}

/// Every key and value one member serves from its own data (a serializable
/// read through etcdctl at that member alone), and the revision.
/// (With the cluster's TLS files when it has them.)
pub(crate) fn served_by(e: &Etcd, endpoint: &str) -> (i64, BTreeMap<String, String>) {
    let o = e
        .ctl_at(endpoint)
        .args(["--consistency", "s"])
        .args(["get", "", "--from-key", "-w", "json"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "etcdctl get at {endpoint}: {}",
        stderr(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let kvs = v
        .get("kvs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|kv| {
            (
                kv["key"].as_str().unwrap().to_string(),
                kv.get("value")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    (v["header"]["revision"].as_i64().unwrap(), kvs)
}

/// A snapshot fixture of `line`'s release restored as the one member
/// `node1`, started.
fn one_member(line: &str, file: &str) -> (Etcd, tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    let (peer, client) = (free_port(), free_port());
    let initial = format!("node1=http://127.0.0.1:{peer}");
    let d1 = dir.path().join("node1.etcd");
    let o = etcdsnap()
        .arg("restore")
        .arg(fixture(file))
        .args(["--name", "node1", "--initial-cluster", &initial])
        .args(["--initial-cluster-token", TOKEN, "--data-dir"])
        .arg(&d1)
        .output()
        .unwrap();
    assert!(o.status.success(), "restore: {}", stderr(&o));
    let e = Etcd::start_dirs(
        line,
        &[("node1".to_string(), peer, client)],
        &[d1],
        &initial,
        TOKEN,
    );
    (e, dir, peer)
}

/// Adds `name` as a learner, starts it from its env file alone with an
/// empty data dir, promotes it. Returns its client endpoint.
fn grow(e: &mut Etcd, out: &Path, name: &str) -> String {
    let ep = e.endpoints[0].clone();
    let (peer, client) = (free_port(), free_port());
    let curl = format!("http://127.0.0.1:{client}");
    let data = out.join(format!("{name}.etcd"));
    let o = member(
        &ep,
        &[
            "add-learner",
            &format!("{name}=http://127.0.0.1:{peer}"),
            "--client-url",
            &curl,
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        o.status.success(),
        "add-learner {name}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    println!("{}", stdout(&o));
    let env_file = out.join(format!("{name}.env"));
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.contains("ETCD_INITIAL_CLUSTER_STATE=existing"), "{env}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!data.exists());
    e.start_env(&env_file, &curl);
    let o = member(&ep, &["promote", name, "--wait", "60s"]);
    assert!(
        o.status.success(),
        "promote {name}: {}{}\nlog: {}",
        stdout(&o),
        stderr(&o),
        e.log_tail(name)
    );
    println!("{}", stdout(&o));
    curl
}

fn grows_to_three(line: &str, file: &str) {
    let (mut e, dir, _) = one_member(line, file);
    for i in 0..20 {
        e.put(
            &format!("/grow/key-{i:02}"),
            format!("value {i}").as_bytes(),
        );
    }
    let out = dir.path();
    grow(&mut e, out, "node2");
    grow(&mut e, out, "node3");
    e.put("/grow/after", b"three members");

    // The member list: three voting members, as etcdctl sees it from each.
    let o = member(&e.endpoints[0], &["list", "-w", "table"]);
    assert!(o.status.success(), "{}", stderr(&o));
    println!("{}", stdout(&o));
    for ep in &e.endpoints {
        let m = ctl_members(&e, ep);
        let names: Vec<&str> = m.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["node1", "node2", "node3"], "at {ep}");
        assert!(m.iter().all(|x| !x.2), "a learner left at {ep}: {m:?}");
    }
    let o = member(&e.endpoints[0], &["list", "-w", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let listed = v["members"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{v}");
    for m in listed {
        assert_eq!(m["isLearner"], false, "{m}");
        assert!(
            m["status"]["version"].as_str().unwrap().starts_with(line),
            "{m}"
        );
    }
    // Every key on every member, read from that member's own data.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = served_by(&e, &e.endpoints[0]);
    assert!(first.1.len() > 20);
    loop {
        let all: Vec<_> = e.endpoints.iter().map(|ep| served_by(&e, ep)).collect();
        if all.iter().all(|s| *s == first) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "members serve different keys: {:?}",
            all.iter().map(|s| (s.0, s.1.len())).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A snapshot from node1 (etcdctl) matches every member's HashKV.
    let snap = dir.path().join("after.db");
    hashkv_equal(&e, &e.endpoints[0], &snap, &e.endpoints.join(","), 3);
}

/// A snapshot saved at `from` (etcdctl) matches the HashKV of each of the
/// `n` members `endpoints` reach (`etcdsnap compare`, with the cluster's TLS
/// files when it has them).
pub(crate) fn hashkv_equal(e: &Etcd, from: &str, snap: &Path, endpoints: &str, n: usize) {
    let o = e
        .ctl_at(from)
        .args(["snapshot", "save"])
        .arg(snap)
        .output()
        .unwrap();
    assert!(o.status.success(), "snapshot save: {}", stderr(&o));
    let o = etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg("compare")
        .arg(snap)
        .args(["--endpoints", endpoints])
        .args(e.tls_args())
        .output()
        .unwrap();
    println!("{}", stdout(&o));
    assert!(o.status.success(), "compare: {}{}", stdout(&o), stderr(&o));
    let ok = stdout(&o)
        .lines()
        .filter(|l| l.contains("hashkv") && l.contains(" ok "))
        .count();
    assert_eq!(ok, n, "{}", stdout(&o));
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    grows_to_three:
    v3_5("3.5", "etcd-3.5.1.db"),
    v3_6("3.6", "etcd-3.6.16.db"),
);

fn refusals(line: &str, file: &str) {
    let (mut e, dir, peer1) = one_member(line, file);
    let ep = e.endpoints[0].clone();
    let out = dir.path();
    let before = ctl_members(&e, &ep);
    // The name of a current member; the peer URL of a current member.
    for (spec, says) in [
        (
            format!("node1=http://127.0.0.1:{}", free_port()),
            "name \"node1\" is in use by member",
        ),
        (
            format!("nodex=http://127.0.0.1:{peer1}"),
            "is in use by member",
        ),
    ] {
        let o = member(&ep, &["add-learner", &spec, "--out", out.to_str().unwrap()]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{spec}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        assert!(stderr(&o).contains(says), "{spec}: {}", stderr(&o));
        assert_eq!(
            ctl_members(&e, &ep),
            before,
            "{spec} changed the member list"
        );
        assert!(
            std::fs::read_dir(out)
                .unwrap()
                .all(|f| { !f.unwrap().file_name().to_string_lossy().ends_with(".env") })
        );
    }
    // --dry-run changes nothing.
    let o = member(
        &ep,
        &[
            "add-learner",
            &format!("node2=http://127.0.0.1:{}", free_port()),
            "--out",
            out.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ETCD_INITIAL_CLUSTER_STATE=existing"));
    assert_eq!(ctl_members(&e, &ep), before);
    assert!(!out.join("node2.env").exists());

    // A promote before the learner started: exit 1 at the deadline.
    let o = member(
        &ep,
        &[
            "add-learner",
            &format!("node2=http://127.0.0.1:{}", free_port()),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o)
        .split("as learner ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    // By its ID: MemberPromote itself answers "not in sync" until the deadline.
    let t = Instant::now();
    let o = member(&ep, &["promote", &id, "--wait", "2s"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(t.elapsed() >= Duration::from_secs(2));
    let err = stderr(&o);
    println!("{err}");
    assert!(err.contains("in sync with leader"), "{err}");
    assert!(
        err.contains(&format!("etcdctl member remove {id}")),
        "{err}"
    );
    // By its name, which it has not published: the same, at the deadline.
    let t = Instant::now();
    let o = member(&ep, &["promote", "node2", "--wait", "3s"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(t.elapsed() >= Duration::from_secs(3));
    let err = stderr(&o);
    println!("{err}");
    assert!(err.contains("not in sync"), "{err}");
    assert!(err.contains("etcdctl member remove"), "{err}");
    let after = ctl_members(&e, &ep);
    assert_eq!(after.len(), 2);
    assert!(after.iter().any(|m| m.2), "the learner stays: {after:?}");
    // An existing env file is not replaced.
    std::fs::write(out.join("node9.env"), "keep").unwrap();
    let o = member(
        &ep,
        &[
            "add-learner",
            &format!("node9=http://127.0.0.1:{}", free_port()),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("node9.env")).unwrap(),
        "keep"
    );
    assert_eq!(ctl_members(&e, &ep), after);
    e.kill(0);
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    refusals:
    v3_5("3.5", "etcd-3.5.1.db"),
    v3_6("3.6", "etcd-3.6.16.db"),
);

/// Three members, two of them stopped: adding is refused, nothing changes.
fn refused_without_quorum(line: &str, file: &str) {
    let dir = tempfile::tempdir().unwrap();
    let members: Vec<(String, u16, u16)> = (1..=3)
        .map(|i| (format!("m{i}"), free_port(), free_port()))
        .collect();
    let initial = members
        .iter()
        .map(|(n, p, _)| format!("{n}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let o = etcdsnap()
        .arg("restore")
        .arg(fixture(file))
        .args([
            "--initial-cluster",
            &initial,
            "--initial-cluster-token",
            TOKEN,
        ])
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "restore: {}", stderr(&o));
    let dirs: Vec<_> = members
        .iter()
        .map(|(n, _, _)| dir.path().join(format!("{n}.etcd")))
        .collect();
    let mut e = Etcd::start_dirs(line, &members, &dirs, &initial, TOKEN);
    let ep = e.endpoints[0].clone();
    let before = local_members(&ep);
    assert_eq!(before, ctl_members(&e, &ep));
    e.kill(1);
    e.kill(2);
    let out = tempfile::tempdir().unwrap();
    let o = member(
        &ep,
        &[
            "add-learner",
            &format!("m4=http://127.0.0.1:{}", free_port()),
            "--out",
            out.path().to_str().unwrap(),
            "--dial-timeout",
            "1s",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    println!("{err}");
    assert!(
        err.contains("no quorum: 1 of 3 voting members answer"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    // The survivor's member list (served from its own state) is unchanged.
    assert_eq!(local_members(&ep), before);
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    refused_without_quorum:
    v3_5("3.5", "etcd-3.5.1.db"),
    v3_6("3.6", "etcd-3.6.16.db"),
);
