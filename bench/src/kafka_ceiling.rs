//! The Kafka ceiling: the connector's own producer (same librdkafka settings, same `send` that
//! awaits the ack) sending the records the connector would produce for the fixture mix —
//! prepared once up front with the connector's pipeline, protection included (see
//! [`crate::pure_path`]) — at the same concurrency or rate, with a distinct key per send. What is
//! left of the connector's cost is HTTP and preparation.
//!
//! Runs as its own process so its CPU and memory are measured like a server's; it prints one
//! JSON line when each phase starts and one with the phase's result ([`crate::load::Report`]).
//! Built with feature `kafka` (the default) only: the instruction budget's build leaves the
//! connector's Kafka clients out.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use riskos_connector::delivery::kafka::{ensure_topics, Producer, TopicSpec};
use riskos_connector::pipeline::ENDPOINT_HEADER;

use crate::fixtures::Bodies;
use crate::load::{self, Outcome, Phase, Report, Worker};
use crate::procstat;
use crate::pure_path::PurePath;

/// `kafka-ceiling` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Broker `host:port`.
    #[arg(long)]
    pub bootstrap: String,
    /// `tests/fixtures`.
    #[arg(long)]
    pub fixtures: PathBuf,
    /// `schemas`.
    #[arg(long)]
    pub schemas: PathBuf,
    /// The phases, as a JSON array (what the orchestrator passes).
    #[arg(long)]
    pub phases: String,
    /// Extra librdkafka settings `key=value`, as the connector gets them through
    /// `RISKOS_KAFKA__LIBRDKAFKA__*`.
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// The connector's default ack deadline.
    #[arg(long, default_value_t = 5000)]
    pub ack_timeout_ms: u64,
}

/// The bench connector's endpoint name (`RISKOS_ENDPOINTS__RISKOS__…`).
const ENDPOINT: &str = "riskos";

struct Record {
    topic: String,
    event_type: String,
    envelope: &'static str,
    payload: Vec<u8>,
}

struct KafkaWorker {
    producer: Producer,
    records: Arc<Vec<Record>>,
    bodies: Arc<Bodies>,
}

impl Worker for KafkaWorker {
    fn call(&mut self, seq: u64) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>> {
        Box::pin(async move {
            let record = &self.records[(seq % self.records.len() as u64) as usize];
            let key = self.bodies.id(seq);
            // The headers the connector's records carry (`Pipeline::deliver`).
            let headers = [
                ("event_type", record.event_type.as_str()),
                ("envelope", record.envelope),
                (ENDPOINT_HEADER, ENDPOINT),
            ];
            // No partition: librdkafka's by key, which on the bench's 1-partition topics is the
            // partition the connector picks.
            match self
                .producer
                .send(&record.topic, None, Some(&key), &record.payload, &headers)
                .await
            {
                Ok(_) => Outcome::Status(200),
                Err(_) => Outcome::Error,
            }
        })
    }
}

/// Runs the phases and prints their results.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let phases: Vec<Phase> = serde_json::from_str(&args.phases).context("--phases")?;
    let mut passthrough = BTreeMap::new();
    for setting in &args.set {
        let (k, v) = setting
            .split_once('=')
            .with_context(|| format!("--set {setting}: expected key=value"))?;
        passthrough.insert(k.to_string(), v.to_string());
    }
    let path = PurePath::load(&args.schemas)?;
    let bodies = Arc::new(Bodies::load(&args.fixtures, "kafka-ceiling")?);
    let mut records = Vec::new();
    for (i, template) in bodies.templates().iter().enumerate() {
        let body = bodies.body(i as u64);
        let prepared = path
            .prepare(&body)
            .with_context(|| format!("{}: does not prepare", template.name))?;
        records.push(Record {
            topic: prepared.route.topic.clone(),
            event_type: prepared.event_type.clone(),
            envelope: prepared.envelope.as_str(),
            payload: prepared.payload,
        });
    }
    let specs: Vec<TopicSpec> = path
        .routes
        .all()
        .map(|r| TopicSpec::compacted(r.topic.clone()))
        .collect();
    let kafka = riskos_connector::delivery::kafka::KafkaConfig {
        bootstrap_servers: args.bootstrap.clone(),
        librdkafka: passthrough.into(),
        ..Default::default()
    };
    ensure_topics(&kafka, &specs, 1, 1)
        .await
        .context("creating topics")?;
    let producer = Producer::new(
        &kafka,
        Duration::from_millis(args.ack_timeout_ms),
        // The connector's own setting for its default 1 MiB body limit.
        riskos_connector::delivery::record_size::kafka_message_bytes(1 << 20),
    )?;
    let records = Arc::new(records);
    let me = std::process::id();
    let mut seq_base = 0;
    for phase in &phases {
        print_line(&Report::Start {
            phase: phase.name.clone(),
        });
        let meter = procstat::Meter::start(me);
        let workers = load::workers_for(phase, |_| KafkaWorker {
            producer: producer.clone(),
            records: records.clone(),
            bodies: bodies.clone(),
        });
        let mut result = load::run_phase(phase, workers, seq_base).await;
        seq_base += phase.max_requests;
        let (cpu, rss) = meter.stop();
        result.server_cpu_s = cpu;
        result.server_peak_rss_kib = rss;
        print_line(&Report::Result { result });
    }
    let flush = producer.clone();
    tokio::task::spawn_blocking(move || flush.flush(Duration::from_secs(5))).await??;
    Ok(())
}

fn print_line(report: &Report) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string(report).unwrap());
    let _ = out.flush();
}
