//! Schema registry authentication, against the registry double made to require each mode:
//! Basic, a static bearer token, OAuth client credentials (its token endpoint served by the
//! double, tokens short-lived so a refresh shows), a client certificate, and a private CA.
//! Each registers the schemas as start-up does (`topology::resolve_routes`: latest version,
//! compatibility, registration, for every subject); no Kafka broker is involved.

use std::path::PathBuf;
use std::time::Duration;

use riskos_connector::common::secret::Secret;
use riskos_connector::pipeline::schema::{Registry, RegistryError};
use riskos_connector::wiring::config::{RegistryOAuthConfig, SchemaRegistryConfig};

use support::pki::Pki;
use support::registry::Require;
use support::{test_config, RegistryDouble};

/// The registry section of a test config pointing at `registry`.
fn section(registry: &RegistryDouble) -> SchemaRegistryConfig {
    test_config("unused:9092", &registry.url).schema_registry
}

/// Start-up's registration of every schema through `section`; the subjects registered.
async fn register_all(section: SchemaRegistryConfig) -> anyhow::Result<usize> {
    let mut config = test_config("unused:9092", &section.url);
    config.schema_registry = section;
    let registry = Registry::new(&config.schema_registry)?;
    let routes =
        riskos_connector::wiring::topology::resolve_routes(&config, Some(&registry)).await?;
    Ok(routes.topics().len())
}

/// The error of a registration expected to fail, as start-up would print it.
async fn refusal(section: SchemaRegistryConfig) -> String {
    match register_all(section).await {
        Ok(_) => panic!("the registration should fail"),
        Err(error) => format!("{error:#}"),
    }
}

/// One registry call's typed error (to ask whether start-up would wait or stop).
async fn call_error(section: &SchemaRegistryConfig) -> RegistryError {
    let registry = Registry::new(section).expect("settings");
    registry
        .latest("riskos.probe-value")
        .await
        .expect_err("the call should fail")
}

fn secret_file(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[tokio::test]
async fn basic_auth_registers_and_a_wrong_or_missing_password_is_a_clear_401() {
    let double = RegistryDouble::start_with(
        Require::Basic {
            user: "api-key".into(),
            password: "api-secret-1".into(),
        },
        None,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let good = SchemaRegistryConfig {
        username: Some("api-key".into()),
        password_file: Some(secret_file(&dir, "pw", "api-secret-1\n")),
        ..section(&double)
    };
    assert!(register_all(good).await.unwrap() > 0);
    assert!(!double.subjects().is_empty());

    let wrong = SchemaRegistryConfig {
        username: Some("api-key".into()),
        password: Some(Secret::new("not-the-secret")),
        ..section(&double)
    };
    let message = refusal(wrong.clone()).await;
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("credentials"), "{message}");
    assert!(!message.contains("not-the-secret"), "{message}");
    assert!(
        !call_error(&wrong).await.is_unreachable(),
        "a 401 stops start-up"
    );

    let message = refusal(section(&double)).await;
    assert!(message.contains("401"), "{message}");
}

#[tokio::test]
async fn a_bearer_token_from_a_file_registers_and_a_wrong_one_is_a_clear_401() {
    let double = RegistryDouble::start_with(Require::Bearer("static-token-1".into()), None).await;
    let dir = tempfile::tempdir().unwrap();
    let good = SchemaRegistryConfig {
        bearer_token_file: Some(secret_file(&dir, "token", "static-token-1\n")),
        ..section(&double)
    };
    assert!(register_all(good).await.unwrap() > 0);

    let wrong = SchemaRegistryConfig {
        bearer_token: Some(Secret::new("stale-token-0")),
        ..section(&double)
    };
    let message = refusal(wrong).await;
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains("stale-token-0"), "{message}");

    let missing = SchemaRegistryConfig {
        bearer_token_file: Some(dir.path().join("absent")),
        ..section(&double)
    };
    let message = Registry::new(&missing).unwrap_err().to_string();
    assert!(
        message.starts_with("config key `schema_registry.bearer_token_file`: cannot read"),
        "{message}"
    );
}

fn oauth_double(lifetime: Duration) -> Require {
    Require::OAuth {
        client_id: "connector-client".into(),
        client_secret: "client-secret-1".into(),
        lifetime,
    }
}

fn oauth_section(double: &RegistryDouble, client_secret: &str) -> SchemaRegistryConfig {
    SchemaRegistryConfig {
        oauth: RegistryOAuthConfig {
            token_endpoint_url: double.token_url(),
            client_id: Some("connector-client".into()),
            client_secret: Some(Secret::new(client_secret)),
            scope: Some("registry:write".into()),
            logical_cluster: Some("lsrc-123".into()),
            identity_pool_id: Some("pool-abc".into()),
            ..Default::default()
        },
        ..section(double)
    }
}

