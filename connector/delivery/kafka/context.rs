//! The one librdkafka client context every client the connector makes shares: it publishes
//! the producer's statistics, keeps the cluster's refusals (a failed TLS handshake, failed
//! SASL authentication) so start-up and `config check` can say why Kafka cannot be used
//! instead of only that it timed out, and answers OAUTHBEARER token refreshes for AWS MSK IAM.
//!
//! OIDC tokens never come here: with `sasl.oauthbearer.method=oidc` librdkafka fetches them
//! itself on its background thread.

use std::error::Error;
use std::sync::{Arc, Mutex};

use rdkafka::client::{Client, ClientContext, OAuthToken};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;

use super::msk_iam::{AwsMskIamConfig, MskIamSigner};

/// A fresh OAUTHBEARER token.
#[derive(Debug, Clone)]
pub struct BearerToken {
    /// The token.
    pub token: String,
    /// When it expires, in milliseconds since the Unix epoch (librdkafka asks for the next
    /// one at 80 % of the time left).
    pub expires_at_ms: i64,
    /// The principal it names.
    pub principal: String,
}

/// Where OAUTHBEARER tokens come from when the connector, not librdkafka, makes them.
pub trait TokenSource: Send + Sync {
    /// A token valid from now. Called on librdkafka's thread, which may block.
    fn token(&self) -> Result<BearerToken, Box<dyn Error + Send + Sync>>;
}

/// Why the cluster would not have the connector, as librdkafka reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The TLS handshake failed (an unknown CA, a hostname mismatch, a client certificate
    /// the broker refused).
    Tls(String),
    /// SASL authentication failed (a wrong password, an expired or refused token).
    Authentication(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Tls(reason) => write!(f, "TLS handshake failed: {reason}"),
            Refusal::Authentication(reason) => write!(f, "authentication failed: {reason}"),
        }
    }
}

/// The client context (see the module doc).
#[derive(Clone)]
pub struct KafkaContext {
    stats: bool,
    tokens: Option<Arc<dyn TokenSource>>,
    refusal: Arc<Mutex<Option<Refusal>>>,
}

impl KafkaContext {
    /// A context; `stats` publishes librdkafka's statistics as metrics (the producer's).
    pub fn new(stats: bool, tokens: Option<Arc<dyn TokenSource>>) -> Self {
        Self {
            stats,
            tokens,
            refusal: Arc::default(),
        }
    }

    /// The last refusal librdkafka reported, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Hands a token to a client that does not poll for refresh events (the admin client):
    /// enough for the short-lived admin requests start-up and the tools make.
    pub fn prime_token(client: &Client<KafkaContext>) {
        let Some(tokens) = &client.context().tokens else {
            return;
        };
        // The admin client's own requests then fail on authentication, so say why here.
        if let Err(reason) = Self::set_token(client, tokens.as_ref()) {
            tracing::error!(%reason, "no OAUTHBEARER token for the kafka admin client");
            client.context().record(Refusal::Authentication(format!(
                "no OAUTHBEARER token: {reason}"
            )));
        }
    }

    fn set_token(client: &Client<KafkaContext>, tokens: &dyn TokenSource) -> Result<(), String> {
        let token = tokens.token().map_err(|e| e.to_string())?;
        let value = std::ffi::CString::new(token.token).map_err(|e| e.to_string())?;
        let principal = std::ffi::CString::new(token.principal).map_err(|e| e.to_string())?;
        let mut error = [0 as std::ffi::c_char; 512];
        // SAFETY: the client pointer is live for the call; the strings outlive it; no
        // extensions are passed (null, 0); `error` is a writable buffer of the given size,
        // which librdkafka leaves NUL-terminated.
        let code = unsafe {
            rdkafka::bindings::rd_kafka_oauthbearer_set_token(
                client.native_ptr(),
                value.as_ptr(),
                token.expires_at_ms,
                principal.as_ptr(),
                std::ptr::null_mut(),
                0,
                error.as_mut_ptr(),
                error.len(),
            )
        };
        if code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Ok(());
        }
        // SAFETY: see above: NUL-terminated within the buffer.
        let reason = unsafe { std::ffi::CStr::from_ptr(error.as_ptr()) };
        Err(reason.to_string_lossy().into_owned())
    }

    fn record(&self, refusal: Refusal) {
        *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
    }
}

impl ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn stats(&self, stats: Statistics) {
        if !self.stats {
            return;
        }
        use crate::common::metrics::{BROKER_RTT, PRODUCER_QUEUE_BYTES, PRODUCER_QUEUE_MESSAGES};
        metrics::gauge!(PRODUCER_QUEUE_MESSAGES).set(stats.msg_cnt as f64);
        metrics::gauge!(PRODUCER_QUEUE_BYTES).set(stats.msg_size as f64);
        for (name, broker) in stats.brokers {
            if let Some(rtt) = broker.rtt {
                // librdkafka reports microseconds.
                for (quantile, value) in [("0.5", rtt.p50), ("0.99", rtt.p99)] {
                    metrics::gauge!(BROKER_RTT, "broker" => name.clone(), "quantile" => quantile)
                        .set(value as f64 / 1e6);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::SSL) => self.record(Refusal::Tls(reason.to_string())),
            // With TLS 1.3 the broker refuses a client certificate after the handshake: the
            // client then reads the broker's TLS alert as a transport error ("tlsv13 alert
            // certificate required"). An alert is the broker saying no, not an outage.
            Some(RDKafkaErrorCode::BrokerTransportFailure) if reason.contains(" alert ") => {
                self.record(Refusal::Tls(reason.to_string()))
            }
            Some(RDKafkaErrorCode::Authentication) => {
                self.record(Refusal::Authentication(reason.to_string()))
            }
            _ => {}
        }
        tracing::error!(target: "librdkafka", %error, reason, "kafka client error");
    }

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn Error>> {
        let Some(tokens) = &self.tokens else {
            return Err("no OAUTHBEARER token source: set kafka.sasl.mechanism".into());
        };
        let token = tokens.token().map_err(|e| -> Box<dyn Error> { e })?;
        tracing::debug!(principal = %token.principal, "OAUTHBEARER token refreshed");
        Ok(OAuthToken {
            token: token.token,
            principal_name: token.principal,
            lifetime_ms: token.expires_at_ms,
        })
    }
}

