//! A broker configured the way customers' clusters are, made once per test binary:
//!
//! - `MTLS`: an SSL listener with `ssl.client.auth=required` (server and client certificates
//!   signed by a CA the test makes);
//! - `SASL`: SASL_SSL with SCRAM-SHA-512 (a user created on the broker with kafka-configs, as
//!   operators do) and PLAIN (a user in the listener's JAAS config);
//! - `OAUTH`: SASL_SSL with OAUTHBEARER, tokens validated by Kafka's own
//!   `OAuthBearerValidatorCallbackHandler` against the JWKS of a TEST DOUBLE identity provider
//!   this module serves, which also has a client-credentials token endpoint issuing short-lived
//!   tokens; the listener re-authenticates connections (`connections.max.reauth.ms`), so an
//!   expired token is refused.
//!
//! The broker's own PLAINTEXT listener stays for inter-broker traffic and the tests' readers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::{json, Value};

use crate::auth_modes::unix_now;
use crate::jwt::SigningKey;
use crate::Broker;

/// The SCRAM-SHA-512 user and its password.
pub const SCRAM_USER: &str = "riskos-scram";
pub const SCRAM_PASSWORD: &str = "scram-Secret-7f3a";
/// A SCRAM-SHA-512 user that may describe topics but not write to them.
pub const READONLY_USER: &str = "riskos-readonly";
pub const READONLY_PASSWORD: &str = "readonly-Secret-22b8";
/// The PLAIN user and its password.
pub const PLAIN_USER: &str = "riskos-plain";
pub const PLAIN_PASSWORD: &str = "plain-Secret-91c2";
/// The OAuth client and its secret at the identity provider.
pub const OAUTH_CLIENT: &str = "riskos-connector";
pub const OAUTH_SECRET: &str = "oauth-Secret-5d0e";
/// Lifetime of the provider's tokens: short, so a test sees several refreshes.
pub const TOKEN_SECONDS: u64 = 4;

/// Files of a CA and the certificates it signed.
pub struct Certificates {
    pub ca: PathBuf,
    /// A CA that signed nothing here (a wrong `ca_file`).
    pub wrong_ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The broker's key and certificate chain (a PEM keystore).
    broker_keystore: PathBuf,
}

/// The secured broker with its certificates and identity provider.
pub struct Secured {
    pub broker: Broker,
    pub certs: Certificates,
    /// The token endpoint (`http://127.0.0.1:port/token`).
    pub token_url: String,
    /// Tokens issued so far.
    tokens_issued: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Secured {
    /// The binary's secured broker, started on first use.
    pub fn get() -> &'static Secured {
        static SECURED: OnceLock<Secured> = OnceLock::new();
        SECURED.get_or_init(Self::start)
    }

    /// Tokens the identity provider has issued.
    pub fn tokens_issued(&self) -> usize {
        self.tokens_issued.load(Ordering::SeqCst)
    }

