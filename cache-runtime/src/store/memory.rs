//! The in-process store: a bounded [`DashMap`] of typed values with a TTL per entry.
//!
//! # Shape
//!
//! Values live in one `DashMap<Digest, Entry<V>>`, keyed by the 128-bit digest (as two words,
//! hashed by the low one). A hit takes one
//! shard read lock, compares the entry's deadline with the clock, bumps a 4-bit use counter and
//! clones the value: nothing is serialized and nothing is locked store-wide.
//!
//! The capacity is split over *segments* (chosen by the key's high bits), each a mutex around a
//! dense vector of the keys it holds. Fills, invalidations and the misses of a cached function
//! (which join or lead its loads, kept in the segment) take a segment lock, a hit never does,
//! and always before a map shard lock, never the other way round. Each fill also looks at the
//! next two keys under a moving hand and drops them if expired, so expired entries leave without
//! a timer task and without a global lock; a segment keeps a lower bound of its deadlines, and
//! until the clock reaches it, fills do not look.
//!
//! # Eviction and admission
//!
//! When a segment is full, a fill samples a few of its keys at random: an expired one makes room,
//! else the least used of the sample is the *victim* (sampled LFU). Beside its keys, a segment
//! keeps a byte per key never above the key's use counter, so that a sample reads the counters
//! in the map only where those bounds cannot decide; and it counts its keys by bound, so that
//! while nothing can have expired, a key that every bound already outranks is rejected with no
//! sample at all. The new key takes the
//! victim's place only if it was asked for more often than the victim was used (TinyLFU
//! admission): once a segment has been full, every fill counts in the segment's count-min
//! *sketch*, so a key that keeps missing climbs there, while a burst of one-time keys does not
//! displace the entries in use. A rejected value is returned to its caller, just not kept.
//! The use counters and the sketch are halved every ten capacities' worth of fills, so past
//! popularity fades. All of this runs under the segment lock, on fills: a hit only bumps its
//! entry's own counter.
//!
//! # Single-flight, and races with invalidation
//!
//! A cached function on this store keeps its loads under way here, in the key's segment,
//! under the segment lock ([`MemoryStore::join_or_lead`]): a call that missed joins the key's
//! load, or leads one, or finds the value a load stored since the call's lookup. A load stores
//! its value and leaves in one locked section ([`LoadTicket::finish`]), and only if it is still
//! its key's load under way; an invalidation, a put or a clear drops the key's load under the
//! same lock (the calls that joined it are told so, and load afresh, together: one of them leads
//! the key's next load, the others join it). So a value loaded before any of those
//! never lands after it, and a call finds either the load or its value. A load that stores
//! nothing writes nothing to the map. Invalidating one key never voids the loads of others.
//!
//! A tiered store's memory tier has its flights outside ([`crate::flight`]), shared with its
//! Redis writes: [`MemoryStore::insert`] takes a check, `current`, that it runs under the key's
//! segment lock, the lock [`MemoryStore::remove`] takes too. The check says whether an
//! invalidation of the key (or a clear) ran since the load began; an invalidation marks the
//! load stale *before* it removes the key, so the value either is checked before the removal
//! (and removed by it) or sees the mark (and is not stored).

use std::collections::hash_map::Entry as HashEntry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::flight::Landing;

/// How many keys a full segment looks at to choose a victim.
const SAMPLES: usize = 5;
/// The use counter saturates here (4 bits, as in TinyLFU): hot keys stop writing it.
const MAX_FREQ: u8 = 15;
/// A segment halves its use counters and its sketch every this many times its capacity in
/// fills (TinyLFU's sample of ten times the capacity).
const AGING_PERIOD: usize = 10;
/// Keys per segment below which more segments bring nothing.
const MIN_SEGMENT: usize = 256;
/// Segments at most.
const MAX_SEGMENTS: usize = 64;

/// A bounded in-memory store of typed values.
pub(crate) struct MemoryStore<V> {
    map: DashMap<Digest, Entry<V>, BuildHasherDefault<DigestHasher>>,
    segments: Box<[Mutex<Segment<V>>]>,
    clock: Clock,
    evictions: AtomicUsize,
    expirations: AtomicUsize,
}

struct Entry<V> {
    value: V,
    /// Milliseconds on the store's clock; `u64::MAX` for never.
    expires_at: u64,
    freq: AtomicU8,
    /// Index of this key in its segment's `keys` (a segment holds at most `u32::MAX` keys).
    slot: AtomicU32,
}

/// A load of a cached function's key under way: its flight (see
/// [`MemoryStore::join_or_lead`]).
struct Loading<V> {
    /// Tells this load from a later one of the same key.
    id: u64,
    /// The channel to the calls waiting for it, made when the first one joins: most loads
    /// have none.
    waiters: Option<watch::Sender<Landing<V>>>,
}

struct Segment<V> {
    /// The keys held, each with its deadline, so that a sweep or an eviction finds expired
    /// entries without a look-up in the map.
    keys: Vec<Slot>,
    /// For each key of `keys`, at the same index, a bound never above its entry's use counter
    /// (see [`Uses`]).
    uses: Uses,
    capacity: usize,
    rng: u64,
    hand: usize,
    /// No entry of the segment expires before this: until then a fill does not sweep.
    earliest: u64,
    /// The earliest deadline among the keys the hand passed in its current pass, and the keys
    /// added (or moved behind the hand) meanwhile: `earliest` once the pass is over.
    pass_earliest: u64,
    fills_since_aging: usize,
    /// How often keys were asked to be stored here lately, made when the segment first fills.
    sketch: Option<Sketch>,
    /// The loads under way of the segment's keys (a cached function's single-flight), apart
    /// from the map, so that a load that stores nothing writes nothing there.
    loading: HashMap<u128, Loading<V>, BuildHasherDefault<DigestHasher>>,
    /// How many loads were led here: the next one's id.
    loads: u64,
}

/// What [`MemoryStore::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The value is stored.
    Stored,
    /// The check said the value went stale: nothing stored.
    Stale,
    /// The store is full and the key was asked for less often than the entry it would replace:
    /// nothing stored.
    Rejected,
}

