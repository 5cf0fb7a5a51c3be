//! Compiles the Kubernetes .proto files shipped in the k8s-rs-pb package into
//! one descriptor set, the union of Kubernetes 1.30–1.35 (for each file, the
//! newest version that has it; messages that newer versions dropped are kept
//! from the newest version that still had them, and so are the fields a newer
//! version dropped from a message it kept), and writes it zstd-compressed
//! to src/kube/k8s-descriptors.bin.zst with a provenance note beside it
//! (src/kube/k8s-descriptors.txt).
//!
//! Optionally a newer layer on top, read from git directories of the public
//! repositories kubernetes/api and kubernetes/apimachinery (bare clones do):
//!
//!   cargo run --release --manifest-path tools/k8s-descriptors/Cargo.toml -- \
//!       --kubernetes-api PATH/api.git --apimachinery PATH/apimachinery.git \
//!       --upstream-revs v0.36.0,HEAD
//!
//! Their generated.proto files are read with `git show` at each of the
//! revisions (oldest first; default HEAD), given the same
//! package names k8s-rs-pb uses (without the `k8s.io.` prefix) in memory, and
//! compiled as the newest version; nothing from them is written except the
//! descriptor set and the commits in the provenance note.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

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

fn git(git_dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        git_dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One repository of the newer layer: its git dir, the folder its files take
/// in k8s-rs-pb's layout, and which of its generated.proto files to take.
struct Upstream {
    git_dir: PathBuf,
    folder: &'static str,
    take: fn(&str) -> bool,
}

/// Writes the upstream files, renamed as k8s-rs-pb names them, into `out`;
/// returns their names and "repo@commit" for the provenance note.
fn stage_upstream(u: &Upstream, out: &Path, rev: &str) -> (Vec<String>, String) {
    let commit = String::from_utf8(git(&u.git_dir, &["rev-parse", &format!("{rev}^{{commit}}")]))
        .unwrap()
        .trim()
        .to_string();
    let list = String::from_utf8(git(&u.git_dir, &["ls-tree", "-r", "--name-only", &commit])).unwrap();
    let mut names = Vec::new();
    for path in list.lines().filter(|p| p.ends_with("/generated.proto") && (u.take)(p)) {
        let text = String::from_utf8(git(&u.git_dir, &["show", &format!("{commit}:{path}")])).unwrap();
        // k8s-rs-pb's layout: packages and imports without the `k8s.io.` prefix.
        let text = text
            .replace("package k8s.io.", "package ")
            .replace("import \"k8s.io/", "import \"")
            .replace("k8s.io.api.", "api.")
            .replace("k8s.io.apimachinery.", "apimachinery.");
        let name = format!("{}/{path}", u.folder);
        let dest = out.join(&name);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, text).unwrap();
        names.push(name);
    }
    names.sort();
    let repo = u.folder;
    (names, format!("kubernetes/{repo} {rev} at {commit}"))
}

/// Adds to `newer` every field of `older` (the same message in an older
/// release) that `newer` lacks — by number, and only when neither its name
/// nor its JSON name is taken — and, recursively, its nested types: the
/// message then reads what any release wrote. Returns the fields added.
fn union_fields(newer: &mut DescriptorProto, older: &DescriptorProto) -> usize {
    let mut added = 0;
    for f in &older.field {
        let taken = newer.field.iter().any(|g| {
            g.number() == f.number() || g.name() == f.name() || g.json_name() == f.json_name()
        });
        if !taken && f.oneof_index.is_none() {
            newer.field.push(f.clone());
            added += 1;
        }
    }
    for n in &older.nested_type {
        match newer.nested_type.iter_mut().find(|m| m.name() == n.name()) {
            Some(m) => added += union_fields(m, n),
            None => newer.nested_type.push(n.clone()),
        }
    }
    added
}

