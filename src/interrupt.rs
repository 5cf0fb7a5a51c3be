//! Ctrl-C (SIGINT) and SIGTERM for the commands that write: without this a
//! signal ends the process at once, printing nothing and leaving gigabytes of
//! staging behind for the next run to find. With [`install`] called, the
//! first signal only raises a flag; long writers call [`check`] at safe
//! points (between writes, before an fsync, before a swap) and fail with
//! [`Interrupted`], so the ordinary error path removes what was staged and
//! the command says what it kept. A second signal ends the process the usual
//! way (the handler is reset after the first), for an operator who will not
//! wait; the next run then cleans the staging it finds.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

/// The signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Whether the handlers are in place.
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// A signal asked the command to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by {}", signal_name(*.0))]
pub struct Interrupted(pub i32);

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT (Ctrl-C)",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM from now on (later calls do nothing while the
/// handlers are in place). Interrupted system calls are restarted.
pub fn install() {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !*installed {
        *installed = true;
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is valid; the handler only stores an
            // atomic; sa_mask is initialised by sigemptyset.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    }
}

/// Whether [`install`] was called (and [`uninstall`] not since).
pub fn installed() -> bool {
    *INSTALLED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gives SIGINT and SIGTERM their default action back: for a reader that
/// caught them only while it had something to clean up (a remote source's
/// spool), so that Ctrl-C ends the rest of a read-only command at once.
pub fn uninstall() {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        *installed = false;
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: restoring the default disposition of a signal.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// The signal received, if any.
pub fn requested() -> Option<Interrupted> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(Interrupted(s)),
    }
}

/// `Err` once a signal asked the command to stop.
pub fn check() -> Result<(), Interrupted> {
    requested().map_or(Ok(()), Err)
}

/// A reader that fails (as [`check_io`]) once a signal asked the command
/// to stop, so that a long copy stops between two reads.
pub struct Checked<R>(pub R);

impl<R: std::io::Read> std::io::Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        check_io()?;
        self.0.read(buf)
    }
}

/// [`check`] as an I/O error, for writers behind `std::io::Write` (of kind
/// `Other`: `write_all` retries `Interrupted`).
pub fn check_io() -> std::io::Result<()> {
    check().map_err(std::io::Error::other)
}
