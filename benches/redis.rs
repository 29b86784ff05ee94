//! Benchmarks of `#[cachette::cached(store = "redis")]` hits and misses against plain redis-rs.
//!
//! One `redis-server` is started for the whole run (a free loopback port, never 6379, killed
//! when the bench ends); every hit measurement below reads the same warm key from it.
//!
//! * Group `redis_hit_single_task` (criterion): the latency of one hit, called in a loop from
//!   one task. `cachette` is a `#[cached(ttl = 600, store = "redis")]` fn of a `u64` returning a
//!   ~100-byte `String` (stored as JSON); `raw_redis_rs` is a redis-rs `ConnectionManager` made
//!   on the bench's own runtime, a `GET` of the very key cachette uses, then
//!   `serde_json::from_slice::<String>`. Both on a current-thread runtime: there the raw
//!   connection is driven on the caller's thread, while cachette's is driven on its
//!   `cachette-io` thread. Extra: `raw_redis_rs_io_thread`, the raw `GET` through a
//!   `ConnectionManager` driven on a separate one-thread runtime (as cachette's is), which
//!   isolates the cost of the thread hop.
//! * The same, hand-timed and interleaved (blocks of calls per variant in rotating order, so a
//!   shared machine's background load falls on every variant alike), with more baselines that
//!   take cachette's Redis path apart: `raw_io_thread_timeout` (the io-thread `GET` under an
//!   outer `tokio::time::timeout`, as cachette wraps every query), `raw_io_thread_like_cachette`
//!   (that, with the key also formatted anew per call), and `cachette_mt` / `raw_redis_rs_mt`
//!   (from `block_on` on a multi-thread runtime with 2 workers, where the raw connection's task
//!   runs on a worker, so it hops threads too).
//! * Throughput (hand-timed with `Instant`, not criterion): 64 tasks spawned on a multi-thread
//!   runtime with 2 workers each do N hits; ops/s = 64·N / elapsed, per variant the median of a
//!   few interleaved rounds, for cachette, raw redis-rs (driven on the workers) and the io-thread
//!   baselines above.
//! * Misses (hand-timed and interleaved like the above): `miss_cachette`, a function like the
//!   one under test, called each time with an argument never seen before, so a call is a `GET`
//!   that misses, the body and a `SET … EX 600` of its JSON, which the call returns without
//!   waiting for (`cachette_until_stored` also waits for it: `cachette::flush()` after each
//!   call); against the same two commands and `serde_json::to_vec` through the raw connections
//!   (the caller's runtime's, the io thread's, the multi-thread runtime's), each awaited.
//! * `redis-benchmark -c 64 -n 200000 -t get -q` against the same server, for scale.
//!
//! A summary with the criterion middle estimates, the ratios and the targets is printed last.
//!
//! Run with `cargo bench --bench redis`. Under `cargo test` (no `--bench` flag) everything runs
//! once as a smoke test, with tiny counts.

#[path = "support/interleave.rs"]
mod interleave;
#[path = "../tests/support/mod.rs"]
mod support;

use std::future::Future;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::Criterion;
use redis::aio::ConnectionManager;
use tokio::runtime::Runtime;

use interleave::{block, current_thread, interleaved, median, multi_thread, ratio_line, Block};
use support::RedisServer;

/// The prefix of every key cachette writes in this bench.
const PREFIX: &str = "bench";
/// The argument whose key is warm.
const WARM: u64 = 42;
/// Concurrent tasks of the throughput test.
const TASKS: usize = 64;
/// Hits per task per timed round of the throughput test (under `--bench`).
const PER_TASK: usize = 500;
/// Timed rounds of each throughput variant (under `--bench`); the median is reported.
const ROUNDS: usize = 21;
/// Calls per variant in one block of the interleaved single-task comparison.
const AB_CALLS: usize = 250;
/// Rounds of the interleaved single-task comparison.
const AB_ROUNDS: usize = 100;
/// Calls per variant in one block of the interleaved miss comparison.
const MISS_CALLS: usize = 250;
/// Rounds of the interleaved miss comparison.
const MISS_ROUNDS: usize = 60;
/// The criterion group.
const GROUP: &str = "redis_hit_single_task";

/// The value under test: a 100-byte string.
fn value(id: u64) -> String {
    let mut s = format!("value of key {id}: ");
    while s.len() < 100 {
        s.push('x');
    }
    s
}

