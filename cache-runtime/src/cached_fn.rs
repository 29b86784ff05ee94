//! [`CachedFn`]: the static that `#[cached]` puts behind each function, and the cache-aside call.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use tokio::sync::watch;

use crate::bus::{self, Bus};
use crate::codec::Codec;
use crate::config::Config;
use crate::key::KeyError;
use crate::outcome::{Always, Outcome};
use crate::stats::{self, Counters, Stats};
use crate::store::memory::{DigestHasher, MemoryStore};
use crate::store::pending::{Pending, Replay};
use crate::store::redis::{Redis, StoreError};

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
    /// `store = "…"`.
    pub store: StoreKind,
    /// `key = "…"`: the template's literal parts, one more than its parameters.
    pub key_template: Option<&'static [&'static str]>,
    /// `l1_ttl = …` of a tiered store; `None` takes the smaller of `ttl` and a minute.
    pub l1_ttl: Option<Duration>,
}

/// Where a function's values live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// This process's memory.
    Memory,
    /// Redis, shared by every process.
    Redis,
    /// This process's memory in front of Redis, kept in step by Redis pub/sub.
    Tiered,
}

/// How long a tiered store keeps entries in memory unless `l1_ttl` says otherwise (or `ttl` is
/// shorter).
pub const DEFAULT_L1_TTL: Duration = Duration::from_secs(60);

/// How recent a local Redis write must be for a remote invalidation of its key to delete it
/// again (see `drop_keys`).
const RECENT_SET: Duration = Duration::from_secs(1);

/// The key of one call: the digest of its key arguments, or the name a key template gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    digest: u128,
    name: Option<String>,
}

impl Key {
    /// The 128-bit digest that identifies the call in this process.
    pub fn digest(&self) -> u128 {
        self.digest
    }

    /// The name from a `key = "…"` template, without the prefix.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// A key computed from a call's arguments, or why it could not be.
pub type CallKey = Result<Key, KeyError>;

/// One cached function: its spec, its store, its in-flight loads and its counters.
///
/// Built in a `static` by the macro, so it is `const`-constructed and set up on first use.
pub struct CachedFn<V> {
    spec: Spec,
    codec: Option<Codec<V>>,
    owner: OnceLock<&'static str>,
    state: OnceLock<State<V>>,
}

struct State<V> {
    namespace: String,
    backend: Backend<V>,
    flights: DashMap<u128, Arc<Flight<V>>, std::hash::BuildHasherDefault<DigestHasher>>,
    counters: Counters,
    /// Invalidations Redis has not confirmed yet (the stores with Redis).
    pending: Pending,
}

enum Backend<V> {
    Memory(MemoryStore<V>),
    Redis(Box<RedisBackend<V>>),
    Tiered(Box<Tiered<V>>),
}

struct Tiered<V> {
    l1: MemoryStore<V>,
    l1_ttl: Duration,
    shared: RedisBackend<V>,
    /// Keys this process wrote to Redis lately.
    recent: RecentWrites,
}

struct RedisBackend<V> {
    redis: &'static Redis,
    codec: Codec<V>,
    ttl: Option<Duration>,
    /// `{prefix}:{namespace}:v{version}:`, before the digest.
    digest_prefix: String,
    /// `{prefix}:`, before a template's name.
    name_prefix: String,
    template: Option<&'static [&'static str]>,
}

/// What a message on the bus says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Announce {
    /// These keys changed: drop them, and delete again what you wrote lately.
    Keys,
    /// Every entry changed.
    All,
    /// These keys were deleted again after an invalidation: only drop them from memory.
    Echo,
}

/// What [`State::redis_write`] did with a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Stored in Redis.
    Kept,
    /// Not stored: Redis is unavailable, the key's invalidation is still pending, or the value
    /// could not be stored (encoding, size cap, an error).
    No,
}

