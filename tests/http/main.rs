//! The HTTP surface without a broker: the service's own router over an in-memory store
//! (`delivery::MemoryStore`), driven with `tower::ServiceExt::oneshot`. Every row of README's
//! status-code table, each auth mode's accept and reject cases, the quarantine decisions and
//! the headers (`Retry-After`, `WWW-Authenticate`, `X-Request-Id`). What needs Kafka itself
//! (delivery, spool, faults, topics, interop, the CLI) is in `tests/api`.

mod helpers;
mod status;
mod support;

mod auth;
mod contract;
mod endpoints;
mod hardening;
mod operations;
mod partitioning;
mod protection;
mod webhook;
