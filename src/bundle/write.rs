//! Writing one member's archive: its data dir written by the restore path
//! into a scratch dir, its PKI files, its flags, all listed with sha256 in
//! the manifest; then tar (sorted, fixed mtime and owner), multithreaded
//! zstd, optionally age, into a temporary sibling that is fsynced and
//! renamed into place (an existing archive is replaced only when asked).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::manifest::{FileEntry, Kind, Manifest};
use super::{ZSTD_LEVEL, hex};
use crate::cluster::membership::Member;
use crate::durable::swap::StageDirs;
use crate::durable::{self, IoError};
use crate::restore::datadir::{self, RestoreError, Source};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error("{}: exists; use --force to replace it", .0.display())]
    Exists(PathBuf),
    #[error("encrypting: {0}")]
    Encrypt(String),
}

/// How archives are encrypted.
pub enum Encryption {
    None,
    /// age X25519 recipients (`age1…`).
    Recipients(Vec<age::x25519::Recipient>),
    /// age scrypt passphrase.
    Passphrase(age::secrecy::SecretString),
}

impl Encryption {
    pub fn is_some(&self) -> bool {
        !matches!(self, Encryption::None)
    }
}

/// Where an entry's bytes come from.
#[derive(Debug, Clone)]
pub enum Content {
    Bytes(Vec<u8>),
    File(PathBuf),
    /// The entry's data (with its tar padding) already compressed as one
    /// zstd frame ([`frame_item`]): the db, the same for every member,
    /// is compressed once and the frame spliced into every archive.
    Frame(PathBuf),
}

/// One entry to write: its manifest line and, for a file, its bytes.
#[derive(Debug, Clone)]
pub struct Item {
    pub entry: FileEntry,
    pub content: Option<Content>,
}

/// Writes member `member`'s data dir into `dir/member` (WAL in
/// `dir/member/wal`) with the restore's own writer — the bytes `restore
/// --out-dir` writes. With `with_db` false, everything but the db (which
/// every member shares: the first member's is shipped to all).
pub fn stage_data_dir(
    src: &Source<'_, '_>,
    member: &Member,
    dir: &Path,
    with_db: bool,
) -> Result<(), WriteError> {
    let dirs = StageDirs {
        member: dir.join("member"),
        wal: dir.join("member").join("wal"),
    };
    durable::mkdir_0700(dir)?;
    durable::mkdir_0700(&dirs.member)?;
    durable::mkdir_0700(&dirs.wal)?;
    if with_db {
        datadir::write_member_files(src, member, &dirs, None)?;
    } else {
        datadir::write_member_files_without_db(src, member, &dirs)?;
    }
    Ok(())
}

/// A file item whose data goes in as one zstd frame compressed here, once,
/// into `frame` (level [`ZSTD_LEVEL`], every core): the file's bytes padded
/// with zeros to tar's 512-byte blocks, exactly as its data stands in the
/// tar stream. The file is hashed in the same read.
pub fn frame_item(
    path: &str,
    from: &Path,
    frame: &Path,
    mode: u32,
    owner: (u32, u32),
) -> Result<Item, IoError> {
    let io_err = IoError::at(frame);
    let mut f = fs::File::open(from).map_err(IoError::at(from))?;
    let out = durable::create_0600(frame)?;
    let mut z =
        zstd_writer(io::BufWriter::with_capacity(1 << 20, out), workers()).map_err(&io_err)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(IoError::at(from))?;
        if k == 0 {
            break;
        }
        ctx.update(&buf[..k]);
        z.write_all(&buf[..k]).map_err(&io_err)?;
        size += k as u64;
    }
    let pad = (512 - size % 512) % 512;
    z.write_all(&vec![0u8; pad as usize]).map_err(&io_err)?;
    z.finish()
        .map_err(&io_err)?
        .into_inner()
        .map_err(|e| io_err(e.into_error()))?;
    Ok(Item {
        entry: FileEntry {
            path: path.to_string(),
            kind: Kind::File,
            mode,
            uid: owner.0,
            gid: owner.1,
            size,
            sha256: Some(hex(ctx.finish().as_ref())),
        },
        content: Some(Content::Frame(frame.to_path_buf())),
    })
}

fn sha256_file(p: &Path) -> Result<(String, u64), IoError> {
    let mut f = fs::File::open(p).map_err(IoError::at(p))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(IoError::at(p))?;
        if k == 0 {
            break;
        }
        ctx.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(ctx.finish().as_ref()), n))
}

fn dir_item(path: &str, owner: (u32, u32)) -> Item {
    Item {
        entry: FileEntry {
            path: path.to_string(),
            kind: Kind::Dir,
            mode: 0o700,
            uid: owner.0,
            gid: owner.1,
            size: 0,
            sha256: None,
        },
        content: None,
    }
}

/// A file item from disk.
pub fn file_item(path: &str, from: &Path, mode: u32, owner: (u32, u32)) -> Result<Item, IoError> {
    let (sha, size) = sha256_file(from)?;
    Ok(Item {
        entry: FileEntry {
            path: path.to_string(),
            kind: Kind::File,
            mode,
            uid: owner.0,
            gid: owner.1,
            size,
            sha256: Some(sha),
        },
        content: Some(Content::File(from.to_path_buf())),
    })
}

