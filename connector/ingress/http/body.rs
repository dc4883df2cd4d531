//! Reading a request body under three bounds: its size (`http.max_body_bytes`, 413), the time
//! it may take to arrive (`http.body_read_timeout_ms`, 408), and a budget of body bytes held
//! across all requests at once (`http.max_body_bytes_in_flight`, 503).
//!
//! The budget is taken chunk by chunk as bytes arrive, not from the declared
//! `Content-Length`: a client that declares 1 MiB and trickles a byte at a time holds one
//! byte of it, so slow uploads cannot exhaust it, while what a burst of large bodies can hold
//! in memory stays capped.
//!
//! In modes whose credentials are in the body (`hmac`, `standard-webhooks`) the bytes are held
//! before anyone knows who sent them, so one client address (after trusted proxies; IPv6 by
//! its /64) may hold at most [`source_share`] of the budget (429): forged uploads that stall
//! near the size limit from one address cannot take the bytes signed webhooks need.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use bytes::BytesMut;
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use super::limits;

/// The part of an endpoint's body budget one client address may hold when the budget has a
/// per-source cap: a quarter, so at least four senders always find room however many uploads
/// each keeps open, and never less than one body of `max_body_bytes`, so one maximal body
/// from one address always fits (nor more than the whole budget).
pub(crate) fn source_share(budget: usize, max_body_bytes: usize) -> usize {
    (budget / 4).max(max_body_bytes).min(budget)
}

/// Body bytes that may be held at once, optionally with a cap per client address.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
    per_source: Option<Arc<PerSource>>,
}

