//! README's status-code table, row by row, with what each answer promises: what was kept (in
//! the in-memory store standing in for Kafka), and the headers the vendor acts on
//! (`Retry-After`, `WWW-Authenticate`, `X-Request-Id`, `Connection: close`).

use axum::body::Body;
use axum::http::Request;
use futures::{stream, StreamExt as _};
use riskos_connector::delivery::memory::Behaviour;
use riskos_connector::wiring::config::Config;
use serde_json::json;

use support::{fixture, Connector, Reply};

/// A RiskOS evaluation whose `decision` is an object where the schema has a string.
fn schema_mismatch() -> Vec<u8> {
    json!({
        "event_id": "q-1", "event_at": "2025-11-02T09:16:00Z", "event_type": "evaluation_completed",
        "data": {"eval_id": "ev-1", "decision": {"code": "ACCEPT", "score": 0.93}}
    })
    .to_string()
    .into_bytes()
}

const CASE_CLOSURE: &str = "riskos.case_closure.match.json";
const CASE_CLOSURE_TOPIC: &str = "riskos.case_management_notification_case_closure";

/// The event id of the case-closure fixture.
fn case_closure_id() -> String {
    let body: serde_json::Value = serde_json::from_slice(&fixture(CASE_CLOSURE)).unwrap();
    body["event_id"].as_str().unwrap().to_string()
}

/// What a rejected answer carries.
fn assert_rejected(case: &str, reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{case}: {:?}", reply.json());
    assert_eq!(reply.json()["status"], "rejected", "{case}");
    assert!(
        reply.json()["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{case}: an error message"
    );
    // The body may be unread: the connection cannot carry another request.
    assert_eq!(reply.header("connection"), Some("close"), "{case}");
    assert_eq!(
        reply.header("retry-after").is_some(),
        [429, 503].contains(&status),
        "{case}: Retry-After only where a retry may succeed"
    );
    assert_eq!(
        reply.header("www-authenticate").is_some(),
        status == 401,
        "{case}: WWW-Authenticate only on 401"
    );
}

// --- 200 -------------------------------------------------------------------------------------

#[tokio::test]
async fn accepted_once_the_store_has_it_keyed_by_event_id_on_its_topic() {
    let connector = Connector::start().await;

    let reply = connector.post_json(fixture(CASE_CLOSURE)).await;

    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let answer = reply.json();
    assert_eq!(answer["status"], "accepted");
    assert_eq!(answer["event_id"], case_closure_id().as_str());
    assert!(answer.get("spooled").is_none() && answer.get("duplicate").is_none());
    let kept = connector.on_topic(CASE_CLOSURE_TOPIC);
    assert_eq!(kept.len(), 1, "{:?}", connector.store.kept());
    assert_eq!(kept[0].key.as_deref(), Some(case_closure_id().as_str()));
    assert_eq!(kept[0].header("envelope"), Some("EVENT"));
    assert_eq!(
        kept[0].header("event_type"),
        Some("case_management_notification_case_closure")
    );
    assert!(connector.quarantined().is_empty());
}

#[tokio::test]
async fn accepted_and_spooled_when_kafka_is_down_and_the_spool_takes_it() {
    let connector = Connector::start().await;
    connector.store.set_behaviour(Behaviour::Spool);

    let reply = connector.post_json(fixture(CASE_CLOSURE)).await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "accepted");
    assert_eq!(reply.json()["spooled"], true);
    assert_eq!(connector.on_topic(CASE_CLOSURE_TOPIC).len(), 1);
}

#[tokio::test]
async fn an_identical_retry_is_accepted_as_a_duplicate_and_stored_once() {
    let connector = Connector::start().await;

    let first = connector.post_json(fixture(CASE_CLOSURE)).await;
    let retry = connector.post_json(fixture(CASE_CLOSURE)).await;

    assert_eq!(first.status, 200);
    assert_eq!(retry.status, 200);
    assert_eq!(retry.json()["status"], "accepted");
    assert_eq!(retry.json()["duplicate"], true);
    assert_eq!(connector.store.attempts(), 1, "answered from the cache");
}

