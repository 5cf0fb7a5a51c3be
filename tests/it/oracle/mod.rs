//! The Go oracle (tools/k8s-oracle, built by `.ci/k8s-oracle` from the Go
//! module proxy): the Kubernetes libraries' own decoding, JSON encoding and
//! YAML reading, independent of etcdsnap's code. Missing Go fails the test.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::Engine;
use serde_json::Value;

pub fn oracle() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(root.join(".ci/k8s-oracle"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run .ci/k8s-oracle");
        assert!(
            out.status.success(),
            ".ci/k8s-oracle could not build the Go oracle (needs Go on PATH and the Go module proxy)"
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

fn run(cmd: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(oracle())
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the oracle");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("oracle output");
    feeder.join().expect("feeder").expect("write to the oracle");
    assert!(
        out.status.success(),
        "k8s-oracle {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// sigs.k8s.io/yaml's reading of a YAML document (what kubectl reads).
pub fn yaml_to_json(yaml: &str) -> Result<Value, String> {
    serde_json::from_str(&yaml_to_json_text(yaml)?).map_err(|e| e.to_string())
}

/// [`yaml_to_json`] as the JSON text the oracle printed (for values deeper
/// than serde_json's reader takes).
pub fn yaml_to_json_text(yaml: &str) -> Result<String, String> {
    let mut child = Command::new(oracle())
        .arg("yaml2json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the oracle");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = yaml.as_bytes().to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("oracle output");
    feeder.join().expect("feeder").expect("write to the oracle");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

/// The API server's JSON for each stored value (resourceVersion from `rv`).
pub fn served(values: &[(Vec<u8>, Option<i64>)]) -> Vec<Result<Value, String>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut input = String::new();
    for (v, rv) in values {
        let mut line = serde_json::json!({ "value": b64.encode(v) });
        if let Some(rv) = rv {
            line["rv"] = (*rv).into();
        }
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let out = run("decode", input.as_bytes());
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| {
            // Objects nested deeper than serde_json reads (128) come back as
            // a note that the oracle served them.
            if l.starts_with("{\"json\":") && l.len() > 10_000 && l.contains("[[[[[[[[") {
                return Ok(Value::String("served (too deep to compare here)".into()));
            }
            let v: Value = serde_json::from_str(l).expect("oracle line");
            match v.get("error") {
                Some(e) => Err(e.as_str().unwrap_or_default().to_string()),
                None => Ok(v["json"].clone()),
            }
        })
        .collect()
}

/// Typical objects as the API server stores them: (etcd key, stored bytes).
pub fn samples() -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let out = run("samples", b"");
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("oracle line");
            (
                v["key"].as_str().expect("key").to_string(),
                b64.decode(v["value"].as_str().expect("value"))
                    .expect("base64"),
            )
        })
        .collect()
}
