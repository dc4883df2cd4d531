//! The auth modes as the tests configure them (credentials, rotation lists) and the requests
//! that satisfy them.

use base64::Engine as _;
use riskos_connector::common::secret::Secret;
use riskos_connector::ingress::auth::hmac::sign_hex;
use riskos_connector::ingress::auth::AuthMode;
use riskos_connector::wiring::config::Config;

use crate::jwt::{AUDIENCE, ISSUER};

pub const BASIC_CURRENT: &str = "riskos:correct-horse-battery-staple";
pub const BASIC_NEXT: &str = "riskos:next-horse-battery-staple";
pub const BEARER_CURRENT: &str = "6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e";
pub const BEARER_NEXT: &str = "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d";
/// Valid before the last rotation, removed since.
pub const BEARER_RETIRED: &str = "11111111-2222-4333-8444-555555555555";
pub const HMAC_SECRET: &str = "hmac-secret-of-the-request-token-sender";

pub fn basic(config: &mut Config) {
    config.endpoints[0].auth.mode = Some(AuthMode::Basic);
    config.endpoints[0].auth.basic.credentials =
        vec![Secret::new(BASIC_CURRENT), Secret::new(BASIC_NEXT)];
}

pub fn bearer(config: &mut Config) {
    config.endpoints[0].auth.mode = Some(AuthMode::Bearer);
    config.endpoints[0].auth.bearer.tokens =
        vec![Secret::new(BEARER_CURRENT), Secret::new(BEARER_NEXT)];
}

/// OAuth2 with the JWKS at `jwks_url`, refetched at most as often as the default allows. The
/// JWKS double serves plain http, so the test-only switch allows it.
pub fn oauth2(config: &mut Config, jwks_url: &str) {
    config.endpoints[0].auth.mode = Some(AuthMode::OAuth2);
    config.endpoints[0].auth.oauth2.jwks_url = Some(jwks_url.to_string());
    config.endpoints[0].auth.oauth2.allow_insecure_jwks_url = true;
    config.endpoints[0].auth.oauth2.issuer = ISSUER.into();
    config.endpoints[0].auth.oauth2.audience = AUDIENCE.into();
}

/// [`oauth2`] where every unknown kid refetches, so rotation is picked up at once in tests.
pub fn oauth2_refetching(config: &mut Config, jwks_url: &str) {
    oauth2(config, jwks_url);
    config.endpoints[0].auth.oauth2.jwks_min_refetch_secs = 0;
}

pub fn hmac(config: &mut Config) {
    config.endpoints[0].auth.mode = Some(AuthMode::Hmac);
    config.endpoints[0].auth.hmac.secrets = vec![Secret::new(HMAC_SECRET)];
    config.endpoints[0].auth.hmac.timestamp_header = Some("X-Timestamp".into());
}

pub fn none(config: &mut Config) {
    config.endpoints[0].auth.mode = Some(AuthMode::None);
}

pub fn basic_header(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

pub fn unix_now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// `X-Signature` and `X-Timestamp` for `body` signed at `at` with `secret`.
pub fn hmac_headers(secret: &str, at: u64, body: &[u8]) -> Vec<(&'static str, String)> {
    let timestamp = at.to_string();
    vec![
        (
            "x-signature",
            sign_hex(secret.as_bytes(), Some(&timestamp), body),
        ),
        ("x-timestamp", timestamp),
    ]
}
