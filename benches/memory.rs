//! Benchmarks of the memory store behind `#[cachette::cached]`.
//!
//! * Group `hit`: the latency of a call whose key is warm, for a `u64` argument and a ~100-byte
//!   `String` value, against a bare `DashMap` lookup (the floor), `moka::future::Cache` and the
//!   `cached` crate's async proc macro. `hit/dashmap_raw_async` is the bare lookup in an
//!   `async fn` awaited by the same harness as the async caches. `hit/cachette_sync` is a
//!   sync `#[cachette::cached] fn`, against the `cached` crate's sync proc macro
//!   (`hit/cached_crate_sync`) and the bare lookup.
//! * The same comparison hand-timed and interleaved (after the criterion groups): every variant
//!   runs a block of calls per round, in an order that rotates, and the ratios the targets are
//!   about are taken round by round, with their quartiles. On a shared machine this is the
//!   steadier figure; criterion's estimates of two variants measured minutes apart can differ
//!   by a third from background load alone.
//! * Around the hit, hand-timed and interleaved in the same way (after the `hit` comparison):
//!   cachette against a hand-written `DashMap` cache-aside (lookup; on a miss compute and
//!   insert), the `cached` crate's async `#[cached(size = N)]` and moka's
//!   `future::Cache::get_with`, with the same value and fresh `u64` keys (from one global
//!   counter, so no key repeats across rounds):
//!   - `miss_room`: a miss, the body and the insert, in caches of 1 000 000 entries that the
//!     whole run never fills (no eviction anywhere);
//!   - `miss_full`: a miss in caches of 10 000 entries filled beforehand, so that every miss
//!     inserts and evicts, or, for cachette and moka, whose admission keeps out keys asked for
//!     less often than the entries they would replace, may be turned away (cachette's share of
//!     admitted keys is printed). The `DashMap` here keeps an insertion-order queue under a mutex and
//!     drops the oldest key past 10 000 (FIFO), since a bare `DashMap` has no bound;
//!   - `hit_tasks`: the throughput (ops/s) of 64 tasks on a multi-thread runtime with 2
//!     workers, all hitting 1 000 warm keys;
//!   - `hit_threads`: the same for sync functions, from 4 threads, against the `cached`
//!     crate's sync proc macro and a bare `DashMap` lookup.
//!
//!   The warm hit from one task is the `hit` comparison above.
//! * The hit-ratio report (not timed), printed once before the timed benchmarks: the hit ratio
//!   of a 10 000-entry cache, for cachette and for moka, on a Zipf(1.0) trace of 1 000 000
//!   requests over 100 000 keys (`zipf`), and on the same trace with a scan of 100 000 one-time
//!   keys in one burst at its middle (`zipf+scan`), where a policy that admits every new key
//!   loses its hot set.
//!
//! Run with `cargo bench --bench memory`. Under `cargo test` (no `--bench` flag) the timed
//! benchmarks run once each and the Zipf replay is cut down to a smoke test; with `--list` or
//! `--profile-time` it is skipped, so that a profile shows only the benchmark asked for; set
//! `CACHETTE_BENCH_SKIP_ZIPF=1` to skip it when running a filtered subset of the timed benchmarks,
//! `CACHETTE_BENCH_ONLY_ZIPF=1` to run it alone.

#[path = "support/interleave.rs"]
mod interleave;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use criterion::Criterion;
use dashmap::DashMap;
use tokio::runtime::Runtime;

use interleave::{
    block, block_sync, block_tasks, current_thread, interleaved, median, multi_thread, ratio_line,
    Block,
};