/// The function under test.
#[cachette::cached(ttl = 600, store = "redis")]
async fn hit_cachette(id: u64) -> String {
    value(id)
}

/// A one-thread runtime on a thread of its own, like cachette's `cachette-io`: connections made
/// on it are driven there, whoever sends the commands.
fn io_thread() -> tokio::runtime::Handle {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("bench-io".into())
        .spawn(move || {
            let runtime = current_thread();
            tx.send(runtime.handle().clone())
                .expect("the bench waits for the handle");
            runtime.block_on(std::future::pending::<()>());
        })
        .expect("a thread for the io runtime");
    rx.recv().expect("the io runtime's handle")
}

/// A `ConnectionManager` with redis-rs's default settings (500 ms response timeout), made on
/// (and so driven by) the runtime of `handle`, which some thread of its own drives.
fn manager_on(handle: &tokio::runtime::Handle, url: &str) -> ConnectionManager {
    let client = redis::Client::open(url).expect("a redis URL");
    let made = handle.spawn(async move { ConnectionManager::new(client).await });
    futures::executor::block_on(made)
        .expect("the connect task")
        .expect("a connection to the bench's redis-server")
}

/// A `ConnectionManager` made inside `rt.block_on`, so a current-thread `rt` drives it whenever
/// the bench blocks on it.
fn manager_in(rt: &Runtime, url: &str) -> ConnectionManager {
    let client = redis::Client::open(url).expect("a redis URL");
    rt.block_on(ConnectionManager::new(client))
        .expect("a connection to the bench's redis-server")
}

/// The raw hit: `GET key`, then the JSON decode cachette also does.
async fn raw_get(conn: &mut ConnectionManager, key: &str) -> String {
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .expect("GET on the bench's redis-server");
    serde_json::from_slice::<String>(&bytes.expect("the key is warm")).expect("a JSON string")
}

/// The raw hit under an outer `tokio::time::timeout`, as cachette wraps every query (on top of
/// redis-rs's own response timeout, so two timers per `GET`).
async fn raw_get_timeout(conn: &mut ConnectionManager, key: &str) -> String {
    tokio::time::timeout(Duration::from_millis(500), raw_get(conn, key))
        .await
        .expect("GET within the timeout")
}

/// What cachette's Redis path does around the same `GET`, without the rest of cachette: the
/// key formatted anew from its prefix and digest, and the outer timeout.
async fn raw_get_like_cachette(conn: &mut ConnectionManager, prefix: &str, digest: u128) -> String {
    let key = format!("{prefix}{digest:032x}");
    raw_get_timeout(conn, &key).await
}

/// The function whose misses are measured: every call gets an argument never seen before.
#[cachette::cached(ttl = 600, store = "redis")]
async fn miss_cachette(id: u64) -> String {
    value(id)
}

/// An argument no call of the run had before, far above `WARM`.
fn fresh_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1 << 32);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The raw miss: a `GET` of a key nobody wrote, the body, and `SET … EX` of its JSON, as
/// cachette sends for a function with `ttl = 600`.
async fn raw_miss(conn: &mut ConnectionManager, id: u64) -> String {
    let key = format!("{PREFIX}:raw-miss:{id}");
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(conn)
        .await
        .expect("GET on the bench's redis-server");
    assert!(bytes.is_none(), "a fresh key misses");
    let value = value(id);
    let json = serde_json::to_vec(&value).expect("a JSON string");
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(json)
        .arg("EX")
        .arg(600)
        .query_async(conn)
        .await
        .expect("SET on the bench's redis-server");
    value
}

/// The connections the single-task measurements use.
struct Conns {
    /// Made on the current-thread runtime: driven on the caller's thread.
    local: ConnectionManager,
    /// Made on the multi-thread runtime: driven on its workers.
    mt: ConnectionManager,
    /// Made on the separate io thread.
    io: ConnectionManager,
}

// ---------------------------------------------------------------------------------------------
// Single task (criterion)

