//! `riskos-bench instructions`: the pure path's cost as instructions per webhook, for each
//! fixture — deterministic enough (±0.2 %) that a regression shows on a noisy machine where CPU
//! seconds move by ±10 % or more.
//!
//! This binary re-executes itself (`prepare-loop`) once under `valgrind --tool=callgrind`,
//! collecting only inside [`riskos_bench_prepare_loop`], which runs the connector's `prepare`
//! (as the bench's connector is set up: [`PurePath`]) over N bodies of one fixture with
//! distinct ids, and dumping the count after each of its calls (`--dump-after`). For each
//! fixture it is called with N = 1 and then N = 1 + `calls`; the difference over `calls` is
//! the cost of one webhook in the steady state. Many calls, because what is left of noise is
//! the allocator's and the hash maps' (randomly seeded) state, which averages out. Without
//! valgrind every row says so and nothing fails.

use std::hint::black_box;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::fixtures::Bodies;
use crate::pure_path::PurePath;

/// The function callgrind collects in (`--toggle-collect`, `--dump-after`): unmangled so the
/// name is stable.
const COLLECTED: &str = "riskos_bench_prepare_loop";

/// The ids' tag: fixed, so every body (and its length) is the same from run to run.
const TAG: &str = "callgrind";

/// Longest the valgrind run may take (it takes a few seconds).
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// `instructions` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `tests/fixtures`.
    #[arg(long, default_value = "tests/fixtures")]
    pub fixtures: PathBuf,
    /// `schemas`.
    #[arg(long, default_value = "schemas")]
    pub schemas: PathBuf,
    /// Check every fixture's count against this budget file (`bench/instruction-budget.json`)
    /// and exit non-zero when one is over it by more than its tolerance, or is not counted.
    #[arg(long, conflicts_with = "write_budget")]
    pub budget: Option<PathBuf>,
    /// Write the counts as the new budget into this file (after a change that is meant to
    /// cost more, or to lock in a gain).
    #[arg(long)]
    pub write_budget: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
}

/// `bench/instruction-budget.json`: the instructions per webhook each fixture may cost, and
/// how far over it a count may go before CI fails. Counts move by about 0.2 % from run to run
/// (and not at all for a given build), so a few per cent is a regression, not noise.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// How to refresh it, for whoever reads the file.
    pub about: String,
    /// Allowed excess over a fixture's budget, per cent.
    pub tolerance_percent: f64,
    /// Fixture file name → instructions per webhook.
    pub fixtures: std::collections::BTreeMap<String, u64>,
}

/// What the budget says of one table: a line per fixture, and whether all are within it.
pub fn check(table: &Table, budget: &Budget) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut ok = true;
    for row in &table.rows {
        let Some(&allowed) = budget.fixtures.get(&row.fixture) else {
            lines.push(format!(
                "{}: no budget (add it with --write-budget)",
                row.fixture
            ));
            ok = false;
            continue;
        };
        let limit = allowed as f64 * (1.0 + budget.tolerance_percent / 100.0);
        match &row.per_webhook {
            Ok(count) => {
                let change = (count / allowed as f64 - 1.0) * 100.0;
                let verdict = if *count > limit {
                    ok = false;
                    "OVER BUDGET"
                } else {
                    "ok"
                };
                lines.push(format!(
                    "{}: {count:.0} instructions per webhook, budget {allowed} ({change:+.1} %, \
                     tolerance {} %): {verdict}",
                    row.fixture, budget.tolerance_percent
                ));
            }
            Err(why) => {
                lines.push(format!("{}: not counted: {why}", row.fixture));
                ok = false;
            }
        }
    }
    for fixture in budget.fixtures.keys() {
        if !table.rows.iter().any(|r| &r.fixture == fixture) {
            lines.push(format!(
                "{fixture}: in the budget but not among the fixtures"
            ));
            ok = false;
        }
    }
    (lines, ok)
}

