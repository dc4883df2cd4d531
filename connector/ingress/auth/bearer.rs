//! `auth.mode = "bearer"`: `Authorization: Bearer <token>` against a list of static tokens
//! (the dashboard's "Bearer Token" option, a UUID). Two tokens valid at once during rotation.

use std::path::PathBuf;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::{authorization, Reason};
use crate::common::secret::{load_list, matches_any, secret_list, Digest32, Secret};
use crate::common::setting::SettingError;

/// Shortest accepted token; the dashboard's UUIDs have 36 characters.
pub(crate) const MIN_TOKEN_CHARS: usize = 16;

/// `[auth.bearer]`: static tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BearerConfig {
    /// Accepted tokens, at least 16 characters each. List the old and the new token while
    /// rotating, then remove the old one.
    #[serde(deserialize_with = "secret_list")]
    pub tokens: Vec<Secret>,
    /// A file with one token per line, read at start-up; added to `tokens`.
    pub tokens_file: Option<PathBuf>,
}

/// The configured tokens, kept only as digests.
#[derive(Debug)]
pub(crate) struct Bearer {
    tokens: Vec<Digest32>,
}

impl Bearer {
    /// Reads the tokens; at least one is required.
    pub(crate) fn from_config(config: &BearerConfig) -> Result<Self, SettingError> {
        let key = "auth.bearer.tokens";
        let tokens = load_list(key, &config.tokens, config.tokens_file.as_deref())?;
        if tokens.is_empty() {
            return Err(SettingError::missing(key));
        }
        if tokens
            .iter()
            .any(|t| t.expose().chars().count() < MIN_TOKEN_CHARS)
        {
            return Err(SettingError::Invalid {
                key: key.into(),
                reason: format!("every token needs at least {MIN_TOKEN_CHARS} characters"),
            });
        }
        Ok(Self {
            tokens: tokens
                .iter()
                .map(|t| Digest32::of(t.expose().as_bytes()))
                .collect(),
        })
    }

    /// Checks the `Authorization` header.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), Reason> {
        let token = authorization(headers, "Bearer")?;
        if matches_any(token.trim().as_bytes(), &self.tokens) {
            Ok(())
        } else {
            Err(Reason::WrongCredentials)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const OLD: &str = "0f5c3a1e-7d0b-4b8e-9a51-3c2f0d6e8a11";
    const NEW: &str = "7b1e9c44-2a6f-4d3b-8e0c-5f9a1b2c3d4e";

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn configured_tokens_pass_and_others_do_not() {
        let auth = Bearer::from_config(&BearerConfig {
            tokens: vec![Secret::new(OLD), Secret::new(NEW)],
            tokens_file: None,
        })
        .unwrap();
        assert_eq!(auth.check(&header(&format!("Bearer {OLD}"))), Ok(()));
        assert_eq!(auth.check(&header(&format!("bearer {NEW}"))), Ok(()));
        assert_eq!(
            auth.check(&header("Bearer 00000000-0000-0000-0000-000000000000")),
            Err(Reason::WrongCredentials)
        );
        assert_eq!(auth.check(&header(OLD)), Err(Reason::Missing));
    }

    #[test]
    fn two_authorization_headers_are_refused_even_if_one_is_right() {
        let auth = Bearer::from_config(&BearerConfig {
            tokens: vec![Secret::new(OLD)],
            tokens_file: None,
        })
        .unwrap();
        let mut headers = header(&format!("Bearer {OLD}"));
        headers.append(
            "authorization",
            HeaderValue::from_static("Bearer 00000000-0000-0000-0000-000000000000"),
        );
        assert_eq!(auth.check(&headers), Err(Reason::DuplicateAuthorization));
        let mut headers = header("Bearer 00000000-0000-0000-0000-000000000000");
        headers.append(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {OLD}")).unwrap(),
        );
        assert_eq!(auth.check(&headers), Err(Reason::DuplicateAuthorization));
    }

    #[test]
    fn short_tokens_are_refused_at_start_up_without_quoting_them() {
        let error = Bearer::from_config(&BearerConfig {
            tokens: vec![Secret::new("abc")],
            tokens_file: None,
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("auth.bearer.tokens"), "{error}");
        assert!(!error.contains("abc"), "{error}");
    }
}