impl<V: Clone> MemoryStore<V> {
    /// A store holding at most `capacity` entries (at least one), on the system clock.
    #[cfg(test)]
    pub(crate) fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, Clock::system())
    }

    /// A store reading time from `clock`.
    pub(crate) fn with_clock(capacity: usize, clock: Clock) -> Self {
        // No segment holds more than `u32::MAX` keys (an entry's slot is a `u32`).
        let capacity = capacity.clamp(1, (u32::MAX as usize).saturating_mul(MAX_SEGMENTS));
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
                    uses: Uses::default(),
                    capacity: share,
                    rng: 0x9E37_79B9_7F4A_7C15 ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9),
                    hand: 0,
                    earliest: u64::MAX,
                    pass_earliest: u64::MAX,
                    fills_since_aging: 0,
                    sketch: None,
                    loading: HashMap::default(),
                    loads: 0,
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
        let entry = self.map.get(&Digest::of(key))?;
        if entry.expires_at <= now {
            return None;
        }
        Some(entry.used())
    }

    /// Stores `value` under `key` for `ttl` (forever when `None`), unless `current()`, run
    /// under the lock that [`MemoryStore::remove`] takes, says the value went stale, or the
    /// store is full and does not admit a key asked for this rarely (see the module doc).
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
        self.insert_locked(&mut seg, key, || value, ttl, false)
    }

    /// [`MemoryStore::insert`] of the value `value()` makes (made only if it is stored), under
    /// `key`'s segment lock, `seg`; `absent` if the caller
    /// knows the map holds no entry of `key`.
    fn insert_locked(
        &self,
        seg: &mut Segment<V>,
        key: u128,
        value: impl FnOnce() -> V,
        ttl: Option<Duration>,
        absent: bool,
    ) -> Insert {
        let now = self.clock.now_ms();
        let expires_at = self.clock.deadline(ttl);
        let aging_due = seg.fills_since_aging + 1 >= seg.capacity.max(16) * AGING_PERIOD;
        if now < seg.earliest && !aging_due && seg.keys.len() < seg.capacity {
            // Nothing to sweep, age or evict: no other key leaves the map, so the key's shard
            // can stay locked from the look-up to the insert. (Dropping a key while it is held
            // would deadlock if the two shared a shard.)
            match self.map.entry(Digest::of(key)) {
                MapEntry::Occupied(mut held) => {
                    Self::update(seg, held.get_mut(), value(), expires_at);
                }
                MapEntry::Vacant(vacant) => {
                    seg.fills_since_aging += 1;
                    let freq = seg.sketch.as_mut().map_or(1, |sketch| sketch.record(key));
                    vacant.insert(Self::new_entry(seg, key, value(), expires_at, freq));
                }
            }
            return Insert::Stored;
        }
        if !absent {
            if let Some(mut entry) = self.map.get_mut(&Digest::of(key)) {
                Self::update(seg, &mut entry, value(), expires_at);
                return Insert::Stored;
            }
        }
        let seg = &mut *seg;
        self.sweep(seg, now);
        seg.fills_since_aging += 1;
        if aging_due {
            seg.fills_since_aging = 0;
            self.age(seg);
        }
        // Admission: once the segment has been full, every fill counts in its sketch, and a
        // key that would replace a live entry must have been asked for more often than it.
        if seg.keys.len() >= seg.capacity && seg.sketch.is_none() {
            seg.sketch = Some(Sketch::new(seg.capacity));
        }
        let freq = seg.sketch.as_mut().map_or(1, |sketch| sketch.record(key));
        if seg.keys.len() >= seg.capacity {
            match self.victim(seg, now, freq) {
                Choice::Room => {}
                Choice::Reject => return Insert::Rejected,
                Choice::Evict(victim, used, index) => {
                    // The sketch remembers the victim's use, so that it can win its place back.
                    if let Some(sketch) = &mut seg.sketch {
                        sketch.raise(victim, used);
                    }
                    let value = value();
                    // The new key takes the victim's slot: no other key moves. The victim's
                    // value is dropped last, once the segment is consistent again (its drop
                    // is a user's code, and may panic).
                    let evicted = self.map.remove(&Digest::of(victim));
                    seg.keys[index] = Slot {
                        key: Digest::of(key),
                        expires_at,
                    };
                    seg.uses.set(index, freq);
                    seg.note_deadline(expires_at);
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                    self.map
                        .insert(Digest::of(key), Entry::new(value, expires_at, freq, index));
                    drop(evicted);
                    return Insert::Stored;
                }
            }
        }
        let entry = Self::new_entry(seg, key, value(), expires_at, freq);
        self.map.insert(Digest::of(key), entry);
        Insert::Stored
    }

    /// Gives the entry of a key already held its new value and deadline.
    fn update(seg: &mut Segment<V>, entry: &mut Entry<V>, value: V, expires_at: u64) {
        let old = std::mem::replace(&mut entry.value, value);
        entry.expires_at = expires_at;
        let slot = entry.slot.load(Ordering::Relaxed) as usize;
        if let Some(slot) = seg.keys.get_mut(slot) {
            slot.expires_at = expires_at;
        }
        seg.note_deadline(expires_at);
        // Last, once the entry and its slot agree: a drop is a user's code, and may panic.
        drop(old);
    }

    /// Takes a new key into `seg`, used `freq` times: the entry to put in the map.
    fn new_entry(seg: &mut Segment<V>, key: u128, value: V, expires_at: u64, freq: u8) -> Entry<V> {
        let slot = seg.keys.len();
        seg.keys.push(Slot {
            key: Digest::of(key),
            expires_at,
        });
        seg.uses.push(freq);
        seg.note_deadline(expires_at);
        Entry::new(value, expires_at, freq, slot)
    }

    /// Drops `key`. Returns whether a live entry was there.
    pub(crate) fn remove(&self, key: u128) -> bool {
        let mut seg = self.segment(key);
        let now = self.clock.now_ms();
        self.remove_locked(&mut seg, key)
            .is_some_and(|expires_at| expires_at > now)
    }

    /// Drops every entry, and what the store learnt of the keys' use: it starts afresh.
    /// Loads under way lose their place, so none of them stores its value.
    pub(crate) fn clear(&self) {
        for seg in self.segments.iter() {
            let mut seg = seg.lock().unwrap_or_else(PoisonError::into_inner);
            for (_, loading) in seg.loading.drain() {
                loading.dropped();
            }
            // The values are dropped once the segment is empty and consistent (a drop may
            // panic).
            let removed: Vec<_> = seg
                .keys
                .drain(..)
                .filter_map(|slot| self.map.remove(&slot.key))
                .collect();
            seg.uses.clear();
            seg.hand = 0;
            seg.earliest = u64::MAX;
            seg.pass_earliest = u64::MAX;
            seg.fills_since_aging = 0;
            seg.sketch = None;
            drop(removed);
        }
    }

    /// Invalidates `key` for a cached function: drops its value, or its load under way, which
    /// then does not store its value.
    pub(crate) fn invalidate(&self, key: u128) {
        let mut seg = self.segment(key);
        if let Some(loading) = seg.loading.remove(&key) {
            loading.dropped();
        }
        self.remove_locked(&mut seg, key);
    }

    /// Stores `value` under `key` for a cached function (write-through), taking the place of
    /// its load under way, which then does not store its own value over it.
    pub(crate) fn put(&self, key: u128, value: &V, ttl: Option<Duration>) {
        let mut seg = self.segment(key);
        if let Some(loading) = seg.loading.remove(&key) {
            loading.dropped();
        }
        self.insert_locked(&mut seg, key, || value.clone(), ttl, false);
    }

    /// The single-flight of a cached function on this store: a call that missed finds the
    /// value a load stored since its lookup, or joins the key's load under way, or leads one.
    /// With `join` false (a call whose leader failed) it does not join: [`Begin::Busy`]
    /// instead.
    ///
    /// Loads under way are kept in the key's segment, under its lock: a load stores its value
    /// and leaves at once, and only if it is still the key's load under way
    /// ([`LoadTicket::finish`]); an invalidation, a put or a clear drops the key's load under
    /// way. So a value loaded before any of those never lands after it, and a call finds
    /// either the load or its value.
    pub(crate) fn join_or_lead(&self, key: u128, join: bool) -> Begin<'_, V> {
        let mut seg = self.segment(key);
        let Segment { loading, loads, .. } = &mut *seg;
        let place = match loading.entry(key) {
            HashEntry::Occupied(_) if !join => return Begin::Busy,
            HashEntry::Occupied(mut load) => {
                let waiters = load
                    .get_mut()
                    .waiters
                    .get_or_insert_with(|| watch::channel(Landing::Pending).0);
                return Begin::Wait(waiters.subscribe());
            }
            HashEntry::Vacant(place) => place,
        };
        let now = self.clock.now_ms();
        let held = match self.map.get(&Digest::of(key)) {
            Some(entry) if entry.expires_at > now => return Begin::Found(entry.used()),
            held => held.is_some(),
        };
        *loads += 1;
        let id = *loads;
        place.insert(Loading { id, waiters: None });
        Begin::Lead(LoadTicket {
            store: self,
            key,
            id,
            held,
            done: false,
        })
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

    fn segment(&self, key: u128) -> MutexGuard<'_, Segment<V>> {
        // The map's shards use the low bits; segments use the high ones.
        let index = ((key >> 64) as usize) & (self.segments.len() - 1);
        // A panic while a segment is held (in a value's clone or drop, the only user code run
        // under it) leaves it consistent: values are made before the bookkeeping changes.
        self.segments[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes `key` from the map and from `seg`, returning its deadline if it was there.
    fn remove_locked(&self, seg: &mut Segment<V>, key: u128) -> Option<u64> {
        let (_, entry) = self.map.remove(&Digest::of(key))?;
        let slot = entry.slot.load(Ordering::Relaxed) as usize;
        seg.keys.swap_remove(slot);
        seg.uses.swap_remove(slot);
        if let Some(&moved) = seg.keys.get(slot) {
            if slot < seg.hand {
                // Moved behind the hand: this pass will not see it.
                seg.pass_earliest = seg.pass_earliest.min(moved.expires_at);
            }
            if let Some(moved) = self.map.get(&moved.key) {
                moved.slot.store(slot as u32, Ordering::Relaxed);
            }
        }
        Some(entry.expires_at)
    }

    /// Drops expired entries among the next two under the segment's hand, unless none can
    /// have expired yet.
    fn sweep(&self, seg: &mut Segment<V>, now: u64) {
        if now < seg.earliest {
            return;
        }
        for _ in 0..2 {
            if seg.keys.is_empty() {
                return;
            }
            if seg.hand >= seg.keys.len() {
                seg.hand = 0;
                seg.earliest = seg.pass_earliest;
                seg.pass_earliest = u64::MAX;
            }
            let Slot { key, expires_at } = seg.keys[seg.hand];
            if expires_at <= now {
                self.remove_locked(seg, key.get());
                self.expirations.fetch_add(1, Ordering::Relaxed);
            } else {
                seg.pass_earliest = seg.pass_earliest.min(expires_at);
                seg.hand += 1;
            }
        }
    }

    /// Chooses which entry a new key asked for `freq` times would replace, from a random sample
    /// of the segment's keys: an expired one is dropped at once (room is made), else the least
    /// used of the sample is evicted if it was used less than `freq`, else the key is rejected.
    ///
    /// The picks, the sample's end (the first expired pick, or the first unused one) and the
    /// choice are those of reading every pick's use counter. A pick whose bound in `uses`
    /// (never above its counter) is at least the least use found so far (at first `freq`, at
    /// least one) is neither unused nor used less than that, so its counter is not read: a key
    /// asked for no more often than every pick's bound is rejected with no look-up in the map,
    /// and, while nothing can have expired, one asked for no more often than every key's bound
    /// with no picks at all.
    fn victim(&self, seg: &mut Segment<V>, now: u64, freq: u8) -> Choice {
        let len = seg.keys.len();
        if len == 0 {
            return Choice::Room;
        }
        if now < seg.earliest && seg.uses.lowest() >= freq {
            // Nothing has expired, and every key's bound is at least `freq`: so is every
            // pick's, and the sample would reject the key. It is rejected without one.
            return Choice::Reject;
        }
        let mut choice = Choice::Reject;
        let mut lowest = freq;
        for _ in 0..SAMPLES.min(len) {
            let pick = seg.pick(len);
            // Before `earliest`, no key of the segment has expired.
            if now >= seg.earliest && seg.keys[pick].expires_at <= now {
                self.remove_locked(seg, seg.keys[pick].key.get());
                self.expirations.fetch_add(1, Ordering::Relaxed);
                return Choice::Room;
            }
            if seg.uses.bound(pick) >= lowest {
                // Its counter is at least that: not below the least used so far, nor zero.
                continue;
            }
            let key = seg.keys[pick].key;
            let Some(entry) = self.map.get(&key) else {
                continue;
            };
            let used = entry.freq.load(Ordering::Relaxed);
            seg.uses.set(pick, used);
            if used < lowest {
                lowest = used;
                choice = Choice::Evict(key.get(), used, pick);
                if used == 0 {
                    // None is used less: the other samples would not change the choice.
                    break;
                }
            }
        }
        choice
    }

    /// Halves every use counter of the segment, and its sketch, so past popularity fades.
    fn age(&self, seg: &mut Segment<V>) {
        for (index, slot) in seg.keys.iter().enumerate() {
            if let Some(entry) = self.map.get(&slot.key) {
                let freq = entry.freq.load(Ordering::Relaxed) / 2;
                entry.freq.store(freq, Ordering::Relaxed);
                seg.uses.set(index, freq);
            }
        }
        if let Some(sketch) = &mut seg.sketch {
            sketch.halve();
        }
    }
}

