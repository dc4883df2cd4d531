//! Fuzz target: body bytes → depth scan → parse → normalize → route → encode, every record
//! decoded back with apache-avro ([`riskos_fuzz::check_prepare`]).
//!
//! Under afl-fuzz it runs in persistent mode; run by hand it reads one input from stdin:
//! `fuzz/target/x86_64-unknown-linux-gnu/release/prepare < CRASH_FILE`.

fn main() {
    riskos_fuzz::run_on_worker_stack(|check| afl::fuzz(true, check), riskos_fuzz::check_prepare);
}