fn main() {
    let pkg = package_dir();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
    };
    let upstream = match (arg("--kubernetes-api"), arg("--apimachinery")) {
        (Some(api), Some(machinery)) => Some([
            Upstream {
                git_dir: api,
                folder: "api",
                take: |_| true,
            },
            Upstream {
                git_dir: machinery,
                folder: "apimachinery",
                // The files k8s-rs-pb ships (not test types).
                take: |p| !p.contains("testapigroup"),
            },
        ]),
        (None, None) => None,
        _ => panic!("--kubernetes-api and --apimachinery go together"),
    };
    let mut provenance = vec![format!(
        "crates.io package {CRATE} {CRATE_VERSION}: Kubernetes {}",
        VERSIONS.join(", ")
    )];
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
    // Layers of the upstream repositories, oldest first: released tags
    // (a release's fields that the newest dropped), then HEAD.
    let revs: Vec<String> = arg("--upstream-revs")
        .map(|r| r.to_string_lossy().split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["HEAD".to_string()]);
    if let Some(upstream) = upstream {
        for rev in &revs {
            // Staged beside the newest k8s-rs-pb version, whose other files
            // (apiextensions, kube-aggregator, metrics) the upstream ones may import.
            let stage = std::env::temp_dir().join(format!(
                "k8s-descriptors-{}-{}",
                std::process::id(),
                rev.replace('/', "_")
            ));
            let _ = std::fs::remove_dir_all(&stage);
            let mut names = Vec::new();
            for u in &upstream {
                let (n, from) = stage_upstream(u, &stage, rev);
                eprintln!("{from}: {} files", n.len());
                provenance.push(format!("{from}: {} generated.proto files", n.len()));
                names.extend(n);
            }
            let newest = pkg.join("src").join(VERSIONS[VERSIONS.len() - 1]);
            let set =
                protox::compile(&names, [&stage, &newest]).expect("protox compile (upstream)");
            let _ = std::fs::remove_dir_all(&stage);
            for f in set.file {
                if names.iter().any(|n| n == f.name()) {
                    files
                        .entry(f.name().to_string())
                        .or_default()
                        .push((format!("upstream {rev}"), f));
                }
            }
        }
    }
    let mut merged = Vec::new();
    let mut added = 0;
    let mut fields_added = 0;
    for (_, versions) in files {
        let (_, mut newest) = versions.last().cloned().unwrap();
        let mut have: HashSet<String> = newest
            .message_type
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        for (_, older) in versions.iter().rev().skip(1) {
            let mut took = false;
            for m in &older.message_type {
                if have.insert(m.name().to_string()) {
                    newest.message_type.push(m.clone());
                    added += 1;
                    took = true;
                } else if let Some(n) = newest
                    .message_type
                    .iter_mut()
                    .find(|n| n.name() == m.name())
                {
                    let k = union_fields(n, m);
                    fields_added += k;
                    took |= k > 0;
                }
            }
            // What was kept may need imports the newer file dropped.
            if took {
                for d in &older.dependency {
                    if !newest.dependency.contains(d) {
                        newest.dependency.push(d.clone());
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
    let mut note = String::from(
        "Provenance of k8s-descriptors.bin.zst (written by tools/k8s-descriptors; do not edit).\n\
         A protobuf descriptor set compiled with protox from, oldest first (for each file the\n\
         newest source wins; messages and fields a newer source dropped are kept from an older one):\n",
    );
    for p in &provenance {
        note.push_str(&format!("- {p}\n"));
    }
    note.push_str(&format!(
        "Command: cargo run --release --manifest-path tools/k8s-descriptors/Cargo.toml --{}\n",
        if provenance.len() > 1 {
            format!(
                " --kubernetes-api GIT_DIR --apimachinery GIT_DIR --upstream-revs {}",
                revs.join(",")
            )
        } else {
            String::new()
        }
    ));
    std::fs::write(out_dir.join("k8s-descriptors.txt"), note).unwrap();
    eprintln!(
        "{} files, {messages} messages ({added} kept from older versions, {fields_added} fields added from older versions), {} bytes, {} compressed",
        set.file.len(),
        bytes.len(),
        compressed.len()
    );
}
