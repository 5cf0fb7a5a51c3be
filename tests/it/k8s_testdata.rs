//! Every built-in type of the official Kubernetes serialization fixtures
//! (`fixtures/k8s-api-testdata/HEAD`): decoding the `.pb` (the bytes the API
//! server stores) must give the same JSON value as the `.json`, through the
//! library and through `etcdsnap decode`, as JSON and as YAML.

use crate::common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

fn testdata() -> PathBuf {
    let d = root().join("fixtures/k8s-api-testdata/HEAD");
    assert!(d.is_dir(), "{} is missing", d.display());
    d
}

/// Kinds the schema may lack. The schema's newest layer is kubernetes/api at
/// the commit whose testdata/HEAD these fixtures are (src/kube/k8s-descriptors.txt),
/// so today none is missing; newer fixtures may bring kinds to list here
/// until the descriptor set is regenerated.
const NEWER_THAN_SCHEMA_KINDS: &[&str] = &[];

/// Every place where two JSON values differ, as paths. A field missing from our
/// output counts as newer than the schema (into `newer`) only where the decoder
/// reported fields it does not know in that very object (`unknown_at`).
fn differences(
    path: &str,
    a: &Value,
    b: &Value,
    unknown_at: &[String],
    out: &mut Vec<String>,
    newer: &mut Vec<String>,
) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    None => out.push(format!("{path}.{k}: only in ours ({v})")),
                    Some(w) => differences(&format!("{path}.{k}"), v, w, unknown_at, out, newer),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                if unknown_at.iter().any(|u| u == path) {
                    newer.push(format!("{path}.{k}"));
                } else {
                    out.push(format!("{path}.{k}: missing in ours ({})", y[k]));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), v, w, unknown_at, out, newer);
            }
        }
        _ => {
            if a != b {
                out.push(format!("{path}: ours {a} vs {b}"));
            }
        }
    }
}

fn pb_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pb"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_type_decodes_to_its_json() {
    let files = pb_files();
    let mut failures = Vec::new();
    let (mut exact, mut newer_fields, mut newer_kinds) = (0, 0, 0);
    for pb in &files {
        let bytes = std::fs::read(pb).unwrap();
        let want: Value =
            serde_json::from_slice(&std::fs::read(pb.with_extension("json")).unwrap()).unwrap();
        let name = pb.file_stem().unwrap().to_string_lossy().into_owned();
        match etcdsnap::kube::value::decode_checked(&bytes) {
            Ok(decoded) => {
                let got = decoded.object;
                let (mut diffs, mut newer) = (Vec::new(), Vec::new());
                differences(
                    "",
                    &got,
                    &want,
                    &decoded.unknown_fields_at,
                    &mut diffs,
                    &mut newer,
                );
                if !diffs.is_empty() {
                    failures.push(format!("{name}: {}", diffs.join("; ")));
                } else if newer.is_empty() {
                    exact += 1;
                } else {
                    eprintln!(
                        "fields newer than the schema in {name}: {}",
                        newer.join(", ")
                    );
                    newer_fields += 1;
                }
                // YAML renders the same value.
                let yaml = etcdsnap::report::to_yaml(&got).unwrap();
                let back: Value = serde_yaml_ng::from_str(&yaml).unwrap();
                assert_eq!(back, got, "{name}: YAML does not round-trip");
            }
            Err(e) if NEWER_THAN_SCHEMA_KINDS.contains(&name.as_str()) => {
                let _ = e;
                newer_kinds += 1;
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    eprintln!(
        "k8s testdata: {} types; {exact} decode exactly to their JSON; {newer_fields} exactly but for fields newer than the schema; {newer_kinds} kinds newer than the schema",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} types differ:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert_eq!(
        exact,
        files.len(),
        "every type decodes exactly to its JSON (regenerate the schema for newer fixtures)"
    );
}

/// The `.pb`/`.json` pairs of one release's frozen testdata
/// (`fixtures/k8s-api-testdata/<release>.tar.zst`, made by `make.sh` there
/// from kubernetes/api), by type name.
fn release_pairs(release: &str) -> Vec<(String, Vec<u8>, Value)> {
    let path = root().join(format!("fixtures/k8s-api-testdata/{release}.tar.zst"));
    let tar_bytes = zstd::decode_all(&std::fs::read(&path).unwrap()[..]).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for e in tar::Archive::new(&tar_bytes[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut v).unwrap();
        files.insert(name, v);
    }
    files
        .iter()
        .filter_map(|(name, pb)| {
            let stem = name.strip_suffix(".pb")?;
            let json = files.get(&format!("{stem}.json"))?;
            Some((
                stem.to_string(),
                pb.clone(),
                serde_json::from_slice(json).unwrap(),
            ))
        })
        .collect()
}

/// Where a release's JSON and ours differ only in how an empty field is
/// rendered, because the field's Go JSON tag gained or lost `omitempty`
/// between that release and the newest (whose rendering we follow: a stored
/// object does not say which release wrote it). Absent and `null` are the
/// same value to the API. (release, type, difference as `differences` words it)
const OMITEMPTY_CHANGED: &[(&str, &str, &str)] = &[
    // `adminAccess` was `json:"adminAccess"` when this after-roundtrip JSON
    // was written; the newest has `omitempty`.
    (
        "v1.31.0",
        "resource.k8s.io.v1alpha3.ResourceClaim.after_roundtrip",
        ".status.allocation.devices.results[0].adminAccess: missing in ours (null)",
    ),
    // `stubPKCS10Request` had `omitempty` in 1.35; the newest renders it.
    (
        "v1.35.0",
        "certificates.k8s.io.v1beta1.PodCertificateRequest",
        ".spec.stubPKCS10Request: only in ours (null)",
    ),
];

/// An object stored by any release from 1.30 on decodes to
/// that release's JSON, fields a later release removed included (the schema
/// is the union of every release's fields), and nothing is called newer than
/// the schema.
#[test]
fn every_release_from_1_30_decodes_to_its_json() {
    let mut failures = Vec::new();
    let (mut total, mut seen_known) = (0, 0);
    for release in [
        "v1.30.0", "v1.31.0", "v1.32.0", "v1.33.0", "v1.34.0", "v1.35.0", "v1.36.0",
    ] {
        let pairs = release_pairs(release);
        assert!(pairs.len() > 150, "{release}: {} pairs", pairs.len());
        for (name, bytes, want) in pairs {
            total += 1;
            match etcdsnap::kube::value::decode_checked(&bytes) {
                Ok(decoded) => {
                    let (mut diffs, mut newer) = (Vec::new(), Vec::new());
                    differences("", &decoded.object, &want, &[], &mut diffs, &mut newer);
                    if !decoded.unknown_fields_at.is_empty() {
                        diffs.push(format!(
                            "fields unknown to the schema at {:?}",
                            decoded.unknown_fields_at
                        ));
                    }
                    diffs.retain(|d| {
                        let known = OMITEMPTY_CHANGED
                            .iter()
                            .any(|(r, n, k)| *r == release && *n == name && k == d);
                        if known {
                            seen_known += 1;
                        }
                        !known
                    });
                    if !diffs.is_empty() {
                        failures.push(format!("{release} {name}: {}", diffs.join("; ")));
                    }
                }
                Err(e) => failures.push(format!("{release} {name}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} objects differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        seen_known,
        OMITEMPTY_CHANGED.len(),
        "every listed omitempty change is still seen (remove the ones that are not)"
    );
}
