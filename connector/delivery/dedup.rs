//! The duplicate fast path: recently stored events, keyed like compaction by (topic, key) plus
//! the body, so a vendor retry (same bytes) is answered from memory while a different body that
//! reuses an id is still stored. Concurrent requests for the same entry coalesce onto one store
//! and all get its result; a failed store is not remembered, so a later retry tries again.
//!
//! Entries expire in the order they were stored (a fixed TTL, and nothing refreshes an entry),
//! so the structure is a map plus a FIFO of insertion times, under one mutex that is held for
//! a map operation, never across an await. A general-purpose cache (moka, used here before)
//! spent about 7 % of the connector's CPU and 300 bytes an entry on access-order and frequency
//! bookkeeping this access pattern never uses (docs/performance.md).
//!
//! An entry is a 128-bit fingerprint of (topic, key, body), not the strings: two SipHash-1-3
//! digests under random per-process keys, so a sender cannot craft a collision and an accidental
//! one (which would answer a different body as a duplicate) is about n² / 2¹²⁹ — never, at any
//! size this map can have.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
// tokio's clock (the std one unless a test pauses time).
use tokio::time::Instant;

/// What a coalesced request receives from the one that stores: `None` until it finishes.
type Shared<V, E> = Option<Result<V, Arc<E>>>;

/// Bounded, expiring record of stored events.
pub struct Dedup<V, E> {
    inner: Option<Arc<Inner<V, E>>>,
    /// Two independently keyed hashers: the high and low halves of a fingerprint.
    hashers: [RandomState; 2],
}

impl<V, E> Clone for Dedup<V, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            hashers: self.hashers.clone(),
        }
    }
}

struct Inner<V, E> {
    state: Mutex<State<V, E>>,
    max_entries: usize,
    ttl: Duration,
}

/// An entry's 128-bit fingerprint as two `u64`s: 8-byte aligned, so a map entry with a
/// [`crate::delivery::Stored`] is 40 bytes where a `u128` key (16-byte aligned) made it 48, and
/// the map holds only what a lookup needs (the times live in the FIFO): 64 bytes an entry before.
type Fingerprint = [u64; 2];

struct State<V, E> {
    /// Stored entries.
    stored: HashMap<Fingerprint, V>,
    /// The same entries oldest first, with when they were stored: what expires or is evicted
    /// next.
    order: VecDeque<(Fingerprint, Instant)>,
    /// Stores under way; the coalesced requests subscribe to them. The storing request holds
    /// the other reference, so the channel closes when both are gone.
    pending: HashMap<Fingerprint, Arc<watch::Sender<Shared<V, E>>>>,
}

/// Entries the map and the FIFO are sized for at start-up, at most. Sized once, they never
/// reallocate on the request path: growing by doubling held the old and the new table at
/// once, and glibc kept the freed tables' memory, so the peak RSS at 3500 webhooks/s rose by
/// about 15 MiB as the cache filled (docs/performance.md). Pages of the reserved tables become
/// resident only as entries land in them.
const PRESIZED_ENTRIES_MAX: usize = 1 << 20;

/// The map is sized for this many times the cap. A full cache evicts on every insert, and each
/// removal may leave a tombstone that still takes a slot; when the slots run out, `hashbrown`
/// cleans the tombstones up in place only if the entries fill at most half of its capacity, and
/// otherwise doubles the table. Sized for the cap alone it doubled once the cache had turned
/// over (issue 26: +16 MiB of peak RSS at half the max rate); with twice the room it never
/// does.
const MAP_ROOM: usize = 2;

