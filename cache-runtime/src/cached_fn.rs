//! [`CachedFn`]: the static that `#[cached]` puts behind each function, and the entry points
//! its generated code calls. The miss path is in `load`, single-flight in `flight`, the stores
//! behind `store::Store`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::FutureExt;

use crate::blocking::block_on;
use crate::codec::Codec;
use crate::config::Config;
use crate::context::Context;
use crate::key::KeyError;
use crate::load::MemoryMiss;
use crate::outcome::{Always, Outcome, Policy};
use crate::stats::{self, Counters, Stats};
use crate::store::Store;

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

#[cfg(test)]
impl Spec {
    /// A function on the memory store with every option at its default, for unit tests.
    pub(crate) const fn memory_for_tests(module: &'static str, function: &'static str) -> Self {
        Self {
            module,
            function,
            name: None,
            version: 1,
            ttl: None,
            capacity: None,
            store: StoreKind::Memory,
            key_template: None,
            l1_ttl: None,
        }
    }
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

/// The key of one call: the digest of its key arguments, or the name a key template gave it.
/// Two keys are equal when their digests and names are.
#[derive(Clone, Debug)]
pub struct Key {
    pub(crate) digest: u128,
    name: Option<String>,
    /// On Redis: how many fills of the key's bucket had ended before the call's lookup
    /// (`RedisFn::fills_ended`), so that its leader knows whether to look again.
    pub(crate) fills_seen: u32,
}

impl Key {
    /// The 128-bit digest that identifies the call in this process.
    #[inline]
    pub fn digest(&self) -> u128 {
        self.digest
    }

    /// The name from a `key = "…"` template, without the prefix.
    #[inline]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The key of a call whose function has no template, from its digest.
    #[inline]
    pub(crate) fn from_digest(digest: u128) -> Self {
        Self {
            digest,
            name: None,
            fills_seen: 0,
        }
    }

    /// The key of a call whose function has a template, from the rendered name.
    pub(crate) fn from_name(name: String) -> Self {
        Self {
            digest: xxhash_rust::xxh3::xxh3_128(name.as_bytes()),
            name: Some(name),
            fills_seen: 0,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        // `fills_seen` is what one call saw, not part of the key.
        self.digest == other.digest && self.name == other.name
    }
}

impl Eq for Key {}

/// A key computed from a call's arguments, or why it could not be.
pub type CallKey = Result<Key, KeyError>;

/// One cached function: its spec, its store, its in-flight loads and its counters.
///
/// Built in a `static` by the macro, so it is `const`-constructed and set up on first use.
pub struct CachedFn<V> {
    spec: Spec,
    codec: Option<Codec<V>>,
    policy: Policy<V>,
    owner: OnceLock<&'static str>,
    state: OnceLock<State<V>>,
}

/// A function's context and store, set up on its first call.
pub(crate) struct State<V> {
    pub(crate) ctx: Context<V>,
    pub(crate) store: Store<V>,
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
            policy: Policy::new(spec.ttl),
            owner: OnceLock::new(),
            state: OnceLock::new(),
        }
    }

    /// A cached function on a store that keeps bytes, written and read with `codec`.
    pub const fn with_codec(spec: Spec, codec: Codec<V>) -> Self {
        Self {
            spec,
            codec: Some(codec),
            policy: Policy::new(spec.ttl),
            owner: OnceLock::new(),
            state: OnceLock::new(),
        }
    }

    /// `ttl_from = f`: each value's ttl is `f(value)`, or the function's `ttl` where that is
    /// `None`. A zero ttl keeps the value out of the cache.
    pub const fn ttl_from(mut self, f: fn(&V) -> Option<Duration>) -> Self {
        self.policy = self.policy.ttl_from(f);
        self
    }

    /// `unless = f`: a value for which `f(value)` is `true` is returned but not stored.
    pub const fn unless(mut self, f: fn(&V) -> bool) -> Self {
        self.policy = self.policy.unless(f);
        self
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
        &self.state().ctx.namespace
    }

    /// The key of a call, from the digest of its key arguments ([`crate::KeyBuilder`]).
    #[inline]
    pub fn digest_key(&self, digest: Result<u128, KeyError>) -> CallKey {
        digest.map(Key::from_digest)
    }

