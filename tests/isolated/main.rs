//! Tests that need the process to themselves, one at a time (each holds [`ALONE`]):
//!
//! - `ingress`: the listener under attack (thousands of sockets, process-wide gauges, the
//!   process's open-file limit), the real service over an in-memory store;
//! - `memory`: the heap stays flat when nobody scrapes `/metrics`, counted by this binary's
//!   global allocator (on the shared Kafka broker).

mod ingress;
mod memory;

/// Held by every test of this binary: none runs beside another.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
