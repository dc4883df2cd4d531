//! One connection's byte stream with the deadlines hyper does not give us separately, and a
//! lingering close.
//!
//! - **Header read**: a new connection, or one that sent the first byte of its next request,
//!   must deliver the whole request head within `header_read_timeout`; bytes trickled one at a
//!   time do not extend it (slowloris).
//! - **Idle keep-alive**: after a response, the client has `idle_timeout` to start its next
//!   request. Kept apart from the header timeout so it can sit above a load balancer's own idle
//!   timeout (an LB that reuses a connection we just closed answers the vendor 502).
//! - While a request is being handled (head received, reply not yet produced) no deadline runs
//!   here: the body and the handler are bounded by `http.body_read_timeout_ms` and
//!   `http.request_timeout_ms` in the guard.
//! - **Lingering close**: when hyper closes the connection (after `Connection: close`, e.g. an
//!   early 401/413 whose body was never read), the write side is shut first and what the client
//!   still sends is read and discarded for a short while. Closing a socket with unread bytes
//!   makes the kernel send a reset, which can destroy the answer before the client reads it; a
//!   client still uploading would then see `Broken pipe` instead of the 413.
//!
//! hyper 1.x has one `header_read_timeout` that also starts when a connection goes idle, so
//! the two deadlines could not differ; that is why they are kept here.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Longest a closing connection is drained.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes a closing connection reads and discards.
const LINGER_MAX_BYTES: usize = 8 << 20;

/// The deadlines of every connection.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From accept (or the first byte of a later request) to a complete request head.
    pub header_read: Duration,
    /// From a response to the first byte of the next request.
    pub idle: Duration,
}

/// Set by the service while a request is being handled, so the stream's deadlines pause.
/// Requests are also counted, so a request handled between two reads is not missed. When a
/// request ends, the reader is woken: hyper may have polled the read side (Pending, no
/// deadline while busy) before the response, and would otherwise not poll it again until the
/// client sends something — an idle client never would, and its idle deadline never started.
#[derive(Debug, Default)]
pub(crate) struct Busy {
    active: AtomicBool,
    started: AtomicU64,
    reader: AtomicWaker,
}

impl Busy {
    /// Marks a request as being handled until the guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> BusyGuard {
        self.started.fetch_add(1, Ordering::AcqRel);
        self.active.store(true, Ordering::Release);
        BusyGuard(self.clone())
    }
}

/// Clears [`Busy`] on drop (the response is ready, or the request was cancelled).
pub(crate) struct BusyGuard(Arc<Busy>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.active.store(false, Ordering::Release);
        self.0.reader.wake();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head, since this instant.
    Head(Instant),
    /// A request is being handled.
    Busy,
    /// Between requests, since this instant.
    Idle(Instant),
}

/// What the connection is doing when hyper closes it.
enum Closing {
    Open,
    /// Write side shut; draining until EOF, the byte cap or the deadline.
    Draining {
        drained: usize,
    },
}

/// The stream with deadlines and a lingering close.
pub(crate) struct TimedIo<S> {
    inner: S,
    deadlines: Deadlines,
    busy: Arc<Busy>,
    /// Requests seen started so far.
    seen: u64,
    phase: Phase,
    timer: Pin<Box<Sleep>>,
    closing: Closing,
}

impl<S> TimedIo<S> {
    /// Wraps a just-accepted stream: its first request head is due within the header timeout.
    pub(crate) fn new(inner: S, deadlines: Deadlines, busy: Arc<Busy>) -> Self {
        let now = Instant::now();
        Self {
            inner,
            deadlines,
            busy,
            seen: 0,
            phase: Phase::Head(now),
            timer: Box::pin(tokio::time::sleep_until(now + deadlines.header_read)),
            closing: Closing::Open,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Head(since) => Some(since + self.deadlines.header_read),
            Phase::Idle(since) => Some(since + self.deadlines.idle),
            Phase::Busy => None,
        }
    }

    /// Follows the service: a request being handled pauses the deadlines, and once it is
    /// answered the idle clock starts.
    fn sync_phase(&mut self) {
        let started = self.busy.started.load(Ordering::Acquire);
        if self.busy.active.load(Ordering::Acquire) {
            self.phase = Phase::Busy;
        } else if started != self.seen || self.phase == Phase::Busy {
            self.phase = Phase::Idle(Instant::now());
        }
        self.seen = started;
    }

