//! Operations: readiness follows its dependencies, and a W3C trace context reaches Kafka.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::kafka::read_all;
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
    let mut stack = Stack::start().await;
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

#[tokio::test]
async fn a_traceparent_is_carried_into_the_record_headers() {
    let stack = Stack::start().await;
    let (_, body) = fixtures::all()
        .into_iter()
        .find(|(n, _)| n == "riskos.evaluation_completed.docv.json")
        .unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = stack
        .app
        .client
        .post(stack.app.url("/webhooks/riskos"))
        .header("content-type", "application/json")
        .header("traceparent", traceparent)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let records = read_all(&stack.broker.bootstrap(), "riskos.evaluation_completed");
    assert_eq!(records[0].header("traceparent"), Some(traceparent));
}
