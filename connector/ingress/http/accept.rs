//! Accepting a TCP connection: an `accept` that fails for want of descriptors (`EMFILE`) or
//! memory is retried after a few milliseconds, not the second `axum::serve` sleeps, and an
//! error about the one connection being accepted is skipped at once.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// Wait before accepting again after an error that is not the connection's own (out of
/// descriptors, out of memory): long enough not to spin on a failing `accept`, short enough
/// that a descriptor freed by a closing connection is used at once. (`axum::serve` sleeps a
/// whole second, during which nobody's connection is accepted.)
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// Fewest seconds between two log lines about failing accepts.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(1);

/// Accepts the next TCP connection (the listener's, [`super::tls::ServeListener`], plain or
/// TLS, accepts through this). An error that concerns only the connection being
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
