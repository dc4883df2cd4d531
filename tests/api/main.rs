//! Integration tests over a real Kafka-protocol broker process (tansu) and the schema registry
//! test double. Run them with `scripts/test.sh`, which installs the broker.

mod helpers;

mod auth;
mod cli;
mod compaction;
mod contract;
mod faults;
mod hardening;
mod interop;
mod operations;
mod startup;
mod webhook;
