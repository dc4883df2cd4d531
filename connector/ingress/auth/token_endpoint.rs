//! The built-in OAuth2 token endpoint (`POST /oauth2/token`, client-credentials grant, RFC 6749
//! §4.4), so a customer without an identity provider can still pick "OAuth2" in the dashboard:
//! the dashboard's token URL is this endpoint, its client id and secret are configured here.
//!
//! Issued tokens are short-lived JWTs signed with HS256 under `signing_secrets` (the first
//! signs, all verify, so the key rotates like any other secret; every replica needs the same
//! secrets). The connector both issues and checks them, so a shared key is enough; the
//! validator binds these keys to HS256 by their `kid`, and only to them.
//!
//! The request body is `application/x-www-form-urlencoded` (RFC 6749 §4.4.2) or the same
//! parameters as a JSON object (`application/json`: Alloy's OAuth2 client, which also sends
//! HTTP Basic client authentication with the same credentials in the body). The client
//! authenticates with Basic, with `client_id` + `client_secret` in the body, or with both when
//! they name the same client and secret; differing credentials are an `invalid_request`.
//! Parameters sent without a value count as omitted (RFC 6749 §3.1).

use std::path::PathBuf;

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::backoff::{FailureBackoff, FailureBackoffConfig};
use super::jwks::KeyEntry;
use super::single_header;
use crate::common::secret::{load_list, load_one, matches_any, secret_list, Digest32, Secret};
use crate::common::setting::SettingError;

/// Shortest accepted signing secret, in bytes (HS256 wants at least its output size).
pub const MIN_SIGNING_SECRET_BYTES: usize = 32;

/// Shortest accepted client secret, in bytes: 16 random bytes (128 bits) are beyond guessing,
/// which the failure back-off no longer has to prevent (it never refuses the right credentials,
/// so a stranger sharing the vendor's address cannot lock it out).
pub const MIN_CLIENT_SECRET_BYTES: usize = 16;

/// Longest accepted token lifetime.
pub const MAX_TTL_SECS: u64 = 3600;

/// `[auth.oauth2.token_endpoint]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenEndpointConfig {
    /// Path of the endpoint. Default `/oauth2/token`. Served only with `auth.mode = "oauth2"`
    /// and at least one client.
    pub path: String,
    /// Clients that may get tokens: `{ client_id = "...", client_secret = "..." }` or
    /// `client_secret_file`. Two entries with the same id and different secrets rotate it.
    pub clients: Vec<ClientConfig>,
    /// A file with one `client_id:client_secret` per line, read at start-up; added to
    /// `clients`.
    pub clients_file: Option<PathBuf>,
    /// Lifetime of issued tokens in seconds. Default 300, at most 3600.
    pub ttl_secs: u64,
    /// HS256 keys tokens are signed with, at least 32 bytes each; the first signs, all
    /// verify. Required with `clients`; the same on every replica.
    #[serde(deserialize_with = "secret_list")]
    pub signing_secrets: Vec<Secret>,
    /// A file with one signing secret per line, read at start-up; added to `signing_secrets`.
    pub signing_secrets_file: Option<PathBuf>,
    /// How an address that keeps failing client authentication is slowed down (429 with
    /// `Retry-After`, before its next attempt is checked).
    pub failure_backoff: FailureBackoffConfig,
}

impl Default for TokenEndpointConfig {
    fn default() -> Self {
        Self {
            path: "/oauth2/token".into(),
            clients: Vec::new(),
            clients_file: None,
            ttl_secs: 300,
            signing_secrets: Vec::new(),
            signing_secrets_file: None,
            failure_backoff: FailureBackoffConfig::default(),
        }
    }
}

/// One OAuth2 client.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// The client id entered in the dashboard.
    pub client_id: String,
    /// Its secret, at least 16 bytes.
    pub client_secret: Option<Secret>,
    /// Or a file holding the secret, read at start-up.
    pub client_secret_file: Option<PathBuf>,
}

