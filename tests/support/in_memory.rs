//! A connector without a broker: the service's router (`riskos_connector::wiring::app::handlers`) over
//! an in-memory store, driven with `tower::ServiceExt::oneshot` ([`Connector`]), or the whole
//! served app on a real listener ([`Served`]). No Kafka, no registry: the encoding is
//! single-object, so everything here runs in milliseconds.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use riskos_connector::delivery::memory::Kept;
use riskos_connector::delivery::MemoryStore;
use riskos_connector::ingress::http::tls::PeerAddr;
use riskos_connector::wiring::app::Application;
use riskos_connector::wiring::config::{Config, Encoding};
use serde_json::Value;
use tower::ServiceExt as _;

/// The connector's config for these tests: the test config ([`crate::config::base`]) with
/// single-object encoding (no registry) and no Kafka reachable (nothing may try it).
pub fn config() -> Config {
    let mut config = crate::config::base();
    // A port nothing listens on: a test that reached Kafka would fail, not hang.
    config.kafka.bootstrap_servers = "127.0.0.1:1".to_string();
    config.schema_registry.url = String::new();
    config.schemas.encoding = Some(Encoding::SingleObject);
    config
}

/// The router over a [`MemoryStore`].
pub struct Connector {
    router: Router,
    /// What was stored, and how the store answers.
    pub store: MemoryStore,
    /// The config it was built with.
    pub config: Config,
}

/// The address requests come from unless a test says otherwise.
pub const PEER: &str = "127.0.0.1:40000";

impl Connector {
    /// With the test config as is.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// With the test config adjusted by `adjust`; the config must validate.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::try_start_with(adjust)
            .await
            .unwrap_or_else(|e| panic!("the connector builds: {e:#}"))
    }

    /// Like [`Connector::start_with`], returning the start-up error.
    pub async fn try_start_with(adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let mut config = config();
        adjust(&mut config);
        config.validate()?;
        let store = MemoryStore::new();
        let router =
            riskos_connector::wiring::app::handlers(&config, Arc::new(store.clone())).await?;
        Ok(Self {
            router,
            store,
            config,
        })
    }

    /// A POST to the webhook path with `Content-Type: application/json`.
    pub fn post(&self) -> axum::http::request::Builder {
        Request::post(&self.config.endpoints[0].path).header("content-type", "application/json")
    }

    /// Sends `request` from [`PEER`].
    pub async fn send(&self, request: Request<Body>) -> Reply {
        self.send_from(PEER, request).await
    }

    /// Sends `request` as if from TCP peer `peer` (`ip:port`).
    pub async fn send_from(&self, peer: &str, mut request: Request<Body>) -> Reply {
        let peer: SocketAddr = peer.parse().expect("ip:port");
        request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("the response body");
        Reply {
            status,
            headers,
            body: bytes.to_vec(),
        }
    }

    /// POSTs `body` as JSON from [`PEER`].
    pub async fn post_json(&self, body: impl Into<Body>) -> Reply {
        self.send(self.post().body(body.into()).unwrap()).await
    }

    /// Records kept on `topic`.
    pub fn on_topic(&self, topic: &str) -> Vec<Kept> {
        self.store.on_topic(topic)
    }

    /// Records kept in quarantine.
    pub fn quarantined(&self) -> Vec<Kept> {
        self.store
            .on_topic(&riskos_connector::pipeline::route::quarantine_topic(
                &self.config.endpoints[0].topic_prefix,
            ))
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (panics, naming the body, when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A shipped fixture by file name (`tests/fixtures/<name>`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = crate::repo().join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The full served app (listener, connection limits, deadlines, TLS) over a [`MemoryStore`] on
/// a free loopback port, until dropped.
pub struct Served {
    pub addr: SocketAddr,
    pub config: Config,
    pub client: reqwest::Client,
    /// What was stored.
    pub store: MemoryStore,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    /// With the test config as is.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// With the test config ([`config`]) adjusted by `adjust`; the config must validate.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = config();
        adjust(&mut config);
        config.validate().expect("a valid config");
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .unwrap();
        let store = MemoryStore::new();
        let app = Application::build_with_store(&config, listener, Arc::new(store.clone()))
            .await
            .expect("the connector builds");
        let addr = app.local_addr();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stop.await;
        }));
        Self {
            addr,
            config,
            client: reqwest::Client::new(),
            store,
            _shutdown: shutdown,
            task,
        }
    }

    /// `http://addr` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a JSON body to the webhook path.
    pub async fn post_webhook(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(&self.config.endpoints[0].path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a test body is framed on the wire.
pub enum Framing {
    /// With `Content-Length`, as a client that knows the size sends it.
    Sized(Vec<u8>),
    /// Chunked, no `Content-Length`: `chunks` pieces of `size` spaces.
    Streamed { chunks: usize, size: usize },
}

/// A POST to the webhook path with `content_type` (none when `None`) and `body`.
pub async fn post_as(connector: &Connector, content_type: Option<&str>, body: Framing) -> Reply {
    let mut request = Request::post(&connector.config.endpoints[0].path);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let body = match body {
        Framing::Sized(bytes) => {
            request = request.header("content-length", bytes.len());
            Body::from(bytes)
        }
        Framing::Streamed { chunks, size } => Body::from_stream(futures::stream::iter(
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(vec![b' '; size])),
        )),
    };
    connector.send(request.body(body).unwrap()).await
}
