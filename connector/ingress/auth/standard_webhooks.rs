//! `auth.mode = "standard-webhooks"`: the [Standard Webhooks](https://www.standardwebhooks.com)
//! signature scheme (Svix and the senders built on its libraries).
//!
//! Every request carries three headers:
//!
//! | header | content |
//! |---|---|
//! | `webhook-id` | the message id: the same on every retry of one message |
//! | `webhook-timestamp` | the signing time, integer Unix seconds |
//! | `webhook-signature` | space-separated `version,base64` entries |
//!
//! Svix, the reference sender, names them `svix-id`, `svix-timestamp` and `svix-signature`
//! unless its customer pays for white-labelled headers; the scheme is the same, so both
//! families are read. A request uses one family's three headers together, never a mix
//! ([`Reason::MixedHeaderFamilies`]): a signature checked over the id of one family and the
//! timestamp of the other would prove nothing a sender said. Both families complete and equal,
//! header by header, is one message copied (a gateway adding the white-labelled names, a sender
//! migrating) and is read once; both present in any other way is refused, since which of two
//! ids or timestamps the signature covers (and which id is the idempotency key) would be a
//! guess.
//!
//! Each entry signs the bytes `{webhook-id}.{webhook-timestamp}.{body}`:
//!
//! - `v1,<base64 HMAC-SHA256>` under a shared secret, written `whsec_<base64 of the key>`
//!   (the key is the base64-decoded bytes, never the text);
//! - `v1a,<base64 Ed25519 signature>` under the sender's private key `whsk_…`, verified with its
//!   public key `whpk_<base64 of the 32-byte key>`.
//!
//! A request is accepted when **any** entry verifies under **any** configured secret or public
//! key, so a sender rotating its key (signing with the old and the new one) and a receiver
//! rotating (listing both) both go through without downtime. Entries of other versions
//! (`v2,…`, or `v1a` when no public key is configured) are ignored, as the spec asks. A
//! timestamp further than `tolerance_secs` from now is refused, so a captured request cannot
//! be replayed later; within the window a replay carries the same `webhook-id`, which is the
//! sender's idempotency key ([`message_id`]): an id already stored is answered as a duplicate.
//!
//! Secrets may also be written without the `whsec_` prefix, as the reference libraries accept:
//! the text is then still base64-decoded (never used as raw bytes), so a secret that is not
//! base64 is refused at start-up. Public keys likewise with or without `whpk_`.
//!
//! The header checks run before the body is read ([`StandardWebhooks::precheck`]: the three
//! headers present once each, the timestamp in the window, a signature this endpoint can
//! check); the signatures themselves after ([`StandardWebhooks::verify`]). HMACs are compared
//! in constant time.

use std::path::PathBuf;

use aws_lc_rs::signature::{ParsedPublicKey, UnparsedPublicKey, ED25519};
use axum::http::HeaderMap;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{single_header, Reason};
use crate::common::secret::{load_list, secret_list, Secret};
use crate::common::setting::SettingError;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The message id header: the sender's idempotency key.
pub const ID_HEADER: &str = "webhook-id";
/// The signing time header, integer Unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The signatures header.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// Svix's own name for [`ID_HEADER`] (sent unless the Svix customer white-labels headers).
pub const SVIX_ID_HEADER: &str = "svix-id";
/// Svix's own name for [`TIMESTAMP_HEADER`].
pub const SVIX_TIMESTAMP_HEADER: &str = "svix-timestamp";
/// Svix's own name for [`SIGNATURE_HEADER`].
pub const SVIX_SIGNATURE_HEADER: &str = "svix-signature";

