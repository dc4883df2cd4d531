//! `[protection]`: the keys that hash and encrypt protected values, and the value formats
//! (documented in `docs/protection.md`, with the arithmetic of their bounds):
//!
//! - a **hash token** `h2.<kid>.<fp>.<mac>`: `mac` = base64url (no padding) of
//!   HMAC-SHA256(hash key `kid`, the value) — the value's UTF-8 bytes for a string, its compact
//!   JSON text otherwise. Equal values give equal tokens under one key, so consumers can join,
//!   group and count; whoever holds the key can check a guess, nobody else can.
//! - an **encrypted value** `e2.<kid>.<fp>.<box>`: `box` = base64url (no padding) of
//!   salt (32 random bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes). Each value is sealed
//!   under its own AES key, HKDF-Expand-SHA256(PRK = key `kid`, info = `riskos-connector e2`
//!   ‖ salt, 32 bytes) — one HMAC-SHA256 of `info ‖ 0x01` —, with the all-zero nonce: no AES-GCM
//!   key ever seals twice, so the 2^32 bound of random nonces under one key does not apply;
//!   what bounds a key is a collision of two 256-bit salts. Associated data `<topic> NUL <key> NUL <path>` (the record's topic and
//!   Kafka key, the field's path with array indexes, e.g. `data.reviewer_email`,
//!   `data.matches[2].name`, `raw`). The plaintext is the value's JSON text (the body itself
//!   for `raw`). Moved to another record, topic, field or array item, it no longer opens.
//!
//! `fp` is the key's **fingerprint**, base64url of the first 6 bytes of
//! SHA-256(`riskos-connector key fingerprint` NUL key): it binds the id to the key, so a key
//! regenerated under an old id is told apart (reported as another key) instead of being taken
//! for it. It says nothing usable about the key.
//!
//! The first formats still open and match: `h1.<kid>.<mac>` (the same `mac`) and
//! `e1.<kid>.<box>`, `box` = nonce (12) ‖ ciphertext ‖ tag under the key itself, bound to the
//! path with `[]` for every array index.
//!
//! Keys are lines `kid:base64(32 bytes)`, inline or in files (Kubernetes Secrets), several at
//! once: the first of a list protects, all of them unprotect (rotation: add the new key
//! first, keep the old ones while records under them are kept). AES-256-GCM and HMAC-SHA256
//! come from aws-lc-rs (already in the tree, for TLS): its SHA-256 picks SHA-NI, AVX2 or AVX by
//! CPU at run time, and a key's HMAC pads are absorbed once, when the key is loaded.

use std::path::PathBuf;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::common::secret::{load_list, secret_list, Secret};
use crate::common::setting::SettingError;

/// Prefix of a hash token.
pub const HASH_PREFIX: &str = "h2.";
/// Prefix of a hash token of the first format (no fingerprint).
pub const HASH_PREFIX_V1: &str = "h1.";
/// Prefix of an encrypted value.
pub const ENCRYPTED_PREFIX: &str = "e2.";
/// Prefix of an encrypted value of the first format (one AES-GCM key, random nonces).
pub const ENCRYPTED_PREFIX_V1: &str = "e1.";
/// Key length, bytes (HMAC-SHA256 and AES-256 keys alike).
pub const KEY_BYTES: usize = 32;
/// Longest key id.
pub const MAX_KID_LEN: usize = 32;
/// Random salt of an `e2` box, bytes: one HKDF input per value.
pub const SALT_BYTES: usize = 32;
/// Characters of a key fingerprint (6 bytes, base64url).
pub const FINGERPRINT_LEN: usize = 8;

/// What HKDF's `info` starts with for an `e2` value (the salt follows): names the format, so
/// the derived key serves nothing else.
const E2_INFO: &[u8] = b"riskos-connector e2";
/// The nonce of every `e2` value: each derived key seals exactly one value.
const E2_NONCE: [u8; NONCE_LEN] = [0; NONCE_LEN];
/// What a fingerprint hashes before the key.
const FINGERPRINT_LABEL: &[u8] = b"riskos-connector key fingerprint\0";
/// Characters of a MAC (32 bytes, base64url).
const MAC_LEN: usize = 43;
/// AES-GCM tag, bytes.
const TAG_BYTES: usize = 16;

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