/// The value every cache in the `hit` group holds: a 100-byte string.
fn value(id: u64) -> String {
    let mut s = format!("value of key {id}: ");
    while s.len() < 100 {
        s.push('x');
    }
    s
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

/// The same function, sync: the memory store's sync path.
#[cachette::cached(ttl = 3600)]
fn hit_cachette_sync(id: u64) -> String {
    value(id)
}

/// The `cached` crate's sync memoization with an LRU of 10 000 entries.
#[cached::proc_macro::cached(size = 10000)]
fn hit_cached_crate_sync(id: u64) -> String {
    value(id)
}

const WARM: u64 = 42;

/// The sync functions of `hit_threads`, over their own warm keys.
#[cachette::cached(ttl = 3600)]
fn threads_cachette(id: u64) -> String {
    value(id)
}

#[cached::proc_macro::cached(size = 10000)]
fn threads_cached_crate(id: u64) -> String {
    value(id)
}

/// The threads of `hit_threads`.
const THREADS: usize = 4;

/// A sync variant run by `threads` threads, timed from the first spawn to the last join: the
/// block's `n` calls are split evenly between them, and the calls get the arguments `0..n`,
/// each once. The ns per call it yields is the inverse of the throughput.
fn block_threads<'a, T>(threads: usize, op: impl Fn(u64) -> T + Sync + 'a) -> Block<'a> {
    Box::new(move |n| {
        let per = n / threads;
        let op = &op;
        let start = std::time::Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    for i in (t * per)..((t + 1) * per) {
                        black_box(op(i as u64));
                    }
                });
            }
        });
        start.elapsed()
    })
}

/// Sync hits from `THREADS` threads over `MT_KEYS` warm keys, interleaved: cachette's sharded
/// read path against the `cached` crate's one mutex and a bare `DashMap`.
fn hit_threads_interleaved(calls: usize, rounds: usize) {
    let map: DashMap<u64, String> = DashMap::new();
    for id in 0..MT_KEYS {
        threads_cachette(id);
        threads_cached_crate(id);
        map.insert(id, value(id));
    }
    let variants: Vec<(&str, Block<'_>)> = vec![
        (
            "cachette_sync",
            block_threads(THREADS, |i| threads_cachette(i % MT_KEYS)),
        ),
        (
            "dashmap",
            block_threads(THREADS, |i| map.get(&(i % MT_KEYS)).map(|v| v.clone())),
        ),
        (
            "cached_crate_sync",
            block_threads(THREADS, |i| threads_cached_crate(i % MT_KEYS)),
        ),
    ];
    let ns = interleaved(&variants, calls, rounds);
    let ops: Vec<Vec<f64>> = ns
        .iter()
        .map(|round| round.iter().map(|ns| 1e9 / ns).collect())
        .collect();
    println!(
        "-- hit_threads: sync hits from {THREADS} threads over {MT_KEYS} warm keys; hand-timed and \
         interleaved, {rounds} rounds of {calls} calls per variant; per variant the median ops/s, \
         per ratio the median [quartiles] of the per-round ratios"
    );
    for ((name, _), samples) in variants.iter().zip(&ops) {
        println!("{name:<20} {:>10.0} ops/s", median(samples.clone()));
    }
    ratio_line(
        "cachette_sync / dashmap, ops/s (higher is better)",
        &ops[0],
        &ops[1],
    );
    ratio_line(
        "cachette_sync / cached_crate_sync, ops/s (higher is better)",
        &ops[0],
        &ops[2],
    );
    assert_eq!(
        threads_cachette_stats().loads,
        MT_KEYS,
        "every measured call hit"
    );
}

async fn dashmap_get(map: &DashMap<u64, String>, id: u64) -> Option<String> {
    map.get(&id).map(|v| v.clone())
}

fn hit(c: &mut Criterion) {
    let rt = current_thread();
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

    hit_cachette_sync(WARM);
    group.bench_function("cachette_sync", |b| {
        b.iter(|| hit_cachette_sync(black_box(WARM)));
    });
    assert_eq!(
        hit_cachette_sync_stats().loads,
        1,
        "every measured call hit"
    );
    hit_cached_crate_sync(WARM);
    group.bench_function("cached_crate_sync", |b| {
        b.iter(|| hit_cached_crate_sync(black_box(WARM)));
    });

    group.finish();
}

