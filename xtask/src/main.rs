//! `cargo xtask`: development tasks of the AREA worker workspace.

mod bench;
mod bench_ceilings;
mod bench_process;
mod bench_receiver;
mod bench_scenario;
mod demo;
mod lint;
mod migrate;
mod new_reaction;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Development tasks of the AREA worker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database if missing and apply pending migrations.
    Migrate(migrate::Args),
    /// Run the worker end to end on sample events and check the result.
    Demo(demo::Args),
    /// Measure the real worker's throughput, latency and memory (BENCHMARKS.md).
    Bench(bench::Args),
    /// The bench's webhook receiver; `bench` starts it in a process of its own.
    #[command(hide = true)]
    BenchReceiver(bench_receiver::Args),
    /// cargo fmt --check and clippy -D warnings.
    Lint,
    /// Add a reaction crate for a new service and wire it into the worker.
    NewReaction(new_reaction::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Migrate(args) => runtime.block_on(migrate::run(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::Bench(args) => {
            if cfg!(debug_assertions) {
                // A debug publisher and receiver would measure themselves.
                return bench::rerun_optimised();
            }
            runtime.block_on(bench::run(args))
        }
        Command::BenchReceiver(args) => bench_receiver::serve(args),
        Command::Lint => lint::run(),
        Command::NewReaction(args) => new_reaction::run(args),
    }
}
