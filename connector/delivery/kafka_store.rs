//! The real [`Store`]: the rdkafka producer, plus the optional durable spool and the forwarder
//! that drains it into Kafka. A record with a partition key goes to the partition Kafka's Java
//! producer would pick for that key ([`crate::delivery::kafka::partition`]) when its topic's partition
//! count is known, spooled or not; otherwise librdkafka partitions it by its Kafka key.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use rdkafka::producer::Producer as _;
use tokio::sync::watch;

use super::{
    Delivered, DeliveryError, Health, Instead, ProduceError, Record, Spool, SpoolError,
    SpoolRecord, Store, Stored, TooLarge,
};
use crate::delivery::kafka::{PartitionCounts, Producer};

/// Kafka, with the spool in front when `delivery.spool.dir` is set.
#[derive(Clone)]
pub struct KafkaStore {
    producer: Producer,
    spool: Option<Arc<Spool>>,
    partitions: Arc<PartitionCounts>,
}

impl KafkaStore {
    /// Joins the producer, the spool and the partition counts of the topics (read from the
    /// cluster's metadata once the topics exist).
    pub fn new(
        producer: Producer,
        spool: Option<Arc<Spool>>,
        partitions: Arc<PartitionCounts>,
    ) -> Self {
        Self {
            producer,
            spool,
            partitions,
        }
    }

    async fn store_record(&self, record: &Record<'_>) -> Result<Stored, DeliveryError> {
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
        let spooled = SpoolRecord::from(record);
        let spool = spool.clone();
        tokio::task::spawn_blocking(move || spool.append(&spooled))
            .await
            .map_err(|e| SpoolError::Io(std::io::Error::other(e)))??;
        Ok(Stored::Spooled)
    }

    async fn produce(&self, record: &Record<'_>) -> Result<Delivered, ProduceError> {
        let started = std::time::Instant::now();
        let partition = self
            .partitions
            .partition(record.topic, record.partition_key);
        let delivered = self
            .producer
            .send(
                record.topic,
                partition,
                record.key,
                record.value,
                &record.headers,
            )
            .await?;
        metrics::histogram!(crate::common::metrics::ACK_LATENCY)
            .record(started.elapsed().as_secs_f64());
        record_produced(record.topic, record.occurred_at_ms);
        Ok(delivered)
    }
}

impl Store for KafkaStore {
    fn store<'a>(&'a self, record: &'a Record<'a>) -> BoxFuture<'a, Result<Stored, DeliveryError>> {
        self.store_record(record).boxed()
    }

    fn health(&self, timeout: Duration) -> BoxFuture<'_, Health> {
        let producer = self.producer.clone();
        async move {
            let kafka = tokio::task::spawn_blocking(move || {
                producer
                    .client()
                    .client()
                    .fetch_metadata(None, timeout)
                    .map(|m| !m.brokers().is_empty())
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            Health {
                kafka,
                spool_above_high_water_mark: self
                    .spool
                    .as_ref()
                    .map(|spool| spool.above_high_water_mark()),
            }
        }
        .boxed()
    }

    fn set_gauges(&self) {
        if let Some(spool) = &self.spool {
            metrics::gauge!(crate::common::metrics::SPOOL_RECORDS).set(spool.pending() as f64);
            metrics::gauge!(crate::common::metrics::SPOOL_BYTES).set(spool.bytes() as f64);
        }
    }

    fn background(
        &self,
        stop: watch::Receiver<bool>,
        too_large: Arc<dyn TooLarge>,
    ) -> Option<BoxFuture<'static, ()>> {
        let forwarder = Forwarder {
            spool: self.spool.clone()?,
            producer: self.producer.clone(),
            partitions: self.partitions.clone(),
            too_large,
        };
        Some(forwarder.run(stop).boxed())
    }

    fn flush(&self, timeout: Duration) -> BoxFuture<'_, Result<(), DeliveryError>> {
        let producer = self.producer.clone();
        async move {
            tokio::task::spawn_blocking(move || producer.flush(timeout))
                .await
                .map_err(|e| SpoolError::Io(std::io::Error::other(e)))?
                .map_err(|e| DeliveryError::Produce(ProduceError::Kafka(e.to_string())))
        }
        .boxed()
    }
}

/// Counts an acked record and, when the event time is known, its end-to-end delay.
fn record_produced(topic: &str, occurred_at_ms: Option<i64>) {
    metrics::counter!(crate::common::metrics::PRODUCED, "topic" => topic.to_string()).increment(1);
    if let Some(at) = occurred_at_ms {
        let delay_ms = crate::common::clock::now_millis().saturating_sub(at).max(0);
        metrics::histogram!(crate::common::metrics::END_TO_END).record(delay_ms as f64 / 1000.0);
    }
}

