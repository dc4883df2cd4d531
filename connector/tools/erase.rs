//! `riskos-connector erase`: tombstones (null values) for the records that match a condition,
//! so that compaction removes them (GDPR art. 17, CCPA erasure requests).
//!
//! A record matches when **any** condition holds:
//!
//! - `--event-id ID`: its Kafka key (the event id) is `ID`, in whichever of the endpoint's
//!   topics it is;
//! - `--where FIELD=VALUE`: the decoded record's `FIELD` (a dotted path such as
//!   `data.entity_token`, `data.agent.email`; `[]` steps into an array and matches if any item
//!   does; `*` steps into every value of a map) equals `VALUE`: a clear field by equality (a
//!   string by its text, anything else by its JSON text), a hashed field (`h2.<kid>.<fp>.<mac>`,
//!   or `h1.<kid>.<mac>`) when the token is the hash of `VALUE` under the key it names, an
//!   encrypted field (`e2.<kid>.<fp>.<box>`, or `e1.<kid>.<box>`) when it opens (bound to the
//!   record's topic, key and the field's path) to `VALUE`. A field hashed or encrypted under a
//!   key `[protection]` does not hold — an id it lacks, or another key under an id it has (the
//!   fingerprint `fp` differs: a key regenerated under an old id) — stops the run before
//!   anything is written, naming the key: erase cannot tell whether it matches;
//! - `--where-file PATH` (`-`: standard input): the same conditions, one a line
//!   ([`read_conditions`]): the form to use, since a command line shows in the process list,
//!   the shell history and audit logs.
//!
//! Scope: every topic of one endpoint's topic prefix (not those of a longer prefix another
//! endpoint uses), read from the oldest record up to the end seen when the run started. For
//! each distinct (topic, partition, key) that matched, a tombstone goes to that same partition
//! of that same topic (the key is the event id: the same key in another topic, where no record
//! matched, is another event and stays). Topics that are not compacted — the quarantine topic
//! (`cleanup.policy=delete`) — cannot be erased by a tombstone: their matches (by key, and by
//! `--where` on the quarantined body, opened with the keys when it is encrypted) are reported,
//! nothing is written there.
//!
//! Compaction then removes every earlier record of a tombstoned key, and the tombstone itself
//! after the topic's `delete.retention.ms`. A record produced for the key after the tombstone
//! (a vendor retry, a replay) is a new record and stays: erase again after such a delivery.
//!
//! Output never shows a protected value (nor the `--where` values): records are named by
//! topic, partition, offset, key and `event_type` header.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::{json, Value as Json};

use super::reader::TopicReader;
use crate::delivery::kafka::{self, KafkaContext};
use crate::pipeline::protect::keys::{is_encrypted, label, Kind};
use crate::pipeline::protect::{canonical, FieldPath, Keyring, UnprotectError, RAW_PATH};
use crate::pipeline::route::quarantine_topic;
use crate::pipeline::schema::decode::Decoder;
use crate::pipeline::schema::{Catalog, Registry};
use crate::wiring::config::Config;

/// One `--where FIELD=VALUE`. Its `Debug` and `Display` show the field only, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Condition {
    field: String,
    steps: Vec<Step>,
    value: String,
}

/// A step of a `--where` path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// An object member (a record field, or a map's value under that key).
    Field(String),
    /// Every item of an array (`[]`).
    Items,
    /// Every value of an object (`*`).
    Members,
}

impl Condition {
    /// `field` equal to `value`; `field` a dotted path (see the module docs).
    pub fn new(field: &str, value: impl Into<String>) -> Result<Self, String> {
        let field = field.trim();
        let mut steps = Vec::new();
        for part in field.split('.') {
            let mut name = part;
            let mut items = 0;
            while let Some(rest) = name.strip_suffix("[]") {
                name = rest;
                items += 1;
            }
            match name {
                "" if items > 0 && !steps.is_empty() => {}
                "" => return Err(format!("--where: `{field}` has an empty step")),
                "*" => steps.push(Step::Members),
                _ if name.contains(['[', ']', '=', '*']) => {
                    return Err(format!(
                        "--where: `{field}`: write array steps as `name[]`, map values as `*`"
                    ))
                }
                _ => steps.push(Step::Field(name.to_string())),
            }
            steps.extend(std::iter::repeat_n(Step::Items, items));
        }
        Ok(Self {
            field: field.to_string(),
            steps,
            value: value.into(),
        })
    }

    /// The path as written.
    pub fn field(&self) -> &str {
        &self.field
    }
}

impl FromStr for Condition {
    type Err = String;

    /// `FIELD=VALUE` (the value is everything after the first `=`; messages never quote it).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (field, value) = text
            .split_once('=')
            .ok_or_else(|| "--where takes FIELD=VALUE, e.g. data.entity_token=X".to_string())?;
        Self::new(field, value)
    }
}

/// The conditions of a `--where-file`: one `FIELD=VALUE` a line, surrounding whitespace
/// trimmed, blank lines and `#` comments skipped. The form to use: a value on the command line
/// shows in the process list, the shell history and audit logs; one read from a file or
/// standard input does not. Errors name the line, never quote it.
pub fn read_conditions(text: impl std::io::BufRead) -> Result<Vec<Condition>, String> {
    let mut conditions = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.map_err(|e| format!("--where-file: {e}"))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let condition = line
            .parse()
            .map_err(|e| format!("--where-file line {}: {e}", index + 1))?;
        conditions.push(condition);
    }
    Ok(conditions)
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Condition({}=…)", self.field)
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=…", self.field)
    }
}

/// What to erase, and whether to write.
#[derive(Debug, Clone, Default)]
pub struct EraseOptions {
    /// The endpoint whose topics to scan; required when several are configured.
    pub endpoint: Option<String>,
    /// Keys (event ids) to erase.
    pub event_ids: Vec<String>,
    /// Field conditions.
    pub conditions: Vec<Condition>,
    /// List what would be erased, write nothing.
    pub dry_run: bool,
}