#[tokio::test]
async fn an_oauth_token_is_fetched_once_reused_and_sent_with_the_cluster_headers() {
    let double = RegistryDouble::start_with(oauth_double(Duration::from_secs(3600)), None).await;
    let subjects = register_all(oauth_section(&double, "client-secret-1"))
        .await
        .unwrap();
    // Start-up made two registry calls per subject with one token.
    assert!(subjects > 1);
    assert_eq!(double.token_requests(), 1);
    assert_eq!(double.refusals(), 0);
    let form = double.last_token_form();
    assert!(
        form.contains("grant_type=client_credentials") && form.contains("scope=registry%3Awrite"),
        "{form}"
    );
    assert_eq!(
        double.last_cluster_headers(),
        (Some("lsrc-123".into()), Some("pool-abc".into()))
    );
}

#[tokio::test]
async fn an_oauth_token_is_fetched_again_before_it_expires() {
    let double = RegistryDouble::start_with(oauth_double(Duration::from_secs(1)), None).await;
    let registry = Registry::new(&oauth_section(&double, "client-secret-1")).unwrap();
    assert!(registry.reachable().await);
    assert_eq!(double.token_requests(), 1);

    // Wait for the double's own expiry of the first token, then prove it: the double now
    // refuses it.
    tokio::time::sleep_until(double.token_expiry(1).into()).await;
    let refused = reqwest::Client::new()
        .get(format!("{}/subjects", double.url))
        .bearer_auth("tok-1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the first token has expired");
    let refusals = double.refusals();

    // The connector fetched a new token on its own: no call was refused on the way.
    assert!(registry.reachable().await);
    assert_eq!(double.token_requests(), 2);
    assert_eq!(double.refusals(), refusals);
}

#[tokio::test]
async fn an_oauth_token_the_registry_refuses_is_replaced_at_the_next_call() {
    let double = RegistryDouble::start_with(oauth_double(Duration::from_secs(3600)), None).await;
    let registry = Registry::new(&oauth_section(&double, "client-secret-1")).unwrap();
    assert!(registry.reachable().await);
    double.revoke_tokens();
    // The refusal is reported, not hidden by a retry...
    assert!(!registry.reachable().await);
    assert_eq!(double.refusals(), 1);
    // ...and the next call does not wait an hour for the refresh point.
    assert!(registry.reachable().await);
    assert_eq!(double.token_requests(), 2);
}

#[tokio::test]
async fn a_refused_oauth_client_fails_naming_the_token_endpoint_not_the_secret() {
    let double = RegistryDouble::start_with(oauth_double(Duration::from_secs(3600)), None).await;
    let wrong = oauth_section(&double, "guessed-secret");
    let message = refusal(wrong.clone()).await;
    assert!(message.contains(&double.token_url()), "{message}");
    assert!(message.contains("401 (invalid_client)"), "{message}");
    assert!(!message.contains("guessed-secret"), "{message}");
    assert_eq!(double.refusals(), 0, "the registry was never called");
    assert!(!call_error(&wrong).await.is_unreachable(), "start-up stops");
}

#[tokio::test]
async fn a_client_certificate_is_presented_where_the_registry_requires_one() {
    let pki = Pki::new("registry test CA");
    let double =
        RegistryDouble::start_with(Require::Nothing, Some(pki.server_config(Some(&pki)))).await;
    let (cert_file, key_file) = pki.client_files("connector");
    let with_cert = SchemaRegistryConfig {
        ca_file: Some(pki.ca_file()),
        cert_file: Some(cert_file),
        key_file: Some(key_file),
        ..section(&double)
    };
    assert!(register_all(with_cert.clone()).await.unwrap() > 0);

    let without = SchemaRegistryConfig {
        cert_file: None,
        key_file: None,
        ..with_cert.clone()
    };
    let message = refusal(without.clone()).await;
    assert!(message.contains("CertificateRequired"), "{message}");
    assert!(message.contains("TLS refused"), "{message}");
    assert!(
        !call_error(&without).await.is_unreachable(),
        "a TLS refusal stops start-up"
    );

    // A certificate from a CA the registry does not trust.
    let stranger = Pki::new("another CA");
    let (cert_file, key_file) = stranger.client_files("connector");
    let untrusted = SchemaRegistryConfig {
        cert_file: Some(cert_file),
        key_file: Some(key_file),
        ..with_cert
    };
    let message = refusal(untrusted).await;
    assert!(message.contains("UnknownCA"), "{message}");
    assert!(message.contains("TLS refused"), "{message}");
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_file_only() {
    let pki = Pki::new("private registry CA");
    let double = RegistryDouble::start_with(Require::Nothing, Some(pki.server_config(None))).await;
    assert!(double.url.starts_with("https://"));

    let message = refusal(section(&double)).await;
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(message.contains("schema_registry.ca_file"), "{message}");
    assert!(!call_error(&section(&double)).await.is_unreachable());

    let trusted = SchemaRegistryConfig {
        ca_file: Some(pki.ca_file()),
        ..section(&double)
    };
    assert!(register_all(trusted).await.unwrap() > 0);
}
