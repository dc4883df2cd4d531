//! `[kafka.sasl]`: which SASL mechanism the connector authenticates with, and the user name
//! and password of the password mechanisms (PLAIN, SCRAM). The token mechanisms have files of
//! their own: [`super::oidc`] (OAUTHBEARER with an OIDC token endpoint, fetched by librdkafka)
//! and [`super::msk_iam`] (AWS MSK IAM, signed here).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::msk_iam::AwsMskIamConfig;
use super::oidc::OidcConfig;
use crate::common::secret::{load_one, not_both, optional_scalar, Secret};
use crate::common::setting::SettingError;

/// A SASL mechanism, as the broker names it (and `AWS_MSK_IAM`, which is OAUTHBEARER with
/// tokens signed by the pod's AWS credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// User name and password in clear (over TLS): Confluent Cloud API keys, Azure Event
    /// Hubs (user `$ConnectionString`).
    #[serde(rename = "PLAIN")]
    Plain,
    /// Salted challenge-response with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response with SHA-512: MSK's, Aiven's and Redpanda's usual form.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// OAuth bearer tokens from an OIDC token endpoint (client credentials):
    /// `[kafka.sasl.oidc]`.
    #[serde(rename = "OAUTHBEARER")]
    OAuthBearer,
    /// Amazon MSK's IAM access control: `[kafka.sasl.aws_msk_iam]`.
    #[serde(rename = "AWS_MSK_IAM")]
    AwsMskIam,
}

impl SaslMechanism {
    /// The name in config and messages.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
            SaslMechanism::AwsMskIam => "AWS_MSK_IAM",
        }
    }

    /// librdkafka's `sasl.mechanisms`.
    fn librdkafka_name(self) -> &'static str {
        match self {
            SaslMechanism::AwsMskIam => "OAUTHBEARER",
            other => other.name(),
        }
    }

    /// A user name and password mechanism.
    fn uses_password(self) -> bool {
        matches!(
            self,
            SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512
        )
    }
}

