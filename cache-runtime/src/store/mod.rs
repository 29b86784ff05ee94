//! Where values live: the one seam between a cached function and its store.
//!
//! [`Store`] is what a store does for one function: read (in this process's memory without
//! waiting, in a shared store before or under the key's flight), fill, invalidate, put, clear,
//! and report. Each arm delegates in one line to the store's own module, which is the only
//! place that knows how that store does it:
//!
//! - `memory`: this process's bounded map of typed values;
//! - `redis`: Redis or Redis Cluster (connections, key layout, kept invalidations);
//! - `tiered`: memory in front of Redis, and the invalidation protocol that keeps every
//!   process's memory in step.
//!
//! A new store is a module here plus an arm in [`Store`] and a line in [`Store::new`].
//! Dispatch is a `match` on an enum: static, nothing boxed, so the memory hit path is the
//! memory store's own.

pub(crate) mod fills;
pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "redis")]
pub(crate) mod tiered;

use std::time::Duration;

#[cfg(feature = "redis")]
use crate::cached_fn::StoreKind;
use crate::cached_fn::{Key, Spec};
use crate::clock::Clock;
use crate::codec::Codec;
use crate::context::Context;
use crate::flight::{Flight, FlightGuard};

use self::memory::MemoryStore;
#[cfg(feature = "redis")]
use self::redis::RedisFn;
#[cfg(feature = "redis")]
use self::tiered::{TieredFn, DEFAULT_L1_TTL};

/// The store of one cached function.
pub(crate) enum Store<V> {
    Memory(MemoryStore<V>),
    #[cfg(feature = "redis")]
    Redis(Box<RedisFn<V>>),
    #[cfg(feature = "redis")]
    Tiered(Box<TieredFn<V>>),
}

