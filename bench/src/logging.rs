//! `riskos-bench logging`: what logging costs a webhook, A/B without a server around it. The
//! connector's own logging layers (`telemetry::log_layers`: level filter, JSON line formatter,
//! line buffer, here in front of `io::sink()`), its own request span
//! (`http::observe::request_span`) entered and left [`POLLS`] times as the request's future is
//! polled, and its own `accepted` line (`http::observe::AcceptedLine`), once with the level at
//! `info` and once at `warn` (span and line disabled), in rounds A B then B A. The difference is
//! what `info` adds to a webhook; a load run's A/B (the fourth part of `bench/run.sh`) moves
//! by more than that between runs, so it is the cross-check, not the measure.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use riskos_connector::common::telemetry::log_layers;
use riskos_connector::common::telemetry::LogConfig;
use riskos_connector::ingress::http::observe::{request_span, AcceptedLine};
use tracing_subscriber::layer::SubscriberExt as _;

/// Times a webhook's request future is polled with its span entered (reading the body, the
/// credentials, the produce, the answer: a few polls each).
pub const POLLS: usize = 6;

/// `logging` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Webhooks logged per measurement.
    #[arg(long, default_value_t = 200_000)]
    pub webhooks: u32,
    /// A B rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// Nanoseconds per webhook of each level's rounds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Measured {
    pub webhooks: u32,
    pub polls: usize,
    pub info_ns: Vec<f64>,
    pub warn_ns: Vec<f64>,
}

impl Measured {
    /// The mean of `info` minus the mean of `warn`, µs per webhook.
    pub fn added_micros(&self) -> f64 {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        (mean(&self.info_ns) - mean(&self.warn_ns)) / 1000.0
    }
}

/// Prints the figures.
pub fn run(args: Args) -> anyhow::Result<()> {
    let measured = measure(args.webhooks, args.rounds);
    println!("{}", line(&measured));
    Ok(())
}

/// One line for the report.
pub fn line(m: &Measured) -> String {
    let list = |v: &[f64]| {
        v.iter()
            .map(|ns| format!("{:.2}", ns / 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "`info` {} µs, `warn` {} µs a webhook ({} webhooks a round, span entered {} times each): `info` adds {:.2} µs",
        list(&m.info_ns),
        list(&m.warn_ns),
        m.webhooks,
        m.polls,
        m.added_micros()
    )
}

/// A B, B A, A B …: `rounds` of each level, the order alternating so drift falls on both.
pub fn measure(webhooks: u32, rounds: usize) -> Measured {
    // A first pass of each, not counted: the callsites' interest and the buffer's capacity.
    time_level("info", webhooks / 10);
    time_level("warn", webhooks / 10);
    let mut measured = Measured {
        webhooks,
        polls: POLLS,
        info_ns: Vec::new(),
        warn_ns: Vec::new(),
    };
    for round in 0..rounds {
        let mut time = |level: &str| {
            let took = per_webhook(time_level(level, webhooks), webhooks);
            match level {
                "info" => measured.info_ns.push(took),
                _ => measured.warn_ns.push(took),
            }
        };
        if round % 2 == 0 {
            time("info");
            time("warn");
        } else {
            time("warn");
            time("info");
        }
    }
    measured
}

fn per_webhook(took: Duration, webhooks: u32) -> f64 {
    took.as_nanos() as f64 / f64::from(webhooks)
}

/// Logs `webhooks` webhooks' span and line with the level at `level`.
fn time_level(level: &str, webhooks: u32) -> Duration {
    let config = LogConfig {
        level: level.into(),
        ..LogConfig::default()
    };
    let (layers, flusher) = log_layers(&config, Box::new(std::io::sink()));
    let subscriber = tracing_subscriber::registry().with(layers);
    let peer = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let took = tracing::subscriber::with_default(subscriber, || {
        let started = Instant::now();
        for n in 0..webhooks {
            let request_id = format!("{:032x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15);
            let event_id = format!("evt-{n:010}");
            let span = request_span(&request_id, "riskos", Some(peer), peer);
            for _ in 0..POLLS - 1 {
                let _entered = span.enter();
            }
            let _entered = span.enter();
            AcceptedLine {
                event_id: &event_id,
                event_type: "evaluation_completed",
                event_at: 1_756_311_383_104,
                topic: "riskos.evaluation_completed",
                partition: Some(0),
                offset: Some(i64::from(n)),
                spooled: false,
                duplicate: false,
                latency: Duration::from_micros(7_672),
            }
            .log();
        }
        started.elapsed()
    });
    flusher.finish();
    took
}