/// `[kafka.sasl]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaslConfig {
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER` (OIDC) or `AWS_MSK_IAM`.
    /// Unset: no SASL. With `kafka.tls.enabled` the protocol is `SASL_SSL`, without it
    /// `SASL_PLAINTEXT`.
    pub mechanism: Option<SaslMechanism>,
    /// User name of PLAIN and SCRAM (a Confluent Cloud API key, `$ConnectionString` for Event
    /// Hubs).
    #[serde(deserialize_with = "optional_scalar")]
    pub username: Option<String>,
    /// Password of PLAIN and SCRAM (the API secret, the Event Hubs connection string);
    /// redacted wherever config is shown, and never in an error.
    pub password: Option<Secret>,
    /// A file holding `password` instead (a Kubernetes Secret mount).
    pub password_file: Option<PathBuf>,
    /// `[kafka.sasl.oidc]`: the token endpoint of `OAUTHBEARER`.
    pub oidc: OidcConfig,
    /// `[kafka.sasl.aws_msk_iam]`: the region of `AWS_MSK_IAM`.
    pub aws_msk_iam: AwsMskIamConfig,
}

impl SaslConfig {
    /// Checks that need no I/O; keys are relative to `kafka.sasl`.
    pub fn validate(&self) -> Result<(), SettingError> {
        let Some(mechanism) = self.mechanism else {
            let stray = [
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
                ("password_file", self.password_file.is_some()),
            ];
            if let Some((key, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(SettingError::invalid(
                    *key,
                    "is set but kafka.sasl.mechanism is not (PLAIN, SCRAM-SHA-256, \
                     SCRAM-SHA-512, OAUTHBEARER or AWS_MSK_IAM)",
                ));
            }
            return Ok(());
        };
        if mechanism.uses_password() {
            if self.username.as_deref().is_none_or(|u| u.trim().is_empty()) {
                return Err(SettingError::invalid(
                    "username",
                    format!("is required with mechanism {}", mechanism.name()),
                ));
            }
            if self.password.is_none() && self.password_file.is_none() {
                return Err(SettingError::invalid(
                    "password",
                    format!(
                        "is required with mechanism {} (or password_file)",
                        mechanism.name()
                    ),
                ));
            }
            not_both(
                "password",
                self.password.is_some(),
                self.password_file.is_some(),
            )?;
        } else if self.username.is_some() || self.password.is_some() || self.password_file.is_some()
        {
            return Err(SettingError::invalid(
                "username",
                format!(
                    "user name and password belong to PLAIN and SCRAM, not {}",
                    mechanism.name()
                ),
            ));
        }
        if mechanism == SaslMechanism::OAuthBearer {
            self.oidc.validate().map_err(|e| e.within("oidc"))?;
        }
        Ok(())
    }

    /// Adds the librdkafka properties of this section.
    pub fn properties(&self, out: &mut BTreeMap<String, String>) -> Result<(), SettingError> {
        let Some(mechanism) = self.mechanism else {
            return Ok(());
        };
        out.insert("sasl.mechanisms".into(), mechanism.librdkafka_name().into());
        match mechanism {
            SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let password = load_one(
                    "password",
                    self.password.as_ref(),
                    self.password_file.as_deref(),
                )?;
                out.insert(
                    "sasl.username".into(),
                    self.username.clone().unwrap_or_default(),
                );
                out.insert("sasl.password".into(), password.expose().to_string());
            }
            SaslMechanism::OAuthBearer => {
                self.oidc.properties(out).map_err(|e| e.within("oidc"))?;
            }
            // Tokens come from the client context's refresh callback (`super::context`).
            SaslMechanism::AwsMskIam => {}
        }
        Ok(())
    }

    /// `SCRAM-SHA-512 as riskos`, `OAUTHBEARER (OIDC client riskos)`: for messages.
    pub fn describe(&self) -> Option<String> {
        let mechanism = self.mechanism?;
        Some(match mechanism {
            SaslMechanism::OAuthBearer => format!(
                "OAUTHBEARER (OIDC client {} at {})",
                self.oidc.client_id, self.oidc.token_endpoint_url
            ),
            SaslMechanism::AwsMskIam => "AWS_MSK_IAM".to_string(),
            other => format!(
                "{} as {}",
                other.name(),
                self.username.as_deref().unwrap_or_default()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scram() -> SaslConfig {
        SaslConfig {
            mechanism: Some(SaslMechanism::ScramSha512),
            username: Some("riskos".into()),
            password: Some(Secret::new("s3cret")),
            ..Default::default()
        }
    }

    #[test]
    fn scram_needs_a_user_and_one_password() {
        scram().validate().unwrap();
        let mut no_user = scram();
        no_user.username = None;
        assert_eq!(no_user.validate().unwrap_err().key(), "username");
        let mut two = scram();
        two.password_file = Some("/pw".into());
        assert_eq!(two.validate().unwrap_err().key(), "password");
        let mut none = scram();
        none.password = None;
        let error = none.validate().unwrap_err();
        assert!(error.to_string().contains("SCRAM-SHA-512"), "{error}");
    }

    #[test]
    fn a_password_without_a_mechanism_is_refused() {
        let config = SaslConfig {
            password: Some(Secret::new("pw")),
            ..Default::default()
        };
        let error = config.validate().unwrap_err();
        assert_eq!(error.key(), "password");
        assert!(!error.to_string().contains("pw`"), "{error}");
    }

    #[test]
    fn scram_properties_and_msk_iam_is_oauthbearer_to_librdkafka() {
        let mut out = BTreeMap::new();
        scram().properties(&mut out).unwrap();
        assert_eq!(out["sasl.mechanisms"], "SCRAM-SHA-512");
        assert_eq!(out["sasl.username"], "riskos");
        assert_eq!(out["sasl.password"], "s3cret");
        let iam = SaslConfig {
            mechanism: Some(SaslMechanism::AwsMskIam),
            ..Default::default()
        };
        iam.validate().unwrap();
        let mut out = BTreeMap::new();
        iam.properties(&mut out).unwrap();
        assert_eq!(out["sasl.mechanisms"], "OAUTHBEARER");
        assert!(!out.contains_key("sasl.oauthbearer.method"));
    }

    #[test]
    fn a_password_file_is_read_when_the_client_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "from-file\n").unwrap();
        let mut config = scram();
        config.password = None;
        config.password_file = Some(file);
        let mut out = BTreeMap::new();
        config.properties(&mut out).unwrap();
        assert_eq!(out["sasl.password"], "from-file");
    }
}