/// One load in progress: waiters watch it until it is done or has failed.
///
/// It is also the load's ticket against invalidation. An invalidation of the key (or a clear)
/// marks the flight stale and takes it out of the map, then takes its `gate`. The leader
/// stores its value only while the flight is not stale, checking under the memory store's
/// segment lock for memory, and under the `gate` for Redis, held until its writes are
/// answered. So the invalidation's own deletes reach the stores after any write of the flight,
/// and a value loaded before an invalidation never outlives it.
struct Flight<V> {
    tx: watch::Sender<Landing<V>>,
    stale: AtomicBool,
    gate: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
enum Landing<V> {
    Pending,
    /// The value the leader loaded.
    Done(V),
    /// The value the leader read from Redis (a tiered store's memory-tier miss).
    Hit(V),
    /// The leading load produced nothing to share: `Err`/`None`, a panic, or it was dropped.
    Failed,
}

impl<V> Flight<V> {
    fn new() -> Arc<Self> {
        Arc::new(Flight {
            tx: watch::channel(Landing::Pending).0,
            stale: AtomicBool::new(false),
            gate: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether no invalidation of the key ran since the flight began.
    fn current(&self) -> bool {
        !self.stale.load(Ordering::SeqCst)
    }

    /// Marks the flight stale, then waits until a write it already began is answered.
    async fn void(&self) {
        self.stale.store(true, Ordering::SeqCst);
        drop(self.gate.lock().await);
    }
}

impl<V> CachedFn<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// A cached function on the memory store, with nothing set up yet.
    pub const fn new(spec: Spec) -> Self {
        Self {
            spec,
            codec: None,
            owner: OnceLock::new(),
            state: OnceLock::new(),
        }
    }

    /// A cached function on a store that keeps bytes, written and read with `codec`.
    pub const fn with_codec(spec: Spec, codec: Codec<V>) -> Self {
        Self {
            spec,
            codec: Some(codec),
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

    /// The key of a call, from the digest of its key arguments ([`crate::KeyBuilder`]).
    #[inline]
    pub fn digest_key(&self, digest: Result<u128, KeyError>) -> CallKey {
        digest.map(|digest| Key { digest, name: None })
    }

    /// The key of a call whose function has a `key = "…"` template, from the rendered name.
    pub fn named_key(&self, name: Result<String, KeyError>) -> CallKey {
        name.map(|name| Key {
            digest: xxhash_rust::xxh3::xxh3_128(name.as_bytes()),
            name: Some(name),
        })
    }

    /// The first half of a call: the value held in memory under `key` (the memory store, or a
    /// tiered store's memory tier while its bus is live), counted as a hit. On `None`, the call
    /// goes on with [`CachedFn::get_or_load`] or [`CachedFn::get_or_load_shared`].
    ///
    /// It is synchronous, so a memory hit returns from the first poll of the caller's
    /// `async fn` with the key still in registers, before the rest of the call's future is
    /// built.
    #[inline(always)]
    pub fn lookup(&'static self, key: &CallKey) -> Option<V> {
        let state = self.state();
        let key = key.as_ref().ok()?;
        let value = match &state.backend {
            Backend::Memory(memory) => memory.get(key.digest)?,
            Backend::Redis(_) => return None,
            Backend::Tiered(tiered) => state.l1_get(tiered, key)?,
        };
        state.hit(key);
        Some(value)
    }

    /// The rest of a call for functions returning `Result` or `Option`, after
    /// [`CachedFn::lookup`] found nothing in memory: Redis, for the stores that have it, then
    /// `load()`, run once per key in this process, storing what [`Outcome::cacheable`] picks
    /// out.
    ///
    /// `load` builds the body's future only on a miss, and the miss path is boxed, as is the
    /// whole of [`CachedFn::get_or_load_shared`] for the stores with Redis, so that the future of
    /// a memory-store function stays small (a caller may move it, into `tokio::spawn` say).
    /// Functions on Redis call [`CachedFn::get_or_load_shared`] directly.
    pub async fn get_or_load<O, F, Fut>(&'static self, key: CallKey, load: F) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let state = self.state();
        if let Backend::Memory(_) = state.backend {
            let Some(key) = state.usable(key, "calling uncached") else {
                return load().await;
            };
            return state.miss(key, self.spec.ttl, load).await;
        }
        Box::pin(self.get_or_load_shared(key, load)).await
    }

    /// [`CachedFn::get_or_load`] for functions on Redis or the tiered store: the same, with
    /// the Redis lookup of `store = "redis"` inline rather than boxed, since these functions
    /// wait on Redis on every call that misses memory anyway.
    pub async fn get_or_load_shared<O, F, Fut>(&'static self, key: CallKey, load: F) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let state = self.state();
        let Some(key) = state.usable(key, "calling uncached") else {
            return load().await;
        };
        if let Backend::Redis(shared) = &state.backend {
            if let Some(value) = state.redis_get(shared, &key).await {
                state.hit(&key);
                return O::from_cached(value);
            }
        }
        state.miss(key, self.spec.ttl, load).await
    }

    /// [`CachedFn::get_or_load`] for any other return type: every result is stored.
    pub async fn get_or_load_always<F, Fut>(&'static self, key: CallKey, load: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        self.get_or_load(key, move || async move { Always(load().await) })
            .await
            .0
    }

    /// [`CachedFn::get_or_load_shared`] for any other return type: every result is stored.
    pub async fn get_or_load_shared_always<F, Fut>(&'static self, key: CallKey, load: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        self.get_or_load_shared(key, move || async move { Always(load().await) })
            .await
            .0
    }

    /// Drops the entry under `key`; a load of it already under way will not store its value.
    pub async fn invalidate(&'static self, key: CallKey) {
        self.invalidate_ref(&key).await;
    }

    async fn invalidate_ref(&'static self, key: &CallKey) {
        let state = self.state();
        let Some(key) = state.usable(key.as_ref(), "nothing to invalidate") else {
            return;
        };
        state.void(key.digest).await;
        match &state.backend {
            Backend::Memory(memory) => {
                memory.remove(key.digest);
            }
            Backend::Redis(shared) => {
                state.delete(shared, key).await;
            }
            Backend::Tiered(tiered) => {
                tiered.l1.remove(key.digest);
                let deleted = state.delete(&tiered.shared, key).await;
                // A reader that began after the first drop may have read the old value before
                // the `DEL` ran (reads take another connection): void it, and drop what it put
                // in memory.
                state.void(key.digest).await;
                tiered.l1.remove(key.digest);
                state.announce(&[key.digest], Announce::Keys, deleted).await;
            }
        }
    }

    /// Stores `value` as the entry under `key` (write-through), replacing what was there; a
    /// load of it already under way will not store its own value over it. A value that cannot
    /// be stored (over the size cap, not encodable, Redis unavailable) drops the entry instead.
    pub async fn put(&'static self, key: &CallKey, value: &V) {
        let state = self.state();
        let Some(key) = state.usable(key.as_ref(), "nothing stored") else {
            return;
        };
        state.void(key.digest).await;
        match &state.backend {
            Backend::Memory(memory) => {
                memory.insert(key.digest, value.clone(), self.spec.ttl, || true);
            }
            Backend::Redis(shared) => {
                if state.redis_write(shared, key, value).await == Written::No {
                    state.delete(shared, key).await;
                }
            }
            Backend::Tiered(tiered) => {
                tiered.l1.remove(key.digest);
                // A remote invalidation handled from now on deletes the key again if this
                // write may have outlived it.
                tiered
                    .recent
                    .remember(key.digest, || tiered.shared.redis_key(key));
                let mut sent = true;
                if state.redis_write(&tiered.shared, key, value).await == Written::No {
                    sent = state.delete(&tiered.shared, key).await;
                }
                // A reader that began after the first drop may have read the old value before
                // the write ran, and put it in memory: the next read goes to Redis.
                state.void(key.digest).await;
                tiered.l1.remove(key.digest);
                // Other processes drop their copy and read the new value from Redis.
                state.announce(&[key.digest], Announce::Keys, sent).await;
            }
        }
    }

    /// Drops every entry of this function; loads under way will not store their values.
    pub async fn clear(&'static self) {
        let state = self.state();
        state.void_all().await;
        match &state.backend {
            Backend::Memory(memory) => memory.clear(),
            Backend::Redis(shared) => {
                state.delete_all(shared).await;
            }
            Backend::Tiered(tiered) => {
                tiered.l1.clear();
                let deleted = state.delete_all(&tiered.shared).await;
                // Readers refilled memory from keys not yet deleted while the clear ran: void
                // them and drop what they put there.
                state.void_all().await;
                tiered.l1.clear();
                state.announce(&[], Announce::All, deleted).await;
            }
        }
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
                // Without generic arguments: one static serves every `Repo<T>`, and its
                // namespace must not depend on which `T` called first.
                (None, Some(owner)) => format!(
                    "{}::{}",
                    owner.split('<').next().unwrap_or(owner),
                    self.spec.function
                ),
                (None, None) => format!("{}::{}", self.spec.module, self.spec.function),
            };
            let capacity = self
                .spec
                .capacity
                .unwrap_or_else(|| Config::global().memory_capacity());
            let shared = |codec| {
                let redis = Redis::global();
                RedisBackend {
                    redis,
                    codec,
                    ttl: self.spec.ttl,
                    digest_prefix: format!(
                        "{}:{namespace}:v{}:",
                        redis.prefix(),
                        self.spec.version
                    ),
                    name_prefix: format!("{}:", redis.prefix()),
                    template: self.spec.key_template,
                }
            };
            let backend = match (self.spec.store, self.codec) {
                (StoreKind::Redis, Some(codec)) => Backend::Redis(Box::new(shared(codec))),
                (StoreKind::Tiered, Some(codec)) => {
                    let ttl = self.spec.ttl.unwrap_or(DEFAULT_L1_TTL);
                    Backend::Tiered(Box::new(Tiered {
                        l1: MemoryStore::new(capacity),
                        l1_ttl: self.spec.l1_ttl.unwrap_or(DEFAULT_L1_TTL).min(ttl),
                        shared: shared(codec),
                        recent: RecentWrites::new(crate::clock::Clock::system()),
                    }))
                }
                _ => Backend::Memory(MemoryStore::new(capacity)),
            };
            State {
                namespace,
                backend,
                flights: DashMap::default(),
                counters: Counters::default(),
                pending: Pending::default(),
            }
        });
        if fresh {
            stats::register(state);
            if let Backend::Tiered(_) = state.backend {
                Bus::global().join(&state.namespace, state);
            }
        }
        state
    }
}

/// Runs a write path's cache updates to the end even if the caller stops waiting: in a task of
/// its own when a tokio runtime is at hand, awaited here either way. A mutator whose future is
/// dropped after its body wrote must not leave the caches stale.
pub async fn settle<F>(work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            // A panic in the task has been logged by the runtime; the mutator's result stands.
            let _ = runtime.spawn(work).await;
        }
        Err(_) => work.await,
    }
}

