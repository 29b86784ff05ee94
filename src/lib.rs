#![doc = include_str!("../README.md")]

/// Caches an async function's results: look up, on a miss run the body once, store the result.
///
/// ```
/// use cachette::cached;
///
/// #[derive(Debug)]
/// struct DbError;
///
/// #[cached(ttl = "5m")]
/// async fn price(sku: &str, qty: u32) -> Result<u64, DbError> {
///     Ok(sku.len() as u64 * u64::from(qty)) // a slow query, in real life
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(price("tea", 2).await.unwrap(), 6); // runs the body
/// assert_eq!(price("tea", 2).await.unwrap(), 6); // a hit
/// assert_eq!(price_stats().hits, 1);
/// # }
/// ```
///
/// # What is cached
///
/// - `Result<T, E>` caches `Ok` only; `Option<T>` caches `Some` only (unless
///   `cache_none = true`); any other return type is cached as is. `io::Result<T>`,
///   `anyhow::Result<T>` and other aliases count as `Result` (by the last path segment).
/// - The stored value (`T`) must be `Clone + Send + Sync + 'static`; with `store = "redis"` or
///   `"tiered"` also `Serialize + DeserializeOwned`. `E` need not be `Clone`.
/// - Concurrent misses on one key in one process run the body once; the other callers await
///   its result. A body that fails, panics or is cancelled leaves the key free for the next call.
///
/// # The key
///
/// Every argument except `self` and those in `skip(...)` is part of the key, and must implement
/// `serde::Serialize`. The key is a 128-bit digest of their serde output, the same in every
/// process and on every machine; maps and `HashSet`s hash the same in any iteration order.
///
/// ```compile_fail
/// # use cachette::cached;
/// struct NotSerialize;
///
/// #[cached]
/// async fn f(x: NotSerialize) -> u32 { 1 } // error: `NotSerialize: Serialize` is not satisfied
/// ```
///
/// # Options
///
/// ## `ttl = 300`, `ttl = "5m"`
/// How long an entry lives: seconds, or a duration of `ms`, `s`, `m`, `h`, `d` parts
/// (`"250ms"`, `"1h30m"`). Without one, memory entries live until evicted. Required with
/// `store = "redis"` and `"tiered"`.
///
/// ```compile_fail
/// # use cachette::cached;
/// #[cached(ttl = 0)] // error: `ttl` must be more than zero
/// async fn f(x: u32) -> u32 { x }
/// ```
///
/// ## `skip(a, b)`
/// Leaves parameters out of the key (a database handle, a logger). Calls that differ only in
/// them share an entry.
///
/// ```
/// # use cachette::cached;
/// struct Db;
///
/// #[cached(ttl = 60, skip(db))]
/// async fn user_name(db: &Db, id: u64) -> String {
///     format!("user {id}")
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(user_name(&Db, 1).await, "user 1");
/// # }
/// ```
///
/// ```compile_fail
/// # use cachette::cached;
/// #[cached(skip(db))] // error: this function has no parameter `db`
/// async fn f(id: u64) -> u64 { id }
/// ```
///
/// ## `name = "users::get"`, `version = 2`
/// The namespace of the function's entries (default: module path and function name, or the
/// type and method name), and a version to bump when the value's shape changes. Give a `name`
/// when several binaries share a Redis.
///
/// ## `capacity = 10_000`
/// The most entries the memory store (or the tiered store's memory tier) keeps; the default
/// is [`Config::memory_capacity`]. Hot entries are kept; rarely used ones are evicted first.
///
/// ## `cache_none = true`
/// Also caches `None` (for "not found" answers that are expensive to compute).
///
/// ## `store = "memory" | "redis" | "tiered"`
/// - `"memory"` (the default): this process, typed values, nothing serialized.
/// - `"redis"`: Redis or Redis Cluster, shared by every process (see [`Config`]).
/// - `"tiered"`: a memory tier in front of Redis; Redis pub/sub keeps every process's memory
///   tier in step. `l1_ttl = "30s"` sets the memory tier's ttl (default: the smaller of `ttl`
///   and a minute).
///
/// `"redis"` and `"tiered"` need the `redis` Cargo feature (on by default): without it, they
/// are a compile error at the option, naming the feature.
///
/// A store failure never fails a call: the body runs uncached, and the failure is counted and
/// logged.
///
/// ```compile_fail
/// # use cachette::cached;
/// #[cached(store = "redis")] // error: `store = "redis"` needs a `ttl`
/// async fn f(id: u64) -> u64 { id }
/// ```
///
/// ## `format = "json" | "bincode"`
/// How values are written to Redis: plain JSON text (the default, readable from any language)
/// or bincode behind a short header (the `bincode` Cargo feature, on by default). Bytes that do
/// not decode are a miss, then overwritten.
///
/// ## `key = "user:{id}"`
/// A readable Redis key, exactly `{prefix}:user:42`, that other services can find. Each
/// `{name}` is a parameter, every key parameter appears, and two parameters are separated by a
/// character such as `:`. Values are escaped, so no argument can forge another key.
///
/// ```no_run
/// # use cachette::cached;
/// #[cached(ttl = "10m", store = "redis", key = "user:{id}")]
/// async fn user_json(id: u64) -> Option<String> {
///     Some(format!("user {id}"))
/// }
/// ```
///
/// ```compile_fail
/// # use cachette::cached;
/// #[cached(ttl = 60, store = "redis", key = "user:{id}")] // error: `page` is missing from `key`
/// async fn page(id: u64, page: u32) -> String { String::new() }
/// ```
///
/// ## `ttl_from = path`
/// Names a `fn(&V) -> Option<Duration>` (`V` is the stored value: `T` of `Result<T, E>` or
/// `Option<T>`, the whole `Option` with `cache_none = true`) that gives each value its own
/// ttl: a token's own expiry, a negative answer kept shorter. `None` leaves the value the
/// attribute's `ttl`; a zero ttl keeps it out of the cache (counted in
/// [`Stats::declined`]). Every store applies it: the memory store's entry, Redis's
/// `SET … PX`, and the tiered store's memory tier, which keeps a value no longer than
/// `l1_ttl`. Name a free function or a `Type::function` (not `Self::…`).
///
/// ```
/// use std::time::Duration;
/// use cachette::cached;
///
/// /// Misses are remembered for 5 s, answers for the attribute's 10 minutes.
/// fn shorter_when_missing(found: &Option<String>) -> Option<Duration> {
///     found.is_none().then_some(Duration::from_secs(5))
/// }
///
/// #[cached(ttl = "10m", cache_none = true, ttl_from = shorter_when_missing)]
/// async fn find(id: u64) -> Option<String> {
///     (id < 10).then(|| format!("user {id}"))
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(find(99).await, None);
/// # }
/// ```
///
/// A function of another type is rustc's type error at your path:
///
/// ```compile_fail
/// # use std::time::Duration;
/// # use cachette::cached;
/// fn ttl(found: &String) -> Duration { Duration::from_secs(5) } // not an Option<Duration>
///
/// #[cached(ttl = 60, ttl_from = ttl)] // error: expected fn pointer, found fn item
/// async fn find(id: u64) -> Option<String> { None }
/// ```
///
/// ## `unless = path`
/// Names a `fn(&V) -> bool`: a value it returns `true` for is returned to the caller (and to
/// the callers waiting on the same key's load) but not stored, so the next call loads again.
/// Each such value is counted in [`Stats::declined`]. A `#[cache_put]` of such a value drops
/// the entry instead.
///
/// ```
/// use cachette::cached;
///
/// fn is_partial(page: &Vec<u64>) -> bool {
///     page.len() < 100
/// }
///
/// #[cached(ttl = "1m", unless = is_partial)]
/// async fn page(n: u64) -> Vec<u64> {
///     (0..n).collect() // an upstream still filling the page, in real life
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// page(3).await;
/// page(3).await;
/// assert_eq!(page_stats().loads, 2); // a partial page is not kept
/// assert_eq!(page_stats().declined, 2);
/// # }
/// ```
///
/// ```compile_fail
/// # use cachette::cached;
/// #[cached(unless = "partial")] // error: `unless` names a function
/// async fn page(n: u64) -> Vec<u64> { Vec::new() }
/// ```
///
/// # Companions
///
/// Beside `f`, the attribute defines, with `f`'s visibility:
///
/// - `f_uncached(args…)`: runs the body itself, bypassing the cache;
/// - `f_invalidate(key args…)`: drops the entry for these key arguments (every tier, every
///   process for `"tiered"`);
/// - `f_clear()`: drops every entry of `f`;
/// - `f_stats()`: the function's [`Stats`].
///
/// In an `impl` block they are associated functions: `Self::f_invalidate(id)`.
///
/// # Where it works
///
/// Free functions of any visibility, and methods taking `&self`, `&mut self` or
/// `self: Arc<Self>` in inherent `impl` blocks. Associated functions without `self`, and the
/// methods of trait impls (`async fn` in traits), need the block marked [`cached_impl`]. A
/// generic function works when its type parameters appear only in skipped arguments.
///
/// # Sync functions
///
/// A sync `fn` is cached on the memory store, with the same single-flight: the callers of a key
/// being loaded block (their thread parks) until the load ends, and a load that fails or
/// panics releases them, each to run its own body. Inside a tokio runtime or not; a caller on
/// a runtime thread holds that thread while it waits, as any blocking call does. Its
/// `f_invalidate` and `f_clear` are sync too; write paths naming it are `async fn`s as usual.
///
/// ```
/// use cachette::cached;
///
/// #[cached(ttl = "5m")]
/// fn parse_config(text: &str) -> Result<Vec<String>, String> {
///     Ok(text.split(',').map(str::to_owned).collect()) // slow parsing, in real life
/// }
///
/// assert_eq!(parse_config("a,b").unwrap().len(), 2);
/// assert_eq!(parse_config("a,b").unwrap().len(), 2);
/// assert_eq!(parse_config_stats().hits, 1);
/// parse_config_invalidate("a,b"); // no `.await`
/// ```
///
/// Redis is reached through an async client, so the shared stores need an `async fn`:
///
/// ```compile_fail
/// # use cachette::cached;
/// #[cached(ttl = 60, store = "redis")] // error: write `async fn` to use `store = "redis"`
/// fn parse(text: &str) -> usize { text.len() }
/// ```
pub use cache_macros::cached;

