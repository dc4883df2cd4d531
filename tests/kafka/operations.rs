//! Operations: readiness follows its dependencies, and spans reach an OTLP collector. The
//! trace context in the record headers and readiness over the store's health are in
//! `tests/surface/operations.rs`.

use std::time::{Duration, Instant};

use serde_json::Value;

use support::{fixtures, Stack};

async fn readyz(stack: &Stack) -> (u16, Value) {
    let response = stack
        .app
        .client
        .get(stack.app.url("/readyz"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_503_when_the_broker_stops_and_200_when_it_returns() {
    let mut stack = Stack::start_own_broker_with(|_| {}).await;
    let (before, body) = readyz(&stack).await;
    assert_eq!(before, 200, "{body}");
    assert_eq!(body["checks"]["kafka"], "ok");

    stack.broker.kill();
    let (down, body) = readyz(&stack).await;
    assert_eq!(down, 503, "{body}");
    assert_eq!(body["failed"], "kafka");

    stack.broker.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = readyz(&stack).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still not ready: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Readiness asks only what accepting a webhook needs: probes never reach the registry
/// (subjects and ids were resolved at start-up; its background check runs every
/// `schema_registry.check_interval_secs`, 30 s by default, not per probe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probes_make_no_registry_call() {
    let stack = Stack::start().await;
    let before = stack.registry.subject_listings();
    for _ in 0..20 {
        let (status, body) = readyz(&stack).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["checks"].get("schema_registry").is_none(), "{body}");
    }
    assert_eq!(
        stack.registry.subject_listings(),
        before,
        "20 readiness probes called the registry"
    );
}

async fn healthz(stack: &Stack) -> Value {
    let url = stack.app.url("/healthz");
    let response = stack.app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn metric_line(stack: &Stack, name: &str) -> Option<String> {
    let url = stack.app.url("/metrics");
    let text = stack
        .app
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name))
        .map(str::to_string)
}

/// Polls `/healthz` (up to 20 s) until its registry detail is `seen`.
async fn until_registry_seen(stack: &Stack, seen: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = healthz(stack).await;
        if body["checks"]["schema_registry"] == seen {
            return;
        }
        assert!(Instant::now() < deadline, "registry never {seen}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The registry stops after start-up: the pod stays ready and every webhook is stored, the
/// outage shows in `/healthz`, `riskos_schema_registry_up` and one log line; once the
/// registry is back, the records written meanwhile decode through it.
#[tokio::test]
async fn a_registry_outage_after_start_keeps_the_pod_ready_and_webhooks_stored() {
    let (_capturing, logs) = support::logs::capture();
    let mut stack = Stack::start_with(|config| {
        config.schema_registry.check_interval_secs = Some(1);
    })
    .await;
    until_registry_seen(&stack, "ok").await;

    stack.registry.stop().await;
    until_registry_seen(&stack, "unreachable").await;
    let (status, body) = readyz(&stack).await;
    assert_eq!(status, 200, "ready while the registry is down: {body}");
    assert_eq!(
        metric_line(&stack, "riskos_schema_registry_up")
            .await
            .as_deref(),
        Some("riskos_schema_registry_up 0")
    );
    let warned = logs
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("schema registry unreachable"))
        })
        .count();
    assert_eq!(warned, 1, "one log line for the outage");
    let posted = fixtures::all();
    for (name, body) in &posted {
        let status = stack.app.post_webhook(body.clone()).await.status();
        assert_eq!(status, 200, "{name} while the registry is down");
    }

    stack.registry.restart().await;
    until_registry_seen(&stack, "ok").await;
    assert_eq!(
        metric_line(&stack, "riskos_schema_registry_up")
            .await
            .as_deref(),
        Some("riskos_schema_registry_up 1")
    );
    assert_eq!(
        logs.with_message("schema registry reachable again").len(),
        1
    );
    let bootstrap = stack.broker.bootstrap();
    for (name, body) in &posted {
        let sent: Value = serde_json::from_slice(body).unwrap();
        let raw = String::from_utf8(body.clone()).unwrap();
        let topic = stack.app.topic_of(&sent);
        let mut found = false;
        for record in support::kafka::read_all(&bootstrap, &topic) {
            let value = support::decode::decode(&stack.registry.url, &record.payload).await;
            found |= value["raw"] == raw;
        }
        assert!(found, "{name}: not decodable from {topic}");
    }
}

