//! Several endpoints on one listener (`[[endpoints]]`): a RiskOS Production endpoint (bearer
//! token plus a required static header, the vendor's Production addresses), a Sandbox one
//! (basic credentials, the Sandbox address, its own topic prefix, a small capacity share) and
//! an Alloy one (HMAC of the body, base64, raw in `Authorization`, request-token envelope only).
//! Each accepts only its own credentials, sources and header; its records land in its own
//! topics with its name in the `endpoint` header, its log lines and its metric labels; a flood
//! on one does not take another's capacity. And Standard Webhooks on an endpoint: a sender's
//! retry under the same `webhook-id` is stored once; Svix's default `svix-*` header names are
//! accepted and keyed the same way, and a mix of the two families is refused.

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use hmac::Mac;
use riskos_connector::common::secret::Secret;
use riskos_connector::ingress::auth::standard_webhooks::StandardWebhooksConfig;
use riskos_connector::ingress::auth::AuthMode;
use riskos_connector::ingress::net::Cidr;
use riskos_connector::pipeline::envelope::EnvelopeKind;
use riskos_connector::wiring::config::{Config, EndpointConfig, RequiredHeaderConfig};
use serde_json::Value;

use support::logs;
use support::{fixture, Connector, Reply};

const PRODUCTION_TOKEN: &str = "0f5c3a1e-7d0b-4b8e-9a51-3c2f0d6e8a11";
const PRODUCTION_KEY: &str = "prod-static-header-value-42";
const SANDBOX_USER: &str = "sandbox:s3cret-sandbox-password";
const ALLOY_SECRET: &str = "alloy-shared-secret-0123456789";
const PRODUCTION_IP: &str = "35.199.32.202";
const PRODUCTION_IP_2: &str = "3.138.161.243";
const SANDBOX_IP: &str = "35.230.191.253";
const ANY_IP: &str = "198.51.100.7";
const ENV_KEY_HEADER: &str = "x-riskos-environment-key";

const CASE_CLOSURE: &str = "riskos.case_closure.match.json";
const REQUEST_TOKEN: &str = "request_token.create_cases.json";

fn cidrs(ips: &[&str]) -> Vec<Cidr> {
    ips.iter().map(|ip| ip.parse().unwrap()).collect()
}

/// Production, Sandbox and Alloy, with endpoint names made unique by `tag` (the metrics
/// recorder is one per test binary).
fn three_endpoints(config: &mut Config, tag: &str) {
    let mut production = EndpointConfig::new(&format!("production-{tag}"));
    production.path = "/webhooks/riskos".into();
    production.topic_prefix = "riskos.".into();
    production.allow_cidrs = cidrs(&[PRODUCTION_IP, PRODUCTION_IP_2]);
    production.auth.mode = Some(AuthMode::Bearer);
    production.auth.bearer.tokens = vec![Secret::new(PRODUCTION_TOKEN)];
    production.required_headers = vec![RequiredHeaderConfig {
        name: "X-RiskOS-Environment-Key".into(),
        values: vec![Secret::new(PRODUCTION_KEY)],
        values_file: None,
    }];

    let mut sandbox = EndpointConfig::new(&format!("sandbox-{tag}"));
    sandbox.path = "/webhooks/riskos-sandbox".into();
    sandbox.topic_prefix = "riskos.sandbox.".into();
    sandbox.allow_cidrs = cidrs(&[SANDBOX_IP]);
    sandbox.auth.mode = Some(AuthMode::Basic);
    sandbox.auth.basic.credentials = vec![Secret::new(SANDBOX_USER)];

    let mut alloy = EndpointConfig::new(&format!("alloy-{tag}"));
    alloy.path = "/webhooks/alloy".into();
    alloy.topic_prefix = "alloy.".into();
    alloy.envelopes = vec![EnvelopeKind::RequestToken];
    alloy.auth.mode = Some(AuthMode::Hmac);
    alloy.auth.hmac.secrets = vec![Secret::new(ALLOY_SECRET)];
    alloy.auth.hmac.header = "Authorization".into();
    alloy.auth.hmac.encoding = riskos_connector::ingress::auth::hmac::SignatureEncoding::Base64;
    // Its quarantined bodies are compared byte for byte below.
    alloy.raw = riskos_connector::pipeline::protect::RawPolicy::Keep;

    config.endpoints = vec![production, sandbox, alloy];
}

