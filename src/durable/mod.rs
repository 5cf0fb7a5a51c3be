//! Durable file-system steps, as etcd takes them, for every command that
//! writes files that must survive a crash (`restore`, `bundle` and
//! `bundle install`, `pki issue`): files created 0600 and directories 0700,
//! the WAL preallocated with real blocks (fallocate, not a sparse length),
//! ownership set before anything is fsynced, every file and directory written
//! fsynced, and small files (the `.env` files) written to a temporary sibling,
//! fsynced, renamed into place and their directory fsynced. A member dir is
//! replaced through [`swap`], which stages, moves the old one aside and
//! journals the renames.
//!
//! It also tells whether a running process holds a member's files: etcd
//! locks every WAL file it has open (an open-file-description lock, or a
//! `flock` on older kernels) and bbolt `flock`s `member/snap/db`; a member
//! moved aside under a live etcd keeps being written to where it went.
//!
//! Errors name the path and give the OS error once (`IoError`'s Display holds
//! the OS error and it has no `source`, so `{:#}` chains never repeat it).

pub mod swap;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An I/O error at a path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {err}", path.display())]
pub struct IoError {
    /// The path the operation was on.
    pub path: PathBuf,
    /// The OS error; shown in the Display and not given as `source`.
    pub err: std::io::Error,
}

impl IoError {
    /// A closure for `map_err` that turns an `io::Error` into an
    /// [`IoError`] at `path`.
    pub fn at(path: &Path) -> impl Fn(std::io::Error) -> IoError + '_ {
        move |err| IoError {
            path: path.to_path_buf(),
            err,
        }
    }
}

/// Creates the directory `p` (its parent must exist) with mode 0700.
pub fn mkdir_0700(p: &Path) -> Result<(), IoError> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(p).map_err(IoError::at(p))?;
    set_mode(p, 0o700)
}

/// Sets a path's permission bits (the umask may have narrowed them; 0700 and
/// 0600 are what etcd checks for).
pub fn set_mode(p: &Path, mode: u32) -> Result<(), IoError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(IoError::at(p))?;
    }
    let _ = (p, mode);
    Ok(())
}

/// Creates a new file with mode 0600.
pub fn create_0600(p: &Path) -> Result<fs::File, IoError> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(p).map_err(IoError::at(p))
}

/// Creates `p` exclusively for writing, mode 0600, never through a symbolic
/// link (`O_NOFOLLOW`) and not inherited by child processes: the temporary
/// file a streamed output is written to before [`place_no_replace`].
pub fn create_exclusive(p: &Path) -> Result<fs::File, IoError> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    o.open(p).map_err(IoError::at(p))
}

/// Gives the (fsynced) file `temp` the name `to` unless `to` exists: a hard
/// link, which fails when it does, then the temporary name is removed.
/// `Ok(false)` when `to` exists (`temp` is left as it is). On a file system
/// without hard links (FAT), a check then a rename: there another process
/// could still create `to` in between. The caller fsyncs the directory.
pub fn place_no_replace(temp: &Path, to: &Path) -> Result<bool, IoError> {
    match fs::hard_link(temp, to) {
        Ok(()) => {
            fs::remove_file(temp).map_err(IoError::at(temp))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::EOPNOTSUPP | libc::EMLINK | libc::ENOSYS)
            ) =>
        {
            if fs::symlink_metadata(to).is_ok() {
                return Ok(false);
            }
            fs::rename(temp, to).map_err(IoError::at(to))?;
            Ok(true)
        }
        Err(e) => Err(IoError::at(to)(e)),
    }
}

/// Writes a new file (not yet fsynced: `sync_tree` does that after chown).
pub fn write_new(p: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let mut f = create_0600(p)?;
    f.write_all(bytes).map_err(IoError::at(p))
}

/// Extends `f` to `len` bytes of allocated blocks, as etcd preallocates a WAL
/// segment; where the file system cannot (EOPNOTSUPP), falls back to setting
/// the length, as etcd does.
pub fn preallocate(f: &fs::File, p: &Path, len: u64) -> Result<(), IoError> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let off_len = libc::off_t::try_from(len).map_err(|_| IoError {
            path: p.to_path_buf(),
            err: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        loop {
            // SAFETY: fallocate on an fd we own, with no pointers involved.
            let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, off_len) };
            if r == 0 {
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => break,
                _ => return Err(IoError::at(p)(err)),
            }
        }
    }
    f.set_len(len).map_err(IoError::at(p))
}

