//! Opening a snapshot file: memory-mapping, transparent decompression and the
//! sha256 trailer that `etcdctl snapshot save` appends.
//!
//! Everything above this layer sees one byte slice. Plain files are mapped
//! read-only (never copied into the heap, never written). Compressed files
//! (zstd, gzip, or a zip as k3s writes them) are recognised by their magic bytes,
//! not their names, and are inflated into an unnamed temporary file (in
//! `TMPDIR`, else /tmp) that is then mapped the same way, so memory use stays
//! flat whatever the snapshot's size. Inflation stops where the db ends: its
//! meta page's high-water mark × page size, plus the trailer. What follows is
//! not inflated: the growth slack of a data dir's db (noted), or data after a
//! `snapshot save` file's trailer (damage); see [`Excess`].

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::remote::Pin;

mod inflate;
mod integrity;
mod small;

use inflate::inflate;
pub use inflate::{Excess, db_len};
pub use integrity::refuse_damaged;
pub use small::{SMALL_FILE_LIMIT, read_bounded, read_bounded_from, read_bounded_string};

/// Length of the sha256 digest that `snapshot save` appends to the db bytes.
pub const TRAILER_LEN: usize = 32;

/// How the input file was stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// zstd.
    Zstd,
    /// gzip.
    Gzip,
    /// A zip archive holding the snapshot (as k3s writes them).
    Zip,
}

impl Compression {
    /// The format's name as outputs show it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::Zip => "zip",
        }
    }

    /// Recognises a compressed container from the first bytes of a file.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            Compression::Zstd
        } else if head.starts_with(&[0x1F, 0x8B]) {
            Compression::Gzip
        } else if head.starts_with(b"PK\x03\x04") {
            Compression::Zip
        } else {
            Compression::None
        }
    }
}

/// Why a snapshot file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be opened.
    #[error("{path}: cannot open: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The compressed data is not valid.
    #[error("{path}: cannot decompress {format} data: {detail}")]
    Decompress {
        /// The file.
        path: PathBuf,
        /// The compression format.
        format: &'static str,
        /// What the decompressor said.
        detail: String,
    },
    /// A zip archive with no file in it.
    #[error("{path}: the zip archive holds no file")]
    EmptyZip {
        /// The file.
        path: PathBuf,
    },
    /// The inflated copy cannot be written to the temporary directory.
    #[error("{path}: cannot write the inflated copy to the temporary directory: {source}")]
    Temp {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A remote object cannot be read (access, transfer, a changed object).
    #[cfg(feature = "remote")]
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    /// A URL given to a build without the `remote` feature.
    #[cfg(not(feature = "remote"))]
    #[error("{url}: this build reads no remote sources (built without the `remote` feature)")]
    NoRemote {
        /// The URL (redacted).
        url: String,
    },
    /// The snapshot is damaged in a way that stops every command.
    #[error("{path}: damaged snapshot: {detail}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl InputError {
    /// Whether the file itself is damaged (a compressed stream that does not
    /// decode, an empty archive): exit 1, where the others are I/O (exit 2).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            InputError::Decompress { .. }
                | InputError::EmptyZip { .. }
                | InputError::Damaged { .. }
        )
    }
}

/// The spool file of a remote object.
#[cfg(feature = "remote")]
fn open_remote(url: &str) -> Result<Remote, InputError> {
    Ok(Remote::of(crate::remote::fetch(url)?))
}

#[cfg(feature = "remote")]
impl Remote {
    fn of(spooled: crate::remote::Spooled) -> Remote {
        Remote {
            file: spooled.file,
            modified: spooled.modified,
            pin: Pin {
                etag: spooled.etag,
                version: spooled.version,
                size: spooled.len,
            },
            digests: Some(Digests {
                all: spooled.sha256,
                but_last_32: spooled.sha256_but_last_32,
            }),
        }
    }
}

/// A remote object as spooled: the file, its store's modification time and
/// pin, and the digests taken while it arrived.
struct Remote {
    file: File,
    modified: std::time::SystemTime,
    pin: Pin,
    digests: Option<Digests>,
}

/// The sha256 digests of a file's bytes taken while they were copied (a
/// remote object's, as it streamed into its spool), so that checking the
/// trailer needs no second pass over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// The digest of every byte.
    pub all: [u8; 32],
    /// The digest of all but the last 32 bytes (what a trailer holds).
    pub but_last_32: Option<[u8; 32]>,
}

/// Without the `remote` feature a URL is refused, by name.
#[cfg(not(feature = "remote"))]
fn open_remote(url: &str) -> Result<Remote, InputError> {
    Err(InputError::NoRemote {
        url: crate::remote::redact(url),
    })
}

