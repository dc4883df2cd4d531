//! The one test config every connector in the tests starts from ([`base`]); the broker tests
//! point it at Kafka and a registry (`app::test_config`), the tests without a broker at nothing
//! (`in_memory::config`).

use riskos_connector::wiring::config::Config;

/// The tests' hash key (`kid:base64(32 bytes)`).
pub const TEST_HASH_KEY: &str = "test-h1:dGVzdCBoYXNoIGtleSwgMzIgYnl0ZXMgbG9uZy4uLi4=";
/// The tests' encryption key.
pub const TEST_ENCRYPTION_KEY: &str = "test-e1:dGVzdCBlbmNyeXB0aW9uIGtleSwgMzIgYnl0ZXMhISE=";

/// One endpoint `riskos` with fields and bodies as sent, the tests' keys, a free loopback port,
/// the shipped schemas, and `auth.mode = none` written out as production config must.
pub fn base() -> Config {
    let mut config = Config::default();
    config
        .endpoints
        .push(riskos_connector::wiring::config::EndpointConfig::new(
            "riskos",
        ));
    // Fields and bodies as sent: these tests compare every field with the fixtures; protection
    // has tests of its own (protection.rs in tests/surface and tests/kafka).
    config.endpoints[0].protect_fields = false;
    config.endpoints[0].raw = riskos_connector::pipeline::protect::RawPolicy::Keep;
    // Keys for endpoints a test adds with the defaults (fields protected, `raw` encrypted).
    config.protection.hash_keys =
        vec![riskos_connector::common::secret::Secret::new(TEST_HASH_KEY)];
    config.protection.encryption_keys = vec![riskos_connector::common::secret::Secret::new(
        TEST_ENCRYPTION_KEY,
    )];
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.schemas.dir = crate::repo().join("schemas");
    // Written out, as production config must; the auth tests cover the other modes.
    config.endpoints[0].auth.mode = Some(riskos_connector::ingress::auth::AuthMode::None);
    config
}
