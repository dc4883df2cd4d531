//! Command line: subcommands only; the library does the work.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use riskos_connector::common::telemetry;
use riskos_connector::tools::{asyncapi, erase, replay, tail, validate};
use riskos_connector::wiring::app::{shutdown_signal, Application};
use riskos_connector::wiring::config::Config;

#[derive(Parser)]
#[command(
    version,
    about = "RiskOS webhooks in, Avro records on compacted Kafka topics out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ConfigArg {
    /// TOML config file; `RISKOS_<SECTION>__<KEY>` env vars override it.
    #[arg(long, env = "RISKOS_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Receive webhooks and produce them to Kafka until SIGTERM or Ctrl-C.
    Serve(ConfigArg),
    /// Re-run quarantined bodies through the current schemas and produce those that now fit.
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        /// Read the quarantine topic (the only source so far; required for clarity).
        #[arg(long, required = true)]
        from_quarantine: bool,
        /// The endpoint whose quarantine to replay (its topic prefix, envelopes and name);
        /// required when several are configured.
        #[arg(long)]
        endpoint: Option<String>,
        /// Only records quarantined at or after this time: RFC 3339 (`2025-11-01T00:00:00Z`) or
        /// a duration ago (`2h`, `3days`).
        #[arg(long)]
        since: Option<String>,
    },
    /// Write tombstones for the records of one endpoint's topics that match a condition (any
    /// of them), so compaction erases them; the quarantine topic's matches are only reported.
    /// Prints what matched and a JSON summary line; exits 1 on a failed write or a record it
    /// could not check.
    #[command(group(clap::ArgGroup::new("condition").required(true).multiple(true)))]
    Erase {
        #[command(flatten)]
        config: ConfigArg,
        /// The endpoint whose topics to scan; required when several are configured.
        #[arg(long)]
        endpoint: Option<String>,
        /// Erase the records with this key (event id) (repeatable).
        #[arg(long = "event-id", value_name = "ID", group = "condition")]
        event_id: Vec<String>,
        /// Erase the records whose field equals the value (repeatable): a dotted path into the
        /// decoded record (`data.entity_token`, `data.agent.email`, `data.notes[].note`);
        /// hashed and encrypted fields are matched with the `[protection]` keys. The value
        /// shows in the process list and shell history: prefer `--where-file`.
        #[arg(long = "where", value_name = "FIELD=VALUE", group = "condition")]
        conditions: Vec<String>,
        /// Read `FIELD=VALUE` conditions (as `--where`) from this file, one a line (blank lines
        /// and `#` comments skipped), or from standard input with `-`. The form to use: the
        /// person's data stays off the command line. Combines with `--where` and `--event-id`.
        #[arg(long = "where-file", value_name = "PATH", group = "condition")]
        where_file: Option<PathBuf>,
        /// List what would be erased; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Schema commands.
    Schemas {
        #[command(subcommand)]
        command: SchemasCommand,
    },
    /// Protection key commands.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print records of topics as JSON lines, decoding either encoding.
    Tail {
        #[command(flatten)]
        config: ConfigArg,
        /// Topic to read (repeatable); default: every topic with an endpoint's prefix.
        #[arg(long)]
        topic: Vec<String>,
        /// Read only this endpoint's topics (when no --topic is given).
        #[arg(long)]
        endpoint: Option<String>,
        /// Start at the oldest record instead of only new ones.
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many records.
        #[arg(long)]
        max: Option<u64>,
        /// Stop once the records that existed at start have been printed.
        #[arg(long)]
        exit_at_end: bool,
        /// Open encrypted fields and bodies with the configured `[protection]` keys.
        #[arg(long)]
        reveal: bool,
    },
    /// Normalize and encode payload files offline (no Kafka, no registry) and print the record
    /// or the exact error; exits 1 if any file fails.
    Validate {
        #[command(flatten)]
        config: ConfigArg,
        /// JSON payload files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Check against this endpoint's topic prefix and envelopes; required when several
        /// are configured.
        #[arg(long)]
        endpoint: Option<String>,
        /// Also print the record with its encrypted values opened (`revealed`).
        #[arg(long)]
        reveal: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration (file, then env), then connect as the service
    /// would and report what worked: Kafka (or why it refused), each topic described, the
    /// permission to write to it, the schema registry. Writes and registers nothing; exits 1
    /// if a check failed or with the offending key on a bad value.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Only load and validate; connect to nothing.
        #[arg(long)]
        offline: bool,
    },
    /// Print the effective configuration (file, then env) as JSON with secrets redacted.
    Show(ConfigArg),
}