impl<V> Entry<V> {
    fn new(value: V, expires_at: u64, freq: u8, slot: usize) -> Self {
        Self {
            value,
            expires_at,
            freq: AtomicU8::new(freq),
            // The store's capacity bounds every segment's below `u32::MAX` keys.
            slot: AtomicU32::new(slot as u32),
        }
    }
}

impl<V: Clone> Entry<V> {
    /// The value, cloned, its use counted (a hit).
    #[inline(always)]
    fn used(&self) -> V {
        let freq = self.freq.load(Ordering::Relaxed);
        if freq < MAX_FREQ {
            self.freq.store(freq + 1, Ordering::Relaxed);
        }
        self.value.clone()
    }
}

impl<V> Loading<V> {
    /// Tells the calls that joined the load that an invalidation, a put or a clear dropped it:
    /// they load afresh, together.
    fn dropped(self) {
        if let Some(waiters) = self.waiters {
            waiters.send_replace(Landing::Dropped);
        }
    }
}

/// What [`MemoryStore::join_or_lead`] made of a call that missed.
pub(crate) enum Begin<'a, V: Clone> {
    /// The key's value, stored since the call's lookup.
    Found(V),
    /// Another call is loading the key: its landing comes on this channel: its value,
    /// [`Landing::Dropped`] if an invalidation, a put or a clear dropped it, or none (the
    /// channel closes) if it failed.
    Wait(watch::Receiver<Landing<V>>),
    /// The call leads the key's load.
    Lead(LoadTicket<'a, V>),
    /// Another call is loading the key, and the caller did not ask to join.
    Busy,
}

/// A leader's hold on its load in a [`MemoryStore`]. However the leader ends, the load
/// leaves the loads under way: [`LoadTicket::finish`] stores its value first, and a ticket
/// dropped unfinished (an error, a panic, a cancelled caller) just leaves, which releases the
/// waiters.
pub(crate) struct LoadTicket<'a, V: Clone> {
    store: &'a MemoryStore<V>,
    key: u128,
    id: u64,
    /// Whether the map held an entry of the key (an expired one) when the load began.
    held: bool,
    done: bool,
}

