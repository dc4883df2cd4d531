//! The markdown report: machine, settings, one table, and the targets checked against
//! the same run.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::fixtures::Bodies;
use crate::load::{Mode, PhaseResult};
use crate::orchestrate::{RunArgs, ServerResults};

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
                "the {} fixtures round-robin (mean body {} bytes, a distinct id per request), bearer auth, HTTP/1.1 keep-alive; max: {} concurrent for {} s; rates: {} s each on up to {} connections; {} s warm-up before each group",
                bodies.templates().len(), bodies.mean_size(), args.concurrency, args.max_secs, args.rate_secs, args.rate_connections, args.warmup_secs
            )),
            ("broker".into(), format!(
                "Apache Kafka (`scripts/kafka.sh`: one KRaft node, broker and controller, heap {}, log dirs on disk under {}), a fresh one per server and group, on the same machine; topics with 1 partition, replication 1",
                broker.get("heap").map_or("?", String::as_str),
                std::env::temp_dir().display()
            )),
            ("kafka settings".into(), settings),
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

/// A phase as one log line.
pub fn one_line(r: &PhaseResult) -> String {
    format!(
        "{:<6} {:<24} {:>8.0} 2xx/s, {} other, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, cpu {:.1} s, broker cpu {:.1} s, peak rss {:.1} MiB",
        r.name,
        r.mode.label(),
        r.ok_per_second(),
        r.non_2xx + r.errors,
        r.p50_ms,
        r.p99_ms,
        r.p999_ms,
        r.server_cpu_s,
        r.broker_cpu_s,
        r.server_peak_rss_kib as f64 / 1024.0
    )
}

fn find<'a>(all: &'a [ServerResults], server: &str, phase: &str) -> Option<&'a PhaseResult> {
    all.iter()
        .find(|s| s.server == server)?
        .phases
        .iter()
        .find(|p| p.name == phase)
}

/// The half-rate trials of a server (`half-1`, `half-2`, …).
fn half_trials<'a>(all: &'a [ServerResults], server: &str) -> Vec<&'a PhaseResult> {
    all.iter()
        .filter(|s| s.server == server)
        .flat_map(|s| &s.phases)
        .filter(|p| p.name.starts_with("half"))
        .collect()
}

/// The median of some values (the upper one of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The load column: the mode, plus the trial number when a rate was run more than once.
fn load_label(r: &PhaseResult, trials: usize) -> String {
    match r.name.strip_prefix("half-") {
        Some(n) if trials > 1 => format!("{}, trial {n}", r.mode.label()),
        _ => r.mode.label(),
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
pub fn markdown(context: &Context, all: &[ServerResults]) -> String {
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
            let per = if r.ok > 0 {
                format!("{:.0}", r.server_cpu_s * 1e6 / r.ok as f64)
            } else {
                "–".into()
            };
            out.push_str(&format!(
                "| {} | {} | {:.0} | {} | {} | {} | {} | {:.1} | {} | {:.1} | {:.1} |\n",
                server.server,
                load_label(r, trials),
                r.ok_per_second(),
                r.non_2xx + r.errors,
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
    out.push_str(&targets(all));
    out
}

fn targets(all: &[ServerResults]) -> String {
    let max = |s: &str| find(all, s, "max").map(PhaseResult::ok_per_second);
    let mut rows = Vec::new();
    let verdict = |ok: bool| if ok { "holds" } else { "**misses**" };
    if let (Some(c), Some(h), Some(k)) =
        (max("connector"), max("http-ceiling"), max("kafka-ceiling"))
    {
        let floor = 0.8 * h.min(k);
        rows.push(format!(
            "| connector 2xx/s ≥ 0.8 × min(HTTP ceiling, Kafka ceiling) | {c:.0} vs 0.8 × min({h:.0}, {k:.0}) = {floor:.0} ({:.2} × the lower ceiling) | {} |",
            c / h.min(k),
            verdict(c >= floor)
        ));
    }
    for (peer, factor) in [("flask", 10.0), ("express", 3.0)] {
        if let (Some(c), Some(p)) = (max("connector"), max(peer)) {
            rows.push(format!(
                "| ≥ {factor:.0}× {peer} | {c:.0} vs {p:.0}: {:.1}× | {} |",
                c / p,
                verdict(c >= factor * p)
            ));
        }
    }
    let (connector, ceiling) = (
        half_trials(all, "connector"),
        half_trials(all, "kafka-ceiling"),
    );
    let p99s = |trials: &[&PhaseResult]| median(trials.iter().map(|r| r.p99_ms).collect());
    if let (Some(first), Some(c), Some(k)) = (connector.first(), p99s(&connector), p99s(&ceiling)) {
        let median_of = |n: usize| {
            if n > 1 {
                format!("median of {n} trials: ")
            } else {
                String::new()
            }
        };
        rows.push(format!(
            "| p99 at half the connector's max rate ({}) ≤ 1.5 × Kafka ceiling's p99 there | {}{} ms vs 1.5 × {}{} ms = {} ms | {} |",
            match first.mode { Mode::Rate { per_second, .. } => format!("{per_second:.0}/s"), _ => "?".into() },
            median_of(connector.len()),
            ms(c),
            median_of(ceiling.len()),
            ms(k),
            ms(1.5 * k),
            verdict(c <= 1.5 * k)
        ));
    }
    if let Some(mib) = connector
        .iter()
        .map(|r| r.server_peak_rss_kib as f64 / 1024.0)
        .reduce(f64::max)
    {
        rows.push(format!(
            "| connector peak RSS at that rate ≤ 64 MiB | {mib:.1} MiB (highest trial) | {} |",
            verdict(mib <= 64.0)
        ));
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("| target (issue 7) | this run | |\n|---|---|---|\n");
    for row in rows {
        out.push_str(&row);
        out.push('\n');
    }
    out
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
