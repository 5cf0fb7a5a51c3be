//! Join archives (manifest format 2): what a node needs to run a member
//! that is being added to a running cluster — replacing a failed member, or
//! adding a learner. Such a member must start from an EMPTY data dir (it
//! receives the data from the leader; a restored copy would carry another
//! raft history and be refused by its peers), with
//! `--initial-cluster-state=existing`, its start flags, the kubeadm static
//! pod and its certificates. Shipping that in the bundle format lets
//! `install` place it with the same checks, journal and move-aside as a
//! restored member: the data dir made empty (an old member moved aside only
//! with `force`, and named by its IDs when in the way), the PKI files
//! placed.
//!
//! [`write_join`] is the library call (`member replace` and
//! `member add-learner` use it once the member is added): one archive
//! `<name>.tar.zst` written reproducibly and atomically, and its line in the
//! directory's `SHA256SUMS` added or replaced (other members' lines kept).

use std::path::{Path, PathBuf};

use super::manifest::{
    FileEntry, JOIN_CLUSTER_STATE, JoinInfo, Kind, Manifest, ManifestError, MemberInfo,
    path_problem,
};
use super::read::{ReadError, read_sums};
use super::write::{self, Encryption, Item, WriteError};
use super::{JOIN_FORMAT_VERSION, SUMS_NAME, archive_name};
use crate::cluster::membership::Cluster;
use crate::durable::{self, IoError};

/// Everything a join archive holds.
#[derive(Debug, Clone)]
pub struct Join {
    /// The member's name (`--name`).
    pub name: String,
    /// Its member ID, as the cluster assigned it when it was added.
    pub member_id: u64,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// The client URLs it advertises.
    pub client_urls: Vec<String>,
    /// The running cluster's ID.
    pub cluster_id: u64,
    /// `--initial-cluster`: every member of the cluster, this one included.
    pub initial_cluster: String,
    /// `--initial-cluster-token` (etcd reads it only when bootstrapping a
    /// new cluster; recorded as the flags give it, may be empty).
    pub initial_cluster_token: String,
    /// The data dir on the node (absolute).
    pub data_dir: String,
    /// The PKI dir on the node (absolute): `/etc/kubernetes/pki`.
    pub pki_dir: String,
    /// The member's start flags for those places; must hold
    /// `--name=<name>` and `--initial-cluster-state=existing`.
    pub flags: Vec<String>,
    /// `etcd.env`: the same flags as an environment file
    /// (`cluster::flags::env_text`).
    pub env: String,
    /// `etcd.yaml`: the kubeadm static pod (`cluster::podspec::etcd_pod`).
    pub pod: String,
    /// The PKI files: (path below the PKI dir, e.g. `etcd/server.key`;
    /// bytes). Keys (`.key`) are written 0600, the rest 0644.
    pub pki: Vec<(String, Vec<u8>)>,
    /// uid and gid of everything (`(0, 0)` by default).
    pub owner: (u32, u32),
    /// The cluster's version (`3.5.0`), as the running members report it.
    pub cluster_version: String,
}

/// A join archive written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `<out dir>/<name>.tar.zst`.
    pub archive: PathBuf,
    /// The archive's sha256, as `SHA256SUMS` lists it.
    pub sha256: String,
    /// `<out dir>/SHA256SUMS`.
    pub sums: PathBuf,
    /// Where the archive that was there went (`force`):
    /// `<archive>.etcdsnap-bak-<UTC time>`.
    pub moved_aside: Option<PathBuf>,
}

