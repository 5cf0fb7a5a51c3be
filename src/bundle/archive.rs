//! The tar entry rules of a bundle archive (see `super` invariants 2–4),
//! checked as the archive streams: `manifest.json` first and parsed, then
//! every entry held to its manifest line — type (regular file or directory
//! only; links, devices, FIFOs and pax/GNU extension headers refused), path
//! (relative, no `..`), size, mode, owner and sha256 — while its bytes go to
//! a [`Sink`] (install's staging, or nowhere). Any mismatch, missing or
//! extra entry stops the stream with the entry's index, path and reason.
//!
//! Memory stays bounded whatever the bytes: extension headers are never
//! buffered (the tar reader runs raw), the manifest is read up to its cap,
//! and file bytes stream through a fixed buffer.

use std::io::{self, Read};

use super::manifest::{FileEntry, Kind, Manifest, ManifestError, path_problem};
use super::{MANIFEST_NAME, MAX_MANIFEST_BYTES};

/// Where the checked entries go.
pub trait Sink {
    /// The manifest, before any other entry; an `Err` refuses the archive.
    fn manifest(&mut self, m: &Manifest) -> Result<(), String>;
    /// A directory entry.
    fn dir(&mut self, e: &FileEntry) -> io::Result<()>;
    /// A file entry's bytes (`data` yields exactly the entry's bytes; what
    /// the sink leaves unread is read and hashed after it returns).
    fn file(&mut self, e: &FileEntry, data: &mut dyn Read) -> io::Result<()>;
}

/// A sink that keeps nothing (`bundle inspect`, `install --dry-run`, fuzzing).
pub struct Discard;

impl Sink for Discard {
    fn manifest(&mut self, _: &Manifest) -> Result<(), String> {
        Ok(())
    }
    fn dir(&mut self, _: &FileEntry) -> io::Result<()> {
        Ok(())
    }
    fn file(&mut self, _: &FileEntry, data: &mut dyn Read) -> io::Result<()> {
        io::copy(data, &mut io::sink()).map(|_| ())
    }
}

#[derive(Debug, thiserror::Error)]
/// Why an archive's stream was refused or could not be read.
pub enum ArchiveError {
    #[error("archive unreadable{}: {err}", at(.index, .path))]
    /// The tar stream could not be read at entry `index`.
    Read {
        /// The entry's position in the archive.
        index: usize,
        /// The entry's path, when its header was read.
        path: Option<String>,
        /// What the read found.
        err: String,
    },
    #[error(transparent)]
    /// The manifest is refused.
    Manifest(#[from] ManifestError),
    #[error("entry {index} ({path:?}): {why}")]
    /// An entry does not match its manifest entry or the format.
    Entry {
        /// The entry's position in the archive.
        index: usize,
        /// The entry's path.
        path: String,
        /// What does not match.
        why: String,
    },
    #[error("{0:?} is listed in manifest.json but missing from the archive")]
    /// A file the manifest lists is not in the archive.
    Missing(String),
    #[error("refused by manifest.json: {0}")]
    /// The sink refused the manifest.
    Refused(String),
    #[error("{path}: {err}")]
    /// The sink could not take an entry: its path and why.
    Sink {
        /// The path.
        path: String,
        /// The error.
        err: String,
    },
}

fn at(index: &usize, path: &Option<String>) -> String {
    match path {
        Some(p) => format!(" at entry {index} ({p:?})"),
        None => format!(" at entry {index}"),
    }
}

impl ArchiveError {
    /// Whether the archive itself is at fault (a failed check, exit 1), not
    /// the place it was written to (exit 2).
    pub fn is_check_failure(&self) -> bool {
        !matches!(self, ArchiveError::Sink { .. })
    }
}

/// Hashes and counts what is read through it.
struct HashRead<'r> {
    inner: &'r mut dyn Read,
    ctx: ring::digest::Context,
    n: u64,
}

impl Read for HashRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.ctx.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
}

/// An entry's path as the rules allow it: the header's bytes, UTF-8,
/// without the trailing `/` of a directory, and no `..`, `.`, absolute or
/// empty component.
fn entry_path(raw: &[u8], is_dir: bool) -> Result<String, String> {
    let s = std::str::from_utf8(raw).map_err(|_| "a path that is not UTF-8".to_string())?;
    let s = if is_dir {
        s.strip_suffix('/').unwrap_or(s)
    } else {
        s
    };
    if s == MANIFEST_NAME {
        return Ok(s.to_string());
    }
    match path_problem(s) {
        Some(why) => Err(why),
        None => Ok(s.to_string()),
    }
}