/// A compressed snapshot with data after its trailer ([`Excess::AfterTrailer`]),
/// as an error for the commands that refuse a damaged file outright.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", path.display(), excess.describe())]
pub struct ExcessDamage {
    /// The file.
    pub path: PathBuf,
    /// What follows the snapshot.
    pub excess: Excess,
}

/// A snapshot file mapped into memory (after decompression, if any).
pub struct SnapshotFile {
    path: PathBuf,
    compression: Compression,
    // `None` for an empty file: mapping zero bytes is not portable.
    map: Option<Mmap>,
    excess: Option<Excess>,
    // A remote object's modification time (a local file's is asked of the
    // file system).
    remote_modified: Option<std::time::SystemTime>,
    // What pinned a remote object (its ETag, version and size).
    remote_pin: Option<Pin>,
    // The digests of the mapped bytes, when taken as they were copied.
    digests: Option<Digests>,
}

impl SnapshotFile {
    /// Opens `path` read-only; `-` reads standard input into a temporary file.
    ///
    /// ```
    /// use etcdsnap::input::{Compression, SnapshotFile};
    ///
    /// let file = SnapshotFile::open("fixtures/etcd-3.5.1.db".as_ref())?;
    /// assert_eq!(file.compression(), Compression::None);
    /// // `etcdctl snapshot save` appends the sha256 of the db: 32 bytes.
    /// assert!(file.has_trailer());
    /// assert_eq!(file.db().len() + 32, file.bytes().len());
    /// # Ok::<(), etcdsnap::input::InputError>(())
    /// ```
    ///
    /// `s3://BUCKET/KEY`, `http://…` and `https://…` are read from where they
    /// live ([`crate::remote`]): streamed once into a private spool file that
    /// is then opened like a local one, under the URL's redacted name.
    pub fn open(path: &Path) -> Result<SnapshotFile, InputError> {
        if let Some(url) = path.to_str().filter(|_| crate::remote::is_remote(path)) {
            return Self::open_spooled(url, open_remote(url)?);
        }
        let read_err = |source| InputError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = if path.as_os_str() == "-" {
            let mut tmp = tempfile::tempfile().map_err(read_err)?;
            io::copy(&mut io::stdin().lock(), &mut tmp).map_err(read_err)?;
            tmp.seek(SeekFrom::Start(0)).map_err(read_err)?;
            tmp
        } else {
            File::open(path).map_err(|source| InputError::Open {
                path: path.to_path_buf(),
                source,
            })?
        };
        Self::open_file(path, file)
    }