/// Why a join archive was not written; nothing in the output dir changed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("join archive for {name}: {why}")]
    /// The inputs break a rule of the format or contradict each other.
    Invalid {
        /// The member's name.
        name: String,
        /// Why.
        why: String,
    },
    #[error("join archive: {0}")]
    /// The manifest built from the inputs breaks the format.
    Manifest(#[from] ManifestError),
    #[error("{}: exists; use --force to replace it (the old one is moved aside)", .0.display())]
    /// The archive is there and replacing it was not asked for.
    Exists(PathBuf),
    #[error(transparent)]
    /// The archive could not be written.
    Write(#[from] WriteError),
    #[error(transparent)]
    /// The `SHA256SUMS` beside it cannot be read (it is not rewritten).
    Sums(#[from] ReadError),
    #[error(transparent)]
    /// A file could not be read, written or moved.
    Io(#[from] IoError),
}

/// The manifest a join archive of `j` carries for `items`.
fn manifest(j: &Join, items: &[Item]) -> Manifest {
    Manifest {
        format: JOIN_FORMAT_VERSION,
        etcdsnap_version: env!("CARGO_PKG_VERSION").to_string(),
        member: MemberInfo {
            name: j.name.clone(),
            id: format!("{:x}", j.member_id),
            peer_urls: j.peer_urls.clone(),
            client_urls: j.client_urls.clone(),
        },
        cluster_id: format!("{:x}", j.cluster_id),
        initial_cluster: j.initial_cluster.clone(),
        initial_cluster_token: j.initial_cluster_token.clone(),
        snapshot: None,
        restore: None,
        join: Some(JoinInfo {
            initial_cluster_state: JOIN_CLUSTER_STATE.to_string(),
            cluster_version: j.cluster_version.clone(),
        }),
        force_pki: false,
        data_dir: j.data_dir.clone(),
        pki_dir: j.pki_dir.clone(),
        flags: j.flags.clone(),
        files: items.iter().map(|i| i.entry.clone()).collect(),
    }
}

/// The rules a join manifest holds beyond the format's, checked when it is
/// written and again when it is installed: the member is in its initial
/// cluster with the same peer URLs, and its flags start it as that member
/// of an existing cluster. (Its IDs are the running cluster's, which no
/// flag computes: they are not checked against the initial cluster.)
pub fn consistency(m: &Manifest) -> Result<(), String> {
    let cluster = Cluster::parse(&m.initial_cluster, &m.initial_cluster_token)
        .map_err(|e| format!("initialCluster: {e}"))?;
    let member = cluster
        .members
        .iter()
        .find(|x| x.name == m.member.name)
        .ok_or_else(|| format!("member {} is not in initialCluster", m.member.name))?;
    let mut peers = m.member.peer_urls.clone();
    peers.sort();
    if peers != member.peer_urls {
        return Err(format!(
            "member {}'s peer URLs {} are not its initialCluster entries {}",
            m.member.name,
            m.member.peer_urls.join(","),
            member.peer_urls.join(",")
        ));
    }
    for need in [
        format!("--name={}", m.member.name),
        format!("--initial-cluster-state={JOIN_CLUSTER_STATE}"),
    ] {
        if !m.flags.contains(&need) {
            return Err(format!("the flags do not hold {need}"));
        }
    }
    if m.flags.iter().any(|f| {
        f.starts_with("--initial-cluster-state=")
            && *f != format!("--initial-cluster-state={JOIN_CLUSTER_STATE}")
    }) {
        return Err("the flags hold another --initial-cluster-state".into());
    }
    Ok(())
}

/// Every entry of `j`'s archive, sorted by path: the empty `data`
/// directory, `etcd.env`, `etcd.yaml` (0600), the PKI files (keys 0600,
/// the rest 0644) and their directories (0700).
fn items(j: &Join) -> Result<Vec<Item>, String> {
    let owner = j.owner;
    let mut items = vec![
        Item {
            entry: FileEntry {
                path: "data".into(),
                kind: Kind::Dir,
                mode: 0o700,
                uid: owner.0,
                gid: owner.1,
                size: 0,
                sha256: None,
            },
            content: None,
        },
        write::bytes_item("etcd.env", j.env.clone().into_bytes(), 0o600, owner),
        write::bytes_item("etcd.yaml", j.pod.clone().into_bytes(), 0o600, owner),
    ];
    let mut pki = Vec::new();
    for (rel, bytes) in &j.pki {
        let path = format!("pki/{rel}");
        if let Some(why) = path_problem(&path) {
            return Err(format!("PKI file {rel:?}: {why}"));
        }
        let mode = if rel.ends_with(".key") { 0o600 } else { 0o644 };
        pki.push(write::bytes_item(&path, bytes.clone(), mode, owner));
    }
    let dirs = write::parent_dirs(&pki, owner);
    items.extend(pki);
    items.extend(dirs);
    items.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    Ok(items)
}

/// Writes member `j.name`'s join archive `out_dir/<name>.tar.zst` (see the
/// module comment), and its line in `out_dir/SHA256SUMS`. An existing
/// archive is refused unless `force`; with it, it is moved aside to
/// `<archive>.etcdsnap-bak-<UTC time>` (put back if the write fails).
/// `out_dir` is made (0700) when missing.
pub fn write_join(out_dir: &Path, j: &Join, force: bool) -> Result<Written, JoinError> {
    let invalid = |why: String| JoinError::Invalid {
        name: j.name.clone(),
        why,
    };
    let items = items(j).map_err(invalid)?;
    let m = manifest(j, &items);
    m.validate()?;
    consistency(&m).map_err(invalid)?;
    let archive = out_dir.join(archive_name(&j.name, false));
    let exists = std::fs::symlink_metadata(&archive).is_ok();
    if exists && !force {
        return Err(JoinError::Exists(archive));
    }
    // SHA256SUMS is read (and refused when unreadable) before anything is
    // written, so a failure leaves the directory as it was.
    let sums_path = out_dir.join(SUMS_NAME);
    let mut sums = if std::fs::symlink_metadata(&sums_path).is_ok() {
        read_sums(out_dir)?
    } else {
        Vec::new()
    };
    if !out_dir.exists() {
        durable::mkdir_0700(out_dir)?;
        durable::sync_path(durable::parent_of(out_dir))?;
    }
    let moved_aside = if exists {
        let bak = backup_name(&archive);
        std::fs::rename(&archive, &bak).map_err(IoError::at(&archive))?;
        Some(bak)
    } else {
        None
    };
    let put_back = || {
        if let Some(b) = &moved_aside {
            let _ = std::fs::rename(b, &archive);
        }
    };
    let sha256 = match write::write_archive(&archive, &m, &items, &Encryption::None, false) {
        Ok(s) => s,
        Err(e) => {
            put_back();
            return Err(e.into());
        }
    };
    let name = archive_name(&j.name, false);
    sums.retain(|(n, _)| *n != name);
    sums.push((name, sha256.clone()));
    let wrote = durable::write_atomic(&sums_path, write::sums_text(&sums).as_bytes())
        .and_then(|()| durable::set_mode(&sums_path, 0o644));
    if let Err(e) = wrote {
        let _ = std::fs::remove_file(&archive);
        put_back();
        return Err(e.into());
    }
    Ok(Written {
        archive,
        sha256,
        sums: sums_path,
        moved_aside,
    })
}

/// `<path>.etcdsnap-bak-<UTC time>`, `-2`, `-3`… if taken.
fn backup_name(p: &Path) -> PathBuf {
    let base = format!("{}.etcdsnap-bak-{}", p.display(), durable::utc_stamp());
    let mut b = PathBuf::from(&base);
    let mut n = 2;
    while std::fs::symlink_metadata(&b).is_ok() {
        b = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::install::{InstallError, Options, install};
    use crate::bundle::read::Key;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    const IC: &str = "m1=https://10.0.0.1:2380,m3=https://10.0.0.3:2380";

    fn sample() -> Join {
        let flags: Vec<String> = [
            "--name=m3",
            "--data-dir=/var/lib/etcd",
            "--initial-advertise-peer-urls=https://10.0.0.3:2380",
            &format!("--initial-cluster={IC}"),
            "--initial-cluster-state=existing",
            "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
            "--key-file=/etc/kubernetes/pki/etcd/server.key",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Join {
            name: "m3".into(),
            member_id: 0x5d1b2c3a4e6f7081,
            peer_urls: vec!["https://10.0.0.3:2380".into()],
            client_urls: vec!["https://10.0.0.3:2379".into()],
            cluster_id: 0x1c2d3e4f5a6b7c8d,
            initial_cluster: IC.into(),
            initial_cluster_token: String::new(),
            data_dir: "/var/lib/etcd".into(),
            pki_dir: "/etc/kubernetes/pki".into(),
            env: crate::cluster::flags::env_text(&flags),
            flags,
            pod: "apiVersion: v1\nkind: Pod\n".into(),
            pki: vec![
                ("etcd/server.key".into(), b"KEY".to_vec()),
                ("etcd/ca.crt".into(), b"CA".to_vec()),
                ("etcd/server.crt".into(), b"CRT".to_vec()),
            ],
            owner: (0, 0),
            cluster_version: "3.5.0".into(),
        }
    }

    fn opts(root: &Path, force: bool) -> Options {
        Options {
            root: Some(root.to_path_buf()),
            data_dir: "/var/lib/etcd".into(),
            pki_dir: "/etc/kubernetes/pki".into(),
            owner: None,
            key: Key::None,
            force,
            dry_run: false,
            sha256: None,
            as_member: Some("m3".into()),
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn archives_are_reproducible_and_sums_keep_other_lines() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir(&b).unwrap();
        let other = format!("{}  m1.tar.zst\n", "ab".repeat(32));
        std::fs::write(b.join(SUMS_NAME), &other).unwrap();
        let wa = write_join(&a, &sample(), false).unwrap();
        let wb = write_join(&b, &sample(), false).unwrap();
        assert_eq!(wa.archive, a.join("m3.tar.zst"));
        assert_eq!(
            std::fs::read(&wa.archive).unwrap(),
            std::fs::read(&wb.archive).unwrap()
        );
        assert_eq!(wa.sha256, wb.sha256);
        assert_eq!(
            std::fs::read_to_string(&wa.sums).unwrap(),
            format!("{}  m3.tar.zst\n", wa.sha256)
        );
        assert_eq!(
            std::fs::read_to_string(&wb.sums).unwrap(),
            format!("{other}{}  m3.tar.zst\n", wb.sha256)
        );
        // Its manifest: format 2, the data dir alone, the PKI with its modes.
        let (m, enc) = crate::bundle::read::read_manifest(&wa.archive, &Key::None).unwrap();
        assert!(!enc && m.is_join() && m.format == 2);
        let paths: Vec<(&str, u32)> = m.files.iter().map(|f| (f.path.as_str(), f.mode)).collect();
        assert_eq!(
            paths,
            [
                ("data", 0o700),
                ("etcd.env", 0o600),
                ("etcd.yaml", 0o600),
                ("pki", 0o700),
                ("pki/etcd", 0o700),
                ("pki/etcd/ca.crt", 0o644),
                ("pki/etcd/server.crt", 0o644),
                ("pki/etcd/server.key", 0o600),
            ]
        );
        // Again: refused without force; with it the old one moves aside and
        // SHA256SUMS keeps one line for the member.
        let e = write_join(&b, &sample(), false).unwrap_err();
        assert!(matches!(e, JoinError::Exists(_)), "{e}");
        let mut j = sample();
        j.cluster_version = "3.5.1".into();
        let again = write_join(&b, &j, true).unwrap();
        let aside = again.moved_aside.clone().unwrap();
        assert_eq!(
            std::fs::read(&aside).unwrap(),
            std::fs::read(&wa.archive).unwrap()
        );
        assert!(aside.to_string_lossy().contains("m3.tar.zst.etcdsnap-bak-"));
        assert_eq!(
            std::fs::read_to_string(&again.sums).unwrap(),
            format!("{other}{}  m3.tar.zst\n", again.sha256)
        );
        assert_ne!(again.sha256, wb.sha256);
    }

    #[test]
    fn inputs_that_would_not_install_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let mut j = sample();
        j.flags
            .retain(|f| !f.starts_with("--initial-cluster-state"));
        let e = write_join(t.path(), &j, false).unwrap_err().to_string();
        assert!(e.contains("--initial-cluster-state=existing"), "{e}");
        let mut j = sample();
        j.peer_urls = vec!["https://10.0.0.9:2380".into()];
        let e = write_join(t.path(), &j, false).unwrap_err().to_string();
        assert!(e.contains("peer URLs"), "{e}");
        let mut j = sample();
        j.pki.push(("../evil.key".into(), vec![]));
        let e = write_join(t.path(), &j, false).unwrap_err().to_string();
        assert!(e.contains("evil"), "{e}");
        assert!(std::fs::read_dir(t.path()).unwrap().next().is_none());
    }

    /// Install into a fresh root: an empty data dir (0700), the PKI files
    /// with their modes, no revision; a rerun is already installed; a
    /// member in the data dir is refused by its IDs, moved aside with force.
    #[test]
    fn install_places_an_empty_data_dir_and_refuses_a_member_in_the_way() {
        let t = tempfile::tempdir().unwrap();
        let w = write_join(&t.path().join("out"), &sample(), false).unwrap();
        let root = t.path().join("root");
        let r = install(&w.archive, &opts(&root, false)).unwrap();
        assert!(!r.already_installed && r.checks_passed);
        assert_eq!(r.revision, None);
        assert_eq!(r.join.as_ref().unwrap().cluster_version, "3.5.0");
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            !json.contains("revision") && json.contains("\"join\""),
            "{json}"
        );
        assert!(
            r.flags
                .contains(&"--initial-cluster-state=existing".to_string())
        );
        let data = root.join("var/lib/etcd");
        assert_eq!(mode(&data), 0o700);
        assert!(std::fs::read_dir(&data).unwrap().next().is_none());
        let pki = root.join("etc/kubernetes/pki/etcd");
        assert_eq!(std::fs::read(pki.join("server.key")).unwrap(), b"KEY");
        assert_eq!(mode(&pki.join("server.key")), 0o600);
        assert_eq!(mode(&pki.join("server.crt")), 0o644);
        assert_eq!(mode(&pki.join("ca.crt")), 0o644);
        assert_eq!(std::fs::metadata(&data).unwrap().uid(), 0);

        let r = install(&w.archive, &opts(&root, false)).unwrap();
        assert!(r.already_installed, "{r:?}");

        // A member in the data dir (the restore writer's WAL: its IDs).
        let c = crate::cluster::membership::Cluster::parse(IC, "t").unwrap();
        let held = &c.members[0];
        let wal = data.join("member/wal");
        std::fs::create_dir_all(&wal).unwrap();
        let target = crate::restore::target::Target::parse("3.5").unwrap();
        std::fs::write(
            wal.join("0000000000000000-0000000000000000.wal"),
            crate::restore::wal::wal_bytes(&c, held.id, target),
        )
        .unwrap();
        let e = install(&w.archive, &opts(&root, false)).unwrap_err();
        assert!(matches!(e, InstallError::HoldsMember { .. }), "{e}");
        assert!(!e.is_check_failure());
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "member ID {:x} of cluster {:x}",
                held.id, c.cluster_id
            )) && msg.contains("--force"),
            "{msg}"
        );
        // The dry run says the same.
        let mut dry = opts(&root, false);
        dry.dry_run = true;
        let r = install(&w.archive, &dry).unwrap();
        assert!(
            r.refusal
                .as_deref()
                .unwrap()
                .contains(&format!("{:x}", held.id))
        );
        // An unreadable WAL: still refused.
        std::fs::write(wal.join("0000000000000000-0000000000000000.wal"), b"junk").unwrap();
        let msg = install(&w.archive, &opts(&root, false))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("holds a member dir (its ID could not be read: ")
                && msg.contains("0000000000000000.wal: at byte 0"),
            "{msg}"
        );
        // With force: moved aside, the data dir otherwise empty.
        let r = install(&w.archive, &opts(&root, true)).unwrap();
        assert_eq!(r.data_moved_aside.len(), 1, "{r:?}");
        let names: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with("member.etcdsnap-bak-"), "{names:?}");
        let r = install(&w.archive, &opts(&root, false)).unwrap();
        assert!(r.already_installed, "{r:?}");
        // An empty member tree left by a killed run counts as empty.
        std::fs::create_dir_all(data.join("member/wal")).unwrap();
        let r = install(&w.archive, &opts(&root, false)).unwrap();
        assert!(r.already_installed, "{r:?}");
        // But not while a swap journal is there: the tree may be what it
        // moved; it is left for the swap to settle.
        std::fs::remove_dir_all(root.join("etc/kubernetes/pki/etcd")).unwrap();
        let journal = data.join(".etcdsnap-swap-4194000.journal");
        std::fs::write(&journal, b"not a journal").unwrap();
        let e = install(&w.archive, &opts(&root, false)).unwrap_err();
        assert!(
            e.to_string().contains(".etcdsnap-swap-4194000.journal"),
            "{e}"
        );
        assert!(data.join("member/wal").is_dir());
    }
}
