//! The accept loop: HTTP/1.1 connections served by hyper, with what `axum::serve` does not
//! offer and an exposed endpoint needs:
//!
//! - a cap on open connections: over it a new connection is closed at once, so the accept loop
//!   never waits and the process never runs out of file descriptors;
//! - the endpoints' source allow-lists applied when the connection is accepted (plain HTTP) or its TLS
//!   handshake is done, when the TCP peer alone decides it (no trusted proxy in between): a
//!   refused address is served apart, in a small pool of its own with a short header deadline,
//!   and every request it sends gets 403 with nothing else run; so refused addresses cannot
//!   take the connections or the time the allowed ones need. (The 403 waits for the request
//!   head because an HTTP client that gets an answer before it has sent its request treats
//!   it as a broken connection, not as a 403.)
//! - per-connection header-read and idle deadlines and a lingering close ([`super::conn_io`]);
//! - graceful shutdown: stop accepting, let requests in flight finish, close idle connections;
//! - an `accept` that fails for want of descriptors (`EMFILE`) retried after a few
//!   milliseconds, not the second `axum::serve` sleeps ([`super::accept`]); with the cap
//!   fitted to the open-file limit (`fd_limit.rs`) it should not happen at all.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::Semaphore;

use super::conn_io::{Busy, Deadlines, TimedIo};
use super::error::ApiError;
use super::tls::ServeListener;
use crate::common::metrics::{CONNECTIONS_OPEN, CONNECTIONS_REFUSED};

/// Connections from refused addresses open at once; more are closed at accept (outside
/// `http.max_connections`: `fd_limit.rs` keeps descriptors for them).
pub const REFUSED_CONNECTIONS: usize = 256;

/// Longest a refused address may take to send the request head its 403 answers.
const REFUSED_HEADER_READ: Duration = Duration::from_secs(2);

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
    let refused = Arc::new(Semaphore::new(REFUSED_CONNECTIONS));
    let refused_deadlines = Deadlines {
        header_read: limits.deadlines.header_read.min(REFUSED_HEADER_READ),
        idle: limits.deadlines.idle.min(REFUSED_HEADER_READ),
    };
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let peer_ip = peer.0.ip().to_canonical();
        let refused_peer = refuse_peer(peer_ip);
        let (pool, deadlines, reason) = if refused_peer {
            (&refused, refused_deadlines, "ip_not_allowed")
        } else {
            (&open, limits.deadlines, "max_connections")
        };
        let Ok(slot) = pool.clone().try_acquire_owned() else {
            metrics::counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(1);
            tracing::debug!(peer = %peer.0, reason, "connection closed at accept");
            drop(stream);
            continue;
        };
        metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
        let busy = Arc::new(Busy::default());
        let io = TokioIo::new(TimedIo::new(stream, deadlines, busy.clone()));
        let mut http = hyper::server::conn::http1::Builder::new();
        // The deadlines live in `TimedIo`; hyper's own would also cut idle connections at the
        // header deadline.
        http.header_read_timeout(None).keep_alive(true);
        let connection: Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>> = if refused_peer {
            let service = hyper::service::service_fn(move |_: hyper::Request<Incoming>| {
                let _handling = busy.enter();
                let span = tracing::info_span!("ingress", client_ip = %peer_ip, peer = %peer_ip);
                let response = span.in_scope(|| ApiError::Forbidden.into_response());
                std::future::ready(Ok::<_, Infallible>(response))
            });
            Box::pin(graceful.watch(http.serve_connection(io, service)))
        } else {
            let router = router.clone();
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    let handling = busy.enter();
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let router = router.clone();
                    async move {
                        let response = tower::ServiceExt::oneshot(router, request).await;
                        drop(handling);
                        response
                    }
                });
            Box::pin(graceful.watch(http.serve_connection(io, service)))
        };
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

/// The early refusal for the endpoints' source policies: only when every endpoint would
/// refuse the peer — it is not a trusted proxy (then the client address is in a header, read
/// later) and no endpoint allows it. One endpoint open to any address refuses nobody here.
pub fn refuse_untrusted_peer(sources: Vec<Arc<super::source_ip::SourcePolicy>>) -> RefusePeer {
    Arc::new(move |peer| !sources.is_empty() && sources.iter().all(|s| s.refuses_peer(peer)))
}

/// Refuses nobody (tests, tools).
pub fn refuse_nobody() -> RefusePeer {
    Arc::new(|_| false)
}