fn single_task(c: &mut Criterion, ct: &Runtime, conns: &Conns, key: &str) {
    let mut group = c.benchmark_group(GROUP);

    group.bench_function("cachette", |b| {
        b.to_async(ct).iter(|| hit_cachette(black_box(WARM)));
    });
    group.bench_function("raw_redis_rs", |b| {
        b.to_async(ct).iter(|| {
            let mut conn = conns.local.clone();
            async move { raw_get(&mut conn, black_box(key)).await }
        });
    });
    group.bench_function("raw_redis_rs_io_thread", |b| {
        b.to_async(ct).iter(|| {
            let mut conn = conns.io.clone();
            async move { raw_get(&mut conn, black_box(key)).await }
        });
    });

    group.finish();
}

// ---------------------------------------------------------------------------------------------
// Single task, interleaved (hand-timed)

// ---------------------------------------------------------------------------------------------
// 64 tasks (hand-timed)

/// Spawns `TASKS` tasks on `rt` that each await `op()` `per_task` times; returns ops/s.
fn ops_per_sec<F, Fut>(rt: &Runtime, per_task: usize, op: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let op = op.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        black_box(op().await);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a throughput task");
        }
    });
    (TASKS * per_task) as f64 / start.elapsed().as_secs_f64()
}

/// One throughput variant: runs a round of `per_task` hits in each task on the runtime, gives ops/s.
type Op = Box<dyn Fn(&Runtime, usize) -> f64>;

/// The raw hit, with the outer timeout if `timeout`.
fn raw_op(conn: ConnectionManager, key: Arc<str>, timeout: bool) -> Op {
    Box::new(move |rt, per_task| {
        let conn = conn.clone();
        let key = key.clone();
        ops_per_sec(rt, per_task, move || {
            let mut conn = conn.clone();
            let key = key.clone();
            async move {
                if timeout {
                    raw_get_timeout(&mut conn, &key).await
                } else {
                    raw_get(&mut conn, &key).await
                }
            }
        })
    })
}

fn like_cachette_op(conn: ConnectionManager, prefix: Arc<str>, digest: u128) -> Op {
    Box::new(move |rt, per_task| {
        let conn = conn.clone();
        let prefix = prefix.clone();
        ops_per_sec(rt, per_task, move || {
            let mut conn = conn.clone();
            let prefix = prefix.clone();
            async move { raw_get_like_cachette(&mut conn, &prefix, digest).await }
        })
    })
}

/// Ops/s of each variant in each of `rounds` interleaved rounds (in rotating order), after one
/// short warm-up round.
fn throughput(
    rt: &Runtime,
    variants: &[(&str, Op)],
    per_task: usize,
    rounds: usize,
) -> Vec<Vec<f64>> {
    for (_, op) in variants {
        op(rt, (per_task / 4).max(1));
    }
    let mut samples = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for i in 0..variants.len() {
            let v = (round + i) % variants.len();
            let (name, op) = &variants[v];
            let ops = op(rt, per_task);
            println!("throughput round {round}: {name:<28} {ops:>10.0} ops/s");
            samples[v].push(ops);
        }
    }
    samples
}

// ---------------------------------------------------------------------------------------------
// redis-benchmark

