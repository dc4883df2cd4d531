//! Everything that needs no broker, in one binary: the HTTP surface (the service's router over
//! an in-memory store, driven with `tower::ServiceExt::oneshot`, or the served app on a
//! listener) — every row of the status table, each auth mode's accept and reject cases, the
//! endpoints, the quarantine decisions, protection, the headers — plus the registry client
//! against the registry double, the command line offline, the property tests, the independent
//! signers, the OpenAPI and AsyncAPI documents and what the docs state about the code.
//!
//! What needs Kafka is in `tests/kafka` (one shared broker) and `tests/clusters` (clusters of
//! their own); tests that need the process to themselves are in `tests/isolated` and
//! `tests/metrics_coverage.rs`.

mod asyncapi;
mod auth;
mod cli;
mod contract;
mod docs;
mod endpoints;
mod hardening;
mod openapi;
mod operations;
mod partitioning;
mod properties;
mod protection;
mod registry_auth;
mod signers;
mod status;
mod webhook;
