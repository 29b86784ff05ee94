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
/// `self: Arc<Self>` in inherent `impl` blocks. A generic function works when its type
/// parameters appear only in skipped arguments.
pub use cache_macros::cached;

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
/// On a function returning `Result<T, E>` (stores `Ok`), `Option<T>` (stores `Some`) or `T`,
/// the value replaces the entry of the named call in every tier, and other processes' memory
/// tiers drop their copy. The value's type must be the cached function's.
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
pub use cache_macros::cache_put;

pub use cache_runtime::{
    stats, Clock, Config, ConfigBuilder, ConfigError, ConfigErrorKind, ManualClock, Stats,
};

/// What generated code needs. Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use cache_runtime::{
        settle, CachedFn, CallKey, Codec, Format, KeyBuilder, KeyName, Outcome, Spec, StoreKind,
        Target,
    };
    pub use cache_runtime::{BincodeFeature, Features, RedisFeature};
    pub use cache_runtime::{Checked, KeyArg, ValueClone, ValueSend, ValueSerde};
}