    /// Opens the sparse copy of an object read by ranges
    /// ([`crate::remote::ranged`]), named by its redacted URL; `None` when
    /// the object is compressed (ranges of it are no use: read it whole).
    #[cfg(feature = "remote")]
    pub fn open_ranged(
        r: &crate::remote::ranged::Ranged,
    ) -> Result<Option<SnapshotFile>, InputError> {
        let path = PathBuf::from(r.shown());
        let file = r.file().try_clone().map_err(|source| InputError::Read {
            path: path.clone(),
            source,
        })?;
        let mut head = [0u8; 4];
        let n = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0).map_err(|source| {
            InputError::Read {
                path: path.clone(),
                source,
            }
        })?;
        if Compression::detect(&head[..n]) != Compression::None {
            return Ok(None);
        }
        let mut opened = Self::open_file(&path, file)?;
        opened.remote_modified = Some(r.modified());
        Ok(Some(opened))
    }

    /// [`SnapshotFile::open`], and for a remote object `beside` reading it
    /// on another thread while it streams in ([`crate::remote::fetch_beside`]):
    /// its result comes with the file when it read exactly the bytes opened
    /// (an object stored uncompressed), else `None` (and always for a
    /// local file).
    #[cfg(feature = "remote")]
    pub fn open_beside<R: Send>(
        path: &Path,
        beside: impl FnOnce(&crate::remote::Growing) -> R + Send,
    ) -> Result<(SnapshotFile, Option<R>), InputError> {
        let Some(url) = path.to_str().filter(|_| crate::remote::is_remote(path)) else {
            return Ok((Self::open(path)?, None));
        };
        let (spooled, seen) = crate::remote::fetch_beside(url, beside)?;
        let opened = Self::open_spooled(url, Remote::of(spooled))?;
        // What it saw is of these bytes only when nothing was inflated.
        let same = opened.digests.is_some();
        Ok((opened, seen.filter(|_| same)))
    }

    /// Opens the spool of the remote object `url`, named by its redacted URL.
    fn open_spooled(url: &str, remote: Remote) -> Result<SnapshotFile, InputError> {
        let shown = PathBuf::from(crate::remote::redact(url));
        let mut opened = Self::open_file(&shown, remote.file)?;
        opened.remote_modified = Some(remote.modified);
        // The digests are of the object's bytes: the mapped ones only
        // when nothing was inflated.
        if opened.compression == Compression::None && opened.bytes().len() as u64 == remote.pin.size
        {
            opened.digests = remote.digests;
        }
        opened.remote_pin = Some(remote.pin);
        Ok(opened)
    }

    /// Opens an open file (of a path, standard input's copy, a spool) as a
    /// snapshot named `path`.
    fn open_file(path: &Path, mut file: File) -> Result<SnapshotFile, InputError> {
        let read_err = |source| InputError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut head = [0u8; 4];
        let n = read_up_to(&mut file, &mut head).map_err(read_err)?;
        file.seek(SeekFrom::Start(0)).map_err(read_err)?;
        let compression = Compression::detect(&head[..n]);
        let (file, excess) = match compression {
            Compression::None => (file, None),
            other => inflate(path, file, other)?,
        };
        let len = file.metadata().map_err(read_err)?.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only. Another process truncating the file
            // while we read it would fault; that is the usual caveat of every
            // mmap-based reader (bbolt itself included) and documented in the README.
            let map = unsafe { Mmap::map(&file) }.map_err(read_err)?;
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Sequential);
            Some(map)
        };
        Ok(SnapshotFile {
            path: path.to_path_buf(),
            compression,
            map,
            excess,
            remote_modified: None,
            remote_pin: None,
            digests: None,
        })
    }

    /// What a compressed file held past the db and was not inflated.
    pub fn excess(&self) -> Option<Excess> {
        self.excess
    }

    /// When the snapshot was last modified: a remote object's time as its
    /// store says, else the file's mtime (`None` for standard input).
    pub fn modified(&self) -> Option<std::time::SystemTime> {
        self.remote_modified.or_else(|| {
            std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok()
        })
    }

    /// A remote object's ETag, version and size as read (`None` for a
    /// local file).
    pub fn remote_pin(&self) -> Option<&Pin> {
        self.remote_pin.as_ref()
    }

    /// The sha256 digests of [`SnapshotFile::bytes`] when they were taken
    /// while the bytes were copied in (a remote object's), else `None`.
    pub fn digests(&self) -> Option<&Digests> {
        self.digests.as_ref()
    }

    /// The path the file was opened from (a remote source's redacted URL).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tells the kernel the next reads are a few scattered pages (an indexed
    /// lookup): no read-ahead, which would otherwise pull megabytes around
    /// every page touched of a file not yet in the page cache.
    pub fn advise_random(&self) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            let _ = map.advise(memmap2::Advice::Random);
        }
    }

    /// Tells the kernel most of the file is about to be read (the default).
    pub fn advise_sequential(&self) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            let _ = map.advise(memmap2::Advice::Sequential);
        }
    }

    /// Maps the whole file into the process now, in one call, instead of a
    /// page fault per page: for commands that read most of it (`diff`
    /// compares every live value). Only a hint: an older kernel refuses it,
    /// and that is ignored.
    pub fn populate(&self) {
        #[cfg(target_os = "linux")]
        if let Some(map) = &self.map {
            let _ = map.advise(memmap2::Advice::PopulateRead);
        }
    }

    /// How the file was stored.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// All bytes of the (decompressed) file.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Whether the file ends with the sha256 trailer `etcdctl snapshot save` appends.
    pub fn has_trailer(&self) -> bool {
        has_trailer(self.bytes())
    }

    /// The bbolt database bytes: the file without its trailer.
    pub fn db(&self) -> &[u8] {
        split_trailer(self.bytes()).0
    }

    /// The appended sha256 digest, when there is one.
    pub fn trailer(&self) -> Option<&[u8]> {
        split_trailer(self.bytes()).1
    }
}

/// Whether `snapshot save` appended a sha256 digest. etcd's rule, shared by
/// etcdctl and etcdutl: the db part is a whole number of pages (so of 512
/// bytes), hence a trailer is present exactly when `size % 512 == 32`.
pub fn has_trailer(bytes: &[u8]) -> bool {
    bytes.len() % 512 == TRAILER_LEN
}

/// Splits a snapshot file into its db bytes and its sha256 trailer, if any.
pub fn split_trailer(bytes: &[u8]) -> (&[u8], Option<&[u8]>) {
    if has_trailer(bytes) {
        let (db, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
        (db, Some(trailer))
    } else {
        (bytes, None)
    }
}

pub(crate) fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
