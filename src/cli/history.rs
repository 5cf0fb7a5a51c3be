//! `etcdsnap history`: every revision of one key that the snapshot still holds.

use anyhow::bail;
use serde::Serialize;

use super::args::{DecryptArgs, IndexOpts, ReportFormat, SnapshotPath, db};
use super::render::index_event;
use super::{Outcome, out};
use etcdsnap::kube::decrypt::Decryptor;
use etcdsnap::kube::value::{Encoding, detect};
use etcdsnap::lookup::{Finder, Wanted, decrypted_encoding, single_key};
use etcdsnap::mvcc::keyspace::{KeySpace, RecordInfo};
use etcdsnap::report::{Align, Table, escape_bytes, escape_controls};

/// List every revision of one key that the snapshot still holds
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etcdsnap history snapshot.db /registry/deployments/default/web\n  etcdsnap history snapshot.db deploy web -n default\n  etcdsnap get snapshot.db /registry/deployments/default/web --revision 41\n\nEnvironment:\n  ETCDSNAP_CACHE_DIR  where key indexes are kept (see --no-index)"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected).
    /// Compressed input is inflated, and standard input copied, into an
    /// unnamed temporary file in $TMPDIR (else /tmp); inflation stops where the
    /// db ends
    snapshot: SnapshotPath,
    /// An etcd key (used as is when it starts with `/` or comes without NAME),
    /// or a resource as kubectl names it (pods, deploy, deployments.apps,
    /// widgets.example.com …) followed by NAME, as `get` takes them
    target: String,
    /// The object's name (with a resource)
    name: Option<String>,
    /// Namespace (with a namespaced resource; default "default")
    #[arg(short, long)]
    namespace: Option<String>,
    /// kube-apiserver's --etcd-prefix (OpenShift: /kubernetes.io); with
    /// RESOURCE NAME only
    #[arg(long, requires = "name")]
    prefix: Option<String>,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
    write_out: ReportFormat,
    #[command(flatten)]
    index: IndexOpts,
    #[command(flatten)]
    decrypt: DecryptArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct History {
    key: String,
    compact_revision: Option<i64>,
    revisions: Vec<Revision>,
}

/// A revision, and with --encryption-config what its value decrypts to.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Revision {
    #[serde(flatten)]
    info: RecordInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decrypt_error: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let wanted = Wanted::from_args(
        &args.target,
        args.name.as_deref(),
        args.namespace.as_deref(),
    )?;
    let decryptor = Decryptor::any_prefix(args.decrypt.config()?);
    let file = args.index.open_snapshot(&args.snapshot)?;
    let db = db(&file)?;
    let ks = KeySpace::open(&db)?;
    let prefix = args.prefix.clone().unwrap_or_else(|| "/registry".into());
    let matches = |k: &[u8]| wanted.matches(k, &prefix);
    let finder = Finder::new(&file, &ks, !args.index.no_index, &index_event)?;
    finder.lookup_then(wanted.select(&matches), |records, _| {
        show(&args, &file, &ks, &decryptor, records)
    })?
}

fn show(
    args: &Args,
    file: &etcdsnap::input::SnapshotFile,
    ks: &KeySpace<'_, '_>,
    decryptor: &Decryptor,
    records: &[etcdsnap::mvcc::keyspace::Record<'_>],
) -> anyhow::Result<Outcome> {
    let decrypted: Vec<(Option<&'static str>, Option<String>)> = records
        .iter()
        .map(|r| {
            if r.tombstone {
                (None, None)
            } else {
                decrypted_encoding(decryptor, r.kv.key, r.kv.value)
            }
        })
        .collect();
    for e in decrypted.iter().filter_map(|d| d.1.as_ref()) {
        say!("etcdsnap: {e}");
    }
    let key = match single_key(records) {
        Ok(key) => key,
        Err(several) => bail!("{} {several}", asked(args)),
    };
    let Some(key) = key else {
        say!(
            "etcdsnap: {}: {}: not found in the snapshot",
            file.path().display(),
            asked(args)
        );
        return Ok(Outcome::Failed);
    };
    let (raw_key, key) = (String::from_utf8_lossy(key).into_owned(), escape_bytes(key));
    match args.write_out {
        ReportFormat::Json => {
            let h = History {
                key: raw_key,
                compact_revision: ks.compact_revision,
                revisions: records
                    .iter()
                    .zip(&decrypted)
                    .map(|(r, d)| Revision {
                        info: RecordInfo::from(r),
                        plaintext: d.0,
                        decrypt_error: d.1.clone(),
                    })
                    .collect(),
            };
            out(&(serde_json::to_string_pretty(&h)? + "\n"))?;
        }
        ReportFormat::Table => {
            let mut t = Table::new(
                &[
                    "revision",
                    "event",
                    "create rev",
                    "version",
                    "lease",
                    "size",
                    "encoding",
                ],
                Align::Left,
            );
            for (r, d) in records.iter().zip(&decrypted) {
                t.row(vec![
                    format!("{}", r.revision),
                    if r.tombstone { "DELETE" } else { "PUT" }.into(),
                    if r.tombstone {
                        "-".into()
                    } else {
                        r.kv.create_revision.to_string()
                    },
                    if r.tombstone {
                        "-".into()
                    } else {
                        r.kv.version.to_string()
                    },
                    if r.kv.lease == 0 {
                        "-".into()
                    } else {
                        format!("{:x}", r.kv.lease)
                    },
                    r.kv.value.len().to_string(),
                    match (r.tombstone, detect(r.kv.value), d) {
                        (true, ..) => "-".into(),
                        (_, Encoding::Encrypted { provider, .. }, (Some(plain), _)) => {
                            format!("{provider}>{plain}")
                        }
                        (_, Encoding::Encrypted { provider, .. }, (None, Some(_))) => {
                            format!("enc:{provider}!")
                        }
                        (_, e, _) => e.name().into(),
                    },
                ]);
            }
            let mut s = format!("{key}\n");
            s.push_str(&t.render());
            if let Some(c) = ks.compact_revision {
                s.push_str(&format!("history before revision {c} was compacted\n"));
            }
            out(&s)?;
        }
    }
    Ok(Outcome::Ok)
}

/// The arguments as the user gave them, for messages.
fn asked(args: &Args) -> String {
    let mut s = escape_controls(&args.target).into_owned();
    if let Some(n) = &args.name {
        s.push(' ');
        s.push_str(&escape_controls(n));
    }
    if let (Some(_), Some(ns)) = (&args.name, &args.namespace) {
        s.push_str(" -n ");
        s.push_str(&escape_controls(ns));
    }
    s
}
