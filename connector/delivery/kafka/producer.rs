//! The one shared producer. A send resolves only when the broker has acked (acks=all,
//! idempotent) or the ack deadline has passed; a full local queue fails at once, so overload is
//! answered with backpressure instead of a pile-up.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use super::{KafkaConfig, KafkaContext};
use crate::delivery::ack::{Delivered, ProduceError};

/// The connector's producer.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer<KafkaContext>,
    context: KafkaContext,
    ack_timeout: Duration,
}

impl Producer {
    /// Creates the producer. librdkafka's own message timeout is the ack deadline, so a record
    /// answered 503 is not retried by the producer behind the vendor's back for long.
    /// `message_max_bytes` is the largest record it must take (see [`crate::delivery::record_size`]);
    /// a passthrough `message.max.bytes` overrides it (config validation refuses a smaller one).
    pub fn new(
        kafka: &KafkaConfig,
        ack_timeout: Duration,
        message_max_bytes: usize,
    ) -> Result<Self, KafkaError> {
        let defaults = [
            ("enable.idempotence", "true".to_string()),
            ("acks", "all".to_string()),
            ("compression.type", "lz4".to_string()),
            ("linger.ms", "5".to_string()),
            ("message.timeout.ms", ack_timeout.as_millis().to_string()),
            ("queue.buffering.max.messages", "100000".to_string()),
            // Reconnect within a second after an outage instead of librdkafka's 10 s ceiling:
            // every second of reconnect delay is a second of 503s (or spooling).
            ("reconnect.backoff.max.ms", "1000".to_string()),
            ("statistics.interval.ms", "5000".to_string()),
            ("message.max.bytes", message_max_bytes.to_string()),
        ];
        // A clone shares the refusal the client records, for `probe`.
        let context = super::context(kafka, true);
        let inner: FutureProducer<KafkaContext> = super::client_config(kafka, &defaults)?
            .create_with_context(context.clone())
            .map_err(super::without_secret)?;
        Ok(Self {
            inner,
            context,
            ack_timeout,
        })
    }

    /// Sends one record and waits for the broker's ack. With a `partition` it goes there;
    /// without, librdkafka partitions by the key.
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&str>,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Delivered, ProduceError> {
        let headers = headers.iter().fold(
            OwnedHeaders::new_with_capacity(headers.len()),
            |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                })
            },
        );
        let mut record = FutureRecord::to(topic).payload(payload).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        let delivery = self.inner.send_result(record).map_err(|(e, _)| match e {
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => ProduceError::QueueFull,
            other => classify(other, self.ack_timeout),
        })?;
        // librdkafka times the record out itself at `message.timeout.ms`; the outer deadline
        // only guards against a lost callback.
        let outer = self.ack_timeout + Duration::from_millis(500);
        match tokio::time::timeout(outer, delivery).await {
            Ok(Ok(Ok(d))) => Ok(Delivered {
                partition: d.partition,
                offset: d.offset,
            }),
            Ok(Ok(Err((e, _)))) => Err(classify(e, self.ack_timeout)),
            Ok(Err(_canceled)) => Err(ProduceError::Timeout(self.ack_timeout)),
            Err(_elapsed) => Err(ProduceError::Timeout(self.ack_timeout)),
        }
    }

    /// Waits up to `timeout` for queued records to be acked (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout)
    }

    /// Waits until the cluster answers, refuses (TLS, authentication) or `timeout` passes:
    /// see [`super::probe`].
    pub async fn probe(
        &self,
        kafka: &KafkaConfig,
        timeout: Duration,
    ) -> Result<super::probe::ClusterInfo, super::probe::ConnectError> {
        let (producer, context, kafka) = (self.inner.clone(), self.context.clone(), kafka.clone());
        tokio::task::spawn_blocking(move || {
            super::probe::probe(producer.client(), &context, &kafka, timeout)
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
    }

    /// The underlying client, for metadata queries (readiness).
    pub fn client(&self) -> &FutureProducer<KafkaContext> {
        &self.inner
    }
}

/// The error's class; `ack_timeout` is the deadline a local message timeout reports (librdkafka
/// retries what the broker refuses, e.g. NOT_ENOUGH_REPLICAS, until `message.timeout.ms` —
/// set from the ack timeout — and then reports only that it timed out).
fn classify(error: KafkaError, ack_timeout: Duration) -> ProduceError {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageTimedOut) => ProduceError::Timeout(ack_timeout),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
            ProduceError::TooLarge(error.to_string())
        }
        Some(RDKafkaErrorCode::QueueFull) => ProduceError::QueueFull,
        _ => ProduceError::Kafka(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_message_timeout_reports_the_ack_deadline() {
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let error = classify(timed_out, Duration::from_secs(2));
        assert!(matches!(error, ProduceError::Timeout(d) if d == Duration::from_secs(2)));
        assert_eq!(error.to_string(), "kafka did not ack within 2s");
    }

    /// The in-memory store's and the tests' "too large" is worded as this producer reports a
    /// broker's MESSAGE_TOO_LARGE.
    #[test]
    fn a_message_too_large_reads_as_the_stand_in_for_it() {
        let refused = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(
            classify(refused, Duration::from_secs(2)),
            ProduceError::message_size_too_large()
        );
    }
}
