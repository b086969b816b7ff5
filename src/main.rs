//! The `ketenpoort` command: it only dispatches to `cli/`.
#![forbid(unsafe_code)]

mod cli;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    cli::run()
}
