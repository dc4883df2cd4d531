//! Command line: subcommands only; the library does the work.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use riskos_connector::app::{shutdown_signal, Application};
use riskos_connector::config::Config;
use riskos_connector::telemetry;

#[derive(Parser)]
#[command(
    version,
    about = "RiskOS webhooks in, Avro records on compacted Kafka topics out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive webhooks and produce them to Kafka until SIGTERM or Ctrl-C.
    Serve {
        /// TOML config file; `RISKOS_<SECTION>__<KEY>` env vars override it.
        #[arg(long, env = "RISKOS_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("riskos-connector: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config.as_deref())?;
    telemetry::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = Application::build(&config).await?;
        app.run_until(shutdown_signal()).await
    })
}
