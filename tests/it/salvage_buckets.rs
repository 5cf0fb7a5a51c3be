//! `salvage` rebuilding etcd's other buckets (`lease`, `authUsers`,
//! `authRoles`, …) from leaves no tree reaches: a real cluster of the
//! release takes leases with keys attached, users and roles (enough of each
//! that bbolt gives those buckets pages of their own rather than keeping
//! them inline in the root leaf), its snapshot is damaged so that no tree
//! leads to them — every root-bucket leaf and both meta pages broken; or
//! every branch page zeroed — and the salvaged file must hold exactly the
//! original's entries of those buckets. The etcd of the release, booted from
//! the salvaged file restored, is the oracle: it lists exactly the leases it
//! granted (with their keys) and the users and roles it was given.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use etcdsnap::bolt::{Db, read};
use etcdsnap::report::escape_bytes;
use serde_json::Value;

use crate::common::cluster::layout;
use crate::common::live::Etcd;
use crate::common::{Rng, etcdsnap, etcdutl};
use crate::salvage::{PAGE, random_page, salvage_json};

/// Enough leases for the lease bucket to need a branch page (4 KiB pages,
/// about 37 bytes a lease), users and roles for their buckets to be too big
/// to be inline (a quarter page).
const LEASES: usize = 120;
const USERS: usize = 16;
const ROLES: usize = 40;

/// A snapshot of a real cluster and what etcd said it holds.
struct Made {
    snapshot: PathBuf,
    /// Lease ID (hex, as etcdctl prints it) -> the key attached to it.
    leases: BTreeMap<String, String>,
    users: BTreeSet<String>,
    roles: BTreeSet<String>,
    /// User -> its one role.
    user_roles: BTreeMap<String, String>,
}

