//! An in-memory [`Store`], for tests of everything above delivery (the HTTP surface, the
//! pipeline's decisions) without a broker. It keeps what it is given, in order, and can be
//! told to fail the way Kafka or the spool fail, or to hold records until released.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::watch;

use super::{DeliveryError, Health, Record, SpoolError, Store, Stored};
use crate::delivery::{Delivered, ProduceError};

/// How the store answers the next records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Keep the record and ack it (partition 0, the next offset).
    Ack,
    /// Keep the record as spooled (Kafka down, spool on).
    Spool,
    /// Kafka did not ack in time, no spool: nothing kept.
    Timeout,
    /// librdkafka's queue is full: nothing kept.
    QueueFull,
    /// Kafka refuses the record as too large: nothing kept.
    TooLarge,
    /// Kafka did not ack and the spool could not take it: nothing kept.
    SpoolFull,
}

/// A record the store kept, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Topic.
    pub topic: String,
    /// Key.
    pub key: Option<String>,
    /// The value the partition is computed from (`riskos.partition_by`), if any.
    pub partition_key: Option<String>,
    /// Value.
    pub value: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Acked or spooled.
    pub stored: Stored,
}

impl Kept {
    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct State {
    kept: Vec<Kept>,
    behaviour: Behaviour,
    /// Overrides of `behaviour` for single topics.
    on_topic: Vec<(String, Behaviour)>,
    health: Health,
    /// Calls to `store` so far, kept or not.
    attempts: usize,
}

/// Records kept in memory. Cloning shares the records.
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    /// While true, `store` waits (a slow Kafka).
    held: watch::Sender<bool>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// Acks everything; healthy; no spool.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                kept: Vec::new(),
                behaviour: Behaviour::Ack,
                on_topic: Vec::new(),
                health: Health {
                    kafka: true,
                    spool_above_high_water_mark: None,
                },
                attempts: 0,
            })),
            held: watch::Sender::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; keep the data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on the store answers as `behaviour` says.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    /// From now on records for `topic` get `behaviour`, whatever the others get.
    pub fn set_topic_behaviour(&self, topic: &str, behaviour: Behaviour) {
        let mut state = self.lock();
        state.on_topic.retain(|(t, _)| t != topic);
        state.on_topic.push((topic.to_string(), behaviour));
    }

    /// What readiness will be told.
    pub fn set_health(&self, health: Health) {
        self.lock().health = health;
    }

    /// Records wait in `store` until [`MemoryStore::release`].
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Lets held and later records through.
    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// The records kept so far, in the order they were stored.
    pub fn kept(&self) -> Vec<Kept> {
        self.lock().kept.clone()
    }

    /// The records kept on `topic`.
    pub fn on_topic(&self, topic: &str) -> Vec<Kept> {
        self.lock()
            .kept
            .iter()
            .filter(|k| k.topic == topic)
            .cloned()
            .collect()
    }

    /// Calls to `store` so far (kept or failed; duplicates answered by the cache never call).
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// Requests waiting in `store` while held.
    pub fn waiting(&self) -> usize {
        self.held.receiver_count()
    }

    async fn store_record(&self, record: &Record<'_>) -> Result<Stored, DeliveryError> {
        let mut held = self.held.subscribe();
        // Ends when released, or never while the store (the sender) lives and holds.
        let _ = held.wait_for(|held| !held).await;
        drop(held);
        let mut state = self.lock();
        state.attempts += 1;
        let behaviour = state
            .on_topic
            .iter()
            .find(|(topic, _)| topic == record.topic)
            .map_or(state.behaviour, |(_, behaviour)| *behaviour);
        let stored = match behaviour {
            Behaviour::Ack => Stored::Acked(Delivered {
                partition: 0,
                offset: state.kept.len() as i64,
            }),
            Behaviour::Spool => Stored::Spooled,
            Behaviour::Timeout => {
                return Err(ProduceError::Timeout(Duration::from_secs(30)).into());
            }
            Behaviour::QueueFull => return Err(ProduceError::QueueFull.into()),
            Behaviour::TooLarge => {
                return Err(ProduceError::message_size_too_large().into());
            }
            Behaviour::SpoolFull => return Err(SpoolError::Full(1 << 30).into()),
        };
        state.kept.push(Kept {
            topic: record.topic.to_string(),
            key: record.key.map(str::to_string),
            partition_key: record.partition_key.map(str::to_string),
            value: record.value.to_vec(),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stored,
        });
        Ok(stored)
    }
}

impl Store for MemoryStore {
    fn store<'a>(&'a self, record: &'a Record<'a>) -> BoxFuture<'a, Result<Stored, DeliveryError>> {
        self.store_record(record).boxed()
    }

    fn health(&self, _timeout: Duration) -> BoxFuture<'_, Health> {
        let health = self.lock().health;
        async move { health }.boxed()
    }

    fn flush(&self, _timeout: Duration) -> BoxFuture<'_, Result<(), DeliveryError>> {
        async { Ok(()) }.boxed()
    }
}
