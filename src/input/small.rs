//! Reading a small file given on the command line (a policy, an encryption
//! config, a PEM file, a list of entries) without trusting it to be small.
//!
//! A size taken from the file's metadata says nothing for a device
//! (`/dev/zero` has length 0 and never ends) or a FIFO, and opening a FIFO
//! for reading waits for a writer. So the file is opened without blocking,
//! its type is looked at on the open descriptor (not the path, which could
//! be swapped in between), anything but a regular file is refused by name,
//! and the read stops after the limit plus one byte: memory is bounded by
//! the bytes read, whatever the file claims or becomes.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The limit for configuration-like files: far above any real one.
pub const SMALL_FILE_LIMIT: u64 = 4 << 20;

/// What a non-regular file is, for the message.
fn kind_name(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading without waiting on a FIFO's writer.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    opts.open(path)
}

/// Reads all of `path`, a regular file of at most `limit` bytes. The errors
/// are `io::Error`s (so this replaces `std::fs::read`) whose text says what
/// is wrong: "is a FIFO (named pipe), not a regular file", "larger than N bytes".
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open_nonblocking(path)?;
    let ft = file.metadata()?.file_type();
    if !ft.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", kind_name(&ft)),
        ));
    }
    // A regular file ignores O_NONBLOCK; reading it is an ordinary read.
    read_bounded_from(file, limit)
}

/// [`read_bounded`] as text (UTF-8 checked).
pub fn read_bounded_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads a stream to its end, failing once it passes `limit` bytes (at most
/// `limit + 1` bytes are ever held).
pub fn read_bounded_from(reader: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_fifos_are_refused_and_reads_are_capped() {
        let e = read_bounded(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_bounded(&fifo, 10).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        let e = read_bounded(dir.path(), 10).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        let f = dir.path().join("f");
        std::fs::write(&f, b"0123456789A").unwrap();
        assert!(read_bounded(&f, 10).is_err());
        assert_eq!(read_bounded(&f, 11).unwrap(), b"0123456789A");
        let e = read_bounded_from(std::io::repeat(0), 1000).unwrap_err();
        assert!(e.to_string().contains("larger than 1000"), "{e}");
    }
}
