//! TEMPORARY STUB (replaced by the signer on branch issue-27-msk).
use serde::{Deserialize, Serialize};

/// `[kafka.sasl.aws_msk_iam]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsMskIamConfig {
    /// Region.
    pub region: Option<String>,
}

/// A token.
pub struct MskIamToken {
    pub token: String,
    pub lifetime_ms: i64,
    pub principal: String,
}

/// Signer.
pub struct MskIamSigner;

/// Error.
#[derive(Debug, thiserror::Error)]
#[error("msk iam stub")]
pub struct MskIamError;

impl MskIamSigner {
    pub async fn from_environment(_config: &AwsMskIamConfig) -> Result<Self, MskIamError> {
        Err(MskIamError)
    }
    pub fn with_static_credentials(_r: &str, _a: &str, _s: &str, _t: Option<&str>) -> Self {
        MskIamSigner
    }
    pub fn token(&self) -> Result<MskIamToken, MskIamError> {
        Err(MskIamError)
    }
}
