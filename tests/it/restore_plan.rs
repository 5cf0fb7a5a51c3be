//! `restore --dry-run` writes nothing; its member and cluster IDs equal those of the data dirs the
//! real `etcdutl snapshot restore` (3.5.1) writes for the same flags, read back
//! from its `members` bucket and its WAL metadata.

use crate::common;

use common::*;
use etcdsnap::bolt::{Db, read};
use etcdsnap::protowire::{Fields, Value};
use serde_json::Value as Json;

/// (NodeID, ClusterID) from the metadata record of a WAL segment.
fn wal_metadata(wal: &[u8]) -> (u64, u64) {
    let mut pos = 0;
    while pos + 8 <= wal.len() {
        let frame = u64::from_le_bytes(wal[pos..pos + 8].try_into().unwrap());
        let len = (frame & 0x00ff_ffff_ffff_ffff) as usize;
        let pad = if frame >> 63 == 1 {
            ((frame >> 56) & 0x7) as usize
        } else {
            0
        };
        let rec = &wal[pos + 8..pos + 8 + len];
        pos += 8 + len + pad;
        let (mut ty, mut data) = (0, &[][..]);
        for f in Fields::new(rec).flatten() {
            match f {
                (1, Value::Varint(t)) => ty = t,
                (3, Value::Bytes(d)) => data = d,
                _ => {}
            }
        }
        if ty == 1 {
            let (mut node, mut cluster) = (0, 0);
            for f in Fields::new(data).flatten() {
                match f {
                    (1, Value::Varint(v)) => node = v,
                    (2, Value::Varint(v)) => cluster = v,
                    _ => {}
                }
            }
            return (node, cluster);
        }
    }
    panic!("no metadata record");
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn ids_equal_etcdutl_restore() {
    let initial = "m1=http://127.0.0.1:24800,m2=http://127.0.0.1:24801,m3=http://127.0.0.1:24802";
    let token = "etcdsnap-test-token";
    let snap = fixture("etcd-3.5.1.db");
    let o = run(&[
        "restore",
        snap.to_str().unwrap(),
        "--dry-run",
        "--initial-cluster",
        initial,
        "--initial-cluster-token",
        token,
        "-w",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: Json = serde_json::from_slice(&o.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for m in plan["members"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let data_dir = dir.path().join(format!("{name}.etcd"));
        etcdutl_restore(
            &snap,
            name,
            initial,
            token,
            m["peerUrls"][0].as_str().unwrap(),
            &data_dir,
        );
        let db_bytes = std::fs::read(data_dir.join("member/snap/db")).unwrap();
        let db = Db::open(&db_bytes).unwrap();
        let members = read::bucket(&db, b"members").unwrap().unwrap();
        let mut ids = Vec::new();
        read::for_each(&db, &members, |e| {
            ids.push(String::from_utf8_lossy(e.key).into_owned());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        let mut ours: Vec<String> = plan["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect();
        ours.sort();
        ids.sort();
        assert_eq!(ids, ours, "member IDs");
        let wal = std::fs::read(data_dir.join("member/wal/0000000000000000-0000000000000000.wal"))
            .unwrap();
        let (node, cluster) = wal_metadata(&wal);
        assert_eq!(
            format!("{node:x}"),
            m["id"].as_str().unwrap(),
            "{name}'s node ID"
        );
        assert_eq!(
            format!("{cluster:x}"),
            plan["clusterId"].as_str().unwrap(),
            "cluster ID"
        );
    }
    // The stale report sees the fixture's lease, master lease and node.
    assert_eq!(plan["stale"]["leases"][0]["attachedKeys"], 2);
    assert_eq!(plan["stale"]["nodes"][0], "node-1");
    // Nothing was written by --dry-run.
    assert!(!std::path::Path::new("m1.etcd").exists());
    // A name outside --initial-cluster is refused, as etcdutl refuses it.
    let o = run(&[
        "restore",
        snap.to_str().unwrap(),
        "--dry-run",
        "--name",
        "x",
        "--initial-cluster",
        initial,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("couldn't find local name"));
}

/// Items 6 and 24: the start flags hold every flag the boot needs. With https
/// URLs: kubeadm's TLS files (overridable with --pki-dir), client URLs as
/// kubeadm derives them (the peer host, port 2379, and loopback), listen URLs
/// on an IP (a host name is not bindable: 0.0.0.0).
#[test]
fn https_flags_name_kubeadm_tls_files() {
    let snap = fixture("etcd-3.5.1.db");
    let flags = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "restore",
            snap.to_str().unwrap(),
            "--dry-run",
            "--initial-cluster",
            "cp1=https://10.0.0.1:2380,cp2=https://cp2.example:2380",
            "-w",
            "json",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let plan: Json = serde_json::from_slice(&o.stdout).unwrap();
        plan["members"][0]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect()
    };
    let f = flags(&["--name", "cp1", "--data-dir", "/var/lib/etcd"]);
    for want in [
        "--name=cp1",
        "--data-dir=/var/lib/etcd",
        "--initial-advertise-peer-urls=https://10.0.0.1:2380",
        "--listen-peer-urls=https://10.0.0.1:2380",
        "--advertise-client-urls=https://10.0.0.1:2379",
        "--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.1:2379",
        "--initial-cluster-state=new",
        "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
        "--key-file=/etc/kubernetes/pki/etcd/server.key",
        "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
        "--client-cert-auth=true",
        "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
        "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
        "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
        "--peer-client-cert-auth=true",
    ] {
        assert!(f.iter().any(|x| x == want), "{want} missing from {f:?}");
    }
    let f = flags(&[
        "--name",
        "cp2",
        "--pki-dir",
        "/srv/pki",
        "--client-urls",
        "https://cp2.example:3379",
    ]);
    for want in [
        "--listen-peer-urls=https://0.0.0.0:2380",
        "--advertise-client-urls=https://cp2.example:3379",
        "--listen-client-urls=https://0.0.0.0:3379",
        "--cert-file=/srv/pki/server.crt",
        "--peer-trusted-ca-file=/srv/pki/ca.crt",
    ] {
        assert!(f.iter().any(|x| x == want), "{want} missing from {f:?}");
    }
    // The data dir is absolute even when typed relative.
    let d = f.iter().find(|x| x.starts_with("--data-dir=")).unwrap();
    assert!(d["--data-dir=".len()..].starts_with('/'), "{d}");
}
