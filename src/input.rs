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
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

/// Length of the sha256 digest that `snapshot save` appends to the db bytes.
pub const TRAILER_LEN: usize = 32;

/// How the input file was stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
    Gzip,
    Zip,
}

impl Compression {
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

/// What a decompressed stream held beyond the db, which was not inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excess {
    /// No bbolt meta page in the first bytes: inflation stopped after `kept`
    /// bytes (the result does not open as a db).
    NoDb { kept: u64 },
    /// A data dir's db (no trailer): the file grew past its high-water mark;
    /// everything from offset `at` on is free space, ignored.
    Slack { at: u64 },
    /// A `snapshot save` file (its trailer matches) with data after the
    /// trailer, from offset `at` on: damage.
    AfterTrailer { at: u64 },
}

impl Excess {
    /// Whether this makes the file unsound (exit 1).
    pub fn is_damage(self) -> bool {
        matches!(self, Excess::AfterTrailer { .. })
    }

    /// A sentence for the user.
    pub fn describe(self) -> String {
        match self {
            Excess::NoDb { kept } => format!(
                "no bbolt meta page in the first {kept} decompressed bytes, so no db size to inflate to: stopped there"
            ),
            Excess::Slack { at } => format!(
                "the decompressed db ends at offset {at} (its high-water mark); what follows is the growth slack of a data dir's db file, ignored and not inflated"
            ),
            Excess::AfterTrailer { at } => format!(
                "data after the sha256 trailer, from offset {at} of the decompressed stream: a `snapshot save` file ends with its trailer (damaged, or something appended)"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: cannot open: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: cannot decompress {format} data: {detail}")]
    Decompress {
        path: PathBuf,
        format: &'static str,
        detail: String,
    },
    #[error("{path}: the zip archive holds no file")]
    EmptyZip { path: PathBuf },
    #[error("{path}: cannot write the inflated copy to the temporary directory: {source}")]
    Temp { path: PathBuf, source: io::Error },
}

impl InputError {
    /// Whether the file itself is damaged (a compressed stream that does not
    /// decode, an empty archive): exit 1, where the others are I/O (exit 2).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            InputError::Decompress { .. } | InputError::EmptyZip { .. }
        )
    }
}

/// A snapshot file mapped into memory (after decompression, if any).
pub struct SnapshotFile {
    path: PathBuf,
    compression: Compression,
    // `None` for an empty file: mapping zero bytes is not portable.
    map: Option<Mmap>,
    excess: Option<Excess>,
}

impl SnapshotFile {
    /// Opens `path` read-only; `-` reads standard input into a temporary file.
    pub fn open(path: &Path) -> Result<SnapshotFile, InputError> {
        let read_err = |source| InputError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = if path.as_os_str() == "-" {
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
        })
    }

