//! Issue 10 end to end with TLS: a snapshot made by real etcd is bundled for
//! three members on loopback, each archive is installed into its own root,
//! and three real etcd servers (3.5.1, then 3.4.23) start from the installed
//! files only — client and peer TLS with client certificates required — with
//! one leader, every member as planned, and every key of the snapshot served
//! to etcdctl holding the installed healthcheck-client certificate. Then
//! once more after "moving" the members to new ports with certificates from
//! `pki issue`.

use crate::common;

use std::path::{Path, PathBuf};

use common::cluster::*;
use common::pki::{Algo, per_member_pki};
use common::*;
use serde_json::Value;

/// Bundles the 3.5.1 fixture for `l`'s members (https peer and client URLs)
/// with the PKI in `pki`, installs each member's archive under
/// `work/root-<name>`, boots the members on etcd `line` from the flags
/// install printed, and checks what a restored cluster must show.
fn bundle_install_boot(line: &str, l: &Layout, pki: &Path, work: &Path, token: &str) {
    let out = work.join("bundles");
    let snap = fixture("etcd-3.5.1.db");
    let clients = l.client_urls("https");
    let o = run(&[
        "bundle",
        snap.to_str().unwrap(),
        "--initial-cluster",
        &l.initial,
        "--initial-cluster-token",
        token,
        "--client-urls",
        &clients,
        "--pki",
        pki.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--target-version",
        line,
        "-w",
        "json",
    ]);
    assert!(o.status.success(), "bundle: {}", stderr(&o));
    let mut flags = Vec::new();
    let mut planned = Vec::new();
    let mut client_tls: Option<(PathBuf, PathBuf, PathBuf)> = None;
    for (name, _, _) in &l.members {
        let root = work.join(format!("root-{name}"));
        std::fs::create_dir(&root).unwrap();
        let archive = out.join(format!("{name}.tar.zst"));
        let o = run(&[
            "install",
            archive.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "-w",
            "json",
        ]);
        assert!(o.status.success(), "install {name}: {}", stderr(&o));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        let f: Vec<String> = serde_json::from_value(r["flags"].clone()).unwrap();
        // Every path a member starts from is inside its root.
        for flag in &f {
            if let Some((k, v)) = flag.split_once('=')
                && [
                    "--data-dir",
                    "--cert-file",
                    "--key-file",
                    "--trusted-ca-file",
                    "--peer-cert-file",
                    "--peer-key-file",
                    "--peer-trusted-ca-file",
                ]
                .contains(&k)
            {
                assert!(
                    Path::new(v).starts_with(&root),
                    "{name}: {flag} outside {}",
                    root.display()
                );
            }
        }
        for must in ["--client-cert-auth=true", "--peer-client-cert-auth=true"] {
            assert!(f.iter().any(|x| x == must), "{name}: no {must} in {f:?}");
        }
        flags.push(f);
        planned.push((name.clone(), r["memberId"].as_str().unwrap().to_string()));
        let etcd_pki = root.join("etc/kubernetes/pki/etcd");
        client_tls.get_or_insert((
            etcd_pki.join("ca.crt"),
            etcd_pki.join("healthcheck-client.crt"),
            etcd_pki.join("healthcheck-client.key"),
        ));
    }
    let (ca, cert, key) = client_tls.unwrap();
    let logs = work.join("logs");
    std::fs::create_dir(&logs).unwrap();
    let booted = boot_flags(line, &l.members, &flags, &logs, Some((&ca, &cert, &key)));
    assert_eq!(booted["leaders"].as_array().unwrap().len(), 1, "one leader");
    let mut got: Vec<(String, String)> = booted["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    planned.sort();
    assert_eq!(got, planned, "members and IDs as the manifests say");
    check_served(&booted, fixture_kvs());
}

fn https_layout() -> Layout {
    layout_scheme(3, "https")
}

fn per_member(dir: &Path, algo: Algo, l: &Layout) {
    let members: Vec<(&str, &str)> = l
        .members
        .iter()
        .map(|(n, _, _)| (n.as_str(), "127.0.0.1"))
        .collect();
    per_member_pki(dir, algo, &members);
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn bundle_installs_and_boots_with_tls_on_etcd_3_5() {
    let work = tempfile::tempdir().unwrap();
    let l = https_layout();
    let pki = work.path().join("pki");
    per_member(&pki, Algo::Rsa, &l);
    bundle_install_boot("3.5", &l, &pki, work.path(), "etcdsnap-e2e-35");
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn bundle_installs_and_boots_with_tls_on_etcd_3_4() {
    let work = tempfile::tempdir().unwrap();
    let l = https_layout();
    let pki = work.path().join("pki");
    per_member(&pki, Algo::Ec, &l);
    bundle_install_boot("3.4", &l, &pki, work.path(), "etcdsnap-e2e-34");
}

/// The members move to new ports (and so new peer URLs and IDs): `pki
/// issue` mints their certificates from the old PKI's CA, `pki check`
/// passes them for the new URLs, and the bundle made with them boots.
#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn members_moved_with_issued_certificates_boot() {
    let work = tempfile::tempdir().unwrap();
    let old = https_layout();
    let old_pki = work.path().join("old-pki");
    per_member(&old_pki, Algo::Rsa, &old);
    let new = https_layout();
    let new_pki = work.path().join("new-pki");
    let clients = new.client_urls("https");
    let o = run(&[
        "pki",
        "issue",
        "--ca-dir",
        old_pki.to_str().unwrap(),
        "--initial-cluster",
        &new.initial,
        "--client-urls",
        &clients,
        "--out",
        new_pki.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "pki issue: {}", stderr(&o));
    let o = run(&[
        "pki",
        "check",
        new_pki.to_str().unwrap(),
        "--initial-cluster",
        &new.initial,
        "--client-urls",
        &clients,
    ]);
    assert!(
        o.status.success(),
        "pki check of the issued PKI: {}{}",
        stdout(&o),
        stderr(&o)
    );
    bundle_install_boot("3.5", &new, &new_pki, work.path(), "etcdsnap-e2e-moved");
}

/// A PKI made for other addresses (the members' certificates cover
/// 10.0.0.5 and, as kubeadm's do, 127.0.0.1; the members move to
/// 127.0.0.2): `bundle` refuses before writing any archive, naming the
/// certificate and Go's reason.
#[test]
fn bundle_refuses_certificates_that_do_not_cover_the_members() {
    let work = tempfile::tempdir().unwrap();
    let mut l = https_layout();
    l.initial = l.initial.replace("127.0.0.1", "127.0.0.2");
    let pki = work.path().join("pki");
    let members: Vec<(&str, &str)> = l
        .members
        .iter()
        .map(|(n, _, _)| (n.as_str(), "10.0.0.5"))
        .collect();
    per_member_pki(&pki, Algo::Ec, &members);
    let out = work.path().join("bundles");
    let o = run(&[
        "bundle",
        fixture("etcd-3.5.1.db").to_str().unwrap(),
        "--initial-cluster",
        &l.initial,
        "--initial-cluster-token",
        "t",
        "--pki",
        pki.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("m1/etcd/peer.crt"), "{all}");
    assert!(
        all.contains("x509: certificate is valid for 10.0.0.5"),
        "{all}"
    );
    assert!(!out.join("m1.tar.zst").exists(), "an archive was written");
}

/// `install` prints the flags `bundle` recorded, with only the data dir and
/// the PKI files moved under the root: with kubeadm's default client URLs
/// (no --client-urls) the member still listens on loopback, where kubeadm's
/// apiserver dials it (https://127.0.0.1:2379).
#[test]
fn install_prints_the_bundled_flags_with_paths_under_the_root() {
    let work = tempfile::tempdir().unwrap();
    let mut l = https_layout();
    l.initial = l.initial.replace("127.0.0.1", "127.0.0.2");
    let pki = work.path().join("pki");
    let members: Vec<(&str, &str)> = l
        .members
        .iter()
        .map(|(n, _, _)| (n.as_str(), "127.0.0.2"))
        .collect();
    per_member_pki(&pki, Algo::Ec, &members);
    let out = work.path().join("bundles");
    let o = run(&[
        "bundle",
        fixture("etcd-3.5.1.db").to_str().unwrap(),
        "--initial-cluster",
        &l.initial,
        "--initial-cluster-token",
        "t",
        "--pki",
        pki.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-w",
        "json",
    ]);
    assert!(o.status.success(), "bundle: {}", stderr(&o));
    let made: Value = serde_json::from_slice(&o.stdout).unwrap();
    let bundled: Vec<String> = made["archives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["member"] == "m1")
        .map(|a| serde_json::from_value(a["flags"].clone()).unwrap())
        .unwrap();
    assert!(
        bundled
            .iter()
            .any(|f| f == "--listen-client-urls=https://127.0.0.1:2379,https://127.0.0.2:2379"),
        "{bundled:?}"
    );
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let o = run(&[
        "install",
        out.join("m1.tar.zst").to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "-w",
        "json",
    ]);
    assert!(o.status.success(), "install: {}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let installed: Vec<String> = serde_json::from_value(r["flags"].clone()).unwrap();
    let root_s = root.to_str().unwrap();
    let moved: Vec<String> = bundled
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v))
                if v.starts_with("/var/lib/etcd") || v.starts_with("/etc/kubernetes/pki") =>
            {
                format!("{k}={root_s}{v}")
            }
            _ => f.clone(),
        })
        .collect();
    assert_eq!(installed, moved);
}