/// Why a record matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// Its key is one of the `--event-id`s.
    EventId,
    /// This `--where` field.
    Where(String),
}

impl std::fmt::Display for MatchedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatchedBy::EventId => f.write_str("--event-id"),
            MatchedBy::Where(field) => write!(f, "--where {field}"),
        }
    }
}

/// A record that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matched {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The key (the event id), `None` for a record without one.
    pub key: Option<String>,
    /// The record's `event_type` header.
    pub event_type: Option<String>,
    pub matched_by: MatchedBy,
}

/// A tombstone, to write or written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Tombstone {
    pub topic: String,
    pub partition: i32,
    pub key: String,
    /// Where it landed (`None` on a dry run or a failure).
    pub offset: Option<i64>,
}

/// A match no tombstone can erase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotErasable {
    #[serde(flatten)]
    pub record: Matched,
    /// Why: the topic is not compacted (the quarantine topic), or the record has no key.
    pub reason: String,
}

/// A record of an event topic whose match could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
}

/// What a run found and did.
#[derive(Debug, Default)]
pub struct EraseReport {
    pub dry_run: bool,
    /// The endpoint whose topics were scanned.
    pub endpoint: String,
    /// Topics read, event topics and quarantine alike.
    pub topics: Vec<String>,
    /// Records read (tombstones included).
    pub scanned: u64,
    /// Matching records of compacted topics (all of them: a key's older records too).
    pub matched: Vec<Matched>,
    /// One per distinct (topic, partition, key) matched: written (with their offsets), or to
    /// be written on a dry run.
    pub tombstones: Vec<Tombstone>,
    /// Tombstones Kafka did not ack, with the error.
    pub failed: Vec<(Tombstone, String)>,
    /// Matches in topics that are not compacted (the quarantine) or without a key.
    pub not_erasable: Vec<NotErasable>,
    /// Event-topic records that could not be decoded or whose field did not open: erase cannot
    /// tell whether they match.
    pub unreadable: Vec<Unreadable>,
    /// Quarantined bodies `--where` could not look into (not JSON, or empty under
    /// `raw = "drop"`); their keys were still checked against `--event-id`.
    pub quarantine_unchecked: u64,
    /// Remarks (e.g. a topic's config could not be read).
    pub notes: Vec<String>,
    conditions: Vec<String>,
    event_ids: usize,
}

impl EraseReport {
    /// True when every record was decided and every tombstone acked.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.unreadable.is_empty()
    }

    /// Matching records per topic.
    pub fn matched_per_topic(&self) -> BTreeMap<&str, u64> {
        let mut counts = BTreeMap::new();
        for m in &self.matched {
            *counts.entry(m.topic.as_str()).or_default() += 1;
        }
        counts
    }

    /// Tombstones acked.
    pub fn written(&self) -> usize {
        if self.dry_run {
            0
        } else {
            self.tombstones.len()
        }
    }

    /// The one-line JSON summary (the last line printed).
    pub fn summary(&self) -> Json {
        json!({
            "erase": if self.dry_run { "dry_run" } else { "done" },
            "ok": self.ok(),
            "endpoint": self.endpoint,
            "conditions": {"event_ids": self.event_ids, "where": self.conditions},
            "topics_scanned": self.topics.len(),
            "records_scanned": self.scanned,
            "matched": self.matched_per_topic(),
            "tombstones_planned": self.tombstones.len() + self.failed.len(),
            "tombstones_written": self.written(),
            "tombstones_failed": self.failed.iter().map(|(t, e)| json!({
                "topic": t.topic, "partition": t.partition, "key": t.key, "error": e,
            })).collect::<Vec<_>>(),
            "not_erasable_by_tombstone": {
                "count": self.not_erasable.len(),
                "records": self.not_erasable,
            },
            "unreadable": {"count": self.unreadable.len(), "records": self.unreadable},
            "quarantine_unchecked": self.quarantine_unchecked,
            "notes": self.notes,
        })
    }

    /// Human-readable lines, then the JSON summary line.
    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let verb = if self.dry_run {
            "would erase"
        } else {
            "matched"
        };
        for m in &self.matched {
            writeln!(
                out,
                "{verb}: topic {} partition {} offset {} key {} event_type {} ({})",
                m.topic,
                m.partition,
                m.offset,
                m.key.as_deref().unwrap_or("-"),
                m.event_type.as_deref().unwrap_or("-"),
                m.matched_by,
            )?;
        }
        for n in &self.not_erasable {
            let m = &n.record;
            writeln!(
                out,
                "not erasable by tombstone: topic {} partition {} offset {} key {} event_type {} \
                 ({}): {}",
                m.topic,
                m.partition,
                m.offset,
                m.key.as_deref().unwrap_or("-"),
                m.event_type.as_deref().unwrap_or("-"),
                m.matched_by,
                n.reason,
            )?;
        }
        for u in &self.unreadable {
            writeln!(
                out,
                "unreadable: topic {} partition {} offset {}: {}",
                u.topic, u.partition, u.offset, u.reason
            )?;
        }
        for t in &self.tombstones {
            match (self.dry_run, t.offset) {
                (true, _) | (false, None) => writeln!(
                    out,
                    "would write a tombstone: topic {} partition {} key {}",
                    t.topic, t.partition, t.key
                )?,
                (false, Some(offset)) => writeln!(
                    out,
                    "tombstone written: topic {} partition {} key {} at offset {offset}",
                    t.topic, t.partition, t.key
                )?,
            }
        }
        for (t, error) in &self.failed {
            writeln!(
                out,
                "tombstone FAILED: topic {} partition {} key {}: {error}",
                t.topic, t.partition, t.key
            )?;
        }
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        writeln!(
            out,
            "scanned {} records in {} topics of endpoint `{}`",
            self.scanned,
            self.topics.len(),
            self.endpoint
        )?;
        for (topic, count) in self.matched_per_topic() {
            writeln!(out, "matched {count} records in {topic}")?;
        }
        if self.dry_run {
            writeln!(
                out,
                "dry run: would write {} tombstones, wrote nothing",
                self.tombstones.len()
            )?;
        } else {
            writeln!(
                out,
                "wrote {} tombstones ({} failed)",
                self.written(),
                self.failed.len()
            )?;
        }
        if !self.not_erasable.is_empty() {
            writeln!(
                out,
                "{} matching records are not erasable by tombstone (left as they are)",
                self.not_erasable.len()
            )?;
        }
        if self.quarantine_unchecked > 0 {
            writeln!(
                out,
                "{} quarantined bodies could not be checked against --where (not JSON or \
                 dropped); their keys were checked",
                self.quarantine_unchecked
            )?;
        }
        if !self.unreadable.is_empty() {
            writeln!(
                out,
                "INCOMPLETE: {} records could not be checked (listed above)",
                self.unreadable.len()
            )?;
        }
        writeln!(out, "{}", self.summary())
    }
}