impl TokenEndpointConfig {
    /// True when clients are configured, i.e. the endpoint is served.
    pub fn enabled(&self) -> bool {
        !self.clients.is_empty() || self.clients_file.is_some()
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), SettingError> {
        if !self.path.starts_with('/') {
            return Err(SettingError::invalid(
                "auth.oauth2.token_endpoint.path",
                "must start with `/`",
            ));
        }
        if self.ttl_secs == 0 || self.ttl_secs > MAX_TTL_SECS {
            return Err(SettingError::invalid(
                "auth.oauth2.token_endpoint.ttl_secs",
                format!("must be between 1 and {MAX_TTL_SECS}"),
            ));
        }
        if !self.enabled() {
            return Ok(());
        }
        self.failure_backoff.validate()?;
        for client in &self.clients {
            if client.client_id.trim().is_empty() || client.client_id.contains('\0') {
                return Err(SettingError::invalid(
                    "auth.oauth2.token_endpoint.clients",
                    "every client needs a client_id",
                ));
            }
            if client.client_secret.is_some() == client.client_secret_file.is_some() {
                return Err(SettingError::invalid(
                    "auth.oauth2.token_endpoint.clients",
                    format!(
                        "client `{}`: set client_secret or client_secret_file (one of them)",
                        client.client_id
                    ),
                ));
            }
        }
        if self.signing_secrets.is_empty() && self.signing_secrets_file.is_none() {
            return Err(SettingError::invalid(
                "auth.oauth2.token_endpoint.signing_secrets",
                "is required when clients are configured",
            ));
        }
        Ok(())
    }
}

/// Why a token request was refused; `Display` is the RFC 6749 §5.2 error code.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A parameter is missing, repeated or unreadable.
    #[error("invalid_request")]
    InvalidRequest(&'static str),
    /// Unknown client, wrong secret, or no client authentication.
    #[error("invalid_client")]
    InvalidClient,
    /// Only `client_credentials` is supported.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// Two `Authorization` headers: RFC 6749 §5.2 `invalid_request` (a parameter included more
    /// than once), logged apart.
    #[error("invalid_request")]
    DuplicateAuthorization,
}

impl TokenError {
    /// Class for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "token_invalid_request",
            TokenError::InvalidClient => "token_invalid_client",
            TokenError::UnsupportedGrantType => "token_unsupported_grant_type",
            TokenError::DuplicateAuthorization => "token_duplicate_authorization",
        }
    }
}

/// The form (or JSON) parameters of a token request. Unknown parameters are ignored, as
/// RFC 6749 §3.2 requires; [`TokenBody`] parses either.
#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// Client id, when the client authenticates in the body.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Client secret, when the client authenticates in the body.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Requested scope; the granted scope is `auth.oauth2.required_scope` (RFC 6749 §3.3).
    #[serde(default)]
    pub scope: Option<String>,
}

/// How a token request's body is encoded, from its `Content-Type` (checked before the body is
/// read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenBody {
    /// `application/x-www-form-urlencoded`, as RFC 6749 §4.4.2 writes it.
    Form,
    /// `application/json`: the same parameters as one JSON object (Alloy's client).
    Json,
}

impl TokenBody {
    /// The body's encoding from `Content-Type` (parameters such as `charset` ignored); any
    /// other type, or none, is an `invalid_request`.
    pub fn from_content_type(value: Option<&HeaderValue>) -> Result<Self, TokenError> {
        let essence = value
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        match essence.as_str() {
            "application/x-www-form-urlencoded" => Ok(TokenBody::Form),
            "application/json" => Ok(TokenBody::Json),
            _ => Err(TokenError::InvalidRequest(
                "content type must be application/x-www-form-urlencoded or application/json",
            )),
        }
    }

    /// The parameters in `body`; a body that does not parse (a repeated parameter included)
    /// is an `invalid_request`.
    pub fn parse(self, body: &[u8]) -> Result<TokenRequest, TokenError> {
        let parsed = match self {
            TokenBody::Form => serde_urlencoded::from_bytes(body).ok(),
            // An object only: serde would also read a JSON array as the fields in order.
            TokenBody::Json if body.trim_ascii_start().starts_with(b"{") => {
                serde_json::from_slice(body).ok()
            }
            TokenBody::Json => None,
        };
        parsed.ok_or(TokenError::InvalidRequest("the body cannot be parsed"))
    }
}

