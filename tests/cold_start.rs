//! A freshly started process: the first calls of a function on Redis already load once per key.
//! This binary has one test, so its first cached call is the process's first Redis command.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachette::cached;
use support::RedisServer;

static TIERED_RUNS: AtomicUsize = AtomicUsize::new(0);
static REDIS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "tiered")]
async fn tiered(id: u64) -> u64 {
    TIERED_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[cached(ttl = 60, store = "redis")]
async fn shared(id: u64) -> u64 {
    REDIS_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_calls_of_a_fresh_process_load_once() {
    let server = RedisServer::start();
    cachette::Config::builder()
        .redis_url(server.url())
        .prefix("cold")
        // Generous: a first call waits for the first subscription at most this long, and one
        // that gives up first loads a value the subscription's arrival then voids.
        .redis_timeout(Duration::from_secs(5))
        .install()
        .expect("the first configuration of this process");
    assert_eq!(tiered(1).await, 1);
    assert_eq!(tiered(1).await, 1);
    assert_eq!(
        TIERED_RUNS.load(Ordering::SeqCst),
        1,
        "tiered: {:?}",
        tiered_stats()
    );
    assert_eq!(shared(1).await, 1);
    assert_eq!(shared(1).await, 1);
    assert_eq!(
        REDIS_RUNS.load(Ordering::SeqCst),
        1,
        "redis: {:?}",
        shared_stats()
    );
}