/// Scans the endpoint's topics, then (unless `dry_run`) writes the tombstones and waits for
/// every ack. Errors before anything is written when a protected field is met without its
/// key. Produce failures are in the report ([`EraseReport::ok`]).
pub async fn run(config: &Config, options: &EraseOptions) -> anyhow::Result<EraseReport> {
    anyhow::ensure!(
        !options.event_ids.is_empty() || !options.conditions.is_empty(),
        "erase needs at least one condition: --event-id ID or --where FIELD=VALUE"
    );
    let endpoint = config.endpoint(options.endpoint.as_deref())?;
    let prefix = endpoint.topic_prefix.as_str();
    let quarantine = quarantine_topic(prefix);
    let topics = owned_topics(config, prefix)?;
    let keys = Keyring::from_config(&config.protection).map_err(|e| e.within("protection"))?;
    let matcher = Matcher::new(&keys, &options.conditions);
    let event_ids: HashSet<&str> = options.event_ids.iter().map(String::as_str).collect();
    let mut decoder = if options.conditions.is_empty() {
        None
    } else {
        let catalog = Catalog::load(&config.schemas.dir)?;
        let registry = if config.schema_registry.url.trim().is_empty() {
            None
        } else {
            Some(Registry::new(&config.schema_registry)?)
        };
        Some(Decoder::new(&catalog, registry))
    };
    let mut report = EraseReport {
        dry_run: options.dry_run,
        endpoint: endpoint.name.clone(),
        conditions: options
            .conditions
            .iter()
            .map(|c| c.field().to_string())
            .collect(),
        event_ids: event_ids.len(),
        ..EraseReport::default()
    };
    let compacted = compaction(config, &topics, &quarantine, &mut report.notes).await;
    let mut plan = BTreeSet::new();

    for topic in &topics {
        let is_compacted = compacted.contains(topic);
        let mut scan = Scan::new(config, topic)?;
        while let Some(message) = tokio::task::block_in_place(|| scan.next())? {
            report.scanned += 1;
            // A null value in a compacted topic is a tombstone already; elsewhere (a
            // quarantined body under `raw = "drop"`) the key still counts.
            let payload = match message.payload() {
                None if is_compacted => continue,
                payload => payload.unwrap_or_default(),
            };
            let key = message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned());
            let key_text = key.as_deref().unwrap_or_default();
            let position = Position {
                topic,
                partition: message.partition(),
                offset: message.offset(),
                key: key_text,
            };
            let matched_by = if key.as_deref().is_some_and(|k| event_ids.contains(k)) {
                Some(MatchedBy::EventId)
            } else if let Some(decoder) = decoder.as_mut() {
                if *topic == quarantine {
                    match quarantined_body(&keys, &position, payload)? {
                        Some(body) => matcher.first_match(&body, &position, &mut Vec::new())?,
                        None => {
                            report.quarantine_unchecked += 1;
                            None
                        }
                    }
                } else {
                    match decoder.decode(payload).await {
                        Ok(record) => {
                            let mut problems = Vec::new();
                            let found = matcher.first_match(&record, &position, &mut problems)?;
                            if found.is_none() && !problems.is_empty() {
                                report
                                    .unreadable
                                    .push(position.unreadable(problems.join("; ")));
                            }
                            found
                        }
                        Err(error) => {
                            report
                                .unreadable
                                .push(position.unreadable(format!("does not decode: {error}")));
                            None
                        }
                    }
                }
            } else {
                None
            };
            let Some(matched_by) = matched_by else {
                continue;
            };
            let matched = Matched {
                topic: topic.clone(),
                partition: message.partition(),
                offset: message.offset(),
                key: key.clone(),
                event_type: header(&message, "event_type"),
                matched_by,
            };
            match (&key, is_compacted) {
                (Some(key), true) => {
                    plan.insert((topic.clone(), message.partition(), key.clone()));
                    report.matched.push(matched);
                }
                (None, true) => report.not_erasable.push(NotErasable {
                    record: matched,
                    reason: "the record has no key".into(),
                }),
                (_, false) => report.not_erasable.push(NotErasable {
                    record: matched,
                    reason: if *topic == quarantine {
                        "the quarantine topic (cleanup.policy=delete) is not compacted: the \
                         record stays until it is deleted by other means"
                            .into()
                    } else {
                        "the topic is not compacted (cleanup.policy has no `compact`)".into()
                    },
                }),
            }
        }
        report.topics.push(topic.clone());
    }

    let plan: Vec<Tombstone> = plan
        .into_iter()
        .map(|(topic, partition, key)| Tombstone {
            topic,
            partition,
            key,
            offset: None,
        })
        .collect();
    if options.dry_run {
        report.tombstones = plan;
    } else {
        let (written, failed) = write_tombstones(config, plan).await?;
        report.tombstones = written;
        report.failed = failed;
    }
    Ok(report)
}

