//! `etcdsnap get`: one object out of a snapshot — live, at a past revision, or
//! deleted — as YAML/JSON for `kubectl apply`, or as the exact stored bytes.

use anyhow::bail;

use super::Outcome;
use super::args::{
    ApplyArgs, IndexOpts, ObjectFormat, ObjectOpts, RemoteArgs, SalvageOpts, SnapshotPath, db,
    salvage_outcome, view_or_file,
};
use super::render::{dropped_note, index_event, progress, unknown_note, write_prepared, write_raw};
use etcdsnap::kube::decrypt::Decryptor;
use etcdsnap::kube::redact::{is_secret_key, is_secret_key_any_prefix, value_is_secret};
use etcdsnap::kube::resource::ResourceRef;
use etcdsnap::kube::value::{decode_checked, detect};
use etcdsnap::lookup::all::{AllQuery, Item, ItemError, ItemOptions, decode_all, live_objects};
use etcdsnap::lookup::choose::missing_elsewhere;
use etcdsnap::lookup::{Finder, Prepare, Wanted, choose, prepare, single_key};
use etcdsnap::mvcc::keyspace::{KeySpace, Record};
use etcdsnap::report::{escape_bytes, escape_controls};
use etcdsnap::salvage::view::View;

/// Get one object (live, at a past revision, or deleted) from a snapshot
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etcdsnap get snapshot.db configmap app-config -n default\n  etcdsnap get snapshot.db deploy web -n prod --for-apply | kubectl apply -f -\n  etcdsnap get snapshot.db /registry/pods/default/web-0 --deleted -o json\n  etcdsnap get snapshot.db secret db-creds -n prod -o raw --show-secrets | etcdctl put /registry/secrets/prod/db-creds\n  etcdsnap get snapshot.db widgets.example.com w1 --revision 40\n  etcdsnap get snapshot.db secret db-creds -n prod --encryption-config /etc/kubernetes/enc/enc.yaml\n  etcdsnap get damaged.db configmap app-config -n default --salvage\n\nEnvironment:\n  ETCDSNAP_CACHE_DIR  where key indexes are kept (see --no-index)"
)]
pub struct Args {
    /// Snapshot file (`-` for standard input; zstd/gzip/zip are detected).
    /// Compressed input is inflated, and standard input copied, into an
    /// unnamed temporary file in $TMPDIR (else /tmp); inflation stops where the
    /// db ends
    snapshot: SnapshotPath,
    /// An etcd key (used as is when it starts with `/` or comes without NAME),
    /// or a resource as kubectl names it (pods, deploy, deployments.apps,
    /// widgets.example.com …) followed by NAME
    target: String,
    /// The object's name (with a resource)
    name: Option<String>,
    /// Namespace (with a namespaced resource; default "default")
    #[arg(short, long)]
    namespace: Option<String>,
    /// The object as it was at this revision
    #[arg(long)]
    revision: Option<i64>,
    /// A deleted object: its last live revision
    #[arg(long)]
    deleted: bool,
    /// Every object of RESOURCE (in -n NAMESPACE, or all namespaces), as a List
    /// in yaml or json; decoded on all cores
    #[arg(long, conflicts_with_all = ["name", "deleted"])]
    all: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: ObjectFormat,
    #[command(flatten)]
    apply: ApplyArgs,
    #[command(flatten)]
    opts: ObjectOpts,
    #[command(flatten)]
    index: IndexOpts,
    #[command(flatten)]
    salvage: SalvageOpts,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// Why `--for-apply` of a Secret needs `--show-secrets`: redacted, the
/// placeholders are what `kubectl apply` would store.
const FOR_APPLY_SECRET: &str = "--for-apply of a Secret without --show-secrets would give `kubectl apply` \
     redacted placeholders to store in place of its data: add --show-secrets (its data is then printed in \
     clear), or leave out --for-apply to look at it redacted";

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    args.remote.configure();
    if args.all {
        return run_all(args);
    }
    let wanted = Wanted::from_args(
        &args.target,
        args.name.as_deref(),
        args.namespace.as_deref(),
    )?;
    let decryptor = args.opts.decrypt.decryptor(&args.opts.prefix.prefix)?;
    if let Some(view) = args
        .salvage
        .view(&args.snapshot, &args.opts.prefix.prefix)?
    {
        let db = etcdsnap::bolt::Db::open(view.db())?;
        let ks = KeySpace::open(&db)?;
        if let Some(r) = args.revision {
            ks.check_revision(r)?;
        }
        let prefix = args.opts.prefix.prefix.clone();
        let matches = |k: &[u8]| wanted.matches(k, &prefix);
        let finder = Finder::scanning(&ks, &index_event);
        let shown = finder.lookup_then(wanted.select(&matches), |records, finder| {
            let at = Shown {
                path: &args.snapshot,
                view: Some(&view),
            };
            show(&args, at, &ks, &decryptor, &wanted, records, finder)
        })??;
        return Ok(salvage_outcome(Some(&view), shown));
    }
    #[cfg(feature = "remote")]
    if !args.index.no_index
        && let Some(r) = etcdsnap::lookup::ranged::open(&args.snapshot)
    {
        let prefix = args.opts.prefix.prefix.clone();
        let matches = |k: &[u8]| wanted.matches(k, &prefix);
        let shown = etcdsnap::lookup::ranged::lookup(
            &r,
            wanted.select(&matches),
            &index_event,
            |ks, records, finder| {
                if let Some(rev) = args.revision {
                    ks.check_revision(rev)?;
                }
                let at = Shown {
                    path: r.file.path(),
                    view: None,
                };
                show(&args, at, ks, &decryptor, &wanted, records, finder)
            },
        );
        if let Some(outcome) = shown {
            return outcome;
        }
    }
    let file = args.index.open_snapshot(&args.snapshot)?;
    let db = db(&file)?;
    let ks = KeySpace::open(&db)?;
    if let Some(r) = args.revision {
        ks.check_revision(r)?;
    }
    let prefix = args.opts.prefix.prefix.clone();
    let matches = |k: &[u8]| wanted.matches(k, &prefix);
    let finder = Finder::new(&file, &ks, !args.index.no_index, &index_event)?;
    finder.lookup_then(wanted.select(&matches), |records, finder| {
        let at = Shown {
            path: file.path(),
            view: None,
        };
        show(&args, at, &ks, &decryptor, &wanted, records, finder)
    })?
}

