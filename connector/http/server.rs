//! The accept loop: HTTP/1.1 connections served by hyper, with what `axum::serve` does not
//! offer and an exposed endpoint needs:
//!
//! - a cap on open connections: over it a new connection is closed at once, so the accept loop
//!   never waits and the process never runs out of file descriptors;
//! - the source allow-list applied when the connection is accepted (plain HTTP) or its TLS
//!   handshake is done, when the TCP peer alone decides it (no trusted proxy in between): a
//!   refused address gets its 403 without a byte of its request being read;
//! - per-connection header-read and idle deadlines and a lingering close ([`super::conn_io`]);
//! - graceful shutdown: stop accepting, let requests in flight finish, close idle connections.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::conn_io::{Busy, Deadlines, TimedIo};
use super::error::ApiError;
use super::tls::{ServeListener, Stream};
use crate::metrics::{CONNECTIONS_OPEN, CONNECTIONS_REFUSED};

/// Largest response head plus body the early 403 may need.
const EARLY_RESPONSE_MAX: usize = 4096;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Header-read and idle deadlines.
    pub deadlines: Deadlines,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// Decides, from the TCP peer alone, that a connection is refused (the allow-list when no
/// trusted proxy is involved).
pub type RefusePeer = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for the open connections to finish their requests.
pub async fn serve(
    mut listener: ServeListener,
    router: Router,
    limits: ConnectionLimits,
    refuse_peer: RefusePeer,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            metrics::counter!(CONNECTIONS_REFUSED, "reason" => "max_connections").increment(1);
            tracing::debug!(peer = %peer.0, "http.max_connections reached; connection closed");
            drop(stream);
            continue;
        };
        metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
        let busy = Arc::new(Busy::default());
        let io = TimedIo::new(stream, limits.deadlines, busy.clone());
        let peer_ip = peer.0.ip().to_canonical();
        if refuse_peer(peer_ip) {
            metrics::counter!(CONNECTIONS_REFUSED, "reason" => "ip_not_allowed").increment(1);
            let span = tracing::info_span!("ingress", client_ip = %peer_ip, peer = %peer_ip);
            tokio::spawn(
                async move {
                    refuse(io).await;
                    metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
                    drop(slot);
                }
                .instrument(span),
            );
            continue;
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let handling = busy.enter();
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let response = tower::ServiceExt::oneshot(router, request).await;
                drop(handling);
                response
            }
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        // The deadlines live in `TimedIo`; hyper's own would also cut idle connections at the
        // header deadline.
        http.header_read_timeout(None).keep_alive(true);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(peer = %peer.0, %error, "connection ended");
            }
            metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers 403 before reading anything, then closes gracefully (the lingering close lets the
/// client read it even while it is still sending).
async fn refuse(mut io: TimedIo<Stream>) {
    let response = ApiError::Forbidden.into_response();
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, EARLY_RESPONSE_MAX).await else {
        return;
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    if io.write_all(&bytes).await.is_ok() {
        let _ = io.shutdown().await;
    }
}

/// The early refusal for a source policy: only when the peer is not a trusted proxy (then the
/// client address is in a header, read later) and not allowed.
pub fn refuse_untrusted_peer(sources: Arc<crate::auth::source_ip::SourcePolicy>) -> RefusePeer {
    Arc::new(move |peer| sources.refuses_peer(peer))
}

/// Refuses nobody (tests, tools).
pub fn refuse_nobody() -> RefusePeer {
    Arc::new(|_| false)
}
