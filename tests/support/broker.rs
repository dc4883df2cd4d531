//! Apache Kafka (KRaft), started by `scripts/kafka.sh` with plain `java` from the official jars
//! (fetched once from Maven Central into a cache).
//!
//! - [`Broker::shared`]: one single-node broker per test binary, started on first use, for the
//!   tests that never stop a broker; each test keeps to its own topics (a topic prefix of its
//!   own, see `TestApp::topic`). A watchdog stops it and deletes its folder when the test
//!   process exits, however it exits: it waits for end-of-file on a pipe only this process
//!   holds open.
//! - [`Broker::start_cluster`]: a cluster of its own (1 or 3 nodes) for tests that kill nodes;
//!   stopped (SIGKILL) when dropped. Its nodes are combined broker+controller nodes, so killing
//!   a majority of them also kills the KRaft quorum.
//! - [`Broker::start_cluster_with_controller`]: the same with one dedicated controller
//!   (`kafka.sh start --controllers 1`) and broker-only nodes, for tests that kill a majority of
//!   the brokers and need the quorum to live on (fence them, shrink the ISR).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// A running (or partly killed) Apache Kafka cluster.
pub struct Broker {
    dir: PathBuf,
    /// Holds the folder of a cluster of its own; `None` for the shared broker (its watchdog
    /// deletes the folder).
    _owned: Option<tempfile::TempDir>,
    port: u16,
    /// Brokers (node i has node.id i).
    nodes: usize,
    /// Dedicated controllers (0: the nodes are combined broker+controller nodes).
    controllers: usize,
    /// The extra listeners' names and ports (`kafka.sh --listener`).
    listener_ports: Vec<(String, u16)>,
}

fn kafka_sh() -> PathBuf {
    crate::repo().join("scripts/kafka.sh")
}

/// Runs `scripts/kafka.sh args…`, panicking with its output when it fails.
fn run(args: &[&str]) -> String {
    run_with_env(args, &[])
}

