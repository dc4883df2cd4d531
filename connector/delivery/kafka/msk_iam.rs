//! AWS MSK IAM authentication: OAUTHBEARER tokens signed with the pod's AWS credentials.
//!
//! An MSK IAM token is a presigned SigV4 `GET https://kafka.<region>.amazonaws.com/?Action=
//! kafka-cluster%3AConnect` (service `kafka-cluster`, valid 900 s, signed headers `host`), with a
//! `User-Agent` query parameter added after signing, base64url-encoded without padding. This is
//! what AWS's own signers (aws-msk-iam-auth for Java, aws-msk-iam-sasl-signer-python/-go) send;
//! the broker verifies the signature and maps the signing identity to IAM policies.
//!
//! Why `aws-sigv4` directly rather than the `aws-msk-iam-sasl-signer` crate: that crate is a thin
//! third-party wrapper (one maintainer) whose only substantial part is the same ~30 lines of
//! `aws-sigv4` calls written here. It would add `chrono` and a second `thiserror` major to the
//! build, its default-chain entry point builds a whole new aws-config chain (IMDS/STS round
//! trips) for every token, and it cannot sign at a chosen time, so no known-answer test. Signing
//! here keeps the credentials path to AWS's own crates (`aws-config`, `aws-sigv4`), lets the
//! signer cache credentials (the default chain itself does not: the SDK's identity cache that
//! normally does lives in its service clients) and is checked below against botocore's output.

use std::error::Error as _;
use std::fmt;
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

/// How long a token is valid: MSK's and the reference signers' fixed `X-Amz-Expires`.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// The SigV4 service name MSK verifies the signature for.
const SIGNING_NAME: &str = "kafka-cluster";

/// Sent as the token's `User-Agent` query parameter (outside the signature, as the reference
/// signers do), so MSK can tell which client signed.
const USER_AGENT: &str = concat!("riskos-connector/", env!("CARGO_PKG_VERSION"));

/// The longest `token()` waits for the credential chain. Long enough for the chain's own
/// retries (IMDS, STS web identity), short enough that librdkafka's thread, which calls the
/// refresh callback, is never stuck: librdkafka retries a failed refresh by itself.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials are fetched again when they have less than a token's lifetime plus this left, so
/// a token never outlives the credentials it was signed with (MSK would refuse it).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// How long credentials without an expiry (environment, shared credentials file) are reused
/// before the chain is asked again; the AWS SDK's identity cache uses the same default.
const NO_EXPIRY_REUSE: Duration = Duration::from_secs(15 * 60);

/// RFC 3986 unreserved characters stay, everything else is `%XX`: SigV4's URI encoding, so the
/// query the broker reads back is byte-for-byte the one that was signed.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `[kafka.sasl.aws_msk_iam]`: authenticate to Amazon MSK with IAM (SASL/OAUTHBEARER tokens
/// signed with the pod's AWS credentials).
///
/// Credentials come from the standard AWS chain, in order: the `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`) environment variables, the shared config and
/// credentials files (`AWS_PROFILE`), web identity (EKS IRSA: `AWS_ROLE_ARN` and
/// `AWS_WEB_IDENTITY_TOKEN_FILE`), the ECS container endpoint, then EC2 instance metadata.
/// Temporary credentials are refreshed before they expire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsMskIamConfig {
    /// AWS region of the MSK cluster, e.g. `eu-west-1`; tokens are signed for
    /// `kafka.<region>.amazonaws.com`. Default: the standard AWS region chain (`AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, the profile's `region`, then EC2 instance metadata); start-up fails
    /// when none of them has one.
    pub region: Option<String>,
}

/// A signed token, in the form librdkafka's `rd_kafka_oauthbearer_set_token` takes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct MskIamToken {
    /// The token: the base64url (no padding) presigned URL. A bearer credential for its
    /// lifetime, and it carries the session token, hence the redacting `Debug`.
    pub token: String,
    /// When the token expires, in milliseconds since the Unix epoch (absolute, as librdkafka
    /// wants it): the signing time plus 900 s, or the credentials' expiry if that is sooner.
    pub lifetime_ms: i64,
    /// The principal librdkafka reports for the token: the signing access key id (an
    /// identifier, not a secret; MSK itself derives the principal from the signature).
    pub principal: String,
}