fn make_snapshot(line: &str, dir: &Path) -> Made {
    let l = layout(3);
    let dirs: Vec<PathBuf> = l
        .members
        .iter()
        .map(|(n, _, _)| dir.join(format!("{n}.etcd")))
        .collect();
    let e = Etcd::start_dirs(line, &l.members, &dirs, &l.initial, "salvage-buckets");
    let mut leases = BTreeMap::new();
    for i in 0..LEASES {
        let o = e.ctl(&["-w", "json", "lease", "grant", "3600"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let id = format!("{:x}", v["ID"].as_i64().unwrap());
        let key = format!("/leased/{i:03}");
        e.ctl(&["put", &key, &format!("value {i}"), &format!("--lease={id}")]);
        leases.insert(id, key);
    }
    let mut roles = BTreeSet::new();
    for i in 0..ROLES {
        let r = format!("role-{i:02}");
        e.ctl(&["role", "add", &r]);
        e.ctl(&[
            "role",
            "grant-permission",
            &r,
            "read",
            &format!("/r/{i:02}"),
        ]);
        roles.insert(r);
    }
    let mut users = BTreeSet::new();
    let mut user_roles = BTreeMap::new();
    for i in 0..USERS {
        let u = format!("user-{i:02}");
        e.ctl(&["user", "add", &format!("{u}:pw-{i}"), "--interactive=false"]);
        let r = format!("role-{:02}", i % ROLES);
        e.ctl(&["user", "grant-role", &u, &r]);
        users.insert(u.clone());
        user_roles.insert(u, r);
    }
    let snapshot = dir.join("original.db");
    let o = e
        .ctl_at(&e.endpoints[0])
        .args(["snapshot", "save"])
        .arg(&snapshot)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "snapshot save: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The members' data dirs (each with a 64 MB WAL) are not needed any more.
    drop(e);
    for d in &dirs {
        std::fs::remove_dir_all(d).unwrap();
    }
    Made {
        snapshot,
        leases,
        users,
        roles,
        user_roles,
    }
}

/// A bucket of a sound file (trailer cut off) as key -> value; empty when
/// the file has no such bucket.
fn bucket(data: &[u8], name: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let data = &data[..data.len() - data.len() % PAGE];
    let db = Db::open(data).expect("open");
    let mut out = BTreeMap::new();
    if let Some(b) = read::bucket(&db, name).expect("buckets") {
        read::for_each(&db, &b, |e| {
            out.insert(e.key.to_vec(), e.value.to_vec());
            ControlFlow::Continue(())
        })
        .expect("read the bucket");
    }
    out
}

/// Whether the bucket's root is a page of its own (not inline).
fn on_its_own_pages(data: &[u8], name: &[u8]) -> bool {
    let data = &data[..data.len() - data.len() % PAGE];
    let db = Db::open(data).expect("open");
    let b = read::bucket(&db, name).expect("buckets").expect("bucket");
    matches!(b.header.root, etcdsnap::bolt::page::BucketRoot::Page(_))
}

/// The page's header, when it names its own id: (flags, count).
fn own_page(data: &[u8], p: usize) -> Option<(u16, usize)> {
    let h = data.get(p * PAGE..p * PAGE + 16)?;
    let id = u64::from_le_bytes(h[0..8].try_into().unwrap());
    let flags = u16::from_le_bytes(h[8..10].try_into().unwrap());
    let count = u16::from_le_bytes(h[10..12].try_into().unwrap()) as usize;
    (id == p as u64).then_some((flags, count))
}

/// Leaf pages every element of which is a bucket (bbolt's flag 1): the
/// root bucket's leaf and its older copies on freed pages.
fn root_leaves(data: &[u8]) -> Vec<usize> {
    (2..data.len() / PAGE)
        .filter(|&p| match own_page(data, p) {
            Some((0x02, count)) if count > 0 => (0..count).all(|i| {
                let o = p * PAGE + 16 + i * 16;
                data.get(o..o + 4)
                    .is_some_and(|f| u32::from_le_bytes(f.try_into().unwrap()) == 1)
            }),
            _ => false,
        })
        .collect()
}

/// Branch pages.
fn branch_pages(data: &[u8]) -> Vec<usize> {
    (2..data.len() / PAGE)
        .filter(|&p| matches!(own_page(data, p), Some((0x01, _))))
        .collect()
}

/// The buckets that must come back whole in each scenario.
const TAKEN: &[&str] = &["lease", "authUsers", "authRoles"];

per_release!(
    #[ignore = "real: etcd of the release makes the snapshot and boots what was salvaged"]
    salvage_rebuilds_buckets_by_content: v3_5("3.5"), v3_6("3.6")
);

fn salvage_rebuilds_buckets_by_content(line: &str) {
    let dir = tempfile::tempdir().unwrap();
    let made = make_snapshot(line, dir.path());
    let orig = std::fs::read(&made.snapshot).unwrap();
    for name in TAKEN {
        assert!(
            on_its_own_pages(&orig, name.as_bytes()),
            "{line}: the {name} bucket is inline: the test needs it on pages of its own"
        );
    }
    let mut rng = Rng::new(0xb0c4);
    // No tree: every root-bucket leaf and both meta pages random.
    let roots = root_leaves(&orig);
    assert!(!roots.is_empty(), "{line}: no root leaf found");
    let mut no_root = orig.clone();
    for p in roots.iter().copied().chain([0, 1]) {
        no_root[p * PAGE..(p + 1) * PAGE].copy_from_slice(&random_page(&mut rng));
    }
    // The tree without its branch pages: the lease bucket's root is one.
    let branches = branch_pages(&orig);
    assert!(!branches.is_empty(), "{line}: no branch page");
    let mut no_branches = orig.clone();
    for &p in &branches {
        no_branches[p * PAGE..(p + 1) * PAGE].fill(0);
    }
    for (scenario, damaged, scanned) in [
        ("no root leaf, no meta page", no_root, TAKEN),
        ("branch pages zeroed", no_branches, &["lease"][..]),
    ] {
        eprintln!("{line}: {scenario}");
        let d = dir
            .path()
            .join(format!("{}.db", scenario.replace([' ', ','], "-")));
        std::fs::write(&d, &damaged).unwrap();
        let out = d.with_extension("salvaged.db");
        let (exit, report, stderr) =
            salvage_json(&[d.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(exit == 0 || exit == 1, "{line}, {scenario}: {stderr}");
        let got = std::fs::read(&out).unwrap();
        let status = |name: &str| {
            report["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["name"] == name)
                .map(|b| b["status"].as_str().unwrap().to_string())
                .unwrap()
        };
        // Keys whose copies differ are left out and named; every other
        // entry is the original's, and nothing else is there.
        let mut left_out: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for name in TAKEN {
            let conflicts: BTreeSet<String> = report["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["name"] == *name)
                .and_then(|b| b["conflicts"].as_array())
                .into_iter()
                .flatten()
                .map(|k| k.as_str().unwrap().to_string())
                .collect();
            let mut want = bucket(&orig, name.as_bytes());
            want.retain(|k, _| !conflicts.contains(&escape_bytes(k)));
            assert_eq!(
                bucket(&got, name.as_bytes()),
                want,
                "{line}, {scenario}: bucket {name} differs from the original's ({}; left out {conflicts:?})",
                status(name)
            );
            assert!(
                !want.is_empty(),
                "{line}, {scenario}: {name}: nothing taken"
            );
            eprintln!(
                "{line}, {scenario}: {name}: {} entries, {} left out (copies differ)",
                want.len(),
                conflicts.len()
            );
            left_out.insert(name, conflicts);
        }
        for name in scanned {
            assert_eq!(status(name), "scanned", "{line}, {scenario}: {name}");
        }
        // The text report names every bucket it could not rebuild.
        let text = etcdsnap()
            .args(["salvage", d.to_str().unwrap(), "-o"])
            .arg(d.with_extension("text.db"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        let not_found: Vec<&str> = report["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["status"] == "notFound")
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        if !not_found.is_empty() {
            assert!(
                text.contains(&format!("not rebuilt       {}", not_found.join(", "))),
                "{line}, {scenario}: {not_found:?} not named:\n{text}"
            );
        }
        let mut expect = Made {
            snapshot: out.clone(),
            leases: made.leases.clone(),
            users: made.users.clone(),
            roles: made.roles.clone(),
            user_roles: made.user_roles.clone(),
        };
        expect.leases.retain(|id, _| {
            let id = u64::from_str_radix(id, 16).unwrap();
            !left_out["lease"].contains(&escape_bytes(&id.to_be_bytes()))
        });
        expect.users.retain(|u| !left_out["authUsers"].contains(u));
        expect
            .user_roles
            .retain(|u, _| !left_out["authUsers"].contains(u));
        expect.roles.retain(|r| !left_out["authRoles"].contains(r));
        booted_serves(line, &expect, dir.path(), scenario);
    }
}

/// etcd of `line`, booted from the salvaged `made.snapshot` restored, lists
/// exactly the leases it granted (each key still attached to its lease),
/// users (with their roles) and roles of `made`.
fn booted_serves(line: &str, made: &Made, dir: &Path, scenario: &str) {
    let salvaged = &made.snapshot;
    let l = layout(1);
    let token = "salvaged-buckets";
    let root = dir.join(format!("restored-{}", scenario.replace([' ', ','], "-")));
    // etcd's own restore of the release (the salvaged meta bucket may be
    // derived: etcdutl writes the term and confState the release needs).
    let (name, peer, _) = &l.members[0];
    let data_dir = root.join("m1.etcd");
    let o = std::process::Command::new(etcdutl(line))
        .args(["snapshot", "restore"])
        .arg(salvaged)
        .args(["--name", name, "--initial-cluster", &l.initial])
        .args(["--initial-cluster-token", token])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{line}, {scenario}: etcdutl snapshot restore ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let dirs = vec![data_dir];
    let e = Etcd::start_dirs(line, &l.members, &dirs, &l.initial, token);
    let json = |args: &[&str]| -> Value {
        let mut a = vec!["-w", "json"];
        a.extend_from_slice(args);
        serde_json::from_slice(&e.ctl(&a).stdout).unwrap()
    };
    let leases: BTreeSet<String> = json(&["lease", "list"])["leases"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    let id = l.get("id").or(l.get("ID")).and_then(Value::as_i64);
                    format!("{:x}", id.unwrap())
                })
                .collect()
        })
        .unwrap_or_default();
    let want: BTreeSet<String> = made.leases.keys().cloned().collect();
    assert_eq!(leases, want, "{line}, {scenario}: leases");
    let kvs = json(&["get", "/leased/", "--prefix"]);
    let attached: BTreeMap<String, String> = kvs["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            use base64::Engine;
            let key = base64::engine::general_purpose::STANDARD
                .decode(kv["key"].as_str().unwrap())
                .unwrap();
            (
                format!("{:x}", kv["lease"].as_i64().unwrap_or(0)),
                String::from_utf8(key).unwrap(),
            )
        })
        .collect();
    // Every key is served; those whose lease was left out keep its ID
    // (etcd logs that it cannot attach them).
    assert_eq!(attached.len(), LEASES, "{line}, {scenario}: leased keys");
    let attached: BTreeMap<String, String> = attached
        .into_iter()
        .filter(|(id, _)| made.leases.contains_key(id))
        .collect();
    assert_eq!(attached, made.leases, "{line}, {scenario}: keys and leases");
    let names = |v: Value, field: &str| -> BTreeSet<String> {
        v[field]
            .as_array()
            .map(|a| a.iter().map(|n| n.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        names(json(&["user", "list"]), "users"),
        made.users,
        "{line}, {scenario}: users"
    );
    assert_eq!(
        names(json(&["role", "list"]), "roles"),
        made.roles,
        "{line}, {scenario}: roles"
    );
    for (u, r) in &made.user_roles {
        let got = names(json(&["user", "get", u]), "roles");
        assert_eq!(got, BTreeSet::from([r.clone()]), "{line}, {scenario}: {u}");
    }
    drop(e);
    std::fs::remove_dir_all(&root).unwrap();
}

/// The recognisers take any bytes as a key and a value without a panic (as
/// the fuzz target `salvage_scan` calls them), and the real shapes cut short
/// by any number of bytes are refused.
#[test]
fn recognisers_take_any_bytes() {
    use etcdsnap::salvage::buckets::{RECOGNISED, fits};
    let mut rng = Rng::new(0x5b0c);
    for _ in 0..20_000 {
        let len = rng.below(64) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Some((&n, rest)) = data.split_first() {
            let (key, value) = rest.split_at((n as usize).min(rest.len()));
            for b in RECOGNISED {
                let _ = fits(b, key, value);
            }
        }
    }
    let lease = [0x08, 0x05, 0x10, 0x3c];
    let member = br#"{"id":5,"peerURLs":["http://127.0.0.1:2380"]}"#;
    assert!(fits(b"lease", &5u64.to_be_bytes(), &lease));
    assert!(fits(b"members", b"5", member));
    for cut in 1..lease.len() {
        if cut != 2 {
            assert!(!fits(b"lease", &5u64.to_be_bytes(), &lease[..cut]), "{cut}");
        }
    }
    for cut in 1..member.len() {
        assert!(!fits(b"members", b"5", &member[..cut]), "{cut}");
    }
}

/// With every root-bucket leaf and both meta pages of a fixture broken (its
/// small buckets are inline in the root leaf, so nothing of them is left),
/// the text report names every bucket it could not rebuild on one line, as
/// the JSON report marks them `notFound`.
#[test]
fn buckets_not_rebuilt_are_named() {
    let orig = std::fs::read(crate::common::fixture("etcd-3.6.16.db")).unwrap();
    let mut rng = Rng::new(0x0b1d);
    let mut bytes = orig.clone();
    let roots = root_leaves(&orig);
    assert!(!roots.is_empty());
    for p in roots.into_iter().chain([0, 1]) {
        bytes[p * PAGE..(p + 1) * PAGE].copy_from_slice(&random_page(&mut rng));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("d.db");
    std::fs::write(&input, &bytes).unwrap();
    let (_, report, stderr) = salvage_json(&[
        input.to_str().unwrap(),
        "-o",
        dir.path().join("j.db").to_str().unwrap(),
    ]);
    let not_found: Vec<&str> = report["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("{stderr}"))
        .iter()
        .filter(|b| b["status"] == "notFound")
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert!(not_found.contains(&"lease"), "{report:#}");
    let o = etcdsnap()
        .args(["salvage", input.to_str().unwrap(), "-o"])
        .arg(dir.path().join("t.db"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!(
            "  not rebuilt       {} (nothing of them found; written empty)\n",
            not_found.join(", ")
        )),
        "{text}"
    );
}
