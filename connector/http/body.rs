//! Reading a request body under three bounds: its size (`http.max_body_bytes`, 413), the time
//! it may take to arrive (`http.body_read_timeout_ms`, 408), and a budget of body bytes held
//! across all requests at once (`http.max_body_bytes_in_flight`, 503).
//!
//! The budget is taken chunk by chunk as bytes arrive, not from the declared
//! `Content-Length`: a client that declares 1 MiB and trickles a byte at a time holds one
//! byte of it, so slow uploads cannot exhaust it, while what a burst of large bodies can hold
//! in memory stays capped.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use bytes::BytesMut;
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// Body bytes that may be held at once.
#[derive(Debug, Clone)]
pub struct BodyBudget(Arc<Semaphore>);

/// A share of the [`BodyBudget`], returned when dropped.
#[derive(Debug, Default)]
pub struct BodyShare(Option<OwnedSemaphorePermit>);

impl BodyShare {
    /// Bytes of the budget held.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self(Arc::new(Semaphore::new(
            bytes.clamp(1, Semaphore::MAX_PERMITS),
        )))
    }

    /// Adds `bytes` to `share`, or `None` when the budget has no room.
    fn grow(&self, share: &mut BodyShare, bytes: usize) -> Option<()> {
        if bytes == 0 {
            return Some(());
        }
        let more = self
            .0
            .clone()
            .try_acquire_many_owned(u32::try_from(bytes).ok()?)
            .ok()?;
        match &mut share.0 {
            Some(held) => held.merge(more),
            None => share.0 = Some(more),
        }
        Some(())
    }
}

/// The body, and the budget share that stays held until the request is answered.
pub async fn read(
    body: Body,
    limit: usize,
    budget: &BodyBudget,
    timeout: Duration,
) -> Result<(Bytes, BodyShare), ApiError> {
    tokio::time::timeout(timeout, collect(body, limit, budget))
        .await
        .map_err(|_| ApiError::RequestTimeout)?
}

async fn collect(
    mut body: Body,
    limit: usize,
    budget: &BodyBudget,
) -> Result<(Bytes, BodyShare), ApiError> {
    let mut share = BodyShare::default();
    // A body that arrives in one frame (the usual webhook) is kept as it is; only a second
    // frame makes a buffer to join them in.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::BodyRead(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we keep
        };
        if len + data.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        budget
            .grow(&mut share, data.len())
            .ok_or(ApiError::Overloaded)?;
        len += data.len();
        match (&mut joined, first.take()) {
            (Some(buffer), _) => buffer.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(earlier)) => {
                let mut buffer = BytesMut::with_capacity(len);
                buffer.extend_from_slice(&earlier);
                buffer.extend_from_slice(&data);
                joined = Some(buffer);
            }
        }
    }
    let body = match (joined, first) {
        (Some(buffer), _) => buffer.freeze(),
        (None, first) => first.unwrap_or_default(),
    };
    Ok((body, share))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn chunked(chunks: Vec<&'static [u8]>) -> Body {
        Body::from_stream(stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
        ))
    }

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn the_share_is_what_arrived_and_is_returned_on_drop() {
        let budget = BodyBudget::new(10);
        let (bytes, share) = read(chunked(vec![b"abc", b"def"]), 100, &budget, LONG)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"abcdef");
        assert_eq!(share.bytes(), 6);
        // 4 left: a 5-byte body does not fit while the first is held…
        let refused = read(chunked(vec![b"12345"]), 100, &budget, LONG).await;
        assert!(matches!(refused, Err(ApiError::Overloaded)));
        // …and fits once it is answered.
        drop(share);
        assert!(read(chunked(vec![b"12345"]), 100, &budget, LONG)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn over_the_limit_is_413() {
        let budget = BodyBudget::new(1 << 20);
        let result = read(chunked(vec![b"abc", b"def"]), 5, &budget, LONG).await;
        assert!(matches!(result, Err(ApiError::PayloadTooLarge(5))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_is_408_at_the_deadline() {
        let budget = BodyBudget::new(1 << 20);
        use futures::StreamExt as _;
        let first = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{"))]);
        let body = Body::from_stream(first.chain(stream::pending()));
        let result = read(body, 100, &budget, Duration::from_secs(5)).await;
        assert!(matches!(result, Err(ApiError::RequestTimeout)));
    }
}
