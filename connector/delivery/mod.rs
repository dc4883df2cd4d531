//! Delivery: from a prepared record to "stored" — the duplicate fast path, the producer, and
//! the optional durable spool with its forwarder.

pub mod dedup;
pub mod spool;

use std::sync::Arc;
use std::time::Duration;

use crate::kafka::{Delivered, ProduceError, Producer};
pub use dedup::Dedup;
pub use spool::{Spool, SpoolError, SpoolRecord};

/// A record to store: what delivery needs, borrowed from whoever prepared it (the pipeline
/// converts its prepared record into this; delivery knows nothing of envelopes or schemas).
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Kafka key (the event id); a quarantined body that is not an envelope has none.
    pub key: Option<&'a str>,
    /// Encoded value.
    pub value: &'a [u8],
    /// Kafka headers.
    pub headers: Vec<(&'static str, &'a str)>,
    /// The event's own time, epoch ms, for the end-to-end delay metric.
    pub occurred_at_ms: Option<i64>,
}

/// Where a record was made safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Acked by Kafka.
    Acked(Delivered),
    /// Fsync'd to the local spool; the forwarder will produce it.
    Spooled,
}

/// The result of a delivery.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// How it was stored.
    pub stored: Stored,
    /// True when an earlier or concurrent request with the same body stored it.
    pub duplicate: bool,
}

/// Why a record is not safe; every variant is transient for the sender except `TooLarge`.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Kafka did not ack and no spool is configured (or the record is too large).
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// The spool could not take the record.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl DeliveryError {
    /// True when Kafka refused the record as too large: retrying cannot help.
    pub fn is_too_large(&self) -> bool {
        matches!(self, DeliveryError::Produce(ProduceError::TooLarge(_)))
    }
}

/// Producer, dedup cache and optional spool.
#[derive(Clone)]
pub struct Delivery {
    producer: Producer,
    dedup: Dedup<Stored, DeliveryError>,
    spool: Option<Arc<Spool>>,
}

impl Delivery {
    /// Joins the parts.
    pub fn new(
        producer: Producer,
        dedup: Dedup<Stored, DeliveryError>,
        spool: Option<Arc<Spool>>,
    ) -> Self {
        Self {
            producer,
            dedup,
            spool,
        }
    }

    /// The producer.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The spool, when configured.
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
    }

    /// Stores a record once; `body` (the request's) scopes duplicates to identical bodies.
    pub async fn deliver(
        &self,
        record: &Record<'_>,
        body: &[u8],
    ) -> Result<Outcome, Arc<DeliveryError>> {
        let (stored, duplicate) = self
            .dedup
            .once(
                record.topic,
                record.key.unwrap_or_default(),
                body,
                self.store(record),
            )
            .await?;
        if duplicate {
            metrics::counter!(crate::metrics::DUPLICATES).increment(1);
        }
        Ok(Outcome { stored, duplicate })
    }

    async fn store(&self, record: &Record<'_>) -> Result<Stored, DeliveryError> {
        let Some(spool) = &self.spool else {
            return Ok(Stored::Acked(self.produce(record).await?));
        };
        // While anything is spooled, new records queue behind it so a key's records reach
        // Kafka in the order they were accepted (compaction keeps the last one).
        if spool.pending() == 0 {
            match self.produce(record).await {
                Ok(delivered) => return Ok(Stored::Acked(delivered)),
                Err(error @ ProduceError::TooLarge(_)) => return Err(error.into()),
                Err(error) => {
                    tracing::warn!(%error, topic = %record.topic, "kafka did not ack; spooling")
                }
            }
        }
        let spooled = SpoolRecord {
            topic: record.topic.to_string(),
            key: record.key.map(str::to_string),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: record.value.to_vec(),
        };
        let spool = spool.clone();
        tokio::task::spawn_blocking(move || spool.append(&spooled))
            .await
            .map_err(|e| SpoolError::Io(std::io::Error::other(e)))??;
        Ok(Stored::Spooled)
    }

    async fn produce(&self, record: &Record<'_>) -> Result<Delivered, ProduceError> {
        let started = std::time::Instant::now();
        let delivered = self
            .producer
            .send(record.topic, record.key, record.value, &record.headers)
            .await?;
        metrics::histogram!(crate::metrics::ACK_LATENCY).record(started.elapsed().as_secs_f64());
        record_produced(record.topic, record.occurred_at_ms);
        Ok(delivered)
    }
}

/// Counts an acked record and, when the event time is known, its end-to-end delay.
fn record_produced(topic: &str, occurred_at_ms: Option<i64>) {
    metrics::counter!(crate::metrics::PRODUCED, "topic" => topic.to_string()).increment(1);
    if let Some(at) = occurred_at_ms {
        let delay_ms = crate::clock::now_millis().saturating_sub(at).max(0);
        metrics::histogram!(crate::metrics::END_TO_END).record(delay_ms as f64 / 1000.0);
    }
}

/// Drains the spool in order until `stop` resolves: each record is produced (retrying with
/// backoff while Kafka is down), and a segment is deleted once all its records are acked.
pub async fn forward(
    spool: Arc<Spool>,
    producer: Producer,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let next = {
            let spool = spool.clone();
            tokio::task::spawn_blocking(move || spool.next_segment()).await
        };
        let segment = match next {
            Ok(Ok(Some(segment))) => segment,
            Ok(Ok(None)) => {
                tokio::select! {
                    _ = spool.appended() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot read the spool");
                wait_or_stop(&mut stop, Duration::from_secs(5)).await;
                continue;
            }
            Err(_) => return,
        };
        for record in &segment.records {
            let headers: Vec<(&str, &str)> = record
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            loop {
                match producer
                    .send(
                        &record.topic,
                        record.key.as_deref(),
                        &record.value,
                        &headers,
                    )
                    .await
                {
                    Ok(_) => {
                        record_produced(&record.topic, None);
                        backoff = Duration::from_millis(100);
                        break;
                    }
                    Err(error @ ProduceError::TooLarge(_)) => {
                        tracing::error!(%error, topic = %record.topic, "spooled record refused by kafka; dropped");
                        metrics::counter!(crate::metrics::SPOOL_DROPPED).increment(1);
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, pending = spool.pending(), "spool forwarder: kafka not acking; retrying");
                        if wait_or_stop(&mut stop, backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            spool.acked();
        }
        let removal = {
            let spool = spool.clone();
            tokio::task::spawn_blocking(move || spool.remove(&segment)).await
        };
        if let Ok(Err(error)) = removal {
            tracing::error!(%error, "cannot delete a drained spool segment");
        }
    }
}

/// Waits `delay` (retry backoff); true when stopped meanwhile.
async fn wait_or_stop(stop: &mut tokio::sync::watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
