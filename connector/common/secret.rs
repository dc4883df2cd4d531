//! Secrets in config: a type that never prints its value, lists that may also come from a file
//! (a Kubernetes Secret mount), and constant-time comparison. Used by the auth modes and the
//! registry client alike; it depends on no other module of the crate but the leaf `setting`.
//!
//! Presented credentials are compared by their SHA-256 digests with `subtle`, so neither the
//! content nor the length of a configured secret shows in response timing.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::common::setting::SettingError;

/// Env values are typed by figment (`20` is a number); text settings (and secrets) accept any
/// scalar as its text.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Text(String),
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
}

impl From<Scalar> for String {
    fn from(scalar: Scalar) -> String {
        match scalar {
            Scalar::Text(s) => s,
            Scalar::Signed(n) => n.to_string(),
            Scalar::Unsigned(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Deserializes an optional text setting that env vars may type as a number or a bool (a user
/// name `12345`).
pub(crate) fn optional_scalar<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(String::from))
}

/// What `Debug`, `Serialize` and logs show instead of a secret.
pub const REDACTED: &str = "[redacted]";

/// A secret value from config. `Debug` and `Serialize` print [`REDACTED`]; read it with
/// [`Secret::expose`] only where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value. Call only to use it, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl From<Scalar> for Secret {
    fn from(scalar: Scalar) -> Self {
        Secret(String::from(scalar))
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Scalar::deserialize(d).map(Secret::from)
    }
}

/// librdkafka properties whose value is a credential, as librdkafka's own "sensitive" flag
/// (`rdkafka_conf.c`) marks them, less the ones that are not secrets: `sasl.username` and
/// `sasl.oauthbearer.client.id` (identities, needed to tell which account is used),
/// `ssl.ca.pem` (a public certificate) and the `*.location` / `*.file` paths (where a key is,
/// not the key). `ssl.truststore.password` is not a librdkafka property but a Java client's
/// that people carry over; it is a secret wherever it is written.
const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.key",
    "ssl.keystore.password",
    "ssl.truststore.password",
];

/// True when the librdkafka property `name` holds a secret: one of [`SECRET_PROPERTIES`], or
/// any name with `password`, `secret` or `passphrase` in it, so that a property a
/// later librdkafka adds, or a misspelt one, is not printed either. Matched case-blind and with
/// `_` read as `.`, as env vars write them (`sasl_password`; `ssl_key` is `ssl.key`).
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('_', ".");
    SECRET_PROPERTIES.contains(&name.as_str())
        || ["password", "secret", "passphrase"]
            .iter()
            .any(|word| name.contains(word))
}

/// The `kafka.librdkafka` passthrough properties. `Debug` and `Serialize` print [`REDACTED`]
/// for each value [`is_secret_property`] names, so `config check`, a `{:?}` of the config and
/// any log of it never show a Kafka credential; the map itself (through `Deref`) holds the real
/// values, which go to librdkafka.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    /// The map as printed: each secret value replaced by [`REDACTED`].
    fn redacted(&self) -> BTreeMap<&str, &str> {
        self.0
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret_property(key) {
                    REDACTED
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect()
    }
}

impl From<BTreeMap<String, String>> for KafkaProperties {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }
}

impl Deref for KafkaProperties {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for KafkaProperties {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.redacted().fmt(f)
    }
}

impl Serialize for KafkaProperties {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(serializer)
    }
}

/// Values are typed by figment from env vars (`20` is a number); each is read as its text.
impl<'de> Deserialize<'de> for KafkaProperties {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, Scalar>::deserialize(d)?;
        Ok(Self(map.into_iter().map(|(k, v)| (k, v.into())).collect()))
    }
}

/// One secret or a list of them. Accepting a single value means a mistyped env var is never a
/// type error whose message would quote the secret.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Secret>),
    One(Secret),
}

/// Deserializes a secret list that may be written as one value.
pub fn secret_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(list) => list,
        OneOrMany::One(one) => vec![one],
    })
}

/// The inline secrets of `key` followed by those in `file` (one per line, surrounding
/// whitespace trimmed, blank lines skipped). Read once, at start-up.
pub fn load_list(
    key: &'static str,
    inline: &[Secret],
    file: Option<&Path>,
) -> Result<Vec<Secret>, SettingError> {
    let mut out: Vec<Secret> = inline
        .iter()
        .filter(|s| !s.expose().trim().is_empty())
        .cloned()
        .collect();
    if let Some(path) = file {
        let text = read_file(key, path)?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(Secret::new),
        );
    }
    Ok(out)
}

/// The check of an inline-or-`_file` secret that needs no I/O: not both.
pub fn not_both(key: &'static str, inline: bool, file: bool) -> Result<(), SettingError> {
    if inline && file {
        return Err(SettingError::invalid(
            key,
            "set the value or the `_file` variant, not both",
        ));
    }
    Ok(())
}

