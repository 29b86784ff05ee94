//! The in-process store: a bounded [`DashMap`] of typed values with a TTL per entry.
//!
//! # Shape
//!
//! Values live in one `DashMap<u128, Entry<V>>`, keyed by the 128-bit digest. A hit takes one
//! shard read lock, compares the entry's deadline with the clock, bumps a 4-bit use counter and
//! clones the value: nothing is serialized and nothing is locked store-wide.
//!
//! The capacity is split over *segments* (chosen by the key's high bits), each a mutex around a
//! dense vector of the keys it holds. Only writers (fills, invalidations) take a segment lock,
//! and always before a map shard lock, never the other way round. When a segment is full, a fill
//! samples a few of its keys at random and evicts the expired one or the least used (sampled LFU,
//! with the counters halved every few fills of the segment so old popularity fades, as Redis's
//! `allkeys-lfu` does). Each fill also looks at the next two keys under a moving hand and drops
//! them if expired, so expired entries leave without a timer task and without a global lock.
//!
//! # Races with invalidation
//!
//! [`MemoryStore::insert`] takes a check, `current`, that it runs under the key's segment lock,
//! the lock [`MemoryStore::remove`] takes too. The caller's check says whether an invalidation
//! of this one key (or a clear) ran since its load began; an invalidation marks the load stale
//! *before* it removes the key. So a value loaded before an invalidation either is checked
//! before the removal (and removed by it) or sees the mark (and is not stored): it never lands
//! after the invalidation. Invalidating one key never voids the loads of others.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dashmap::DashMap;

use crate::clock::Clock;
use crate::flight::Flights;

/// How many keys a full segment looks at to choose a victim.
const SAMPLES: usize = 8;
/// The use counter saturates here (4 bits, as in TinyLFU): hot keys stop writing it.
const MAX_FREQ: u8 = 15;
/// Keys per segment below which more segments bring nothing.
const MIN_SEGMENT: usize = 256;
/// Segments at most.
const MAX_SEGMENTS: usize = 64;

/// A bounded in-memory store of typed values.
pub(crate) struct MemoryStore<V> {
    map: DashMap<u128, Entry<V>, BuildHasherDefault<DigestHasher>>,
    segments: Box<[Mutex<Segment>]>,
    clock: Clock,
    evictions: AtomicUsize,
    expirations: AtomicUsize,
}

struct Entry<V> {
    value: V,
    /// Milliseconds on the store's clock; `u64::MAX` for never.
    expires_at: u64,
    freq: AtomicU8,
    /// Index of this key in its segment's `keys`.
    slot: AtomicUsize,
}

struct Segment {
    /// The keys held, each with its deadline, so that a sweep or an eviction finds expired
    /// entries without a look-up in the map.
    keys: Vec<Slot>,
    capacity: usize,
    rng: u64,
    hand: usize,
    fills_since_aging: usize,
}

/// What [`MemoryStore::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The value is stored.
    Stored,
    /// The check said the value went stale: nothing stored.
    Stale,
}