impl<V: Clone> LoadTicket<'_, V> {
    /// Stores `value` for `ttl` (not at all when `None`: the policy kept it out) if the load is
    /// still its key's load under way, and hands it to the calls waiting for it.
    pub(crate) fn finish(mut self, value: &V, ttl: Option<Option<Duration>>) -> Insert {
        let Some(ttl) = ttl else {
            self.hand_over(value);
            return Insert::Rejected;
        };
        self.done = true;
        let store = self.store;
        let mut seg = store.segment(self.key);
        let loading = match seg.loading.remove(&self.key) {
            Some(loading) if loading.id == self.id => loading,
            Some(newer) => {
                seg.loading.insert(self.key, newer);
                return Insert::Stale;
            }
            None => return Insert::Stale,
        };
        // While the load is its key's, only the load writes the key's entry in the map (a put,
        // an invalidation or a clear drops the load first; evictions and sweeps only remove):
        // if the key had none when the load began, it has none now.
        let stored = store.insert_locked(&mut seg, self.key, || value.clone(), ttl, !self.held);
        drop(seg);
        if let Some(waiters) = loading.waiters {
            waiters.send_replace(Landing::Done(value.clone()));
        }
        stored
    }

    /// Hands `value` to the calls waiting, and leaves, storing nothing.
    pub(crate) fn hand_over(mut self, value: &V) {
        self.done = true;
        if let Some(waiters) = self.leave() {
            waiters.send_replace(Landing::Done(value.clone()));
        }
    }

    /// Drops the load from the loads under way if it is still there; returns its waiters'
    /// channel.
    fn leave(&self) -> Option<watch::Sender<Landing<V>>> {
        let mut seg = self.store.segment(self.key);
        match seg.loading.get(&self.key) {
            Some(loading) if loading.id == self.id => seg.loading.remove(&self.key)?.waiters,
            _ => None,
        }
    }
}

impl<V: Clone> Drop for LoadTicket<'_, V> {
    fn drop(&mut self) {
        if !self.done {
            // The waiters' channel closes with it: each of them runs its own load.
            self.leave();
        }
    }
}

/// The use bounds of a segment's keys: for each key, at its index in the segment's `keys`, a
/// bound never above its entry's use counter, set to the counter whenever the segment sets or
/// reads it (fill, eviction sample, aging), under the segment lock. Between those, only hits
/// change the counter, and they only raise it (a bump racing with aging may store a count from
/// before the halving: the counter is a load and a store, not a locked add). Dense, so that a
/// sample reads a few bytes close together; and counted by value, so that a fill that no key
/// of the segment could lose its place to is rejected without a sample.
#[derive(Default)]
struct Uses {
    bounds: Vec<u8>,
    /// How many keys have each bound, `0..=MAX_FREQ`.
    counts: [u32; MAX_FREQ as usize + 1],
}

impl Uses {
    fn push(&mut self, bound: u8) {
        self.bounds.push(bound);
        self.counts[usize::from(bound)] += 1;
    }

    fn swap_remove(&mut self, index: usize) {
        let bound = self.bounds.swap_remove(index);
        self.counts[usize::from(bound)] -= 1;
    }

    fn bound(&self, index: usize) -> u8 {
        self.bounds[index]
    }

    fn set(&mut self, index: usize, bound: u8) {
        let old = std::mem::replace(&mut self.bounds[index], bound);
        self.counts[usize::from(old)] -= 1;
        self.counts[usize::from(bound)] += 1;
    }

    fn clear(&mut self) {
        self.bounds.clear();
        self.counts = Default::default();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.bounds.len()
    }

    /// The lowest bound of any key; above every counter when there is none.
    fn lowest(&self) -> u8 {
        self.counts
            .iter()
            .position(|&count| count > 0)
            .map_or(u8::MAX, |bound| bound as u8)
    }
}

/// A key of a segment, with its entry's deadline.
#[derive(Clone, Copy)]
struct Slot {
    key: Digest,
    /// As the entry's `expires_at`; kept in step under the segment lock.
    expires_at: u64,
}

/// What a fill into a full segment does ([`MemoryStore::victim`]).
enum Choice {
    /// An expired entry was dropped: the new key takes its room.
    Room,
    /// The new key replaces this entry, used this often, in its place in the segment's keys
    /// (at this index).
    Evict(u128, u8, usize),
    /// The new key was asked for no more often than any sampled entry was used.
    Reject,
}

impl<V> Segment<V> {
    /// Takes a key's new deadline into the bounds the sweep goes by.
    fn note_deadline(&mut self, expires_at: u64) {
        self.earliest = self.earliest.min(expires_at);
        self.pass_earliest = self.pass_earliest.min(expires_at);
    }

    /// A random index below `len`: the high bits of a random word times `len` (no division).
    fn pick(&mut self, len: usize) -> usize {
        ((u128::from(self.next_random()) * len as u128) >> 64) as usize
    }

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

/// A count-min sketch of how often each key was asked to be stored: four 4-bit counters a key,
/// one in each word of a block of four words (sixteen counters a word), picked by its digest,
/// read as their minimum. A block is aligned to its size, so that a key's counters share one
/// cache line. Halved with the segment's use counters, so that the two compare.
struct Sketch {
    blocks: Box<[Block]>,
}

/// Four words of a [`Sketch`]: a key's counters, one in each.
#[derive(Clone, Copy, Default)]
#[repr(align(32))]
struct Block([u64; 4]);

impl Sketch {
    /// Odd multipliers: the first picks a key's block, the second its counters in it.
    const SEEDS: [u64; 2] = [0x9E37_79B9_7F4A_7C15, 0xC2B2_AE3D_27D4_EB4F];

    fn new(capacity: usize) -> Self {
        let words = capacity.next_power_of_two().max(64);
        Self {
            blocks: vec![Block::default(); words / 4].into_boxed_slice(),
        }
    }

    /// The block of `key`'s counters, and each counter's bit offset in its word of the block.
    fn counters(&self, key: u128) -> (usize, [u32; 4]) {
        let mixed = (key as u64) ^ ((key >> 64) as u64).rotate_left(32);
        let block = (mixed.wrapping_mul(Self::SEEDS[0]) >> 32) as usize & (self.blocks.len() - 1);
        let nibbles = mixed.wrapping_mul(Self::SEEDS[1]);
        let shifts = std::array::from_fn(|i| ((nibbles >> (40 + 4 * i)) as u32 & 15) * 4);
        (block, shifts)
    }

    /// The four counters of a block's `words` at `shifts`.
    fn read(words: &[u64; 4], shifts: [u32; 4]) -> [u8; 4] {
        std::array::from_fn(|i| (words[i] >> shifts[i]) as u8 & 15)
    }

    /// `key`'s four counters.
    #[cfg(test)]
    fn counts(&self, key: u128) -> [u8; 4] {
        let (block, shifts) = self.counters(key);
        Self::read(&self.blocks[block].0, shifts)
    }

    /// Counts one more request for `key`; returns its estimate, this one included.
    fn record(&mut self, key: u128) -> u8 {
        let (block, shifts) = self.counters(key);
        let words = &mut self.blocks[block].0;
        let counts = Self::read(words, shifts);
        let min = counts.into_iter().min().unwrap_or(0);
        if min == MAX_FREQ {
            return min;
        }
        // Only the counters at the minimum grow (conservative update): the estimate stays as
        // close to the true count as the collisions allow.
        for i in 0..4 {
            if counts[i] == min {
                words[i] += 1 << shifts[i];
            }
        }
        min + 1
    }

    /// Raises `key`'s counters to at least `to`.
    fn raise(&mut self, key: u128, to: u8) {
        let to = to.min(MAX_FREQ);
        let (block, shifts) = self.counters(key);
        let words = &mut self.blocks[block].0;
        let counts = Self::read(words, shifts);
        for i in 0..4 {
            if counts[i] < to {
                words[i] += u64::from(to - counts[i]) << shifts[i];
            }
        }
    }

    /// Halves every counter.
    fn halve(&mut self) {
        for word in self.blocks.iter_mut().flat_map(|block| &mut block.0) {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
    }
}

/// A key of the map and of a segment: a 128-bit digest as two words, so that an entry or a
/// slot aligns to 8 bytes, not to the 16 of a `u128`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Digest([u64; 2]);

impl Digest {
    #[inline(always)]
    fn of(key: u128) -> Self {
        Self([key as u64, (key >> 64) as u64])
    }

