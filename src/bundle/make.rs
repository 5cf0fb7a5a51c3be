//! `bundle` as a library operation: one archive per member from a snapshot,
//! a PKI and the cluster's flags. The PKI is checked first (a bundle that
//! would not boot is refused); the snapshot is read once and verified while
//! every member's data dir is built into a scratch dir beside the archives
//! (the db, the same for every member, built, verified and compressed once);
//! then each archive is written with its manifest, the file modes the format
//! requires (see the invariants in [`crate::bundle`]), and `SHA256SUMS`.
//! The scratch dir is removed whatever happens.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::manifest::{Manifest, ManifestError, MemberInfo, RestoreInfo, SnapshotInfo};
use super::write::{self, Encryption, Item, WriteError};
use super::{FORMAT_VERSION, SUMS_NAME, archive_name};
use crate::backend::status::StatusError;
use crate::bolt::db::OpenError;
use crate::cluster::flags::{FlagsError, client_urls, client_urls_of, env_text, start_flags};
use crate::cluster::membership::{Cluster, Member, MembershipError};
use crate::cluster::podspec::{self, PodError};
use crate::durable::swap::{self, SwapError};
use crate::durable::{self, IoError};
use crate::input::{Excess, InputError};
use crate::pki::layout::NodeFile;
use crate::pki::{Finding, MemberUrls, PkiError};
use crate::restore::bump::{BumpError, bump};
use crate::restore::datadir::{Options, RestoreError};
use crate::restore::owner::Owner;
use crate::restore::source::{self, OpenSnapshotError, Opened, Passed, SourceError, verify_beside};
use crate::restore::target::Target;

/// Where a member's data dir is on its node (kubeadm's).
pub const DATA_DIR: &str = "/var/lib/etcd";
/// Where the PKI is on a node (kubeadm's).
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
/// The db's entry in every archive.
const DB_ENTRY: &str = "data/member/snap/db";
/// Private keys, the data dir's files, `etcd.env` and `etcd.yaml`.
const PRIVATE_MODE: u32 = 0o600;
/// Certificates and `SHA256SUMS`.
const PUBLIC_MODE: u32 = 0o644;
/// The scratch dir's name in the output dir, before the pid.
const SCRATCH_PREFIX: &str = ".etcdsnap-bundle-staging-";

/// What `bundle` is asked to do: its flags.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The snapshot.
    pub snapshot: PathBuf,
    /// Every member as `NAME=PEER_URL`, comma-separated.
    pub initial_cluster: String,
    /// The cluster token.
    pub initial_cluster_token: String,
    /// `--client-urls`: `NAME=URL,…`.
    pub client_urls: Option<String>,
    /// The PKI to pack.
    pub pki: PathBuf,
    /// Where the archives and `SHA256SUMS` go.
    pub out: PathBuf,
    /// Start the keyspace this many revisions later.
    pub bump_revision: Option<u64>,
    /// Mark the bumped revision compacted.
    pub mark_compacted: bool,
    /// The etcd release to write for.
    pub target_version: Option<String>,
    /// Drop the alarms recorded in the snapshot.
    pub clear_alarms: bool,
    /// The static pod's image (default kubeadm's for the release).
    pub image: Option<String>,
    /// The owner recorded for every file (default 0:0).
    pub owner: Option<Owner>,
    /// Pack the etcd CA's private key too.
    pub include_ca_key: bool,
    /// Pack although `pki check` finds errors.
    pub force_pki: bool,
    /// Encrypt each archive to these age recipients (`age1…`).
    pub encrypt_to: Vec<String>,
    /// Encrypt each archive with the passphrase on this file's first line.
    pub passphrase_file: Option<PathBuf>,
    /// Replace existing archives and `SHA256SUMS`.
    pub force: bool,
    /// Check and plan; write nothing.
    pub dry_run: bool,
}

