//! `[protection]`: the keys that hash and encrypt protected values, and the two value
//! formats (documented in `docs/protection.md`):
//!
//! - a **hash token** `h1.<kid>.<mac>`: `mac` = base64url (no padding) of
//!   HMAC-SHA256(hash key `kid`, the value) — the value's UTF-8 bytes for a string, its compact
//!   JSON text otherwise. Equal values give equal tokens under one key, so consumers can join,
//!   group and count; whoever holds the key can check a guess, nobody else can.
//! - an **encrypted value** `e1.<kid>.<box>`: `box` = base64url (no padding) of
//!   nonce (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes), under encryption key `kid`,
//!   with associated data `<topic> NUL <key> NUL <path>` (the record's topic and Kafka key, the
//!   field's path, e.g. `data.reviewer_email`, `data.matches[].name`, `raw`). The plaintext is
//!   the value's JSON text (the body itself for `raw`). Moved to another record, topic or
//!   field, it no longer opens.
//!
//! Keys are lines `kid:base64(32 bytes)`, inline or in files (Kubernetes Secrets), several at
//! once: the first of a list protects, all of them unprotect (rotation: add the new key
//! first, keep the old ones while records under them are kept). AES-256-GCM and HMAC come from
//! aws-lc-rs and `hmac` (both already in the tree, for TLS and the auth modes). Nonces are
//! random 96-bit values; NIST SP 800-38D bounds a key to 2^32 of them, so rotate the
//! encryption key long before it has sealed billions of values.

use std::path::PathBuf;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::secret::{load_list, secret_list, Secret};
use crate::setting::SettingError;

/// Prefix of a hash token.
pub const HASH_PREFIX: &str = "h1.";
/// Prefix of an encrypted value.
pub const ENCRYPTED_PREFIX: &str = "e1.";
/// Key length, bytes (HMAC-SHA256 and AES-256 keys alike).
pub const KEY_BYTES: usize = 32;
/// Longest key id.
pub const MAX_KID_LEN: usize = 32;

/// `[protection]`: the keys of protected fields and bodies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtectionConfig {
    /// Keys of `hash` fields, `kid:base64(32 bytes)` each; the first makes tokens. Tokens
    /// change with the key: rotate only when joins across the change do not matter.
    #[serde(deserialize_with = "secret_list")]
    pub hash_keys: Vec<Secret>,
    /// A file with one hash key per line, read at start-up; added to `hash_keys`.
    pub hash_keys_file: Option<PathBuf>,
    /// Keys of `encrypt` fields and encrypted bodies, `kid:base64(32 bytes)` each; the first
    /// encrypts, every one decrypts (list the new key first and keep the old ones).
    #[serde(deserialize_with = "secret_list")]
    pub encryption_keys: Vec<Secret>,
    /// A file with one encryption key per line, read at start-up; added to `encryption_keys`.
    pub encryption_keys_file: Option<PathBuf>,
}

/// Why a protected value cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnprotectError {
    /// Not `e1.<kid>.<box>`.
    #[error("not an encrypted value")]
    Malformed,
    /// Encrypted under a key id this keyring does not hold.
    #[error("encrypted under key `{0}`, which is not configured")]
    UnknownKey(String),
    /// The box does not open: another topic, key or field, or tampered.
    #[error("the value does not decrypt for this record and field")]
    Rejected,
}

/// A key id and its key.
struct Keyed<K> {
    kid: String,
    key: K,
}

