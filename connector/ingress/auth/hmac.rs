//! `auth.mode = "hmac"`: HMAC-SHA256 over the raw body, as request-token style senders sign.
//!
//! The signature header carries the MAC in hex or base64 (an optional `sha256=` prefix is
//! ignored). With `timestamp_header` set, the sender also sends the Unix time in seconds and
//! the MAC covers `{timestamp}.{body}`; a timestamp further than `tolerance_secs` from now is
//! refused, so a captured request cannot be replayed later. (Within the window a replay is
//! harmless: the record's key is the event id and the topic is compacted.)
//!
//! The header checks run before the body is read ([`Hmac::precheck`]); the MAC itself after
//! ([`Hmac::verify`]).
//!
//! **Alloy's HMAC** is this mode: Alloy signs the body bytes with HMAC-SHA256 under the shared
//! secret and sends the base64 MAC as the whole `Authorization` value, with no scheme and no
//! timestamp. Configure
//!
//! ```toml
//! [auth]
//! mode = "hmac"
//! [auth.hmac]
//! secrets_file = "/run/secrets/alloy_hmac"  # the secret entered in Alloy's dashboard
//! header = "Authorization"
//! encoding = "base64"
//! ```
//!
//! (No timestamp means no replay window: a captured request can be sent again, and is then a
//! duplicate of its event id.) Two `Authorization` headers are refused like any repeated
//! signature header.

use std::path::PathBuf;

use axum::http::{HeaderMap, HeaderName};
use base64::Engine as _;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

use super::{single_header, Reason};
use crate::common::secret::{load_list, secret_list, Secret};
use crate::common::setting::SettingError;

/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// `[auth.hmac]`: signed bodies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HmacConfig {
    /// Shared secrets, at least 16 bytes each; a body signed with any of them is accepted
    /// (list the old and the new one while rotating).
    #[serde(deserialize_with = "secret_list")]
    pub secrets: Vec<Secret>,
    /// A file with one secret per line, read at start-up; added to `secrets`.
    pub secrets_file: Option<PathBuf>,
    /// Header carrying the signature. Default `X-Signature`; `Authorization` for Alloy (the
    /// whole value is the signature, no scheme).
    pub header: String,
    /// How the signature is written: `hex` (default) or `base64`.
    pub encoding: SignatureEncoding,
    /// Header carrying the signing time in Unix seconds. When set, the MAC covers
    /// `{timestamp}.{body}` and old timestamps are refused. Default: none (body only).
    pub timestamp_header: Option<String>,
    /// Largest accepted distance between the timestamp and now, in seconds. Default 300.
    pub tolerance_secs: u64,
}

impl Default for HmacConfig {
    fn default() -> Self {
        Self {
            secrets: Vec::new(),
            secrets_file: None,
            header: "X-Signature".into(),
            encoding: SignatureEncoding::Hex,
            timestamp_header: None,
            tolerance_secs: 300,
        }
    }
}

/// Text encoding of the signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Lower- or upper-case hex.
    Hex,
    /// Standard base64, padding optional.
    Base64,
}

/// A configured verifier.
pub struct Hmac {
    keys: Vec<HmacSha256>,
    header: HeaderName,
    encoding: SignatureEncoding,
    timestamp_header: Option<HeaderName>,
    tolerance_secs: u64,
}

impl std::fmt::Debug for Hmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hmac")
            .field("secrets", &self.keys.len())
            .field("header", &self.header)
            .field("timestamp_header", &self.timestamp_header)
            .finish()
    }
}