/// The `hit` comparison again, hand-timed and interleaved (see `interleave`): the ratios the
/// targets are about, taken round by round so that the machine's background load falls on
/// every variant alike.
fn hit_interleaved(calls: usize, rounds: usize) {
    let rt = current_thread();
    let map: DashMap<u64, String> = DashMap::new();
    map.insert(WARM, value(WARM));
    let moka: moka::future::Cache<u64, String> = moka::future::Cache::new(10_000);
    rt.block_on(async {
        hit_cachette(WARM).await;
        hit_cached_crate(WARM).await;
        moka.insert(WARM, value(WARM)).await;
        moka.run_pending_tasks().await;
    });
    hit_cachette_sync(WARM);
    hit_cached_crate_sync(WARM);
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
        (
            "cachette_sync",
            block_sync(|| hit_cachette_sync(black_box(WARM))),
        ),
        (
            "cached_crate_sync",
            block_sync(|| hit_cached_crate_sync(black_box(WARM))),
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
    ratio_line("cachette_sync / dashmap_raw", &ns[5], &ns[1]);
    ratio_line(
        "cachette_sync / cached_crate_sync (target < 1)",
        &ns[5],
        &ns[6],
    );
    assert_eq!(hit_cachette_stats().loads, 1, "every measured call hit");
    assert_eq!(
        hit_cachette_sync_stats().loads,
        1,
        "every measured call hit"
    );
}

// ---------------------------------------------------------------------------------------------
// Around the hit: misses, with room and at capacity, and hits from 64 tasks (hand-timed)

/// The capacity of the `miss_room` caches: far above the keys a run gives them (32 blocks).
const ROOM_CAPACITY: usize = 1_000_000;
/// The capacity of the `miss_full` caches.
const FULL_CAPACITY: usize = 10_000;
/// The warm keys of `hit_tasks`: `0..MT_KEYS`.
const MT_KEYS: u64 = 1_000;
/// The tasks of `hit_tasks`.
const MT_TASKS: usize = 64;

/// The next fresh key: no two calls of the whole run get the same one. Far above the keys
/// the other benchmarks use.
fn fresh_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1 << 32);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The hand-written cache-aside: a lookup, and on a miss the body and an insert.
async fn dashmap_aside(map: &DashMap<u64, String>, id: u64) -> String {
    if let Some(v) = map.get(&id) {
        return v.clone();
    }
    let v = value(id);
    map.insert(id, v.clone());
    v
}

/// The hand-written cache-aside with a bound: past `capacity` entries, each insert drops the
/// oldest key (FIFO, from an insertion-order queue under a mutex).
struct FifoMap {
    map: DashMap<u64, String>,
    order: Mutex<VecDeque<u64>>,
    capacity: usize,
}

impl FifoMap {
    fn new(capacity: usize) -> Self {
        Self {
            map: DashMap::new(),
            order: Mutex::new(VecDeque::with_capacity(capacity + 1)),
            capacity,
        }
    }

    async fn get(&self, id: u64) -> String {
        if let Some(v) = self.map.get(&id) {
            return v.clone();
        }
        let v = value(id);
        if self.map.insert(id, v.clone()).is_none() {
            let oldest = {
                let mut order = self.order.lock().expect("the FIFO queue");
                order.push_back(id);
                (order.len() > self.capacity)
                    .then(|| order.pop_front())
                    .flatten()
            };
            if let Some(oldest) = oldest {
                self.map.remove(&oldest);
            }
        }
        v
    }
}

#[cachette::cached(capacity = 1000000)]
async fn room_cachette(id: u64) -> String {
    value(id)
}

#[cached::proc_macro::cached(size = 1000000)]
async fn room_cached_crate(id: u64) -> String {
    value(id)
}

#[cachette::cached(capacity = 10000)]
async fn full_cachette(id: u64) -> String {
    value(id)
}

