//! `store = "tiered"`: this process's memory (L1) in front of Redis, kept in step across
//! processes by Redis pub/sub. This is the whole invalidation protocol.
//!
//! # Reading
//! A call reads L1 while the bus is live ([`crate::bus`]): never while the subscription is
//! down, since messages may be missed then. On an L1 miss, the key's flight
//! ([`crate::flight`]) reads Redis, then runs the body; the value goes to Redis (`SET`, under
//! the flight's gate) and to L1, in a task the caller does not wait for (`store::fills`): the
//! flight, kept until then, hands the value to calls of the key meanwhile. Both L1 fills are checked against the flight under the L1
//! segment lock: a value read or loaded before an invalidation of its key never lands after
//! it. In a fresh process, calls wait (at most the Redis timeout) for the bus's first
//! subscription before they join or lead a flight: that subscription voids the flights under
//! way, as every (re)subscription does, so a load begun before it would store nothing.
//!
//! # Invalidating (`#[invalidates]`, `f_invalidate`)
//! 1. Void the key's flight (waiting for a write it began), drop the key from L1.
//! 2. `DEL` it from Redis; if Redis does not confirm it, keep it (`redis::pending`).
//! 3. Void and drop again: a reader that began after step 1 may have read the old value
//!    from Redis before the `DEL` ran (reads take another connection than writes).
//! 4. Publish `Keys` on `{prefix}:invalidations`, now if the `DEL` was confirmed, else once
//!    its replay is: no process may drop its copy before Redis lost the key, or it would read
//!    the old value again.
//!
//! `#[cache_put]` runs the same steps with a `SET` of the new value in place of the `DEL` (a
//! `DEL` if the value cannot be stored), and remembers the write (below). A clear
//! (`all(f)`, `f_clear`) runs them for every key: `SCAN`/`UNLINK`, then publishes `All`.
//!
//! # Receiving a message (another process's; a process ignores its own)
//! - `Keys`: void the keys' flights and drop them from L1. If this process wrote one of them to
//!   Redis within the last second ([`RecentWrites`]), that write may have landed after the other
//!   process's `DEL` with a value loaded before the change: delete it again, void and drop
//!   again, and publish the keys as an `Echo`.
//! - `Echo`: void and drop the keys from L1, nothing else, so that one invalidation never sets
//!   off another round of deletes and messages.
//! - `All`: as `Keys`, for every key and every recent write.
//!
//! # When the subscription drops
//! The bus marks every flight stale and clears L1 at once, stops reading and filling L1 until
//! it has subscribed again, and clears L1 again then: messages may have been missed meanwhile.
//!
//! # What it does not cover
//! A write of this process that lands more than a second after another process's `DEL` (a
//! `SET` stuck that long) outlives it until its ttl; so does one that lands after a `DEL` whose
//! message this process missed while its subscription was down (as with `store = "redis"`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::bus::{self, Announce, Bus};
use crate::cached_fn::Key;
use crate::clock::Clock;
use crate::context::Context;
use crate::flight::{Flight, FlightGuard};
use crate::stats::Counters;
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisFn, Written};

/// How long a tiered store keeps entries in memory unless `l1_ttl` says otherwise (or `ttl` is
/// shorter).
pub const DEFAULT_L1_TTL: Duration = Duration::from_secs(60);

/// How recent a local Redis write must be for a remote invalidation of its key to delete it
/// again.
pub(crate) const RECENT_SET: Duration = Duration::from_secs(1);

/// One function's tiered store.
pub(crate) struct TieredFn<V> {
    l1: MemoryStore<V>,
    l1_ttl: Duration,
    pub(crate) shared: RedisFn<V>,
    recent: RecentWrites,
}

