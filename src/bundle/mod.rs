//! Bundles: one file per member holding everything its node needs to boot
//! from a restored snapshot — the data dir, the PKI files, the start flags —
//! written by `bundle`, checked by `bundle inspect`, placed by `install`.
//! A join archive (format 2, [`join`]) is the same file for a member that
//! joins a running cluster: no data, an empty data dir.
//!
//! # Format (version 1)
//!
//! Invariants, written on every bundle and checked on every read:
//!
//! 1. A bundle directory holds one `<member name>.tar.zst` per member
//!    (`<member name>.tar.zst.age` when encrypted with age) and `SHA256SUMS`,
//!    in `sha256sum` format (`<64 lowercase hex>  <file name>`), listing the
//!    sha256 of each archive file exactly as it is on disk (after encryption).
//! 2. An archive is a zstd stream (one or more frames) of a ustar archive
//!    (written by the `tar` crate). The first entry is `manifest.json`
//!    (at most [`MAX_MANIFEST_BYTES`]); every other entry follows in the
//!    order of the manifest's `files`, which is sorted by path (byte order)
//!    with no repeats.
//! 3. Entries are regular files and directories only: no links, devices,
//!    FIFOs, no pax or GNU extension headers (paths fit ustar's 255 bytes).
//!    A path is relative UTF-8, without `.`/`..`/empty components, and lies
//!    below `data/` (the member's data dir: `data/member/snap/db`, the
//!    `.snap`, `data/member/wal/…`), below `pki/` (kubeadm's names below
//!    `/etc/kubernetes/pki`, e.g. `pki/etcd/server.key`), or is `etcd.env`
//!    or `etcd.yaml` (the start flags as an environment file, and the
//!    kubeadm static pod kubelet runs: `cluster::podspec`). Every file's parent
//!    directory is listed. `docs/design/bundle-format.md` describes it all.
//! 4. Every entry's type, size and mode equal its manifest entry; every
//!    file's bytes hash to the manifest's sha256. Private keys (`pki/**.key`)
//!    are mode 0600, certificates 0644, directories 0700, data files 0600.
//! 5. Reproducible: the same inputs give the same bytes — entries sorted,
//!    mtime 0, uid/gid as `--owner` (default 0:0), user and group names
//!    empty, zstd level [`ZSTD_LEVEL`] in multithreaded mode, whose output
//!    does not depend on the number of worker threads (tested). An encrypted
//!    archive is not reproducible: age draws a fresh file key each time.
//!
//! # Format 2: join archives
//!
//! The same invariants, with these differences (`manifest` checks them):
//! `"format": 2`; a `join` object (`initialClusterState`, always
//! `existing`, and the running cluster's `clusterVersion`); no `snapshot`
//! and no `restore`; the `data` directory listed (0700) and no entry below
//! it. The member and cluster IDs are the running cluster's, so they are not
//! recomputed from `initialCluster`; the member must be in it with the same
//! peer URLs, and its flags must start it with
//! `--initial-cluster-state=existing` ([`join::consistency`]). Every reader
//! reads `format` first, so a version it does not know is refused by its
//! number. `install` leaves the data dir empty and refuses one that holds a
//! member (named by its WAL's IDs) unless forced.
//!
//! # What binds what
//!
//! The manifest lists every file's sha256; `SHA256SUMS` binds the manifest
//! and every byte of the archive. So a manifest edited to match a changed
//! file changes the archive's sha256, and `install` refuses it: it hashes
//! the archive while it streams it and compares with `SHA256SUMS` before
//! anything is swapped in (the archive is refused when `SHA256SUMS` does not
//! list it). That protects against damage and mistakes, not against someone
//! who can also rewrite `SHA256SUMS`; against them, encrypt with a passphrase
//! (age's header MAC then needs the passphrase to forge) and carry
//! `SHA256SUMS` separately.

pub mod archive;
pub mod extract;
pub mod inspect;
pub mod install;
pub mod join;
pub mod make;
pub mod manifest;
pub mod read;
pub mod write;

/// The manifest's `format` of a restored member's archive.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's `format` of a join archive (an empty data dir: the
/// member joins a running cluster; see `join`).
pub const JOIN_FORMAT_VERSION: u32 = 2;
/// The first entry of every archive.
pub const MANIFEST_NAME: &str = "manifest.json";
/// A manifest larger than this is refused before it is parsed.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// At most this many files and directories in one archive.
pub const MAX_ENTRIES: usize = 10_000;
/// The list of archives' sha256 beside them.
pub const SUMS_NAME: &str = "SHA256SUMS";
/// zstd level: 1, the fastest of the standard levels. The data dir's bulk is
/// the db (bbolt pages, which compress 2–4× at any level) and the
/// preallocated WAL (zeros); higher levels cost time on every member for a
/// few percent.
pub const ZSTD_LEVEL: i32 = 1;

/// The sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file name of member `name`'s archive.
pub fn archive_name(name: &str, encrypted: bool) -> String {
    if encrypted {
        format!("{name}.tar.zst.age")
    } else {
        format!("{name}.tar.zst")
    }
}
