//! The connections of `store = "redis"`: many reads at once spread over the shared connection
//! too; a miss returns with its value while its `SET` is still on its way, and the key still loads once in the process meanwhile; `cachette::flush()` waits for
//! the `SET`. A fill whose `SET` timed out leaves nothing in Redis once the server answers
//! again: a `DEL` follows it on its connection, so an invalidation that could not reach Redis
//! meanwhile is never undone by the late `SET`. Its own binary: it owns its server and the
//! process's configuration; its tests take turns on the one server.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cachette::cached;
use support::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(1000);

/// The server's pid, for the body to freeze it.
static SERVER_PID: AtomicU32 = AtomicU32::new(0);
/// The server's port, for the body to pause its writes.
static SERVER_PORT: AtomicU32 = AtomicU32::new(0);
static PAUSING_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The one server of this binary, with the process's configuration installed.
fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = RedisServer::start();
        cachette::Config::builder()
            .redis_url(server.url())
            .prefix("ft")
            .redis_timeout(TIMEOUT)
            .install()
            .unwrap();
        SERVER_PORT.store(u32::from(server.port()), Ordering::SeqCst);
        server
    })
}

/// One test at a time: they freeze and pause the shared server.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// Holds Redis's writes for 300 ms while it runs (`CLIENT PAUSE … WRITE`): its `SET` waits,
/// `GET`s do not.
#[cached(ttl = 60, store = "redis", key = "fp:{id}")]
async fn pauses_writes(id: u64) -> u64 {
    PAUSING_RUNS.fetch_add(1, Ordering::SeqCst);
    let port = SERVER_PORT.load(Ordering::SeqCst).to_string();
    let status = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "CLIENT",
            "PAUSE",
            "300",
            "WRITE",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("redis-cli CLIENT PAUSE");
    assert!(status.success());
    id
}

static TWICE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis")]
async fn called_twice(id: u64) -> u64 {
    TWICE_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

/// The second call's `GET` may run before the first call's `SET` (they go on two
/// connections) and come back after that fill has let its flight go: its leader then looks
/// in Redis again rather than loading the key a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_right_after_a_miss_of_its_key_never_loads_it_again() {
    let _turn = TURN.lock().await;
    server();
    const KEYS: u64 = 500;
    let before = TWICE_RUNS.load(Ordering::SeqCst) as u64;
    for id in 0..KEYS {
        assert_eq!(called_twice(id).await, id);
        assert_eq!(called_twice(id).await, id);
    }
    assert_eq!(
        TWICE_RUNS.load(Ordering::SeqCst) as u64 - before,
        KEYS,
        "{:?}",
        called_twice_stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_returns_before_its_set_and_its_key_loads_once_meanwhile() {
    let _turn = TURN.lock().await;
    let server = server();
    let key = "ft:fp:7";
    // The process's connections are made, and answered, before Redis holds writes.
    assert_eq!(called_twice(1 << 40).await, 1 << 40);
    cachette::flush().await;
    assert_eq!(pauses_writes(7).await, 7);
    // The call is back; Redis holds its SET until the pause ends.
    let waiting = cachette::flush_within(Duration::ZERO).await;
    assert!(
        waiting >= 1,
        "the call waited for its SET ({waiting} writes in flight)"
    );
    assert_eq!(server.cli(&["EXISTS", key]), "0", "the SET is still held");
    // A call of the key meanwhile misses Redis, and gets the loaded value from the flight.
    assert_eq!(pauses_writes(7).await, 7);
    assert_eq!(
        PAUSING_RUNS.load(Ordering::SeqCst),
        1,
        "the key loaded twice: {:?}",
        pauses_writes_stats()
    );
    let started = Instant::now();
    cachette::flush().await;
    assert!(
        started.elapsed() < TIMEOUT,
        "flush waited for a timeout, not for the SET"
    );
    assert_eq!(
        server.cli(&["GET", key]),
        "7",
        "flush returned before the SET"
    );
    assert_eq!(cachette::flush_within(Duration::ZERO).await, 0);
    assert_eq!(pauses_writes_stats().store_errors, 0);
}

fn fill_timeout_leaves_nothing(runtime: tokio::runtime::Runtime, server: &RedisServer, id: u64) {
    runtime.block_on(async {
        // The caller's connection is made and answered once, with Redis up.
        SERVER_PID.store(0, Ordering::SeqCst);
        assert_eq!(freezes_redis(id).await, id);
        cachette::flush().await;
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
        assert!(started.elapsed() < TIMEOUT, "the call waited for its SET");
        // The SET times out behind the call.
        assert!(
            cachette::flush_within(TIMEOUT * 3).await == 0,
            "the SET outlived its timeout"
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
    let _turn = TURN.blocking_lock();
    let server = server();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    fill_timeout_leaves_nothing(current, server, 1);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    fill_timeout_leaves_nothing(multi, server, 2);
}

static OFTEN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis")]
async fn read_often(id: u64) -> u64 {
    OFTEN_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

/// The last command of each client of `server`, by client id.
fn last_commands(server: &RedisServer) -> Vec<(String, String)> {
    let field = |line: &str, name: &str| {
        line.split(' ')
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_default()
            .to_owned()
    };
    server
        .cli(&["CLIENT", "LIST"])
        .lines()
        .map(|line| (field(line, "id="), field(line, "cmd=")))
        .collect()
}

/// Many hits at once on one runtime: past a few in flight on the runtime's own read
/// connection, reads take the shared connection (the one writes take), and every one is a hit.
#[test]
fn many_reads_at_once_also_take_the_shared_connection() {
    let _turn = TURN.blocking_lock();
    let server = server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(read_often(1).await, 1);
        cachette::flush().await;
        // The shared connection: the one whose last command was that fill's SET.
        let shared: Vec<String> = last_commands(server)
            .into_iter()
            .filter(|(_, cmd)| cmd == "set")
            .map(|(id, _)| id)
            .collect();
        assert_eq!(shared.len(), 1, "{:?}", last_commands(server));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                tokio::spawn(async {
                    for _ in 0..50 {
                        assert_eq!(read_often(1).await, 1);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let stats = read_often_stats();
        assert_eq!((stats.hits, stats.store_errors), (64 * 50, 0));
        assert_eq!(OFTEN_RUNS.load(Ordering::SeqCst), 1);
        let after = last_commands(server);
        assert!(
            after.contains(&(shared[0].clone(), "get".to_owned())),
            "no read took the shared connection: {after:?}"
        );
    });
}
