//! Honest caches under ordinary faults, against a real redis-server this binary starts: killed
//! and idle-timed-out connections, a Redis that refuses deletes or freezes, cancelled readers,
//! racing writers. Each test is named after what a user relies on.
//!
//! Tests that kill connections or change the server's settings run one at a time (`serial`).

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use cachette::{cache_put, cached, invalidates};
use support::RedisServer;

const PREFIX: &str = "faults";
/// Long enough that a command on a connection made again (after a kill, an idle close) is
/// answered within it on a loaded machine: a timeout opens the breaker, every call misses
/// until it closes, and these tests check what reached Redis as soon as a call returns.
const TIMEOUT: Duration = Duration::from_secs(1);
const MAX_VALUE_BYTES: usize = 4096;

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = RedisServer::start();
        cachette::Config::builder()
            .redis_url(server.url())
            .prefix(PREFIX)
            .redis_timeout(TIMEOUT)
            .max_value_bytes(MAX_VALUE_BYTES)
            .install()
            .expect("the first configuration of this process");
        server
    })
}

/// One test at a time: they kill every client connection and change server settings.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// The value Redis holds under `key`, `""` for none.
fn in_redis(key: &str) -> String {
    server().cli(&["GET", &format!("{PREFIX}:{key}")])
}

/// Waits until `done()` holds, for at most `limit`.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// The "database": a value per id.
fn db() -> MutexGuard<'static, HashMap<u64, u64>> {
    static DB: OnceLock<Mutex<HashMap<u64, u64>>> = OnceLock::new();
    DB.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn db_get(id: u64) -> u64 {
    db().get(&id).copied().unwrap_or(0)
}

#[cached(ttl = 60, store = "redis", key = "r:{id}")]
async fn on_redis(id: u64) -> u64 {
    db_get(id)
}

#[invalidates(on_redis(id))]
async fn write_redis(id: u64, value: u64) {
    db().insert(id, value);
}

#[cached(ttl = 60, store = "tiered", key = "t:{id}")]
async fn on_tiered(id: u64) -> u64 {
    db_get(id)
}

#[invalidates(on_tiered(id))]
async fn write_tiered(id: u64, value: u64) {
    db().insert(id, value);
}

/// Fills both stores' entries of `id` with `value` and checks that Redis holds it.
async fn fill(id: u64, value: u64) {
    db().insert(id, value);
    assert_eq!(on_redis(id).await, value);
    assert_eq!(on_tiered(id).await, value);
    // The calls return before their values' `SET`s are answered.
    cachette::flush().await;
    assert_eq!(in_redis(&format!("r:{id}")), value.to_string());
    assert_eq!(in_redis(&format!("t:{id}")), value.to_string());
}

