//! Integration tests on one shared Apache Kafka broker (started on first use by
//! `scripts/kafka.sh` from the official jars; each test with topics of its own) and the schema
//! registry double: delivery, start-up, the command line, replay, protection on the broker, the
//! consumers opening protected values, interop with independent decoders. A few tests that stop
//! a broker start a single-node one of their own (`Stack::start_own_broker_with`). Run them with
//! `scripts/test.sh`, which fetches the jars.
//!
//! Tests with clusters of their own (faults, secured listeners, compaction and erase) are in
//! `tests/clusters`; what needs no broker is in `tests/surface`.

mod auth;
mod cli;
mod cloudevents;
mod consumers;
mod contract;
mod hardening;
mod interop;
mod operations;
mod partitioning;
mod protection;
mod startup;
mod webhook;
