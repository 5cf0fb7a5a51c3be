//! `member replace` against real three-member clusters (http, loopback):
//! the pitfalls operators hit replacing a failed member — the old member
//! still running, a name or peer URL of a current member, the new node
//! never started, a rerun after it, quorum already lost — each refused or
//! recovered with nothing else changed, then the replacement started from
//! its env file alone, promoted, and serving every key. etcdctl of the same
//! release is the oracle for the member list and what each member serves.

use std::time::{Duration, Instant};

use crate::common::cluster::free_port;
use crate::common::live::Etcd;
use crate::common::{etcdsnap, fixture, stderr, stdout};
use crate::member::{TOKEN, ctl_members, hashkv_equal, local_members, member, served_by};

/// Three members m1..m3 restored from `file` and started.
fn three(line: &str, file: &str) -> (Etcd, tempfile::TempDir, Vec<(String, u16, u16)>) {
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
        .args(["--initial-cluster", &initial])
        .args(["--initial-cluster-token", TOKEN, "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "restore: {}", stderr(&o));
    let dirs: Vec<_> = members
        .iter()
        .map(|(n, _, _)| dir.path().join(format!("{n}.etcd")))
        .collect();
    let e = Etcd::start_dirs(line, &members, &dirs, &initial, TOKEN);
    (e, dir, members)
}

/// `member replace ARGS` through every endpoint (dead ones too, as an
/// operator lists them), with a short dial timeout.
fn replace(e: &Etcd, args: &[&str]) -> std::process::Output {
    let eps = e.endpoints.join(",");
    let mut all = vec!["replace"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--dial-timeout", "1s"]);
    member(&eps, &all)
}

fn files_in(d: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn pitfalls(line: &str, file: &str) {
    let (mut e, _dir, members) = three(line, file);
    let out = tempfile::tempdir().unwrap();
    let o_s = out.path().to_str().unwrap();
    let ep1 = e.endpoints[0].clone();
    for i in 0..10 {
        e.put(&format!("/replace/key-{i}"), format!("v{i}").as_bytes());
    }
    let before = ctl_members(&e, &ep1);
    let (p4, c4) = (free_port(), free_port());
    let new = format!("m4=http://127.0.0.1:{p4}");
    let curl4 = format!("http://127.0.0.1:{c4}");
    let data4 = out.path().join("m4.etcd");
    let join_args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "m3",
            "--new",
            &new,
            "--client-url",
            &curl4,
            "--data-dir",
            data4.to_str().unwrap(),
            "--out",
            o_s,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |e: &Etcd, extra: &[&str]| {
        let a = join_args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        replace(e, &a)
    };

    // m3 still runs: refused, nothing changed.
    let o = run(&e, &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("still answers at"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(ctl_members(&e, &ep1), before);
    assert!(files_in(out.path()).is_empty());

    e.kill(2);
    // The name or the peer URL of a member that stays: refused.
    let peer1 = format!("http://127.0.0.1:{}", members[0].1);
    for (spec, says) in [
        (
            format!("m2=http://127.0.0.1:{}", free_port()),
            "name \"m2\" is in use by member",
        ),
        (format!("m9={peer1}"), "is in use by member"),
    ] {
        let o = replace(&e, &["m3", "--new", &spec, "--out", o_s]);
        assert_eq!(o.status.code(), Some(1), "{spec}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{spec}: {}", stderr(&o));
        assert_eq!(ctl_members(&e, &ep1), before);
    }
    // The failed member's own name and URL are free once it goes: the dry
    // run takes them (and changes nothing).
    let peer3 = format!("m3=http://127.0.0.1:{}", members[2].1);
    let o = replace(&e, &["m3", "--new", &peer3, "--out", o_s, "--dry-run"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    // --dry-run: the plan, nothing changed, nothing written.
    let o = run(&e, &["--dry-run"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let plan = stdout(&o);
    println!("{plan}");
    assert!(plan.contains("would remove m3"), "{plan}");
    assert!(
        plan.contains("ETCD_INITIAL_CLUSTER_STATE=existing"),
        "{plan}"
    );
    let ic = plan
        .lines()
        .find(|l| l.contains("ETCD_INITIAL_CLUSTER="))
        .unwrap()
        .to_string();
    assert!(
        ic.contains("m1=") && ic.contains("m2=") && ic.contains("m4=") && !ic.contains("m3="),
        "{ic}"
    );
    assert_eq!(ctl_members(&e, &ep1), before);
    assert!(files_in(out.path()).is_empty());

    // The new node never starts: m3 is removed, m4 is a learner, the two
    // voting members still commit writes; the output says how to undo.
    let o = run(&e, &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let said = stdout(&o);
    println!("{said}");
    assert!(said.contains("removed m3"), "{said}");
    let id = said
        .split("as learner ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        said.contains(&format!("etcdctl member remove {id}")),
        "{said}"
    );
    assert!(out.path().join("m4.env").is_file());
    let after = ctl_members(&e, &ep1);
    assert_eq!(after.len(), 3, "{after:?}");
    let voting: Vec<&str> = after
        .iter()
        .filter(|m| !m.2)
        .map(|m| m.0.as_str())
        .collect();
    assert_eq!(voting, ["m1", "m2"], "{after:?}");
    assert!(
        after
            .iter()
            .any(|m| m.2 && m.1 == [format!("http://127.0.0.1:{p4}")])
    );
    e.put(
        "/replace/while-learner",
        b"quorum is two of two voting members",
    );
    let o = member(&ep1, &["promote", "m4", "--wait", "2s"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("etcdctl member remove"),
        "{}",
        stderr(&o)
    );

    // A rerun: its outputs are there (refused without --force); with
    // --force it finds the learner and writes the files again, adding no
    // second member.
    let o = run(&e, &[]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("exists; not replacing it"),
        "{}",
        stderr(&o)
    );
    let o = run(&e, &["--force"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let said = stdout(&o);
    assert!(said.contains("nothing to remove"), "{said}");
    assert!(said.contains(&format!("found learner {id}")), "{said}");
    assert_eq!(ctl_members(&e, &ep1), after);

    // Started from its env file alone, promoted: three voting members, and
    // m4 serves every key from its own data.
    e.start_env(&out.path().join("m4.env"), &curl4);
    let o = member(&ep1, &["promote", "m4", "--wait", "60s"]);
    assert!(
        o.status.success(),
        "promote: {}{}\n{}",
        stdout(&o),
        stderr(&o),
        e.log_tail("m4")
    );
    let names: Vec<String> = ctl_members(&e, &ep1)
        .into_iter()
        .filter(|m| !m.2)
        .map(|m| m.0)
        .collect();
    assert_eq!(names, ["m1", "m2", "m4"]);
    let want = served_by(&e, &ep1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while served_by(&e, &curl4) != want {
        assert!(Instant::now() < deadline, "m4 does not serve what m1 does");
        std::thread::sleep(Duration::from_millis(200));
    }
    // (etcdctl's JSON gives keys in base64.)
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode("/replace/while-learner");
    assert!(want.1.contains_key(&key), "{:?}", want.1.keys());

    // `member status`: every member answers.
    let o = member(&ep1, &["status", "-w", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");

    // Quorum lost (m2 and m4 stop): replacing m4 is refused, nothing changes.
    e.kill(1);
    e.kill(3);
    let local = local_members(&ep1);
    let o = replace(
        &e,
        &[
            "m4",
            "--new",
            &format!("m5=http://127.0.0.1:{}", free_port()),
            "--out",
            out.path().to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("no quorum: 1 of 3 voting members answer"),
        "{}",
        stderr(&o)
    );
    assert_eq!(local_members(&ep1), local);
    assert!(!out.path().join("m5.env").exists());
    // `member status` says who does not answer (exit 1).
    let o = member(&ep1, &["status", "--dial-timeout", "1s"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    println!("{}", stdout(&o));
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    pitfalls:
    v3_5("3.5", "etcd-3.5.1.db"),
    v3_6("3.6", "etcd-3.6.16.db"),
);

/// The documented procedure on a kubeadm-like cluster (client and peer TLS,
/// client certificates required): member m3's node dies; `member replace`
/// removes it and adds m4 at a new address with certificates signed by the
/// etcd CA; the join archive is refused on m3's old node (its data dir
/// still holds m3, named by its ID), installed on a fresh node root; etcd
/// starts from the installed files alone; `promote --wait`; then the member
/// list, every key on m4, and HashKV equal on all three (`compare`).
fn replace_with_tls(line: &str) {
    let mut e = Etcd::start_tls_cluster(line, 3);
    for i in 0..30 {
        e.put(&format!("/tls/key-{i:02}"), format!("value {i}").as_bytes());
    }
    let old = e.members[2].clone();
    let old_id = crate::member_tls::member_id(&e, &old.peer_url);
    e.kill(2);
    e.wait_leader();
    let new = e.new_node("m4");
    let out = e.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let all = e.endpoints.join(",");
    let tls = e.tls_args();
    let o = etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .args(["member", "replace", "m3", "--new", &new.initial()])
        .args(["--client-url", &new.client_url, "--ca-dir"])
        .arg(e.ca_dir.as_ref().unwrap())
        .arg("--out")
        .arg(&out)
        .args(["--endpoints", &all, "--dial-timeout", "1s"])
        .args(&tls)
        .output()
        .unwrap();
    let said = stdout(&o);
    println!("{said}{}", stderr(&o));
    assert!(o.status.success(), "replace: {said}{}", stderr(&o));
    assert!(said.contains(&format!("removed m3 ({old_id})")), "{said}");
    for f in [
        "pki/etcd/server.crt",
        "pki/etcd/peer.key",
        "pki/etcd/healthcheck-client.crt",
        "pki/apiserver-etcd-client.crt",
    ] {
        assert!(said.contains(f), "{f}: {said}");
    }
    let archive = out.join("m4.tar.zst");
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert!(sums.contains("  m4.tar.zst"), "{sums}");

    // The archive's static pod is one kubelet runs: the Go oracle decodes
    // it strictly into a v1.Pod and validates it; its command is the
    // joining member's flags.
    let start = e.dir.path().join("start");
    let o = etcdsnap()
        .args(["bundle", "extract", "--start-files", "--out"])
        .arg(&start)
        .arg(&archive)
        .output()
        .unwrap();
    assert!(o.status.success(), "extract: {}", stderr(&o));
    let pod = crate::bundle::oracle_pod(&std::fs::read(start.join("etcd.yaml")).unwrap())
        .unwrap_or_else(|e| panic!("the static pod: {e}"));
    let command: Vec<&str> = pod["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command[0], "etcd");
    for want in [
        "--initial-cluster-state=existing",
        "--name=m4",
        "--peer-client-cert-auth=true",
        "--client-cert-auth=true",
    ] {
        assert!(command.contains(&want), "{want}: {command:?}");
    }
    assert!(
        !command
            .iter()
            .any(|f| f.starts_with("--initial-cluster-token"))
    );
    let env = std::fs::read_to_string(start.join("etcd.env")).unwrap();
    assert_eq!(env, std::fs::read_to_string(out.join("m4.env")).unwrap());

    // On m3's old node, whose data dir still holds m3: refused, named.
    let o = etcdsnap()
        .arg("install")
        .arg(&archive)
        .arg("--root")
        .arg(&old.node)
        .output()
        .unwrap();
    println!("{}", stderr(&o));
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(&old_id), "{}", stderr(&o));
    assert!(
        old.data_dir.join("member/wal").is_dir(),
        "m3's data untouched"
    );

    // On a fresh node: an empty data dir, the certificates, the flags.
    std::fs::create_dir_all(&new.node).unwrap();
    let o = etcdsnap()
        .arg("install")
        .arg(&archive)
        .arg("--root")
        .arg(&new.node)
        .args(["-w", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "install: {}{}", stdout(&o), stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let flags: Vec<String> = serde_json::from_value(r["flags"].clone()).unwrap();
    assert!(flags.contains(&"--initial-cluster-state=existing".to_string()));
    assert_eq!(new.data_dir, new.node.join("var/lib/etcd"));
    assert_eq!(
        std::fs::read_dir(&new.data_dir).unwrap().count(),
        0,
        "empty data dir"
    );
    for f in ["ca.crt", "server.crt", "server.key", "peer.crt", "peer.key"] {
        assert!(new.pki.join(f).is_file(), "{f}");
    }
    // etcd from the installed files alone.
    e.start_with_flags(new.clone(), &flags);
    let o = etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .args(["member", "promote", "m4", "--wait", "60s"])
        .args(["--endpoints", &e.running_endpoints().join(",")])
        .args(&tls)
        .output()
        .unwrap();
    println!("{}", stdout(&o));
    assert!(
        o.status.success(),
        "promote: {}{}\n{}",
        stdout(&o),
        stderr(&o),
        e.log_tail("m4")
    );
    e.put("/tls/after", b"m4 votes");
    let o = e.ctl(&["member", "list", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut names: Vec<(String, bool)> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m.get("isLearner")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("m1".into(), false),
            ("m2".into(), false),
            ("m4".into(), false)
        ]
    );
    // Every key on m4, from its own data.
    let m1 = e.endpoint_of("m1");
    let want = served_by(&e, &m1);
    assert!(want.1.len() > 30);
    let deadline = Instant::now() + Duration::from_secs(30);
    while served_by(&e, &new.client_url) != want {
        assert!(Instant::now() < deadline, "m4 does not serve what m1 does");
        std::thread::sleep(Duration::from_millis(200));
    }
    // HashKV equal on all three at one revision.
    let snap = e.dir.path().join("after.db");
    hashkv_equal(&e, &m1, &snap, &e.running_endpoints().join(","), 3);
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    replace_with_tls:
    v3_5("3.5"),
    v3_6("3.6"),
);
