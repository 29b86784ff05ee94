//! Per-function counters, and the registry that lists every cached function used so far.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A snapshot of one cached function's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls that found nothing cached (they ran the body or awaited another call's run).
    pub misses: u64,
    /// Runs of the body on a miss.
    pub loads: u64,
    /// Runs of the body that produced nothing to store (`Err`, `None`), panicked or were cancelled.
    pub load_errors: u64,
    /// Live entries dropped to make room.
    pub evictions: u64,
    /// Expired entries reclaimed.
    pub expirations: u64,
    /// Calls whose arguments could not be hashed (their `Serialize` failed); the body ran uncached.
    pub key_errors: u64,
    /// Entries held now (memory store only).
    pub entries: u64,
    /// Store commands that failed or timed out, or were skipped while the store was unavailable.
    pub store_errors: u64,
    /// Stored bytes that did not decode (another format, an older shape, corruption): misses,
    /// overwritten by the fresh value. Values that could not be encoded count here too.
    pub decode_errors: u64,
    /// Values not stored because they were larger than the size cap.
    pub oversize: u64,
    /// Hits served by the memory tier of a tiered store (counted in `hits` too).
    pub l1_hits: u64,
    /// Keys dropped from the memory tier because another process invalidated them.
    pub remote_invalidations: u64,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0 before any call.
    pub fn hit_ratio(&self) -> f64 {
        let calls = self.hits + self.misses;
        if calls == 0 {
            0.0
        } else {
            self.hits as f64 / calls as f64
        }
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) key_errors: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) oversize: AtomicU64,
    pub(crate) l1_hits: AtomicU64,
    pub(crate) remote_invalidations: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Something that reports [`Stats`] under a name: one per cached function.
pub(crate) trait Source: Sync {
    fn namespace(&self) -> &str;
    fn stats(&self) -> Stats;
}

static REGISTRY: Mutex<Vec<&'static dyn Source>> = Mutex::new(Vec::new());

pub(crate) fn register(source: &'static dyn Source) {
    REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(source);
}

/// The counters of every cached function called so far in this process, by namespace
/// (`module::path::fn_name`, or the `name = "…"` given to `#[cached]`), sorted by namespace.
pub fn all() -> Vec<(String, Stats)> {
    let sources = REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut all: Vec<_> = sources
        .iter()
        .map(|s| (s.namespace().to_owned(), s.stats()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// How many times this process has subscribed to the tiered store's invalidation channel:
/// 0 before any tiered function was used, then one more after each lost connection.
pub fn bus_subscriptions() -> u64 {
    crate::bus::Bus::global().subscriptions()
}