impl Hmac {
    /// Reads the secrets and checks the header names.
    pub fn from_config(config: &HmacConfig) -> Result<Self, SettingError> {
        let key = "auth.hmac.secrets";
        let secrets = load_list(key, &config.secrets, config.secrets_file.as_deref())?;
        if secrets.is_empty() {
            return Err(SettingError::missing(key));
        }
        if secrets.iter().any(|s| s.expose().len() < MIN_SECRET_BYTES) {
            return Err(SettingError::Invalid {
                key: key.into(),
                reason: format!("every secret needs at least {MIN_SECRET_BYTES} bytes"),
            });
        }
        let header_name = |key: &'static str, name: &str| {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| SettingError::Invalid {
                key: key.into(),
                reason: format!("`{name}` is not a header name"),
            })
        };
        Ok(Self {
            keys: secrets
                .iter()
                .map(|s| {
                    <HmacSha256 as Mac>::new_from_slice(s.expose().as_bytes())
                        .expect("HMAC takes keys of any length")
                })
                .collect(),
            header: header_name("auth.hmac.header", &config.header)?,
            encoding: config.encoding,
            timestamp_header: config
                .timestamp_header
                .as_deref()
                .map(|h| header_name("auth.hmac.timestamp_header", h))
                .transpose()?,
            tolerance_secs: config.tolerance_secs,
        })
    }

    /// Header checks before the body is read: a decodable signature and, when configured, a
    /// timestamp within the window. `now` is Unix seconds.
    pub fn precheck(&self, headers: &HeaderMap, now: u64) -> Result<(), Reason> {
        self.signature(headers)?;
        self.timestamp(headers, now)?;
        Ok(())
    }

    /// The full check: header checks, then the MAC over the body with every secret.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: u64) -> Result<(), Reason> {
        let signature = self.signature(headers)?;
        let timestamp = self.timestamp(headers, now)?;
        let mut valid = false;
        for key in &self.keys {
            let mut mac = key.clone();
            if let Some(timestamp) = timestamp {
                mac.update(timestamp.as_bytes());
                mac.update(b".");
            }
            mac.update(body);
            // verify_slice compares in constant time.
            valid |= mac.verify_slice(&signature).is_ok();
        }
        if valid {
            Ok(())
        } else {
            Err(Reason::BadSignature)
        }
    }

    fn signature(&self, headers: &HeaderMap) -> Result<Vec<u8>, Reason> {
        let value = single_header(headers, &self.header)
            .map_err(|_| Reason::DuplicateSignatureHeader)?
            .ok_or(Reason::Missing)?
            .to_str()
            .map_err(|_| Reason::Malformed)?
            .trim();
        let value = match value.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("sha256=") => &value[7..],
            _ => value,
        };
        let decoded = match self.encoding {
            SignatureEncoding::Hex => decode_hex(value),
            SignatureEncoding::Base64 => base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            )
            .decode(value)
            .ok(),
        };
        match decoded {
            Some(bytes) if bytes.len() == 32 => Ok(bytes),
            _ => Err(Reason::Malformed),
        }
    }

    /// The timestamp header's text when one is configured and within the window.
    fn timestamp<'h>(&self, headers: &'h HeaderMap, now: u64) -> Result<Option<&'h str>, Reason> {
        let Some(name) = &self.timestamp_header else {
            return Ok(None);
        };
        let text = single_header(headers, name)
            .map_err(|_| Reason::DuplicateSignatureHeader)?
            .ok_or(Reason::Missing)?
            .to_str()
            .map_err(|_| Reason::Malformed)?
            .trim();
        let seconds: u64 = text.parse().map_err(|_| Reason::Malformed)?;
        if seconds.abs_diff(now) > self.tolerance_secs {
            return Err(Reason::StaleTimestamp);
        }
        Ok(Some(text))
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