/// What drains the spool into Kafka.
struct Forwarder {
    spool: Arc<Spool>,
    producer: Producer,
    partitions: Arc<PartitionCounts>,
    too_large: Arc<dyn TooLarge>,
}

impl Forwarder {
    /// Drains the spool in order until `stop` resolves: each record is produced (retrying with
    /// backoff while Kafka is down), and a segment is deleted once all its records are acked.
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let spool = &self.spool;
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
            for spooled in &segment.records {
                if self.forward(spooled, &mut stop).await.is_err() {
                    return;
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

    /// Produces one spooled record, or what the pipeline keeps instead once Kafka refused it
    /// as too large; retries while Kafka does not ack. `Err`: stopped meanwhile.
    ///
    /// A record with a partition key whose topic's count is not known yet (Kafka was down at
    /// start-up) waits for it while Kafka does not answer, so it lands where it would have.
    async fn forward(
        &self,
        spooled: &SpoolRecord,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Stopped> {
        let (producer, partitions) = (&self.producer, &self.partitions);
        let mut backoff = Duration::from_millis(100);
        let mut instead: Option<Instead> = None;
        loop {
            let record = instead.as_ref().map_or(spooled, |instead| &instead.record);
            if record.partition_key.is_some() && !partitions.knows(&record.topic) {
                if let Err(error) =
                    fetch_partition_counts(producer, partitions, &record.topic).await
                {
                    tracing::warn!(%error, topic = %record.topic, "spool forwarder: cannot read the topic's partition count; retrying");
                    backoff = wait_then_back_off(stop, backoff).await?;
                    continue;
                }
            }
            let partition = partitions.partition(&record.topic, record.partition_key.as_deref());
            let headers = borrowed(&record.headers);
            let sent = producer
                .send(
                    &record.topic,
                    partition,
                    record.key.as_deref(),
                    &record.value,
                    &headers,
                )
                .await;
            match sent {
                Ok(_) => {
                    record_produced(&record.topic, None);
                    if let Some(instead) = instead {
                        (instead.acked)();
                    }
                    return Ok(());
                }
                // Once: a record kept instead that is refused too has nothing smaller.
                Err(error @ ProduceError::TooLarge(_)) if instead.is_none() => {
                    let Some(kept) = self.too_large.instead(spooled, &error) else {
                        dropped(&error, &record.topic);
                        return Ok(());
                    };
                    tracing::warn!(%error, topic = %record.topic, instead = %kept.record.topic, "spooled record refused by kafka as too large; keeping it as the pipeline says");
                    instead = Some(kept);
                }
                Err(error @ ProduceError::TooLarge(_)) => {
                    dropped(&error, &record.topic);
                    return Ok(());
                }
                Err(error) => {
                    tracing::warn!(%error, pending = self.spool.pending(), "spool forwarder: kafka not acking; retrying");
                    backoff = wait_then_back_off(stop, backoff).await?;
                }
            }
        }
    }
}

/// The forwarder was stopped while it waited.
struct Stopped;

/// A spooled record Kafka refused for good: logged and counted.
fn dropped(error: &ProduceError, topic: &str) {
    tracing::error!(%error, %topic, "spooled record refused by kafka; dropped");
    metrics::counter!(crate::common::metrics::SPOOL_DROPPED).increment(1);
}

/// Waits `backoff`, then doubles it (at most 5 s); `Err` when stopped meanwhile.
async fn wait_then_back_off(
    stop: &mut watch::Receiver<bool>,
    backoff: Duration,
) -> Result<Duration, Stopped> {
    if wait_or_stop(stop, backoff).await {
        return Err(Stopped);
    }
    Ok((backoff * 2).min(Duration::from_secs(5)))
}

/// A spooled record's headers as the producer takes them.
fn borrowed(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Reads `topic`'s partition count from the cluster (the metadata request answered is
/// enough: a topic still missing stays unknown, and its records are partitioned by key).
async fn fetch_partition_counts(
    producer: &Producer,
    partitions: &Arc<PartitionCounts>,
    topic: &str,
) -> Result<(), rdkafka::error::KafkaError> {
    let (producer, partitions, topics) = (
        producer.clone(),
        partitions.clone(),
        vec![topic.to_string()],
    );
    tokio::task::spawn_blocking(move || {
        partitions.fetch(producer.client().client(), &topics, Duration::from_secs(5))
    })
    .await
    .unwrap_or(Err(rdkafka::error::KafkaError::Canceled))
    .map(|_| ())
}

/// Waits `delay` (retry backoff); true when stopped meanwhile.
async fn wait_or_stop(stop: &mut tokio::sync::watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