/// Compiles only for a type a cache can hold: generated code calls it, spanned at the return
/// type, so that a value that is not `Clone + Send + Sync + 'static` is reported there.
pub const fn assert_value<V: Clone + Send + Sync + 'static>() {}

/// One entry of a cached function, named by a write path: what `#[invalidates]` drops and
/// `#[cache_put]` replaces. Its key is computed when it is made, before the write path's body runs.
pub struct Target<V: 'static> {
    cached: &'static CachedFn<V>,
    key: CallKey,
}

impl<V> Target<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// The entry under `key` of `cached`.
    pub fn new(cached: &'static CachedFn<V>, key: CallKey) -> Self {
        Self { cached, key }
    }

    /// Drops the entry everywhere it is kept. Store failures are counted and logged, never returned.
    pub async fn invalidate(&self) {
        self.cached.invalidate_ref(&self.key).await;
    }

    /// Stores `value` as the entry. Store failures are counted and logged, never returned.
    pub async fn put(&self, value: &V) {
        self.cached.put(&self.key, value).await;
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
        let (evictions, expirations, entries) = match &self.backend {
            Backend::Memory(m) => (m.evictions(), m.expirations(), m.len() as u64),
            Backend::Tiered(t) => (t.l1.evictions(), t.l1.expirations(), t.l1.len() as u64),
            Backend::Redis(_) => (0, 0, 0),
        };
        Stats {
            hits: c.hits.read(),
            misses: Counters::read(&c.misses),
            loads: Counters::read(&c.loads),
            load_errors: Counters::read(&c.load_errors),
            evictions,
            expirations,
            key_errors: Counters::read(&c.key_errors),
            entries,
            store_errors: Counters::read(&c.store_errors),
            decode_errors: Counters::read(&c.decode_errors),
            encode_errors: Counters::read(&c.encode_errors),
            pending_invalidations: self.pending.len() as u64,
            oversize: Counters::read(&c.oversize),
            l1_hits: c.l1_hits.read(),
            remote_invalidations: Counters::read(&c.remote_invalidations),
        }
    }
}

