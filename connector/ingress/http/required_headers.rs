//! `endpoints.required_headers`: static headers an endpoint's sender must present besides
//! its credentials (RiskOS's "static header variables"), a second factor checked with the
//! credentials, before the body is read.
//!
//! Values are secrets: compared as SHA-256 digests in constant time against every accepted
//! value (several while rotating), like the bearer tokens. A header sent twice is refused.

use axum::http::{HeaderMap, HeaderName};

use crate::common::secret::{load_list, matches_any, Digest32};
use crate::common::setting::SettingError;
use crate::ingress::auth::{single_header, RepeatedHeader};
use crate::ingress::endpoint::RequiredHeaderConfig;

/// Why a required header was not satisfied (for the log; the caller gets a plain 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequiredHeaderError {
    /// Not sent.
    #[error("required header `{0}` missing")]
    Missing(HeaderName),
    /// Sent with a value that is not accepted.
    #[error("required header `{0}` has a wrong value")]
    Wrong(HeaderName),
    /// Sent more than once.
    #[error("required header `{0}` sent more than once")]
    Repeated(HeaderName),
}

/// Every required header of one endpoint, with the digests of its accepted values.
#[derive(Default)]
pub(crate) struct RequiredHeaders(Vec<(HeaderName, Vec<Digest32>)>);

impl std::fmt::Debug for RequiredHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl RequiredHeaders {
    /// Reads every value (and `values_file`) once. Keys are relative to the endpoint.
    pub(crate) fn from_config(config: &[RequiredHeaderConfig]) -> Result<Self, SettingError> {
        let mut headers = Vec::with_capacity(config.len());
        for (i, required) in config.iter().enumerate() {
            let name = HeaderName::from_bytes(required.name.as_bytes()).map_err(|_| {
                SettingError::invalid(
                    format!("required_headers[{i}].name"),
                    format!("`{}` is not a header name", required.name),
                )
            })?;
            let values = load_list("values", &required.values, required.values_file.as_deref())
                .map_err(|e| e.within(&format!("required_headers[{i}]")))?;
            if values.is_empty() {
                return Err(SettingError::missing(format!(
                    "required_headers[{i}].values"
                )));
            }
            headers.push((
                name,
                values
                    .iter()
                    .map(|v| Digest32::of(v.expose().as_bytes()))
                    .collect(),
            ));
        }
        Ok(Self(headers))
    }

    /// Every required header present once with an accepted value.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), RequiredHeaderError> {
        for (name, accepted) in &self.0 {
            let value = single_header(headers, name)
                .map_err(|RepeatedHeader| RequiredHeaderError::Repeated(name.clone()))?
                .ok_or_else(|| RequiredHeaderError::Missing(name.clone()))?;
            if !matches_any(value.as_bytes(), accepted) {
                return Err(RequiredHeaderError::Wrong(name.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::secret::Secret;
    use axum::http::HeaderValue;

    fn required() -> RequiredHeaders {
        RequiredHeaders::from_config(&[RequiredHeaderConfig {
            name: "X-Env-Key".into(),
            values: vec![Secret::new("old-value"), Secret::new("new-value")],
            values_file: None,
        }])
        .unwrap()
    }

    #[test]
    fn any_listed_value_passes_once() {
        let required = required();
        let mut headers = HeaderMap::new();
        assert!(matches!(
            required.check(&headers),
            Err(RequiredHeaderError::Missing(_))
        ));
        headers.insert("x-env-key", HeaderValue::from_static("new-value"));
        assert_eq!(required.check(&headers), Ok(()));
        headers.insert("x-env-key", HeaderValue::from_static("old-value"));
        assert_eq!(required.check(&headers), Ok(()));
        headers.insert("x-env-key", HeaderValue::from_static("new-valuE"));
        assert!(matches!(
            required.check(&headers),
            Err(RequiredHeaderError::Wrong(_))
        ));
        headers.insert("x-env-key", HeaderValue::from_static("new-value"));
        headers.append("x-env-key", HeaderValue::from_static("new-value"));
        assert!(matches!(
            required.check(&headers),
            Err(RequiredHeaderError::Repeated(_))
        ));
    }

    #[test]
    fn an_empty_list_is_refused_naming_the_key() {
        let error = RequiredHeaders::from_config(&[RequiredHeaderConfig {
            name: "X-Env-Key".into(),
            ..RequiredHeaderConfig::default()
        }])
        .unwrap_err();
        assert_eq!(error.key(), "required_headers[0].values");
        assert!(!format!("{:?}", required()).contains("value"));
    }
}
