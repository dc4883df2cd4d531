//! `[schema_registry]`: the registry's address, how the connector authenticates to it (Basic, a
//! static bearer token or OAuth client credentials; at most one) and the TLS it speaks (a CA
//! bundle, a client certificate). The schema component owns this section; `config` re-exports
//! it and calls [`SchemaRegistryConfig::validate`]. It imports no other module of the crate but
//! the leaves `secret` and `setting`, so `config` can re-export it without a cycle.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::common::secret::{optional_scalar, Secret};
use crate::common::setting::SettingError;

/// `[schema_registry]`: the Confluent-compatible registry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaRegistryConfig {
    /// Base URL, e.g. `http://schema-registry:8081`. Required with the `confluent` encoding.
    pub url: String,
    /// Basic-auth user name (Confluent Cloud API key), if the registry needs one. At most one
    /// of `username`, `bearer_token`(`_file`) and `[schema_registry.oauth]`.
    #[serde(deserialize_with = "optional_scalar")]
    pub username: Option<String>,
    /// Basic-auth password (Confluent Cloud API secret); redacted in logs and `config check`.
    /// Needs `username`.
    pub password: Option<Secret>,
    /// A file holding the password instead (a Kubernetes Secret mount), read at start-up.
    pub password_file: Option<PathBuf>,
    /// A static bearer token, sent as `Authorization: Bearer <token>` on every registry call;
    /// redacted in logs and `config check`.
    pub bearer_token: Option<Secret>,
    /// A file holding the bearer token instead, read once at start-up (a rotated token takes a
    /// restart; for tokens that expire use `[schema_registry.oauth]`).
    pub bearer_token_file: Option<PathBuf>,
    /// OAuth 2.0 client credentials (Confluent Cloud's OAuth for Schema Registry): the
    /// connector fetches a token and sends it as a bearer token.
    pub oauth: RegistryOAuthConfig,
    /// A PEM bundle of CA certificates trusted for the registry's certificate (and the OAuth
    /// token endpoint's), in addition to the system's trust store, read at start-up. The
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` environment variables, which replace the system's
    /// store, still apply.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (chain, leaf first) presented to the registry (mutual TLS),
    /// read at start-up. Set with `key_file`; needs an `https://` URL.
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Timeout of one registry call (and of one OAuth token request) in milliseconds.
    /// Default 5000.
    pub timeout_ms: Option<u64>,
    /// How each `schemas/` file must relate to the registry's latest version of its subject,
    /// checked at start-up and by `schemas check`: `BACKWARD` (default: consumers on the new
    /// schema read old records), `FORWARD`, `FULL` or `NONE`.
    pub compatibility: CompatibilityLevel,
    /// Seconds between two background checks of the registry once the connector runs.
    /// Default 30. The result is the `riskos_schema_registry_up` gauge, a log line when it
    /// changes and `/healthz`'s detail; never readiness (subjects and ids are resolved at
    /// start-up, so a running connector accepts webhooks without the registry).
    pub check_interval_secs: Option<u64>,
}

