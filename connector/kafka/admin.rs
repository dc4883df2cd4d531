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

/// Creates each topic that does not exist yet with `cleanup.policy=compact`. Existing topics are
/// left as they are.
pub async fn ensure_topics(
    bootstrap_servers: &str,
    passthrough: &BTreeMap<String, String>,
    topics: &[String],
    partitions: i32,
    replication_factor: i32,
) -> Result<(), AdminError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap_servers, &[], passthrough).create()?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                partitions,
                TopicReplication::Fixed(replication_factor),
            )
            .set("cleanup.policy", "compact")
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Create { topic, code }),
        }
    }
    Ok(())
}
