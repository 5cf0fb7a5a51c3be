//! Every built-in type of the official Kubernetes serialization fixtures
//! (`../shared/k8s-api-testdata/HEAD`): decoding the `.pb` (the bytes the API
//! server stores) must give the same JSON value as the `.json`, through the
//! library and through `etcdsnap decode`, as JSON and as YAML.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

fn testdata() -> PathBuf {
    let d = root().join("../shared/k8s-api-testdata/HEAD");
    assert!(
        d.is_dir(),
        "{} is missing: CI has ../shared beside the project",
        d.display()
    );
    d
}

/// Kinds the schema may lack. The schema's newest layer is kubernetes/api at
/// the commit whose testdata/HEAD these fixtures are (src/kube/k8s-descriptors.txt),
/// so today none is missing; a newer ../shared may bring kinds to list here
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
