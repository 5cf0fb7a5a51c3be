//! The catalog file: a redb database with three tables — `meta` (the schema
//! key that marks the file as an etcdsnap catalog, and its version),
//! `entries` (sequence number → entry: its CRC-32C, then JSON with its own
//! version) and `sha256` (sha256 → sequence number).
//!
//! Why it is careful: several backup jobs may add at once (redb locks the
//! file; an open waits for the lock up to a timeout, then says who holds
//! what), a job may be killed at any moment (each add is one redb
//! transaction; a new catalog is built in a temporary file and linked into
//! place, so no half-made catalog is ever seen), and a catalog damaged or
//! not ours is reported naming the file, never silently recreated: it is
//! left as it is (writers open with redb's integrity check of every page;
//! readers open read-only and check each entry's CRC-32C).

use std::io::Read as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, ReadOnlyDatabase, ReadableDatabase, ReadableTable, StorageError,
    TableDefinition, TableError,
};

use super::entry::{ENTRY_VERSION, Entry, Head, RemoteObject};

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const BY_SHA: TableDefinition<&str, u64> = TableDefinition::new("sha256");
/// Sequence number → the entry's [`Head`], encoded as entries are.
const HEADS: TableDefinition<u64, &[u8]> = TableDefinition::new("heads");

/// The value of the `schema` key in `meta`.
pub const SCHEMA: &str = "etcdsnap-catalog";
/// The value of the `version` key in `meta`.
pub const SCHEMA_VERSION: &str = "1";

/// What redb's files begin with.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Why the catalog cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No catalog at the path (only `add` creates one).
    #[error("{path}: no catalog here (`etcdsnap catalog add` creates one)")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file is not an etcdsnap catalog; it is left as it is.
    #[error("{path}: not an etcdsnap catalog: {why}; the file is left as it is")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The catalog's contents cannot be read; it is left as it is.
    #[error(
        "{path}: the catalog is damaged: {why}; the file is left as it is (move it aside to start a new catalog)"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The catalog was written with another schema version.
    #[error(
        "{path}: the catalog was written by another etcdsnap (schema version {found}, this one reads {SCHEMA_VERSION})"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The schema version found.
        found: String,
    },
    /// Another process held the catalog's lock past the wait.
    #[error("{path}: the catalog is in use by another process; still locked after {waited:?}")]
    Locked {
        /// The file.
        path: PathBuf,
        /// How long it waited.
        waited: Duration,
    },
    /// Reading or writing the catalog file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        #[source]
        /// The I/O error.
        source: std::io::Error,
    },
}

/// An open catalog; the file stays locked until it is dropped.
pub struct Store {
    path: PathBuf,
    db: Handle,
}

/// Writers open with redb's integrity check (every page's checksum; the
/// check commits). Readers open read-only (no write, no fsync) and rely on
/// each entry's own CRC-32C; a file a crash left unrepaired is opened as a
/// writer, which recovers it (redb's recovery, not a recreation).
enum Handle {
    Write(Database),
    Read(ReadOnlyDatabase),
}

impl Handle {
    fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Handle::Write(db) => db.begin_read(),
            Handle::Read(db) => db.begin_read(),
        }
    }

    fn writer(&self) -> Result<&Database, redb::Error> {
        match self {
            Handle::Write(db) => Ok(db),
            // Not reached: the commands that write open as writers.
            Handle::Read(_) => Err(redb::Error::Io(std::io::Error::other(
                "the catalog was opened read-only",
            ))),
        }
    }
}

/// Whether an `add` wrote a new entry or found the sha256 there already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new entry, with its sequence number.
    New(u64),
    /// The same file was added before, under this sequence number.
    Already(u64),
}

/// Runs `f`, turning a panic inside redb (a damaged file it trusted) into
/// an error, without the panic message reaching stderr.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    r.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "redb gave up reading it".to_string())
    })
}

impl Store {
    /// Opens the catalog at `path`, creating it when `create` is set and no
    /// file is there; waits up to `wait` for another process's lock.
    pub fn open(path: &Path, create: bool, wait: Duration) -> Result<Store, CatalogError> {
        Store::open_as(path, create, wait, true)
    }

    /// Opens the catalog at `path` to read it (see `Handle`).
    pub fn open_read(path: &Path, wait: Duration) -> Result<Store, CatalogError> {
        Store::open_as(path, false, wait, false)
    }

