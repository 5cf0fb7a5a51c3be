//! Opening an archive: `SHA256SUMS` read, the age layer detected and
//! decrypted with the given identity or passphrase, zstd inflated, the tar
//! stream checked entry by entry (`archive`), and the sha256 of the file's
//! raw bytes computed in the same single pass, for the caller to hold
//! against `SHA256SUMS` before it trusts anything it staged.

use std::cell::RefCell;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::archive::{ArchiveError, Sink, check_archive};
use super::manifest::Manifest;
use super::{MANIFEST_NAME, MAX_MANIFEST_BYTES, SUMS_NAME, hex};

/// How an encrypted archive is opened.
#[derive(Debug, Clone)]
pub enum Key {
    /// No key: the archive must not be encrypted.
    None,
    /// An age identity file (`AGE-SECRET-KEY-1…` lines).
    Identity(PathBuf),
    /// A file whose first line is the passphrase.
    Passphrase(PathBuf),
}

#[derive(Debug, thiserror::Error)]
/// Why an archive (or `SHA256SUMS`) could not be read or was refused.
pub enum ReadError {
    #[error("{}: {err}", .path.display())]
    /// A file could not be read: its path and the error.
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
    #[error("{}: encrypted with age; give --identity or --passphrase-file", .0.display())]
    /// The archive is encrypted and no key was given.
    NoKey(PathBuf),
    #[error("{}: cannot decrypt: {why}", .path.display())]
    /// The archive could not be decrypted: its path and why.
    Decrypt {
        /// The path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    #[error("{}: {why}", .path.display())]
    /// The key file could not be used: its path and why.
    Key {
        /// The path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    #[error("{}: {err}", .path.display())]
    /// The archive's contents were refused: its path and why.
    Archive {
        /// The path.
        path: PathBuf,
        /// The error.
        err: ArchiveError,
    },
    #[error("{}: {why}", .path.display())]
    /// `SHA256SUMS` is missing, malformed or does not list the archive.
    Sums {
        /// The path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    #[error("{}: not a regular file (a device, FIFO or socket is never read)", .0.display())]
    /// Not a regular file.
    NotRegular(PathBuf),
}

impl ReadError {
    /// Whether the bundle failed a check (exit 1), rather than could not be
    /// read at all or the key was missing or unusable (exit 2).
    pub fn is_check_failure(&self) -> bool {
        match self {
            ReadError::Archive { err, .. } => err.is_check_failure(),
            ReadError::Sums { .. } | ReadError::NotRegular(_) => true,
            _ => false,
        }
    }
}

/// `SHA256SUMS` larger than this is refused (counted in bytes read, not
/// by what the file system reports).
pub const MAX_SUMS_BYTES: u64 = 1 << 20;

/// Opens `path` for reading only when it is a regular file: opened without
/// blocking (a FIFO would otherwise wait for a writer) and its type checked
/// on the open file, so a device, FIFO or socket is refused before a byte
/// is read.
pub fn open_regular(path: &Path) -> Result<fs::File, ReadError> {
    let io_err = |err: io::Error| ReadError::Io {
        path: path.to_path_buf(),
        err,
    };
    let mut o = fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK);
    }
    let f = o.open(path).map_err(io_err)?;
    let meta = f.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(path.to_path_buf()));
    }
    // Back to blocking reads for a regular file (where O_NONBLOCK has no
    // effect on Linux, but say what is meant).
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on an fd we own, with no pointers involved.
        unsafe {
            let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
        }
    }
    Ok(f)
}