#[tokio::test]
async fn quarantined_200_when_the_data_does_not_fit_its_schema() {
    let connector = Connector::start().await;
    let body = schema_mismatch();

    let reply = connector.post_json(body.clone()).await;

    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(reply.json()["status"], "quarantined");
    assert_eq!(reply.json()["event_id"], "q-1");
    assert!(connector.on_topic("riskos.evaluation_completed").is_empty());
    let quarantined = connector.quarantined();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].value, body, "kept raw");
    assert_eq!(quarantined[0].key.as_deref(), Some("q-1"));
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("schema_mismatch")
    );
    assert_eq!(
        quarantined[0].header("quarantine_field"),
        Some("data.decision")
    );
}

#[tokio::test]
async fn quarantined_200_when_kafka_refuses_the_record_as_too_large() {
    let connector = Connector::start().await;
    connector
        .store
        .set_topic_behaviour(CASE_CLOSURE_TOPIC, Behaviour::TooLarge);

    let reply = connector.post_json(fixture(CASE_CLOSURE)).await;

    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(reply.json()["status"], "quarantined");
    let quarantined = connector.quarantined();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].value, fixture(CASE_CLOSURE));
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("record_too_large")
    );
    assert_eq!(
        quarantined[0].key.as_deref(),
        Some(case_closure_id().as_str())
    );
}

// --- 400: the sender's error, kept raw in quarantine all the same ------------------------------

#[tokio::test]
async fn bodies_that_cannot_be_an_event_are_400_and_kept_raw_with_the_reason() {
    let too_deep = format!("{}{}", "[".repeat(80), "]".repeat(80));
    // (case, body, reason, the field the message names when there is one)
    let rows: [(&str, Vec<u8>, &str, Option<&str>); 6] = [
        ("not JSON", b"{\"event_id\": ".to_vec(), "invalid_json", None),
        (
            "a key repeated in an object",
            br#"{"event_id":"a","event_id":"b","event_type":"x","event_at":"2025-01-01T00:00:00Z","data":{}}"#.to_vec(),
            "duplicate_key",
            Some("event_id"),
        ),
        ("nested deeper than http.max_json_depth", too_deep.into_bytes(), "too_deep", None),
        ("not an object", b"[1, 2, 3]".to_vec(), "invalid_envelope", None),
        (
            "no event id",
            br#"{"event_type":"evaluation_completed","event_at":"2025-01-01T00:00:00Z","data":{}}"#.to_vec(),
            "invalid_envelope",
            Some("event_id"),
        ),
        (
            "an event time that is not a time",
            br#"{"event_id":"t-1","event_type":"evaluation_completed","event_at":"yesterday","data":{}}"#.to_vec(),
            "invalid_envelope",
            Some("event_at"),
        ),
    ];
    let connector = Connector::start().await;
    for (case, body, reason, field) in rows {
        let before = connector.quarantined().len();

        let reply = connector.post_json(body.clone()).await;

        assert_rejected(case, &reply, 400);
        if let Some(field) = field {
            let error = reply.json()["error"].as_str().unwrap().to_string();
            assert!(error.contains(field), "{case}: `{error}` names {field}");
        }
        let quarantined = connector.quarantined();
        assert_eq!(quarantined.len(), before + 1, "{case}: kept in quarantine");
        let kept = quarantined.last().unwrap();
        assert_eq!(kept.value, body, "{case}: kept raw");
        assert_eq!(kept.header("quarantine_reason"), Some(reason), "{case}");
        assert_eq!(kept.key, None, "{case}: no event id to key it by");
    }
    assert_eq!(
        connector.store.kept().len(),
        connector.quarantined().len(),
        "nothing reached an event topic"
    );
}

// --- refused before anything is stored -------------------------------------------------------

/// A request the sender must fix, or that may succeed later: (case, how the connector is
/// configured, the request, the status).
struct Row {
    case: &'static str,
    configure: fn(&mut Config),
    request: fn(&Connector) -> Request<Body>,
    status: u16,
}

fn no_change(_: &mut Config) {}

