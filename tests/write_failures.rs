//! A store failure never fails a write path: `#[invalidates]`, `#[cache_put]`, `all(f)` and
//! `f_clear()` return their own result, promptly, with Redis killed and with Redis frozen, for
//! `store = "redis"` and `"tiered"`. Its own binary: it owns its server and the process's
//! configuration.

mod support;

use std::time::{Duration, Instant};

use cachette::{cache_put, cached, invalidates};
use support::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(200);
/// A write path may wait for a few commands, each bounded by the timeout (the breaker then
/// skips the rest), plus slack for a loaded machine: far below a frozen Redis (forever).
const PROMPT: Duration = Duration::from_millis(2_000);

#[cached(ttl = 60, store = "redis", key = "wf-shared:{id}")]
async fn shared(id: u64) -> u64 {
    id
}

#[cached(ttl = 60, store = "tiered", key = "wf-tiered:{id}")]
async fn tiered(id: u64) -> u64 {
    id
}

#[invalidates(shared(id))]
async fn change_shared(id: u64) -> Result<u64, String> {
    Ok(id + 1)
}

#[cache_put(shared(id))]
async fn put_shared(id: u64) -> Result<u64, String> {
    Ok(id + 2)
}

#[invalidates(all(shared))]
async fn change_all_shared(id: u64) -> Result<u64, String> {
    Ok(id + 3)
}

#[invalidates(tiered(id))]
async fn change_tiered(id: u64) -> Result<u64, String> {
    Ok(id + 1)
}

#[cache_put(tiered(id))]
async fn put_tiered(id: u64) -> Result<u64, String> {
    Ok(id + 2)
}

#[invalidates(all(tiered))]
async fn change_all_tiered(id: u64) -> Result<u64, String> {
    Ok(id + 3)
}

/// Runs `write`, checks it returned `expected` within [`PROMPT`].
async fn prompt<F: std::future::Future>(what: &str, write: F) -> F::Output {
    let started = Instant::now();
    let out = write.await;
    let took = started.elapsed();
    assert!(took < PROMPT, "{what} took {took:?}");
    out
}

/// Every write path of both stores, checked for its own `Ok` and promptness.
async fn every_write_path(state: &str, id: u64) {
    let ok = |got: Result<u64, String>, want: u64, what: &str| {
        assert_eq!(got, Ok(want), "{what} with Redis {state}");
    };
    ok(
        prompt("invalidates (redis)", change_shared(id)).await,
        id + 1,
        "invalidates",
    );
    ok(
        prompt("cache_put (redis)", put_shared(id)).await,
        id + 2,
        "cache_put",
    );
    ok(
        prompt("all(f) (redis)", change_all_shared(id)).await,
        id + 3,
        "all(f)",
    );
    prompt("f_clear (redis)", shared_clear()).await;
    ok(
        prompt("invalidates (tiered)", change_tiered(id)).await,
        id + 1,
        "invalidates",
    );
    ok(
        prompt("cache_put (tiered)", put_tiered(id)).await,
        id + 2,
        "cache_put",
    );
    ok(
        prompt("all(f) (tiered)", change_all_tiered(id)).await,
        id + 3,
        "all(f)",
    );
    prompt("f_clear (tiered)", tiered_clear()).await;
}

/// Fills both functions' entries while Redis answers (so the write paths have work to do).
async fn fill(id: u64) {
    for _ in 0..2 {
        assert_eq!(shared(id).await, id);
        assert_eq!(tiered(id).await, id);
    }
    // The stores end behind the calls.
    cachette::flush().await;
}

#[test]
fn write_paths_return_their_own_result_promptly_when_redis_fails() {
    let mut server = RedisServer::start();
    cachette::Config::builder()
        .redis_url(server.url())
        .prefix("wf")
        .redis_timeout(TIMEOUT)
        .install()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        fill(1).await;
        assert_eq!(server.cli(&["EXISTS", "wf:wf-shared:1"]), "1");

        server.kill();
        every_write_path("killed", 1).await;
        let errors = shared_stats().store_errors + tiered_stats().store_errors;
        assert!(errors > 0, "the failures were met and counted");

        server.restart();
        // The breaker lets commands through again within a second.
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.cli(&["EXISTS", "wf:wf-shared:2"]) != "1" {
            assert!(Instant::now() < deadline, "Redis was not used again");
            fill(2).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        server.freeze();
        let errors = shared_stats().store_errors + tiered_stats().store_errors;
        every_write_path("frozen", 2).await;
        assert!(
            shared_stats().store_errors + tiered_stats().store_errors > errors,
            "the failures were met and counted"
        );
        server.thaw();
    });
}