impl<V: Clone> MemoryStore<V> {
    /// A store holding at most `capacity` entries (at least one), on the system clock.
    #[cfg(test)]
    pub(crate) fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, Clock::system())
    }

    /// A store reading time from `clock`.
    pub(crate) fn with_clock(capacity: usize, clock: Clock) -> Self {
        let capacity = capacity.max(1);
        let count = (capacity / MIN_SEGMENT).clamp(1, MAX_SEGMENTS);
        let count = if count.is_power_of_two() {
            count
        } else {
            count.next_power_of_two() / 2
        };
        let segments = (0..count)
            .map(|i| {
                let share = capacity / count + usize::from(i < capacity % count);
                Mutex::new(Segment {
                    keys: Vec::new(),
                    capacity: share,
                    rng: 0x9E37_79B9_7F4A_7C15 ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9),
                    hand: 0,
                    fills_since_aging: 0,
                })
            })
            .collect();
        Self {
            map: DashMap::with_hasher(BuildHasherDefault::default()),
            segments,
            clock,
            evictions: AtomicUsize::new(0),
            expirations: AtomicUsize::new(0),
        }
    }

    /// The live value under `key`, cloned.
    #[inline(always)]
    pub(crate) fn get(&self, key: u128) -> Option<V> {
        // Read before the shard lock, whose locked instruction would otherwise hold the clock
        // read back until it retires: in this order the two overlap. An entry without a ttl expires at `u64::MAX`, which no clock reaches.
        let now = self.clock.now_ms();
        let entry = self.map.get(&key)?;
        if entry.expires_at <= now {
            return None;
        }
        let freq = entry.freq.load(Ordering::Relaxed);
        if freq < MAX_FREQ {
            entry.freq.store(freq + 1, Ordering::Relaxed);
        }
        Some(entry.value.clone())
    }

    /// Stores `value` under `key` for `ttl` (forever when `None`), unless `current()`, run
    /// under the lock that [`MemoryStore::remove`] takes, says the value went stale.
    pub(crate) fn insert(
        &self,
        key: u128,
        value: V,
        ttl: Option<Duration>,
        current: impl FnOnce() -> bool,
    ) -> Insert {
        let mut seg = self.segment(key);
        if !current() {
            return Insert::Stale;
        }
        let now = self.clock.now_ms();
        let expires_at = self.clock.deadline(ttl);
        if let Some(mut entry) = self.map.get_mut(&key) {
            entry.value = value;
            entry.expires_at = expires_at;
            let slot = entry.slot.load(Ordering::Relaxed);
            if let Some(slot) = seg.keys.get_mut(slot) {
                slot.expires_at = expires_at;
            }
            return Insert::Stored;
        }
        self.sweep(&mut seg, now);
        seg.fills_since_aging += 1;
        if seg.fills_since_aging >= seg.capacity.max(16) {
            seg.fills_since_aging = 0;
            self.age(&seg);
        }
        if seg.keys.len() >= seg.capacity {
            self.evict_one(&mut seg, now);
        }
        let slot = seg.keys.len();
        seg.keys.push(Slot { key, expires_at });
        self.map.insert(
            key,
            Entry {
                value,
                expires_at,
                freq: AtomicU8::new(1),
                slot: AtomicUsize::new(slot),
            },
        );
        Insert::Stored
    }

    /// Drops `key`. Returns whether a live entry was there.
    pub(crate) fn remove(&self, key: u128) -> bool {
        let mut seg = self.segment(key);
        let now = self.clock.now_ms();
        self.remove_locked(&mut seg, key)
            .is_some_and(|expires_at| expires_at > now)
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        for seg in self.segments.iter() {
            let mut seg = seg.lock().unwrap_or_else(PoisonError::into_inner);
            for slot in seg.keys.drain(..) {
                self.map.remove(&slot.key);
            }
            seg.hand = 0;
        }
    }

    /// Invalidates `key` for a cached function: voids its load under way (see
    /// [`crate::flight`]), then drops it.
    pub(crate) async fn invalidate(&self, flights: &Flights<V>, key: u128) {
        flights.void(key).await;
        self.remove(key);
    }

    /// Stores `value` under `key` for a cached function (write-through), voiding its load under
    /// way so that it does not store its own value over it.
    pub(crate) async fn put(
        &self,
        flights: &Flights<V>,
        key: u128,
        value: &V,
        ttl: Option<Duration>,
    ) {
        flights.void(key).await;
        self.insert(key, value.clone(), ttl, || true);
    }

    /// Drops every entry of a cached function, voiding its loads under way.
    pub(crate) async fn clear_all(&self, flights: &Flights<V>) {
        flights.void_all().await;
        self.clear();
    }

    /// Evictions, expirations and entries held.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (self.evictions(), self.expirations(), self.len() as u64)
    }

    /// Entries held, expired ones not yet reclaimed included.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Live entries dropped to make room so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed) as u64
    }

    /// Expired entries reclaimed so far.
    pub(crate) fn expirations(&self) -> u64 {
        self.expirations.load(Ordering::Relaxed) as u64
    }

    fn segment(&self, key: u128) -> MutexGuard<'_, Segment> {
        // The map's shards use the low bits; segments use the high ones.
        let index = ((key >> 64) as usize) & (self.segments.len() - 1);
        // A panic while a segment is held leaves it consistent (no user code runs under it).
        self.segments[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes `key` from the map and from `seg`, returning its deadline if it was there.
    fn remove_locked(&self, seg: &mut Segment, key: u128) -> Option<u64> {
        let (_, entry) = self.map.remove(&key)?;
        let slot = entry.slot.load(Ordering::Relaxed);
        seg.keys.swap_remove(slot);
        if let Some(moved) = seg.keys.get(slot) {
            if let Some(moved) = self.map.get(&moved.key) {
                moved.slot.store(slot, Ordering::Relaxed);
            }
        }
        Some(entry.expires_at)
    }

    /// Drops expired entries among the next two under the segment's hand.
    fn sweep(&self, seg: &mut Segment, now: u64) {
        for _ in 0..2 {
            if seg.keys.is_empty() {
                return;
            }
            if seg.hand >= seg.keys.len() {
                seg.hand = 0;
            }
            let Slot { key, expires_at } = seg.keys[seg.hand];
            if expires_at <= now {
                self.remove_locked(seg, key);
                self.expirations.fetch_add(1, Ordering::Relaxed);
            } else {
                seg.hand += 1;
            }
        }
    }

    /// Evicts an expired entry or the least used of a random sample.
    fn evict_one(&self, seg: &mut Segment, now: u64) {
        let len = seg.keys.len();
        if len == 0 {
            return;
        }
        let mut victim = None;
        let mut lowest = u8::MAX;
        for _ in 0..SAMPLES.min(len) {
            let pick = (seg.next_random() % len as u64) as usize;
            let Slot { key, expires_at } = seg.keys[pick];
            if expires_at <= now {
                self.remove_locked(seg, key);
                self.expirations.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let Some(entry) = self.map.get(&key) else {
                continue;
            };
            let freq = entry.freq.load(Ordering::Relaxed);
            if freq < lowest {
                lowest = freq;
                victim = Some(key);
            }
        }
        if let Some(key) = victim {
            self.remove_locked(seg, key);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Halves every use counter of the segment, so past popularity fades.
    fn age(&self, seg: &Segment) {
        for slot in &seg.keys {
            if let Some(entry) = self.map.get(&slot.key) {
                let freq = entry.freq.load(Ordering::Relaxed);
                entry.freq.store(freq / 2, Ordering::Relaxed);
            }
        }
    }
}

/// A key of a segment, with its entry's deadline.
#[derive(Clone, Copy)]
struct Slot {
    key: u128,
    /// As the entry's `expires_at`; kept in step under the segment lock.
    expires_at: u64,
}

impl Segment {
    /// xorshift64*: cheap, and good enough to pick eviction samples.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The map's hasher: keys are already uniform 128-bit digests, so their low 64 bits serve.
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than u128; fold them in FNV-style.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
    }

    #[inline]
    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    fn key(i: u64) -> u128 {
        // Spread like real digests do.
        xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes())
    }

    #[test]
    fn stores_and_returns_a_value() {
        let store = MemoryStore::new(10);
        assert_eq!(store.get(key(1)), None);
        assert_eq!(
            store.insert(key(1), "one".to_string(), None, || true),
            Insert::Stored
        );
        assert_eq!(store.get(key(1)).as_deref(), Some("one"));
        assert_eq!(store.get(key(2)), None);
    }

    #[test]
    fn entries_expire_on_the_clock() {
        let (clock, hand) = Clock::manual();
        let store = MemoryStore::with_clock(10, clock);
        store.insert(key(1), 1u32, Some(Duration::from_millis(250)), || true);
        hand.advance(Duration::from_millis(249));
        assert_eq!(store.get(key(1)), Some(1));
        hand.advance(Duration::from_millis(1));
        assert_eq!(store.get(key(1)), None);
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        for capacity in [1, 3, 100, 1000, 5000] {
            let store = MemoryStore::new(capacity);
            for i in 0..(capacity as u64 * 3 + 10) {
                store.insert(key(i), i, None, || true);
                assert!(store.len() <= capacity, "{} > {capacity}", store.len());
            }
            assert!(
                store.len() >= capacity * 9 / 10,
                "fills up: {}",
                store.len()
            );
            assert!(store.evictions() > 0);
        }
    }

    #[test]
    fn keeps_hot_entries_when_evicting() {
        let store = MemoryStore::new(1000);
        for i in 0..100 {
            store.insert(key(i), i, None, || true);
        }
        for cold in 1000..20_000u64 {
            // The hot hundred are read between fills of cold keys.
            assert_eq!(store.get(key(cold % 100)), Some(cold % 100));
            store.insert(key(cold), cold, None, || true);
        }
        let kept = (0..100).filter(|&i| store.get(key(i)).is_some()).count();
        assert!(kept >= 95, "only {kept} of 100 hot keys kept");
    }

    #[test]
    fn expired_entries_are_reclaimed_by_later_fills() {
        let (clock, hand) = Clock::manual();
        let store = MemoryStore::with_clock(10_000, clock);
        for i in 0..1000 {
            store.insert(key(i), i, Some(Duration::from_secs(1)), || true);
        }
        hand.advance(Duration::from_secs(2));
        for i in 1000..3000 {
            store.insert(key(i), i, None, || true);
        }
        assert_eq!(store.len(), 2000, "the 1000 expired entries are gone");
        assert_eq!(store.expirations(), 1000);
        assert_eq!(store.evictions(), 0);
    }

    #[test]
    fn a_stale_fill_is_not_stored() {
        let store = MemoryStore::new(10);
        assert_eq!(store.insert(key(1), 7, None, || false), Insert::Stale);
        assert_eq!(store.get(key(1)), None);
        assert_eq!(store.insert(key(1), 8, None, || true), Insert::Stored);
        assert_eq!(store.get(key(1)), Some(8));
    }

    #[test]
    fn the_check_runs_under_the_lock_a_removal_takes() {
        // A removal that starts while a fill is being checked lands after the fill: so an
        // invalidation that marked the load stale after its check still drops the value.
        let store = std::sync::Arc::new(MemoryStore::new(10));
        let remover = std::sync::Mutex::new(None);
        store.insert(key(1), 1, None, || {
            let store = store.clone();
            *remover.lock().unwrap() = Some(std::thread::spawn(move || store.remove(key(1))));
            std::thread::sleep(Duration::from_millis(30));
            true
        });
        let removed = remover.lock().unwrap().take().unwrap().join().unwrap();
        assert!(removed, "the removal waited for the fill and dropped it");
        assert_eq!(store.get(key(1)), None);
    }

    #[test]
    fn remove_keeps_slots_consistent() {
        let store = MemoryStore::new(64);
        for i in 0..64 {
            store.insert(key(i), i, None, || true);
        }
        for i in (0..64).step_by(2) {
            assert!(store.remove(key(i)));
        }
        for i in 64..96 {
            store.insert(key(i), i, None, || true);
        }
        assert_eq!(store.len(), 64);
        assert_eq!(store.evictions(), 0);
        for i in (1..64).step_by(2).chain(64..96) {
            assert_eq!(store.get(key(i)), Some(i));
        }
    }
}
