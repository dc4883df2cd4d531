//! Issue 11's auth and envelope items, end to end against a real broker: each ambiguous or
//! malformed request gets its status, nothing of it reaches an event topic (bodies are kept in
//! quarantine where stated), and the log line names the reason.
//!
//! - a JWT without `kid` (401 `jwt_missing_kid`);
//! - a repeated `Authorization` (basic, bearer, oauth2: 401 `duplicate_authorization`; the
//!   token endpoint: 400 `invalid_request`, `token_duplicate_authorization`) or HMAC header
//!   (401 `hmac_duplicate_header`);
//! - a repeated key anywhere in the body (400, quarantined as `duplicate_key` with its path);
//! - ids with surrounding whitespace or control characters, ids and types over 256 bytes
//!   (400, quarantined as `invalid_envelope` naming the field);
//! - client-secret guessing at the token endpoint (429 + `Retry-After` after a few failures,
//!   per client address; a success resets it).
//!
//! Tests run on the current-thread runtime so [`logs::capture`] sees the service's lines.

use base64::Engine as _;
use riskos_connector::auth::hmac::sign_hex;
use riskos_connector::auth::token_endpoint::ClientConfig;
use riskos_connector::auth::AuthMode;
use riskos_connector::config::Config;
use riskos_connector::secret::Secret;
use serde_json::{json, Value};

use crate::helpers::jwt::{good_claims, JwksDouble, SigningKey, AUDIENCE, ISSUER};
use crate::helpers::kafka::{read_all, Record};
use crate::helpers::{fixtures, logs, Broker, Stack};

const BASIC_PAIR: &str = "riskos:correct-horse-battery-staple";
const BEARER_TOKEN: &str = "6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e";
const HMAC_SECRET: &str = "hmac-secret-of-the-request-token-sender";
const CLIENT_ID: &str = "riskos-dashboard";
const CLIENT_SECRET: &str = "dashboard-client-secret";
const SIGNING_SECRET: &str = "token-endpoint-signing-secret-0123456789";
const QUARANTINE: &str = "riskos.quarantine";
/// The `kind` of the token endpoint's back-off 429. (`rate_limited` until `ApiError` has a
/// variant of its own for it.)
const BACKOFF_KIND: &str = "token_backoff";