/// One secret: `inline`, or the whole content of `file` (trimmed). Exactly one must be set.
pub fn load_one(
    key: &'static str,
    inline: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Secret, SettingError> {
    not_both(key, inline.is_some(), file.is_some())?;
    let value = match (inline, file) {
        (Some(secret), _) => secret.expose().trim().to_string(),
        (None, Some(path)) => read_file(key, path)?.trim().to_string(),
        (None, None) => String::new(),
    };
    if value.is_empty() {
        return Err(SettingError::missing(key));
    }
    Ok(Secret(value))
}

fn read_file(key: &'static str, path: &Path) -> Result<String, SettingError> {
    std::fs::read_to_string(path).map_err(|source| SettingError::File {
        key: key.into(),
        path: PathBuf::from(path),
        source,
    })
}

/// A secret kept only as its SHA-256 digest, for comparing presented credentials.
#[derive(Clone)]
pub struct Digest32([u8; 32]);

impl fmt::Debug for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Digest32 {
    /// Digest of `value`.
    pub fn of(value: &[u8]) -> Self {
        Self(Sha256::digest(value).into())
    }
}

/// True when `presented` equals any of `known`, in time independent of which one matched, of
/// the secrets' lengths and of where a near-miss differs.
pub fn matches_any(presented: &[u8], known: &[Digest32]) -> bool {
    let presented = Digest32::of(presented);
    let mut found = subtle::Choice::from(0);
    for candidate in known {
        found |= candidate.0.ct_eq(&presented.0);
    }
    found.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_serialize_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"[redacted]\"");
        assert_eq!(format!("{:?}", Digest32::of(b"hunter2")), REDACTED);
    }

    #[test]
    fn kafka_credentials_are_redacted_by_name_and_kept_for_librdkafka() {
        for name in [
            "sasl.password",
            "sasl_password",
            "SASL_PASSWORD",
            "ssl.key.password",
            "ssl.key.pem",
            "ssl_key",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.assertion.private.key.pem",
            "sasl.pasword.secret",
        ] {
            assert!(is_secret_property(name), "{name}");
        }
        for name in [
            "sasl.username",
            "security.protocol",
            "ssl.key.location",
            "ssl.ca.pem",
            "ssl.certificate.pem",
            "linger_ms",
        ] {
            assert!(!is_secret_property(name), "{name}");
        }
        let properties = KafkaProperties::from(BTreeMap::from([
            ("sasl.password".to_string(), "hunter2".to_string()),
            ("linger.ms".to_string(), "5".to_string()),
        ]));
        let shown = format!("{properties:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("linger.ms"),
            "{shown}"
        );
        assert_eq!(
            serde_json::to_string(&properties).unwrap(),
            r#"{"linger.ms":"5","sasl.password":"[redacted]"}"#
        );
        assert_eq!(properties["sasl.password"], "hunter2");
    }

    #[test]
    fn a_single_value_or_a_number_is_a_list_of_one() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "secret_list")]
            s: Vec<Secret>,
        }
        let one: T = serde_json::from_str(r#"{"s": "a"}"#).unwrap();
        assert_eq!(one.s, vec![Secret::new("a")]);
        let number: T = serde_json::from_str(r#"{"s": 123456}"#).unwrap();
        assert_eq!(number.s, vec![Secret::new("123456")]);
        let many: T = serde_json::from_str(r#"{"s": ["a", "b"]}"#).unwrap();
        assert_eq!(many.s.len(), 2);
    }

    #[test]
    fn lists_combine_inline_values_and_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "b\n\n  c  \n").unwrap();
        let list = load_list("k", &[Secret::new("a")], Some(&file)).unwrap();
        assert_eq!(
            list,
            vec![Secret::new("a"), Secret::new("b"), Secret::new("c")]
        );
        let error = load_list("auth.x_file", &[], Some(&dir.path().join("nope"))).unwrap_err();
        assert!(error.to_string().contains("auth.x_file"), "{error}");
    }

    #[test]
    fn one_secret_from_a_file_is_trimmed_and_both_sources_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(
            load_one("k", None, Some(&file)).unwrap(),
            Secret::new("s3cret")
        );
        assert!(load_one("k", Some(&Secret::new("x")), Some(&file)).is_err());
        assert!(load_one("k", None, None).is_err());
    }

    #[test]
    fn matching_is_exact() {
        let known = [Digest32::of(b"one"), Digest32::of(b"two")];
        assert!(matches_any(b"two", &known));
        assert!(!matches_any(b"tw", &known));
        assert!(!matches_any(b"two ", &known));
        assert!(!matches_any(b"", &[]));
    }
}
