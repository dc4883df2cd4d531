//! TLS to the registry: the CA bundle of `schema_registry.ca_file` (trusted on top of the
//! system's store) and the client certificate of `cert_file` + `key_file`, read once at
//! start-up and given to every HTTP client built for the registry.
//!
//! The system's store is what reqwest's platform verifier loads, which honours the
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` environment variables (they replace the store); before
//! `ca_file` they were the only way to trust a private CA, and they still work.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::registry_config::SchemaRegistryConfig;
use crate::common::setting::SettingError;

/// The TLS material of the registry's clients. No `Debug`: it holds a private key.
#[derive(Clone, Default)]
pub(crate) struct RegistryTls {
    /// Extra trusted roots (`ca_file`).
    roots: Vec<reqwest::Certificate>,
    /// The client certificate and key (`cert_file` + `key_file`).
    identity: Option<reqwest::Identity>,
}

impl RegistryTls {
    /// Reads the files the config names; an unreadable file or one without what its key
    /// promises fails, naming the key (never a key's content).
    pub(crate) fn load(config: &SchemaRegistryConfig) -> Result<Self, SettingError> {
        let roots = match &config.ca_file {
            Some(path) => ca_bundle("schema_registry.ca_file", path)?,
            None => Vec::new(),
        };
        let identity = match (&config.cert_file, &config.key_file) {
            (Some(cert), Some(key)) => Some(identity(cert, key)?),
            _ => None,
        };
        Ok(Self { roots, identity })
    }

    /// A client builder trusting the extra roots and presenting the client certificate: for
    /// registry calls.
    pub(crate) fn registry_client(&self) -> reqwest::ClientBuilder {
        let builder = self.token_client();
        match &self.identity {
            Some(identity) => builder.identity(identity.clone()),
            None => builder,
        }
    }

    /// A client builder trusting the extra roots, without the client certificate: for the
    /// OAuth token endpoint, a different server that did not ask for it.
    pub(crate) fn token_client(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().tls_certs_merge(self.roots.iter().cloned())
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, SettingError> {
    std::fs::read(path).map_err(|source| SettingError::File {
        key: key.into(),
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM bundle; at least one.
fn ca_bundle(key: &'static str, path: &Path) -> Result<Vec<reqwest::Certificate>, SettingError> {
    let pem = read(key, path)?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| SettingError::invalid(key, format!("{}: {e}", path.display())))?;
    if roots.is_empty() {
        return Err(SettingError::invalid(
            key,
            format!("no PEM certificate in {}", path.display()),
        ));
    }
    Ok(roots)
}

/// The certificate chain and its key as one identity. Each file is checked for what it must
/// hold first, so a mix-up names the right key instead of reqwest's "private key or
/// certificate not found".
fn identity(cert: &Path, key: &Path) -> Result<reqwest::Identity, SettingError> {
    let cert_pem = read("schema_registry.cert_file", cert)?;
    let key_pem = read("schema_registry.key_file", key)?;
    if CertificateDer::pem_slice_iter(&cert_pem)
        .next()
        .is_none_or(|first| first.is_err())
    {
        return Err(SettingError::invalid(
            "schema_registry.cert_file",
            format!("no PEM certificate in {}", cert.display()),
        ));
    }
    if PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
        return Err(SettingError::invalid(
            "schema_registry.key_file",
            format!(
                "no PEM private key (PKCS#8, PKCS#1 or SEC1) in {}",
                key.display()
            ),
        ));
    }
    let mut both = cert_pem;
    both.push(b'\n');
    both.extend_from_slice(&key_pem);
    reqwest::Identity::from_pem(&both).map_err(|e| {
        SettingError::invalid(
            "schema_registry.cert_file",
            format!("with schema_registry.key_file: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> SchemaRegistryConfig {
        SchemaRegistryConfig {
            url: "https://registry.example".into(),
            ca_file: Some(dir.join("ca.pem")),
            cert_file: Some(dir.join("client.pem")),
            key_file: Some(dir.join("client.key")),
            ..Default::default()
        }
    }

    #[test]
    fn files_are_read_and_their_problems_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["client".to_string()]).unwrap();
        let key_pem = made.signing_key.serialize_pem();
        std::fs::write(dir.path().join("ca.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.path().join("client.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.path().join("client.key"), &key_pem).unwrap();
        let tls = RegistryTls::load(&config(dir.path())).unwrap();
        assert_eq!(tls.roots.len(), 1);
        assert!(tls.identity.is_some());
        tls.registry_client().build().expect("a client with both");

        let missing = SchemaRegistryConfig {
            ca_file: Some(dir.path().join("absent.pem")),
            ..config(dir.path())
        };
        let error = RegistryTls::load(&missing).err().unwrap();
        assert_eq!(error.key(), "schema_registry.ca_file");

        // The key where the certificate should be: named, and the key is not printed.
        std::fs::write(dir.path().join("client.pem"), &key_pem).unwrap();
        let error = RegistryTls::load(&config(dir.path())).err().unwrap();
        assert_eq!(error.key(), "schema_registry.cert_file");
        assert!(!error.to_string().contains("PRIVATE KEY"), "{error}");

        std::fs::write(dir.path().join("client.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.path().join("client.key"), made.cert.pem()).unwrap();
        let error = RegistryTls::load(&config(dir.path())).err().unwrap();
        assert_eq!(error.key(), "schema_registry.key_file");

        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        let error = RegistryTls::load(&config(dir.path())).err().unwrap();
        assert_eq!(error.key(), "schema_registry.ca_file");
    }
}