/// Why a protected value cannot be read back (or matched).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnprotectError {
    /// Not a token or box of a known format.
    #[error("not a protected value")]
    Malformed,
    /// Made under a key id this keyring does not hold.
    #[error("made under key `{0}`, which is not configured")]
    UnknownKey(String),
    /// Made under a key of a held id but other material: a key regenerated under an old id.
    #[error(
        "made under key `{kid}` with fingerprint `{fingerprint}`, but the configured `{kid}` \
         has fingerprint `{held}`: another key under the same id (regenerated?)"
    )]
    OtherKey {
        /// The key id.
        kid: String,
        /// The value's key fingerprint.
        fingerprint: String,
        /// The held key's fingerprint.
        held: String,
    },
    /// The box does not open: another topic, key, field or array item, or tampered (or, for
    /// an `e1` box, which names no fingerprint, another key under the same id).
    #[error("the value does not decrypt for this record and field")]
    Rejected,
}

/// The two kinds of protected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A hash token (`h1`, `h2`).
    Hash,
    /// An encrypted value (`e1`, `e2`).
    Encrypted,
}

/// A protected value's parts, read from its text without any key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label<'a> {
    /// Hash token or encrypted value.
    pub kind: Kind,
    /// The format's version: 1 (`h1`, `e1`) or 2.
    pub version: u8,
    /// The key id.
    pub kid: &'a str,
    /// The key's fingerprint (version 2).
    pub fingerprint: Option<&'a str>,
    /// The MAC or the box, base64url.
    pub body: &'a str,
}

/// The parts of `text` when it has the shape of a hash token or an encrypted value.
pub fn label(text: &str) -> Option<Label<'_>> {
    let (kind, version, rest) = if let Some(rest) = text.strip_prefix(HASH_PREFIX) {
        (Kind::Hash, 2, rest)
    } else if let Some(rest) = text.strip_prefix(ENCRYPTED_PREFIX) {
        (Kind::Encrypted, 2, rest)
    } else if let Some(rest) = text.strip_prefix(HASH_PREFIX_V1) {
        (Kind::Hash, 1, rest)
    } else if let Some(rest) = text.strip_prefix(ENCRYPTED_PREFIX_V1) {
        (Kind::Encrypted, 1, rest)
    } else {
        return None;
    };
    let (kid, rest) = rest.split_once('.')?;
    let (fingerprint, body) = if version == 2 {
        let (fingerprint, body) = rest.split_once('.')?;
        let ok = fingerprint.len() == FINGERPRINT_LEN && is_base64url(fingerprint);
        (Some(Some(fingerprint).filter(|_| ok)?), body)
    } else {
        (None, rest)
    };
    let body_ok = match (kind, version) {
        (Kind::Hash, _) => body.len() == MAC_LEN,
        (Kind::Encrypted, 1) => body.len() >= base64_len(NONCE_LEN + TAG_BYTES),
        (Kind::Encrypted, _) => body.len() >= base64_len(SALT_BYTES + TAG_BYTES),
    };
    (is_kid(kid) && body_ok && is_base64url(body)).then_some(Label {
        kind,
        version,
        kid,
        fingerprint,
        body,
    })
}

/// True when `text` has the shape of an encrypted value (`e2`, `e1`).
pub fn is_encrypted(text: &str) -> bool {
    label(text).is_some_and(|l| l.kind == Kind::Encrypted)
}

/// A protected value's path, as the two encrypted formats bind it: with array indexes
/// (`data.matches[2].name`, `e2`) and with `[]` for every index (`data.matches[].name`, `e1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath {
    indexed: String,
    unindexed: String,
}

/// `[index]` appended to a path: how an `e2` value of an array item is bound.
pub(super) fn push_index(path: &mut String, index: usize) {
    use std::fmt::Write as _;
    let _ = write!(path, "[{index}]");
}

