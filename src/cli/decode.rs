//! `etcdsnap decode`: one stored value (as `etcdctl get KEY --print-value-only`
//! prints it, with the newline etcdctl appends, or as stored) to YAML or JSON,
//! without a snapshot.

use anyhow::Context;

use super::Outcome;
use super::args::{ApplyArgs, DecodedFormat};
use super::render::{dropped_note, unknown_note, write_prepared};
use etcdsnap::kube::value::{decode_printed, detect};
use etcdsnap::lookup::{Prepare, prepare};

/// Decode one stored Kubernetes value (protobuf, JSON or CBOR) to YAML or JSON
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  etcdctl get /registry/pods/default/web --print-value-only | etcdsnap decode\n  etcdsnap decode value.bin -o json\n  etcdsnap decode value.bin --for-apply | kubectl apply -f -"
)]
pub struct Args {
    /// File holding the value; `-` or nothing for standard input (a newline
    /// after the value, as etcdctl --print-value-only prints it, is ignored)
    file: Option<std::path::PathBuf>,
    /// Output format
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: DecodedFormat,
    #[command(flatten)]
    apply: ApplyArgs,
    /// Print Secret data instead of `<redacted: N bytes>`
    #[arg(long)]
    show_secrets: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    // A value is at most what etcd accepts in one request (1.5 MiB unless
    // raised); the cap only keeps a device or an endless pipe from filling
    // memory. A FIFO is read as given (`decode <(etcdctl get …)`).
    let limit = 64 * etcdsnap::input::SMALL_FILE_LIMIT;
    let bytes = match args.file.as_deref() {
        None => etcdsnap::input::read_bounded_from(std::io::stdin().lock(), limit)
            .context("cannot read standard input")?,
        Some(p) if p.as_os_str() == "-" => {
            etcdsnap::input::read_bounded_from(std::io::stdin().lock(), limit)
                .context("cannot read standard input")?
        }
        Some(p) => std::fs::File::open(p)
            .and_then(|f| etcdsnap::input::read_bounded_from(f, limit))
            .with_context(|| format!("{}: cannot read", p.display()))?,
    };
    let name = args
        .file
        .as_ref()
        .map_or("standard input".to_string(), |p| p.display().to_string());
    match decode_printed(&bytes) {
        Ok(d) => {
            if let Some(note) = d.note {
                say!("etcdsnap: note: {note}");
            }
            if !d.unknown_fields_at.is_empty() {
                say!(
                    "etcdsnap: note: {name}: {}",
                    unknown_note(&d.unknown_fields_at)
                );
            }
            let mut obj = d.object;
            let dropped = prepare(
                &mut obj,
                Prepare {
                    show_secrets: args.show_secrets,
                    secret: d.says_secret,
                    apply: args.apply.options(),
                    mod_revision: None,
                },
            );
            write_prepared(&obj, args.output.into())?;
            if let Some(note) = dropped_note(&name, &dropped) {
                say!("{note}");
            }
            Ok(Outcome::Ok)
        }
        Err(e) => {
            say!("etcdsnap: {name}: {} value: {e}", detect(&bytes).name());
            Ok(Outcome::Failed)
        }
    }
}