    fn start() -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let certs = make_certificates(dir.path());
        let key = SigningKey::generate("kafka-test-key");
        let tokens_issued = Arc::new(AtomicUsize::new(0));
        let idp = serve_identity_provider(key, tokens_issued.clone());
        let jwks_url = format!("{idp}/jwks");
        let token_url = format!("{idp}/token");
        let keystore = certs.broker_keystore.display().to_string();
        let ca = certs.ca.display().to_string();
        let mut config: Vec<String> = Vec::new();
        for listener in ["mtls", "sasl", "oauth"] {
            config.extend([
                format!("listener.name.{listener}.ssl.keystore.type=PEM"),
                format!("listener.name.{listener}.ssl.keystore.location={keystore}"),
                format!("listener.name.{listener}.ssl.truststore.type=PEM"),
                format!("listener.name.{listener}.ssl.truststore.location={ca}"),
            ]);
        }
        config.extend([
            // ACLs, as on every customer cluster: the PLAINTEXT listener (inter-broker, the
            // controller, the tests' own tools) is the super user ANONYMOUS; every other
            // principal may do only what `grant` allows.
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
                .to_string(),
            "super.users=User:ANONYMOUS".to_string(),
            "allow.everyone.if.no.acl.found=false".to_string(),
            "listener.name.mtls.ssl.client.auth=required".to_string(),
            "listener.name.sasl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN".to_string(),
            "listener.name.sasl.scram-sha-512.sasl.jaas.config=\
             org.apache.kafka.common.security.scram.ScramLoginModule required;"
                .to_string(),
            format!(
                "listener.name.sasl.plain.sasl.jaas.config=\
                 org.apache.kafka.common.security.plain.PlainLoginModule required \
                 user_{PLAIN_USER}=\"{PLAIN_PASSWORD}\";"
            ),
            "listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER".to_string(),
            "listener.name.oauth.oauthbearer.sasl.jaas.config=\
             org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
                .to_string(),
            "listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=\
             org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
                .to_string(),
            format!(
                "listener.name.oauth.oauthbearer.sasl.oauthbearer.jwks.endpoint.url={jwks_url}"
            ),
            format!("sasl.oauthbearer.jwks.endpoint.url={jwks_url}"),
            "sasl.oauthbearer.expected.audience=kafka".to_string(),
            "sasl.oauthbearer.expected.issuer=https://idp.test".to_string(),
            // Expired means expired: Kafka's default allows 30 s of clock skew.
            "sasl.oauthbearer.clock.skew.seconds=0".to_string(),
            // The broker closes a connection whose token expired without re-authentication.
            "listener.name.oauth.oauthbearer.connections.max.reauth.ms=3000".to_string(),
        ]);
        let env = [(
            "KAFKA_JVM_OPTS",
            format!("-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={jwks_url},{token_url}"),
        )];
        let broker = Broker::process_wide(
            "riskos-kafka-secured-",
            &config,
            &["MTLS:SSL", "SASL:SASL_SSL", "OAUTH:SASL_SSL"],
            &env,
        );
        broker.add_scram_user(SCRAM_USER, SCRAM_PASSWORD);
        broker.add_scram_user(READONLY_USER, READONLY_PASSWORD);
        // The principals of mTLS (the certificate's subject), SCRAM, PLAIN and OIDC (`sub`).
        for principal in [
            "User:CN=riskos-connector",
            &format!("User:{SCRAM_USER}"),
            &format!("User:{PLAIN_USER}"),
            &format!("User:{OAUTH_CLIENT}"),
        ] {
            broker.grant(principal, &["All"], true);
        }
        broker.grant(
            &format!("User:{READONLY_USER}"),
            &["Describe", "DescribeConfigs"],
            false,
        );
        Secured {
            broker,
            certs,
            token_url,
            tokens_issued,
            _dir: dir,
        }
    }
}

fn make_certificates(dir: &Path) -> Certificates {
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let (issuer, wrong) = (ca("riskos test CA"), ca("some other CA"));
    let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (broker_cert, broker_key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        "broker",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        vec![],
        "riskos-connector",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let write = |name: &str, content: String| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    Certificates {
        ca: write("ca.pem", issuer.pem()),
        wrong_ca: write("wrong-ca.pem", wrong.pem()),
        client_cert: write("client.crt", client_cert),
        client_key: write("client.key", client_key),
        // Kafka's PEM keystore: the private key (PKCS#8), then the certificate chain.
        broker_keystore: write(
            "broker.pem",
            format!("{broker_key}{broker_cert}{}", issuer.pem()),
        ),
    }
}

/// Serves `/jwks` and the client-credentials `/token` endpoint on a thread of their own (the
/// broker outlives every test's runtime); returns `http://127.0.0.1:port`.
fn serve_identity_provider(key: SigningKey, issued: Arc<AtomicUsize>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new((key, issued));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = Router::new()
                .route(
                    "/jwks",
                    get(
                        |State(state): State<Arc<(SigningKey, Arc<AtomicUsize>)>>| async move {
                            Json(json!({ "keys": [state.0.jwk.clone()] }))
                        },
                    ),
                )
                .route("/token", post(issue_token))
                .with_state(state);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    base
}

/// RFC 6749 §4.4: the client authenticates with HTTP Basic (librdkafka's way) or in the form.
async fn issue_token(
    State(state): State<Arc<(SigningKey, Arc<AtomicUsize>)>>,
    headers: axum::http::HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, axum::http::StatusCode> {
    use base64::Engine as _;
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let presented = basic.or_else(|| {
        Some(format!(
            "{}:{}",
            form.get("client_id")?,
            form.get("client_secret")?
        ))
    });
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || presented.as_deref() != Some(&format!("{OAUTH_CLIENT}:{OAUTH_SECRET}"))
    {
        return Err(axum::http::StatusCode::UNAUTHORIZED);
    }
    let now = unix_now();
    let token = state.0.sign(&json!({
        "sub": OAUTH_CLIENT,
        "aud": "kafka",
        "iss": "https://idp.test",
        "iat": now,
        "exp": now + TOKEN_SECONDS,
        "scope": form.get("scope").cloned().unwrap_or_default(),
    }));
    state.1.fetch_add(1, Ordering::SeqCst);
    Ok(Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": TOKEN_SECONDS,
    })))
}