fn rows() -> Vec<Row> {
    vec![
        Row {
            case: "413: Content-Length over http.max_body_bytes",
            configure: |c| c.http.max_body_bytes = 1024,
            request: |c| {
                c.post()
                    .header("content-length", "2048")
                    .body(Body::from(vec![b' '; 2048]))
                    .unwrap()
            },
            status: 413,
        },
        Row {
            case: "413: a streamed body that grows over http.max_body_bytes",
            configure: |c| c.http.max_body_bytes = 1024,
            request: |c| {
                let chunks = (0..4).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512]));
                c.post()
                    .body(Body::from_stream(stream::iter(chunks)))
                    .unwrap()
            },
            status: 413,
        },
        Row {
            case: "400 body_read: the body breaks off mid-stream",
            configure: no_change,
            request: |c| {
                let broken = stream::iter([
                    Ok(br#"{"event_id": "#.to_vec()),
                    Err(std::io::Error::other("connection reset mid-body")),
                ]);
                c.post().body(Body::from_stream(broken)).unwrap()
            },
            status: 400,
        },
        Row {
            case: "415: Content-Type is not JSON",
            configure: no_change,
            request: |c| {
                Request::post(&c.config.endpoints[0].path)
                    .header("content-type", "text/plain")
                    .body(Body::from(fixture(CASE_CLOSURE)))
                    .unwrap()
            },
            status: 415,
        },
        Row {
            case: "415: a charset other than UTF-8",
            configure: no_change,
            request: |c| {
                Request::post(&c.config.endpoints[0].path)
                    .header("content-type", "application/json; charset=latin1")
                    .body(Body::from(fixture(CASE_CLOSURE)))
                    .unwrap()
            },
            status: 415,
        },
        Row {
            case: "401: no credentials (bearer mode)",
            configure: |c| {
                c.endpoints[0].auth.mode = Some(riskos_connector::ingress::auth::AuthMode::Bearer);
                c.endpoints[0].auth.bearer.tokens =
                    vec![riskos_connector::common::secret::Secret::new(
                        "a-token-of-32-characters-or-more",
                    )];
            },
            request: |c| c.post().body(Body::from(fixture(CASE_CLOSURE))).unwrap(),
            status: 401,
        },
        Row {
            case: "403: client address not in http.allow_cidrs",
            configure: |c| c.endpoints[0].allow_cidrs = vec!["10.0.0.0/8".parse().unwrap()],
            request: |c| c.post().body(Body::from(fixture(CASE_CLOSURE))).unwrap(),
            status: 403,
        },
        Row {
            case: "408: the body does not arrive within http.body_read_timeout_ms",
            configure: |c| {
                c.delivery.ack_timeout_ms = 100;
                c.http.body_read_timeout_ms = 150;
                c.http.request_timeout_ms = 2_000;
            },
            request: |c| {
                // One byte, then nothing: the sender stalls mid-body.
                let stalled =
                    stream::iter([Ok::<_, std::io::Error>(b"{".to_vec())]).chain(stream::pending());
                c.post().body(Body::from_stream(stalled)).unwrap()
            },
            status: 408,
        },
        Row {
            case: "431: headers larger than http.max_header_bytes",
            configure: |c| c.http.max_header_bytes = 1024,
            request: |c| {
                c.post()
                    .header("x-padding", "p".repeat(2048))
                    .body(Body::from(fixture(CASE_CLOSURE)))
                    .unwrap()
            },
            status: 431,
        },
    ]
}

#[tokio::test]
async fn requests_refused_before_anything_is_stored_get_their_status_and_headers() {
    for row in rows() {
        let connector = Connector::start_with(row.configure).await;

        let reply = connector.send((row.request)(&connector)).await;

        assert_rejected(row.case, &reply, row.status);
        assert!(
            connector.store.kept().is_empty(),
            "{}: nothing stored, not even in quarantine",
            row.case
        );
    }
}

#[tokio::test]
async fn over_the_rate_limit_is_429_with_retry_after() {
    let connector = Connector::start_with(|c| c.endpoints[0].rate_limit_per_ip = 1).await;

    let first = connector.post_json(fixture(CASE_CLOSURE)).await;
    let second = connector.post_json(fixture(CASE_CLOSURE)).await;

    assert_eq!(first.status, 200);
    assert_rejected("429", &second, 429);
    let seconds: u32 = second.header("retry-after").unwrap().parse().unwrap();
    assert!(seconds >= 1);
}

// --- 503: may succeed on a retry ------------------------------------------------------------

