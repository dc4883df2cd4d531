//! Who may send webhooks: one authentication mode per endpoint, and the caller's address.
//!
//! | file | job |
//! |---|---|
//! | [`basic`] | `Authorization: Basic` against `user:password` pairs |
//! | [`bearer`] | `Authorization: Bearer` against static tokens |
//! | [`oauth2`] | `Authorization: Bearer <JWT>`: signature, `exp`/`nbf`, `iss`, `aud`, scope |
//! | [`jwks`] | the identity provider's keys: cached, refreshed, refetched on an unknown `kid` |
//! | [`token_endpoint`] | the built-in client-credentials endpoint issuing those JWTs |
//! | [`backoff`] | the token endpoint's growing wait for addresses that fail client authentication |
//! | [`hmac`] | HMAC-SHA256 of the body, optional signed timestamp against replays; Alloy's HMAC |
//! | [`standard_webhooks`] | Standard Webhooks: `v1` HMAC, `v1a` Ed25519 over id, timestamp, body |
//! | [`secret`](crate::common::secret) | secrets that never print, `*_file` loading, constant-time comparison |
//!
//! [`Authenticator`] is built once at start-up from [`AuthConfig`]; every secret file is read
//! then. Failures carry a [`Reason`] for the log line and a challenge for `WWW-Authenticate`,
//! and nothing else: the caller learns only that it was not authenticated.

pub(crate) mod backoff;
pub(crate) mod basic;
pub(crate) mod bearer;
pub mod hmac;
pub(crate) mod jwks;
pub(crate) mod oauth2;
pub mod standard_webhooks;
pub mod token_endpoint;

use axum::http::{header, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use basic::{Basic, BasicConfig};
use bearer::{Bearer, BearerConfig};
use hmac::{Hmac, HmacConfig};
use oauth2::{OAuth2Config, Validator};
use standard_webhooks::{StandardWebhooks, StandardWebhooksConfig};
use token_endpoint::TokenIssuer;

use crate::common::setting::SettingError;

/// `[auth]`: how webhook callers authenticate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `basic`, `bearer`, `oauth2`, `hmac`, `standard-webhooks` or `none`. Required by
    /// `serve`: there is no
    /// default, so an open endpoint is always a written decision (`none` also logs a warning
    /// at start-up). The offline tools do not need it.
    pub mode: Option<AuthMode>,
    /// Settings of `mode = "basic"`.
    pub basic: BasicConfig,
    /// Settings of `mode = "bearer"`.
    pub bearer: BearerConfig,
    /// Settings of `mode = "oauth2"`.
    pub oauth2: OAuth2Config,
    /// Settings of `mode = "hmac"`.
    pub hmac: HmacConfig,
    /// Settings of `mode = "standard-webhooks"`.
    pub standard_webhooks: StandardWebhooksConfig,
}

/// The authentication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Username and password (dashboard: Basic Authentication).
    Basic,
    /// Static token (dashboard: Bearer Token).
    Bearer,
    /// JWT access tokens (dashboard: OAuth2).
    #[serde(rename = "oauth2")]
    OAuth2,
    /// HMAC-signed bodies (request-token senders; Alloy's HMAC, with `header = "Authorization"`
    /// and `encoding = "base64"`).
    Hmac,
    /// Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`,
    /// or Svix's `svix-*` names; `v1` HMAC-SHA256 and `v1a` Ed25519): config name
    /// `standard-webhooks`. The `webhook-id` (`svix-id`) is the sender's idempotency key
    /// ([`Authenticator::idempotency_key`]).
    #[serde(rename = "standard-webhooks")]
    StandardWebhooks,
    /// No authentication: only behind something else that authenticates.
    None,
}

impl AuthConfig {
    /// Checks of the chosen mode's settings that need no I/O; called by
    /// `Config::validate` (the config module). A missing mode is refused by `serve`
    /// ([`Authenticator::from_config`]), not here, so the offline tools run without one.
    pub fn validate(&self) -> Result<(), SettingError> {
        match self.mode {
            None => Ok(()),
            Some(AuthMode::OAuth2) => self.oauth2.validate(),
            Some(AuthMode::Hmac) if self.hmac.tolerance_secs == 0 => Err(SettingError::invalid(
                "auth.hmac.tolerance_secs",
                "must be greater than 0",
            )),
            Some(AuthMode::StandardWebhooks) if self.standard_webhooks.tolerance_secs == 0 => {
                Err(SettingError::invalid(
                    "auth.standard_webhooks.tolerance_secs",
                    "must be greater than 0",
                ))
            }
            Some(_) => Ok(()),
        }
    }
}