/// The names of one family of the three headers: id, timestamp, signatures.
pub type HeaderFamily = [&'static str; 3];
/// The Standard Webhooks names.
pub const STANDARD_HEADERS: HeaderFamily = [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER];
/// Svix's names.
pub const SVIX_HEADERS: HeaderFamily =
    [SVIX_ID_HEADER, SVIX_TIMESTAMP_HEADER, SVIX_SIGNATURE_HEADER];

/// Prefix of a symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Prefix of an Ed25519 public key.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Prefix of an Ed25519 private (signing) key: the sender's, never configured here.
pub const PRIVATE_KEY_PREFIX: &str = "whsk_";

/// Shortest accepted secret, in decoded bytes: the spec asks for secrets of 24 to 64 bytes,
/// and its libraries generate 24 or 32.
pub const MIN_SECRET_BYTES: usize = 24;

/// Most entries read from one `webhook-signature` header; more is refused as malformed, so a
/// header stuffed with signatures cannot make one unauthenticated request cost many Ed25519
/// verifications. (Rotation needs two or three.)
pub const MAX_SIGNATURES: usize = 16;

/// Standard base64, padding optional (the libraries pad; some hand-written senders do not).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `[auth.standard_webhooks]`: Standard Webhooks signatures. At least one secret or public
/// key is required.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StandardWebhooksConfig {
    /// Symmetric signing secrets for `v1` signatures, `whsec_<base64>` as the sender shows
    /// them (the prefix may be left out; the rest is base64 either way), at least 24 decoded
    /// bytes each. A request signed with any of them is accepted (list the old and the new
    /// one while rotating).
    #[serde(deserialize_with = "secret_list")]
    pub secrets: Vec<Secret>,
    /// A file with one secret per line, read at start-up; added to `secrets`.
    pub secrets_file: Option<PathBuf>,
    /// Ed25519 public keys for `v1a` signatures, `whpk_<base64 of the 32-byte key>` (the
    /// prefix may be left out). Not secret. A request signed with any of their private keys is
    /// accepted.
    #[serde(deserialize_with = "string_list")]
    pub public_keys: Vec<String>,
    /// A file with one public key per line, read at start-up; added to `public_keys`.
    pub public_keys_file: Option<PathBuf>,
    /// Largest accepted distance between `webhook-timestamp` and now, in seconds, either
    /// way. Default 300 (the reference libraries' five minutes).
    pub tolerance_secs: u64,
}

impl Default for StandardWebhooksConfig {
    fn default() -> Self {
        Self {
            secrets: Vec::new(),
            secrets_file: None,
            public_keys: Vec::new(),
            public_keys_file: None,
            tolerance_secs: 300,
        }
    }
}

/// One string or a list of them (an env var sets a list of one).
fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<String>),
        One(String),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(list) => list,
        OneOrMany::One(one) => vec![one],
    })
}

/// A configured verifier.
pub struct StandardWebhooks {
    secrets: Vec<HmacSha256>,
    public_keys: Vec<ParsedPublicKey>,
    tolerance_secs: u64,
}

impl std::fmt::Debug for StandardWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandardWebhooks")
            .field("secrets", &self.secrets.len())
            .field("public_keys", &self.public_keys.len())
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

/// A signature from the header that this endpoint can check.
enum Candidate {
    /// `v1`: an HMAC-SHA256.
    Hmac(Vec<u8>),
    /// `v1a`: an Ed25519 signature.
    Ed25519(Vec<u8>),
}

/// What the headers say, once checked.
struct Signed<'h> {
    id: &'h str,
    timestamp: &'h str,
    candidates: Vec<Candidate>,
}