impl<V> State<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// Marks the load of `digest` under way (if any) stale and forgets it, so that calls from
    /// now on start their own; returns once a write it already began is answered.
    async fn void(&self, digest: u128) {
        if let Some((_, flight)) = self.flights.remove(&digest) {
            flight.void().await;
        }
    }

    /// [`State::void`] for every load under way.
    async fn void_all(&self) {
        let flights: Vec<(u128, Arc<Flight<V>>)> = self
            .flights
            .iter()
            .map(|f| (*f.key(), f.value().clone()))
            .collect();
        for (digest, flight) in &flights {
            self.flights
                .remove_if(digest, |_, f| Arc::ptr_eq(f, flight));
        }
        for (_, flight) in flights {
            flight.void().await;
        }
    }

    /// Deletes `key` from Redis; if Redis does not confirm it, keeps it to send again (and
    /// until then this process neither reads nor writes the key there). Returns whether Redis
    /// confirmed it.
    async fn delete(&'static self, shared: &RedisBackend<V>, key: &Key) -> bool {
        let name = shared.redis_key(key);
        match shared.redis.delete(&name).await {
            Ok(()) => true,
            Err(err) => {
                self.store_error(shared.redis, "DEL", &err);
                self.pending.delete(self, key.digest, name);
                false
            }
        }
    }

    /// Deletes every entry of this function from Redis, or keeps the clear to run again.
    async fn delete_all(&'static self, shared: &RedisBackend<V>) -> bool {
        let deleted = shared
            .redis
            .delete_matching(&shared.pattern(), |key| shared.owns(key))
            .await;
        match deleted {
            Ok(_) => true,
            Err(err) => {
                self.store_error(shared.redis, "clear", &err);
                self.pending.clear(self);
                false
            }
        }
    }

    /// Tells the other processes to drop these keys (or every key) from their memory tier, now
    /// if `now` (the deletes it announces were confirmed), else once the kept deletes are.
    async fn announce(&'static self, digests: &[u128], what: Announce, now: bool) {
        let Backend::Tiered(tiered) = &self.backend else {
            return;
        };
        let sent = now && {
            let published = self.publish(&tiered.shared, digests, what).await;
            if let Err(err) = &published {
                self.store_error(tiered.shared.redis, "PUBLISH", err);
            }
            published.is_ok()
        };
        if !sent && what != Announce::Echo {
            self.pending.announce(self, digests, what == Announce::All);
        }
    }

    async fn publish(
        &self,
        shared: &RedisBackend<V>,
        digests: &[u128],
        what: Announce,
    ) -> Result<(), StoreError> {
        let message = bus::Message {
            ns: self.namespace.clone(),
            keys: digests.iter().map(|d| format!("{d:032x}")).collect(),
            all: what == Announce::All,
            from: bus::process_id(),
            echo: what == Announce::Echo,
        };
        Bus::global().publish(shared.redis, &message).await
    }

    /// On a remote invalidation: deletes from Redis again those of `digests` this process wrote
    /// lately, since its write may have landed after the invalidation's `DEL`, and tells the
    /// other processes to drop them from memory (an echo: another process may have read our
    /// write before we deleted it). Returns them.
    async fn delete_again(
        &'static self,
        tiered: &Tiered<V>,
        again: Vec<(u128, String)>,
    ) -> Vec<u128> {
        let names: Vec<String> = again.iter().map(|(_, name)| name.clone()).collect();
        let digests: Vec<u128> = again.iter().map(|(digest, _)| *digest).collect();
        if again.is_empty() {
            return digests;
        }
        match tiered.shared.redis.delete_many(&names).await {
            Ok(()) => self.announce(&digests, Announce::Echo, true).await,
            Err(err) => {
                self.store_error(tiered.shared.redis, "DEL", &err);
                for (digest, name) in again {
                    self.pending.delete(self, digest, name);
                }
                self.pending.announce(self, &digests, false);
            }
        }
        digests
    }

    /// A miss of memory (and of Redis for `store = "redis"`): the load, boxed, since it holds
    /// the body's future. A tiered store counts the call once it knows whether Redis had it.
    fn miss<O, F, Fut>(
        &'static self,
        key: Key,
        ttl: Option<Duration>,
        load: F,
    ) -> Pin<Box<impl Future<Output = O>>>
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        if !matches!(self.backend, Backend::Tiered(_)) {
            self.count_miss(&key);
        }
        Box::pin(self.load(key, ttl, load))
    }

    fn count_miss(&self, key: &Key) {
        Counters::bump(&self.counters.misses);
        tracing::debug!(namespace = %self.namespace, key = %format_args!("{:032x}", key.digest), "cachette: miss");
    }

    /// The miss path: join the load under way for `key`, or lead one.
    async fn load<O, F, Fut>(&'static self, key: Key, ttl: Option<Duration>, load: F) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let flight = match self.flights.entry(key.digest) {
            MapEntry::Occupied(running) => Err(running.get().tx.subscribe()),
            MapEntry::Vacant(slot) => Ok(slot.insert(Flight::new()).clone()),
        };
        let mut rx = match flight {
            Ok(flight) => return self.lead(key, ttl, flight, load).await,
            Err(rx) => rx,
        };
        let landing = rx
            .wait_for(|l| !matches!(l, Landing::Pending))
            .await
            .map(|l| (*l).clone());
        let tiered = matches!(self.backend, Backend::Tiered(_));
        match landing {
            Ok(Landing::Done(value)) => {
                if tiered {
                    self.count_miss(&key);
                }
                return O::from_cached(value);
            }
            Ok(Landing::Hit(value)) => {
                self.hit(&key);
                return O::from_cached(value);
            }
            _ => {}
        }
        if tiered {
            self.count_miss(&key);
        }
        // The leader failed: run our own body rather than queue behind another leader, so no
        // caller waits longer than one failed load plus its own. It leads a flight of its own
        // if none runs yet; otherwise it stores nothing, having no ticket an invalidation
        // could void.
        let flight = match self.flights.entry(key.digest) {
            MapEntry::Vacant(slot) => Some(slot.insert(Flight::new()).clone()),
            MapEntry::Occupied(_) => None,
        };
        match flight {
            Some(flight) => {
                let mut guard = FlightGuard::new(&self.flights, key.digest, flight);
                let outcome = self.run(&key, ttl, Some(&guard.flight), load).await;
                guard.land_outcome(&outcome);
                outcome
            }
            None => self.run(&key, ttl, None, load).await,
        }
    }

    async fn lead<O, F, Fut>(
        &'static self,
        key: Key,
        ttl: Option<Duration>,
        flight: Arc<Flight<V>>,
        load: F,
    ) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let mut guard = FlightGuard::new(&self.flights, key.digest, flight);
        match &self.backend {
            // A load that finished between our lookup and our lead has filled the memory
            // store already. (Redis is not asked twice: that would double the miss path's
            // round trips.)
            Backend::Memory(memory) => {
                if let Some(value) = memory.get(key.digest) {
                    guard.land(Landing::Done(value.clone()));
                    return O::from_cached(value);
                }
            }
            Backend::Redis(_) => {}
            // The memory tier missed: Redis, then the body, both under this flight.
            Backend::Tiered(tiered) => {
                let found = match self.l1_get(tiered, &key) {
                    Some(value) => Some(value),
                    None => self.tiered_read(tiered, &key, &guard.flight).await,
                };
                if let Some(value) = found {
                    self.hit(&key);
                    guard.land(Landing::Hit(value.clone()));
                    return O::from_cached(value);
                }
                self.count_miss(&key);
            }
        }
        let outcome = self.run(&key, ttl, Some(&guard.flight), load).await;
        guard.land_outcome(&outcome);
        outcome
    }

    /// Runs the body and stores what it returns, if cacheable and `flight` is still current.
    async fn run<O, F, Fut>(
        &'static self,
        key: &Key,
        ttl: Option<Duration>,
        flight: Option<&Arc<Flight<V>>>,
        load: F,
    ) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        Counters::bump(&self.counters.loads);
        let mut error_guard = LoadErrorGuard(Some(&self.counters.load_errors));
        let outcome = load().await;
        if let Some(value) = outcome.cacheable() {
            error_guard.0 = None;
            if let Some(flight) = flight {
                self.fill(key, value, ttl, flight).await;
            }
        }
        outcome
    }

    /// Stores a loaded value, unless an invalidation of its key ran since its flight began.
    ///
    /// The Redis part runs in a task of its own ([`settle`]): a caller that stops waiting
    /// (a timeout, a dropped future) must not stop it between its check and its write, nor
    /// keep the flight's gate.
    async fn fill(
        &'static self,
        key: &Key,
        value: &V,
        ttl: Option<Duration>,
        flight: &Arc<Flight<V>>,
    ) {
        if let Backend::Memory(memory) = &self.backend {
            memory.insert(key.digest, value.clone(), ttl, || flight.current());
            return;
        }
        let (key, value, flight) = (key.clone(), value.clone(), flight.clone());
        settle(async move { self.fill_shared(&key, &value, &flight).await }).await;
    }

    async fn fill_shared(&'static self, key: &Key, value: &V, flight: &Flight<V>) {
        let _gate = flight.gate.lock().await;
        if !flight.current() {
            return;
        }
        match &self.backend {
            Backend::Memory(_) => {}
            Backend::Redis(shared) => {
                self.redis_write(shared, key, value).await;
            }
            Backend::Tiered(tiered) => {
                // Remembered before the write is sent: a remote invalidation handled from
                // now on deletes the key again if this write may have outlived it.
                tiered
                    .recent
                    .remember(key.digest, || tiered.shared.redis_key(key));
                self.redis_write(&tiered.shared, key, value).await;
                if Bus::global().live() {
                    tiered
                        .l1
                        .insert(key.digest, value.clone(), Some(tiered.l1_ttl), || {
                            flight.current()
                        });
                }
            }
        }
    }

    /// Writes a value to Redis (`SET … PX`), unless Redis is unavailable or the key's
    /// invalidation is still pending.
    async fn redis_write(&self, redis: &RedisBackend<V>, key: &Key, value: &V) -> Written {
        let Some(ttl) = redis.ttl else {
            return Written::No;
        };
        if self.pending.blocks(key.digest) || !redis.redis.available() {
            return Written::No;
        }
        let mut bytes = Vec::new();
        if !redis.codec.encode(value, &mut bytes) {
            Counters::bump(&self.counters.encode_errors);
            tracing::warn!(namespace = %self.namespace, format = redis.codec.format().name(), "cachette: the value cannot be encoded so that it reads back as itself; not stored");
            return Written::No;
        }
        if bytes.len() > redis.redis.max_value_bytes() {
            Counters::bump(&self.counters.oversize);
            tracing::debug!(namespace = %self.namespace, bytes = bytes.len(), "cachette: value over the size cap; not stored");
            return Written::No;
        }
        let name = redis.redis_key(key);
        if let Err(err) = redis.redis.set(&name, &bytes, ttl).await {
            if matches!(err, StoreError::Timeout) {
                // The write may still land after we gave up on it, and after an invalidation
                // it would then outlive. A delete sent behind it on the same connection
                // lands after it: at worst a miss.
                let (store, name) = (redis.redis, name.clone());
                crate::store::redis::io_runtime().spawn(async move {
                    let _ = store.delete(&name).await;
                });
            }
            self.store_error(redis.redis, "SET", &err);
            return Written::No;
        }
        Written::Kept
    }

    /// A tiered store's memory tier, while the bus is live (a hit counted as an L1 hit).
    fn l1_get(&self, tiered: &Tiered<V>, key: &Key) -> Option<V> {
        if !Bus::global().live() {
            return None;
        }
        let value = tiered.l1.get(key.digest)?;
        self.counters.l1_hits.bump();
        Some(value)
    }

    /// Counts a hit and traces it.
    #[inline(always)]
    fn hit(&self, key: &Key) {
        self.counters.hits.bump();
        tracing::debug!(namespace = %self.namespace, key = %format_args!("{:032x}", key.digest), "cachette: hit");
    }

    /// A tiered lookup past memory, under the key's flight: Redis, filling memory unless an
    /// invalidation of the key voided the flight meanwhile or the bus is down.
    async fn tiered_read(&self, tiered: &Tiered<V>, key: &Key, flight: &Flight<V>) -> Option<V> {
        let bus = Bus::global();
        let live = bus.live();
        let value = self.redis_get(&tiered.shared, key).await?;
        if live && bus.live() {
            tiered
                .l1
                .insert(key.digest, value.clone(), Some(tiered.l1_ttl), || {
                    flight.current()
                });
        }
        Some(value)
    }

    /// A Redis lookup: a hit decodes; a miss, a store error or undecodable bytes are all misses,
    /// and so is a key whose invalidation Redis has not confirmed yet.
    async fn redis_get(&self, redis: &RedisBackend<V>, key: &Key) -> Option<V> {
        if self.pending.blocks(key.digest) {
            return None;
        }
        let on_stack = redis.digest_key_on_stack(key);
        let on_heap;
        let name = match &on_stack {
            Some((buf, len)) => &buf[..*len],
            None => {
                on_heap = redis.redis_key(key);
                on_heap.as_bytes()
            }
        };
        match redis.redis.get(name).await {
            Ok(Some(bytes)) => {
                let value = redis.codec.decode(&bytes);
                if value.is_none() {
                    Counters::bump(&self.counters.decode_errors);
                    tracing::debug!(namespace = %self.namespace, key = %String::from_utf8_lossy(name), "cachette: undecodable value in Redis, treated as a miss");
                }
                value
            }
            Ok(None) => None,
            Err(err) => {
                self.store_error(redis.redis, "GET", &err);
                None
            }
        }
    }

    /// The key, or `None` (counted and logged, saying what was not done) if the arguments
    /// could not be hashed.
    fn usable<K, E: std::fmt::Display>(&self, key: Result<K, E>, skipped: &str) -> Option<K> {
        match key {
            Ok(key) => Some(key),
            Err(err) => {
                Counters::bump(&self.counters.key_errors);
                tracing::warn!(namespace = %self.namespace, %err, "cachette: arguments cannot be hashed, {skipped}");
                None
            }
        }
    }

    fn store_error(&self, redis: &Redis, what: &str, err: &StoreError) {
        Counters::bump(&self.counters.store_errors);
        if !matches!(err, StoreError::Unavailable) {
            redis.warn(&self.namespace, what, err);
        }
    }

    /// The Redis side of the store, if it has one.
    fn shared(&self) -> Option<&RedisBackend<V>> {
        match &self.backend {
            Backend::Memory(_) => None,
            Backend::Redis(shared) => Some(shared),
            Backend::Tiered(tiered) => Some(&tiered.shared),
        }
    }
}

