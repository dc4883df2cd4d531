//! `auth.mode = "oauth2"`: `Authorization: Bearer <JWT>` access tokens, validated locally.
//!
//! Keys come from a JWKS URL ([`super::jwks`]), from PEM files, and from the built-in token
//! endpoint ([`super::token_endpoint`]). A token is checked in this order: its header's `alg`
//! is on the allow-list (never `none`); it has a `kid` (a token without one is refused, not
//! matched against whichever key happens to accept its `alg`), and that `kid` names a known key
//! that may be used with that `alg` (so no HS/RS confusion); the signature; `exp` and `nbf` with `leeway_secs`; `iss`;
//! `aud`; and the required scope when one is configured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jwks::{Jwks, KeyEntry};
use super::token_endpoint::{IssuedClaims, TokenEndpointConfig, TokenIssuer};
use super::{authorization, Reason};
use crate::common::setting::SettingError;

/// `[auth.oauth2]`: the dashboard's "OAuth2" option.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth2Config {
    /// The identity provider's JWKS URL (`https://idp.example.com/.well-known/jwks.json`).
    /// Fetched at start-up (an unusable URL stops start-up), refreshed every
    /// `jwks_refresh_secs`, and refetched when a token names an unknown `kid`. Optional when
    /// `static_keys` or the built-in token endpoint provide the keys.
    pub jwks_url: Option<String>,
    /// Required `iss` claim; also the `iss` of tokens the built-in endpoint issues. Required.
    pub issuer: String,
    /// Required `aud` claim (the token's `aud` must contain it); also the `aud` of tokens the
    /// built-in endpoint issues. Required.
    pub audience: String,
    /// A scope the token must carry in `scope` (space-separated) or `scp` (a list). Default:
    /// none required. Tokens from the built-in endpoint carry it.
    pub required_scope: Option<String>,
    /// Signature algorithms accepted for JWKS and PEM keys. Default `["RS256", "PS256",
    /// "ES256", "EdDSA"]`. `HS*` is refused here: shared-secret tokens are only those of the
    /// built-in endpoint, bound to its own keys.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds. Default 30.
    pub leeway_secs: u64,
    /// How often the JWKS is refetched in the background, in seconds. Default 300.
    pub jwks_refresh_secs: u64,
    /// A token with an unknown `kid` refetches the JWKS at most this often, in seconds.
    /// Default 10.
    pub jwks_min_refetch_secs: u64,
    /// Accept an `http://` `jwks_url`. Default false: the keys that decide who may send
    /// webhooks must not be fetched over a connection anyone on the path can rewrite. Only for
    /// tests and local development against a provider double.
    pub allow_insecure_jwks_url: bool,
    /// Public keys as PEM files, for providers without a JWKS URL.
    pub static_keys: Vec<StaticKeyConfig>,
    /// The built-in client-credentials token endpoint.
    pub token_endpoint: TokenEndpointConfig,
}

impl Default for OAuth2Config {
    fn default() -> Self {
        Self {
            jwks_url: None,
            issuer: String::new(),
            audience: String::new(),
            required_scope: None,
            algorithms: vec![
                Algorithm::RS256,
                Algorithm::PS256,
                Algorithm::ES256,
                Algorithm::EdDSA,
            ],
            leeway_secs: 30,
            jwks_refresh_secs: 300,
            jwks_min_refetch_secs: 10,
            allow_insecure_jwks_url: false,
            static_keys: Vec::new(),
            token_endpoint: TokenEndpointConfig::default(),
        }
    }
}

/// `[[auth.oauth2.static_keys]]`: one public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKeyConfig {
    /// The `kid` tokens signed with this key carry.
    pub kid: String,
    /// Its algorithm (`RS256`, `PS256`, `ES256`, `ES384`, `EdDSA`, ...); must be in
    /// `algorithms`.
    pub alg: Algorithm,
    /// PEM file with the public key (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub file: PathBuf,
}

impl OAuth2Config {
    /// The token endpoint (`None` without clients), issuing tokens with the claims this
    /// section's JWT check requires.
    pub fn token_issuer(&self) -> Result<Option<TokenIssuer>, SettingError> {
        let claims = IssuedClaims {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            scope: self.required_scope.clone(),
        };
        TokenIssuer::from_config(&self.token_endpoint, claims)
    }

