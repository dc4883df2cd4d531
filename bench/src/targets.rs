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
//! | `tls-plaintext-N`, `tls-tls-N` | the connector at 64 in flight producing in plaintext and over TLS (`--kafka-security`), A B B A: issue 27's rows (the targets with TLS on) |
//!
//! and what logging adds to a webhook measured without a server ([`crate::logging`], run here:
//! the load runs' A/B is its cross-check, since they move by more than 3 µs between runs).
//!
//! A target whose part did not run says so rather than disappearing.

use std::path::{Path, PathBuf};

use crate::instructions::{self, Settings, Table};
use crate::load::PhaseResult;
use crate::logging::{self, Measured};
use crate::orchestrate::{KafkaSecurity, ServerResults};
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
/// Rounds of the A/B parts (the logging A/B, the 64-vs-512 pairs): `ab_ba` in bench/run.sh.
pub const AB_ROUNDS: usize = 2;

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
    /// (round, plaintext, TLS), 64 in flight.
    pub tls: Vec<(usize, Vec<ServerResults>, Vec<ServerResults>)>,
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
            for round in 1..=AB_ROUNDS {
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
        let tls = rounds("tls-plaintext", "tls-tls")?;
        Ok(Self {
            at_64: read("results")?,
            at_512: read("in-flight-512")?,
            logging,
            pairs,
            tls,
            logging_alone: None,
        })
    }
}

/// A server's CPU µs per 2xx in the max phase.
fn max_cpu(all: &[ServerResults], server: &str) -> Option<f64> {
    find(all, server, "max").and_then(cpu_per_ok)
}

/// The rounds of an A/B part where both sides have a figure: (round, A's and B's connector CPU
/// µs per 2xx in the max phase).
fn ab_rounds(rounds: &[(usize, Vec<ServerResults>, Vec<ServerResults>)]) -> Vec<(usize, f64, f64)> {
    rounds
        .iter()
        .filter_map(|(round, a, b)| {
            Some((*round, max_cpu(a, "connector")?, max_cpu(b, "connector")?))
        })
        .collect()
}

/// The mean of the A and of the B figures of `rounds` (not empty).
fn means(rounds: &[(usize, f64, f64)]) -> (f64, f64) {
    let n = rounds.len() as f64;
    let sum = |pick: fn(&(usize, f64, f64)) -> f64| rounds.iter().map(pick).sum::<f64>() / n;
    (sum(|r| r.1), sum(|r| r.2))
}

const NOT_IN_THIS_RUN: &str = "its part of bench/run.sh did not run";

fn within_ceilings(part: Option<&Vec<ServerResults>>, in_flight: usize) -> Check {
    let target = format!(
        "CPU per acked webhook at {in_flight} in flight ≤ {CEILINGS_FACTOR} × (HTTP ceiling + \
         Kafka ceiling at {in_flight})"
    );
    match part {
        Some(all) => report::within_floors(all, target, CEILINGS_FACTOR, |server| {
            max_cpu(all, server).map(|v| (v, String::new()))
        }),
        None => Check::not_run(target, NOT_IN_THIS_RUN),
    }
}