impl<V> TieredFn<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// A tiered store of `l1` in front of `shared`, keeping entries in `l1` for `l1_ttl`.
    pub(crate) fn new(l1: MemoryStore<V>, l1_ttl: Duration, shared: RedisFn<V>) -> Self {
        Self {
            l1,
            l1_ttl,
            shared,
            recent: RecentWrites::new(Clock::system()),
        }
    }

    /// Registers the function on the bus, which then delivers its messages.
    pub(crate) fn join_bus(&'static self, ctx: &'static Context<V>) {
        let subscriber: &'static Subscriber<V> =
            Box::leak(Box::new(Subscriber { ctx, tiered: self }));
        Bus::global().join(&ctx.namespace, subscriber);
    }

    /// L1, while the bus is live (a hit counted as an L1 hit).
    #[inline]
    pub(crate) fn get_local(&self, ctx: &Context<V>, key: &Key) -> Option<V> {
        if !Bus::global().live() {
            return None;
        }
        let value = self.l1.get(key.digest())?;
        ctx.counters.l1_hits.bump();
        Some(value)
    }

    /// What a call does before it joins or leads the key's flight: in a fresh process, wait
    /// (at most the Redis timeout) for the bus's first subscription, which would void a flight
    /// begun before it. Finds nothing.
    pub(crate) async fn before_flight(&self) -> Option<V> {
        Bus::global()
            .first_subscription(self.shared.redis.timeout())
            .await;
        None
    }

    /// The lookup of a flight's leader: L1 again (a flight that just ended may have filled
    /// it), then Redis, filling L1 unless an invalidation voided the flight meanwhile.
    pub(crate) async fn get_leading(
        &self,
        ctx: &Context<V>,
        key: &Key,
        flight: &Flight<V>,
    ) -> Option<V> {
        if let Some(value) = self.get_local(ctx, key) {
            return Some(value);
        }
        let bus = Bus::global();
        let live = bus.live();
        let value = self.shared.get(ctx, key).await?;
        // A value kept out of the cache by the policy now (say, a ttl that has become zero)
        // stays out of L1 too.
        if let (true, Some(ttl)) = (live && bus.live(), ctx.policy.admit(&value)) {
            let ttl = Some(self.l1_ttl(ttl));
            self.l1
                .insert(key.digest(), value.clone(), ttl, || flight.current());
        }
        Some(value)
    }

    /// Stores a loaded value in Redis and L1, unless an invalidation voided its flight
    /// ([`FlightGuard::write_detached`]).
    pub(crate) fn fill(
        &'static self,
        ctx: &'static Context<V>,
        key: &Key,
        value: &V,
        ttl: Option<Duration>,
        flight: FlightGuard<'static, V>,
    ) {
        let write = self.shared.encode(ctx, key, value, ttl);
        let (key, kept) = (key.clone(), value.clone());
        let ticket = flight.flight().clone();
        flight.write_detached(value, async move {
            // Remembered before the write is sent: a remote invalidation handled from now
            // on deletes the key again if this write may have outlived it.
            self.recent
                .remember(key.digest(), || self.shared.keys.redis_key(&key));
            if let Some(write) = &write {
                self.shared.send(ctx, write).await;
            }
            if Bus::global().live() {
                let ttl = Some(self.l1_ttl(ttl));
                self.l1.insert(key.digest(), kept, ttl, || ticket.current());
            }
        });
    }

    /// How long L1 keeps a value whose own ttl is `ttl`: `l1_ttl`, or less for a value that
    /// lives less.
    fn l1_ttl(&self, ttl: Option<Duration>) -> Duration {
        ttl.map_or(self.l1_ttl, |ttl| ttl.min(self.l1_ttl))
    }

    /// Invalidates `key` everywhere (see the module doc).
    pub(crate) async fn invalidate(&'static self, ctx: &Context<V>, key: &Key) {
        self.drop_local(ctx, key.digest()).await;
        let deleted = self.shared.delete(ctx, key).await;
        self.drop_local(ctx, key.digest()).await;
        self.shared
            .announce(ctx, &[key.digest()], Announce::Keys, deleted)
            .await;
    }

    /// Writes `value` through to Redis and tells the other processes (see the module doc).
    pub(crate) async fn put(
        &'static self,
        ctx: &Context<V>,
        key: &Key,
        value: &V,
        ttl: Option<Duration>,
    ) {
        self.drop_local(ctx, key.digest()).await;
        self.recent
            .remember(key.digest(), || self.shared.keys.redis_key(key));
        let mut sent = true;
        if self.shared.write(ctx, key, value, ttl).await == Written::No {
            sent = self.shared.delete(ctx, key).await;
        }
        self.drop_local(ctx, key.digest()).await;
        self.shared
            .announce(ctx, &[key.digest()], Announce::Keys, sent)
            .await;
    }

    /// Drops every entry everywhere (see the module doc).
    pub(crate) async fn clear(&'static self, ctx: &Context<V>) {
        self.drop_all_local(ctx).await;
        let deleted = self.shared.delete_all(ctx).await;
        self.drop_all_local(ctx).await;
        self.shared.announce(ctx, &[], Announce::All, deleted).await;
    }

    /// Voids the key's flight and drops it from L1.
    async fn drop_local(&self, ctx: &Context<V>, digest: u128) {
        ctx.flights.void(digest).await;
        self.l1.remove(digest);
    }

    async fn drop_all_local(&self, ctx: &Context<V>) {
        ctx.flights.void_all().await;
        self.l1.clear();
    }

    /// Deletes again those of `again` (written lately by this process) and echoes them.
    async fn delete_again(&'static self, ctx: &Context<V>, again: Vec<(u128, String)>) {
        if again.is_empty() {
            return;
        }
        let (digests, names): (Vec<u128>, Vec<String>) = again.into_iter().unzip();
        if self.shared.delete_keys(ctx, &digests, names).await {
            self.shared
                .announce(ctx, &digests, Announce::Echo, true)
                .await;
        }
        for digest in digests {
            // What a reader put in memory between the two deletes goes too.
            self.drop_local(ctx, digest).await;
        }
    }

    /// Entries in L1: evictions, expirations, entries held.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (
            self.l1.evictions(),
            self.l1.expirations(),
            self.l1.len() as u64,
        )
    }
}

