//! TEST DOUBLE of an identity provider — not a product component: ES256 signing keys made
//! with rcgen, and a JWKS endpoint whose key set a test can swap (key rotation), whose answer
//! it can replace with any body or a redirect (a misbehaving provider), and whose fetches it
//! can count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The issuer and audience every test token uses unless it means to be wrong.
pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "riskos-connector";

/// An ES256 key pair with its kid.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    /// The public half as a JWK.
    pub jwk: Value,
}

impl SigningKey {
    /// A fresh P-256 key.
    pub fn generate(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate().expect("P-256 key");
        let raw = pair.public_key_raw(); // 0x04 || x || y
        assert_eq!(raw.len(), 65, "uncompressed P-256 point");
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Self {
            kid: kid.to_string(),
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("pem"),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
            }),
        }
    }

    /// A signed token with these claims.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signs")
    }

    /// A token with these claims signed by this key, whose header names no `kid`.
    pub fn sign_without_kid(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.encoding).expect("signs")
    }
}

/// Claims that pass: right issuer and audience, valid for five minutes from now.
pub fn good_claims() -> Value {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "riskos", "iat": now, "exp": now + 300})
}

/// `claims` with some fields replaced.
pub fn with(mut claims: Value, patch: Value) -> Value {
    for (key, value) in patch.as_object().expect("object") {
        claims[key] = value.clone();
    }
    claims
}

/// An unsigned `alg: none` token naming `kid`.
pub fn alg_none(kid: &str, claims: &Value) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(claims.clone())
    )
}

/// What the double answers instead of its key set.
#[derive(Clone)]
enum Misbehaviour {
    /// This body, as JSON.
    Body(String),
    /// A temporary redirect to this URL.
    Redirect(String),
}

/// A running JWKS endpoint.
pub struct JwksDouble {
    /// `http://127.0.0.1:port/.well-known/jwks.json`
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    misbehaviour: Arc<Mutex<Option<Misbehaviour>>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksDouble {
    /// Serves `keys` on a free loopback port.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let served: Arc<Mutex<Vec<Value>>> =
            Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let misbehaviour: Arc<Mutex<Option<Misbehaviour>>> = Arc::new(Mutex::new(None));
        let (state, count, instead) = (served.clone(), fetches.clone(), misbehaviour.clone());
        let app = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                count.fetch_add(1, Ordering::SeqCst);
                let keys = state.lock().unwrap().clone();
                let instead = instead.lock().unwrap().clone();
                async move {
                    let answer: Response = match instead {
                        None => Json(json!({ "keys": keys })).into_response(),
                        Some(Misbehaviour::Body(body)) => {
                            ([("content-type", "application/json")], body).into_response()
                        }
                        Some(Misbehaviour::Redirect(to)) => {
                            Redirect::temporary(&to).into_response()
                        }
                    };
                    answer
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            keys: served,
            misbehaviour,
            fetches,
            task,
        }
    }

    /// From now on serves `keys` instead (a rotation at the provider).
    pub fn rotate_to(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// From now on answers `body` (JSON) instead of the key set.
    pub fn answer_body(&self, body: String) {
        *self.misbehaviour.lock().unwrap() = Some(Misbehaviour::Body(body));
    }

    /// From now on answers with a temporary redirect to `url`.
    pub fn redirect_to(&self, url: &str) {
        *self.misbehaviour.lock().unwrap() = Some(Misbehaviour::Redirect(url.to_string()));
    }

    /// How many times the key set was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}
