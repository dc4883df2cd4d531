//! riskos-connector: RiskOS and request-token webhooks in, Avro records on per-event-type
//! compacted Kafka topics out. The HTTP reply waits for Kafka's ack.
//!
//! The modules are grouped by the data's path; imports point one way, down this table:
//!
//! | area | module | job |
//! |---|---|---|
//! | [`tools`] | [`tools::validate`], [`tools::replay`], [`tools::erase`], [`tools::tail`], [`tools::reader`], [`tools::check`], [`tools::asyncapi`] | the command-line tools beside the service |
//! | [`wiring`] | [`wiring::app`] | builds and runs the service (`Application::build`, `run_until`) |
//! | | [`wiring::topology`] | what start-up sets up: registry, routes, topics, producer, pipelines |
//! | | [`wiring::fd_limit`] | the connection cap fitted to the open-file limit |
//! | | [`wiring::config`] | layers the configuration (file, env) and checks it; each component owns its section |
//! | [`ingress`] | [`ingress::http`] | the listener, TLS, connection limits, one route per endpoint and its guard, the webhook handler, health, the one error→status mapping |
//! | | [`ingress::auth`] | the auth modes (basic, bearer, OAuth2 JWT + token endpoint, HMAC, Standard Webhooks), one file each |
//! | | [`ingress::endpoint`] | an endpoint's settings (`[[endpoints]]`) |
//! | | [`ingress::net`] | address ranges (allow lists, trusted proxies) |
//! | [`pipeline`] | [`pipeline`] itself, [`pipeline::fate`] | prepare (pure), then the one call that decides and carries out a body's fate |
//! | | [`pipeline::envelope`] | two envelope styles → one [`pipeline::envelope::Event`]; the JSON parser |
//! | | [`pipeline::protect`] | personal data hashed, encrypted or dropped; the keys |
//! | | [`pipeline::route`] | event type → topic and schema |
//! | | [`pipeline::schema`] | the catalog of `schemas/`, the record writer, wire prefixes, the registry client |
//! | | [`pipeline::quarantine`], [`pipeline::cloudevents`] | what a quarantined body carries; the CloudEvents headers |
//! | [`delivery`] | [`delivery`] itself, [`delivery::dedup`], `delivery::ack` | the duplicate cache in front of a store; what a store answers (acked where, or why not) |
//! | | [`delivery::kafka_store`], [`delivery::spool`], [`delivery::memory`] | Kafka with the fsync'd spool and its forwarder; the in-memory store of the HTTP tests |
//! | | [`delivery::kafka`] | the clients: producer, admin, security (TLS, SASL, OIDC, MSK IAM), probe, partitioner |
//! | | [`delivery::record_size`] | the largest record the connector produces |
//! | | `delivery::config` | `[delivery]`: the ack deadline, the duplicate cache, the spool |
//! | [`common`] | [`common::setting`], [`common::secret`], [`common::clock`], [`common::metrics`], [`common::telemetry`] | what every area uses: setting errors, secrets, the clock, metric names, logs and traces |
//!
//! Feature `kafka` (default) is the Kafka client and all that needs it: [`delivery::kafka`],
//! [`delivery::kafka_store`], [`wiring`], [`tools`]. Without it the library is ingress, the pipeline and
//! delivery over [`delivery::MemoryStore`] (what the fuzz targets and the instruction budget build).
//!
//! `main.rs` only parses the command line. `docs/architecture.md` has the data flow, a
//! paragraph per module and where to change what.

#![warn(unreachable_pub)]

pub mod common;
pub mod delivery;
pub mod ingress;
pub mod pipeline;
#[cfg(feature = "kafka")]
pub mod tools;
#[cfg(feature = "kafka")]
pub mod wiring;
