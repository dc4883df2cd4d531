//! The markdown report: machine, settings, one table, the pure path's instructions per
//! webhook, and issue 18's targets checked against the same run.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::fixtures::Bodies;
use crate::instructions::{self, Table};
use crate::load::{Mode, PhaseResult};
use crate::orchestrate::{
    burst_phase, KafkaSecurity, RunArgs, ServerResults, BURST_ROUNDS, RAISED_LIMITS,
};

/// Facts printed above the table.
pub struct Context {
    lines: Vec<(String, String)>,
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let text = if text.is_empty() {
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    } else {
        text
    };
    (!text.is_empty()).then(|| text.lines().next().unwrap_or("").to_string())
}

fn package_version(path: &Path) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["version"].as_str().map(str::to_string)
}

/// The machine's CPU time counters (`/proc/stat`, first line), in ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    total: u64,
    steal: u64,
}

impl CpuTimes {
    /// Reads the counters now (zeros where `/proc/stat` is unreadable).
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        Self {
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            total: fields.iter().take(8).sum(),
            steal: fields.get(7).copied().unwrap_or(0),
        }
    }

    /// The share of CPU time since `start` that the hypervisor gave to other guests.
    fn steal_since(self, start: CpuTimes) -> f64 {
        let total = self.total.saturating_sub(start.total);
        if total == 0 {
            return 0.0;
        }
        self.steal.saturating_sub(start.steal) as f64 / total as f64
    }
}

impl Context {
    /// Reads the machine description and tool versions; `cpu_start` is taken when the run
    /// starts.
    pub fn collect(args: &RunArgs, bodies: &Bodies, took: Duration, cpu_start: CpuTimes) -> Self {
        let steal = CpuTimes::read().steal_since(cpu_start);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or("unknown".into(), |kib| {
                format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
            });
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        let repo = &args.repo;
        let revision = command_output(
            "git",
            &[
                "-C",
                &repo.to_string_lossy(),
                "rev-parse",
                "--short",
                "HEAD",
            ],
        )
        .unwrap_or_else(|| "unknown".into());
        let dirty = command_output(
            "git",
            &[
                "-C",
                &repo.to_string_lossy(),
                "status",
                "--porcelain",
                "--untracked-files=no",
            ],
        )
        .is_some();
        let python = repo.join("bench/.venv/bin/python");
        let py = |code: &str| command_output(&python.to_string_lossy(), &["-c", code]);
        let node_modules = repo.join("bench/peers/express/node_modules");
        let broker = crate::orchestrate::BROKER_FACTS
            .get()
            .cloned()
            .unwrap_or_default();
        let versions = [
            ("apache-kafka", broker.get("kafka_version").cloned()),
            ("java", command_output(&std::env::var("JAVA").unwrap_or_else(|_| "java".into()), &["-version"])),
            ("node", command_output(&args.node.to_string_lossy(), &["--version"])),
            ("express", package_version(&node_modules.join("express/package.json"))),
            ("kafkajs", package_version(&node_modules.join("kafkajs/package.json"))),
            ("python", py("import sys; print(sys.version.split()[0])")),
            ("flask", py("import importlib.metadata as m; print(m.version('flask'))")),
            ("gunicorn", py("import importlib.metadata as m; print(m.version('gunicorn'))")),
            ("confluent-kafka", py("import confluent_kafka as c; print(c.version()[0], 'librdkafka', c.libversion()[0])")),
        ]
        .into_iter()
        .map(|(k, v)| format!("{k} {}", v.unwrap_or_else(|| "?".into())))
        .collect::<Vec<_>>()
        .join(", ");
        let loadavg = std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let settings = if args.set.is_empty() {
            "connector defaults".to_string()
        } else {
            args.set.join(", ")
        };
        let lines = vec![
            ("command".into(), format!("`{}`", args.command)),
            ("machine".into(), format!("{nproc} cores ({model}), {mem} memory, Linux {kernel}; load average at the end {loadavg}")),
            ("revision".into(), format!("{revision}{}", if dirty { " with uncommitted changes" } else { "" })),
            ("load".into(), format!(
                "the {} fixtures round-robin (mean body {} bytes, a distinct id per request), bearer auth, HTTP/1.1 keep-alive; max: {} concurrent for {} s; rates: {} s each on up to {} connections; {} s warm-up before each group{}",
                bodies.templates().len(), bodies.mean_size(), args.concurrency, args.max_secs, args.rate_secs, args.rate_connections, args.warmup_secs, burst_line(args)
            )),
            ("broker".into(), format!(
                "Apache Kafka (`scripts/kafka.sh`: one KRaft node, broker and controller, heap {}, log dirs on disk under {}), a fresh one per server and group, on the same machine; topics with 1 partition, replication 1",
                broker.get("heap").map_or("?", String::as_str),
                std::env::temp_dir().display()
            )),
            ("kafka settings".into(), settings),
            ("kafka security".into(), security_line(args)),
            ("versions".into(), versions),
            ("took".into(), format!("{:.0} s", took.as_secs_f64())),
            (
                "cpu steal".into(),
                format!(
                    "{:.0} % of the run's CPU time went to other guests of the hypervisor (above a few per cent every absolute figure is depressed; ratios less so)",
                    steal * 100.0
                ),
            ),
        ];
        Self { lines }
    }
}