impl<V> RedisBackend<V> {
    /// The full Redis key of a call.
    /// The Redis key of a digest key, written on the stack: a hit only sends it, and a `String`
    /// per hit was an allocation per hit. `None` for a template's key, or a prefix too long
    /// for the buffer.
    fn digest_key_on_stack(&self, key: &Key) -> Option<([u8; 128], usize)> {
        if key.name.is_some() {
            return None;
        }
        let prefix = self.digest_prefix.as_bytes();
        let len = prefix.len() + 32;
        let mut buf = [0u8; 128];
        buf.get_mut(..prefix.len())?.copy_from_slice(prefix);
        buf.get_mut(prefix.len()..len)?
            .copy_from_slice(&crate::key::hex(key.digest));
        Some((buf, len))
    }

    fn redis_key(&self, key: &Key) -> String {
        match &key.name {
            Some(name) => [self.name_prefix.as_str(), name].concat(),
            None => format!("{}{:032x}", self.digest_prefix, key.digest),
        }
    }

    /// A glob matching every key of this function (and maybe others: see [`Self::owns`]).
    fn pattern(&self) -> String {
        match self.template {
            Some(parts) => {
                let mut pattern = glob_escape(&self.name_prefix);
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        pattern.push('*');
                    }
                    pattern.push_str(&glob_escape(part));
                }
                pattern
            }
            None => format!("{}*", glob_escape(&self.digest_prefix)),
        }
    }

    /// Whether `key`, matched by [`Self::pattern`], is one of this function's keys.
    fn owns(&self, key: &str) -> bool {
        match self.template {
            None => key
                .strip_prefix(self.digest_prefix.as_str())
                .is_some_and(|digest| {
                    digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit())
                }),
            Some(parts) => key
                .strip_prefix(self.name_prefix.as_str())
                .is_some_and(|name| template_matches(parts, name)),
        }
    }
}

