//! Can the connector use the cluster at all? Start-up and `config check` ask before anything
//! else: a cluster that answers with a refusal (a TLS handshake that fails, SASL credentials
//! it rejects) is a setting to fix, so start-up stops with the reason instead of spooling
//! webhooks it will never deliver; a cluster that does not answer is an outage, which the
//! spool exists for.

use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};

use super::{KafkaConfig, KafkaContext, Refusal};

/// What the cluster's metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Brokers in the metadata.
    pub brokers: usize,
    /// Topics the connector's principal may see.
    pub topics: usize,
}

/// Why the cluster cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The cluster answered no: a setting to fix.
    #[error("kafka at {bootstrap} refused the connector ({security}): {refusal}. {hint}")]
    Refused {
        bootstrap: String,
        security: String,
        refusal: Refusal,
        hint: String,
    },
    /// The cluster did not answer in time.
    #[error("kafka at {bootstrap} did not answer within {waited:?} ({security})")]
    Unreachable {
        bootstrap: String,
        security: String,
        waited: Duration,
    },
}

/// Which keys to look at for a refusal.
fn hint(kafka: &KafkaConfig, refusal: &Refusal) -> String {
    use super::sasl::SaslMechanism::*;
    match refusal {
        Refusal::Tls(_) if kafka.tls.ca_file.is_some() => {
            "Check kafka.tls.ca_file: it must hold the CA that signed the brokers' certificates \
             (and kafka.tls.cert_file / key_file if the brokers want a client certificate)"
                .into()
        }
        Refusal::Tls(_) => "The brokers' certificates are not signed by a CA in the system's \
                            trust store: set kafka.tls.ca_file (or check that the port speaks \
                            TLS, and kafka.tls.cert_file / key_file for mTLS)"
            .into(),
        Refusal::Authentication(_) => match kafka.sasl.mechanism {
            Some(Plain | ScramSha256 | ScramSha512) => format!(
                "Check kafka.sasl.username and kafka.sasl.password (or password_file) for \
                 mechanism {}",
                kafka.sasl.mechanism.map_or("", |m| m.name())
            ),
            Some(OAuthBearer) => "Check kafka.sasl.oidc (token endpoint, client id and secret, \
                                  scope, extensions) and what the brokers expect of the token"
                .into(),
            Some(AwsMskIam) => "Check the pod's AWS credentials (IRSA role, environment) and \
                                that its IAM policy allows kafka-cluster:Connect"
                .into(),
            None => "The brokers want SASL: set kafka.sasl.mechanism".into(),
        },
    }
}

/// Asks for the cluster's metadata until it answers, the client reports a refusal, or
/// `timeout` passes. Blocking; `client` must be one that polls its events (a producer), so
/// that refusals reach `context`, its [`KafkaContext`].
pub(crate) fn probe<C: ClientContext>(
    client: &Client<C>,
    context: &KafkaContext,
    kafka: &KafkaConfig,
    timeout: Duration,
) -> Result<ClusterInfo, ConnectError> {
    let started = Instant::now();
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        match client.fetch_metadata(None, left.min(Duration::from_secs(1))) {
            Ok(metadata) if !metadata.brokers().is_empty() => {
                return Ok(ClusterInfo {
                    brokers: metadata.brokers().len(),
                    topics: metadata.topics().len(),
                })
            }
            _ => {}
        }
        if let Some(refusal) = context.refusal() {
            return Err(ConnectError::Refused {
                bootstrap: kafka.bootstrap_servers.clone(),
                security: kafka.describe_security(),
                hint: hint(kafka, &refusal),
                refusal,
            });
        }
        if started.elapsed() >= timeout {
            return Err(ConnectError::Unreachable {
                bootstrap: kafka.bootstrap_servers.clone(),
                security: kafka.describe_security(),
                waited: timeout,
            });
        }
    }
}