    fn open_as(
        path: &Path,
        create: bool,
        wait: Duration,
        mut write: bool,
    ) -> Result<Store, CatalogError> {
        let io = |source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(CatalogError::Foreign {
                    path: path.to_path_buf(),
                    why: "a directory".into(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !create {
                    return Err(CatalogError::Missing {
                        path: path.to_path_buf(),
                    });
                }
                create_new(path)?;
            }
            Err(e) => return Err(io(e)),
        }
        check_magic(path)?;
        let start = Instant::now();
        let db = loop {
            let opened = guarded(|| {
                let mut b = redb::Builder::new();
                b.set_check_integrity_on_open(true).set_cache_size(32 << 20);
                if write {
                    b.open(path).map(Handle::Write)
                } else {
                    b.open_read_only(path).map(Handle::Read)
                }
            })
            .map_err(|why| damaged(path, why))?;
            match opened {
                Ok(db) => break db,
                // Left by a crash: recovered by a writer's open.
                Err(DatabaseError::RepairAborted) if !write => write = true,
                Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
                    if start.elapsed() >= wait {
                        return Err(CatalogError::Locked {
                            path: path.to_path_buf(),
                            waited: wait,
                        });
                    }
                    // Spread the retries of several waiting processes.
                    let jitter = u64::from(std::process::id() % 17);
                    std::thread::sleep(Duration::from_millis(10 + jitter));
                }
                Err(DatabaseError::UpgradeRequired(v)) => {
                    return Err(CatalogError::Foreign {
                        path: path.to_path_buf(),
                        why: format!("a redb database of an older file format ({v})"),
                    });
                }
                Err(DatabaseError::Storage(StorageError::Io(e))) => return Err(io(e)),
                Err(e) => return Err(damaged(path, e.to_string())),
            }
        };
        let store = Store {
            path: path.to_path_buf(),
            db,
        };
        store.check_schema()?;
        Ok(store)
    }

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn damaged(&self, why: impl std::fmt::Display) -> CatalogError {
        damaged(&self.path, why.to_string())
    }

    fn check_schema(&self) -> Result<(), CatalogError> {
        let found = guarded(
            || -> Result<(Option<String>, Option<String>), redb::Error> {
                let txn = self.db.begin_read()?;
                let meta = match txn.open_table(META) {
                    Ok(t) => t,
                    Err(TableError::TableDoesNotExist(_)) => return Ok((None, None)),
                    Err(e) => return Err(e.into()),
                };
                let get = |k: &str| -> Result<Option<String>, redb::Error> {
                    Ok(meta.get(k)?.map(|v| v.value().to_string()))
                };
                Ok((get("schema")?, get("version")?))
            },
        )
        .map_err(|why| self.damaged(why))?
        .map_err(|e| self.damaged(e))?;
        match found {
            (Some(s), Some(v)) if s == SCHEMA => {
                if v == SCHEMA_VERSION {
                    Ok(())
                } else {
                    Err(CatalogError::Version {
                        path: self.path.clone(),
                        found: v,
                    })
                }
            }
            _ => Err(CatalogError::Foreign {
                path: self.path.clone(),
                why: "a redb database without the etcdsnap schema key".into(),
            }),
        }
    }

    /// Adds `entry` unless an entry with its sha256 is there already.
    pub fn add(&self, entry: &Entry) -> Result<Added, CatalogError> {
        Ok(self.add_all(std::slice::from_ref(entry))?[0])
    }