    /// Presence and range checks that need no I/O.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.issuer.trim().is_empty() {
            return Err(SettingError::invalid(
                "auth.oauth2.issuer",
                "is required with auth.mode = \"oauth2\"",
            ));
        }
        if self.audience.trim().is_empty() {
            return Err(SettingError::invalid(
                "auth.oauth2.audience",
                "is required with auth.mode = \"oauth2\"",
            ));
        }
        if self.algorithms.is_empty() || self.algorithms.iter().any(|a| is_hmac(*a)) {
            return Err(SettingError::invalid(
                "auth.oauth2.algorithms",
                "must list asymmetric algorithms only (RS*, PS*, ES*, EdDSA)",
            ));
        }
        for key in &self.static_keys {
            if !self.algorithms.contains(&key.alg) {
                return Err(SettingError::invalid(
                    "auth.oauth2.static_keys",
                    format!(
                        "key `{}`: {:?} is not in auth.oauth2.algorithms",
                        key.kid, key.alg
                    ),
                ));
            }
        }
        if self.jwks_refresh_secs == 0 {
            return Err(SettingError::invalid(
                "auth.oauth2.jwks_refresh_secs",
                "must be greater than 0",
            ));
        }
        if let Some(url) = &self.jwks_url {
            check_jwks_url(url, self.allow_insecure_jwks_url)?;
        }
        if self.jwks_url.is_none() && self.static_keys.is_empty() && !self.token_endpoint.enabled()
        {
            return Err(SettingError::invalid(
                "auth.oauth2.jwks_url",
                "no key source: set jwks_url, static_keys or token_endpoint clients",
            ));
        }
        self.token_endpoint.validate()
    }
}

/// `jwks_url` must be an https URL, or http with `allow_insecure_jwks_url`.
fn check_jwks_url(url: &str, allow_insecure: bool) -> Result<(), SettingError> {
    let key = "auth.oauth2.jwks_url";
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| SettingError::invalid(key, format!("is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure => Ok(()),
        "http" => Err(SettingError::invalid(
            key,
            "must be an https:// URL (auth.oauth2.allow_insecure_jwks_url = true permits \
             http:// for tests and local development only)",
        )),
        other => Err(SettingError::invalid(
            key,
            format!("must be an https:// URL, not {other}://"),
        )),
    }
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Validates access tokens.
pub(crate) struct Validator {
    issuer: String,
    audience: String,
    required_scope: Option<String>,
    leeway_secs: u64,
    /// Allow-list for JWKS and PEM keys; the built-in endpoint's keys carry their own.
    algorithms: Vec<Algorithm>,
    fixed: Vec<KeyEntry>,
    jwks: Option<Arc<Jwks>>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.fixed)
            .field("jwks", &self.jwks)
            .finish()
    }
}

impl Validator {
    /// Reads the PEM keys and fetches the JWKS. `issued` are the built-in endpoint's keys;
    /// `endpoint` names the endpoint in the JWKS metrics.
    pub(crate) async fn new(
        config: &OAuth2Config,
        issued: Vec<KeyEntry>,
        endpoint: &str,
    ) -> Result<Self, SettingError> {
        let mut fixed = issued;
        for key in &config.static_keys {
            fixed.push(static_key(key)?);
        }
        let jwks = match &config.jwks_url {
            Some(url) => {
                let jwks = Jwks::load(
                    url,
                    &config.algorithms,
                    Duration::from_secs(config.jwks_min_refetch_secs),
                    endpoint,
                    config.allow_insecure_jwks_url,
                )
                .await
                .map_err(|e| SettingError::invalid("auth.oauth2.jwks_url", e.to_string()))?;
                jwks.spawn_refresh(Duration::from_secs(config.jwks_refresh_secs));
                Some(jwks)
            }
            None => None,
        };
        Ok(Self::with_keys(config, fixed, jwks))
    }

