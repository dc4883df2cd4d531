//! TEST DOUBLE of a Confluent Schema Registry — not a product component.
//!
//! Implements only the REST calls the connector and the interop clients make:
//! `POST /subjects/{subject}/versions`, `GET /schemas/ids/{id}`,
//! `GET /subjects/{subject}/versions/latest`, `GET /subjects`. Identical schemas share one
//! global id, as in the real registry. Docker-compose runs the real
//! `confluentinc/cp-schema-registry`.
//!
//! [`RegistryDouble::start_with`] makes it demand credentials ([`Require`]: Basic, a bearer
//! token, or a token from the OAuth client-credentials endpoint it also serves at
//! `/oauth2/token`) and serve HTTPS with a given rustls config (a private CA's certificate,
//! a client-certificate verifier).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

/// What the double demands of a registry call.
#[derive(Clone, Debug, Default)]
pub enum Require {
    /// Nothing.
    #[default]
    Nothing,
    /// `Authorization: Basic` with this user and password.
    Basic { user: String, password: String },
    /// `Authorization: Bearer` with this token.
    Bearer(String),
    /// `Authorization: Bearer` with an unexpired token of its own `/oauth2/token`, which
    /// issues them to this client for `lifetime`.
    OAuth {
        client_id: String,
        client_secret: String,
        lifetime: Duration,
    },
}

/// A token the OAuth endpoint issued.
struct Issued {
    token: String,
    expires: Instant,
}

#[derive(Default)]
struct Store {
    /// Schema text by global id (1-based).
    schemas: Vec<String>,
    /// Ids registered under each subject, in version order.
    subjects: BTreeMap<String, Vec<u32>>,
    /// `GET /subjects` calls answered.
    listings: usize,
    /// What registry calls must present.
    require: Require,
    /// Registry calls refused with 401.
    refusals: usize,
    /// Requests to `/oauth2/token`, and the form body of the last one.
    token_requests: usize,
    last_token_form: String,
    /// Tokens issued, in order.
    issued: Vec<Issued>,
    /// The `target-sr-cluster` and `Confluent-Identity-Pool-Id` headers of the last admitted
    /// call.
    last_cluster_headers: (Option<String>, Option<String>),
}

/// A running registry double.
pub struct RegistryDouble {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    /// Ends the server: idle keep-alive connections are closed, so the registry is gone for
    /// every client, pooled connections included.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// HTTPS with this config, when set.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl RegistryDouble {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener).await
    }

    /// Starts on a given listener (lets a test restart it on the same port).
    pub async fn serve(listener: tokio::net::TcpListener) -> Self {
        Self::serve_store(listener, Arc::new(Mutex::new(Store::default())), None)
    }

    /// Starts on a free loopback port demanding `require` of every registry call, over HTTPS
    /// with `tls` when given (its URL is then `https://127.0.0.1:<port>`).
    pub async fn start_with(require: Require, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let store = Store {
            require,
            ..Store::default()
        };
        Self::serve_store(listener, Arc::new(Mutex::new(store)), tls)
    }

    fn serve_store(
        listener: tokio::net::TcpListener,
        store: Arc<Mutex<Store>>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let addr: SocketAddr = listener.local_addr().unwrap();
        // The token endpoint is added after the layer, so it is not behind the check.
        let app = Router::new()
            .route("/subjects", get(list_subjects))
            .route("/subjects/{subject}/versions", post(register))
            .route("/subjects/{subject}/versions/latest", get(latest))
            .route("/schemas/ids/{id}", get(by_id))
            .layer(axum::middleware::from_fn_with_state(store.clone(), admit))
            .route("/oauth2/token", post(issue_token))
            .with_state(store.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let task = match &tls {
            None => tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
                    .unwrap();
            }),
            Some(config) => {
                let listener = TlsListener {
                    tcp: listener,
                    acceptor: tokio_rustls::TlsAcceptor::from(config.clone()),
                };
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await
                        .unwrap();
                })
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        Self {
            url: format!("{scheme}://{addr}"),
            addr,
            store,
            stop: Some(stop),
            task,
            tls,
        }
    }

    /// The URL of its OAuth token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.url)
    }

    /// Requests its token endpoint has answered (issued or refused).
    pub fn token_requests(&self) -> usize {
        self.store.lock().unwrap().token_requests
    }

    /// The form body of the last token request.
    pub fn last_token_form(&self) -> String {
        self.store.lock().unwrap().last_token_form.clone()
    }

    /// When the `n`th issued token (1-based) expires.
    pub fn token_expiry(&self, n: usize) -> Instant {
        self.store.lock().unwrap().issued[n - 1].expires
    }

    /// Ends every issued token now, as a provider revoking them (or rotating its keys) would.
    pub fn revoke_tokens(&self) {
        let now = Instant::now();
        for issued in &mut self.store.lock().unwrap().issued {
            issued.expires = now;
        }
    }

    /// Registry calls refused with 401.
    pub fn refusals(&self) -> usize {
        self.store.lock().unwrap().refusals
    }

    /// The `target-sr-cluster` and `Confluent-Identity-Pool-Id` headers of the last admitted
    /// call.
    pub fn last_cluster_headers(&self) -> (Option<String>, Option<String>) {
        self.store.lock().unwrap().last_cluster_headers.clone()
    }

    /// Stops answering (the port is closed) until [`RegistryDouble::restart`]; what was
    /// registered is kept.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }

    /// Serves again on the same port, with everything registered before the stop.
    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        *self = Self::serve_store(listener, self.store.clone(), self.tls.clone());
    }

    /// How many `GET /subjects` calls (the connector's reachability check) it has answered.
    pub fn subject_listings(&self) -> usize {
        self.store.lock().unwrap().listings
    }

    /// How many versions `subject` has.
    pub fn versions(&self, subject: &str) -> usize {
        self.store
            .lock()
            .unwrap()
            .subjects
            .get(subject)
            .map_or(0, Vec::len)
    }

    /// Subjects registered so far.
    pub fn subjects(&self) -> Vec<String> {
        self.store
            .lock()
            .unwrap()
            .subjects
            .keys()
            .cloned()
            .collect()
    }
}

