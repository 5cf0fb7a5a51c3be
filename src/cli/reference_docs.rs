//! The generated reference: the man pages under `docs/man/` and the Markdown
//! command reference under `docs/reference/` are made from the clap
//! definitions (`cli::Cli`). This test regenerates them in memory
//! and fails when a committed file differs, is missing or is left over, so the
//! reference can never drift from `--help`.
//!
//! To rewrite them after changing a command's flags or help:
//!
//! ```sh
//! ETCDSNAP_UPDATE_DOCS=1 cargo test --bin etcdsnap reference_docs
//! ```
//!
//! The reference documents the full binary (the default features). It is a
//! unit test of the binary, since the command line is private to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

/// The width help text is wrapped at, whatever the terminal.
const WIDTH: usize = 100;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The command tree, built (globals propagated, `help` added) and wrapped at
/// a fixed width.
fn cli() -> clap::Command {
    let mut cmd = super::Cli::command()
        .term_width(WIDTH)
        .max_term_width(WIDTH);
    cmd.build();
    cmd
}

/// Every command and subcommand, depth first, with its full name
/// (`["pki", "check"]`), leaving out clap's generated `help`.
fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    out.push((path.clone(), cmd.clone()));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let mut p = path.clone();
        p.push(sub.get_name().to_string());
        walk(sub, p, out);
    }
}

fn commands() -> Vec<(Vec<String>, clap::Command)> {
    let mut out = Vec::new();
    walk(&cli(), Vec::new(), &mut out);
    out
}

/// `etcdsnap`, `etcdsnap-pki-check`: the man page and Markdown file stem.
fn stem(path: &[String]) -> String {
    std::iter::once("etcdsnap")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("-")
}

fn title(path: &[String]) -> String {
    std::iter::once("etcdsnap")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn about(cmd: &clap::Command) -> String {
    cmd.get_about().map(|s| s.to_string()).unwrap_or_default()
}

/// The man pages, one per command, as clap_mangen renders them.
fn man_pages() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (path, cmd) in commands() {
        let name = stem(&path);
        // clap names are `&'static str` (without its `string` feature).
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        let cmd = cmd.name(leaked).bin_name(title(&path));
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut buf)
            .expect("render a man page");
        out.insert(format!("{name}.1"), buf);
    }
    out
}

/// The Markdown reference: an index and one page per command holding its
/// full `--help`, with links up and down the command tree.
fn markdown() -> BTreeMap<String, Vec<u8>> {
    let all = commands();
    let mut out = BTreeMap::new();
    let mut index = String::from(
        "# Command reference\n\n\
         Generated from the command definitions (`src/cli/`); do not edit by hand.\n\
         Regenerate with `ETCDSNAP_UPDATE_DOCS=1 cargo test --bin etcdsnap reference_docs`.\n\
         The same text is in `etcdsnap COMMAND --help` and in the man pages under\n\
         [`docs/man/`](../man/) (`man -l docs/man/etcdsnap-verify.1`).\n\n\
         | command | what it does |\n|---|---|\n",
    );
    for (path, cmd) in &all {
        let name = stem(path);
        let _ = writeln!(
            index,
            "| [`{}`]({name}.md) | {} |",
            title(path),
            about(cmd).replace('|', "\\|")
        );
        let mut page = format!("# {}\n\n", title(path));
        let a = about(cmd);
        if !a.is_empty() {
            let _ = writeln!(page, "{a}\n");
        }
        let mut c = cmd.clone().bin_name(title(path));
        let help = c.render_long_help().to_string();
        let help: String = help
            .lines()
            .map(|l| format!("{}\n", l.trim_end()))
            .collect();
        let _ = write!(page, "```text\n{help}```\n");
        let subs: Vec<_> = all
            .iter()
            .filter(|(p, _)| p.len() == path.len() + 1 && p.starts_with(path))
            .collect();
        if !subs.is_empty() {
            page.push_str("\n## Subcommands\n\n");
            for (p, c) in subs {
                let _ = writeln!(page, "- [`{}`]({}.md): {}", title(p), stem(p), about(c));
            }
        }
        let up = if path.is_empty() {
            String::new()
        } else {
            let parent = &path[..path.len() - 1];
            format!("[`{}`]({}.md) · ", title(parent), stem(parent))
        };
        let _ = write!(page, "\n---\n{up}[All commands](README.md)\n");
        out.insert(format!("{name}.md"), page.into_bytes());
    }
    out.insert("README.md".into(), index.into_bytes());
    out
}

/// Compares `want` with the files of `dir` (only those with extension `ext`,
/// plus `README.md` for Markdown); rewrites them when asked.
fn check_dir(dir: &Path, ext: &str, want: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let update = std::env::var_os("ETCDSNAP_UPDATE_DOCS").is_some_and(|v| v == "1");
    let mut have = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(ext) {
                have.insert(
                    name,
                    std::fs::read(e.path()).expect("read a committed file"),
                );
            }
        }
    }
    let mut problems = Vec::new();
    for (name, bytes) in want {
        if have.get(name) != Some(bytes) {
            problems.push(format!("{}/{name} differs or is missing", dir.display()));
            if update {
                std::fs::create_dir_all(dir).expect("create the docs dir");
                std::fs::write(dir.join(name), bytes).expect("write a generated file");
            }
        }
    }
    for name in have.keys().filter(|n| !want.contains_key(*n)) {
        problems.push(format!("{}/{name} is no longer generated", dir.display()));
        if update {
            std::fs::remove_file(dir.join(name)).expect("remove a stale file");
        }
    }
    if update {
        problems.clear();
    }
    problems
}

#[test]
fn committed_reference_matches_the_command_definitions() {
    let mut problems = check_dir(&root().join("docs/man"), ".1", &man_pages());
    problems.extend(check_dir(
        &root().join("docs/reference"),
        ".md",
        &markdown(),
    ));
    assert!(
        problems.is_empty(),
        "the generated reference is out of date:\n  {}\nregenerate it with:\n  \
         ETCDSNAP_UPDATE_DOCS=1 cargo test --bin etcdsnap reference_docs",
        problems.join("\n  ")
    );
}

#[test]
fn every_command_has_a_page_and_a_man_page() {
    let man = man_pages();
    let md = markdown();
    for (path, _) in commands() {
        let s = stem(&path);
        assert!(man.contains_key(&format!("{s}.1")), "{s}");
        assert!(md.contains_key(&format!("{s}.md")), "{s}");
    }
    // The live commands are documented too, and clap's `help` is not.
    assert!(md.contains_key("etcdsnap-save.md"));
    assert!(!md.contains_key("etcdsnap-help.md"));
}
