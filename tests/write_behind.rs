//! `#[write_behind]` as a user writes it: the cache now, a recording "database" later.
//!
//! `flush()` waits for every queue in the process, so the tests take turns.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use cachette::{cached, write_behind, WriteFailure};
use tokio::sync::watch;

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The Redis of the one test that uses it, configured before any cached function runs.
static SERVER: LazyLock<Mutex<support::RedisServer>> = LazyLock::new(|| {
    let server = support::RedisServer::start();
    let (clock, hand) = cachette::Clock::manual();
    HAND.set(hand).ok();
    cachette::Config::builder()
        .clock(clock)
        .redis_url(server.url())
        .prefix("write-behind")
        .redis_timeout(Duration::from_millis(500))
        .install()
        .unwrap();
    Mutex::new(server)
});

/// The memory store's clock, moved by hand (Redis keeps its own time).
static HAND: std::sync::OnceLock<cachette::ManualClock> = std::sync::OnceLock::new();

/// Takes this test's turn, once the process is configured.
async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    LazyLock::force(&SERVER);
    LazyLock::force(&FAILURES);
    TURN.lock().await
}

/// What the failure handler received, by function name.
static FAILURES: LazyLock<Mutex<Vec<WriteFailure>>> = LazyLock::new(|| {
    cachette::on_write_failure(|failure| FAILURES.lock().unwrap().push(failure.clone()));
    Mutex::new(Vec::new())
});

fn failures_of(function: &str) -> Vec<WriteFailure> {
    FAILURES
        .lock()
        .unwrap()
        .iter()
        .filter(|f| f.function.ends_with(function))
        .cloned()
        .collect()
}

/// A "database": the values written per key, in the order they were written.
#[derive(Default)]
struct Db {
    writes: Mutex<HashMap<u64, Vec<u64>>>,
    /// Keys with a write running now.
    running: Mutex<HashSet<u64>>,
    /// Two writes of one key ran at once.
    overlapped: AtomicBool,
    reads: AtomicUsize,
}

impl Db {
    async fn write(&self, key: u64, value: u64, pause: Duration) {
        if !self.running.lock().unwrap().insert(key) {
            self.overlapped.store(true, Ordering::SeqCst);
        }
        tokio::time::sleep(pause).await;
        self.writes
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(value);
        self.running.lock().unwrap().remove(&key);
    }

    fn read(&self, key: u64) -> Option<u64> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.writes
            .lock()
            .unwrap()
            .get(&key)
            .and_then(|w| w.last().copied())
    }

    fn total_writes(&self) -> usize {
        self.writes.lock().unwrap().values().map(Vec::len).sum()
    }
}

/// A gate a stalled body waits at until the test opens it.
struct Gate(LazyLock<watch::Sender<bool>>);

impl Gate {
    const fn new() -> Self {
        Gate(LazyLock::new(|| watch::Sender::new(false)))
    }
    async fn pass(&self) {
        let _ = self.0.subscribe().wait_for(|open| *open).await;
    }
    fn open(&self) {
        self.0.send_replace(true);
    }
    fn close(&self) {
        self.0.send_replace(false);
    }
}

// --- many writers --------------------------------------------------------------------------

static MANY_DB: LazyLock<Db> = LazyLock::new(Db::default);
static EVERY_DB: LazyLock<Db> = LazyLock::new(Db::default);

#[cached]
async fn many(key: u64) -> Option<u64> {
    MANY_DB.read(key)
}

#[write_behind(many(key), value = value)]
async fn write_many(key: u64, value: u64) -> Result<(), String> {
    MANY_DB.write(key, value, Duration::from_millis(1)).await;
    Ok(())
}

#[cached]
async fn every(key: u64) -> Option<u64> {
    EVERY_DB.read(key)
}

#[write_behind(every(key), value = value, coalesce = false)]
async fn write_every(key: u64, value: u64) -> Result<(), String> {
    EVERY_DB.write(key, value, Duration::ZERO).await;
    Ok(())
}

const KEYS: u64 = 100;
const TASKS: u64 = 64;
const CALLS: u64 = 10_000;

