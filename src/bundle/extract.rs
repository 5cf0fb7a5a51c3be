//! `bundle extract --start-files` as a library operation: an archive's start
//! files (`etcd.env`, `etcd.yaml`) written to a directory, only after the
//! archive passed every check (each entry against its manifest, its sha256
//! against `SHA256SUMS`). Old files are moved aside, never overwritten.

use std::path::{Path, PathBuf};

use super::SUMS_NAME;
use super::manifest::{FileEntry, Manifest};
use super::read::{Key, ReadError, listed_sum, open_and_check};
use crate::durable::{self, IoError};

/// The start files an archive holds.
pub const START_FILES: [&str; 2] = ["etcd.env", "etcd.yaml"];

/// The start files are small; a larger one is refused, not held.
const MAX_START_FILE: u64 = 1 << 20;

/// Why nothing (or not everything) was extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// A start file is there and `force` was not given.
    #[error("{}: exists; use --force to replace it (the old one is moved aside)", .0.display())]
    Exists(PathBuf),
    /// `SHA256SUMS` does not vouch for the archive (nothing written).
    #[error("{0}")]
    Unlisted(#[source] ReadError),
    /// The archive could not be read, or failed a check (nothing written).
    #[error("{0}")]
    Read(#[source] ReadError),
    /// The archive's sha256 is not the one `SHA256SUMS` lists (nothing
    /// written).
    #[error("{}: sha256 {got}, {SUMS_NAME} lists {want}: not extracting", .archive.display())]
    Digest {
        /// The archive.
        archive: PathBuf,
        /// Its sha256.
        got: String,
        /// What `SHA256SUMS` lists.
        want: String,
    },
    /// An old start file could not be moved aside.
    #[error("{}: moving aside", .path.display())]
    MoveAside {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        err: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("{0}")]
    Io(#[source] IoError),
}

impl ExtractError {
    /// Whether the archive was refused by a check (exit 1), as opposed to an
    /// I/O error or a usage error (exit 2).
    pub fn is_refusal(&self) -> bool {
        match self {
            ExtractError::Unlisted(_) | ExtractError::Digest { .. } => true,
            ExtractError::Read(e) => e.is_check_failure(),
            _ => false,
        }
    }
}

/// One start file written.
#[derive(Debug, Clone)]
pub struct Written {
    /// Where.
    pub path: PathBuf,
    /// Where the old one went, if there was one.
    pub moved_aside: Option<PathBuf>,
    /// Its size.
    pub bytes: usize,
}

/// What was extracted.
#[derive(Debug, Clone)]
pub struct Extracted {
    /// The archive's manifest.
    pub manifest: Manifest,
    /// Every start file written, in the archive's order.
    pub written: Vec<Written>,
}

/// The start files of an archive, kept in memory while it is checked.
#[derive(Default)]
struct StartFiles {
    files: Vec<(String, Vec<u8>)>,
}

impl super::archive::Sink for StartFiles {
    fn manifest(&mut self, _: &Manifest) -> Result<(), String> {
        Ok(())
    }
    fn dir(&mut self, _: &FileEntry) -> std::io::Result<()> {
        Ok(())
    }
    fn file(&mut self, e: &FileEntry, data: &mut dyn std::io::Read) -> std::io::Result<()> {
        if START_FILES.contains(&e.path.as_str()) {
            if e.size > MAX_START_FILE {
                return Err(std::io::Error::other(format!(
                    "{}: {} bytes, more than a start file holds ({MAX_START_FILE})",
                    e.path, e.size
                )));
            }
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(data, MAX_START_FILE), &mut v)?;
            self.files.push((e.path.clone(), v));
            Ok(())
        } else {
            std::io::copy(data, &mut std::io::sink()).map(|_| ())
        }
    }
}

/// Writes `archive`'s start files into `out` (created 0700 if missing),
/// each 0600, once the archive passed every check; with `force`, files in
/// the way are moved aside as `<file>.etcdsnap-bak-<UTC time>`.
pub fn extract_start_files(
    archive: &Path,
    out: &Path,
    key: &Key,
    force: bool,
) -> Result<Extracted, ExtractError> {
    // Refuse before reading when a file is there and --force is not given.
    if !force {
        for t in START_FILES.map(|n| out.join(n)) {
            if std::fs::symlink_metadata(&t).is_ok() {
                return Err(ExtractError::Exists(t));
            }
        }
    }
    let want = listed_sum(archive).map_err(ExtractError::Unlisted)?;
    let mut sink = StartFiles::default();
    let opened = open_and_check(archive, key, &mut sink).map_err(ExtractError::Read)?;
    if opened.sha256 != want {
        return Err(ExtractError::Digest {
            archive: archive.to_path_buf(),
            got: opened.sha256,
            want,
        });
    }
    if !out.exists() {
        durable::mkdir_0700(out).map_err(ExtractError::Io)?;
        durable::sync_path(durable::parent_of(out)).map_err(ExtractError::Io)?;
    }
    let stamp = durable::utc_stamp();
    let mut written = Vec::new();
    for (name, bytes) in &sink.files {
        let dest = out.join(name);
        let mut moved_aside = None;
        if std::fs::symlink_metadata(&dest).is_ok() {
            let bak = out.join(format!("{name}.etcdsnap-bak-{stamp}"));
            std::fs::rename(&dest, &bak).map_err(|err| ExtractError::MoveAside {
                path: dest.clone(),
                err,
            })?;
            moved_aside = Some(bak);
        }
        durable::write_atomic(&dest, bytes).map_err(ExtractError::Io)?;
        durable::set_mode(&dest, 0o600).map_err(ExtractError::Io)?;
        written.push(Written {
            path: dest,
            moved_aside,
            bytes: bytes.len(),
        });
    }
    Ok(Extracted {
        manifest: opened.manifest,
        written,
    })
}