    #[inline(always)]
    fn get(self) -> u128 {
        u128::from(self.0[0]) | u128::from(self.0[1]) << 64
    }
}

impl std::hash::Hash for Digest {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
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

    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.0 = word;
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
    fn a_string_entry_takes_seven_words_in_the_map_and_three_in_its_segment() {
        // The digest (two words), the `String` (three), the deadline, and the slot and use
        // counter in one word: no padding.
        assert_eq!(std::mem::size_of::<(Digest, Entry<String>)>(), 56);
        // The digest and the deadline.
        assert_eq!(std::mem::size_of::<Slot>(), 24);
    }

    #[test]
    fn a_keys_sketch_counters_share_one_cache_line() {
        // A block is as large as its alignment, and divides a 64-byte line: it never straddles
        // two.
        assert_eq!(std::mem::size_of::<Block>(), std::mem::align_of::<Block>());
        assert_eq!(64 % std::mem::align_of::<Block>(), 0);
        let sketch = Sketch::new(1000);
        for i in 0..1000 {
            let (block, _) = sketch.counters(key(i));
            let start = &sketch.blocks[block] as *const Block as usize;
            assert_eq!(
                start / 64,
                (start + 31) / 64,
                "block {block} straddles two lines"
            );
        }
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
                // Twice: a full store admits a key asked for more than once.
                for _ in 0..2 {
                    store.insert(key(i), i, None, || true);
                    assert!(store.len() <= capacity, "{} > {capacity}", store.len());
                }
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

    /// The load `store.join_or_lead(k, true)` makes the caller lead.
    fn lead(store: &MemoryStore<u64>, k: u64) -> LoadTicket<'_, u64> {
        match store.join_or_lead(key(k), true) {
            Begin::Lead(ticket) => ticket,
            _ => panic!("the call does not lead"),
        }
    }

    /// The landing channel of a call that joins the load of `k` under way.
    fn join(store: &MemoryStore<u64>, k: u64) -> watch::Receiver<Landing<u64>> {
        match store.join_or_lead(key(k), true) {
            Begin::Wait(rx) => rx,
            _ => panic!("the call does not join"),
        }
    }

    fn landed(rx: &mut watch::Receiver<Landing<u64>>) -> Option<u64> {
        match &*rx.borrow_and_update() {
            Landing::Done(value) => Some(*value),
            _ => None,
        }
    }

    #[test]
    fn a_load_stores_its_value_and_hands_it_to_the_calls_that_joined() {
        let store = MemoryStore::new(100);
        let ticket = lead(&store, 1);
        let mut rx = join(&store, 1);
        assert!(matches!(store.join_or_lead(key(1), false), Begin::Busy));
        assert_eq!(store.get(key(1)), None, "nothing stored while it loads");
        assert_eq!(ticket.finish(&7, Some(None)), Insert::Stored);
        assert_eq!(landed(&mut rx), Some(7));
        assert_eq!(store.get(key(1)), Some(7));
        assert_eq!(store.len(), 1);
        // A call that missed before the value landed finds it, rather than loading again.
        assert!(matches!(store.join_or_lead(key(1), true), Begin::Found(7)));
    }

    #[test]
    fn an_invalidation_a_put_or_a_clear_during_a_load_keeps_its_value_out() {
        for write in ["invalidate", "put", "clear"] {
            let store = MemoryStore::new(100);
            let ticket = lead(&store, 1);
            let rx = join(&store, 1);
            match write {
                "invalidate" => store.invalidate(key(1)),
                "put" => store.put(key(1), &9, None),
                _ => store.clear(),
            }
            assert!(
                matches!(*rx.borrow(), Landing::Dropped),
                "{write}: the calls that joined are told to load afresh, together"
            );
            assert_eq!(ticket.finish(&7, Some(None)), Insert::Stale, "{write}");
            let after = (write == "put").then_some(9);
            assert_eq!(store.get(key(1)), after, "{write}");
        }
    }

    #[test]
    fn a_load_dropped_by_an_invalidation_does_not_take_the_next_loads_place() {
        let store = MemoryStore::new(100);
        let old = lead(&store, 1);
        store.invalidate(key(1));
        let new = lead(&store, 1);
        let mut rx = join(&store, 1);
        assert_eq!(old.finish(&1, Some(None)), Insert::Stale);
        assert!(
            matches!(store.join_or_lead(key(1), false), Begin::Busy),
            "the newer load is still under way"
        );
        assert_eq!(new.finish(&2, Some(None)), Insert::Stored);
        assert_eq!(landed(&mut rx), Some(2));
        assert_eq!(store.get(key(1)), Some(2));
    }

    #[test]
    fn a_load_of_a_key_whose_entry_expired_takes_that_entry() {
        for capacity in [10, 256] {
            let (clock, hand) = Clock::manual();
            let store = MemoryStore::with_clock(capacity, clock);
            for i in 0..capacity as u64 - 1 {
                store.insert(key(i), i, None, || true);
            }
            let last = capacity as u64 - 1;
            store.insert(key(last), 0, Some(Duration::from_secs(1)), || true);
            hand.advance(Duration::from_secs(2));
            assert_eq!(store.get(key(last)), None);
            let ticket = lead(&store, last);
            assert_eq!(ticket.finish(&last, Some(None)), Insert::Stored);
            assert_eq!(store.get(key(last)), Some(last));
            let held: usize = store
                .segments
                .iter()
                .map(|s| s.lock().unwrap().keys.len())
                .sum();
            assert_eq!(held, capacity, "one slot a key");
            assert_eq!(store.len(), capacity);
        }
    }