/// Where a record is, for associated data and messages.
struct Position<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: &'a str,
}

impl Position<'_> {
    fn unreadable(&self, reason: String) -> Unreadable {
        Unreadable {
            topic: self.topic.to_string(),
            partition: self.partition,
            offset: self.offset,
            reason,
        }
    }

    fn at(&self) -> String {
        format!(
            "topic `{}` partition {} offset {}",
            self.topic, self.partition, self.offset
        )
    }
}

/// A quarantined body as JSON (opened first when it is an encrypted value), or `None` when it
/// is not JSON.
fn quarantined_body(
    keys: &Keyring,
    position: &Position<'_>,
    stored: &[u8],
) -> anyhow::Result<Option<Json>> {
    let sealed = std::str::from_utf8(stored).ok().filter(|s| is_encrypted(s));
    let body = match sealed {
        Some(sealed) => {
            let raw = FieldPath::of(RAW_PATH);
            match keys.decrypt(sealed, position.topic, position.key, &raw) {
                Ok(body) => body,
                Err(reason @ (UnprotectError::UnknownKey(_) | UnprotectError::OtherKey { .. })) => {
                    anyhow::bail!(
                        "the quarantined body at {} is encrypted {reason}; \
                         protection.encryption_keys must hold that key to erase",
                        position.at()
                    )
                }
                Err(_) => return Ok(None),
            }
        }
        None => stored.to_vec(),
    };
    Ok(serde_json::from_slice(&body).ok())
}

/// Topics starting with `prefix` and no longer endpoint prefix (as `tail` reads them), the
/// quarantine topic last.
fn owned_topics(config: &Config, prefix: &str) -> anyhow::Result<Vec<String>> {
    let longer: Vec<&str> = config
        .topic_prefixes()
        .into_iter()
        .filter(|other| other.len() > prefix.len() && other.starts_with(prefix))
        .collect();
    let quarantine = quarantine_topic(prefix);
    let mut topics: Vec<String> = TopicReader::topics_with_prefix(config, prefix)?
        .into_iter()
        .filter(|topic| !longer.iter().any(|other| topic.starts_with(other)))
        .collect();
    topics.sort_by_key(|topic| (*topic == quarantine, topic.clone()));
    Ok(topics)
}

/// The topics whose `cleanup.policy` includes `compact`. When the configs cannot be read,
/// every topic but the quarantine is taken as compacted (as the connector creates them).
async fn compaction(
    config: &Config,
    topics: &[String],
    quarantine: &str,
    notes: &mut Vec<String>,
) -> HashSet<String> {
    let assumed = || {
        topics
            .iter()
            .filter(|t| *t != quarantine)
            .cloned()
            .collect()
    };
    let admin: AdminClient<KafkaContext> = match kafka::create_admin(&config.kafka) {
        Ok(admin) => admin,
        Err(error) => {
            notes.push(format!(
                "topic configs not read ({error}): event topics taken as compacted"
            ));
            return assumed();
        }
    };
    let resources: Vec<ResourceSpecifier<'_>> = topics
        .iter()
        .map(|t| ResourceSpecifier::Topic(t.as_str()))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = match admin.describe_configs(&resources, &options).await {
        Ok(described) => described,
        Err(error) => {
            notes.push(format!(
                "topic configs not read ({error}): event topics taken as compacted"
            ));
            return assumed();
        }
    };
    let mut compacted = HashSet::new();
    for (topic, result) in topics.iter().zip(described) {
        let policy = match result {
            Ok(resource) => resource
                .get("cleanup.policy")
                .and_then(|entry| entry.value.clone()),
            Err(code) => {
                notes.push(format!("config of `{topic}` not read ({code})"));
                None
            }
        };
        let is_compacted = match policy {
            Some(policy) => policy.split(',').any(|p| p.trim() == "compact"),
            None => topic != quarantine,
        };
        if is_compacted {
            compacted.insert(topic.clone());
        }
    }
    compacted
}

/// Reads one topic's partitions from the oldest record to the end seen at start. Done per
/// partition at its end-of-partition event, so a partition ending in records a consumer never
/// sees (transaction markers, aborted records, offsets compacted away) still finishes.
struct Scan {
    consumer: BaseConsumer<KafkaContext>,
    /// Partition → high watermark at start, for the partitions not finished yet.
    ends: std::collections::HashMap<i32, i64>,
}

impl Scan {
    fn new(config: &Config, topic: &str) -> anyhow::Result<Self> {
        let consumer = super::reader::tools_consumer(config, true)?;
        let timeout = Duration::from_secs(10);
        let mut assignment = TopicPartitionList::new();
        let mut ends = std::collections::HashMap::new();
        for partition in super::reader::partitions(&consumer, topic)? {
            let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
            if high > low {
                assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
                ends.insert(partition, high);
            }
        }
        if !ends.is_empty() {
            consumer.assign(&assignment)?;
        }
        Ok(Self { consumer, ends })
    }

    /// The next record before the end, or `None` once every partition is finished.
    fn next(&mut self) -> anyhow::Result<Option<OwnedMessage>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !self.ends.is_empty() {
            let Some(result) = self.consumer.poll(Duration::from_millis(500)) else {
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "no record for 60 s while partitions {:?} were not read to their end",
                    self.ends.keys().collect::<Vec<_>>()
                );
                continue;
            };
            let message = match result {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(partition)) => {
                    self.ends.remove(&partition);
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let Some(&end) = self.ends.get(&message.partition()) else {
                continue;
            };
            if message.offset() >= end - 1 {
                self.ends.remove(&message.partition());
            }
            if message.offset() < end {
                return Ok(Some(message.detach()));
            }
        }
        Ok(None)
    }
}