fn basic_header(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

fn evaluation_fixture() -> Vec<u8> {
    fixtures::all()
        .into_iter()
        .find(|(name, _)| name == "riskos.evaluation_completed.docv.json")
        .unwrap()
        .1
}

async fn post(
    stack: &Stack,
    headers: &[(&str, String)],
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let app = &stack.app;
    let mut request = app
        .client
        .post(app.url(&app.config.http.path))
        .header("content-type", "application/json")
        .body(body);
    // `header` appends: a name given twice is sent twice.
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.expect("request")
}

/// Records on every topic but quarantine.
fn on_event_topics(broker: &Broker) -> Vec<Record> {
    broker
        .topics()
        .iter()
        .filter(|t| t.starts_with("riskos.") && *t != QUARANTINE)
        .flat_map(|t| read_all(&broker.bootstrap(), t))
        .collect()
}

fn quarantined(broker: &Broker) -> Vec<Record> {
    if broker.topics().iter().any(|t| t == QUARANTINE) {
        read_all(&broker.bootstrap(), QUARANTINE)
    } else {
        Vec::new()
    }
}

/// The `kind` of every rejection logged so far, in order.
fn rejected_kinds(logs: &logs::Logs) -> Vec<String> {
    logs.with_message("webhook rejected")
        .iter()
        .map(|l| l["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Items 1 and 2: the JWT's kid, repeated auth headers
// ---------------------------------------------------------------------------------------------

/// A change to a connector's config.
type Adjust = Box<dyn Fn(&mut Config)>;

fn oauth2(config: &mut Config, jwks_url: &str) {
    config.auth.mode = Some(AuthMode::OAuth2);
    config.auth.oauth2.jwks_url = Some(jwks_url.to_string());
    config.auth.oauth2.issuer = ISSUER.into();
    config.auth.oauth2.audience = AUDIENCE.into();
}

#[tokio::test]
async fn a_jwt_without_a_kid_is_refused_though_the_only_key_verifies_it() {
    // Arrange: one published key, so a kid-less token matches exactly one key.
    let (_guard, logs) = logs::capture();
    let idp = SigningKey::generate("idp-1");
    let jwks = JwksDouble::start(&[&idp]).await;
    let url = jwks.url.clone();
    let stack = Stack::start_with(|c| oauth2(c, &url)).await;
    let fetches_before = jwks.fetches();
    let token = idp.sign_without_kid(&good_claims());

    // Act
    let response = post(
        &stack,
        &[("authorization", format!("Bearer {token}"))],
        evaluation_fixture(),
    )
    .await;

    // Assert
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="riskos-connector", error="invalid_token""#
    );
    assert_eq!(rejected_kinds(&logs), ["jwt_missing_kid"]);
    assert_eq!(jwks.fetches(), fetches_before, "no JWKS refetch for it");
    assert!(on_event_topics(&stack.broker).is_empty());
    assert!(quarantined(&stack.broker).is_empty());
    // Control: the same key with its kid is accepted.
    let named = idp.sign(&good_claims());
    let response = post(
        &stack,
        &[("authorization", format!("Bearer {named}"))],
        evaluation_fixture(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(on_event_topics(&stack.broker).len(), 1);
}

#[tokio::test]
async fn a_repeated_authorization_header_is_refused_in_every_mode_that_reads_it() {
    // Arrange: one broker, a connector per mode; each gets a valid credential twice, a valid
    // one then a wrong one, and a wrong one then a valid one.
    let (_guard, logs) = logs::capture();
    let idp = SigningKey::generate("idp-1");
    let jwks = JwksDouble::start(&[&idp]).await;
    let url = jwks.url.clone();
    let modes: Vec<(&str, Adjust, String, String)> = vec![
        (
            "basic",
            Box::new(|c: &mut Config| {
                c.auth.mode = Some(AuthMode::Basic);
                c.auth.basic.credentials = vec![Secret::new(BASIC_PAIR)];
            }),
            basic_header(BASIC_PAIR),
            basic_header("riskos:wrong-horse-battery-staple"),
        ),
        (
            "bearer",
            Box::new(|c: &mut Config| {
                c.auth.mode = Some(AuthMode::Bearer);
                c.auth.bearer.tokens = vec![Secret::new(BEARER_TOKEN)];
            }),
            format!("Bearer {BEARER_TOKEN}"),
            "Bearer 00000000-0000-0000-0000-000000000000".to_string(),
        ),
        (
            "oauth2",
            Box::new(move |c: &mut Config| oauth2(c, &url)),
            format!("Bearer {}", idp.sign(&good_claims())),
            format!(
                "Bearer {}",
                SigningKey::generate("idp-1").sign(&good_claims())
            ),
        ),
    ];

    for (mode, adjust, good, wrong) in modes {
        let stack = Stack::start_with(|c| adjust(c)).await;
        let before = rejected_kinds(&logs).len();

        // Act
        let mut statuses = Vec::new();
        for pair in [
            [good.clone(), good.clone()],
            [good.clone(), wrong.clone()],
            [wrong.clone(), good.clone()],
        ] {
            let headers: Vec<(&str, String)> =
                pair.into_iter().map(|v| ("authorization", v)).collect();
            statuses.push(
                post(&stack, &headers, evaluation_fixture())
                    .await
                    .status()
                    .as_u16(),
            );
        }

        // Assert
        assert_eq!(statuses, [401, 401, 401], "{mode}");
        assert_eq!(
            rejected_kinds(&logs)[before..],
            ["duplicate_authorization"; 3],
            "{mode}"
        );
        assert!(on_event_topics(&stack.broker).is_empty(), "{mode}");
        assert!(quarantined(&stack.broker).is_empty(), "{mode}");
        // Control: one header alone is accepted.
        let response = post(&stack, &[("authorization", good)], evaluation_fixture()).await;
        assert_eq!(response.status(), 200, "{mode}");
    }
}

#[tokio::test]
async fn a_repeated_hmac_signature_or_timestamp_header_is_refused() {
    // Arrange
    let (_guard, logs) = logs::capture();
    let stack = Stack::start_with(|c| {
        c.auth.mode = Some(AuthMode::Hmac);
        c.auth.hmac.secrets = vec![Secret::new(HMAC_SECRET)];
        c.auth.hmac.timestamp_header = Some("X-Timestamp".into());
    })
    .await;
    let body = evaluation_fixture();
    let now = jsonwebtoken::get_current_timestamp();
    let sign = |at: u64| sign_hex(HMAC_SECRET.as_bytes(), Some(&at.to_string()), &body);
    let wrong = sign_hex(b"some-other-secret-entirely", Some(&now.to_string()), &body);
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![
            ("x-signature", sign(now)),
            ("x-signature", wrong.clone()),
            ("x-timestamp", now.to_string()),
        ],
        vec![
            ("x-signature", wrong),
            ("x-signature", sign(now)),
            ("x-timestamp", now.to_string()),
        ],
        vec![
            ("x-signature", sign(now)),
            ("x-timestamp", now.to_string()),
            ("x-timestamp", (now - 1).to_string()),
        ],
    ];

    // Act
    let mut statuses = Vec::new();
    for headers in &cases {
        statuses.push(post(&stack, headers, body.clone()).await.status().as_u16());
    }

    // Assert
    assert_eq!(statuses, [401, 401, 401]);
    assert_eq!(rejected_kinds(&logs), ["hmac_duplicate_header"; 3]);
    assert!(on_event_topics(&stack.broker).is_empty());
    assert!(quarantined(&stack.broker).is_empty());
    let single = vec![("x-signature", sign(now)), ("x-timestamp", now.to_string())];
    assert_eq!(post(&stack, &single, body.clone()).await.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Item 5 (and 2): the token endpoint
// ---------------------------------------------------------------------------------------------

fn token_endpoint(config: &mut Config) {
    config.auth.mode = Some(AuthMode::OAuth2);
    config.auth.oauth2.issuer = "https://connector.test".into();
    config.auth.oauth2.audience = AUDIENCE.into();
    let endpoint = &mut config.auth.oauth2.token_endpoint;
    endpoint.clients = vec![ClientConfig {
        client_id: CLIENT_ID.into(),
        client_secret: Some(Secret::new(CLIENT_SECRET)),
        client_secret_file: None,
    }];
    endpoint.signing_secrets = vec![Secret::new(SIGNING_SECRET)];
    // Every client address below is named by a proxy on loopback.
    config.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

/// A token request from `client` (its address as the proxy reports it) with `secret`.
async fn ask_token(stack: &Stack, client: &str, secret: &str) -> reqwest::Response {
    stack
        .app
        .client
        .post(stack.app.url("/oauth2/token"))
        .header("x-forwarded-for", client)
        .header(
            "authorization",
            basic_header(&format!("{CLIENT_ID}:{secret}")),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_authorization_headers_at_the_token_endpoint_are_an_invalid_request() {
    let (_guard, logs) = logs::capture();
    let stack = Stack::start_with(token_endpoint).await;
    let good = basic_header(&format!("{CLIENT_ID}:{CLIENT_SECRET}"));

    let response = stack
        .app
        .client
        .post(stack.app.url("/oauth2/token"))
        .header("authorization", good.clone())
        .header("authorization", basic_header(&format!("{CLIENT_ID}:guess")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["error"], "invalid_request");
    assert_eq!(rejected_kinds(&logs), ["token_duplicate_authorization"]);
    assert_eq!(
        ask_token(&stack, "198.51.100.1", CLIENT_SECRET)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn guessing_client_secrets_makes_the_address_wait_and_a_success_resets_it() {
    // Arrange: defaults (5 failures, then a wait from 1 s); three client addresses.
    let (_guard, logs) = logs::capture();
    let stack = Stack::start_with(token_endpoint).await;
    let (guesser, bystander, forgetful) = ("198.51.100.7", "198.51.100.8", "198.51.100.9");

    // Act + Assert: five wrong guesses are each answered 401...
    for i in 0..5 {
        let response = ask_token(&stack, guesser, &format!("guess-{i}")).await;
        assert_eq!(response.status(), 401, "guess {i}");
    }
    // ...then the address waits: even the right secret is not checked.
    let blocked = ask_token(&stack, guesser, CLIENT_SECRET).await;
    assert_eq!(blocked.status(), 429);
    let retry_after: u32 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert_eq!(
        rejected_kinds(&logs),
        [
            "token_invalid_client",
            "token_invalid_client",
            "token_invalid_client",
            "token_invalid_client",
            "token_invalid_client",
            BACKOFF_KIND
        ]
    );
    let waits = logs.with_message(
        "token endpoint: repeated failed client authentication, the address must wait",
    );
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert_eq!(waits[0]["wait_ms"], 1000);

    // Another address is unaffected.
    assert_eq!(
        ask_token(&stack, bystander, CLIENT_SECRET).await.status(),
        200
    );

    // A success resets the count: 4 failures, a success, 4 more failures are all 401.
    let mut statuses = Vec::new();
    for secret in ["a", "b", "c", "d", CLIENT_SECRET, "e", "f", "g", "h"] {
        statuses.push(ask_token(&stack, forgetful, secret).await.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 200, 401, 401, 401, 401]);
    // The fifth failure since the success starts the wait.
    assert_eq!(ask_token(&stack, forgetful, "i").await.status(), 401);
    assert_eq!(
        ask_token(&stack, forgetful, CLIENT_SECRET).await.status(),
        429
    );
}

// ---------------------------------------------------------------------------------------------
// Items 3 and 4: the body
// ---------------------------------------------------------------------------------------------

/// Posts each body, expects 400 for all, then checks quarantine holds each one with `reason`
/// and `field`, nothing is on an event topic, and the log names the reason.
async fn refused_and_quarantined(bodies: &[(String, &str, &str)]) {
    let (_guard, logs) = logs::capture();
    let stack = Stack::start().await;

    let mut statuses = Vec::new();
    for (body, _, _) in bodies {
        statuses.push(stack.app.post_webhook(body.clone()).await.status().as_u16());
    }

    assert_eq!(statuses, vec![400; bodies.len()]);
    assert!(on_event_topics(&stack.broker).is_empty());
    let kept = quarantined(&stack.broker);
    assert_eq!(kept.len(), bodies.len());
    for (record, (body, reason, field)) in kept.iter().zip(bodies) {
        assert_eq!(record.payload, body.as_bytes());
        assert_eq!(
            record.header("quarantine_reason"),
            Some(*reason),
            "{body:.80}"
        );
        assert_eq!(
            record.header("quarantine_field"),
            Some(*field),
            "{body:.80}"
        );
        assert!(
            record.header("quarantine_error").unwrap().contains(field),
            "{:?}",
            record.header("quarantine_error")
        );
    }
    let expected: Vec<&str> = bodies.iter().map(|(_, reason, _)| *reason).collect();
    assert_eq!(rejected_kinds(&logs), expected);
    let quarantine_lines = logs.with_message("quarantined");
    let reasons: Vec<&str> = quarantine_lines
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, expected);
}

#[tokio::test]
async fn a_body_with_a_repeated_key_at_any_depth_is_refused_and_quarantined() {
    let fixture = String::from_utf8(evaluation_fixture()).unwrap();
    // serde_json would keep the last `event_id` as the Kafka key, `raw` would show both.
    let top = fixture.replacen('{', r#"{"event_id": "first-of-two","#, 1);
    let nested = fixture.replacen(
        r#""decision": "ACCEPT","#,
        r#""decision": "ACCEPT", "decision": "REJECT","#,
        1,
    );
    let in_array = fixture.replacen(
        r#"{ "...": "#,
        r#"{ "provider": "a", "provider": "b", "...": "#,
        1,
    );
    assert!(top != fixture && nested != fixture && in_array != fixture);
    refused_and_quarantined(&[
        (top, "duplicate_key", "event_id"),
        (nested, "duplicate_key", "data.decision"),
        (
            in_array,
            "duplicate_key",
            "data.data_enrichments[0].provider",
        ),
    ])
    .await;
}

#[tokio::test]
async fn ids_and_types_that_would_make_bad_keys_or_headers_are_refused_and_quarantined() {
    let event = |id: &str, event_type: &str| {
        json!({"event_id": id, "event_type": event_type,
               "event_at": "2025-11-02T09:16:00Z", "data": {"eval_id": "ev-1"}})
        .to_string()
    };
    let token = |id: &str, event_type: &str| {
        json!({"request_token": id, "type": event_type, "timestamp": 1_692_223_050_044i64,
               "data": {}})
        .to_string()
    };
    let long = "x".repeat(257);
    let invalid = "invalid_envelope";
    refused_and_quarantined(&[
        (event("   ", "evaluation_completed"), invalid, "event_id"),
        (event(" e-1", "evaluation_completed"), invalid, "event_id"),
        (
            event("e-1\u{a0}", "evaluation_completed"),
            invalid,
            "event_id",
        ),
        (
            event("e-\u{1}1", "evaluation_completed"),
            invalid,
            "event_id",
        ),
        (event("e-1\n", "evaluation_completed"), invalid, "event_id"),
        (event(&long, "evaluation_completed"), invalid, "event_id"),
        (
            event("e-1", "evaluation\u{7f}completed"),
            invalid,
            "event_type",
        ),
        (event("e-1", &long), invalid, "event_type"),
        (token("\trt-1", "create:cases"), invalid, "request_token"),
        (token(&long, "create:cases"), invalid, "request_token"),
        (token("rt-1", "create:\u{0}cases"), invalid, "type"),
        (token("rt-1", &long), invalid, "type"),
    ])
    .await;
}