/// Why a request was not authenticated. For logs only; the response says none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// No credentials of the configured scheme.
    #[error("no credentials")]
    Missing,
    /// Credentials that cannot be decoded.
    #[error("malformed credentials")]
    Malformed,
    /// Unknown user, wrong password or unknown token.
    #[error("wrong credentials")]
    WrongCredentials,
    /// JWT past `exp`.
    #[error("token expired")]
    JwtExpired,
    /// JWT before `nbf`.
    #[error("token not yet valid")]
    JwtNotYetValid,
    /// JWT from another issuer.
    #[error("token from another issuer")]
    JwtWrongIssuer,
    /// JWT for another audience.
    #[error("token for another audience")]
    JwtWrongAudience,
    /// JWT `alg` not allowed (`none`, or not the key's).
    #[error("token algorithm not allowed")]
    JwtAlgorithm,
    /// JWT names a key we do not know.
    #[error("token signed with an unknown key")]
    JwtUnknownKey,
    /// JWT header without a `kid`: it must name the key that signed it.
    #[error("token names no key")]
    JwtMissingKid,
    /// JWT signature does not verify.
    #[error("token signature invalid")]
    JwtBadSignature,
    /// JWT lacks `exp`, `iss` or `aud`.
    #[error("token lacks a required claim")]
    JwtMissingClaim,
    /// JWT lacks the required scope.
    #[error("token lacks the required scope")]
    JwtScope,
    /// Not a JWT.
    #[error("token is not a JWT")]
    JwtMalformed,
    /// No signature (HMAC, or a Standard Webhooks `v1`/`v1a`) matches the body.
    #[error("signature does not match the body")]
    BadSignature,
    /// The signed timestamp (`hmac` mode's timestamp header, `webhook-timestamp`) is outside
    /// the window.
    #[error("signature timestamp outside the replay window")]
    StaleTimestamp,
    /// `webhook-signature` holds no signature this endpoint can check: only unknown versions,
    /// or `v1a` with no public key configured (`v1` with no secret).
    #[error("no signature of a version this endpoint verifies")]
    NoVerifiableSignature,
    /// More than one `Authorization` header (RFC 9110 §11.6.2 allows one): which one a proxy
    /// or another server would read is anyone's guess, so none is.
    #[error("more than one Authorization header")]
    DuplicateAuthorization,
    /// A signature, timestamp or message id header (`hmac`, `standard-webhooks`) sent more
    /// than once.
    #[error("a signature header sent more than once")]
    DuplicateSignatureHeader,
    /// `standard-webhooks`: `webhook-*` and `svix-*` headers in one request, other than two
    /// complete, equal copies; a signature is checked over one family's three headers only.
    #[error("webhook-* and svix-* headers mixed")]
    MixedHeaderFamilies,
}

impl Reason {
    /// Class for the log line (`kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Missing => "auth_missing",
            Reason::Malformed => "auth_malformed",
            Reason::WrongCredentials => "auth_wrong_credentials",
            Reason::JwtExpired => "jwt_expired",
            Reason::JwtNotYetValid => "jwt_not_yet_valid",
            Reason::JwtWrongIssuer => "jwt_wrong_issuer",
            Reason::JwtWrongAudience => "jwt_wrong_audience",
            Reason::JwtAlgorithm => "jwt_algorithm_not_allowed",
            Reason::JwtUnknownKey => "jwt_unknown_key",
            Reason::JwtMissingKid => "jwt_missing_kid",
            Reason::JwtBadSignature => "jwt_bad_signature",
            Reason::JwtMissingClaim => "jwt_missing_claim",
            Reason::JwtScope => "jwt_scope",
            Reason::JwtMalformed => "jwt_malformed",
            Reason::BadSignature => "hmac_bad_signature",
            Reason::StaleTimestamp => "hmac_stale_timestamp",
            Reason::NoVerifiableSignature => "no_verifiable_signature",
            Reason::DuplicateAuthorization => "duplicate_authorization",
            Reason::DuplicateSignatureHeader => "hmac_duplicate_header",
            Reason::MixedHeaderFamilies => "standard_webhooks_mixed_headers",
        }
    }
}