/// Whether `name` is what the template of literal `parts` renders for some arguments: the
/// literals in order, each parameter's escaped value in between (which never holds a character
/// that escaping rewrites, and the macro requires one such between two parameters).
fn template_matches(parts: &[&str], name: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return false;
    };
    name.strip_prefix(first)
        .is_some_and(|name| values_then(rest, name))
}

/// Whether `name` is an escaped value followed by `parts[0]`, then again, to the end.
fn values_then(parts: &[&str], name: &str) -> bool {
    let Some((part, rest)) = parts.split_first() else {
        return name.is_empty();
    };
    let value_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '%');
    let longest = name.find(|c: char| !value_char(c)).unwrap_or(name.len());
    (0..=longest).any(|len| {
        name[len..]
            .strip_prefix(part)
            .is_some_and(|after| values_then(rest, after))
    })
}

fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
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

impl<'a, V: Clone> FlightGuard<'a, V> {
    fn new(
        flights: &'a DashMap<u128, Arc<Flight<V>>, std::hash::BuildHasherDefault<DigestHasher>>,
        key: u128,
        flight: Arc<Flight<V>>,
    ) -> Self {
        Self {
            flights,
            key,
            flight,
            landed: false,
        }
    }

    fn land(&mut self, landing: Landing<V>) {
        self.landed = true;
        self.flight.tx.send_replace(landing);
    }