fn header(message: &OwnedMessage, key: &str) -> Option<String> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Writes the tombstones (null values) to their partitions, acks=all and idempotent as the
/// connector's producer, and waits for every ack: (written with offsets, failed with errors).
async fn write_tombstones(
    config: &Config,
    plan: Vec<Tombstone>,
) -> anyhow::Result<(Vec<Tombstone>, Vec<(Tombstone, String)>)> {
    let ack_timeout = config.delivery.ack_timeout();
    let producer: FutureProducer<KafkaContext> = kafka::create(
        &config.kafka,
        &[
            ("enable.idempotence", "true".to_string()),
            ("acks", "all".to_string()),
            ("linger.ms", "5".to_string()),
            ("message.timeout.ms", ack_timeout.as_millis().to_string()),
        ],
    )?;
    let mut written = Vec::new();
    let mut failed = Vec::new();
    for batch in plan.chunks(1000) {
        let mut pending = Vec::with_capacity(batch.len());
        for tombstone in batch {
            let record = FutureRecord::<str, [u8]>::to(&tombstone.topic)
                .key(tombstone.key.as_str())
                .partition(tombstone.partition);
            match producer.send_result(record) {
                Ok(delivery) => pending.push((tombstone, delivery)),
                Err((error, _)) => failed.push((tombstone.clone(), error.to_string())),
            }
        }
        let outer = ack_timeout + Duration::from_secs(1);
        for (tombstone, delivery) in pending {
            match tokio::time::timeout(outer, delivery).await {
                Ok(Ok(Ok(delivered))) => written.push(Tombstone {
                    offset: Some(delivered.offset),
                    ..tombstone.clone()
                }),
                Ok(Ok(Err((error, _)))) => failed.push((tombstone.clone(), error.to_string())),
                Ok(Err(_)) | Err(_) => failed.push((
                    tombstone.clone(),
                    format!("kafka did not ack within {ack_timeout:?}"),
                )),
            }
        }
    }
    let _ = producer.flush(Duration::from_secs(10));
    Ok((written, failed))
}

/// Decides `--where` conditions on decoded records.
pub struct Matcher<'k> {
    keys: &'k Keyring,
    conditions: Vec<(Condition, Vec<String>)>,
}

/// A protected value met under a key the keyring does not hold (an id it lacks, or another key
/// under an id it has).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{path}` at {at} is {what} {reason}; protection.{setting} must hold that key: erase \
     cannot tell whether it matches (configure the key, as the connector's [protection] has it)"
)]
pub struct MissingKey {
    path: String,
    at: String,
    what: &'static str,
    /// The [`UnprotectError`]'s message (an id not held, another key under a held id).
    reason: String,
    setting: &'static str,
}

impl MissingKey {
    fn new(path: &FieldPath, position: &Position<'_>, kind: Kind, reason: UnprotectError) -> Self {
        let (what, setting) = match kind {
            Kind::Hash => ("hashed", "hash_keys"),
            Kind::Encrypted => ("encrypted", "encryption_keys"),
        };
        Self {
            path: path.indexed().to_string(),
            at: position.at(),
            what,
            reason: reason.to_string(),
            setting,
        }
    }
}

impl<'k> Matcher<'k> {
    /// Prepares `conditions`: each value's hash tokens under every hash key, once.
    pub fn new(keys: &'k Keyring, conditions: &[Condition]) -> Self {
        let conditions = conditions
            .iter()
            .map(|c| {
                let tokens = keys.hash_all(&canonical(&Json::String(c.value.clone())));
                (c.clone(), tokens)
            })
            .collect();
        Self { keys, conditions }
    }

    /// The first condition `record` (of `topic`, key `key`) meets, by field; values that did
    /// not open are added to `problems`.
    fn first_match(
        &self,
        record: &Json,
        position: &Position<'_>,
        problems: &mut Vec<String>,
    ) -> Result<Option<MatchedBy>, MissingKey> {
        for (condition, tokens) in &self.conditions {
            let wanted = Wanted {
                value: &condition.value,
                tokens,
            };
            if self.walk(
                record,
                &condition.steps,
                &mut FieldPath::default(),
                &wanted,
                position,
                problems,
            )? {
                return Ok(Some(MatchedBy::Where(condition.field.clone())));
            }
        }
        Ok(None)
    }

    /// True when `record` meets `condition` (tests and callers holding a decoded record).
    pub fn matches(
        &self,
        condition: usize,
        record: &Json,
        topic: &str,
        key: &str,
    ) -> Result<bool, MissingKey> {
        let (condition, tokens) = &self.conditions[condition];
        let position = Position {
            topic,
            partition: -1,
            offset: -1,
            key,
        };
        self.walk(
            record,
            &condition.steps,
            &mut FieldPath::default(),
            &Wanted {
                value: &condition.value,
                tokens,
            },
            &position,
            &mut Vec::new(),
        )
    }

    fn walk(
        &self,
        value: &Json,
        steps: &[Step],
        path: &mut FieldPath,
        wanted: &Wanted<'_>,
        position: &Position<'_>,
        problems: &mut Vec<String>,
    ) -> Result<bool, MissingKey> {
        let Some((step, rest)) = steps.split_first() else {
            return self.equals(value, path, wanted, position, problems);
        };
        let before = path.mark();
        let found = match (step, value) {
            (Step::Field(name), Json::Object(object)) => match object.get(name) {
                Some(child) => {
                    path.push_member(name);
                    self.walk(child, rest, path, wanted, position, problems)?
                }
                None => false,
            },
            (Step::Members, Json::Object(object)) => {
                let mut found = false;
                for (name, child) in object {
                    path.truncate(before);
                    path.push_member(name);
                    if self.walk(child, rest, path, wanted, position, problems)? {
                        found = true;
                        break;
                    }
                }
                found
            }
            // `[]`, or another step on an array (taken on each item).
            (_, Json::Array(items)) => {
                let rest = if matches!(step, Step::Items) {
                    rest
                } else {
                    steps
                };
                let mut found = false;
                for (index, item) in items.iter().enumerate() {
                    path.truncate(before);
                    path.push_index(index);
                    if self.walk(item, rest, path, wanted, position, problems)? {
                        found = true;
                        break;
                    }
                }
                found
            }
            // A JSON-text field (or an encrypted one) with steps left: look inside.
            (_, Json::String(text)) => match self.open(text, path, position, problems)? {
                Some(inner @ (Json::Object(_) | Json::Array(_))) => {
                    self.walk(&inner, steps, path, wanted, position, problems)?
                }
                _ => false,
            },
            _ => false,
        };
        path.truncate(before);
        Ok(found)
    }

