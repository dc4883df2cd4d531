//! A vendor-like load generator: distinct events, a fixed concurrency, and the vendor's retry
//! policy (retry on 408/409/423/429/502/503/504 and on connection errors, with backoff, a
//! bounded number of times). It records which event ids were answered 2xx, and how many of
//! those 2xx said the record was spooled rather than acked by Kafka.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

/// Statuses the vendor retries.
const RETRIED: [u16; 7] = [408, 409, 423, 429, 502, 503, 504];

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Distinct events sent.
    pub sent: u64,
    /// Event ids answered 2xx (after retries).
    pub accepted: Vec<String>,
    /// How many of those 2xx said `"spooled": true` (fsync'd locally, not yet in Kafka).
    pub spooled: u64,
    /// Events that never got a 2xx within the retry budget.
    pub gave_up: Vec<String>,
    /// Responses that were retried (503 and friends, connection errors).
    pub retried: u64,
    /// Retried responses by status (0 = connection error).
    pub retried_by_status: std::collections::BTreeMap<u16, u64>,
}

/// A running load; stop it with [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    /// 2xx answered with Kafka's ack (not from the spool).
    acked: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    report: Arc<Mutex<LoadReport>>,
}

/// One evaluation_completed body with a distinct id.
pub fn event(run: &str, i: u64) -> String {
    json!({
        "event_id": format!("{run}-{i:06}"),
        "event_at": "2025-11-02T09:16:00Z",
        "event_type": "evaluation_completed",
        "data": {"eval_id": format!("ev-{i}"), "decision": "ACCEPT"}
    })
    .to_string()
}

impl Load {
    /// Starts `concurrency` workers posting distinct events to `url` as fast as they are
    /// answered, until stopped.
    pub fn start(url: String, run: &str, concurrency: usize) -> Self {
        Self::start_paced(url, run, concurrency, Duration::ZERO)
    }

