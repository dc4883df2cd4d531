//! Operator and consumer tools behind the CLI subcommands: `validate` (offline), `tail`
//! (decode a topic), `replay` (quarantine → event topics), `erase` (tombstones for the records
//! matching a condition), `asyncapi` (the AsyncAPI document of the topics, offline).

pub mod asyncapi;
pub mod check;
pub mod erase;
pub(crate) mod reader;
pub mod replay;
pub mod tail;
pub mod validate;