    /// The key of a call whose function has a `key = "…"` template, from the rendered name.
    pub fn named_key(&self, name: Result<String, KeyError>) -> CallKey {
        name.map(Key::from_name)
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
        // The memory store's hit inline; any other store's memory a call away.
        let value = match state.store.memory() {
            Some(memory) => memory.get(key.digest)?,
            None => state.store.get_local(&state.ctx, key)?,
        };
        state.ctx.hit(key);
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
        // The memory store's miss path is the load alone.
        if let Some(memory) = state.store.memory() {
            let Some(key) = state.ctx.usable(key, "calling uncached") else {
                return load().await;
            };
            if let Some(value) = state.pending(&key) {
                return O::from_cached(value);
            }
            return match state.miss_memory(memory, key, load) {
                MemoryMiss::Found(value) => O::from_cached(value),
                MemoryMiss::Lead(lead) => lead.await,
                MemoryMiss::Wait(wait) => wait.await,
            };
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
        let Some(mut key) = state.ctx.usable(key, "calling uncached") else {
            return load().await;
        };
        if let Some(value) = state.pending(&key) {
            return O::from_cached(value);
        }
        key.fills_seen = state.store.fills_ended(&key);
        if let Some(value) = state.store.get_shared(&state.ctx, &key).await {
            state.ctx.hit(&key);
            return O::from_cached(value);
        }
        state.miss(key, load).await
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

    /// The rest of a call of a cached sync function (memory store only), after
    /// [`CachedFn::lookup`] found nothing: `load()` run once per key in this process, the other
    /// callers of the key blocking until it is done, storing what [`Outcome::cacheable`] picks
    /// out. A function with a store that keeps bytes runs `load` uncached: the macro refuses
    /// such a sync function, so this is never reached.
    pub fn get_or_load_blocking<O, F>(&'static self, key: CallKey, load: F) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> O,
    {
        let state = self.state();
        let Some(key) = state.ctx.usable(key, "calling uncached") else {
            return load();
        };
        if self.codec.is_some() {
            return load();
        }
        if let Some(value) = state.pending(&key) {
            return O::from_cached(value);
        }
        state.miss_blocking(key, load)
    }

    /// [`CachedFn::get_or_load_blocking`] for any other return type: every result is stored.
    pub fn get_or_load_blocking_always<F>(&'static self, key: CallKey, load: F) -> V
    where
        F: FnOnce() -> V,
    {
        self.get_or_load_blocking(key, move || Always(load())).0
    }

    /// [`CachedFn::invalidate`] for a cached sync function, blocking: on the memory store an
    /// invalidation needs no runtime (see [`crate::blocking`]).
    pub fn invalidate_blocking(&'static self, key: CallKey) {
        block_on(self.invalidate(key));
    }

    /// [`CachedFn::clear`] for a cached sync function, blocking.
    pub fn clear_blocking(&'static self) {
        block_on(self.clear());
    }

    /// Drops the entry under `key`; a load of it already under way will not store its value.
    pub async fn invalidate(&'static self, key: CallKey) {
        self.invalidate_ref(&key).await;
    }

    pub(crate) async fn invalidate_ref(&'static self, key: &CallKey) {
        let state = self.state();
        let Some(key) = state.ctx.usable(key.as_ref(), "nothing to invalidate") else {
            return;
        };
        state.store.invalidate(&state.ctx, key).await;
    }

    /// Stores `value` as the entry under `key` (write-through), replacing what was there; a
    /// load of it already under way will not store its own value over it. A value that cannot
    /// be stored (over the size cap, not encodable, Redis unavailable), or that the function's
    /// options keep out (`unless`, a zero ttl from `ttl_from`), drops the entry instead.
    pub async fn put(&'static self, key: &CallKey, value: &V) {
        let state = self.state();
        let Some(key) = state.ctx.usable(key.as_ref(), "nothing stored") else {
            return;
        };
        // The policy, and the value's clone or encoding, are a user's code: if one panics, the
        // entry, now older than the write that called this, is dropped before the panic goes on.
        let put = AssertUnwindSafe(async {
            match state.ctx.policy.admit(value) {
                Some(ttl) => state.store.put(&state.ctx, key, value, ttl).await,
                None => {
                    Counters::bump(&state.ctx.counters.declined);
                    state.store.invalidate(&state.ctx, key).await;
                }
            }
        });
        if let Err(panic) = put.catch_unwind().await {
            state.store.invalidate(&state.ctx, key).await;
            std::panic::resume_unwind(panic);
        }
    }

    /// Drops every entry of this function; loads under way will not store their values.
    pub async fn clear(&'static self) {
        let state = self.state();
        state.store.clear(&state.ctx).await;
    }

    /// Whether this function's entries live in a store other processes read.
    pub(crate) fn is_shared(&self) -> bool {
        self.codec.is_some()
    }

    /// The values of write-behind writes of this function still pending.
    pub(crate) fn overlay(&'static self) -> &'static crate::behind::Overlay<V> {
        &self.state().ctx.overlay
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
            let config = Config::global();
            let capacity = self.spec.capacity.unwrap_or(config.memory_capacity());
            let clock = config.clock().clone();
            let store = Store::new(&self.spec, self.codec, &namespace, capacity, clock);
            State {
                ctx: Context::new(namespace, self.policy),
                store,
            }
        });
        if fresh {
            stats::register(state);
            state.store.start(&state.ctx);
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

impl<V> State<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// The value of a write-behind write of `key` still pending, counted as a hit: newer than
    /// anything a store holds, and kept even where the stores lost the entry.
    #[inline]
    fn pending(&self, key: &Key) -> Option<V> {
        let value = self.ctx.overlay.get(key.digest)?;
        self.ctx.hit(key);
        Some(value)
    }
}

impl<V> stats::Source for State<V>
where
    V: Clone + Send + Sync + 'static,
{
    fn namespace(&self) -> &str {
        &self.ctx.namespace
    }

    #[cfg(feature = "metrics")]
    fn store(&self) -> &'static str {
        self.store.name()
    }

    fn stats(&self) -> Stats {
        let c = &self.ctx.counters;
        let (evictions, expirations, entries) = self.store.counts();
        Stats {
            hits: c.hits.read(),
            misses: c.misses.read(),
            loads: c.loads.read(),
            load_errors: Counters::read(&c.load_errors),
            evictions,
            expirations,
            key_errors: Counters::read(&c.key_errors),
            entries,
            store_errors: Counters::read(&c.store_errors),
            decode_errors: Counters::read(&c.decode_errors),
            encode_errors: Counters::read(&c.encode_errors),
            pending_invalidations: self.store.pending_invalidations(),
            oversize: Counters::read(&c.oversize),
            l1_hits: c.l1_hits.read(),
            remote_invalidations: Counters::read(&c.remote_invalidations),
            declined: Counters::read(&c.declined),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{CachedFn, Key, Spec};

    /// A value whose clone panics once its switch is on (the clone puts it off).
    #[derive(Debug)]
    struct Brittle(u64);
    static BRITTLE: AtomicBool = AtomicBool::new(false);

    impl Clone for Brittle {
        fn clone(&self) -> Self {
            if BRITTLE.swap(false, Ordering::SeqCst) {
                panic!("a value's clone panicked");
            }
            Self(self.0)
        }
    }

    static PUT: CachedFn<Brittle> = CachedFn::new(Spec::memory_for_tests("cached_fn", "put"));

    #[tokio::test]
    async fn a_put_whose_value_panics_in_its_clone_leaves_no_older_value_behind() {
        let key = PUT.digest_key(Ok(1));
        PUT.put(&key, &Brittle(1)).await;
        assert_eq!(PUT.lookup(&key).map(|value| value.0), Some(1));
        BRITTLE.store(true, Ordering::SeqCst);
        let put = tokio::spawn(async { PUT.put(&PUT.digest_key(Ok(1)), &Brittle(2)).await });
        assert!(
            put.await.is_err(),
            "the put's clone ran, and its panic went on"
        );
        assert!(
            PUT.lookup(&key).is_none(),
            "the value older than the write is still cached"
        );
    }

    #[test]
    fn keys_are_equal_whatever_their_calls_saw_of_fills() {
        let mut seen = Key::from_digest(7);
        seen.fills_seen = 3;
        assert_eq!(seen, Key::from_digest(7));
        assert_ne!(Key::from_digest(7), Key::from_digest(8));
        assert_eq!(Key::from_name("a".into()), Key::from_name("a".into()));
        assert_ne!(Key::from_name("a".into()), Key::from_name("b".into()));
    }
}