/// Where a [`FieldPath`] was, to go back to.
#[derive(Debug, Clone, Copy)]
pub struct PathMark(usize, usize);

impl FieldPath {
    /// A path of one member (`raw`, `description`, `data`).
    pub fn of(name: &str) -> Self {
        let mut path = Self::default();
        path.push_member(name);
        path
    }

    /// Steps into an object member (a record field, a map's value under its key).
    pub fn push_member(&mut self, name: &str) {
        for path in [&mut self.indexed, &mut self.unindexed] {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
        }
    }

    /// Steps into array item `index`.
    pub fn push_index(&mut self, index: usize) {
        push_index(&mut self.indexed, index);
        self.unindexed.push_str("[]");
    }

    /// Where the path is now.
    pub fn mark(&self) -> PathMark {
        PathMark(self.indexed.len(), self.unindexed.len())
    }

    /// Back to `mark`.
    pub fn truncate(&mut self, mark: PathMark) {
        self.indexed.truncate(mark.0);
        self.unindexed.truncate(mark.1);
    }

    /// With array indexes: what `e2` binds, and how messages name a value.
    pub fn indexed(&self) -> &str {
        &self.indexed
    }

    /// With `[]` for each index: what `e1` bound.
    pub fn unindexed(&self) -> &str {
        &self.unindexed
    }
}

/// A key as loaded: its id, its fingerprint, and what it is used as (`K`).
struct Keyed<K> {
    kid: String,
    fingerprint: String,
    key: K,
}

impl<K> Keyed<K> {
    fn new(kid: String, bytes: &[u8; KEY_BYTES], key: K) -> Self {
        Self {
            kid,
            fingerprint: fingerprint(bytes),
            key,
        }
    }

    /// `<prefix><kid>.<fp>.`, with room for `rest` more bytes.
    fn labelled(&self, prefix: &str, rest: usize) -> String {
        let mut text = String::with_capacity(
            prefix.len() + self.kid.len() + self.fingerprint.len() + 2 + rest,
        );
        for part in [prefix, &self.kid, ".", &self.fingerprint, "."] {
            text.push_str(part);
        }
        text
    }
}

/// What an encryption key is used as: `expand` (HMAC-SHA256 keyed with it, the pads absorbed
/// once) derives each `e2` value's key; `v1` opens `e1` boxes.
struct EncryptionKey {
    expand: aws_lc_rs::hmac::Key,
    v1: LessSafeKey,
}

/// The held key `label` was made under: its id held, and its fingerprint when it names one.
fn find<'k, K>(keys: &'k [Keyed<K>], label: &Label<'_>) -> Result<&'k Keyed<K>, UnprotectError> {
    let key = keys
        .iter()
        .find(|k| k.kid == label.kid)
        .ok_or_else(|| UnprotectError::UnknownKey(label.kid.to_string()))?;
    match label.fingerprint {
        Some(fingerprint) if fingerprint != key.fingerprint => Err(UnprotectError::OtherKey {
            kid: label.kid.to_string(),
            fingerprint: fingerprint.to_string(),
            held: key.fingerprint.clone(),
        }),
        _ => Ok(key),
    }
}

/// The loaded keys.
#[derive(Default)]
pub struct Keyring {
    hash: Vec<Keyed<aws_lc_rs::hmac::Key>>,
    encryption: Vec<Keyed<EncryptionKey>>,
}