    #[test]
    fn a_load_that_stores_nothing_leaves_the_key_free() {
        let store = full_of_used_keys(500, 3);
        // Dropped (an error, a panic, a cancelled caller): the calls that joined are released.
        let ticket = lead(&store, 1000);
        let rx = join(&store, 1000);
        drop(ticket);
        assert!(rx.has_changed().is_err());
        // Kept out by the policy, or not admitted into the full store: handed to the calls
        // that joined, not stored.
        let ticket = lead(&store, 1000);
        let mut rx = join(&store, 1000);
        assert_eq!(ticket.finish(&5, None), Insert::Rejected);
        assert_eq!(landed(&mut rx), Some(5));
        let ticket = lead(&store, 1000);
        let mut rx = join(&store, 1000);
        assert_eq!(ticket.finish(&6, Some(None)), Insert::Rejected);
        assert_eq!(landed(&mut rx), Some(6));
        assert_eq!(store.get(key(1000)), None);
        drop(lead(&store, 1000));
        assert_eq!(store.len(), 500);
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

    /// Fills a store of `capacity` (one segment: below 512) with the keys `0..capacity`, each
    /// read `reads` times.
    fn full_of_used_keys(capacity: u64, reads: usize) -> MemoryStore<u64> {
        let store = MemoryStore::new(capacity as usize);
        for i in 0..capacity {
            assert_eq!(store.insert(key(i), i, None, || true), Insert::Stored);
            for _ in 0..reads {
                assert_eq!(store.get(key(i)), Some(i));
            }
        }
        store
    }

    #[test]
    fn a_scan_of_one_time_keys_does_not_evict_the_keys_in_use() {
        let store = full_of_used_keys(500, 3);
        let (mut stored, mut lost) = (0, 0);
        for once in 1000..21_000 {
            // The keys in use are still read, round-robin, while the scan passes.
            let used = once % 500;
            if store.get(key(used)).is_none() {
                lost += 1;
                store.insert(key(used), used, None, || true);
            }
            assert_eq!(store.get(key(once)), None);
            if store.insert(key(once), once, None, || true) == Insert::Stored {
                stored += 1;
            }
        }
        assert!(lost <= 5, "{lost} reads of the 500 keys in use missed");
        assert!(stored <= 5, "{stored} of 20 000 one-time keys stored");
        assert_eq!(store.len(), 500);
    }

    #[test]
    fn a_key_that_keeps_missing_gets_in() {
        let store = full_of_used_keys(500, 3);
        let newcomer = key(5000);
        let mut misses = 0;
        while store.get(newcomer).is_none() {
            misses += 1;
            assert!(misses <= 16, "still not admitted after 16 misses");
            store.insert(newcomer, 5000, None, || true);
        }
        // Used 4 times (its fill and 3 reads), the entries it competes with: it needs 5 misses.
        assert_eq!(
            misses, 5,
            "admitted once asked for more often than its victim was used"
        );
        assert_eq!(store.len(), 500);
        assert_eq!(store.evictions(), 1);
    }

    #[test]
    fn clear_forgets_what_keys_were_asked_for() {
        let store = full_of_used_keys(16, 0);
        for _ in 0..3 {
            store.insert(key(100), 100, None, || true);
        }
        assert_eq!(store.get(key(100)), Some(100), "asked for thrice, admitted");
        store.clear();
        for i in 0..16 {
            store.insert(key(i), i, None, || true);
        }
        assert_eq!(store.insert(key(100), 100, None, || true), Insert::Rejected);
    }

    #[test]
    fn the_sweep_finds_an_expired_entry_moved_behind_its_hand() {
        let (clock, hand) = Clock::manual();
        let store = MemoryStore::with_clock(400, clock);
        let fill = |i: u64, ttl: Option<Duration>| store.insert(key(i), i, ttl, || true);
        let sweep_hand = || store.segment(key(0)).hand;
        let last = || store.segment(key(0)).keys.last().map(|slot| slot.key.get());
        fill(0, Some(Duration::from_secs(1)));
        for i in 1..=20 {
            fill(i, None);
        }
        fill(99, Some(Duration::from_secs(10)));
        fill(21, None);
        hand.advance(Duration::from_secs(2));
        // Key 0 is due: fills sweep. Let the hand end a pass and start another.
        let mut next = 100;
        loop {
            let before = sweep_hand();
            fill(next, None);
            next += 1;
            if sweep_hand() < before {
                break;
            }
        }
        assert_eq!(store.expirations(), 1);
        // Key 99, not yet passed in this pass, moves behind the hand: the keys after it go,
        // then one behind the hand, whose place the last key takes.
        while last() != Some(key(99)) {
            assert!(store.remove(last().unwrap()));
        }
        let behind = store.segment(key(0)).keys[0].key.get();
        assert!(sweep_hand() > 0);
        assert!(store.remove(behind));
        assert_eq!(store.segment(key(0)).keys[0].key.get(), key(99));
        // The pass ends, with only keys that never expire ahead of it.
        loop {
            let before = sweep_hand();
            fill(next, None);
            next += 1;
            if sweep_hand() < before {
                break;
            }
        }
        hand.advance(Duration::from_secs(11));
        for _ in 0..100 {
            store.remove(key(next - 1));
            fill(next, None);
            next += 1;
        }
        assert_eq!(store.expirations(), 2, "key 99 was reclaimed");
    }

    /// What a fill of `key` into its full segment does when every sampled counter is read (the
    /// plain rule `victim` must match): `None` if the key is rejected, else the key it
    /// evicts; and the segment's random state after the sample (as before it, when every key's
    /// bound says the key is rejected, and no sample is drawn).
    fn plain_choice(store: &MemoryStore<u64>, key: u128) -> (Option<u128>, u64) {
        let seg = store.segment(key);
        assert!(seg.keys.len() >= seg.capacity);
        // A fill ages the segment (counters and sketch) before it chooses.
        let halve = seg.fills_since_aging + 1 >= seg.capacity.max(16) * AGING_PERIOD;
        let aged = |c: u8| if halve { c / 2 } else { c };
        // A segment makes its sketch on its first fill once full.
        let freq = seg.sketch.as_ref().map_or(1, |sketch| {
            let min = sketch.counts(key).into_iter().map(aged).min().unwrap();
            if min == MAX_FREQ {
                min
            } else {
                min + 1
            }
        });
        // A key no bound is below is rejected without a sample (its picks would all be skipped).
        let lowest_bound = seg
            .keys
            .iter()
            .zip(&seg.uses.bounds)
            .map(|(slot, &bound)| match halve {
                true => aged(
                    store
                        .map
                        .get(&slot.key)
                        .unwrap()
                        .freq
                        .load(Ordering::Relaxed),
                ),
                false => bound,
            })
            .min()
            .unwrap();
        if lowest_bound >= freq {
            return (None, seg.rng);
        }
        let mut rng = Segment::<u64> {
            keys: Vec::new(),
            uses: Uses::default(),
            capacity: 0,
            rng: seg.rng,
            hand: 0,
            earliest: 0,
            pass_earliest: 0,
            fills_since_aging: 0,
            sketch: None,
            loading: HashMap::default(),
            loads: 0,
        };
        let (len, mut victim, mut lowest) = (seg.keys.len(), None, u8::MAX);
        for _ in 0..SAMPLES.min(len) {
            let pick = seg.keys[rng.pick(len)].key.get();
            let used = aged(
                store
                    .map
                    .get(&Digest::of(pick))
                    .unwrap()
                    .freq
                    .load(Ordering::Relaxed),
            );
            if used < lowest {
                lowest = used;
                victim = Some(pick);
                if used == 0 {
                    break;
                }
            }
        }
        (victim.filter(|_| freq > lowest), rng.rng)
    }

    #[test]
    fn the_sample_reads_counters_only_where_the_plain_rule_could_differ() {
        // A full segment whose hot keys are read between fills, through aging: each fill's
        // outcome, victim and random draws are the plain rule's.
        let store = full_of_used_keys(300, 1);
        let mut rng = 0x1234_5678_9ABC_DEF1u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut admitted, mut rejected, mut raised, mut unsampled) = (0, 0, 0, 0);
        for _ in 0..40_000 {
            let r = next();
            // Skewed: a few hot keys, a warm range, and fresh one-time keys.
            let i = match r % 10 {
                0..=3 => r % 20,
                4..=7 => 1000 + r % 600,
                _ => 10_000 + r % 1_000_000,
            };
            if store.get(key(i)).is_some() {
                continue;
            }
            let below = |s: &MemoryStore<u64>| {
                let seg = s.segment(key(i));
                seg.keys
                    .iter()
                    .zip(&seg.uses.bounds)
                    .filter(|(slot, &used)| {
                        s.map.get(&slot.key).unwrap().freq.load(Ordering::Relaxed) > used
                    })
                    .count()
            };
            raised += below(&store);
            let rng_before = store.segment(key(i)).rng;
            let (plain, rng_after) = plain_choice(&store, key(i));
            if rng_after == rng_before {
                unsampled += 1;
            }
            let before = store
                .segment(key(i))
                .keys
                .iter()
                .map(|s| s.key.get())
                .collect::<Vec<_>>();
            let outcome = store.insert(key(i), i, None, || true);
            assert_eq!(store.segment(key(i)).rng, rng_after, "the same picks");
            match plain {
                None => {
                    assert_eq!(outcome, Insert::Rejected);
                    rejected += 1;
                }
                Some(victim) => {
                    assert_eq!(outcome, Insert::Stored);
                    assert!(before.contains(&victim));
                    assert!(
                        store.map.get(&Digest::of(victim)).is_none(),
                        "the plain rule's victim went"
                    );
                    admitted += 1;
                }
            }
        }
        assert!(
            admitted > 100 && rejected > unsampled + 100 && unsampled > 100,
            "{admitted} admitted, {rejected} rejected, {unsampled} of them without a sample"
        );
        assert!(
            admitted + rejected > 2 * 300 * AGING_PERIOD,
            "the segment aged twice or more: {admitted} + {rejected} fills"
        );
        assert!(raised > 0, "hits raised counters above their bounds");
    }

