//! What the commands that restore or read bundles share on the command
//! line: the age key of an encrypted archive (`bundle inspect`, `bundle
//! extract`), and how a snapshot that fails verification is refused
//! (`restore`, `bundle`).

#[cfg(feature = "bundle")]
use std::path::PathBuf;

use crate::cli::Outcome;
#[cfg(feature = "bundle")]
use etcdsnap::bundle::read::Key;

/// The key of an encrypted archive.
#[cfg(feature = "bundle")]
#[derive(clap::Args)]
pub struct ArchiveKey {
    /// age identity file, for encrypted archives
    #[arg(long, conflicts_with = "passphrase_file")]
    identity: Option<PathBuf>,
    /// File whose first line is the passphrase, for encrypted archives
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

#[cfg(feature = "bundle")]
impl ArchiveKey {
    /// The key given, if any.
    pub fn key(&self) -> Key {
        key(self.identity.as_ref(), self.passphrase_file.as_ref())
    }
}

/// `--identity` or else `--passphrase-file`, as the library takes them.
#[cfg(feature = "bundle")]
pub fn key(identity: Option<&PathBuf>, passphrase_file: Option<&PathBuf>) -> Key {
    match (identity, passphrase_file) {
        (Some(i), _) => Key::Identity(i.clone()),
        (None, Some(p)) => Key::Passphrase(p.clone()),
        _ => Key::None,
    }
}

/// A snapshot that fails verification: the verifier's table and `why` on
/// stderr, exit 1.
pub fn refused_snapshot(report: &etcdsnap::verify::Report, why: &str) -> Outcome {
    eprint!("{}", crate::cli::render::render_table(report, true));
    eprintln!("etcdsnap: {why}");
    Outcome::Failed
}