/// Both mutators, then: Redis holds neither old entry, and both reads return the new value.
async fn write_and_check(id: u64, value: u64) {
    write_redis(id, value).await;
    write_tiered(id, value).await;
    assert_eq!(
        in_redis(&format!("r:{id}")),
        "",
        "redis: the DEL reached Redis"
    );
    assert_eq!(
        in_redis(&format!("t:{id}")),
        "",
        "tiered: the DEL reached Redis"
    );
    assert_eq!(on_redis(id).await, value);
    assert_eq!(on_tiered(id).await, value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_after_the_connection_was_killed_reaches_redis() {
    let _serial = serial().await;
    server();
    for round in 0..10 {
        let id = 100 + round;
        fill(id, 1).await;
        server().cli(&["CLIENT", "KILL", "TYPE", "normal"]);
        write_and_check(id, 2).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_after_an_idle_timeout_reaches_redis() {
    let _serial = serial().await;
    server();
    fill(200, 1).await;
    server().cli(&["CONFIG", "SET", "timeout", "1"]);
    // Redis closes connections idle for more than a second (as proxies and load balancers do).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server().cli(&["CONFIG", "SET", "timeout", "0"]);
    write_and_check(200, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_invalidation_is_kept_blocks_its_key_and_is_replayed() {
    let _serial = serial().await;
    server();
    fill(300, 1).await;
    // Redis answers DEL with an error (as a replica answers READONLY after a failover).
    server().cli(&["ACL", "SETUSER", "default", "-del", "-unlink"]);
    write_redis(300, 2).await;
    write_tiered(300, 2).await;
    assert_eq!(on_redis_stats().pending_invalidations, 1);
    assert_eq!(on_tiered_stats().pending_invalidations, 1);
    assert_eq!(in_redis("r:300"), "1", "the old value is still in Redis");
    // This process does not read the key from Redis while its delete is pending, and does not
    // write it there either.
    assert_eq!(on_redis(300).await, 2);
    assert_eq!(on_tiered(300).await, 2);
    cachette::flush().await;
    assert_eq!(
        in_redis("r:300"),
        "1",
        "not written while the delete is pending"
    );
    server().cli(&["ACL", "SETUSER", "default", "+del", "+unlink"]);
    let replayed = eventually(Duration::from_secs(5), || {
        in_redis("r:300").is_empty() && in_redis("t:300").is_empty()
    })
    .await;
    assert!(replayed, "the kept deletes reached Redis once it took them");
    assert!(
        eventually(Duration::from_secs(2), || {
            on_redis_stats().pending_invalidations == 0
                && on_tiered_stats().pending_invalidations == 0
        })
        .await
    );
    assert_eq!(on_redis(300).await, 2);
    cachette::flush().await;
    assert_eq!(in_redis("r:300"), "2", "written again once confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutators_during_an_outage_wait_one_timeout_at_most_and_lose_nothing() {
    let _serial = serial().await;
    server();
    for id in 400..420 {
        fill(id, 1).await;
    }
    server().freeze();
    let started = Instant::now();
    for id in 400..420 {
        write_redis(id, 2).await;
        write_tiered(id, 2).await;
    }
    let took = started.elapsed();
    server().thaw();
    // 40 mutators, each with a DEL (and for tiered a PUBLISH): one timeout each would be 40 s
    // and more. The breaker lets through one command per half second.
    assert!(
        took < TIMEOUT * 10,
        "40 mutators against a frozen Redis took {took:?}"
    );
    let replayed = eventually(Duration::from_secs(5), || {
        (400..420).all(|id| {
            in_redis(&format!("r:{id}")).is_empty() && in_redis(&format!("t:{id}")).is_empty()
        })
    })
    .await;
    assert!(replayed, "every delete reached Redis once it was back");
    for id in 400..420 {
        assert_eq!(on_redis(id).await, 2);
        assert_eq!(on_tiered(id).await, 2);
    }
}

#[cached(ttl = 60, store = "redis", key = "big:{id}")]
async fn sized(id: u64) -> String {
    "x".repeat(db_get(id) as usize)
}

#[cache_put(sized(id))]
async fn resize(id: u64, len: u64) -> String {
    db().insert(id, len);
    "x".repeat(len as usize)
}

#[cached(ttl = 60, store = "tiered", key = "tbig:{id}")]
async fn sized_tiered(id: u64) -> String {
    "x".repeat(db_get(id) as usize)
}

#[cache_put(sized_tiered(id))]
async fn resize_tiered(id: u64, len: u64) -> String {
    db().insert(id, len);
    "x".repeat(len as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_cannot_store_drops_the_old_entry() {
    let _serial = serial().await;
    server();
    db().insert(500, 10);
    assert_eq!(sized(500).await.len(), 10);
    assert_eq!(sized_tiered(500).await.len(), 10);
    assert_eq!(sized_tiered(500).await.len(), 10, "now in the memory tier");
    // Over the size cap: not stored, and the old entry must not stay.
    let big = MAX_VALUE_BYTES as u64 * 2;
    resize(500, big).await;
    resize_tiered(500, big).await;
    assert_eq!(in_redis("big:500"), "", "the old value was deleted");
    assert_eq!(in_redis("tbig:500"), "");
    assert_eq!(sized(500).await.len(), big as usize);
    assert_eq!(sized_tiered(500).await.len(), big as usize);
}

#[cached(ttl = 60, store = "redis", key = "nan:{id}")]
async fn ratio(id: u64) -> Option<f64> {
    RATIO_RUNS.fetch_add(1, Ordering::SeqCst);
    Some(if id == 0 { f64::NAN } else { f64::INFINITY })
}

static RATIO_RUNS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_value_that_would_not_read_back_as_itself_is_not_stored() {
    let _serial = serial().await;
    server();
    for id in [0, 1] {
        let before = ratio_stats();
        let runs = RATIO_RUNS.load(Ordering::SeqCst);
        for _ in 0..2 {
            let value = ratio(id).await.expect("Some, never a None read back");
            assert!(value.is_nan() || value.is_infinite());
        }
        assert_eq!(RATIO_RUNS.load(Ordering::SeqCst), runs + 2, "never cached");
        assert_eq!(in_redis(&format!("nan:{id}")), "");
        let after = ratio_stats();
        assert_eq!(after.encode_errors, before.encode_errors + 2);
        assert_eq!(after.decode_errors, before.decode_errors);
    }
}

/// The "database" of the unrelated-keys test: its loads, and a slow body.
static SPREAD_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, capacity = 100)]
async fn spread(id: u64) -> u64 {
    SPREAD_LOADS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2)).await;
    id
}

static SPREAD_REDIS_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis")]
async fn spread_redis(id: u64) -> u64 {
    SPREAD_REDIS_LOADS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2)).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_one_key_costs_other_keys_nothing() {
    let _serial = serial().await;
    server();
    static INVALIDATIONS: AtomicU64 = AtomicU64::new(0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let invalidator = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // A key nobody reads, over and over, while the others load.
                spread_invalidate(999).await;
                spread_redis_invalidate(999).await;
                INVALIDATIONS.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    // Every load below overlaps invalidations.
    assert!(
        eventually(Duration::from_secs(5), || INVALIDATIONS
            .load(Ordering::SeqCst)
            > 20)
        .await
    );
    for _round in 0..20 {
        let reads = (0..20u64).map(|id| async move {
            assert_eq!(spread(id).await, id);
            assert_eq!(spread_redis(id).await, id);
        });
        futures::future::join_all(reads).await;
    }
    stop.store(true, Ordering::Relaxed);
    invalidator.await.unwrap();
    assert_eq!(
        SPREAD_LOADS.load(Ordering::SeqCst),
        20,
        "memory: one load per key"
    );
    assert_eq!(
        SPREAD_REDIS_LOADS.load(Ordering::SeqCst),
        20,
        "redis: one load per key"
    );
}

/// The "database" of the clear test: every value carries the generation it was read at.
static LISTING: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, store = "tiered", key = "all:{id}")]
async fn listed(id: u64) -> u64 {
    let generation = LISTING.load(Ordering::SeqCst);
    tokio::task::yield_now().await;
    generation * 1000 + id
}

#[invalidates(all(listed))]
async fn relist() {
    LISTING.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_tiered_clear_no_entry_from_before_is_read() {
    let _serial = serial().await;
    server();
    for round in 0..5 {
        for id in 0..200 {
            listed(id).await;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Readers keep refilling the memory tier from Redis while the clear runs.
        let readers: Vec<_> = (0..4u64)
            .map(|r| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut id = r;
                    while !stop.load(Ordering::Relaxed) {
                        listed(id % 200).await;
                        id += 7;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        relist().await;
        let generation = LISTING.load(Ordering::SeqCst);
        let mut stale = 0;
        for id in 0..200 {
            if listed(id).await / 1000 < generation {
                stale += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.await.unwrap();
        }
        assert_eq!(stale, 0, "round {round}: entries from before the clear");
    }
}

/// The versioned "database" of the stress test: a version per key, bumped by each write.
static VERSIONS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
/// The newest version of each key whose mutator has returned.
static COMMITTED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

async fn read_version(id: u64) -> u64 {
    let version = VERSIONS[id as usize].load(Ordering::SeqCst);
    // Between the database read and the cache write, as a real body's round trip would be.
    tokio::task::yield_now().await;
    version
}

#[cached(ttl = 60, store = "redis", key = "stress-r:{id}")]
async fn stress_redis(id: u64) -> u64 {
    read_version(id).await
}

/// Writes a new version; returns it.
#[invalidates(stress_redis(id))]
async fn bump_redis(id: u64) -> u64 {
    VERSIONS[id as usize].fetch_add(1, Ordering::SeqCst) + 1
}

#[cached(ttl = 60, store = "tiered", key = "stress-t:{id}")]
async fn stress_tiered(id: u64) -> u64 {
    read_version(id).await
}

/// Writes a new version; returns it.
#[invalidates(stress_tiered(id))]
async fn bump_tiered(id: u64) -> u64 {
    VERSIONS[id as usize].fetch_add(1, Ordering::SeqCst) + 1
}

#[cached(ttl = 60)]
async fn stress_memory(id: u64) -> u64 {
    read_version(id).await
}

/// Writes a new version; returns it.
#[invalidates(stress_memory(id))]
async fn bump_memory(id: u64) -> u64 {
    VERSIONS[id as usize].fetch_add(1, Ordering::SeqCst) + 1
}

/// Polls `inner` at most `polls` times, then drops it: a caller that gives up right after one
/// of the call's awaits completed (a `GET` answered, a body done, a `SET` answered), before the
/// call went on. `None` if it gave up.
struct GiveUp<F> {
    inner: std::pin::Pin<Box<F>>,
    polls: u32,
}

impl<F: std::future::Future> std::future::Future for GiveUp<F> {
    type Output = Option<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if self.polls == 0 {
            return std::task::Poll::Ready(None);
        }
        self.polls -= 1;
        self.inner.as_mut().poll(cx).map(Some)
    }
}

/// What one stress run saw.
#[derive(Debug, Default)]
struct Stress {
    reads: u64,
    cancelled: u64,
    writes: u64,
    kills: u64,
    /// Reads that returned a version older than one whose write had returned before the
    /// read began.
    stale: u64,
    /// Keys whose cached value, read after every writer stopped, is not the database's.
    left_stale: u64,
}

/// Readers, cancelled readers and writers on 8 keys for `run`, while every client
/// connection is killed every 300 ms.
async fn stress<R, RF, W, WF>(read: R, write: W, run: Duration) -> Stress
where
    R: Fn(u64) -> RF + Copy + Send + 'static,
    RF: std::future::Future<Output = u64> + Send,
    W: Fn(u64) -> WF + Copy + Send + 'static,
    WF: std::future::Future<Output = u64> + Send,
{
    for (v, c) in VERSIONS.iter().zip(&COMMITTED) {
        let now = v.load(Ordering::SeqCst);
        c.store(now, Ordering::SeqCst);
    }
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for reader in 0..12u64 {
        tasks.push(tokio::spawn(async move {
            let mut seen = Stress::default();
            let mut i = reader;
            while Instant::now() < deadline {
                let id = i % 8;
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407)
                    >> 7;
                let floor = COMMITTED[id as usize].load(Ordering::SeqCst);
                if reader % 3 == 0 {
                    // A caller that gives up after 0–4 ms.
                    let limit = Duration::from_micros(i % 4000);
                    if tokio::time::timeout(limit, read(id)).await.is_err() {
                        seen.cancelled += 1;
                        continue;
                    }
                } else if reader % 3 == 1 {
                    // A caller that gives up right after one of the call's awaits.
                    let polls = 1 + (i % 6) as u32;
                    let call = GiveUp {
                        inner: Box::pin(read(id)),
                        polls,
                    };
                    if call.await.is_none() {
                        seen.cancelled += 1;
                        continue;
                    }
                }
                let got = read(id).await;
                seen.reads += 1;
                if got < floor {
                    seen.stale += 1;
                }
                // Memory hits never wait: let the writers and the bus run.
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    for writer in 0..4u64 {
        tasks.push(tokio::spawn(async move {
            let mut seen = Stress::default();
            let mut i = writer;
            while Instant::now() < deadline {
                let id = i % 8;
                i += 3;
                let version = write(id).await;
                seen.writes += 1;
                COMMITTED[id as usize].fetch_max(version, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            seen
        }));
    }
    let killer = tokio::task::spawn_blocking(move || {
        let mut kills = 0;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(300));
            server().cli(&["CLIENT", "KILL", "TYPE", "normal"]);
            kills += 1;
        }
        kills
    });
    let mut total = Stress::default();
    for task in tasks {
        let seen = task.await.unwrap();
        total.reads += seen.reads;
        total.cancelled += seen.cancelled;
        total.writes += seen.writes;
        total.stale += seen.stale;
    }
    total.kills = killer.await.unwrap();
    // Cancelled fills finish in tasks of their own: give them a moment, then every key must
    // read as the database holds it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in 0..8 {
        if read(id).await != VERSIONS[id as usize].load(Ordering::SeqCst) {
            total.left_stale += 1;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_returns_a_value_older_than_a_write_that_returned_before_it() {
    let _serial = serial().await;
    server();
    for (store, seen) in [
        (
            "memory",
            stress(stress_memory, bump_memory, Duration::from_secs(2)).await,
        ),
        (
            "redis",
            stress(stress_redis, bump_redis, Duration::from_secs(3)).await,
        ),
        (
            "tiered",
            stress(stress_tiered, bump_tiered, Duration::from_secs(3)).await,
        ),
    ] {
        println!("stress {store}: {seen:?}");
        assert!(
            seen.reads > 1000 && seen.writes > 100 && seen.cancelled > 10,
            "{store}: {seen:?}"
        );
        assert_eq!(seen.stale, 0, "{store}: stale reads: {seen:?}");
        assert_eq!(seen.left_stale, 0, "{store}: stale entries left: {seen:?}");
    }
}
