//! What becomes of a body, decided and carried out in one place: [`Pipeline::keep`].
//!
//! A body nested too deep, not JSON, not an envelope, or not fitting its schema is kept raw in
//! quarantine; otherwise it is prepared and stored on its event topic. If Kafka refuses that
//! record as too large (a topic managed elsewhere with a smaller `max.message.bytes`), the
//! body is kept raw in quarantine instead, by the same path whether the refusal comes at once
//! or later, to the spool's forwarder ([`Quarantines`], which delivery calls through
//! [`TooLarge`]). The HTTP handler turns the [`Fate`] into the answer.

use std::borrow::Cow;
use std::sync::Arc;

use super::{Origin, Pipeline, PrepareError, Prepared, Quarantined, ENDPOINT_HEADER};
use crate::delivery::ProduceError;
use crate::delivery::{DeliveryError, Instead, Outcome, SpoolRecord, TooLarge};
use crate::pipeline::envelope::json::too_deep;
use crate::pipeline::protect::{FieldPath, RawPolicy, RAW_PATH};

/// What became of a body.
#[derive(Debug)]
pub struct Fate {
    /// The record the body became, when it became one (stored, refused by Kafka as too large
    /// and quarantined, or not safe).
    pub prepared: Option<Prepared>,
    /// Where it is kept, or why it is not safe.
    pub kept: Result<Kept, KeepError>,
}

/// Where a body is kept.
#[derive(Debug)]
pub enum Kept {
    /// On its event topic.
    Stored(Outcome),
    /// Raw in quarantine; [`Quarantined::answer`] says what the sender is told.
    Quarantined(Quarantined, Outcome),
}

/// Why a body is not safe (the sender should retry).
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// Its record could not be stored on its topic.
    #[error(transparent)]
    Store(Arc<DeliveryError>),
    /// It could not be kept in quarantine.
    #[error("the body could not be kept in quarantine: {0}")]
    Quarantine(Arc<DeliveryError>),
}

/// Where a body is to go, before anything is stored.
enum Decision {
    Store(Prepared),
    Quarantine(Quarantined),
}

impl Pipeline {
    /// Decides what becomes of a body and carries it out: stored on its event topic, or kept
    /// raw in quarantine (with the answer its sender gets). Resolves once it is safe (acked by
    /// Kafka, or fsync'd to the spool) or is known not to be.
    pub async fn keep(&self, origin: Origin<'_>, received_at_ms: i64) -> Fate {
        let prepared = match self.decide(origin.body, received_at_ms) {
            Decision::Store(prepared) => prepared,
            Decision::Quarantine(quarantined) => {
                return Fate {
                    prepared: None,
                    kept: self.kept_in_quarantine(origin, quarantined).await,
                }
            }
        };
        let kept = match self.deliver(&prepared, origin).await {
            Ok(outcome) => Ok(Kept::Stored(outcome)),
            Err(error) if error.is_too_large() => {
                let quarantined = Quarantined::too_large(
                    &prepared.key,
                    &prepared.event_type,
                    error.to_string(),
                    received_at_ms,
                );
                self.kept_in_quarantine(origin, quarantined).await
            }
            Err(error) => Err(KeepError::Store(error)),
        };
        Fate {
            prepared: Some(prepared),
            kept,
        }
    }

    /// Prepared for its topic, or quarantined with its answer. The nesting depth is checked
    /// before the parser, which would otherwise recurse into it.
    fn decide(&self, body: &[u8], received_at_ms: i64) -> Decision {
        let max_depth = self.settings.max_json_depth;
        if too_deep(body, max_depth) {
            let error = PrepareError::TooDeep(max_depth);
            return Decision::Quarantine(Quarantined::new(error, received_at_ms));
        }
        match self.prepare(body, received_at_ms) {
            Ok(prepared) => Decision::Store(prepared),
            Err(error) => Decision::Quarantine(Quarantined::new(error, received_at_ms)),
        }
    }

    async fn kept_in_quarantine(
        &self,
        origin: Origin<'_>,
        quarantined: Quarantined,
    ) -> Result<Kept, KeepError> {
        match self.quarantine(origin, &quarantined).await {
            Ok(outcome) => Ok(Kept::Quarantined(quarantined, outcome)),
            Err(error) => Err(KeepError::Quarantine(error)),
        }
    }