    /// Adds each entry (one transaction), skipping those whose sha256 is
    /// there already.
    pub fn add_all(&self, entries: &[Entry]) -> Result<Vec<Added>, CatalogError> {
        let encoded = entries
            .iter()
            .map(|e| {
                Ok::<_, serde_json::Error>((e.sha256.as_str(), encode(e)?, encode(&e.head())?))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.damaged(e))?;
        guarded(|| -> Result<Vec<Added>, redb::Error> {
            let txn = self.db.writer()?.begin_write()?;
            let mut out = Vec::with_capacity(encoded.len());
            {
                let mut by_sha = txn.open_table(BY_SHA)?;
                let mut table = txn.open_table(ENTRIES)?;
                let mut heads = txn.open_table(HEADS)?;
                let mut next = table.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
                for (sha, bytes, head) in &encoded {
                    let existing = by_sha.get(*sha)?.map(|v| v.value());
                    out.push(match existing {
                        Some(seq) => Added::Already(seq),
                        None => {
                            table.insert(next, bytes.as_slice())?;
                            heads.insert(next, head.as_slice())?;
                            by_sha.insert(*sha, next)?;
                            next += 1;
                            Added::New(next - 1)
                        }
                    });
                }
            }
            if out.iter().any(|a| matches!(a, Added::New(_))) {
                txn.commit()?;
            } else {
                txn.abort()?;
            }
            Ok(out)
        })
        .map_err(|why| self.damaged(why))?
        .map_err(|e| self.redb_error(e))
    }

    /// Every entry with its sequence number, oldest first. An entry that
    /// does not decode makes the catalog damaged.
    pub fn entries(&self) -> Result<Vec<(u64, Entry)>, CatalogError> {
        self.all(ENTRIES)
    }

    /// Every entry's [`Head`], oldest first.
    pub fn heads(&self) -> Result<Vec<(u64, Head)>, CatalogError> {
        self.all(HEADS)
    }

    fn all<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<u64, &[u8]>,
    ) -> Result<Vec<(u64, T)>, CatalogError> {
        let raw = guarded(|| -> Result<Vec<(u64, Vec<u8>)>, redb::Error> {
            let txn = self.db.begin_read()?;
            let t = match txn.open_table(table) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                out.push((k.value(), v.value().to_vec()));
            }
            Ok(out)
        })
        .map_err(|why| self.damaged(why))?
        .map_err(|e| self.redb_error(e))?;
        raw.into_iter()
            .map(|(seq, bytes)| {
                decode(&bytes)
                    .map(|e| (seq, e))
                    .map_err(|why| self.damaged(format!("entry {seq}: {why}")))
            })
            .collect()
    }

    /// The sha256es that start with `prefix` (lowercase hex).
    pub fn find(&self, prefix: &str) -> Result<Vec<(String, u64)>, CatalogError> {
        guarded(|| -> Result<Vec<(String, u64)>, redb::Error> {
            let txn = self.db.begin_read()?;
            let t = match txn.open_table(BY_SHA) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for row in t.range(prefix..)? {
                let (k, v) = row?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                out.push((k.value().to_string(), v.value()));
            }
            Ok(out)
        })
        .map_err(|why| self.damaged(why))?
        .map_err(|e| self.redb_error(e))
    }

    /// The remote objects the entries were read from, with each entry's
    /// sha256: what `catalog add` of a prefix knows without reading an
    /// object again ([`super::entry::RemoteObject::is`]).
    pub fn remote_objects(&self) -> Result<Vec<(RemoteObject, String)>, CatalogError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter_map(|(_, e)| Some((e.remote?, e.sha256)))
            .collect())
    }

    /// The entry with this sequence number.
    pub fn get(&self, seq: u64) -> Result<Option<Entry>, CatalogError> {
        let raw = guarded(|| -> Result<Option<Vec<u8>>, redb::Error> {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(ENTRIES)?;
            Ok(t.get(seq)?.map(|v| v.value().to_vec()))
        })
        .map_err(|why| self.damaged(why))?
        .map_err(|e| self.redb_error(e))?;
        raw.map(|b| decode(&b).map_err(|why| self.damaged(format!("entry {seq}: {why}"))))
            .transpose()
    }

    /// The entry a head or the sha256 table names (it must be there).
    pub fn entry(&self, seq: u64) -> Result<Entry, CatalogError> {
        self.get(seq)?
            .ok_or_else(|| self.damaged(format!("entry {seq} is named but not there")))
    }

    /// Removes the entry of `sha256`; whether there was one.
    pub fn forget(&self, sha256: &str) -> Result<bool, CatalogError> {
        guarded(|| -> Result<bool, redb::Error> {
            let txn = self.db.writer()?.begin_write()?;
            let removed = {
                let mut by_sha = txn.open_table(BY_SHA)?;
                let seq = by_sha.remove(sha256)?.map(|v| v.value());
                match seq {
                    Some(seq) => {
                        txn.open_table(ENTRIES)?.remove(seq)?;
                        txn.open_table(HEADS)?.remove(seq)?;
                        true
                    }
                    None => false,
                }
            };
            txn.commit()?;
            Ok(removed)
        })
        .map_err(|why| self.damaged(why))?
        .map_err(|e| self.redb_error(e))
    }

    fn redb_error(&self, e: redb::Error) -> CatalogError {
        match e {
            redb::Error::Io(source) => CatalogError::Io {
                path: self.path.clone(),
                source,
            },
            e => self.damaged(e),
        }
    }
}

fn damaged(path: &Path, why: String) -> CatalogError {
    CatalogError::Damaged {
        path: path.to_path_buf(),
        why,
    }
}

