//! Wiring: the layered configuration ([`config`], which layers and checks the sections each
//! component owns), what start-up sets up around the connector ([`topology`]: routes, topics,
//! producer, pipelines), the connection cap fitted to the open-file limit ([`fd_limit`]), and
//! the service built and run from them ([`app`]).

pub mod app;
pub mod config;
pub mod fd_limit;
pub mod topology;
