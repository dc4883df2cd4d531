//! Prometheus metrics: one process-wide recorder (the `metrics` facade), rendered at
//! `GET /metrics`. Every metric the service records is named here, so the list is the contract.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `riskos_requests_total` | counter | `endpoint`, `status`, `event_type` (a known type, `unrecognized`, or `none`) |
//! | `riskos_rejections_total` | counter | `endpoint`, `kind` (every non-2xx reason) |
//! | `riskos_auth_failures_total` | counter | `endpoint`, `reason` |
//! | `riskos_jwks_refresh_failures_total` | counter | `endpoint`, `reason` (`fetch`, `status`, `redirect`, `too_large`, `parse`, `no_keys`) |
//! | `riskos_in_flight_requests` | gauge | |
//! | `riskos_body_bytes_in_flight` | gauge | `endpoint` (read at each scrape) |
//! | `riskos_open_connections` | gauge | |
//! | `riskos_connections_refused_total` | counter | `reason` (`max_connections`, `ip_not_allowed`) |
//! | `riskos_ack_latency_seconds` | histogram | |
//! | `riskos_end_to_end_delay_seconds` | histogram | (event time → ack) |
//! | `riskos_records_produced_total` | counter | `topic` |
//! | `riskos_duplicates_total` | counter | |
//! | `riskos_quarantined_total` | counter | `endpoint`, `reason` |
//! | `riskos_spool_records`, `riskos_spool_bytes` | gauge | |
//! | `riskos_spool_dropped_total` | counter | |
//! | `riskos_producer_queue_messages`, `riskos_producer_queue_bytes` | gauge | (librdkafka statistics) |
//! | `riskos_broker_rtt_seconds` | gauge | `broker`, `quantile` (librdkafka statistics) |
//! | `riskos_schema_registry_up` | gauge | (1 when the registry answered its last check, 0 when not) |
//! | `process_cpu_seconds_total` | counter | (user + system CPU, whole seconds) |
//! | `process_resident_memory_bytes`, `process_virtual_memory_bytes` | gauge | |
//! | `process_open_fds`, `process_max_fds` | gauge | (open descriptors; the soft `RLIMIT_NOFILE`) |
//! | `process_start_time_seconds` | gauge | (Unix time) |
//! | `process_threads` | gauge | |
//!
//! The `process_*` metrics are the ones every Prometheus client library exports, from
//! `metrics-process` (`/proc/self` on Linux), read at each scrape ([`collect_process`]) as the
//! client libraries do.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests by status and event type.
pub(crate) const REQUESTS: &str = "riskos_requests_total";
/// Non-2xx answers by reason.
pub(crate) const REJECTIONS: &str = "riskos_rejections_total";
/// 401/403 by reason.
pub(crate) const AUTH_FAILURES: &str = "riskos_auth_failures_total";
/// JWKS refreshes that failed (the last good keys stay), by endpoint and reason.
pub(crate) const JWKS_REFRESH_FAILURES: &str = "riskos_jwks_refresh_failures_total";
/// Requests being handled.
pub(crate) const IN_FLIGHT: &str = "riskos_in_flight_requests";
/// Body bytes held by requests, by endpoint (its part of `http.max_body_bytes_in_flight`).
pub(crate) const BODY_BYTES_IN_FLIGHT: &str = "riskos_body_bytes_in_flight";
/// Connections open.
pub(crate) const CONNECTIONS_OPEN: &str = "riskos_open_connections";
/// Connections closed as soon as they were accepted, by reason.
pub(crate) const CONNECTIONS_REFUSED: &str = "riskos_connections_refused_total";
/// Produce → broker ack.
pub(crate) const ACK_LATENCY: &str = "riskos_ack_latency_seconds";
/// The event's own time → broker ack.
pub(crate) const END_TO_END: &str = "riskos_end_to_end_delay_seconds";
/// Records acked, by topic.
pub(crate) const PRODUCED: &str = "riskos_records_produced_total";
/// Duplicates answered from the cache.
pub(crate) const DUPLICATES: &str = "riskos_duplicates_total";
/// Quarantined bodies, by reason.
pub(crate) const QUARANTINED: &str = "riskos_quarantined_total";
/// Spooled records Kafka refused for good (too large) and that were dropped.
pub(crate) const SPOOL_DROPPED: &str = "riskos_spool_dropped_total";
/// Records waiting in the spool.
pub(crate) const SPOOL_RECORDS: &str = "riskos_spool_records";
/// Bytes of the spool on disk.
pub(crate) const SPOOL_BYTES: &str = "riskos_spool_bytes";
/// Messages in librdkafka's queue.
pub(crate) const PRODUCER_QUEUE_MESSAGES: &str = "riskos_producer_queue_messages";
/// Bytes in librdkafka's queue.
pub(crate) const PRODUCER_QUEUE_BYTES: &str = "riskos_producer_queue_bytes";
/// Broker round-trip time from librdkafka's statistics.
pub(crate) const BROKER_RTT: &str = "riskos_broker_rtt_seconds";

