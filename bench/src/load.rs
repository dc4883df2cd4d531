//! The load engine: workers that each keep one request in flight, either back to back
//! (closed loop, fixed concurrency: maximum throughput) or on a fixed schedule (open loop,
//! fixed rate: latency). Every phase is bounded by a duration and a request count.
//!
//! Open-loop latency is taken from the scheduled send time whenever the generator is behind
//! schedule (all workers busy), so a server that stalls is charged for the requests that had
//! to wait (no coordinated omission); when a worker is early it sleeps and the latency starts at
//! the actual send, so the timer's millisecond granularity is not charged to the server.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use crate::fixtures::Bodies;

/// Longest a request may take before it counts as a timeout (the vendor gives up after ~10 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How load is offered in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Mode {
    /// `n` workers, each sending its next request as soon as the previous one is answered.
    Closed { concurrency: usize },
    /// Requests scheduled at a fixed rate, served by up to `connections` workers.
    Rate { per_second: f64, connections: usize },
}

impl Mode {
    /// Table label.
    pub fn label(&self) -> String {
        match self {
            Mode::Closed { concurrency } => format!("max, {concurrency} concurrent"),
            Mode::Rate { per_second, .. } => format!("{per_second:.0}/s fixed rate"),
        }
    }

    fn workers(&self) -> usize {
        match *self {
            Mode::Closed { concurrency } => concurrency,
            Mode::Rate { connections, .. } => connections,
        }
    }
}

/// One phase of load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    /// `warmup`, `max`, `half`, ...
    pub name: String,
    /// How load is offered.
    pub mode: Mode,
    /// How long requests are started.
    pub duration: Duration,
    /// At most this many requests.
    pub max_requests: u64,
}

/// What one request came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP status (or, for the Kafka ceiling, 200 on ack).
    Status(u16),
    /// Connection or producer error.
    Error,
}

/// A source of requests with its own connection or client.
pub trait Worker: Send + 'static {
    /// Sends request `seq` and waits for its answer.
    fn call(&mut self, seq: u64) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>>;
}

/// A phase's numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    /// Phase name.
    pub name: String,
    /// How load was offered.
    pub mode: Mode,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests answered with another status.
    pub non_2xx: u64,
    /// Of those, 503 (shed by admission: the burst target counts them).
    #[serde(default)]
    pub status_503: u64,
    /// Connection errors and timeouts.
    pub errors: u64,
    /// Seconds from the first request to the last answer.
    pub elapsed_s: f64,
    /// 2xx latency quantiles in milliseconds: p50, p99, p99.9, max.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Filled in by whoever measured the server: CPU seconds and peak RSS (KiB) of the server
    /// under test, CPU seconds of the broker.
    #[serde(default)]
    pub server_cpu_s: f64,
    #[serde(default)]
    pub server_peak_rss_kib: u64,
    #[serde(default)]
    pub broker_cpu_s: f64,
}

/// A line a server process under test prints on stdout (the Kafka ceiling's): what the
/// orchestrator reads to meter the phase.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Report {
    /// A phase is starting now.
    Start { phase: String },
    /// A phase ended.
    Result { result: PhaseResult },
}

impl PhaseResult {
    /// 2xx answers per second.
    pub fn ok_per_second(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.ok as f64 / self.elapsed_s
        } else {
            0.0
        }
    }
}

struct Tally {
    hist: Histogram<u64>,
    ok: u64,
    non_2xx: u64,
    status_503: u64,
    errors: u64,
}