impl fmt::Debug for MskIamToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MskIamToken")
            .field("token", &crate::common::secret::REDACTED)
            .field("lifetime_ms", &self.lifetime_ms)
            .field("principal", &self.principal)
            .finish()
    }
}

/// Why no token could be signed. No message contains a secret key or session token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MskIamError {
    /// Neither the config nor the AWS region chain names a region.
    #[error(
        "no AWS region for MSK IAM: set `kafka.sasl.aws_msk_iam.region` or AWS_REGION (the \
         standard AWS region chain found none)"
    )]
    NoRegion,
    /// The region cannot be part of a host name.
    #[error(
        "invalid AWS region `{0}` for MSK IAM: expected lower-case letters, digits and `-`, \
         e.g. `eu-west-1`"
    )]
    InvalidRegion(String),
    /// The AWS config has no credentials provider at all.
    #[error("no AWS credentials provider for MSK IAM")]
    NoCredentialsProvider,
    /// The credential chain failed (no credentials anywhere, STS refused, IMDS unreachable...).
    /// The message includes the whole cause chain, since `CredentialsError`'s own message is
    /// only its kind.
    #[error("cannot load AWS credentials for MSK IAM: {}", error_chain(.0))]
    Credentials(CredentialsError),
    /// The credential chain did not answer in time.
    #[error("AWS credentials for MSK IAM did not load within {0:?}")]
    Timeout(Duration),
    /// The task asking the credential chain ended without an answer (it panicked).
    #[error("the task loading AWS credentials for MSK IAM ended without an answer")]
    CredentialsTask,
    /// The provider handed out credentials that have already expired.
    #[error("the AWS credentials for MSK IAM expired at {}", humantime::format_rfc3339_seconds(*.0))]
    Expired(SystemTime),
    /// The runtime the credential chain runs on could not be started.
    #[error("cannot start the runtime for the AWS credential chain: {0}")]
    Runtime(std::io::Error),
    /// The system clock is before 1970.
    #[error("the system clock is before the Unix epoch")]
    Clock,
    /// SigV4 signing failed (the request or parameters were refused).
    #[error("cannot sign the MSK IAM token: {0}")]
    Signing(String),
}

/// `error` and its sources, `: `-separated.
fn error_chain(error: &CredentialsError) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Signs MSK IAM tokens. `Send + Sync`; share it in an `Arc`.
pub(crate) struct MskIamSigner {
    region: String,
    credentials: CredentialSource,
}

enum CredentialSource {
    /// Fixed keys: nothing to load, nothing to refresh.
    #[cfg(test)]
    Static(Credentials),
    /// A provider (the standard chain) asked on the signer's own runtime.
    Provider(ProviderSource),
}

struct ProviderSource {
    provider: SharedCredentialsProvider,
    /// The provider's futures run here, never on the caller's thread: `token()` is called from
    /// librdkafka's thread, which has no runtime, and may be called from inside one (tests,
    /// an async caller), where blocking on a runtime would panic. One worker thread suffices
    /// for a request every several minutes.
    runtime: BackgroundRuntime,
    /// The last credentials and until when they are reused. The mutex is held while fetching, so
    /// concurrent callers wait for the one fetch rather than each asking the chain.
    cached: Mutex<Option<CachedCredentials>>,
    timeout: Duration,
}

struct CachedCredentials {
    credentials: Credentials,
    reuse_until: SystemTime,
}

/// A runtime that may be dropped anywhere: a plain `Runtime` panics when dropped inside async
/// code (e.g. the producer dropped in a tokio task), `shutdown_background` does not block.
struct BackgroundRuntime(Option<tokio::runtime::Runtime>);

impl BackgroundRuntime {
    fn new() -> Result<Self, MskIamError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("msk-iam-credentials")
            .enable_all()
            .build()
            .map(|runtime| Self(Some(runtime)))
            .map_err(MskIamError::Runtime)
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the runtime is only taken on drop")
            .handle()
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for MskIamSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials = match &self.credentials {
            #[cfg(test)]
            CredentialSource::Static(_) => "static",
            CredentialSource::Provider(_) => "provider",
        };
        f.debug_struct("MskIamSigner")
            .field("region", &self.region)
            .field("credentials", &credentials)
            .finish()
    }
}