/// How the servers reached their brokers.
fn security_line(args: &RunArgs) -> String {
    match args.kafka_security {
        KafkaSecurity::Plaintext => {
            "plaintext (the broker's PLAINTEXT listener) for every server".into()
        }
        KafkaSecurity::Tls => "TLS for the connector: an SSL listener on each of its brokers (\
            a certificate for 127.0.0.1 from a CA made for the run, ECDSA P-256), the connector \
            with `RISKOS_KAFKA__TLS__ENABLED=true` and that CA as `RISKOS_KAFKA__TLS__CA_FILE`, \
            host name checked; the Kafka ceiling and the peers in plaintext"
            .into(),
    }
}

/// The burst's part of the load line (empty without a burst).
fn burst_line(args: &RunArgs) -> String {
    let connector = args.servers.is_empty() || args.servers.iter().any(|s| s == "connector");
    if args.burst_concurrency == 0 || !connector {
        return String::new();
    }
    let raised = RAISED_LIMITS
        .iter()
        .map(|(k, v)| format!("`{k}={v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "; connector burst: {} concurrent (one connection each) for {} s after the same warm-up, on one more fresh broker, with a fresh connector with its defaults and then one with {raised}",
        args.burst_concurrency, args.burst_secs
    )
}

/// A phase as one log line.
pub fn one_line(r: &PhaseResult) -> String {
    format!(
        "{:<6} {:<24} {:>8.0} 2xx/s, {} other ({} 503), p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, cpu {:.1} s, broker cpu {:.1} s, peak rss {:.1} MiB",
        r.name,
        r.mode.label(),
        r.ok_per_second(),
        r.non_2xx + r.errors,
        r.status_503,
        r.p50_ms,
        r.p99_ms,
        r.p999_ms,
        r.server_cpu_s,
        r.broker_cpu_s,
        r.server_peak_rss_kib as f64 / 1024.0
    )
}

pub fn find<'a>(all: &'a [ServerResults], server: &str, phase: &str) -> Option<&'a PhaseResult> {
    all.iter()
        .find(|s| s.server == server)?
        .phases
        .iter()
        .find(|p| p.name == phase)
}

/// The half-rate trials of a server (`half-1`, `half-2`, …).
pub fn half_trials<'a>(all: &'a [ServerResults], server: &str) -> Vec<&'a PhaseResult> {
    all.iter()
        .filter(|s| s.server == server)
        .flat_map(|s| &s.phases)
        .filter(|p| p.name.starts_with("half"))
        .collect()
}