impl std::fmt::Debug for Keyring {
    /// Ids and fingerprints, never a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.fingerprints()).finish()
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
        .map(|(kid, bytes)| {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &bytes);
            Keyed::new(kid, &bytes, key)
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
        .map(|(kid, bytes)| {
            let key = EncryptionKey {
                expand: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &bytes),
                v1: aes_key(&bytes),
            };
            Keyed::new(kid, &bytes, key)
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

    /// Each key's kind, id and fingerprint, first first (never the key): what start-up logs
    /// and `Debug` shows.
    pub fn fingerprints(&self) -> Vec<String> {
        let hash = self.hash.iter().map(|k| ("hash", &k.kid, &k.fingerprint));
        let encryption = self
            .encryption
            .iter()
            .map(|k| ("encryption", &k.kid, &k.fingerprint));
        hash.chain(encryption)
            .map(|(kind, kid, fp)| format!("{kind} key `{kid}`: fingerprint {fp}"))
            .collect()
    }

    /// The token of `value` under the first hash key. Panics without one: start-up checks
    /// that a keyring used for hashing has a key.
    pub fn hash(&self, value: &[u8]) -> String {
        let first = self.hash.first().expect("a hash key (checked at start-up)");
        let mut token = first.labelled(HASH_PREFIX, MAC_LEN);
        URL_SAFE_NO_PAD.encode_string(aws_lc_rs::hmac::sign(&first.key, value), &mut token);
        token
    }

    /// Every token `value` can carry: under each hash key, in each format (`h2`, `h1`), to
    /// match records made under any key at any time.
    pub fn hash_all(&self, value: &[u8]) -> Vec<String> {
        self.hash
            .iter()
            .flat_map(|k| {
                let mac = URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&k.key, value));
                [
                    format!("{HASH_PREFIX}{}.{}.{mac}", k.kid, k.fingerprint),
                    format!("{HASH_PREFIX_V1}{}.{mac}", k.kid),
                ]
            })
            .collect()
    }

    /// Whether this keyring holds the key `label` was made under: `UnknownKey` for an id it
    /// does not hold, `OtherKey` for a held id whose fingerprint is not the value's.
    pub fn holds(&self, label: &Label<'_>) -> Result<(), UnprotectError> {
        match label.kind {
            Kind::Hash => find(&self.hash, label).map(drop),
            Kind::Encrypted => find(&self.encryption, label).map(drop),
        }
    }

    /// Encrypts `plaintext` under the first encryption key, bound to the record's `topic` and
    /// `key` and the value's `path` (with array indexes). Panics without a key (checked at
    /// start-up).
    pub fn encrypt(&self, plaintext: &[u8], topic: &str, key: &str, path: &str) -> String {
        let first = self
            .encryption
            .first()
            .expect("an encryption key (checked at start-up)");
        // One buffer, salt ‖ plaintext → salt ‖ ciphertext ‖ tag, encoded once: no copies, no
        // formatting machinery (this runs for every protected value of every webhook).
        let box_len = SALT_BYTES + plaintext.len() + TAG_BYTES;
        let mut sealed = Vec::with_capacity(box_len);
        sealed.resize(SALT_BYTES, 0);
        fresh_salt(&mut sealed);
        let value_key = derive(&first.key, &sealed);
        sealed.extend_from_slice(plaintext);
        let tag = value_key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(E2_NONCE),
                Aad::from(associated_data(topic, key, path)),
                &mut sealed[SALT_BYTES..],
            )
            .expect("sealing with a fresh key");
        sealed.extend_from_slice(tag.as_ref());
        let mut value = first.labelled(ENCRYPTED_PREFIX, base64_len(box_len));
        URL_SAFE_NO_PAD.encode_string(&sealed, &mut value);
        value
    }

    /// Opens an encrypted value (`e2`, or `e1`) with the key it names, bound to the record's
    /// `topic` and `key` and the value's `path`.
    pub fn decrypt(
        &self,
        value: &str,
        topic: &str,
        key: &str,
        path: &FieldPath,
    ) -> Result<Vec<u8>, UnprotectError> {
        let label = label(value)
            .filter(|l| l.kind == Kind::Encrypted)
            .ok_or(UnprotectError::Malformed)?;
        let held = find(&self.encryption, &label)?;
        let mut sealed = URL_SAFE_NO_PAD
            .decode(label.body)
            .map_err(|_| UnprotectError::Malformed)?;
        // e2: salt, then ciphertext under the value's derived key and the zero nonce, bound to
        // the indexed path. e1: nonce, then ciphertext under the key itself, bound to `[]`s.
        let v2 = label.version == 2;
        let start = if v2 { SALT_BYTES } else { NONCE_LEN };
        if sealed.len() < start + TAG_BYTES {
            return Err(UnprotectError::Malformed);
        }
        let derived;
        let (opener, nonce, path) = if v2 {
            derived = derive(&held.key, &sealed[..SALT_BYTES]);
            let nonce = Nonce::assume_unique_for_key(E2_NONCE);
            (&derived, nonce, path.indexed())
        } else {
            let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN])
                .map_err(|_| UnprotectError::Malformed)?;
            (&held.key.v1, nonce, path.unindexed())
        };
        let aad = Aad::from(associated_data(topic, key, path));
        let opened = opener
            .open_in_place(nonce, aad, &mut sealed[start..])
            .map_err(|_| UnprotectError::Rejected)?;
        Ok(opened.to_vec())
    }
}