/// A 401: the mode's challenge and the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication required")]
pub struct AuthFailure {
    mode: AuthMode,
    /// Why, for the log.
    pub reason: Reason,
}

impl AuthFailure {
    /// A failure of `mode` for `reason` (the endpoint's other checks answer 401 with their
    /// mode's challenge too).
    pub fn new(mode: AuthMode, reason: Reason) -> Self {
        Self { mode, reason }
    }

    /// The `WWW-Authenticate` value (RFC 9110 §11.6.1, RFC 6750 §3 for bearer tokens).
    pub fn challenge(&self) -> HeaderValue {
        HeaderValue::from_static(match (self.mode, self.reason) {
            (AuthMode::Basic, _) => r#"Basic realm="riskos-connector", charset="UTF-8""#,
            (AuthMode::Bearer | AuthMode::OAuth2, Reason::Missing) => {
                r#"Bearer realm="riskos-connector""#
            }
            (AuthMode::Bearer | AuthMode::OAuth2, _) => {
                r#"Bearer realm="riskos-connector", error="invalid_token""#
            }
            (AuthMode::Hmac | AuthMode::None, _) => r#"HMAC-SHA256 realm="riskos-connector""#,
            (AuthMode::StandardWebhooks, _) => r#"Standard-Webhooks realm="riskos-connector""#,
        })
    }
}

/// A header that must appear at most once was sent several times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepeatedHeader;

/// A header that may appear at most once: `Ok(None)` when absent. (`HeaderMap::get` would
/// silently pick the first of several.)
pub fn single_header<K: header::AsHeaderName>(
    headers: &HeaderMap,
    name: K,
) -> Result<Option<&HeaderValue>, RepeatedHeader> {
    let mut values = headers.get_all(name).into_iter();
    let first = values.next();
    match values.next() {
        None => Ok(first),
        Some(_) => Err(RepeatedHeader),
    }
}

/// The value after `scheme ` in `Authorization`. Another scheme counts as no credentials; two
/// `Authorization` headers, whatever their schemes, are refused.
pub(crate) fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Result<&'h str, Reason> {
    let value = single_header(headers, header::AUTHORIZATION)
        .map_err(|RepeatedHeader| Reason::DuplicateAuthorization)?
        .ok_or(Reason::Missing)?
        .to_str()
        .map_err(|_| Reason::Malformed)?;
    match value.split_once(' ') {
        Some((given, rest)) if given.eq_ignore_ascii_case(scheme) => Ok(rest),
        _ => Err(Reason::Missing),
    }
}

enum Verifier {
    None,
    Basic(Basic),
    Bearer(Bearer),
    OAuth2(Validator),
    Hmac(Hmac),
    StandardWebhooks(StandardWebhooks),
}

/// The configured mode, ready to check requests.
pub struct Authenticator {
    mode: AuthMode,
    verifier: Verifier,
    issuer: Option<TokenIssuer>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.mode)
            .field("token_endpoint", &self.issuer)
            .finish()
    }
}

impl Authenticator {
    /// Reads every secret of the configured mode (and only that mode) and, for OAuth2,
    /// fetches the JWKS. Outside an endpoint (tests, tools): its metrics carry `endpoint=""`.
    pub async fn from_config(config: &AuthConfig) -> Result<Self, SettingError> {
        Self::for_endpoint(config, "").await
    }

