//! `[kafka.tls]`: TLS to the brokers — the CA that signed their certificates, and the client
//! certificate and key when the cluster authenticates clients by certificate (mTLS).
//!
//! librdkafka reads the files itself (OpenSSL), each time a client is made; only the key's
//! password is read here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::common::secret::{load_one, not_both, Secret};
use crate::common::setting::SettingError;

/// `[kafka.tls]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaTlsConfig {
    /// TLS to the brokers (`security.protocol` `SSL`, or `SASL_SSL` with `kafka.sasl`).
    /// Default false. Every managed service (Confluent Cloud, MSK, Aiven, Event Hubs) wants it.
    pub enabled: bool,
    /// PEM file of the CA certificate(s) that signed the brokers' certificates (Aiven's
    /// project CA, Strimzi's cluster CA, a company CA). Default: the system's trust store,
    /// which is what Confluent Cloud, MSK and Event Hubs need.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for clusters that authenticate clients by certificate
    /// (mTLS: `ssl.client.auth=required`). Set with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted `key_file`; redacted wherever config is shown.
    pub key_password: Option<Secret>,
    /// A file holding `key_password` instead (a Kubernetes Secret mount).
    pub key_password_file: Option<PathBuf>,
    /// Check that the broker's certificate names the host connected to. Default true; turn
    /// off only for brokers whose certificates name no usable host.
    pub verify_hostname: bool,
}

impl Default for KafkaTlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
            key_password: None,
            key_password_file: None,
            verify_hostname: true,
        }
    }
}

impl KafkaTlsConfig {
    /// Checks that need no I/O; keys are relative to `kafka.tls`.
    pub fn validate(&self) -> Result<(), SettingError> {
        let set = [
            ("ca_file", self.ca_file.is_some()),
            ("cert_file", self.cert_file.is_some()),
            ("key_file", self.key_file.is_some()),
            ("key_password", self.key_password.is_some()),
            ("key_password_file", self.key_password_file.is_some()),
        ];
        if !self.enabled {
            if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                return Err(SettingError::invalid(
                    *key,
                    "is set but kafka.tls.enabled is false: set enabled = true to use TLS",
                ));
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(SettingError::invalid(
                if self.cert_file.is_some() {
                    "key_file"
                } else {
                    "cert_file"
                },
                "set cert_file and key_file together (the client certificate and its key)",
            ));
        }
        if (self.key_password.is_some() || self.key_password_file.is_some())
            && self.key_file.is_none()
        {
            return Err(SettingError::invalid(
                "key_password",
                "is set without key_file",
            ));
        }
        not_both(
            "key_password",
            self.key_password.is_some(),
            self.key_password_file.is_some(),
        )
    }

    /// Adds the librdkafka properties of this section.
    pub fn properties(&self, out: &mut BTreeMap<String, String>) -> Result<(), SettingError> {
        if !self.enabled {
            return Ok(());
        }
        let path = |p: &PathBuf| p.display().to_string();
        if let Some(ca) = &self.ca_file {
            out.insert("ssl.ca.location".into(), path(ca));
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            out.insert("ssl.certificate.location".into(), path(cert));
            out.insert("ssl.key.location".into(), path(key));
        }
        if self.key_password.is_some() || self.key_password_file.is_some() {
            let password = load_one(
                "key_password",
                self.key_password.as_ref(),
                self.key_password_file.as_deref(),
            )?;
            out.insert("ssl.key.password".into(), password.expose().to_string());
        }
        out.insert(
            "ssl.endpoint.identification.algorithm".into(),
            if self.verify_hostname {
                "https"
            } else {
                "none"
            }
            .into(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_tls_enabled_are_refused_naming_the_key() {
        let config = KafkaTlsConfig {
            ca_file: Some("/ca.pem".into()),
            ..Default::default()
        };
        let error = config.validate().unwrap_err().within("kafka.tls");
        assert_eq!(error.key(), "kafka.tls.ca_file");
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let config = KafkaTlsConfig {
            enabled: true,
            cert_file: Some("/tls.crt".into()),
            ..Default::default()
        };
        assert_eq!(config.validate().unwrap_err().key(), "key_file");
    }

    #[test]
    fn the_files_become_librdkafka_locations() {
        let config = KafkaTlsConfig {
            enabled: true,
            ca_file: Some("/ca.pem".into()),
            cert_file: Some("/tls.crt".into()),
            key_file: Some("/tls.key".into()),
            key_password: Some(Secret::new("pw")),
            ..Default::default()
        };
        config.validate().unwrap();
        let mut out = BTreeMap::new();
        config.properties(&mut out).unwrap();
        assert_eq!(out["ssl.ca.location"], "/ca.pem");
        assert_eq!(out["ssl.certificate.location"], "/tls.crt");
        assert_eq!(out["ssl.key.location"], "/tls.key");
        assert_eq!(out["ssl.key.password"], "pw");
        assert_eq!(out["ssl.endpoint.identification.algorithm"], "https");
    }
}
