//! `riskos-bench targets`: issue 26's targets, from the parts one `bench/run.sh` run wrote into
//! `bench/out` (each part's `<section>.json`) and a fresh instruction count (callgrind,
//! deterministic, so counting again is the same as reusing the first part's):
//!
//! | part (`--section`) | gives |
//! |---|---|
//! | `results` | 64 in flight: connector, HTTP ceiling, Kafka ceiling; the burst, A B B A; peak RSS at half rate |
//! | `in-flight-512` | 512 in flight: connector, HTTP ceiling, Kafka ceiling |
//! | `pair-64-N`, `pair-512-N` | the connector alone at 64 and at 512 in flight, A B B A (the 64-vs-512 target: one 15 s phase moves by ±10–20 % between parts minutes apart, so it compares rounds run back to back) |
//! | `logging-info-N`, `logging-warn-N` | the connector at 64 in flight with `info` and with `warn`, A B B A |
//!
//! and what logging adds to a webhook measured without a server ([`crate::logging`], run here:
//! the load runs' A/B is its cross-check, since they move by more than 3 µs between runs).
//!
//! A target whose part did not run says so rather than disappearing.

use std::path::{Path, PathBuf};

use crate::instructions::{self, Settings, Table};
use crate::logging::{self, Measured};
use crate::orchestrate::ServerResults;
use crate::report::{self, cpu_per_ok, find, half_trials, Check};

/// The CPU bound: the connector within this many times the HTTP ceiling's + the Kafka
/// ceiling's CPU per request.
pub const CEILINGS_FACTOR: f64 = 1.5;
/// The pure path's mean instructions per webhook.
pub const INSTRUCTIONS_MEAN: f64 = 30_000.0;
/// What logging at `info` may add to a webhook, CPU µs.
pub const LOGGING_MICROS: f64 = 3.0;
/// Peak RSS at half the max rate, MiB.
pub const RSS_MIB: f64 = 48.0;
/// Rounds of the logging A/B and of the 64-vs-512 pairs.
pub const LOGGING_ROUNDS: usize = 2;

/// `targets` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the run's parts wrote their results.
    #[arg(long, default_value = "bench/out")]
    pub out: PathBuf,
    /// `tests/fixtures`.
    #[arg(long, default_value = "tests/fixtures")]
    pub fixtures: PathBuf,
    /// `schemas`.
    #[arg(long, default_value = "schemas")]
    pub schemas: PathBuf,
    /// Splice the table into this markdown file between its bench markers.
    #[arg(long)]
    pub doc: Option<PathBuf>,
    /// Which bench section of `--doc` to replace.
    #[arg(long, default_value = "targets-26")]
    pub section: String,
}

/// Prints (and splices) the table.
pub fn run(args: Args) -> anyhow::Result<()> {
    let table = instructions::measure(&args.fixtures, &args.schemas, &Settings::default())?;
    let mut parts = Parts::load(&args.out)?;
    parts.logging_alone = Some(logging::measure(200_000, 3));
    let markdown = markdown(&parts, &table);
    println!("{markdown}");
    if let Some(doc) = &args.doc {
        report::splice(doc, &args.section, &markdown)?;
        eprintln!("bench: issue 26's targets written into {}", doc.display());
    }
    Ok(())
}

/// The parts of the run, each `None` when it did not run.
#[derive(Default)]
pub struct Parts {
    pub at_64: Option<Vec<ServerResults>>,
    pub at_512: Option<Vec<ServerResults>>,
    /// (round, `info` results, `warn` results).
    pub logging: Vec<(usize, Vec<ServerResults>, Vec<ServerResults>)>,
    /// (round, 64 in flight, 512 in flight).
    pub pairs: Vec<(usize, Vec<ServerResults>, Vec<ServerResults>)>,
    /// `riskos-bench logging`'s figures.
    pub logging_alone: Option<Measured>,
}

