//! The `hubkeyd` binary: parses the command line, sets up logging, runs [`hubkeyd::cli`].

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the C library's allocator: hubkeyd's flushes free, on their own
/// thread, the many small strings the request threads allocated, and after a load of distinct
/// tokens glibc's arenas were left holding them in bins its later allocations had to sort and
/// consolidate (see README, "Benchmark").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_env("HUBKEYD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = hubkeyd::cli::Cli::parse();
    match hubkeyd::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("hubkeyd: {err}");
            }
            ExitCode::FAILURE
        }
    }
}
