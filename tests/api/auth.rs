//! Ingress security end to end, against a real broker: every rejection class (and nothing of
//! it reaches Kafka), all five auth modes accepted, the OAuth2 token endpoint and JWKS key
//! rotation, HTTPS with certificate reload, and a full run of the binary whose logs contain
//! none of the configured secrets.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use riskos_connector::auth::hmac::sign_hex;
use riskos_connector::auth::token_endpoint::ClientConfig;
use riskos_connector::auth::AuthMode;
use riskos_connector::config::Config;
use riskos_connector::secret::Secret;
use serde_json::{json, Value};

use crate::helpers::decode::decode;
use crate::helpers::jwt::{alg_none, good_claims, with, JwksDouble, SigningKey, AUDIENCE, ISSUER};
use crate::helpers::kafka::read_all;
use crate::helpers::{fixtures, test_config, Broker, RegistryDouble, Stack, TestApp};

const BASIC_CURRENT: &str = "riskos:correct-horse-battery-staple";
const BASIC_NEXT: &str = "riskos:next-horse-battery-staple";
const BEARER_CURRENT: &str = "6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e";
const BEARER_NEXT: &str = "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d";
/// Valid before the last rotation, removed since.
const BEARER_RETIRED: &str = "11111111-2222-4333-8444-555555555555";
const HMAC_SECRET: &str = "hmac-secret-of-the-request-token-sender";
const SIGNING_SECRET: &str = "token-endpoint-signing-secret-0123456789";
/// The vendor's Production address (from the vendor guide), as seen behind our proxy.
const VENDOR_IP: &str = "3.138.161.243";

// ---------------------------------------------------------------------------------------------
// Configuration of each mode
// ---------------------------------------------------------------------------------------------

fn basic(config: &mut Config) {
    config.auth.mode = Some(AuthMode::Basic);
    config.auth.basic.credentials = vec![Secret::new(BASIC_CURRENT), Secret::new(BASIC_NEXT)];
}

fn bearer(config: &mut Config) {
    config.auth.mode = Some(AuthMode::Bearer);
    config.auth.bearer.tokens = vec![Secret::new(BEARER_CURRENT), Secret::new(BEARER_NEXT)];
}

fn oauth2(config: &mut Config, jwks_url: &str) {
    config.auth.mode = Some(AuthMode::OAuth2);
    config.auth.oauth2.jwks_url = Some(jwks_url.to_string());
    config.auth.oauth2.issuer = ISSUER.into();
    config.auth.oauth2.audience = AUDIENCE.into();
    // Every unknown kid refetches, so rotation is picked up at once in tests.
    config.auth.oauth2.jwks_min_refetch_secs = 0;
}

fn hmac(config: &mut Config) {
    config.auth.mode = Some(AuthMode::Hmac);
    config.auth.hmac.secrets = vec![Secret::new(HMAC_SECRET)];
    config.auth.hmac.timestamp_header = Some("X-Timestamp".into());
}

fn none(config: &mut Config) {
    config.auth.mode = Some(AuthMode::None);
}

/// A change to a connector's config.
type Adjust<'a> = Box<dyn Fn(&mut Config) + 'a>;

