//! Prometheus metrics: one process-wide recorder (the `metrics` facade), rendered at
//! `GET /metrics`. Every metric the service records is named here, so the list is the contract.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `riskos_requests_total` | counter | `status`, `event_type` (a known type, `unrecognized`, or `none`) |
//! | `riskos_rejections_total` | counter | `kind` (every non-2xx reason) |
//! | `riskos_auth_failures_total` | counter | `reason` |
//! | `riskos_in_flight_requests` | gauge | |
//! | `riskos_ack_latency_seconds` | histogram | |
//! | `riskos_end_to_end_delay_seconds` | histogram | (event time → ack) |
//! | `riskos_records_produced_total` | counter | `topic` |
//! | `riskos_duplicates_total` | counter | |
//! | `riskos_quarantined_total` | counter | `reason` |
//! | `riskos_spool_records`, `riskos_spool_bytes` | gauge | |
//! | `riskos_spool_dropped_total` | counter | |
//! | `riskos_producer_queue_messages`, `riskos_producer_queue_bytes` | gauge | (librdkafka statistics) |
//! | `riskos_broker_rtt_seconds` | gauge | `broker`, `quantile` (librdkafka statistics) |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests by status and event type.
pub const REQUESTS: &str = "riskos_requests_total";
/// Non-2xx answers by reason.
pub const REJECTIONS: &str = "riskos_rejections_total";
/// 401/403 by reason.
pub const AUTH_FAILURES: &str = "riskos_auth_failures_total";
/// Requests being handled.
pub const IN_FLIGHT: &str = "riskos_in_flight_requests";
/// Produce → broker ack.
pub const ACK_LATENCY: &str = "riskos_ack_latency_seconds";
/// The event's own time → broker ack.
pub const END_TO_END: &str = "riskos_end_to_end_delay_seconds";
/// Records acked, by topic.
pub const PRODUCED: &str = "riskos_records_produced_total";
/// Duplicates answered from the cache.
pub const DUPLICATES: &str = "riskos_duplicates_total";
/// Quarantined bodies, by reason.
pub const QUARANTINED: &str = "riskos_quarantined_total";
/// Spooled records Kafka refused for good (too large) and that were dropped.
pub const SPOOL_DROPPED: &str = "riskos_spool_dropped_total";
/// Records waiting in the spool.
pub const SPOOL_RECORDS: &str = "riskos_spool_records";
/// Bytes of the spool on disk.
pub const SPOOL_BYTES: &str = "riskos_spool_bytes";
/// Messages in librdkafka's queue.
pub const PRODUCER_QUEUE_MESSAGES: &str = "riskos_producer_queue_messages";
/// Bytes in librdkafka's queue.
pub const PRODUCER_QUEUE_BYTES: &str = "riskos_producer_queue_bytes";
/// Broker round-trip time from librdkafka's statistics.
pub const BROKER_RTT: &str = "riskos_broker_rtt_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let delay_buckets = [
                0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(ACK_LATENCY.into()), &buckets)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(END_TO_END.into()), &delay_buckets)
                })
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder (a test harness) may already be global; rendering still works.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Counts one request that is being handled until the guard is dropped.
pub struct InFlightGuard;

impl InFlightGuard {
    /// Increments the in-flight gauge.
    pub fn enter() -> Self {
        metrics::gauge!(IN_FLIGHT).increment(1.0);
        Self
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        metrics::gauge!(IN_FLIGHT).decrement(1.0);
    }
}