    /// [`Authenticator::from_config`] for the endpoint named `endpoint`, the label of its
    /// metrics (JWKS refresh failures).
    pub async fn for_endpoint(config: &AuthConfig, endpoint: &str) -> Result<Self, SettingError> {
        let mode = config.mode.ok_or_else(|| {
            SettingError::invalid(
                "auth.mode",
                "is required: basic, bearer, oauth2, hmac, standard-webhooks, or none (none \
                 only behind another layer that authenticates callers)",
            )
        })?;
        let mut issuer = None;
        let verifier = match mode {
            AuthMode::None => {
                tracing::warn!(
                    "auth.mode = \"none\": webhooks are accepted without authentication; use it \
                     only behind a layer that authenticates callers"
                );
                Verifier::None
            }
            AuthMode::Basic => Verifier::Basic(Basic::from_config(&config.basic)?),
            AuthMode::Bearer => Verifier::Bearer(Bearer::from_config(&config.bearer)?),
            AuthMode::Hmac => Verifier::Hmac(Hmac::from_config(&config.hmac)?),
            AuthMode::StandardWebhooks => Verifier::StandardWebhooks(
                StandardWebhooks::from_config(&config.standard_webhooks)?,
            ),
            AuthMode::OAuth2 => {
                issuer = config.oauth2.token_issuer()?;
                let issued = issuer
                    .as_ref()
                    .map(TokenIssuer::verification_keys)
                    .unwrap_or_default();
                Verifier::OAuth2(Validator::new(&config.oauth2, issued, endpoint).await?)
            }
        };
        Ok(Self {
            mode,
            verifier,
            issuer,
        })
    }

    /// The mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// True when the credentials cover the body (HMAC, Standard Webhooks): nothing proves the
    /// sender until the body is read.
    pub fn needs_body(&self) -> bool {
        matches!(
            self.verifier,
            Verifier::Hmac(_) | Verifier::StandardWebhooks(_)
        )
    }

