//! The one error a settings check returns, whichever module checks: the key and why. `config`
//! carries it (`ConfigError::Setting`); the auth modes, the secret loaders and the TLS and
//! token-endpoint settings return it. A leaf module, so that whatever checks a setting can
//! name it without importing `config` (which imports them).

use std::path::PathBuf;

/// A setting that cannot be used; every message starts with the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    /// Nothing configured where something is needed.
    #[error("config key `{key}`: is required (inline or as `_file`)")]
    Missing { key: &'static str },
    /// A value that cannot be used.
    #[error("config key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// A file a key names cannot be read.
    #[error("config key `{key}`: cannot read {}: {source}", path.display())]
    File {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SettingError {
    /// `key` cannot take its value, for `reason`.
    pub fn invalid(key: &'static str, reason: impl Into<String>) -> Self {
        SettingError::Invalid {
            key,
            reason: reason.into(),
        }
    }

    /// The key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            SettingError::Missing { key }
            | SettingError::Invalid { key, .. }
            | SettingError::File { key, .. } => key,
        }
    }
}