/// Where the records shown come from: the snapshot's path (for messages)
/// and, with --salvage, the salvaged view (for each record's origin).
#[derive(Clone, Copy)]
struct Shown<'v> {
    path: &'v std::path::Path,
    view: Option<&'v View>,
}

impl Shown<'_> {
    /// `, from ORIGIN` in a salvaged view, else nothing.
    fn from(&self, revision: etcdsnap::mvcc::Revision) -> String {
        match self.view {
            Some(v) => format!(
                ", from {}",
                v.origin(revision).map_or("-".into(), |o| o.to_string())
            ),
            None => String::new(),
        }
    }
}

/// Why nothing was found, when more can be said than "not found": a custom
/// resource the snapshot does not know (a usage error), or an object of that
/// name in other namespaces.
fn explain_missing(
    args: &Args,
    wanted: &Wanted,
    finder: &mut Finder<'_, '_, '_, '_>,
) -> anyhow::Result<Option<String>> {
    let namespaces = missing_elsewhere(&args.target, wanted, &args.opts.prefix.prefix, finder)?;
    let Wanted::Object { name, .. } = wanted else {
        return Ok(None);
    };
    Ok(namespaces.first().map(|first| {
        format!(
            "{name} is in namespace{} {}: add -n {first}",
            if namespaces.len() == 1 { "" } else { "s" },
            namespaces.join(", ")
        )
    }))
}