    #[test]
    fn a_full_segment_samples_expired_entries_into_room() {
        let (clock, hand) = Clock::manual();
        let store = MemoryStore::with_clock(100, clock);
        // Keys that never expire under the sweep's hand, expiring ones after them.
        for i in 0..50 {
            store.insert(key(i), i, None, || true);
        }
        for i in 50..100 {
            store.insert(key(i), i, Some(Duration::from_secs(1)), || true);
        }
        hand.advance(Duration::from_secs(2));
        for i in 1000..1010 {
            store.insert(key(i), i, None, || true);
        }
        // Ten fills sweep twenty keys, none expired: the sample found the expired ones.
        assert!(store.segment(key(0)).hand <= 20);
        assert!(store.expirations() > 0, "the sample saw expired entries");
        assert_eq!(store.evictions(), 0, "room was made, not taken");
    }

    /// A value whose drop panics while its switch is armed, for the first value below 100
    /// dropped.
    struct PanicsOnDrop(u64, &'static std::sync::atomic::AtomicBool);
    static ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    impl Clone for PanicsOnDrop {
        fn clone(&self) -> Self {
            Self(self.0, self.1)
        }
    }

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            if self.0 < 100 && self.1.swap(false, Ordering::SeqCst) {
                panic!("a value's drop panicked");
            }
        }
    }