    /// The quarantine record of a spooled event record Kafka refused as too large, rebuilt from
    /// the record itself: its `raw` field is the body as the endpoint's policy stored it
    /// (opened again when encrypted, to be sealed for the quarantine topic) and its
    /// `received_at` the receive time.
    fn instead_of(&self, refused: &SpoolRecord) -> Result<Instead, String> {
        let route = (self.routes.all())
            .find(|route| route.topic == refused.topic)
            .ok_or("not one of the endpoint's event topics")?;
        let key = refused.key.as_deref().ok_or("the record has no key")?;
        let datum = (refused.value)
            .strip_prefix(route.wire_prefix.as_slice())
            .ok_or("the value is not framed as its topic's records are")?;
        let fields = crate::pipeline::schema::decode::datum(&route.schema.schema, datum)
            .map_err(|error| error.to_string())?;
        let field = |name: &str| {
            fields
                .get(name)
                .ok_or(format!("the record has no `{name}`"))
        };
        let raw = field("raw")?.as_str().ok_or("`raw` is not a string")?;
        let received_at_ms = field("received_at")?
            .as_i64()
            .ok_or("`received_at` is not a number")?;
        let event_type = field("event_type")?.as_str().unwrap_or_default();
        let body: Cow<'_, [u8]> = match self.settings.protection.raw {
            RawPolicy::Keep | RawPolicy::Drop => Cow::Borrowed(raw.as_bytes()),
            RawPolicy::Encrypt => {
                let keys = (self.settings.protection.keys.as_deref())
                    .ok_or("`raw` is encrypted and no keys are configured")?;
                let path = FieldPath::of(RAW_PATH);
                Cow::Owned(
                    keys.decrypt(raw, &route.topic, key, &path)
                        .map_err(|error| format!("`raw` does not open: {error}"))?,
                )
            }
        };
        let quarantined = Quarantined::too_large(
            key,
            event_type,
            "refused by kafka as too large when forwarded from the spool".into(),
            received_at_ms,
        );
        let stored = self.quarantine_body(&body, &quarantined);
        let record = SpoolRecord::from(&self.quarantine_record(&quarantined, &stored));
        let (pipeline, reason) = (self.clone(), quarantined.error.reason());
        Ok(Instead {
            record,
            acked: Box::new(move || pipeline.count_quarantined(reason)),
        })
    }
}

/// Every endpoint's quarantine path, for the spool's forwarder: a spooled record Kafka refuses
/// as too large is kept raw in its endpoint's quarantine (found by its `endpoint` header), as
/// a record refused at once is.
pub struct Quarantines(Vec<Pipeline>);

impl Quarantines {
    /// The endpoints' pipelines.
    pub fn new(pipelines: impl IntoIterator<Item = Pipeline>) -> Self {
        Self(pipelines.into_iter().collect())
    }
}

impl TooLarge for Quarantines {
    fn instead(&self, refused: &SpoolRecord, error: &ProduceError) -> Option<Instead> {
        let endpoint = (refused.headers.iter())
            .find(|(name, _)| name == ENDPOINT_HEADER)
            .map(|(_, value)| value.as_str());
        let Some(pipeline) = self.0.iter().find(|p| Some(p.endpoint()) == endpoint) else {
            tracing::error!(%error, topic = %refused.topic, ?endpoint, "a spooled record refused as too large names no configured endpoint; it cannot be quarantined");
            return None;
        };
        // A quarantined body refused too has nothing smaller to become.
        if refused.topic == pipeline.quarantine_topic() {
            return None;
        }
        pipeline
            .instead_of(refused)
            .inspect_err(|why| {
                tracing::error!(%error, topic = %refused.topic, why, "a spooled record refused as too large cannot be quarantined");
            })
            .ok()
    }
}