/// Picks the revision the arguments ask for among `records` and prints it.
fn show(
    args: &Args,
    at: Shown<'_>,
    ks: &KeySpace<'_, '_>,
    decryptor: &Decryptor,
    wanted: &Wanted,
    records: &[Record<'_>],
    finder: &mut Finder<'_, '_, '_, '_>,
) -> anyhow::Result<Outcome> {
    let prefix = &args.opts.prefix.prefix;
    let what = wanted.describe();
    // One key only: with a bare custom resource name several groups could match.
    if let Err(several) = single_key(records) {
        bail!("{what} {several}");
    }
    let chosen = match choose(records, args.revision, args.deleted, ks.compact_revision) {
        Ok(r) => r,
        Err(msg) => {
            let hint = if records.is_empty() {
                explain_missing(args, wanted, finder)?
            } else {
                None
            };
            say!(
                "etcdsnap: {}: {what}: {msg}{}",
                at.path.display(),
                hint.map(|h| format!("; {h}")).unwrap_or_default()
            );
            return Ok(Outcome::Failed);
        }
    };
    let value = chosen.kv.value;
    // A Secret by its key under this or any prefix (a forgotten --prefix), or
    // by what the value says it is.
    let secret = is_secret_key(chosen.kv.key, prefix) || is_secret_key_any_prefix(chosen.kv.key);
    say!(
        "etcdsnap: {} at revision {} (version {}, {}{})",
        escape_bytes(chosen.kv.key),
        chosen.revision.main,
        chosen.kv.version,
        detect(value).name(),
        at.from(chosen.revision)
    );
    if args.output == ObjectFormat::Raw {
        if (secret || value_is_secret(value)) && !args.opts.show_secrets {
            bail!("-o raw of a Secret prints its data in clear: add --show-secrets");
        }
        write_raw(value)?;
        return Ok(Outcome::Ok);
    }
    if args.apply.for_apply && (secret || value_is_secret(value)) && !args.opts.show_secrets {
        bail!("{FOR_APPLY_SECRET}");
    }
    show_decoded(args, decryptor, &what, &chosen, secret)
}

/// Prints the chosen revision decrypted, decoded and prepared (redacted,
/// `--for-apply`), with notes on stderr.
fn show_decoded(
    args: &Args,
    decryptor: &Decryptor,
    what: &str,
    chosen: &Record<'_>,
    secret: bool,
) -> anyhow::Result<Outcome> {
    let plain = match decryptor.plaintext(chosen.kv.key, chosen.kv.value) {
        Ok(p) => p,
        Err(e) => {
            say!("etcdsnap: {e}");
            return Ok(Outcome::Failed);
        }
    };
    if let Some((provider, key_name)) = &plain.via {
        say!(
            "etcdsnap: decrypted with {provider} key {key_name:?} ({})",
            detect(&plain.bytes).name()
        );
    }
    let decoded = match decode_checked(&plain.bytes) {
        Ok(d) => d,
        Err(e) => {
            say!("etcdsnap: {what}: {e} (use -o raw for the stored bytes)");
            return Ok(Outcome::Failed);
        }
    };
    if let Some(note) = decoded.note {
        say!("etcdsnap: note: {note}");
    }
    if !decoded.unknown_fields_at.is_empty() {
        say!(
            "etcdsnap: note: {}; -o raw has them",
            unknown_note(&decoded.unknown_fields_at)
        );
    }
    if args.apply.for_apply && decoded.says_secret && !args.opts.show_secrets {
        bail!("{FOR_APPLY_SECRET}");
    }
    let mut obj = decoded.object;
    let dropped = prepare(
        &mut obj,
        Prepare {
            show_secrets: args.opts.show_secrets,
            secret: secret || decoded.says_secret,
            apply: args.apply.options(),
            mod_revision: Some(chosen.kv.mod_revision),
        },
    );
    write_prepared(&obj, args.output)?;
    if let Some(note) = dropped_note(&escape_bytes(chosen.kv.key), &dropped) {
        say!("{note}");
    }
    Ok(Outcome::Ok)
}

/// `get RESOURCE --all`: the live objects of a resource as a `v1 List`.
fn run_all(args: Args) -> anyhow::Result<Outcome> {
    use std::io::Write;

    if args.output == ObjectFormat::Raw {
        bail!("--all writes yaml or json");
    }
    if args.apply.for_apply
        && !args.opts.show_secrets
        && matches!(
            ResourceRef::parse(&args.target),
            ResourceRef::BuiltIn("secrets")
        )
    {
        bail!("{FOR_APPLY_SECRET}");
    }
    let decryptor = args.opts.decrypt.decryptor(&args.opts.prefix.prefix)?;
    let view = args
        .salvage
        .view(&args.snapshot, &args.opts.prefix.prefix)?;
    let mut file = None;
    let db = view_or_file(&view, &args.snapshot, &mut file)?;
    let ks = KeySpace::open(&db)?;
    let prefix = args.opts.prefix.prefix.as_str();
    let query = AllQuery {
        target: &args.target,
        namespace: args.namespace.as_deref(),
        revision: args.revision,
        prefix,
    };
    let records = live_objects(&ks, &query)?;
    let format = args.output;
    let opts = ItemOptions {
        prefix,
        show_secrets: args.opts.show_secrets,
        apply: args.apply.options(),
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match format {
        ObjectFormat::Yaml => w.write_all(b"apiVersion: v1\nkind: List\nitems:\n")?,
        _ => {
            w.write_all(b"{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"List\",\n  \"items\": [\n")?
        }
    }
    let (mut written, mut failed) = (0usize, 0usize);
    let bar = progress(records.len() as u64, "decoding");
    let mut dropped_from: std::collections::BTreeMap<String, usize> = Default::default();
    let mut changed = 0usize;
    let render = |item: Item<'_, '_>| render_item(item, format);
    decode_all(&records, &decryptor, &opts, render, |rendered| {
        bar.inc(rendered.len() as u64);
        for r in rendered {
            match r {
                Ok((text, dropped)) => {
                    changed += usize::from(!dropped.is_empty());
                    for d in dropped {
                        *dropped_from.entry(d).or_default() += 1;
                    }
                    if format != ObjectFormat::Yaml && written > 0 {
                        w.write_all(b",\n")?;
                    }
                    w.write_all(&text)?;
                    written += 1;
                }
                Err(e) => {
                    failed += 1;
                    say!("etcdsnap: {e}");
                }
            }
        }
        anyhow::Ok(())
    })?;
    if format != ObjectFormat::Yaml {
        w.write_all(if written > 0 {
            b"\n  ]\n}\n"
        } else {
            b"  ]\n}\n"
        })?;
    } else if written == 0 {
        // `items:` with nothing after it would read as null.
        w.write_all(b"  []\n")?;
    }
    w.flush()?;
    bar.finish_and_clear();
    if !dropped_from.is_empty() {
        let list: Vec<String> = dropped_from
            .iter()
            .map(|(path, n)| format!("{} ({n})", escape_controls(path)))
            .collect();
        say!(
            "etcdsnap: --for-apply dropped from {changed} of {written} objects: {}",
            list.join(", ")
        );
    }
    if let Some(v) = &view {
        for r in &records {
            say!(
                "etcdsnap: {} at revision {}: from {}",
                escape_bytes(r.kv.key),
                r.revision.main,
                v.origin(r.revision).map_or("-".into(), |o| o.to_string())
            );
        }
    }
    say!("etcdsnap: {written} objects");
    let outcome = if failed > 0 {
        Outcome::Failed
    } else {
        Outcome::Ok
    };
    Ok(salvage_outcome(view.as_ref(), outcome))
}

/// One object of the List, as text indented as a list item, and what
/// `--for-apply` dropped from it.
fn render_item(
    item: Item<'_, '_>,
    format: ObjectFormat,
) -> Result<(Vec<u8>, Vec<String>), ItemError> {
    let key = item.record.kv.key;
    let at = |e: &dyn std::fmt::Display| ItemError::at(key, e);
    if format == ObjectFormat::Yaml {
        // Indent the item as a list element.
        let text = etcdsnap::report::to_yaml(&item.object).map_err(|e| at(&e))?;
        let mut out = Vec::with_capacity(text.len() + text.len() / 8);
        for (n, line) in text.lines().enumerate() {
            out.extend_from_slice(if n == 0 { b"- " } else { b"  " });
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        return Ok((out, item.dropped));
    }
    // Straight into the buffer, indented as a list item: no second copy.
    let mut out = Vec::with_capacity(16 << 10);
    out.extend_from_slice(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(
        Indented(&mut out),
        serde_json::ser::PrettyFormatter::new(),
    );
    serde::Serialize::serialize(&item.object, &mut ser).map_err(|e| at(&e))?;
    Ok((out, item.dropped))
}

/// Writes JSON indented by four more spaces (an item inside the List).
struct Indented<'a>(&'a mut Vec<u8>);

impl std::io::Write for Indented<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for part in buf.split_inclusive(|&b| b == b'\n') {
            self.0.extend_from_slice(part);
            if part.ends_with(b"\n") {
                self.0.extend_from_slice(b"    ");
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
