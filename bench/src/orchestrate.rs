//! `riskos-bench run`: for each server under test, a fresh broker and a fresh server for the
//! maximum-throughput phase, then a fresh broker and server again for the fixed-rate phases
//! (so peak RSS at a rate is that of a process that has only seen that rate). The rate phases
//! run at half the connector's measured maximum, so the connector goes first. The connector
//! then takes a burst (`--burst-concurrency` in flight) on one more fresh broker, once with its
//! defaults and once with its admission limits raised out of the way, a fresh process each.
//! Before any of it, the instructions per webhook of the pure path ([`crate::instructions`]).
//! With `--kafka-security tls` the connector's brokers also get an SSL listener and the
//! connector produces over TLS; everything else stays on plaintext.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

use crate::fixtures::Bodies;
use crate::load::{self, HttpWorker, Mode, Phase, PhaseResult, Report};
use crate::procstat::Meter;
use crate::pure_path::{BENCH_ENCRYPTION_KEY, BENCH_HASH_KEY};
use crate::report;

/// The servers, in the order they run.
pub const ALL_SERVERS: &[&str] = &[
    "connector",
    "http-ceiling",
    "kafka-ceiling",
    "express",
    "flask",
];

/// The topic the Flask and Express peers produce to.
pub const PEER_TOPIC: &str = "riskos.webhooks";

/// How the connector reaches the broker (`--kafka-security`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum KafkaSecurity {
    /// The broker's PLAINTEXT listener.
    #[default]
    Plaintext,
    /// An SSL listener of the same broker, with a certificate from a CA made for the run.
    Tls,
}

impl KafkaSecurity {
    /// As the report writes it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Tls => "TLS",
        }
    }
}

/// `run` arguments.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The repository root (fixtures, schemas, peers, docs).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The script that owns the Apache Kafka broker (`start`/`stop`), relative to `--repo`.
    #[arg(long, default_value = "scripts/kafka.sh")]
    pub kafka_script: PathBuf,
    /// The connector binary (release build).
    #[arg(long, default_value = "target/release/riskos-connector")]
    pub connector: PathBuf,
    /// gunicorn from the bench venv.
    #[arg(long, default_value = "bench/.venv/bin/gunicorn")]
    pub gunicorn: PathBuf,
    /// node.
    #[arg(long, default_value = "node")]
    pub node: PathBuf,
    /// Servers to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Concurrent requests in the maximum-throughput phase.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Concurrent requests (one connection each) in the connector's burst phases (0: no burst).
    #[arg(long, default_value_t = 512)]
    pub burst_concurrency: usize,
    /// Seconds of each burst phase (after `--warmup-secs` of the same burst).
    #[arg(long, default_value_t = 10)]
    pub burst_secs: u64,
    /// Do not count the pure path's instructions per webhook (valgrind) before the load.
    #[arg(long)]
    pub skip_instructions: bool,
    /// Seconds of the maximum-throughput phase.
    #[arg(long, default_value_t = 15)]
    pub max_secs: u64,
    /// Seconds of each fixed-rate phase.
    #[arg(long, default_value_t = 15)]
    pub rate_secs: u64,
    /// Seconds of warm-up before measuring (not reported).
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// Most requests in one phase.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_requests: u64,
    /// Connections available to the fixed-rate phases.
    #[arg(long, default_value_t = 256)]
    pub rate_connections: usize,
    /// Trials at the half rate for the connector and the Kafka ceiling: the p99 target compares
    /// their medians, since one 15 s trial on a shared 2-core box moves by 2-4x.
    #[arg(long, default_value_t = 3)]
    pub half_trials: usize,
    /// A low fixed rate also measured for every server (0: none).
    #[arg(long, default_value_t = 100.0)]
    pub low_rate: f64,
    /// The "half" rate, when the connector is not part of this run.
    #[arg(long)]
    pub half_rate: Option<f64>,
    /// gunicorn sync workers (default 2 × cores + 1, gunicorn's recommendation).
    #[arg(long)]
    pub flask_workers: Option<usize>,
    /// Extra librdkafka settings `key=value` for the connector and the Kafka ceiling.
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// Extra environment `KEY=VALUE` for the connector (e.g. `RISKOS_LOG__LEVEL=warn` for the
    /// logging A/B).
    #[arg(long = "connector-env")]
    pub connector_env: Vec<String>,
    /// How the connector reaches its broker: `plaintext`, or `tls` (the broker gets an SSL
    /// listener with a certificate for 127.0.0.1 and localhost from a CA made for the run; the
    /// connector connects to it with `RISKOS_KAFKA__TLS__ENABLED=true` and that CA as
    /// `RISKOS_KAFKA__TLS__CA_FILE`). The Kafka ceiling and the Flask and Express peers stay on
    /// plaintext either way, as do the broker's inter-broker traffic and the bench's own admin
    /// (the PLAINTEXT listener).
    #[arg(long, value_enum, default_value_t = KafkaSecurity::Plaintext)]
    pub kafka_security: KafkaSecurity,
    /// Only the maximum-throughput phase for each server: no fixed-rate phases (the 512 in
    /// flight and logging parts of `bench/run.sh`).
    #[arg(long)]
    pub max_only: bool,
    /// Where logs and raw results go.
    #[arg(long, default_value = "bench/out")]
    pub out: PathBuf,
    /// Splice the results into this markdown file between its bench markers.
    #[arg(long)]
    pub doc: Option<PathBuf>,
    /// Which `<!-- bench:SECTION:begin -->` … `<!-- bench:SECTION:end -->` block of `--doc`
    /// to replace.
    #[arg(long, default_value = "results")]
    pub section: String,
    /// The command line to print in the report.
    #[arg(long, default_value = "bench/run.sh")]
    pub command: String,
}

