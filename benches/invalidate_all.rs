//! What `#[invalidates(all(f))]` (and `f_clear()`) costs on Redis: `cargo bench --bench invalidate_all`.
//!
//! Fills a Redis that this bench starts itself with N entries of one cached function and N
//! keys of others, then times clearing that function, a single-entry invalidation, and a hit
//! before and after (the read path carries no generation, so it should not move).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use cachette::cached;

#[cached(ttl = 600, store = "redis")]
async fn entry(id: u64) -> u64 {
    id
}

#[cached(ttl = 600, store = "redis")]
async fn other(id: u64) -> u64 {
    id
}

/// Calls `entry` (or `other`) for ids `0..n` from 64 tasks.
async fn fill(n: u64, others: bool) {
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            tokio::spawn(async move {
                let mut id = t;
                while id < n {
                    if others {
                        other(id).await;
                    } else {
                        entry(id).await;
                    }
                    id += 64;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a fill task");
    }
}

async fn hit_latency() -> Duration {
    entry(0).await;
    // Hits from Redis, once the warm-up's value is stored.
    cachette::flush().await;
    let rounds = 2_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(entry(0).await);
    }
    started.elapsed() / rounds
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and gets a quick
    // check of the same path instead of the measurement.
    let sizes: &[u64] = if std::env::args().any(|a| a == "--bench") {
        &[10_000, 100_000]
    } else {
        &[500]
    };
    let server = support::RedisServer::start();
    cachette::Config::builder()
        .redis_url(server.url())
        .redis_timeout(Duration::from_secs(2))
        .install()
        .expect("the first configuration");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        for &n in sizes {
            entry_clear().await;
            other_clear().await;
            fill(n, false).await;
            fill(n, true).await;
            cachette::flush().await;
            let keys = server.cli(&["DBSIZE"]);
            let before = hit_latency().await;

            let started = Instant::now();
            entry_invalidate(1).await;
            let single = started.elapsed();

            let started = Instant::now();
            entry_clear().await;
            let all = started.elapsed();

            let after = hit_latency().await;
            cachette::flush().await;
            let left = server.cli(&["DBSIZE"]);
            // Only `other`'s entries, and the one `entry` that measuring the hit put back.
            assert_eq!(
                left,
                (n + 1).to_string(),
                "all(f) dropped f's entries and nothing else"
            );
            println!(
                "{n:>7} entries of f among {keys:>7} keys: all(f) {all:>10.2?} \
                 ({:.1} µs per entry), one entry {single:>8.2?}; hit {before:.2?} before, \
                 {after:.2?} after; {left} keys left",
                all.as_secs_f64() * 1e6 / n as f64
            );
        }
    });
}