/// 1 when the schema registry answered its last background check, 0 when it did not.
pub(crate) const SCHEMA_REGISTRY_UP: &str = "riskos_schema_registry_up";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The `process_*` metrics' collector.
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// Reads the process metrics (CPU, memory, descriptors and their limit, start time) now:
/// `GET /metrics` calls it before rendering, so they are as fresh as the scrape. A few reads
/// of `/proc/self`, well under a millisecond.
pub(crate) fn collect_process() {
    if let Some(process) = PROCESS.get() {
        process.collect();
    }
}

/// Installs the recorder once per process and returns the handle that renders it.
pub(crate) fn install() -> PrometheusHandle {
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
            describe();
            let process = PROCESS.get_or_init(metrics_process::Collector::default);
            process.describe();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// Gives every metric its `# HELP` line, and creates the label-less counters at zero: a
/// counter that first appears at 1 has no earlier sample, so `increase()` in an alert rule
/// (e.g. `riskos_spool_dropped_total`) would miss the first event it exists to report.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        REQUESTS,
        "Requests answered, by endpoint, status and event type."
    );
    describe_counter!(REJECTIONS, "Non-2xx answers, by endpoint and kind.");
    describe_counter!(
        AUTH_FAILURES,
        "401 and 403 answers, by endpoint and reason."
    );
    describe_counter!(
        JWKS_REFRESH_FAILURES,
        "JWKS refreshes that failed or yielded no usable key (the last good keys stay in use), by endpoint and reason."
    );
    describe_gauge!(IN_FLIGHT, "Requests being handled.");
    describe_gauge!(
        BODY_BYTES_IN_FLIGHT,
        Unit::Bytes,
        "Body bytes held by requests being read or answered, by endpoint."
    );
    describe_gauge!(CONNECTIONS_OPEN, "Connections open.");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed as soon as they were accepted, by reason."
    );
    describe_histogram!(
        ACK_LATENCY,
        Unit::Seconds,
        "From the produce call to the broker's ack."
    );
    describe_histogram!(
        END_TO_END,
        Unit::Seconds,
        "From the event's own time to the broker's ack."
    );
    describe_counter!(PRODUCED, "Records acked by Kafka, by topic.");
    describe_counter!(DUPLICATES, "Retries answered from the duplicate cache.");
    describe_counter!(
        QUARANTINED,
        "Bodies kept in quarantine, by endpoint and reason."
    );
    describe_counter!(
        SPOOL_DROPPED,
        "Spooled records Kafka refused for good (too large), dropped."
    );
    describe_gauge!(SPOOL_RECORDS, "Records waiting in the spool.");
    describe_gauge!(SPOOL_BYTES, Unit::Bytes, "Bytes of the spool on disk.");
    describe_gauge!(PRODUCER_QUEUE_MESSAGES, "Messages in librdkafka's queue.");
    describe_gauge!(
        PRODUCER_QUEUE_BYTES,
        Unit::Bytes,
        "Bytes in librdkafka's queue."
    );
    describe_gauge!(
        BROKER_RTT,
        Unit::Seconds,
        "Broker round-trip time (librdkafka statistics), by broker and quantile."
    );
    describe_gauge!(
        SCHEMA_REGISTRY_UP,
        "1 when the schema registry answered its last check (every schema_registry.check_interval_secs), 0 when not; not part of readiness."
    );
    metrics::counter!(DUPLICATES).absolute(0);
    metrics::counter!(SPOOL_DROPPED).absolute(0);
}

/// How often histogram samples are folded into their buckets without a scrape.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Requests between two upkeeps on the request path.
const UPKEEP_EVERY_REQUESTS: u64 = 1024;

/// The recorder keeps every histogram sample until upkeep folds it into the buckets, which
/// only a scrape did: a pod nobody scraped grew by ~38 bytes a request. Upkeep now runs on its
/// own thread every [`UPKEEP_INTERVAL`] (a plain thread: it must not depend on a runtime that
/// may be busy or gone).
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep thread; relying on request-count upkeep");
    }
}

/// Counts a finished request and, every [`UPKEEP_EVERY_REQUESTS`], folds histogram samples
/// into their buckets on the spot: memory stays bounded by a count of requests, whatever the
/// request rate against the upkeep thread's interval.
pub(crate) fn request_finished() {
    static FINISHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = FINISHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n.is_multiple_of(UPKEEP_EVERY_REQUESTS) {
        if let Some(handle) = HANDLE.get() {
            handle.run_upkeep();
        }
    }
}

/// Counts one request that is being handled until the guard is dropped.
pub(crate) struct InFlightGuard;

impl InFlightGuard {
    /// Increments the in-flight gauge.
    pub(crate) fn enter() -> Self {
        metrics::gauge!(IN_FLIGHT).increment(1.0);
        Self
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        metrics::gauge!(IN_FLIGHT).decrement(1.0);
    }
}