    /// The value a string holds when stepped into: an encrypted value opened, JSON text parsed.
    fn open(
        &self,
        text: &str,
        path: &FieldPath,
        position: &Position<'_>,
        problems: &mut Vec<String>,
    ) -> Result<Option<Json>, MissingKey> {
        let text = if is_encrypted(text) {
            match self.decrypt(text, path, position, problems)? {
                Some(Json::String(inner)) => inner,
                Some(other) => return Ok(Some(other)),
                None => return Ok(None),
            }
        } else {
            text.to_string()
        };
        Ok(serde_json::from_str(&text).ok())
    }

    fn equals(
        &self,
        value: &Json,
        path: &mut FieldPath,
        wanted: &Wanted<'_>,
        position: &Position<'_>,
        problems: &mut Vec<String>,
    ) -> Result<bool, MissingKey> {
        match value {
            Json::Null => Ok(false),
            Json::String(text) if text == wanted.value => Ok(true),
            Json::String(text) => match label(text) {
                Some(label) if label.kind == Kind::Hash => {
                    if wanted.tokens.iter().any(|t| t == text) {
                        return Ok(true);
                    }
                    // Not this value's token: an answer only when the key is the one held.
                    self.keys
                        .holds(&label)
                        .map_err(|reason| MissingKey::new(path, position, Kind::Hash, reason))?;
                    Ok(false)
                }
                Some(_) => Ok(self
                    .decrypt(text, path, position, problems)?
                    .is_some_and(|opened| clear_equals(&opened, wanted.value))),
                None => Ok(false),
            },
            Json::Array(items) => {
                if clear_equals(value, wanted.value) {
                    return Ok(true);
                }
                let before = path.mark();
                let mut found = false;
                for (index, item) in items.iter().enumerate() {
                    path.truncate(before);
                    path.push_index(index);
                    if self.equals(item, path, wanted, position, problems)? {
                        found = true;
                        break;
                    }
                }
                path.truncate(before);
                Ok(found)
            }
            other => Ok(clear_equals(other, wanted.value)),
        }
    }

    /// Opens an encrypted value bound to `path`: its JSON value, `None` (noted in `problems`)
    /// when it does not open, an error when its key is not held.
    fn decrypt(
        &self,
        sealed: &str,
        path: &FieldPath,
        position: &Position<'_>,
        problems: &mut Vec<String>,
    ) -> Result<Option<Json>, MissingKey> {
        match self
            .keys
            .decrypt(sealed, position.topic, position.key, path)
        {
            Ok(plain) => Ok(Some(serde_json::from_slice(&plain).unwrap_or_else(|_| {
                Json::String(String::from_utf8_lossy(&plain).into_owned())
            }))),
            Err(reason @ (UnprotectError::UnknownKey(_) | UnprotectError::OtherKey { .. })) => {
                Err(MissingKey::new(path, position, Kind::Encrypted, reason))
            }
            Err(error) => {
                problems.push(format!("`{}`: {error}", path.indexed()));
                Ok(None)
            }
        }
    }
}

/// A condition's value and its hash tokens.
struct Wanted<'w> {
    value: &'w str,
    tokens: &'w [String],
}