/// A tiered function as the bus sees it.
struct Subscriber<V: 'static> {
    ctx: &'static Context<V>,
    tiered: &'static TieredFn<V>,
}

impl<V> bus::Subscriber for Subscriber<V>
where
    V: Clone + Send + Sync + 'static,
{
    fn drop_keys<'a>(&'static self, digests: &'a [u128], echo: bool) -> bus::BoxFuture<'a> {
        let (ctx, tiered) = (self.ctx, self.tiered);
        Box::pin(async move {
            for &digest in digests {
                tiered.drop_local(ctx, digest).await;
            }
            if echo {
                // The invalidation itself came before and was counted.
                return;
            }
            let again = digests
                .iter()
                .filter_map(|&digest| Some((digest, tiered.recent.take(digest)?)))
                .collect();
            tiered.delete_again(ctx, again).await;
            // Counted once done, so that a reader of the counter knows the memory tier will
            // not be cleared again by this message.
            ctx.counters
                .remote_invalidations
                .fetch_add(digests.len() as u64, std::sync::atomic::Ordering::Relaxed);
        })
    }

    fn drop_all(&'static self) -> bus::BoxFuture<'static> {
        let (ctx, tiered) = (self.ctx, self.tiered);
        Box::pin(async move {
            tiered.drop_all_local(ctx).await;
            tiered.delete_again(ctx, tiered.recent.take_all()).await;
            tiered.drop_all_local(ctx).await;
            // Counted once done, as `drop_keys` does.
            Counters::bump(&ctx.counters.remote_invalidations);
        })
    }

    fn clear(&self) {
        self.ctx.flights.mark_all_stale();
        self.tiered.l1.clear();
    }
}

/// The keys a tiered function wrote to Redis within the last [`RECENT_SET`] or so, with their
/// Redis names: a remote invalidation of one of them deletes it again.
///
/// Two generations of maps: writes go to the current one, which becomes the previous one
/// after [`RECENT_SET`], when the previous one is dropped whole. So a write is remembered for
/// one to two [`RECENT_SET`]s, and each write or look-up costs O(1).
struct RecentWrites {
    clock: Clock,
    inner: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    current: HashMap<u128, String>,
    previous: HashMap<u128, String>,
    /// When `current` was started, on the clock.
    since: u64,
}

impl RecentWrites {
    fn new(clock: Clock) -> Self {
        let since = clock.now_ms();
        Self {
            clock,
            inner: Mutex::new(Recent {
                since,
                ..Recent::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Recent> {
        // No user code runs under this lock: a panic cannot leave it half-changed.
        let mut recent = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.clock.now_ms();
        let window = RECENT_SET.as_millis() as u64;
        let age = now.saturating_sub(recent.since);
        if age >= window {
            recent.previous = if age >= 2 * window {
                HashMap::new()
            } else {
                std::mem::take(&mut recent.current)
            };
            recent.current.clear();
            recent.since = now;
        }
        recent
    }

    /// Remembers a write of `digest`, under the Redis name `name()` gives.
    fn remember(&self, digest: u128, name: impl FnOnce() -> String) {
        let mut recent = self.lock();
        recent.previous.remove(&digest);
        recent.current.insert(digest, name());
    }

    /// The Redis name of `digest` if this process wrote it lately; forgets it.
    fn take(&self, digest: u128) -> Option<String> {
        let mut recent = self.lock();
        recent
            .current
            .remove(&digest)
            .or_else(|| recent.previous.remove(&digest))
    }

    /// Every write remembered, forgotten.
    fn take_all(&self) -> Vec<(u128, String)> {
        let mut recent = self.lock();
        let previous = std::mem::take(&mut recent.previous);
        recent.current.drain().chain(previous).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{RecentWrites, RECENT_SET};
    use crate::clock::Clock;

    #[test]
    fn recent_writes_are_kept_one_to_two_windows_and_no_longer() {
        let (clock, hand) = Clock::manual();
        let recent = RecentWrites::new(clock);
        recent.remember(1, || "k1".into());
        hand.advance(RECENT_SET + RECENT_SET / 2);
        recent.remember(2, || "k2".into());
        assert_eq!(
            recent.take(1).as_deref(),
            Some("k1"),
            "from the window before"
        );
        assert_eq!(recent.take(1), None, "taken once");
        recent.remember(3, || "k3".into());
        hand.advance(RECENT_SET * 2);
        assert_eq!(recent.take(2), None, "older than two windows");
        for digest in 0..10_000 {
            recent.remember(digest, String::new);
        }
        hand.advance(RECENT_SET * 2);
        recent.remember(7, || "k7".into());
        let kept = recent.lock();
        assert_eq!(
            kept.current.len() + kept.previous.len(),
            1,
            "old writes are dropped whole, not kept until looked up"
        );
    }
}
