//! The `etcdsnap` binary: everything lives in the library's `cli` module.

// Decoding many objects on several threads churns through short-lived
// allocations; glibc's per-thread arenas spend most of that time in the kernel
// (mprotect/munmap). mimalloc keeps it in user space.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    etcdsnap::cli::main()
}
