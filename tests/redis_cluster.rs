//! `store = "redis"` on a three-master Redis Cluster that this binary starts for itself.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachette::cached;
use support::RedisCluster;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", format = "bincode")]
async fn square(n: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    n * n
}

#[cached(ttl = 60, store = "redis", key = "cube:{n}")]
async fn cube(n: u64) -> u64 {
    n * n * n
}

static TIERED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "tiered")]
async fn tiered_double(n: u64) -> u64 {
    TIERED_RUNS.fetch_add(1, Ordering::SeqCst);
    n * 2
}

#[tokio::test]
async fn keys_spread_over_all_masters_and_read_back() {
    let cluster = RedisCluster::start();
    cachette::Config::builder()
        .redis_url(cluster.urls().join(","))
        // Generous, so that a loaded machine does not trip it: every call here must reach Redis.
        .redis_timeout(Duration::from_secs(5))
        .install()
        .unwrap();

    for n in 0..300 {
        assert_eq!(square(n).await, n * n);
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), 300);
    // Every value is in Redis once its SET is answered.
    cachette::flush().await;
    for n in 0..300 {
        assert_eq!(square(n).await, n * n);
    }
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        300,
        "every second call is a hit"
    );
    assert_eq!(square_stats().hits, 300);
    assert_eq!(square_stats().store_errors, 0);

    let per_node = cluster.keys_per_node();
    assert_eq!(per_node.iter().sum::<usize>(), 300);
    assert!(
        per_node.iter().all(|&n| n > 0),
        "keys on every master: {per_node:?}"
    );

    square_invalidate(7).await;
    assert_eq!(square(7).await, 49);
    assert_eq!(RUNS.load(Ordering::SeqCst), 301);

    // Clearing scans every master.
    square_clear().await;
    assert_eq!(cluster.keys_per_node().iter().sum::<usize>(), 0);

    for n in 0..30 {
        assert_eq!(cube(n).await, n * n * n);
    }
    cachette::flush().await;
    assert_eq!(cube_stats().store_errors, 0);
    let node = &cluster.nodes()[0];
    let reply = node.cli(&["-c", "GET", "cachette:cube:3"]);
    assert_eq!(
        reply, "27",
        "readable key, plain JSON, on whichever master owns it"
    );

    // The tiered store on the cluster: its memory tier fills, and invalidation messages
    // published on any node reach this process through whichever node it subscribed to.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cachette::stats::bus_subscriptions() == 0 {
        tiered_double(1).await;
        assert!(std::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for n in 0..30 {
        assert_eq!(tiered_double(n).await, n * 2);
        cachette::flush().await;
        assert_eq!(tiered_double(n).await, n * 2);
    }
    let stats = tiered_double_stats();
    assert!(stats.l1_hits >= 30, "{stats:?}");
    // Another process (here redis-cli, on the last node) drops every entry.
    // (PUBLISH answers with the subscribers on that node only; the cluster forwards the
    // message to the others, where this process listens.)
    cluster.nodes()[2].cli(&[
        "PUBLISH",
        "cachette:invalidations",
        r#"{"ns":"redis_cluster::tiered_double","all":true}"#,
    ]);
    while tiered_double_stats().remote_invalidations == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the message never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        tiered_double_stats().entries,
        0,
        "the memory tier was dropped"
    );
    let l1_hits = tiered_double_stats().l1_hits;
    assert_eq!(tiered_double(3).await, 6);
    assert_eq!(
        tiered_double_stats().l1_hits,
        l1_hits,
        "not served from memory"
    );
    cachette::flush().await;
    assert_eq!(tiered_double(3).await, 6);
    assert_eq!(
        tiered_double_stats().l1_hits,
        l1_hits + 1,
        "memory refilled"
    );
    let runs = TIERED_RUNS.load(Ordering::SeqCst);
    tiered_double_invalidate(3).await;
    assert_eq!(tiered_double(3).await, 6);
    assert_eq!(
        TIERED_RUNS.load(Ordering::SeqCst),
        runs + 1,
        "dropped from both tiers"
    );
}
