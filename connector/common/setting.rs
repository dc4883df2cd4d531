//! The one error a settings check returns, whichever module checks: the key and why. `config`
//! carries it (`ConfigError::Setting`); the auth modes, the secret loaders and the TLS and
//! token-endpoint settings return it. A leaf module, so that whatever checks a setting can
//! name it without importing `config` (which imports them).

use std::borrow::Cow;
use std::path::PathBuf;

/// A setting that cannot be used; every message starts with the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    /// Nothing configured where something is needed.
    #[error("config key `{key}`: is required (inline or as `_file`)")]
    Missing { key: Cow<'static, str> },
    /// A value that cannot be used.
    #[error("config key `{key}`: {reason}")]
    Invalid {
        key: Cow<'static, str>,
        reason: String,
    },
    /// A file a key names cannot be read.
    #[error("config key `{key}`: cannot read {}: {source}", path.display())]
    File {
        key: Cow<'static, str>,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SettingError {
    /// `key` cannot take its value, for `reason`.
    pub fn invalid(key: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        SettingError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// `key` is required and nothing is configured.
    pub fn missing(key: impl Into<Cow<'static, str>>) -> Self {
        SettingError::Missing { key: key.into() }
    }

    /// The key at fault.
    pub fn key(&self) -> &str {
        match self {
            SettingError::Missing { key }
            | SettingError::Invalid { key, .. }
            | SettingError::File { key, .. } => key,
        }
    }

    /// The same error for a key inside a section, e.g. `endpoints[sandbox]`: the modules that
    /// check a section name keys relative to it (`auth.basic.credentials`), the caller that
    /// knows where the section sits adds the rest.
    pub fn within(self, section: &str) -> Self {
        let nest = |key: Cow<'static, str>| Cow::Owned(format!("{section}.{key}"));
        match self {
            SettingError::Missing { key } => SettingError::Missing { key: nest(key) },
            SettingError::Invalid { key, reason } => SettingError::Invalid {
                key: nest(key),
                reason,
            },
            SettingError::File { key, path, source } => SettingError::File {
                key: nest(key),
                path,
                source,
            },
        }
    }
}