/// The RFC 6749 §5.1 success body.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Granted scope, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Issues tokens to configured clients.
pub struct TokenIssuer {
    path: String,
    clients: Vec<Digest32>,
    signing_kid: String,
    signing_key: EncodingKey,
    verification: Vec<KeyEntry>,
    issuer: String,
    audience: String,
    scope: Option<String>,
    ttl_secs: u64,
    backoff: FailureBackoff,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("path", &self.path)
            .field("clients", &self.clients.len())
            .field("signing_kid", &self.signing_kid)
            .finish()
    }
}

/// What every token the endpoint issues claims: the issuer, audience and scope the
/// endpoint's own JWT check requires.
#[derive(Debug, Clone)]
pub struct IssuedClaims {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// The granted scope (`auth.oauth2.required_scope`), if any.
    pub scope: Option<String>,
}

impl TokenIssuer {
    /// `None` without clients; otherwise reads the client and signing secrets. Its tokens
    /// carry the `claims` the endpoint's JWT check expects (`auth.oauth2`'s, see
    /// [`super::oauth2::OAuth2Config::token_issuer`]).
    pub fn from_config(
        config: &TokenEndpointConfig,
        claims: IssuedClaims,
    ) -> Result<Option<Self>, SettingError> {
        if !config.enabled() {
            return Ok(None);
        }
        let mut clients = Vec::with_capacity(config.clients.len());
        for client in &config.clients {
            let secret = load_one(
                "auth.oauth2.token_endpoint.clients",
                client.client_secret.as_ref(),
                client.client_secret_file.as_deref(),
            )?;
            client_secret_long_enough("auth.oauth2.token_endpoint.clients", secret.expose())?;
            clients.push(Digest32::of(&client_key(
                &client.client_id,
                secret.expose(),
            )));
        }
        let key = "auth.oauth2.token_endpoint.clients_file";
        for line in load_list(key, &[], config.clients_file.as_deref())? {
            match line.expose().split_once(':') {
                Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
                    client_secret_long_enough(key, secret)?;
                    clients.push(Digest32::of(&client_key(id, secret)));
                }
                _ => {
                    return Err(SettingError::Invalid {
                        key: key.into(),
                        reason: "every line must be `client_id:client_secret`".into(),
                    })
                }
            }
        }
        if clients.is_empty() {
            // `validate` required clients or a clients file; so the file holds none.
            return Err(SettingError::invalid(
                key,
                "holds no `client_id:client_secret` line",
            ));
        }
        let key = "auth.oauth2.token_endpoint.signing_secrets";
        let secrets = load_list(
            key,
            &config.signing_secrets,
            config.signing_secrets_file.as_deref(),
        )?;
        if secrets.is_empty() {
            // `validate` required inline secrets or a file; so the file holds none.
            return Err(SettingError::invalid(
                "auth.oauth2.token_endpoint.signing_secrets_file",
                "holds no secret",
            ));
        }
        if secrets
            .iter()
            .any(|s| s.expose().len() < MIN_SIGNING_SECRET_BYTES)
        {
            return Err(SettingError::Invalid {
                key: key.into(),
                reason: format!("every secret needs at least {MIN_SIGNING_SECRET_BYTES} bytes"),
            });
        }
        let verification = secrets
            .iter()
            .map(|s| KeyEntry {
                kid: Some(kid(s)),
                key: DecodingKey::from_secret(s.expose().as_bytes()),
                algorithms: vec![Algorithm::HS256],
            })
            .collect();
        Ok(Some(Self {
            path: config.path.clone(),
            clients,
            signing_kid: kid(&secrets[0]),
            signing_key: EncodingKey::from_secret(secrets[0].expose().as_bytes()),
            verification,
            issuer: claims.issuer,
            audience: claims.audience,
            scope: claims.scope,
            ttl_secs: config.ttl_secs,
            backoff: FailureBackoff::new(&config.failure_backoff),
        }))
    }

    /// The endpoint's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The per-address back-off of failed client authentications.
    pub fn backoff(&self) -> &FailureBackoff {
        &self.backoff
    }

    /// The keys issued tokens verify with, for the validator.
    pub fn verification_keys(&self) -> Vec<KeyEntry> {
        self.verification.clone()
    }

    /// Authenticates the client (Basic `authorization` header, body fields, or both when they
    /// agree) and issues a token valid from `now` (Unix seconds).
    pub fn issue(
        &self,
        request: &TokenRequest,
        authorization: Option<&HeaderValue>,
        now: u64,
    ) -> Result<TokenResponse, TokenError> {
        match request.grant_type.as_deref() {
            None => return Err(TokenError::InvalidRequest("grant_type is missing")),
            Some("client_credentials") => {}
            Some(_) => return Err(TokenError::UnsupportedGrantType),
        }
        let from_header = authorization.map(basic_credentials).transpose()?;
        // RFC 6749 §3.1: a parameter sent without a value is as if omitted.
        let client_id = request.client_id.as_deref().filter(|id| !id.is_empty());
        let client_secret = request
            .client_secret
            .as_ref()
            .map(Secret::expose)
            .filter(|secret| !secret.is_empty());
        let from_body = match (client_id, client_secret) {
            (Some(id), Some(secret)) => Some((id.to_string(), secret.to_string())),
            (None, None) => None,
            _ => return Err(TokenError::InvalidClient),
        };
        let candidates = match (from_header, from_body) {
            // Both (Alloy sends its Basic header and the body fields together): one client
            // authentication, written twice, so the two must agree; the body's pair is then
            // the one checked. (Both are the caller's own text: comparing them reveals nothing
            // of a configured secret.)
            (Some(header), Some(body)) => {
                if !header.contains(&body) {
                    return Err(TokenError::InvalidRequest(
                        "client credentials in the header and the body differ",
                    ));
                }
                vec![body]
            }
            (Some(c), None) => c,
            (None, Some(c)) => vec![c],
            (None, None) => return Err(TokenError::InvalidClient),
        };
        // Every candidate is checked so the time taken does not depend on which one matched.
        let mut client_id = None;
        for (id, secret) in &candidates {
            if matches_any(&client_key(id, secret), &self.clients) {
                client_id = Some(id.clone());
            }
        }
        let client_id = client_id.ok_or(TokenError::InvalidClient)?;
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": client_id,
            "client_id": client_id,
            "iat": now,
            "exp": now + self.ttl_secs,
        });
        if let Some(scope) = &self.scope {
            claims["scope"] = json!(scope);
        }
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .expect("HS256 signing with a configured key cannot fail");
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.ttl_secs,
            scope: self.scope.clone(),
        })
    }
}

