//! Integration tests on Apache Kafka clusters of their own, started by `scripts/kafka.sh`:
//!
//! - `faults`: 3-node clusters whose nodes are killed under load (and librdkafka's MockCluster
//!   for broker-side error injection); `scripts/test.sh` runs them apart, two at a time;
//! - `secured`: one broker of this binary's own with TLS, mTLS, SASL (SCRAM, PLAIN) and
//!   OAUTHBEARER listeners and ACLs;
//! - `compaction` and `erase`: a broker whose log cleaner runs at once, to show compaction
//!   working.

mod compaction;
mod erase;
mod faults;
mod secured;