impl StandardWebhooks {
    /// Reads and decodes the secrets and public keys; at least one of either is required.
    pub fn from_config(config: &StandardWebhooksConfig) -> Result<Self, SettingError> {
        let key = "auth.standard_webhooks.secrets";
        let secrets = load_list(key, &config.secrets, config.secrets_file.as_deref())?;
        let secrets = secrets
            .iter()
            .enumerate()
            .map(|(i, secret)| decode_secret(secret.expose(), i + 1))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| SettingError::invalid(key, reason))?;
        let keys_key = "auth.standard_webhooks.public_keys";
        let inline: Vec<Secret> = config.public_keys.iter().map(Secret::new).collect();
        let public_keys = load_list(keys_key, &inline, config.public_keys_file.as_deref())?
            .iter()
            .enumerate()
            .map(|(i, text)| decode_public_key(text.expose(), i + 1))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| SettingError::invalid(keys_key, reason))?;
        if secrets.is_empty() && public_keys.is_empty() {
            return Err(SettingError::invalid(
                key,
                "is required: at least one `whsec_` secret (or `public_keys`, `whpk_`), inline \
                 or as `_file`",
            ));
        }
        if config.tolerance_secs == 0 {
            return Err(SettingError::invalid(
                "auth.standard_webhooks.tolerance_secs",
                "must be greater than 0",
            ));
        }
        Ok(Self {
            secrets,
            public_keys,
            tolerance_secs: config.tolerance_secs,
        })
    }

    /// Header checks before the body is read: `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature` (or Svix's `svix-*` names, never a mix) present once each, the
    /// timestamp within the window, and at least one signature of a version this endpoint can
    /// verify. `now` is Unix seconds.
    pub fn precheck(&self, headers: &HeaderMap, now: u64) -> Result<(), Reason> {
        self.signed(headers, now).map(drop)
    }

    /// The full check: header checks, then every usable signature against every secret and
    /// public key over `{id}.{timestamp}.{body}`; one match is enough.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: u64) -> Result<(), Reason> {
        let signed = self.signed(headers, now)?;
        let prefix = format!("{}.{}.", signed.id, signed.timestamp);
        let mut valid = false;
        for candidate in &signed.candidates {
            match candidate {
                Candidate::Hmac(signature) => {
                    for key in &self.secrets {
                        let mut mac = key.clone();
                        mac.update(prefix.as_bytes());
                        mac.update(body);
                        // verify_slice compares in constant time; every pair is tried, so the
                        // time taken does not depend on which one matched.
                        valid |= mac.verify_slice(signature).is_ok();
                    }
                }
                Candidate::Ed25519(signature) => {
                    if !valid {
                        let message = [prefix.as_bytes(), body].concat();
                        valid = self
                            .public_keys
                            .iter()
                            .any(|key| key.verify_sig(&message, signature).is_ok());
                    }
                }
            }
        }
        if valid {
            Ok(())
        } else {
            Err(Reason::BadSignature)
        }
    }

    fn signed<'h>(&self, headers: &'h HeaderMap, now: u64) -> Result<Signed<'h>, Reason> {
        let [id, timestamp, signatures] = family_headers(headers)?;
        // Integer seconds, as the spec writes them: no sign, no fraction.
        if timestamp.len() > 20 || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Reason::Malformed);
        }
        let seconds: u64 = timestamp.parse().map_err(|_| Reason::Malformed)?;
        if seconds.abs_diff(now) > self.tolerance_secs {
            return Err(Reason::StaleTimestamp);
        }
        let mut candidates = Vec::new();
        let mut undecodable = false;
        for (n, entry) in signatures.split_ascii_whitespace().enumerate() {
            if n == MAX_SIGNATURES {
                return Err(Reason::Malformed);
            }
            let Some((version, encoded)) = entry.split_once(',') else {
                continue;
            };
            let (decoded, length) = match version {
                "v1" if !self.secrets.is_empty() => (BASE64.decode(encoded).ok(), 32),
                "v1a" if !self.public_keys.is_empty() => (BASE64.decode(encoded).ok(), 64),
                _ => continue,
            };
            match decoded {
                Some(bytes) if bytes.len() == length && version == "v1" => {
                    candidates.push(Candidate::Hmac(bytes))
                }
                Some(bytes) if bytes.len() == length => candidates.push(Candidate::Ed25519(bytes)),
                _ => undecodable = true,
            }
        }
        if candidates.is_empty() {
            return Err(if undecodable {
                Reason::Malformed
            } else {
                Reason::NoVerifiableSignature
            });
        }
        Ok(Signed {
            id,
            timestamp,
            candidates,
        })
    }
}

/// The `webhook-id` (or `svix-id`) of a request, from the one family of headers it was
/// verified with, when that id is present once as non-empty text. It is the sender's
/// idempotency key (the same on every retry of a message); read it only once the request is
/// authenticated, since the signature covers it.
pub fn message_id(headers: &HeaderMap) -> Option<&str> {
    family_headers(headers).ok().map(|[id, _, _]| id)
}

/// The id, timestamp and signatures of the one header family the request uses: Svix's names
/// when only they appear, else the Standard Webhooks names; both families only when each is
/// complete and equal to the other, header by header. Any other mix is refused.
fn family_headers(headers: &HeaderMap) -> Result<[&str; 3], Reason> {
    let present = |family: &HeaderFamily| family.iter().any(|name| headers.contains_key(*name));
    let read = |family: &HeaderFamily| -> Result<[&str; 3], Reason> {
        let [id, timestamp, signatures] = *family;
        Ok([
            header_text(headers, id)?,
            header_text(headers, timestamp)?,
            header_text(headers, signatures)?,
        ])
    };
    match (present(&STANDARD_HEADERS), present(&SVIX_HEADERS)) {
        (true, true) => match (read(&STANDARD_HEADERS), read(&SVIX_HEADERS)) {
            (Ok(standard), Ok(svix)) if standard == svix => Ok(standard),
            _ => Err(Reason::MixedHeaderFamilies),
        },
        (false, true) => read(&SVIX_HEADERS),
        _ => read(&STANDARD_HEADERS),
    }
}