/// The median of some values (the upper one of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The load column: the mode, plus the trial number when a rate was run more than once, or
/// which burst.
fn load_label(r: &PhaseResult, trials: usize) -> String {
    let burst = |how: &str, round: Option<&str>| {
        let round = round.map_or_else(String::new, |n| format!(" (round {n})"));
        format!("burst, {}, {how}{round}", in_flight(r))
    };
    let name = r.name.as_str();
    match (name.strip_prefix("burst"), name.strip_prefix("half-")) {
        (Some(rest), _) => match rest.strip_prefix("-raised") {
            Some(round) => burst("admission limits raised", round.strip_prefix('-')),
            None => burst("defaults", rest.strip_prefix('-')),
        },
        (_, Some(n)) if trials > 1 => format!("{}, trial {n}", r.mode.label()),
        _ => r.mode.label(),
    }
}

/// The not-2xx column: how many, and how many of them were 503.
fn not_2xx(r: &PhaseResult) -> String {
    let all = r.non_2xx + r.errors;
    if r.status_503 > 0 {
        format!("{all} ({} × 503)", r.status_503)
    } else {
        all.to_string()
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The report section.
pub fn markdown(context: &Context, all: &[ServerResults], instructions: Option<&Table>) -> String {
    let mut out = String::new();
    for (k, v) in &context.lines {
        out.push_str(&format!("- **{k}**: {v}\n"));
    }
    out.push('\n');
    out.push_str("| server | load | 2xx/s | not 2xx | p50 ms | p99 ms | p99.9 ms | server CPU s | CPU µs / 2xx | broker CPU s | peak RSS MiB |\n");
    out.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for server in all {
        let trials = half_trials(all, &server.server).len();
        for r in &server.phases {
            let per = cpu_per_ok(r).map_or_else(|| "–".into(), |v| format!("{v:.0}"));
            out.push_str(&format!(
                "| {} | {} | {:.0} | {} | {} | {} | {} | {:.1} | {} | {:.1} | {:.1} |\n",
                server.server,
                load_label(r, trials),
                r.ok_per_second(),
                not_2xx(r),
                ms(r.p50_ms),
                ms(r.p99_ms),
                ms(r.p999_ms),
                r.server_cpu_s,
                per,
                r.broker_cpu_s,
                r.server_peak_rss_kib as f64 / 1024.0,
            ));
        }
    }
    out.push('\n');
    if let Some(table) = instructions {
        out.push_str(&instructions::markdown(table));
        out.push('\n');
    }
    out.push_str(&targets(all));
    out
}

/// CPU µs of the server per 2xx answer in a phase.
pub fn cpu_per_ok(r: &PhaseResult) -> Option<f64> {
    (r.ok > 0).then(|| r.server_cpu_s * 1e6 / r.ok as f64)
}

/// "64 in flight" for a closed-loop phase, "3909/s" for a fixed rate.
pub fn in_flight(r: &PhaseResult) -> String {
    match r.mode {
        Mode::Closed { concurrency } => format!("{concurrency} in flight"),
        Mode::Rate { per_second, .. } => format!("{per_second:.0}/s"),
    }
}

/// One row of the targets table: what the run shows, and the verdict.
pub struct Check {
    target: String,
    figures: String,
    verdict: &'static str,
}

impl Check {
    pub fn measured(target: String, figures: String, holds: bool) -> Self {
        Self {
            target,
            figures,
            verdict: if holds { "holds" } else { "does not hold" },
        }
    }

    /// A target whose servers or phases are missing from this run.
    pub fn not_run(target: String, why: &str) -> Self {
        Self {
            target,
            figures: format!("not run ({why})"),
            verdict: "not run",
        }
    }
}

/// Why a target that needs `needed` has no figures: the servers missing from this run, or
/// else a phase without a 2xx (no CPU per 2xx to compare).
pub fn missing(all: &[ServerResults], needed: &[&str]) -> String {
    let absent: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|s| !all.iter().any(|r| r.server == *s))
        .collect();
    if absent.is_empty() {
        "a phase it needs had no 2xx".into()
    } else {
        format!("no {} in this run", absent.join(", "))
    }
}

/// "median of 3 trials: " when there were several.
fn median_of(n: usize) -> String {
    if n > 1 {
        format!("median of {n} trials: ")
    } else {
        String::new()
    }
}

/// The median CPU µs per 2xx of a server's half-rate trials, and how many trials there were.
fn half_cpu(all: &[ServerResults], server: &str) -> Option<(f64, usize)> {
    let trials = half_trials(all, server);
    let value = median(trials.iter().filter_map(|r| cpu_per_ok(r)).collect())?;
    Some((value, trials.len()))
}

/// The CPU target: the connector within `factor` × the two floors' sum, `cpu` giving (CPU µs
/// per 2xx, label prefix) of the connector, the HTTP ceiling and the Kafka ceiling.
pub fn within_floors(
    all: &[ServerResults],
    target: String,
    factor: f64,
    cpu: impl Fn(&str) -> Option<(f64, String)>,
) -> Check {
    const SERVERS: [&str; 3] = ["connector", "http-ceiling", "kafka-ceiling"];
    let (Some((c, cl)), Some((h, hl)), Some((k, kl))) =
        (cpu(SERVERS[0]), cpu(SERVERS[1]), cpu(SERVERS[2]))
    else {
        return Check::not_run(target, &missing(all, &SERVERS));
    };
    let bound = factor * (h + k);
    Check::measured(
        target,
        format!(
            "{cl}{c:.1} µs vs {factor} × ({hl}{h:.1} + {kl}{k:.1}) = {bound:.1} µs ({:.2} × the sum)",
            c / (h + k)
        ),
        c <= bound,
    )
}

/// Issue 18's targets, each from this run's figures; a target whose servers did not run says
/// so rather than disappearing.
fn targets(all: &[ServerResults]) -> String {
    let max = |s: &str| find(all, s, "max");
    let max_cpu = |s: &str| max(s).and_then(cpu_per_ok).map(|v| (v, String::new()));
    let half_cpu = |s: &str| half_cpu(all, s).map(|(v, n)| (v, median_of(n)));
    let connector_max = max("connector");
    let at_max = connector_max.map_or_else(|| "the max phase".into(), in_flight);
    let half = half_trials(all, "connector").first().map_or_else(
        || "half the connector's max rate".into(),
        |r| format!("half the connector's max rate ({})", in_flight(r)),
    );
    let mut checks = Vec::new();

    // What the connector costs beyond the two floors, at the max and at half rate.
    let target = format!("connector CPU per acked webhook at {at_max} ≤ 1.15 × (HTTP ceiling's + Kafka ceiling's CPU per request)");
    checks.push(within_floors(all, target, 1.15, max_cpu));
    let target = format!("connector CPU per acked webhook at {half} ≤ 1.15 × (HTTP ceiling's + Kafka ceiling's, medians of their trials)");
    checks.push(within_floors(all, target, 1.15, half_cpu));

    // CPU per webhook against the receivers customers write today.
    for (peer, name, factor) in [("flask", "Flask", 15.0), ("express", "Express", 7.0)] {
        let target =
            format!("connector CPU per 2xx at {at_max} at least {factor:.0}× less than {name}'s");
        checks.push(match (max_cpu("connector"), max_cpu(peer)) {
            (Some((c, _)), Some((p, _))) => Check::measured(
                target,
                format!("{c:.0} µs vs {p:.0} µs: {:.1}× less", p / c),
                p >= factor * c,
            ),
            _ => Check::not_run(target, &missing(all, &["connector", peer])),
        });
    }

    // Throughput where the producer's linger caps both.
    let target = format!("connector 2xx/s at {at_max} ≥ 0.9 × the Kafka ceiling's");
    checks.push(match (connector_max, max("kafka-ceiling")) {
        (Some(c), Some(k)) if k.ok > 0 => {
            let (c, k) = (c.ok_per_second(), k.ok_per_second());
            Check::measured(
                target,
                format!(
                    "{c:.0} vs 0.9 × {k:.0} = {:.0} ({:.2} × the ceiling)",
                    0.9 * k,
                    c / k
                ),
                c >= 0.9 * k,
            )
        }
        _ => Check::not_run(target, &missing(all, &["connector", "kafka-ceiling"])),
    });

    // Memory at half rate, the worst trial.
    let target = format!("connector peak RSS at {half} ≤ 48 MiB");
    let rss = half_trials(all, "connector")
        .iter()
        .map(|r| r.server_peak_rss_kib as f64 / 1024.0)
        .reduce(f64::max);
    checks.push(match rss {
        Some(mib) => Check::measured(target, format!("{mib:.1} MiB (highest trial)"), mib <= 48.0),
        None => Check::not_run(target, &missing(all, &["connector"])),
    });

    // The burst: the defaults must take it as well as no admission limits at all, shedding
    // nothing.
    checks.push(burst_target(all));

    checks_table("issue 18", &checks)
}

/// The targets table: one row a target, with this run's figures and the verdict.
pub fn checks_table(issue: &str, checks: &[Check]) -> String {
    let mut out = format!("| target ({issue}) | this run | |\n|---|---|---|\n");
    for check in checks {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            check.target, check.figures, check.verdict
        ));
    }
    out
}