    /// `Ready(true)` once `deadline` has passed; otherwise arms the timer to wake the task.
    fn expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.sync_phase();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                match this.phase {
                    Phase::Idle(_) if buf.filled().len() > before => {
                        // The next request started: its head is now due.
                        this.phase = Phase::Head(Instant::now());
                    }
                    // Bytes that keep arriving do not extend the deadline.
                    Phase::Head(since) if since.elapsed() >= this.deadlines.header_read => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head not received in time",
                        )));
                    }
                    _ => {}
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                let Some(deadline) = this.deadline() else {
                    // Busy: no deadline here, but be woken when the request ends.
                    this.busy.reader.register(cx.waker());
                    if !this.busy.active.load(Ordering::Acquire) {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                };
                if this.expired(deadline, cx) {
                    let what = match this.phase {
                        Phase::Idle(_) => "idle keep-alive timeout",
                        _ => "request head not received in time",
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// Shuts the write side, then drains what the client still sends (see the module doc).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Closing::Open = this.closing {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.closing = Closing::Draining { drained: 0 };
            this.timer.as_mut().reset(Instant::now() + LINGER);
        }
        let mut scratch = [0u8; 8192];
        loop {
            let Closing::Draining { drained } = &mut this.closing else {
                unreachable!("set above");
            };
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    *drained += buf.filled().len();
                    if *drained >= LINGER_MAX_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                }
                // A reset or any error: the peer is gone, nothing left to protect.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return if this.timer.as_mut().poll(cx).is_ready() {
                        Poll::Ready(Ok(()))
                    } else {
                        Poll::Pending
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const DEADLINES: Deadlines = Deadlines {
        header_read: Duration::from_secs(5),
        idle: Duration::from_secs(60),
    };

    fn timed() -> (
        TimedIo<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        Arc<Busy>,
    ) {
        let (server, client) = tokio::io::duplex(1 << 16);
        let busy = Arc::new(Busy::default());
        (TimedIo::new(server, DEADLINES, busy.clone()), client, busy)
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_head_is_cut_at_the_header_deadline() {
        let (mut io, mut client, _busy) = timed();
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let error = loop {
            // One byte a second never extends the deadline.
            client.write_all(b"P").await.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
            if let Err(error) = io.read(&mut buf).await {
                break error;
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= DEADLINES.header_read);
        assert!(started.elapsed() < DEADLINES.header_read + Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_gets_the_idle_timeout_then_a_fresh_header_deadline() {
        let (mut io, mut client, busy) = timed();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(io.read(&mut buf).await.unwrap(), 18);
        // A request is handled, then answered: idle from here.
        drop(busy.enter());
        io.sync_phase();
        let idle_from = Instant::now();
        // Past the header deadline but within the idle one: still open.
        let read = tokio::time::timeout(DEADLINES.header_read * 2, io.read(&mut buf)).await;
        assert!(read.is_err(), "still waiting after the header deadline");
        client.write_all(b"G").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        // The next head started: the header deadline runs, not what was left of idle.
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(idle_from.elapsed() < DEADLINES.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_at_the_idle_timeout() {
        let (mut io, _client, busy) = timed();
        drop(busy.enter());
        io.sync_phase();
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= DEADLINES.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_clock_starts_when_a_request_ends_even_if_the_reader_waits_already() {
        let (io, _client, busy) = timed();
        let handling = busy.enter();
        // The reader is parked (busy, no deadline) before the request ends…
        let reader = tokio::spawn(async move {
            let mut io = io;
            let mut buf = [0u8; 8];
            io.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        let ended = Instant::now();
        drop(handling);
        // …and is woken, so the idle deadline closes it.
        let read = tokio::time::timeout(DEADLINES.idle * 2, reader).await;
        let error = read.expect("woken and timed out").unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(ended.elapsed() >= DEADLINES.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_while_a_request_is_handled() {
        let (mut io, mut client, busy) = timed();
        let _handling = busy.enter();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(DEADLINES.idle * 2, io.read(&mut buf)).await;
        assert!(read.is_err(), "a busy connection is not timed out here");
        client.write_all(b"x").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_drains_what_the_client_still_sends() {
        let (mut io, mut client, _busy) = timed();
        // The client is still uploading when the server closes.
        client.write_all(&[7u8; 40_000]).await.unwrap();
        let shutdown = tokio::spawn(async move {
            io.shutdown().await.unwrap();
        });
        // The server's write side is closed: the client reads EOF, not a reset…
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        // …and its remaining upload is still taken.
        client.write_all(&[7u8; 40_000]).await.unwrap();
        drop(client);
        shutdown.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_drained_for_a_bounded_time() {
        let (mut io, _client, _busy) = timed();
        let started = Instant::now();
        io.shutdown().await.unwrap();
        assert!(started.elapsed() >= LINGER);
        assert!(started.elapsed() < LINGER + Duration::from_secs(1));
    }
}