/// The last line `redis-benchmark -q` prints (it redraws progress with `\r`), or why none.
fn redis_benchmark(port: u16, requests: usize) -> String {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", "64", "-n", &requests.to_string(), "-t", "get", "-q"])
        .stdin(Stdio::null())
        .output();
    match output {
        Err(err) => format!("redis-benchmark not run ({err}); it is in the redis-tools package"),
        Ok(out) if !out.status.success() => format!(
            "redis-benchmark failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .split(['\r', '\n'])
            .map(str::trim)
            .rfind(|line| line.starts_with("GET"))
            .unwrap_or("redis-benchmark printed no GET line")
            .to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Summary

/// Criterion's middle estimate (slope, else mean) of `id` in ns, if this run measured it.
fn estimate_ns(criterion_dir: &Path, id: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir
        .join(GROUP)
        .join(id)
        .join("new/estimates.json");
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= since;
    if !fresh {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    ["slope", "mean"]
        .iter()
        .find_map(|what| json[what]["point_estimate"].as_f64())
}

/// Where criterion writes: `$CRITERION_HOME`, else `<target>/criterion` next to this binary's
/// `<target>/release/deps/`.
fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

fn fmt_us(ns: Option<f64>) -> String {
    ns.map_or("n/a".to_owned(), |ns| format!("{:.2} µs", ns / 1000.0))
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "MISSED"
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a.split('=').next() == Some(flag));
    let listing = has("--list") || has("--profile-time");
    let benching = has("--bench") && !listing;
    let started = SystemTime::now();

    let server = RedisServer::start();
    cachette::Config::builder()
        .redis_url(server.url())
        .prefix(PREFIX)
        // redis-rs's default response timeout, so neither side gives up sooner.
        .redis_timeout(Duration::from_millis(500))
        .install()
        .expect("the first configuration of this process");

    let ct = current_thread();
    let mt = multi_thread();
    let io = io_thread();

    // Warm the key, then read the name cachette gave it.
    assert_eq!(ct.block_on(hit_cachette(WARM)), value(WARM));
    ct.block_on(cachette::flush());
    let keys = server.cli(&["KEYS", &format!("{PREFIX}:*")]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "one key after the warm-up call: {keys:?}");
    let key: Arc<str> = Arc::from(keys[0]);
    let (digest_prefix, digest) = key.rsplit_once(':').expect("a digest key");
    let digest_prefix = format!("{digest_prefix}:");
    let digest = u128::from_str_radix(digest, 16).expect("a hex digest");
    assert_eq!(ct.block_on(hit_cachette(WARM)), value(WARM));
    assert_eq!(
        hit_cachette_stats().hits,
        1,
        "the second call is a Redis hit"
    );

    let conns = Conns {
        local: manager_in(&ct, &server.url()),
        mt: manager_on(mt.handle(), &server.url()),
        io: manager_on(&io, &server.url()),
    };
    for conn in [&conns.local, &conns.mt, &conns.io] {
        let mut conn = conn.clone();
        assert_eq!(ct.block_on(raw_get(&mut conn, &key)), value(WARM));
    }
    let mut conn = conns.io.clone();
    assert_eq!(
        ct.block_on(raw_get_like_cachette(&mut conn, &digest_prefix, digest)),
        value(WARM)
    );

    println!("redis-server on 127.0.0.1:{}; key {key}", server.port());

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(100)
        .configure_from_args();
    single_task(&mut c, &ct, &conns, &key);

    let errors_before = hit_cachette_stats().store_errors;
    let (ab_calls, ab_rounds) = if benching {
        (AB_CALLS, AB_ROUNDS)
    } else {
        (2, 1)
    };
    let (per_task, rounds, requests) = if benching {
        (PER_TASK, ROUNDS, 200_000)
    } else {
        (10, 1, 1_000)
    };
    let mut ab = Vec::new();
    let mut misses = Vec::new();
    let (miss_calls, miss_rounds) = if benching {
        (MISS_CALLS, MISS_ROUNDS)
    } else {
        (2, 1)
    };
    let mut ops = Vec::new();
    let mut benchmark_line = String::from("not run");
    if !listing {
        let key = &*key;
        let digest_prefix = digest_prefix.as_str();
        let ab_variants: Vec<(&str, Block<'_>)> = vec![
            ("cachette", block(&ct, || hit_cachette(black_box(WARM)))),
            (
                "raw_redis_rs",
                block(&ct, || {
                    let mut conn = conns.local.clone();
                    async move { raw_get(&mut conn, black_box(key)).await }
                }),
            ),
            (
                "raw_redis_rs_io_thread",
                block(&ct, || {
                    let mut conn = conns.io.clone();
                    async move { raw_get(&mut conn, black_box(key)).await }
                }),
            ),
            (
                "raw_io_thread_timeout",
                block(&ct, || {
                    let mut conn = conns.io.clone();
                    async move { raw_get_timeout(&mut conn, black_box(key)).await }
                }),
            ),
            (
                "raw_io_thread_like_cachette",
                block(&ct, || {
                    let mut conn = conns.io.clone();
                    async move {
                        raw_get_like_cachette(&mut conn, digest_prefix, black_box(digest)).await
                    }
                }),
            ),
            ("cachette_mt", block(&mt, || hit_cachette(black_box(WARM)))),
            (
                "raw_redis_rs_mt",
                block(&mt, || {
                    let mut conn = conns.mt.clone();
                    async move { raw_get(&mut conn, black_box(key)).await }
                }),
            ),
        ];
        ab = interleaved(&ab_variants, ab_calls, ab_rounds);

        let miss_variants: Vec<(&str, Block<'_>)> = vec![
            ("cachette", block(&ct, || miss_cachette(fresh_id()))),
            (
                "raw_redis_rs",
                block(&ct, || {
                    let mut conn = conns.local.clone();
                    async move { raw_miss(&mut conn, fresh_id()).await }
                }),
            ),
            (
                "raw_redis_rs_io_thread",
                block(&ct, || {
                    let mut conn = conns.io.clone();
                    async move { raw_miss(&mut conn, fresh_id()).await }
                }),
            ),
            ("cachette_mt", block(&mt, || miss_cachette(fresh_id()))),
            (
                "raw_redis_rs_mt",
                block(&mt, || {
                    let mut conn = conns.mt.clone();
                    async move { raw_miss(&mut conn, fresh_id()).await }
                }),
            ),
            (
                "cachette_until_stored",
                block(&ct, || async {
                    let value = miss_cachette(fresh_id()).await;
                    cachette::flush().await;
                    value
                }),
            ),
        ];
        misses = interleaved(&miss_variants, miss_calls, miss_rounds);
        ct.block_on(cachette::flush());
        let miss_stats = miss_cachette_stats();
        let calls = (3 * (miss_rounds + 1) * miss_calls) as u64;
        assert_eq!(miss_stats.loads, calls, "every call missed");
        assert_eq!(miss_stats.store_errors, 0, "every GET and SET answered");

        let variants: Vec<(&str, Op)> = vec![
            (
                "cachette",
                Box::new(|rt: &Runtime, per_task| ops_per_sec(rt, per_task, || hit_cachette(WARM))),
            ),
            ("raw_redis_rs", raw_op(conns.mt.clone(), key.into(), false)),
            (
                "raw_redis_rs_io_thread",
                raw_op(conns.io.clone(), key.into(), false),
            ),
            (
                "raw_io_thread_timeout",
                raw_op(conns.io.clone(), key.into(), true),
            ),
            (
                "raw_io_thread_like_cachette",
                like_cachette_op(conns.io.clone(), digest_prefix.into(), digest),
            ),
        ];
        ops = throughput(&mt, &variants, per_task, rounds);
        benchmark_line = redis_benchmark(server.port(), requests);
    }
    let stats = hit_cachette_stats();
    assert_eq!(stats.loads, 1, "every call after the first was a hit");
    assert_eq!(
        stats.store_errors, errors_before,
        "no Redis error or timeout during the hand-timed tests"
    );

    if !benching {
        return;
    }
    c.final_summary();

    let dir = criterion_dir();
    let est = |id: &str| dir.as_ref().and_then(|d| estimate_ns(d, id, started));
    let cachette = est("cachette");
    let raw = est("raw_redis_rs");
    let raw_io = est("raw_redis_rs_io_thread");
    let ratio = fmt_ratio(cachette, raw);

    println!();
    println!("======================== redis bench summary ========================");
    println!(
        "redis-server 127.0.0.1:{}, key {key}, value {} bytes of JSON",
        server.port(),
        serde_json::to_vec(&value(WARM)).map_or(0, |v| v.len())
    );
    println!("-- {GROUP}: criterion middle estimates, one task, current-thread runtime");
    println!("cachette                    {}", fmt_us(cachette));
    println!("raw_redis_rs                {}", fmt_us(raw));
    println!(
        "raw_redis_rs_io_thread      {}   (extra: connection driven on a separate thread)",
        fmt_us(raw_io)
    );
    println!(
        "ratio cachette/raw_redis_rs {}   target <= 1.10: {}",
        ratio.map_or("n/a".to_owned(), |r| format!("{r:.3}")),
        ratio.map_or("n/a", |r| verdict(r <= 1.10))
    );
    if let Some(r) = fmt_ratio(raw_io, raw) {
        println!("ratio raw_redis_rs_io_thread/raw_redis_rs {r:.3}");
    }

    if let [c_ct, raw_ct, raw_io, raw_timeout, like, c_mt, raw_mt] = &ab[..] {
        println!(
            "-- the same, hand-timed and interleaved: {ab_rounds} rounds of {ab_calls} calls per \
             variant in rotating order; per variant the median over rounds; per ratio the median \
             [quartiles] of the per-round ratios"
        );
        let names = [
            "cachette",
            "raw_redis_rs",
            "raw_redis_rs_io_thread",
            "raw_io_thread_timeout",
            "raw_io_thread_like_cachette",
            "cachette_mt",
            "raw_redis_rs_mt",
        ];
        for (name, samples) in names.iter().zip(&ab) {
            println!("{name:<28} {:>8.2} µs", median(samples.clone()) / 1000.0);
        }
        let r = ratio_line("cachette/raw_redis_rs", c_ct, raw_ct);
        println!("    target <= 1.10: {}", verdict(r <= 1.10));
        ratio_line("raw_redis_rs_io_thread/raw_redis_rs (hop)", raw_io, raw_ct);
        ratio_line(
            "raw_io_thread_timeout/raw_redis_rs_io_thread",
            raw_timeout,
            raw_io,
        );
        ratio_line(
            "raw_io_thread_like_cachette/raw_io_thread_timeout",
            like,
            raw_timeout,
        );
        ratio_line("cachette/raw_io_thread_like_cachette", c_ct, like);
        ratio_line("cachette_mt/raw_redis_rs_mt", c_mt, raw_mt);
    }

    if let [c_ct, raw_ct, raw_io, c_mt, raw_mt, c_stored] = &misses[..] {
        println!(
            "-- misses: a fresh argument, GET (nil), the body, SET ... EX 600 of its JSON; \
             hand-timed and interleaved, {miss_rounds} rounds of {miss_calls} calls per variant \
             in rotating order; per variant the median over rounds; per ratio the median \
             [quartiles] of the per-round ratios"
        );
        let names = [
            "cachette",
            "raw_redis_rs",
            "raw_redis_rs_io_thread",
            "cachette_mt",
            "raw_redis_rs_mt",
            "cachette_until_stored",
        ];
        for (name, samples) in names.iter().zip(&misses) {
            println!("{name:<28} {:>8.2} µs", median(samples.clone()) / 1000.0);
        }
        let r = ratio_line("miss cachette/raw_redis_rs", c_ct, raw_ct);
        println!("    target <= 1.10: {}", verdict(r <= 1.10));
        ratio_line("miss cachette/raw_redis_rs_io_thread", c_ct, raw_io);
        ratio_line("miss cachette_mt/raw_redis_rs_mt", c_mt, raw_mt);
        ratio_line("miss cachette_until_stored/raw_redis_rs", c_stored, raw_ct);
    }

    println!(
        "-- throughput: {TASKS} tasks x {per_task} hits on a multi-thread runtime (2 workers), \
         hand-timed; per variant the median of {rounds} interleaved rounds; per ratio the median \
         [quartiles] of the per-round ratios"
    );
    let names = [
        "cachette",
        "raw_redis_rs",
        "raw_redis_rs_io_thread",
        "raw_io_thread_timeout",
        "raw_io_thread_like_cachette",
    ];
    for (name, samples) in names.iter().zip(&ops) {
        println!("{name:<28} {:>10.0} ops/s", median(samples.clone()));
    }
    if let [c_ops, raw_ops, raw_io_ops, timeout_ops, like_ops] = &ops[..] {
        let r = ratio_line("cachette/raw_redis_rs", c_ops, raw_ops);
        println!("    target >= 0.95: {}", verdict(r >= 0.95));
        ratio_line("raw_redis_rs_io_thread/raw_redis_rs", raw_io_ops, raw_ops);
        ratio_line(
            "raw_io_thread_timeout/raw_redis_rs_io_thread",
            timeout_ops,
            raw_io_ops,
        );
        ratio_line(
            "raw_io_thread_like_cachette/raw_io_thread_timeout",
            like_ops,
            timeout_ops,
        );
        ratio_line("cachette/raw_io_thread_like_cachette", c_ops, like_ops);
    }
    println!(
        "-- future sizes: hit_cachette {} B, raw_get {} B, raw_get_like_cachette {} B",
        std::mem::size_of_val(&hit_cachette(WARM)),
        std::mem::size_of_val(&raw_get(&mut conns.local.clone(), &key)),
        std::mem::size_of_val(&raw_get_like_cachette(&mut conns.local.clone(), "", 0)),
    );
    println!(
        "-- redis-benchmark -h 127.0.0.1 -p {} -c 64 -n {requests} -t get -q   (64 connections)",
        server.port()
    );
    println!("{benchmark_line}");
    println!("=====================================================================");
    drop(server);
}