impl MskIamSigner {
    /// Loads the standard AWS credential chain and region once (see [`AwsMskIamConfig`]) and
    /// fetches credentials once, so a pod without usable credentials fails at start-up rather
    /// than at every token refresh. Call it inside a tokio runtime; the chain itself runs on
    /// the signer's own runtime.
    pub(crate) async fn from_environment(config: &AwsMskIamConfig) -> Result<Self, MskIamError> {
        if let Some(region) = &config.region {
            check_region(region)?;
        }
        let runtime = BackgroundRuntime::new()?;
        let configured_region = config.region.clone();
        let timeout = CREDENTIALS_TIMEOUT;
        // Loading and the first fetch run on the signer's runtime too, so every connection the
        // chain's HTTP clients pool belongs to the runtime that later reuses it.
        let (region, provider, first) = runtime
            .handle()
            .spawn(async move {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(region) = configured_region {
                    loader = loader.region(Region::new(region));
                }
                let sdk_config = loader.load().await;
                let region = sdk_config.region().map(|region| region.to_string());
                let provider = sdk_config.credentials_provider();
                let first = match &provider {
                    Some(provider) => {
                        Some(tokio::time::timeout(timeout, provider.provide_credentials()).await)
                    }
                    None => None,
                };
                (region, provider, first)
            })
            .await
            .map_err(|_| MskIamError::CredentialsTask)?;
        let region = region.ok_or(MskIamError::NoRegion)?;
        check_region(&region)?;
        let provider = provider.ok_or(MskIamError::NoCredentialsProvider)?;
        let credentials = match first {
            Some(Ok(Ok(credentials))) => credentials,
            Some(Ok(Err(error))) => return Err(MskIamError::Credentials(error)),
            Some(Err(_elapsed)) => return Err(MskIamError::Timeout(timeout)),
            None => return Err(MskIamError::NoCredentialsProvider),
        };
        let source = ProviderSource {
            provider,
            runtime,
            cached: Mutex::new(Some(CachedCredentials::new(credentials, SystemTime::now()))),
            timeout,
        };
        Ok(Self {
            region,
            credentials: CredentialSource::Provider(source),
        })
    }

    /// A signer over fixed credentials (the tests'). The region is checked when signing.
    #[cfg(test)]
    pub(crate) fn with_static_credentials(
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Self {
        let credentials = Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.map(str::to_string),
            None,
            "riskos-connector-static",
        );
        Self {
            region: region.to_string(),
            credentials: CredentialSource::Static(credentials),
        }
    }

    /// A signer asking `provider` for credentials, on its own runtime, waiting at most
    /// `timeout`. Nothing is fetched until the first token. For tests: scripted, failing and
    /// stuck providers.
    #[cfg(test)]
    fn with_provider(
        region: &str,
        provider: SharedCredentialsProvider,
        timeout: Duration,
    ) -> Result<Self, MskIamError> {
        Ok(Self {
            region: region.to_string(),
            credentials: CredentialSource::Provider(ProviderSource {
                provider,
                runtime: BackgroundRuntime::new()?,
                cached: Mutex::new(None),
                timeout,
            }),
        })
    }

    /// The region tokens are signed for.
    #[cfg(test)]
    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// Signs a fresh token. Synchronous, for librdkafka's refresh callback: it works on any
    /// thread, inside a tokio runtime or not. Credentials are reused until shortly before they
    /// expire; fetching new ones blocks for at most 30 s.
    pub(crate) fn token(&self) -> Result<MskIamToken, MskIamError> {
        check_region(&self.region)?;
        let now = SystemTime::now();
        let credentials = match &self.credentials {
            #[cfg(test)]
            CredentialSource::Static(credentials) => credentials.clone(),
            CredentialSource::Provider(source) => source.credentials(now)?,
        };
        sign_token(&self.region, &credentials, now)
    }
}

impl CachedCredentials {
    fn new(credentials: Credentials, fetched_at: SystemTime) -> Self {
        let reuse_until = match credentials.expiry() {
            // Reused while a whole token lifetime (and the margin) is left; credentials with
            // less serve the current token only (`checked_sub` fails only for an expiry near
            // the epoch: not reused either).
            Some(expiry) => expiry
                .checked_sub(TOKEN_LIFETIME + EXPIRY_MARGIN)
                .unwrap_or(UNIX_EPOCH),
            None => fetched_at + NO_EXPIRY_REUSE,
        };
        Self {
            credentials,
            reuse_until,
        }
    }
}

