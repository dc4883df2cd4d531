//! Delivery: from a record to "stored". [`Delivery`] is the duplicate fast path ([`dedup`])
//! in front of a [`Store`], the seam between the pipeline and Kafka: [`KafkaStore`] (the
//! producer plus the optional durable [`spool`] and its forwarder) in the service, and
//! [`MemoryStore`] in tests of the HTTP surface, which then need no broker.

pub(crate) mod ack;
// Read only by `wiring` (start-up), which the library has with feature `kafka` alone.
#[cfg_attr(not(feature = "kafka"), allow(dead_code, unreachable_pub))]
pub(crate) mod config;
pub(crate) mod dedup;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
pub(crate) mod kafka_store;
pub mod memory;
pub mod record_size;
pub(crate) mod spool;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

pub use ack::{Delivered, ProduceError};
pub use dedup::Dedup;
#[cfg(feature = "kafka")]
pub use kafka_store::KafkaStore;
pub use memory::MemoryStore;
pub use spool::{Spool, SpoolError, SpoolRecord};

/// A record to store: what delivery needs, borrowed from whoever prepared it (the pipeline
/// converts its prepared record into this; delivery knows nothing of envelopes or schemas).
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Kafka key (the event id); a quarantined body that is not an envelope has none.
    pub key: Option<&'a str>,
    /// The value the partition is computed from (the schema's `riskos.partition_by`), as
    /// Kafka's Java producer would for a key ([`crate::delivery::kafka::partition`]); `None`:
    /// partitioned by `key`.
    pub partition_key: Option<&'a str>,
    /// Encoded value.
    pub value: &'a [u8],
    /// Kafka headers.
    pub headers: Vec<(&'static str, &'a str)>,
    /// The event's own time, epoch ms, for the end-to-end delay metric.
    pub occurred_at_ms: Option<i64>,
}

impl From<&Record<'_>> for SpoolRecord {
    fn from(record: &Record<'_>) -> Self {
        SpoolRecord {
            topic: record.topic.to_string(),
            key: record.key.map(str::to_string),
            partition_key: record.partition_key.map(str::to_string),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: record.value.to_vec(),
        }
    }
}

/// Where the spool's forwarder hands a record Kafka refuses as too large (a topic managed
/// elsewhere with a smaller `max.message.bytes`). A record produced at once comes back to its
/// caller as [`ProduceError::TooLarge`]; a spooled one was already answered 200, so it must be
/// kept somewhere: the pipeline's quarantine path decides where (the pipeline implements this;
/// delivery knows nothing of quarantine).
pub trait TooLarge: Send + Sync + 'static {
    /// What to produce instead of `refused`; `None`: nothing can be (it is dropped, logged
    /// and counted).
    fn instead(&self, refused: &SpoolRecord, error: &ProduceError) -> Option<Instead>;
}

/// A record to produce in place of a refused one, and what to do once Kafka acked it.
pub struct Instead {
    /// The record.
    pub record: SpoolRecord,
    /// Called once it is acked (the pipeline counts its quarantine writes).
    pub acked: Box<dyn FnOnce() + Send>,
}

/// What makes two deliveries of one topic and key the same delivery.
#[derive(Debug, Clone, Copy)]
pub enum DuplicateScope<'a> {
    /// The request body: a retry sends the same bytes (a different body that reuses an event
    /// id is a new record, and compaction keeps the latest).
    Body(&'a [u8]),
    /// The sender's idempotency key (Standard Webhooks' `webhook-id`): its retries reuse it.
    SenderId(&'a [u8]),
}

impl<'a> DuplicateScope<'a> {
    /// The bytes fingerprinted, tagged by kind so a body can never pose as a sender id.
    fn tagged(self) -> (u8, &'a [u8]) {
        match self {
            DuplicateScope::Body(body) => (0, body),
            DuplicateScope::SenderId(id) => (1, id),
        }
    }
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

/// Where records are made safe: "store this record and say when it is safe".
///
/// A trait rather than the producer itself so that the HTTP surface can be tested without a
/// broker (Svix Bridge keeps its receivers' output behind a trait for the same reason).
pub trait Store: Send + Sync + 'static {
    /// Stores one record; resolves once it is safe (acked by Kafka, or fsync'd to the spool).
    fn store<'a>(&'a self, record: &'a Record<'a>) -> BoxFuture<'a, Result<Stored, DeliveryError>>;

    /// What readiness reports of the store (each check bounded by `timeout`).
    fn health(&self, timeout: Duration) -> BoxFuture<'_, Health>;

    /// Sets the gauges of what the store holds, before `/metrics` is rendered.
    fn set_gauges(&self) {}

    /// Work that runs beside the server until `stop` turns true (the spool's forwarder, which
    /// hands what Kafka refuses as too large to `too_large`).
    fn background(
        &self,
        stop: watch::Receiver<bool>,
        too_large: Arc<dyn TooLarge>,
    ) -> Option<BoxFuture<'static, ()>> {
        let _ = (stop, too_large);
        None
    }

    /// Waits up to `timeout` for what is still queued to be acked (shutdown).
    fn flush(&self, timeout: Duration) -> BoxFuture<'_, Result<(), DeliveryError>>;
}

/// A store's state as readiness sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Kafka answers a metadata request.
    pub kafka: bool,
    /// With a spool: whether it is above its high-water mark.
    pub spool_above_high_water_mark: Option<bool>,
}

/// The dedup cache in front of a store.
#[derive(Clone)]
pub struct Delivery {
    store: Arc<dyn Store>,
    dedup: Dedup<Stored, DeliveryError>,
}

impl Delivery {
    /// Joins the parts.
    pub fn new(store: Arc<dyn Store>, dedup: Dedup<Stored, DeliveryError>) -> Self {
        Self { store, dedup }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Stores a record once per `scope` on its topic and key: a retry with the same scope is
    /// answered from the cache, or joins the store still running.
    pub async fn deliver(
        &self,
        record: &Record<'_>,
        scope: DuplicateScope<'_>,
    ) -> Result<Outcome, Arc<DeliveryError>> {
        let (stored, duplicate) = self
            .dedup
            .once(
                record.topic,
                record.key.unwrap_or_default(),
                scope.tagged(),
                self.store.store(record),
            )
            .await?;
        if duplicate {
            metrics::counter!(crate::common::metrics::DUPLICATES).increment(1);
        }
        Ok(Outcome { stored, duplicate })
    }
}
