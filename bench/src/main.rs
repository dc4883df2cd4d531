//! `riskos-bench`: the benchmark behind `docs/performance.md` (run it with `bench/run.sh`).
//!
//! - `run`: the whole benchmark — broker, each server under test, load, report;
//! - `http-ceiling`: the HTTP ceiling server (started by `run`);
//! - `kafka-ceiling`: the Kafka ceiling (started by `run`);
//! - `load`: offer load to an already running server and print the numbers;
//! - `instructions`: the pure path's instructions per webhook under callgrind (also part of
//!   `run`); `prepare-loop` is what it runs under valgrind;
//! - `logging`: what logging at `info` adds to a webhook (the connector's layers, span and
//!   line, A/B against `warn`, no server);
//! - `targets`: issue 26's targets from the parts of one `bench/run.sh` run, and issue 27's
//!   with TLS to the broker (`run --kafka-security tls`).

mod fixtures;
mod http_ceiling;
mod instructions;
#[cfg(feature = "kafka")]
mod kafka_ceiling;
mod load;
mod logging;
mod orchestrate;
mod procstat;
mod pure_path;
mod report;
mod targets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "riskos-connector benchmark: load generator, ceilings, peers, report")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole benchmark.
    Run(Box<orchestrate::RunArgs>),
    /// Serve the HTTP ceiling until killed.
    HttpCeiling {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        token: String,
    },
    /// Run the Kafka ceiling's phases.
    #[cfg(feature = "kafka")]
    KafkaCeiling(kafka_ceiling::Args),
    /// Count the pure path's instructions per webhook for each fixture (callgrind) and print
    /// the table.
    Instructions(instructions::Args),
    /// Prepare the fixtures' bodies (what `instructions` runs under valgrind).
    #[command(hide = true)]
    PrepareLoop(instructions::LoopArgs),
    /// What logging at `info` adds to a webhook (A/B against `warn`, no server).
    Logging(logging::Args),
    /// Issue 26's targets from the parts one `bench/run.sh` run wrote into `bench/out`.
    Targets(targets::Args),
    /// Offer load to a running server (ad hoc; prints one line per phase).
    Load {
        /// Server address.
        #[arg(long)]
        addr: SocketAddr,
        /// Bearer token.
        #[arg(long)]
        token: String,
        /// `tests/fixtures`.
        #[arg(long, default_value = "tests/fixtures")]
        fixtures: PathBuf,
        /// Concurrent requests (closed loop) ...
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// ... or a fixed rate per second (open loop).
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds.
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Most requests.
        #[arg(long, default_value_t = 1_000_000)]
        max_requests: u64,
        /// Server pid, to report its CPU and peak RSS.
        #[arg(long)]
        pid: Option<u32>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        // No runtime: under valgrind, no worker threads to count or to slow it down.
        Command::Instructions(args) => instructions::run(args),
        Command::PrepareLoop(args) => instructions::prepare_loop(args),
        Command::Targets(args) => targets::run(args),
        Command::Logging(args) => logging::run(args),
        command => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run(command)),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => orchestrate::run(*args).await,
        Command::HttpCeiling { listen, token } => http_ceiling::serve(listen, &token).await,
        #[cfg(feature = "kafka")]
        Command::KafkaCeiling(args) => kafka_ceiling::run(args).await,
        Command::Load {
            addr,
            token,
            fixtures,
            concurrency,
            rate,
            secs,
            max_requests,
            pid,
        } => {
            let tag = format!(
                "load{:x}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_millis()
            );
            let bodies = Arc::new(fixtures::Bodies::load(&fixtures, &tag)?);
            load::raise_fd_limit(match rate {
                Some(_) => 256,
                None => concurrency,
            })?;
            let mode = match rate {
                Some(per_second) => load::Mode::Rate {
                    per_second,
                    connections: 256,
                },
                None => load::Mode::Closed { concurrency },
            };
            let phase = load::Phase {
                name: "load".into(),
                mode,
                duration: Duration::from_secs(secs),
                max_requests,
            };
            let meter = pid.map(procstat::Meter::start);
            let workers = load::workers_for(&phase, |_| {
                load::HttpWorker::new(addr, "/webhooks/riskos", &token, bodies.clone())
            });
            let mut result = load::run_phase(&phase, workers, 0).await;
            if let Some(meter) = meter {
                let (cpu, rss) = meter.stop();
                result.server_cpu_s = cpu;
                result.server_peak_rss_kib = rss;
            }
            println!("{}", report::one_line(&result));
            Ok(())
        }
        Command::Instructions(_)
        | Command::PrepareLoop(_)
        | Command::Targets(_)
        | Command::Logging(_) => {
            unreachable!("run without tokio")
        }
    }
}