/// Lets `#[cached]` work on the functions of an `impl` block it marks: associated functions
/// without `self`, and the methods of a trait impl.
///
/// `#[cached]` alone cannot see the block around a function. On a free function its
/// companions are free functions; on a method (it has `self`) they are associated functions.
/// An associated function without `self`, and any function of a trait impl (which may hold
/// only the trait's items), need the block marked:
///
/// - in an inherent impl, the companions are associated functions beside the function:
///   `Repo::find_invalidate(id)`, `Self::find_stats()`;
/// - in a trait impl, the function stays in the trait impl and its companions go to an
///   inherent impl of the type, `pub(crate)`: `PgStore::get_stats()`. Two cached trait
///   methods of one type therefore need different names.
///
/// Write paths name the function through its type: `Repo::find(id)` or `Self::find(id)`,
/// and for a trait method `PgStore::get(self, id)`, `Self::get(self, id)` or
/// `<PgStore as UserStore>::get(self, id)`. Functions of the block without `#[cached]` are
/// left as written. Traits with `async fn` need Rust 1.75 (the crate needs 1.80).
///
/// ```
/// use cachette::{cached, cached_impl, invalidates};
///
/// trait UserStore {
///     async fn name(&self, id: u64) -> Option<String>;
/// }
///
/// struct PgStore;
///
/// #[cached_impl]
/// impl UserStore for PgStore {
///     #[cached(ttl = "5m")]
///     async fn name(&self, id: u64) -> Option<String> {
///         Some(format!("user {id}")) // a query, in real life
///     }
/// }
///
/// struct Repo;
///
/// #[cached_impl]
/// impl Repo {
///     #[cached(ttl = "5m")]
///     async fn find(id: u64) -> Option<String> {
///         Some(format!("row {id}"))
///     }
/// }
///
/// #[invalidates(PgStore::name(store, id), Repo::find(id))]
/// async fn rename(store: &PgStore, id: u64) -> Result<(), String> {
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = PgStore;
/// assert_eq!(store.name(1).await.as_deref(), Some("user 1"));
/// assert_eq!(store.name(1).await.as_deref(), Some("user 1"));
/// assert_eq!(PgStore::name_stats().hits, 1);
/// assert_eq!(Repo::find(2).await.as_deref(), Some("row 2"));
/// rename(&store, 1).await.unwrap();
/// # }
/// ```
///
/// Without the mark, a trait impl refuses the companions:
///
/// ```compile_fail
/// # use cachette::cached;
/// trait UserStore {
///     async fn name(&self, id: u64) -> Option<String>;
/// }
/// struct PgStore;
///
/// impl UserStore for PgStore {
///     #[cached] // error: method `name_uncached` is not a member of trait `UserStore`
///     async fn name(&self, id: u64) -> Option<String> { None }
/// }
/// ```
pub use cache_macros::cached_impl;