#[cached::proc_macro::cached(size = 10000)]
async fn full_cached_crate(id: u64) -> String {
    value(id)
}

/// As `hit_cachette` (its own static, so that the `hit` figures keep one warm key).
#[cachette::cached(ttl = 3600)]
async fn mt_cachette(id: u64) -> String {
    value(id)
}

/// As `hit_cached_crate`, its own static.
#[cached::proc_macro::cached(size = 10000)]
async fn mt_cached_crate(id: u64) -> String {
    value(id)
}

static MT_MAP: LazyLock<DashMap<u64, String>> = LazyLock::new(DashMap::new);
static MT_MOKA: LazyLock<moka::future::Cache<u64, String>> =
    LazyLock::new(|| moka::future::Cache::new(10_000));

/// The names of the variants of every comparison below, cachette first.
const AROUND: [&str; 4] = ["cachette", "dashmap", "cached_crate", "moka"];

/// Prints one comparison of time per call: the medians and the ratios cachette ÷ each other.
fn print_times(title: &str, names: &[&str], ns: &[Vec<f64>]) {
    println!("-- {title}");
    for (name, samples) in names.iter().zip(ns) {
        println!("{name:<20} {:>8.1} ns", median(samples.clone()));
    }
    for (name, samples) in names.iter().zip(ns).skip(1) {
        ratio_line(
            &format!("cachette / {name}, time (lower is better)"),
            &ns[0],
            samples,
        );
    }
}

/// A miss, the body and the insert, with room in every cache.
fn miss_room_interleaved(calls: usize, rounds: usize) {
    let rt = current_thread();
    let map: DashMap<u64, String> = DashMap::new();
    let moka: moka::future::Cache<u64, String> = moka::future::Cache::new(ROOM_CAPACITY as u64);
    let before = room_cachette_stats();
    let variants: Vec<(&str, Block<'_>)> = vec![
        (AROUND[0], block(&rt, || room_cachette(fresh_key()))),
        (AROUND[1], block(&rt, || dashmap_aside(&map, fresh_key()))),
        (AROUND[2], block(&rt, || room_cached_crate(fresh_key()))),
        (
            AROUND[3],
            block(&rt, || {
                let id = fresh_key();
                moka.get_with(id, async move { value(id) })
            }),
        ),
    ];
    let ns = interleaved(&variants, calls, rounds);
    print_times(
        &format!(
            "miss_room: a fresh key, the body and the insert, capacity {ROOM_CAPACITY}; hand-timed \
             and interleaved, {rounds} rounds of {calls} calls per variant; per variant the median \
             ns per call, per ratio the median [quartiles] of the per-round ratios"
        ),
        &AROUND,
        &ns,
    );
    let after = room_cachette_stats();
    let calls = ((rounds + 1) * calls) as u64;
    assert_eq!(after.loads - before.loads, calls, "every call missed");
    assert_eq!(after.evictions, 0, "there was room");
    assert_eq!(map.len() as u64, calls);
}