/// Alloy's signature: HMAC-SHA256 of the body bytes, base64, no timestamp.
fn alloy_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn basic(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

/// A JSON POST to `path` with `headers`.
fn post(path: &str, headers: &[(&str, String)], body: &[u8]) -> Request<Body> {
    let mut request = Request::post(path).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.body(Body::from(body.to_vec())).unwrap()
}

async fn send(connector: &Connector, ip: &str, request: Request<Body>) -> Reply {
    connector.send_from(&format!("{ip}:40000"), request).await
}

/// One row: what is sent where, from where, and the status it must get.
struct Row {
    case: &'static str,
    path: &'static str,
    ip: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
}

#[tokio::test]
async fn each_endpoint_accepts_only_its_own_credentials_sources_and_header() {
    let connector = Connector::start_with(|c| three_endpoints(c, "own")).await;
    let case_closure = fixture(CASE_CLOSURE);
    let request_token = fixture(REQUEST_TOKEN);
    let bearer = || ("authorization", format!("Bearer {PRODUCTION_TOKEN}"));
    let key = |value: &str| (ENV_KEY_HEADER, value.to_string());
    let alloy = |body: &[u8]| ("authorization", alloy_signature(ALLOY_SECRET, body));
    let rows = [
        Row {
            case: "production: token + static header from a Production address",
            path: "/webhooks/riskos",
            ip: PRODUCTION_IP,
            headers: vec![bearer(), key(PRODUCTION_KEY)],
            body: case_closure.clone(),
            status: 200,
        },
        Row {
            case: "production: from its second address",
            path: "/webhooks/riskos",
            ip: PRODUCTION_IP_2,
            headers: vec![bearer(), key(PRODUCTION_KEY)],
            body: request_token.clone(),
            status: 200,
        },
        Row {
            case: "production: token without the static header",
            path: "/webhooks/riskos",
            ip: PRODUCTION_IP,
            headers: vec![bearer()],
            body: case_closure.clone(),
            status: 401,
        },
        Row {
            case: "production: token with a wrong static header",
            path: "/webhooks/riskos",
            ip: PRODUCTION_IP,
            headers: vec![bearer(), key("prod-static-header-value-43")],
            body: case_closure.clone(),
            status: 401,
        },
        Row {
            case: "production: the static header alone",
            path: "/webhooks/riskos",
            ip: PRODUCTION_IP,
            headers: vec![key(PRODUCTION_KEY)],
            body: case_closure.clone(),
            status: 401,
        },
        Row {
            case: "production: Sandbox's credentials",
            path: "/webhooks/riskos",
            ip: PRODUCTION_IP,
            headers: vec![("authorization", basic(SANDBOX_USER)), key(PRODUCTION_KEY)],
            body: case_closure.clone(),
            status: 401,
        },
        Row {
            case: "production: from the Sandbox address",
            path: "/webhooks/riskos",
            ip: SANDBOX_IP,
            headers: vec![bearer(), key(PRODUCTION_KEY)],
            body: case_closure.clone(),
            status: 403,
        },
        Row {
            case: "sandbox: its basic credentials from the Sandbox address",
            path: "/webhooks/riskos-sandbox",
            ip: SANDBOX_IP,
            headers: vec![("authorization", basic(SANDBOX_USER))],
            body: case_closure.clone(),
            status: 200,
        },
        Row {
            case: "sandbox: Production's token and header",
            path: "/webhooks/riskos-sandbox",
            ip: SANDBOX_IP,
            headers: vec![bearer(), key(PRODUCTION_KEY)],
            body: case_closure.clone(),
            status: 401,
        },
        Row {
            case: "sandbox: from a Production address",
            path: "/webhooks/riskos-sandbox",
            ip: PRODUCTION_IP,
            headers: vec![("authorization", basic(SANDBOX_USER))],
            body: case_closure.clone(),
            status: 403,
        },
        Row {
            case: "alloy: the body's HMAC, base64, raw in Authorization",
            path: "/webhooks/alloy",
            ip: ANY_IP,
            headers: vec![alloy(&request_token)],
            body: request_token.clone(),
            status: 200,
        },
        Row {
            case: "alloy: Production's bearer token",
            path: "/webhooks/alloy",
            ip: ANY_IP,
            headers: vec![bearer()],
            body: request_token.clone(),
            status: 401,
        },
        Row {
            case: "alloy: a signature of another body",
            path: "/webhooks/alloy",
            ip: ANY_IP,
            headers: vec![alloy(&case_closure)],
            body: request_token.clone(),
            status: 401,
        },
        Row {
            case: "alloy: a signed RiskOS envelope, which it does not accept",
            path: "/webhooks/alloy",
            ip: ANY_IP,
            headers: vec![alloy(&case_closure)],
            body: case_closure.clone(),
            status: 400,
        },
    ];
    for row in rows {
        let reply = send(&connector, row.ip, post(row.path, &row.headers, &row.body)).await;
        assert_eq!(
            reply.status.as_u16(),
            row.status,
            "{}: {}",
            row.case,
            String::from_utf8_lossy(&reply.body)
        );
        if row.status == 401 {
            assert!(reply.header("www-authenticate").is_some(), "{}", row.case);
        }
    }

    // Each endpoint's records are in its own topics, named in their `endpoint` header.
    let kept = connector.store.kept();
    let on = |prefix: &str| -> Vec<_> {
        kept.iter()
            .filter(|k| k.topic.starts_with(prefix) && !k.topic.ends_with("quarantine"))
            .filter(|k| !k.topic.starts_with("riskos.sandbox.") || prefix == "riskos.sandbox.")
            .collect()
    };
    let production = on("riskos.");
    assert_eq!(production.len(), 2, "{kept:?}");
    assert!(production
        .iter()
        .all(|k| k.header("endpoint") == Some("production-own")));
    let sandbox = on("riskos.sandbox.");
    assert_eq!(sandbox.len(), 1, "{kept:?}");
    assert_eq!(
        sandbox[0].topic,
        "riskos.sandbox.case_management_notification_case_closure"
    );
    assert_eq!(sandbox[0].header("endpoint"), Some("sandbox-own"));
    let alloy_records = on("alloy.");
    assert_eq!(alloy_records.len(), 1, "{kept:?}");
    assert_eq!(alloy_records[0].topic, "alloy.create.cases");
    assert_eq!(alloy_records[0].header("endpoint"), Some("alloy-own"));
    // The envelope Alloy's endpoint does not take is kept raw in its own quarantine.
    let quarantined = connector.on_topic("alloy.quarantine");
    assert_eq!(quarantined.len(), 1, "{kept:?}");
    assert_eq!(
        quarantined[0].header("quarantine_reason"),
        Some("envelope_not_accepted")
    );
    assert_eq!(quarantined[0].header("endpoint"), Some("alloy-own"));
    assert_eq!(
        quarantined[0].header("event_type"),
        Some("case_management_notification_case_closure"),
        "the envelope was readable, so the record says what it was"
    );
    assert!(quarantined[0].key.is_some());
    assert_eq!(quarantined[0].value, case_closure);
    assert!(connector.on_topic("riskos.quarantine").is_empty());
    assert_eq!(kept.len(), 5, "nothing else was stored: {kept:?}");
}

#[tokio::test]
async fn the_endpoint_name_is_in_its_log_lines_and_metric_labels() {
    let (_guard, logs) = logs::capture();
    let connector = Connector::start_with(|c| three_endpoints(c, "seen")).await;
    let accepted = send(
        &connector,
        SANDBOX_IP,
        post(
            "/webhooks/riskos-sandbox",
            &[("authorization", basic(SANDBOX_USER))],
            &fixture(CASE_CLOSURE),
        ),
    )
    .await;
    assert_eq!(accepted.status, 200);
    let refused = send(
        &connector,
        PRODUCTION_IP,
        post(
            "/webhooks/riskos",
            &[("authorization", format!("Bearer {PRODUCTION_TOKEN}"))],
            &fixture(CASE_CLOSURE),
        ),
    )
    .await;
    assert_eq!(refused.status, 401);

    // Every line logged inside a request names its endpoint.
    let lines = logs.lines();
    let in_request: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["request_id"].is_string() || l["spans"].is_array())
        .collect();
    let endpoint_of = |line: &Value| -> Option<String> {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|span| span["endpoint"].as_str().map(str::to_string))
    };
    let named = |message: &str| -> Vec<Option<String>> {
        in_request
            .iter()
            .filter(|l| l["fields"]["message"] == message)
            .map(|l| endpoint_of(l))
            .collect()
    };
    assert_eq!(named("accepted"), [Some("sandbox-seen".to_string())]);
    assert_eq!(
        named("webhook rejected"),
        [Some("production-seen".to_string())]
    );
    assert!(
        in_request.iter().all(|l| endpoint_of(l).is_some()),
        "{in_request:#?}"
    );

    // The request, rejection and auth-failure counters carry it as a label.
    let metrics = connector
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    let text = String::from_utf8(metrics.body).unwrap();
    let has = |series: &str| text.lines().any(|l| l.starts_with(series));
    assert!(
        has(
            r#"riskos_requests_total{endpoint="sandbox-seen",status="200",event_type="case_management_notification_case_closure"} 1"#
        ),
        "{text}"
    );
    assert!(
        has(
            r#"riskos_requests_total{endpoint="production-seen",status="401",event_type="none"} 1"#
        ),
        "{text}"
    );
    assert!(
        has(r#"riskos_rejections_total{endpoint="production-seen",kind="required_header"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"riskos_auth_failures_total{endpoint="production-seen",reason="required_header"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_flood_on_one_endpoint_does_not_take_anothers_capacity() {
    // Sandbox may hold one request; Production the rest of the listener's slots.
    let connector = Connector::start_with(|c| {
        three_endpoints(c, "flood");
        c.http.max_in_flight = 8;
        c.endpoints[1].max_in_flight = Some(1);
        c.endpoints[1].rate_limit_per_ip = 2;
    })
    .await;
    let sandbox = |body: &[u8]| {
        post(
            "/webhooks/riskos-sandbox",
            &[("authorization", basic(SANDBOX_USER))],
            body,
        )
    };
    let production = || {
        post(
            "/webhooks/riskos",
            &[
                ("authorization", format!("Bearer {PRODUCTION_TOKEN}")),
                (ENV_KEY_HEADER, PRODUCTION_KEY.to_string()),
            ],
            &fixture(CASE_CLOSURE),
        )
    };
    // A slow Kafka holds Sandbox's one request; Sandbox's next is shed, Production's is not.
    connector.store.hold();
    let held = send(&connector, SANDBOX_IP, sandbox(&fixture(CASE_CLOSURE)));
    let meanwhile = async {
        while connector.store.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let shed = send(&connector, SANDBOX_IP, sandbox(&fixture(REQUEST_TOKEN))).await;
        // Production's request is held too (the same slow Kafka), but admitted: it is waiting
        // for the store, not refused.
        let admitted = async {
            let reply = send(&connector, PRODUCTION_IP, production()).await;
            reply.status
        };
        let release = async {
            while connector.store.waiting() < 2 {
                tokio::task::yield_now().await;
            }
            connector.store.release();
        };
        let (status, ()) = tokio::join!(admitted, release);
        (shed, status)
    };
    let (held, (shed, production_status)) = tokio::join!(held, meanwhile);
    assert_eq!(held.status, 200);
    assert_eq!(shed.status, 503, "Sandbox over its share");
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert_eq!(production_status, 200, "Production keeps its slots");

    // Sandbox's client over its rate limit (2/s, this is its third request this second) gets
    // 429 there; the same client address is not limited on another endpoint.
    let limited = send(&connector, SANDBOX_IP, sandbox(&fixture(CASE_CLOSURE))).await;
    assert_eq!(limited.status, 429);
    let alloy_body = fixture(REQUEST_TOKEN);
    let alloy = send(
        &connector,
        SANDBOX_IP,
        post(
            "/webhooks/alloy",
            &[("authorization", alloy_signature(ALLOY_SECRET, &alloy_body))],
            &alloy_body,
        ),
    )
    .await;
    assert_eq!(alloy.status, 200, "the same address on another endpoint");
}

// --- Standard Webhooks on an endpoint ---------------------------------------------------------

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `webhook-*` headers signing `body` as message `id` at `at` (v1: HMAC-SHA256 of
/// `{id}.{at}.{body}` under the base64-decoded secret).
fn standard_webhooks_headers(id: &str, at: u64, body: &[u8]) -> Vec<(&'static str, String)> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(WHSEC.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{at}.").as_bytes());
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", at.to_string()),
        ("webhook-signature", format!("v1,{signature}")),
    ]
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_standard_webhooks_retry_under_the_same_id_is_stored_once() {
    let connector = Connector::start_with(|c| {
        let mut svix = EndpointConfig::new("svix");
        svix.auth.mode = Some(AuthMode::StandardWebhooks);
        svix.auth.standard_webhooks = StandardWebhooksConfig {
            secrets: vec![Secret::new(WHSEC)],
            ..StandardWebhooksConfig::default()
        };
        c.endpoints = vec![svix];
    })
    .await;
    let body = fixture(CASE_CLOSURE);
    let first = connector
        .send(post(
            "/webhooks/svix",
            &standard_webhooks_headers("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now(), &body),
            &body,
        ))
        .await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.json()["duplicate"], Value::Null);

    // The sender's retry: the same message id, signed again at a later time.
    let retry = connector
        .send(post(
            "/webhooks/svix",
            &standard_webhooks_headers("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now() + 30, &body),
            &body,
        ))
        .await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.json()["duplicate"], true);

    // Another message with the same body is another delivery (its id says so).
    let other = connector
        .send(post(
            "/webhooks/svix",
            &standard_webhooks_headers("msg_other", now(), &body),
            &body,
        ))
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.json()["duplicate"], Value::Null);
    assert_eq!(
        connector.store.attempts(),
        2,
        "stored twice, never for the retry"
    );

    // Outside the 5-minute tolerance, or with a tampered body: 401, nothing stored.
    let stale = connector
        .send(post(
            "/webhooks/svix",
            &standard_webhooks_headers("msg_stale", now() - 301, &body),
            &body,
        ))
        .await;
    assert_eq!(stale.status, 401);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let forged = connector
        .send(post(
            "/webhooks/svix",
            &standard_webhooks_headers("msg_forged", now(), &body),
            &tampered,
        ))
        .await;
    assert_eq!(forged.status, 401);
    assert_eq!(connector.store.attempts(), 2);
}

/// `headers` (`webhook-*`) under Svix's default names.
fn svix_named(headers: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    headers
        .into_iter()
        .map(|(name, value)| match name {
            "webhook-id" => ("svix-id", value),
            "webhook-timestamp" => ("svix-timestamp", value),
            "webhook-signature" => ("svix-signature", value),
            other => panic!("not a Standard Webhooks header: {other}"),
        })
        .collect()
}

#[tokio::test]
async fn svix_header_names_are_accepted_keyed_by_svix_id_and_never_mixed() {
    let connector = Connector::start_with(|c| {
        let mut svix = EndpointConfig::new("svix-named");
        svix.auth.mode = Some(AuthMode::StandardWebhooks);
        svix.auth.standard_webhooks = StandardWebhooksConfig {
            secrets: vec![Secret::new(WHSEC)],
            ..StandardWebhooksConfig::default()
        };
        c.endpoints = vec![svix];
    })
    .await;
    let body = fixture(CASE_CLOSURE);
    let send = |headers: Vec<(&'static str, String)>| {
        connector.send(post("/webhooks/svix-named", &headers, &body))
    };
    const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X";

    // What a default Svix sender posts: svix-id, svix-timestamp, svix-signature.
    let first = send(svix_named(standard_webhooks_headers(ID, now(), &body))).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.json()["duplicate"], Value::Null);
    // Its retry under the same svix-id, signed later: a duplicate, as for a webhook-id.
    let retry = send(svix_named(standard_webhooks_headers(ID, now() + 30, &body))).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.json()["duplicate"], true);
    // Another svix-id with the same body is another message: the id is the key, not the body.
    let another = send(svix_named(standard_webhooks_headers(
        "msg_svix_2",
        now(),
        &body,
    )))
    .await;
    assert_eq!(another.status, 200);
    assert_eq!(another.json()["duplicate"], Value::Null);
    assert_eq!(connector.store.attempts(), 2, "stored once per message");

    // A mix: the webhook-id with Svix's timestamp and signature (each header valid) → 401.
    let other = "msg_mixed";
    let mut mixed = svix_named(standard_webhooks_headers(other, now(), &body));
    mixed[0] = ("webhook-id", other.to_string());
    let refused = send(mixed).await;
    assert_eq!(refused.status, 401);
    // Both families, each a valid signature of another message: which one is meant is a guess.
    let mut both = svix_named(standard_webhooks_headers(other, now(), &body));
    both.extend(standard_webhooks_headers("msg_another", now(), &body));
    let refused = send(both).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        connector.store.attempts(),
        2,
        "nothing stored for the mixes"
    );
    let metrics = connector
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    let text = String::from_utf8(metrics.body).unwrap();
    let series = r#"riskos_auth_failures_total{endpoint="svix-named",reason="standard_webhooks_mixed_headers"} 2"#;
    assert!(text.lines().any(|l| l.starts_with(series)), "{text}");
}