#[derive(Subcommand)]
enum SchemasCommand {
    /// Check every schema file against its subject's latest registered version, as start-up
    /// does, without starting the server or registering anything.
    Check(ConfigArg),
    /// Write the AsyncAPI 3.0 document of the topics (channels with their Kafka bindings,
    /// keys, headers, Avro payloads, protected fields) for the config and `schemas/`, offline.
    Asyncapi {
        #[command(flatten)]
        config: ConfigArg,
        /// Write it to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new protection key, `kid:base64(32 random bytes)`, for
    /// `protection.hash_keys` or `protection.encryption_keys` (one key per line in their
    /// files; the first line protects, every line unprotects).
    Generate {
        /// The key id written into every token and encrypted value it makes (letters, digits,
        /// `-`, `_`; at most 32). Default: `k` and 8 random characters, so a key made again is
        /// never mistaken for an earlier one by its id (its fingerprint tells them apart too).
        #[arg(long)]
        kid: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("riskos-connector: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    // One scheduler thread fewer than there are cores (at least one): librdkafka's own threads
    // (broker I/O, delivery reports) get the remaining core (docs/performance.md). tokio's own
    // `TOKIO_WORKER_THREADS` overrides it. Still the multi-thread flavour, so `block_in_place`
    // works.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(cores.saturating_sub(1).max(1));
    }
    let runtime = builder.enable_all().build()?;
    match command {
        Command::Serve(arg) => {
            let config = Config::load(arg.config.as_deref())?;
            let telemetry =
                runtime.block_on(async { telemetry::init(&config.log, &config.tracing) })?;
            let served = runtime.block_on(async {
                let listener =
                    riskos_connector::ingress::http::tls::bind(config.http.listen).await?;
                let app = Application::build(&config, listener).await?;
                app.run_until(shutdown_signal()).await
            });
            telemetry.shutdown();
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            config,
            since,
            endpoint,
            ..
        } => {
            let config = Config::load(config.config.as_deref())?;
            let telemetry =
                runtime.block_on(async { telemetry::init(&config.log, &config.tracing) })?;
            let since = since.as_deref().map(parse_since).transpose()?;
            let report = runtime.block_on(replay::run(&config, endpoint.as_deref(), since));
            telemetry.shutdown();
            let report = report?;
            println!("read {} quarantined records", report.read);
            for (topic, count) in &report.replayed {
                println!("replayed {count} to {topic}");
            }
            if report.other_endpoints > 0 {
                println!(
                    "left {} records of other endpoints sharing the prefix",
                    report.other_endpoints
                );
            }
            for (partition, offset, error) in &report.still_failing {
                println!("still failing: partition {partition} offset {offset}: {error}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Erase {
            config,
            endpoint,
            event_id,
            conditions,
            where_file,
            dry_run,
        } => {
            let conditions = erase_conditions(&conditions, where_file.as_deref())?;
            let config = Config::load(config.config.as_deref())?;
            let options = erase::EraseOptions {
                endpoint,
                event_ids: event_id,
                conditions,
                dry_run,
            };
            let report = runtime.block_on(erase::run(&config, &options))?;
            report.print(&mut std::io::stdout().lock())?;
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Config {
            command: ConfigCommand::Show(arg),
        } => {
            let config = Config::load(arg.config.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&config)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { config, offline },
        } => {
            let config = Config::load(config.config.as_deref())?;
            println!("ok    config: loaded and valid");
            if offline {
                return Ok(ExitCode::SUCCESS);
            }
            let report = runtime.block_on(riskos_connector::tools::check::run(&config));
            for line in &report {
                println!("{line}");
            }
            let failed = report
                .iter()
                .any(|f| f.verdict == riskos_connector::tools::check::Verdict::Fail);
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Keys {
            command: KeysCommand::Generate { kid },
        } => {
            use riskos_connector::pipeline::protect::keys;
            let kid = kid.unwrap_or_else(keys::fresh_kid);
            let key = keys::generate(&kid)?;
            // The fingerprint on stderr, so that the key line alone goes to the file.
            eprintln!("key `{kid}`: fingerprint {}", key.fingerprint);
            println!("{}", key.line);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schemas {
            command: SchemasCommand::Check(arg),
        } => {
            let config = Config::load(arg.config.as_deref())?;
            for line in
                runtime.block_on(riskos_connector::wiring::topology::check_schemas(&config))?
            {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schemas {
            command: SchemasCommand::Asyncapi { config, output },
        } => {
            let config = Config::load_offline(config.config.as_deref())?;
            let document = asyncapi::render(&config)?;
            match output {
                Some(file) => std::fs::write(&file, document)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?,
                None => print!("{document}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tail {
            config,
            topic,
            endpoint,
            from_beginning,
            max,
            exit_at_end,
            reveal,
        } => {
            let config = Config::load(config.config.as_deref())?;
            let options = tail::TailOptions {
                topics: topic,
                endpoint,
                from_beginning,
                max,
                exit_at_end,
                reveal,
            };
            runtime.block_on(tail::run(&config, &options, &mut std::io::stdout().lock()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate {
            config,
            files,
            endpoint,
            reveal,
        } => {
            let config = Config::load_offline(config.config.as_deref())?;
            let routes = validate::Offline::new(&config, endpoint.as_deref(), reveal)?;
            let mut all_ok = true;
            for file in files {
                let line = validate::validate_file(&routes, &file);
                all_ok &= line["ok"] == true;
                println!("{line}");
            }
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// The `--where` conditions, then those of the `--where-file` (`-`: standard input). Parsed
/// here, not by clap: its errors would quote the value.
fn erase_conditions(
    inline: &[String],
    file: Option<&std::path::Path>,
) -> anyhow::Result<Vec<erase::Condition>> {
    let mut conditions = inline
        .iter()
        .map(|text| text.parse())
        .collect::<Result<Vec<erase::Condition>, String>>()
        .map_err(anyhow::Error::msg)?;
    if let Some(path) = file {
        let read = if path == std::path::Path::new("-") {
            erase::read_conditions(std::io::stdin().lock())
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| anyhow::anyhow!("--where-file {}: {e}", path.display()))?;
            erase::read_conditions(std::io::BufReader::new(file))
        };
        conditions.extend(read.map_err(anyhow::Error::msg)?);
    }
    Ok(conditions)
}

/// RFC 3339 time or a duration ago, as epoch milliseconds.
fn parse_since(text: &str) -> anyhow::Result<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok((at.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        anyhow::anyhow!("--since {text:?}: expected RFC 3339 or a duration like 2h")
    })?;
    let now = time::OffsetDateTime::now_utc() - ago;
    Ok((now.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erase_args(cli: Cli) -> (Vec<String>, Option<PathBuf>) {
        match cli.command {
            Command::Erase {
                conditions,
                where_file,
                ..
            } => (conditions, where_file),
            _ => panic!("not erase"),
        }
    }

    #[test]
    fn where_file_is_a_condition_of_its_own_and_combines_with_where() {
        let alone = Cli::try_parse_from(["riskos-connector", "erase", "--where-file", "-"]);
        let (inline, file) = erase_args(alone.unwrap());
        assert!(inline.is_empty());
        assert_eq!(file, Some(PathBuf::from("-")));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("where");
        std::fs::write(
            &path,
            "# one request\n  data.agent.email=a@x \n\ndata.id=7\n",
        )
        .unwrap();
        let both = Cli::try_parse_from([
            "riskos-connector",
            "erase",
            "--where",
            "data.entity_token=T",
            "--where-file",
            path.to_str().unwrap(),
        ]);
        let (inline, file) = erase_args(both.unwrap());
        let conditions = erase_conditions(&inline, file.as_deref()).unwrap();
        let expected = ["data.entity_token=T", "data.agent.email=a@x", "data.id=7"]
            .map(|text| text.parse::<erase::Condition>().unwrap());
        assert_eq!(conditions, expected);

        // Still one condition at least.
        assert!(Cli::try_parse_from(["riskos-connector", "erase"]).is_err());
    }
}