    #[test]
    fn a_victim_whose_drop_panics_leaves_its_segment_consistent() {
        let store = MemoryStore::new(8);
        for i in 0..8 {
            store.insert(key(i), PanicsOnDrop(i, &ARMED), None, || true);
        }
        ARMED.store(true, Ordering::SeqCst);
        // A key asked for again and again wins a place: its fill evicts a resident, whose drop
        // panics under the segment lock.
        let mut panicked = false;
        for _ in 0..4 {
            let fill = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.insert(key(500), PanicsOnDrop(500, &ARMED), None, || true)
            }));
            if fill.is_err() {
                panicked = true;
                break;
            }
        }
        assert!(panicked, "no eviction dropped a resident");
        let seg = store.segment(key(0));
        assert_eq!(seg.keys.len(), store.map.len(), "a slot without an entry");
        for (index, slot) in seg.keys.iter().enumerate() {
            let entry = store.map.get(&slot.key).expect("a slot without an entry");
            assert_eq!(entry.slot.load(Ordering::Relaxed) as usize, index);
        }
        assert_eq!(seg.uses.len(), seg.keys.len());
        drop(seg);
        // A clear whose first drop panics still empties the segment and the map alike.
        ARMED.store(true, Ordering::SeqCst);
        let clear = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.clear()));
        assert!(clear.is_err(), "no resident's drop ran");
        assert!(store.segment(key(0)).keys.is_empty());
        assert_eq!(store.map.len(), 0, "entries left without a slot");
    }

    #[test]
    fn a_replaced_value_whose_drop_panics_leaves_its_entry_with_the_new_deadline() {
        static SWITCH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let (clock, hand) = Clock::manual();
        let store = MemoryStore::with_clock(8, clock);
        store.insert(key(1), PanicsOnDrop(1, &SWITCH), None, || true);
        SWITCH.store(true, Ordering::SeqCst);
        // The new value has a ttl, the old one none; the old one's drop panics.
        let put = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let value = PanicsOnDrop(2, &SWITCH);
            store.insert(key(1), value, Some(Duration::from_secs(1)), || true)
        }));
        assert!(put.is_err(), "the old value's drop ran");
        let seg = store.segment(key(1));
        let entry = store.map.get(&Digest::of(key(1))).expect("the new value");
        assert_eq!(entry.value.0, 2);
        assert_eq!(
            seg.keys[0].expires_at, entry.expires_at,
            "the slot's deadline lags"
        );
        drop((entry, seg));
        hand.advance(Duration::from_secs(2));
        assert!(
            store.get(key(1)).is_none(),
            "the new value outlived its ttl"
        );
    }

    #[test]
    fn entries_that_never_expire_are_not_swept() {
        let store = MemoryStore::new(1000);
        for i in 0..500 {
            store.insert(key(i), i, None, || true);
        }
        let seg = store.segment(key(0));
        assert_eq!(seg.hand, 0, "no sweep while nothing can expire");
        assert_eq!(seg.earliest, u64::MAX);
    }

    /// The segments' bookkeeping under random loads, puts, invalidations, clears, expiries and
    /// evictions, through `join_or_lead` and `finish` (and its `absent` shortcut).
    #[test]
    fn the_bookkeeping_stays_consistent_under_random_loads_and_writes() {
        fn check(store: &MemoryStore<u64>) {
            let mut held = 0;
            for (i, seg) in store.segments.iter().enumerate() {
                let seg = seg.lock().unwrap();
                assert_eq!(seg.keys.len(), seg.uses.len());
                for (bound, &count) in seg.uses.counts.iter().enumerate() {
                    let held = seg.uses.bounds.iter().filter(|&&b| usize::from(b) == bound);
                    assert_eq!(
                        held.count(),
                        count as usize,
                        "keys counted with bound {bound}"
                    );
                }
                assert!(seg.keys.len() <= seg.capacity);
                let mut seen = std::collections::HashSet::new();
                for (slot, s) in seg.keys.iter().enumerate() {
                    assert!(seen.insert(s.key.get()), "a key twice in its segment");
                    let index = ((s.key.get() >> 64) as usize) & (store.segments.len() - 1);
                    assert_eq!(index, i);
                    let entry = store.map.get(&s.key).expect("a slot without an entry");
                    assert_eq!(entry.slot.load(Ordering::Relaxed) as usize, slot);
                    assert_eq!(entry.expires_at, s.expires_at);
                }
                held += seg.keys.len();
            }
            assert_eq!(held, store.map.len(), "an entry without a slot");
        }
        for capacity in [4usize, 16, 600] {
            let (clock, hand) = Clock::manual();
            let store = MemoryStore::with_clock(capacity, clock);
            let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ capacity as u64;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let keys = (capacity as u64) * 3;
            let mut tickets: Vec<(u64, LoadTicket<'_, u64>)> = Vec::new();
            for step in 0..60_000u64 {
                let r = next();
                let k = r % keys;
                let ttl = match (r >> 20) % 3 {
                    0 => None,
                    1 => Some(Duration::from_millis(5)),
                    _ => Some(Duration::from_millis(50)),
                };
                match (r >> 8) % 10 {
                    0..=3 => {
                        if store.get(key(k)).is_none() {
                            if let Begin::Lead(t) = store.join_or_lead(key(k), true) {
                                tickets.push((k, t));
                            }
                        }
                    }
                    4..=5 => {
                        if !tickets.is_empty() {
                            let i = (r >> 32) as usize % tickets.len();
                            let (k, t) = tickets.swap_remove(i);
                            t.finish(&k, Some(ttl));
                        }
                    }
                    6 => {
                        if !tickets.is_empty() {
                            let i = (r >> 32) as usize % tickets.len();
                            drop(tickets.swap_remove(i));
                        }
                    }
                    7 => store.invalidate(key(k)),
                    8 => store.put(key(k), &step, ttl),
                    _ => {
                        if (r >> 40) % 500 == 0 {
                            store.clear();
                        } else {
                            hand.advance(Duration::from_millis(1 + (r >> 44) % 7));
                        }
                    }
                }
                if step % 97 == 0 {
                    check(&store);
                }
            }
            drop(tickets);
            check(&store);
            for seg in store.segments.iter() {
                assert!(seg.lock().unwrap().loading.is_empty(), "a load left behind");
            }
        }
    }

    /// The memory store's single-flight through `CachedFn`, as generated code calls it.
    mod calls {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;

        use tokio::sync::Notify;

        use crate::cached_fn::{CachedFn, Spec};

        const fn spec(function: &'static str) -> Spec {
            Spec::memory_for_tests("memory_calls", function)
        }

        static HERD: CachedFn<u64> = CachedFn::new(spec("herd"));
        static HERD_RUNS: AtomicUsize = AtomicUsize::new(0);
        static HERD_ENTERED: Notify = Notify::const_new();
        static HERD_GATE: Notify = Notify::const_new();

        /// The first run (the leader) waits for the test's gate; the others take 50 ms, a
        /// database read's latency.
        async fn herd() -> u64 {
            HERD.get_or_load_always(HERD.digest_key(Ok(1)), || async {
                let run = HERD_RUNS.fetch_add(1, Ordering::SeqCst);
                if run == 0 {
                    HERD_ENTERED.notify_one();
                    HERD_GATE.notified().await;
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                run as u64
            })
            .await
        }

        static STRESS: CachedFn<u64> = CachedFn::new(spec("stress"));
        static VERSIONS: [std::sync::atomic::AtomicU64; 4] =
            [const { std::sync::atomic::AtomicU64::new(0) }; 4];
        /// The newest version whose write (the database's, then the cache's) has returned.
        static RETURNED: [std::sync::atomic::AtomicU64; 4] =
            [const { std::sync::atomic::AtomicU64::new(0) }; 4];

        async fn stress_read(id: u64) -> u64 {
            STRESS
                .get_or_load_always(STRESS.digest_key(Ok(id as u128)), || async move {
                    let v = VERSIONS[id as usize].load(Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    if id == 3 && v % 7 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    v
                })
                .await
        }

        /// No read that begins after a write returned sees a version older than that write's,
        /// with cancelled readers, puts, invalidations and clears; and no key is wedged.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn no_read_is_older_than_a_returned_write_and_no_key_wedges() {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut tasks = Vec::new();
            for w in 0..2u64 {
                let stop = stop.clone();
                tasks.push(tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        // Each writer its own keys: two puts of one key may land in any order.
                        let id = (i % 2) * 2 + w;
                        let v = VERSIONS[id as usize].fetch_add(1, Ordering::SeqCst) + 1;
                        let key = STRESS.digest_key(Ok(id as u128));
                        match i % 5 {
                            0 => STRESS.put(&key, &v).await,
                            4 if w == 0 && i % 50 == 0 => STRESS.clear().await,
                            _ => STRESS.invalidate(key).await,
                        }
                        RETURNED[id as usize].fetch_max(v, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                    }
                }));
            }
            for r in 0..6u64 {
                let stop = stop.clone();
                tasks.push(tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        // A hit never yields: let the timers run.
                        tokio::task::yield_now().await;
                        i += 1;
                        let id = (i * 7 + r) % 4;
                        let floor = RETURNED[id as usize].load(Ordering::SeqCst);
                        if i % 9 == 0 {
                            // A caller that gives up.
                            let _ =
                                tokio::time::timeout(Duration::from_micros(50), stress_read(id))
                                    .await;
                            continue;
                        }
                        let seen = tokio::time::timeout(Duration::from_secs(2), stress_read(id))
                            .await
                            .expect("a wedged key");
                        assert!(seen >= floor, "key {id}: read {seen} after write {floor}");
                    }
                }));
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
            stop.store(true, Ordering::SeqCst);
            for t in tasks {
                t.await.unwrap();
            }
            let stats = STRESS.stats();
            assert!(stats.loads > 100 && stats.misses > stats.loads, "{stats:?}");
        }

        static SYNC: CachedFn<u64> = CachedFn::new(spec("sync_stress"));
        static SYNC_DB: [std::sync::atomic::AtomicU64; 2] =
            [const { std::sync::atomic::AtomicU64::new(0) }; 2];
        static SYNC_RETURNED: [std::sync::atomic::AtomicU64; 2] =
            [const { std::sync::atomic::AtomicU64::new(0) }; 2];

        /// Sync callers (parked waiters), with bodies that sometimes panic or fail: no stale
        /// read after a write returned, no wedged key, no deadlock.
        #[test]
        fn sync_callers_read_nothing_stale_and_never_wedge() {
            use crate::blocking::block_on;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut threads = Vec::new();
            {
                let stop = stop.clone();
                threads.push(std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        let id = i % 2;
                        let v = SYNC_DB[id as usize].fetch_add(1, Ordering::SeqCst) + 1;
                        let key = SYNC.digest_key(Ok(id as u128));
                        match i % 4 {
                            0 => block_on(SYNC.put(&key, &v)),
                            1 if i % 40 == 1 => SYNC.clear_blocking(),
                            _ => SYNC.invalidate_blocking(key),
                        }
                        SYNC_RETURNED[id as usize].fetch_max(v, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }));
            }
            for r in 0..4u64 {
                let stop = stop.clone();
                threads.push(std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        let id = (i + r) % 2;
                        let floor = SYNC_RETURNED[id as usize].load(Ordering::SeqCst);
                        let key = SYNC.digest_key(Ok(id as u128));
                        let got = std::panic::catch_unwind(|| {
                            SYNC.get_or_load_blocking(key, || {
                                let v = SYNC_DB[id as usize].load(Ordering::SeqCst);
                                std::thread::sleep(Duration::from_micros(100));
                                match v % 13 {
                                    0 => panic!("a body that panics"),
                                    5 => None,
                                    _ => Some(v),
                                }
                            })
                        });
                        if let Ok(Some(seen)) = got {
                            assert!(seen >= floor, "key {id}: read {seen} after write {floor}");
                        }
                    }
                }));
            }
            std::thread::sleep(Duration::from_millis(1000));
            stop.store(true, Ordering::SeqCst);
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let ok = threads.into_iter().all(|t| t.join().is_ok());
                let _ = tx.send(ok);
            });
            let ok = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a caller is stuck: a wedged key or a deadlock");
            assert!(ok, "a thread failed");
            let stats = SYNC.stats();
            assert!(stats.loads > 100 && stats.load_errors > 0, "{stats:?}");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn waiters_released_by_an_invalidation_share_one_fresh_load() {
            let leader = tokio::spawn(herd());
            HERD_ENTERED.notified().await;
            let waiters: Vec<_> = (0..8).map(|_| tokio::spawn(herd())).collect();
            while HERD.stats().misses < 9 {
                tokio::task::yield_now().await;
            }
            // Each waiter counts its miss just before it joins.
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(HERD_RUNS.load(Ordering::SeqCst), 1, "the 8 waiters joined");
            HERD.invalidate(HERD.digest_key(Ok(1))).await;
            HERD_GATE.notify_one();
            leader.await.unwrap();
            for waiter in waiters {
                waiter.await.unwrap();
            }
            let runs = HERD_RUNS.load(Ordering::SeqCst);
            assert!(
                runs <= 2,
                "{runs} body runs for one key: the leader's, then the 8 concurrent callers \
                 it had should share one fresh load"
            );
        }
    }
}