/// Runs one phase over `workers` (one per concurrent request); `seq_base` offsets the request
/// numbers so ids never repeat within a server's run.
pub async fn run_phase<W: Worker>(phase: &Phase, workers: Vec<W>, seq_base: u64) -> PhaseResult {
    assert!(!workers.is_empty());
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + phase.duration;
    let mut tasks = Vec::with_capacity(workers.len());
    for mut worker in workers {
        let issued = issued.clone();
        let phase = phase.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally {
                hist: Histogram::new_with_bounds(1, 120_000_000, 3).unwrap(),
                ok: 0,
                non_2xx: 0,
                status_503: 0,
                errors: 0,
            };
            loop {
                let k = issued.fetch_add(1, Ordering::Relaxed);
                if k >= phase.max_requests {
                    break;
                }
                let begin = match phase.mode {
                    Mode::Closed { .. } => {
                        if Instant::now() >= deadline {
                            break;
                        }
                        Instant::now()
                    }
                    Mode::Rate { per_second, .. } => {
                        let intended = start + Duration::from_secs_f64(k as f64 / per_second);
                        if intended >= deadline {
                            break;
                        }
                        if intended > Instant::now() {
                            tokio::time::sleep_until(intended.into()).await;
                            Instant::now()
                        } else {
                            intended
                        }
                    }
                };
                let outcome = tokio::time::timeout(REQUEST_TIMEOUT, worker.call(seq_base + k))
                    .await
                    .unwrap_or(Outcome::Error);
                match outcome {
                    Outcome::Status(s) if (200..300).contains(&s) => {
                        tally.ok += 1;
                        let micros = begin.elapsed().as_micros() as u64;
                        tally.hist.saturating_record(micros.max(1));
                    }
                    Outcome::Status(s) => {
                        tally.non_2xx += 1;
                        tally.status_503 += u64::from(s == 503);
                    }
                    Outcome::Error => tally.errors += 1,
                }
            }
            tally
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
    let (mut ok, mut non_2xx, mut status_503, mut errors) = (0, 0, 0, 0);
    for task in tasks {
        let tally = task.await.expect("load worker panicked");
        hist.add(&tally.hist).unwrap();
        ok += tally.ok;
        non_2xx += tally.non_2xx;
        status_503 += tally.status_503;
        errors += tally.errors;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let q = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    PhaseResult {
        name: phase.name.clone(),
        mode: phase.mode,
        ok,
        non_2xx,
        status_503,
        errors,
        elapsed_s,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: hist.max() as f64 / 1000.0,
        server_cpu_s: 0.0,
        server_peak_rss_kib: 0,
        broker_cpu_s: 0.0,
    }
}

/// Raises this process's open-file limit (inherited by the servers it starts) to its hard
/// limit, so a phase can hold `connections` sockets besides the process's other files; fails
/// early, before any broker starts, when the hard limit is too low. Returns the new limit.
pub fn raise_fd_limit(connections: usize) -> anyhow::Result<u64> {
    // The servers' own files (librdkafka, logs, the listener) and a reconnecting worker's
    // second socket: generous, as a shortfall shows only as connection errors mid-phase.
    let needed = 2 * connections as u64 + 256;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        anyhow::bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            anyhow::bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    if limit.rlim_cur < needed {
        anyhow::bail!(
            "{connections} connections need about {needed} open files but the hard limit is {} \
             (raise it, e.g. `ulimit -Hn`, or lower the concurrency)",
            limit.rlim_cur
        );
    }
    Ok(limit.rlim_cur)
}

/// As many workers as the phase needs.
pub fn workers_for<W>(phase: &Phase, make: impl Fn(usize) -> W) -> Vec<W> {
    (0..phase.mode.workers()).map(make).collect()
}

/// A keep-alive HTTP/1.1 connection POSTing the fixture mix with a bearer token; reconnects
/// when the server closes the connection (gunicorn's sync workers close after every reply).
pub struct HttpWorker {
    addr: SocketAddr,
    path: String,
    host: HeaderValue,
    authorization: HeaderValue,
    bodies: Arc<Bodies>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpWorker {
    /// A worker for `http://<addr><path>`.
    pub fn new(addr: SocketAddr, path: &str, token: &str, bodies: Arc<Bodies>) -> Self {
        Self {
            addr,
            path: path.to_string(),
            host: HeaderValue::from_str(&addr.to_string()).unwrap(),
            authorization: HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            bodies,
            sender: None,
        }
    }

    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ()> {
        if let Some(sender) = &mut self.sender {
            if sender.ready().await.is_ok() {
                return Ok(self.sender.as_mut().unwrap());
            }
            self.sender = None;
        }
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|_| ())?;
        stream.set_nodelay(true).map_err(|_| ())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        sender.ready().await.map_err(|_| ())?;
        Ok(self.sender.insert(sender))
    }

    async fn post(&mut self, seq: u64) -> Outcome {
        let body = self.bodies.body(seq);
        let request = Request::post(self.path.as_str())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(AUTHORIZATION, self.authorization.clone())
            .body(Full::new(body))
            .unwrap();
        let Ok(sender) = self.ready().await else {
            return Outcome::Error;
        };
        match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.into_body().collect().await {
                    Ok(_) => Outcome::Status(status),
                    Err(_) => {
                        self.sender = None;
                        Outcome::Error
                    }
                }
            }
            Err(_) => {
                self.sender = None;
                Outcome::Error
            }
        }
    }
}

impl Worker for HttpWorker {
    fn call(&mut self, seq: u64) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>> {
        Box::pin(self.post(seq))
    }
}

/// GET `path` once; the status, if the server answered.
pub async fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::get(path)
        .header(HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(2), sender.send_request(request))
        .await
        .ok()?
        .ok()?;
    Some(response.status().as_u16())
}