// Without the `redis` feature only the memory arm is left, and it needs fewer arguments.
#[cfg_attr(not(feature = "redis"), allow(unused_variables))]
impl<V> Store<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// The store `spec` asks for, holding at most `capacity` entries in memory.
    pub(crate) fn new(
        spec: &Spec,
        codec: Option<Codec<V>>,
        namespace: &str,
        capacity: usize,
        clock: Clock,
    ) -> Self {
        match (spec.store, codec) {
            #[cfg(feature = "redis")]
            (StoreKind::Redis, Some(codec)) => {
                Store::Redis(Box::new(RedisFn::new(spec, namespace, codec)))
            }
            #[cfg(feature = "redis")]
            (StoreKind::Tiered, Some(codec)) => {
                let l1_ttl = spec.l1_ttl.unwrap_or(DEFAULT_L1_TTL);
                let l1_ttl = l1_ttl.min(spec.ttl.unwrap_or(DEFAULT_L1_TTL));
                let shared = RedisFn::new(spec, namespace, codec);
                let l1 = MemoryStore::with_clock(capacity, clock);
                Store::Tiered(Box::new(TieredFn::new(l1, l1_ttl, shared)))
            }
            _ => Store::Memory(MemoryStore::with_clock(capacity, clock)),
        }
    }

    /// The store's name, as `store = "…"` writes it.
    #[cfg(feature = "metrics")]
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            Store::Redis(_) => "redis",
            #[cfg(feature = "redis")]
            Store::Tiered(_) => "tiered",
        }
    }

    /// Starts what the store runs beside calls (the tiered store's bus subscription).
    pub(crate) fn start(&'static self, ctx: &'static Context<V>) {
        match self {
            Store::Memory(_) => {}
            #[cfg(feature = "redis")]
            Store::Redis(_) => {}
            #[cfg(feature = "redis")]
            Store::Tiered(tiered) => tiered.join_bus(ctx),
        }
    }

    /// The memory store, for the hit path of functions on it (see [`CachedFn::lookup`]).
    ///
    /// [`CachedFn::lookup`]: crate::cached_fn::CachedFn::lookup
    #[inline(always)]
    pub(crate) fn memory(&self) -> Option<&MemoryStore<V>> {
        match self {
            Store::Memory(memory) => Some(memory),
            #[cfg(feature = "redis")]
            _ => None,
        }
    }

    /// The value held in this process's memory, read without waiting: a tiered store's L1 (the
    /// memory store's hit goes through [`Store::memory`]).
    #[inline(never)]
    pub(crate) fn get_local(&self, ctx: &Context<V>, key: &Key) -> Option<V> {
        match self {
            Store::Memory(memory) => memory.get(key.digest()),
            #[cfg(feature = "redis")]
            Store::Redis(_) => None,
            #[cfg(feature = "redis")]
            Store::Tiered(tiered) => tiered.get_local(ctx, key),
        }
    }

    /// The lookup made before any flight, after [`Store::get_local`] missed: Redis, for the
    /// store whose every hit is a Redis hit. (The tiered store reads Redis under the flight,
    /// and only waits here for its bus's first subscription.)
    pub(crate) async fn get_shared(&self, ctx: &Context<V>, key: &Key) -> Option<V> {
        match self {
            Store::Memory(_) => None,
            #[cfg(feature = "redis")]
            Store::Redis(redis) => redis.get(ctx, key).await,
            #[cfg(feature = "redis")]
            Store::Tiered(tiered) => tiered.before_flight().await,
        }
    }

    /// How many fills of `key`'s bucket have ended: read before a call's Redis lookup
    /// ([`Key::fills_seen`]), for its leader's ([`Store::get_leading`]).
    pub(crate) fn fills_ended(&self, key: &Key) -> u32 {
        match self {
            #[cfg(feature = "redis")]
            Store::Redis(redis) => redis.fills_ended(key.digest()),
            _ => 0,
        }
    }

    /// Whether a miss is counted only once the leader's lookup ([`Store::get_leading`]) missed
    /// too: the stores that read a shared store under the flight.
    pub(crate) fn reads_under_flight(&self) -> bool {
        match self {
            Store::Memory(_) => false,
            #[cfg(feature = "redis")]
            Store::Redis(_) => false,
            #[cfg(feature = "redis")]
            Store::Tiered(_) => true,
        }
    }

    /// The lookup of a flight's leader, before it runs the body: a shared store read under the
    /// flight, or Redis again if a fill of the key may have ended since the caller's lookup.
    /// (A function on the memory store has its flights in the store, and looks there when it
    /// leads: [`MemoryStore::join_or_lead`]. Its arms here and in [`Store::fill`] are the
    /// same steps through a flight.)
    pub(crate) async fn get_leading(
        &self,
        ctx: &Context<V>,
        key: &Key,
        flight: &Flight<V>,
    ) -> Option<V> {
        match self {
            Store::Memory(memory) => memory.get(key.digest()),
            #[cfg(feature = "redis")]
            Store::Redis(redis) => redis.get_leading(ctx, key).await,
            #[cfg(feature = "redis")]
            Store::Tiered(tiered) => tiered.get_leading(ctx, key, flight).await,
        }
    }

    /// Stores a loaded value for `ttl` (the value's own, [`crate::outcome::Policy`]), unless an
    /// invalidation of its key voided the flight meanwhile. Takes the flight's guard, and keeps
    /// it until the value is stored: in memory before it returns; in a shared store, in a task
    /// of its own ([`fills`]) that the caller does not wait for.
    pub(crate) fn fill(
        &'static self,
        ctx: &'static Context<V>,
        key: &Key,
        value: &V,
        ttl: Option<Duration>,
        flight: FlightGuard<'static, V>,
    ) {
        match self {
            Store::Memory(memory) => {
                memory.insert(key.digest(), value.clone(), ttl, || flight.current());
            }
            #[cfg(feature = "redis")]
            Store::Redis(redis) => redis.fill(ctx, key, value, ttl, flight),
            #[cfg(feature = "redis")]
            Store::Tiered(tiered) => tiered.fill(ctx, key, value, ttl, flight),
        }
    }

    /// Drops the entry under `key`; a load of it already under way will not store its value.
    pub(crate) async fn invalidate(&'static self, ctx: &Context<V>, key: &Key) {
        match self {
            Store::Memory(memory) => memory.invalidate(key.digest()),
            #[cfg(feature = "redis")]
            Store::Redis(redis) => redis.invalidate(ctx, key).await,
            #[cfg(feature = "redis")]
            Store::Tiered(tiered) => tiered.invalidate(ctx, key).await,
        }
    }

    /// Stores `value` under `key` (write-through) for `ttl`; a value that cannot be stored
    /// drops the entry instead.
    pub(crate) async fn put(
        &'static self,
        ctx: &Context<V>,
        key: &Key,
        value: &V,
        ttl: Option<Duration>,
    ) {
        match self {
            Store::Memory(memory) => memory.put(key.digest(), value, ttl),
            #[cfg(feature = "redis")]
            Store::Redis(redis) => redis.put(ctx, key, value, ttl).await,
            #[cfg(feature = "redis")]
            Store::Tiered(tiered) => tiered.put(ctx, key, value, ttl).await,
        }
    }

    /// Drops every entry; loads under way will not store their values.
    pub(crate) async fn clear(&'static self, ctx: &Context<V>) {
        match self {
            Store::Memory(memory) => memory.clear(),
            #[cfg(feature = "redis")]
            Store::Redis(redis) => redis.clear(ctx).await,
            #[cfg(feature = "redis")]
            Store::Tiered(tiered) => tiered.clear(ctx).await,
        }
    }

    /// Evictions, expirations and entries held in this process's memory.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        match self {
            Store::Memory(memory) => memory.counts(),
            #[cfg(feature = "redis")]
            Store::Redis(_) => (0, 0, 0),
            #[cfg(feature = "redis")]
            Store::Tiered(tiered) => tiered.counts(),
        }
    }

    /// Invalidations Redis has not confirmed yet.
    pub(crate) fn pending_invalidations(&self) -> u64 {
        match self {
            Store::Memory(_) => 0,
            #[cfg(feature = "redis")]
            Store::Redis(redis) => redis.pending.len() as u64,
            #[cfg(feature = "redis")]
            Store::Tiered(tiered) => tiered.shared.pending.len() as u64,
        }
    }
}