/// One server's results.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServerResults {
    pub server: String,
    /// How it reached the broker (results written before `--kafka-security`: plaintext).
    #[serde(default)]
    pub kafka_security: KafkaSecurity,
    pub phases: Vec<PhaseResult>,
}

const TOKEN: &str = "bench-token-0123456789abcdef";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process stopped with SIGTERM (then SIGKILL) when dropped or stopped.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: sending a signal to our own child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("bench: {} did not stop on SIGTERM; killing it", self.name);
            let _ = self.child.kill().await;
        }
    }
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            bail!("{what} did not come up within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// One Apache Kafka node (KRaft, broker and controller) started by `scripts/kafka.sh` in a
/// folder of its own; `stop` ends it with SIGTERM, dropping it without `stop` (an error) with
/// SIGKILL. Either way its `server.log` is appended to the bench log and its folder removed.
struct Broker {
    script: PathBuf,
    dir: PathBuf,
    log: PathBuf,
    addr: String,
    /// The SSL listener, when the connector is to use TLS.
    tls: Option<BrokerTls>,
    pid: u32,
    stopped: bool,
}

/// A broker's SSL listener: its address, the CA that signed its certificate, and the folder
/// of the CA and keystore files (removed with the broker's).
struct BrokerTls {
    addr: String,
    ca_file: PathBuf,
    dir: PathBuf,
}

/// What the first broker of the run was started with (`cluster.env` of scripts/kafka.sh: the
/// Kafka version and the heap), for the report.
pub static BROKER_FACTS: std::sync::OnceLock<BTreeMap<String, String>> = std::sync::OnceLock::new();

impl Broker {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn halt(&mut self, signal: &str) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if let Some(tls) = &self.tls {
            let _ = std::fs::remove_dir_all(&tls.dir);
        }
        if !self.dir.join("cluster.env").exists() {
            return; // kafka.sh start failed before creating anything
        }
        let out = std::process::Command::new(&self.script)
            .arg("stop")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--signal")
            .arg(signal)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "bench: stopping the broker in {} failed: {}{}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(error) => eprintln!("bench: running {}: {error}", self.script.display()),
        }
        if let (Ok(server_log), Ok(mut log)) = (
            std::fs::read(self.dir.join("node-0/server.log")),
            std::fs::OpenOptions::new().append(true).open(&self.log),
        ) {
            use std::io::Write as _;
            let _ = log.write_all(b"--- node-0/server.log\n");
            let _ = log.write_all(&server_log);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    async fn stop(self) {
        let mut broker = self;
        tokio::task::spawn_blocking(move || broker.halt("TERM"))
            .await
            .ok();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.halt("KILL");
    }
}

/// The CA and the broker's PEM keystore for an SSL listener, written into `dir`: (CA
/// certificate file, keystore file). The broker's certificate names 127.0.0.1 and localhost
/// (the connector checks the name: `kafka.tls.verify_hostname` stays on); the keystore is what
/// Kafka's `ssl.keystore.type=PEM` reads: the PKCS#8 private key, then the certificate chain.
fn write_tls_files(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "riskos bench CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "riskos bench broker");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    std::fs::create_dir_all(dir)?;
    let ca_file = dir.join("ca.pem");
    let keystore = dir.join("broker-keystore.pem");
    std::fs::write(&ca_file, ca.pem())?;
    std::fs::write(
        &keystore,
        format!("{}{}{}", key.serialize_pem(), cert.pem(), ca.pem()),
    )?;
    Ok((ca_file, keystore))
}

/// The `scripts/kafka.sh start` arguments for an SSL listener named `TLS` on `port` with the
/// PEM keystore `keystore`.
fn tls_listener_args(port: u16, keystore: &Path) -> Vec<String> {
    vec![
        "--listener".into(),
        format!("TLS:SSL:{port}"),
        "--config".into(),
        "listener.name.tls.ssl.keystore.type=PEM".into(),
        "--config".into(),
        format!(
            "listener.name.tls.ssl.keystore.location={}",
            keystore.display()
        ),
    ]
}

/// A free port other than `taken`.
fn free_port_but(taken: &[u16]) -> anyhow::Result<u16> {
    loop {
        let port = free_port()?;
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
}

/// Starts a fresh one-node Apache Kafka with `scripts/kafka.sh start` (which blocks until the
/// node is ready) in a new folder under the temp dir; with `tls`, also with an SSL listener
/// (the PLAINTEXT one stays, for inter-broker traffic and the bench's admin).
async fn start_broker(args: &RunArgs, log: &Path, tls: bool) -> anyhow::Result<Broker> {
    let port = free_port()?;
    let controller_port = free_port_but(&[port])?;
    let addr = format!("127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("riskos-bench-kafka-{port}"));
    let _ = std::fs::remove_dir_all(&dir); // kafka.sh would reuse a formatted folder
    let (tls, tls_args) = if tls {
        let tls_port = free_port_but(&[port, controller_port])?;
        let tls_dir = std::env::temp_dir().join(format!("riskos-bench-kafka-{port}-tls"));
        let _ = std::fs::remove_dir_all(&tls_dir);
        let (ca_file, keystore) =
            write_tls_files(&tls_dir).context("making the broker's TLS certificate")?;
        let args = tls_listener_args(tls_port, &keystore);
        let tls = BrokerTls {
            addr: format!("127.0.0.1:{tls_port}"),
            ca_file,
            dir: tls_dir,
        };
        (Some(tls), args)
    } else {
        (None, Vec::new())
    };
    let script = std::fs::canonicalize(args.repo.join(&args.kafka_script))
        .with_context(|| format!("{}", args.kafka_script.display()))?;
    let file = std::fs::File::create(log)?;
    let mut command = Command::new(&script);
    command
        .arg("start")
        .arg("--dir")
        .arg(&dir)
        .arg("--port")
        .arg(port.to_string())
        .arg("--controller-port")
        .arg(controller_port.to_string())
        .args(&tls_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(file)
        .kill_on_drop(true);
    let mut broker = Broker {
        script,
        dir,
        log: log.to_path_buf(),
        addr: String::new(),
        tls,
        pid: 0,
        stopped: false,
    };
    // spawn + wait_with_output, not output(): that one would capture stderr instead of logging it.
    let child = command.spawn().context("running scripts/kafka.sh start")?;
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .context("scripts/kafka.sh start ran over 180 s")??;
    if !out.status.success() {
        bail!(
            "scripts/kafka.sh start failed ({}); see {}",
            out.status,
            log.display()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bootstrap = stdout.lines().last().unwrap_or_default().trim();
    if bootstrap != addr {
        bail!("scripts/kafka.sh start printed {bootstrap:?}, expected {addr}");
    }
    broker.addr = addr;
    broker.pid = std::fs::read_to_string(broker.dir.join("node-0/pid"))?
        .trim()
        .parse()
        .context("the broker's pid file")?;
    if BROKER_FACTS.get().is_none() {
        let env = std::fs::read_to_string(broker.dir.join("cluster.env")).unwrap_or_default();
        let facts = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let _ = BROKER_FACTS.set(facts);
    }
    Ok(broker)
}

fn passthrough(args: &RunArgs) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for setting in &args.set {
        let (k, v) = setting
            .split_once('=')
            .with_context(|| format!("--set {setting}: expected key=value"))?;
        map.insert(k.to_string(), v.to_string());
    }
    Ok(map)
}

/// The connector's variables for reaching `broker`: its PLAINTEXT listener, or its SSL one
/// with the CA that signed it.
fn connector_kafka_env(broker: &Broker) -> Vec<(&'static str, String)> {
    match &broker.tls {
        None => vec![("RISKOS_KAFKA__BOOTSTRAP_SERVERS", broker.addr.clone())],
        Some(tls) => vec![
            ("RISKOS_KAFKA__BOOTSTRAP_SERVERS", tls.addr.clone()),
            ("RISKOS_KAFKA__TLS__ENABLED", "true".into()),
            (
                "RISKOS_KAFKA__TLS__CA_FILE",
                tls.ca_file.display().to_string(),
            ),
        ],
    }
}

/// What `server` uses to reach its broker in this run: `--kafka-security` for the connector,
/// plaintext for the others.
fn security_of(args: &RunArgs, server: &str) -> KafkaSecurity {
    if server == "connector" {
        args.kafka_security
    } else {
        KafkaSecurity::Plaintext
    }
}

/// Starts an HTTP server under test and waits for its health endpoint; `settings` are extra
/// `RISKOS_*` variables for the connector (the burst's raised limits). The peers get the
/// broker's PLAINTEXT listener; the connector also its SSL one when it has one.
async fn start_server(
    args: &RunArgs,
    server: &str,
    broker: Option<&Broker>,
    settings: &[(&str, &str)],
    log: &Path,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let repo = std::fs::canonicalize(&args.repo)?;
    let plaintext = broker.map(|b| b.addr.as_str());
    let (mut command, health) = match server {
        "connector" => {
            let mut c = Command::new(repo.join(&args.connector));
            c.arg("serve");
            for (key, _) in std::env::vars() {
                if key.starts_with("RISKOS_") {
                    c.env_remove(key);
                }
            }
            c.env("RISKOS_HTTP__LISTEN", addr.to_string())
                .envs(connector_kafka_env(broker.unwrap()))
                .env("RISKOS_SCHEMAS__ENCODING", "single-object")
                .env("RISKOS_SCHEMAS__DIR", repo.join("schemas"))
                .env("RISKOS_TOPICS__PARTITIONS", "1")
                .env("RISKOS_TOPICS__REPLICATION_FACTOR", "1")
                .env("RISKOS_ENDPOINTS__RISKOS__AUTH__MODE", "bearer")
                .env(
                    "RISKOS_ENDPOINTS__RISKOS__AUTH__BEARER__TOKENS",
                    format!("[\"{TOKEN}\"]"),
                )
                .env("RISKOS_ENDPOINTS__RISKOS__RATE_LIMIT_PER_IP", "0")
                // The default log level (`info`): a JSON line per webhook, as deployed; the
                // lines go to the server's log file in bench/out/logs.
                // Protection as deployed (fixed bench keys: the figures, not the secrecy, matter).
                .env("RISKOS_PROTECTION__HASH_KEYS", BENCH_HASH_KEY)
                .env("RISKOS_PROTECTION__ENCRYPTION_KEYS", BENCH_ENCRYPTION_KEY);
            for (k, v) in passthrough(args)? {
                let key = k.replace('.', "_").to_uppercase();
                c.env(format!("RISKOS_KAFKA__LIBRDKAFKA__{key}"), v);
            }
            for pair in &args.connector_env {
                let Some((k, v)) = pair.split_once('=') else {
                    bail!("--connector-env {pair}: expected KEY=VALUE");
                };
                c.env(k, v);
            }
            c.envs(settings.iter().copied());
            (c, "/readyz")
        }
        "http-ceiling" => {
            let mut c = Command::new(std::env::current_exe()?);
            c.arg("http-ceiling")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--token")
                .arg(TOKEN);
            (c, "/healthz")
        }
        "flask" => {
            let workers = args.flask_workers.unwrap_or_else(|| {
                2 * std::thread::available_parallelism().map_or(1, |n| n.get()) + 1
            });
            let mut c = Command::new(repo.join(&args.gunicorn));
            c.arg("--workers")
                .arg(workers.to_string())
                .arg("--bind")
                .arg(addr.to_string())
                .arg("--chdir")
                .arg(repo.join("bench/peers/flask"))
                .arg("--log-level")
                .arg("warning")
                .arg("app:app")
                .env("KAFKA_BOOTSTRAP", plaintext.unwrap())
                .env("KAFKA_TOPIC", PEER_TOPIC)
                .env("WEBHOOK_TOKEN", TOKEN);
            (c, "/healthz")
        }
        "express" => {
            let mut c = Command::new(&args.node);
            c.arg(repo.join("bench/peers/express/server.js"))
                .env("PORT", port.to_string())
                .env("KAFKA_BOOTSTRAP", plaintext.unwrap())
                .env("KAFKA_TOPIC", PEER_TOPIC)
                .env("WEBHOOK_TOKEN", TOKEN)
                .env("KAFKAJS_NO_PARTITIONER_WARNING", "1");
            (c, "/healthz")
        }
        other => bail!("unknown server {other}"),
    };
    if server != "connector" && !settings.is_empty() {
        bail!("settings are for the connector only, not {server}");
    }
    command.current_dir(&repo);
    let proc = Proc::spawn(server, command, log)?;
    let started = wait_until(server, Duration::from_secs(60), || async move {
        load::get_status(addr, health).await == Some(200)
    })
    .await;
    if let Err(error) = started {
        proc.stop().await;
        return Err(error.context(format!("see {}", log.display())));
    }
    Ok((proc, addr))
}

/// The phases of one server: group A (max throughput), group B (fixed rates; `half_trials`
/// trials of the half rate, named `half-1`, `half-2`, …).
fn phases(args: &RunArgs, half_rate: f64, half_trials: usize) -> (Vec<Phase>, Vec<Phase>) {
    let closed = Mode::Closed {
        concurrency: args.concurrency,
    };
    let rate = |per_second: f64| Mode::Rate {
        per_second,
        connections: args.rate_connections,
    };
    let bounded = |per_second: f64, secs: u64| ((per_second * secs as f64).ceil() as u64) + 1;
    let a = vec![
        Phase {
            name: "warmup".into(),
            mode: closed,
            duration: Duration::from_secs(args.warmup_secs),
            max_requests: args.max_requests,
        },
        Phase {
            name: "max".into(),
            mode: closed,
            duration: Duration::from_secs(args.max_secs),
            max_requests: args.max_requests,
        },
    ];
    let mut b = vec![Phase {
        name: "warmup".into(),
        mode: rate(half_rate),
        duration: Duration::from_secs(args.warmup_secs),
        max_requests: bounded(half_rate, args.warmup_secs),
    }];
    for trial in 1..=half_trials.max(1) {
        b.push(Phase {
            name: format!("half-{trial}"),
            mode: rate(half_rate),
            duration: Duration::from_secs(args.rate_secs),
            max_requests: bounded(half_rate, args.rate_secs).min(args.max_requests),
        });
    }
    if args.low_rate > 0.0 {
        b.push(Phase {
            name: "low".into(),
            mode: rate(args.low_rate),
            duration: Duration::from_secs(args.rate_secs),
            max_requests: bounded(args.low_rate, args.rate_secs).min(args.max_requests),
        });
    }
    (a, b)
}

async fn run_http_group(
    args: &RunArgs,
    server: &str,
    group: &str,
    phases: &[Phase],
    bodies: &Arc<Bodies>,
    seq_base: &mut u64,
) -> anyhow::Result<Vec<PhaseResult>> {
    let logs = args.out.join("logs");
    let needs_broker = server != "http-ceiling";
    let broker = if needs_broker {
        let log = logs.join(format!("{server}-{group}-broker.log"));
        let tls = security_of(args, server) == KafkaSecurity::Tls;
        Some(start_broker(args, &log, tls).await?)
    } else {
        None
    };
    if matches!(server, "flask" | "express") {
        let broker = broker.as_ref().unwrap();
        create_peer_topic(&broker.addr)
            .await
            .context("creating the peers' topic")?;
    }
    let (proc, addr) = start_server(
        args,
        server,
        broker.as_ref(),
        &[],
        &logs.join(format!("{server}-{group}.log")),
    )
    .await?;
    let results = measure_phases(
        server,
        &proc,
        broker.as_ref(),
        addr,
        phases,
        bodies,
        seq_base,
    )
    .await;
    proc.stop().await;
    if let Some(broker) = broker {
        broker.stop().await;
    }
    Ok(results)
}

/// Offers `phases` to a running server, measuring it and the broker in each; the results of
/// all but the warm-ups.
async fn measure_phases(
    server: &str,
    proc: &Proc,
    broker: Option<&Broker>,
    addr: SocketAddr,
    phases: &[Phase],
    bodies: &Arc<Bodies>,
    seq_base: &mut u64,
) -> Vec<PhaseResult> {
    let mut results = Vec::new();
    for phase in phases {
        let server_meter = Meter::start(proc.pid());
        let broker_meter = broker.map(|b| Meter::start(b.pid()));
        let workers = load::workers_for(phase, |_| {
            HttpWorker::new(addr, "/webhooks/riskos", TOKEN, bodies.clone())
        });
        let mut result = load::run_phase(phase, workers, *seq_base).await;
        *seq_base += phase.max_requests;
        let (cpu, rss) = server_meter.stop();
        result.server_cpu_s = cpu;
        result.server_peak_rss_kib = rss;
        result.broker_cpu_s = broker_meter.map_or(0.0, |m| m.stop().0);
        eprintln!("bench: {server} {}", report::one_line(&result));
        if phase.name != "warmup" {
            results.push(result);
        }
    }
    results
}

/// The connector's admission limits raised out of the way for the burst's second variant
/// (`connector/wiring/config/mod.rs`: `http.max_body_bytes_in_flight` must be at least
/// `http.max_body_bytes`, nothing bounds either from above). `http.max_connections` (4096)
/// already exceeds any burst here.
pub const RAISED_LIMITS: &[(&str, &str)] = &[
    ("RISKOS_HTTP__MAX_IN_FLIGHT", "1000000"),
    ("RISKOS_HTTP__MAX_BODY_BYTES_IN_FLIGHT", "4294967295"),
];

/// The burst variants: phase name, connector settings. Run in two rounds, A B then B A (the
/// second round's phases named `burst-2`, `burst-raised-2`): one round of each moved by ±10 %
/// between runs, and on one broker every phase runs faster than the one before while the
/// broker's JVM warms up, so whichever goes first loses; A B B A cancels that drift.
const BURSTS: &[(&str, &[(&str, &str)])] = &[("burst", &[]), ("burst-raised", RAISED_LIMITS)];

/// Rounds of [`BURSTS`].
pub const BURST_ROUNDS: usize = 2;

/// The name of burst variant `name`'s phase in `round` (1-based).
pub fn burst_phase(name: &str, round: usize) -> String {
    if round == 1 {
        name.to_string()
    } else {
        format!("{name}-{round}")
    }
}

/// The connector's burst: on one fresh broker, for each of [`BURSTS`] a fresh connector, a
/// warm-up of the same burst, then `--burst-secs` of `--burst-concurrency` requests back to
/// back. One broker for both (its start is the slow part); the defaults go first, so if the
/// broker's growing log favours either, it is the raised limits, which the defaults must
/// match.
async fn run_burst_group(
    args: &RunArgs,
    bodies: &Arc<Bodies>,
    seq_base: &mut u64,
) -> anyhow::Result<Vec<PhaseResult>> {
    let logs = args.out.join("logs");
    let tls = security_of(args, "connector") == KafkaSecurity::Tls;
    let broker = start_broker(args, &logs.join("connector-burst-broker.log"), tls).await?;
    let mode = Mode::Closed {
        concurrency: args.burst_concurrency,
    };
    let mut results = Vec::new();
    let rounds = (1..=BURST_ROUNDS).flat_map(|round| {
        let order: Vec<_> = if round % 2 == 1 {
            BURSTS.iter().collect()
        } else {
            BURSTS.iter().rev().collect()
        };
        order.into_iter().map(move |b| (round, b))
    });
    for (round, (name, settings)) in rounds {
        let name = burst_phase(name, round);
        let phases = [
            Phase {
                name: "warmup".into(),
                mode,
                duration: Duration::from_secs(args.warmup_secs),
                max_requests: args.max_requests,
            },
            Phase {
                name: name.clone(),
                mode,
                duration: Duration::from_secs(args.burst_secs),
                max_requests: args.max_requests,
            },
        ];
        let (proc, addr) = start_server(
            args,
            "connector",
            Some(&broker),
            settings,
            &logs.join(format!("connector-{name}.log")),
        )
        .await?;
        let measured = measure_phases(
            "connector",
            &proc,
            Some(&broker),
            addr,
            &phases,
            bodies,
            seq_base,
        )
        .await;
        proc.stop().await;
        results.extend(measured);
    }
    broker.stop().await;
    Ok(results)
}

async fn run_kafka_group(
    args: &RunArgs,
    group: &str,
    phases: &[Phase],
) -> anyhow::Result<Vec<PhaseResult>> {
    let logs = args.out.join("logs");
    let log = logs.join(format!("kafka-ceiling-{group}-broker.log"));
    let broker = start_broker(args, &log, false).await?;
    let repo = std::fs::canonicalize(&args.repo)?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("kafka-ceiling")
        .arg("--bootstrap")
        .arg(&broker.addr)
        .arg("--fixtures")
        .arg(repo.join("tests/fixtures"))
        .arg("--schemas")
        .arg(repo.join("schemas"))
        .arg("--phases")
        .arg(serde_json::to_string(phases)?);
    for setting in &args.set {
        command.arg("--set").arg(setting);
    }
    let log = std::fs::File::create(logs.join(format!("kafka-ceiling-{group}.log")))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true);
    let mut child = command.spawn().context("starting the kafka ceiling")?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut results = Vec::new();
    let mut broker_meter = None;
    let limit = phases
        .iter()
        .map(|p| p.duration + load::REQUEST_TIMEOUT)
        .sum::<Duration>()
        + Duration::from_secs(60);
    let deadline = Instant::now() + limit;
    loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .context("the kafka ceiling ran over its time")??;
        let Some(line) = line else { break };
        match serde_json::from_str::<Report>(&line) {
            Ok(Report::Start { .. }) => broker_meter = Some(Meter::start(broker.pid())),
            Ok(Report::Result { mut result }) => {
                result.broker_cpu_s = broker_meter.take().map_or(0.0, |m| m.stop().0);
                eprintln!("bench: kafka-ceiling {}", report::one_line(&result));
                if result.name != "warmup" {
                    results.push(result);
                }
            }
            Err(_) => eprintln!("kafka-ceiling: {line}"),
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    if !status.success() {
        bail!(
            "the kafka ceiling failed ({status}); see {}",
            logs.join(format!("kafka-ceiling-{group}.log")).display()
        );
    }
    broker.stop().await;
    Ok(results)
}

/// The peers' topic (Flask and Express produce to it, but do not create it).
#[cfg(feature = "kafka")]
async fn create_peer_topic(bootstrap: &str) -> anyhow::Result<()> {
    use riskos_connector::delivery::kafka::{ensure_topics, KafkaConfig, TopicSpec};
    let kafka = KafkaConfig {
        bootstrap_servers: bootstrap.to_string(),
        ..Default::default()
    };
    let topic = TopicSpec {
        name: PEER_TOPIC.into(),
        configs: vec![],
    };
    Ok(ensure_topics(&kafka, &[topic], 1, 1).await?)
}

#[cfg(not(feature = "kafka"))]
async fn create_peer_topic(_bootstrap: &str) -> anyhow::Result<()> {
    unreachable!("`run` refuses to start without feature `kafka`")
}

/// Runs everything and writes the report. On SIGINT or SIGTERM (`timeout` in bench/run.sh) the
/// run is dropped, which stops its servers and its broker (started detached by kafka.sh).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    if cfg!(not(feature = "kafka")) {
        bail!("`run` needs feature `kafka`, which this riskos-bench was built without (as the instruction budget builds it): build it with the default features, as bench/run.sh does");
    }
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = run_all(args) => result,
        _ = interrupt.recv() => bail!("interrupted (SIGINT): this run's servers and broker were stopped"),
        _ = terminate.recv() => bail!("terminated (SIGTERM): this run's servers and broker were stopped"),
    }
}

async fn run_all(args: RunArgs) -> anyhow::Result<()> {
    let servers: Vec<String> = if args.servers.is_empty() {
        ALL_SERVERS.iter().map(|s| s.to_string()).collect()
    } else {
        args.servers.clone()
    };
    for s in &servers {
        if !ALL_SERVERS.contains(&s.as_str()) {
            bail!("unknown server {s}; known: {}", ALL_SERVERS.join(", "));
        }
    }
    let most = args
        .concurrency
        .max(args.burst_concurrency)
        .max(args.rate_connections);
    load::raise_fd_limit(most)?;
    std::fs::create_dir_all(args.out.join("logs"))?;
    let instructions = if args.skip_instructions {
        None
    } else {
        // Off the runtime's threads: it waits seconds for valgrind, and SIGINT must still
        // be heard meanwhile.
        let (fixtures, schemas) = (args.repo.join("tests/fixtures"), args.repo.join("schemas"));
        Some(
            tokio::task::spawn_blocking(move || {
                let settings = crate::instructions::Settings::default();
                crate::instructions::measure(&fixtures, &schemas, &settings)
            })
            .await??,
        )
    };
    let tag = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let bodies = Arc::new(Bodies::load(&args.repo.join("tests/fixtures"), &tag)?);
    let started = Instant::now();
    let cpu_start = report::CpuTimes::read();
    let mut all: Vec<ServerResults> = Vec::new();
    let mut half_rate = args.half_rate;
    let mut seq_base = 0u64;
    // The connector first: its maximum sets the "half" rate for everyone.
    let mut order: Vec<&String> = servers.iter().filter(|s| *s == "connector").collect();
    order.extend(servers.iter().filter(|s| *s != "connector"));
    for server in order {
        // Repeated half-rate trials only where the p99 target needs them.
        let trials = if matches!(server.as_str(), "connector" | "kafka-ceiling") {
            args.half_trials
        } else {
            1
        };
        let (group_a, _) = phases(&args, half_rate.unwrap_or(1.0), trials);
        let mut results = if server == "kafka-ceiling" {
            run_kafka_group(&args, "max", &group_a).await?
        } else {
            run_http_group(&args, server, "max", &group_a, &bodies, &mut seq_base).await?
        };
        if server == "connector" && half_rate.is_none() {
            half_rate = Some((results[0].ok_per_second() / 2.0).round().max(1.0));
        }
        if args.max_only {
            all.push(ServerResults {
                server: server.clone(),
                kafka_security: security_of(&args, server),
                phases: results,
            });
            continue;
        }
        let Some(rate) = half_rate else {
            bail!("no connector in this run: pass --half-rate");
        };
        let (_, group_b) = phases(&args, rate, trials);
        let rates = if server == "kafka-ceiling" {
            run_kafka_group(&args, "rate", &group_b).await?
        } else {
            run_http_group(&args, server, "rate", &group_b, &bodies, &mut seq_base).await?
        };
        results.extend(rates);
        if server == "connector" && args.burst_concurrency > 0 {
            results.extend(run_burst_group(&args, &bodies, &mut seq_base).await?);
        }
        all.push(ServerResults {
            server: server.clone(),
            kafka_security: security_of(&args, server),
            phases: results,
        });
    }
    let context = report::Context::collect(&args, &bodies, started.elapsed(), cpu_start);
    let markdown = report::markdown(&context, &all, instructions.as_ref());
    std::fs::write(
        args.out.join(format!("{}.json", args.section)),
        serde_json::to_string_pretty(&all)?,
    )?;
    std::fs::write(args.out.join(format!("{}.md", args.section)), &markdown)?;
    println!("{markdown}");
    if let Some(doc) = &args.doc {
        report::splice(doc, &args.section, &markdown)?;
        eprintln!("bench: results written into {}", doc.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn kafka_security_is_plaintext_unless_asked_for_tls() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
                .map(|cli| cli.run.kafka_security)
        };
        assert_eq!(parse(&[]).unwrap(), KafkaSecurity::Plaintext);
        // The form bench/run.sh's `ab_ba tls --kafka-security "" plaintext tls` gives.
        assert_eq!(
            parse(&["--kafka-security", "plaintext"]).unwrap(),
            KafkaSecurity::Plaintext
        );
        assert_eq!(
            parse(&["--kafka-security", "tls"]).unwrap(),
            KafkaSecurity::Tls
        );
        assert!(parse(&["--kafka-security", "ssl"]).is_err());
    }

    #[test]
    fn only_the_connector_takes_the_kafka_security_asked_for() {
        let args = Cli::parse_from(["run", "--kafka-security", "tls"]).run;
        assert_eq!(security_of(&args, "connector"), KafkaSecurity::Tls);
        for other in ["kafka-ceiling", "flask", "express", "http-ceiling"] {
            assert_eq!(security_of(&args, other), KafkaSecurity::Plaintext);
        }
    }

    #[test]
    fn results_written_before_kafka_security_read_as_plaintext() {
        let old: ServerResults =
            serde_json::from_str(r#"{"server": "connector", "phases": []}"#).unwrap();
        assert_eq!(old.kafka_security, KafkaSecurity::Plaintext);
        let new = serde_json::to_value(ServerResults {
            kafka_security: KafkaSecurity::Tls,
            ..old
        })
        .unwrap();
        assert_eq!(new["kafka_security"], "tls");
    }

    #[test]
    fn the_tls_listener_is_an_ssl_listener_with_a_pem_keystore() {
        assert_eq!(
            tls_listener_args(40123, Path::new("/tmp/x/broker-keystore.pem")),
            [
                "--listener",
                "TLS:SSL:40123",
                "--config",
                "listener.name.tls.ssl.keystore.type=PEM",
                "--config",
                "listener.name.tls.ssl.keystore.location=/tmp/x/broker-keystore.pem",
            ]
        );
    }

    #[test]
    fn the_connector_gets_the_ssl_listener_and_the_ca_when_the_broker_has_one() {
        let mut broker = Broker {
            script: PathBuf::new(),
            dir: PathBuf::from("/nonexistent/riskos-bench-kafka-1"),
            log: PathBuf::new(),
            addr: "127.0.0.1:9092".into(),
            tls: None,
            pid: 0,
            stopped: true,
        };
        assert_eq!(
            connector_kafka_env(&broker),
            [(
                "RISKOS_KAFKA__BOOTSTRAP_SERVERS",
                "127.0.0.1:9092".to_string()
            )]
        );
        broker.tls = Some(BrokerTls {
            addr: "127.0.0.1:9093".into(),
            ca_file: "/nonexistent/ca.pem".into(),
            dir: "/nonexistent".into(),
        });
        assert_eq!(
            connector_kafka_env(&broker),
            [
                (
                    "RISKOS_KAFKA__BOOTSTRAP_SERVERS",
                    "127.0.0.1:9093".to_string()
                ),
                ("RISKOS_KAFKA__TLS__ENABLED", "true".to_string()),
                (
                    "RISKOS_KAFKA__TLS__CA_FILE",
                    "/nonexistent/ca.pem".to_string()
                ),
            ]
        );
    }

    #[test]
    fn the_keystore_holds_the_key_then_the_chain_the_ca_file_signed() {
        let dir =
            std::env::temp_dir().join(format!("riskos-bench-tls-test-{}", std::process::id()));
        let (ca_file, keystore) = write_tls_files(&dir).unwrap();
        let ca = std::fs::read_to_string(&ca_file).unwrap();
        let store = std::fs::read_to_string(&keystore).unwrap();
        // Kafka's PEM keystore: an unencrypted PKCS#8 key first, then the certificates.
        assert!(
            store.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{store}"
        );
        assert_eq!(store.matches("-----BEGIN CERTIFICATE-----").count(), 2);
        assert!(store.ends_with(&ca), "the chain ends with the CA");
        assert_eq!(ca.matches("-----BEGIN CERTIFICATE-----").count(), 1);
        // With the openssl CLI at hand, the chain verifies for 127.0.0.1 and localhost.
        let leaf = dir.join("leaf.pem");
        let start = store.find("-----BEGIN CERTIFICATE-----").unwrap();
        let end = store[start..].find("-----END CERTIFICATE-----").unwrap() + start + 26;
        std::fs::write(&leaf, &store[start..end]).unwrap();
        let verify = |check: &[&str]| {
            std::process::Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(&ca_file)
                .args(["-purpose", "sslserver"])
                .args(check)
                .arg(&leaf)
                .output()
        };
        if let Ok(out) = verify(&["-verify_ip", "127.0.0.1"]) {
            assert!(out.status.success(), "{out:?}");
            assert!(verify(&["-verify_hostname", "localhost"])
                .unwrap()
                .status
                .success());
            assert!(!verify(&["-verify_ip", "10.0.0.1"])
                .unwrap()
                .status
                .success());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