    /// A validator over known keys (tests, and [`Validator::new`] after loading).
    pub(crate) fn with_keys(
        config: &OAuth2Config,
        fixed: Vec<KeyEntry>,
        jwks: Option<Arc<Jwks>>,
    ) -> Self {
        Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            required_scope: config.required_scope.clone(),
            leeway_secs: config.leeway_secs,
            algorithms: config.algorithms.clone(),
            fixed,
            jwks,
        }
    }

    /// Checks the `Authorization: Bearer` token.
    pub(crate) async fn check(&self, headers: &HeaderMap) -> Result<(), Reason> {
        let token = authorization(headers, "Bearer")?;
        self.validate(token.trim()).await
    }

    /// Validates one token.
    pub(crate) async fn validate(&self, token: &str) -> Result<(), Reason> {
        let alg = declared_algorithm(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| Reason::JwtMalformed)?;
        // Refused before any key lookup, so a token without a kid never refetches the JWKS.
        let kid = header.kid.as_deref().ok_or(Reason::JwtMissingKid)?;
        let key = match self.find(kid) {
            Some(key) => key,
            None => {
                let refetched = match &self.jwks {
                    Some(jwks) => jwks.refetch_for_unknown_kid().await,
                    None => false,
                };
                if !refetched {
                    return Err(Reason::JwtUnknownKey);
                }
                self.find(kid).ok_or(Reason::JwtUnknownKey)?
            }
        };
        // The key's own binding, and (belt and braces) the allow-list for non-issued keys.
        if !key.algorithms.contains(&alg) || !(is_hmac(alg) || self.algorithms.contains(&alg)) {
            return Err(Reason::JwtAlgorithm);
        }
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => Reason::JwtExpired,
                ErrorKind::ImmatureSignature => Reason::JwtNotYetValid,
                ErrorKind::InvalidIssuer => Reason::JwtWrongIssuer,
                ErrorKind::InvalidAudience => Reason::JwtWrongAudience,
                ErrorKind::InvalidSignature => Reason::JwtBadSignature,
                ErrorKind::InvalidAlgorithm => Reason::JwtAlgorithm,
                ErrorKind::MissingRequiredClaim(_) => Reason::JwtMissingClaim,
                _ => Reason::JwtMalformed,
            })?
            .claims;
        if let Some(required) = &self.required_scope {
            if !has_scope(&claims, required) {
                return Err(Reason::JwtScope);
            }
        }
        Ok(())
    }

    /// The key named `kid`. (Keys without a `kid` can sign no acceptable token.)
    fn find(&self, kid: &str) -> Option<KeyEntry> {
        let fetched = self.jwks.as_ref().map(|j| j.keys()).unwrap_or_default();
        self.fixed
            .iter()
            .chain(fetched.iter())
            .find(|k| k.kid.as_deref() == Some(kid))
            .cloned()
    }
}

/// The header's `alg`, read before anything else so that `none` and unknown algorithms are
/// refused by name.
fn declared_algorithm(token: &str) -> Result<Algorithm, Reason> {
    let encoded = token.split('.').next().ok_or(Reason::JwtMalformed)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| Reason::JwtMalformed)?;
    let header: Value = serde_json::from_slice(&json).map_err(|_| Reason::JwtMalformed)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(Reason::JwtMalformed)?;
    alg.parse().map_err(|_| Reason::JwtAlgorithm)
}

fn has_scope(claims: &Value, required: &str) -> bool {
    let in_scope = claims
        .get("scope")
        .and_then(Value::as_str)
        .is_some_and(|s| s.split_whitespace().any(|s| s == required));
    let in_scp = match claims.get("scp") {
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(required)),
        Some(Value::String(s)) => s.split_whitespace().any(|s| s == required),
        _ => false,
    };
    in_scope || in_scp
}