    /// What a compressed file held past the db and was not inflated.
    pub fn excess(&self) -> Option<Excess> {
        self.excess
    }

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

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// All bytes of the (decompressed) file.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

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

fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

/// The most bytes a db can need, as its meta pages say: the larger
/// high-water mark × page size of the valid ones (at least two pages). Meta
/// page 0 is at offset 0; meta page 1 one page further, probed at 1 KiB …
/// 1 MiB when page 0 is damaged. `None` when neither is a valid meta page.
/// (A minimal reading of bbolt's meta page, `bolt::meta` being a layer up.)
fn db_len(head: &[u8]) -> Option<u64> {
    fn meta_size(b: &[u8]) -> Option<u64> {
        let m = b.get(16..16 + 64)?;
        let u32_at = |o: usize| u32::from_le_bytes([m[o], m[o + 1], m[o + 2], m[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&m[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let page_size = u32_at(8);
        if u32_at(0) != 0xED0C_DAED
            || u32_at(4) != 2
            || !(512..=1 << 20).contains(&page_size)
            || !page_size.is_power_of_two()
        {
            return None;
        }
        // FNV-1a 64 of the meta struct before its checksum.
        let sum = m[..56].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        if sum != u64_at(56) {
            return None;
        }
        Some(u64_at(40).max(2).saturating_mul(u64::from(page_size)))
    }
    let first = meta_size(head);
    let ps = first.map(|_| u32::from_le_bytes([head[24], head[25], head[26], head[27]]) as usize);
    let second = match ps {
        Some(ps) => head.get(ps..).and_then(meta_size),
        None => (0..=10)
            .map(|i| 1024usize << i)
            .find_map(|off| head.get(off..).and_then(meta_size)),
    };
    match (first, second) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Bytes read before deciding how much to inflate: enough for both meta
/// pages at the largest page size.
const HEAD: u64 = (1 << 20) + 4096;

/// Copies at most `limit` bytes from `from` to `to`, telling decoding errors
/// (the input is damaged) from writing errors (the temporary file).
fn copy_up_to(
    from: &mut impl Read,
    to: &mut File,
    limit: u64,
    fail: &impl Fn(String) -> InputError,
    temp: &impl Fn(io::Error) -> InputError,
) -> Result<u64, InputError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < limit {
        let want = (limit - done).min(buf.len() as u64) as usize;
        let n = match from.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(e.to_string())),
        };
        to.write_all(&buf[..n]).map_err(temp)?;
        done += n as u64;
    }
    Ok(done)
}

/// Inflates the db (and its trailer) from a decoder into `out`, and no more.
fn inflate_bounded(
    mut dec: impl Read,
    out: &mut File,
    fail: &impl Fn(String) -> InputError,
    temp: &impl Fn(io::Error) -> InputError,
) -> Result<Option<Excess>, InputError> {
    let mut head = Vec::new();
    (&mut dec)
        .take(HEAD)
        .read_to_end(&mut head)
        .map_err(|e| fail(e.to_string()))?;
    let Some(size) = db_len(&head) else {
        out.write_all(&head).map_err(temp)?;
        let mut one = [0u8; 1];
        let more = read_up_to(&mut dec, &mut one).map_err(|e| fail(e.to_string()))?;
        return Ok((more > 0).then_some(Excess::NoDb {
            kept: head.len() as u64,
        }));
    };
    // The db, its trailer, and one byte to learn whether anything follows.
    let want = size.saturating_add(TRAILER_LEN as u64 + 1);
    let mut stream = (&head[..]).chain(dec);
    let copied = copy_up_to(&mut stream, out, want, fail, temp)?;
    if copied < want {
        return Ok(None);
    }
    // Something follows the db and 32 bytes: a trailer and garbage, or a
    // data dir's slack. The 32 bytes are a trailer if they are the db's sha256.
    out.seek(SeekFrom::Start(0)).map_err(temp)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut db = (&mut *out).take(size);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = db.read(&mut buf).map_err(temp)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let mut trailer = [0u8; TRAILER_LEN];
    out.read_exact(&mut trailer).map_err(temp)?;
    let excess = if ctx.finish().as_ref() == trailer {
        out.set_len(size + TRAILER_LEN as u64).map_err(temp)?;
        Excess::AfterTrailer {
            at: size + TRAILER_LEN as u64,
        }
    } else {
        out.set_len(size).map_err(temp)?;
        Excess::Slack { at: size }
    };
    Ok(Some(excess))
}

/// Inflates a compressed snapshot into an unnamed temporary file, no further
/// than the db it holds ([`inflate_bounded`]).
fn inflate(
    path: &Path,
    file: File,
    format: Compression,
) -> Result<(File, Option<Excess>), InputError> {
    let temp = |source| InputError::Temp {
        path: path.to_path_buf(),
        source,
    };
    let mut out = tempfile::tempfile().map_err(temp)?;
    let fail = |detail: String| InputError::Decompress {
        path: path.to_path_buf(),
        format: format.name(),
        detail,
    };
    let reader = io::BufReader::with_capacity(1 << 20, file);
    let excess = match format {
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| fail(e.to_string()))?;
            inflate_bounded(dec, &mut out, &fail, &temp)?
        }
        Compression::Gzip => inflate_bounded(
            flate2::read::MultiGzDecoder::new(reader),
            &mut out,
            &fail,
            &temp,
        )?,
        Compression::Zip => {
            let mut archive = zip::ZipArchive::new(reader).map_err(|e| fail(e.to_string()))?;
            let index = (0..archive.len())
                .find(|&i| archive.by_index(i).map(|f| f.is_file()).unwrap_or(false))
                .ok_or_else(|| InputError::EmptyZip {
                    path: path.to_path_buf(),
                })?;
            let entry = archive.by_index(index).map_err(|e| fail(e.to_string()))?;
            inflate_bounded(entry, &mut out, &fail, &temp)?
        }
        Compression::None => None,
    };
    out.flush().map_err(temp)?;
    Ok((out, excess))
}
