//! `auth.mode = "basic"`: `Authorization: Basic base64(user:password)` against a list of
//! pairs. Two pairs valid at once let the dashboard's credentials rotate without downtime.

use std::path::PathBuf;

use axum::http::HeaderMap;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{authorization, Reason};
use crate::common::secret::{load_list, matches_any, secret_list, Digest32, Secret};
use crate::common::setting::SettingError;

/// Shortest accepted password, in bytes: 16 random bytes (128 bits) are beyond guessing at any
/// rate a network allows, and no back-off or lock-out has to stand in for them (a lock-out keyed
/// on the address would lock out the vendor too, behind a shared ingress address).
pub(crate) const MIN_PASSWORD_BYTES: usize = 16;

/// `[auth.basic]`: the dashboard's "Basic Authentication" option.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicConfig {
    /// Accepted `user:password` pairs (the password may contain `:`), passwords at least 16
    /// bytes. List the old and the new
    /// pair while rotating, then remove the old one.
    #[serde(deserialize_with = "secret_list")]
    pub credentials: Vec<Secret>,
    /// A file with one `user:password` per line, read at start-up (e.g. a Kubernetes Secret
    /// mount); its pairs are added to `credentials`.
    pub credentials_file: Option<PathBuf>,
}

/// The configured pairs, kept only as digests.
#[derive(Debug)]
pub(crate) struct Basic {
    pairs: Vec<Digest32>,
}

impl Basic {
    /// Reads the pairs; at least one is required and each needs a user and a password of at
    /// least [`MIN_PASSWORD_BYTES`].
    pub(crate) fn from_config(config: &BasicConfig) -> Result<Self, SettingError> {
        let key = "auth.basic.credentials";
        let pairs = load_list(key, &config.credentials, config.credentials_file.as_deref())?;
        if pairs.is_empty() {
            return Err(SettingError::missing(key));
        }
        for pair in &pairs {
            match pair.expose().split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                    if password.len() < MIN_PASSWORD_BYTES {
                        return Err(SettingError::Invalid {
                            key: key.into(),
                            reason: format!(
                                "every password needs at least {MIN_PASSWORD_BYTES} bytes \
                                 (generate one, e.g. `openssl rand -hex 16`)"
                            ),
                        });
                    }
                }
                _ => {
                    return Err(SettingError::Invalid {
                        key: key.into(),
                        reason: "every entry must be `user:password` with both parts non-empty"
                            .into(),
                    })
                }
            }
        }
        Ok(Self {
            pairs: pairs
                .iter()
                .map(|p| Digest32::of(p.expose().as_bytes()))
                .collect(),
        })
    }

    /// Checks the `Authorization` header.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), Reason> {
        let encoded = authorization(headers, "Basic")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| Reason::Malformed)?;
        if !decoded.contains(&b':') {
            return Err(Reason::Malformed);
        }
        if matches_any(&decoded, &self.pairs) {
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

    fn basic(pairs: &[&str]) -> Basic {
        Basic::from_config(&BasicConfig {
            credentials: pairs.iter().map(|p| Secret::new(*p)).collect(),
            credentials_file: None,
        })
        .unwrap()
    }

    fn header(user_password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        );
        headers.insert("authorization", HeaderValue::from_str(&value).unwrap());
        headers
    }

    #[test]
    fn both_pairs_of_a_rotation_are_accepted() {
        let auth = basic(&[
            "riskos:old-pass-0123456789abcdef",
            "riskos:new:pass-0123456789abcdef",
        ]);
        assert_eq!(
            auth.check(&header("riskos:old-pass-0123456789abcdef")),
            Ok(())
        );
        assert_eq!(
            auth.check(&header("riskos:new:pass-0123456789abcdef")),
            Ok(())
        );
    }

    #[test]
    fn wrong_missing_and_malformed_are_told_apart() {
        let auth = basic(&["riskos:pass-0123456789abcdef"]);
        assert_eq!(
            auth.check(&header("riskos:wrong")),
            Err(Reason::WrongCredentials)
        );
        assert_eq!(
            auth.check(&header("other:pass-0123456789abcdef")),
            Err(Reason::WrongCredentials)
        );
        assert_eq!(auth.check(&HeaderMap::new()), Err(Reason::Missing));
        assert_eq!(auth.check(&header("no-colon")), Err(Reason::Malformed));
        let mut bearer = HeaderMap::new();
        bearer.insert("authorization", HeaderValue::from_static("Bearer x"));
        assert_eq!(auth.check(&bearer), Err(Reason::Missing));
    }

    #[test]
    fn two_authorization_headers_are_refused_even_if_one_is_right() {
        let auth = basic(&["riskos:pass-0123456789abcdef"]);
        let good = header("riskos:pass-0123456789abcdef");
        let wrong = header("riskos:wrong");
        for (first, second) in [(&good, &wrong), (&wrong, &good), (&good, &good)] {
            let mut headers = first.clone();
            headers.append("authorization", second["authorization"].clone());
            assert_eq!(auth.check(&headers), Err(Reason::DuplicateAuthorization));
        }
        // Whatever the second one's scheme.
        let mut headers = good.clone();
        headers.append("authorization", HeaderValue::from_static("Bearer x"));
        assert_eq!(auth.check(&headers), Err(Reason::DuplicateAuthorization));
        assert_eq!(
            Reason::DuplicateAuthorization.kind(),
            "duplicate_authorization"
        );
    }

    #[test]
    fn pairs_without_a_password_are_refused_at_start_up() {
        let error = Basic::from_config(&BasicConfig {
            credentials: vec![Secret::new("user-only")],
            credentials_file: None,
        })
        .unwrap_err();
        assert!(error.to_string().contains("auth.basic.credentials"));
        assert!(!error.to_string().contains("user-only"));
    }
}