/// 64 tasks write 100 keys; each key is written by one task (key % 64), so its call order is
/// that task's. Values grow with each task's calls, so a key's writes must grow too.
async fn write_from_64_tasks<F, Fut>(write: F) -> HashMap<u64, u64>
where
    F: Fn(u64, u64) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        tasks.push(tokio::spawn(async move {
            let own: Vec<u64> = (0..KEYS).filter(|k| k % TASKS == task).collect();
            let mut last = HashMap::new();
            for i in 0..CALLS / TASKS + u64::from(task < CALLS % TASKS) {
                let key = own[(i as usize * 7 + task as usize) % own.len()];
                let value = (task << 32) | i;
                write(key, value).await.unwrap();
                last.insert(key, value);
            }
            last
        }));
    }
    let mut last = HashMap::new();
    for task in tasks {
        last.extend(task.await.unwrap());
    }
    last
}

fn check_db(db: &Db, last: &HashMap<u64, u64>) {
    assert!(
        !db.overlapped.load(Ordering::SeqCst),
        "two writes of one key ran at once"
    );
    let writes = db.writes.lock().unwrap();
    for (key, values) in writes.iter() {
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "key {key}: writes ran out of call order: {values:?}"
        );
        assert_eq!(
            values.last(),
            last.get(key),
            "key {key} does not hold its last value"
        );
    }
    assert_eq!(writes.len(), last.len(), "a key was never written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_writes_from_64_tasks_end_in_order_with_each_keys_last_value() {
    let _turn = turn().await;
    let last = write_from_64_tasks(write_many).await;
    cachette::flush().await;
    check_db(&MANY_DB, &last);
    for (key, value) in &last {
        assert_eq!(
            many(*key).await,
            Some(*value),
            "the cache disagrees with the database"
        );
    }
    let stats = write_many_stats();
    let writes = MANY_DB.total_writes() as u64;
    println!(
        "coalescing: {CALLS} calls, {writes} database writes, {} coalesced",
        stats.coalesced
    );
    assert_eq!(stats.queued, CALLS);
    assert_eq!(stats.written, writes);
    // How many were coalesced depends on scheduling (none, on a loaded machine, is possible):
    // `a_delay_holds_writes_back_and_flush_runs_them_now` counts coalescing exactly.
    assert_eq!(stats.written + stats.coalesced, CALLS);
    assert_eq!((stats.depth, stats.failed), (0, 0));
    assert_eq!(stats.oldest_pending, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_coalescing_every_write_reaches_the_database_in_order() {
    let _turn = turn().await;
    let last = write_from_64_tasks(write_every).await;
    cachette::flush().await;
    check_db(&EVERY_DB, &last);
    assert_eq!(EVERY_DB.total_writes() as u64, CALLS);
    let stats = write_every_stats();
    assert_eq!((stats.written, stats.coalesced), (CALLS, 0));
}

// --- a slow database: read your writes ----------------------------------------------------

static SLOW_DB: LazyLock<Db> = LazyLock::new(Db::default);
static SLOW_GATE: Gate = Gate::new();

#[cached(ttl = 60)]
async fn slow(key: u64) -> Option<u64> {
    SLOW_DB.read(key)
}

#[write_behind(slow(key), value = value)]
async fn write_slow(key: u64, value: u64) {
    SLOW_GATE.pass().await;
    SLOW_DB.write(key, value, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_return_the_pending_value_after_expiry_and_invalidation() {
    let _turn = turn().await;
    SLOW_GATE.close();
    write_slow(1, 10).await;
    assert_eq!(slow(1).await, Some(10), "read right after the call");
    let reads = SLOW_DB.reads.load(Ordering::SeqCst);
    // Expired: the store no longer holds it.
    HAND.get().unwrap().advance(Duration::from_secs(61));
    assert_eq!(slow(1).await, Some(10), "read after the entry expired");
    // Invalidated by another write path.
    slow_invalidate(1).await;
    assert_eq!(
        slow(1).await,
        Some(10),
        "read after the entry was invalidated"
    );
    assert_eq!(
        SLOW_DB.reads.load(Ordering::SeqCst),
        reads,
        "a read went to the database while the write was pending"
    );
    assert!(
        SLOW_DB.writes.lock().unwrap().is_empty(),
        "the body ran early"
    );
    assert_eq!(write_slow_stats().depth, 1);
    assert!(write_slow_stats().oldest_pending.is_some());
    SLOW_GATE.open();
    cachette::flush().await;
    assert_eq!(SLOW_DB.read(1), Some(10));
    slow_invalidate(1).await;
    assert_eq!(slow(1).await, Some(10), "the database has it now");
}

// --- failures -------------------------------------------------------------------------------

static FLAKY_DB: LazyLock<Db> = LazyLock::new(Db::default);
static FLAKY_ATTEMPTS: AtomicU64 = AtomicU64::new(0);

#[cached]
async fn flaky(key: u64) -> Option<u64> {
    FLAKY_DB.read(key)
}

/// Fails its first two attempts, then succeeds.
#[write_behind(flaky(key), value = value)]
async fn write_flaky(key: u64, value: u64) -> Result<(), String> {
    if FLAKY_ATTEMPTS.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err("connection reset".into());
    }
    FLAKY_DB.write(key, value, Duration::ZERO).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_fails_twice_then_succeeds_ends_right() {
    let _turn = turn().await;
    write_flaky(5, 55).await.unwrap();
    cachette::flush().await;
    assert_eq!(FLAKY_DB.read(5), Some(55));
    assert_eq!(flaky(5).await, Some(55));
    let stats = write_flaky_stats();
    assert_eq!((stats.written, stats.retried, stats.failed), (1, 2, 0));
    assert!(failures_of("write_flaky").is_empty());
}

static DOWN_DB: LazyLock<Db> = LazyLock::new(Db::default);

#[cached]
async fn down(key: u64) -> Option<u64> {
    DOWN_DB.read(key)
}

#[write_behind(down(key), value = value, retries = 1)]
async fn write_down(key: u64, value: u64) -> Result<(), String> {
    Err(format!("database is down, {key} = {value} not written"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_always_fails_reaches_the_handler_once_per_write_and_leaves_no_value() {
    let _turn = turn().await;
    for key in 0..3 {
        write_down(key, 100 + key).await.unwrap();
    }
    assert_eq!(down(1).await, Some(101), "pending: the new value");
    cachette::flush().await;
    let failures = failures_of("write_down");
    assert_eq!(failures.len(), 3, "one report per write: {failures:?}");
    for failure in &failures {
        assert_eq!(failure.attempts, 2);
        assert!(failure.error.contains("database is down"), "{failure}");
    }
    for key in 0..3 {
        assert_eq!(
            down(key).await,
            None,
            "the cache kept a value the database refused"
        );
    }
    assert_eq!(down_stats().entries, 0);
    let stats = write_down_stats();
    assert_eq!((stats.failed, stats.retried, stats.depth), (3, 3, 0));
}

static ODD_DB: LazyLock<Db> = LazyLock::new(Db::default);

#[cached]
async fn odd(key: u64) -> Option<u64> {
    ODD_DB.read(key)
}

/// Refuses odd values; panics on 13.
#[write_behind(odd(key), value = value, retries = 1, coalesce = false)]
async fn write_odd(key: u64, value: u64) -> Result<(), String> {
    assert_ne!(value, 13, "unlucky");
    if value % 2 == 1 {
        return Err("odd".into());
    }
    ODD_DB.write(key, value, Duration::ZERO).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_keeps_a_newer_pending_value_and_a_panic_is_a_failure() {
    let _turn = turn().await;
    write_odd(1, 3).await.unwrap(); // fails, while 4 is pending
    write_odd(1, 4).await.unwrap();
    write_odd(2, 13).await.unwrap(); // panics
    write_odd(2, 14).await.unwrap(); // the lane is still alive
    let left = cachette::flush_within(Duration::from_secs(10)).await;
    assert_eq!(left, 0, "a write never ended");
    let reads = ODD_DB.reads.load(Ordering::SeqCst);
    assert_eq!(odd(1).await, Some(4));
    assert_eq!(
        ODD_DB.reads.load(Ordering::SeqCst),
        reads,
        "the failure of 3 dropped the newer entry 4"
    );
    assert_eq!(ODD_DB.read(2), Some(14), "the panic killed the key's lane");
    let failures = failures_of("write_odd");
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures
            .iter()
            .any(|f| f.error.contains("panicked") && f.error.contains("unlucky")),
        "{failures:?}"
    );
}

// --- a stalled database: backpressure and deadlines -----------------------------------------

static STALLED_GATE: Gate = Gate::new();
static STALLED_DB: LazyLock<Db> = LazyLock::new(Db::default);

#[cached]
async fn stalled(key: u64) -> Option<u64> {
    STALLED_DB.read(key)
}

#[write_behind(stalled(key), value = value, capacity = 100, coalesce = false)]
async fn write_stalled(key: u64, value: u64) {
    STALLED_GATE.pass().await;
    STALLED_DB.write(key, value, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_makes_the_next_call_wait_until_there_is_room() {
    let _turn = turn().await;
    STALLED_GATE.close();
    for key in 0..100 {
        tokio::time::timeout(Duration::from_secs(5), write_stalled(key, key))
            .await
            .expect("a call with room waited");
    }
    assert_eq!(write_stalled_stats().depth, 100);
    let call_101 = tokio::spawn(write_stalled(100, 100));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!call_101.is_finished(), "call 101 did not wait for room");
    assert_eq!(
        write_stalled_stats().depth,
        100,
        "the queue grew past its capacity"
    );
    assert_eq!(
        stalled(100).await,
        None,
        "a write still waiting for room must not be in the cache"
    );
    // A caller that gives up while waiting for room leaves nothing behind.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), write_stalled(500, 500)).await;
    assert!(gave_up.is_err());
    STALLED_GATE.open();
    tokio::time::timeout(Duration::from_secs(10), call_101)
        .await
        .expect("call 101 never got room")
        .unwrap();
    cachette::flush().await;
    let written = STALLED_DB
        .writes
        .lock()
        .unwrap()
        .keys()
        .filter(|k| **k <= 100)
        .count();
    assert_eq!(written, 101);
    assert_eq!(
        STALLED_DB.read(500),
        None,
        "a write that never got room ran"
    );
    assert_eq!(stalled(500).await, None);
}

/// On a current-thread runtime, so that the put's task cannot end before the call is dropped.
#[tokio::test(flavor = "current_thread")]
async fn a_caller_that_stops_waiting_after_its_write_was_accepted_loses_nothing() {
    let _turn = turn().await;
    STALLED_GATE.open();
    let queued = write_stalled_stats().queued;
    // Each polled once: accepted, its put under way, then dropped. A put on cachette's thread
    // may already be done at that poll; most are not.
    let keys = 600..620u64;
    let mut dropped = 0;
    for key in keys.clone() {
        if futures::FutureExt::now_or_never(write_stalled(key, key + 1)).is_none() {
            dropped += 1;
        }
    }
    assert!(dropped > 0, "every call finished in its first poll");
    assert_eq!(write_stalled_stats().queued, queued + 20);
    cachette::flush().await;
    for key in keys {
        assert_eq!(
            STALLED_DB.read(key),
            Some(key + 1),
            "the database lost the write"
        );
        let reads = STALLED_DB.reads.load(Ordering::SeqCst);
        assert_eq!(stalled(key).await, Some(key + 1));
        assert_eq!(
            STALLED_DB.reads.load(Ordering::SeqCst),
            reads,
            "the put was lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_within_returns_at_its_deadline_with_the_count_left() {
    let _turn = turn().await;
    STALLED_GATE.close();
    for key in 200..203 {
        write_stalled(key, key).await;
    }
    let start = Instant::now();
    let left = cachette::flush_within(Duration::from_millis(300)).await;
    let took = start.elapsed();
    assert_eq!(left, 3);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "flush_within took {took:?}"
    );
    STALLED_GATE.open();
    assert_eq!(cachette::flush_within(Duration::from_secs(10)).await, 0);
}

static LATER_DB: LazyLock<Db> = LazyLock::new(Db::default);

#[cached]
async fn later(key: u64) -> Option<u64> {
    LATER_DB.read(key)
}

#[write_behind(later(key), value = value, delay = "1h")]
async fn write_later(key: u64, value: u64) {
    LATER_DB.write(key, value, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_holds_writes_back_and_flush_runs_them_now() {
    let _turn = turn().await;
    for value in 1..=5 {
        write_later(9, value).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(LATER_DB.total_writes(), 0, "a write ran before its delay");
    assert_eq!(later(9).await, Some(5));
    let left = cachette::flush_within(Duration::from_secs(5)).await;
    assert_eq!(left, 0, "flush waited out the delay");
    assert_eq!(*LATER_DB.writes.lock().unwrap().get(&9).unwrap(), vec![5]);
    assert_eq!(write_later_stats().coalesced, 4);
}

// --- Redis down -----------------------------------------------------------------------------

static REMOTE_DB: LazyLock<Db> = LazyLock::new(Db::default);
static REMOTE_GATE: Gate = Gate::new();

#[cached(ttl = 60, store = "redis", key = "remote:{key}")]
async fn remote(key: u64) -> Option<u64> {
    REMOTE_DB.read(key)
}

#[write_behind(remote(key), value = value)]
async fn write_remote(key: u64, value: u64) {
    REMOTE_GATE.pass().await;
    REMOTE_DB.write(key, value, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_redis_no_value_read_from_the_database_while_a_write_was_pending_outlives_it() {
    let _turn = turn().await;
    REMOTE_GATE.close();
    write_remote(4, 44).await;
    let cli = |args: &[&str]| SERVER.lock().unwrap().cli(args);
    assert_eq!(
        cli(&["GET", "write-behind:remote:4"]),
        "44",
        "the value was not put in Redis"
    );
    // Another process, with no overlay, misses (the entry expired, say), reads the database's
    // older value, and stores it.
    cli(&["SET", "write-behind:remote:4", "4"]);
    assert_eq!(
        remote(4).await,
        Some(44),
        "this process reads its pending write"
    );
    REMOTE_GATE.open();
    cachette::flush().await;
    assert_eq!(REMOTE_DB.read(4), Some(44));
    assert_eq!(
        remote(4).await,
        Some(44),
        "the older value outlived the write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_read_returns_the_pending_value() {
    let _turn = turn().await;
    REMOTE_GATE.close();
    write_remote(3, 33).await;
    {
        let server = SERVER.lock().unwrap();
        assert_eq!(server.cli(&["GET", "write-behind:remote:3"]), "33");
        server.freeze();
    }
    let reads = REMOTE_DB.reads.load(Ordering::SeqCst);
    assert_eq!(remote(3).await, Some(33));
    assert_eq!(
        REMOTE_DB.reads.load(Ordering::SeqCst),
        reads,
        "the read went to the database"
    );
    REMOTE_GATE.open();
    cachette::flush().await;
    assert_eq!(REMOTE_DB.read(3), Some(33));
    SERVER.lock().unwrap().thaw();
    // The write's end sent a DEL to the frozen server, which timed out and is kept for replay
    // while the client waits out Redis: the next test starts once Redis is back in use.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while remote_stats().pending_invalidations > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the kept DEL was never replayed: {:?}",
            remote_stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Keeps `Arc` in use: the arguments a real body takes.
#[allow(dead_code)]
#[write_behind(many(key), value = value)]
async fn write_with_handle(db: Arc<Db>, key: u64, value: u64) -> Result<(), String> {
    db.write(key, value, Duration::ZERO).await;
    Ok(())
}

/// The caller's runtime ends before the write runs: the write still runs, and `flush` sees it.
#[test]
fn a_write_outlives_the_runtime_of_its_caller() {
    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _turn = main.block_on(turn());
    let short_lived = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    short_lived.block_on(write_later(77, 7));
    drop(short_lived);
    assert_eq!(
        main.block_on(cachette::flush_within(Duration::from_secs(5))),
        0
    );
    assert_eq!(LATER_DB.read(77), Some(7));
}
