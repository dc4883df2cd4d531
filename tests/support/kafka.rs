//! Reading topics back: partitions assigned explicitly (no consumer group to wait for) and read
//! up to the end offsets captured at the start.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// One record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// A header's value.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "riskos-connector-tests")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer")
}

/// Every record currently in `topic` (all partitions), in partition then offset order.
pub fn read_all(bootstrap: &str, topic: &str) -> Vec<Record> {
    try_read_all(bootstrap, topic).unwrap_or_else(|e| panic!("reading {topic}: {e}"))
}

/// Like [`read_all`], returning broker errors instead of panicking.
pub fn try_read_all(
    bootstrap: &str,
    topic: &str,
) -> Result<Vec<Record>, rdkafka::error::KafkaError> {
    let consumer = consumer(bootstrap);
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    assert!(!partitions.is_empty(), "topic {topic} has no partitions");
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0i64;
    let mut highs = std::collections::HashMap::new();
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        if high > low {
            assignment
                .add_partition_offset(topic, p, Offset::Offset(low))
                .unwrap();
            remaining += high - low;
            highs.insert(p, high);
        }
    }
    let mut records = Vec::new();
    if remaining == 0 {
        return Ok(records);
    }
    consumer.assign(&assignment).expect("assign");
    // Done when every partition reached its end: offsets are not a count (compaction leaves
    // gaps; aborted transactions and their markers are skipped), so the consumer's
    // end-of-partition event says when.
    let mut at_end = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end.len() < highs.len() {
        assert!(
            Instant::now() < deadline,
            "read {} records from {topic} (offsets up to {highs:?}) before the deadline",
            records.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = match message {
            Ok(message) => message,
            Err(rdkafka::error::KafkaError::PartitionEOF(partition)) => {
                at_end.insert(partition);
                continue;
            }
            Err(error) => return Err(error),
        };
        if message.offset() >= highs[&message.partition()] {
            continue;
        }
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|header| {
                        (
                            header.key.to_string(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record {
            partition: message.partition(),
            offset: message.offset(),
            key: message
                .key()
                .map(|k| String::from_utf8(k.to_vec()).expect("utf-8 key")),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}
