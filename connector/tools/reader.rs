//! Reading topics by assigned partitions (no consumer group: nothing is committed, and brokers
//! whose group coordination is weak still work).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use crate::delivery::kafka::{self, KafkaContext};
use crate::wiring::config::Config;

/// Where to start reading.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start {
    /// The oldest record.
    Beginning,
    /// Only records produced from now on.
    End,
    /// The first record at or after this time (epoch ms).
    Time(i64),
}

/// A consumer assigned to every partition of some topics.
pub(crate) struct TopicReader {
    consumer: BaseConsumer<KafkaContext>,
    /// `(topic, partition)` → (next offset to read, high watermark when the reader was created).
    progress: HashMap<(String, i32), (i64, i64)>,
}

/// The tools' consumer: no group commits; `partition_eof` asks for end-of-partition events.
pub(crate) fn tools_consumer(
    config: &Config,
    partition_eof: bool,
) -> anyhow::Result<BaseConsumer<KafkaContext>> {
    Ok(kafka::create(
        &config.kafka,
        &[
            ("group.id", "riskos-connector-tools".to_string()),
            ("enable.auto.commit", "false".to_string()),
            ("enable.partition.eof", partition_eof.to_string()),
        ],
    )?)
}

/// The partition ids of `topic`; an error when it does not exist.
pub(crate) fn partitions(
    consumer: &BaseConsumer<KafkaContext>,
    topic: &str,
) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(!partitions.is_empty(), "topic `{topic}` does not exist");
    Ok(partitions)
}

impl TopicReader {
    /// Assigns every partition of `topics` from `start`.
    pub(crate) fn new(config: &Config, topics: &[String], start: Start) -> anyhow::Result<Self> {
        let consumer = tools_consumer(config, false)?;
        let timeout = Duration::from_secs(10);
        let mut assignment = TopicPartitionList::new();
        let mut watermarks = HashMap::new();
        for topic in topics {
            for partition in partitions(&consumer, topic)? {
                let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
                let offset = match start {
                    Start::Beginning => Offset::Offset(low),
                    Start::End => Offset::Offset(high),
                    Start::Time(ms) => Offset::Offset(ms),
                };
                assignment.add_partition_offset(topic, partition, offset)?;
                watermarks.insert((topic.clone(), partition), (low, high));
            }
        }
        if let Start::Time(_) = start {
            assignment = consumer.offsets_for_times(assignment, timeout)?;
        }
        consumer.assign(&assignment)?;
        let progress = watermarks
            .into_iter()
            .map(|((topic, partition), (low, high))| {
                let next = match assignment
                    .find_partition(&topic, partition)
                    .map(|p| p.offset())
                {
                    Some(Offset::Offset(o)) => o.max(low),
                    // offsets_for_times found nothing at or after the time.
                    _ => high,
                };
                ((topic, partition), (next, high))
            })
            .collect();
        Ok(Self { consumer, progress })
    }

    /// The next record, or `None` after `wait` without one. Records past the creation-time end
    /// are returned too (for following); progress is tracked either way.
    pub(crate) fn poll(&mut self, wait: Duration) -> anyhow::Result<Option<OwnedMessage>> {
        let message = match self.consumer.poll(wait) {
            None => return Ok(None),
            Some(result) => result?.detach(),
        };
        if let Some((next, _)) = self
            .progress
            .get_mut(&(message.topic().to_string(), message.partition()))
        {
            *next = (*next).max(message.offset() + 1);
        }
        Ok(Some(message))
    }

    /// True once every partition was read up to the high watermark seen at creation.
    pub(crate) fn caught_up(&self) -> bool {
        self.progress.values().all(|(next, end)| next >= end)
    }

    /// Topics on the cluster whose names start with `prefix`.
    pub(crate) fn topics_with_prefix(config: &Config, prefix: &str) -> anyhow::Result<Vec<String>> {
        let consumer: BaseConsumer<KafkaContext> = kafka::create(&config.kafka, &[])?;
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
        let mut topics: Vec<String> = metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .filter(|name| name.starts_with(prefix))
            .collect();
        topics.sort();
        Ok(topics)
    }
}