    /// Like [`Load::start`], each worker pausing `pause` after an event before its next one:
    /// a vendor's event rate (at most `concurrency / pause`), not synchronization.
    pub fn start_paced(url: String, run: &str, concurrency: usize, pause: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let report = Arc::new(Mutex::new(LoadReport::default()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let tasks = (0..concurrency)
            .map(|_| {
                let (stop, accepted, acked, next, report, client, url) = (
                    stop.clone(),
                    accepted.clone(),
                    acked.clone(),
                    next.clone(),
                    report.clone(),
                    client.clone(),
                    url.clone(),
                );
                let run = run.to_string();
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let id = format!("{run}-{i:06}");
                        let body = event(&run, i);
                        report.lock().unwrap().sent += 1;
                        let mut backoff = Duration::from_millis(50);
                        let mut ok = None;
                        for _attempt in 0..60 {
                            let response = client
                                .post(&url)
                                .header("content-type", "application/json")
                                .body(body.clone())
                                .send()
                                .await;
                            match response {
                                Ok(r) if r.status().is_success() => {
                                    // The 200 body says `"spooled": true` when the record
                                    // waits on the local spool; a 2xx whose body is cut off
                                    // still counts as accepted (not spooled, as far as known).
                                    let reply: Option<serde_json::Value> = r.json().await.ok();
                                    ok = Some(reply.is_some_and(|v| v["spooled"] == true));
                                    break;
                                }
                                Ok(r) if !RETRIED.contains(&r.status().as_u16()) => {
                                    panic!(
                                        "{id}: status {} is not retried by the vendor",
                                        r.status()
                                    )
                                }
                                Ok(r) => retry(&report, r.status().as_u16()),
                                Err(_) => retry(&report, 0),
                            }
                            // The vendor's backoff (scaled down): not synchronization.
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_millis(800));
                        }
                        {
                            let mut report = report.lock().unwrap();
                            match ok {
                                Some(spooled) => {
                                    report.accepted.push(id);
                                    report.spooled += u64::from(spooled);
                                    if !spooled {
                                        acked.fetch_add(1, Ordering::SeqCst);
                                    }
                                    accepted.fetch_add(1, Ordering::SeqCst);
                                }
                                None => report.gave_up.push(id),
                            }
                        }
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            accepted,
            acked,
            tasks,
            report,
        }
    }

    /// Resolves once `n` more events than now were accepted (2xx, acked or spooled),
    /// polling with a deadline.
    pub async fn until_accepted(&self, n: u64) {
        until_counted(&self.accepted, n, "accepted").await;
    }

    /// Resolves once `n` more events than now were answered 2xx with Kafka's ack (not from
    /// the spool): Kafka takes writes again, and with a spool, what was spooled has drained
    /// (new records queue behind the spool while it holds any).
    pub async fn until_acked(&self, n: u64) {
        until_counted(&self.acked, n, "acked by kafka").await;
    }

    /// Events answered 2xx with Kafka's ack (not from the spool) so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Resolves once the load saw `n` retried responses (an outage is visible), polling.
    pub async fn until_retried(&self, n: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.report.lock().unwrap().retried < n {
            assert!(std::time::Instant::now() < deadline, "no retries seen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the workers (each finishes its current event) and returns the report.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("load worker");
        }
        std::mem::take(&mut *self.report.lock().unwrap())
    }
}

/// Counts a retried response (`status` 0: a connection error).
fn retry(report: &Mutex<LoadReport>, status: u16) {
    let mut report = report.lock().unwrap();
    report.retried += 1;
    *report.retried_by_status.entry(status).or_default() += 1;
}

/// Waits until `counter` grew by `n`, with a deadline long enough for a cluster restart.
async fn until_counted(counter: &AtomicU64, n: u64, what: &str) {
    let target = counter.load(Ordering::SeqCst) + n;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while counter.load(Ordering::SeqCst) < target {
        assert!(
            std::time::Instant::now() < deadline,
            "load stalled: {} {what}, waiting for {target}",
            counter.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The loss check every fault test ends with: each 2xx'd event is in `topic`, none was given up
/// on. Prints the counts under `label` (CI shows them), duplicates included: records beyond the
/// first with the same key. They are reported, not asserted: a record that Kafka took after its
/// request had been answered 503 (the ack came too late, or was never seen) is produced again
/// when the vendor retries, which is at-least-once as designed; compaction keeps one (it never
/// touches the active segment, so a test sees every copy).
pub async fn assert_nothing_lost(label: &str, bootstrap: &str, topic: &str, report: &LoadReport) {
    let found = wait_for_ids(bootstrap, topic, &report.accepted).await;
    let lost: Vec<_> = report
        .accepted
        .iter()
        .filter(|id| !found.contains_key(*id))
        .collect();
    let mut duplicated: Vec<(&String, &usize)> = found.iter().filter(|(_, n)| **n > 1).collect();
    duplicated.sort();
    let duplicates: usize = duplicated.iter().map(|(_, n)| **n - 1).sum();
    println!(
        "{label}: sent {}, 2xx {} ({} spooled), retried {} {:?}, found in kafka {}, lost {}, \
         duplicates {duplicates}",
        report.sent,
        report.accepted.len(),
        report.spooled,
        report.retried,
        report.retried_by_status,
        found.len(),
        lost.len(),
    );
    if !duplicated.is_empty() {
        println!("{label}: in kafka more than once (id, copies): {duplicated:?}");
    }
    assert!(report.gave_up.is_empty(), "gave up on {:?}", report.gave_up);
    assert!(lost.is_empty(), "lost {lost:?}");
}

/// Polls the topic until every id in `expected` is present (or the deadline passes); returns
/// how many records each key found has.
pub async fn wait_for_ids(
    bootstrap: &str,
    topic: &str,
    expected: &[String],
) -> std::collections::HashMap<String, usize> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let bootstrap = bootstrap.to_string();
        let topic_name = topic.to_string();
        let found = tokio::task::spawn_blocking(move || {
            let mut keys = std::collections::HashMap::<String, usize>::new();
            let records = crate::kafka::try_read_all(&bootstrap, &topic_name).unwrap_or_default();
            for key in records.into_iter().filter_map(|r| r.key) {
                *keys.entry(key).or_default() += 1;
            }
            keys
        })
        .await
        .unwrap();
        if expected.iter().all(|id| found.contains_key(id)) || std::time::Instant::now() > deadline
        {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
