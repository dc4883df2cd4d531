//! Ingress security without a broker: every rejection class gets its status and header and
//! nothing of it reaches the store; every auth mode accepts its credentials; the OAuth2 token
//! endpoint and JWKS key rotation; issue 11's ambiguous requests (a JWT without `kid`, repeated
//! `Authorization` or HMAC headers, client-secret guessing, repeated keys and bad ids/types in
//! the body, kept in quarantine); HTTPS with certificate reload, over a real listener.
//!
//! What needs Kafka itself (an accepted webhook decoded from the broker, a full run of the
//! binary whose logs hold no secret) is in `tests/kafka/auth.rs`.
//!
//! Tests that read the logs run on the current-thread runtime so [`logs::capture`] sees the
//! service's lines.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use riskos_connector::common::secret::Secret;
use riskos_connector::delivery::memory::Kept;
use riskos_connector::ingress::auth::hmac::sign_hex;
use riskos_connector::ingress::auth::token_endpoint::ClientConfig;
use riskos_connector::ingress::auth::AuthMode;
use riskos_connector::wiring::config::Config;
use serde_json::{json, Value};

use support::{fixture, Connector, Reply, Served};
// One log capture per test binary: its subscriber is global.
use support::auth_modes::*;
use support::jwt::{alg_none, good_claims, with, JwksDouble, SigningKey, AUDIENCE};
use support::logs;

const CLIENT_ID: &str = "riskos-dashboard";
const CLIENT_SECRET: &str = "dashboard-client-secret";
const SIGNING_SECRET: &str = "token-endpoint-signing-secret-0123456789";
/// The vendor's Production address (from the vendor guide), as seen behind our proxy.
const VENDOR_IP: &str = "3.138.161.243";
/// The `kind` of the token endpoint's back-off 429.
const BACKOFF_KIND: &str = "token_backoff";

const BASIC_CHALLENGE: &str = r#"Basic realm="riskos-connector", charset="UTF-8""#;
const BEARER_MISSING: &str = r#"Bearer realm="riskos-connector""#;
const BEARER_INVALID: &str = r#"Bearer realm="riskos-connector", error="invalid_token""#;
const HMAC_CHALLENGE: &str = r#"HMAC-SHA256 realm="riskos-connector""#;

/// The fixture most tests post.
const EVALUATION: &str = "riskos.evaluation_completed.docv.json";

// ---------------------------------------------------------------------------------------------
// Connectors, by name
// ---------------------------------------------------------------------------------------------

/// The connector configurations the tables below refer to by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Setup {
    /// Basic auth, the current and the next credential (rotation).
    Basic,
    /// Bearer tokens, the current and the next (rotation).
    Bearer,
    /// OAuth2 JWTs from the JWKS double; an unknown kid refetches at once.
    OAuth2,
    /// HMAC-SHA256 over the body, with `X-Timestamp`.
    Hmac,
    /// No auth, no limits beyond the defaults.
    Open,
    /// The vendor only, no proxy in front: the TCP peer is the client.
    VendorOnly,
    /// The vendor only, behind a proxy on loopback.
    VendorBehindProxy,
    /// Tight body, depth and header limits.
    TightLimits,
    /// One request per second per client.
    OnePerSecond,
}

impl Setup {
    fn adjust(self, config: &mut Config, jwks_url: &str) {
        match self {
            Setup::Basic => basic(config),
            Setup::Bearer => bearer(config),
            Setup::OAuth2 => oauth2_refetching(config, jwks_url),
            Setup::Hmac => hmac(config),
            Setup::Open => none(config),
            Setup::VendorOnly => {
                none(config);
                config.endpoints[0].allow_cidrs = cidrs(&[VENDOR_IP]);
            }
            Setup::VendorBehindProxy => {
                none(config);
                config.endpoints[0].allow_cidrs = cidrs(&[VENDOR_IP]);
                config.http.trusted_proxies = cidrs(&["127.0.0.1/32"]);
            }
            Setup::TightLimits => {
                none(config);
                config.http.max_body_bytes = 4096;
                config.http.max_json_depth = 8;
                config.http.max_header_bytes = 2048;
            }
            Setup::OnePerSecond => {
                none(config);
                config.endpoints[0].rate_limit_per_ip = 1;
            }
        }
    }
}

/// One connector per [`Setup`], built on first use and kept for the rest of the test.
struct Connectors {
    jwks_url: String,
    built: BTreeMap<Setup, Connector>,
}

impl Connectors {
    fn new(jwks_url: &str) -> Self {
        Self {
            jwks_url: jwks_url.to_string(),
            built: BTreeMap::new(),
        }
    }

    async fn get(&mut self, setup: Setup) -> &Connector {
        if !self.built.contains_key(&setup) {
            let url = self.jwks_url.clone();
            let connector = Connector::start_with(|c| setup.adjust(c, &url)).await;
            self.built.insert(setup, connector);
        }
        &self.built[&setup]
    }

    /// Records kept by every connector built so far.
    fn kept(&self) -> usize {
        self.built.values().map(|c| c.store.kept().len()).sum()
    }
}

/// A change to a connector's config.
type Adjust = Box<dyn Fn(&mut Config)>;