impl std::fmt::Debug for Quarantines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoints: Vec<&str> = self.0.iter().map(Pipeline::endpoint).collect();
        f.debug_tuple("Quarantines").field(&endpoints).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::memory::{Behaviour, MemoryStore};
    use crate::pipeline::protect::Keyring;
    use crate::pipeline::ProtectionSettings;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/riskos.case_closure.match.json"
    );
    const QUARANTINE: &str = "riskos.quarantine";

    fn pipeline(raw: RawPolicy) -> (Pipeline, Arc<MemoryStore>) {
        let key = "k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
        let protection = ProtectionSettings {
            keys: Some(Arc::new(Keyring::from_lines(&[], &[key]).unwrap())),
            fields: false,
            raw,
        };
        crate::pipeline::over_memory(protection, None)
    }

    fn too_large() -> ProduceError {
        ProduceError::message_size_too_large()
    }

    /// The record as the spool holds it: what `deliver` stores.
    fn spooled(pipeline: &Pipeline, body: &[u8], received_at_ms: i64) -> SpoolRecord {
        let prepared = pipeline.prepare(body, received_at_ms).unwrap();
        let mut record = prepared.record(None);
        record.headers.push((ENDPOINT_HEADER, pipeline.endpoint()));
        SpoolRecord::from(&record)
    }

    /// Kafka refusing a record as too large at once, and the spool's forwarder meeting the
    /// same refusal later, keep the same quarantine record: the body as the endpoint's policy
    /// keeps it in quarantine, its key, and the same headers (the error's wording aside).
    #[tokio::test]
    async fn a_refusal_at_once_and_one_met_by_the_forwarder_quarantine_alike() {
        let body = std::fs::read(FIXTURE).unwrap();
        for raw in [RawPolicy::Keep, RawPolicy::Encrypt, RawPolicy::Drop] {
            let (pipeline, store) = pipeline(raw);
            store.set_topic_behaviour(
                "riskos.case_management_notification_case_closure",
                Behaviour::TooLarge,
            );
            let fate = pipeline.keep(Origin::body(&body), 1_700_000_000_123).await;
            let Ok(Kept::Quarantined(quarantined, _)) = &fate.kept else {
                panic!("{raw:?}: {fate:?}");
            };
            assert_eq!(quarantined.error.reason(), "record_too_large");
            let at_once = store.on_topic(QUARANTINE).remove(0);

            let refused = spooled(&pipeline, &body, 1_700_000_000_123);
            let quarantines = Quarantines::new([pipeline.clone()]);
            let instead = quarantines.instead(&refused, &too_large()).expect("kept");
            let later = instead.record;
            assert_eq!(later.topic, QUARANTINE, "{raw:?}");
            assert_eq!(later.key, at_once.key, "{raw:?}");
            let without_error = |headers: &[(String, String)]| -> Vec<(String, String)> {
                (headers.iter())
                    .filter(|(name, _)| name != "quarantine_error")
                    .cloned()
                    .collect()
            };
            assert_eq!(
                without_error(&later.headers),
                without_error(&at_once.headers),
                "{raw:?}"
            );
            let opened = |value: &[u8]| match raw {
                RawPolicy::Encrypt => {
                    let keys = pipeline.protection().keys.unwrap();
                    let key = at_once.key.as_deref().unwrap();
                    let sealed = std::str::from_utf8(value).unwrap();
                    keys.decrypt(sealed, QUARANTINE, key, &FieldPath::of(RAW_PATH))
                        .unwrap()
                }
                RawPolicy::Keep | RawPolicy::Drop => value.to_vec(),
            };
            let expected = if raw == RawPolicy::Drop {
                Vec::new()
            } else {
                body.clone()
            };
            assert_eq!(opened(&later.value), expected, "{raw:?}");
            assert_eq!(opened(&at_once.value), expected, "{raw:?}");
            let received_at = (later.headers.iter()).find(|(name, _)| name == "received_at");
            assert_eq!(
                received_at.map(|(_, at)| at.as_str()),
                Some("1700000000123")
            );
        }
    }

    /// What the forwarder cannot turn into a quarantine record is not invented: a quarantined
    /// body refused too, a record of no configured endpoint, a value that does not decode.
    #[test]
    fn nothing_is_kept_instead_of_what_cannot_be_rebuilt() {
        let body = std::fs::read(FIXTURE).unwrap();
        let (pipeline, _) = pipeline(RawPolicy::Keep);
        let quarantines = Quarantines::new([pipeline.clone()]);
        let good = spooled(&pipeline, &body, 0);
        assert!(quarantines.instead(&good, &too_large()).is_some());

        let mut quarantined = good.clone();
        quarantined.topic = QUARANTINE.into();
        let mut elsewhere = good.clone();
        elsewhere
            .headers
            .retain(|(name, _)| name != ENDPOINT_HEADER);
        let mut torn = good.clone();
        torn.value.truncate(torn.value.len() / 2);
        for refused in [quarantined, elsewhere, torn] {
            assert!(
                quarantines.instead(&refused, &too_large()).is_none(),
                "{refused:?}"
            );
        }
    }
}