/// The request's `Authorization` header, if any; two of them are an `invalid_request`.
pub fn client_authorization(headers: &HeaderMap) -> Result<Option<&HeaderValue>, TokenError> {
    single_header(headers, header::AUTHORIZATION).map_err(|_| TokenError::DuplicateAuthorization)
}

fn client_secret_long_enough(key: &'static str, secret: &str) -> Result<(), SettingError> {
    if secret.len() < MIN_CLIENT_SECRET_BYTES {
        return Err(SettingError::invalid(
            key,
            format!(
                "every client secret needs at least {MIN_CLIENT_SECRET_BYTES} bytes (generate \
                 one, e.g. `openssl rand -hex 16`)"
            ),
        ));
    }
    Ok(())
}

/// A stable, non-secret key id: a short digest of the secret, so rotation keeps ids apart.
fn kid(secret: &Secret) -> String {
    let digest = Sha256::digest(secret.expose().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("connector-{hex}")
}

fn client_key(id: &str, secret: &str) -> Vec<u8> {
    [id.as_bytes(), b"\0", secret.as_bytes()].concat()
}

/// `Basic base64(id:secret)`. RFC 6749 §2.3.1 form-encodes id and secret first; clients that
/// do not are common, so both the raw and the decoded pair are candidates.
fn basic_credentials(value: &HeaderValue) -> Result<Vec<(String, String)>, TokenError> {
    let text = value.to_str().map_err(|_| TokenError::InvalidClient)?;
    let (scheme, encoded) = text.split_once(' ').ok_or(TokenError::InvalidClient)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(TokenError::InvalidClient);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| TokenError::InvalidClient)?;
    let decoded = String::from_utf8(decoded).map_err(|_| TokenError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(TokenError::InvalidClient)?;
    let mut candidates = vec![(id.to_string(), secret.to_string())];
    let form_decoded = (form_decode(id), form_decode(secret));
    if let (Some(id), Some(secret)) = form_decoded {
        if candidates[0] != (id.clone(), secret.clone()) {
            candidates.push((id, secret));
        }
    }
    Ok(candidates)
}

fn form_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::auth::oauth2::OAuth2Config;
    use crate::ingress::auth::oauth2::Validator;

    const SIGNING: &str = "0123456789abcdef0123456789abcdef";

    fn config() -> OAuth2Config {
        OAuth2Config {
            issuer: "https://connector.example".into(),
            audience: "riskos-connector".into(),
            required_scope: Some("webhooks".into()),
            token_endpoint: TokenEndpointConfig {
                clients: vec![
                    ClientConfig {
                        client_id: "riskos".into(),
                        client_secret: Some(Secret::new("s3cret+/=0123456789")),
                        client_secret_file: None,
                    },
                    ClientConfig {
                        client_id: "riskos".into(),
                        client_secret: Some(Secret::new("next-secret-0123456789")),
                        client_secret_file: None,
                    },
                ],
                signing_secrets: vec![Secret::new(SIGNING)],
                ..TokenEndpointConfig::default()
            },
            ..OAuth2Config::default()
        }
    }

    fn grant() -> TokenRequest {
        TokenRequest {
            grant_type: Some("client_credentials".into()),
            ..TokenRequest::default()
        }
    }

    fn basic(user_pass: &str) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        ))
        .unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[tokio::test]
    async fn issued_tokens_pass_the_validator() {
        let issuer = config().token_issuer().unwrap().unwrap();
        let validator = Validator::with_keys(&config(), issuer.verification_keys(), None);
        let request = TokenRequest {
            client_id: Some("riskos".into()),
            client_secret: Some(Secret::new("next-secret-0123456789")),
            ..grant()
        };
        let token = issuer.issue(&request, None, now()).unwrap();
        assert_eq!(token.token_type, "Bearer");
        assert_eq!(token.expires_in, 300);
        assert_eq!(token.scope.as_deref(), Some("webhooks"));
        assert_eq!(validator.validate(&token.access_token).await, Ok(()));
        // An old token is refused once its lifetime (plus leeway) has passed.
        let old = issuer.issue(&request, None, now() - 400).unwrap();
        assert_eq!(
            validator.validate(&old.access_token).await,
            Err(crate::ingress::auth::Reason::JwtExpired)
        );
    }

    #[test]
    fn basic_client_authentication_raw_or_form_encoded() {
        let issuer = config().token_issuer().unwrap().unwrap();
        assert!(issuer
            .issue(&grant(), Some(&basic("riskos:s3cret+/=0123456789")), now())
            .is_ok());
        assert!(issuer
            .issue(
                &grant(),
                Some(&basic("riskos:s3cret%2B%2F%3D0123456789")),
                now()
            )
            .is_ok());
        assert!(matches!(
            issuer.issue(&grant(), Some(&basic("riskos:wrong")), now()),
            Err(TokenError::InvalidClient)
        ));
    }

    #[test]
    fn bad_requests_get_their_rfc_error_code() {
        let issuer = config().token_issuer().unwrap().unwrap();
        let code = |r: Result<TokenResponse, TokenError>| r.unwrap_err().to_string();
        assert_eq!(
            code(issuer.issue(&TokenRequest::default(), None, now())),
            "invalid_request"
        );
        let password = TokenRequest {
            grant_type: Some("password".into()),
            ..TokenRequest::default()
        };
        assert_eq!(
            code(issuer.issue(&password, None, now())),
            "unsupported_grant_type"
        );
        assert_eq!(code(issuer.issue(&grant(), None, now())), "invalid_client");
        let both = TokenRequest {
            client_id: Some("riskos".into()),
            client_secret: Some(Secret::new("next-secret-0123456789")),
            ..grant()
        };
        // Credentials in the header and the body that differ: whichever is right.
        for header in [
            "riskos:s3cret+/=0123456789",
            "riskos:wrong",
            "other:next-secret-0123456789",
        ] {
            assert_eq!(
                code(issuer.issue(&both, Some(&basic(header)), now())),
                "invalid_request",
                "{header}"
            );
        }
        let other_client = TokenRequest {
            client_id: Some("other".into()),
            client_secret: Some(Secret::new("next-secret-0123456789")),
            ..grant()
        };
        assert_eq!(
            code(issuer.issue(&other_client, None, now())),
            "invalid_client"
        );
    }

    #[test]
    fn the_same_credentials_in_the_header_and_the_body_authenticate_once() {
        let issuer = config().token_issuer().unwrap().unwrap();
        let both = |id: &str, secret: &str| TokenRequest {
            client_id: Some(id.into()),
            client_secret: Some(Secret::new(secret)),
            ..grant()
        };
        let token = issuer
            .issue(
                &both("riskos", "next-secret-0123456789"),
                Some(&basic("riskos:next-secret-0123456789")),
                now(),
            )
            .unwrap();
        assert_eq!(token.token_type, "Bearer");
        // The body's raw secret against the header's form-encoded one: the same secret.
        assert!(issuer
            .issue(
                &both("riskos", "s3cret+/=0123456789"),
                Some(&basic("riskos:s3cret%2B%2F%3D0123456789")),
                now()
            )
            .is_ok());
        // Agreeing but wrong is a wrong client, counted by the back-off like any other.
        assert!(matches!(
            issuer.issue(
                &both("riskos", "guess"),
                Some(&basic("riskos:guess")),
                now()
            ),
            Err(TokenError::InvalidClient)
        ));
    }

    #[test]
    fn parameters_without_a_value_count_as_omitted() {
        let issuer = config().token_issuer().unwrap().unwrap();
        let empty = TokenRequest {
            client_id: Some(String::new()),
            client_secret: Some(Secret::new("")),
            ..grant()
        };
        assert!(issuer
            .issue(&empty, Some(&basic("riskos:next-secret-0123456789")), now())
            .is_ok());
        assert!(matches!(
            issuer.issue(&empty, None, now()),
            Err(TokenError::InvalidClient)
        ));
        let id_only = TokenRequest {
            client_id: Some("riskos".into()),
            client_secret: Some(Secret::new("")),
            ..grant()
        };
        assert!(matches!(
            issuer.issue(&id_only, None, now()),
            Err(TokenError::InvalidClient)
        ));
    }

    #[test]
    fn alloys_json_request_with_basic_authentication_gets_a_token() {
        // As Alloy's OAuth2 client sends it: Basic header, JSON body with the same pair.
        let issuer = config().token_issuer().unwrap().unwrap();
        let content_type = HeaderValue::from_static("application/json; charset=utf-8");
        let format = TokenBody::from_content_type(Some(&content_type)).unwrap();
        assert_eq!(format, TokenBody::Json);
        let body = br#"{"grant_type":"client_credentials","client_id":"riskos","client_secret":"next-secret-0123456789","audience":"x"}"#;
        let request = format.parse(body).unwrap();
        let token = issuer
            .issue(
                &request,
                Some(&basic("riskos:next-secret-0123456789")),
                now(),
            )
            .unwrap();
        assert_eq!(token.expires_in, 300);
        // Without the Basic header (credentials in the body only), and Basic with a JSON body
        // that carries none.
        assert!(issuer.issue(&request, None, now()).is_ok());
        let bare = format
            .parse(br#"{"grant_type":"client_credentials"}"#)
            .unwrap();
        assert!(issuer
            .issue(&bare, Some(&basic("riskos:next-secret-0123456789")), now())
            .is_ok());
        // A body naming another secret than the header.
        let other = format
            .parse(br#"{"grant_type":"client_credentials","client_id":"riskos","client_secret":"s3cret+/=0123456789"}"#)
            .unwrap();
        assert_eq!(
            issuer
                .issue(&other, Some(&basic("riskos:next-secret-0123456789")), now())
                .unwrap_err()
                .to_string(),
            "invalid_request"
        );
    }

    #[test]
    fn the_body_format_follows_the_content_type() {
        let format = |value: Option<&'static str>| {
            TokenBody::from_content_type(value.map(HeaderValue::from_static).as_ref())
        };
        assert_eq!(format(Some("application/json")).unwrap(), TokenBody::Json);
        assert_eq!(
            format(Some("Application/JSON ;charset=UTF-8")).unwrap(),
            TokenBody::Json
        );
        assert_eq!(
            format(Some("application/x-www-form-urlencoded; charset=utf-8")).unwrap(),
            TokenBody::Form
        );
        for refused in [None, Some("text/plain"), Some("application/jsonx")] {
            assert_eq!(format(refused).unwrap_err().to_string(), "invalid_request");
        }
        let form = TokenBody::Form
            .parse(b"grant_type=client_credentials&client_id=riskos&client_secret=a%2Bb")
            .unwrap();
        assert_eq!(form.client_secret.unwrap().expose(), "a+b");
        for (format, body) in [
            (TokenBody::Json, &b"grant_type=client_credentials"[..]),
            (
                TokenBody::Json,
                br#"{"grant_type":"client_credentials","grant_type":"x"}"#,
            ),
            (TokenBody::Json, br#"["client_credentials"]"#),
            (TokenBody::Json, br#"{"grant_type":7}"#),
            (TokenBody::Form, b"grant_type=a&grant_type=b"),
        ] {
            assert!(
                matches!(format.parse(body), Err(TokenError::InvalidRequest(_))),
                "{format:?} {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn two_authorization_headers_are_an_invalid_request() {
        let mut headers = HeaderMap::new();
        assert!(matches!(client_authorization(&headers), Ok(None)));
        headers.append(
            header::AUTHORIZATION,
            basic("riskos:next-secret-0123456789"),
        );
        assert_eq!(
            client_authorization(&headers).unwrap(),
            Some(&basic("riskos:next-secret-0123456789"))
        );
        headers.append(header::AUTHORIZATION, basic("riskos:wrong"));
        let error = client_authorization(&headers).unwrap_err();
        assert!(matches!(error, TokenError::DuplicateAuthorization));
        assert_eq!(error.to_string(), "invalid_request");
        assert_eq!(error.kind(), "token_duplicate_authorization");
    }

    #[test]
    fn form_and_json_bodies_parse_and_the_secret_stays_redacted() {
        let form: TokenRequest = serde_urlencoded::from_bytes(
            b"grant_type=client_credentials&client_id=riskos&client_secret=a%2Bb&extra=1",
        )
        .unwrap();
        assert_eq!(form.client_secret.as_ref().unwrap().expose(), "a+b");
        assert!(!format!("{form:?}").contains("a+b"));
        let json: TokenRequest =
            serde_json::from_str(r#"{"grant_type":"client_credentials","client_secret":"x"}"#)
                .unwrap();
        assert_eq!(json.grant_type.as_deref(), Some("client_credentials"));
    }

    #[test]
    fn clients_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clients");
        std::fs::write(&file, "vendor:file-secret-0123456789\n").unwrap();
        let mut from_file = config();
        from_file.token_endpoint.clients.clear();
        from_file.token_endpoint.clients_file = Some(file);
        let issuer = from_file.token_issuer().unwrap().unwrap();
        assert!(issuer
            .issue(
                &grant(),
                Some(&basic("vendor:file-secret-0123456789")),
                now()
            )
            .is_ok());
    }

    #[test]
    fn short_signing_secrets_and_clients_without_secrets_are_refused() {
        let mut short = config();
        short.token_endpoint.signing_secrets = vec![Secret::new("short")];
        assert!(short.token_issuer().is_err());
        let mut no_secret = config();
        no_secret.token_endpoint.clients[0].client_secret = None;
        assert_eq!(
            no_secret.token_endpoint.validate().unwrap_err().key(),
            "auth.oauth2.token_endpoint.clients"
        );
    }
}