    /// The sender's idempotency key of a request, in the modes that have one: the
    /// `webhook-id` (or `svix-id`) in `standard-webhooks` mode (the same on every retry of a message, so an
    /// id already stored is a duplicate); `None` in the other modes, and when the header is
    /// absent, repeated or not text. Signed, so trust it only once [`Self::check_body`]
    /// passed.
    pub fn idempotency_key<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        match self.verifier {
            Verifier::StandardWebhooks(_) => standard_webhooks::message_id(headers),
            _ => None,
        }
    }

    /// The built-in token endpoint, when OAuth2 clients are configured.
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.issuer.as_ref()
    }

    /// Everything that can be checked before the body is read: all of it for Basic, Bearer
    /// and OAuth2; the signature's presence and the timestamp window for HMAC and Standard
    /// Webhooks.
    pub async fn check_headers(&self, headers: &HeaderMap) -> Result<(), AuthFailure> {
        let result = match &self.verifier {
            Verifier::None => Ok(()),
            Verifier::Basic(basic) => basic.check(headers),
            Verifier::Bearer(bearer) => bearer.check(headers),
            Verifier::OAuth2(validator) => validator.check(headers).await,
            Verifier::Hmac(hmac) => hmac.precheck(headers, crate::common::clock::now_secs()),
            Verifier::StandardWebhooks(signed) => {
                signed.precheck(headers, crate::common::clock::now_secs())
            }
        };
        result.map_err(|reason| self.failure(reason))
    }

    /// What needs the body: the HMAC, the Standard Webhooks signatures. A no-op for the
    /// other modes.
    pub fn check_body(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthFailure> {
        let now = crate::common::clock::now_secs();
        match &self.verifier {
            Verifier::Hmac(hmac) => hmac.verify(headers, body, now),
            Verifier::StandardWebhooks(signed) => signed.verify(headers, body, now),
            _ => Ok(()),
        }
        .map_err(|reason| self.failure(reason))
    }

    fn failure(&self, reason: Reason) -> AuthFailure {
        AuthFailure {
            mode: self.mode,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::secret::Secret;

    #[tokio::test]
    async fn the_mode_must_be_written_out() {
        let error = Authenticator::from_config(&AuthConfig::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("auth.mode"), "{error}");
        let none = AuthConfig {
            mode: Some(AuthMode::None),
            ..AuthConfig::default()
        };
        let open = Authenticator::from_config(&none).await.unwrap();
        assert!(open.check_headers(&HeaderMap::new()).await.is_ok());
    }

    #[test]
    fn modes_parse_from_their_config_names() {
        for (text, mode) in [
            ("basic", AuthMode::Basic),
            ("bearer", AuthMode::Bearer),
            ("oauth2", AuthMode::OAuth2),
            ("hmac", AuthMode::Hmac),
            ("standard-webhooks", AuthMode::StandardWebhooks),
            ("none", AuthMode::None),
        ] {
            let parsed: AuthMode = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(parsed, mode);
            assert_eq!(serde_json::to_value(mode).unwrap(), serde_json::json!(text));
        }
        assert!(
            serde_json::from_value::<AuthMode>(serde_json::json!("standard_webhooks")).is_err()
        );
    }

    #[tokio::test]
    async fn standard_webhooks_mode_checks_headers_then_body_and_names_the_message_id() {
        use standard_webhooks::{sign_v1, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
        // `[auth] mode = "standard-webhooks"` with `[auth.standard_webhooks] secrets = …`.
        let config: AuthConfig = serde_json::from_value(serde_json::json!({
            "mode": "standard-webhooks",
            "standard_webhooks": {"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
        }))
        .unwrap();
        assert_eq!(config.validate().ok(), Some(()));
        let auth = Authenticator::from_config(&config).await.unwrap();
        assert_eq!(auth.mode(), AuthMode::StandardWebhooks);
        assert!(auth.needs_body());
        let key = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .unwrap();
        let now = crate::common::clock::now_secs();
        let body = br#"{"event_id":"e-1"}"#;
        let mut headers = HeaderMap::new();
        headers.insert(ID_HEADER, HeaderValue::from_static("msg_1"));
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from(now));
        let signature = sign_v1(&key, "msg_1", now, body);
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).unwrap());
        assert!(auth.check_headers(&headers).await.is_ok());
        assert!(auth.check_body(&headers, body).is_ok());
        assert_eq!(auth.idempotency_key(&headers), Some("msg_1"));
        let failure = auth.check_body(&headers, b"{}").unwrap_err();
        assert_eq!(failure.reason, Reason::BadSignature);
        assert!(failure
            .challenge()
            .to_str()
            .unwrap()
            .starts_with("Standard-Webhooks "));
        let unsigned = auth.check_headers(&HeaderMap::new()).await.unwrap_err();
        assert_eq!(unsigned.reason, Reason::Missing);
        assert_eq!(
            Reason::NoVerifiableSignature.kind(),
            "no_verifiable_signature"
        );

        // Other modes have no idempotency key, even when the header is there.
        let none = Authenticator::from_config(&AuthConfig {
            mode: Some(AuthMode::None),
            ..AuthConfig::default()
        })
        .await
        .unwrap();
        assert_eq!(none.idempotency_key(&headers), None);

        // Neither a secret nor a public key: refused at start-up, naming the key.
        let empty = AuthConfig {
            mode: Some(AuthMode::StandardWebhooks),
            ..AuthConfig::default()
        };
        let error = Authenticator::from_config(&empty).await.unwrap_err();
        assert_eq!(error.key(), "auth.standard_webhooks.secrets");
        let mut zero = empty.clone();
        zero.standard_webhooks.tolerance_secs = 0;
        assert_eq!(
            zero.validate().unwrap_err().key(),
            "auth.standard_webhooks.tolerance_secs"
        );
    }

    #[tokio::test]
    async fn failures_carry_the_mode_challenge() {
        let auth = Authenticator::from_config(&AuthConfig {
            mode: Some(AuthMode::Bearer),
            bearer: BearerConfig {
                tokens: vec![Secret::new("0f5c3a1e-7d0b-4b8e-9a51-3c2f0d6e8a11")],
                tokens_file: None,
            },
            ..AuthConfig::default()
        })
        .await
        .unwrap();
        let missing = auth.check_headers(&HeaderMap::new()).await.unwrap_err();
        assert_eq!(missing.challenge(), r#"Bearer realm="riskos-connector""#);
        let mut wrong = HeaderMap::new();
        wrong.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer 00000000-0000-0000-0000-000000000000"),
        );
        let failure = auth.check_headers(&wrong).await.unwrap_err();
        assert_eq!(failure.reason, Reason::WrongCredentials);
        assert!(failure
            .challenge()
            .to_str()
            .unwrap()
            .contains("invalid_token"));
        assert!(auth.check_body(&wrong, b"{}").is_ok());
    }

    #[tokio::test]
    async fn a_debug_print_of_the_config_shows_no_secret() {
        let config = AuthConfig {
            mode: Some(AuthMode::Basic),
            basic: BasicConfig {
                credentials: vec![Secret::new("riskos:hunter2-very-secret")],
                credentials_file: None,
            },
            ..AuthConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
        let auth = Authenticator::from_config(&config).await.unwrap();
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
