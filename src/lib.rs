//! etcdsnap: an offline toolkit and verifier for etcd snapshot files.
//!
//! Library first, thin binary. The modules stand on floors, each importing
//! only the floors below it (the map, and the few imports allowed within a
//! floor, are in `docs/design/architecture.md`; `.ci/layers` checks them):
//!
//! 0. the base: [`problem`] (one located problem), [`protowire`] (zero-copy
//!    protobuf reading), [`interrupt`] (Ctrl-C for writers), [`yaml`] (YAML
//!    every Kubernetes reader reads back), [`report`] (tables, sizes,
//!    escaping), [`remote`] (`s3://`, `gs://`, `az://` and `http(s)://`
//!    sources spooled once), [`input`] (mapping, decompression, trailer) and [`durable`]
//!    (fsynced, atomic writes and the journaled swap of a member dir);
//! 1. [`bolt`]: bbolt pages, the one walk, its checks, and the writer;
//! 2. [`mvcc`]: revisions, `KeyValue`, the keyspace, the key index, HashKV;
//! 3. [`backend`]: etcd's buckets, `status`, layout checks;
//! 4. [`cluster`]: `--initial-cluster`, member and cluster IDs, start flags,
//!    env files and the static pod;
//! 5. [`verify`]: every check of a file together;
//! 6. [`kube`]: Kubernetes values and resources, decryption;
//! 7. the capabilities: [`restore`] (data dirs from a snapshot), [`diff`]
//!    (two keyspaces as objects), [`inspect`] (what fills a snapshot),
//!    [`check`] (verify plus a policy), `pki` (PKI checks and issuing),
//!    `bundle` (per-member bundles), `catalog` (the backup catalog),
//!    [`lookup`] (an object or a key's history: key index, cache, which
//!    revision), [`salvage`] (every intact record of a damaged snapshot
//!    into a new one) and `live` (the only code that dials etcd);
//! 8. the command line, in the binary (`src/cli/`, not part of the library):
//!    parsing, one library call per command, rendering and exit codes.
//!
//! `pki`, `bundle`, `catalog`, `live` and `remote` (the transfer of remote
//! sources) are cargo features (all on by default); without them the crate
//! builds the offline reader alone.
//!
//! # Reading a snapshot
//!
//! Open the file (mapped, decompressed if need be), check it, then read the
//! keyspace and decode what the API server stored:
//!
//! ```
//! use etcdsnap::{bolt::Db, input::SnapshotFile, kube::value, mvcc::keyspace::KeySpace};
//!
//! let file = SnapshotFile::open("fixtures/etcd-3.5.1.db".as_ref())?;
//! assert!(etcdsnap::verify::verify(&file).passed);
//!
//! let db = Db::open(file.db())?;
//! let keys = KeySpace::open(&db)?;
//! let history = keys.history(b"/registry/configmaps/default/app-config")?;
//! let latest = history.last().ok_or("no revision")?;
//! let object = value::decode(latest.kv.value)?;
//! assert_eq!(object["metadata"]["name"], "app-config");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every command of the binary is one library call like these: [`verify`]
//! (with `kube::deep::verify_with_values` for `--deep`),
//! `restore::plan::plan` and `restore::execute::execute`, `bundle::make::make`,
//! `bundle::install::install`, [`lookup`] for `get` and `history`,
//! `diff::run` for `diff`.

#![warn(missing_docs)]

pub mod backend;
pub mod bolt;
#[cfg(feature = "bundle")]
pub mod bundle;
#[cfg(feature = "catalog")]
pub mod catalog;
pub mod check;
pub mod cluster;
pub mod diff;
#[cfg(feature = "live")]
pub mod drill;
pub mod durable;
pub mod html;
pub mod input;
pub mod inspect;
pub mod interrupt;
pub mod kube;
#[cfg(feature = "live")]
pub mod live;
pub mod lookup;
pub mod mvcc;
#[cfg(feature = "pki")]
pub mod pki;
pub mod problem;
pub mod protowire;
pub mod remote;
pub mod report;
pub mod restore;
pub mod salvage;
pub mod verify;
pub mod yaml;
