//! TEST DOUBLE of a Confluent Schema Registry — not a product component.
//!
//! Implements only the REST calls the connector and the interop clients make:
//! `POST /subjects/{subject}/versions`, `GET /schemas/ids/{id}`,
//! `GET /subjects/{subject}/versions/latest`, `GET /subjects`. Identical schemas share one
//! global id, as in the real registry. Docker-compose runs the real
//! `confluentinc/cp-schema-registry`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
struct Store {
    /// Schema text by global id (1-based).
    schemas: Vec<String>,
    /// Ids registered under each subject, in version order.
    subjects: BTreeMap<String, Vec<u32>>,
    /// `GET /subjects` calls answered.
    listings: usize,
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
}

impl RegistryDouble {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener).await
    }

    /// Starts on a given listener (lets a test restart it on the same port).
    pub async fn serve(listener: tokio::net::TcpListener) -> Self {
        Self::serve_store(listener, Arc::new(Mutex::new(Store::default())))
    }

    fn serve_store(listener: tokio::net::TcpListener, store: Arc<Mutex<Store>>) -> Self {
        let addr: SocketAddr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/subjects", get(list_subjects))
            .route("/subjects/{subject}/versions", post(register))
            .route("/subjects/{subject}/versions/latest", get(latest))
            .route("/schemas/ids/{id}", get(by_id))
            .with_state(store.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            url: format!("http://{addr}"),
            addr,
            store,
            stop: Some(stop),
            task,
        }
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
        *self = Self::serve_store(listener, self.store.clone());
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