/// A header that must be present once, as non-empty text.
fn header_text<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, Reason> {
    let text = single_header(headers, name)
        .map_err(|_| Reason::DuplicateSignatureHeader)?
        .ok_or(Reason::Missing)?
        .to_str()
        .map_err(|_| Reason::Malformed)?
        .trim();
    if text.is_empty() {
        return Err(Reason::Missing);
    }
    Ok(text)
}

/// The HMAC key of secret number `n` (counted from 1, inline secrets first); the error names
/// it by number, never by value.
fn decode_secret(text: &str, n: usize) -> Result<HmacSha256, String> {
    if text.starts_with(PUBLIC_KEY_PREFIX) || text.starts_with(PRIVATE_KEY_PREFIX) {
        return Err(format!(
            "secret #{n} is an Ed25519 key (`whpk_`/`whsk_`), not a `whsec_` secret: put the \
             sender's public key `whpk_…` in `auth.standard_webhooks.public_keys`"
        ));
    }
    let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
    let bytes = BASE64.decode(encoded).map_err(|_| {
        format!("secret #{n} is not `whsec_` followed by base64 (nor base64 without the prefix)")
    })?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "secret #{n} decodes to {} bytes; at least {MIN_SECRET_BYTES} are needed",
            bytes.len()
        ));
    }
    Ok(<HmacSha256 as Mac>::new_from_slice(&bytes).expect("HMAC takes keys of any length"))
}

/// Public key number `n` (counted from 1, inline keys first).
fn decode_public_key(text: &str, n: usize) -> Result<ParsedPublicKey, String> {
    if text.starts_with(PRIVATE_KEY_PREFIX) {
        return Err(format!(
            "key #{n} is a private signing key (`whsk_`): it belongs to the sender alone and must \
             be replaced (it has been exposed); configure its public key `whpk_…` here"
        ));
    }
    if text.starts_with(SECRET_PREFIX) {
        return Err(format!(
            "key #{n} is a `whsec_` secret: put it in `auth.standard_webhooks.secrets`"
        ));
    }
    let encoded = text.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(text);
    let invalid = || format!("key #{n} is not `whpk_` followed by the base64 of 32 bytes");
    let bytes = BASE64.decode(encoded).map_err(|_| invalid())?;
    if bytes.len() != 32 {
        return Err(invalid());
    }
    UnparsedPublicKey::new(&ED25519, bytes)
        .parse()
        .map_err(|_| format!("key #{n} is not an Ed25519 public key"))
}

