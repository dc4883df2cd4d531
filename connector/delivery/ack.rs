//! What a store answers for a record: where Kafka put it ([`Delivered`]) or why it did not ack
//! ([`ProduceError`]). Here rather than beside the producer so that the pipeline, the HTTP
//! error mapping and the in-memory store name them without the Kafka client (the library builds
//! without it for the fuzz targets and the instruction budget: feature `kafka`).

use std::time::Duration;

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// Why a record was not acked. The refusals carry librdkafka's error as text: only its
/// message is ever used (logs, the reply's detail), the class is the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    /// librdkafka's local queue is full: shed load.
    #[error("producer queue is full")]
    QueueFull,
    /// No ack within the deadline (broker down, slow, or under-replicated).
    #[error("kafka did not ack within {0:?}")]
    Timeout(Duration),
    /// The record is larger than the broker or topic accepts.
    #[error("record is too large for kafka: {0}")]
    TooLarge(String),
    /// The broker refused the record or the producer failed.
    #[error("kafka refused the record: {0}")]
    Kafka(String),
}

impl ProduceError {
    /// A refusal as too large, worded as librdkafka reports a broker's MESSAGE_TOO_LARGE (the
    /// in-memory store and tests stand in for the broker with it).
    pub fn message_size_too_large() -> Self {
        ProduceError::TooLarge(
            "Message production error: MessageSizeTooLarge (Broker: Message size too large)"
                .to_string(),
        )
    }
}