/// Drops cached entries when a write path succeeds.
///
/// Each target is written as the cached call that went stale, with all its arguments (skipped
/// ones included): rustc checks them against the cached function's parameters. The keys are
/// computed from the arguments *before* the body runs (the body may move them); after the body,
/// if it returned `Ok` (for a `Result`) or always (for other return types), the entries are
/// dropped from every tier. `all(f)` drops every entry of `f`. `before = true` also drops them
/// before the body runs. Store failures are counted and logged, never returned.
///
/// ```
/// use cachette::{cached, invalidates};
/// use std::sync::Mutex;
///
/// struct Db(Mutex<Vec<String>>);
///
/// #[cached(skip(db))]
/// async fn name(db: &Db, id: usize) -> Option<String> {
///     db.0.lock().unwrap().get(id).cloned()
/// }
///
/// #[invalidates(name(db, id))]
/// async fn rename(db: &Db, id: usize, new: String) -> Result<(), String> {
///     let mut names = db.0.lock().unwrap();
///     *names.get_mut(id).ok_or("no such id")? = new; // `new` moved: the key was made before
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let db = Db(Mutex::new(vec!["ada".into()]));
/// assert_eq!(name(&db, 0).await.as_deref(), Some("ada"));
/// rename(&db, 0, "grace".into()).await.unwrap();
/// assert_eq!(name(&db, 0).await.as_deref(), Some("grace"));
/// # }
/// ```
///
/// ```compile_fail
/// # use cachette::{cached, invalidates};
/// #[cached]
/// async fn name(id: u64) -> String { String::new() }
///
/// #[invalidates(name(id, 2))] // error: this function takes 1 argument but 2 were supplied
/// async fn rename(id: u64) {}
/// ```
pub use cache_macros::invalidates;

