//! Benchmarks of the memory store behind `#[cachette::cached]`.
//!
//! * Group `hit`: the latency of a call whose key is warm, for a `u64` argument and a ~100-byte
//!   `String` value, against a bare `DashMap` lookup (the floor), `moka::future::Cache` and the
//!   `cached` crate's async proc macro. `hit/dashmap_raw_async` is the bare lookup in an
//!   `async fn` awaited by the same harness as the async caches.
//! * The same comparison hand-timed and interleaved (after the criterion groups): every variant
//!   runs a block of calls per round, in an order that rotates, and the ratios the targets are
//!   about are taken round by round, with their quartiles. On a shared machine this is the
//!   steadier figure; criterion's estimates of two variants measured minutes apart can differ
//!   by a third from background load alone.
//! * The Zipf report (not timed): the hit ratio of a 10 000-entry cache on a Zipf(1.0) trace of
//!   1 000 000 requests over 100 000 keys, for cachette and for moka, printed once before the
//!   timed benchmarks.
//!
//! Run with `cargo bench --bench memory`. Under `cargo test` (no `--bench` flag) the timed
//! benchmarks run once each and the Zipf replay is cut down to a smoke test; with `--list` or
//! `--profile-time` it is skipped, so that a profile shows only the benchmark asked for; set
//! `CACHETTE_BENCH_SKIP_ZIPF=1` to skip it when running a filtered subset of the timed benchmarks.

#[path = "support/interleave.rs"]
mod interleave;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::Criterion;
use dashmap::DashMap;
use tokio::runtime::Runtime;

use interleave::{block, block_sync, interleaved, median, ratio_line, Block};

/// The value every cache in the `hit` group holds: a 100-byte string.
fn value(id: u64) -> String {
    let mut s = format!("value of key {id}: ");
    while s.len() < 100 {
        s.push('x');
    }
    s
}

/// A current-thread runtime, as in a single-threaded service.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// The function under test, with the long ttl most real uses give.
#[cachette::cached(ttl = 3600)]
async fn hit_cachette(id: u64) -> String {
    value(id)
}

/// The `cached` crate's async memoization with an LRU of 10 000 entries.
#[cached::proc_macro::cached(size = 10000)]
async fn hit_cached_crate(id: u64) -> String {
    value(id)
}

const WARM: u64 = 42;

async fn dashmap_get(map: &DashMap<u64, String>, id: u64) -> Option<String> {
    map.get(&id).map(|v| v.clone())
}

fn hit(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("hit");

    rt.block_on(hit_cachette(WARM));
    assert_eq!(hit_cachette_stats().loads, 1, "the key is warm");
    group.bench_function("cachette", |b| {
        b.to_async(&rt).iter(|| hit_cachette(black_box(WARM)));
    });
    assert_eq!(hit_cachette_stats().loads, 1, "every measured call hit");

    let map: DashMap<u64, String> = DashMap::new();
    map.insert(WARM, value(WARM));
    group.bench_function("dashmap_raw", |b| {
        b.iter(|| map.get(&black_box(WARM)).map(|v| v.clone()));
    });
    // The same lookup inside an `async fn` awaited by the same harness as the async caches:
    // the floor for any of them, since the harness's cost per await is in their figures too.
    group.bench_function("dashmap_raw_async", |b| {
        b.to_async(&rt).iter(|| dashmap_get(&map, black_box(WARM)));
    });

    let moka: moka::future::Cache<u64, String> = moka::future::Cache::new(10_000);
    rt.block_on(moka.insert(WARM, value(WARM)));
    rt.block_on(moka.run_pending_tasks());
    assert!(rt.block_on(moka.get(&WARM)).is_some());
    group.bench_function("moka", |b| {
        b.to_async(&rt).iter(|| async {
            let key = black_box(WARM);
            moka.get(&key).await
        });
    });

    rt.block_on(hit_cached_crate(WARM));
    group.bench_function("cached_crate", |b| {
        b.to_async(&rt).iter(|| hit_cached_crate(black_box(WARM)));
    });

    group.finish();
}

/// The `hit` comparison again, hand-timed and interleaved (see `interleave`): the ratios the
/// targets are about, taken round by round so that the machine's background load falls on
/// every variant alike.
fn hit_interleaved(calls: usize, rounds: usize) {
    let rt = runtime();
    let map: DashMap<u64, String> = DashMap::new();
    map.insert(WARM, value(WARM));
    let moka: moka::future::Cache<u64, String> = moka::future::Cache::new(10_000);
    rt.block_on(async {
        hit_cachette(WARM).await;
        hit_cached_crate(WARM).await;
        moka.insert(WARM, value(WARM)).await;
        moka.run_pending_tasks().await;
    });
    let variants: Vec<(&str, Block<'_>)> = vec![
        ("cachette", block(&rt, || hit_cachette(black_box(WARM)))),
        (
            "dashmap_raw",
            block_sync(|| map.get(&black_box(WARM)).map(|v| v.clone())),
        ),
        (
            "dashmap_raw_async",
            block(&rt, || dashmap_get(&map, black_box(WARM))),
        ),
        ("moka", block(&rt, || moka.get(&WARM))),
        (
            "cached_crate",
            block(&rt, || hit_cached_crate(black_box(WARM))),
        ),
    ];
    let ns = interleaved(&variants, calls, rounds);
    println!(
        "-- hit, hand-timed and interleaved: {rounds} rounds of {calls} calls per variant; \
         per variant the median ns per call, per ratio the median [quartiles] of the per-round ratios"
    );
    for ((name, _), samples) in variants.iter().zip(&ns) {
        println!("{name:<20} {:>8.1} ns", median(samples.clone()));
    }
    ratio_line("cachette / dashmap_raw (target <= 1.5)", &ns[0], &ns[1]);
    ratio_line("cachette / dashmap_raw_async", &ns[0], &ns[2]);
    ratio_line("cachette / moka (target < 1)", &ns[0], &ns[3]);
    ratio_line("cachette / cached_crate (target < 1)", &ns[0], &ns[4]);
    assert_eq!(hit_cachette_stats().loads, 1, "every measured call hit");
}

