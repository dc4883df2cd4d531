//! Partitioning by entity: the partition Apache Kafka's Java producer picks for a key
//! (`toPositive(murmur2(bytes)) % partitions`, `BuiltInPartitioner.partitionForKey`), computed
//! from a record's partition key (its schema's `riskos.partition_by` value) instead of its
//! Kafka key, and the partition counts it needs, read from the cluster's metadata.
//!
//! Same function, same bytes (the value's UTF-8), same count: same partition as a Java
//! service keyed by that value, so topics partitioned by one entity with one partition count
//! are co-partitioned.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;

/// `org.apache.kafka.common.utils.Utils.murmur2`: 32-bit MurmurHash2, seed `0x9747b28c`,
/// the 4-byte blocks read little-endian, the result as Java's signed `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes(block.try_into().expect("4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        // Java's switch falls through: byte 2, then 1, then 0, then one multiply.
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// `Utils.toPositive`: the sign bit cleared (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's Java producer picks for `key` among `partitions` (> 0).
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    to_positive(murmur2(key)) % partitions
}

/// Partition counts of the topics records are partitioned on, from the cluster's metadata.
/// A topic it does not know (metadata not read yet, or the topic missing) gets no explicit
/// partition: librdkafka then partitions by the Kafka key, as without a partition key.
#[derive(Debug, Default)]
pub struct PartitionCounts {
    counts: RwLock<HashMap<String, i32>>,
}

impl PartitionCounts {
    /// Knows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The partition for a record of `topic` with `partition_key`; `None` when there is no
    /// key or the topic's count is unknown.
    pub fn partition(&self, topic: &str, partition_key: Option<&str>) -> Option<i32> {
        let key = partition_key?;
        let count = *self.lock_read().get(topic)?;
        Some(partition_for(key.as_bytes(), count))
    }

    /// True when `topic`'s count is known.
    pub fn knows(&self, topic: &str) -> bool {
        self.lock_read().contains_key(topic)
    }

    /// Sets a topic's count (tests, or a count read elsewhere).
    pub fn set(&self, topic: &str, partitions: i32) {
        if partitions > 0 {
            self.lock_write().insert(topic.to_string(), partitions);
        }
    }

    /// Reads the counts of `topics` from the cluster's metadata (all topics at once, so a
    /// missing one is not auto-created by the request); returns how many are known. Blocking.
    pub fn fetch<C: ClientContext>(
        &self,
        client: &Client<C>,
        topics: &[String],
        timeout: Duration,
    ) -> Result<usize, KafkaError> {
        let metadata = client.fetch_metadata(None, timeout)?;
        let mut counts = self.lock_write();
        for topic in metadata.topics() {
            // A topic without a leader yet may carry an error but still lists its partitions.
            if !topic.partitions().is_empty() && topics.iter().any(|t| t == topic.name()) {
                counts.insert(topic.name().to_string(), topic.partitions().len() as i32);
            }
        }
        Ok(topics.iter().filter(|t| counts.contains_key(*t)).count())
    }

    fn lock_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, i32>> {
        self.counts.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, i32>> {
        self.counts.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Apache Kafka's own `UtilsTest.testMurmur2`, checked again against
    /// kafka-clients 4.4.0 (`Utils.murmur2`) by `tests/kafka/partitioning.rs`.
    #[test]
    fn murmur2_matches_kafkas_java_values() {
        for (input, expected) in [
            (&b"21"[..], -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ] {
            assert_eq!(
                murmur2(input),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn the_partition_is_positive_and_below_the_count() {
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        for i in 0..1000 {
            let p = partition_for(format!("case-{i}").as_bytes(), 6);
            assert!((0..6).contains(&p));
        }
        // -973932308 & 0x7fffffff = 1173551340; % 6 = 0.
        assert_eq!(partition_for(b"21", 6), 1173551340 % 6);
    }

    #[test]
    fn an_unknown_topic_or_a_missing_key_gets_no_partition() {
        let counts = PartitionCounts::new();
        assert_eq!(counts.partition("t", Some("21")), None);
        counts.set("t", 6);
        assert_eq!(counts.partition("t", None), None);
        assert_eq!(counts.partition("t", Some("21")), Some(1173551340 % 6));
        assert!(counts.knows("t") && !counts.knows("u"));
    }
}