/// The signature of `body` (and `timestamp`) with `secret`, hex-encoded: what a sender puts in
/// the header. Used by tests and the README's example.
pub fn sign_hex(secret: &[u8], timestamp: Option<&str>, body: &[u8]) -> String {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("any key length");
    if let Some(timestamp) = timestamp {
        mac.update(timestamp.as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const OLD: &str = "old-secret-0123456789";
    const NEW: &str = "new-secret-9876543210";
    const NOW: u64 = 1_760_000_000;

    fn verifier(timestamp: bool, encoding: SignatureEncoding) -> Hmac {
        Hmac::from_config(&HmacConfig {
            secrets: vec![Secret::new(OLD), Secret::new(NEW)],
            timestamp_header: timestamp.then(|| "X-Timestamp".to_string()),
            encoding,
            ..HmacConfig::default()
        })
        .unwrap()
    }

    fn headers(signature: &str, timestamp: Option<u64>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-signature", HeaderValue::from_str(signature).unwrap());
        if let Some(t) = timestamp {
            h.insert("x-timestamp", HeaderValue::from(t));
        }
        h
    }

    #[test]
    fn a_body_signed_with_either_secret_passes() {
        let auth = verifier(false, SignatureEncoding::Hex);
        let body = br#"{"a":1}"#;
        for secret in [OLD, NEW] {
            let signature = sign_hex(secret.as_bytes(), None, body);
            assert_eq!(auth.verify(&headers(&signature, None), body, NOW), Ok(()));
            let prefixed = format!("sha256={}", signature.to_uppercase());
            assert_eq!(auth.verify(&headers(&prefixed, None), body, NOW), Ok(()));
        }
    }

    #[test]
    fn another_secret_or_a_changed_body_fails() {
        let auth = verifier(false, SignatureEncoding::Hex);
        let body = br#"{"a":1}"#;
        let foreign = sign_hex(b"some-other-secret-xx", None, body);
        assert_eq!(
            auth.verify(&headers(&foreign, None), body, NOW),
            Err(Reason::BadSignature)
        );
        let signature = sign_hex(NEW.as_bytes(), None, body);
        assert_eq!(
            auth.verify(&headers(&signature, None), br#"{"a":2}"#, NOW),
            Err(Reason::BadSignature)
        );
        assert_eq!(
            auth.verify(&headers("zz", None), body, NOW),
            Err(Reason::Malformed)
        );
        assert_eq!(
            auth.verify(&HeaderMap::new(), body, NOW),
            Err(Reason::Missing)
        );
    }

    #[test]
    fn base64_signatures_decode() {
        let auth = verifier(false, SignatureEncoding::Base64);
        let body = b"{}";
        let hex = sign_hex(OLD.as_bytes(), None, body);
        let bytes = decode_hex(&hex).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(auth.verify(&headers(&b64, None), body, NOW), Ok(()));
        assert_eq!(
            auth.verify(&headers(b64.trim_end_matches('='), None), body, NOW),
            Ok(())
        );
    }

    #[test]
    fn the_timestamp_is_signed_and_must_be_recent() {
        let auth = verifier(true, SignatureEncoding::Hex);
        let body = b"{}";
        let ts = NOW - 10;
        let signature = sign_hex(OLD.as_bytes(), Some(&ts.to_string()), body);
        assert_eq!(
            auth.verify(&headers(&signature, Some(ts)), body, NOW),
            Ok(())
        );
        // The same signature with another timestamp does not verify.
        assert_eq!(
            auth.verify(&headers(&signature, Some(ts + 1)), body, NOW),
            Err(Reason::BadSignature)
        );
        // A correctly signed old request is a replay.
        let old = NOW - 301;
        let replay = sign_hex(OLD.as_bytes(), Some(&old.to_string()), body);
        assert_eq!(
            auth.precheck(&headers(&replay, Some(old)), NOW),
            Err(Reason::StaleTimestamp)
        );
        assert_eq!(
            auth.precheck(&headers(&signature, None), NOW),
            Err(Reason::Missing)
        );
    }

    #[test]
    fn a_signature_or_timestamp_header_sent_twice_is_refused() {
        let auth = verifier(true, SignatureEncoding::Hex);
        let body = b"{}";
        let ts = NOW - 10;
        let good = sign_hex(OLD.as_bytes(), Some(&ts.to_string()), body);
        let other = sign_hex(NEW.as_bytes(), Some(&ts.to_string()), body);
        // Even when one of the two is a valid signature, and whichever comes first.
        for (first, second) in [(&good, &other), (&other, &good), (&good, &good)] {
            let mut h = headers(first, Some(ts));
            h.append("x-signature", HeaderValue::from_str(second).unwrap());
            assert_eq!(
                auth.precheck(&h, NOW),
                Err(Reason::DuplicateSignatureHeader)
            );
            assert_eq!(
                auth.verify(&h, body, NOW),
                Err(Reason::DuplicateSignatureHeader)
            );
        }
        let mut h = headers(&good, Some(ts));
        h.append("x-timestamp", HeaderValue::from(ts + 1));
        assert_eq!(
            auth.precheck(&h, NOW),
            Err(Reason::DuplicateSignatureHeader)
        );
        assert_eq!(
            Reason::DuplicateSignatureHeader.kind(),
            "hmac_duplicate_header"
        );
    }

    #[test]
    fn alloys_signature_in_the_authorization_header_passes() {
        // Alloy: base64 HMAC-SHA256 of the body, the whole `Authorization` value, no scheme.
        let secret = "alloy-shared-secret-0123";
        let auth = Hmac::from_config(&HmacConfig {
            secrets: vec![Secret::new(secret)],
            header: "Authorization".into(),
            encoding: SignatureEncoding::Base64,
            ..HmacConfig::default()
        })
        .unwrap();
        let body = br#"{"request_token":"abc","evaluation_token":"L-1"}"#;
        let mac = decode_hex(&sign_hex(secret.as_bytes(), None, body)).unwrap();
        let signature = base64::engine::general_purpose::STANDARD.encode(mac);
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&signature).unwrap(),
        );
        assert_eq!(auth.precheck(&h, NOW), Ok(()));
        assert_eq!(auth.verify(&h, body, NOW), Ok(()));
        assert_eq!(
            auth.verify(&h, br#"{"request_token":"abd"}"#, NOW),
            Err(Reason::BadSignature)
        );
        // Another scheme's credentials are not a signature.
        h.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert_eq!(auth.precheck(&h, NOW), Err(Reason::Malformed));
        h.append(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&signature).unwrap(),
        );
        assert_eq!(
            auth.verify(&h, body, NOW),
            Err(Reason::DuplicateSignatureHeader)
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        let error = Hmac::from_config(&HmacConfig {
            secrets: vec![Secret::new("short")],
            ..HmacConfig::default()
        })
        .unwrap_err();
        assert!(error.to_string().contains("auth.hmac.secrets"));
    }
}