/// Bytes held per client address. An entry exists only while its address holds a byte (it is
/// removed when its bytes return to 0), and every held byte belongs to a request being read
/// or answered, so the map has at most as many entries as requests in progress (bounded by
/// `http.max_connections`): a flood of addresses cannot grow it beyond that.
#[derive(Debug)]
struct PerSource {
    cap: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

impl PerSource {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn release(&self, source: IpAddr, bytes: usize) {
        let mut held = self.held();
        if let Some(left) = held.get_mut(&source) {
            *left = left.saturating_sub(bytes);
            if *left == 0 {
                held.remove(&source);
            }
        }
    }
}

/// A share of the [`BodyBudget`], returned when dropped (to the client address's count too).
#[derive(Debug, Default)]
pub(crate) struct BodyShare {
    permit: Option<OwnedSemaphorePermit>,
    source: Option<(Arc<PerSource>, IpAddr)>,
}

impl BodyShare {
    /// Bytes of the budget held.
    pub(crate) fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

impl Drop for BodyShare {
    fn drop(&mut self) {
        if let Some((per_source, source)) = &self.source {
            per_source.release(*source, self.bytes());
        }
    }
}

impl BodyBudget {
    /// A budget of `bytes` over all requests, and at most `per_source` of them held by one
    /// client address (`None`: no cap per address).
    pub fn new(bytes: usize, per_source: Option<usize>) -> Self {
        let total = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
            per_source: per_source.map(|cap| {
                Arc::new(PerSource {
                    cap,
                    held: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// Bytes held now, over all requests.
    pub fn held(&self) -> usize {
        self.total - self.bytes.available_permits()
    }

    /// An empty share for a request from `client`.
    fn share_for(&self, client: IpAddr) -> BodyShare {
        BodyShare {
            permit: None,
            source: self
                .per_source
                .as_ref()
                .map(|per_source| (per_source.clone(), limits::client_key(client))),
        }
    }

    /// Adds `bytes` to `share`: 429 when its client address would hold more than its cap,
    /// 503 when the budget has no room.
    fn grow(&self, share: &mut BodyShare, bytes: usize) -> Result<(), ApiError> {
        if bytes == 0 {
            return Ok(());
        }
        let permits = u32::try_from(bytes).map_err(|_| ApiError::Overloaded)?;
        let acquire = || {
            self.bytes
                .clone()
                .try_acquire_many_owned(permits)
                .map_err(|_| ApiError::Overloaded)
        };
        let more = match &share.source {
            None => acquire()?,
            Some((per_source, source)) => {
                // The address's count and the budget change together, under the lock, so
                // concurrent chunks from one address cannot both pass the cap.
                let mut held = per_source.held();
                let now = held.get(source).copied().unwrap_or(0);
                if now + bytes > per_source.cap {
                    return Err(ApiError::SourceOverloaded);
                }
                let more = acquire()?;
                *held.entry(*source).or_insert(0) += bytes;
                more
            }
        };
        match &mut share.permit {
            Some(held) => held.merge(more),
            None => share.permit = Some(more),
        }
        Ok(())
    }
}

/// The body of a request from `client` (the address the guard admitted), and the budget
/// share that stays held until the request is answered.
pub(crate) async fn read(
    body: Body,
    limit: usize,
    budget: &BodyBudget,
    client: IpAddr,
    timeout: Duration,
) -> Result<(Bytes, BodyShare), ApiError> {
    tokio::time::timeout(timeout, collect(body, limit, budget, client))
        .await
        .map_err(|_| ApiError::RequestTimeout)?
}

async fn collect(
    mut body: Body,
    limit: usize,
    budget: &BodyBudget,
    client: IpAddr,
) -> Result<(Bytes, BodyShare), ApiError> {
    let mut share = budget.share_for(client);
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
        budget.grow(&mut share, data.len())?;
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
    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn one_address_holds_at_most_its_cap_and_its_entry_goes_at_zero() {
        let budget = BodyBudget::new(20, Some(8));
        let (_, first) = read(chunked(vec![b"12345"]), 100, &budget, CLIENT, LONG)
            .await
            .unwrap();
        // 5 + 5 is over the address's 8, with the budget far from full: 429.
        let refused = read(chunked(vec![b"12", b"345"]), 100, &budget, CLIENT, LONG).await;
        assert!(matches!(refused, Err(ApiError::SourceOverloaded)));
        // The refused body's bytes went back, to the budget and to the address.
        assert_eq!(budget.held(), 5);
        // Another address has its own 8; an IPv6 /64 is one address.
        let (_, other) = read(
            chunked(vec![b"1234", b"5678"]),
            100,
            &budget,
            ip("2001:db8::1"),
            LONG,
        )
        .await
        .unwrap();
        let same_64 = read(
            chunked(vec![b"1"]),
            100,
            &budget,
            ip("2001:db8::ffff:2"),
            LONG,
        )
        .await;
        assert!(matches!(same_64, Err(ApiError::SourceOverloaded)));
        assert_eq!(budget.per_source.as_ref().unwrap().held().len(), 2);
        // Answered, the bytes return and the entries go: the map holds only addresses with
        // bytes in flight.
        drop((first, other));
        assert_eq!(budget.held(), 0);
        assert!(budget.per_source.as_ref().unwrap().held().is_empty());
        assert!(read(chunked(vec![b"12345678"]), 100, &budget, CLIENT, LONG)
            .await
            .is_ok());
    }

    #[test]
    fn an_address_gets_a_quarter_and_always_one_maximal_body() {
        assert_eq!(source_share(64 << 20, 1 << 20), 16 << 20);
        assert_eq!(source_share(2 << 20, 1 << 20), 1 << 20);
        assert_eq!(source_share(1 << 20, 1 << 20), 1 << 20);
    }

    #[tokio::test]
    async fn the_share_is_what_arrived_and_is_returned_on_drop() {
        let budget = BodyBudget::new(10, None);
        let (bytes, share) = read(chunked(vec![b"abc", b"def"]), 100, &budget, CLIENT, LONG)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"abcdef");
        assert_eq!(share.bytes(), 6);
        // 4 left: a 5-byte body does not fit while the first is held…
        let refused = read(chunked(vec![b"12345"]), 100, &budget, CLIENT, LONG).await;
        assert!(matches!(refused, Err(ApiError::Overloaded)));
        // …and fits once it is answered.
        drop(share);
        assert!(read(chunked(vec![b"12345"]), 100, &budget, CLIENT, LONG)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn over_the_limit_is_413() {
        let budget = BodyBudget::new(1 << 20, None);
        let result = read(chunked(vec![b"abc", b"def"]), 5, &budget, CLIENT, LONG).await;
        assert!(matches!(result, Err(ApiError::PayloadTooLarge(5))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_is_408_at_the_deadline() {
        let budget = BodyBudget::new(1 << 20, None);
        use futures::StreamExt as _;
        let first = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{"))]);
        let body = Body::from_stream(first.chain(stream::pending()));
        let result = read(body, 100, &budget, CLIENT, Duration::from_secs(5)).await;
        assert!(matches!(result, Err(ApiError::RequestTimeout)));
    }
}
