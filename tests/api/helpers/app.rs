//! `TestApp::spawn`: the real service, in-process, on a free port, against a real broker.

use std::net::SocketAddr;
use std::path::PathBuf;

use riskos_connector::app::Application;
use riskos_connector::config::Config;
use tokio::sync::oneshot;

/// A running connector.
pub struct TestApp {
    pub addr: SocketAddr,
    pub config: Config,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A config pointing at `bootstrap` and `registry_url`, listening on a free loopback port.
pub fn test_config(bootstrap: &str, registry_url: &str) -> Config {
    let mut config = Config::default();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.kafka.bootstrap_servers = bootstrap.to_string();
    config.schema_registry.url = registry_url.to_string();
    config.schemas.dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
    config.topics.partitions = 1;
    config.topics.replication_factor = 1;
    config.delivery.ack_timeout_ms = 3_000;
    // Written out, as production config must; tests/api/auth.rs covers the other modes.
    config.auth.mode = Some(riskos_connector::auth::AuthMode::None);
    config
}

impl TestApp {
    /// Builds and starts the service with `config`.
    pub async fn spawn(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(config.http.listen).await?;
        let app = Application::build(&config, listener).await?;
        let addr = app.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            config,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://addr` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a JSON body to the webhook path.
    pub async fn post_webhook(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(&self.config.http.path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Stops the service and waits for it to finish draining.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap().await?
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