// ---------------------------------------------------------------------------------------------
// Zipf hit ratio

const ZIPF_KEYS: usize = 100_000;
const ZIPF_REQUESTS: usize = 1_000_000;
const ZIPF_CAPACITY: u64 = 10_000;
const ZIPF_SEED: u64 = 0x5EED_CAC4_E77E;

/// splitmix64: a small, good, seedable PRNG.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `requests` draws of a Zipf(`s`) law over ranks `0..keys` (rank 0 the most popular).
fn zipf_trace(keys: usize, s: f64, requests: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(keys);
    let mut total = 0.0;
    for rank in 1..=keys {
        total += 1.0 / (rank as f64).powf(s);
        cdf.push(total);
    }
    for c in &mut cdf {
        *c /= total;
    }
    let mut rng = SplitMix64(seed);
    (0..requests)
        .map(|_| {
            let u = rng.unit();
            cdf.partition_point(|&c| c <= u).min(keys - 1) as u64
        })
        .collect()
}

static ZIPF_RUNS: AtomicU64 = AtomicU64::new(0);

/// Counts its runs: each one is a miss.
#[cachette::cached(capacity = 10000)]
async fn zipf_cachette(id: u64) -> u64 {
    ZIPF_RUNS.fetch_add(1, Ordering::Relaxed);
    id
}

/// Replays `trace` through `#[cachette::cached]`: the hit ratio.
fn replay_cachette(rt: &Runtime, trace: &[u64]) -> f64 {
    let before = ZIPF_RUNS.load(Ordering::Relaxed);
    rt.block_on(async {
        for &id in trace {
            black_box(zipf_cachette(id).await);
        }
    });
    let runs = ZIPF_RUNS.load(Ordering::Relaxed) - before;
    1.0 - runs as f64 / trace.len() as f64
}

/// Replays `trace` through a moka cache, get then insert on a miss: the hit ratio.
/// With `pending_every`, `run_pending_tasks` is also called every that many requests.
fn replay_moka(rt: &Runtime, trace: &[u64], pending_every: Option<usize>) -> f64 {
    let cache: moka::future::Cache<u64, u64> = moka::future::Cache::new(ZIPF_CAPACITY);
    let misses = rt.block_on(async {
        let mut misses = 0u64;
        for (i, &id) in trace.iter().enumerate() {
            if cache.get(&id).await.is_none() {
                misses += 1;
                cache.insert(id, id).await;
            }
            if pending_every.is_some_and(|n| (i + 1) % n == 0) {
                cache.run_pending_tasks().await;
            }
        }
        misses
    });
    1.0 - misses as f64 / trace.len() as f64
}

/// Prints the Zipf hit ratios of cachette and moka.
fn zipf_report(requests: usize) {
    let trace = zipf_trace(ZIPF_KEYS, 1.0, requests, ZIPF_SEED);
    // The best any 10 000-entry cache can do on a stationary law: always hold the top ranks.
    let ideal = trace.iter().filter(|&&r| r < ZIPF_CAPACITY).count() as f64 / trace.len() as f64;
    let rt = runtime();
    let cachette = replay_cachette(&rt, &trace);
    let moka = replay_moka(&rt, &trace, None);
    let moka_drained = replay_moka(&rt, &trace, Some(1_000));
    println!(
        "zipf trace: s = 1.0, {requests} requests over {ZIPF_KEYS} keys, capacity {ZIPF_CAPACITY}, seed {ZIPF_SEED:#x}"
    );
    println!(
        "zipf hit ratio: cachette {cachette:.4}, moka {moka:.4}, ratio {:.4} \
         (moka: get then insert on miss, housekeeping left to moka's own triggers)",
        cachette / moka
    );
    println!(
        "zipf hit ratio (extra): moka with run_pending_tasks every 1000 requests {moka_drained:.4} \
         (cachette/that {:.4}); ideal static top-{ZIPF_CAPACITY} {ideal:.4}",
        cachette / moka_drained
    );
}

/// The timed benchmarks, with settings that keep the whole run around a minute on a small machine.
fn benches() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(100)
        .configure_from_args();
    hit(&mut c);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a.split('=').next() == Some(flag));
    let skip = std::env::var_os("CACHETTE_BENCH_SKIP_ZIPF").is_some_and(|v| v != "0");
    if skip || has("--list") || has("--profile-time") {
        // Asked to, listing, or profiling one benchmark: leave the Zipf replay out.
    } else if has("--bench") {
        zipf_report(ZIPF_REQUESTS);
    } else {
        // `cargo test`: a smoke test of the replay, in a debug build.
        zipf_report(20_000);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if has("--list") || has("--profile-time") {
        return;
    }
    if has("--bench") {
        hit_interleaved(100_000, 31);
    } else {
        hit_interleaved(100, 3);
    }
}