fn cidrs(list: &[&str]) -> Vec<riskos_connector::ingress::net::Cidr> {
    list.iter().map(|c| c.parse().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

fn bearer_header(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

/// POSTs `body` to the webhook path with `content_type` and `headers` (a name given twice is
/// sent twice).
async fn post(
    connector: &Connector,
    headers: &[(&str, String)],
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    let mut request =
        Request::post(&connector.config.endpoints[0].path).header("content-type", content_type);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    connector
        .send(request.body(Body::from(body)).unwrap())
        .await
}

/// Records on every topic but quarantine.
fn on_event_topics(connector: &Connector) -> Vec<Kept> {
    let quarantine = riskos_connector::pipeline::route::quarantine_topic(
        &connector.config.endpoints[0].topic_prefix,
    );
    connector
        .store
        .kept()
        .into_iter()
        .filter(|k| k.topic != quarantine)
        .collect()
}

/// The `kind` of every rejection logged so far, in order.
fn rejected_kinds(logs: &logs::Logs) -> Vec<String> {
    logs.with_message("webhook rejected")
        .iter()
        .map(|l| l["kind"].as_str().unwrap_or("").to_string())
        .collect()
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

struct Rejection {
    case: &'static str,
    connector: Setup,
    headers: Vec<(&'static str, String)>,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    expect: Expect,
    /// Send up to this many times and judge the last answer (the rate limit needs a burst).
    attempts: usize,
}

#[tokio::test]
async fn every_rejection_class_gets_its_status_and_header_and_nothing_reaches_the_store() {
    // Arrange: one connector per configuration a row names.
    let published = SigningKey::generate("idp-1");
    let unpublished = SigningKey::generate("idp-2");
    let jwks = JwksDouble::start(&[&published]).await;
    let mut connectors = Connectors::new(&jwks.url);
    let body = fixture("request_token.create_bankaccountsnapshots_status_description.json");
    let jwt = |claims: Value| bearer_header(&published.sign(&claims));
    let now = unix_now();
    let row = |case, connector, headers, status, expect| Rejection {
        case,
        connector,
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
            Setup::Basic,
            vec![],
            401,
            Expect::Challenge(BASIC_CHALLENGE),
        ),
        row(
            "wrong password",
            Setup::Basic,
            vec![(
                "authorization",
                basic_header("riskos:wrong-horse-battery-staple"),
            )],
            401,
            Expect::Challenge(BASIC_CHALLENGE),
        ),
        row(
            "no bearer token",
            Setup::Bearer,
            vec![],
            401,
            Expect::Challenge(BEARER_MISSING),
        ),
        row(
            "old token after the rotation window",
            Setup::Bearer,
            bearer_header(BEARER_RETIRED),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "expired JWT",
            Setup::OAuth2,
            jwt(with(good_claims(), json!({"exp": now - 600}))),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "not-yet-valid JWT",
            Setup::OAuth2,
            jwt(with(good_claims(), json!({"nbf": now + 600}))),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "wrong-issuer JWT",
            Setup::OAuth2,
            jwt(with(good_claims(), json!({"iss": "https://evil.test"}))),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "wrong-audience JWT",
            Setup::OAuth2,
            jwt(with(good_claims(), json!({"aud": "another-service"}))),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "alg:none JWT",
            Setup::OAuth2,
            bearer_header(&alg_none("idp-1", &good_claims())),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "unknown kid",
            Setup::OAuth2,
            bearer_header(&unpublished.sign(&good_claims())),
            401,
            Expect::Challenge(BEARER_INVALID),
        ),
        row(
            "HS256 JWT keyed with the published key's kid (HS/RS confusion)",
            Setup::OAuth2,
            bearer_header(&{
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
            Setup::Hmac,
            hmac_headers("some-other-secret-entirely", now, &body),
            401,
            Expect::Challenge(HMAC_CHALLENGE),
        ),
        row(
            "replayed HMAC timestamp",
            Setup::Hmac,
            hmac_headers(HMAC_SECRET, now - 3600, &body),
            401,
            Expect::Challenge(HMAC_CHALLENGE),
        ),
        row(
            "IP not allowed",
            Setup::VendorOnly,
            vec![],
            403,
            Expect::NoChallengeNoRetry,
        ),
        row(
            "forged X-Forwarded-For from an untrusted peer",
            Setup::VendorOnly,
            vec![("x-forwarded-for", VENDOR_IP.to_string())],
            403,
            Expect::NoChallengeNoRetry,
        ),
        row(
            "forged X-Forwarded-For prefix behind a trusted proxy",
            Setup::VendorBehindProxy,
            vec![("x-forwarded-for", format!("{VENDOR_IP}, 198.51.100.23"))],
            403,
            Expect::NoChallengeNoRetry,
        ),
        Rejection {
            body: [body.clone(), vec![b' '; 8192]].concat(),
            ..row(
                "oversize",
                Setup::TightLimits,
                vec![],
                413,
                Expect::NoChallengeNoRetry,
            )
        },
        Rejection {
            content_type: "text/plain",
            ..row(
                "wrong content type",
                Setup::TightLimits,
                vec![],
                415,
                Expect::NoChallengeNoRetry,
            )
        },
        // A body nested too deep is authenticated, so it is kept raw in quarantine (400):
        // tests/kafka/hardening.rs, not a row of this table of things that store nothing.
        row(
            "headers too large",
            Setup::TightLimits,
            vec![("x-padding", "p".repeat(4096))],
            431,
            Expect::NoChallengeNoRetry,
        ),
        Rejection {
            // Wrong content type, so the requests let through before the limit store nothing.
            content_type: "text/plain",
            attempts: 50,
            ..row(
                "rate limited",
                Setup::OnePerSecond,
                vec![],
                429,
                Expect::RetryAfter,
            )
        },
    ];

    // Act + Assert, row by row.
    for row in rows {
        let connector = connectors.get(row.connector).await;
        let mut reply = None;
        for _ in 0..row.attempts {
            let r = post(connector, &row.headers, row.content_type, row.body.clone()).await;
            let done = r.status.as_u16() == row.status;
            reply = Some(r);
            if done {
                break;
            }
        }
        let reply = reply.unwrap();
        let case = row.case;
        assert_eq!(reply.status.as_u16(), row.status, "{case}");
        match row.expect {
            Expect::Challenge(challenge) => {
                assert_eq!(reply.header("www-authenticate"), Some(challenge), "{case}")
            }
            Expect::RetryAfter => {
                let seconds: u32 = reply
                    .header("retry-after")
                    .expect(case)
                    .parse()
                    .expect(case);
                assert!(seconds >= 1, "{case}");
            }
            Expect::NoChallengeNoRetry => {
                assert_eq!(reply.header("www-authenticate"), None, "{case}");
                assert_eq!(reply.header("retry-after"), None, "{case}");
            }
        }
        assert!(reply.header("x-request-id").is_some(), "{case}");
        assert_eq!(reply.json()["status"], "rejected", "{case}");
        assert_eq!(connectors.kept(), 0, "{case}: something reached the store");
    }
    let configs: Vec<&Config> = connectors.built.values().map(|c| &c.config).collect();
    assert!(
        !format!("{configs:?}").contains(HMAC_SECRET),
        "config Debug shows a secret"
    );

    // Control: the same connectors accept a good request, and those records are counted, so
    // the zero above was not a reader that sees nothing.
    let good: Vec<(Setup, Vec<(&str, String)>)> = vec![
        (
            Setup::Basic,
            vec![("authorization", basic_header(BASIC_NEXT))],
        ),
        (Setup::Bearer, bearer_header(BEARER_NEXT)),
        (Setup::OAuth2, jwt(good_claims())),
        (Setup::Hmac, hmac_headers(HMAC_SECRET, unix_now(), &body)),
        (
            Setup::VendorBehindProxy,
            vec![("x-forwarded-for", format!("198.51.100.23, {VENDOR_IP}"))],
        ),
        (Setup::TightLimits, vec![]),
    ];
    for (setup, headers) in &good {
        let connector = connectors.get(*setup).await;
        let reply = post(connector, headers, "application/json", body.clone()).await;
        assert_eq!(reply.status, 200, "control for connector {setup:?}");
    }
    assert_eq!(connectors.kept(), good.len());
}

// ---------------------------------------------------------------------------------------------
// Acceptance
// ---------------------------------------------------------------------------------------------

/// The credentials for a body.
type Credentials<'a> = Box<dyn Fn(&[u8]) -> Vec<(&'static str, String)> + 'a>;

#[tokio::test]
async fn every_mode_accepts_its_credentials() {
    // Arrange
    let idp = SigningKey::generate("idp-1");
    let jwks = JwksDouble::start(&[&idp]).await;
    let mut connectors = Connectors::new(&jwks.url);
    // Distinct bodies: an identical one would be answered from the duplicate fast path.
    let rows: Vec<(&str, Setup, &str, Credentials)> = vec![
        (
            "basic, current credential",
            Setup::Basic,
            "riskos.case_closure.match.json",
            Box::new(|_| vec![("authorization", basic_header(BASIC_CURRENT))]),
        ),
        (
            "basic, next credential",
            Setup::Basic,
            "riskos.case_closure.no_match.json",
            Box::new(|_| vec![("authorization", basic_header(BASIC_NEXT))]),
        ),
        (
            "bearer, current token",
            Setup::Bearer,
            "request_token.create_cases.json",
            Box::new(|_| bearer_header(BEARER_CURRENT)),
        ),
        (
            "bearer, next token",
            Setup::Bearer,
            "request_token.update_cases_status.json",
            Box::new(|_| bearer_header(BEARER_NEXT)),
        ),
        (
            "oauth2, a JWT from the IdP",
            Setup::OAuth2,
            EVALUATION,
            Box::new(|_| bearer_header(&idp.sign(&good_claims()))),
        ),
        (
            "hmac, signed now",
            Setup::Hmac,
            "request_token.create_reviews_is_entity.json",
            Box::new(|body| hmac_headers(HMAC_SECRET, unix_now(), body)),
        ),
        (
            "none",
            Setup::Open,
            "request_token.update_transactions_status.json",
            Box::new(|_| vec![]),
        ),
    ];

    for (case, setup, name, headers) in rows {
        // Act
        let connector = connectors.get(setup).await;
        let body = fixture(name);
        let reply = post(connector, &headers(&body), "application/json", body.clone()).await;

        // Assert: accepted, and the store holds the body under its event id.
        assert_eq!(reply.status, 200, "{case}: {:?}", reply.json());
        let answer = reply.json();
        assert_eq!(answer["status"], "accepted", "{case}");
        // The record this request stored (fixtures share ids, so not looked up by key).
        let kept = connector.store.kept();
        let record = kept
            .last()
            .unwrap_or_else(|| panic!("{case}: nothing kept"));
        assert_eq!(record.key.as_deref(), answer["event_id"].as_str(), "{case}");
        assert!(
            record.value.windows(body.len()).any(|w| w == body),
            "{case}: the raw body of {name} is not in the record"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth2: the token endpoint, JWKS rotation, the kid
// ---------------------------------------------------------------------------------------------

/// The token endpoint with a client whose secret is in `client_secret_file`.
fn token_endpoint_from_file(config: &mut Config, client_secret_file: &Path) {
    config.endpoints[0].auth.mode = Some(AuthMode::OAuth2);
    config.endpoints[0].auth.oauth2.issuer = "https://connector.test".into();
    config.endpoints[0].auth.oauth2.audience = AUDIENCE.into();
    config.endpoints[0].auth.oauth2.required_scope = Some("webhooks:write".into());
    let endpoint = &mut config.endpoints[0].auth.oauth2.token_endpoint;
    endpoint.clients = vec![ClientConfig {
        client_id: CLIENT_ID.into(),
        client_secret: None,
        client_secret_file: Some(client_secret_file.to_path_buf()),
    }];
    endpoint.signing_secrets = vec![Secret::new(SIGNING_SECRET)];
}

/// The token endpoint with an inline client secret; every client address is named by a proxy
/// on loopback.
fn token_endpoint_behind_proxy(config: &mut Config) {
    config.endpoints[0].auth.mode = Some(AuthMode::OAuth2);
    config.endpoints[0].auth.oauth2.issuer = "https://connector.test".into();
    config.endpoints[0].auth.oauth2.audience = AUDIENCE.into();
    let endpoint = &mut config.endpoints[0].auth.oauth2.token_endpoint;
    endpoint.clients = vec![ClientConfig {
        client_id: CLIENT_ID.into(),
        client_secret: Some(Secret::new(CLIENT_SECRET)),
        client_secret_file: None,
    }];
    endpoint.signing_secrets = vec![Secret::new(SIGNING_SECRET)];
    config.http.trusted_proxies = cidrs(&["127.0.0.1/32"]);
}

/// A request to the token endpoint.
fn token_request() -> axum::http::request::Builder {
    Request::post("/oauth2/token")
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn the_token_endpoint_issues_tokens_the_webhook_accepts() {
    // Arrange: the client secret comes from a file, as from a Kubernetes Secret mount.
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("client_secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
    let connector = Connector::start_with(|c| token_endpoint_from_file(c, &secret_file)).await;

    // Act: RFC 6749 form with Basic client authentication, and a JSON body with the
    // credentials in it.
    let form = connector
        .send(
            token_request()
                .header(
                    "authorization",
                    basic_header(&format!("{CLIENT_ID}:{CLIENT_SECRET}")),
                )
                .header("content-type", FORM)
                .body(Body::from(
                    "grant_type=client_credentials&scope=webhooks%3Awrite",
                ))
                .unwrap(),
        )
        .await;
    let json_body = connector
        .send(
            token_request()
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                           "client_secret": CLIENT_SECRET})
                    .to_string(),
                ))
                .unwrap(),
        )
        .await;
    // Alloy's OAuth2 client: the credentials in a JSON body and in Basic client
    // authentication at once; they agree, so the client is authenticated once.
    let alloy_style = |body_secret: &str| {
        token_request()
            .header(
                "authorization",
                basic_header(&format!("{CLIENT_ID}:{CLIENT_SECRET}")),
            )
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                       "client_secret": body_secret})
                .to_string(),
            ))
            .unwrap()
    };
    let json_and_basic = connector.send(alloy_style(CLIENT_SECRET)).await;
    let json_and_basic_disagreeing = connector.send(alloy_style("another-secret")).await;
    let wrong = connector
        .send(
            token_request()
                .header("authorization", basic_header(&format!("{CLIENT_ID}:guess")))
                .header("content-type", FORM)
                .body(Body::from("grant_type=client_credentials"))
                .unwrap(),
        )
        .await;
    let password_grant = connector
        .send(
            token_request()
                .header("content-type", FORM)
                .body(Body::from("grant_type=password&username=a&password=b"))
                .unwrap(),
        )
        .await;

    // Assert: the token endpoint's answers.
    assert_eq!(form.status, 200);
    assert_eq!(form.header("cache-control"), Some("no-store"));
    let issued = form.json();
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["expires_in"], 300);
    assert_eq!(issued["scope"], "webhooks:write");
    assert_eq!(json_body.status, 200);
    let issued_json = json_body.json();
    assert_eq!(json_and_basic.status, 200, "{:?}", json_and_basic.json());
    assert_eq!(json_and_basic.json()["token_type"], "Bearer");
    assert_eq!(json_and_basic_disagreeing.status, 400);
    assert_eq!(
        json_and_basic_disagreeing.json()["error"],
        "invalid_request"
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic "));
    assert_eq!(wrong.json()["error"], "invalid_client");
    assert_eq!(password_grant.status, 400);
    assert_eq!(password_grant.json()["error"], "unsupported_grant_type");

    // Act + Assert: the issued tokens open the webhook, a tampered one does not.
    // (Distinct bodies: an identical one would be answered from the duplicate fast path.)
    for (token, body) in [
        (&issued["access_token"], "request_token.create_cases.json"),
        (
            &issued_json["access_token"],
            "request_token.create_reviews_is_entity.json",
        ),
    ] {
        let auth = bearer_header(token.as_str().unwrap());
        let reply = post(&connector, &auth, "application/json", fixture(body)).await;
        assert_eq!(reply.status, 200);
    }
    let tampered = format!("{}x", issued["access_token"].as_str().unwrap());
    let reply = post(
        &connector,
        &bearer_header(&tampered),
        "application/json",
        fixture("request_token.update_cases_status.json"),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(connector.store.kept().len(), 2);

    // A second replica with the same signing secret accepts the first one's token.
    let replica = Connector::start_with(|c| token_endpoint_from_file(c, &secret_file)).await;
    let auth = bearer_header(issued["access_token"].as_str().unwrap());
    let reply = post(
        &replica,
        &auth,
        "application/json",
        fixture("request_token.update_transactions_status.json"),
    )
    .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_rotated_jwks_key_is_picked_up_on_its_first_token() {
    // Arrange
    let old = SigningKey::generate("2025-key");
    let new = SigningKey::generate("2026-key");
    let jwks = JwksDouble::start(&[&old]).await;
    let connector = Connector::start_with(|c| oauth2_refetching(c, &jwks.url)).await;
    // Distinct bodies: an identical one would be answered from the duplicate fast path.
    let send = |key: &SigningKey, name: &str| {
        let auth = bearer_header(&key.sign(&good_claims()));
        let (connector, body) = (&connector, fixture(name));
        async move {
            post(connector, &auth, "application/json", body)
                .await
                .status
        }
    };
    let before = send(&old, "request_token.update_cases_status.json").await;
    let fetches_at_start = jwks.fetches();

    // Act: the provider rotates; a token with the new kid arrives.
    jwks.rotate_to(&[&new]);
    let with_new_key = send(&new, "request_token.update_transactions_status.json").await;
    let fetches_after_new = jwks.fetches();
    let with_retired_key = send(&old, "riskos.case_closure.match.json").await;

    // Assert
    assert_eq!(before, 200);
    assert_eq!(fetches_at_start, 1, "fetched once at start-up");
    assert_eq!(with_new_key, 200);
    assert_eq!(fetches_after_new, 2, "the unknown kid refetched the set");
    assert_eq!(with_retired_key, 401);
    assert_eq!(connector.store.kept().len(), 2);
}

// Issue 25 item 7: the JWKS fetch is https only, follows no redirect, reads a bounded body, and
// a refresh that fails or yields no usable key keeps the last good set and is counted.

/// `riskos_jwks_refresh_failures_total{endpoint, reason}` as the connector's `/metrics` shows
/// it (0 when absent). Each test names its endpoint, so the process-wide counters of other
/// tests do not mix in.
async fn jwks_refresh_failures(connector: &Connector, reason: &str) -> u64 {
    let metrics = connector
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    let text = String::from_utf8(metrics.body).unwrap();
    let endpoint = format!(r#"endpoint="{}""#, connector.config.endpoints[0].name);
    let reason = format!(r#"reason="{reason}""#);
    text.lines()
        .filter(|l| l.starts_with("riskos_jwks_refresh_failures_total{"))
        .filter(|l| l.contains(&endpoint) && l.contains(&reason))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// A connector whose endpoint `name` takes JWTs from `jwks_url`, refetching on every unknown kid.
async fn jwks_connector(name: &str, jwks_url: &str) -> Connector {
    Connector::start_with(|c| {
        oauth2_refetching(c, jwks_url);
        c.endpoints[0].name = name.to_string();
    })
    .await
}

/// The status of a webhook authenticated with a token of `key`; `n` picks a distinct body,
/// since an identical one would be answered from the duplicate fast path.
async fn status_with(connector: &Connector, key: &SigningKey, n: usize) -> u16 {
    let names = [
        "request_token.update_cases_status.json",
        "request_token.update_transactions_status.json",
        "riskos.case_closure.match.json",
        EVALUATION,
    ];
    post(
        connector,
        &bearer_header(&key.sign(&good_claims())),
        "application/json",
        fixture(names[n]),
    )
    .await
    .status
    .as_u16()
}

#[tokio::test]
async fn an_http_jwks_url_is_refused_at_start_up_without_the_test_switch() {
    // Arrange
    let idp = SigningKey::generate("idp-1");
    let jwks = JwksDouble::start(&[&idp]).await;

    // Act
    let refused = Connector::try_start_with(|c| {
        oauth2(c, &jwks.url);
        c.endpoints[0].auth.oauth2.allow_insecure_jwks_url = false;
    })
    .await;
    let allowed = Connector::try_start_with(|c| oauth2(c, &jwks.url)).await;

    // Assert: the error names the key and the switch; the keys were never fetched over http.
    let error = format!("{:#}", refused.err().expect("an http jwks_url is refused"));
    assert!(error.contains("auth.oauth2.jwks_url"), "{error}");
    assert!(error.contains("https://"), "{error}");
    assert!(error.contains("allow_insecure_jwks_url"), "{error}");
    assert_eq!(
        jwks.fetches(),
        1,
        "only the start-up with the switch fetched"
    );
    assert!(allowed.is_ok(), "the switch allows it");
}

#[tokio::test]
async fn a_jwks_redirect_is_not_followed_and_the_failure_is_counted() {
    // Arrange: the provider later redirects to a set holding a key it never published.
    let idp = SigningKey::generate("idp-1");
    let planted = SigningKey::generate("planted");
    let jwks = JwksDouble::start(&[&idp]).await;
    let elsewhere = JwksDouble::start(&[&planted]).await;
    let connector = jwks_connector("jwks-redirect", &jwks.url).await;

    // Act: a token with the planted kid refetches and meets the redirect.
    jwks.redirect_to(&elsewhere.url);
    let planted_token = status_with(&connector, &planted, 0).await;
    let original_key = status_with(&connector, &idp, 1).await;

    // Assert
    assert_eq!(planted_token, 401, "the redirect's key set was not taken");
    assert_eq!(elsewhere.fetches(), 0, "the redirect was not followed");
    assert_eq!(original_key, 200, "the last good keys stay");
    assert_eq!(jwks_refresh_failures(&connector, "redirect").await, 1);
}

#[tokio::test]
async fn an_oversized_jwks_is_refused_counted_and_the_previous_keys_keep_working() {
    // Arrange: a valid key set padded to 2 MiB with whitespace, holding a new key.
    let idp = SigningKey::generate("idp-1");
    let padded = SigningKey::generate("padded");
    let jwks = JwksDouble::start(&[&idp]).await;
    let connector = jwks_connector("jwks-oversized", &jwks.url).await;
    let body = format!(
        "{}{}",
        json!({"keys": [padded.jwk.clone()]}),
        " ".repeat(2 << 20)
    );

    // Act
    jwks.answer_body(body);
    let padded_token = status_with(&connector, &padded, 0).await;
    let original_key = status_with(&connector, &idp, 1).await;

    // Assert
    assert_eq!(padded_token, 401, "the oversized set was not read");
    assert_eq!(original_key, 200, "the last good keys stay");
    assert_eq!(jwks_refresh_failures(&connector, "too_large").await, 1);
}

#[tokio::test]
async fn a_jwks_refresh_without_usable_keys_keeps_the_last_good_set_and_is_counted() {
    // Arrange
    let idp = SigningKey::generate("idp-1");
    let jwks = JwksDouble::start(&[&idp]).await;
    let connector = jwks_connector("jwks-no-keys", &jwks.url).await;
    let before = status_with(&connector, &idp, 0).await;
    // Only keys a JWKS may not supply: symmetric, and encryption-only.
    let mut encryption_only = SigningKey::generate("enc").jwk;
    encryption_only["use"] = json!("enc");
    encryption_only.as_object_mut().unwrap().remove("alg");
    let unusable = json!({"keys": [
        {"kty": "oct", "kid": "hs", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"},
        encryption_only,
    ]});
    let stranger = SigningKey::generate("stranger");

    // Act: each answer is fetched by a token with an unknown kid, then the original key is
    // used again.
    jwks.answer_body(json!({"keys": []}).to_string());
    let after_empty_stranger = status_with(&connector, &stranger, 1).await;
    let after_empty = status_with(&connector, &idp, 2).await;
    jwks.answer_body(unusable.to_string());
    let after_unusable_stranger = status_with(&connector, &stranger, 2).await;
    let after_unusable = status_with(&connector, &idp, 3).await;

    // Assert
    assert_eq!(before, 200);
    assert_eq!((after_empty_stranger, after_unusable_stranger), (401, 401));
    assert_eq!(after_empty, 200, "an empty set did not replace the keys");
    assert_eq!(
        after_unusable, 200,
        "a set of unusable keys did not replace them"
    );
    assert_eq!(jwks.fetches(), 3, "start-up and the two refetches");
    assert_eq!(jwks_refresh_failures(&connector, "no_keys").await, 2);
}

#[tokio::test]
async fn a_jwt_without_a_kid_is_refused_though_the_only_key_verifies_it() {
    // Arrange: one published key, so a kid-less token matches exactly one key.
    let (_guard, logs) = logs::capture();
    let idp = SigningKey::generate("idp-1");
    let jwks = JwksDouble::start(&[&idp]).await;
    let connector = Connector::start_with(|c| oauth2(c, &jwks.url)).await;
    let fetches_before = jwks.fetches();
    let token = idp.sign_without_kid(&good_claims());

    // Act
    let reply = post(
        &connector,
        &bearer_header(&token),
        "application/json",
        fixture(EVALUATION),
    )
    .await;

    // Assert
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("www-authenticate"), Some(BEARER_INVALID));
    assert_eq!(rejected_kinds(&logs), ["jwt_missing_kid"]);
    assert_eq!(jwks.fetches(), fetches_before, "no JWKS refetch for it");
    assert!(on_event_topics(&connector).is_empty());
    assert!(connector.quarantined().is_empty());
    // Control: the same key with its kid is accepted.
    let named = idp.sign(&good_claims());
    let reply = post(
        &connector,
        &bearer_header(&named),
        "application/json",
        fixture(EVALUATION),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(on_event_topics(&connector).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Repeated auth headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_repeated_authorization_header_is_refused_in_every_mode_that_reads_it() {
    // Arrange: a connector per mode; each gets a valid credential twice, a valid one then a
    // wrong one, and a wrong one then a valid one.
    let (_guard, logs) = logs::capture();
    let idp = SigningKey::generate("idp-1");
    let jwks = JwksDouble::start(&[&idp]).await;
    let url = jwks.url.clone();
    let modes: Vec<(&str, Adjust, String, String)> = vec![
        (
            "basic",
            Box::new(|c: &mut Config| {
                c.endpoints[0].auth.mode = Some(AuthMode::Basic);
                c.endpoints[0].auth.basic.credentials = vec![Secret::new(BASIC_CURRENT)];
            }),
            basic_header(BASIC_CURRENT),
            basic_header("riskos:wrong-horse-battery-staple"),
        ),
        (
            "bearer",
            Box::new(|c: &mut Config| {
                c.endpoints[0].auth.mode = Some(AuthMode::Bearer);
                c.endpoints[0].auth.bearer.tokens = vec![Secret::new(BEARER_CURRENT)];
            }),
            format!("Bearer {BEARER_CURRENT}"),
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
        let connector = Connector::start_with(|c| adjust(c)).await;
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
            let reply = post(
                &connector,
                &headers,
                "application/json",
                fixture(EVALUATION),
            )
            .await;
            statuses.push(reply.status.as_u16());
        }

        // Assert
        assert_eq!(statuses, [401, 401, 401], "{mode}");
        assert_eq!(
            rejected_kinds(&logs)[before..],
            ["duplicate_authorization"; 3],
            "{mode}"
        );
        assert!(on_event_topics(&connector).is_empty(), "{mode}");
        assert!(connector.quarantined().is_empty(), "{mode}");
        // Control: one header alone is accepted.
        let reply = post(
            &connector,
            &[("authorization", good)],
            "application/json",
            fixture(EVALUATION),
        )
        .await;
        assert_eq!(reply.status, 200, "{mode}");
    }
}

#[tokio::test]
async fn a_repeated_hmac_signature_or_timestamp_header_is_refused() {
    // Arrange
    let (_guard, logs) = logs::capture();
    let connector = Connector::start_with(hmac).await;
    let body = fixture(EVALUATION);
    let now = unix_now();
    let sign = |at: u64| sign_hex(HMAC_SECRET.as_bytes(), Some(&at.to_string()), &body);
    let wrong = sign_hex(b"some-other-secret-entirely", Some(&now.to_string()), &body);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "the good signature, then a wrong one",
            vec![
                ("x-signature", sign(now)),
                ("x-signature", wrong.clone()),
                ("x-timestamp", now.to_string()),
            ],
        ),
        (
            "a wrong signature, then the good one",
            vec![
                ("x-signature", wrong),
                ("x-signature", sign(now)),
                ("x-timestamp", now.to_string()),
            ],
        ),
        (
            "the signed timestamp, then another",
            vec![
                ("x-signature", sign(now)),
                ("x-timestamp", now.to_string()),
                ("x-timestamp", (now - 1).to_string()),
            ],
        ),
    ];

    // Act
    let mut statuses = Vec::new();
    for (case, headers) in &cases {
        let reply = post(&connector, headers, "application/json", body.clone()).await;
        statuses.push((*case, reply.status.as_u16()));
    }

    // Assert
    let refused: Vec<(&str, u16)> = cases.iter().map(|(case, _)| (*case, 401)).collect();
    assert_eq!(statuses, refused);
    assert_eq!(rejected_kinds(&logs), ["hmac_duplicate_header"; 3]);
    assert!(on_event_topics(&connector).is_empty());
    assert!(connector.quarantined().is_empty());
    let single = vec![("x-signature", sign(now)), ("x-timestamp", now.to_string())];
    let reply = post(&connector, &single, "application/json", body.clone()).await;
    assert_eq!(reply.status, 200);
}

// ---------------------------------------------------------------------------------------------
// The token endpoint: a repeated header, client-secret guessing
// ---------------------------------------------------------------------------------------------

/// A token request from `client` (its address as the proxy reports it) with `secret`.
async fn ask_token(connector: &Connector, client: &str, secret: &str) -> Reply {
    connector
        .send(
            token_request()
                .header("x-forwarded-for", client)
                .header(
                    "authorization",
                    basic_header(&format!("{CLIENT_ID}:{secret}")),
                )
                .header("content-type", FORM)
                .body(Body::from("grant_type=client_credentials"))
                .unwrap(),
        )
        .await
}

#[tokio::test]
async fn two_authorization_headers_at_the_token_endpoint_are_an_invalid_request() {
    let (_guard, logs) = logs::capture();
    let connector = Connector::start_with(token_endpoint_behind_proxy).await;
    let good = basic_header(&format!("{CLIENT_ID}:{CLIENT_SECRET}"));

    let reply = connector
        .send(
            token_request()
                .header("authorization", good)
                .header("authorization", basic_header(&format!("{CLIENT_ID}:guess")))
                .header("content-type", FORM)
                .body(Body::from("grant_type=client_credentials"))
                .unwrap(),
        )
        .await;

    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "invalid_request");
    assert_eq!(rejected_kinds(&logs), ["token_duplicate_authorization"]);
    assert_eq!(
        ask_token(&connector, "198.51.100.1", CLIENT_SECRET)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_token_request_body_that_breaks_off_is_invalid_and_one_over_8_kib_is_413() {
    let (_guard, logs) = logs::capture();
    let connector = Connector::start_with(token_endpoint_behind_proxy).await;
    let basic = basic_header(&format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let request = |body: Body| {
        token_request()
            .header("authorization", basic.as_str())
            .header("content-type", FORM)
            .body(body)
            .unwrap()
    };
    let broken = futures::stream::iter([
        Ok(b"grant_type=client_".to_vec()),
        Err(std::io::Error::other("connection reset mid-body")),
    ]);

    let broken = connector.send(request(Body::from_stream(broken))).await;
    let oversized = format!("grant_type=client_credentials&pad={}", "p".repeat(8 * 1024));
    let oversized = connector.send(request(Body::from(oversized))).await;

    assert_eq!(broken.status, 400);
    assert_eq!(broken.json()["error"], "invalid_request");
    assert_eq!(oversized.status, 413);
    assert_eq!(
        rejected_kinds(&logs),
        ["token_invalid_request", "payload_too_large"]
    );
}

#[tokio::test]
async fn guessing_client_secrets_makes_the_address_wait_and_a_success_resets_it() {
    // Arrange: defaults (5 failures, then a wait from 1 s); three client addresses.
    let (_guard, logs) = logs::capture();
    let connector = Connector::start_with(token_endpoint_behind_proxy).await;
    let (guesser, bystander, forgetful) = ("198.51.100.7", "198.51.100.8", "198.51.100.9");

    // Act + Assert: five wrong guesses are each answered 401...
    for i in 0..5 {
        let reply = ask_token(&connector, guesser, &format!("guess-{i}")).await;
        assert_eq!(reply.status, 401, "guess {i}");
    }
    // ...then the address waits: another wrong secret is answered 429, not counted again.
    let blocked = ask_token(&connector, guesser, "guess-5").await;
    assert_eq!(blocked.status, 429);
    let retry_after: u32 = blocked.header("retry-after").unwrap().parse().unwrap();
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
        ask_token(&connector, bystander, CLIENT_SECRET).await.status,
        200
    );

    // A success resets the count: 4 failures, a success, 4 more failures are all 401.
    let mut statuses = Vec::new();
    for secret in ["a", "b", "c", "d", CLIENT_SECRET, "e", "f", "g", "h"] {
        statuses.push(
            ask_token(&connector, forgetful, secret)
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 200, 401, 401, 401, 401]);
    // The fifth failure since the success starts the wait.
    assert_eq!(ask_token(&connector, forgetful, "i").await.status, 401);
    assert_eq!(ask_token(&connector, forgetful, "j").await.status, 429);
}

#[tokio::test]
async fn a_strangers_wrong_secrets_never_lock_the_vendor_out() {
    // Arrange: behind an ingress without `trusted_proxies`, every caller has the ingress's
    // address (here 127.0.0.1; `X-Forwarded-For` is not believed).
    let connector = Connector::start_with(|config| {
        token_endpoint_behind_proxy(config);
        config.http.trusted_proxies = Vec::new();
    })
    .await;
    let (stranger, vendor) = ("203.0.113.66", VENDOR_IP);

    // Act: a stranger's wrong secrets put the shared address in its back-off...
    let mut statuses = Vec::new();
    for i in 0..8 {
        let reply = ask_token(&connector, stranger, &format!("guess-{i}")).await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);

    // Assert: ...and the vendor's right credentials still get a token, at once.
    let reply = ask_token(&connector, vendor, CLIENT_SECRET).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(reply.json()["access_token"].is_string());
}

#[tokio::test]
async fn secrets_too_short_to_resist_guessing_stop_start_up_naming_their_key() {
    // Arrange: each kind of shared secret one byte under its minimum (16 bytes; Standard
    // Webhooks 24 decoded bytes, as its spec asks), and at it.
    use base64::Engine as _;
    let whsec = |bytes: usize| {
        let key = base64::engine::general_purpose::STANDARD.encode(vec![7u8; bytes]);
        format!("whsec_{key}")
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let clients_file = move |name: &str, secret: &str| {
        let path = root.join(name);
        std::fs::write(&path, format!("{CLIENT_ID}:{secret}\n")).unwrap();
        path
    };
    type Adjust = Box<dyn Fn(&mut Config, &str)>;
    let kinds: Vec<(&str, usize, Adjust)> = vec![
        (
            "auth.basic.credentials",
            16,
            Box::new(|c, secret| {
                c.endpoints[0].auth.mode = Some(AuthMode::Basic);
                c.endpoints[0].auth.basic.credentials =
                    vec![Secret::new(format!("riskos:{secret}"))];
            }),
        ),
        (
            "auth.bearer.tokens",
            16,
            Box::new(|c, secret| {
                c.endpoints[0].auth.mode = Some(AuthMode::Bearer);
                c.endpoints[0].auth.bearer.tokens = vec![Secret::new(secret)];
            }),
        ),
        (
            "auth.hmac.secrets",
            16,
            Box::new(|c, secret| {
                hmac(c);
                c.endpoints[0].auth.hmac.secrets = vec![Secret::new(secret)];
            }),
        ),
        (
            "auth.oauth2.token_endpoint.clients",
            16,
            Box::new(|c, secret| {
                token_endpoint_behind_proxy(c);
                let clients = &mut c.endpoints[0].auth.oauth2.token_endpoint.clients;
                clients[0].client_secret = Some(Secret::new(secret));
            }),
        ),
        (
            "auth.oauth2.token_endpoint.clients_file",
            16,
            Box::new(move |c, secret| {
                token_endpoint_behind_proxy(c);
                let endpoint = &mut c.endpoints[0].auth.oauth2.token_endpoint;
                endpoint.clients.clear();
                endpoint.clients_file =
                    Some(clients_file(&format!("clients-{}", secret.len()), secret));
            }),
        ),
    ];

    for (key, min, adjust) in &kinds {
        // Act
        let short = "s".repeat(min - 1);
        let error = Connector::try_start_with(|c| adjust(c, &short))
            .await
            .err()
            .unwrap_or_else(|| panic!("{key}: a {}-byte secret was accepted", min - 1));

        // Assert: the key is named (within its endpoint), the secret is not.
        let error = format!("{error:#}");
        assert!(
            error.contains(&format!("endpoints[riskos].{key}")),
            "{key}: {error}"
        );
        assert!(error.contains(&format!("at least {min}")), "{key}: {error}");
        assert!(!error.contains(&short), "{key}: {error}");
        Connector::start_with(|c| adjust(c, &"s".repeat(*min))).await;
    }
    let standard_webhooks = |c: &mut Config, bytes: usize| {
        c.endpoints[0].auth.mode = Some(AuthMode::StandardWebhooks);
        c.endpoints[0].auth.standard_webhooks.secrets = vec![Secret::new(whsec(bytes))];
    };
    let error = Connector::try_start_with(|c| standard_webhooks(c, 23))
        .await
        .err()
        .expect("a 23-byte Standard Webhooks secret was accepted");
    let error = format!("{error:#}");
    assert!(
        error.contains("endpoints[riskos].auth.standard_webhooks.secrets"),
        "{error}"
    );
    assert!(error.contains("at least 24"), "{error}");
    Connector::start_with(|c| standard_webhooks(c, 24)).await;
}

// ---------------------------------------------------------------------------------------------
// The body: repeated keys, bad ids and types
// ---------------------------------------------------------------------------------------------

/// Posts each body, expects 400 for all, then checks quarantine holds each one with `reason`
/// and `field`, nothing is on an event topic, and the log names the reason.
async fn refused_and_quarantined(bodies: &[(String, &str, &str)]) {
    let (_guard, logs) = logs::capture();
    let connector = Connector::start().await;

    let mut statuses = Vec::new();
    for (body, _, _) in bodies {
        statuses.push(connector.post_json(body.clone()).await.status.as_u16());
    }

    assert_eq!(statuses, vec![400; bodies.len()]);
    assert!(on_event_topics(&connector).is_empty());
    let kept = connector.quarantined();
    assert_eq!(kept.len(), bodies.len());
    for (record, (body, reason, field)) in kept.iter().zip(bodies) {
        assert_eq!(record.value, body.as_bytes());
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
    let fixture = String::from_utf8(fixture(EVALUATION)).unwrap();
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

// ---------------------------------------------------------------------------------------------
// TLS, over a real listener
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
fn https_client(app: &Served, cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .resolve("riskos.test", app.addr)
        .build()
        .unwrap()
}

/// The end-entity certificate a new TLS connection to `app` is served.
async fn served_certificate(app: &Served, trusted: &[&[u8]]) -> Vec<u8> {
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
    let app = Served::start_with(|c| tls(c, dir.path())).await;
    let port = app.addr.port();

    // Act
    let over_https = https_client(&app, &cert)
        .post(format!("https://riskos.test:{port}/webhooks/riskos"))
        .header("content-type", "application/json")
        .body(fixture("request_token.update_transactions_status.json"))
        .send()
        .await
        .unwrap();
    let over_plain_http = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/webhooks/riskos"))
        .header("content-type", "application/json")
        .body(fixture("riskos.case_closure.match.json"))
        .send()
        .await;

    // Assert
    assert_eq!(over_https.status(), 200);
    assert!(
        over_plain_http.is_err() || !over_plain_http.unwrap().status().is_success(),
        "plain HTTP must not be served on the TLS port"
    );
    assert_eq!(app.store.kept().len(), 1);
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
    let app = Served::start_with(|c| tls(c, dir.path())).await;
    let trusted: [&[u8]; 2] = [&der_a, &der_b];
    let before = served_certificate(&app, &trusted).await;

    // Act: renew the certificate on disk, key first (in between, the pair does not match and
    // must be skipped, not served).
    replace(&key_path, &key_b);
    replace(&cert_path, &cert_b);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = served_certificate(&app, &trusted).await;
    while after != der_b && Instant::now() < deadline {
        after = served_certificate(&app, &trusted).await;
    }

    // Assert
    assert_eq!(before, der_a);
    assert_eq!(
        after, der_b,
        "the new certificate was not served within 30 s"
    );
    let response = https_client(&app, &cert_b)
        .post(format!(
            "https://riskos.test:{}/webhooks/riskos",
            app.addr.port()
        ))
        .header("content-type", "application/json")
        .body(fixture("riskos.case_closure.no_match.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
