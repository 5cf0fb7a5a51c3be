//! The `etcdsnap` binary: the command line (`cli`) over the library. Each
//! command parses its arguments, calls one library function and renders what
//! it returns; the library does the work.

mod cli;

// Decoding many objects on several threads churns through short-lived
// allocations; glibc's per-thread arenas spend most of that time in the kernel
// (mprotect/munmap). mimalloc keeps it in user space.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