/// Why no bundle was written. Nothing is left behind: the scratch dir and
/// any partial archive are removed.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// `--bump-revision` and `--mark-compacted` disagree.
    #[error("{0}")]
    Bump(#[source] BumpError),
    /// `--initial-cluster` does not parse.
    #[error("{0}")]
    Membership(#[source] MembershipError),
    /// `--client-urls` is wrong.
    #[error("{0}")]
    Flags(#[source] FlagsError),
    /// An `--encrypt-to` is not an age recipient.
    #[error("--encrypt-to {recipient}: not an age recipient: {why}")]
    Recipient {
        /// The value given.
        recipient: String,
        /// Why age refuses it.
        why: String,
    },
    /// The passphrase file could not be read.
    #[error("{}", .path.display())]
    Passphrase {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        err: std::io::Error,
    },
    /// The passphrase file's first line is empty.
    #[error("{}: the first line (the passphrase) is empty", .0.display())]
    EmptyPassphrase(PathBuf),
    /// The PKI could not be read.
    #[error("{0}")]
    Pki(#[source] PkiError),
    /// `pki check` found errors and `--force-pki` was not given.
    #[error(
        "not bundling: `pki check` found {errors} error(s) in {} (--force-pki packs them anyway, and the manifest records it)",
        .dir.display()
    )]
    PkiErrors {
        /// How many.
        errors: usize,
        /// The PKI dir.
        dir: PathBuf,
    },
    /// The PKI holds nothing for a member.
    #[error("{}: no PKI files for member {member}", .dir.display())]
    NoPkiFiles {
        /// The PKI dir.
        dir: PathBuf,
        /// The member.
        member: String,
    },
    /// An archive or `SHA256SUMS` is there and `--force` was not given.
    #[error("{}: exists; use --force to replace it", .0.display())]
    Exists(PathBuf),
    /// `--image` is not an image reference.
    #[error("--image {0:?} is not an image reference")]
    BadImage(String),
    /// No image is known for the release, and none was given.
    #[error("no kubeadm etcd image is known for etcd {0}: give --image for the static pod")]
    NoImage(&'static str),
    /// The snapshot could not be opened.
    #[error("{0}")]
    Open(#[source] OpenSnapshotError),
    /// The output dir could not be created.
    #[error("{}", .path.display())]
    OutDir {
        /// The output dir.
        path: PathBuf,
        /// Why.
        #[source]
        err: std::io::Error,
    },
    /// What a killed run left could not be cleaned.
    #[error("{0}")]
    Clean(#[source] SwapError),
    /// The snapshot fails verification.
    #[error("not bundling a snapshot that fails verification")]
    Unsound(Box<crate::verify::Report>),
    /// The snapshot was refused for another reason.
    #[error("{0}")]
    Source(#[source] SourceError),
    /// The restored db could not be built.
    #[error("{0}")]
    Restore(#[source] RestoreError),
    /// A member's data dir could not be staged.
    #[error("restoring member {name}")]
    Member {
        /// The member.
        name: String,
        /// Why.
        #[source]
        err: Box<WriteError>,
    },
    /// The staged db could not be read back.
    #[error("{0}")]
    Input(#[source] InputError),
    /// The staged db does not open.
    #[error("{0}")]
    Db(#[source] OpenError),
    /// The staged db's status could not be computed.
    #[error("{0}")]
    Status(#[source] StatusError),
    /// A staged file could not be removed.
    #[error("{}: removing", .path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        err: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[source] IoError),
    /// The static pod could not be written.
    #[error("{0}")]
    Pod(#[source] PodError),
    /// The manifest breaks the format (a bug, never written).
    #[error("the manifest written breaks the format's rules")]
    Manifest(#[source] ManifestError),
    /// An archive could not be written.
    #[error("{0}")]
    Write(#[source] Box<WriteError>),
}

/// Something said while a bundle is made, for the operator.
pub enum Event<'a> {
    /// A compressed snapshot held data past the db that was not inflated.
    Excess {
        /// The snapshot.
        path: &'a Path,
        /// What was past the db.
        excess: Excess,
    },
    /// One finding of `pki check`.
    PkiFinding(&'a Finding),
    /// What a killed run left was cleaned, one line.
    Cleaned(&'a str),
    /// An archive holds private keys unencrypted.
    Unencrypted {
        /// The archive.
        archive: &'a Path,
        /// The private keys' paths in it.
        keys: &'a [String],
    },
}

/// One archive made (or that would be).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MadeArchive {
    /// The member's name.
    pub member: String,
    /// Its ID, hex.
    pub member_id: String,
    /// The archive's path.
    pub file: String,
    /// The archive's sha256 (empty in a dry run).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Its entries (with the manifest).
    pub files: usize,
    /// The private keys in it.
    pub private_keys: Vec<String>,
    /// The member's start flags.
    pub flags: Vec<String>,
}

/// What `bundle` made (or would make).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Made {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// The snapshot's path.
    pub snapshot: String,
    /// The snapshot's sha256.
    pub snapshot_sha256: String,
    /// The keyspace's revision.
    pub revision: i64,
    /// The release the data dirs are written for.
    pub target_version: &'static str,
    /// The cluster ID, hex.
    pub cluster_id: String,
    /// Whether the archives are encrypted.
    pub encrypted: bool,
    /// Whether PKI errors were packed anyway.
    pub force_pki: bool,
    /// Every finding of `pki check`.
    pub pki_findings: Vec<Finding>,
    /// Every archive.
    pub archives: Vec<MadeArchive>,
    /// `SHA256SUMS`'s path, once written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sums: Option<String>,
}

/// Everything checked before the snapshot is read.
struct Prepared<'r> {
    req: &'r Request,
    cluster: Cluster,
    clients: std::collections::HashMap<String, Vec<String>>,
    enc: Encryption,
    pki_findings: Vec<Finding>,
    pki_errors: usize,
    /// Each member's PKI files, in the cluster's order.
    pki_files: Vec<Vec<NodeFile>>,
    /// Each member's archive path.
    archives: Vec<PathBuf>,
    sums_path: PathBuf,
    owner: (u32, u32),
    bump: Option<u64>,
}

impl Prepared<'_> {
    fn members(&self) -> impl Iterator<Item = &Member> {
        self.cluster.members.iter()
    }

    /// The flags member `m` starts with on its node.
    fn flags_of(&self, m: &Member) -> Vec<String> {
        start_flags(
            &self.cluster,
            m,
            Path::new(DATA_DIR),
            None,
            self.clients.get(&m.name),
            &Path::new(PKI_DIR).join("etcd"),
        )
    }
}

/// The db every member ships: its item (the frame compressed once) and its
/// `status` hash and revision.
#[derive(Default)]
struct SharedDb {
    item: Option<Item>,
    status: (u32, i64),
}

/// kubeadm's metrics listener, which its probes hit: loopback port 2381
/// (`[::1]` when the member is reached over IPv6).
fn metrics_url(m: &Member) -> String {
    let v6 = m
        .peer_urls
        .first()
        .and_then(|u| crate::cluster::flags::url_parts(u))
        .is_some_and(|(_, h, _)| h.contains(':'));
    if v6 {
        "http://[::1]:2381".into()
    } else {
        "http://127.0.0.1:2381".into()
    }
}

fn read_passphrase(p: &Path) -> Result<String, MakeError> {
    let text = std::fs::read_to_string(p).map_err(|err| MakeError::Passphrase {
        path: p.to_path_buf(),
        err,
    })?;
    let pass = text.lines().next().unwrap_or("").to_string();
    if pass.is_empty() {
        return Err(MakeError::EmptyPassphrase(p.to_path_buf()));
    }
    Ok(pass)
}

fn encryption(req: &Request) -> Result<Encryption, MakeError> {
    Ok(if !req.encrypt_to.is_empty() {
        let mut rs = Vec::new();
        for r in &req.encrypt_to {
            rs.push(
                r.parse::<age::x25519::Recipient>()
                    .map_err(|e| MakeError::Recipient {
                        recipient: r.clone(),
                        why: e.to_string(),
                    })?,
            );
        }
        Encryption::Recipients(rs)
    } else if let Some(p) = &req.passphrase_file {
        Encryption::Passphrase(age::secrecy::SecretString::from(read_passphrase(p)?))
    } else {
        Encryption::None
    })
}

/// Checks the request and the PKI (each finding said through `on`): the
/// flags, the encryption, every member's PKI files, archives that would be
/// replaced, the image.
fn prepare<'r>(
    req: &'r Request,
    on: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<Prepared<'r>, MakeError> {
    let bump = bump(req.bump_revision, req.mark_compacted).map_err(MakeError::Bump)?;
    let cluster = Cluster::parse(&req.initial_cluster, &req.initial_cluster_token)
        .map_err(MakeError::Membership)?;
    let members: Vec<_> = cluster.members.iter().collect();
    let clients = client_urls(req.client_urls.as_deref(), &members).map_err(MakeError::Flags)?;
    let enc = encryption(req)?;
    // The PKI first: it is cheap, and a bundle that would not boot is refused.
    let urls: Vec<MemberUrls> = members
        .iter()
        .map(|m| MemberUrls {
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: client_urls_of(m, clients.get(&m.name)).0,
        })
        .collect();
    let pki_report =
        crate::pki::check::check_dir(&req.pki, &urls, SystemTime::now()).map_err(MakeError::Pki)?;
    let errors = pki_report.errors();
    for f in &pki_report.findings {
        on(Event::PkiFinding(f));
    }
    if errors > 0 && !req.force_pki {
        return Err(MakeError::PkiErrors {
            errors,
            dir: req.pki.clone(),
        });
    }
    let mut pki_files = Vec::new();
    for m in &members {
        let files = pki_report.layout.node_files(&m.name, req.include_ca_key);
        if files.is_empty() {
            return Err(MakeError::NoPkiFiles {
                dir: req.pki.clone(),
                member: m.name.clone(),
            });
        }
        pki_files.push(files);
    }
    // Archives are never replaced unless asked, checked before any work.
    let archives: Vec<PathBuf> = members
        .iter()
        .map(|m| req.out.join(archive_name(&m.name, enc.is_some())))
        .collect();
    let sums_path = req.out.join(SUMS_NAME);
    if !req.force && !req.dry_run {
        for p in archives.iter().chain(std::iter::once(&sums_path)) {
            if std::fs::symlink_metadata(p).is_ok() {
                return Err(MakeError::Exists(p.clone()));
            }
        }
    }
    if let Some(i) = &req.image
        && !podspec::is_image_ref(i)
    {
        return Err(MakeError::BadImage(i.clone()));
    }
    Ok(Prepared {
        req,
        cluster,
        clients,
        enc,
        pki_findings: pki_report.findings,
        pki_errors: errors,
        pki_files,
        archives,
        sums_path,
        owner: req.owner.map_or((0, 0), Owner::ids),
        bump,
    })
}

/// Makes one archive per member as [`Request`] says (see the module
/// comment); in a dry run, checks everything and reads the snapshot, and
/// writes nothing. What is said on the way goes to `on`.
pub fn make(req: &Request, on: &mut (dyn FnMut(Event<'_>) + Send)) -> Result<Made, MakeError> {
    let p = prepare(req, on)?;
    let scratch = req
        .out
        .join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
    // The snapshot, read once for every member: verified on one core while
    // the other builds every member's data dir from it into the scratch dir
    // (restore::source).
    let file = source::open(&req.snapshot, &mut |path, excess| {
        on(Event::Excess { path, excess })
    })
    .map_err(MakeError::Open)?;
    if !req.dry_run {
        std::fs::create_dir_all(&req.out).map_err(|err| MakeError::OutDir {
            path: req.out.clone(),
            err,
        })?;
        for line in
            swap::clean_stale_prefixed(&req.out, SCRATCH_PREFIX).map_err(MakeError::Clean)?
        {
            on(Event::Cleaned(&line));
        }
    }
    let result = (|| {
        let passed = match verify_beside(&file, false, req.target_version.as_deref(), |o| {
            stage(&p, &scratch, o)
        }) {
            Ok(passed) => passed,
            Err(refused) => {
                return Err(match refused.discard_with(drop) {
                    SourceError::Unsound { report, .. } => MakeError::Unsound(report),
                    err => MakeError::Source(err),
                });
            }
        };
        let Passed {
            snapshot_release,
            target,
            revision,
            sha256,
            work,
            ..
        } = passed;
        let shared = work?;
        let image = match (&req.image, podspec::default_image(target.line())) {
            (Some(i), _) => i.clone(),
            (None, Some(i)) => i.to_string(),
            (None, None) => return Err(MakeError::NoImage(target.line())),
        };
        let mut made = Made {
            dry_run: req.dry_run,
            snapshot: file.path().display().to_string(),
            snapshot_sha256: sha256.clone(),
            revision,
            target_version: target.line(),
            cluster_id: format!("{:x}", p.cluster.cluster_id),
            encrypted: p.enc.is_some(),
            force_pki: p.pki_errors > 0,
            pki_findings: p.pki_findings.clone(),
            archives: Vec::new(),
            sums: None,
        };
        if req.dry_run {
            made.archives = planned_archives(&p);
            return Ok(made);
        }
        let snapshot = SnapshotInfo {
            sha256,
            revision,
            release: snapshot_release.line().to_string(),
        };
        let packed = Packing {
            p: &p,
            scratch: &scratch,
            shared: &shared,
            image: &image,
            target,
            snapshot,
        };
        let mut sums = Vec::new();
        for (i, m) in p.members().enumerate() {
            let a = packed.archive(i, m, on)?;
            let file_name = p.archives[i]
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            sums.push((file_name, a.sha256.clone()));
            made.archives.push(a);
        }
        let text = write::sums_text(&sums);
        durable::write_atomic(&p.sums_path, text.as_bytes()).map_err(MakeError::Io)?;
        durable::set_mode(&p.sums_path, PUBLIC_MODE).map_err(MakeError::Io)?;
        made.sums = Some(p.sums_path.display().to_string());
        Ok(made)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The archives a dry run would write.
fn planned_archives(p: &Prepared<'_>) -> Vec<MadeArchive> {
    p.members()
        .zip(&p.pki_files)
        .zip(&p.archives)
        .map(|((m, files), path)| MadeArchive {
            member: m.name.clone(),
            member_id: format!("{:x}", m.id),
            file: path.display().to_string(),
            sha256: String::new(),
            files: files.len(),
            private_keys: private_keys(files),
            flags: p.flags_of(m),
        })
        .collect()
}

fn private_keys(files: &[NodeFile]) -> Vec<String> {
    files
        .iter()
        .filter(|f| f.private_key)
        .map(|f| format!("pki/{}", f.dest.display()))
        .collect()
}

/// The work beside the verifier: every member's data dir built into the
/// scratch dir. The db, the same for every member, is built once, verified,
/// and hashed and compressed once as its own zstd frame, which goes into
/// every archive; the other members stage only their `.snap` and WAL.
fn stage(p: &Prepared<'_>, scratch: &Path, o: Opened<'_>) -> Result<SharedDb, MakeError> {
    if p.req.dry_run {
        return Ok(SharedDb::default());
    }
    let opts = Options {
        bump_revision: p.bump,
        clear_alarms: p.req.clear_alarms,
        force: false,
        owner: None,
    };
    let restored = o.restored(&p.cluster, &opts).map_err(MakeError::Restore)?;
    let src = restored.source(&p.cluster);
    durable::mkdir_0700(scratch).map_err(MakeError::Io)?;
    let mut shared = SharedDb::default();
    for m in p.members() {
        let dir = scratch.join(&m.name);
        write::stage_data_dir(&src, m, &dir, shared.item.is_none()).map_err(|err| {
            MakeError::Member {
                name: m.name.clone(),
                err: Box::new(err),
            }
        })?;
        if shared.item.is_none() {
            let db_path = dir.join("member/snap/db");
            let f = crate::input::SnapshotFile::open(&db_path).map_err(MakeError::Input)?;
            let db = crate::bolt::Db::open(f.db()).map_err(MakeError::Db)?;
            let st = crate::backend::status::status(&db).map_err(MakeError::Status)?;
            shared.status = (st.hash, st.revision);
            drop(f);
            let frame = scratch.join("db.zst-frame");
            shared.item = Some(
                write::frame_item(DB_ENTRY, &db_path, &frame, PRIVATE_MODE, p.owner)
                    .map_err(MakeError::Io)?,
            );
            // Shipped from the frame: not walked again below.
            std::fs::remove_file(&db_path).map_err(|err| MakeError::Remove {
                path: db_path.clone(),
                err,
            })?;
        }
    }
    Ok(shared)
}

/// What every archive is packed from once the snapshot passed.
struct Packing<'a> {
    p: &'a Prepared<'a>,
    scratch: &'a Path,
    shared: &'a SharedDb,
    image: &'a str,
    target: Target,
    snapshot: SnapshotInfo,
}

impl Packing<'_> {
    /// Writes member `m`'s archive (the `i`th).
    fn archive(
        &self,
        i: usize,
        m: &Member,
        on: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<MadeArchive, MakeError> {
        let p = self.p;
        let (path, files) = (&p.archives[i], &p.pki_files[i]);
        let flags = p.flags_of(m);
        let (adv_client, _) = client_urls_of(m, p.clients.get(&m.name));
        let items = self.items(m, files, &flags, &adv_client)?;
        let manifest = self.manifest(m, &flags, adv_client, &items);
        manifest.validate().map_err(MakeError::Manifest)?;
        let sha = write::write_archive(path, &manifest, &items, &p.enc, p.req.force)
            .map_err(|e| MakeError::Write(Box::new(e)))?;
        let keys = private_keys(files);
        if !p.enc.is_some() && !keys.is_empty() {
            on(Event::Unencrypted {
                archive: path,
                keys: &keys,
            });
        }
        Ok(MadeArchive {
            member: m.name.clone(),
            member_id: format!("{:x}", m.id),
            file: path.display().to_string(),
            sha256: sha,
            files: items.len() + 1,
            private_keys: keys,
            flags,
        })
    }

    /// Every entry of member `m`'s archive, sorted by path, with the modes
    /// the format requires: private keys and data files 0600, certificates
    /// 0644 (directories 0700, from [`write::parent_dirs`] and
    /// [`write::data_items`]).
    fn items(
        &self,
        m: &Member,
        files: &[NodeFile],
        flags: &[String],
        adv_client: &[String],
    ) -> Result<Vec<Item>, MakeError> {
        let owner = self.p.owner;
        let dir = self.scratch.join(&m.name);
        let mut items: Vec<Item> = write::data_items(&dir, owner).map_err(MakeError::Io)?;
        items.extend(self.shared.item.clone());
        let mut pki_items = Vec::new();
        for f in files {
            let mode = if f.private_key {
                PRIVATE_MODE
            } else {
                PUBLIC_MODE
            };
            let p = format!("pki/{}", f.dest.display());
            pki_items.push(write::file_item(&p, &f.source, mode, owner).map_err(MakeError::Io)?);
        }
        items.extend(write::parent_dirs(&pki_items, owner));
        items.extend(pki_items);
        items.push(write::bytes_item(
            "etcd.env",
            env_text(flags).into_bytes(),
            PRIVATE_MODE,
            owner,
        ));
        // The pod adds kubeadm's metrics listener, which its probes hit;
        // the flags (etcd.env, the manifest) leave it out, so members
        // started from them on one host do not clash on it.
        let mut pod_flags = flags.to_vec();
        pod_flags.push(format!("--listen-metrics-urls={}", metrics_url(m)));
        let yaml = podspec::etcd_pod(&podspec::PodInput {
            flags: &pod_flags,
            image: self.image,
            line: self.target.line(),
            data_dir: DATA_DIR,
            pki_etcd_dir: &format!("{PKI_DIR}/etcd"),
            advertise_client: &adv_client.join(","),
        })
        .map_err(MakeError::Pod)?;
        items.push(write::bytes_item(
            "etcd.yaml",
            yaml.into_bytes(),
            PRIVATE_MODE,
            owner,
        ));
        items.sort_by(|x, y| x.entry.path.cmp(&y.entry.path));
        Ok(items)
    }

    /// Member `m`'s manifest, listing `items`.
    fn manifest(
        &self,
        m: &Member,
        flags: &[String],
        adv_client: Vec<String>,
        items: &[Item],
    ) -> Manifest {
        let p = self.p;
        let (db_hash, db_revision) = self.shared.status;
        Manifest {
            format: FORMAT_VERSION,
            etcdsnap_version: env!("CARGO_PKG_VERSION").to_string(),
            member: MemberInfo {
                name: m.name.clone(),
                id: format!("{:x}", m.id),
                peer_urls: m.peer_urls.clone(),
                client_urls: adv_client,
            },
            cluster_id: format!("{:x}", p.cluster.cluster_id),
            initial_cluster: p.cluster.initial_cluster.clone(),
            initial_cluster_token: p.cluster.token.clone(),
            snapshot: Some(self.snapshot.clone()),
            restore: Some(RestoreInfo {
                target_version: self.target.line().to_string(),
                bump_revision: p.bump,
                mark_compacted: p.req.mark_compacted,
                clear_alarms: p.req.clear_alarms,
                db_hash,
                db_revision,
            }),
            join: None,
            force_pki: p.pki_errors > 0,
            data_dir: DATA_DIR.into(),
            pki_dir: PKI_DIR.into(),
            flags: flags.to_vec(),
            files: items.iter().map(|i| i.entry.clone()).collect(),
        }
    }
}
