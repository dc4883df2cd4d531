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
//!   milliseconds, not the second `axum::serve` sleeps (`accept_tcp`); with the cap fitted
//!   to the open-file limit (`fd_limit.rs`) it should not happen at all.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::conn_io::{Busy, Deadlines, TimedIo};
use super::error::ApiError;
use super::tls::ServeListener;
use crate::common::metrics::{CONNECTIONS_OPEN, CONNECTIONS_REFUSED};

/// Connections from refused addresses open at once; more are closed at accept (outside
/// `http.max_connections`: `fd_limit.rs` keeps descriptors for them).
pub const REFUSED_CONNECTIONS: usize = 256;

/// Wait before accepting again after an error that is not the connection's own (out of
/// descriptors, out of memory): long enough not to spin on a failing `accept`, short enough
/// that a descriptor freed by a closing connection is used at once. (`axum::serve` sleeps a
/// whole second, during which nobody's connection is accepted.)
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// Fewest seconds between two log lines about failing accepts.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(1);

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

/// Accepts the next TCP connection (the listener's, [`ServeListener`], plain or TLS, accepts
/// through this). An error that concerns only the connection being
/// accepted (reset or aborted before it was taken) is skipped at once; any other (`EMFILE`,
/// `ENFILE`: out of descriptors; `ENOBUFS`, `ENOMEM`) is logged at most once a second, with
/// how many there were, and retried after [`ACCEPT_RETRY`].
pub(crate) async fn accept_tcp(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    accept_retrying(|| listener.accept()).await
}

async fn accept_retrying<T, F, Fut>(mut accept: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut failed = 0u64;
    let mut logged: Option<Instant> = None;
    loop {
        match accept().await {
            Ok(accepted) => return accepted,
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                failed += 1;
                if logged.is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                    tracing::error!(%error, failed, "accept failed; retrying");
                    logged = Some(Instant::now());
                    failed = 0;
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// An accept error about the one connection, not the listener or the process.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Out of descriptors, `accept` fails until a connection closes: the loop tries again
    /// within milliseconds, so a webhook waits for a free descriptor, not for a fixed second.
    #[tokio::test(start_paused = true)]
    async fn an_accept_out_of_descriptors_is_retried_within_milliseconds() {
        let mut left = 5;
        let started = tokio::time::Instant::now();
        let accepted = accept_retrying(|| {
            let result = if left == 0 {
                Ok("accepted")
            } else {
                left -= 1;
                Err(io::Error::from_raw_os_error(24)) // EMFILE
            };
            std::future::ready(result)
        })
        .await;
        assert_eq!(accepted, "accepted");
        let waited = started.elapsed();
        // Five failures cost less than one of `axum::serve`'s one-second sleeps, and each
        // waits a little: no busy loop.
        assert!(
            waited < Duration::from_millis(100),
            "5 failed accepts cost {waited:?}"
        );
        assert!(waited >= ACCEPT_RETRY * 5, "no busy loop: {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_reset_before_accept_is_skipped_at_once() {
        let mut left = 3;
        let started = tokio::time::Instant::now();
        let accepted = accept_retrying(|| {
            let result = if left == 0 {
                Ok(1)
            } else {
                left -= 1;
                Err(io::Error::from(io::ErrorKind::ConnectionAborted))
            };
            std::future::ready(result)
        })
        .await;
        assert_eq!(accepted, 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
