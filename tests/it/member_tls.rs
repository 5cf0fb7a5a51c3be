//! A real three-member etcd cluster with client and peer TLS and client
//! certificates required on both, laid out as kubeadm's control-plane nodes
//! (`Etcd::start_tls_cluster`), and a lost member's replacement done by hand
//! with etcdctl: `member remove` of the lost one, certificates from
//! `etcdsnap pki issue` signed by the cluster's CA, `member add --learner`,
//! a new node started with `--initial-cluster-state existing`, `member
//! promote`. etcdctl of the same release is the oracle for the member list
//! and what each member serves.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::cluster::free_port;
use crate::common::live::Etcd;
use crate::common::{etcdsnap, stderr, stdout};

/// etcdctl's member list from `endpoint`: (name, peer URLs, is learner), by name.
fn ctl_members(e: &Etcd, endpoint: &str) -> Vec<(String, Vec<String>, bool)> {
    let o = e
        .ctl_at(endpoint)
        .args(["member", "list", "-w", "json"])
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

/// The value of `key` as the member at `endpoint` serves it from its own
/// data (a serializable read), if it has the key.
fn local_get(e: &Etcd, endpoint: &str, key: &str) -> Option<String> {
    let o = e
        .ctl_at(endpoint)
        .args(["get", key, "--consistency", "s", "--print-value-only"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "etcdctl get at {endpoint}: {}",
        stderr(&o)
    );
    let s = stdout(&o);
    (!s.is_empty()).then(|| s.trim_end_matches('\n').to_string())
}

/// Waits (30 s at most) until the member at `endpoint` serves `value` for `key`.
fn wait_local(e: &Etcd, endpoint: &str, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = local_get(e, endpoint, key);
        if got.as_deref() == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint} serves {key} = {got:?}, not {value:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `etcdsnap member list -w json` at `endpoint` with the cluster's TLS files.
fn snap_list(e: &Etcd, endpoint: &str) -> (Output, Value) {
    let o = etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .args(["member", "list", "-w", "json", "--endpoints", endpoint])
        .args(e.tls_args())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "etcdsnap member list: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    (o, v)
}

/// `ETCD_INITIAL_CLUSTER` from etcdctl member add's output
/// (`ETCD_INITIAL_CLUSTER="a=https://…,b=https://…"`).
fn initial_cluster_of(add_output: &str) -> String {
    add_output
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in: {add_output}"))
        .trim_matches('"')
        .to_string()
}

/// The hex ID of the member whose first peer URL is `peer_url`.
pub(crate) fn member_id(e: &Etcd, peer_url: &str) -> String {
    let o = e.ctl(&["member", "list", "-w", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["peerURLs"][0] == peer_url)
        .map(|m| format!("{:x}", m["ID"].as_u64().unwrap()))
        .unwrap_or_else(|| panic!("no member at {peer_url}: {v}"))
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn tls_cluster_replace_by_hand(line: &str) {
    let mut e = Etcd::start_tls_cluster(line, 3);

    // kubeadm's files on every node; the CA apart, as pki issue reads it.
    for m in &e.members {
        assert_eq!(
            files(&m.pki),
            [
                "ca.crt",
                "ca.key",
                "healthcheck-client.crt",
                "healthcheck-client.key",
                "peer.crt",
                "peer.key",
                "server.crt",
                "server.key"
            ],
            "{}",
            m.pki.display()
        );
        assert!(
            m.data_dir.join("member").is_dir(),
            "{}",
            m.data_dir.display()
        );
        assert!(m.peer_url.starts_with("https://127.0.0.1:"));
        assert_eq!(e.endpoint_of(&m.name), m.client_url);
    }
    let ca_dir = e.ca_dir.clone().unwrap();

    // Three voting members, as each one has it.
    for ep in e.endpoints.clone() {
        let m = ctl_members(&e, &ep);
        let names: Vec<&str> = m.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["m1", "m2", "m3"], "at {ep}");
        assert!(m.iter().all(|x| !x.2), "a learner at {ep}: {m:?}");
        assert!(
            m.iter()
                .all(|x| x.1.iter().all(|u| u.starts_with("https://"))),
            "{m:?}"
        );
    }
    // Writes through the cluster, read back from each member's own data.
    for i in 0..10 {
        e.put(&format!("/tls/key-{i}"), format!("value {i}").as_bytes());
    }
    for ep in &e.endpoints {
        for i in 0..10 {
            wait_local(&e, ep, &format!("/tls/key-{i}"), &format!("value {i}"));
        }
    }

    // Client-certificate auth is on: the CA alone (no client certificate)
    // is refused; the same call with one answers.
    let t = e.tls.clone().unwrap();
    let o = std::process::Command::new(&e.ctl_bin)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &e.endpoints[0], "--cacert"])
        .arg(&t.ca)
        .args(["--dial-timeout", "2s", "--command-timeout", "4s"])
        .args(["get", "/tls/key-0"])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a client without a certificate was served: {}",
        stdout(&o)
    );
    println!("without a client certificate: {}", stderr(&o).trim());
    assert_eq!(
        local_get(&e, &e.endpoints[0], "/tls/key-0").as_deref(),
        Some("value 0")
    );

    // Peers too: m1's peer port answers /members to a peer certificate of
    // the CA, not to a client without one (openssl s_client as the client).
    let peer = |cert: Option<&Path>| -> String {
        use std::io::Write;
        let mut c = std::process::Command::new("timeout");
        c.args(["5", "openssl", "s_client", "-quiet", "-verify_return_error"])
            .args([
                "-connect",
                e.members[0].peer_url.trim_start_matches("https://"),
            ])
            .arg("-CAfile")
            .arg(&t.ca);
        if let Some(dir) = cert {
            c.arg("-cert")
                .arg(dir.join("peer.crt"))
                .arg("-key")
                .arg(dir.join("peer.key"));
        }
        let mut p = c
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("openssl is required (apt-get install openssl)");
        p.stdin
            .take()
            .unwrap()
            .write_all(b"GET /members HTTP/1.0\r\n\r\n")
            .unwrap();
        let o = p.wait_with_output().unwrap();
        format!("{}{}", stdout(&o), stderr(&o))
    };
    let refused = peer(None);
    assert!(!refused.contains("peerURLs"), "{refused}");
    let served = peer(Some(&e.members[1].pki));
    assert!(served.contains(&e.members[0].peer_url), "{served}");

    // etcdsnap's member list over TLS: three started members.
    let (_, v) = snap_list(&e, &e.endpoints[0]);
    let listed = v["members"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{v}");
    for m in listed {
        assert_eq!(m["isLearner"], false, "{m}");
        assert!(m["status"].is_object(), "{m}");
        assert!(
            m["status"]["version"].as_str().unwrap().starts_with(line),
            "{m}"
        );
    }

    // m3's node is lost: the list still answers (exit 0), m3 unreachable.
    e.wipe(2);
    assert!(!e.members[2].data_dir.exists() && !e.members[2].pki.exists());
    let (o, v) = snap_list(&e, &e.endpoints[0]);
    println!("{}", stdout(&o));
    let listed = v["members"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{v}");
    for m in listed {
        let down = m["name"] == "m3";
        assert_eq!(m["status"].is_null(), down, "{m}");
        assert_eq!(m["error"].is_string(), down, "{m}");
    }
    // (When m3 led, a write in the next seconds may time out: wait for the
    // survivors to agree on a new leader first.)
    e.wait_leader();
    e.put("/tls/after-loss", b"two of three");

    // etcd refuses to add even a learner while a voting member is down
    // (--strict-reconfig-check: the member asked must have been connected to
    // every voting member for 5 s): the lost one is removed first.
    e.wait_reconfig_ready();
    let o = e
        .ctl_cmd()
        .args(["member", "add", "m4", "--learner"])
        .arg(format!("--peer-urls=https://127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("unhealthy cluster"), "{}", stderr(&o));
    let m3 = member_id(&e, &e.members[2].peer_url);
    e.ctl(&["member", "remove", &m3]);

    // The replacement, by hand: certificates signed by the cluster's CA…
    let new = e.new_node("m4");
    let issued = e.dir.path().join("issued");
    let o = etcdsnap()
        .args(["pki", "issue", "--ca-dir"])
        .arg(&ca_dir)
        .args(["--initial-cluster", &new.initial()])
        .args(["--client-urls", &format!("m4={}", new.client_url)])
        .arg("--out")
        .arg(&issued)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pki issue: {}{}",
        stdout(&o),
        stderr(&o)
    );
    println!("{}", stdout(&o));
    Etcd::install_issued(&issued, &new);
    assert_eq!(
        files(&new.pki),
        [
            "ca.crt",
            "healthcheck-client.crt",
            "healthcheck-client.key",
            "peer.crt",
            "peer.key",
            "server.crt",
            "server.key"
        ]
    );
    // …added as a learner, started with the cluster etcdctl printed…
    let o = e.ctl(&[
        "member",
        "add",
        "m4",
        "--learner",
        &format!("--peer-urls={}", new.peer_url),
    ]);
    let added = stdout(&o);
    println!("{added}");
    let initial = initial_cluster_of(&added);
    assert!(initial.contains(&new.initial()), "{initial}");
    let i = e.start_member(new.clone(), &initial, "existing");
    let learner = ctl_members(&e, &e.endpoints[0]);
    assert!(
        learner.iter().any(|m| m.1 == [new.peer_url.clone()] && m.2),
        "{learner:?}"
    );
    // …promoted once it has caught up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = member_id(&e, &new.peer_url);
    let mut tries = 0;
    loop {
        tries += 1;
        let o = e
            .ctl_cmd()
            .args(["member", "promote", &id])
            .output()
            .unwrap();
        if o.status.success() {
            println!("promoted after {tries} tries: {}", stdout(&o).trim());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "promote m4: {}\nlog: {}",
            stderr(&o),
            e.log_tail("m4")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ep4 = e.endpoint_of("m4");
    assert_eq!(ep4, e.endpoints[i]);
    for ep in e.running_endpoints() {
        let m = ctl_members(&e, &ep);
        let names: Vec<&str> = m.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["m1", "m2", "m4"], "at {ep}");
        assert!(m.iter().all(|x| !x.2), "a learner at {ep}: {m:?}");
    }
    // The new member serves every key from its own data, and takes writes.
    for k in 0..10 {
        wait_local(&e, &ep4, &format!("/tls/key-{k}"), &format!("value {k}"));
    }
    wait_local(&e, &ep4, "/tls/after-loss", "two of three");
    e.put("/tls/after-promote", b"m3 replaced");
    for ep in e.running_endpoints() {
        wait_local(&e, &ep, "/tls/after-promote", "m3 replaced");
    }
    let (_, v) = snap_list(&e, &ep4);
    let listed = v["members"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{v}");
    assert!(listed.iter().all(|m| m["status"].is_object()), "{v}");
    assert!(
        listed
            .iter()
            .any(|m| m["name"] == "m4" && m["isLearner"] == false && m["status"].is_object()),
        "{v}"
    );
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    tls_cluster_replace_by_hand:
    v3_5("3.5"),
    v3_6("3.6"),
);

/// A lost member replaced under its own name on its own (wiped) node, the
/// way `member replace` will do it: removed with etcdctl, certificates from
/// `pki issue`, `etcdsnap member add-learner` (its env file names the node's
/// PKI and data dir), started from that file alone, `etcdsnap member
/// promote`; then `etcdsnap compare` finds every member's HashKV equal to a
/// snapshot's, over TLS.
fn tls_replace_same_name_from_env_file(line: &str) {
    let mut e = Etcd::start_tls_cluster(line, 3);
    for i in 0..20 {
        e.put(&format!("/env/key-{i:02}"), format!("value {i}").as_bytes());
    }
    let old = e.members[2].clone();
    e.wipe(2);
    e.wait_leader();
    let id = member_id(&e, &old.peer_url);
    e.ctl(&["member", "remove", &id]);

    let new = e.new_node("m3");
    assert_eq!(new.node, old.node, "the same node root");
    assert_ne!(new.peer_url, old.peer_url);
    let issued = e.dir.path().join("issued");
    let o = etcdsnap()
        .args(["pki", "issue", "--ca-dir"])
        .arg(e.ca_dir.as_ref().unwrap())
        .args(["--initial-cluster", &new.initial()])
        .args(["--client-urls", &format!("m3={}", new.client_url)])
        .arg("--out")
        .arg(&issued)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pki issue: {}{}",
        stdout(&o),
        stderr(&o)
    );
    Etcd::install_issued(&issued, &new);

    e.wait_reconfig_ready();
    let out = e.dir.path().join("env");
    std::fs::create_dir(&out).unwrap();
    let running = e.running_endpoints().join(",");
    let o = etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .args(["member", "add-learner", &new.initial()])
        .args(["--client-url", &new.client_url, "--data-dir"])
        .arg(&new.data_dir)
        .arg("--pki-dir")
        .arg(&new.pki)
        .arg("--out")
        .arg(&out)
        .args(["--endpoints", &running])
        .args(e.tls_args())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "add-learner: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let env_file = out.join("m3.env");
    let env = std::fs::read_to_string(&env_file).unwrap();
    println!("{env}");
    assert!(env.contains("ETCD_PEER_CLIENT_CERT_AUTH=true"), "{env}");
    let i = e.start_env(&env_file, &new.client_url);
    let m = &e.members[i];
    assert_eq!(
        (&m.name, &m.peer_url, &m.client_url),
        (&new.name, &new.peer_url, &new.client_url)
    );
    assert_eq!(
        (&m.node, &m.pki, &m.data_dir),
        (&new.node, &new.pki, &new.data_dir)
    );
    let o = etcdsnap()
        .env_remove("ETCDCTL_ENDPOINTS")
        .args(["member", "promote", "m3", "--wait", "60s"])
        .args(["--endpoints", &running])
        .args(e.tls_args())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promote: {}{}\nlog: {}",
        stdout(&o),
        stderr(&o),
        e.log_tail("m3")
    );
    println!("{}", stdout(&o));

    let ep3 = e.endpoint_of("m3");
    assert_eq!(ep3, new.client_url);
    for ep in e.running_endpoints() {
        let m = ctl_members(&e, &ep);
        let names: Vec<&str> = m.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["m1", "m2", "m3"], "at {ep}");
        assert!(m.iter().all(|x| !x.2), "a learner at {ep}: {m:?}");
        assert!(m.iter().any(|x| x.1 == [new.peer_url.clone()]), "{m:?}");
    }
    for k in 0..20 {
        wait_local(&e, &ep3, &format!("/env/key-{k:02}"), &format!("value {k}"));
    }
    // A snapshot of m1 (etcdctl) against every member's HashKV.
    let snap = e.dir.path().join("after.db");
    crate::member::hashkv_equal(
        &e,
        &e.endpoints[0],
        &snap,
        &e.running_endpoints().join(","),
        3,
    );
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    tls_replace_same_name_from_env_file:
    v3_5("3.5"),
    v3_6("3.6"),
);
