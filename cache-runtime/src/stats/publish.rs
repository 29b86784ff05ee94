//! Every cached function's counters, published through the [`metrics`] facade, so whatever
//! exporter the application installed (Prometheus, StatsD, OpenTelemetry…) reports them.
//!
//! Publication is a snapshot, taken by [`publish`] (say, before each scrape) or every so often
//! by [`publish_every`]'s thread: the counters themselves stay where the hit path keeps them
//! (per-thread cells, summed when read), so a hit pays nothing for metrics. Counters are set to
//! the function's running totals (`Counter::absolute`); `entries` and `pending_invalidations`,
//! which go down as well as up, are gauges. Every metric carries the labels `function` (the
//! namespace, as in [`all`](super::all)) and `store` (`memory`, `redis` or `tiered`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::Duration;

use super::{sources, Stats};

/// The counters, by metric name, with what each counts. Every field of [`Stats`] but the two
/// gauges is here; `publish` destructures `Stats` without `..`, so a new field does not compile
/// until it is published.
const COUNTERS: [(&str, &str); 14] = [
    ("cachette_hits_total", "Calls answered from the cache."),
    ("cachette_misses_total", "Calls that found nothing cached."),
    ("cachette_loads_total", "Runs of the body on a miss."),
    (
        "cachette_load_errors_total",
        "Runs of the body that produced nothing to store, panicked or were cancelled.",
    ),
    (
        "cachette_evictions_total",
        "Live entries dropped to make room.",
    ),
    ("cachette_expirations_total", "Expired entries reclaimed."),
    (
        "cachette_key_errors_total",
        "Calls whose arguments could not be hashed; the body ran uncached.",
    ),
    (
        "cachette_store_errors_total",
        "Store commands that failed, timed out, or were skipped while the store was unavailable.",
    ),
    (
        "cachette_decode_errors_total",
        "Stored bytes that did not decode (misses, then overwritten).",
    ),
    (
        "cachette_encode_errors_total",
        "Values not stored because they would not read back as themselves.",
    ),
    (
        "cachette_oversize_total",
        "Values not stored because they were larger than the size cap.",
    ),
    (
        "cachette_l1_hits_total",
        "Hits served by the memory tier of a tiered store (also in hits).",
    ),
    (
        "cachette_remote_invalidations_total",
        "Keys dropped from the memory tier because another process invalidated them.",
    ),
    (
        "cachette_declined_total",
        "Values not stored because `unless` or a zero `ttl_from` declined them.",
    ),
];

/// The gauges, by metric name.
const GAUGES: [(&str, &str); 2] = [
    ("cachette_entries", "Entries held in this process's memory."),
    (
        "cachette_pending_invalidations",
        "Invalidations Redis has not confirmed yet (kept and replayed).",
    ),
];

/// Publishes the counters of every cached function called so far to the `metrics` recorder
/// installed in the process (none installed: nothing happens). Call it before an exporter
/// renders (a scrape handler), or let [`publish_every`] call it.
pub fn publish() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        for (name, help) in COUNTERS {
            metrics::describe_counter!(name, help);
        }
        for (name, help) in GAUGES {
            metrics::describe_gauge!(name, help);
        }
    });
    for source in sources() {
        let Stats {
            hits,
            misses,
            loads,
            load_errors,
            evictions,
            expirations,
            key_errors,
            entries,
            store_errors,
            decode_errors,
            encode_errors,
            pending_invalidations,
            oversize,
            l1_hits,
            remote_invalidations,
            declined,
        } = source.stats();
        let counters = [
            hits,
            misses,
            loads,
            load_errors,
            evictions,
            expirations,
            key_errors,
            store_errors,
            decode_errors,
            encode_errors,
            oversize,
            l1_hits,
            remote_invalidations,
            declined,
        ];
        let labels = [
            ("function", source.namespace().to_owned()),
            ("store", source.store().to_owned()),
        ];
        for ((name, _), value) in COUNTERS.iter().zip(counters) {
            metrics::counter!(*name, &labels).absolute(value);
        }
        for ((name, _), value) in GAUGES.iter().zip([entries, pending_invalidations]) {
            metrics::gauge!(*name, &labels).set(value as f64);
        }
    }
}

/// Calls [`publish`] every `interval`, on a thread of its own, for the life of the process: for
/// exporters that push, or that render without a hook to call `publish` first. The first call
/// starts the thread; a later one changes its interval.
pub fn publish_every(interval: Duration) {
    static INTERVAL_MS: AtomicU64 = AtomicU64::new(0);
    static STARTED: Once = Once::new();
    let ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    INTERVAL_MS.store(ms, Ordering::Relaxed);
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("cachette-metrics".into())
            .spawn(|| loop {
                publish();
                std::thread::sleep(Duration::from_millis(INTERVAL_MS.load(Ordering::Relaxed)));
            });
        if let Err(err) = spawned {
            tracing::warn!(%err, "cachette: cannot start the metrics thread; call stats::publish() instead");
        }
    });
}