fn no_dearer_at_512(parts: &Parts) -> Check {
    let target = "CPU per acked webhook at 512 in flight ≤ at 64 in flight".to_string();
    let rounds = ab_rounds(&parts.pairs);
    if !rounds.is_empty() {
        let (c64, c512) = means(&rounds);
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
    let part = |part: &Option<Vec<ServerResults>>| {
        part.as_deref().and_then(|all| max_cpu(all, "connector"))
    };
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
    let rounds = ab_rounds(&parts.logging);
    let load = if rounds.is_empty() {
        "load runs' A/B: not run".to_string()
    } else {
        let (info, warn) = means(&rounds);
        let added = info - warn;
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

/// Why the TLS A/B cannot be used: not run, or a side that did not use the security its
/// section names (results from before `--kafka-security`).
fn tls_rounds_unusable(parts: &Parts) -> Option<String> {
    if parts.tls.is_empty() {
        return Some(NOT_IN_THIS_RUN.into());
    }
    for (round, plaintext, tls) in &parts.tls {
        for (all, want, section) in [
            (plaintext, KafkaSecurity::Plaintext, "tls-plaintext"),
            (tls, KafkaSecurity::Tls, "tls-tls"),
        ] {
            match all.iter().find(|r| r.server == "connector") {
                Some(r) if r.kafka_security == want => {}
                Some(r) => {
                    return Some(format!(
                        "{section}-{round} ran in {}, not {}",
                        r.kafka_security.label(),
                        want.label()
                    ))
                }
                None => return Some(format!("{section}-{round} has no connector")),
            }
        }
    }
    None
}

/// The connector's max phase in the TLS A/B rounds: (round, plaintext, TLS).
fn tls_max(parts: &Parts) -> Vec<(usize, &PhaseResult, &PhaseResult)> {
    parts
        .tls
        .iter()
        .filter_map(|(round, p, t)| {
            Some((
                *round,
                find(p, "connector", "max")?,
                find(t, "connector", "max")?,
            ))
        })
        .collect()
}

/// Issue 27: the CPU target at 64 in flight with TLS to the broker, against the ceilings of
/// the first part (plaintext), and what TLS costs against plaintext, A B B A.
fn tls_cpu(parts: &Parts) -> Check {
    let target = format!(
        "with TLS to the broker (issue 27): CPU per acked webhook at 64 in flight ≤ \
         {CEILINGS_FACTOR} × (HTTP ceiling + Kafka ceiling at 64, plaintext)"
    );
    if let Some(why) = tls_rounds_unusable(parts) {
        return Check::not_run(target, &why);
    }
    let rounds = ab_rounds(&parts.tls);
    if rounds.is_empty() {
        return Check::not_run(target, "a TLS or plaintext round had no 2xx");
    }
    let (plaintext, tls) = means(&rounds);
    let each: Vec<String> = rounds
        .iter()
        .map(|(round, p, t)| format!("round {round}: {t:.1} vs {p:.1} µs"))
        .collect();
    let maxes = tls_max(parts);
    let n = maxes.len().max(1) as f64;
    let rate = |tls: bool| {
        maxes
            .iter()
            .map(|&(_, p, t)| if tls { t } else { p }.ok_per_second())
            .sum::<f64>()
            / n
    };
    let (rate_p, rate_t) = (rate(false), rate(true));
    let ab = format!(
        "TLS vs plaintext, A B B A: {}; means {tls:.1} vs {plaintext:.1} µs ({:+.0} %), \
         {rate_t:.0} vs {rate_p:.0} 2xx/s",
        each.join(", "),
        (tls / plaintext - 1.0) * 100.0
    );
    let ceilings = parts.at_64.as_deref().and_then(|all| {
        Some((
            max_cpu(all, "http-ceiling")?,
            max_cpu(all, "kafka-ceiling")?,
        ))
    });
    match ceilings {
        Some((h, k)) => {
            let bound = CEILINGS_FACTOR * (h + k);
            Check::measured(
                target,
                format!(
                    "{ab}; {tls:.1} µs vs {CEILINGS_FACTOR} × ({h:.1} + {k:.1}) = {bound:.1} µs \
                     ({:.2} × the sum)",
                    tls / (h + k)
                ),
                tls <= bound,
            )
        }
        None => {
            let why = match &parts.at_64 {
                Some(all) => report::missing(all, &["http-ceiling", "kafka-ceiling"]),
                None => NOT_IN_THIS_RUN.into(),
            };
            Check::not_run(
                target,
                &format!("{ab}; the ceilings at 64 in flight: {why}"),
            )
        }
    }
}

/// Issue 27: the RSS target with TLS to the broker, at 64 in flight (the rate phases run in
/// plaintext only; the max phase's peak is the higher of the two on this bench).
fn tls_rss(parts: &Parts) -> Check {
    let target =
        format!("with TLS to the broker (issue 27): peak RSS ≤ {RSS_MIB:.0} MiB, defaults");
    if let Some(why) = tls_rounds_unusable(parts) {
        return Check::not_run(target, &why);
    }
    let maxes = tls_max(parts);
    let highest = |tls: bool| {
        maxes
            .iter()
            .map(|&(_, p, t)| if tls { t } else { p }.server_peak_rss_kib as f64 / 1024.0)
            .reduce(f64::max)
    };
    match (highest(true), highest(false)) {
        (Some(tls), Some(plaintext)) => Check::measured(
            target,
            format!(
                "{tls:.1} MiB at 64 in flight (highest of {} rounds; plaintext {plaintext:.1} MiB)",
                maxes.len()
            ),
            tls <= RSS_MIB,
        ),
        _ => Check::not_run(target, "a TLS or plaintext round had no max phase"),
    }
}

/// The table of issue 26's six targets, and issue 27's two with TLS to the broker.
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
        tls_cpu(parts),
        tls_rss(parts),
    ];
    report::checks_table("issue 26", &checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instructions::Row;
    use crate::load::{Mode, PhaseResult};

    /// A max phase of `server`: 1000 2xx for `cpu_s` CPU seconds, i.e. `cpu_s × 1000` µs each.
    fn max(server: &str, cpu_s: f64) -> ServerResults {
        ServerResults {
            server: server.into(),
            kafka_security: KafkaSecurity::Plaintext,
            phases: vec![PhaseResult {
                name: "max".into(),
                mode: Mode::Closed { concurrency: 64 },
                ok: 1000,
                non_2xx: 0,
                status_503: 0,
                errors: 0,
                elapsed_s: 1.0,
                p50_ms: 1.0,
                p99_ms: 2.0,
                p999_ms: 3.0,
                max_ms: 4.0,
                server_cpu_s: cpu_s,
                server_peak_rss_kib: 0,
                broker_cpu_s: 0.0,
            }],
        }
    }

    fn row<'a>(table: &'a str, starts: &str) -> &'a str {
        table
            .lines()
            .find(|l| l.starts_with(&format!("| {starts}")))
            .unwrap_or_else(|| panic!("no row {starts} in\n{table}"))
    }

    #[test]
    fn targets_take_each_part_of_the_run_and_name_the_parts_that_did_not_run() {
        let instructions = Table {
            valgrind: Some("valgrind-3.19.0".into()),
            calls: 100,
            rows: [20_000.0, 50_000.0]
                .into_iter()
                .map(|n| Row {
                    fixture: format!("{n}.json"),
                    body_bytes: 500,
                    per_webhook: Ok(n),
                })
                .collect(),
        };
        let parts = Parts {
            // 64 in flight: 50 µs against 1.5 × (15 + 20) = 52.5 µs.
            at_64: Some(vec![
                max("connector", 0.050),
                max("http-ceiling", 0.015),
                max("kafka-ceiling", 0.020),
            ]),
            at_512: None,
            // Logging: the load runs say +10 µs, the measure itself 2 µs.
            logging: vec![
                (
                    1,
                    vec![max("connector", 0.070)],
                    vec![max("connector", 0.060)],
                ),
                (
                    2,
                    vec![max("connector", 0.060)],
                    vec![max("connector", 0.050)],
                ),
            ],
            // 512 in flight dearer in one round, cheaper in the other: means 61 vs 61 µs.
            pairs: vec![
                (
                    1,
                    vec![max("connector", 0.050)],
                    vec![max("connector", 0.062)],
                ),
                (
                    2,
                    vec![max("connector", 0.072)],
                    vec![max("connector", 0.060)],
                ),
            ],
            tls: vec![],
            logging_alone: Some(Measured {
                webhooks: 1000,
                polls: 6,
                info_ns: vec![2200.0, 2200.0],
                warn_ns: vec![200.0, 200.0],
            }),
        };
        let table = markdown(&parts, &instructions);
        assert!(
            row(&table, "CPU per acked webhook at 64 in flight")
                .contains("50.0 µs vs 1.5 × (15.0 + 20.0) = 52.5 µs")
                && row(&table, "CPU per acked webhook at 64 in flight").ends_with("| holds |"),
            "{table}"
        );
        assert!(row(&table, "CPU per acked webhook at 512 in flight ≤ 1.5")
            .ends_with(&format!("not run ({NOT_IN_THIS_RUN}) | not run |")));
        let pairs = row(&table, "CPU per acked webhook at 512 in flight ≤ at 64");
        assert!(
            pairs.contains("means 61.0 vs 61.0 µs") && pairs.ends_with("| holds |"),
            "{pairs}"
        );
        let logging = row(&table, "logging at `info`");
        assert!(
            logging.contains("`info` adds 2.00 µs") && logging.contains("`info` adds +10.0 µs"),
            "{logging}"
        );
        assert!(
            logging.ends_with("| holds |"),
            "decided by the measure: {logging}"
        );
        assert!(row(&table, "`prepare`").contains("mean 35000 over 2 fixtures (20000 – 50000)"));
        assert!(row(&table, "`prepare`").ends_with("| does not hold |"));
        assert!(row(&table, "a burst").ends_with("| not run |"));
        assert!(row(&table, "peak RSS").ends_with("| not run |"));
        for tls in [
            "with TLS to the broker (issue 27): CPU",
            "with TLS to the broker (issue 27): peak",
        ] {
            assert!(
                row(&table, tls).ends_with(&format!("not run ({NOT_IN_THIS_RUN}) | not run |")),
                "{table}"
            );
        }
    }

    /// The connector's max phase over TLS: `cpu_s` as in [`max`], `rss_mib` peak RSS.
    fn over_tls(cpu_s: f64, rss_mib: u64) -> Vec<ServerResults> {
        let mut results = max("connector", cpu_s);
        results.kafka_security = KafkaSecurity::Tls;
        results.phases[0].server_peak_rss_kib = rss_mib * 1024;
        vec![results]
    }

    #[test]
    fn tls_rows_compare_the_rounds_and_check_the_targets_with_tls_on() {
        let table = Table {
            valgrind: None,
            calls: 100,
            rows: vec![],
        };
        let mut parts = Parts {
            at_64: Some(vec![
                max("connector", 0.050),
                max("http-ceiling", 0.015),
                max("kafka-ceiling", 0.020),
            ]),
            // TLS 55 and 45 µs against plaintext 50 and 40: means 50 vs 45 µs (+11 %).
            tls: vec![
                (1, vec![max("connector", 0.050)], over_tls(0.055, 40)),
                (2, vec![max("connector", 0.040)], over_tls(0.045, 49)),
            ],
            ..Default::default()
        };
        let markdown = markdown(&parts, &table);
        let cpu = row(&markdown, "with TLS to the broker (issue 27): CPU");
        assert!(
            cpu.contains("round 1: 55.0 vs 50.0 µs, round 2: 45.0 vs 40.0 µs; means 50.0 vs 45.0 µs (+11 %), 1000 vs 1000 2xx/s")
                && cpu.contains("50.0 µs vs 1.5 × (15.0 + 20.0) = 52.5 µs")
                && cpu.ends_with("| holds |"),
            "{cpu}"
        );
        let rss = row(&markdown, "with TLS to the broker (issue 27): peak RSS");
        assert!(
            rss.contains("49.0 MiB at 64 in flight (highest of 2 rounds; plaintext 0.0 MiB)")
                && rss.ends_with("| does not hold |"),
            "{rss}"
        );
        // Results from before `--kafka-security` (plaintext) in a TLS section are not TLS.
        parts.tls[1].2[0].kafka_security = KafkaSecurity::Plaintext;
        let markdown = super::markdown(&parts, &table);
        assert!(
            row(&markdown, "with TLS to the broker (issue 27): CPU")
                .contains("not run (tls-tls-2 ran in plaintext, not TLS)"),
            "{markdown}"
        );
    }
}