/// Asks the kernel to start writing `f`'s dirty pages out now, without
/// waiting: the disk works while we check what was written, and the fsync
/// that follows (the durability step) has less left to wait for. A hint
/// only: where it is not supported, nothing happens.
pub fn start_writeback(f: &fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: sync_file_range on an fd we own, with no pointers involved.
        let _ = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    let _ = f;
}

/// Asks the kernel to start writing `len` bytes of `f` from `offset` out now
/// (see [`start_writeback`]).
pub fn start_writeback_range(f: &fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(n)) = (
            libc::off64_t::try_from(offset),
            libc::off64_t::try_from(len),
        ) else {
            return;
        };
        // SAFETY: sync_file_range on an fd we own, with no pointers involved.
        let _ =
            unsafe { libc::sync_file_range(f.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE) };
    }
    let _ = (f, offset, len);
}

/// Alignment of buffers, lengths and offsets for [`set_direct`] writes (the
/// largest logical block size of common disks).
pub const DIRECT_ALIGN: usize = 4096;

/// Turns `O_DIRECT` on or off for `f` (Linux): writes then go from the
/// caller's buffer to the disk without a copy into the page cache, and must
/// be [`DIRECT_ALIGN`]ed in buffer, length and file offset. `false` when the
/// file system refuses it (tmpfs), or elsewhere than Linux; the file is then
/// written through the page cache as before. The fsync is still needed.
pub fn set_direct(f: &fs::File, on: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = f.as_raw_fd();
        // SAFETY: fcntl F_GETFL/F_SETFL on an fd we own, with no pointers.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return false;
        }
        let want = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        // SAFETY: as above.
        return unsafe { libc::fcntl(fd, libc::F_SETFL, want) } == 0;
    }
    #[allow(unreachable_code)]
    {
        let _ = (f, on);
        false
    }
}

/// Bytes written before their write-out is started (see [`Windowed`]).
pub const WRITEBACK_WINDOW: u64 = 32 << 20;

/// A new file written front to back whose write-out is started every
/// [`WRITEBACK_WINDOW`] bytes: the disk starts working with the first
/// window instead of once the kernel's dirty-page threshold (a tenth of the
/// memory) is reached, and dirty pages do not pile up before the fsync.
pub struct Windowed {
    file: fs::File,
    pos: u64,
    started: u64,
}

impl Windowed {
    /// Wraps `file`, newly created and empty, to be written from offset 0.
    pub fn new(file: fs::File) -> Windowed {
        Windowed {
            file,
            pos: 0,
            started: 0,
        }
    }

    /// The file.
    pub fn get_ref(&self) -> &fs::File {
        &self.file
    }

    /// The file, with the write-out of all of it started.
    pub fn into_inner(self) -> fs::File {
        start_writeback(&self.file);
        self.file
    }
}

impl Write for Windowed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::interrupt::check_io()?;
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        if self.pos >= self.started + WRITEBACK_WINDOW {
            start_writeback_range(&self.file, self.started, self.pos - self.started);
            self.started = self.pos;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// fsync of one file or directory.
pub fn sync_path(p: &Path) -> Result<(), IoError> {
    fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(IoError::at(p))
}

/// fsync of every file and directory below `p`, and of `p` (children first),
/// for trees being staged: stopped (with an error) once a signal asked the
/// command to stop (see `crate::interrupt`).
pub fn sync_tree(p: &Path) -> Result<(), IoError> {
    crate::interrupt::check_io().map_err(IoError::at(p))?;
    let meta = fs::symlink_metadata(p).map_err(IoError::at(p))?;
    if meta.is_dir() {
        for e in fs::read_dir(p).map_err(IoError::at(p))? {
            let e = e.map_err(IoError::at(p))?;
            sync_tree(&e.path())?;
        }
    } else if meta.file_type().is_symlink() {
        return Ok(());
    }
    sync_path(p)
}

/// chown of `p` and everything below it (links themselves, not their targets).
pub fn chown_tree(p: &Path, uid: u32, gid: u32) -> Result<(), IoError> {
    #[cfg(unix)]
    {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid)).map_err(IoError::at(p))?;
        let meta = fs::symlink_metadata(p).map_err(IoError::at(p))?;
        if meta.is_dir() {
            for e in fs::read_dir(p).map_err(IoError::at(p))? {
                let e = e.map_err(IoError::at(p))?;
                chown_tree(&e.path(), uid, gid)?;
            }
        }
    }
    let _ = (p, uid, gid);
    Ok(())
}

/// The directory holding `p` (`.` for a bare name).
pub fn parent_of(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The temporary sibling an atomic write goes through: `.<name>.etcdsnap-tmp-<pid>`.
pub fn temp_sibling(p: &Path) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(p).join(format!(".{name}.etcdsnap-tmp-{}", std::process::id()))
}