/// The counts of `table` as a budget (rounded up), with `tolerance_percent`.
pub fn budget_of(table: &Table, tolerance_percent: f64) -> anyhow::Result<Budget> {
    let mut fixtures = std::collections::BTreeMap::new();
    for row in &table.rows {
        match &row.per_webhook {
            Ok(count) => fixtures.insert(row.fixture.clone(), count.ceil() as u64),
            Err(why) => anyhow::bail!("{}: not counted: {why}", row.fixture),
        };
    }
    Ok(Budget {
        about: "Instructions per webhook of the pure path (callgrind), per fixture: \
                scripts/test.sh fails when one goes over its budget by more than \
                tolerance_percent. Refresh after a deliberate change with `riskos-bench \
                instructions --write-budget bench/instruction-budget.json` (docs/performance.md)."
            .into(),
        tolerance_percent,
        fixtures,
    })
}

/// The tolerance of a budget written afresh, per cent.
const DEFAULT_TOLERANCE_PERCENT: f64 = 3.0;

/// How to count.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// The valgrind program.
    #[arg(long, default_value = "valgrind")]
    pub valgrind: PathBuf,
    /// Calls whose cost is averaged (the difference between 1 + calls and 1 call).
    #[arg(long, default_value_t = DEFAULT_CALLS, value_parser = clap::value_parser!(u64).range(1..))]
    pub calls: u64,
}

/// 100 calls: the per-webhook figure then moves by about 0.2 % between runs (10: 1–3 %).
const DEFAULT_CALLS: u64 = 100;

impl Default for Settings {
    fn default() -> Self {
        Self {
            valgrind: "valgrind".into(),
            calls: DEFAULT_CALLS,
        }
    }
}

/// `prepare-loop` arguments (what `instructions` runs under valgrind).
#[derive(Debug, clap::Args)]
pub struct LoopArgs {
    #[arg(long)]
    pub fixtures: PathBuf,
    #[arg(long)]
    pub schemas: PathBuf,
    /// The second call's extra bodies per fixture.
    #[arg(long)]
    pub calls: u64,
}

/// One fixture's count.
#[derive(Debug, Clone)]
pub struct Row {
    pub fixture: String,
    pub body_bytes: usize,
    /// Instructions per webhook, or why there is no count.
    pub per_webhook: Result<f64, String>,
}

/// The table, as measured, with the valgrind version for the caption.
#[derive(Debug, Clone)]
pub struct Table {
    pub valgrind: Option<String>,
    pub calls: u64,
    pub rows: Vec<Row>,
}

/// Prints the table; checks or writes the budget when asked.
pub fn run(args: Args) -> anyhow::Result<()> {
    let table = measure(&args.fixtures, &args.schemas, &args.settings)?;
    println!("{}", markdown(&table));
    if let Some(file) = &args.write_budget {
        let tolerance = std::fs::read(file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Budget>(&bytes).ok())
            .map_or(DEFAULT_TOLERANCE_PERCENT, |old| old.tolerance_percent);
        let budget = budget_of(&table, tolerance)?;
        std::fs::write(file, serde_json::to_string_pretty(&budget)? + "\n")?;
        println!("budget written to {}", file.display());
    }
    if let Some(file) = &args.budget {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let budget: Budget =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let (lines, ok) = check(&table, &budget);
        for line in &lines {
            println!("{line}");
        }
        if !ok {
            anyhow::bail!(
                "the pure path is over its instruction budget ({}): make it cheaper, or, for a \
                 deliberate cost, refresh the budget with `--write-budget {}` and say why in \
                 the commit",
                file.display(),
                file.display()
            );
        }
        println!("every fixture within its budget ({})", file.display());
    }
    Ok(())
}

/// Counts every fixture. Errors only on what would break the benchmark anyway (fixtures or
/// schemas that do not load); valgrind missing or failing shows in the rows.
pub fn measure(fixtures: &Path, schemas: &Path, settings: &Settings) -> anyhow::Result<Table> {
    let started = Instant::now();
    let bodies = Bodies::load(fixtures, TAG)?;
    let path = PurePath::load(schemas)?;
    let valgrind = valgrind_version(&settings.valgrind);
    let counts = match &valgrind {
        Some(_) => callgrind(&settings.valgrind, fixtures, schemas, settings.calls),
        None => Err("valgrind not found".into()),
    };
    let rows = bodies
        .templates()
        .iter()
        .enumerate()
        .map(|(i, template)| {
            let body = bodies.body(i as u64);
            let per_webhook = match (path.prepare(&body), &counts) {
                (Err(error), _) => Err(format!("does not prepare: {error}")),
                (Ok(_), Err(why)) => Err(why.clone()),
                (Ok(_), Ok(counts)) => match (counts.get(2 * i), counts.get(2 * i + 1)) {
                    (Some(one), Some(more)) => {
                        Ok(more.saturating_sub(*one) as f64 / settings.calls as f64)
                    }
                    _ => Err(format!("callgrind dumped {} counts", counts.len())),
                },
            };
            Row {
                fixture: template.name.clone(),
                body_bytes: body.len(),
                per_webhook,
            }
        })
        .collect();
    eprintln!(
        "bench: instructions counted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Table {
        valgrind,
        calls: settings.calls,
        rows,
    })
}