/// Parses `SHA256SUMS` text: `(file name, sha256)` per line, in
/// `sha256sum` format (`<64 lowercase hex>  <name>` or ` *<name>`); empty
/// lines are skipped. The error names the line.
pub fn parse_sums(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    if bytes.len() as u64 > MAX_SUMS_BYTES {
        return Err(format!("larger than {MAX_SUMS_BYTES} bytes"));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 (at byte {})", e.valid_up_to()))?;
    let mut v = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        // Judged on bytes: the two separator bytes must be ASCII, which
        // also makes byte 66 a char boundary for the name.
        let b = line.as_bytes();
        let ok = b.len() > 66
            && b[..64]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            && (&b[64..66] == b"  " || &b[64..66] == b" *");
        if !ok {
            return Err(format!("line {}: not `<sha256>  <file name>`", i + 1));
        }
        let name = &line[66..];
        if name.chars().any(char::is_control) {
            return Err(format!(
                "line {}: the file name holds a control character",
                i + 1
            ));
        }
        v.push((name.to_string(), line[..64].to_string()));
    }
    Ok(v)
}

/// `SHA256SUMS` of the directory holding `archive`: `(file name, sha256)`.
/// Only a regular file is read, and at most [`MAX_SUMS_BYTES`] of it.
pub fn read_sums(dir: &Path) -> Result<Vec<(String, String)>, ReadError> {
    let path = dir.join(SUMS_NAME);
    let sums_err = |why: String| ReadError::Sums {
        path: path.clone(),
        why,
    };
    let f = open_regular(&path)?;
    let mut bytes = Vec::new();
    f.take(MAX_SUMS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| ReadError::Io {
            path: path.clone(),
            err,
        })?;
    parse_sums(&bytes).map_err(sums_err)
}

/// The sha256 of the file at `path`, read once front to back, before
/// anything of it is trusted: a regular file only, and no more bytes than
/// it held when opened (a file growing while read is refused).
pub fn hash_file(path: &Path) -> Result<String, ReadError> {
    let io_err = |err: io::Error| ReadError::Io {
        path: path.to_path_buf(),
        err,
    };
    let f = open_regular(path)?;
    let len = f.metadata().map_err(io_err)?.len();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut r = f.take(len.saturating_add(1));
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        if k == 0 {
            break;
        }
        ctx.update(&buf[..k]);
        n += k as u64;
    }
    if n != len {
        return Err(io_err(io::Error::other(format!(
            "changed while read: {n} bytes read, {len} when opened"
        ))));
    }
    Ok(hex(ctx.finish().as_ref()))
}

/// The sha256 `SHA256SUMS` lists for `archive`.
pub fn listed_sum(archive: &Path) -> Result<String, ReadError> {
    let dir = archive.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    read_sums(dir)?
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
        .ok_or_else(|| ReadError::Sums {
            path: dir.join(SUMS_NAME),
            why: format!("does not list {name}: refusing an archive it does not vouch for"),
        })
}

/// Hashes what is read through it into a shared context.
struct Tee<R> {
    inner: R,
    ctx: Rc<RefCell<ring::digest::Context>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.ctx.borrow_mut().update(&buf[..k]);
        Ok(k)
    }
}

/// What one pass over an archive found.
#[derive(Debug)]
pub struct Opened {
    /// The checked manifest.
    pub manifest: Manifest,
    /// sha256 of the archive file's bytes.
    pub sha256: String,
    /// Whether the archive was encrypted with age.
    pub encrypted: bool,
}

const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

fn identities(key: &Key) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, ReadError> {
    match key {
        Key::None => Ok(Vec::new()),
        Key::Identity(p) => {
            let kerr = |why: String| ReadError::Key {
                path: p.clone(),
                why,
            };
            let f = fs::File::open(p).map_err(|err| ReadError::Io {
                path: p.clone(),
                err,
            })?;
            age::IdentityFile::from_buffer(BufReader::new(f))
                .map_err(|e| kerr(format!("not an age identity file: {e}")))?
                .into_identities()
                .map_err(|e| kerr(format!("not an age identity file: {e}")))
        }
        Key::Passphrase(p) => {
            let text = fs::read_to_string(p).map_err(|err| ReadError::Io {
                path: p.clone(),
                err,
            })?;
            let pass = text.lines().next().unwrap_or("").to_string();
            if pass.is_empty() {
                return Err(ReadError::Key {
                    path: p.clone(),
                    why: "the first line (the passphrase) is empty".into(),
                });
            }
            let id = age::scrypt::Identity::new(age::secrecy::SecretString::from(pass));
            Ok(vec![Box::new(id)])
        }
    }
}

