//! Fuzz target: the pre-parse JSON depth scan, checked for monotonicity and against the real
//! depth of what serde_json parses ([`riskos_fuzz::check_json_depth`]).
//!
//! Under afl-fuzz it runs in persistent mode; run by hand it reads one input from stdin:
//! `fuzz/target/x86_64-unknown-linux-gnu/release/json_depth < CRASH_FILE`.

fn main() {
    riskos_fuzz::run_on_worker_stack(
        |check| afl::fuzz(true, check),
        riskos_fuzz::check_json_depth,
    );
}