/// Random bytes for salts, per thread, drawn from aws-lc's generator this many at a time.
const SALT_POOL_BYTES: usize = 32 * SALT_BYTES;

/// Fills `salt` with random bytes from this thread's pool, refilled from aws-lc's generator
/// when empty: one call for 32 salts instead of one each (a call costs about 2,000
/// instructions, a fifth of sealing a small value). A salt is public — it is stored in the box —
/// so the salts waiting in the pool hide nothing; what matters is that they are random and
/// never reused, and each byte of the pool is handed out once.
fn fresh_salt(salt: &mut [u8]) {
    use std::cell::RefCell;
    thread_local! {
        static POOL: RefCell<(usize, [u8; SALT_POOL_BYTES])> =
            const { RefCell::new((SALT_POOL_BYTES, [0; SALT_POOL_BYTES])) };
    }
    debug_assert!(salt.len() <= SALT_POOL_BYTES);
    POOL.with_borrow_mut(|(used, pool)| {
        if *used + salt.len() > SALT_POOL_BYTES {
            aws_lc_rs::rand::fill(pool).expect("the system's random source");
            *used = 0;
        }
        salt.copy_from_slice(&pool[*used..*used + salt.len()]);
        *used += salt.len();
    });
}

/// An `e2` value's AES-256-GCM key: HKDF-Expand-SHA256 (RFC 5869) with the encryption key as
/// PRK (already a uniformly random key, so no Extract: RFC 5869, 3.3), info `E2_INFO ‖ salt`,
/// 32 bytes — one HMAC-SHA256 block over `E2_INFO ‖ salt ‖ 0x01`, the key's pads absorbed once.
fn derive(key: &EncryptionKey, salt: &[u8]) -> LessSafeKey {
    let mut mac = aws_lc_rs::hmac::Context::with_key(&key.expand);
    mac.update(E2_INFO);
    mac.update(salt);
    mac.update(&[1]);
    aes_key(mac.sign().as_ref())
}

fn aes_key(bytes: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key"))
}

/// A key's fingerprint: base64url of the first 6 bytes of SHA-256(label ‖ key).
pub fn fingerprint(key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(FINGERPRINT_LABEL)
        .chain_update(key)
        .finalize();
    URL_SAFE_NO_PAD.encode(&digest[..6])
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

/// A fresh key (`riskos-connector keys generate`).
#[derive(Debug)]
pub struct GeneratedKey {
    /// `kid:base64(32 random bytes)`, a line for a key file.
    pub line: String,
    /// Its fingerprint, as its tokens and boxes will name it.
    pub fingerprint: String,
}

/// A fresh key under `kid`.
pub fn generate(kid: &str) -> Result<GeneratedKey, SettingError> {
    check_kid("kid", kid)?;
    let mut bytes = [0u8; KEY_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source");
    Ok(GeneratedKey {
        line: format!("{kid}:{}", STANDARD.encode(bytes)),
        fingerprint: fingerprint(&bytes),
    })
}

/// A key id no other generated key has: `k` and 8 random base32 characters. What
/// `keys generate` and the Helm chart use by default, so a key made again never reuses an id.
pub fn fresh_kid() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source");
    std::iter::once('k')
        .chain(bytes.iter().map(|b| ALPHABET[usize::from(b % 32)] as char))
        .collect()
}

fn base64_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// Key ids use base64url's alphabet, so a token's or box's parts split on `.` alone.
fn is_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KID_LEN && is_base64url(kid)
}