/// The loaded keys.
#[derive(Default)]
pub struct Keyring {
    hash: Vec<Keyed<hmac::Hmac<Sha256>>>,
    encryption: Vec<Keyed<RandomizedNonceKey>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "hash",
                &self.hash.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .field(
                "encryption",
                &self.encryption.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    /// Keys given as their lines (`kid:base64`), first first: for tools and tests that hold
    /// them in hand rather than in a config.
    pub fn from_lines(hash: &[&str], encryption: &[&str]) -> Result<Self, SettingError> {
        Self::from_config(&ProtectionConfig {
            hash_keys: hash.iter().map(|k| Secret::new(*k)).collect(),
            encryption_keys: encryption.iter().map(|k| Secret::new(*k)).collect(),
            ..ProtectionConfig::default()
        })
    }

    /// Reads every key once. Keys are relative to `protection`.
    pub fn from_config(config: &ProtectionConfig) -> Result<Self, SettingError> {
        let hash = parse_keys(
            "hash_keys",
            &load_list(
                "hash_keys",
                &config.hash_keys,
                config.hash_keys_file.as_deref(),
            )?,
        )?
        .into_iter()
        .map(|(kid, bytes)| Keyed {
            kid,
            key: <hmac::Hmac<Sha256> as Mac>::new_from_slice(&bytes)
                .expect("HMAC takes keys of any length"),
        })
        .collect();
        let encryption = parse_keys(
            "encryption_keys",
            &load_list(
                "encryption_keys",
                &config.encryption_keys,
                config.encryption_keys_file.as_deref(),
            )?,
        )?
        .into_iter()
        .map(|(kid, bytes)| Keyed {
            kid,
            key: RandomizedNonceKey::new(&AES_256_GCM, &bytes).expect("a 32-byte AES-256 key"),
        })
        .collect::<Vec<_>>();
        if !encryption.is_empty() {
            // aws-lc seeds its random generator on first use from CPU timing jitter (about
            // 400 million instructions): done here, at start-up, rather than by the first
            // webhook, whose answer would wait for it.
            let _ = aws_lc_rs::rand::fill(&mut [0u8; 16]);
        }
        Ok(Self { hash, encryption })
    }

    /// True when there is a key to hash with.
    pub fn can_hash(&self) -> bool {
        !self.hash.is_empty()
    }

    /// True when there is a key to encrypt with.
    pub fn can_encrypt(&self) -> bool {
        !self.encryption.is_empty()
    }

    /// The token of `value` under the first hash key. Panics without one: start-up checks
    /// that a keyring used for hashing has a key.
    pub fn hash(&self, value: &[u8]) -> String {
        let first = self.hash.first().expect("a hash key (checked at start-up)");
        token(first, value)
    }

    /// The token of `value` under every hash key (a match against records of any key).
    pub fn hash_all(&self, value: &[u8]) -> Vec<String> {
        self.hash.iter().map(|k| token(k, value)).collect()
    }

    /// Encrypts `plaintext` under the first encryption key, bound to `aad`. Panics without
    /// one (checked at start-up).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let first = self
            .encryption
            .first()
            .expect("an encryption key (checked at start-up)");
        let mut in_out = plaintext.to_vec();
        let nonce = first
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .expect("sealing with a valid key and random nonce");
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        format!(
            "{ENCRYPTED_PREFIX}{}.{}",
            first.kid,
            URL_SAFE_NO_PAD.encode(sealed)
        )
    }

    /// Opens an encrypted value with the key it names, bound to `aad`.
    pub fn decrypt(&self, value: &str, aad: &[u8]) -> Result<Vec<u8>, UnprotectError> {
        let rest = value
            .strip_prefix(ENCRYPTED_PREFIX)
            .ok_or(UnprotectError::Malformed)?;
        let (kid, sealed) = rest.split_once('.').ok_or(UnprotectError::Malformed)?;
        let key = self
            .encryption
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| UnprotectError::UnknownKey(kid.to_string()))?;
        let mut sealed = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| UnprotectError::Malformed)?;
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(UnprotectError::Malformed);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN])
            .map_err(|_| UnprotectError::Malformed)?;
        let opened = key
            .key
            .open_in_place(nonce, Aad::from(aad), &mut sealed[NONCE_LEN..])
            .map_err(|_| UnprotectError::Rejected)?;
        Ok(opened.to_vec())
    }
}

/// The associated data of a protected value: `<topic> NUL <key> NUL <path>`.
pub fn associated_data(topic: &str, key: &str, path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(topic.len() + key.len() + path.len() + 2);
    aad.extend_from_slice(topic.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key.as_bytes());
    aad.push(0);
    aad.extend_from_slice(path.as_bytes());
    aad
}