impl Drop for RegistryDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = State<Arc<Mutex<Store>>>;

/// Accepts TLS connections for `axum::serve`; a failed handshake (no client certificate, an
/// untrusted server certificate) drops that connection only.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The credential check in front of every registry call: 401 as Confluent's registry answers.
async fn admit(State(store): Shared, request: Request, next: Next) -> Response {
    let admitted = {
        let mut store = store.lock().unwrap();
        let admitted = store.admits(request.headers());
        if admitted {
            let value = |name: &str| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            store.last_cluster_headers = (
                value("target-sr-cluster"),
                value("confluent-identity-pool-id"),
            );
        } else {
            store.refusals += 1;
        }
        admitted
    };
    if !admitted {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error_code": 401, "message": "Unauthorized"})),
        )
            .into_response();
    }
    next.run(request).await
}

impl Store {
    fn admits(&self, headers: &HeaderMap) -> bool {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match &self.require {
            Require::Nothing => true,
            Require::Basic { user, password } => {
                basic_credentials(authorization) == Some((user.clone(), password.clone()))
            }
            Require::Bearer(token) => authorization.strip_prefix("Bearer ") == Some(token),
            Require::OAuth { .. } => {
                let Some(presented) = authorization.strip_prefix("Bearer ") else {
                    return false;
                };
                self.issued
                    .iter()
                    .any(|t| t.token == presented && Instant::now() < t.expires)
            }
        }
    }
}

/// The user and password of a Basic `Authorization` value.
fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let encoded = authorization.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `POST /oauth2/token`: the client-credentials grant, the client in HTTP Basic; tokens
/// `tok-<n>` valid for the configured lifetime.
async fn issue_token(State(store): Shared, headers: HeaderMap, body: String) -> Response {
    let mut store = store.lock().unwrap();
    store.token_requests += 1;
    store.last_token_form = body.clone();
    let Require::OAuth {
        client_id,
        client_secret,
        lifetime,
    } = store.require.clone()
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    if !form
        .iter()
        .any(|(k, v)| k == "grant_type" && v == "client_credentials")
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials);
    if presented != Some((client_id, client_secret)) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = format!("tok-{}", store.issued.len() + 1);
    store.issued.push(Issued {
        token: token.clone(),
        expires: Instant::now() + lifetime,
    });
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
    }))
    .into_response()
}

async fn register(
    State(store): Shared,
    Path(subject): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let Some(text) = body.get("schema").and_then(Value::as_str) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error_code": 42201, "message": "Invalid schema"})),
        );
    };
    if apache_avro::Schema::parse_str(text).is_err() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error_code": 42201, "message": "Invalid schema"})),
        );
    }
    let mut store = store.lock().unwrap();
    let parsed: Value = serde_json::from_str(text).unwrap();
    let existing = store
        .schemas
        .iter()
        .position(|s| serde_json::from_str::<Value>(s).ok().as_ref() == Some(&parsed));
    let id = match existing {
        Some(i) => i as u32 + 1,
        None => {
            store.schemas.push(text.to_string());
            store.schemas.len() as u32
        }
    };
    let versions = store.subjects.entry(subject).or_default();
    if !versions.contains(&id) {
        versions.push(id);
    }
    (StatusCode::OK, Json(json!({"id": id})))
}

async fn by_id(State(store): Shared, Path(id): Path<u32>) -> (StatusCode, Json<Value>) {
    let store = store.lock().unwrap();
    match store.schemas.get((id as usize).wrapping_sub(1)) {
        Some(schema) => (StatusCode::OK, Json(json!({"schema": schema}))),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error_code": 40403, "message": "Schema not found"})),
        ),
    }
}

async fn latest(State(store): Shared, Path(subject): Path<String>) -> (StatusCode, Json<Value>) {
    let store = store.lock().unwrap();
    match store
        .subjects
        .get(&subject)
        .and_then(|v| v.last().map(|id| (v.len(), *id)))
    {
        Some((version, id)) => (
            StatusCode::OK,
            Json(json!({
                "subject": subject, "version": version, "id": id,
                "schema": store.schemas[id as usize - 1],
            })),
        ),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error_code": 40401, "message": "Subject not found"})),
        ),
    }
}

async fn list_subjects(State(store): Shared) -> Json<Value> {
    let mut store = store.lock().unwrap();
    store.listings += 1;
    Json(json!(store.subjects.keys().collect::<Vec<_>>()))
}
