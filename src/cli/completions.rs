//! `etcdsnap completions SHELL`: shell completion scripts.

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, Outcome};

/// Print a shell completion script
#[derive(clap::Args)]
#[command(after_help = "Example:\n  etcdsnap completions bash > /etc/bash_completion.d/etcdsnap")]
pub struct Args {
    /// The shell to complete for
    shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "etcdsnap", &mut std::io::stdout());
    Ok(Outcome::Ok)
}
