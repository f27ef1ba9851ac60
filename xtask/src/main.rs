//! `cargo xtask`: development tasks of the AREA worker workspace.

mod demo;
mod lint;
mod migrate;

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
    /// cargo fmt --check and clippy -D warnings.
    Lint,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Migrate(args) => runtime.block_on(migrate::run(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::Lint => lint::run(),
    }
}