/// The `v1` signature entry of a message: what a sender puts in `webhook-signature`. `key` is
/// the decoded secret (the bytes after `whsec_`, base64-decoded). Used by tests and examples.
pub fn sign_v1(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use axum::http::HeaderValue;

    /// The reference libraries' test vector (e.g. the Go library's `TestWebhookSign`, the
    /// Python package's signer gives the same).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: u64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    /// The Go library's `TestAsymmetricWebhookSign`: the seed `whsk_` of this key signs the
    /// vector above as this `v1a` (the public key derived from that seed).
    const SPEC_PUBLIC_KEY: &str = "whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g=";
    const SPEC_V1A: &str = "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==";

    const OLD: &str = "whsec_b2xkLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
    const NEW: &str = "whsec_bmV3LXNlY3JldC05ODc2NTQzMjEwZmVkY2Jh";
    const NOW: u64 = 1_760_000_000;
    const BODY: &[u8] = br#"{"event_id":"e-1","event_type":"case.updated"}"#;

    fn key(secret: &str) -> Vec<u8> {
        BASE64
            .decode(secret.strip_prefix(SECRET_PREFIX).unwrap())
            .unwrap()
    }

    fn verifier(secrets: &[&str], public_keys: &[&str]) -> StandardWebhooks {
        StandardWebhooks::from_config(&StandardWebhooksConfig {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            public_keys: public_keys.iter().map(|s| s.to_string()).collect(),
            ..StandardWebhooksConfig::default()
        })
        .unwrap()
    }

    fn headers(id: &str, timestamp: u64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ID_HEADER, HeaderValue::from_str(id).unwrap());
        h.insert(TIMESTAMP_HEADER, HeaderValue::from(timestamp));
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        h
    }

    fn ed25519_key() -> (Ed25519KeyPair, String) {
        let pair = Ed25519KeyPair::generate().unwrap();
        let public = format!(
            "{PUBLIC_KEY_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(pair.public_key().as_ref())
        );
        (pair, public)
    }

    fn sign_v1a(pair: &Ed25519KeyPair, id: &str, timestamp: u64, body: &[u8]) -> String {
        let message = [format!("{id}.{timestamp}.").as_bytes(), body].concat();
        format!(
            "v1a,{}",
            base64::engine::general_purpose::STANDARD.encode(pair.sign(&message).as_ref())
        )
    }

    #[test]
    fn the_spec_test_vector_verifies() {
        assert_eq!(
            sign_v1(&key(SPEC_SECRET), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
            SPEC_SIGNATURE
        );
        let h = headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_SIGNATURE);
        for secret in [
            SPEC_SECRET,
            SPEC_SECRET.strip_prefix(SECRET_PREFIX).unwrap(),
        ] {
            let auth = verifier(&[secret], &[]);
            assert_eq!(auth.precheck(&h, SPEC_TIMESTAMP + 10), Ok(()));
            assert_eq!(auth.verify(&h, SPEC_BODY, SPEC_TIMESTAMP - 10), Ok(()));
        }
        let asymmetric = verifier(&[], &[SPEC_PUBLIC_KEY]);
        let h = headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_V1A);
        assert_eq!(asymmetric.verify(&h, SPEC_BODY, SPEC_TIMESTAMP), Ok(()));
        assert_eq!(
            asymmetric.verify(&h, br#"{"test": 2432232315}"#, SPEC_TIMESTAMP),
            Err(Reason::BadSignature)
        );
    }

    #[test]
    fn any_signature_under_any_secret_passes_and_unknown_versions_are_ignored() {
        let auth = verifier(&[OLD, NEW], &[]);
        let foreign = sign_v1(b"some-other-secret-0123456789", "msg_1", NOW, BODY);
        for secret in [OLD, NEW] {
            let good = sign_v1(&key(secret), "msg_1", NOW, BODY);
            // The sender rotating: its old and new signature, in any order, with entries of a
            // future version around them.
            for header in [
                format!("{foreign} {good}"),
                format!("{good} {foreign}"),
                format!("v2,AAAA {good} v1a,notbase64 x"),
                format!("  {foreign}   {good}  "),
            ] {
                let h = headers("msg_1", NOW, &header);
                assert_eq!(auth.precheck(&h, NOW), Ok(()), "{header}");
                assert_eq!(auth.verify(&h, BODY, NOW), Ok(()), "{header}");
            }
        }
        let h = headers("msg_1", NOW, &format!("{foreign} v2,AAAA"));
        assert_eq!(auth.verify(&h, BODY, NOW), Err(Reason::BadSignature));
    }

    #[test]
    fn a_tampered_body_id_or_timestamp_fails() {
        let auth = verifier(&[OLD], &[]);
        let signature = sign_v1(&key(OLD), "msg_1", NOW, BODY);
        assert_eq!(
            auth.verify(&headers("msg_1", NOW, &signature), BODY, NOW),
            Ok(())
        );
        assert_eq!(
            auth.verify(&headers("msg_1", NOW, &signature), b"{}", NOW),
            Err(Reason::BadSignature)
        );
        assert_eq!(
            auth.verify(&headers("msg_2", NOW, &signature), BODY, NOW),
            Err(Reason::BadSignature)
        );
        assert_eq!(
            auth.verify(&headers("msg_1", NOW - 1, &signature), BODY, NOW),
            Err(Reason::BadSignature)
        );
        // The id and the timestamp are delimited: moving the dot changes the signed bytes.
        let moved = sign_v1(&key(OLD), "msg", NOW, BODY);
        assert_eq!(
            auth.verify(&headers("msg_1", NOW, &moved), BODY, NOW),
            Err(Reason::BadSignature)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_before_the_body() {
        let auth = verifier(&[OLD], &[]);
        for (timestamp, expected) in [
            (NOW - 300, Ok(())),
            (NOW + 300, Ok(())),
            (NOW - 301, Err(Reason::StaleTimestamp)),
            (NOW + 301, Err(Reason::StaleTimestamp)),
            (0, Err(Reason::StaleTimestamp)),
        ] {
            let signature = sign_v1(&key(OLD), "msg_1", timestamp, BODY);
            let h = headers("msg_1", timestamp, &signature);
            assert_eq!(auth.precheck(&h, NOW), expected, "{timestamp}");
            assert_eq!(auth.verify(&h, BODY, NOW), expected, "{timestamp}");
        }
        let signature = sign_v1(&key(OLD), "msg_1", NOW, BODY);
        for text in [
            "-1",
            "1760000000.5",
            "+1760000000",
            "1e9",
            "123456789012345678901",
        ] {
            let mut h = headers("msg_1", NOW, &signature);
            h.insert(TIMESTAMP_HEADER, HeaderValue::from_static(text));
            assert_eq!(auth.precheck(&h, NOW), Err(Reason::Malformed), "{text}");
        }
    }

    #[test]
    fn missing_repeated_or_undecodable_headers_are_refused() {
        let auth = verifier(&[OLD], &[]);
        let signature = sign_v1(&key(OLD), "msg_1", NOW, BODY);
        for name in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
            let mut h = headers("msg_1", NOW, &signature);
            h.remove(name);
            assert_eq!(auth.precheck(&h, NOW), Err(Reason::Missing), "{name}");
            let mut h = headers("msg_1", NOW, &signature);
            h.insert(name, HeaderValue::from_static(" "));
            assert_eq!(auth.precheck(&h, NOW), Err(Reason::Missing), "{name}");
            // Repeated, even when both copies are the same valid value.
            let mut h = headers("msg_1", NOW, &signature);
            let copy = h.get(name).unwrap().clone();
            h.append(name, copy);
            assert_eq!(
                auth.precheck(&h, NOW),
                Err(Reason::DuplicateSignatureHeader),
                "{name}"
            );
            assert_eq!(
                auth.verify(&h, BODY, NOW),
                Err(Reason::DuplicateSignatureHeader)
            );
        }
        for (header, expected) in [
            ("v1,not base64!", Reason::Malformed),
            ("v1,AAAA", Reason::Malformed),
            // Only versions this endpoint cannot check: no secret verifies v1a.
            ("v2,AAAA", Reason::NoVerifiableSignature),
            (SPEC_V1A, Reason::NoVerifiableSignature),
            ("garbage", Reason::NoVerifiableSignature),
        ] {
            let h = headers("msg_1", NOW, header);
            assert_eq!(auth.precheck(&h, NOW), Err(expected), "{header}");
        }
        let stuffed = vec![signature.as_str(); MAX_SIGNATURES + 1].join(" ");
        assert_eq!(
            auth.precheck(&headers("msg_1", NOW, &stuffed), NOW),
            Err(Reason::Malformed)
        );
        let enough = vec![signature.as_str(); MAX_SIGNATURES].join(" ");
        assert_eq!(
            auth.verify(&headers("msg_1", NOW, &enough), BODY, NOW),
            Ok(())
        );
    }

    #[test]
    fn v1a_signatures_verify_with_the_public_key() {
        let (pair, public) = ed25519_key();
        let (other_pair, other_public) = ed25519_key();
        let auth = verifier(&[], &[&public]);
        let good = sign_v1a(&pair, "msg_1", NOW, BODY);
        let h = headers("msg_1", NOW, &good);
        assert_eq!(auth.precheck(&h, NOW), Ok(()));
        assert_eq!(auth.verify(&h, BODY, NOW), Ok(()));
        // Without the prefix, and next to a v1 this endpoint has no secret for.
        let bare = verifier(&[], &[public.strip_prefix(PUBLIC_KEY_PREFIX).unwrap()]);
        let v1 = sign_v1(&key(OLD), "msg_1", NOW, BODY);
        let h = headers("msg_1", NOW, &format!("{v1} {good}"));
        assert_eq!(bare.verify(&h, BODY, NOW), Ok(()));
        // Another key's signature, a changed body or id.
        let foreign = sign_v1a(&other_pair, "msg_1", NOW, BODY);
        let h = headers("msg_1", NOW, &foreign);
        assert_eq!(auth.verify(&h, BODY, NOW), Err(Reason::BadSignature));
        let h = headers("msg_1", NOW, &good);
        assert_eq!(auth.verify(&h, b"{}", NOW), Err(Reason::BadSignature));
        let h = headers("msg_2", NOW, &good);
        assert_eq!(auth.verify(&h, BODY, NOW), Err(Reason::BadSignature));
        // Both schemes configured, and the receiver rotating keys: any one match is enough.
        let both = verifier(&[OLD], &[&other_public, &public]);
        for header in [foreign.clone(), v1.clone(), format!("{good} {v1}")] {
            let h = headers("msg_1", NOW, &header);
            assert_eq!(both.verify(&h, BODY, NOW), Ok(()), "{header}");
        }
        let stale = sign_v1a(&pair, "msg_1", NOW - 301, BODY);
        assert_eq!(
            auth.precheck(&headers("msg_1", NOW - 301, &stale), NOW),
            Err(Reason::StaleTimestamp)
        );
    }

    #[test]
    fn secrets_and_keys_are_checked_at_start_up() {
        let error = |secrets: &[&str], keys: &[&str]| {
            StandardWebhooks::from_config(&StandardWebhooksConfig {
                secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
                public_keys: keys.iter().map(|s| s.to_string()).collect(),
                ..StandardWebhooksConfig::default()
            })
            .unwrap_err()
        };
        let none = error(&[], &[]);
        assert_eq!(none.key(), "auth.standard_webhooks.secrets");
        // Not base64, too short, a key in the secrets: refused, without echoing the value.
        for bad in [
            "whsec_not*base64",
            "whsec_c2hvcnQ=",
            "whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g=",
        ] {
            let e = error(&[OLD, bad], &[]);
            assert_eq!(e.key(), "auth.standard_webhooks.secrets");
            assert!(e.to_string().contains("#2"), "{e}");
            assert!(!e.to_string().contains(&bad[6..]), "{e}");
        }
        let (_, public) = ed25519_key();
        for bad in [
            "whpk_AAAA",
            "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=",
            OLD,
            "whpk_***",
        ] {
            let e = error(&[], &[&public, bad]);
            assert_eq!(e.key(), "auth.standard_webhooks.public_keys");
            assert!(e.to_string().contains("#2"), "{e}");
            assert!(!e.to_string().contains("VEVTVFNJR05J"), "{e}");
        }
        let zero = StandardWebhooks::from_config(&StandardWebhooksConfig {
            secrets: vec![Secret::new(OLD)],
            tolerance_secs: 0,
            ..StandardWebhooksConfig::default()
        })
        .unwrap_err();
        assert_eq!(zero.key(), "auth.standard_webhooks.tolerance_secs");
    }

    #[test]
    fn secrets_and_keys_can_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::write(&secrets, format!("\n{NEW}\n")).unwrap();
        let (pair, public) = ed25519_key();
        let keys = dir.path().join("keys");
        std::fs::write(&keys, format!("{public}\n")).unwrap();
        let auth = StandardWebhooks::from_config(&StandardWebhooksConfig {
            secrets_file: Some(secrets),
            public_keys_file: Some(keys),
            ..StandardWebhooksConfig::default()
        })
        .unwrap();
        for signature in [
            sign_v1(&key(NEW), "msg_1", NOW, BODY),
            sign_v1a(&pair, "msg_1", NOW, BODY),
        ] {
            let h = headers("msg_1", NOW, &signature);
            assert_eq!(auth.verify(&h, BODY, NOW), Ok(()));
        }
        assert!(!format!("{auth:?}").contains("bmV3"));
    }

    #[test]
    fn the_config_parses_one_value_or_lists() {
        let config: StandardWebhooksConfig = serde_json::from_value(serde_json::json!({
            "secrets": OLD,
            "public_keys": SPEC_PUBLIC_KEY,
        }))
        .unwrap();
        assert_eq!(config.secrets, vec![Secret::new(OLD)]);
        assert_eq!(config.public_keys, vec![SPEC_PUBLIC_KEY.to_string()]);
        assert_eq!(config.tolerance_secs, 300);
        assert!(!format!("{config:?}").contains("b2xk"));
        let unknown =
            serde_json::from_value::<StandardWebhooksConfig>(serde_json::json!({"secret": OLD}));
        assert!(unknown.is_err());
    }

    /// `headers` under Svix's names.
    fn svix(standard: &HeaderMap) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (from, to) in STANDARD_HEADERS.iter().zip(SVIX_HEADERS) {
            h.insert(to, standard.get(*from).unwrap().clone());
        }
        h
    }

    #[test]
    fn svix_named_headers_verify_like_the_standard_ones() {
        let auth = verifier(&[OLD], &[]);
        let h = svix(&headers(
            "msg_1",
            NOW,
            &sign_v1(&key(OLD), "msg_1", NOW, BODY),
        ));
        assert_eq!(auth.precheck(&h, NOW), Ok(()));
        assert_eq!(auth.verify(&h, BODY, NOW), Ok(()));
        assert_eq!(message_id(&h), Some("msg_1"));
        assert_eq!(auth.verify(&h, b"{}", NOW), Err(Reason::BadSignature));
        // The spec's vector under Svix's names (what Svix sends by default).
        let spec = svix(&headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_SIGNATURE));
        let auth = verifier(&[SPEC_SECRET], &[]);
        assert_eq!(auth.verify(&spec, SPEC_BODY, SPEC_TIMESTAMP), Ok(()));
        // Missing and repeated headers of that family are refused as in the other.
        for name in SVIX_HEADERS {
            let mut missing = h.clone();
            missing.remove(name);
            assert_eq!(auth.precheck(&missing, NOW), Err(Reason::Missing), "{name}");
            let mut twice = h.clone();
            twice.append(name, h.get(name).unwrap().clone());
            assert_eq!(
                auth.precheck(&twice, NOW),
                Err(Reason::DuplicateSignatureHeader),
                "{name}"
            );
        }
    }

    #[test]
    fn the_two_header_families_are_never_mixed() {
        let auth = verifier(&[OLD], &[]);
        let signature = sign_v1(&key(OLD), "msg_1", NOW, BODY);
        let standard = headers("msg_1", NOW, &signature);
        let svix_only = svix(&standard);
        // One header swapped for its other-family name: each is a mix, even with the values
        // that would verify.
        for (from, to) in STANDARD_HEADERS.iter().zip(SVIX_HEADERS) {
            let mut h = standard.clone();
            let value = h.remove(*from).unwrap();
            h.insert(to, value);
            assert_eq!(
                auth.precheck(&h, NOW),
                Err(Reason::MixedHeaderFamilies),
                "{to}"
            );
            assert_eq!(message_id(&h), None, "{to}");
        }
        // Both families complete and equal: one message copied, read once.
        let mut both = standard.clone();
        both.extend(svix_only.clone());
        assert_eq!(auth.verify(&both, BODY, NOW), Ok(()));
        assert_eq!(message_id(&both), Some("msg_1"));
        // Both complete, one valid and the other another message (or another timestamp):
        // which one the sender meant is a guess, so neither is read.
        let other = sign_v1(&key(OLD), "msg_2", NOW - 1, BODY);
        for (valid, disagreeing) in [
            (&standard, svix(&headers("msg_2", NOW - 1, &other))),
            (&svix_only, headers("msg_2", NOW - 1, &other)),
            (&svix_only, headers("msg_1", NOW, &other)),
        ] {
            let mut h = valid.clone();
            h.extend(disagreeing);
            assert_eq!(auth.precheck(&h, NOW), Err(Reason::MixedHeaderFamilies));
            assert_eq!(auth.verify(&h, BODY, NOW), Err(Reason::MixedHeaderFamilies));
            assert_eq!(message_id(&h), None);
        }
        // A complete family with one stray header of the other.
        let mut stray = svix_only.clone();
        stray.insert(ID_HEADER, HeaderValue::from_static("msg_1"));
        assert_eq!(auth.precheck(&stray, NOW), Err(Reason::MixedHeaderFamilies));
        assert_eq!(
            Reason::MixedHeaderFamilies.kind(),
            "standard_webhooks_mixed_headers"
        );
    }

    #[test]
    fn the_message_id_is_read_once_and_whole() {
        let h = headers("msg_1", NOW, "v1,x");
        assert_eq!(message_id(&h), Some("msg_1"));
        let mut twice = h.clone();
        twice.append(ID_HEADER, HeaderValue::from_static("msg_2"));
        assert_eq!(message_id(&twice), None);
        assert_eq!(message_id(&HeaderMap::new()), None);
    }
}