impl<V: Clone, E> Dedup<V, E> {
    /// `max_entries == 0` disables the fast path.
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        let inner = (max_entries > 0).then(|| {
            let max_entries = usize::try_from(max_entries).unwrap_or(usize::MAX);
            // One more than the cap: an insert lands before the oldest entry is evicted.
            let presized = max_entries.saturating_add(1).min(PRESIZED_ENTRIES_MAX);
            Arc::new(Inner {
                state: Mutex::new(State {
                    stored: HashMap::with_capacity(presized.saturating_mul(MAP_ROOM)),
                    order: VecDeque::with_capacity(presized),
                    pending: HashMap::new(),
                }),
                max_entries,
                ttl,
            })
        });
        Self {
            inner,
            hashers: [RandomState::new(), RandomState::new()],
        }
    }

    /// The map key of (topic, key, scope).
    fn fingerprint(&self, topic: &str, key: &str, scope: impl Hash + Copy) -> Fingerprint {
        self.hashers
            .each_ref()
            .map(|state| state.hash_one((topic, key, scope)))
    }

    /// Runs `store` unless an entry for the same (topic, key, scope) is stored or being
    /// stored; returns the outcome and whether it came from another request (a duplicate).
    /// The scope is the body, or the sender's idempotency key (see
    /// [`super::DuplicateScope`]).
    pub async fn once<F>(
        &self,
        topic: &str,
        key: &str,
        scope: impl Hash + Copy,
        store: F,
    ) -> Result<(V, bool), Arc<E>>
    where
        F: Future<Output = Result<V, E>>,
    {
        let Some(inner) = &self.inner else {
            return store.await.map(|v| (v, false)).map_err(Arc::new);
        };
        let id = self.fingerprint(topic, key, scope);
        loop {
            let step = {
                let mut state = inner.lock();
                inner.expire(&mut state, Instant::now());
                if let Some(value) = state.stored.get(&id) {
                    Step::Stored(value.clone())
                } else if let Some(sender) = state.pending.get(&id) {
                    Step::Watch(sender.subscribe())
                } else {
                    let sender = Arc::new(watch::Sender::new(None));
                    state.pending.insert(id, sender.clone());
                    Step::Store(sender)
                }
            };
            match step {
                Step::Stored(value) => return Ok((value, true)),
                Step::Store(sender) => return inner.store(id, sender, store).await,
                // Another request is storing the same entry: take its result. If it was
                // cancelled (its sender dropped with no result), go round and store it here.
                Step::Watch(mut watching) => {
                    if let Ok(shared) = watching.wait_for(Option::is_some).await {
                        if let Some(result) = shared.clone() {
                            return result.map(|value| (value, true));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
impl<V: Clone, E> Dedup<V, E> {
    /// Stores under way.
    fn pending(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.lock().pending.len())
    }

    /// Slots of the map of stored entries.
    fn capacity(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.lock().stored.capacity())
    }

    /// Requests waiting for a store under way.
    fn watchers(&self) -> usize {
        self.inner.as_ref().map_or(0, |inner| {
            let state = inner.lock();
            state.pending.values().map(|s| s.receiver_count()).sum()
        })
    }
}

/// What a request does once it has looked the entry up.
enum Step<V, E> {
    /// Answer with the stored outcome.
    Stored(V),
    /// Wait for the request that is storing it.
    Watch(watch::Receiver<Shared<V, E>>),
    /// Store it and tell the others.
    Store(Arc<watch::Sender<Shared<V, E>>>),
}

impl<V: Clone, E> Inner<V, E> {
    fn lock(&self) -> MutexGuard<'_, State<V, E>> {
        // A panic while holding the lock leaves the maps consistent (each operation is one
        // insert or remove), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops entries older than the TTL, then the oldest beyond `max_entries`.
    fn expire(&self, state: &mut State<V, E>, now: Instant) {
        while let Some(&(id, at)) = state.order.front() {
            if now.duration_since(at) < self.ttl && state.order.len() <= self.max_entries {
                break;
            }
            state.order.pop_front();
            state.stored.remove(&id);
        }
    }

    /// Runs the store as the one request doing it; publishes the result to the coalesced ones.
    async fn store<F>(
        &self,
        id: Fingerprint,
        sender: Arc<watch::Sender<Shared<V, E>>>,
        store: F,
    ) -> Result<(V, bool), Arc<E>>
    where
        F: Future<Output = Result<V, E>>,
    {
        // If this future is dropped mid-store the guard withdraws the pending entry, the
        // channel closes, and the waiters wake up and store it themselves.
        let guard = Withdraw { inner: self, id };
        let result = store.await.map_err(Arc::new);
        std::mem::forget(guard);
        {
            let mut state = self.lock();
            state.pending.remove(&id);
            if let Ok(value) = &result {
                let now = Instant::now();
                state.stored.insert(id, value.clone());
                state.order.push_back((id, now));
                self.expire(&mut state, now);
            }
        }
        sender.send_replace(Some(result.clone()));
        result.map(|value| (value, false))
    }
}

/// Removes a pending entry whose store was abandoned.
struct Withdraw<'a, V: Clone, E> {
    inner: &'a Inner<V, E>,
    id: Fingerprint,
}

impl<V: Clone, E> Drop for Withdraw<'_, V, E> {
    fn drop(&mut self) {
        self.inner.lock().pending.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn concurrent_equal_requests_store_once_and_failures_are_not_cached() {
        let dedup: Dedup<u32, &str> = Dedup::new(100, Duration::from_secs(60));
        let stores = Arc::new(AtomicU32::new(0));
        let (gate_tx, gate_rx) = watch::channel(false);
        let run = |topic: &'static str, key: &'static str, body: &'static [u8]| {
            let dedup = dedup.clone();
            let stores = stores.clone();
            let mut gate = gate_rx.clone();
            tokio::spawn(async move {
                dedup
                    .once(topic, key, body, async move {
                        gate.wait_for(|open| *open).await.unwrap();
                        Ok(stores.fetch_add(1, Ordering::SeqCst))
                    })
                    .await
                    .unwrap()
            })
        };
        let same: Vec<_> = (0..5).map(|_| run("t", "k", b"1")).collect();
        let other_topic = run("u", "k", b"1");
        let other_body = run("t", "k", b"2");
        gate_tx.send(true).unwrap();
        let results: Vec<_> = futures::future::join_all(same).await;
        let fresh = results.iter().filter(|r| !r.as_ref().unwrap().1).count();
        assert_eq!(fresh, 1, "one store, four duplicates");
        other_topic.await.unwrap();
        other_body.await.unwrap();
        assert_eq!(stores.load(Ordering::SeqCst), 3);

        let failed = dedup.once("f", "k", b"1", async { Err("down") }).await;
        assert_eq!(*failed.unwrap_err(), "down");
        let retried = dedup.once("f", "k", b"1", async { Ok(9) }).await.unwrap();
        assert_eq!(
            retried,
            (9, false),
            "a failure is not answered from the cache"
        );
    }

    #[tokio::test]
    async fn a_failure_reaches_the_coalesced_requests_too() {
        let dedup: Dedup<u32, &str> = Dedup::new(100, Duration::from_secs(60));
        let (gate_tx, gate_rx) = watch::channel(false);
        let leader = {
            let dedup = dedup.clone();
            let mut gate = gate_rx.clone();
            tokio::spawn(async move {
                dedup
                    .once("t", "k", b"1", async move {
                        gate.wait_for(|open| *open).await.unwrap();
                        Err("down")
                    })
                    .await
            })
        };
        // The follower's own store must not run while the leader's is pending.
        let follower = {
            let dedup = dedup.clone();
            tokio::spawn(async move {
                while dedup.pending() == 0 {
                    tokio::task::yield_now().await;
                }
                dedup.once("t", "k", b"1", async { Ok(1) }).await
            })
        };
        while dedup.watchers() == 0 {
            tokio::task::yield_now().await;
        }
        gate_tx.send(true).unwrap();
        assert_eq!(*leader.await.unwrap().unwrap_err(), "down");
        assert_eq!(*follower.await.unwrap().unwrap_err(), "down");
    }

    #[tokio::test]
    async fn a_cancelled_store_is_taken_over_by_a_waiting_request() {
        let dedup: Dedup<u32, ()> = Dedup::new(100, Duration::from_secs(60));
        let leader = {
            let dedup = dedup.clone();
            tokio::spawn(async move {
                dedup
                    .once("t", "k", b"1", std::future::pending::<Result<u32, ()>>())
                    .await
            })
        };
        while dedup.pending() == 0 {
            tokio::task::yield_now().await;
        }
        let follower = {
            let dedup = dedup.clone();
            tokio::spawn(async move { dedup.once("t", "k", b"1", async { Ok(7) }).await })
        };
        while dedup.watchers() == 0 {
            tokio::task::yield_now().await;
        }
        leader.abort();
        assert_eq!(follower.await.unwrap().unwrap(), (7, false));
        assert_eq!(dedup.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl_and_the_oldest_go_beyond_the_limit() {
        let dedup: Dedup<u32, ()> = Dedup::new(2, Duration::from_secs(60));
        let once = |key: &'static str, value: u32| {
            let dedup = dedup.clone();
            async move {
                dedup
                    .once("t", key, b"", async move { Ok(value) })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(once("a", 1).await, (1, false));
        assert_eq!(once("a", 2).await, (1, true), "remembered");
        once("b", 3).await;
        once("c", 4).await;
        assert_eq!(once("a", 5).await, (5, false), "the oldest of three went");
        assert_eq!(once("c", 6).await, (4, true));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(once("c", 7).await, (7, false), "expired");
    }

    #[tokio::test]
    async fn a_full_cache_turning_over_never_grows_its_map() {
        let max = 1000;
        let dedup: Dedup<u32, ()> = Dedup::new(max, Duration::from_secs(3600));
        let slots = dedup.capacity();
        assert!(slots >= 2 * max as usize, "room for twice the cap: {slots}");
        // Twenty times the cap: every insert past the first thousand evicts the oldest.
        for n in 0..20 * max {
            let key = n.to_string();
            let (_, duplicate) = dedup
                .once("t", &key, b"body".as_slice(), async { Ok(0) })
                .await
                .unwrap();
            assert!(!duplicate);
        }
        // Never more room than at the start (a reallocation doubles it). Less is allowed:
        // hashbrown counts tombstones against `capacity()` until it cleans them in place, and
        // how many there are depends on the map's random hash seed.
        let now = dedup.capacity();
        assert!(
            now <= slots,
            "the map was reallocated: {slots} → {now} slots"
        );
        // The newest entries are still answered from memory.
        let (_, duplicate) = dedup
            .once("t", "19999", b"body".as_slice(), async { Ok(1) })
            .await
            .unwrap();
        assert!(duplicate);
    }
}
