//! Topic administration: create the compacted topics the routes need, at start-up.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::client_config;

/// A topic could not be created.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin client could not be created or the request failed as a whole.
    #[error("kafka admin request failed: {0}")]
    Client(#[from] KafkaError),
    /// The broker refused to create one topic.
    #[error("cannot create topic `{topic}`: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// A topic to create if missing.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Topic-level configs, e.g. `cleanup.policy=compact`.
    pub configs: Vec<(&'static str, String)>,
}

impl TopicSpec {
    /// An event topic: compacted, so a key's latest record wins.
    pub fn compacted(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            configs: vec![("cleanup.policy", "compact".into())],
        }
    }

    /// The quarantine topic: kept forever (its records may have no key, so no compaction).
    pub fn retained(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            configs: vec![
                ("cleanup.policy", "delete".into()),
                ("retention.ms", "-1".into()),
            ],
        }
    }

    /// Lets the topic take records of up to `bytes` (`max.message.bytes`), so the largest
    /// record the connector produces fits (see [`crate::record_size`]).
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.configs.push(("max.message.bytes", bytes.to_string()));
        self
    }
}

/// Creates each topic that does not exist yet. Existing topics are left as they are.
pub async fn ensure_topics(
    bootstrap_servers: &str,
    passthrough: &BTreeMap<String, String>,
    topics: &[TopicSpec],
    partitions: i32,
    replication_factor: i32,
) -> Result<(), AdminError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap_servers, &[], passthrough).create()?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|spec| {
            spec.configs.iter().fold(
                NewTopic::new(
                    &spec.name,
                    partitions,
                    TopicReplication::Fixed(replication_factor),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    // Bounded so a start-up against an unreachable cluster fails in seconds, not minutes.
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Create { topic, code }),
        }
    }
    Ok(())
}