/// An entry as stored: its JSON after the JSON's CRC-32C (4 bytes, little
/// endian), so that a changed byte is found even where redb does not look.
fn encode<T: serde::Serialize>(e: &T) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(e)?;
    let mut out = crc32c::crc32c(&json).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(stored: &[u8]) -> Result<T, String> {
    let (crc, bytes) = stored
        .split_first_chunk::<4>()
        .ok_or("shorter than its checksum")?;
    if u32::from_le_bytes(*crc) != crc32c::crc32c(bytes) {
        return Err("its checksum does not match its bytes".into());
    }
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let v: Versioned = serde_json::from_slice(bytes).map_err(|e| format!("not an entry: {e}"))?;
    if v.version != ENTRY_VERSION {
        return Err(format!(
            "entry version {} (this etcdsnap reads {ENTRY_VERSION})",
            v.version
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| format!("not an entry: {e}"))
}

/// A file that is not a redb database at all (empty, random bytes, JSON)
/// is refused before redb sees it: redb would initialise an empty file.
fn check_magic(path: &Path) -> Result<(), CatalogError> {
    let mut head = Vec::with_capacity(REDB_MAGIC.len());
    std::fs::File::open(path)
        .and_then(|f| f.take(REDB_MAGIC.len() as u64).read_to_end(&mut head))
        .map_err(|source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if head.is_empty() {
        return Err(CatalogError::Foreign {
            path: path.to_path_buf(),
            why: "an empty file".into(),
        });
    }
    if head[..] != REDB_MAGIC[..] {
        return Err(CatalogError::Foreign {
            path: path.to_path_buf(),
            why: format!(
                "not a redb database (it begins {:?})",
                String::from_utf8_lossy(&head[..head.len().min(8)])
            ),
        });
    }
    Ok(())
}

/// Makes a new, empty catalog at `path`: built in a temporary file beside
/// it, then linked into place (a process that loses the race to another
/// creator uses the other's).
fn create_new(path: &Path) -> Result<(), CatalogError> {
    let io = |source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = tempfile::Builder::new()
        .prefix(".catalog-new-")
        .tempfile_in(dir)
        .map_err(io)?;
    let made = guarded(|| -> Result<(), redb::Error> {
        let db = redb::Builder::new().create(tmp.path())?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("schema", SCHEMA)?;
            meta.insert("version", SCHEMA_VERSION)?;
            txn.open_table(ENTRIES)?;
            txn.open_table(BY_SHA)?;
            txn.open_table(HEADS)?;
        }
        txn.commit()?;
        db.close()?;
        Ok(())
    })
    .map_err(|why| damaged(tmp.path(), why))?;
    made.map_err(|e| damaged(tmp.path(), e.to_string()))?;
    tmp.as_file().sync_all().map_err(io)?;
    // `false`: another process made it first; theirs is used.
    crate::durable::place_no_replace(tmp.path(), path).map_err(|e| io(e.err))?;
    let _ = crate::durable::sync_path(dir);
    Ok(())
}

/// Neither `--catalog` nor a variable that places the catalog.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no catalog file: give --catalog, or set ETCDSNAP_CATALOG or HOME")]
pub struct NoCatalogPath;

/// Where the catalog is when no file is given: `$ETCDSNAP_CATALOG`, else
/// `$XDG_DATA_HOME/etcdsnap/catalog.redb`, else
/// `~/.local/share/etcdsnap/catalog.redb`.
pub fn default_path() -> Result<PathBuf, NoCatalogPath> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = nonempty("ETCDSNAP_CATALOG") {
        return Ok(PathBuf::from(p));
    }
    let data = match nonempty("XDG_DATA_HOME") {
        Some(d) => PathBuf::from(d),
        None => match nonempty("HOME") {
            Some(h) => PathBuf::from(h).join(".local/share"),
            None => return Err(NoCatalogPath),
        },
    };
    Ok(data.join("etcdsnap").join("catalog.redb"))
}

/// Adds the entry of a snapshot read by [`crate::check::facts::read`] (one
/// pass: verify and the counts, as `check` reads it), added now.
pub fn add_read(
    store: &Store,
    file: &crate::input::SnapshotFile,
    read: &crate::check::facts::Read,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<(Entry, Added), CatalogError> {
    add_read_drilled(store, file, read, labels, None)
}

/// [`add_read`] with the result of a restore drill of the snapshot.
pub fn add_read_drilled(
    store: &Store,
    file: &crate::input::SnapshotFile,
    read: &crate::check::facts::Read,
    labels: &std::collections::BTreeMap<String, String>,
    drill: Option<super::entry::DrillResult>,
) -> Result<(Entry, Added), CatalogError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut entry = Entry::from_read(file, read, labels.clone(), now);
    entry.drill = drill;
    let added = store.add(&entry)?;
    Ok((entry, added))
}
