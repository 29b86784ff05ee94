//! Per-function counters, and the registry that lists every cached function used so far;
//! with the `metrics` feature, their publication through the `metrics` facade (`publish`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

#[cfg(feature = "metrics")]
mod publish;
#[cfg(feature = "metrics")]
pub use publish::{publish, publish_every};

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
    /// overwritten by the fresh value.
    pub decode_errors: u64,
    /// Values not stored because they could not be encoded so that they read back as
    /// themselves (say, a JSON map with non-string keys, or a NaN in JSON).
    pub encode_errors: u64,
    /// Keys (and clears) whose invalidation Redis has not confirmed yet: kept, sent again
    /// until it does, and neither read nor written in Redis by this process meanwhile.
    pub pending_invalidations: u64,
    /// Values not stored because they were larger than the size cap.
    pub oversize: u64,
    /// Hits served by the memory tier of a tiered store (counted in `hits` too).
    pub l1_hits: u64,
    /// Keys dropped from the memory tier because another process invalidated them.
    pub remote_invalidations: u64,
    /// Values returned but not stored because the function's options keep them out:
    /// `unless = f` returned `true`, or `ttl_from = f` gave a zero ttl. A `#[cache_put]` of
    /// such a value drops the entry instead, and is counted too.
    pub declined: u64,
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
    pub(crate) hits: HotCounter,
    pub(crate) misses: HotCounter,
    pub(crate) loads: HotCounter,
    pub(crate) load_errors: AtomicU64,
    pub(crate) key_errors: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) encode_errors: AtomicU64,
    pub(crate) oversize: AtomicU64,
    pub(crate) l1_hits: HotCounter,
    pub(crate) remote_invalidations: AtomicU64,
    pub(crate) declined: AtomicU64,
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

/// A counter bumped on every call (hit or miss): one cell per thread, summed when read.
///
/// No locked instruction on a call: a shared atomic add is one, and makes the counter's cache
/// line travel between cores that hit the same function. Here each thread only writes its own cell, so a bump is a plain load and store.
/// Cells outlive their threads: `thread_local` hands a finished thread's cell, count and all, to
/// the next thread that takes its id, so no count is ever lost.
#[derive(Debug, Default)]
pub(crate) struct HotCounter(thread_local::ThreadLocal<Cell>);

/// One thread's share of a [`HotCounter`], alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Cell(AtomicU64);

impl HotCounter {
    /// Adds one. Only the calling thread writes its cell, so a load then a store cannot lose
    /// a count; readers on other threads see each cell's latest value.
    #[inline]
    pub(crate) fn bump(&self) {
        let cell = &self.0.get_or_default().0;
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// The sum over every thread.
    pub(crate) fn read(&self) -> u64 {
        self.0.iter().fold(0, |sum, cell| {
            sum.wrapping_add(cell.0.load(Ordering::Relaxed))
        })
    }
}

/// Something that reports [`Stats`] under a name: one per cached function.
pub(crate) trait Source: Sync {
    fn namespace(&self) -> &str;
    /// `"memory"`, `"redis"` or `"tiered"`.
    #[cfg(feature = "metrics")]
    fn store(&self) -> &'static str;
    fn stats(&self) -> Stats;
}

static REGISTRY: Mutex<Vec<&'static dyn Source>> = Mutex::new(Vec::new());

pub(crate) fn register(source: &'static dyn Source) {
    REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(source);
}

/// Every cached function called so far in this process.
fn sources() -> Vec<&'static dyn Source> {
    REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The counters of every cached function called so far in this process, by namespace
/// (`module::path::fn_name`, or the `name = "…"` given to `#[cached]`), sorted by namespace.
pub fn all() -> Vec<(String, Stats)> {
    let sources = sources();
    let mut all: Vec<_> = sources
        .iter()
        .map(|s| (s.namespace().to_owned(), s.stats()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[cfg(feature = "redis")]
/// How many times this process has subscribed to the tiered store's invalidation channel:
/// 0 before any tiered function was used, then one more after each lost connection.
pub fn bus_subscriptions() -> u64 {
    crate::bus::Bus::global().subscriptions()
}

#[cfg(test)]
mod tests {
    use super::HotCounter;

    #[test]
    fn a_hot_counter_loses_no_count_across_threads_that_come_and_go() {
        let counter = HotCounter::default();
        // Three waves of eight threads: later waves reuse the ids (and cells) of finished ones.
        for wave in 0..3u64 {
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        for _ in 0..10_000 {
                            counter.bump();
                        }
                    });
                }
                // Read while the wave runs: never more than what was bumped.
                assert!(counter.read() <= (wave + 1) * 80_000);
            });
            assert_eq!(counter.read(), (wave + 1) * 80_000);
        }
        counter.bump();
        assert_eq!(counter.read(), 240_001);
    }
}
