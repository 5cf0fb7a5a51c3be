//! etcdsnap's object output against the Kubernetes Go libraries (issue 17):
//! the API server's JSON for the same stored bytes, and sigs.k8s.io/yaml's
//! reading of our YAML. The oracle is tools/k8s-oracle, built from the Go
//! module proxy at pinned versions; none of our code is on its side.

mod common;
mod oracle;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Rng;
use serde_json::{Value, json};

fn decode(bytes: &[u8], format: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["decode", "-", "-o", format, "--show-secrets"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdsnap decode");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("decode output");
    feeder.join().expect("feeder").expect("write to decode");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Paths where two JSON values differ (at most `limit`).
fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => differences(v, w, &format!("{path}.{k}"), out, limit),
                    None => out.push(format!("{path}.{k}: ours only ({v})")),
                }
            }
            for (k, w) in y {
                if !x.contains_key(k) {
                    out.push(format!("{path}.{k}: oracle only ({w})"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(v, w, &format!("{path}[{i}]"), out, limit);
            }
        }
        _ if a != b => out.push(format!("{path}: ours {a}, oracle {b}")),
        _ => {}
    }
}

/// Strings that YAML 1.1 or 1.2 would type, and pieces to build random ones.
const TRICKY: &[&str] = &[
    "yes",
    "Yes",
    "YES",
    "yEs",
    "no",
    "No",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "y",
    "Y",
    "n",
    "N",
    "true",
    "False",
    "~",
    "null",
    "Null",
    "NULL",
    "1_000",
    "0x1F",
    "0X1f",
    "012",
    "0o12",
    "0b101",
    "1:20",
    "1:20:30.5",
    "190:20:30",
    "<<",
    "=",
    "1e3",
    "1E3",
    "-1e-3",
    ".5",
    "5.",
    "+12",
    "-0",
    ".inf",
    "-.Inf",
    ".NaN",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "",
    " ",
    " x",
    "x ",
    "a: b",
    "a:b",
    "a #b",
    "a#b",
    "- x",
    "-x",
    "? x",
    "[a]",
    "{a}",
    "&a",
    "*a",
    "!a",
    "|",
    ">",
    "'q'",
    "\"q\"",
    "%a",
    "@a",
    "`a",
    "#c",
    "line1\nline2",
    "line1\nline2\n",
    "line1\n\n",
    "\nlead",
    " lead\nx",
    "tab\tin",
    "trail \nx",
    "cr\r\nlf",
    "nul\0",
    "esc\x1b[2J",
    "del\x7f",
    "nel\u{85}",
    "ls\u{2028}",
    "ps\u{2029}",
    "bom\u{feff}",
    "bidi\u{202e}txt",
    "é",
    "日本",
    "emoji😀",
    "\\",
    "back\\slash",
    "10.96.0.1",
    "100Mi",
    "3m",
    "0",
    "00",
    "1.0",
    "1_0.0_1",
    "0x_1",
    "Infinity",
    "NaN",
    "---",
    "...",
    ":",
    "::",
    "a:",
    "key: value # comment",
];

fn random_string(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(4) {
        match rng.below(3) {
            0 => s.push_str(TRICKY[rng.below(TRICKY.len() as u64) as usize]),
            1 => {
                let cs = b" \t\n:#-?,[]{}&*!|>'\"%@`=<~.+_0123456789abcxeEyYnNoOtT\\";
                s.push(cs[rng.below(cs.len() as u64) as usize] as char);
            }
            _ => s.push(char::from_u32(rng.below(0x3000) as u32).unwrap_or('x')),
        }
    }
    s
}