    /// Hands a loaded value to the waiters, if there are any.
    fn land_outcome<O: Outcome<Value = V>>(&mut self, outcome: &O) {
        if let Some(value) = outcome.cacheable() {
            if self.flight.tx.receiver_count() > 0 {
                self.land(Landing::Done(value.clone()));
            }
        }
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

/// The keys a tiered function wrote to Redis within the last [`RECENT_SET`] or so, with their
/// Redis names: a remote invalidation of one of them deletes it again.
///
/// Two generations of maps: writes go to the current one, which becomes the previous one
/// after [`RECENT_SET`], when the previous one is dropped whole. So a write is remembered for
/// one to two [`RECENT_SET`]s, and each write or look-up costs O(1).
struct RecentWrites {
    clock: crate::clock::Clock,
    inner: std::sync::Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    current: std::collections::HashMap<u128, String>,
    previous: std::collections::HashMap<u128, String>,
    /// When `current` was started, on the clock.
    since: u64,
}

impl RecentWrites {
    fn new(clock: crate::clock::Clock) -> Self {
        let since = clock.now_ms();
        Self {
            clock,
            inner: std::sync::Mutex::new(Recent {
                since,
                ..Recent::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        let mut recent = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.clock.now_ms();
        let window = RECENT_SET.as_millis() as u64;
        let age = now.saturating_sub(recent.since);
        if age >= window {
            recent.previous = if age >= 2 * window {
                std::collections::HashMap::new()
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

impl<V> bus::Subscriber for State<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// Another process invalidated these keys: drop them from L1.
    ///
    /// If this process wrote one of them to Redis lately, that write may have landed after the
    /// other process's delete (it may hold a value loaded before the change), so it is deleted
    /// again, between two drops from L1: a read that began before the first drop is voided by
    /// it, and one that read Redis before the second delete is voided by the second drop. A
    /// miss costs less than a stale value that stays until its ttl.
    fn drop_keys<'a>(&'static self, digests: &'a [u128], echo: bool) -> bus::BoxFuture<'a> {
        Box::pin(async move {
            let Backend::Tiered(tiered) = &self.backend else {
                return;
            };
            // Calls from now on start a read of their own rather than join one that may have
            // read the old value, and reads under way do not fill memory.
            for &digest in digests {
                self.void(digest).await;
                tiered.l1.remove(digest);
            }
            if echo {
                // The invalidation itself came before and was counted; this only drops what
                // may have been read in between.
                return;
            }
            let again = digests
                .iter()
                .filter_map(|&digest| Some((digest, tiered.recent.take(digest)?)))
                .collect();
            for digest in self.delete_again(tiered, again).await {
                // What a reader put in memory between the two deletes goes too.
                self.void(digest).await;
                tiered.l1.remove(digest);
            }
            // Counted once done, so that a reader of the counter knows the memory tier will
            // not be cleared again by this message.
            self.counters
                .remote_invalidations
                .fetch_add(digests.len() as u64, Ordering::Relaxed);
        })
    }

    /// Another process dropped every entry: drop the memory tier, and delete again what this
    /// process wrote to Redis lately (as [`bus::Subscriber::drop_keys`] does for one key).
    fn drop_all(&'static self) -> bus::BoxFuture<'static> {
        Box::pin(async move {
            let Backend::Tiered(tiered) = &self.backend else {
                return;
            };
            self.void_all().await;
            tiered.l1.clear();
            self.delete_again(tiered, tiered.recent.take_all()).await;
            self.void_all().await;
            tiered.l1.clear();
            // Counted once done, as `drop_keys` does.
            Counters::bump(&self.counters.remote_invalidations);
        })
    }

    fn clear(&self) {
        if let Backend::Tiered(tiered) = &self.backend {
            for flight in self.flights.iter() {
                flight.stale.store(true, Ordering::SeqCst);
            }
            self.flights.clear();
            tiered.l1.clear();
        }
    }
}

impl<V> Replay for State<V>
where
    V: Clone + Send + Sync + 'static,
{
    fn pending(&self) -> &Pending {
        &self.pending
    }

    /// Sends the kept clear, then the kept deletes, then the announcements of what they
    /// deleted: another process must not drop its memory copy before Redis lost the key.
    fn replay(&'static self) -> bus::BoxFuture<'static> {
        Box::pin(async move {
            let Some(shared) = self.shared() else {
                return;
            };
            if !shared.redis.available() {
                return;
            }
            let kept = self.pending.snapshot();
            if let Some(seq) = kept.clear {
                let cleared = shared
                    .redis
                    .delete_matching(&shared.pattern(), |key| shared.owns(key))
                    .await;
                if cleared.is_err() {
                    return;
                }
                self.pending.cleared(seq);
            }
            for chunk in kept.deletes.chunks(1000) {
                let names: Vec<String> = chunk.iter().map(|(_, name, _)| name.clone()).collect();
                if shared.redis.delete_many(&names).await.is_err() {
                    return;
                }
                self.pending.deleted(chunk);
            }
            if kept.announce_all.is_none() && kept.announce.is_empty() {
                return;
            }
            let (digests, what) = match kept.announce_all {
                Some(_) => (Vec::new(), Announce::All),
                None => (
                    kept.announce.iter().map(|(d, _)| *d).collect(),
                    Announce::Keys,
                ),
            };
            if self.publish(shared, &digests, what).await.is_ok() {
                self.pending.announced(&kept.announce, kept.announce_all);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Flight, Key, RecentWrites, RedisBackend, RECENT_SET};
    use crate::codec::{Codec, Format};
    use crate::config::Config;
    use crate::store::redis::Redis;

    fn backend(prefix: &str) -> RedisBackend<u64> {
        let config = Config::builder().prefix(prefix).build().unwrap();
        let redis: &'static Redis = Box::leak(Box::new(Redis::new(&config)));
        RedisBackend {
            redis,
            codec: Codec::new(Format::Json),
            ttl: None,
            digest_prefix: format!("{}:m::f:v1:", redis.prefix()),
            name_prefix: format!("{}:", redis.prefix()),
            template: None,
        }
    }

    #[tokio::test]
    async fn voiding_a_flight_waits_for_the_write_it_began() {
        let flight = Flight::<u64>::new();
        // A fill that passed its check and holds the gate while its `SET` is on its way.
        let write = flight.gate.lock().await;
        assert!(flight.current());
        let voiding = tokio::spawn({
            let flight = flight.clone();
            async move { flight.void().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!flight.current(), "marked stale at once: later checks fail");
        assert!(
            !voiding.is_finished(),
            "the invalidation's delete must wait for the write under way"
        );
        drop(write);
        voiding.await.unwrap();
        // A fill that takes the gate after the void sees the mark.
        let _gate = flight.gate.lock().await;
        assert!(!flight.current());
    }

    #[test]
    fn recent_writes_are_kept_one_to_two_windows_and_no_longer() {
        let (clock, hand) = crate::clock::Clock::manual();
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

    #[test]
    fn the_key_on_the_stack_is_the_key_on_the_heap() {
        let short = backend("app");
        let long = backend(&"p".repeat(100));
        for digest in [0, 7, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
            let key = Key { digest, name: None };
            let (buf, len) = short.digest_key_on_stack(&key).unwrap();
            assert_eq!(&buf[..len], short.redis_key(&key).as_bytes());
            assert_eq!(
                long.digest_key_on_stack(&key),
                None,
                "too long: on the heap"
            );
        }
        let named = Key {
            digest: 1,
            name: Some("user:42".into()),
        };
        assert_eq!(short.digest_key_on_stack(&named), None);
        assert_eq!(short.redis_key(&named), "app:user:42");
    }
}