type Inflated = zstd::Decoder<'static, BufReader<Box<dyn Read>>>;

/// The archive at `path` opened through its layers: the raw bytes hashed
/// into the returned context, decrypted (with `key`) when it is an age file,
/// inflated. Returns the tar stream and whether it was encrypted.
fn open_layers(
    path: &Path,
    key: &Key,
) -> Result<(Inflated, Rc<RefCell<ring::digest::Context>>, bool), ReadError> {
    let io_err = |err: io::Error| ReadError::Io {
        path: path.to_path_buf(),
        err,
    };
    let read_err = |e: io::Error| ReadError::Archive {
        path: path.to_path_buf(),
        err: ArchiveError::Read {
            index: 0,
            path: None,
            err: e.to_string(),
        },
    };
    let f = open_regular(path)?;
    let ctx = Rc::new(RefCell::new(ring::digest::Context::new(
        &ring::digest::SHA256,
    )));
    let mut raw = BufReader::with_capacity(
        1 << 20,
        Tee {
            inner: f,
            ctx: ctx.clone(),
        },
    );
    let head = raw.fill_buf().map_err(io_err)?;
    let encrypted = head.starts_with(AGE_MAGIC);
    if head.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        return Err(ReadError::Decrypt {
            path: path.to_path_buf(),
            why: "ASCII-armored age files are not bundles (bundle writes binary age)".into(),
        });
    }
    let plain: Box<dyn Read> = if encrypted {
        if matches!(key, Key::None) {
            return Err(ReadError::NoKey(path.to_path_buf()));
        }
        let ids = identities(key)?;
        let dec = age::Decryptor::new_buffered(raw).map_err(|e| ReadError::Decrypt {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        let r = dec
            .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| ReadError::Decrypt {
                path: path.to_path_buf(),
                why: e.to_string(),
            })?;
        Box::new(r)
    } else {
        Box::new(raw)
    };
    let mut z = zstd::Decoder::new(plain).map_err(read_err)?;
    z.window_log_max(27).map_err(read_err)?;
    Ok((z, ctx, encrypted))
}

/// The archive's manifest alone (its first entry, at most
/// [`super::MAX_MANIFEST_BYTES`], parsed and validated), and whether the
/// archive is encrypted; nothing else of the archive is read.
pub fn read_manifest(path: &Path, key: &Key) -> Result<(Manifest, bool), ReadError> {
    let arch_err = |err: ArchiveError| ReadError::Archive {
        path: path.to_path_buf(),
        err,
    };
    let read_err = |e: io::Error| {
        arch_err(ArchiveError::Read {
            index: 0,
            path: None,
            err: e.to_string(),
        })
    };
    let (z, _, encrypted) = open_layers(path, key)?;
    let mut ar = tar::Archive::new(z);
    let mut entries = ar.entries().map_err(read_err)?.raw(true);
    let first = entries
        .next()
        .ok_or_else(|| read_err(io::Error::other("no entries")))?;
    let entry = first.map_err(read_err)?;
    let is_file = entry.header().entry_type().is_file();
    if entry.path_bytes().as_ref() != MANIFEST_NAME.as_bytes() || !is_file {
        return Err(arch_err(ArchiveError::Entry {
            index: 0,
            path: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
            why: format!("the first entry must be {MANIFEST_NAME}"),
        }));
    }
    let mut bytes = Vec::new();
    entry
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let m = Manifest::parse(&bytes).map_err(|e| arch_err(e.into()))?;
    Ok((m, encrypted))
}