/// The registry is down when the connector starts: the listener answers at once — alive,
/// not ready (`starting`), 503 with Retry-After to a webhook — while start-up retries; once
/// the registry answers, the schemas resolve, the pod is ready and webhooks are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_down_at_start_keeps_the_pod_unready_until_it_answers() {
    use futures::FutureExt;
    use riskos_connector::wiring::app::Application;
    // The registry's port takes connections and closes them at once (a registry that does not
    // answer), counting them: the test waits for a second attempt, so start-up has retried.
    let refusing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let registry_port = refusing.local_addr().unwrap().port();
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = attempts.clone();
    let refuser = tokio::spawn(async move {
        loop {
            let (connection, _) = refusing.accept().await.unwrap();
            drop(connection);
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let registry_url = format!("http://127.0.0.1:{registry_port}");
    let broker = support::Broker::shared();
    let config = support::test_config(&broker.bootstrap(), &registry_url);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = config.clone();
    let service = tokio::spawn(async move {
        let app = Application::build(&started, listener).await?;
        app.run_until(async move {
            let _ = stopped.await;
        })
        .await
    });
    // Answers come from the listener itself, without the registry; without it a probe would
    // wait for start-up to end (bounded here, generously for a loaded machine).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let webhook_url = format!("{base}{}", config.endpoints[0].path);
    let post_fixture = || {
        client
            .post(&webhook_url)
            .header("content-type", "application/json")
            .body(fixtures::all()[0].1.clone())
            .send()
            .map(Result::unwrap)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while attempts.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(
            !service.is_finished(),
            "start-up gave up instead of retrying"
        );
        assert!(
            Instant::now() < deadline,
            "start-up did not try the registry twice"
        );
        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let body: Value = health.json().await.unwrap();
        assert_eq!(body["status"], "starting");
        let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["failed"], "starting", "{body}");
        let webhook = post_fixture().await;
        assert_eq!(webhook.status(), 503);
        assert!(webhook.headers().contains_key("retry-after"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refuser.abort();
    let _ = refuser.await;

    let registry = support::RegistryDouble::serve(
        tokio::net::TcpListener::bind(("127.0.0.1", registry_port))
            .await
            .unwrap(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.as_ref().is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(!service.is_finished(), "start-up failed: {:?}", ready);
        assert!(
            Instant::now() < deadline,
            "never ready after the registry came up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(post_fixture().await.status(), 200);
    assert!(
        !registry.subjects().is_empty(),
        "the schemas were registered"
    );
    let _ = stop.send(());
    service.await.unwrap().unwrap();
}

/// A collector double: records the bodies POSTed to `/v1/traces`.
async fn otlp_collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    use axum::routing::post;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body.to_vec());
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_in_the_callers_trace() {
    use std::process::{Command, Stdio};
    let broker = support::Broker::shared();
    let (collector, received) = otlp_collector().await;
    let port = support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .arg("serve")
        .env("RISKOS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("RISKOS_ENDPOINTS__RISKOS__AUTH__MODE", "none")
        .envs(support::app::test_keys_env())
        .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap())
        .env(
            "RISKOS_ENDPOINTS__RISKOS__TOPIC_PREFIX",
            support::app::unique_topic_prefix(),
        )
        .env(
            "RISKOS_SCHEMAS__DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/schemas"),
        )
        .env("RISKOS_TOPICS__PARTITIONS", "1")
        .env("RISKOS_TOPICS__REPLICATION_FACTOR", "1")
        .env("RISKOS_TRACING__OTLP_ENDPOINT", &collector)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !support::started(&client, &format!("http://127.0.0.1:{port}")).await {
        assert!(Instant::now() < deadline, "connector did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, body) = fixtures::all().into_iter().next().unwrap();
    let response = client
        .post(format!("http://127.0.0.1:{port}/webhooks/riskos"))
        .header("content-type", "application/json")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // SIGTERM flushes the exporter before exit.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    let bodies = received.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "no OTLP export received");
    let trace_id = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    assert!(
        bodies.iter().any(|b| b.windows(16).any(|w| w == trace_id)),
        "the request's span is not in the caller's trace"
    );
}
