//! Real etcd clusters on loopback for the tests that boot what we wrote:
//! ports, `--initial-cluster`, and fixtures/boot_cluster.py (start every
//! member, wait for health, record members, leader, keys, a write, stop).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::{Value, json};

use super::root;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Members (name, peer port, client port) on 127.0.0.1 and their
/// `--initial-cluster` (http).
pub struct Layout {
    pub initial: String,
    pub members: Vec<(String, u16, u16)>,
}

pub fn layout(n: usize) -> Layout {
    layout_scheme(n, "http")
}

/// `layout` with peer URLs of `scheme` (http or https).
pub fn layout_scheme(n: usize, scheme: &str) -> Layout {
    let members: Vec<(String, u16, u16)> = (1..=n)
        .map(|i| (format!("m{i}"), free_port(), free_port()))
        .collect();
    let initial = members
        .iter()
        .map(|(name, peer, _)| format!("{name}={scheme}://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    Layout { initial, members }
}

impl Layout {
    /// `--client-urls` naming each member's client port.
    pub fn client_urls(&self, scheme: &str) -> String {
        self.members
            .iter()
            .map(|(n, _, c)| format!("{n}={scheme}://127.0.0.1:{c}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Runs fixtures/boot_cluster.py on etcd `line` with `spec` (see its doc);
/// asserts every member became healthy; returns its record.
pub fn boot_spec(line: &str, spec: &Value) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let (spec_p, out_p) = (tmp.path().join("spec.json"), tmp.path().join("out.json"));
    std::fs::write(&spec_p, spec.to_string()).unwrap();
    let st = Command::new("python3")
        .arg(root().join("fixtures/boot_cluster.py"))
        .arg(line)
        .arg(&spec_p)
        .arg(&out_p)
        .status()
        .unwrap();
    assert!(st.success(), "boot_cluster.py {line} failed");
    let out: Value = serde_json::from_slice(&std::fs::read(&out_p).unwrap()).unwrap();
    assert_eq!(
        out["healthy"], true,
        "etcd {line} members did not become healthy: {:#}",
        out["logs"]
    );
    out
}

/// Boots members from data dirs with the flags boot_cluster.py gives
/// (http on loopback), asking for the remaining TTL of `leases` (hex IDs).
pub fn boot_dirs(
    line: &str,
    members: &[(String, u16, u16)],
    dirs: &[PathBuf],
    token: &str,
    leases: &[&str],
) -> Value {
    let spec = json!({
        "token": token,
        "timetolive": leases,
        "members": members.iter().zip(dirs).map(|((name, peer, client), d)| json!({
            "name": name, "peer_port": peer, "client_port": client, "data_dir": d.to_str().unwrap(),
        })).collect::<Vec<_>>(),
    });
    boot_spec(line, &spec)
}

/// Boots each member with exactly `flags` (as a command printed them); with
/// `tls` = (CA, client cert, client key), etcdctl speaks https.
pub fn boot_flags(
    line: &str,
    members: &[(String, u16, u16)],
    flags: &[Vec<String>],
    logs: &Path,
    tls: Option<(&Path, &Path, &Path)>,
) -> Value {
    let tls = tls.map(|(ca, cert, key)| {
        json!({"cacert": ca.to_str().unwrap(), "cert": cert.to_str().unwrap(), "key": key.to_str().unwrap()})
    });
    let spec = json!({
        "token": "unused",
        "tls": tls,
        "members": members.iter().zip(flags).map(|((name, peer, client), f)| json!({
            "name": name, "peer_port": peer, "client_port": client, "flags": f,
            "log": logs.join(format!("{name}.log")).to_str().unwrap(),
        })).collect::<Vec<_>>(),
    });
    boot_spec(line, &spec)
}

/// key -> value of a boot record's keys.
pub fn served(out: &Value) -> HashMap<String, Vec<u8>> {
    out["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let v = base64::engine::general_purpose::STANDARD
                .decode(kv["value"].as_str().unwrap())
                .unwrap();
            (kv["key"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// (name, id, first peer URL) of each member, sorted: `urls` is the field
/// holding the peer URLs (`peerURLs` in a boot record, `peerUrls` in a plan).
pub fn member_triples(members: &Value, urls: &str) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |x: &Value| x.as_str().unwrap().to_string();
            (s(&m["name"]), s(&m["id"]), s(&m[urls][0]))
        })
        .collect();
    v.sort();
    v
}

/// The 3.5.1 fixture's live keys and values as real etcd serves them:
/// etcdutl 3.5.1 restores the fixture, etcd 3.5.1 boots from that, etcdctl
/// lists every key (once per test binary). The oracle of the tests that
/// boot what we restored or installed.
pub fn fixture_kvs() -> &'static HashMap<String, Vec<u8>> {
    static KVS: std::sync::OnceLock<HashMap<String, Vec<u8>>> = std::sync::OnceLock::new();
    KVS.get_or_init(|| {
        let l = layout(1);
        let dir = tempfile::tempdir().unwrap();
        let eu = dir.path().join("etcdutl.etcd");
        let (name, peer, _) = &l.members[0];
        super::etcdutl_restore(
            &super::fixture("etcd-3.5.1.db"),
            name,
            &l.initial,
            "etcdsnap-oracle",
            &format!("http://127.0.0.1:{peer}"),
            &eu,
        );
        let out = boot_dirs("3.5", &l.members, &[eu], "etcdsnap-oracle", &[]);
        served(&out)
    })
}

/// The keys a booted cluster served (without the boot check's own write)
/// are exactly `expected`, with equal values; the cluster took a write.
pub fn check_served(out: &Value, expected: &HashMap<String, Vec<u8>>) {
    let mut served = served(out);
    served.remove("/etcdsnap/after-restore");
    assert!(!expected.is_empty());
    for (k, v) in expected {
        assert_eq!(served.get(k), Some(v), "key {k} not served with its value");
    }
    assert_eq!(served.len(), expected.len(), "served keys differ in number");
    assert_eq!(out["write_ok"], true);
}