#[tokio::test]
async fn a_store_that_cannot_take_the_record_is_503_with_retry_after() {
    // (case, how the store fails, Retry-After)
    let rows = [
        ("kafka did not ack, no spool", Behaviour::Timeout, "5"),
        ("the producer queue is full", Behaviour::QueueFull, "1"),
        ("kafka down and the spool full", Behaviour::SpoolFull, "5"),
    ];
    for (case, behaviour, retry_after) in rows {
        let connector = Connector::start().await;
        connector.store.set_behaviour(behaviour);

        let reply = connector.post_json(fixture(CASE_CLOSURE)).await;

        assert_rejected(case, &reply, 503);
        assert_eq!(reply.header("retry-after"), Some(retry_after), "{case}");
        assert!(connector.store.kept().is_empty(), "{case}");
    }
}

#[tokio::test]
async fn a_quarantine_write_that_fails_is_503_not_the_bodys_200_or_400() {
    for (case, body) in [
        ("schema mismatch (else 200)", schema_mismatch()),
        ("not JSON (else 400)", b"not json".to_vec()),
    ] {
        let connector = Connector::start().await;
        connector.store.set_topic_behaviour(
            &riskos_connector::pipeline::route::quarantine_topic(
                &connector.config.endpoints[0].topic_prefix,
            ),
            Behaviour::Timeout,
        );

        let reply = connector.post_json(body).await;

        assert_rejected(case, &reply, 503);
        assert!(connector.store.kept().is_empty(), "{case}");
    }
}

/// One request held in the store (a slow Kafka) while a second arrives: the second finds the
/// capacity taken.
async fn second_while_one_is_held(configure: impl FnOnce(&mut Config)) -> (Reply, Reply, usize) {
    let connector = Connector::start_with(configure).await;
    connector.store.hold();
    let request = connector
        .post()
        .body(Body::from(fixture(CASE_CLOSURE)))
        .unwrap();
    let meanwhile = async {
        while connector.store.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let refused = connector.post_json(fixture(CASE_CLOSURE)).await;
        connector.store.release();
        refused
    };
    let (held, refused) = tokio::join!(connector.send(request), meanwhile);
    (held, refused, connector.store.kept().len())
}

#[tokio::test]
async fn with_capacity_taken_a_request_is_503_and_the_held_one_completes() {
    // Budget = the largest body: one case-closure body held leaves less than another.
    let budget = fixture(CASE_CLOSURE).len() + 100;
    type Configure = Box<dyn FnOnce(&mut Config)>;
    let rows: [(&str, Configure, &str); 2] = [
        (
            "http.max_in_flight",
            Box::new(|c| c.http.max_in_flight = 1),
            "1",
        ),
        (
            "http.max_body_bytes_in_flight",
            Box::new(move |c| {
                c.http.max_body_bytes = budget;
                c.http.max_body_bytes_in_flight = budget;
            }),
            "1",
        ),
    ];
    for (case, configure, retry_after) in rows {
        let (held, refused, kept) = second_while_one_is_held(configure).await;

        assert_rejected(case, &refused, 503);
        assert_eq!(refused.header("retry-after"), Some(retry_after), "{case}");
        assert_eq!(held.status, 200, "{case}");
        assert_eq!(kept, 1, "{case}: only the held request");
    }
}

// --- headers on every answer ------------------------------------------------------------------

#[tokio::test]
async fn every_answer_carries_a_request_id_echoing_a_sane_one_sent() {
    let connector = Connector::start().await;
    let sent = connector
        .send(
            connector
                .post()
                .header("x-request-id", "vendor-req-42")
                .body(Body::from(fixture(CASE_CLOSURE)))
                .unwrap(),
        )
        .await;
    let generated = connector.post_json(b"not json".to_vec()).await;
    let insane = connector
        .send(
            connector
                .post()
                .header("x-request-id", "has spaces and is not graphic")
                .body(Body::from(fixture(CASE_CLOSURE)))
                .unwrap(),
        )
        .await;

    assert_eq!(sent.header("x-request-id"), Some("vendor-req-42"));
    for (case, reply) in [("generated", &generated), ("replaced", &insane)] {
        let id = reply.header("x-request-id").unwrap();
        assert_eq!(id.len(), 32, "{case}: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{case}: {id}");
    }
}