fn is_base64url(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_kid(key: &'static str, kid: &str) -> Result<(), SettingError> {
    if is_kid(kid) {
        Ok(())
    } else {
        Err(SettingError::invalid(
            key,
            format!("a key id must be 1 to {MAX_KID_LEN} letters, digits, `-` or `_`"),
        ))
    }
}

/// `kid:base64` lines → (kid, 32 bytes); ids unique. Messages never quote a key.
fn parse_keys(
    key: &'static str,
    lines: &[Secret],
) -> Result<Vec<(String, [u8; KEY_BYTES])>, SettingError> {
    let mut keys: Vec<(String, [u8; KEY_BYTES])> = Vec::with_capacity(lines.len());
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
            .and_then(|b| <[u8; KEY_BYTES]>::try_from(b).ok())
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
    use hmac::Mac;

    fn keyring(hash: &[&str], encryption: &[&str]) -> Keyring {
        Keyring::from_lines(hash, encryption).unwrap()
    }

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    /// Another key under the id `k1`: a key regenerated under an old id.
    const K1_AGAIN: &str = "k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    fn path(indexed: &[&str]) -> FieldPath {
        let mut path = FieldPath::default();
        for step in indexed {
            match step.parse::<usize>() {
                Ok(index) => path.push_index(index),
                Err(_) => path.push_member(step),
            }
        }
        path
    }

    #[test]
    fn tokens_are_stable_per_key_name_its_fingerprint_and_change_with_the_key() {
        let a = keyring(&[K1], &[]);
        let b = keyring(&[K1], &[]);
        let c = keyring(&[K2, K1], &[]);
        assert_eq!(a.hash(b"alice@example.com"), b.hash(b"alice@example.com"));
        let fp = fingerprint(&(0u8..32).collect::<Vec<_>>());
        assert!(a.hash(b"x").starts_with(&format!("h2.k1.{fp}.")));
        assert_ne!(a.hash(b"alice@example.com"), c.hash(b"alice@example.com"));
        assert!(c
            .hash_all(b"alice@example.com")
            .contains(&a.hash(b"alice@example.com")));
        // RFC 4231-style check against an independent HMAC: the MAC is the token's last part,
        // the same in both formats.
        let mut mac =
            <hmac::Hmac<Sha256> as Mac>::new_from_slice(&(0u8..32).collect::<Vec<_>>()).unwrap();
        mac.update(b"x");
        let expected = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(a.hash(b"x"), format!("h2.k1.{fp}.{expected}"));
        assert!(a.hash_all(b"x").contains(&format!("h1.k1.{expected}")));
    }

    #[test]
    fn a_fingerprint_is_the_documented_digest_and_differs_between_keys() {
        // SHA-256("riskos-connector key fingerprint" NUL key), first 6 bytes, base64url.
        let key: Vec<u8> = (0u8..32).collect();
        let mut input = b"riskos-connector key fingerprint\0".to_vec();
        input.extend_from_slice(&key);
        let digest = Sha256::digest(&input);
        assert_eq!(fingerprint(&key), URL_SAFE_NO_PAD.encode(&digest[..6]));
        assert_eq!(fingerprint(&key).len(), FINGERPRINT_LEN);
        assert_ne!(fingerprint(&key), fingerprint(&[7u8; 32]));
    }

    #[test]
    fn encrypted_values_open_only_for_their_record_field_and_item() {
        let ring = keyring(&[], &[K1]);
        let sealed = ring.encrypt(
            b"\"pep\"",
            "riskos.create.cases",
            "tok-1",
            "data.tags[1].name",
        );
        let fp = fingerprint(&(0u8..32).collect::<Vec<_>>());
        assert!(sealed.starts_with(&format!("e2.k1.{fp}.")), "{sealed}");
        assert!(!sealed.contains("pep"));
        let here = path(&["data", "tags", "1", "name"]);
        assert_eq!(
            ring.decrypt(&sealed, "riskos.create.cases", "tok-1", &here)
                .unwrap(),
            b"\"pep\""
        );
        assert_ne!(
            sealed,
            ring.encrypt(
                b"\"pep\"",
                "riskos.create.cases",
                "tok-1",
                "data.tags[1].name"
            ),
            "fresh salt"
        );
        for (topic, key, other) in [
            ("riskos.other", "tok-1", here.clone()),
            ("riskos.create.cases", "tok-2", here.clone()),
            (
                "riskos.create.cases",
                "tok-1",
                path(&["data", "tags", "1", "note"]),
            ),
            // Another item of the same array: items cannot be swapped.
            (
                "riskos.create.cases",
                "tok-1",
                path(&["data", "tags", "0", "name"]),
            ),
        ] {
            assert_eq!(
                ring.decrypt(&sealed, topic, key, &other),
                Err(UnprotectError::Rejected),
                "{}",
                other.indexed()
            );
        }
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            ring.decrypt(&tampered, "riskos.create.cases", "tok-1", &here),
            Err(UnprotectError::Rejected)
        );
    }

    #[test]
    fn each_value_is_sealed_under_its_own_hkdf_derived_key() {
        // Opened by the formula: HKDF-Expand-SHA256 of the key with info "riskos-connector e2"
        // ‖ salt (for 32 bytes, HMAC-SHA256(key, info ‖ 0x01)) gives the AES-256-GCM key, used
        // with the zero nonce; an AES-GCM key never seals twice. (Python's `cryptography`
        // HKDFExpand and Java's javax.crypto open it too: tests/kafka/consumers.rs.)
        let ring = keyring(&[], &[K1]);
        let sealed = ring.encrypt(b"42", "t", "k", "data.n");
        let label = label(&sealed).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(label.body).unwrap();
        let (salt, ciphertext) = bytes.split_at(SALT_BYTES);
        let key: Vec<u8> = (0u8..32).collect();
        let mut info = b"riskos-connector e2".to_vec();
        info.extend_from_slice(salt);
        let okm = hmac_sha256(&key, &[info.as_slice(), &[1]].concat());
        let value_key = aes_key(&okm);
        let nonce = Nonce::assume_unique_for_key([0; 12]);
        let mut in_out = ciphertext.to_vec();
        let aad = Aad::from(associated_data("t", "k", "data.n"));
        assert_eq!(
            value_key.open_in_place(nonce, aad, &mut in_out).unwrap(),
            b"42"
        );
        // A fresh salt each time, across refills of the salt pool: no two values share a key.
        let salts: std::collections::HashSet<Vec<u8>> = (0..64)
            .map(|_| {
                let sealed = ring.encrypt(b"42", "t", "k", "data.n");
                URL_SAFE_NO_PAD.decode(label_body(&sealed)).unwrap()[..SALT_BYTES].to_vec()
            })
            .collect();
        assert_eq!(salts.len(), 64);
    }

    fn label_body(sealed: &str) -> String {
        label(sealed).unwrap().body.to_string()
    }

    fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn a_key_regenerated_under_an_old_id_is_reported_not_taken_for_it() {
        let old = keyring(&[K1], &[K1]);
        let token = old.hash(b"alice");
        let sealed = old.encrypt(b"1", "t", "k", "raw");
        let again = keyring(&[K1_AGAIN], &[K1_AGAIN]);
        let other = |fingerprint: &str| UnprotectError::OtherKey {
            kid: "k1".into(),
            fingerprint: fingerprint.into(),
            held: super::fingerprint(&(32u8..64).collect::<Vec<_>>()),
        };
        let old_fp = fingerprint(&(0u8..32).collect::<Vec<_>>());
        assert_eq!(
            again.decrypt(&sealed, "t", "k", &FieldPath::of("raw")),
            Err(other(&old_fp))
        );
        assert_eq!(again.holds(&label(&token).unwrap()), Err(other(&old_fp)));
        assert_eq!(old.holds(&label(&token).unwrap()), Ok(()));
        let message = again
            .decrypt(&sealed, "t", "k", &FieldPath::of("raw"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("fingerprint") && message.contains("k1"),
            "{message}"
        );
    }

    #[test]
    fn after_a_rotation_old_values_still_open() {
        let old = keyring(&[], &[K1]);
        let sealed = old.encrypt(b"1", "t", "k", "a");
        let rotated = keyring(&[], &[K2, K1]);
        assert!(rotated.encrypt(b"1", "t", "k", "a").starts_with("e2.k2."));
        assert_eq!(
            rotated
                .decrypt(&sealed, "t", "k", &FieldPath::of("a"))
                .unwrap(),
            b"1"
        );
        let dropped = keyring(&[], &[K2]);
        assert_eq!(
            dropped.decrypt(&sealed, "t", "k", &FieldPath::of("a")),
            Err(UnprotectError::UnknownKey("k1".into()))
        );
    }

    /// `tests/protection/legacy-v1.json`: values the first formats' code sealed.
    #[test]
    fn values_of_the_first_formats_still_open_and_match() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/protection/legacy-v1.json")).unwrap();
        let lines = |name: &str| -> Vec<String> {
            fixture[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect()
        };
        let (hash, encryption) = (lines("hash_keys"), lines("encryption_keys"));
        let ring = Keyring::from_lines(
            &hash.iter().map(String::as_str).collect::<Vec<_>>(),
            &encryption.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .unwrap();
        let (topic, key) = (
            fixture["topic"].as_str().unwrap(),
            fixture["key"].as_str().unwrap(),
        );
        for value in fixture["encrypted"].as_array().unwrap() {
            let mut path = FieldPath::default();
            for part in value["indexed_path"].as_str().unwrap().split('.') {
                match part.split_once('[') {
                    Some((name, index)) => {
                        path.push_member(name);
                        path.push_index(index.trim_end_matches(']').parse().unwrap());
                    }
                    None => path.push_member(part),
                }
            }
            assert_eq!(path.unindexed(), value["path"].as_str().unwrap());
            let sealed = value["value"].as_str().unwrap();
            assert!(sealed.starts_with("e1."));
            assert_eq!(
                ring.decrypt(sealed, topic, key, &path).unwrap(),
                value["plaintext"].as_str().unwrap().as_bytes()
            );
        }
        for value in fixture["hashed"].as_array().unwrap() {
            let token = value["token"].as_str().unwrap();
            assert!(token.starts_with("h1."));
            assert_eq!(ring.holds(&label(token).unwrap()), Ok(()));
            assert!(ring
                .hash_all(value["value"].as_str().unwrap().as_bytes())
                .iter()
                .any(|t| t == token));
        }
    }

    #[test]
    fn labels_read_every_format_and_nothing_else() {
        let ring = keyring(&[K1], &[K1]);
        let h2 = ring.hash(b"x");
        let e2 = ring.encrypt(b"x", "t", "k", "p");
        assert_eq!(
            label(&h2).map(|l| (l.kind, l.version)),
            Some((Kind::Hash, 2))
        );
        assert_eq!(
            label(&e2).map(|l| (l.kind, l.version)),
            Some((Kind::Encrypted, 2))
        );
        let h1 = ring.hash_all(b"x").pop().unwrap();
        assert_eq!(
            label(&h1).map(|l| (l.kind, l.version, l.fingerprint)),
            Some((Kind::Hash, 1, None))
        );
        for text in [
            "h2.k1.short.mac",
            "e2.k1.AAAAAAAA.c2hvcnQ",
            "h1.k 1.x",
            "hello",
            "e3.k1.x.y",
        ] {
            assert_eq!(label(text), None, "{text}");
        }
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
        let ring = keyring(&[&generated.line], &[&generated.line]);
        assert!(ring.can_encrypt());
        assert!(ring
            .hash(b"x")
            .contains(&format!(".{}.", generated.fingerprint)));
        let (a, b) = (fresh_kid(), fresh_kid());
        assert_ne!(a, b);
        assert!(generate(&a).is_ok() && a.len() == 9, "{a}");
    }
}