/// Writes `bytes` to `p` atomically: a temporary sibling, fsynced, renamed
/// over `p`, then the directory fsynced. A failure leaves `p` as it was.
pub fn write_atomic(p: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let tmp = temp_sibling(p);
    let _ = fs::remove_file(&tmp);
    let r = (|| {
        let mut f = create_0600(&tmp)?;
        f.write_all(bytes).map_err(IoError::at(&tmp))?;
        f.sync_all().map_err(IoError::at(&tmp))?;
        drop(f);
        fs::rename(&tmp, p).map_err(IoError::at(p))?;
        sync_path(parent_of(p))
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Whether `p` is a directory with nothing in it.
pub fn is_empty_dir(p: &Path) -> bool {
    fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

/// Whether the directory `p` is a mount point: its device differs from that
/// of its parent (a bind mount of a directory on the same device is not seen).
pub fn is_mount_point(p: &Path) -> Result<bool, IoError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(p).map_err(IoError::at(p))?;
        let up = p.join("..");
        let u = fs::metadata(&up).map_err(IoError::at(&up))?;
        return Ok(m.dev() != u.dev() || m.ino() == u.ino());
    }
    #[allow(unreachable_code)]
    {
        let _ = p;
        Ok(false)
    }
}

/// A file of a member that a running process holds locked, and the processes
/// (PID, command name) that have it open.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The locked file (a WAL file or `member/snap/db`).
    pub file: PathBuf,
    /// The processes that have it open, as (PID, command name); empty when
    /// the lock is seen but its holder is not visible to this user.
    pub pids: Vec<(u32, String)>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pids.is_empty() {
            return write!(
                f,
                "{} is locked by a process this user cannot see",
                self.file.display()
            );
        }
        let who: Vec<String> = self
            .pids
            .iter()
            .map(|(pid, comm)| format!("pid {pid} ({comm})"))
            .collect();
        write!(
            f,
            "{} is held by a running {}",
            self.file.display(),
            who.join(", ")
        )
    }
}

/// The files a running etcd keeps locked in a member dir (`snap/db`,
/// `wal/*.wal`) or in a WAL dir (`*.wal`).
fn lockable_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = vec![dir.join("snap/db")];
    for d in [dir.join("wal"), dir.to_path_buf()] {
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "wal") {
                    v.push(p);
                }
            }
        }
    }
    v
}

/// Whether a process holds a lock on a file of the member (or WAL) dir
/// `dir`; the first such file found and who has it open. The probe only
/// asks: a lock query (`F_OFD_GETLK`, which sees etcd's WAL locks) and a
/// shared, non-blocking `flock` released at once (which sees bbolt's
/// exclusive one) on a read-only descriptor — nothing a running etcd notices.
pub fn held_by_a_process(dir: &Path) -> Option<Holder> {
    lockable_files(dir)
        .into_iter()
        .find(|f| is_locked(f))
        .map(|file| Holder {
            pids: openers(&file),
            file,
        })
}

#[cfg(target_os = "linux")]
fn is_locked(p: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let Ok(f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(p)
    else {
        return false;
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let fd = f.as_raw_fd();
    // SAFETY: a zeroed flock is a valid argument; fd is open for the call.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fd is a valid open descriptor and fl a valid flock.
    let r = unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl) };
    if r == 0 && fl.l_type != libc::F_UNLCK as libc::c_short {
        return true;
    }
    // SAFETY: fd is a valid open descriptor.
    if unsafe { libc::flock(fd, libc::LOCK_SH | libc::LOCK_NB) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK);
    }
    // SAFETY: fd is a valid open descriptor holding the lock just taken.
    unsafe { libc::flock(fd, libc::LOCK_UN) };
    false
}

#[cfg(not(target_os = "linux"))]
fn is_locked(_: &Path) -> bool {
    false
}

/// The processes (PID, command name) with `p` open, from `/proc/*/fd`
/// (those this user may look into).
fn openers(p: &Path) -> Vec<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let Ok(want) = fs::metadata(p) else {
        return Vec::new();
    };
    let mut v = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return v;
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(fds) = fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::metadata(fd.path()).is_ok_and(|m| m.dev() == want.dev() && m.ino() == want.ino())
        });
        if holds {
            let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            v.push((pid, comm.trim().to_string()));
        }
    }
    v
}

/// The time now as `YYYYMMDDThhmmssZ` (UTC), for backup names.
pub fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamp_is_utc_shaped() {
        let s = super::utc_stamp();
        assert_eq!(s.len(), 16, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z') && s.as_bytes()[8] == b'T');
    }
}
