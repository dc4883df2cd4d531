//! The listener under attack (issue 11), in `tests/isolated`: these tests hold thousands of
//! sockets and read process-wide gauges, so they run one at a time and away from the other
//! integration tests. Each starts the real service in-process (listener, connection
//! limits, deadlines, TLS) over an in-memory store: no broker, nothing here needs Kafka.
//!
//! - slow-header and idle connections are closed at their deadlines, and a valid webhook is
//!   answered meanwhile;
//! - over `http.max_connections` a connection is closed at once;
//! - an address outside `http.allow_cidrs` gets its 403 before sending a byte;
//! - in `hmac` mode, unsigned uploads trickling in cannot take the slots signed webhooks need,
//!   nor forged uploads from one address the body bytes;
//! - an early rejection says `Connection: close` and is read by a client still uploading.

use std::time::{Duration, Instant};

use riskos_connector::wiring::config::Config;
use support::auth_modes::{hmac, hmac_headers, unix_now, HMAC_SECRET};
use support::fixtures;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The real service on a free loopback port, over a [`MemoryStore`](riskos_connector::delivery::MemoryStore).
type App = support::Served;

/// A whole request head for the webhook path, with `content-length`, and nothing after it.
fn head(path: &str, content_length: usize, extra: &[(&str, String)]) -> String {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n"
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Reads until the peer closes (or resets) the connection; returns what was read.
async fn read_until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// The answer has `status` and says `Connection: close`.
fn assert_rejected_and_closed(response: reqwest::Response, status: u16) {
    assert_eq!(response.status().as_u16(), status);
    let connection = response.headers().get("connection");
    assert_eq!(connection.map(|v| v.to_str().unwrap()), Some("close"));
}

/// The value of a gauge or counter line in the Prometheus text at `/metrics`.
async fn metric(app: &App, line_prefix: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `/metrics` until `line_prefix` reaches `at_least`, for at most 10 s.
async fn wait_for_metric(app: &App, line_prefix: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = metric(app, line_prefix).await;
        if value >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{line_prefix} stayed at {value}, expected {at_least}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn case_closure() -> Vec<u8> {
    fixtures::all()
        .into_iter()
        .find(|(n, _)| n == "riskos.case_closure.match.json")
        .unwrap()
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_at_their_deadlines_while_webhooks_get_through() {
    // One test at a time: they measure process-wide gauges and hold thousands of sockets.
    let _alone = crate::ALONE.lock().await;
    const SLOW: usize = 2000;
    const IDLE: usize = 1200;
    let header_read = Duration::from_secs(3);
    let idle = Duration::from_secs(5);
    let app = App::start_with(|c: &mut Config| {
        c.http.header_read_timeout_ms = header_read.as_millis() as u64;
        c.http.idle_timeout_ms = idle.as_millis() as u64;
        c.http.max_connections = SLOW + IDLE + 100;
    })
    .await;
    let addr = app.addr;

    // Idle keep-alive connections: one complete request each, then silence.
    let mut idle_conns = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "healthz answered");
        idle_conns.push(stream);
    }
    let idle_since = Instant::now();

    // Slow-header connections: a partial head, then one byte a second.
    let slow_started = Instant::now();
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /webhooks/riskos HTTP/1.1\r\nhost: t")
            .await
            .unwrap();
        slow.push(tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return Instant::now(),
                        Ok(_) => {}
                    },
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        if stream.write_all(b"x").await.is_err() {
                            return Instant::now();
                        }
                    }
                }
            }
        }));
    }
    let open = metric(&app, "riskos_open_connections ").await;
    assert!(
        open >= (SLOW + IDLE) as f64,
        "all {} connections are held open at once ({open})",
        SLOW + IDLE
    );

    // A valid webhook is answered while they are all open.
    let answered = tokio::time::timeout(Duration::from_secs(2), app.post_webhook(case_closure()))
        .await
        .expect("a valid webhook is answered within 2 s");
    assert_eq!(answered.status(), 200);

    // Every slow connection is closed at the header deadline: not before, not long after.
    for task in slow {
        let closed_at = tokio::time::timeout(header_read * 4, task)
            .await
            .expect("slow-header connection closed")
            .unwrap();
        let after = closed_at - slow_started;
        assert!(after < header_read * 3, "closed after {after:?}");
    }
    // Idle ones at the idle deadline, which is longer than the header deadline.
    for mut stream in idle_conns {
        let read = tokio::time::timeout(idle * 3, read_until_closed(&mut stream))
            .await
            .expect("idle connection closed");
        assert!(read.is_empty());
    }
    let idle_for = idle_since.elapsed();
    assert!(
        idle_for >= idle - Duration::from_millis(500),
        "idle connections were kept for the idle timeout, not the header one ({idle_for:?})"
    );
    assert_eq!(
        app.store
            .on_topic("riskos.case_management_notification_case_closure")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_a_new_connection_is_closed_at_once() {
    // One test at a time: they measure process-wide gauges and hold thousands of sockets.
    let _alone = crate::ALONE.lock().await;
    let app = App::start_with(|c: &mut Config| {
        c.http.max_connections = 20;
        c.http.header_read_timeout_ms = 60_000;
    })
    .await;
    let before = metric(
        &app,
        "riskos_connections_refused_total{reason=\"max_connections\"}",
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // The 21st is accepted by the kernel and closed by the server without waiting for the
    // 60 s header deadline.
    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(10), read_until_closed(&mut extra))
        .await
        .expect("closed at once, not at the header deadline");
    assert!(read.is_empty());
    drop(held);
    // Once they are gone, webhooks are served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match reqwest::Client::new()
            .post(app.url("/webhooks/riskos"))
            .header("content-type", "application/json")
            .body(case_closure())
            .send()
            .await
        {
            Ok(response) => {
                assert_eq!(response.status(), 200);
                break;
            }
            Err(error) => assert!(Instant::now() < deadline, "never served again: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = metric(
        &app,
        "riskos_connections_refused_total{reason=\"max_connections\"}",
    )
    .await;
    assert!(after > before, "the refusal is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_outside_the_allow_list_is_answered_403_and_cannot_hold_a_connection() {
    // One test at a time: they measure process-wide gauges and hold thousands of sockets.
    let _alone = crate::ALONE.lock().await;
    let app = App::start_with(|c: &mut Config| {
        c.endpoints[0].allow_cidrs = vec!["192.0.2.1/32".parse().unwrap()];
        c.http.header_read_timeout_ms = 60_000;
    })
    .await;
    // A request gets its 403, with nothing behind the guard run.
    assert_rejected_and_closed(app.post_webhook(case_closure()).await, 403);
    // A refused address that sends nothing is closed at its own short deadline, not at the
    // 60 s header deadline allowed senders get.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    // Its deadline is 2 s; 6 s leaves room for a slow machine and is a tenth of the 60 s.
    let read = tokio::time::timeout(Duration::from_secs(6), read_until_closed(&mut silent))
        .await
        .expect("closed at the refused pool's deadline, well before the header deadline");
    assert!(read.is_empty());
}

/// A webhook signed as `hmac` mode ([`hmac`]) wants it, posted on a new request.
async fn post_signed(app: &App) -> reqwest::Response {
    let body = case_closure();
    let mut request = app
        .client
        .post(app.url("/webhooks/riskos"))
        .header("content-type", "application/json");
    for (name, value) in hmac_headers(HMAC_SECRET, unix_now(), &body) {
        request = request.header(name, value);
    }
    request.body(body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_uploads_trickling_in_do_not_starve_signed_webhooks() {
    // One test at a time: they measure process-wide gauges and hold thousands of sockets.
    let _alone = crate::ALONE.lock().await;
    const MAX_IN_FLIGHT: usize = 4;
    let body_read = Duration::from_secs(3);
    let app = App::start_with(|c: &mut Config| {
        hmac(c);
        c.http.max_in_flight = MAX_IN_FLIGHT;
        c.http.body_read_timeout_ms = body_read.as_millis() as u64;
    })
    .await;
    let in_flight_before = metric(&app, "riskos_in_flight_requests ").await;

    // Twice as many unsigned uploads as there are slots: a signature header that will not
    // verify, a fresh timestamp (so the header precheck passes), and a body that never ends.
    let mut tricklers = Vec::new();
    for _ in 0..2 * MAX_IN_FLIGHT {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let headers = [
            ("x-signature", "00".repeat(32)),
            ("x-timestamp", unix_now().to_string()),
        ];
        stream
            .write_all(head("/webhooks/riskos", 1000, &headers).as_bytes())
            .await
            .unwrap();
        stream.write_all(b"{\"event_id\":").await.unwrap();
        tricklers.push(stream);
    }
    // All of them are being handled (counted by the outermost middleware).
    wait_for_metric(
        &app,
        "riskos_in_flight_requests ",
        in_flight_before + (2 * MAX_IN_FLIGHT) as f64,
    )
    .await;

    // A signed webhook still gets a slot.
    let signed = post_signed(&app).await;
    assert_eq!(signed.status(), 200, "{}", signed.text().await.unwrap());

    // The uploads are cut at the body deadline with 408.
    let started = Instant::now();
    for mut stream in tricklers {
        let answer = tokio::time::timeout(body_read * 3, read_until_closed(&mut stream))
            .await
            .expect("cut at the body deadline");
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 408"), "{answer}");
    }
    assert!(started.elapsed() < body_read * 3);
}

/// The sum of every line of the Prometheus text at `/metrics` that starts with `line_prefix`
/// (a counter over all values of its other labels).
async fn metric_sum(app: &App, line_prefix: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Issue 25: in `hmac` mode a body is read into the endpoint's byte budget before its
/// signature is checked. One address with 64 forged uploads of 1 MiB − 1 byte that then pause
/// would hold 64 MiB − 64 bytes of the 64 MiB budget, and every signed webhook would get 503;
/// one address may hold only a quarter of it, so signed webhooks from another get 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_uploads_from_one_address_cannot_take_the_body_budget_from_signed_webhooks() {
    // One test at a time: they measure process-wide gauges and hold thousands of sockets.
    let _alone = crate::ALONE.lock().await;
    const UPLOADS: usize = 64;
    let app = App::start_with(|c: &mut Config| {
        hmac(c);
        // The uploads pause for the whole test: no deadline may cut them meanwhile.
        c.http.body_read_timeout_ms = 60_000;
        c.http.request_timeout_ms = 70_000;
    })
    .await;
    let limit = app.config.http.max_body_bytes;
    let budget = app.config.body_bytes_shares()[0];
    // The defaults: 64 near-limit bodies from one address fill the budget but for 64 bytes.
    assert_eq!(budget, UPLOADS * limit);
    let held = "riskos_body_bytes_in_flight{endpoint=\"riskos\"}";
    let rejections = "riskos_rejections_total{endpoint=\"riskos\"";
    let rejected_before = metric_sum(&app, rejections).await;

    // From 127.0.0.2: a forged signature with a fresh timestamp (the header precheck passes),
    // `content-length` at the limit, and all of the body but its last byte.
    let mut uploads = Vec::new();
    for _ in 0..UPLOADS {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(app.addr).await.unwrap();
        let headers = [
            ("x-signature", "00".repeat(32)),
            ("x-timestamp", unix_now().to_string()),
        ];
        uploads.push(tokio::spawn(async move {
            let head = head("/webhooks/riskos", limit, &headers);
            // A rejected upload may be cut while it is written; its answer is read below.
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&vec![b' '; limit - 1]).await;
            String::from_utf8_lossy(&read_until_closed(&mut stream).await).to_ascii_lowercase()
        }));
    }
    // Settled: every upload not yet rejected holds all it sent (each holds at most that, so
    // nothing else can reach the sum). Bounded: 30 s for 64 MiB over loopback.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (bytes, rejected) = loop {
        let rejected = metric_sum(&app, rejections).await - rejected_before;
        let bytes = metric(&app, held).await;
        if bytes >= (UPLOADS as f64 - rejected) * (limit - 1) as f64 {
            break (bytes, rejected);
        }
        assert!(
            Instant::now() < deadline,
            "the uploads never settled: {bytes} bytes held, {rejected} rejected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Signed webhooks from 127.0.0.1 still find room.
    for _ in 0..4 {
        let signed = post_signed(&app).await;
        assert_eq!(signed.status(), 200, "{}", signed.text().await.unwrap());
    }
    // 127.0.0.2 holds at most its quarter; the rest of its uploads were refused.
    assert!(bytes <= (budget / 4) as f64, "{bytes} bytes held");
    assert!(
        rejected >= (UPLOADS - UPLOADS / 4) as f64,
        "{rejected} rejected"
    );

    // The refused uploads were told to retry: 429 with `Retry-After` (each is closed after
    // its answer; bounded: 10 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while uploads.iter().filter(|u| u.is_finished()).count() < rejected as usize {
        assert!(Instant::now() < deadline, "refused uploads were not closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for upload in uploads {
        if upload.is_finished() {
            let answer = upload.await.unwrap();
            assert!(answer.starts_with("http/1.1 429"), "{answer}");
            assert!(answer.contains("retry-after: 1"), "{answer}");
        } else {
            upload.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_413_is_read_by_a_client_still_uploading() {
    // One test at a time: they measure process-wide gauges and hold thousands of sockets.
    let _alone = crate::ALONE.lock().await;
    let app = App::start().await;
    let limit = app.config.http.max_body_bytes;
    // A small send buffer, so the upload cannot vanish into the kernel's buffers before the
    // server answers: the client is still writing when the 413 comes, as one sending 2 MiB
    // over a real network is. (With loopback's large buffers the whole upload could be
    // written first, and a close without draining would go unnoticed.)
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(16 * 1024).unwrap();
    let mut stream = socket.connect(app.addr).await.unwrap();
    stream
        .write_all(head("/webhooks/riskos", 2 * limit, &[]).as_bytes())
        .await
        .unwrap();
    // The client uploads its whole body before it reads: the server must neither reset the
    // connection under it nor lose the answer.
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..(2 * limit / chunk.len()) {
        stream
            .write_all(&chunk)
            .await
            .expect("upload not cut by a reset");
    }
    let answer = read_until_closed(&mut stream).await;
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_announces_connection_close() {
    // One test at a time: they measure process-wide gauges and hold thousands of sockets.
    let _alone = crate::ALONE.lock().await;
    let app = App::start_with(hmac).await;
    assert_rejected_and_closed(app.post_webhook(case_closure()).await, 401);
}

/// An HTTPS listener's slow and idle clients are bounded the same way: a client that
/// completes the handshake and then trickles its head is closed at the header deadline, one
/// idle after a response at the idle deadline, and a webhook is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_slow_and_idle_connections_are_closed_at_their_deadlines() {
    use std::sync::Arc;
    // One test at a time: they measure process-wide gauges and hold thousands of sockets.
    let _alone = crate::ALONE.lock().await;
    let made = rcgen::generate_simple_self_signed(vec!["riskos.test".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), made.cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), made.signing_key.serialize_pem()).unwrap();
    let header_read = Duration::from_secs(2);
    let idle = Duration::from_secs(4);
    let tls_dir = dir.path().to_path_buf();
    let app = App::start_with(move |c: &mut Config| {
        c.http.tls.cert_file = Some(tls_dir.join("tls.crt"));
        c.http.tls.key_file = Some(tls_dir.join("tls.key"));
        c.http.header_read_timeout_ms = header_read.as_millis() as u64;
        c.http.idle_timeout_ms = idle.as_millis() as u64;
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let connect = || async {
        let tcp = TcpStream::connect(app.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("riskos.test").unwrap();
        connector.connect(name, tcp).await.expect("TLS handshake")
    };

    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = connect().await;
        stream
            .write_all(b"POST /webhooks/riskos HTTP/1.1\r\nhost: t")
            .await
            .unwrap();
        stream.flush().await.unwrap();
        slow.push(stream);
    }
    let mut idle_conn = connect().await;
    idle_conn
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: riskos.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle_conn.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let idle_since = Instant::now();

    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap()])
        .resolve("riskos.test", app.addr)
        .build()
        .unwrap();
    let response = https
        .post(format!(
            "https://riskos.test:{}/webhooks/riskos",
            app.addr.port()
        ))
        .header("content-type", "application/json")
        .body(case_closure())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    for mut stream in slow {
        let closed = tokio::time::timeout(header_read * 3, read_until_closed(&mut stream)).await;
        assert!(
            closed.is_ok(),
            "slow TLS client closed at the header deadline"
        );
    }
    assert!(started.elapsed() < header_read * 3);
    let closed = tokio::time::timeout(idle * 3, read_until_closed(&mut idle_conn)).await;
    assert!(
        closed.is_ok(),
        "idle TLS client closed at the idle deadline"
    );
    assert!(idle_since.elapsed() >= idle - Duration::from_millis(500));
}

/// Set (to `soft:hard`) for the connector process the file-limit tests start: it makes
/// [`connector_process_under_a_file_limit`] run instead of returning at once.
const FILE_LIMIT_CHILD: &str = "RISKOS_TEST_FILE_LIMIT";

/// Slow connections of the file-limit tests: more than a 1024-descriptor process can hold.
const OVER_1024: usize = 1100;

/// Not a test by itself (it returns at once unless [`FILE_LIMIT_CHILD`] is set): the connector
/// process the file-limit tests start, this test binary run again with only this test. It sets
/// its own open-file limit, then serves the real listener over a memory store (default
/// `http.max_connections`, a 60 s header deadline so slow connections stay), logging to stderr
/// and printing `LISTENING <addr>`, until its stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_process_under_a_file_limit() {
    let Ok(limits) = std::env::var(FILE_LIMIT_CHILD) else {
        return;
    };
    let (soft, hard) = limits.split_once(':').expect("soft:hard");
    let (soft, hard): (u64, u64) = (soft.parse().unwrap(), hard.parse().unwrap());
    rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard).expect("the limit is set");
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter("info")
        .init();
    let app = App::start_with(|c: &mut Config| {
        assert_eq!(c.http.max_connections, 4096, "the default cap");
        c.http.header_read_timeout_ms = 60_000;
    })
    .await;
    println!("LISTENING {}", app.addr);
    tokio::task::spawn_blocking(|| {
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
    })
    .await
    .unwrap();
}

/// The connector in a process of its own under an open-file limit.
struct LimitedConnector {
    addr: std::net::SocketAddr,
    child: tokio::process::Child,
    log: tokio::task::JoinHandle<String>,
    _stdout: tokio::task::JoinHandle<()>,
}

impl LimitedConnector {
    async fn start(soft: u64, hard: u64) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ingress::connector_process_under_a_file_limit",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(FILE_LIMIT_CHILD, format!("{soft}:{hard}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the connector process starts");
        let mut stderr = child.stderr.take().unwrap();
        let log = tokio::spawn(async move {
            let mut log = String::new();
            let _ = stderr.read_to_string(&mut log).await;
            log
        });
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                // libtest may have printed the test's name on the same line.
                if let Some((_, addr)) = line.split_once("LISTENING ") {
                    return addr.trim().parse().unwrap();
                }
            }
            panic!("the connector process ended before listening")
        })
        .await
        .expect("the connector process listens");
        let stdout =
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            addr,
            child,
            log,
            _stdout: stdout,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The text at `/metrics` on a new connection, if it is answered within a second.
    async fn try_scrape(&self) -> Option<String> {
        let response = one_connection_per_request()
            .get(self.url("/metrics"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .ok()?;
        response.text().await.ok()
    }

    /// The text at `/metrics`, retried for at most 5 s while the connection is closed at
    /// accept.
    async fn scrape(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(text) = self.try_scrape().await {
                return text;
            }
            assert!(Instant::now() < deadline, "no scrape answered in 5 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes its stdin, waits for it to end, and returns everything it logged.
    async fn stop(mut self) -> String {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        self.log.await.unwrap()
    }
}

/// A client that opens a new connection for every request (a refused one is not reused).
fn one_connection_per_request() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The value of the first line of `text` starting with `prefix` (0 when there is none).
fn value_of(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Slow connections to `addr`: each sends a partial request head and stalls. Returns their
/// write halves (dropping one closes that connection) and how many the server has closed.
async fn slow_connections(
    addr: std::net::SocketAddr,
    n: usize,
) -> (
    Vec<tokio::net::tcp::OwnedWriteHalf>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::with_capacity(n);
    for _ in 0..n {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        // Written before the server may close it; a reset here is a close too.
        let _ = write
            .write_all(b"POST /webhooks/riskos HTTP/1.1\r\nhost: t")
            .await;
        let closed = closed.clone();
        tokio::spawn(async move {
            let _ = read_until_closed(&mut read).await;
            closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        writers.push(write);
    }
    (writers, closed)
}

/// Lets this test process hold the client side of [`OVER_1024`] connections and more.
fn raise_own_file_limit() {
    let soft = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        soft >= 4 * OVER_1024 as u64,
        "the test client needs more descriptors than its hard limit {soft} allows"
    );
}

/// Issue 24: under a 1024 soft limit with a higher hard limit (a common container default), the
/// connector raises its soft limit and keeps the default cap of 4096: 1100 slow connections
/// are all held, none gets `EMFILE`, and a valid webhook is answered within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_1024_soft_limit_the_limit_is_raised_and_1100_slow_connections_leave_webhooks_room()
{
    // One test at a time: they measure process-wide gauges and hold thousands of sockets.
    let _alone = crate::ALONE.lock().await;
    raise_own_file_limit();
    let connector = LimitedConnector::start(1024, 8192).await;
    let (_writers, closed) = slow_connections(connector.addr, OVER_1024).await;
    // All held at once (counted by the server, polled on a connection of its own).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scraped = connector.try_scrape().await;
        let open = scraped.map(|text| value_of(&text, "riskos_open_connections "));
        if open >= Some(OVER_1024 as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open:?} of {OVER_1024} held open ({} closed by the server; None: no scrape answered)",
            closed.load(std::sync::atomic::Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered = tokio::time::timeout(
        Duration::from_secs(2),
        one_connection_per_request()
            .post(connector.url("/webhooks/riskos"))
            .header("content-type", "application/json")
            .body(case_closure())
            .send(),
    )
    .await
    .expect("a valid webhook is answered within 2 s")
    .expect("a valid webhook is answered");
    assert_eq!(answered.status(), 200);
    let metrics = connector.scrape().await;
    assert_eq!(
        value_of(&metrics, "process_max_fds "),
        8192.0,
        "raised to the hard limit"
    );
    assert_eq!(
        value_of(
            &metrics,
            "riskos_connections_refused_total{reason=\"max_connections\"}"
        ),
        0.0
    );
    assert_eq!(closed.load(std::sync::atomic::Ordering::SeqCst), 0);
    let log = connector.stop().await;
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(!log.contains("does not fit the open-file limit"), "{log}");
}

/// Issue 24: under a 1024 hard limit the default cap of 4096 cannot fit, so the connector
/// lowers it, says so in one start-up line naming both caps and the limit, and closes the
/// connections over it at accept instead of failing `accept` with `EMFILE` (which sleeps the
/// accept loop while the connections pile up in the backlog): of 1100 slow connections, those
/// over the cap are closed at once, and as soon as held ones go a valid webhook is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_1024_hard_limit_the_cap_is_lowered_and_connections_over_it_are_closed_at_accept() {
    use std::sync::atomic::Ordering;
    // One test at a time: they measure process-wide gauges and hold thousands of sockets.
    let _alone = crate::ALONE.lock().await;
    raise_own_file_limit();
    // What the limit leaves once the reserve is kept (160 descriptors for this config).
    let cap = 1024
        - riskos_connector::wiring::fd_limit::reserve(
            &support::in_memory::config(),
            riskos_connector::ingress::http::server::REFUSED_CONNECTIONS,
        );
    assert!(cap < OVER_1024 - 100, "cap {cap}");
    let connector = LimitedConnector::start(1024, 1024).await;
    let (mut writers, closed) = slow_connections(connector.addr, OVER_1024).await;
    let over = OVER_1024 - cap;
    let deadline = Instant::now() + Duration::from_secs(2);
    while closed.load(Ordering::SeqCst) < over {
        assert!(
            Instant::now() < deadline,
            "{} of the {over} connections over the cap of {cap} closed at accept",
            closed.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(closed.load(Ordering::SeqCst), over, "the held ones stay");
    // Slots free up: a webhook gets one within 2 s (a connection still closed at accept is
    // retried, as a sender would).
    drop(writers.drain(..20));
    let started = Instant::now();
    let client = one_connection_per_request();
    let answered = loop {
        let sent = client
            .post(connector.url("/webhooks/riskos"))
            .header("content-type", "application/json")
            .body(case_closure())
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        match sent {
            Ok(response) => break response,
            Err(error) => assert!(
                started.elapsed() < Duration::from_secs(2),
                "no answer within 2 s: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(answered.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    let metrics = connector.scrape().await;
    let refused = value_of(
        &metrics,
        "riskos_connections_refused_total{reason=\"max_connections\"}",
    );
    assert!(refused >= over as f64, "{refused} counted, {over} refused");
    assert_eq!(value_of(&metrics, "process_max_fds "), 1024.0);
    drop(writers);
    let log = connector.stop().await;
    assert!(!log.contains("Too many open files"), "{log}");
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("does not fit the open-file limit"))
        .collect();
    assert_eq!(said.len(), 1, "one start-up line: {log}");
    for number in ["4096", &cap.to_string(), "1024"] {
        assert!(said[0].contains(number), "{number} named: {}", said[0]);
    }
}
