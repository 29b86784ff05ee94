//! Fail-open: Redis absent at start, killed mid-run, restarted, frozen. Every call still
//! returns the body's result, within the timeout plus the body's time, and the cache is used
//! again once Redis answers. Its own binary: it owns its server and the process's configuration.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachette::cached;
use support::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(100);
const BODY: Duration = Duration::from_millis(10);

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", key = "failover:{id}")]
async fn lookup(id: u64) -> Result<u64, String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    Ok(id * 2)
}

/// Calls `lookup(id)` and checks the result; returns whether the body ran.
async fn call(id: u64) -> bool {
    let before = RUNS.load(Ordering::SeqCst);
    assert_eq!(lookup(id).await, Ok(id * 2), "the call never fails");
    RUNS.load(Ordering::SeqCst) > before
}

/// Waits (polling, up to 15 s) until a key is cached again: a call, its store, then a hit.
async fn until_cached(id: u64) -> Duration {
    let started = Instant::now();
    loop {
        call(id).await;
        // The second call must find the value in Redis, not in the first one's load.
        cachette::flush().await;
        if !call(id).await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the cache was not used again within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The same story on both kinds of runtime, each driving a connection of its own: a
/// multi-thread one, then current-thread ones, including a current-thread runtime replaced by
/// another on the same thread. Between them, a multi-thread runtime that replaces a shut-down
/// one finds the cache at once: the connection the first one drove went with it, and cost no
/// call an error.
#[test]
fn calls_survive_redis_going_away_and_the_cache_comes_back() {
    let mut server = RedisServer::start();
    cachette::Config::builder()
        .redis_url(server.url())
        .redis_timeout(TIMEOUT)
        .install()
        .unwrap();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    multi.block_on(scenario(&mut server, 0));
    drop(multi);
    let errors = lookup_stats().store_errors;
    let next = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    next.block_on(async {
        for _ in 0..3 {
            assert!(!call(400).await, "a hit, on the first call already");
        }
    });
    drop(next);
    assert_eq!(lookup_stats().store_errors, errors, "no store error");
    for round in 1..=2 {
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        current.block_on(scenario(&mut server, round * 1_000));
    }

    // Two current-thread runtimes alive on one thread, taking turns: each reads through the
    // connection it drives itself, never through the other's, which is idle between its turns.
    // (2_400 is the last key cached above.)
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let errors = lookup_stats().store_errors;
    // A read sent on the other runtime's connection would time out: a miss and a store error.
    for turn in 0..6 {
        let runtime = if turn % 2 == 0 { &first } else { &second };
        assert!(!runtime.block_on(call(2_400)), "a hit on turn {turn}");
    }
    assert_eq!(lookup_stats().store_errors, errors, "no store error");
}

async fn scenario(server: &mut RedisServer, base: u64) {
    // Absent at start.
    server.kill();
    let errors_at_start = lookup_stats().store_errors;
    for id in base..base + 5 {
        let started = Instant::now();
        call(id).await; // checks the body's result came back
        assert!(
            started.elapsed() < TIMEOUT * 5 + BODY,
            "{:?}",
            started.elapsed()
        );
    }
    assert!(
        lookup_stats().store_errors > errors_at_start,
        "this round's failures are counted"
    );

    // Comes up: used without a restart of this process.
    server.restart();
    let took = until_cached(base + 100).await;
    println!("cache used again {took:?} after Redis came up");
    assert!(!call(base + 100).await, "a hit");

    // Killed mid-run: calls go on, uncached.
    server.kill();
    let errors_before = lookup_stats().store_errors;
    for _ in 0..5 {
        let started = Instant::now();
        assert!(call(base + 100).await, "no cache: the body runs every time");
        assert!(
            started.elapsed() < TIMEOUT * 5 + BODY,
            "{:?}",
            started.elapsed()
        );
    }
    assert!(lookup_stats().store_errors > errors_before);

    // Back again.
    server.restart();
    until_cached(base + 200).await;

    // Frozen: the connection stays open but nothing answers. Each call is bounded by the
    // timeout plus the body (with slack for a loaded machine), never by Redis; and the breaker
    // lets at most one call per half second (RETRY_AFTER) wait for the timeout: the others
    // skip Redis. Without it every call would wait TIMEOUT.
    server.freeze();
    let frozen_at = Instant::now();
    let errors_before = lookup_stats().store_errors;
    let (mut calls, mut slow) = (0u32, 0u32);
    let mut slowest = Duration::ZERO;
    while calls < 10 || frozen_at.elapsed() < Duration::from_millis(1_200) {
        let started = Instant::now();
        call(base + 300).await;
        let took = started.elapsed();
        slowest = slowest.max(took);
        calls += 1;
        if took >= TIMEOUT {
            slow += 1;
        }
    }
    let frozen_for = frozen_at.elapsed();
    server.thaw();
    println!(
        "while Redis was frozen for {frozen_for:?}: {calls} calls, {slow} waited the timeout, \
         slowest {slowest:?}"
    );
    assert!(
        slowest < TIMEOUT + BODY + Duration::from_millis(400),
        "{slowest:?}"
    );
    assert!(
        lookup_stats().store_errors > errors_before,
        "the failures are counted"
    );
    // One window per started half second, and one more for a timeout straddling two.
    let windows = (frozen_for.as_millis() / 500) as u32 + 2;
    assert!(
        slow <= windows,
        "{slow} of {calls} calls waited the timeout in {frozen_for:?}: at most {windows} may"
    );

    until_cached(base + 400).await;
}
