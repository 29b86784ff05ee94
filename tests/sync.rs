//! `#[cached]` on sync functions (memory store), used as a user would: from plain threads and
//! from inside a tokio runtime. This binary installs a manual clock before its first cached
//! call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, OnceLock};
use std::time::Duration;

use cachette::{cached, invalidates, Clock, ManualClock};

/// The process's clock hand, and the right to move it: one test at a time.
fn hand() -> (&'static ManualClock, std::sync::MutexGuard<'static, ()>) {
    static TURN: Mutex<()> = Mutex::new(());
    static HAND: OnceLock<ManualClock> = OnceLock::new();
    let turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let hand = HAND.get_or_init(|| {
        let (clock, hand) = Clock::manual();
        cachette::Config::builder()
            .clock(clock)
            .install()
            .expect("the first configuration of this process");
        hand
    });
    (hand, turn)
}

static PRICE_LOADS: AtomicUsize = AtomicUsize::new(0);

/// The price of `qty` items.
#[cached(ttl = "1m")]
fn price(sku: &str, qty: u32) -> Result<u64, String> {
    PRICE_LOADS.fetch_add(1, Ordering::SeqCst);
    if sku.is_empty() {
        return Err("no sku".into());
    }
    Ok(sku.len() as u64 * u64::from(qty))
}

#[test]
fn a_sync_function_hits_expires_and_has_sync_companions() {
    let (hand, _turn) = hand();
    let loads = || PRICE_LOADS.load(Ordering::SeqCst);
    assert_eq!(price("abc", 2), Ok(6));
    assert_eq!(price("abc", 2), Ok(6));
    assert_eq!(loads(), 1, "the second call is a hit");
    assert!(price("", 1).is_err());
    assert!(price("", 1).is_err());
    assert_eq!(loads(), 3, "Err is never stored");

    hand.advance(Duration::from_secs(59));
    assert_eq!(price("abc", 2), Ok(6));
    assert_eq!(loads(), 3);
    hand.advance(Duration::from_secs(1));
    assert_eq!(price("abc", 2), Ok(6));
    assert_eq!(loads(), 4, "expired at its ttl");

    price_invalidate("abc", 2); // sync, like the function
    assert_eq!(price("abc", 2), Ok(6));
    assert_eq!(loads(), 5);
    price_clear();
    assert_eq!(price_stats().entries, 0);
    assert_eq!(price_uncached("abcd", 1), Ok(4));

    let stats = price_stats();
    assert_eq!(stats.hits, 2);
    assert_eq!(stats.loads, 5);
    assert_eq!(stats.load_errors, 2);
    assert_eq!(stats.misses, 5);
}

static SLOW_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn slow(id: u64) -> String {
    SLOW_LOADS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    format!("slow {id}")
}

#[test]
fn concurrent_misses_on_threads_run_the_body_once() {
    let _turn = hand();
    let start = Barrier::new(16);
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                start.wait();
                assert_eq!(slow(7), "slow 7");
            });
        }
    });
    assert_eq!(SLOW_LOADS.load(Ordering::SeqCst), 1);
    let stats = slow_stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.hits + stats.misses, 16);
}

static FLAKY_LOADS: AtomicUsize = AtomicUsize::new(0);

/// Its first run panics while others wait on it; later runs work.
#[cached]
fn flaky(id: u64) -> u64 {
    let run = FLAKY_LOADS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    if run == 0 {
        panic!("the leader panics");
    }
    id
}

#[test]
fn a_leader_that_panics_releases_the_threads_waiting_on_it() {
    let _turn = hand();
    let leader = std::thread::spawn(|| flaky(1));
    // Let the leader start its run, then wait on it.
    while FLAKY_LOADS.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let (done, results) = std::sync::mpsc::channel();
    for _ in 0..4 {
        let done = done.clone();
        std::thread::spawn(move || done.send(flaky(1)).unwrap());
    }
    assert!(
        leader.join().is_err(),
        "the leader's panic reaches its caller"
    );
    for _ in 0..4 {
        let result = results.recv_timeout(Duration::from_secs(10));
        assert_eq!(result, Ok(1), "released, not deadlocked");
    }
    assert!(FLAKY_LOADS.load(Ordering::SeqCst) >= 2);
    assert_eq!(flaky(1), 1);
    assert!(flaky_stats().load_errors >= 1);
}

static NAME_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "10m")]
fn name(id: u64) -> Option<String> {
    NAME_LOADS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    Some(format!("name {id}"))
}

/// An async write path drops a sync function's entry.
#[invalidates(name(id))]
async fn rename(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

#[test]
fn inside_a_tokio_runtime_sync_calls_share_one_load() {
    let _turn = hand();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        // From runtime threads and blocking-pool threads at once: one load, nobody stuck.
        let mut calls = Vec::new();
        for i in 0..8 {
            if i % 2 == 0 {
                calls.push(tokio::task::spawn_blocking(|| name(3)));
            } else {
                calls.push(tokio::spawn(async { name(3) }));
            }
        }
        for call in calls {
            assert_eq!(call.await.unwrap().as_deref(), Some("name 3"));
        }
        assert_eq!(NAME_LOADS.load(Ordering::SeqCst), 1);
        rename(3).await.unwrap();
        assert_eq!(name(3).as_deref(), Some("name 3"));
        assert_eq!(NAME_LOADS.load(Ordering::SeqCst), 2);
        name_invalidate(3); // the sync companion, called inside the runtime
        assert_eq!(name(3).as_deref(), Some("name 3"));
        assert_eq!(NAME_LOADS.load(Ordering::SeqCst), 3);
    });
    // And on a current-thread runtime, where the caller is the runtime's only thread.
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    current.block_on(async {
        name_clear();
        assert_eq!(name(4).as_deref(), Some("name 4"));
        assert_eq!(name(4).as_deref(), Some("name 4"));
    });
    assert_eq!(NAME_LOADS.load(Ordering::SeqCst), 4);
}
