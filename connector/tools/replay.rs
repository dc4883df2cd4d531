//! `riskos-connector replay --from-quarantine`: re-runs quarantined bodies through the current
//! envelopes and schemas and produces those that now fit to their event topics, keyed as usual
//! (so compaction collapses repeats). Bodies that still do not fit stay where they are.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::message::{Headers, Message};

use super::reader::{Start, TopicReader};
use crate::pipeline::quarantine::RECEIVED_AT_HEADER;
use crate::pipeline::{Origin, ENDPOINT_HEADER};
use crate::wiring::config::Config;

/// What a replay did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Quarantined records read.
    pub read: u64,
    /// Records produced, by destination topic.
    pub replayed: BTreeMap<String, u64>,
    /// Records that still cannot be prepared: `(partition, offset, error)`.
    pub still_failing: Vec<(i32, i64, String)>,
    /// Records another endpoint sharing the topic prefix received, left for its own replay.
    pub other_endpoints: u64,
}

/// Reads the quarantine topic of `endpoint` (the only one when `None`) from `since` (epoch ms)
/// or the beginning, up to its end when the replay started, and stores what now fits through
/// that endpoint's pipeline (its prefix, envelopes and `endpoint` header).
pub async fn run(
    config: &Config,
    endpoint: Option<&str>,
    since_ms: Option<i64>,
) -> anyhow::Result<ReplayReport> {
    let endpoint = config.endpoint(endpoint)?;
    let pipeline = crate::wiring::topology::pipeline(config, endpoint).await?;
    let topic = pipeline.quarantine_topic().to_string();
    let start = since_ms.map_or(Start::Beginning, Start::Time);
    let mut reader = TopicReader::new(config, std::slice::from_ref(&topic), start)?;
    let mut report = ReplayReport::default();
    while !reader.caught_up() {
        let Some(message) =
            tokio::task::block_in_place(|| reader.poll(Duration::from_millis(500)))?
        else {
            continue;
        };
        report.read += 1;
        // Endpoints may share a prefix (and so a quarantine topic): each replays its own.
        if header(&message, ENDPOINT_HEADER).is_some_and(|name| name != pipeline.endpoint()) {
            report.other_endpoints += 1;
            continue;
        }
        let stored = message.payload().unwrap_or_default();
        // An encrypted body (`raw = "encrypt"`) is opened with the keys first.
        let body = match opened(&pipeline, &topic, &message, stored) {
            Ok(body) => body,
            Err(error) => {
                report.still_failing.push((
                    message.partition(),
                    message.offset(),
                    format!("the stored body does not open: {error}"),
                ));
                continue;
            }
        };
        let body: &[u8] = &body;
        let received_at_ms = received_at(&message)
            .or_else(|| message.timestamp().to_millis())
            .unwrap_or_else(crate::common::clock::now_millis);
        match pipeline.prepare(body, received_at_ms) {
            Ok(prepared) => {
                pipeline.deliver(&prepared, Origin::body(body)).await?;
                *report
                    .replayed
                    .entry(prepared.route.topic.clone())
                    .or_default() += 1;
            }
            Err(error) => report.still_failing.push((
                message.partition(),
                message.offset(),
                error.to_string(),
            )),
        }
    }
    pipeline
        .delivery()
        .store()
        .flush(Duration::from_secs(10))
        .await?;
    Ok(report)
}

/// The quarantined body as received: as stored, or opened when it is an encrypted value.
fn opened<'m>(
    pipeline: &crate::pipeline::Pipeline,
    topic: &str,
    message: &rdkafka::message::OwnedMessage,
    stored: &'m [u8],
) -> Result<std::borrow::Cow<'m, [u8]>, crate::pipeline::protect::UnprotectError> {
    let sealed = std::str::from_utf8(stored)
        .ok()
        .filter(|text| crate::pipeline::protect::keys::is_encrypted(text));
    let Some(sealed) = sealed else {
        return Ok(std::borrow::Cow::Borrowed(stored));
    };
    let keys =
        pipeline
            .protection()
            .keys
            .ok_or(crate::pipeline::protect::UnprotectError::UnknownKey(
                "(no protection.encryption_keys configured)".into(),
            ))?;
    let key = message
        .key()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let raw = crate::pipeline::protect::FieldPath::of(crate::pipeline::protect::RAW_PATH);
    keys.decrypt(sealed, topic, &key, &raw)
        .map(std::borrow::Cow::Owned)
}

fn received_at(message: &rdkafka::message::OwnedMessage) -> Option<i64> {
    header(message, RECEIVED_AT_HEADER)?.parse().ok()
}

fn header<'m>(message: &'m rdkafka::message::OwnedMessage, key: &str) -> Option<&'m str> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}