/// A miss in a full cache of `FULL_CAPACITY` entries: every call inserts and evicts.
fn miss_full_interleaved(calls: usize, rounds: usize) {
    let rt = current_thread();
    let fifo = FifoMap::new(FULL_CAPACITY);
    let moka: moka::future::Cache<u64, String> = moka::future::Cache::new(FULL_CAPACITY as u64);
    let variants: Vec<(&str, Block<'_>)> = vec![
        (AROUND[0], block(&rt, || full_cachette(fresh_key()))),
        ("dashmap_fifo", block(&rt, || fifo.get(fresh_key()))),
        (AROUND[2], block(&rt, || full_cached_crate(fresh_key()))),
        (
            AROUND[3],
            block(&rt, || {
                let id = fresh_key();
                moka.get_with(id, async move { value(id) })
            }),
        ),
    ];
    // Fill every cache, twice over: cachette's capacity is split between segments, each full
    // only once its own share is.
    for (_, run) in &variants {
        run(2 * FULL_CAPACITY);
    }
    rt.block_on(moka.run_pending_tasks());
    let before = full_cachette_stats();
    assert!(before.evictions > 0, "the cache is full");
    let ns = interleaved(&variants, calls, rounds);
    let names = [AROUND[0], "dashmap_fifo", AROUND[2], AROUND[3]];
    print_times(
        &format!(
            "miss_full: a fresh key, the body, the insert and an eviction, capacity \
             {FULL_CAPACITY} (full); hand-timed and interleaved, {rounds} rounds of {calls} calls \
             per variant; per variant the median ns per call, per ratio the median [quartiles] of \
             the per-round ratios"
        ),
        &names,
        &ns,
    );
    let after = full_cachette_stats();
    let calls = ((rounds + 1) * calls) as u64;
    assert_eq!(after.loads - before.loads, calls, "every call missed");
    // A fresh key asked for once is not always admitted to a full cachette store (it must
    // have been asked for more often than the entry it would replace was used).
    let admitted = after.evictions - before.evictions;
    assert!(admitted <= calls, "at most one eviction a miss");
    println!(
        "cachette admitted {admitted} of the {calls} fresh keys (each stored key evicted one)"
    );
    assert!(after.entries <= FULL_CAPACITY as u64);
    assert_eq!(fifo.map.len(), FULL_CAPACITY);
    rt.block_on(moka.run_pending_tasks());
    assert!(moka.entry_count() <= FULL_CAPACITY as u64);
}

