//! What a `#[write_behind]` call costs, and how fast the database catches up:
//! `cargo bench --bench write_behind`.
//!
//! * Call latency, interleaved (medians of per-round ratios, quartiles in brackets), on a
//!   2-worker multi-thread runtime, memory-store targets, keys rotating over 1 000:
//!   - against `#[cache_put]` with a zero-cost body (what a write-behind call should cost: a
//!     cache put and a queue push), with the same zero-cost body and with a 5 ms body;
//!   - against `#[cache_put]` and a bare call, both with a 5 ms body (what the caller saves).
//! * Database catch-up (not interleaved): 100 000 writes drawn from a Zipf(1.0) law over 1 000
//!   keys, issued from one task as fast as the queue accepts them, against a database whose
//!   write takes 1 ms; with and without coalescing: calls per second, database writes, and the
//!   time until `flush()` returns.
//!
//! Under `cargo test` (no `--bench` flag) every part runs once, cut down, as a smoke test.

#[path = "support/interleave.rs"]
#[allow(dead_code)]
mod interleave;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cachette::{cache_put, cached, write_behind};
use interleave::{block, interleaved, median, multi_thread, ratio_line};

const KEYS: u64 = 1_000;
const DB_WRITE: Duration = Duration::from_millis(1);
const SLOW_BODY: Duration = Duration::from_millis(5);

static DB_WRITES: AtomicU64 = AtomicU64::new(0);

#[cached]
async fn balance(account: u64) -> u64 {
    account
}

#[write_behind(balance(account), value = amount)]
async fn wb_slow(account: u64, amount: u64) {
    let _ = (account, amount);
    tokio::time::sleep(SLOW_BODY).await;
}

#[write_behind(balance(account), value = amount)]
async fn wb_zero(account: u64, amount: u64) {
    let _ = (account, amount);
}

#[cache_put(balance(account))]
async fn put_zero(account: u64, amount: u64) -> u64 {
    let _ = account;
    amount
}

#[cache_put(balance(account))]
async fn put_slow(account: u64, amount: u64) -> u64 {
    let _ = account;
    tokio::time::sleep(SLOW_BODY).await;
    amount
}

async fn bare_slow(account: u64, amount: u64) -> u64 {
    let _ = account;
    tokio::time::sleep(SLOW_BODY).await;
    amount
}

#[cached]
async fn stock(item: u64) -> u64 {
    item
}

#[write_behind(stock(item), value = count)]
async fn set_stock(item: u64, count: u64) {
    let _ = (item, count);
    tokio::time::sleep(DB_WRITE).await;
    DB_WRITES.fetch_add(1, Ordering::Relaxed);
}

#[write_behind(stock(item), value = count, coalesce = false)]
async fn set_stock_every(item: u64, count: u64) {
    let _ = (item, count);
    tokio::time::sleep(DB_WRITE).await;
    DB_WRITES.fetch_add(1, Ordering::Relaxed);
}

/// The next key of a variant, rotating over [`KEYS`].
fn next(counter: &Cell<u64>) -> u64 {
    let key = counter.get();
    counter.set(key + 1);
    key % KEYS
}

fn calls(bench: bool) {
    let rt = multi_thread();
    let (fast_calls, slow_calls, rounds) = if bench { (20_000, 40, 21) } else { (50, 2, 2) };
    let (a, b, c) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let fast = [
        (
            "write_behind, 5 ms body",
            block(&rt, || wb_slow(next(&a), 1)),
        ),
        (
            "write_behind, zero-cost body",
            block(&rt, || wb_zero(next(&b), 1)),
        ),
        (
            "cache_put, zero-cost body",
            block(&rt, || put_zero(next(&c), 1)),
        ),
    ];
    let samples = interleaved(&fast, fast_calls, rounds);
    println!(
        "ns per call: write_behind 5 ms body {:.0}, zero-cost body {:.0}; cache_put zero-cost body {:.0}",
        median(samples[0].clone()),
        median(samples[1].clone()),
        median(samples[2].clone())
    );
    ratio_line(
        "write_behind (5 ms body) / cache_put (zero-cost body)",
        &samples[0],
        &samples[2],
    );
    ratio_line(
        "write_behind / cache_put, both zero-cost bodies",
        &samples[1],
        &samples[2],
    );
    let (d, e, f) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let slow = [
        (
            "write_behind, 5 ms body",
            block(&rt, || wb_slow(next(&d), 1)),
        ),
        ("cache_put, 5 ms body", block(&rt, || put_slow(next(&e), 1))),
        (
            "bare call, 5 ms body",
            block(&rt, || bare_slow(next(&f), 1)),
        ),
    ];
    let samples = interleaved(&slow, slow_calls, rounds);
    println!(
        "ns per call, 5 ms bodies: write_behind {:.0}, cache_put {:.0}, bare {:.0}",
        median(samples[0].clone()),
        median(samples[1].clone()),
        median(samples[2].clone())
    );
    ratio_line(
        "write_behind / cache_put, 5 ms bodies",
        &samples[0],
        &samples[1],
    );
    ratio_line(
        "write_behind / bare call, 5 ms bodies",
        &samples[0],
        &samples[2],
    );
    rt.block_on(cachette::flush());
}

/// `n` draws of a Zipf(1.0) law over `0..keys`, from a fixed seed.
fn zipf(keys: u64, n: usize) -> Vec<u64> {
    let weights: Vec<f64> = (1..=keys).map(|rank| 1.0 / rank as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(weights.len());
    let mut sum = 0.0;
    for w in weights {
        sum += w / total;
        cdf.push(sum);
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            // xorshift64*: enough for a trace.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let u = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
            cdf.partition_point(|&c| c <= u).min(keys as usize - 1) as u64
        })
        .collect()
}

fn catch_up(bench: bool) {
    let rt = multi_thread();
    let trace = zipf(KEYS, if bench { 100_000 } else { 2_000 });
    for coalesce in [true, false] {
        DB_WRITES.store(0, Ordering::Relaxed);
        let (accepted, flushed) = rt.block_on(async {
            let start = Instant::now();
            for (i, &item) in trace.iter().enumerate() {
                if coalesce {
                    set_stock(item, i as u64).await;
                } else {
                    set_stock_every(item, i as u64).await;
                }
            }
            let accepted = start.elapsed();
            cachette::flush().await;
            (accepted, start.elapsed())
        });
        let writes = DB_WRITES.load(Ordering::Relaxed);
        println!(
            "zipf catch-up, coalesce = {coalesce:<5}: {} calls in {accepted:.2?} ({:.0} calls/s), \
             {writes} database writes, all written after {flushed:.2?} ({:.0} writes/s)",
            trace.len(),
            trace.len() as f64 / accepted.as_secs_f64(),
            writes as f64 / flushed.as_secs_f64(),
        );
        assert!(writes <= trace.len() as u64);
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    calls(bench);
    catch_up(bench);
}