/// Reads the archive at `path` once: decrypts (with `key`) when it is an
/// age file, inflates, checks every entry into `sink`, reads to the end, and
/// returns the manifest and the file's sha256.
pub fn open_and_check(path: &Path, key: &Key, sink: &mut dyn Sink) -> Result<Opened, ReadError> {
    let arch_err = |err: ArchiveError| ReadError::Archive {
        path: path.to_path_buf(),
        err,
    };
    let read_err = |e: io::Error| {
        arch_err(ArchiveError::Read {
            index: 0,
            path: None,
            err: e.to_string(),
        })
    };
    let (z, ctx, encrypted) = open_layers(path, key)?;
    let (manifest, z) = check_archive(z, sink).map_err(arch_err)?;
    // After the tar's end: only its zero padding, then the end of the streams.
    let mut rest = z.take(1 << 20);
    let mut buf = vec![0u8; 64 << 10];
    let mut trailing = 0u64;
    loop {
        let k = rest.read(&mut buf).map_err(read_err)?;
        if k == 0 {
            break;
        }
        if buf[..k].iter().any(|b| *b != 0) {
            return Err(read_err(io::Error::other(
                "data after the tar archive's end",
            )));
        }
        trailing += k as u64;
    }
    if trailing >= 1 << 20 {
        return Err(read_err(io::Error::other(
            "more than 1 MiB after the tar archive's end",
        )));
    }
    let mut inner = rest.into_inner().finish();
    io::copy(&mut inner, &mut io::sink()).map_err(read_err)?;
    drop(inner);
    let sha256 = match Rc::try_unwrap(ctx) {
        Ok(c) => hex(c.into_inner().finish().as_ref()),
        Err(c) => hex(c.borrow().clone().finish().as_ref()),
    };
    Ok(Opened {
        manifest,
        sha256,
        encrypted,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_sums;

    /// A fuzz finding: a multi-byte character where the two separator
    /// bytes belong is refused naming the line, never a panic on a slice.
    #[test]
    fn a_multibyte_character_after_the_digest_is_refused() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/bundle_sums");
        let crash = std::fs::read(seeds.join("crash-multibyte-after-digest")).unwrap();
        assert_eq!(
            parse_sums(&crash).unwrap_err(),
            "line 2: not `<sha256>  <file name>`"
        );
        let line = format!("{} \u{58f}2.tar.zst", "0".repeat(64));
        assert!(parse_sums(line.as_bytes()).is_err());
    }

    /// A fuzz finding: a name ending in a carriage return (the last line,
    /// with no newline after it) or holding another control character is
    /// refused, so what is accepted reads back the same.
    #[test]
    fn a_control_character_in_a_name_is_refused() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/bundle_sums");
        let crash = std::fs::read(seeds.join("crash-carriage-return-in-name")).unwrap();
        assert!(parse_sums(&crash).is_err());
        let line = format!("{}  m1.tar.zst\r", "0".repeat(64));
        assert!(
            parse_sums(line.as_bytes())
                .unwrap_err()
                .contains("control character")
        );
        let crlf = format!("{}  m1.tar.zst\r\n", "0".repeat(64));
        assert_eq!(parse_sums(crlf.as_bytes()).unwrap()[0].0, "m1.tar.zst");
    }

    #[test]
    fn sums_seeds_parse_as_they_claim() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/bundle_sums");
        let ok = std::fs::read(seeds.join("ok.txt")).unwrap();
        let v = parse_sums(&ok).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].0, "m2.tar.zst.age");
        let e = parse_sums(&std::fs::read(seeds.join("bad.txt")).unwrap()).unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
        let e = parse_sums(&std::fs::read(seeds.join("utf8.txt")).unwrap()).unwrap_err();
        assert!(e.contains("UTF-8"), "{e}");
        assert!(parse_sums(&vec![b'\n'; (1 << 20) + 1]).is_err());
    }
}