/// A file item from bytes.
pub fn bytes_item(path: &str, bytes: Vec<u8>, mode: u32, owner: (u32, u32)) -> Item {
    Item {
        entry: FileEntry {
            path: path.to_string(),
            kind: Kind::File,
            mode,
            uid: owner.0,
            gid: owner.1,
            size: bytes.len() as u64,
            sha256: Some(super::sha256_hex(&bytes)),
        },
        content: Some(Content::Bytes(bytes)),
    }
}

/// The items of a data dir staged by [`stage_data_dir`] under `data/`
/// (every file 0600, every directory 0700), in path order.
pub fn data_items(dir: &Path, owner: (u32, u32)) -> Result<Vec<Item>, IoError> {
    let mut items = vec![dir_item("data", owner)];
    fn walk(
        base: &Path,
        d: &Path,
        owner: (u32, u32),
        items: &mut Vec<Item>,
    ) -> Result<(), IoError> {
        let mut names: Vec<_> = fs::read_dir(d)
            .map_err(IoError::at(d))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(IoError::at(d))?;
        names.sort();
        for p in names {
            let rel = p.strip_prefix(base).unwrap_or(&p);
            let rel = format!("data/{}", rel.to_string_lossy());
            let meta = fs::symlink_metadata(&p).map_err(IoError::at(&p))?;
            if meta.is_dir() {
                items.push(dir_item(&rel, owner));
                walk(base, &p, owner, items)?;
            } else {
                items.push(file_item(&rel, &p, 0o600, owner)?);
            }
        }
        Ok(())
    }
    walk(dir, dir, owner, &mut items)?;
    Ok(items)
}

/// The directories (0700) above `pki/…` files, for a sorted item list.
pub fn parent_dirs(items: &[Item], owner: (u32, u32)) -> Vec<Item> {
    let mut dirs = std::collections::BTreeSet::new();
    for it in items {
        let mut p = it.entry.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            dirs.insert(parent.to_string());
            p = parent;
        }
    }
    let have: std::collections::HashSet<&str> =
        items.iter().map(|i| i.entry.path.as_str()).collect();
    dirs.into_iter()
        .filter(|d| !have.contains(d.as_str()))
        .map(|d| dir_item(&d, owner))
        .collect()
}

/// Writes a sha256 of every byte written through it.
struct HashWrite<W: Write> {
    inner: W,
    ctx: ring::digest::Context,
}

impl<W: Write> Write for HashWrite<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.ctx.update(&buf[..k]);
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A zstd writer at [`ZSTD_LEVEL`] with `workers` threads (≥ 1: the output
/// is the same for any count of workers, so bundles are reproducible across
/// machines).
pub fn zstd_writer<W: Write>(w: W, workers: u32) -> io::Result<zstd::Encoder<'static, W>> {
    let mut e = zstd::Encoder::new(w, ZSTD_LEVEL)?;
    e.multithread(workers.max(1))?;
    e.include_checksum(true)?;
    Ok(e)
}

/// The worker threads for zstd: every core.
pub fn workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// A zstd stream of one or more frames: bytes written go through the
/// current frame's encoder; [`Frames::splice`] ends it, copies a frame
/// compressed beforehand, and starts a new one.
pub struct Frames<W: Write> {
    enc: Option<zstd::Encoder<'static, W>>,
}

impl<W: Write> Frames<W> {
    pub fn new(w: W) -> io::Result<Self> {
        Ok(Frames {
            enc: Some(zstd_writer(w, workers())?),
        })
    }

    fn enc(&mut self) -> io::Result<&mut zstd::Encoder<'static, W>> {
        self.enc
            .as_mut()
            .ok_or_else(|| io::Error::other("zstd stream already failed"))
    }

    /// Ends the current frame, copies the frame in `path`, starts a new one.
    pub fn splice(&mut self, path: &Path) -> io::Result<()> {
        let enc = self
            .enc
            .take()
            .ok_or_else(|| io::Error::other("zstd stream already failed"))?;
        let mut w = enc.finish()?;
        io::copy(&mut fs::File::open(path)?, &mut w)?;
        self.enc = Some(zstd_writer(w, workers())?);
        Ok(())
    }

    /// Ends the last frame; the writer underneath.
    pub fn finish(mut self) -> io::Result<W> {
        match self.enc.take() {
            Some(e) => e.finish(),
            None => Err(io::Error::other("zstd stream already failed")),
        }
    }
}

impl<W: Write> Write for Frames<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.enc()?.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.enc()?.flush()
    }
}