impl ProviderSource {
    fn credentials(&self, now: SystemTime) -> Result<Credentials, MskIamError> {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = cached.as_ref().filter(|entry| now < entry.reuse_until) {
            return Ok(entry.credentials.clone());
        }
        let credentials = self.fetch()?;
        tracing::debug!(
            expiry = ?credentials.expiry().map(humantime::format_rfc3339_seconds),
            "loaded AWS credentials for MSK IAM"
        );
        *cached = Some(CachedCredentials::new(credentials.clone(), now));
        Ok(credentials)
    }

    /// Asks the provider on the signer's runtime and waits on a channel rather than
    /// `block_on`, which panics when the caller is itself inside a runtime.
    fn fetch(&self) -> Result<Credentials, MskIamError> {
        let provider = self.provider.clone();
        let (sender, receiver) = mpsc::sync_channel(1);
        let task = self.runtime.handle().spawn(async move {
            let result = provider.provide_credentials().await;
            // The receiver is gone only after a timeout; nobody wants the answer then.
            let _ = sender.send(result);
        });
        match receiver.recv_timeout(self.timeout) {
            Ok(result) => result.map_err(MskIamError::Credentials),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                task.abort();
                Err(MskIamError::Timeout(self.timeout))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(MskIamError::CredentialsTask),
        }
    }
}

/// Region names are part of the host name: only `[a-z0-9-]`, so nothing can change the URL.
fn check_region(region: &str) -> Result<(), MskIamError> {
    let valid = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    if valid {
        Ok(())
    } else {
        Err(MskIamError::InvalidRegion(region.to_string()))
    }
}

