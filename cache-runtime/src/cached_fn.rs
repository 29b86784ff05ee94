//! [`CachedFn`]: the static that `#[cached]` puts behind each function, and the cache-aside call.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::Config;
use crate::key::{self, KeyError};
use crate::outcome::{Always, Outcome};
use crate::stats::{self, Counters, Stats};
use crate::store::memory::{DigestHasher, MemoryStore};

/// What `#[cached(...)]` said about a function, fixed at compile time.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// `module_path!()` where the function is written.
    pub module: &'static str,
    /// The function's name.
    pub function: &'static str,
    /// `name = "…"`: the namespace, instead of the module path and function name.
    pub name: Option<&'static str>,
    /// `version = N`.
    pub version: u32,
    /// `ttl = …`; `None` keeps entries until they are evicted.
    pub ttl: Option<Duration>,
    /// `capacity = N`; `None` takes the configured default.
    pub capacity: Option<usize>,
}

/// A key computed from a call's arguments, or why it could not be.
pub type CallKey = Result<u128, KeyError>;

/// One cached function: its spec, its store, its in-flight loads and its counters.
///
/// Built in a `static` by the macro, so it is `const`-constructed and set up on first use.
pub struct CachedFn<V> {
    spec: Spec,
    owner: OnceLock<&'static str>,
    state: OnceLock<State<V>>,
}

struct State<V> {
    namespace: String,
    store: MemoryStore<V>,
    flights: DashMap<u128, Arc<Flight<V>>, std::hash::BuildHasherDefault<DigestHasher>>,
    counters: Counters,
}

/// One load in progress: waiters watch it until it is done or has failed.
struct Flight<V> {
    tx: watch::Sender<Landing<V>>,
}

#[derive(Clone)]
enum Landing<V> {
    Pending,
    Done(V),
    /// The leading load produced nothing to share: `Err`/`None`, a panic, or it was dropped.
    Failed,
}