/// A clear value equal to `wanted`: a string by its text, anything else by its JSON text.
fn clear_equals(value: &Json, wanted: &str) -> bool {
    match value {
        Json::String(text) => text == wanted,
        other => serde_json::to_string(other).is_ok_and(|text| text == wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::secret::Secret;
    use crate::pipeline::protect::ProtectionConfig;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    fn keyring(hash: &[&str], encryption: &[&str]) -> Keyring {
        Keyring::from_lines(hash, encryption).unwrap()
    }

    fn condition(text: &str) -> Condition {
        text.parse().unwrap()
    }

    fn matches(keys: &Keyring, text: &str, record: &Json) -> Result<bool, MissingKey> {
        Matcher::new(keys, &[condition(text)]).matches(0, record, "riskos.create.cases", "ev-1")
    }

    /// Asserts `record` (of `riskos.create.cases`, key `ev-1`) does not meet `text`; returns the
    /// problems noted on the way (values that did not open).
    fn problems_of_no_match(keys: &Keyring, text: &str, record: &Json) -> Vec<String> {
        let position = Position {
            topic: "riskos.create.cases",
            partition: 0,
            offset: 7,
            key: "ev-1",
        };
        let mut problems = Vec::new();
        let found = Matcher::new(keys, &[condition(text)])
            .first_match(record, &position, &mut problems)
            .unwrap();
        assert_eq!(found, None, "{text}");
        problems
    }

    #[test]
    fn conditions_parse_paths_and_never_show_their_value() {
        let c = condition("data.notes[].note_author_agent_email=alice@example.com=x");
        assert_eq!(c.value, "alice@example.com=x");
        assert_eq!(
            c.steps,
            [
                Step::Field("data".into()),
                Step::Field("notes".into()),
                Step::Items,
                Step::Field("note_author_agent_email".into())
            ]
        );
        assert_eq!(
            condition("data.attributes.*=1").steps[2],
            Step::Members,
            "map values"
        );
        assert_eq!(
            condition("data.m[][]=1").steps[2..],
            [Step::Items, Step::Items]
        );
        for shown in [format!("{c:?}"), c.to_string()] {
            assert!(!shown.contains("alice"), "{shown}");
        }
        for bad in ["no-equals", "data..x=1", "=1", "data.a[0]=1", ".x=1"] {
            let error = bad.parse::<Condition>().unwrap_err();
            assert!(!error.contains("=1"), "{error}");
        }
    }

    #[test]
    fn clear_fields_match_by_text_or_json_text() {
        let keys = keyring(&[], &[]);
        let record = json!({"event_type": "create:cases", "data": {
            "entity_token": "ent-A", "score": 0.5, "flag": true, "none": null,
            "reviewer": {"email": "a@example.com"}, "reasons": ["Other", "PEP"],
            "review_queues": "{\"queue\":{\"name\":\"kyc\"}}"
        }});
        for (condition, expected) in [
            ("data.entity_token=ent-A", true),
            ("data.entity_token=ent-B", false),
            ("data.entity_token=", false),
            ("data.score=0.5", true),
            ("data.flag=true", true),
            ("data.none=null", false),
            ("data.reviewer.email=a@example.com", true),
            ("data.missing.email=a@example.com", false),
            ("data.reasons[]=PEP", true),
            ("data.reasons=PEP", true),
            ("data.reasons=[\"Other\",\"PEP\"]", true),
            ("data.reasons[]=KYC", false),
            ("data.review_queues.queue.name=kyc", true),
            ("event_type=create:cases", true),
        ] {
            assert_eq!(
                matches(&keys, condition, &record).unwrap(),
                expected,
                "{condition}"
            );
        }
    }

    #[test]
    fn hashed_fields_match_under_any_held_key_and_a_missing_key_is_an_error() {
        let old = keyring(&[K1], &[]);
        let new = keyring(&[K2, K1], &[]);
        let record = |token: String| json!({"data": {"entity_token": token}});
        let under_k1 = record(old.hash(b"ent-A"));
        let under_k2 = record(new.hash(b"ent-A"));
        assert!(under_k2["data"]["entity_token"]
            .as_str()
            .unwrap()
            .starts_with("h2.k2."));
        for record in [&under_k1, &under_k2] {
            assert!(matches(&new, "data.entity_token=ent-A", record).unwrap());
            assert!(!matches(&new, "data.entity_token=ent-B", record).unwrap());
        }
        // The token itself is not the value.
        let token = under_k1["data"]["entity_token"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(matches(&old, &format!("data.entity_token={token}"), &under_k1).unwrap());
        assert!(!matches(&old, "data.entity_token=h2.k1", &under_k1).unwrap());
        // k2's token without k2: cannot decide.
        let error = matches(&old, "data.entity_token=ent-A", &under_k2).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("`k2`") && text.contains("hash_keys"),
            "{text}"
        );
        assert!(text.contains("data.entity_token"), "{text}");
        assert!(!text.contains("ent-A"), "{text}");
        let none = keyring(&[], &[]);
        assert!(matches(&none, "data.entity_token=ent-A", &under_k1).is_err());
    }

    #[test]
    fn encrypted_fields_match_when_they_open_to_the_value_for_their_record_and_path() {
        let keys = keyring(&[K1], &[K2, K1]);
        let seal = |value: &Json, path: &str| {
            Json::String(keys.encrypt(
                &serde_json::to_vec(value).unwrap(),
                "riskos.create.cases",
                "ev-1",
                path,
            ))
        };
        let record = json!({"description": seal(&json!("Alice's case"), "description"), "data": {
            "agent": {"email": seal(&json!("alice@example.com"), "data.agent.email")},
            "count": seal(&json!(3), "data.count"),
            "moved": seal(&json!("alice@example.com"), "data.agent.email"),
        }});
        assert!(!record.to_string().contains("alice"));
        assert!(matches(&keys, "data.agent.email=alice@example.com", &record).unwrap());
        assert!(!matches(&keys, "data.agent.email=bob@example.com", &record).unwrap());
        assert!(matches(&keys, "data.count=3", &record).unwrap());
        assert!(matches(&keys, "description=Alice's case", &record).unwrap());
        // Bound to another path: does not open, so no match (and noted as a problem).
        let problems = problems_of_no_match(&keys, "data.moved=alice@example.com", &record);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("data.moved"), "{problems:?}");
        // Another record (key) does not open it either.
        assert!(
            !Matcher::new(&keys, &[condition("data.agent.email=alice@example.com")])
                .matches(0, &record, "riskos.create.cases", "ev-2")
                .unwrap()
        );
        // Without its key: an error naming the key and the setting, not the value.
        let k2_only = keyring(&[K1], &[K2]);
        let sealed_k1 = Keyring::from_config(&ProtectionConfig {
            encryption_keys: vec![Secret::new(K1)],
            ..ProtectionConfig::default()
        })
        .unwrap()
        .encrypt(
            b"\"alice@example.com\"",
            "riskos.create.cases",
            "ev-1",
            "data.agent.email",
        );
        let error = matches(
            &k2_only,
            "data.agent.email=alice@example.com",
            &json!({"data": {"agent": {"email": sealed_k1}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("`k1`") && error.contains("encryption_keys"),
            "{error}"
        );
        assert!(!error.contains("alice"), "{error}");
    }

    #[test]
    fn arrays_match_when_any_item_does_with_item_paths_bound() {
        let keys = keyring(&[K1], &[K1]);
        let seal = |value: &str, path: &str| {
            Json::String(keys.encrypt(
                &serde_json::to_vec(&json!(value)).unwrap(),
                "riskos.create.cases",
                "ev-1",
                path,
            ))
        };
        let record = json!({"data": {
            "notes": [
                {"note": "x", "note_author_agent_email": seal("bob@example.com", "data.notes[0].note_author_agent_email")},
                {"note": "y", "note_author_agent_email": seal("alice@example.com", "data.notes[1].note_author_agent_email")}
            ],
            "tags": [keys.hash(b"vip"), keys.hash(b"pep")],
            "hits": null,
            "attributes": {"dob": seal("1990-01-01", "data.attributes.dob")}
        }});
        for (condition, expected) in [
            (
                "data.notes[].note_author_agent_email=alice@example.com",
                true,
            ),
            ("data.notes.note_author_agent_email=alice@example.com", true),
            (
                "data.notes[].note_author_agent_email=carol@example.com",
                false,
            ),
            ("data.notes[].note=y", true),
            ("data.tags[]=pep", true),
            ("data.tags=pep", true),
            ("data.tags[]=kyc", false),
            ("data.hits[].name=x", false),
            ("data.attributes.dob=1990-01-01", true),
            ("data.attributes.*=1990-01-01", true),
            ("data.attributes.*=1990-01-02", false),
        ] {
            assert_eq!(
                matches(&keys, condition, &record).unwrap(),
                expected,
                "{condition}"
            );
        }
    }

    #[test]
    fn quarantined_bodies_open_with_the_raw_path() {
        let keys = keyring(&[], &[K1]);
        let body = br#"{"event_id":"q-1","data":{"entity_token":"ent-A"}}"#;
        let sealed = keys.encrypt(body, "riskos.quarantine", "q-1", RAW_PATH);
        let position = Position {
            topic: "riskos.quarantine",
            partition: 0,
            offset: 0,
            key: "q-1",
        };
        let opened = quarantined_body(&keys, &position, sealed.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(opened["data"]["entity_token"], "ent-A");
        assert_eq!(
            quarantined_body(&keys, &position, body).unwrap().unwrap(),
            opened
        );
        assert_eq!(
            quarantined_body(&keys, &position, b"not json").unwrap(),
            None
        );
        let error = quarantined_body(&keyring(&[], &[K2]), &position, sealed.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains("`k1`"), "{error}");
        // The same id, another key: named as such, not passed over as "does not open".
        let again = keyring(&[], &[K1_AGAIN]);
        let error = quarantined_body(&again, &position, sealed.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains("fingerprint"), "{error}");
    }

    /// Another key under the id `k1`: a key regenerated under an old id.
    const K1_AGAIN: &str = "k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn values_under_a_key_regenerated_under_an_old_id_stop_the_run_naming_both_fingerprints() {
        let old = keyring(&[K1], &[K1]);
        let again = keyring(&[K1_AGAIN], &[K1_AGAIN]);
        let hashed = json!({"data": {"entity_token": old.hash(b"ent-A")}});
        let sealed = json!({"data": {"agent": {"email": old.encrypt(
            b"\"alice@example.com\"", "riskos.create.cases", "ev-1", "data.agent.email")}}});
        for (record, condition, setting) in [
            (&hashed, "data.entity_token=ent-A", "hash_keys"),
            (
                &sealed,
                "data.agent.email=alice@example.com",
                "encryption_keys",
            ),
        ] {
            let error = matches(&again, condition, record).unwrap_err().to_string();
            assert!(
                error.contains("fingerprint") && error.contains("`k1`") && error.contains(setting),
                "{error}"
            );
            assert!(
                !error.contains("alice") && !error.contains("ent-A"),
                "{error}"
            );
            assert!(matches(&old, condition, record).unwrap());
        }
    }

    #[test]
    fn items_of_an_array_are_matched_under_their_own_index_only() {
        let keys = keyring(&[], &[K1]);
        let seal = |value: &str, path: &str| {
            keys.encrypt(value.as_bytes(), "riskos.create.cases", "ev-1", path)
        };
        // Item 1's value moved to item 0: it does not open there, so it does not match.
        let record = json!({"data": {"names": [seal("\"alice\"", "data.names[1]")]}});
        let problems = problems_of_no_match(&keys, "data.names[]=alice", &record);
        assert!(problems[0].contains("data.names[0]"), "{problems:?}");
        let record = json!({"data": {"names": ["x", seal("\"alice\"", "data.names[1]")]}});
        assert!(matches(&keys, "data.names[]=alice", &record).unwrap());
    }

    /// `tests/protection/legacy-v1.json`: `e1` boxes and `h1` tokens the first formats'
    /// code made still match.
    #[test]
    fn values_of_the_first_formats_still_match() {
        let fixture: Json =
            serde_json::from_str(include_str!("../../tests/protection/legacy-v1.json")).unwrap();
        let line = |name: &str| fixture[name][0].as_str().unwrap().to_string();
        let (hash, encryption) = (line("hash_keys"), line("encryption_keys"));
        let keys = keyring(&[K2, &hash], &[K2, &encryption]);
        let (topic, key) = (
            fixture["topic"].as_str().unwrap(),
            fixture["key"].as_str().unwrap(),
        );
        let sealed = |i: usize| fixture["encrypted"][i]["value"].clone();
        let record = json!({"description": sealed(4), "data": {
            "sent_by": sealed(0), "tags": [{"tag_name": sealed(1)}, {"tag_name": sealed(2)}],
            "agent": sealed(3),
            "entity_token": fixture["hashed"][0]["token"],
        }});
        let matcher = |text: &str| {
            Matcher::new(&keys, &[condition(text)])
                .matches(0, &record, topic, key)
                .unwrap()
        };
        assert!(matcher("data.sent_by=alice@example.com"));
        assert!(matcher("data.tags[].tag_name=sanctions"));
        assert!(matcher("data.agent.email=bob@example.com"));
        assert!(matcher("description=Case for Alice"));
        assert!(matcher("data.entity_token=ent-42"));
        assert!(!matcher("data.entity_token=ent-43"));
        let position = Position {
            topic,
            partition: 0,
            offset: 0,
            key,
        };
        let raw = sealed(5);
        let body = quarantined_body(&keys, &position, raw.as_str().unwrap().as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(body["data"]["sent_by"], "alice@example.com");
    }
}
