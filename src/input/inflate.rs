//! Inflating a compressed snapshot into a temporary file, no further than
//! the db it holds: the meta page's high-water mark × page size, plus the
//! 32-byte trailer. A gzip of zeros or a file with gigabytes appended would
//! otherwise fill the disk before any check ran. What follows the db is not
//! inflated: a data dir's growth slack is noted, data after a `snapshot save`
//! file's trailer is damage ([`Excess`]).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{Compression, InputError, TRAILER_LEN, read_up_to};

/// What a decompressed stream held beyond the db, which was not inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excess {
    /// No bbolt meta page in the first bytes: inflation stopped after `kept`
    /// bytes (the result does not open as a db).
    NoDb {
        /// Bytes kept.
        kept: u64,
    },
    /// A data dir's db (no trailer): the file grew past its high-water mark;
    /// everything from offset `at` on is free space, ignored.
    Slack {
        /// The offset the excess starts at.
        at: u64,
    },
    /// A `snapshot save` file (its trailer matches) with data after the
    /// trailer, from offset `at` on: damage.
    AfterTrailer {
        /// The offset the excess starts at.
        at: u64,
    },
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

/// The most bytes a db can need, as its meta pages say: the larger
/// high-water mark × page size of the valid ones (at least two pages). Meta
/// page 0 is at offset 0; meta page 1 one page further, probed at 1 KiB …
/// 1 MiB when page 0 is damaged. `None` when neither is a valid meta page.
/// (A minimal reading of bbolt's meta page, `bolt::meta` being a layer up.)
pub fn db_len(head: &[u8]) -> Option<u64> {
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
pub(super) fn inflate(
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
