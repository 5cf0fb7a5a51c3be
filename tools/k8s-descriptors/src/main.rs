//! Compiles the Kubernetes .proto files shipped in the k8s-rs-pb package into
//! one descriptor set, the union of Kubernetes 1.30–1.35 (for each file, the
//! newest version that has it; messages that newer versions dropped are kept
//! from the newest version that still had them), and writes it zstd-compressed
//! to src/kube/k8s-descriptors.bin.zst with a provenance note beside it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

const VERSIONS: &[&str] = &["v1_30", "v1_31", "v1_32", "v1_33", "v1_34", "v1_35"];
const CRATE: &str = "k8s-rs-pb";
const CRATE_VERSION: &str = "0.5.0";

fn package_dir() -> PathBuf {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let pkg = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == CRATE && p["version"] == CRATE_VERSION)
        .expect("k8s-rs-pb in the dependency graph");
    Path::new(pkg["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_path_buf()
}

fn protos(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "proto") {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn main() {
    let pkg = package_dir();
    // file name -> (version, descriptor), newest last
    let mut files: BTreeMap<String, Vec<(String, FileDescriptorProto)>> = BTreeMap::new();
    for v in VERSIONS {
        let root = pkg.join("src").join(v);
        let names = protos(&root);
        let set = protox::compile(&names, [&root]).expect("protox compile");
        eprintln!("{v}: {} files", set.file.len());
        for f in set.file {
            files
                .entry(f.name().to_string())
                .or_default()
                .push((v.to_string(), f));
        }
    }
    let mut merged = Vec::new();
    let mut added = 0;
    for (_, versions) in files {
        let (_, mut newest) = versions.last().cloned().unwrap();
        let mut have: HashSet<String> = newest
            .message_type
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        for (_, older) in versions.iter().rev().skip(1) {
            for m in &older.message_type {
                if have.insert(m.name().to_string()) {
                    newest.message_type.push(m.clone());
                    added += 1;
                    // The kept message may need imports the newer file dropped.
                    for d in &older.dependency {
                        if !newest.dependency.contains(d) {
                            newest.dependency.push(d.clone());
                        }
                    }
                }
            }
        }
        // Comments are not needed at run time; keep the set small.
        newest.source_code_info = None;
        merged.push(newest);
    }
    // Dependencies before dependents, as descriptor pools require.
    let mut ordered: Vec<FileDescriptorProto> = Vec::new();
    let mut placed: HashSet<String> = HashSet::new();
    while !merged.is_empty() {
        let before = merged.len();
        let mut rest = Vec::new();
        for f in merged {
            if f.dependency.iter().all(|d| placed.contains(d)) {
                placed.insert(f.name().to_string());
                ordered.push(f);
            } else {
                rest.push(f);
            }
        }
        assert!(rest.len() < before, "dependency cycle among the .proto files");
        merged = rest;
    }
    let set = FileDescriptorSet { file: ordered };
    let bytes = set.encode_to_vec();
    // The set must load the way etcdsnap loads it.
    if let Err(e) = prost_reflect::DescriptorPool::decode(&bytes[..]) {
        for f in &set.file {
            eprintln!("{} deps {:?}", f.name(), f.dependency);
        }
        panic!("the merged descriptor set does not load: {e}");
    }
    let messages: usize = set.file.iter().map(|f| f.message_type.len()).sum();
    let compressed = zstd::encode_all(&bytes[..], 19).unwrap();
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../src/kube");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("k8s-descriptors.bin.zst"), &compressed).unwrap();
    eprintln!(
        "{} files, {messages} messages ({added} kept from older versions), {} bytes, {} compressed",
        set.file.len(),
        bytes.len(),
        compressed.len()
    );
}