/// Our YAML, read by sigs.k8s.io/yaml (YAML 1.1, as kubectl reads it), is
/// exactly our JSON, for the strings YAML resolvers type and for random ones,
/// as values and as map keys.
#[test]
fn yaml_reads_back_exactly_with_kubectls_reader() {
    let mut rng = Rng::new(0x005e_ed17);
    let mut strings: Vec<String> = TRICKY.iter().map(|s| s.to_string()).collect();
    for _ in 0..3000 {
        strings.push(random_string(&mut rng));
    }
    let mut data = serde_json::Map::new();
    let mut by_key = serde_json::Map::new();
    for (i, s) in strings.iter().enumerate() {
        data.insert(format!("v{i}"), Value::String(s.clone()));
        by_key.insert(s.clone(), Value::String(format!("k{i}")));
    }
    let obj = json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default", "labels": {"enabled": "yes"}},
        "data": data,
        "byKey": by_key,
        "list": strings,
    });
    let bytes = serde_json::to_vec(&obj).expect("json");
    let (ok, ours_json, err) = decode(&bytes, "json");
    assert!(ok, "decode -o json: {err}");
    let ours_json: Value = serde_json::from_str(&ours_json).expect("our json");
    assert_eq!(ours_json, obj, "decode -o json changed the value");
    let (ok, yaml, err) = decode(&bytes, "yaml");
    assert!(ok, "decode -o yaml: {err}");
    let read = oracle::yaml_to_json(&yaml)
        .unwrap_or_else(|e| panic!("sigs.k8s.io/yaml refuses our YAML: {e}"));
    let mut diffs = Vec::new();
    differences(&ours_json, &read, "", &mut diffs, 20);
    assert!(
        diffs.is_empty(),
        "sigs.k8s.io/yaml reads our YAML differently:\n{}",
        diffs.join("\n")
    );
}

/// Every official serialization fixture: our JSON is the oracle's JSON of the
/// same bytes (WatchEvent has no type in its envelope; the oracle, like the
/// API server, does not decode it).
#[test]
fn official_fixtures_decode_as_the_go_libraries_decode_them() {
    let dir = common::root().join("../shared/k8s-api-testdata/HEAD");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (../shared must be beside the repo)", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pb"))
        .collect();
    files.sort();
    assert!(files.len() >= 190, "only {} fixtures", files.len());
    let values: Vec<(Vec<u8>, Option<i64>)> = files
        .iter()
        .map(|p| (std::fs::read(p).expect("read fixture"), None))
        .collect();
    let served = oracle::served(&values);
    let mut compared = 0;
    let mut failures = Vec::new();
    for (p, want) in files.iter().zip(served) {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let want = match want {
            Ok(w) => w,
            Err(e) => {
                assert_eq!(name, "core.v1.WatchEvent.pb", "oracle failed: {e}");
                continue;
            }
        };
        let (ok, ours, err) = decode(&std::fs::read(p).expect("read"), "json");
        if !ok {
            failures.push(format!("{name}: decode failed: {err}"));
            continue;
        }
        let ours: Value = serde_json::from_str(&ours).expect("our json");
        let mut d = Vec::new();
        differences(&ours, &want, "", &mut d, 5);
        if !d.is_empty() {
            failures.push(format!("{name}: {}", d.join("; ")));
        }
        compared += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(compared, files.len() - 1);
}

/// Objects shaped like real storage (zero values written, as go-to-protobuf
/// writes them; JSON and CBOR custom resources): our JSON is the API server's,
/// and our YAML reads back as our JSON.
#[test]
fn stored_objects_decode_as_the_api_server_serves_them() {
    let samples = oracle::samples();
    assert!(samples.len() >= 11);
    let served = oracle::served(
        &samples
            .iter()
            .map(|(_, v)| (v.clone(), None))
            .collect::<Vec<_>>(),
    );
    let mut failures = Vec::new();
    for ((key, bytes), want) in samples.iter().zip(served) {
        let want = want.unwrap_or_else(|e| panic!("oracle on {key}: {e}"));
        let (ok, ours, err) = decode(bytes, "json");
        assert!(ok, "{key}: {err}");
        let ours: Value = serde_json::from_str(&ours).expect("our json");
        let mut d = Vec::new();
        differences(&ours, &want, "", &mut d, 8);
        if !d.is_empty() {
            failures.push(format!("{key}:\n  {}", d.join("\n  ")));
        }
        let (ok, yaml, err) = decode(bytes, "yaml");
        assert!(ok, "{key}: {err}");
        let read = oracle::yaml_to_json(&yaml).unwrap_or_else(|e| panic!("{key}: {e}"));
        if read != ours {
            let mut d = Vec::new();
            differences(&ours, &read, "", &mut d, 8);
            failures.push(format!(
                "{key}: YAML reads back differently:\n  {}",
                d.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
