//! A process that starts while Redis is down: its tiered calls do not each wait for the bus's
//! first subscription. This binary has one test, so its configuration is its own.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachette::cached;

const TIMEOUT: Duration = Duration::from_millis(200);

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "tiered")]
async fn tiered(id: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_at_start_calls_wait_for_the_bus_once_at_most() {
    // A loopback port nothing listens on: connections are refused at once.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cachette::Config::builder()
        .redis_url(format!("redis://127.0.0.1:{port}"))
        .prefix("down")
        .redis_timeout(TIMEOUT)
        .install()
        .expect("the first configuration of this process");
    let started = Instant::now();
    for id in 0..20 {
        assert_eq!(tiered(id).await, id, "the body answers without Redis");
    }
    let took = started.elapsed();
    assert_eq!(RUNS.load(Ordering::SeqCst), 20);
    // Waiting for the first subscription on every call would take 20 timeouts (4 s).
    assert!(took < TIMEOUT * 8, "20 calls with Redis down took {took:?}");
}
