//! Integration tests on Apache Kafka (started by `scripts/kafka.sh` from the official jars:
//! one shared broker per test binary, clusters of their own for tests that stop brokers) and
//! the schema registry test double. Run them with `scripts/test.sh`, which fetches the jars.

mod helpers;

mod auth;
mod cli;
mod cloudevents;
mod compaction;
mod consumers;
mod contract;
mod erase;
mod faults;
mod hardening;
mod interop;
mod operations;
mod partitioning;
mod protection;
mod registry_auth;
mod secured;
mod startup;
mod webhook;