/// Streams the archive `r` (plain tar bytes): checks every entry by the
/// rules and hands it to `sink`. Returns the manifest and the reader (for
/// the caller to drain and hash what follows the tar).
pub fn check_archive<R: Read>(r: R, sink: &mut dyn Sink) -> Result<(Manifest, R), ArchiveError> {
    let mut ar = tar::Archive::new(r);
    let manifest = check_entries(&mut ar, sink)?;
    Ok((manifest, ar.into_inner()))
}

fn read_err(index: usize, path: Option<&str>, e: io::Error) -> ArchiveError {
    ArchiveError::Read {
        index,
        path: path.map(str::to_string),
        err: e.to_string(),
    }
}

/// What an entry's header says, once the rules allow it.
struct EntryHead {
    path: String,
    is_file: bool,
    is_dir: bool,
    size: u64,
    mode: u32,
    uid: u64,
    gid: u64,
}

/// Every entry of `ar` in turn: the manifest first, then each entry held to
/// its manifest line and passed to `sink`; then no listed entry may be
/// missing.
fn check_entries<R: Read>(
    ar: &mut tar::Archive<R>,
    sink: &mut dyn Sink,
) -> Result<Manifest, ArchiveError> {
    let mut entries = ar.entries().map_err(|e| read_err(0, None, e))?.raw(true);
    let mut manifest: Option<Manifest> = None;
    let mut cursor = 0usize;
    let mut index = 0usize;
    let mut buf_path: Option<String> = None;
    loop {
        let next = entries.next();
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(|e| read_err(index, buf_path.as_deref(), e))?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let err = |why: String| ArchiveError::Entry {
            index,
            path: shown.clone(),
            why,
        };
        let head = entry_head(entry.header(), &raw_path).map_err(&err)?;
        buf_path = Some(head.path.clone());
        let Some(m) = &manifest else {
            if head.path != MANIFEST_NAME || !head.is_file {
                return Err(err(format!("the first entry must be {MANIFEST_NAME}")));
            }
            let m = read_manifest(&mut entry, head.size, index, &head.path)?;
            sink.manifest(&m).map_err(ArchiveError::Refused)?;
            manifest = Some(m);
            index += 1;
            continue;
        };
        if head.path == MANIFEST_NAME {
            return Err(err(format!("a second {MANIFEST_NAME}")));
        }
        let expected = m.files.get(cursor);
        let Some(f) = expected.filter(|f| f.path == head.path) else {
            return Err(
                match m
                    .files
                    .binary_search_by(|f| f.path.as_str().cmp(&head.path))
                {
                    Err(_) => err("an extra file: not listed in manifest.json".into()),
                    Ok(i) if i < cursor => err("a repeated entry".into()),
                    Ok(_) => {
                        ArchiveError::Missing(expected.map(|f| f.path.clone()).unwrap_or_default())
                    }
                },
            );
        };
        cursor += 1;
        check_meta(f, &head).map_err(&err)?;
        pass_entry(f, &head, &mut entry, index, sink, &err)?;
        index += 1;
    }
    let Some(m) = manifest else {
        return Err(ArchiveError::Read {
            index: 0,
            path: None,
            err: format!("no entries: the first entry must be {MANIFEST_NAME}"),
        });
    };
    if let Some(f) = m.files.get(cursor) {
        return Err(ArchiveError::Missing(f.path.clone()));
    }
    Ok(m)
}

