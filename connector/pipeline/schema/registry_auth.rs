//! How registry calls authenticate and connect: the `SrSettings` each call is made with.
//!
//! `schema_registry_converter` fixes the `Authorization` of an `SrSettings` when it is built.
//! Basic auth and a static bearer token never change, so their settings are built once. With
//! OAuth the settings are rebuilt, with the new token, whenever the token source hands out a
//! new token (every ~80% of its lifetime): a new HTTP client each time, which costs a
//! connection set-up per refresh and nothing per call.

use std::path::Path;
use std::sync::Mutex;

use schema_registry_converter::async_impl::schema_registry::{SrSettings, SrSettingsBuilder};

use super::error_chain::describe;
use super::registry_config::SchemaRegistryConfig;
use super::registry_oauth::{OAuthTokens, TokenError};
use super::registry_tls::RegistryTls;
use crate::common::secret::{load_one, Secret};
use crate::common::setting::SettingError;

/// The header Confluent Cloud reads the registry's logical cluster from.
pub(crate) const LOGICAL_CLUSTER_HEADER: &str = "target-sr-cluster";
/// The header Confluent Cloud reads the identity pool from.
pub(crate) const IDENTITY_POOL_HEADER: &str = "Confluent-Identity-Pool-Id";

/// Why the registry's settings cannot be had. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A setting cannot be used: a file that cannot be read, or does not hold what its key
    /// promises.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The HTTP client could not be built (the TLS material was refused).
    #[error("schema registry client: {0}")]
    Client(String),
    /// No OAuth token.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// The settings of the registry's calls, and how they are renewed.
pub(crate) struct RegistryAccess {
    base: Base,
    auth: Auth,
}

/// What every build of the settings shares: the URL, the timeout and the TLS material.
struct Base {
    url: String,
    timeout: std::time::Duration,
    tls: RegistryTls,
}

enum Auth {
    /// None, Basic or a static bearer token: built once.
    Fixed(SrSettings),
    /// OAuth.
    OAuth(Box<OAuthAccess>),
}

/// The token source, the headers that go with it, and the settings built with the last token
/// (by its generation).
struct OAuthAccess {
    tokens: OAuthTokens,
    headers: Vec<(&'static str, String)>,
    built: Mutex<Option<(u64, SrSettings)>>,
}

impl RegistryAccess {
    /// Checks the section, reads its secret and TLS files and builds the client: every
    /// problem a file or a setting can cause shows here, at start-up, naming the key.
    pub(crate) fn new(config: &SchemaRegistryConfig) -> Result<Self, AccessError> {
        config.validate()?;
        let base = Base {
            url: config.url.clone(),
            timeout: config.timeout(),
            tls: RegistryTls::load(config)?,
        };
        let auth = if let Some(user) = &config.username {
            let password = match (&config.password, &config.password_file) {
                (None, None) => None,
                (inline, file) => Some(secret(
                    "schema_registry.password",
                    inline.as_ref(),
                    file.as_deref(),
                )?),
            };
            Auth::Fixed(base.build(|b| {
                b.set_basic_authorization(user, password.as_ref().map(Secret::expose));
            })?)
        } else if config.bearer_token.is_some() || config.bearer_token_file.is_some() {
            let token = secret(
                "schema_registry.bearer_token",
                config.bearer_token.as_ref(),
                config.bearer_token_file.as_deref(),
            )?;
            if reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .is_err()
            {
                return Err(SettingError::invalid(
                    "schema_registry.bearer_token",
                    "cannot be sent in a header (control or non-ASCII characters)",
                )
                .into());
            }
            Auth::Fixed(base.build(|b| {
                b.set_token_authorization(token.expose());
            })?)
        } else if config.oauth.enabled() {
            base.oauth(config)?
        } else {
            Auth::Fixed(base.build(|_| {})?)
        };
        Ok(Self { base, auth })
    }

    /// The settings of the next call (with OAuth, built with a token fetched if due) and the
    /// OAuth token's generation (0 without OAuth), for [`RegistryAccess::refused`].
    pub(crate) async fn settings(&self) -> Result<(SrSettings, u64), AccessError> {
        let OAuthAccess {
            tokens,
            headers,
            built,
        } = match &self.auth {
            Auth::Fixed(settings) => return Ok((settings.clone(), 0)),
            Auth::OAuth(oauth) => oauth.as_ref(),
        };
        let token = tokens.token().await?;
        if let Some((generation, settings)) = lock(built).as_ref() {
            if *generation == token.generation {
                return Ok((settings.clone(), token.generation));
            }
        }
        let settings = self.base.build(|b| {
            b.set_token_authorization(token.value.expose());
            for (name, value) in headers {
                b.add_header(name, value);
            }
        })?;
        *lock(built) = Some((token.generation, settings.clone()));
        Ok((settings, token.generation))
    }

    /// The registry refused the OAuth token of `generation` (401): the next call fetches a new
    /// one rather than waiting for the refresh point (a provider that rotated its keys).
    pub(crate) async fn refused(&self, generation: u64) {
        if let Auth::OAuth(oauth) = &self.auth {
            oauth.tokens.forget(generation).await;
        }
    }
}

impl Base {
    fn oauth(&self, config: &SchemaRegistryConfig) -> Result<Auth, AccessError> {
        let oauth = &config.oauth;
        let client_secret = secret(
            "schema_registry.oauth.client_secret",
            oauth.client_secret.as_ref(),
            oauth.client_secret_file.as_deref(),
        )?;
        let tokens = OAuthTokens::new(
            &oauth.token_endpoint_url,
            self.tls.token_client().timeout(self.timeout),
            oauth.client_id.as_deref().unwrap_or_default(),
            client_secret,
            oauth.scope.as_deref(),
        )
        .map_err(|e| AccessError::Client(describe(&e)))?;
        if tokens.url().starts_with("http://") {
            tracing::warn!(
                url = tokens.url(),
                "schema_registry.oauth.token_endpoint_url is plain http: the client secret \
                 crosses the network unencrypted"
            );
        }
        let headers = [
            (LOGICAL_CLUSTER_HEADER, &oauth.logical_cluster),
            (IDENTITY_POOL_HEADER, &oauth.identity_pool_id),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_ref()?.trim().to_string())))
        .collect();
        // Built once now, without a token, so a client the TLS files break fails start-up
        // here rather than at the first call.
        self.build(|_| {})?;
        Ok(Auth::OAuth(Box::new(OAuthAccess {
            tokens,
            headers,
            built: Mutex::new(None),
        })))
    }

    /// Settings for the URL, timeout and TLS, with `auth` applied.
    fn build(&self, auth: impl FnOnce(&mut SrSettingsBuilder)) -> Result<SrSettings, AccessError> {
        let mut builder = SrSettings::new_builder(self.url.clone());
        builder.set_timeout(self.timeout);
        auth(&mut builder);
        builder
            .build_with(self.tls.registry_client())
            .map_err(|e| AccessError::Client(describe(&e)))
    }
}

/// [`load_one`], with a file that cannot be read reported under the `_file` key that names
/// it.
fn secret(
    key: &'static str,
    inline: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Secret, SettingError> {
    load_one(key, inline, file).map_err(|error| match error {
        SettingError::File { key, path, source } => SettingError::File {
            key: format!("{key}_file").into(),
            path,
            source,
        },
        other => other,
    })
}

/// The built settings; a poisoned lock only means a panic elsewhere, the value is still whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
