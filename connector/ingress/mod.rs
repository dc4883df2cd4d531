//! Ingress: from a connection to a verified body. The listener, its TLS and connection limits
//! ([`http`]), who may send ([`auth`], [`net`]'s address ranges), each endpoint's settings ([`endpoint`]).

pub mod auth;
pub mod endpoint;
pub mod http;
pub mod net;