/// Stores a write path's returned value as a cached entry (write-through).
///
/// On a function returning `Result<T, E>` (on `Ok`) or anything else (always), the returned
/// value replaces the entry of the named call in every tier, and other processes' memory
/// tiers drop their copy. The value is the cached function's stored value `V`, or an
/// `Option<V>` whose `None` drops the entry: so a target returning `Option<User>` is written
/// through by a mutator returning `Result<Option<User>, E>` (or `Option<User>`) in its own
/// shape, `Some` stored and `None` (the user is gone) dropped. With `cache_none = true` the
/// stored value is the whole `Option`, and a `None` is stored as the answer. A value the
/// target's `unless` declines (or `ttl_from` gives a zero ttl) drops the entry.
///
/// ```
/// use cachette::{cache_put, cached};
///
/// #[cached]
/// async fn email(id: u64) -> String {
///     format!("user{id}@example.com")
/// }
///
/// #[cache_put(email(id))]
/// async fn set_email(id: u64, new: &str) -> Result<String, std::io::Error> {
///     Ok(new.to_owned()) // written to the database, in real life
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// set_email(7, "ada@example.com").await.unwrap();
/// assert_eq!(email(7).await, "ada@example.com");
/// # }
/// ```
///
/// A target returning `Option<T>`, written through in its own shape:
///
/// ```
/// use cachette::{cache_put, cached};
///
/// #[cached]
/// async fn nickname(id: u64) -> Option<String> {
///     None // a lookup, in real life
/// }
///
/// #[cache_put(nickname(id))]
/// async fn set_nickname(id: u64, nick: Option<&str>) -> Result<Option<String>, String> {
///     Ok(nick.map(str::to_owned)) // `None`: the nickname was removed
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// set_nickname(1, Some("ada")).await.unwrap();
/// assert_eq!(nickname(1).await.as_deref(), Some("ada"));
/// set_nickname(1, None).await.unwrap(); // drops the entry
/// assert_eq!(nickname_stats().entries, 0);
/// # }
/// ```
///
/// ```compile_fail
/// # use cachette::{cache_put, cached};
/// #[cached]
/// async fn nickname(id: u64) -> Option<String> { None }
///
/// #[cache_put(nickname(id))] // error: the entry is a `String`
/// async fn set_nickname(id: u64) -> Result<u64, String> { Ok(id) }
/// ```
pub use cache_macros::cache_put;

