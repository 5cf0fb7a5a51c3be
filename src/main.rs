//! The `etcdsnap` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    etcdsnap::cli::main()
}