impl ConsumerContext for KafkaContext {}

/// AWS MSK IAM tokens, signed with the credentials of the standard chain. The chain is read
/// on the first refresh (on librdkafka's thread, which may block; the signer runs aws-config on
/// a runtime of its own), and read again at the next refresh if it failed: credentials may
/// appear later, e.g. a web identity token file mounted after start.
pub(crate) struct MskIamTokens {
    config: AwsMskIamConfig,
    signer: Mutex<Option<Arc<MskIamSigner>>>,
}

impl MskIamTokens {
    /// Tokens for `config`'s region; the credentials are looked up on first use.
    pub(crate) fn new(config: &AwsMskIamConfig) -> Self {
        Self {
            config: config.clone(),
            signer: Mutex::new(None),
        }
    }

    /// Tokens from a signer made elsewhere (fixed credentials).
    #[cfg(test)]
    pub(crate) fn with_signer(signer: MskIamSigner) -> Self {
        Self {
            config: AwsMskIamConfig::default(),
            signer: Mutex::new(Some(Arc::new(signer))),
        }
    }
}

impl TokenSource for MskIamTokens {
    fn token(&self) -> Result<BearerToken, Box<dyn Error + Send + Sync>> {
        let signer = {
            let mut slot = self.signer.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Some(signer) => signer.clone(),
                None => {
                    let signer =
                        futures::executor::block_on(MskIamSigner::from_environment(&self.config))?;
                    slot.insert(Arc::new(signer)).clone()
                }
            }
        };
        let token = signer.token()?;
        Ok(BearerToken {
            token: token.token,
            expires_at_ms: token.lifetime_ms,
            principal: token.principal,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use rdkafka::producer::FutureProducer;

    use super::*;
    use crate::delivery::kafka::sasl::{SaslConfig, SaslMechanism};
    use crate::delivery::kafka::KafkaConfig;

    /// Hands out tokens that expire 1.5 s after they are made, and counts them.
    struct ShortLived(AtomicUsize);

    impl TokenSource for ShortLived {
        fn token(&self) -> Result<BearerToken, Box<dyn Error + Send + Sync>> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
            Ok(BearerToken {
                token: format!("token-{n}"),
                expires_at_ms: now_ms + 1_500,
                principal: "riskos".into(),
            })
        }
    }

    /// Counts the tokens another source hands out.
    struct Counted<S>(S, AtomicUsize);

    impl<S: TokenSource> TokenSource for Counted<S> {
        fn token(&self) -> Result<BearerToken, Box<dyn Error + Send + Sync>> {
            let token = self.0.token()?;
            assert_eq!(token.principal, "AKIDEXAMPLE");
            assert!(token.token.len() > 100, "a signed URL, base64url");
            self.1.fetch_add(1, Ordering::SeqCst);
            Ok(token)
        }
    }

    fn msk_iam() -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:1".into(),
            sasl: SaslConfig {
                mechanism: Some(SaslMechanism::AwsMskIam),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn msk_iam_gives_the_client_a_token_source_and_other_mechanisms_none() {
        assert!(crate::delivery::kafka::context(&msk_iam(), false)
            .tokens
            .is_some());
        assert!(
            crate::delivery::kafka::context(&KafkaConfig::default(), false)
                .tokens
                .is_none()
        );
    }

    #[test]
    fn the_msk_iam_signer_hands_the_client_a_token_it_accepts() {
        let signer = crate::delivery::kafka::msk_iam::MskIamSigner::with_static_credentials(
            "eu-west-1",
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        );
        let source = Arc::new(Counted(
            MskIamTokens::with_signer(signer),
            AtomicUsize::new(0),
        ));
        let context = KafkaContext::new(false, Some(source.clone()));
        let _producer: FutureProducer<KafkaContext> =
            crate::delivery::kafka::client_config(&msk_iam(), &[])
                .unwrap()
                .create_with_context(context.clone())
                .unwrap();
        // librdkafka asks for a token as soon as the client exists.
        let deadline = Instant::now() + Duration::from_secs(10);
        while source.1.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            source.1.load(Ordering::SeqCst),
            1,
            "the callback was not called"
        );
        assert_eq!(context.refusal(), None);
    }

    #[test]
    fn a_client_configured_for_msk_iam_calls_the_token_callback_and_refreshes() {
        let source = Arc::new(ShortLived(AtomicUsize::new(0)));
        let context = KafkaContext::new(false, Some(source.clone()));
        let _producer: FutureProducer<KafkaContext> =
            crate::delivery::kafka::client_config(&msk_iam(), &[])
                .unwrap()
                .create_with_context(context.clone())
                .unwrap();
        // librdkafka asks at once, then again at 80 % of each token's 1.5 s lifetime.
        let deadline = Instant::now() + Duration::from_secs(20);
        while source.0.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            source.0.load(Ordering::SeqCst) >= 3,
            "tokens asked for: {}",
            source.0.load(Ordering::SeqCst)
        );
        assert_eq!(context.refusal(), None, "a token was refused by the client");
    }
}