/// Stores a value in the cache now and writes the database later (write-behind).
///
/// `#[write_behind(f(args), value = p)]` on an `async fn` whose body writes the database:
/// a call waits for room in the function's queue, stores `p`'s value as the entry of the named
/// call `f(args)` in every tier (every process, for `"tiered"`, as `#[cache_put]` does), queues
/// the body with its arguments, and returns `Ok(())` (or `()`) at once. The body runs later on
/// a task of cachette's:
///
/// - **in order per key**: two writes of one entry never run at once nor out of call order;
/// - **coalesced**: a write still waiting is replaced by a newer one of its key, so the
///   database gets the newest value and fewer writes (`coalesce = false` runs every write);
/// - **retried**: an `Err` (or a panic) runs the body again, `retries` times, with exponential
///   backoff from 50 ms, capped at 5 s; a write that fails every attempt drops the entry
///   everywhere, unless a newer write of the key is pending, and goes to the handler set with
///   [`on_write_failure`] (by default, logged at `error`);
/// - **read your writes**: until the body has run, a call of `f(args)` in this process returns
///   the pending value, even if the entry was evicted, expired or invalidated, or Redis is down.
///
/// The target is written and checked by rustc as an [`invalidates`] target; `value` names a
/// parameter whose type is the cached function's value type. The body runs after the call has
/// returned, so every argument is owned and `Clone + Send + 'static` (`Arc<Db>`, not `&Db`),
/// and cloned for each run. It returns `Result<(), E>` (with `E: Debug`, the text the failure
/// handler gets) or `()`. Bodies run on a thread of cachette's with a tokio runtime of its own
/// (keep them async: one that blocks holds up the others), so a write outlives the runtime of
/// the call that made it.
///
/// Call [`flush`] on a graceful shutdown: it runs every queued write now and returns when all
/// those accepted before it have ended. Writes still queued when a process crashes are lost (see the README).
///
/// ```
/// use cachette::{cached, write_behind};
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Default)]
/// struct Db(Mutex<HashMap<u64, u64>>);
///
/// fn db() -> &'static Db {
///     static DB: std::sync::OnceLock<Db> = std::sync::OnceLock::new();
///     DB.get_or_init(Db::default)
/// }
///
/// #[cached(ttl = "10m")]
/// async fn balance(account: u64) -> Option<u64> {
///     db().0.lock().unwrap().get(&account).copied()
/// }
///
/// #[write_behind(balance(account), value = amount)]
/// async fn set_balance(account: u64, amount: u64) -> Result<(), String> {
///     db().0.lock().unwrap().insert(account, amount); // a slow UPDATE, in real life
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// set_balance(7, 100).await.unwrap(); // returns once queued
/// assert_eq!(balance(7).await, Some(100)); // from the cache, before the database has it
/// cachette::flush().await; // every queued write has run
/// assert_eq!(db().0.lock().unwrap().get(&7), Some(&100));
/// assert_eq!(set_balance_stats().written, 1);
/// # }
/// ```
///
/// # Options
///
/// - `capacity = 10_000`: the most writes accepted and not yet ended; a call waits for room
///   beyond it (it never drops a write, and memory stays bounded).
/// - `delay = "50ms"`: how long a write waits before it runs, so a newer write of its key can
///   replace it (default: none; writes queued behind a running one of their key are coalesced
///   anyway).
/// - `retries = 3`: how many times a failed write runs again.
/// - `coalesce = false`: run every write, not only the newest of each key.
///
/// Beside `f`, the attribute defines `f_stats()`, the queue's [`WriteBehindStats`]. It works
/// on free functions.
///
/// ```compile_fail
/// # use cachette::{cached, write_behind};
/// # struct Db;
/// #[cached]
/// async fn balance(account: u64) -> u64 { 0 }
///
/// #[write_behind(balance(account), value = amount)]
/// async fn set_balance(db: &Db, account: u64, amount: u64) {} // error: `db` must be owned
/// ```
pub use cache_macros::write_behind;

pub use cache_runtime::{
    flush, flush_within, on_write_failure, stats, Clock, Config, ConfigBuilder, ConfigError,
    ConfigErrorKind, ManualClock, Stats, WriteBehindStats, WriteFailure,
};

/// What generated code needs. Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use cache_runtime::{
        settle, CachedFn, CallKey, Codec, Format, KeyBuilder, KeyName, Outcome, PutValue, Spec,
        StoreKind, Target,
    };
    pub use cache_runtime::{
        BehindArg, BehindSpec, BodyResult, WriteBehind, DEFAULT_CAPACITY, DEFAULT_RETRIES,
    };
    pub use cache_runtime::{BincodeFeature, Features, RedisFeature};
    pub use cache_runtime::{Checked, KeyArg, ValueClone, ValueSend, ValueSerde};
}