/// The token for `credentials` signed at `now` (whole seconds: `X-Amz-Date` has no fraction,
/// and the lifetime is computed from the same instant).
fn sign_token(
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<MskIamToken, MskIamError> {
    check_region(region)?;
    let signing_secs = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| MskIamError::Clock)?
        .as_secs();
    let signing_time = UNIX_EPOCH + Duration::from_secs(signing_secs);
    let mut expires_at = signing_time + TOKEN_LIFETIME;
    if let Some(expiry) = credentials.expiry() {
        if expiry <= signing_time {
            return Err(MskIamError::Expired(expiry));
        }
        expires_at = expires_at.min(expiry);
    }

    let mut url = format!("https://kafka.{region}.amazonaws.com/?Action=kafka-cluster%3AConnect");
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(signing_time)
        .settings(settings)
        .build()
        .map_err(|error| MskIamError::Signing(error.to_string()))?
        .into();
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|error| MskIamError::Signing(error.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|error| MskIamError::Signing(error.to_string()))?
        .into_parts();

    // The signature last, as botocore writes a presigned URL (aws-sigv4 puts the session token
    // after it), so the token is byte-for-byte what the Python reference signer produces; the
    // order is not signed, the broker sorts the parameters itself.
    let mut auth: Vec<(&str, &str)> = instructions
        .params()
        .iter()
        .map(|(name, value)| (*name, value.as_ref()))
        .collect();
    auth.sort_by_key(|(name, _)| *name == "X-Amz-Signature");
    for (name, value) in auth {
        url.push('&');
        url.push_str(name);
        url.push('=');
        url.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
    url.push_str("&User-Agent=");
    url.extend(utf8_percent_encode(USER_AGENT, QUERY_VALUE));

    let lifetime_ms = expires_at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| MskIamError::Clock)?
        .as_millis();
    Ok(MskIamToken {
        token: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url),
        lifetime_ms: i64::try_from(lifetime_ms).unwrap_or(i64::MAX),
        principal: credentials.access_key_id().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use aws_credential_types::provider::future;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    use super::*;

    /// The AWS documentation's example keys.
    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// Has `/`, `+` and `=`, which must be percent-encoded in the query.
    const SESSION_TOKEN: &str = "EXAMPLE-SESSION-TOKEN/with+slash==";

    /// A decoded token URL.
    struct Decoded {
        url: String,
        host: String,
        /// Query parameters in order, percent-decoded.
        params: Vec<(String, String)>,
    }

    impl Decoded {
        fn param(&self, name: &str) -> Option<&str> {
            let mut values = self.params.iter().filter(|(key, _)| key == name);
            let value = values.next().map(|(_, value)| value.as_str());
            assert!(values.next().is_none(), "`{name}` appears twice");
            value
        }

        fn required(&self, name: &str) -> &str {
            self.param(name)
                .unwrap_or_else(|| panic!("no `{name}` in {}", self.url))
        }
    }

    fn decode(token: &str) -> Decoded {
        assert!(!token.contains('='), "padded: {token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "not base64url: {token}"
        );
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .expect("base64url without padding");
        let url = String::from_utf8(bytes).expect("UTF-8 URL");
        let rest = url.strip_prefix("https://").expect("https URL");
        let (host, query) = rest.split_once("/?").expect("path `/` and a query");
        let params = query
            .split('&')
            .map(|pair| {
                let (key, value) = pair.split_once('=').expect("key=value");
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .expect("UTF-8 parameter")
                        .into_owned()
                };
                (decode(key), decode(value))
            })
            .collect();
        Decoded {
            host: host.to_string(),
            params,
            url,
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// SigV4's URI encoding, written out independently of the signer's `percent_encoding` set.
    fn uri_encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// The SigV4 signature of a presigned GET, recomputed from the URL's own parameters as the
    /// broker does: every parameter but `X-Amz-Signature` and the unsigned `User-Agent`, sorted,
    /// `host` the only signed header, the empty body's SHA-256 as payload hash.
    fn expected_signature(decoded: &Decoded, secret: &str) -> String {
        let mut canonical_query: Vec<(String, String)> = decoded
            .params
            .iter()
            .filter(|(key, _)| key != "X-Amz-Signature" && key != "User-Agent")
            .map(|(key, value)| (uri_encode(key), uri_encode(value)))
            .collect();
        canonical_query.sort();
        let canonical_query = canonical_query
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join("&");
        let canonical_request = format!(
            "GET\n/\n{canonical_query}\nhost:{}\n\nhost\n{}",
            decoded.host,
            hex(&Sha256::digest(b""))
        );
        let date_time = decoded.required("X-Amz-Date");
        let scope = decoded
            .required("X-Amz-Credential")
            .split_once('/')
            .expect("key id/scope")
            .1;
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let parts: Vec<&str> = scope.split('/').collect();
        let [date, region, service, "aws4_request"] = parts[..] else {
            panic!("scope {scope}");
        };
        let key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date);
        let key = hmac_sha256(&key, region);
        let key = hmac_sha256(&key, service);
        let key = hmac_sha256(&key, "aws4_request");
        hex(&hmac_sha256(&key, &string_to_sign))
    }

    fn unix_secs(x_amz_date: &str) -> i64 {
        let format =
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        time::PrimitiveDateTime::parse(x_amz_date, format)
            .expect("X-Amz-Date is yyyymmddThhmmssZ")
            .assume_utc()
            .unix_timestamp()
    }

    fn now_ms() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    /// Checks every part of a token signed for `region` with `key_id` and `secret`, recently.
    fn check_token(token: &MskIamToken, region: &str, key_id: &str, secret: &str) -> Decoded {
        let before = now_ms();
        let decoded = decode(&token.token);
        assert_eq!(decoded.host, format!("kafka.{region}.amazonaws.com"));
        assert_eq!(
            decoded.params[0],
            ("Action".into(), "kafka-cluster:Connect".into())
        );
        assert_eq!(decoded.required("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
        let date_time = decoded.required("X-Amz-Date");
        assert_eq!(
            decoded.required("X-Amz-Credential"),
            format!(
                "{key_id}/{}/{region}/kafka-cluster/aws4_request",
                &date_time[..8]
            )
        );
        assert_eq!(decoded.required("X-Amz-Expires"), "900");
        assert_eq!(decoded.required("X-Amz-SignedHeaders"), "host");
        assert!(decoded
            .required("User-Agent")
            .starts_with("riskos-connector/"));
        let signature = decoded.required("X-Amz-Signature");
        assert!(
            signature.len() == 64
                && signature
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "signature {signature}"
        );
        assert_eq!(
            signature,
            expected_signature(&decoded, secret),
            "{}",
            decoded.url
        );
        // Signed just now; lifetime is exactly the signing second plus 900 s.
        let signed_ms = unix_secs(date_time) * 1000;
        assert!(
            (before - 60_000..=before + 1_000).contains(&signed_ms),
            "{date_time}"
        );
        assert_eq!(token.lifetime_ms, signed_ms + 900_000);
        assert_eq!(token.principal, key_id);
        decoded
    }

    #[test]
    fn token_has_the_msk_iam_content() {
        let signer = MskIamSigner::with_static_credentials("eu-west-1", KEY_ID, SECRET, None);
        let token = signer.token().unwrap();
        let decoded = check_token(&token, "eu-west-1", KEY_ID, SECRET);
        assert_eq!(decoded.param("X-Amz-Security-Token"), None);
        let ms = token.lifetime_ms - now_ms();
        assert!(
            (895_000..=900_000).contains(&ms),
            "lifetime {ms} ms from now"
        );
        let names: Vec<&str> = decoded.params.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            names,
            [
                "Action",
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
                "X-Amz-SignedHeaders",
                "X-Amz-Signature",
                "User-Agent",
            ]
        );
    }

    #[test]
    fn token_carries_the_session_token_when_given() {
        let signer = MskIamSigner::with_static_credentials(
            "ap-southeast-2",
            "ASIAEXAMPLE",
            SECRET,
            Some(SESSION_TOKEN),
        );
        let token = signer.token().unwrap();
        let decoded = check_token(&token, "ap-southeast-2", "ASIAEXAMPLE", SECRET);
        assert_eq!(decoded.required("X-Amz-Security-Token"), SESSION_TOKEN);
        assert!(decoded
            .url
            .contains("X-Amz-Security-Token=EXAMPLE-SESSION-TOKEN%2Fwith%2Bslash%3D%3D&"));
    }

    /// The independent check above can fail: a token signed with another secret, or whose
    /// signed content was changed, does not verify.
    #[test]
    fn signature_check_rejects_a_wrong_key_or_content() {
        let signer = MskIamSigner::with_static_credentials("us-east-1", KEY_ID, SECRET, None);
        let mut decoded = decode(&signer.token().unwrap().token);
        let signature = decoded.required("X-Amz-Signature").to_string();
        assert_eq!(signature, expected_signature(&decoded, SECRET));
        assert_ne!(signature, expected_signature(&decoded, "another-secret"));
        decoded.params[0].1 = "kafka-cluster:AlterCluster".into();
        assert_ne!(signature, expected_signature(&decoded, SECRET));
    }

    /// Known answers from botocore 1.43.11's `SigV4QueryAuth`, the signer
    /// aws-msk-iam-sasl-signer-python uses, at 2015-08-30T12:36:00Z:
    ///
    /// ```python
    /// with mock.patch("botocore.auth.get_current_datetime",
    ///                 return_value=datetime.datetime(2015, 8, 30, 12, 36, 0)):
    ///     req = AWSRequest(method="GET", url="https://kafka.us-east-1.amazonaws.com/",
    ///                      params={"Action": "kafka-cluster:Connect"})
    ///     SigV4QueryAuth(Credentials(KEY_ID, SECRET, token), "kafka-cluster", "us-east-1",
    ///                    expires=900).add_auth(req)
    ///     print(req.prepare().url)
    /// ```
    #[test]
    fn token_matches_botocore_known_answers() {
        let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        let prefix = "https://kafka.us-east-1.amazonaws.com/?Action=kafka-cluster%3AConnect\
            &X-Amz-Algorithm=AWS4-HMAC-SHA256\
            &X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fkafka-cluster%2Faws4_request\
            &X-Amz-Date=20150830T123600Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host";
        let cases = [
            (
                None,
                format!(
                    "{prefix}&X-Amz-Signature=\
                     c413a83bc64a339e31a5e5e9ed99d778ff843206b427540cafa5122c01e3e993"
                ),
            ),
            (
                Some(SESSION_TOKEN),
                format!(
                    "{prefix}&X-Amz-Security-Token=EXAMPLE-SESSION-TOKEN%2Fwith%2Bslash%3D%3D\
                     &X-Amz-Signature=\
                     9cb606eab8de94202716652765656d1e64dcd8287371ee316576adfffd4d84b2"
                ),
            ),
        ];
        for (session_token, botocore_url) in cases {
            let credentials = Credentials::new(
                KEY_ID,
                SECRET,
                session_token.map(str::to_string),
                None,
                "test",
            );
            let token = sign_token("us-east-1", &credentials, at).unwrap();
            let decoded = decode(&token.token);
            let expected = format!("{botocore_url}&User-Agent={}", uri_encode(USER_AGENT));
            assert_eq!(decoded.url, expected);
            assert_eq!(
                decoded.required("X-Amz-Signature"),
                expected_signature(&decoded, SECRET)
            );
            assert_eq!(token.lifetime_ms, (1_440_938_160 + 900) * 1000);
        }
    }

    #[test]
    fn invalid_regions_are_refused() {
        for region in [
            "",
            "EU-WEST-1",
            "eu west 1",
            "evil.com/x?",
            "eu-west-1.attacker",
        ] {
            let signer = MskIamSigner::with_static_credentials(region, KEY_ID, SECRET, None);
            match signer.token() {
                Err(MskIamError::InvalidRegion(r)) => assert_eq!(r, region),
                other => panic!("{region:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn config_section_defaults_and_refuses_unknown_keys() {
        let config: AwsMskIamConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, AwsMskIamConfig::default());
        assert_eq!(config.region, None);
        let config: AwsMskIamConfig = serde_json::from_str(r#"{"region": "eu-west-1"}"#).unwrap();
        assert_eq!(config.region.as_deref(), Some("eu-west-1"));
        assert!(serde_json::from_str::<AwsMskIamConfig>(r#"{"regoin": "eu-west-1"}"#).is_err());
    }

    /// A provider answering from a list, counting the calls.
    #[derive(Debug)]
    struct Scripted {
        answers: Mutex<Vec<Result<Credentials, CredentialsError>>>,
        calls: Arc<AtomicUsize>,
    }

    impl Scripted {
        fn provider(
            mut answers: Vec<Result<Credentials, CredentialsError>>,
        ) -> (SharedCredentialsProvider, Arc<AtomicUsize>) {
            answers.reverse();
            let calls = Arc::new(AtomicUsize::new(0));
            let provider = Self {
                answers: Mutex::new(answers),
                calls: calls.clone(),
            };
            (SharedCredentialsProvider::new(provider), calls)
        }
    }

    impl ProvideCredentials for Scripted {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.answers.lock().unwrap().pop().expect("an answer left");
            future::ProvideCredentials::ready(answer)
        }
    }

    fn temporary(expires_in: Duration) -> Credentials {
        Credentials::new(
            "ASIAEXAMPLE",
            SECRET,
            Some(SESSION_TOKEN.to_string()),
            Some(SystemTime::now() + expires_in),
            "test",
        )
    }

    #[test]
    fn errors_never_show_the_secret_or_session_token() {
        // The first answer's credentials are close to expiry, so the second token asks again
        // and gets the error while the secret and session token are held by the signer.
        let (provider, _) = Scripted::provider(vec![
            Ok(temporary(Duration::from_secs(120))),
            Err(CredentialsError::provider_error(
                "STS AssumeRoleWithWebIdentity: AccessDenied",
            )),
        ]);
        let signer =
            MskIamSigner::with_provider("eu-west-1", provider, CREDENTIALS_TIMEOUT).unwrap();
        let token = signer.token().unwrap();
        let error = signer.token().unwrap_err();
        assert!(matches!(error, MskIamError::Credentials(_)), "{error:?}");

        let expired = sign_token(
            "eu-west-1",
            &temporary(Duration::ZERO),
            SystemTime::now() + Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(expired, MskIamError::Expired(_)), "{expired:?}");

        let shown = [
            error.to_string(),
            format!("{error:?}"),
            format!("{:#}", anyhow::Error::from(error)),
            expired.to_string(),
            format!("{expired:?}"),
            format!("{signer:?}"),
            format!("{token:?}"),
        ];
        assert!(shown[0].contains("AccessDenied"), "{}", shown[0]);
        for text in shown {
            for secret in [SECRET, SESSION_TOKEN, "EXAMPLE-SESSION-TOKEN", &token.token] {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }

    #[test]
    fn credentials_are_reused_until_close_to_expiry() {
        // An hour left: reused. The lifetime is the token's 900 s.
        let (provider, calls) = Scripted::provider(vec![Ok(temporary(Duration::from_secs(3600)))]);
        let signer =
            MskIamSigner::with_provider("eu-west-1", provider, CREDENTIALS_TIMEOUT).unwrap();
        for _ in 0..3 {
            let token = signer.token().unwrap();
            check_token(&token, "eu-west-1", "ASIAEXAMPLE", SECRET);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Five minutes left: asked every time, and the token expires with the credentials.
        let (provider, calls) = Scripted::provider(vec![
            Ok(temporary(Duration::from_secs(300))),
            Ok(temporary(Duration::from_secs(300))),
        ]);
        let signer =
            MskIamSigner::with_provider("eu-west-1", provider, CREDENTIALS_TIMEOUT).unwrap();
        for _ in 0..2 {
            let ms = signer.token().unwrap().lifetime_ms - now_ms();
            assert!(
                (295_000..=300_000).contains(&ms),
                "lifetime {ms} ms from now"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// A provider that never answers.
    #[derive(Debug)]
    struct Stuck;

    impl ProvideCredentials for Stuck {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::new(std::future::pending())
        }
    }

    #[test]
    fn a_stuck_provider_times_out() {
        let timeout = Duration::from_millis(200);
        let signer = MskIamSigner::with_provider(
            "eu-west-1",
            SharedCredentialsProvider::new(Stuck),
            timeout,
        )
        .unwrap();
        let started = std::time::Instant::now();
        let error = signer.token().unwrap_err();
        assert!(
            matches!(error, MskIamError::Timeout(t) if t == timeout),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// librdkafka calls the refresh callback on its own thread (no runtime); an async caller
    /// may call `token()` inside one, where `block_on` would panic. Both work, and the signer
    /// (with its runtime) can be dropped inside async code.
    #[tokio::test]
    async fn token_works_on_any_thread() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MskIamSigner>();
        // rdkafka's callback returns `Box<dyn Error>`; a `Send + Sync` error also fits anyhow.
        assert_send_sync::<MskIamError>();

        let (provider, calls) = Scripted::provider(vec![Ok(temporary(Duration::from_secs(3600)))]);
        let signer = Arc::new(
            MskIamSigner::with_provider("eu-west-1", provider, CREDENTIALS_TIMEOUT).unwrap(),
        );
        let inside = signer.token().unwrap();
        check_token(&inside, "eu-west-1", "ASIAEXAMPLE", SECRET);
        let shared = signer.clone();
        let outside = std::thread::spawn(move || shared.token())
            .join()
            .unwrap()
            .unwrap();
        check_token(&outside, "eu-west-1", "ASIAEXAMPLE", SECRET);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        drop(signer);
    }

    /// Marks the child process [`from_environment_reads_the_standard_chain`] starts.
    const CHILD_MARKER: &str = "RISKOS_MSK_IAM_TEST_CHILD";

    /// `from_environment` with the standard chain, in a child process (this test binary again,
    /// running [`from_environment_child`]) whose environment has only the test's AWS variables:
    /// setting them in this process would race every other test thread.
    #[test]
    fn from_environment_reads_the_standard_chain() {
        let name = format!(
            "{}::from_environment_child",
            module_path!().split_once("::").expect("crate::module").1
        );
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command.args([
            name.as_str(),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                command.env_remove(key);
            }
        }
        let nowhere = std::env::temp_dir().join("riskos-msk-iam-test-no-such-file");
        command
            .env(CHILD_MARKER, "1")
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "eu-central-1")
            // Nothing else of the chain may answer: no files, no instance metadata.
            .env("AWS_CONFIG_FILE", &nowhere)
            .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "child {name}: {}\n{stdout}\n{stderr}",
            output.status
        );
    }

    #[tokio::test]
    #[ignore = "run by from_environment_reads_the_standard_chain in a child process"]
    async fn from_environment_child() {
        if std::env::var_os(CHILD_MARKER).is_none() {
            return;
        }
        let signer = MskIamSigner::from_environment(&AwsMskIamConfig::default())
            .await
            .unwrap();
        assert_eq!(signer.region(), "eu-central-1");
        let decoded = check_token(&signer.token().unwrap(), "eu-central-1", KEY_ID, SECRET);
        assert_eq!(decoded.param("X-Amz-Security-Token"), None);

        // The configured region wins over AWS_REGION.
        let config = AwsMskIamConfig {
            region: Some("us-east-2".into()),
        };
        let signer = MskIamSigner::from_environment(&config).await.unwrap();
        check_token(&signer.token().unwrap(), "us-east-2", KEY_ID, SECRET);
    }
}