/// The burst rounds that ran: (defaults, raised) phases, A B B A.
fn burst_rounds(all: &[ServerResults]) -> Vec<(&PhaseResult, &PhaseResult)> {
    (1..=BURST_ROUNDS)
        .map_while(|round| {
            Some((
                find(all, "connector", &burst_phase("burst", round))?,
                find(all, "connector", &burst_phase("burst-raised", round))?,
            ))
        })
        .collect()
}

/// The burst target: over every round, the defaults' 2xx/s ≥ 0.9 × the raised limits' (summed
/// over the rounds, so one noisy phase does not decide it) and no 503 with the defaults.
pub fn burst_target(all: &[ServerResults]) -> Check {
    let rounds = burst_rounds(all);
    let burst = rounds.first().map_or_else(
        || "a burst".into(),
        |(d, _)| format!("a burst of {}", in_flight(d)),
    );
    let target = format!(
        "{burst} with the defaults: 2xx/s ≥ 0.9 × with admission limits raised, and no 503"
    );
    if rounds.is_empty() {
        return if all.iter().any(|s| s.server == "connector") {
            Check::not_run(target, "`--burst-concurrency 0`")
        } else {
            Check::not_run(target, &missing(all, &["connector"]))
        };
    }
    let others = |p: &PhaseResult| p.non_2xx - p.status_503 + p.errors;
    let mut figures = Vec::new();
    let (mut d_sum, mut r_sum, mut shed) = (0.0, 0.0, 0);
    for (d, r) in &rounds {
        let (dr, rr) = (d.ok_per_second(), r.ok_per_second());
        d_sum += dr;
        r_sum += rr;
        shed += d.status_503;
        figures.push(format!(
            "{dr:.0} vs {rr:.0} 2xx/s ({:.2} ×), 503: {} (raised: {}), other not 2xx: {} (raised: {})",
            if rr > 0.0 { dr / rr } else { 0.0 },
            d.status_503,
            r.status_503,
            others(d),
            others(r),
        ));
    }
    let ratio = if r_sum > 0.0 { d_sum / r_sum } else { 0.0 };
    Check::measured(
        target,
        format!(
            "{} round(s), A B B A: {}; together {ratio:.2} ×",
            rounds.len(),
            figures.join("; ")
        ),
        r_sum > 0.0 && ratio >= 0.9 && shed == 0,
    )
}

