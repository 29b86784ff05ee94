//! A fill whose `SET` timed out leaves nothing in Redis once the server answers again: a
//! `DEL` follows it on its connection, so an invalidation that could not reach Redis meanwhile
//! is never undone by the late `SET`. Its own binary: it owns its server and the process's
//! configuration.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cachette::cached;
use support::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(200);

/// The server's pid, for the body to freeze it.
static SERVER_PID: AtomicU32 = AtomicU32::new(0);

/// Freezes Redis while it runs: its `GET` was answered, its `SET` will not be in time.
#[cached(ttl = 60, store = "redis", key = "ft:{id}")]
async fn freezes_redis(id: u64) -> u64 {
    let pid = SERVER_PID.load(Ordering::SeqCst);
    if pid != 0 {
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("kill -STOP");
        assert!(status.success());
    }
    id
}

fn fill_timeout_leaves_nothing(runtime: tokio::runtime::Runtime, server: &RedisServer, id: u64) {
    runtime.block_on(async {
        // The caller's connection is made and answered once, with Redis up.
        SERVER_PID.store(0, Ordering::SeqCst);
        assert_eq!(freezes_redis(id).await, id);
        let key = format!("ft:ft:{id}");
        assert_eq!(
            server.cli(&["EXISTS", &key]),
            "1",
            "a fill with Redis up is kept"
        );
        server.cli(&["DEL", &key]);

        SERVER_PID.store(server.pid().expect("running"), Ordering::SeqCst);
        let errors = freezes_redis_stats().store_errors;
        let started = Instant::now();
        assert_eq!(freezes_redis(id).await, id);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the call did not wait on Redis"
        );
        assert!(
            freezes_redis_stats().store_errors > errors,
            "the SET timed out and was counted"
        );
        server.thaw();
        // Redis now runs what it was sent while frozen: the late SET, then the DEL behind it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            assert_eq!(
                server.cli(&["EXISTS", &key]),
                "0",
                "the SET that timed out landed and stayed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The breaker lets commands through again.
        tokio::time::sleep(Duration::from_millis(600)).await;
    });
}

#[test]
fn a_set_that_timed_out_is_followed_by_a_delete() {
    let server = RedisServer::start();
    cachette::Config::builder()
        .redis_url(server.url())
        .prefix("ft")
        .redis_timeout(TIMEOUT)
        .install()
        .unwrap();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    fill_timeout_leaves_nothing(current, &server, 1);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    fill_timeout_leaves_nothing(multi, &server, 2);
}