impl<V> CachedFn<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// A cached function with nothing set up yet.
    pub const fn new(spec: Spec) -> Self {
        Self {
            spec,
            owner: OnceLock::new(),
            state: OnceLock::new(),
        }
    }

    /// Names the type whose method this is, so that its namespace reads `Type::method`.
    /// Generated code calls it with `core::any::type_name::<Self>` on every access.
    #[inline]
    pub fn owned_by(&'static self, owner: fn() -> &'static str) -> &'static Self {
        self.owner.get_or_init(owner);
        self
    }

    /// The namespace: `name = "…"`, or the owner type or module path, then the function name.
    pub fn namespace(&'static self) -> &'static str {
        &self.state().namespace
    }

    /// The key of a call, from its key arguments (as a tuple of references).
    #[inline]
    pub fn key<A: Serialize + ?Sized>(&self, args: &A) -> CallKey {
        key::digest(args)
    }

    /// The cache-aside call for functions returning `Result` or `Option`: a hit returns the
    /// stored value; a miss runs `load` once per key in this process and stores what
    /// [`Outcome::cacheable`] picks out.
    pub async fn get_or_load<O, F>(&'static self, key: CallKey, load: F) -> O
    where
        O: Outcome<Value = V>,
        F: Future<Output = O>,
    {
        let state = self.state();
        let key = match key {
            Ok(key) => key,
            Err(err) => {
                Counters::bump(&state.counters.key_errors);
                tracing::warn!(namespace = %state.namespace, %err, "cachette: arguments cannot be hashed, calling uncached");
                return load.await;
            }
        };
        if let Some(value) = state.store.get(key) {
            Counters::bump(&state.counters.hits);
            tracing::debug!(namespace = %state.namespace, key = %format_args!("{key:032x}"), "cachette: hit");
            return O::from_cached(value);
        }
        Counters::bump(&state.counters.misses);
        tracing::debug!(namespace = %state.namespace, key = %format_args!("{key:032x}"), "cachette: miss");
        state.load(key, self.spec.ttl, load).await
    }

    /// [`CachedFn::get_or_load`] for any other return type: every result is stored.
    pub async fn get_or_load_always<F>(&'static self, key: CallKey, load: F) -> V
    where
        F: Future<Output = V>,
    {
        self.get_or_load(key, async move { Always(load.await) })
            .await
            .0
    }

    /// Drops the entry under `key`; a load of it already under way will not store its value.
    pub async fn invalidate(&'static self, key: CallKey) {
        let state = self.state();
        match key {
            Ok(key) => {
                state.store.remove(key);
                state.flights.remove(&key);
            }
            Err(err) => {
                Counters::bump(&state.counters.key_errors);
                tracing::warn!(namespace = %state.namespace, %err, "cachette: arguments cannot be hashed, nothing to invalidate");
            }
        }
    }

    /// Drops every entry of this function; loads under way will not store their values.
    pub async fn clear(&'static self) {
        let state = self.state();
        state.store.clear();
        state.flights.clear();
    }

    /// This function's counters.
    pub fn stats(&'static self) -> Stats {
        stats::Source::stats(self.state())
    }

    #[inline]
    fn state(&'static self) -> &'static State<V> {
        match self.state.get() {
            Some(state) => state,
            None => self.init(),
        }
    }

    #[cold]
    fn init(&'static self) -> &'static State<V> {
        let mut fresh = false;
        let state = self.state.get_or_init(|| {
            fresh = true;
            let namespace = match (self.spec.name, self.owner.get()) {
                (Some(name), _) => name.to_owned(),
                (None, Some(owner)) => format!("{owner}::{}", self.spec.function),
                (None, None) => format!("{}::{}", self.spec.module, self.spec.function),
            };
            let capacity = self
                .spec
                .capacity
                .unwrap_or_else(|| Config::global().memory_capacity());
            State {
                namespace,
                store: MemoryStore::new(capacity),
                flights: DashMap::default(),
                counters: Counters::default(),
            }
        });
        if fresh {
            stats::register(state);
        }
        state
    }
}

impl<V> stats::Source for State<V>
where
    V: Clone + Send + Sync + 'static,
{
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            hits: Counters::read(&c.hits),
            misses: Counters::read(&c.misses),
            loads: Counters::read(&c.loads),
            load_errors: Counters::read(&c.load_errors),
            evictions: self.store.evictions(),
            expirations: self.store.expirations(),
            key_errors: Counters::read(&c.key_errors),
            entries: self.store.len() as u64,
        }
    }
}

impl<V> State<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// The miss path: join the load under way for `key`, or lead one.
    async fn load<O, F>(&self, key: u128, ttl: Option<Duration>, load: F) -> O
    where
        O: Outcome<Value = V>,
        F: Future<Output = O>,
    {
        let flight = match self.flights.entry(key) {
            MapEntry::Occupied(running) => Err(running.get().tx.subscribe()),
            MapEntry::Vacant(slot) => {
                let flight = Arc::new(Flight {
                    tx: watch::channel(Landing::Pending).0,
                });
                slot.insert(flight.clone());
                Ok(flight)
            }
        };
        match flight {
            Ok(flight) => self.lead(key, ttl, flight, load).await,
            Err(mut rx) => {
                let landing = rx
                    .wait_for(|l| !matches!(l, Landing::Pending))
                    .await
                    .map(|l| (*l).clone());
                if let Ok(Landing::Done(value)) = landing {
                    return O::from_cached(value);
                }
                // The leader failed: run our own body rather than queue behind another leader,
                // so no caller waits longer than one failed load plus its own.
                let generation = self.store.generation(key);
                self.run(key, ttl, generation, load).await
            }
        }
    }

    async fn lead<O, F>(
        &self,
        key: u128,
        ttl: Option<Duration>,
        flight: Arc<Flight<V>>,
        load: F,
    ) -> O
    where
        O: Outcome<Value = V>,
        F: Future<Output = O>,
    {
        let mut guard = FlightGuard {
            flights: &self.flights,
            key,
            flight,
            landed: false,
        };
        // Read before the body runs, so an invalidation during the load voids its fill.
        let generation = self.store.generation(key);
        // A load that finished between our lookup and our lead has filled the store already.
        if let Some(value) = self.store.get(key) {
            guard.land(Landing::Done(value.clone()));
            return O::from_cached(value);
        }
        let outcome = self.run(key, ttl, generation, load).await;
        if let Some(value) = outcome.cacheable() {
            if guard.flight.tx.receiver_count() > 0 {
                guard.land(Landing::Done(value.clone()));
            }
        }
        outcome
    }

    /// Runs the body and stores what it returns, if cacheable and still current.
    async fn run<O, F>(&self, key: u128, ttl: Option<Duration>, generation: u64, load: F) -> O
    where
        O: Outcome<Value = V>,
        F: Future<Output = O>,
    {
        Counters::bump(&self.counters.loads);
        let mut error_guard = LoadErrorGuard(Some(&self.counters.load_errors));
        let outcome = load.await;
        if let Some(value) = outcome.cacheable() {
            error_guard.0 = None;
            self.store.insert(key, value.clone(), ttl, generation);
        }
        outcome
    }
}

/// Counts a load error unless disarmed: covers `Err`/`None`, panics and cancellation alike.
struct LoadErrorGuard<'a>(Option<&'a AtomicU64>);

impl Drop for LoadErrorGuard<'_> {
    fn drop(&mut self) {
        if let Some(counter) = self.0 {
            Counters::bump(counter);
        }
    }
}

/// The leader's hold on its flight. However the leader ends — value, error, panic or being
/// dropped — waiters are released and the key is free for the next caller.
struct FlightGuard<'a, V> {
    flights: &'a DashMap<u128, Arc<Flight<V>>, std::hash::BuildHasherDefault<DigestHasher>>,
    key: u128,
    flight: Arc<Flight<V>>,
    landed: bool,
}

impl<V> FlightGuard<'_, V> {
    fn land(&mut self, landing: Landing<V>) {
        self.landed = true;
        self.flight.tx.send_replace(landing);
    }
}

impl<V> Drop for FlightGuard<'_, V> {
    fn drop(&mut self) {
        // Only our own flight: an invalidation may have replaced it with a newer one.
        self.flights
            .remove_if(&self.key, |_, f| Arc::ptr_eq(f, &self.flight));
        if !self.landed {
            self.flight.tx.send_replace(Landing::Failed);
        }
    }
}