/// `[schema_registry.oauth]`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4). The
/// token is fetched on the first registry call, reused, and fetched again once 80% of its
/// `expires_in` has passed (60 s when the endpoint gives no `expires_in`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryOAuthConfig {
    /// The identity provider's token URL, e.g.
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`. Setting any key of this
    /// section turns OAuth on; this one, `client_id` and the secret are then required.
    pub token_endpoint_url: String,
    /// The client id, sent with the secret as HTTP Basic client authentication.
    #[serde(deserialize_with = "optional_scalar")]
    pub client_id: Option<String>,
    /// The client secret; redacted in logs and `config check`.
    pub client_secret: Option<Secret>,
    /// A file holding the client secret instead, read at start-up.
    pub client_secret_file: Option<PathBuf>,
    /// The `scope` parameter of the token request, when the provider needs one.
    pub scope: Option<String>,
    /// The registry's logical cluster id (`lsrc-…`), sent as the `target-sr-cluster` header
    /// (Confluent Cloud requires it with OAuth).
    pub logical_cluster: Option<String>,
    /// The identity pool id (`pool-…`), sent as the `Confluent-Identity-Pool-Id` header.
    pub identity_pool_id: Option<String>,
}

impl RegistryOAuthConfig {
    /// True when any key of the section is set: OAuth is then the registry's authentication.
    pub fn enabled(&self) -> bool {
        !self.token_endpoint_url.trim().is_empty()
            || self.client_id.is_some()
            || self.client_secret.is_some()
            || self.client_secret_file.is_some()
            || self.scope.is_some()
            || self.logical_cluster.is_some()
            || self.identity_pool_id.is_some()
    }
}

/// Schema evolution rule checked against the registry's latest version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CompatibilityLevel {
    /// The new schema can read data written with the latest registered one.
    #[default]
    Backward,
    /// The latest registered schema can read data written with the new one.
    Forward,
    /// Both.
    Full,
    /// No check.
    None,
}

impl SchemaRegistryConfig {
    /// Default of [`SchemaRegistryConfig::check_interval_secs`].
    pub const DEFAULT_CHECK_INTERVAL_SECS: u64 = 30;

    /// The interval of the background registry check.
    pub fn check_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.check_interval_secs
                .unwrap_or(Self::DEFAULT_CHECK_INTERVAL_SECS),
        )
    }

    /// The timeout of one registry call.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms.unwrap_or(5_000))
    }

    /// The checks that need no I/O (files are read when the client is built): one
    /// authentication at most, each with what it needs, and the TLS files in pairs.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.check_interval_secs == Some(0) {
            return Err(SettingError::invalid(
                "schema_registry.check_interval_secs",
                "must be at least 1",
            ));
        }
        if self.timeout_ms == Some(0) {
            return Err(SettingError::invalid(
                "schema_registry.timeout_ms",
                "must be at least 1",
            ));
        }
        self.validate_auth()?;
        self.validate_tls()
    }

    /// The authentications configured, by the key that turns each on.
    fn auth_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.username.is_some() {
            keys.push("schema_registry.username");
        }
        if self.bearer_token.is_some() {
            keys.push("schema_registry.bearer_token");
        } else if self.bearer_token_file.is_some() {
            keys.push("schema_registry.bearer_token_file");
        }
        if self.oauth.enabled() {
            keys.push("schema_registry.oauth");
        }
        keys
    }

    fn validate_auth(&self) -> Result<(), SettingError> {
        if let [first, second, ..] = self.auth_keys()[..] {
            return Err(SettingError::invalid(
                second,
                format!(
                    "{first} is set too: the registry takes one authentication (Basic, a bearer \
                     token or OAuth); remove one"
                ),
            ));
        }
        if self.username.is_none() && (self.password.is_some() || self.password_file.is_some()) {
            let key = if self.password.is_some() {
                "schema_registry.password"
            } else {
                "schema_registry.password_file"
            };
            return Err(SettingError::invalid(
                key,
                "needs schema_registry.username (Basic auth)",
            ));
        }
        for (key, inline, file) in [
            (
                "schema_registry.password",
                self.password.is_some(),
                self.password_file.is_some(),
            ),
            (
                "schema_registry.bearer_token",
                self.bearer_token.is_some(),
                self.bearer_token_file.is_some(),
            ),
            (
                "schema_registry.oauth.client_secret",
                self.oauth.client_secret.is_some(),
                self.oauth.client_secret_file.is_some(),
            ),
        ] {
            crate::common::secret::not_both(key, inline, file)?;
        }
        if self.oauth.enabled() {
            self.oauth.validate()?;
        }
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), SettingError> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err(SettingError::invalid(
                "schema_registry.key_file",
                "is required with schema_registry.cert_file (the client certificate's key)",
            )),
            (None, Some(_)) => Err(SettingError::invalid(
                "schema_registry.cert_file",
                "is required with schema_registry.key_file (the key's client certificate)",
            )),
            // A client certificate is only ever sent over TLS: with an http:// URL it would be
            // configured and silently unused.
            (Some(_), Some(_)) if self.url.trim_start().starts_with("http://") => {
                Err(SettingError::invalid(
                    "schema_registry.cert_file",
                    "needs an https:// schema_registry.url (a client certificate is sent only \
                     over TLS)",
                ))
            }
            _ => Ok(()),
        }
    }
}

impl RegistryOAuthConfig {
    fn validate(&self) -> Result<(), SettingError> {
        let url_key = "schema_registry.oauth.token_endpoint_url";
        if self.token_endpoint_url.trim().is_empty() {
            return Err(SettingError::invalid(
                url_key,
                "is required with [schema_registry.oauth]",
            ));
        }
        let parsed = reqwest::Url::parse(self.token_endpoint_url.trim())
            .map_err(|e| SettingError::invalid(url_key, format!("is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(SettingError::invalid(
                url_key,
                format!("must be an https:// URL, not {}://", parsed.scheme()),
            ));
        }
        if self
            .client_id
            .as_deref()
            .is_none_or(|id| id.trim().is_empty())
        {
            return Err(SettingError::invalid(
                "schema_registry.oauth.client_id",
                "is required with [schema_registry.oauth]",
            ));
        }
        if self.client_secret.is_none() && self.client_secret_file.is_none() {
            return Err(SettingError::missing("schema_registry.oauth.client_secret"));
        }
        // These are sent as header values; a value a header cannot carry would only fail
        // (or panic in the registry client) on the first call.
        for (key, value) in [
            (
                "schema_registry.oauth.logical_cluster",
                &self.logical_cluster,
            ),
            (
                "schema_registry.oauth.identity_pool_id",
                &self.identity_pool_id,
            ),
        ] {
            let Some(value) = value else { continue };
            if value.trim().is_empty() || reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(SettingError::invalid(
                    key,
                    "must be a non-empty value of printable ASCII (it is sent as a header)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> SchemaRegistryConfig {
        SchemaRegistryConfig {
            url: "https://registry.example".into(),
            ..Default::default()
        }
    }

    fn oauth() -> RegistryOAuthConfig {
        RegistryOAuthConfig {
            token_endpoint_url: "https://idp.example/token".into(),
            client_id: Some("connector".into()),
            client_secret: Some(Secret::new("s3cret-value")),
            ..Default::default()
        }
    }

    fn refused(config: &SchemaRegistryConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn each_authentication_alone_is_accepted() {
        let basic = SchemaRegistryConfig {
            username: Some("key".into()),
            password: Some(Secret::new("pw")),
            ..registry()
        };
        let bearer = SchemaRegistryConfig {
            bearer_token_file: Some("/s/token".into()),
            ..registry()
        };
        let oauth = SchemaRegistryConfig {
            oauth: oauth(),
            ..registry()
        };
        for config in [registry(), basic, bearer, oauth] {
            config.validate().unwrap();
        }
    }

    #[test]
    fn two_authentications_are_refused_naming_both_keys() {
        let cases = [
            (
                SchemaRegistryConfig {
                    username: Some("key".into()),
                    bearer_token: Some(Secret::new("tok-value")),
                    ..registry()
                },
                ["schema_registry.username", "schema_registry.bearer_token"],
            ),
            (
                SchemaRegistryConfig {
                    username: Some("key".into()),
                    oauth: oauth(),
                    ..registry()
                },
                ["schema_registry.username", "schema_registry.oauth"],
            ),
            (
                SchemaRegistryConfig {
                    bearer_token_file: Some("/s/token".into()),
                    oauth: RegistryOAuthConfig {
                        client_id: Some("c".into()),
                        ..Default::default()
                    },
                    ..registry()
                },
                ["schema_registry.bearer_token_file", "schema_registry.oauth"],
            ),
        ];
        for (config, keys) in cases {
            let message = refused(&config);
            for key in keys {
                assert!(message.contains(key), "{key}: {message}");
            }
            assert!(!message.contains("tok-value"), "{message}");
            assert!(!message.contains("s3cret-value"), "{message}");
        }
    }

    #[test]
    fn a_secret_inline_and_as_a_file_is_refused() {
        let config = SchemaRegistryConfig {
            bearer_token: Some(Secret::new("tok-value")),
            bearer_token_file: Some("/s/token".into()),
            ..registry()
        };
        let message = refused(&config);
        assert!(
            message.starts_with("config key `schema_registry.bearer_token`"),
            "{message}"
        );
        let config = SchemaRegistryConfig {
            oauth: RegistryOAuthConfig {
                client_secret_file: Some("/s/secret".into()),
                ..oauth()
            },
            ..registry()
        };
        assert!(refused(&config).contains("schema_registry.oauth.client_secret"));
    }

    #[test]
    fn a_password_without_a_user_is_refused() {
        let config = SchemaRegistryConfig {
            password_file: Some("/s/pw".into()),
            ..registry()
        };
        assert!(refused(&config).contains("schema_registry.password_file"));
    }

    #[test]
    fn oauth_needs_its_endpoint_client_and_secret() {
        for (oauth, key) in [
            (
                RegistryOAuthConfig {
                    token_endpoint_url: String::new(),
                    ..oauth()
                },
                "schema_registry.oauth.token_endpoint_url",
            ),
            (
                RegistryOAuthConfig {
                    token_endpoint_url: "ftp://idp/token".into(),
                    ..oauth()
                },
                "schema_registry.oauth.token_endpoint_url",
            ),
            (
                RegistryOAuthConfig {
                    client_id: None,
                    ..oauth()
                },
                "schema_registry.oauth.client_id",
            ),
            (
                RegistryOAuthConfig {
                    client_secret: None,
                    ..oauth()
                },
                "schema_registry.oauth.client_secret",
            ),
            (
                RegistryOAuthConfig {
                    logical_cluster: Some("lsrc-1\nx".into()),
                    ..oauth()
                },
                "schema_registry.oauth.logical_cluster",
            ),
        ] {
            let config = SchemaRegistryConfig {
                oauth,
                ..registry()
            };
            let message = refused(&config);
            assert!(
                message.starts_with(&format!("config key `{key}`")),
                "{message}"
            );
        }
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_tls() {
        let half = SchemaRegistryConfig {
            cert_file: Some("/tls/client.crt".into()),
            ..registry()
        };
        assert!(refused(&half).starts_with("config key `schema_registry.key_file`"));
        let other_half = SchemaRegistryConfig {
            key_file: Some("/tls/client.key".into()),
            ..registry()
        };
        assert!(refused(&other_half).starts_with("config key `schema_registry.cert_file`"));
        let plain = SchemaRegistryConfig {
            url: "http://registry:8081".into(),
            cert_file: Some("/tls/client.crt".into()),
            key_file: Some("/tls/client.key".into()),
            ..Default::default()
        };
        assert!(refused(&plain).contains("https://"));
        let both = SchemaRegistryConfig {
            cert_file: Some("/tls/client.crt".into()),
            key_file: Some("/tls/client.key".into()),
            ca_file: Some("/tls/ca.crt".into()),
            ..registry()
        };
        both.validate().unwrap();
    }

    #[test]
    fn secrets_never_show_in_debug_or_serialized_config() {
        let config = SchemaRegistryConfig {
            bearer_token: Some(Secret::new("bearer-secret-value")),
            oauth: RegistryOAuthConfig {
                client_secret: Some(Secret::new("oauth-secret-value")),
                ..oauth()
            },
            password: Some(Secret::new("basic-secret-value")),
            ..registry()
        };
        let shown = [
            format!("{config:?}"),
            serde_json::to_string(&config).unwrap(),
        ];
        for text in shown {
            for secret in [
                "bearer-secret-value",
                "oauth-secret-value",
                "basic-secret-value",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            assert!(text.contains("connector"), "the client id is shown: {text}");
        }
    }
}