/// Replaces what is between the `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->`
/// markers in `doc` with `section`.
pub fn splice(doc: &Path, name: &str, section: &str) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
    let begin = format!("<!-- bench:{name}:begin -->");
    let end = format!("<!-- bench:{name}:end -->");
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        bail!("{} has no {begin} … {end} markers", doc.display());
    };
    if e < b {
        bail!(
            "{}: the end marker comes before the begin marker",
            doc.display()
        );
    }
    let spliced = format!("{}{begin}\n{section}{}", &text[..b], &text[e..]);
    std::fs::write(doc, spliced)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(name: &str, mode: Mode, ok: u64, cpu_s: f64, rss_mib: u64) -> PhaseResult {
        PhaseResult {
            name: name.into(),
            mode,
            ok,
            non_2xx: 0,
            status_503: 0,
            errors: 0,
            elapsed_s: 10.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            p999_ms: 3.0,
            max_ms: 4.0,
            server_cpu_s: cpu_s,
            server_peak_rss_kib: rss_mib * 1024,
            broker_cpu_s: 0.0,
        }
    }

    const MAX: Mode = Mode::Closed { concurrency: 64 };
    const HALF: Mode = Mode::Rate {
        per_second: 5000.0,
        connections: 256,
    };

    fn server(name: &str, phases: Vec<PhaseResult>) -> ServerResults {
        ServerResults {
            server: name.into(),
            kafka_security: Default::default(),
            phases,
        }
    }

    fn row<'a>(table: &'a str, starts: &str) -> &'a str {
        table
            .lines()
            .find(|l| l.starts_with(&format!("| {starts}")))
            .unwrap_or_else(|| panic!("no row {starts:?} in\n{table}"))
    }

    #[test]
    fn targets_check_the_figures_and_name_what_did_not_run() {
        // Connector 40 µs at the max, ceilings 15 + 20: 40 ≤ 1.15 × 35 = 40.25.
        let mut burst = phase("burst", Mode::Closed { concurrency: 512 }, 90_000, 4.0, 40);
        burst.non_2xx = 7;
        burst.status_503 = 5;
        let all = vec![
            server(
                "connector",
                vec![
                    phase("max", MAX, 100_000, 4.0, 30),
                    phase("half-1", HALF, 50_000, 3.0, 40),
                    phase("half-2", HALF, 50_000, 2.5, 50),
                    phase("half-3", HALF, 50_000, 2.8, 45),
                    burst,
                    phase(
                        "burst-raised",
                        Mode::Closed { concurrency: 512 },
                        95_000,
                        4.0,
                        40,
                    ),
                ],
            ),
            server(
                "http-ceiling",
                vec![
                    phase("max", MAX, 100_000, 1.5, 10),
                    phase("half-1", HALF, 50_000, 1.0, 10),
                ],
            ),
            server(
                "kafka-ceiling",
                vec![
                    phase("max", MAX, 100_000, 2.0, 20),
                    phase("half-1", HALF, 50_000, 1.0, 20),
                ],
            ),
        ];
        let table = targets(&all);
        assert!(
            row(&table, "connector CPU per acked webhook at 64 in flight").ends_with("| holds |")
        );
        // Half: median 56 µs against 1.15 × (20 + 20) = 46.
        let half = row(
            &table,
            "connector CPU per acked webhook at half the connector's max rate (5000/s)",
        );
        assert!(half.contains("median of 3 trials: 56.0 µs"), "{half}");
        assert!(half.ends_with("| does not hold |"), "{half}");
        assert!(row(
            &table,
            "connector CPU per 2xx at 64 in flight at least 15× less than Flask's"
        )
        .contains("not run (no flask in this run) | not run |"));
        assert!(row(&table, "connector 2xx/s at 64 in flight").ends_with("| holds |"));
        assert!(
            row(&table, "connector peak RSS").contains("50.0 MiB (highest trial) | does not hold")
        );
        let burst = row(&table, "a burst of 512 in flight");
        assert!(
            burst.contains("503: 5 (raised: 0), other not 2xx: 2 (raised: 0)"),
            "{burst}"
        );
        assert!(burst.ends_with("| does not hold |"), "{burst}");
        assert!(!table.contains("issue 7"));
    }

    #[test]
    fn without_the_burst_its_target_says_how_to_get_it() {
        let all = vec![server("connector", vec![phase("max", MAX, 1, 1.0, 1)])];
        assert!(row(&targets(&all), "a burst").contains("not run (`--burst-concurrency 0`)"));
        assert!(row(&targets(&[]), "a burst").contains("not run (no connector in this run)"));
    }
}
