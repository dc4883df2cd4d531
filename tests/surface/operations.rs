//! Operations without a broker: readiness as the store reports it, and a W3C trace context
//! reaching the record's headers. Readiness over a real broker is in
//! `tests/kafka/operations.rs`.

use axum::http::Request;
use riskos_connector::delivery::Health;

use support::{fixture, Connector, Reply};

async fn readyz(connector: &Connector) -> Reply {
    connector
        .send(Request::get("/readyz").body(Default::default()).unwrap())
        .await
}

#[tokio::test]
async fn a_traceparent_is_carried_into_the_record_headers() {
    let connector = Connector::start().await;
    let body = fixture("riskos.evaluation_completed.docv.json");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = connector
        .send(
            connector
                .post()
                .header("traceparent", traceparent)
                .body(body.into())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let records = connector.on_topic("riskos.evaluation_completed");
    assert_eq!(records[0].header("traceparent"), Some(traceparent));
}

#[tokio::test]
async fn readiness_without_a_spool_is_503_naming_kafka_while_kafka_is_down() {
    let connector = Connector::start().await;
    let ready = readyz(&connector).await;
    assert_eq!(ready.status, 200, "{:?}", ready.json());
    assert_eq!(ready.json()["checks"]["kafka"], "ok");

    connector.store.set_health(Health {
        kafka: false,
        spool_above_high_water_mark: None,
    });
    let down = readyz(&connector).await;
    let body = down.json();
    assert_eq!(down.status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failed"], "kafka");
    assert_eq!(body["checks"]["kafka"], "failed");
    assert_eq!(body["checks"].get("spool"), None, "{body}");
}

#[tokio::test]
async fn readiness_with_a_spool_below_its_mark_stays_200_with_kafka_degraded() {
    let connector = Connector::start().await;
    connector.store.set_health(Health {
        kafka: false,
        spool_above_high_water_mark: Some(false),
    });
    let reply = readyz(&connector).await;
    let body = reply.json();
    assert_eq!(reply.status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body.get("failed"), None, "{body}");
    assert_eq!(body["checks"]["kafka"], "degraded");
    assert_eq!(body["checks"]["spool"], "ok");
}

#[tokio::test]
async fn readiness_with_a_spool_above_its_mark_is_503_naming_the_spool() {
    let connector = Connector::start().await;
    connector.store.set_health(Health {
        kafka: false,
        spool_above_high_water_mark: Some(true),
    });
    let reply = readyz(&connector).await;
    let body = reply.json();
    assert_eq!(reply.status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failed"], "spool");
    assert_eq!(body["checks"]["spool"], "failed");
    assert_eq!(body["checks"]["kafka"], "degraded");
}