/// An entry's header by the rules: a regular file or a directory, no link
/// name, an allowed path (`raw_path`), readable size, mode and owner.
fn entry_head(h: &tar::Header, raw_path: &[u8]) -> Result<EntryHead, String> {
    let t = h.entry_type();
    let (is_file, is_dir) = (t.is_file(), t.is_dir());
    if !is_file && !is_dir {
        let what = if t.is_symlink() {
            "a symlink".to_string()
        } else if t.is_hard_link() {
            "a hard link".into()
        } else if t.is_character_special() || t.is_block_special() {
            "a device".into()
        } else if t.is_fifo() {
            "a FIFO".into()
        } else if t.is_pax_local_extensions()
            || t.is_pax_global_extensions()
            || t.is_gnu_longname()
            || t.is_gnu_longlink()
        {
            "a pax or GNU extension header".into()
        } else {
            format!("entry type {:?}", t.as_byte() as char)
        };
        return Err(format!(
            "{what}: only regular files and directories are allowed"
        ));
    }
    if h.link_name_bytes().is_some_and(|l| !l.is_empty()) {
        return Err("a link name on a file or directory entry".into());
    }
    let path = entry_path(raw_path, is_dir)?;
    let size = h.size().map_err(|e| e.to_string())?;
    let mode = h.mode().map_err(|e| e.to_string())? & 0o7777;
    let (uid, gid) = (
        h.uid().map_err(|e| e.to_string())?,
        h.gid().map_err(|e| e.to_string())?,
    );
    Ok(EntryHead {
        path,
        is_file,
        is_dir,
        size,
        mode,
        uid,
        gid,
    })
}

/// The manifest entry's bytes (`size` of them, at most
/// [`MAX_MANIFEST_BYTES`]), parsed.
fn read_manifest(
    entry: &mut dyn Read,
    size: u64,
    index: usize,
    path: &str,
) -> Result<Manifest, ArchiveError> {
    if size > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge.into());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry
        .take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| read_err(index, Some(path), e))?;
    Ok(Manifest::parse(&bytes)?)
}

/// The entry's type, mode and owner against its manifest line.
fn check_meta(f: &FileEntry, head: &EntryHead) -> Result<(), String> {
    let want_kind = if head.is_dir { Kind::Dir } else { Kind::File };
    if f.kind != want_kind {
        return Err(format!(
            "a {} in the archive, a {} in manifest.json",
            kind_name(want_kind),
            kind_name(f.kind)
        ));
    }
    let (mode, uid, gid) = (head.mode, head.uid, head.gid);
    if mode != f.mode {
        return Err(format!(
            "mode {mode:o} in the archive, {:o} in manifest.json",
            f.mode
        ));
    }
    if (uid, gid) != (u64::from(f.uid), u64::from(f.gid)) {
        return Err(format!(
            "owner {uid}:{gid} in the archive, {}:{} in manifest.json",
            f.uid, f.gid
        ));
    }
    Ok(())
}

/// Hands a checked entry to `sink`: a directory (no data), or a file's
/// bytes, whose size and sha256 must be its manifest line's.
fn pass_entry(
    f: &FileEntry,
    head: &EntryHead,
    entry: &mut dyn Read,
    index: usize,
    sink: &mut dyn Sink,
    err: &dyn Fn(String) -> ArchiveError,
) -> Result<(), ArchiveError> {
    let (path, size) = (&head.path, head.size);
    let sink_err = |e: io::Error| ArchiveError::Sink {
        path: path.clone(),
        err: e.to_string(),
    };
    match f.kind {
        Kind::Dir => {
            if size != 0 {
                return Err(err("a directory entry with data".into()));
            }
            sink.dir(f).map_err(sink_err)?;
        }
        Kind::File => {
            if size != f.size {
                return Err(err(format!(
                    "{size} bytes in the archive, {} in manifest.json",
                    f.size
                )));
            }
            let mut hr = HashRead {
                inner: entry,
                ctx: ring::digest::Context::new(&ring::digest::SHA256),
                n: 0,
            };
            // A read error comes from the archive (truncated,
            // undecryptable); the sink's own failures are its writes.
            let r = sink.file(f, &mut hr);
            let drained = io::copy(&mut hr, &mut io::sink());
            if let Err(e) = drained {
                return Err(read_err(index, Some(path), e));
            }
            r.map_err(sink_err)?;
            if hr.n != size {
                return Err(err(format!("holds {} bytes, not {size}", hr.n)));
            }
            let got = super::hex(hr.ctx.finish().as_ref());
            if Some(got.as_str()) != f.sha256.as_deref() {
                return Err(err(format!(
                    "sha256 {got}, manifest.json says {}",
                    f.sha256.as_deref().unwrap_or("")
                )));
            }
        }
    }
    Ok(())
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "directory",
    }
}
