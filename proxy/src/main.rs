//! The `gatehouse` binary: everything is in the library's [`proxy::cli`].

#![forbid(unsafe_code)]

use mimalloc::MiMalloc;

/// A proxy allocates and frees small buffers per request on every worker thread; mimalloc
/// does that with thread-local free lists (the version and why are in proxy/Cargo.toml).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<()> {
    proxy::cli::main()
}