fn static_key(config: &StaticKeyConfig) -> Result<KeyEntry, SettingError> {
    let key = "auth.oauth2.static_keys";
    let pem = std::fs::read(&config.file).map_err(|source| SettingError::File {
        key: key.into(),
        path: config.file.clone(),
        source,
    })?;
    let decoded = match config.alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => DecodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
        _ => {
            return Err(SettingError::Invalid {
                key: key.into(),
                reason: format!(
                    "key `{}`: {:?} is not an asymmetric algorithm",
                    config.kid, config.alg
                ),
            })
        }
    }
    .map_err(|e| SettingError::Invalid {
        key: key.into(),
        reason: format!("key `{}` in {}: {e}", config.kid, config.file.display()),
    })?;
    Ok(KeyEntry {
        kid: Some(config.kid.clone()),
        key: decoded,
        algorithms: vec![config.alg],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const ISS: &str = "https://issuer.example";
    const AUD: &str = "riskos-connector";

    struct Keys {
        encoding: EncodingKey,
        entry: KeyEntry,
    }

    fn ec_key(kid: &str) -> Keys {
        let pair = rcgen::KeyPair::generate().unwrap();
        Keys {
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            entry: KeyEntry {
                kid: Some(kid.into()),
                key: DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes()).unwrap(),
                algorithms: vec![Algorithm::ES256],
            },
        }
    }

    fn hs_key(kid: &str, secret: &[u8]) -> Keys {
        Keys {
            encoding: EncodingKey::from_secret(secret),
            entry: KeyEntry {
                kid: Some(kid.into()),
                key: DecodingKey::from_secret(secret),
                algorithms: vec![Algorithm::HS256],
            },
        }
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "sub": "riskos", "exp": now() + 300, "iat": now()})
    }

    fn sign(keys: &Keys, alg: Algorithm, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = keys.entry.kid.clone();
        encode(&header, claims, &keys.encoding).unwrap()
    }

    fn validator(keys: Vec<KeyEntry>, scope: Option<&str>) -> Validator {
        let config = OAuth2Config {
            issuer: ISS.into(),
            audience: AUD.into(),
            required_scope: scope.map(String::from),
            ..OAuth2Config::default()
        };
        Validator::with_keys(&config, keys, None)
    }

    fn with(claims: Value, patch: Value) -> Value {
        let mut claims = claims;
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    }

    #[tokio::test]
    async fn a_good_token_passes_and_each_bad_claim_has_its_reason() {
        let ec = ec_key("ec-1");
        let v = validator(vec![ec.entry.clone()], None);
        let token = |c: Value| sign(&ec, Algorithm::ES256, &c);
        assert_eq!(v.validate(&token(claims())).await, Ok(()));
        let cases = [
            (json!({"exp": now() - 120}), Reason::JwtExpired),
            (json!({"nbf": now() + 120}), Reason::JwtNotYetValid),
            (
                json!({"iss": "https://evil.example"}),
                Reason::JwtWrongIssuer,
            ),
            (json!({"aud": "someone-else"}), Reason::JwtWrongAudience),
        ];
        for (patch, reason) in cases {
            assert_eq!(v.validate(&token(with(claims(), patch))).await, Err(reason));
        }
        // Within the leeway is fine.
        let recent = with(claims(), json!({"exp": now() - 5}));
        assert_eq!(v.validate(&token(recent)).await, Ok(()));
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            v.validate(&token(no_exp)).await,
            Err(Reason::JwtMissingClaim)
        );
    }

    #[tokio::test]
    async fn alg_none_unknown_kid_foreign_signature_and_garbage_fail() {
        let ec = ec_key("ec-1");
        let v = validator(vec![ec.entry.clone()], None);
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT", "kid": "ec-1"})),
            b64(claims())
        );
        assert_eq!(v.validate(&none).await, Err(Reason::JwtAlgorithm));
        let other = ec_key("ec-2");
        assert_eq!(
            v.validate(&sign(&other, Algorithm::ES256, &claims())).await,
            Err(Reason::JwtUnknownKey)
        );
        // Same kid, another key: the signature does not verify.
        let impostor = Keys {
            entry: KeyEntry {
                kid: Some("ec-1".into()),
                ..other.entry.clone()
            },
            encoding: other.encoding,
        };
        assert_eq!(
            v.validate(&sign(&impostor, Algorithm::ES256, &claims()))
                .await,
            Err(Reason::JwtBadSignature)
        );
        assert_eq!(v.validate("not-a-jwt").await, Err(Reason::JwtMalformed));
    }

    #[tokio::test]
    async fn an_algorithm_the_key_does_not_allow_is_refused() {
        // HS/RS confusion: a token HMAC-signed with the text of a public key, naming that
        // key's kid, must not verify.
        let ec = ec_key("ec-1");
        let v = validator(vec![ec.entry.clone()], None);
        let confused = hs_key("ec-1", b"-----BEGIN PUBLIC KEY-----...");
        assert_eq!(
            v.validate(&sign(&confused, Algorithm::HS256, &claims()))
                .await,
            Err(Reason::JwtAlgorithm)
        );
        // And an issued (HS256) key cannot be used with another algorithm's token.
        let issued = hs_key("connector-1", &[7u8; 32]);
        let v = validator(vec![issued.entry.clone()], None);
        assert_eq!(
            v.validate(&sign(&issued, Algorithm::HS256, &claims()))
                .await,
            Ok(())
        );
        assert_eq!(
            v.validate(&sign(&issued, Algorithm::HS512, &claims()))
                .await,
            Err(Reason::JwtAlgorithm)
        );
    }

    #[tokio::test]
    async fn the_required_scope_is_read_from_scope_or_scp() {
        let ec = ec_key("ec-1");
        let v = validator(vec![ec.entry.clone()], Some("webhooks:write"));
        let token = |c: Value| sign(&ec, Algorithm::ES256, &c);
        let scoped = with(claims(), json!({"scope": "read webhooks:write"}));
        assert_eq!(v.validate(&token(scoped)).await, Ok(()));
        let scp = with(claims(), json!({"scp": ["webhooks:write"]}));
        assert_eq!(v.validate(&token(scp)).await, Ok(()));
        let other = with(claims(), json!({"scope": "webhooks:read"}));
        assert_eq!(v.validate(&token(other)).await, Err(Reason::JwtScope));
    }

    #[tokio::test]
    async fn a_token_without_a_kid_is_refused_even_when_one_key_would_verify_it() {
        let ec = ec_key("ec-1");
        let v = validator(vec![ec.entry.clone()], None);
        let token = encode(&Header::new(Algorithm::ES256), &claims(), &ec.encoding).unwrap();
        assert_eq!(v.validate(&token).await, Err(Reason::JwtMissingKid));
        let v = validator(vec![ec.entry.clone(), ec_key("ec-2").entry], None);
        assert_eq!(v.validate(&token).await, Err(Reason::JwtMissingKid));
        // The same token with its key's kid passes: only the kid was missing.
        let named = sign(&ec, Algorithm::ES256, &claims());
        assert_eq!(v.validate(&named).await, Ok(()));
        // A key published without a kid signs nothing acceptable.
        let anonymous = KeyEntry {
            kid: None,
            ..ec.entry.clone()
        };
        let v = validator(vec![anonymous], None);
        assert_eq!(v.validate(&token).await, Err(Reason::JwtMissingKid));
        assert_eq!(v.validate(&named).await, Err(Reason::JwtUnknownKey));
        assert_eq!(Reason::JwtMissingKid.kind(), "jwt_missing_kid");
    }

    #[tokio::test]
    async fn two_authorization_headers_are_refused_even_with_a_valid_token() {
        let ec = ec_key("ec-1");
        let v = validator(vec![ec.entry.clone()], None);
        let good = format!("Bearer {}", sign(&ec, Algorithm::ES256, &claims()));
        let mut headers = HeaderMap::new();
        headers.append("authorization", good.parse().unwrap());
        assert_eq!(v.check(&headers).await, Ok(()));
        headers.append("authorization", "Bearer x.y.z".parse().unwrap());
        assert_eq!(v.check(&headers).await, Err(Reason::DuplicateAuthorization));
    }

    #[test]
    fn a_jwks_url_must_be_https_unless_the_test_switch_allows_http() {
        let config = |url: &str, allow_insecure_jwks_url: bool| OAuth2Config {
            issuer: ISS.into(),
            audience: AUD.into(),
            jwks_url: Some(url.into()),
            allow_insecure_jwks_url,
            ..OAuth2Config::default()
        };
        assert!(config("https://idp/jwks", false).validate().is_ok());
        assert!(config("http://127.0.0.1:1/jwks", true).validate().is_ok());
        for (url, allow) in [
            ("http://idp/jwks", false),
            ("ftp://idp/jwks", true),
            ("idp/jwks", true),
        ] {
            let error = config(url, allow).validate().unwrap_err();
            assert_eq!(error.key(), "auth.oauth2.jwks_url", "{url}");
        }
    }

    #[test]
    fn hmac_algorithms_and_missing_keys_are_refused_in_config() {
        let config = OAuth2Config {
            issuer: ISS.into(),
            audience: AUD.into(),
            jwks_url: Some("https://idp/jwks".into()),
            algorithms: vec![Algorithm::RS256, Algorithm::HS256],
            ..OAuth2Config::default()
        };
        assert_eq!(
            config.validate().unwrap_err().key(),
            "auth.oauth2.algorithms"
        );
        let config = OAuth2Config {
            issuer: ISS.into(),
            audience: AUD.into(),
            ..OAuth2Config::default()
        };
        assert_eq!(config.validate().unwrap_err().key(), "auth.oauth2.jwks_url");
    }
}
