//! The `tkm` binary: parse the command line and run it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tkm::cli::Cli::parse();
    match tkm::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tkm: {e:#}");
            ExitCode::FAILURE
        }
    }
}
