//! The connector's pure path (`riskos_connector::pipeline::prepare_accepting`: parse, envelope,
//! protection, Avro) set up as the bench's connector is: single-object routes under `riskos.`,
//! both envelopes, fields protected and `raw` encrypted with the bench keys. The Kafka ceiling
//! prepares its records with it (so it produces what the connector produces, encrypted `raw`
//! included) and `instructions` counts its cost.

use std::path::Path;

use anyhow::Context as _;
use riskos_connector::pipeline::protect::{Keyring, Protection, RawPolicy};
use riskos_connector::pipeline::route::{single_object_routes, Routes};
use riskos_connector::pipeline::schema::Catalog;
use riskos_connector::pipeline::{prepare_accepting, PrepareError, Prepared, ALL_ENVELOPES};

/// The benchmark's protection keys (`kid:base64(32 bytes)`): fixed, since the figures, not the
/// secrecy, matter.
pub const BENCH_HASH_KEY: &str = "bench-h:YmVuY2ggaGFzaCBrZXksIDMyIGJ5dGVzIGxvbmcuLi4=";
pub const BENCH_ENCRYPTION_KEY: &str = "bench-e:YmVuY2ggZW5jcnlwdGlvbiBrZXksIDMyIGJ5dGVzLi4=";

/// The topic prefix of the bench's one endpoint (the default).
pub const TOPIC_PREFIX: &str = "riskos.";

/// A fixed receive time, so the prepared records (and their instruction counts) do not depend
/// on the clock.
pub const RECEIVED_AT_MS: i64 = 1_700_000_000_000;

/// Routes and keys as the bench's connector has them.
pub struct PurePath {
    pub routes: Routes,
    keys: Keyring,
}

impl PurePath {
    /// Loads the schemas in `schemas` and the bench keys.
    pub fn load(schemas: &Path) -> anyhow::Result<Self> {
        let catalog = Catalog::load(schemas).context("loading schemas")?;
        let keys = Keyring::from_lines(&[BENCH_HASH_KEY], &[BENCH_ENCRYPTION_KEY])
            .map_err(|e| anyhow::anyhow!("the bench keys: {e}"))?;
        Ok(Self {
            routes: single_object_routes(&catalog, TOPIC_PREFIX),
            keys,
        })
    }

    /// The endpoint defaults the connector runs with: `protect_fields = true`, `raw = encrypt`.
    fn protection(&self) -> Protection<'_> {
        Protection {
            keys: Some(&self.keys),
            fields: true,
            raw: RawPolicy::Encrypt,
        }
    }

    /// What the connector's pipeline does with `body` before delivery.
    pub fn prepare(&self, body: &[u8]) -> Result<Prepared, PrepareError> {
        prepare_accepting(
            &self.routes,
            &ALL_ENVELOPES,
            self.protection(),
            body,
            RECEIVED_AT_MS,
        )
    }
}
