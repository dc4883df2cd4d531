//! `[kafka.sasl.oidc]`: SASL/OAUTHBEARER with tokens from an OpenID Connect token endpoint
//! (OAuth 2.0 client credentials): Confluent Cloud's OAuth, Strimzi with Keycloak.
//!
//! librdkafka fetches and refreshes the tokens itself (`sasl.oauthbearer.method=oidc`, built
//! with libcurl): it asks for a new one before the current one expires and re-authenticates
//! its connections (KIP-368) without dropping records. This file only turns the section into
//! librdkafka's properties.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::common::secret::{load_one, not_both, Secret};
use crate::common::setting::SettingError;

/// `[kafka.sasl.oidc]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The identity provider's token endpoint, e.g.
    /// `https://keycloak.example/realms/kafka/protocol/openid-connect/token`.
    pub token_endpoint_url: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret; redacted wherever config is shown.
    pub client_secret: Option<Secret>,
    /// A file holding `client_secret` instead (a Kubernetes Secret mount).
    pub client_secret_file: Option<PathBuf>,
    /// Scope to ask for (space-separated), if the provider wants one.
    pub scope: Option<String>,
    /// SASL extensions sent with the token. Confluent Cloud wants `logicalCluster`
    /// (`lkc-…`) and `identityPoolId` (`pool-…`).
    pub extensions: BTreeMap<String, String>,
    /// PEM file of the CA that signed the token endpoint's certificate. Default: the system's
    /// trust store.
    pub ca_file: Option<PathBuf>,
}

impl OidcConfig {
    /// Checks that need no I/O; keys are relative to `kafka.sasl.oidc`.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.token_endpoint_url.trim().is_empty() {
            return Err(SettingError::invalid(
                "token_endpoint_url",
                "is required with mechanism OAUTHBEARER",
            ));
        }
        if !(self.token_endpoint_url.starts_with("https://")
            || self.token_endpoint_url.starts_with("http://"))
        {
            return Err(SettingError::invalid(
                "token_endpoint_url",
                "must be an http:// or https:// URL",
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(SettingError::invalid(
                "client_id",
                "is required with mechanism OAUTHBEARER",
            ));
        }
        if self.client_secret.is_none() && self.client_secret_file.is_none() {
            return Err(SettingError::missing("client_secret"));
        }
        not_both(
            "client_secret",
            self.client_secret.is_some(),
            self.client_secret_file.is_some(),
        )?;
        let bad_extension = self
            .extensions
            .iter()
            .find(|(k, v)| k.is_empty() || k.contains([',', '=']) || v.contains(','));
        if let Some((key, _)) = bad_extension {
            return Err(SettingError::invalid(
                format!("extensions.{key}"),
                "names and values cannot hold `,` (and names no `=`)",
            ));
        }
        Ok(())
    }

    /// Adds librdkafka's OIDC properties.
    pub fn properties(&self, out: &mut BTreeMap<String, String>) -> Result<(), SettingError> {
        let secret = load_one(
            "client_secret",
            self.client_secret.as_ref(),
            self.client_secret_file.as_deref(),
        )?;
        out.insert("sasl.oauthbearer.method".into(), "oidc".into());
        out.insert(
            "sasl.oauthbearer.token.endpoint.url".into(),
            self.token_endpoint_url.clone(),
        );
        out.insert("sasl.oauthbearer.client.id".into(), self.client_id.clone());
        out.insert(
            "sasl.oauthbearer.client.secret".into(),
            secret.expose().to_string(),
        );
        if let Some(scope) = &self.scope {
            out.insert("sasl.oauthbearer.scope".into(), scope.clone());
        }
        if !self.extensions.is_empty() {
            let joined: Vec<String> = self
                .extensions
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.insert("sasl.oauthbearer.extensions".into(), joined.join(","));
        }
        if let Some(ca) = &self.ca_file {
            out.insert("https.ca.location".into(), ca.display().to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc() -> OidcConfig {
        OidcConfig {
            token_endpoint_url: "https://idp.example/token".into(),
            client_id: "riskos".into(),
            client_secret: Some(Secret::new("cs")),
            extensions: BTreeMap::from([
                ("identityPoolId".to_string(), "pool-1".to_string()),
                ("logicalCluster".to_string(), "lkc-1".to_string()),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn the_section_becomes_librdkafkas_oidc_properties() {
        let config = oidc();
        config.validate().unwrap();
        let mut out = BTreeMap::new();
        config.properties(&mut out).unwrap();
        assert_eq!(out["sasl.oauthbearer.method"], "oidc");
        assert_eq!(out["sasl.oauthbearer.client.secret"], "cs");
        assert_eq!(
            out["sasl.oauthbearer.extensions"],
            "identityPoolId=pool-1,logicalCluster=lkc-1"
        );
    }

    #[test]
    fn a_missing_secret_or_endpoint_is_named() {
        let mut config = oidc();
        config.client_secret = None;
        assert_eq!(config.validate().unwrap_err().key(), "client_secret");
        let mut config = oidc();
        config.token_endpoint_url = "idp.example/token".into();
        assert_eq!(config.validate().unwrap_err().key(), "token_endpoint_url");
    }
}