/// Hits from `MT_TASKS` tasks on a multi-thread runtime over `MT_KEYS` warm keys: the ops/s.
fn hit_tasks_interleaved(calls: usize, rounds: usize) {
    let rt = multi_thread();
    rt.block_on(async {
        for id in 0..MT_KEYS {
            mt_cachette(id).await;
            dashmap_aside(&MT_MAP, id).await;
            mt_cached_crate(id).await;
            MT_MOKA.get_with(id, async move { value(id) }).await;
        }
        MT_MOKA.run_pending_tasks().await;
    });
    assert_eq!(mt_cachette_stats().loads, MT_KEYS, "the keys are warm");
    let variants: Vec<(&str, Block<'_>)> = vec![
        (
            AROUND[0],
            block_tasks(&rt, MT_TASKS, |i| mt_cachette(i % MT_KEYS)),
        ),
        (
            AROUND[1],
            block_tasks(&rt, MT_TASKS, |i| dashmap_aside(&MT_MAP, i % MT_KEYS)),
        ),
        (
            AROUND[2],
            block_tasks(&rt, MT_TASKS, |i| mt_cached_crate(i % MT_KEYS)),
        ),
        (
            AROUND[3],
            block_tasks(&rt, MT_TASKS, |i| {
                let id = i % MT_KEYS;
                MT_MOKA.get_with(id, async move { value(id) })
            }),
        ),
    ];
    let ns = interleaved(&variants, calls, rounds);
    let ops: Vec<Vec<f64>> = ns
        .iter()
        .map(|round| round.iter().map(|ns| 1e9 / ns).collect())
        .collect();
    println!(
        "-- hit_tasks: {MT_TASKS} tasks on a multi-thread runtime (2 workers), hits over {MT_KEYS} \
         warm keys; hand-timed and interleaved, {rounds} rounds of {calls} calls per variant; per \
         variant the median ops/s, per ratio the median [quartiles] of the per-round ratios"
    );
    for (name, samples) in AROUND.iter().zip(&ops) {
        println!("{name:<20} {:>10.0} ops/s", median(samples.clone()));
    }
    for (name, samples) in AROUND.iter().zip(&ops).skip(1) {
        ratio_line(
            &format!("cachette / {name}, ops/s (higher is better)"),
            &ops[0],
            samples,
        );
    }
    assert_eq!(
        mt_cachette_stats().loads,
        MT_KEYS,
        "every measured call hit"
    );
    assert_eq!(MT_MAP.len() as u64, MT_KEYS, "every measured call hit");
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

/// Replays `trace` through `#[cachette::cached]`, from an empty cache: the hit ratio.
fn replay_cachette(rt: &Runtime, trace: &[u64]) -> f64 {
    let before = ZIPF_RUNS.load(Ordering::Relaxed);
    rt.block_on(async {
        zipf_cachette_clear().await;
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

/// The Zipf trace with a scan: `scan` one-time keys (never requested before or after, above
/// every Zipf rank) in one burst at the middle of `zipf`.
fn with_scan(zipf: &[u64], scan: usize) -> Vec<u64> {
    let middle = zipf.len() / 2;
    let mut trace = Vec::with_capacity(zipf.len() + scan);
    trace.extend_from_slice(&zipf[..middle]);
    trace.extend((0..scan as u64).map(|i| ZIPF_KEYS as u64 + i));
    trace.extend_from_slice(&zipf[middle..]);
    trace
}

/// Prints the hit ratios of cachette and moka on `trace`, and the best a cache of
/// `ZIPF_CAPACITY` entries that always holds the top ranks gets.
fn hit_ratio_line(rt: &Runtime, name: &str, trace: &[u64]) {
    let ideal = trace.iter().filter(|&&r| r < ZIPF_CAPACITY).count() as f64 / trace.len() as f64;
    let cachette = replay_cachette(rt, trace);
    let moka = replay_moka(rt, trace, None);
    let moka_drained = replay_moka(rt, trace, Some(1_000));
    println!(
        "{name:<10} cachette {cachette:.4}   moka {moka:.4} (cachette/moka {:.4})   moka drained \
         {moka_drained:.4} (cachette/that {:.4})   static top-{ZIPF_CAPACITY} {ideal:.4}",
        cachette / moka,
        cachette / moka_drained
    );
}

/// Prints the hit ratios of cachette and moka on the Zipf trace and on the trace with a scan.
fn zipf_report(requests: usize) {
    let zipf = zipf_trace(ZIPF_KEYS, 1.0, requests, ZIPF_SEED);
    let scan = with_scan(&zipf, requests / 10);
    let rt = current_thread();
    println!(
        "-- hit ratio, capacity {ZIPF_CAPACITY}: `zipf` is a Zipf(s = 1.0) trace of {requests} \
         requests over {ZIPF_KEYS} keys (seed {ZIPF_SEED:#x}); `zipf+scan` is the same with {} \
         one-time keys in one burst at its middle. moka: get, then insert on a miss, housekeeping \
         left to its own triggers; `moka drained` also runs its pending tasks every 1000 requests",
        requests / 10
    );
    hit_ratio_line(&rt, "zipf", &zipf);
    hit_ratio_line(&rt, "zipf+scan", &scan);
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
    let env = |name: &str| std::env::var_os(name).is_some_and(|v| v != "0");
    let skip = env("CACHETTE_BENCH_SKIP_ZIPF");
    if skip || has("--list") || has("--profile-time") {
        // Asked to, listing, or profiling one benchmark: leave the Zipf replay out.
    } else if has("--bench") {
        zipf_report(ZIPF_REQUESTS);
    } else {
        // `cargo test`: a smoke test of the replay, in a debug build.
        zipf_report(20_000);
    }
    if env("CACHETTE_BENCH_ONLY_ZIPF") {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if has("--list") || has("--profile-time") {
        return;
    }
    if has("--bench") {
        hit_interleaved(100_000, 31);
        miss_room_interleaved(10_000, 31);
        miss_full_interleaved(10_000, 31);
        hit_tasks_interleaved(256_000, 31);
        hit_threads_interleaved(256_000, 31);
    } else {
        hit_interleaved(100, 3);
        miss_room_interleaved(100, 3);
        miss_full_interleaved(100, 3);
        hit_tasks_interleaved(256, 3);
        hit_threads_interleaved(256, 3);
    }
}
