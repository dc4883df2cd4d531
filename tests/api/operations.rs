//! Operations: readiness follows its dependencies, and spans reach an OTLP collector. The
//! trace context in the record headers and readiness over the store's health are in
//! `tests/http/operations.rs`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{fixtures, Stack};

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
    assert_eq!(body["checks"]["schema_registry"], "ok");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_an_unreachable_registry() {
    let stack = Stack::start().await;
    let Stack {
        broker,
        registry,
        app,
    } = stack;
    drop(registry);
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], "schema_registry");
    assert_eq!(body["checks"]["kafka"], "ok");
    drop(broker);
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
    let broker = crate::helpers::Broker::shared();
    let (collector, received) = otlp_collector().await;
    let port = crate::helpers::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
        .arg("serve")
        .env("RISKOS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("RISKOS_ENDPOINTS__RISKOS__AUTH__MODE", "none")
        .envs(crate::helpers::app::test_keys_env())
        .env("RISKOS_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap())
        .env(
            "RISKOS_ENDPOINTS__RISKOS__TOPIC_PREFIX",
            crate::helpers::app::unique_topic_prefix(),
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
    while !client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
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