/// `valgrind-3.19.0`, or `None` when it cannot be run.
fn valgrind_version(valgrind: &Path) -> Option<String> {
    match Command::new(valgrind).arg("--version").output() {
        Ok(out) if out.status.success() => {
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        Ok(_) => None,
        Err(error) if error.kind() == ErrorKind::NotFound => None,
        Err(error) => {
            eprintln!("bench: {}: {error}", valgrind.display());
            None
        }
    }
}

/// Runs `prepare-loop` under callgrind: the instructions of each call of [`COLLECTED`], in
/// call order (fixture 0 with 1 body, fixture 0 with 1 + `calls`, fixture 1 …).
fn callgrind(
    valgrind: &Path,
    fixtures: &Path,
    schemas: &Path,
    calls: u64,
) -> Result<Vec<u64>, String> {
    let dir = std::env::temp_dir().join(format!("riskos-bench-callgrind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let counts = callgrind_in(&dir, valgrind, fixtures, schemas, calls);
    let _ = std::fs::remove_dir_all(&dir);
    counts
}

fn callgrind_in(
    dir: &Path,
    valgrind: &Path,
    fixtures: &Path,
    schemas: &Path,
    calls: u64,
) -> Result<Vec<u64>, String> {
    let out = dir.join("callgrind.out");
    let log = dir.join("valgrind.log");
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(valgrind)
        .arg("--tool=callgrind")
        .arg("--quiet")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--collect-atstart=no")
        .arg(format!("--toggle-collect={COLLECTED}"))
        .arg(format!("--dump-after={COLLECTED}"))
        .arg(exe)
        .arg("prepare-loop")
        .arg("--fixtures")
        .arg(fixtures)
        .arg("--schemas")
        .arg(schemas)
        .arg("--calls")
        .arg(calls.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| format!("valgrind: {e}"))?;
    let status = wait_bounded(&mut child, RUN_LIMIT)?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last = text.lines().last().unwrap_or_default();
        return Err(format!("valgrind failed ({status}): {last}"));
    }
    // One file per dump, `<out>.1`, `<out>.2`, … (`<out>` itself is the empty rest at exit).
    let mut counts = Vec::new();
    for part in 1.. {
        let Ok(text) = std::fs::read_to_string(format!("{}.{part}", out.display())) else {
            break;
        };
        counts.push(totals(&text).ok_or("no totals in callgrind's output")?);
    }
    Ok(counts)
}

/// Waits for `child` at most `limit`, killing it past that.
fn wait_bounded(
    child: &mut std::process::Child,
    limit: Duration,
) -> Result<std::process::ExitStatus, String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("valgrind ran over {} s", limit.as_secs()));
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// The first event's total (Ir) of a callgrind output file: its `totals:` line, or the
/// `summary:` line older versions write.
fn totals(text: &str) -> Option<u64> {
    let line = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    line("totals:").or_else(|| line("summary:"))
}

/// `prepare-loop`: for each fixture, prepares 1 and then 1 + `calls` of its bodies inside
/// [`riskos_bench_prepare_loop`]. Everything else — loading schemas and keys, building the
/// bodies, a first call — happens outside it, so callgrind does not count it. A fixture that
/// does not prepare is run all the same, so the dumps stay two per fixture.
pub fn prepare_loop(args: LoopArgs) -> anyhow::Result<()> {
    let bodies = Bodies::load(&args.fixtures, TAG)?;
    let path = PurePath::load(&args.schemas)?;
    let n = bodies.templates().len() as u64;
    for fixture in 0..n {
        // Distinct ids, same fixture: seq ≡ fixture (mod n).
        let body = |k: u64| bodies.body(fixture + k * n);
        // One call outside the measured loop: once-per-process costs (aws-lc seeds its random
        // generator from CPU jitter on first use: about 400 million instructions, different
        // every run) stay out of both counts instead of cancelling out with noise.
        let _ = path.prepare(&body(0));
        let one: Vec<Bytes> = vec![body(1)];
        let more: Vec<Bytes> = (2..2 + args.calls).map(body).collect();
        riskos_bench_prepare_loop(&path, &one);
        riskos_bench_prepare_loop(&path, &more);
    }
    Ok(())
}

/// The measured loop: what the connector does per webhook before delivery, each record
/// dropped as the connector drops it after the ack. Returns how many prepared.
#[no_mangle]
#[inline(never)]
pub fn riskos_bench_prepare_loop(path: &PurePath, bodies: &[Bytes]) -> usize {
    let mut prepared = 0;
    for body in bodies {
        if let Ok(record) = path.prepare(black_box(body)) {
            black_box(&record);
            prepared += 1;
        }
    }
    prepared
}

/// The report's table.
pub fn markdown(table: &Table) -> String {
    let mut out = match &table.valgrind {
        Some(version) => format!(
            "Instructions per webhook: callgrind ({version}) instructions (Ir) of \
             `riskos_connector::pipeline::prepare_accepting` as the bench's connector runs it \
             (both envelopes, fields protected, `raw` encrypted), the count over {} webhooks of a \
             fixture minus the count over 1, divided by {}. The same to about 0.2 % from run to \
             run however busy the machine, for a given build and CPU (glibc and aws-lc pick \
             their code by CPU features).\n\n",
            1 + table.calls,
            table.calls
        ),
        None => "Instructions per webhook (callgrind over the pure path): valgrind not found, \
                 so not counted.\n\n"
            .to_string(),
    };
    out.push_str("| fixture | body bytes | instructions per webhook |\n|---|--:|--:|\n");
    for row in &table.rows {
        let count = match &row.per_webhook {
            Ok(n) => format!("{n:.0}"),
            Err(why) => why.clone(),
        };
        out.push_str(&format!(
            "| {} | {} | {count} |\n",
            row.fixture, row.body_bytes
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_reads_either_line() {
        assert_eq!(totals("events: Ir\nsummary: 123\ntotals: 456\n"), Some(456));
        assert_eq!(totals("events: Ir\nsummary: 123\n"), Some(123));
        assert_eq!(totals("events: Ir\n"), None);
    }

    fn table(counts: &[(&str, Result<f64, String>)]) -> Table {
        Table {
            valgrind: Some("valgrind-3.19.0".into()),
            calls: 100,
            rows: counts
                .iter()
                .map(|(fixture, count)| Row {
                    fixture: fixture.to_string(),
                    body_bytes: 100,
                    per_webhook: count.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_fixture_over_its_budget_by_more_than_the_tolerance_fails_the_check() {
        let budget = budget_of(
            &table(&[("a.json", Ok(1000.0)), ("b.json", Ok(2000.0))]),
            3.0,
        )
        .unwrap();
        assert_eq!(budget.fixtures["a.json"], 1000);
        let (_, ok) = check(
            &table(&[("a.json", Ok(1029.0)), ("b.json", Ok(1500.0))]),
            &budget,
        );
        assert!(ok, "within 3 %, or cheaper");
        let (lines, ok) = check(
            &table(&[("a.json", Ok(1031.0)), ("b.json", Ok(2000.0))]),
            &budget,
        );
        assert!(!ok);
        assert!(
            lines[0].contains("OVER BUDGET") && lines[0].contains("+3.1 %"),
            "{lines:?}"
        );
        // Not counted (no valgrind), a fixture without a budget, a budget without its fixture.
        for rows in [
            vec![
                ("a.json", Err("valgrind not found".to_string())),
                ("b.json", Ok(1.0)),
            ],
            vec![
                ("a.json", Ok(1.0)),
                ("b.json", Ok(1.0)),
                ("c.json", Ok(1.0)),
            ],
            vec![("a.json", Ok(1.0))],
        ] {
            assert!(!check(&table(&rows), &budget).1, "{rows:?}");
        }
    }
}