/// The tar stream of `manifest` and `items` (sorted by path, as listed).
pub fn write_tar<W: Write>(
    w: Frames<W>,
    manifest: &Manifest,
    items: &[Item],
) -> io::Result<Frames<W>> {
    let mut b = tar::Builder::new(w);
    let header = |path: &str, kind: Kind, mode: u32, size: u64, owner: (u32, u32)| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(match kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
        });
        let p = match kind {
            Kind::Dir => format!("{path}/"),
            Kind::File => path.to_string(),
        };
        h.set_path(&p)?;
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(u64::from(owner.0));
        h.set_gid(u64::from(owner.1));
        h.set_mtime(0);
        h.set_username("")?;
        h.set_groupname("")?;
        h.set_cksum();
        Ok::<_, io::Error>(h)
    };
    let mbytes = manifest.to_bytes();
    let h = header(
        super::MANIFEST_NAME,
        Kind::File,
        0o600,
        mbytes.len() as u64,
        (0, 0),
    )?;
    b.append(&h, &mbytes[..])?;
    for it in items {
        let e = &it.entry;
        let h = header(&e.path, e.kind, e.mode, e.size, (e.uid, e.gid))?;
        match &it.content {
            None => b.append(&h, io::empty())?,
            Some(Content::Bytes(v)) => b.append(&h, &v[..])?,
            Some(Content::Frame(frame)) => {
                // The header in the current frame; the data (with its
                // padding) is the frame compressed beforehand.
                b.get_mut().write_all(h.as_bytes())?;
                b.get_mut().splice(frame)?;
            }
            Some(Content::File(p)) => {
                let f = fs::File::open(p)?;
                // The size was taken when hashed; a file changed since is an error.
                let mut r = f.take(e.size);
                b.append(&h, &mut r)?;
                if r.limit() != 0 {
                    return Err(io::Error::other(format!(
                        "{}: shorter than when it was hashed",
                        p.display()
                    )));
                }
            }
        }
    }
    b.into_inner()
}

/// Writes the archive to `path` atomically (temporary sibling, fsync,
/// rename, directory fsync); refuses an existing `path` unless `force`.
/// Returns the sha256 of the file's bytes.
pub fn write_archive(
    path: &Path,
    manifest: &Manifest,
    items: &[Item],
    enc: &Encryption,
    force: bool,
) -> Result<String, WriteError> {
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(WriteError::Exists(path.to_path_buf()));
    }
    let tmp = durable::temp_sibling(path);
    let _ = fs::remove_file(&tmp);
    let r = (|| -> Result<String, WriteError> {
        let f = durable::create_0600(&tmp)?;
        let io_err = IoError::at(&tmp);
        let hw = HashWrite {
            inner: io::BufWriter::with_capacity(1 << 20, f),
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
        };
        let hw = match enc {
            Encryption::None => {
                let z = Frames::new(hw).map_err(&io_err)?;
                write_tar(z, manifest, items)
                    .and_then(|z| z.finish())
                    .map_err(&io_err)?
            }
            Encryption::Recipients(rs) => {
                let e =
                    age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
                        .map_err(|e| WriteError::Encrypt(e.to_string()))?;
                let a = e.wrap_output(hw).map_err(&io_err)?;
                let z = Frames::new(a).map_err(&io_err)?;
                write_tar(z, manifest, items)
                    .and_then(|z| z.finish())
                    .and_then(|a| a.finish())
                    .map_err(&io_err)?
            }
            Encryption::Passphrase(p) => {
                let e = age::Encryptor::with_user_passphrase(p.clone());
                let a = e.wrap_output(hw).map_err(&io_err)?;
                let z = Frames::new(a).map_err(&io_err)?;
                write_tar(z, manifest, items)
                    .and_then(|z| z.finish())
                    .and_then(|a| a.finish())
                    .map_err(&io_err)?
            }
        };
        let HashWrite { inner, ctx } = hw;
        let f = inner.into_inner().map_err(|e| io_err(e.into_error()))?;
        f.sync_all().map_err(&io_err)?;
        drop(f);
        fs::rename(&tmp, path).map_err(IoError::at(path))?;
        durable::sync_path(durable::parent_of(path))?;
        Ok(hex(ctx.finish().as_ref()))
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// `SHA256SUMS` text for `(file name, sha256)` pairs, sorted by name.
pub fn sums_text(sums: &[(String, String)]) -> String {
    let mut v: Vec<&(String, String)> = sums.iter().collect();
    v.sort();
    v.iter().map(|(n, s)| format!("{s}  {n}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Multithreaded zstd gives the same bytes for any count of workers, so
    /// a bundle made on 2 cores equals one made on 64.
    #[test]
    fn zstd_output_does_not_depend_on_the_worker_count() {
        // Several MiB of mixed data, so the workers really split the job.
        let mut data = Vec::new();
        let mut x: u64 = 12345;
        for i in 0..(12u64 << 20) / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = if i % 3 == 0 { x } else { i / 64 };
            data.extend_from_slice(&v.to_le_bytes());
        }
        let out = |workers: u32| {
            let mut z = zstd_writer(Vec::new(), workers).unwrap();
            z.write_all(&data).unwrap();
            z.finish().unwrap()
        };
        let one = out(1);
        for n in [2, 3, 8] {
            assert!(out(n) == one, "{n} workers gave other bytes than 1");
        }
        assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
    }
}
