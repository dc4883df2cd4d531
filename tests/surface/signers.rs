//! Signatures made by independent signers, checked by the connector's `Authenticator` through
//! the public API (`AuthConfig` → `Authenticator::from_config` → `check_headers` →
//! `check_body`), as the webhook route runs them:
//!
//! - Standard Webhooks `v1` signed by the reference library (PyPI `standardwebhooks`):
//!   several messages, a sender and a receiver rotating secrets, stale and future timestamps;
//! - Standard Webhooks `v1a` signed with Python `cryptography`'s Ed25519, keys in the spec's
//!   `whsk_`/`whpk_` formats (the PyPI package signs `v1` only), alone and next to `v1`;
//! - Svix's own library (PyPI `svix`), under the header names Svix sends by default
//!   (`svix-id`, `svix-timestamp`, `svix-signature`), and those mixed with `webhook-*` ones;
//! - Alloy's HMAC (base64 HMAC-SHA256 of the body as the whole `Authorization` value), from a
//!   signer written after Alloy's description, through `hmac` mode.
//!
//! The signers are `tests/signers/*.py`; they read a job on stdin and print the headers and
//! body to send as JSON. They run on the interpreter `INTEROP_PYTHON` names (made by
//! `scripts/python-venv.sh tests/interop/requirements.txt`; `scripts/test.sh` sets it). Without
//! it the tests fail: they are never skipped.

use std::io::Write as _;
use std::process::{Command, Stdio};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use riskos_connector::common::secret::Secret;
use riskos_connector::ingress::auth::hmac::{HmacConfig, SignatureEncoding};
use riskos_connector::ingress::auth::standard_webhooks::StandardWebhooksConfig;
use riskos_connector::ingress::auth::{AuthConfig, AuthFailure, AuthMode, Authenticator, Reason};
use serde_json::{json, Value};

/// Secrets in the form a Standard Webhooks sender shows them: `whsec_` + base64 of the key.
const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW: &str = "whsec_c2lnbmVycy10ZXN0LW5ldy1zZWNyZXQtMDEyMzQ1";
/// Nobody configures this one.
const FOREIGN: &str = "whsec_Zm9yZWlnbi1zZWNyZXQtbm90LWNvbmZpZ3VyZWQ=";

/// The Python with `standardwebhooks`, `svix` and `cryptography`; fails (never skips) without
/// it.
fn python() -> String {
    std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| {
        panic!(
            "INTEROP_PYTHON is not set: these tests run the signers in tests/signers/ on a Python \
             with standardwebhooks, svix and cryptography. Make one with \
             `scripts/python-venv.sh tests/interop/requirements.txt` and run with \
             `INTEROP_PYTHON=$PWD/.venv/bin/python` (scripts/test.sh does both)"
        )
    })
}

/// Runs `tests/signers/<script>` (a file name, then its arguments) with `job` on stdin and returns
/// what it printed.
fn run_signer(script: &str, job: &Value) -> Value {
    let python = python();
    // `script` is the file name, then its arguments.
    let mut words = script.split(' ');
    let path = format!(
        "{}/tests/signers/{}",
        env!("CARGO_MANIFEST_DIR"),
        words.next().unwrap()
    );
    let mut child = Command::new(&python)
        .arg(&path)
        .args(words)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("INTEROP_PYTHON={python} does not run ({e}); recreate it with scripts/python-venv.sh tests/interop/requirements.txt")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{script} failed ({}); is INTEROP_PYTHON={python} the venv of \
         tests/interop/requirements.txt?\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// One signed request, as a signer printed it.
struct Signed {
    headers: HeaderMap,
    body: Vec<u8>,
}

fn messages(printed: &Value) -> Vec<Signed> {
    printed["messages"]
        .as_array()
        .expect("a `messages` list")
        .iter()
        .map(|m| {
            let mut headers = HeaderMap::new();
            for (name, value) in m["headers"].as_object().expect("headers") {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
                );
            }
            let body = m["body"].as_str().expect("body").as_bytes().to_vec();
            Signed { headers, body }
        })
        .collect()
}

/// Both checks in the route's order: the headers, then (only if they passed) the body.
async fn check(auth: &Authenticator, headers: &HeaderMap, body: &[u8]) -> Result<(), Reason> {
    auth.check_headers(headers)
        .await
        .and_then(|()| auth.check_body(headers, body))
        .map_err(|failure: AuthFailure| failure.reason)
}

