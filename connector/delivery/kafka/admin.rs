//! Topic administration at start-up: create the compacted topics the routes need, and read
//! back what an acknowledged record rests on (replication factor, `min.insync.replicas`).

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Arc;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaConfig, KafkaContext};

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
    /// A topic's configuration could not be read (an ACL without `DescribeConfigs`, say).
    #[error(
        "cannot read the configuration of topic `{topic}`: {code} (the connector's principal \
         needs DescribeConfigs on its topics)"
    )]
    DescribeConfigs {
        topic: String,
        code: RDKafkaErrorCode,
    },
    /// The cluster's metadata could not be read.
    #[error("cannot read topic metadata: {0}")]
    Metadata(KafkaError),
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

    /// Requires `replicas` in-sync copies before `acks=all` is answered
    /// (`min.insync.replicas`): the broker default of 1 lets the leader alone acknowledge.
    pub fn min_insync_replicas(mut self, replicas: i32) -> Self {
        self.configs
            .push(("min.insync.replicas", replicas.to_string()));
        self
    }

    /// Lets the topic take records of up to `bytes` (`max.message.bytes`), so the largest
    /// record the connector produces fits (see [`crate::delivery::record_size`]).
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.configs.push(("max.message.bytes", bytes.to_string()));
        self
    }
}

/// Creates each topic that does not exist yet. Existing topics are left as they are.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    topics: &[TopicSpec],
    partitions: i32,
    replication_factor: i32,
) -> Result<(), AdminError> {
    let admin = super::create_admin(kafka)?;
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
    for result in admin.create_topics(&new_topics, &bounded()).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Create { topic, code }),
        }
    }
    Ok(())
}

/// What an acknowledged record of one topic rests on, as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicDurability {
    /// The topic does not exist (topics managed elsewhere and not made yet).
    Missing,
    /// The topic's replication factor (its least replicated partition's) and its effective
    /// `min.insync.replicas` (its own setting, or the broker's default).
    Replicated {
        replication_factor: i32,
        min_insync_replicas: i32,
    },
    /// The topic's replication factor, but no `min.insync.replicas` in its configuration:
    /// Redpanda, whose `acks=all` waits for a Raft majority and has no such setting.
    Unreported { replication_factor: i32 },
}

impl TopicDurability {
    /// `acks=all` could be answered by the leader alone while the topic is replicated: a
    /// leader lost right after the 2xx loses the record. What start-up refuses (unless
    /// `topics.allow_single_replica_acks`) and `config check` reports.
    pub fn acks_on_one_broker(&self) -> bool {
        matches!(
            self,
            TopicDurability::Replicated {
                replication_factor,
                min_insync_replicas,
            } if *replication_factor > 1 && *min_insync_replicas < 2
        )
    }
}

/// What one topic's metadata (`replication`) and configuration (`min_insync`: the topic was
/// described; its value, if reported) come to.
fn durability_of(replication: Option<i32>, min_insync: Option<Option<i32>>) -> TopicDurability {
    match (replication, min_insync) {
        (Some(replication_factor), Some(Some(min_insync_replicas))) => {
            TopicDurability::Replicated {
                replication_factor,
                min_insync_replicas,
            }
        }
        (Some(replication_factor), Some(None)) => {
            TopicDurability::Unreported { replication_factor }
        }
        _ => TopicDurability::Missing,
    }
}

/// Reads, for each topic, its replication factor from the cluster's metadata and its
/// effective `min.insync.replicas` from `DescribeConfigs`: what `acks=all` waits for.
pub async fn describe_durability(
    kafka: &KafkaConfig,
    topics: &[String],
) -> Result<Vec<(String, TopicDurability)>, AdminError> {
    let admin = Arc::new(super::create_admin(kafka)?);
    let replication = {
        let (admin, topics) = (admin.clone(), topics.to_vec());
        tokio::task::spawn_blocking(move || replication_factors(&admin, &topics))
            .await
            .map_err(|_| AdminError::Metadata(KafkaError::Canceled))??
    };
    let present: Vec<&String> = topics
        .iter()
        .filter(|t| replication.contains_key(*t))
        .collect();
    let specifiers: Vec<ResourceSpecifier> = present
        .iter()
        .map(|t| ResourceSpecifier::Topic(t))
        .collect();
    let mut min_insync = BTreeMap::new();
    if !specifiers.is_empty() {
        let described = admin.describe_configs(&specifiers, &bounded()).await?;
        for (topic, result) in present.iter().zip(described) {
            let resource = result.map_err(|code| AdminError::DescribeConfigs {
                topic: topic.to_string(),
                code,
            })?;
            let value = resource
                .get("min.insync.replicas")
                .and_then(|entry| entry.value.as_deref())
                .and_then(|v| v.parse::<i32>().ok());
            min_insync.insert(topic.to_string(), value);
        }
    }
    Ok(topics
        .iter()
        .map(|topic| {
            let durability = durability_of(
                replication.get(topic).copied(),
                min_insync.get(topic).copied(),
            );
            (topic.clone(), durability)
        })
        .collect())
}

/// The replication factor of each existing topic among `topics`: the fewest replicas of any
/// of its partitions. A blocking metadata request.
fn replication_factors(
    admin: &AdminClient<KafkaContext>,
    topics: &[String],
) -> Result<BTreeMap<String, i32>, AdminError> {
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(AdminError::Metadata)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && topics.iter().any(|name| name == t.name()))
        .filter_map(|t| {
            let fewest = t.partitions().iter().map(|p| p.replicas().len()).min()?;
            Some((
                t.name().to_string(),
                i32::try_from(fewest).unwrap_or(i32::MAX),
            ))
        })
        .collect())
}

/// Bounded so a start-up against an unreachable cluster fails in seconds, not minutes.
fn bounded() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_described_topic_without_min_insync_replicas_is_unreported_not_one() {
        assert_eq!(
            durability_of(Some(3), Some(None)),
            TopicDurability::Unreported {
                replication_factor: 3
            }
        );
        assert_eq!(
            durability_of(Some(3), Some(Some(2))),
            TopicDurability::Replicated {
                replication_factor: 3,
                min_insync_replicas: 2
            }
        );
        assert_eq!(durability_of(None, None), TopicDurability::Missing);
    }

    #[test]
    fn only_a_replicated_topic_below_two_in_sync_replicas_acks_on_one_broker() {
        let replicated = |rf, min| durability_of(Some(rf), Some(Some(min)));
        assert!(replicated(3, 1).acks_on_one_broker());
        assert!(!replicated(3, 2).acks_on_one_broker());
        assert!(!replicated(1, 1).acks_on_one_broker());
        assert!(!durability_of(Some(3), Some(None)).acks_on_one_broker());
    }
}
