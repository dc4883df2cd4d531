//! A real Kafka-protocol broker process: tansu, on a free loopback port.
//!
//! `scripts/test.sh` installs it (`cargo install tansu --version 0.6.0 --features
//! dynostore,libsql`); `TANSU_BIN` overrides the binary. Memory storage is fast; SQLite storage
//! (relative to the broker's working directory) survives a kill and restart.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// A running (or killed) tansu broker.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    storage: String,
    workdir: tempfile::TempDir,
}

fn tansu_bin() -> String {
    std::env::var("TANSU_BIN").unwrap_or_else(|_| "tansu".to_string())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Broker {
    /// A broker with in-memory storage.
    pub async fn start_memory() -> Self {
        Self::start("memory://tansu/").await
    }

    /// A broker storing in SQLite inside its own working directory.
    #[allow(dead_code)]
    pub async fn start_sqlite() -> Self {
        Self::start("sqlite://tansu.db").await
    }

    async fn start(storage: &str) -> Self {
        let mut broker = Self {
            child: None,
            port: free_port(),
            storage: storage.to_string(),
            workdir: tempfile::tempdir().unwrap(),
        };
        broker.spawn().await;
        broker
    }

    async fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(tansu_bin())
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage])
            .current_dir(self.workdir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the tansu broker ({e}); run scripts/test.sh, which installs it, \
                     or set TANSU_BIN"
                )
            });
        self.child = Some(child);
        self.wait_ready().await;
    }

    fn log_path(&self) -> PathBuf {
        self.workdir.path().join("broker.log")
    }

    /// Polls metadata until the broker answers (a readiness wait, not a fixed sleep).
    async fn wait_ready(&mut self) {
        let bootstrap = self.bootstrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    panic!("tansu exited with {status}: {log}");
                }
            }
            let bootstrap = bootstrap.clone();
            let ready = tokio::task::spawn_blocking(move || {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .create()
                    .unwrap();
                consumer
                    .fetch_metadata(None, Duration::from_millis(500))
                    .map(|m| !m.brokers().is_empty())
                    .unwrap_or(false)
            })
            .await
            .unwrap();
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not become ready in 30 s"
            );
        }
    }

    /// `127.0.0.1:port`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the process (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and storage.
    #[allow(dead_code)]
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Topic names the broker reports.
    pub fn topics(&self) -> Vec<String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let first_problems = lines
                .iter()
                .filter(|l| {
                    ["ERROR", "WARN", "ready in", "panic"]
                        .iter()
                        .any(|w| l.contains(w))
                })
                .take(20);
            eprintln!("--- tansu log: first problems ---");
            for line in first_problems {
                eprintln!("{line}");
            }
            eprintln!("--- tansu log: last lines ---");
            for line in &lines[lines.len().saturating_sub(10)..] {
                eprintln!("{line}");
            }
        }
    }
}