/// A fresh key line `kid:base64(32 random bytes)` (`riskos-connector keys generate`).
pub fn generate(kid: &str) -> Result<String, SettingError> {
    check_kid("kid", kid)?;
    let mut bytes = [0u8; KEY_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source");
    Ok(format!("{kid}:{}", STANDARD.encode(bytes)))
}

fn token(key: &Keyed<hmac::Hmac<Sha256>>, value: &[u8]) -> String {
    let mut mac = key.key.clone();
    mac.update(value);
    format!(
        "{HASH_PREFIX}{}.{}",
        key.kid,
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn check_kid(key: &'static str, kid: &str) -> Result<(), SettingError> {
    let ok = !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SettingError::invalid(
            key,
            format!("a key id must be 1 to {MAX_KID_LEN} letters, digits, `-` or `_`"),
        ))
    }
}

/// `kid:base64` lines → (kid, 32 bytes); ids unique. Messages never quote a key.
fn parse_keys(key: &'static str, lines: &[Secret]) -> Result<Vec<(String, Vec<u8>)>, SettingError> {
    let mut keys: Vec<(String, Vec<u8>)> = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let (kid, encoded) =
            line.expose().trim().split_once(':').ok_or_else(|| {
                SettingError::invalid(key, format!("key {n} is not `kid:base64`"))
            })?;
        check_kid(key, kid)?;
        let bytes = STANDARD
            .decode(encoded.trim())
            .ok()
            .filter(|b| b.len() == KEY_BYTES)
            .ok_or_else(|| {
                SettingError::invalid(
                    key,
                    format!("key {n} (`{kid}`) must be {KEY_BYTES} bytes in standard base64"),
                )
            })?;
        if keys.iter().any(|(k, _)| k == kid) {
            return Err(SettingError::invalid(
                key,
                format!("key id `{kid}` is listed twice"),
            ));
        }
        keys.push((kid.to_string(), bytes));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(hash: &[&str], encryption: &[&str]) -> Keyring {
        Keyring::from_lines(hash, encryption).unwrap()
    }

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn tokens_are_stable_per_key_and_change_with_it() {
        let a = keyring(&[K1], &[]);
        let b = keyring(&[K1], &[]);
        let c = keyring(&[K2, K1], &[]);
        assert_eq!(a.hash(b"alice@example.com"), b.hash(b"alice@example.com"));
        assert!(a.hash(b"x").starts_with("h1.k1."));
        assert_ne!(a.hash(b"alice@example.com"), c.hash(b"alice@example.com"));
        assert!(c
            .hash_all(b"alice@example.com")
            .contains(&a.hash(b"alice@example.com")));
        // RFC 4231-style check against an independent HMAC: the token is the MAC itself.
        let mut mac =
            <hmac::Hmac<Sha256> as Mac>::new_from_slice(&(0u8..32).collect::<Vec<_>>()).unwrap();
        mac.update(b"x");
        let expected = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(a.hash(b"x"), format!("h1.k1.{expected}"));
    }

    #[test]
    fn encrypted_values_open_only_for_their_record_and_field() {
        let ring = keyring(&[], &[K1]);
        let aad = associated_data("riskos.create.cases", "tok-1", "data.email");
        let sealed = ring.encrypt(b"\"alice@example.com\"", &aad);
        assert!(sealed.starts_with("e1.k1."));
        assert!(!sealed.contains("alice"));
        assert_eq!(
            ring.decrypt(&sealed, &aad).unwrap(),
            b"\"alice@example.com\""
        );
        assert_ne!(
            sealed,
            ring.encrypt(b"\"alice@example.com\"", &aad),
            "fresh nonce"
        );
        for other in [
            associated_data("riskos.other", "tok-1", "data.email"),
            associated_data("riskos.create.cases", "tok-2", "data.email"),
            associated_data("riskos.create.cases", "tok-1", "data.name"),
        ] {
            assert_eq!(ring.decrypt(&sealed, &other), Err(UnprotectError::Rejected));
        }
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(ring.decrypt(&tampered, &aad), Err(UnprotectError::Rejected));
    }

    #[test]
    fn after_a_rotation_old_values_still_open() {
        let old = keyring(&[], &[K1]);
        let sealed = old.encrypt(b"1", b"a");
        let rotated = keyring(&[], &[K2, K1]);
        assert!(rotated.encrypt(b"1", b"a").starts_with("e1.k2."));
        assert_eq!(rotated.decrypt(&sealed, b"a").unwrap(), b"1");
        let dropped = keyring(&[], &[K2]);
        assert_eq!(
            dropped.decrypt(&sealed, b"a"),
            Err(UnprotectError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn bad_keys_are_refused_without_quoting_them() {
        for (line, words) in [
            ("no-colon", "kid:base64"),
            ("k1:c2hvcnQ=", "32 bytes"),
            (
                "bad kid:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "key id",
            ),
        ] {
            let error = Keyring::from_config(&ProtectionConfig {
                hash_keys: vec![Secret::new(line)],
                ..ProtectionConfig::default()
            })
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("hash_keys") && error.contains(words),
                "{error}"
            );
            assert!(!error.contains("c2hvcnQ"), "{error}");
        }
        let twice = Keyring::from_config(&ProtectionConfig {
            encryption_keys: vec![Secret::new(K1), Secret::new(K1)],
            ..ProtectionConfig::default()
        });
        assert!(twice.unwrap_err().to_string().contains("twice"));
        let generated = generate("2026-11").unwrap();
        assert!(keyring(&[&generated], &[&generated]).can_encrypt());
    }
}