/// [`run`] with environment variables (`KAFKA_JVM_OPTS`, say).
fn run_with_env(args: &[&str], env: &[(&str, String)]) -> String {
    let mut command = Command::new(kafka_sh());
    command.args(args).stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    // Two fault tests may start 3-node clusters at once on two cores: six JVMs booting
    // together take longer than kafka.sh's default 60 s allowance for readiness.
    if std::env::var_os("KAFKA_READY_TIMEOUT").is_none() {
        command.env("KAFKA_READY_TIMEOUT", "180");
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/kafka.sh: {e}"));
    if !output.status.success() {
        panic!(
            "scripts/kafka.sh {} failed ({}):\n{}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A free loopback port for a process that is killed and restarted on the same port (see
/// [`free_port_runs`] for why below the ephemeral range).
pub fn restartable_port() -> u16 {
    free_port_runs(1).0
}

/// `n` consecutive free loopback ports for clients and `n` for controllers (kafka.sh puts node
/// i on PORT+i and CPORT+i).
///
/// Chosen below the kernel's ephemeral port range: between the check that a port is free and
/// the JVM binding it (and while a killed node is down, before its restart binds it again), any
/// outgoing connection (the load generator's, the connector's, a reader's) could be given that
/// port as its local port, and the node would then exit with "address already in use". Never
/// the same port twice in one test process either, so a new cluster cannot take the port of
/// another test's killed node.
fn free_port_runs(n: u16) -> (u16, u16) {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    // Clients in [LOW, MID), controllers at +SPAN in [MID, ephemeral_low).
    const LOW: u16 = 10_000;
    let span = ephemeral_low.saturating_sub(LOW) / 2;
    assert!(
        span > 1_000,
        "the ephemeral port range starts at {ephemeral_low}: no room below it for brokers"
    );
    let mut handed_out = HANDED_OUT.lock().unwrap();
    let free = |base: u16| {
        (base..base + n).all(|port| {
            !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        })
    };
    for _ in 0..500 {
        let random = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        let base = LOW + (random % u64::from(span - n)) as u16;
        let controller = base + span;
        if free(base) && free(controller) {
            handed_out.extend((base..base + n).chain(controller..controller + n));
            return (base, controller);
        }
    }
    panic!("no run of {n} free ports found below {ephemeral_low}");
}

impl Broker {
    /// The test binary's shared single-node broker, started on first use.
    pub fn shared() -> &'static Broker {
        static SHARED: OnceLock<Broker> = OnceLock::new();
        SHARED.get_or_init(|| Self::process_wide("riskos-kafka-shared-", &[], &[], &[]))
    }

    /// A single-node broker that lives as long as this test process, for a `static`: also
    /// given `config` lines, extra `listeners` (`NAME:PROTOCOL`, each on a port of its own:
    /// [`Broker::listener`]) and `env` for kafka.sh (`KAFKA_JVM_OPTS`).
    pub fn process_wide(
        prefix: &str,
        config: &[String],
        listeners: &[&str],
        env: &[(&str, String)],
    ) -> Broker {
        static WATCHDOGS: Mutex<Vec<Child>> = Mutex::new(Vec::new());
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .unwrap()
            .keep();
        // Stops the broker and removes its folder once this process has exited: `cat` sees
        // end-of-file when the last holder of the pipe's write end (this process, through the
        // child's stdin kept in a static) is gone.
        let watchdog = Command::new("bash")
            .arg("-c")
            .arg(r#"cat > /dev/null; "$0" stop --dir "$1" --signal KILL; rm -rf "$1""#)
            .arg(kafka_sh())
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the broker watchdog");
        WATCHDOGS.lock().unwrap().push(watchdog);
        let config: Vec<&str> = config.iter().map(String::as_str).collect();
        Self::start_in(dir, None, 1, 0, &config, listeners, env)
    }

    /// A cluster of `nodes` of its own, each node also given `config` (`key=value`).
    pub async fn start_cluster(nodes: usize, config: &[&str]) -> Broker {
        Self::start_own(nodes, 0, config).await
    }

    /// A cluster of its own of `nodes` broker-only nodes (node.id i, as in
    /// [`Broker::start_cluster`]) and one dedicated controller (node.id 100) holding the KRaft
    /// quorum alone: killing brokers leaves the quorum up, so the controller fences them and
    /// shrinks the ISRs. `config` goes to every broker and to the controller (which reads e.g.
    /// `broker.session.timeout.ms`).
    pub async fn start_cluster_with_controller(nodes: usize, config: &[&str]) -> Broker {
        Self::start_own(nodes, 1, config).await
    }

    async fn start_own(nodes: usize, controllers: usize, config: &[&str]) -> Broker {
        let config: Vec<String> = config.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let owned = tempfile::Builder::new()
                .prefix("riskos-kafka-")
                .tempdir()
                .unwrap();
            let dir = owned.path().to_path_buf();
            let config: Vec<&str> = config.iter().map(String::as_str).collect();
            Self::start_in(dir, Some(owned), nodes, controllers, &config, &[], &[])
        })
        .await
        .unwrap()
    }

    fn start_in(
        dir: PathBuf,
        owned: Option<tempfile::TempDir>,
        nodes: usize,
        controllers: usize,
        config: &[&str],
        listeners: &[&str],
        env: &[(&str, String)],
    ) -> Broker {
        // kafka.sh puts controller j on CPORT+j: with dedicated controllers, fewer than `nodes`
        // of the controller ports reserved are used.
        assert!(
            controllers <= nodes,
            "{controllers} controllers for {nodes} nodes"
        );
        let (port, controller) = free_port_runs(nodes as u16);
        let (port_s, controller_s, nodes_s, controllers_s) = (
            port.to_string(),
            controller.to_string(),
            nodes.to_string(),
            controllers.to_string(),
        );
        let dir_s = dir.to_str().unwrap().to_string();
        let mut args = vec![
            "start",
            "--dir",
            &dir_s,
            "--port",
            &port_s,
            "--controller-port",
            &controller_s,
            "--nodes",
            &nodes_s,
        ];
        if controllers > 0 {
            args.extend(["--controllers", &controllers_s]);
        }
        for line in config {
            args.extend(["--config", line]);
        }
        let listener_ports: Vec<(String, u16)> = listeners
            .iter()
            .map(|l| {
                (
                    l.split(':').next().unwrap().to_string(),
                    free_port_runs(1).0,
                )
            })
            .collect();
        let specs: Vec<String> = listeners
            .iter()
            .zip(&listener_ports)
            .map(|(l, (_, port))| format!("{l}:{port}"))
            .collect();
        for spec in &specs {
            args.extend(["--listener", spec]);
        }
        run_with_env(&args, env);
        Broker {
            dir,
            _owned: owned,
            port,
            nodes,
            controllers,
            listener_ports,
        }
    }

    /// `127.0.0.1:port` of the extra listener `name` (of node 0).
    pub fn listener(&self, name: &str) -> String {
        let (_, port) = self
            .listener_ports
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no listener {name}"));
        format!("127.0.0.1:{port}")
    }

    /// Creates (or resets) a SCRAM-SHA-512 user on the cluster, as operators do:
    /// `kafka-configs --alter --add-config SCRAM-SHA-512=[password=…] --entity-type users`.
    pub fn add_scram_user(&self, user: &str, password: &str) {
        let bootstrap = self.bootstrap();
        let credential = format!("SCRAM-SHA-512=[iterations=4096,password={password}]");
        run(&[
            "configs",
            "--bootstrap-server",
            &bootstrap,
            "--alter",
            "--add-config",
            &credential,
            "--entity-type",
            "users",
            "--entity-name",
            user,
        ]);
    }

    /// Allows `principal` the `operations` on every topic (and, with `cluster_and_groups`,
    /// on the cluster and every consumer group): `kafka-acls --add`.
    pub fn grant(&self, principal: &str, operations: &[&str], cluster_and_groups: bool) {
        let bootstrap = self.bootstrap();
        let mut args = vec![
            "tool",
            "org.apache.kafka.tools.AclCommand",
            "--bootstrap-server",
            &bootstrap,
            "--add",
            "--allow-principal",
            principal,
            "--topic",
            "*",
        ];
        for operation in operations {
            args.extend(["--operation", operation]);
        }
        if cluster_and_groups {
            args.extend(["--cluster", "--group", "*"]);
        }
        run(&args);
    }

    /// What Kafka's DumpLogSegments prints of a log segment file (batches with their
    /// `compresscodec`).
    pub fn dump_log_segment(&self, segment: &Path) -> String {
        run(&[
            "tool",
            "org.apache.kafka.tools.DumpLogSegments",
            "--files",
            segment.to_str().unwrap(),
        ])
    }

    /// The cluster's folder (node i's data is in `node-i/data`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `127.0.0.1:port,…` of every node.
    pub fn bootstrap(&self) -> String {
        (0..self.nodes)
            .map(|i| format!("127.0.0.1:{}", self.port + i as u16))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills every node (SIGKILL) and waits until their ports are closed.
    pub fn kill(&mut self) {
        run(&[
            "stop",
            "--dir",
            self.dir.to_str().unwrap(),
            "--signal",
            "KILL",
        ]);
    }

    /// Kills node `i` (SIGKILL).
    pub fn kill_node(&mut self, i: usize) {
        run(&[
            "stop",
            "--dir",
            self.dir.to_str().unwrap(),
            "--node",
            &i.to_string(),
            "--signal",
            "KILL",
        ]);
    }

    /// Starts every stopped node (and controller) again from its data folder and waits until
    /// each is ready.
    pub async fn restart(&mut self) {
        let dir = self.dir.to_str().unwrap().to_string();
        tokio::task::spawn_blocking(move || run(&["start", "--dir", &dir]))
            .await
            .unwrap();
    }

    /// Starts node `i` again from its data folder and waits until it is ready.
    pub async fn restart_node(&mut self, i: usize) {
        let dir = self.dir.to_str().unwrap().to_string();
        tokio::task::spawn_blocking(move || {
            run(&["start-node", "--dir", &dir, "--node", &i.to_string()])
        })
        .await
        .unwrap();
    }

    /// The node leading `topic`'s partition `partition`, from metadata.
    pub fn leader(&self, topic: &str, partition: i32) -> usize {
        let (leader, _, _) = self.partition(topic, partition);
        // kafka.sh numbers node i with node.id i.
        usize::try_from(leader).expect("a partition with a leader")
    }

    /// The node ids holding a replica of `topic`'s partition `partition`, and those in sync,
    /// from metadata.
    pub fn replicas(&self, topic: &str, partition: i32) -> (Vec<i32>, Vec<i32>) {
        let (_, replicas, isr) = self.partition(topic, partition);
        (replicas, isr)
    }

    /// (leader, replicas, in sync) of `topic`'s partition `partition`. Waits (up to 30 s) until
    /// the node asked reports the partition with a leader: a topic just created, or a cluster
    /// just restarted, is not known to every node at once.
    fn partition(&self, topic: &str, partition: i32) -> (i32, Vec<i32>, Vec<i32>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let client = self.client();
        loop {
            let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(10));
            let found = metadata.as_ref().ok().and_then(|m| {
                let topic = m.topics().first()?;
                let p = topic.partitions().iter().find(|p| p.id() == partition)?;
                (topic.error().is_none() && p.leader() >= 0)
                    .then(|| (p.leader(), p.replicas().to_vec(), p.isr().to_vec()))
            });
            if let Some(found) = found {
                return found;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no leader for {topic}/{partition} in metadata: {:?}",
                metadata.map(|m| m
                    .topics()
                    .iter()
                    .map(|t| (t.error(), t.partitions().len()))
                    .collect::<Vec<_>>())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to `within`) until every replica of `topic`'s partition `partition` is in
    /// sync again, e.g. after a killed node was restarted; panics with the last ISR if not.
    pub async fn until_in_sync(&self, topic: &str, partition: i32, within: Duration) {
        let (replicas, _) = self.replicas(topic, partition);
        self.until_isr(topic, partition, &replicas, within).await;
    }

    /// Waits (up to `within`) until the in-sync replicas of `topic`'s partition `partition`, as
    /// metadata reports them, are exactly `expected` (in any order); panics with the last ISR
    /// seen if not.
    pub async fn until_isr(&self, topic: &str, partition: i32, expected: &[i32], within: Duration) {
        let deadline = std::time::Instant::now() + within;
        let mut expected = expected.to_vec();
        expected.sort_unstable();
        loop {
            let (replicas, mut isr) = self.replicas(topic, partition);
            isr.sort_unstable();
            if isr == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{topic}/{partition}: replicas {replicas:?}, in sync {isr:?}, not {expected:?} \
                 within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The value the cluster reports for topic config `key` of `topic` (explicit or the
    /// broker default that applies to it), from DescribeConfigs.
    pub async fn topic_config(&self, topic: &str, key: &str) -> Option<String> {
        use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .unwrap();
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .describe_configs(&[ResourceSpecifier::Topic(topic)], &options)
            .await
            .expect("describe configs");
        let resource = results
            .into_iter()
            .next()
            .expect("one result")
            .unwrap_or_else(|code| panic!("describe configs of {topic}: {code}"));
        resource.get(key).and_then(|entry| entry.value.clone())
    }

    fn client(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .unwrap()
    }

    /// Topic names the cluster reports.
    pub fn topics(&self) -> Vec<String> {
        let metadata = self
            .client()
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    /// Every topic name, once metadata lists all of `expected` (up to 30 s): a broker's
    /// metadata cache learns of topics the controller just created a moment later.
    pub fn topics_including(&self, expected: &[String]) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let topics = self.topics();
            let missing: Vec<_> = expected.iter().filter(|t| !topics.contains(t)).collect();
            if missing.is_empty() {
                return topics;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "topics {missing:?} not in metadata: {topics:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn server_log(&self, node: usize) -> PathBuf {
        self.dir.join(format!("node-{node}/server.log"))
    }

    /// The current length of node `node`'s server.log: where [`Broker::log_since`] starts.
    pub fn log_position(&self, node: usize) -> u64 {
        std::fs::metadata(self.server_log(node)).map_or(0, |m| m.len())
    }

    /// What node `node` logged since `position` (from [`Broker::log_position`]).
    pub fn log_since(&self, node: usize, position: u64) -> String {
        let log = std::fs::read(self.server_log(node)).unwrap_or_default();
        let from = usize::try_from(position).unwrap().min(log.len());
        String::from_utf8_lossy(&log[from..]).into_owned()
    }

    /// The last lines of every controller's and node's log (for a failing test's output).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        let controllers =
            (0..self.controllers).map(|j| self.dir.join(format!("controller-{j}/server.log")));
        for path in controllers.chain((0..self.nodes).map(|i| self.server_log(i))) {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- {} ---\n", path.display()));
            for line in &all[all.len().saturating_sub(lines)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self._owned.is_none() {
            return; // the shared broker: its watchdog stops it
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(20));
        }
        let _ = Command::new(kafka_sh())
            .args([
                "stop",
                "--dir",
                self.dir.to_str().unwrap(),
                "--signal",
                "KILL",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