async fn standard_webhooks(secrets: &[&str], public_keys: &[String]) -> Authenticator {
    Authenticator::from_config(&AuthConfig {
        mode: Some(AuthMode::StandardWebhooks),
        standard_webhooks: StandardWebhooksConfig {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            public_keys: public_keys.to_vec(),
            ..StandardWebhooksConfig::default()
        },
        ..AuthConfig::default()
    })
    .await
    .unwrap()
}

/// A message to sign and what the connector must answer.
struct Case {
    name: &'static str,
    timestamp: u64,
    /// Indices of the Ed25519 keys that sign it (`v1a`).
    keys: Vec<usize>,
    /// Secrets that sign it (`v1`).
    secrets: Vec<&'static str>,
    expected: Result<(), Reason>,
}

fn case(
    name: &'static str,
    timestamp: u64,
    keys: &[usize],
    secrets: &[&'static str],
    expected: Result<(), Reason>,
) -> Case {
    Case {
        name,
        timestamp,
        keys: keys.to_vec(),
        secrets: secrets.to_vec(),
        expected,
    }
}

/// Each case's name with the answer `got`, against the expected answers.
fn compare(cases: &[Case], got: &[Result<(), Reason>]) {
    let expected: Vec<_> = cases.iter().map(|c| (c.name, c.expected)).collect();
    let got: Vec<_> = cases.iter().zip(got).map(|(c, a)| (c.name, *a)).collect();
    assert_eq!(got, expected);
}

fn now() -> u64 {
    riskos_connector::common::clock::now_secs()
}

fn body(n: u32) -> String {
    json!({"event_id": format!("evt-{n}"), "event_type": "case.updated", "data": {"n": n}})
        .to_string()
}

#[tokio::test]
async fn the_reference_library_v1_signatures_are_accepted_exactly_when_valid() {
    // Arrange: messages signed by the library, each with what the connector must answer.
    let now = now();
    let stale = Err(Reason::StaleTimestamp);
    let cases = [
        case("signed with the new secret", now, &[], &[NEW], Ok(())),
        case("a minute ago, old secret", now - 60, &[], &[OLD], Ok(())),
        case(
            "sender rotating: old and new",
            now,
            &[],
            &[OLD, NEW],
            Ok(()),
        ),
        case("one foreign, one good", now, &[], &[FOREIGN, NEW], Ok(())),
        case("just inside the window", now - 290, &[], &[NEW], Ok(())),
        case("stale: ten minutes old", now - 600, &[], &[NEW], stale),
        case("from the future", now + 600, &[], &[NEW], stale),
        case(
            "a secret nobody configured",
            now,
            &[],
            &[FOREIGN],
            Err(Reason::BadSignature),
        ),
    ];
    let job = json!({"messages": cases.iter().enumerate().map(|(i, c)| json!({
        "id": format!("msg_signers_{i}"),
        "timestamp": c.timestamp,
        "body": body(i as u32),
        "secrets": c.secrets,
    })).collect::<Vec<_>>()});
    let signed = messages(&run_signer("webhooks_v1.py standardwebhooks", &job));
    // The receiver rotating too: both secrets listed, the new one without its prefix.
    let auth = standard_webhooks(&[OLD, NEW.trim_start_matches("whsec_")], &[]).await;

    // Act
    let mut answers = Vec::new();
    for m in &signed {
        answers.push(check(&auth, &m.headers, &m.body).await);
    }

    // Assert: exactly the valid ones pass; each is keyed by its webhook-id.
    compare(&cases, &answers);
    assert_eq!(
        auth.idempotency_key(&signed[0].headers),
        Some("msg_signers_0")
    );

    // Tampered after signing: another body, another id, another timestamp.
    let good = &signed[0];
    let mut tampered_body = good.body.clone();
    tampered_body.push(b' ');
    assert_eq!(
        check(&auth, &good.headers, &tampered_body).await,
        Err(Reason::BadSignature)
    );
    for (name, value) in [
        ("webhook-id", "msg_signers_other".to_string()),
        ("webhook-timestamp", (now - 1).to_string()),
    ] {
        let mut headers = good.headers.clone();
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
        assert_eq!(
            check(&auth, &headers, &good.body).await,
            Err(Reason::BadSignature),
            "{name}"
        );
    }

    // A receiver that has dropped the old secret refuses what only the old one signed.
    let rotated = standard_webhooks(&[NEW], &[]).await;
    assert_eq!(
        check(&rotated, &signed[1].headers, &signed[1].body).await,
        Err(Reason::BadSignature)
    );
    assert_eq!(
        check(&rotated, &signed[2].headers, &signed[2].body).await,
        Ok(())
    );
}

#[tokio::test]
async fn svixs_own_library_and_header_names_are_accepted_exactly_when_valid_and_never_mixed() {
    // Arrange: messages signed by Svix's library under Svix's default header names.
    let now = now();
    let cases = [
        case("signed with the new secret", now, &[], &[NEW], Ok(())),
        case("sender rotating", now - 60, &[], &[OLD, NEW], Ok(())),
        case("one foreign, one good", now, &[], &[FOREIGN, OLD], Ok(())),
        case(
            "stale: ten minutes old",
            now - 600,
            &[],
            &[NEW],
            Err(Reason::StaleTimestamp),
        ),
        case(
            "a secret nobody configured",
            now,
            &[],
            &[FOREIGN],
            Err(Reason::BadSignature),
        ),
    ];
    let job = |prefix: &str| {
        json!({"messages": cases.iter().enumerate().map(|(i, c)| json!({
            "id": format!("{prefix}_{i}"),
            "timestamp": c.timestamp,
            "body": body(300 + i as u32),
            "secrets": c.secrets,
        })).collect::<Vec<_>>()})
    };
    let signed = messages(&run_signer("webhooks_v1.py svix", &job("msg_svix")));
    // The same messages signed by the Standard Webhooks library, and other ones.
    let standard = messages(&run_signer(
        "webhooks_v1.py standardwebhooks",
        &job("msg_svix"),
    ));
    let others = messages(&run_signer(
        "webhooks_v1.py standardwebhooks",
        &job("msg_other"),
    ));
    assert!(signed[0].headers.contains_key("svix-signature"));
    assert_eq!(
        signed[0].headers.get("svix-signature"),
        standard[0].headers.get("webhook-signature")
    );
    let auth = standard_webhooks(&[OLD, NEW], &[]).await;

    // Act
    let mut answers = Vec::new();
    for m in &signed {
        answers.push(check(&auth, &m.headers, &m.body).await);
    }

    // Assert: exactly the valid ones pass, keyed by their svix-id as a webhook-id would be.
    compare(&cases, &answers);
    assert_eq!(auth.idempotency_key(&signed[0].headers), Some("msg_svix_0"));
    let good = &signed[0];
    let mut tampered = good.headers.clone();
    tampered.insert("svix-id", HeaderValue::from_static("msg_svix_other"));
    assert_eq!(
        check(&auth, &tampered, &good.body).await,
        Err(Reason::BadSignature)
    );

    // Never a mix: the Standard Webhooks id with Svix's timestamp and signature...
    let mut mixed = good.headers.clone();
    let id = mixed.remove("svix-id").unwrap();
    mixed.insert("webhook-id", id);
    assert_eq!(
        check(&auth, &mixed, &good.body).await,
        Err(Reason::MixedHeaderFamilies)
    );
    // ... nor both families naming different messages, though each verifies alone.
    let mut both = good.headers.clone();
    both.extend(others[0].headers.clone());
    assert_eq!(
        check(&auth, &others[0].headers, &others[0].body).await,
        Ok(())
    );
    assert_eq!(
        check(&auth, &both, &good.body).await,
        Err(Reason::MixedHeaderFamilies)
    );
    assert_eq!(auth.idempotency_key(&both), None);
    // Both families, equal header by header (the white-labelled copy of the same message):
    // one message, read once.
    let mut copied = good.headers.clone();
    copied.extend(standard[0].headers.clone());
    assert_eq!(copied.len(), 6);
    assert_eq!(check(&auth, &copied, &good.body).await, Ok(()));
    assert_eq!(auth.idempotency_key(&copied), Some("msg_svix_0"));
}

#[tokio::test]
async fn ed25519_v1a_signatures_in_the_spec_key_formats_are_accepted_exactly_when_valid() {
    // Arrange: three fresh key pairs; the connector trusts the public keys of the first two.
    let now = now();
    let bad = Err(Reason::BadSignature);
    let cases = [
        case("first key", now, &[0], &[], Ok(())),
        case("second key (rotation)", now - 30, &[1], &[], Ok(())),
        case(
            "untrusted key, then a trusted one",
            now,
            &[2, 0],
            &[],
            Ok(()),
        ),
        case("v1a next to v1", now, &[1], &[NEW], Ok(())),
        case("v1 only, from the library", now, &[], &[OLD], Ok(())),
        case("untrusted key only", now, &[2], &[], bad),
        case("untrusted key, foreign secret", now, &[2], &[FOREIGN], bad),
        case("stale", now - 301, &[0], &[], Err(Reason::StaleTimestamp)),
    ];
    let job = json!({"keys": 3, "messages": cases.iter().enumerate().map(|(i, c)| json!({
        "id": format!("msg_v1a_{i}"),
        "timestamp": c.timestamp,
        "body": body(100 + i as u32),
        "keys": c.keys,
        "secrets": c.secrets,
    })).collect::<Vec<_>>()});
    let printed = run_signer("standard_webhooks_v1a.py", &job);
    let public_keys: Vec<String> = printed["public_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(public_keys.iter().all(|k| k.starts_with("whpk_")));
    let signed = messages(&printed);
    let auth = standard_webhooks(&[OLD, NEW], &public_keys[..2]).await;

    // Act
    let mut answers = Vec::new();
    for m in &signed {
        answers.push(check(&auth, &m.headers, &m.body).await);
    }

    // Assert
    compare(&cases, &answers);
    let mut tampered = signed[0].body.clone();
    tampered[0] = b' ';
    assert_eq!(
        check(&auth, &signed[0].headers, &tampered).await,
        Err(Reason::BadSignature)
    );

    // With public keys only, a v1 signature is nothing the endpoint can check.
    let keys_only = standard_webhooks(&[], &public_keys[..2]).await;
    assert_eq!(
        check(&keys_only, &signed[0].headers, &signed[0].body).await,
        Ok(())
    );
    assert_eq!(
        check(&keys_only, &signed[4].headers, &signed[4].body).await,
        Err(Reason::NoVerifiableSignature)
    );
}

#[tokio::test]
async fn alloys_hmac_in_the_authorization_header_passes_hmac_mode() {
    // Arrange: `hmac` mode as Alloy's HMAC option needs it.
    let secret = "alloy-shared-secret-7f3c9a1e";
    let bodies: Vec<String> = (0..3).map(|n| body(200 + n)).collect();
    let signed = messages(&run_signer(
        "alloy_hmac.py",
        &json!({"secret": secret, "bodies": bodies}),
    ));
    let foreign = messages(&run_signer(
        "alloy_hmac.py",
        &json!({"secret": "another-alloy-secret-0000", "bodies": [bodies[0]]}),
    ));
    let auth = Authenticator::from_config(&AuthConfig {
        mode: Some(AuthMode::Hmac),
        hmac: HmacConfig {
            secrets: vec![Secret::new(secret)],
            header: "Authorization".into(),
            encoding: SignatureEncoding::Base64,
            ..HmacConfig::default()
        },
        ..AuthConfig::default()
    })
    .await
    .unwrap();
    assert!(auth.needs_body());

    // Act + Assert: every signed body passes, with no idempotency key in this mode.
    for m in &signed {
        assert_eq!(check(&auth, &m.headers, &m.body).await, Ok(()));
        assert_eq!(auth.idempotency_key(&m.headers), None);
    }
    // A tampered body, a body signed for another one, another secret: refused.
    let mut tampered = signed[0].body.clone();
    tampered.extend_from_slice(b"\n");
    assert_eq!(
        check(&auth, &signed[0].headers, &tampered).await,
        Err(Reason::BadSignature)
    );
    assert_eq!(
        check(&auth, &signed[0].headers, &signed[1].body).await,
        Err(Reason::BadSignature)
    );
    assert_eq!(
        check(&auth, &foreign[0].headers, &foreign[0].body).await,
        Err(Reason::BadSignature)
    );
}