fn cidrs(list: &[&str]) -> Vec<riskos_connector::net::Cidr> {
    list.iter().map(|c| c.parse().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

fn basic_header(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

fn unix_now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// `X-Signature` and `X-Timestamp` for `body` signed at `at` with `secret`.
fn hmac_headers(secret: &str, at: u64, body: &[u8]) -> Vec<(&'static str, String)> {
    let timestamp = at.to_string();
    vec![
        (
            "x-signature",
            sign_hex(secret.as_bytes(), Some(&timestamp), body),
        ),
        ("x-timestamp", timestamp),
    ]
}

async fn post(
    app: &TestApp,
    headers: &[(&str, String)],
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&app.config.http.path))
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.expect("request")
}

/// Records on every connector topic (event topics and quarantine).
fn stored(broker: &Broker) -> usize {
    broker
        .topics()
        .iter()
        .filter(|t| t.starts_with("riskos."))
        .map(|t| read_all(&broker.bootstrap(), t).len())
        .sum()
}

fn fixture(index: usize) -> Vec<u8> {
    fixtures::all()[index].1.clone()
}

// ---------------------------------------------------------------------------------------------
// Rejections
// ---------------------------------------------------------------------------------------------

/// What a rejection must carry besides its status.
#[derive(Debug)]
enum Expect {
    /// `WWW-Authenticate` with this value.
    Challenge(&'static str),
    /// `Retry-After` with a whole number of seconds ≥ 1.
    RetryAfter,
    /// Neither header: not an auth problem and not worth retrying.
    NoChallengeNoRetry,
}

struct Row {
    class: &'static str,
    app: usize,
    headers: Vec<(&'static str, String)>,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    expect: Expect,
    /// Send up to this many times and judge the last answer (the rate limit needs a burst).
    attempts: usize,
}

const BASIC_CHALLENGE: &str = r#"Basic realm="riskos-connector", charset="UTF-8""#;
const BEARER_MISSING: &str = r#"Bearer realm="riskos-connector""#;
const BEARER_INVALID: &str = r#"Bearer realm="riskos-connector", error="invalid_token""#;
const HMAC_CHALLENGE: &str = r#"HMAC-SHA256 realm="riskos-connector""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_class_gets_its_status_and_header_and_nothing_reaches_kafka() {
    // Arrange: one broker, one connector per configuration under test.
    let broker = Broker::start_memory().await;
    let registry = RegistryDouble::start().await;
    let published = SigningKey::generate("idp-1");
    let unpublished = SigningKey::generate("idp-2");
    let jwks = JwksDouble::start(&[&published]).await;
    let configs: Vec<Adjust> = vec![
        Box::new(basic),                                 // 0
        Box::new(bearer),                                // 1
        Box::new(|c: &mut Config| oauth2(c, &jwks.url)), // 2
        Box::new(hmac),                                  // 3
        Box::new(|c: &mut Config| {
            // 4: the vendor only, no proxy in front: the TCP peer is the client.
            none(c);
            c.http.allow_cidrs = cidrs(&[VENDOR_IP]);
        }),
        Box::new(|c: &mut Config| {
            // 5: the vendor only, behind a proxy on loopback.
            none(c);
            c.http.allow_cidrs = cidrs(&[VENDOR_IP]);
            c.http.trusted_proxies = cidrs(&["127.0.0.1/32"]);
        }),
        Box::new(|c: &mut Config| {
            // 6: tight limits.
            none(c);
            c.http.max_body_bytes = 4096;
            c.http.max_json_depth = 8;
            c.http.max_header_bytes = 2048;
        }),
        Box::new(|c: &mut Config| {
            // 7: one request per second per client.
            none(c);
            c.http.rate_limit_per_ip = 1;
        }),
    ];
    let mut apps = Vec::new();
    for adjust in &configs {
        let mut config = test_config(&broker.bootstrap(), &registry.url);
        adjust(&mut config);
        apps.push(TestApp::spawn(config).await.expect("connector starts"));
    }
    let body = fixture(0);
    let bearer_for = |token: &str| vec![("authorization", format!("Bearer {token}"))];
    let jwt = |claims: Value| bearer_for(&published.sign(&claims));
    let now = unix_now();
    let row = |class, app, headers, status, expect| Row {
        class,
        app,
        headers,
        content_type: "application/json",
        body: body.clone(),
        status,
        expect,
        attempts: 1,
    };
    let rows = vec![
        row(
            "no credentials",
            0,
            vec![],
            401,
            Expect::Challenge(BASIC_CHALLENGE),
        ),
        row(
            "wrong password",
            0,
            vec![(
                "authorization",
                basic_header("riskos:wrong-horse-battery-staple"),
            )],
            401,
            Expect::Challenge(BASIC_CHALLENGE),
        ),
        row(
            "no bearer token",
            1,
            vec![],
            401,
            Expect::Challenge(BEARER_MISSING),
        ),
        row(
            "old token after the rotation window",
            1,
            bearer_for(BEARER_RETIRED),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "expired JWT",
            2,
            jwt(with(good_claims(), json!({"exp": now - 600}))),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "not-yet-valid JWT",
            2,
            jwt(with(good_claims(), json!({"nbf": now + 600}))),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "wrong-issuer JWT",
            2,
            jwt(with(good_claims(), json!({"iss": "https://evil.test"}))),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "wrong-audience JWT",
            2,
            jwt(with(good_claims(), json!({"aud": "another-service"}))),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "alg:none JWT",
            2,
            bearer_for(&alg_none("idp-1", &good_claims())),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "unknown kid",
            2,
            bearer_for(&unpublished.sign(&good_claims())),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "HS256 JWT keyed with the published key's kid (HS/RS confusion)",
            2,
            bearer_for(&{
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                header.kid = Some("idp-1".into());
                let key =
                    jsonwebtoken::EncodingKey::from_secret(published.jwk.to_string().as_bytes());
                jsonwebtoken::encode(&header, &good_claims(), &key).unwrap()
            }),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "bad HMAC",
            3,
            hmac_headers("some-other-secret-entirely", now, &body),
            401,
            Expect::Challenge(HMAC_CHALLENGE),
        ),
        row(
            "replayed HMAC timestamp",
            3,
            hmac_headers(HMAC_SECRET, now - 3600, &body),
            401,
            Expect::Challenge(HMAC_CHALLENGE),
        ),
        row("IP not allowed", 4, vec![], 403, Expect::NoChallengeNoRetry),
        row(
            "forged X-Forwarded-For from an untrusted peer",
            4,
            vec![("x-forwarded-for", VENDOR_IP.to_string())],
            403,
            Expect::NoChallengeNoRetry,
        ),
        row(
            "forged X-Forwarded-For prefix behind a trusted proxy",
            5,
            vec![("x-forwarded-for", format!("{VENDOR_IP}, 198.51.100.23"))],
            403,
            Expect::NoChallengeNoRetry,
        ),
        Row {
            body: [body.clone(), vec![b' '; 8192]].concat(),
            ..row("oversize", 6, vec![], 413, Expect::NoChallengeNoRetry)
        },
        Row {
            content_type: "text/plain",
            ..row(
                "wrong content type",
                6,
                vec![],
                415,
                Expect::NoChallengeNoRetry,
            )
        },
        // A body nested too deep is authenticated, so it is kept raw in quarantine (400):
        // tests/api/hardening.rs, not a row of this table of things that store nothing.
        row(
            "headers too large",
            6,
            vec![("x-padding", "p".repeat(4096))],
            431,
            Expect::NoChallengeNoRetry,
        ),
        Row {
            // Wrong content type, so the requests let through before the limit store nothing.
            content_type: "text/plain",
            attempts: 50,
            ..row("rate limited", 7, vec![], 429, Expect::RetryAfter)
        },
    ];

    // Act + Assert, row by row.
    for row in rows {
        let app = &apps[row.app];
        let mut response = None;
        for _ in 0..row.attempts {
            let r = post(app, &row.headers, row.content_type, row.body.clone()).await;
            let done = r.status().as_u16() == row.status;
            response = Some(r);
            if done {
                break;
            }
        }
        let response = response.unwrap();
        let class = row.class;
        assert_eq!(response.status().as_u16(), row.status, "{class}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        match row.expect {
            Expect::Challenge(challenge) => {
                assert_eq!(
                    header("www-authenticate").as_deref(),
                    Some(challenge),
                    "{class}"
                )
            }
            Expect::RetryAfter => {
                let seconds: u32 = header("retry-after").expect(class).parse().expect(class);
                assert!(seconds >= 1, "{class}");
            }
            Expect::NoChallengeNoRetry => {
                assert_eq!(header("www-authenticate"), None, "{class}");
                assert_eq!(header("retry-after"), None, "{class}");
            }
        }
        let reply: Value = response.json().await.expect(class);
        assert_eq!(reply["status"], "rejected", "{class}");
        assert_eq!(stored(&broker), 0, "{class}: something reached Kafka");
    }
    assert!(
        !format!("{:?}", apps.iter().map(|a| &a.config).collect::<Vec<_>>()).contains(HMAC_SECRET),
        "config Debug shows a secret"
    );

    // Control: the same connectors accept a good request, and those records are counted, so
    // the zero above was not a reader that sees nothing.
    let good: Vec<(usize, Vec<(&str, String)>)> = vec![
        (0, vec![("authorization", basic_header(BASIC_NEXT))]),
        (1, bearer_for(BEARER_NEXT)),
        (2, jwt(good_claims())),
        (3, hmac_headers(HMAC_SECRET, unix_now(), &body)),
        (
            5,
            vec![("x-forwarded-for", format!("198.51.100.23, {VENDOR_IP}"))],
        ),
        (6, vec![]),
    ];
    for (app, headers) in &good {
        let response = post(&apps[*app], headers, "application/json", body.clone()).await;
        assert_eq!(response.status(), 200, "control for connector {app}");
    }
    assert_eq!(stored(&broker), good.len());
}

// ---------------------------------------------------------------------------------------------
// Acceptance
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_accepts_a_webhook_end_to_end() {
    // Arrange
    let broker = Broker::start_memory().await;
    let registry = RegistryDouble::start().await;
    let idp = SigningKey::generate("idp-1");
    let jwks = JwksDouble::start(&[&idp]).await;
    let modes: Vec<(&str, Adjust)> = vec![
        ("basic", Box::new(basic)),
        ("bearer", Box::new(bearer)),
        ("oauth2", Box::new(|c: &mut Config| oauth2(c, &jwks.url))),
        ("hmac", Box::new(hmac)),
        ("none", Box::new(none)),
    ];
    let all = fixtures::all();

    // Act: each mode gets a different fixture with its own credentials.
    let mut sent = Vec::new();
    for (i, (mode, adjust)) in modes.iter().enumerate() {
        let mut config = test_config(&broker.bootstrap(), &registry.url);
        adjust(&mut config);
        let app = TestApp::spawn(config).await.expect("connector starts");
        let (name, body) = &all[i];
        let headers = match *mode {
            "basic" => vec![("authorization", basic_header(BASIC_CURRENT))],
            "bearer" => vec![("authorization", format!("Bearer {BEARER_CURRENT}"))],
            "oauth2" => vec![(
                "authorization",
                format!("Bearer {}", idp.sign(&good_claims())),
            )],
            "hmac" => hmac_headers(HMAC_SECRET, unix_now(), body),
            _ => vec![],
        };
        let response = post(&app, &headers, "application/json", body.clone()).await;
        let status = response.status();
        let reply: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{mode}: {reply}");
        assert_eq!(reply["status"], "accepted", "{mode}");
        sent.push((*mode, name.clone(), body.clone(), reply["event_id"].clone()));
    }

    // Assert: every body is on the broker under its event id, decodable, raw intact.
    for (mode, name, body, event_id) in sent {
        let posted: Value = serde_json::from_slice(&body).unwrap();
        let event_type = posted
            .get("event_type")
            .or_else(|| posted.get("type"))
            .and_then(Value::as_str)
            .unwrap();
        let topic = riskos_connector::route::topic_name("riskos.", event_type);
        let records = read_all(&broker.bootstrap(), &topic);
        let record = records
            .iter()
            .find(|r| r.key.as_deref() == event_id.as_str())
            .unwrap_or_else(|| panic!("{mode}: {name} not on {topic}"));
        let value = decode(&registry.url, &record.payload).await;
        assert_eq!(value["raw"], String::from_utf8(body).unwrap(), "{mode}");
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth2
// ---------------------------------------------------------------------------------------------

fn token_endpoint(config: &mut Config, client_secret_file: &Path) {
    config.auth.mode = Some(AuthMode::OAuth2);
    config.auth.oauth2.issuer = "https://connector.test".into();
    config.auth.oauth2.audience = AUDIENCE.into();
    config.auth.oauth2.required_scope = Some("webhooks:write".into());
    let endpoint = &mut config.auth.oauth2.token_endpoint;
    endpoint.clients = vec![ClientConfig {
        client_id: "riskos-dashboard".into(),
        client_secret: None,
        client_secret_file: Some(client_secret_file.to_path_buf()),
    }];
    endpoint.signing_secrets = vec![Secret::new(SIGNING_SECRET)];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_issues_tokens_the_webhook_accepts() {
    // Arrange: the client secret comes from a file, as from a Kubernetes Secret mount.
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("client_secret");
    std::fs::write(&secret_file, "dashboard-client-secret\n").unwrap();
    let stack = Stack::start_with(|c| token_endpoint(c, &secret_file)).await;
    let app = &stack.app;
    let token_url = app.url("/oauth2/token");

    // Act: RFC 6749 form with Basic client authentication, and a JSON body with the
    // credentials in it.
    let form = app
        .client
        .post(&token_url)
        .header(
            "authorization",
            basic_header("riskos-dashboard:dashboard-client-secret"),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=webhooks%3Awrite")
        .send()
        .await
        .unwrap();
    let json_body = app
        .client
        .post(&token_url)
        .json(
            &json!({"grant_type": "client_credentials", "client_id": "riskos-dashboard",
                      "client_secret": "dashboard-client-secret"}),
        )
        .send()
        .await
        .unwrap();
    let wrong = app
        .client
        .post(&token_url)
        .header("authorization", basic_header("riskos-dashboard:guess"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let password_grant = app
        .client
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&username=a&password=b")
        .send()
        .await
        .unwrap();

    // Assert: the token endpoint's answers.
    assert_eq!(form.status(), 200);
    assert_eq!(form.headers()["cache-control"], "no-store");
    let issued: Value = form.json().await.unwrap();
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["expires_in"], 300);
    assert_eq!(issued["scope"], "webhooks:write");
    assert_eq!(json_body.status(), 200);
    let issued_json: Value = json_body.json().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    assert_eq!(password_grant.status(), 400);
    assert_eq!(
        password_grant.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );

    // Act + Assert: the issued tokens open the webhook, a tampered one does not.
    // (Distinct bodies: an identical one would be answered from the duplicate fast path.)
    for (token, body) in [
        (&issued["access_token"], fixture(1)),
        (&issued_json["access_token"], fixture(2)),
    ] {
        let auth = vec![(
            "authorization",
            format!("Bearer {}", token.as_str().unwrap()),
        )];
        let response = post(app, &auth, "application/json", body).await;
        assert_eq!(response.status(), 200);
    }
    let tampered = format!("Bearer {}x", issued["access_token"].as_str().unwrap());
    let response = post(
        app,
        &[("authorization", tampered)],
        "application/json",
        fixture(3),
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(stored(&stack.broker), 2);

    // A second replica with the same signing secret accepts the first one's token.
    let mut config = test_config(&stack.broker.bootstrap(), &stack.registry.url);
    token_endpoint(&mut config, &secret_file);
    let replica = TestApp::spawn(config).await.expect("replica starts");
    let auth = vec![(
        "authorization",
        format!("Bearer {}", issued["access_token"].as_str().unwrap()),
    )];
    let response = post(&replica, &auth, "application/json", fixture(4)).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_jwks_key_is_picked_up_on_its_first_token() {
    // Arrange
    let old = SigningKey::generate("2025-key");
    let new = SigningKey::generate("2026-key");
    let jwks = JwksDouble::start(&[&old]).await;
    let url = jwks.url.clone();
    let stack = Stack::start_with(|c| oauth2(c, &url)).await;
    // Distinct bodies: an identical one would be answered from the duplicate fast path.
    let send = |key: &SigningKey, body: Vec<u8>| {
        let auth = vec![(
            "authorization",
            format!("Bearer {}", key.sign(&good_claims())),
        )];
        let app = &stack.app;
        async move { post(app, &auth, "application/json", body).await.status() }
    };
    let before = send(&old, fixture(3)).await;
    let fetches_at_start = jwks.fetches();

    // Act: the provider rotates; a token with the new kid arrives.
    jwks.rotate_to(&[&new]);
    let with_new_key = send(&new, fixture(4)).await;
    let fetches_after_new = jwks.fetches();
    let with_retired_key = send(&old, fixture(5)).await;

    // Assert
    assert_eq!(before, 200);
    assert_eq!(fetches_at_start, 1, "fetched once at start-up");
    assert_eq!(with_new_key, 200);
    assert_eq!(fetches_after_new, 2, "the unknown kid refetched the set");
    assert_eq!(with_retired_key, 401);
    assert_eq!(stored(&stack.broker), 2);
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// A self-signed certificate for `riskos.test`: (cert PEM, key PEM, cert DER).
fn certificate() -> (String, String, Vec<u8>) {
    let made = rcgen::generate_simple_self_signed(vec!["riskos.test".to_string()]).unwrap();
    (
        made.cert.pem(),
        made.signing_key.serialize_pem(),
        made.cert.der().to_vec(),
    )
}

/// Writes through a rename, as a Secret volume update does.
fn replace(path: &Path, content: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, content).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

fn tls(config: &mut Config, dir: &Path) {
    none(config);
    config.http.tls.cert_file = Some(dir.join("tls.crt"));
    config.http.tls.key_file = Some(dir.join("tls.key"));
    config.http.tls.reload_interval_ms = 50;
}

/// An HTTPS client that trusts only `cert_pem` and resolves `riskos.test` to `app`.
fn https_client(app: &TestApp, cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .resolve("riskos.test", app.addr)
        .build()
        .unwrap()
}

/// The end-entity certificate a new TLS connection to `app` is served.
async fn served_certificate(app: &TestApp, trusted: &[&[u8]]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for der in trusted {
        roots.add(der.to_vec().into()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("riskos.test").unwrap();
    let stream = connector.connect(name, tcp).await.expect("TLS handshake");
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate_accepts_a_webhook() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = certificate();
    std::fs::write(dir.path().join("tls.crt"), &cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), &key).unwrap();
    let stack = Stack::start_with(|c| tls(c, dir.path())).await;
    let port = stack.app.addr.port();

    // Act
    let over_https = https_client(&stack.app, &cert)
        .post(format!("https://riskos.test:{port}/webhooks/riskos"))
        .header("content-type", "application/json")
        .body(fixture(4))
        .send()
        .await
        .unwrap();
    let over_plain_http = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/webhooks/riskos"))
        .header("content-type", "application/json")
        .body(fixture(5))
        .send()
        .await;

    // Assert
    assert_eq!(over_https.status(), 200);
    assert!(
        over_plain_http.is_err() || !over_plain_http.unwrap().status().is_success(),
        "plain HTTP must not be served on the TLS port"
    );
    assert_eq!(stored(&stack.broker), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_served_to_new_connections() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a, der_a) = certificate();
    let (cert_b, key_b, der_b) = certificate();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, &cert_a).unwrap();
    std::fs::write(&key_path, &key_a).unwrap();
    let stack = Stack::start_with(|c| tls(c, dir.path())).await;
    let trusted: [&[u8]; 2] = [&der_a, &der_b];
    let before = served_certificate(&stack.app, &trusted).await;

    // Act: renew the certificate on disk, key first (in between, the pair does not match and
    // must be skipped, not served).
    replace(&key_path, &key_b);
    replace(&cert_path, &cert_b);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = served_certificate(&stack.app, &trusted).await;
    while after != der_b && Instant::now() < deadline {
        after = served_certificate(&stack.app, &trusted).await;
    }

    // Assert
    assert_eq!(before, der_a);
    assert_eq!(
        after, der_b,
        "the new certificate was not served within 30 s"
    );
    let response = https_client(&stack.app, &cert_b)
        .post(format!(
            "https://riskos.test:{}/webhooks/riskos",
            stack.app.addr.port()
        ))
        .header("content-type", "application/json")
        .body(fixture(6))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

/// The real binary, serving until [`Running::stop`].
struct Running {
    child: Child,
    base: String,
    log: std::thread::JoinHandle<Vec<String>>,
}

impl Running {
    /// Starts `serve --config file` with `env` and waits for its ready line.
    fn start(config: &Path, env: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_riskos-connector"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RISKOS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut early = Vec::new();
        loop {
            let mut line = String::new();
            let n = stderr.read_line(&mut line).unwrap();
            assert!(n > 0, "connector exited before it was ready: {early:?}");
            let ready = line.contains("ready to receive webhooks");
            early.push(line);
            if ready {
                break;
            }
        }
        let log = std::thread::spawn(move || {
            early
                .into_iter()
                .chain(stderr.lines().map_while(Result::ok))
                .collect()
        });
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// SIGTERM, wait for a clean exit, and return every log line.
    fn stop(mut self) -> Vec<String> {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(terminated.success());
        let exit = self.child.wait().unwrap();
        let log = self.log.join().unwrap();
        assert!(exit.success(), "exit status {exit}: {log:?}");
        log
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_logs_none_of_the_configured_secrets() {
    // Arrange: every mode's secrets configured at once (inline, in files and in env vars),
    // then one run per mode, at debug level.
    let broker = Broker::start_memory().await;
    let registry = RegistryDouble::start().await;
    let idp = SigningKey::generate("idp-log");
    let jwks = JwksDouble::start(&[&idp]).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        ("basic_password", "log-test-basic-password-b7e1"),
        ("bearer_token", "5d2c7e90-3f4a-4b1c-9d8e-7a6b5c4d3e2f"),
        ("hmac_secret", "log-test-hmac-secret-9c3f5a"),
        ("client_secret", "log-test-client-secret-4e8d"),
        ("signing_secret", "log-test-signing-secret-0123456789abcdef"),
    ];
    let secret = |name: &str| secrets.iter().find(|(n, _)| *n == name).unwrap().1;
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{content}\n")).unwrap();
        path.display().to_string()
    };
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[log]
format = "json"
level = "debug"
[schemas]
dir = "{manifest}/schemas"
[topics]
partitions = 1
replication_factor = 1
[auth.bearer]
tokens_file = "{bearer_file}"
[auth.hmac]
secrets = ["{hmac}"]
timestamp_header = "X-Timestamp"
[auth.oauth2]
jwks_url = "{jwks}"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
[auth.oauth2.token_endpoint]
clients_file = "{clients_file}"
signing_secrets_file = "{signing_file}"
"#,
            manifest = env!("CARGO_MANIFEST_DIR"),
            bearer_file = file("bearer_tokens", secret("bearer_token")),
            hmac = secret("hmac_secret"),
            jwks = jwks.url,
            clients_file = file("clients", &format!("riskos:{}", secret("client_secret"))),
            signing_file = file("signing", secret("signing_secret")),
        ),
    )
    .unwrap();
    let basic_pair = format!("riskos:{}", secret("basic_password"));
    let common_env = |mode: &str| {
        vec![
            ("RISKOS_AUTH__MODE", mode.to_string()),
            ("RISKOS_AUTH__BASIC__CREDENTIALS", basic_pair.clone()),
            ("RISKOS_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap()),
            ("RISKOS_SCHEMA_REGISTRY__URL", registry.url.clone()),
        ]
    };
    let client = reqwest::Client::new();
    let all = fixtures::all();
    // Credentials presented on the wire are secrets too.
    let mut presented: Vec<String> = Vec::new();
    let mut logs = Vec::new();

    // Act
    for (i, mode) in ["basic", "bearer", "hmac", "oauth2"]
        .into_iter()
        .enumerate()
    {
        let running = Running::start(&config, &common_env(mode));
        let body = all[i].1.clone();
        let webhook = format!("{}/webhooks/riskos", running.base);
        let mut good: Vec<(String, String)> = Vec::new();
        let mut bad: Vec<(String, String)> = Vec::new();
        match mode {
            "basic" => {
                good.push(("authorization".into(), basic_header(&basic_pair)));
                bad.push(("authorization".into(), basic_header("riskos:almost-b7e1")));
            }
            "bearer" => {
                good.push((
                    "authorization".into(),
                    format!("Bearer {}", secret("bearer_token")),
                ));
                bad.push(("authorization".into(), format!("Bearer {BEARER_RETIRED}")));
            }
            "hmac" => {
                for (k, v) in hmac_headers(secret("hmac_secret"), unix_now(), &body) {
                    good.push((k.into(), v));
                }
                for (k, v) in hmac_headers("log-test-wrong-hmac-secret", unix_now(), &body) {
                    bad.push((k.into(), v));
                }
            }
            _ => {
                let issued: Value = client
                    .post(format!("{}/oauth2/token", running.base))
                    .header(
                        "authorization",
                        basic_header(&format!("riskos:{}", secret("client_secret"))),
                    )
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let token = issued["access_token"]
                    .as_str()
                    .expect("a token")
                    .to_string();
                let refused = client
                    .post(format!("{}/oauth2/token", running.base))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "grant_type=client_credentials&client_id=riskos&client_secret={}x",
                        secret("client_secret")
                    ))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(refused.status(), 401);
                let idp_token = idp.sign(&good_claims());
                good.push(("authorization".into(), format!("Bearer {token}")));
                bad.push((
                    "authorization".into(),
                    format!(
                        "Bearer {}",
                        idp.sign(&with(good_claims(), json!({"aud": "x"})))
                    ),
                ));
                presented.extend([token, idp_token.clone()]);
                let response = client
                    .post(&webhook)
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {idp_token}"))
                    .body(all[7].1.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "IdP token");
            }
        }
        for (headers, expected) in [(&good, 200), (&bad, 401)] {
            let mut request = client
                .post(&webhook)
                .header("content-type", "application/json")
                .body(body.clone());
            for (k, v) in headers {
                request = request.header(k, v);
                if k != "x-timestamp" {
                    presented.push(v.clone());
                }
            }
            let status = request.send().await.unwrap().status();
            assert_eq!(status, expected, "{mode}");
        }
        logs.extend(running.stop());
    }

    // Assert: the logs are there and say what happened...
    let parsed: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let count = |message: &str| parsed.iter().filter(|l| l["message"] == message).count();
    assert_eq!(count("accepted"), 5, "{logs:?}");
    assert!(count("webhook rejected") >= 5, "{logs:?}");
    assert!(
        parsed.iter().any(|l| l["kind"] == "auth_wrong_credentials"),
        "the rejection reason is logged"
    );
    // ...and hold none of the secrets, configured or presented, nor their base64.
    let text = logs.join("\n");
    let mut needles: Vec<String> = secrets.iter().map(|(_, s)| s.to_string()).collect();
    needles.push(basic_pair.clone());
    needles.push(base64::engine::general_purpose::STANDARD.encode(&basic_pair));
    for value in &presented {
        needles.push(value.clone());
        if let Some((_, credential)) = value.split_once(' ') {
            needles.push(credential.to_string());
        }
    }
    for needle in needles.iter().filter(|n| n.len() >= 8) {
        assert!(
            !text.contains(needle.as_str()),
            "a log line contains a secret: {needle:.6}…"
        );
    }
}
