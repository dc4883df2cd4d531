//! The duplicate fast path: recently stored events, keyed like compaction by (topic, key) plus
//! the body, so a vendor retry (same bytes) is answered from memory while a different body that
//! reuses an id is still stored. Concurrent requests for the same entry coalesce onto one store;
//! a failed store is not cached, so its retry tries again.
//!
//! An entry is a 128-bit fingerprint of (topic, key, body), not the strings: at the default
//! 100 000 entries that keeps the cache to a few MiB (docs/performance.md). The fingerprint is
//! two SipHash-1-3 digests under random per-process keys, so a sender cannot craft a collision
//! and an accidental one (which would answer a different body as a duplicate) is about
//! n² / 2¹²⁹ — never, at any size this cache can have.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use moka::policy::EvictionPolicy;

/// Bounded, expiring record of stored events.
#[derive(Clone)]
pub struct Dedup<V: Clone + Send + Sync + 'static> {
    cache: Option<Cache<u128, V>>,
    /// Two independently keyed hashers: the high and low halves of a fingerprint.
    hashers: [RandomState; 2],
}

impl<V: Clone + Send + Sync + 'static> Dedup<V> {
    /// `max_entries == 0` disables the fast path.
    pub fn new(max_entries: u64, ttl: Duration) -> Self {
        let cache = (max_entries > 0).then(|| {
            Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                // Retries follow the original within minutes, so the newest entries are the
                // useful ones. TinyLFU (moka's default) would refuse to admit new entries, all
                // seen once, in favour of old ones once the cache is full.
                .eviction_policy(EvictionPolicy::lru())
                .build()
        });
        Self {
            cache,
            hashers: [RandomState::new(), RandomState::new()],
        }
    }

    /// The cache key of (topic, key, body).
    fn fingerprint(&self, topic: &str, key: &str, body: &[u8]) -> u128 {
        let [high, low] = self
            .hashers
            .each_ref()
            .map(|state| state.hash_one((topic, key, body)));
        (u128::from(high) << 64) | u128::from(low)
    }

    /// Runs `store` unless an entry for the same (topic, key, body) is cached or being stored;
    /// returns the outcome and whether it came from another request (a duplicate).
    pub async fn once<E, F>(
        &self,
        topic: &str,
        key: &str,
        body: &[u8],
        store: F,
    ) -> Result<(V, bool), Arc<E>>
    where
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let Some(cache) = &self.cache else {
            return store.await.map(|v| (v, false)).map_err(Arc::new);
        };
        let entry = cache
            .entry(self.fingerprint(topic, key, body))
            .or_try_insert_with(store)
            .await?;
        let duplicate = !entry.is_fresh();
        Ok((entry.into_value(), duplicate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn concurrent_equal_requests_store_once_and_failures_are_not_cached() {
        let dedup: Dedup<u32> = Dedup::new(100, Duration::from_secs(60));
        let stores = Arc::new(AtomicU32::new(0));
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let run = |topic: &'static str, key: &'static str, body: &'static [u8]| {
            let dedup = dedup.clone();
            let stores = stores.clone();
            let mut gate = gate_rx.clone();
            tokio::spawn(async move {
                dedup
                    .once::<(), _>(topic, key, body, async move {
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

        let failed = dedup
            .once::<&str, _>("f", "k", b"1", async { Err("down") })
            .await;
        assert!(failed.is_err());
        let retried = dedup
            .once::<&str, _>("f", "k", b"1", async { Ok(9) })
            .await
            .unwrap();
        assert_eq!(
            retried,
            (9, false),
            "a failure is not answered from the cache"
        );
    }
}
