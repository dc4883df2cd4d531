//! A vendor-like load generator: distinct events, a fixed concurrency, and the vendor's retry
//! policy (retry on 408/409/423/429/502/503/504 and on connection errors, with backoff, a
//! bounded number of times). It records which event ids were answered 2xx.

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
    /// Starts `concurrency` workers posting distinct events to `url` until stopped.
    pub fn start(url: String, run: &str, concurrency: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let report = Arc::new(Mutex::new(LoadReport::default()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let tasks = (0..concurrency)
            .map(|_| {
                let (stop, accepted, next, report, client, url) = (
                    stop.clone(),
                    accepted.clone(),
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
                        let mut ok = false;
                        for _attempt in 0..60 {
                            let response = client
                                .post(&url)
                                .header("content-type", "application/json")
                                .body(body.clone())
                                .send()
                                .await;
                            match &response {
                                Ok(r) if r.status().is_success() => {
                                    ok = true;
                                    break;
                                }
                                Ok(r) if !RETRIED.contains(&r.status().as_u16()) => {
                                    panic!(
                                        "{id}: status {} is not retried by the vendor",
                                        r.status()
                                    )
                                }
                                _ => {}
                            }
                            let status = response.as_ref().map_or(0, |r| r.status().as_u16());
                            {
                                let mut shared = report.lock().unwrap();
                                shared.retried += 1;
                                *shared.retried_by_status.entry(status).or_default() += 1;
                            }
                            // The vendor's backoff (scaled down): not synchronization.
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_millis(800));
                        }
                        let mut report = report.lock().unwrap();
                        if ok {
                            report.accepted.push(id);
                            accepted.fetch_add(1, Ordering::SeqCst);
                        } else {
                            report.gave_up.push(id);
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            accepted,
            tasks,
            report,
        }
    }

    /// Events answered 2xx so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Resolves once `n` more events than `from` were accepted, polling (with a deadline).
    pub async fn until_accepted(&self, n: u64) {
        let target = self.accepted() + n;
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while self.accepted() < target {
            assert!(
                std::time::Instant::now() < deadline,
                "load stalled at {}",
                self.accepted()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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

/// The loss check every fault test ends with: each 2xx'd event is in `topic`, none was given up
/// on. Prints the counts under `label` (CI shows them).
pub async fn assert_nothing_lost(label: &str, bootstrap: &str, topic: &str, report: &LoadReport) {
    let found = wait_for_ids(bootstrap, topic, &report.accepted).await;
    let lost: Vec<_> = report
        .accepted
        .iter()
        .filter(|id| !found.contains(*id))
        .collect();
    println!(
        "{label}: sent {}, 2xx {}, retried {} {:?}, found in kafka {}, lost {}",
        report.sent,
        report.accepted.len(),
        report.retried,
        report.retried_by_status,
        found.len(),
        lost.len()
    );
    assert!(report.gave_up.is_empty(), "gave up on {:?}", report.gave_up);
    assert!(lost.is_empty(), "lost {lost:?}");
}

/// Polls the topic until every id in `expected` is present (or the deadline passes); returns
/// the ids found.
pub async fn wait_for_ids(
    bootstrap: &str,
    topic: &str,
    expected: &[String],
) -> std::collections::HashSet<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let bootstrap = bootstrap.to_string();
        let topic_name = topic.to_string();
        let found: std::collections::HashSet<String> = tokio::task::spawn_blocking(move || {
            super::kafka::try_read_all(&bootstrap, &topic_name)
                .map(|records| records.into_iter().filter_map(|r| r.key).collect())
                .unwrap_or_default()
        })
        .await
        .unwrap();
        if expected.iter().all(|id| found.contains(id)) || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