impl Parts {
    fn load(out: &Path) -> anyhow::Result<Self> {
        let read = |section: &str| -> anyhow::Result<Option<Vec<ServerResults>>> {
            let file = out.join(format!("{section}.json"));
            match std::fs::read(&file) {
                Ok(bytes) => Ok(Some(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(anyhow::anyhow!("{}: {e}", file.display())),
            }
        };
        let rounds = |a: &str, b: &str| -> anyhow::Result<Vec<_>> {
            let mut found = Vec::new();
            for round in 1..=LOGGING_ROUNDS {
                if let (Some(x), Some(y)) = (
                    read(&format!("{a}-{round}"))?,
                    read(&format!("{b}-{round}"))?,
                ) {
                    found.push((round, x, y));
                }
            }
            Ok(found)
        };
        let logging = rounds("logging-info", "logging-warn")?;
        let pairs = rounds("pair-64", "pair-512")?;
        Ok(Self {
            at_64: read("results")?,
            at_512: read("in-flight-512")?,
            logging,
            pairs,
            logging_alone: None,
        })
    }
}

/// The connector's, the HTTP ceiling's and the Kafka ceiling's CPU µs per 2xx in the max phase.
fn max_cpu(all: &[ServerResults]) -> Option<(f64, f64, f64)> {
    let cpu = |s: &str| find(all, s, "max").and_then(cpu_per_ok);
    Some((
        cpu("connector")?,
        cpu("http-ceiling")?,
        cpu("kafka-ceiling")?,
    ))
}

const NOT_IN_THIS_RUN: &str = "its part of bench/run.sh did not run";

fn within_ceilings(part: Option<&Vec<ServerResults>>, in_flight: usize) -> Check {
    let target = format!(
        "CPU per acked webhook at {in_flight} in flight ≤ {CEILINGS_FACTOR} × (HTTP ceiling + \
         Kafka ceiling at {in_flight})"
    );
    let Some(all) = part else {
        return Check::not_run(target, NOT_IN_THIS_RUN);
    };
    let Some((c, h, k)) = max_cpu(all) else {
        return Check::not_run(
            target,
            &report::missing(all, &["connector", "http-ceiling", "kafka-ceiling"]),
        );
    };
    let bound = CEILINGS_FACTOR * (h + k);
    Check::measured(
        target,
        format!(
            "{c:.1} µs vs {CEILINGS_FACTOR} × ({h:.1} + {k:.1}) = {bound:.1} µs ({:.2} × the sum)",
            c / (h + k)
        ),
        c <= bound,
    )
}

fn no_dearer_at_512(parts: &Parts) -> Check {
    let target = "CPU per acked webhook at 512 in flight ≤ at 64 in flight".to_string();
    let connector = |all: &[ServerResults]| find(all, "connector", "max").and_then(cpu_per_ok);
    let rounds: Vec<(usize, f64, f64)> = parts
        .pairs
        .iter()
        .filter_map(|(round, at_64, at_512)| Some((*round, connector(at_64)?, connector(at_512)?)))
        .collect();
    if !rounds.is_empty() {
        let n = rounds.len() as f64;
        let c64 = rounds.iter().map(|r| r.1).sum::<f64>() / n;
        let c512 = rounds.iter().map(|r| r.2).sum::<f64>() / n;
        let each: Vec<String> = rounds
            .iter()
            .map(|(round, a, b)| format!("round {round}: {b:.1} vs {a:.1} µs"))
            .collect();
        return Check::measured(
            target,
            format!(
                "512 vs 64 in flight, A B B A: {}; means {c512:.1} vs {c64:.1} µs ({:+.0} %)",
                each.join(", "),
                (c512 / c64 - 1.0) * 100.0
            ),
            c512 <= c64,
        );
    }
    let part = |part: &Option<Vec<ServerResults>>| part.as_deref().and_then(connector);
    match (part(&parts.at_64), part(&parts.at_512)) {
        (Some(c64), Some(c512)) => Check::measured(
            target,
            format!(
                "{c512:.1} µs vs {c64:.1} µs ({:+.0} %; first and third parts, no A B B A pairs)",
                (c512 / c64 - 1.0) * 100.0
            ),
            c512 <= c64,
        ),
        _ => Check::not_run(target, NOT_IN_THIS_RUN),
    }
}

fn instructions_mean(table: &Table) -> Check {
    let target = format!(
        "`prepare` ≤ {INSTRUCTIONS_MEAN:.0} instructions per webhook, mean over the fixtures \
         (callgrind)"
    );
    let counts: Result<Vec<f64>, &String> = table
        .rows
        .iter()
        .map(|r| r.per_webhook.as_ref().copied())
        .collect();
    match counts {
        Ok(counts) if !counts.is_empty() => {
            let mean = counts.iter().sum::<f64>() / counts.len() as f64;
            let (low, high) = counts
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &c| (l.min(c), h.max(c)));
            Check::measured(
                target,
                format!(
                    "mean {mean:.0} over {} fixtures ({low:.0} – {high:.0})",
                    counts.len()
                ),
                mean <= INSTRUCTIONS_MEAN,
            )
        }
        Ok(_) => Check::not_run(target, "no fixtures"),
        Err(why) => Check::not_run(target, why),
    }
}

fn logging_cost(parts: &Parts) -> Check {
    let target = format!(
        "logging at `info` (the request span and the `accepted` line) adds ≤ {LOGGING_MICROS} µs a \
         webhook, `info` vs `warn`"
    );
    let connector = |all: &[ServerResults]| find(all, "connector", "max").and_then(cpu_per_ok);
    let mut rounds = Vec::new();
    for (round, info, warn) in &parts.logging {
        if let (Some(i), Some(w)) = (connector(info), connector(warn)) {
            rounds.push((*round, i, w));
        }
    }
    let load = if rounds.is_empty() {
        "load runs' A/B: not run".to_string()
    } else {
        let n = rounds.len() as f64;
        let added = rounds.iter().map(|(_, i, w)| i - w).sum::<f64>() / n;
        let each: Vec<String> = rounds
            .iter()
            .map(|(round, i, w)| format!("round {round}: {i:.1} vs {w:.1}"))
            .collect();
        format!(
            "cross-check, CPU µs per 2xx at 64 in flight, `info` vs `warn`, A B B A: {}; \
             `info` adds {added:+.1} µs (mean of the rounds)",
            each.join(", ")
        )
    };
    match &parts.logging_alone {
        Some(m) => Check::measured(
            target,
            format!("{} (`riskos-bench logging`); {load}", logging::line(m)),
            m.added_micros() <= LOGGING_MICROS,
        ),
        None => Check::not_run(target, &load),
    }
}

fn peak_rss(part: Option<&Vec<ServerResults>>) -> Check {
    let target = format!("peak RSS at half the max rate ≤ {RSS_MIB:.0} MiB, defaults");
    let Some(all) = part else {
        return Check::not_run(target, NOT_IN_THIS_RUN);
    };
    let trials = half_trials(all, "connector");
    match trials
        .iter()
        .map(|r| r.server_peak_rss_kib as f64 / 1024.0)
        .reduce(f64::max)
    {
        Some(mib) => Check::measured(
            target,
            format!("{mib:.1} MiB (highest of {} trials)", trials.len()),
            mib <= RSS_MIB,
        ),
        None => Check::not_run(target, &report::missing(all, &["connector"])),
    }
}

/// The table of issue 26's six targets.
pub fn markdown(parts: &Parts, table: &Table) -> String {
    let burst = match &parts.at_64 {
        Some(all) => report::burst_target(all),
        None => Check::not_run("a 512 burst with the defaults".into(), NOT_IN_THIS_RUN),
    };
    let checks = [
        within_ceilings(parts.at_64.as_ref(), 64),
        within_ceilings(parts.at_512.as_ref(), 512),
        no_dearer_at_512(parts),
        instructions_mean(table),
        logging_cost(parts),
        burst,
        peak_rss(parts.at_64.as_ref()),
    ];
    report::checks_table("issue 26", &checks)
}
