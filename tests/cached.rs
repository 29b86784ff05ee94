//! `#[cached]` on the memory store, used as a user would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachette::cached;
use tokio::sync::Notify;

static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
struct DbError;

/// The price of `qty` items.
#[cached(ttl = 300)]
async fn price(sku: &str, qty: u32) -> Result<u64, DbError> {
    PRICE_RUNS.fetch_add(1, Ordering::SeqCst);
    if sku.is_empty() {
        return Err(DbError);
    }
    Ok(sku.len() as u64 * u64::from(qty))
}

#[tokio::test]
async fn a_second_call_is_a_hit_and_errors_are_not_cached() {
    assert_eq!(price("abc", 2).await.unwrap(), 6);
    assert_eq!(price("abc", 2).await.unwrap(), 6);
    assert_eq!(
        PRICE_RUNS.load(Ordering::SeqCst),
        1,
        "the second call is a hit"
    );
    assert_eq!(
        price("abc", 3).await.unwrap(),
        9,
        "other arguments, other entry"
    );
    assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), 2);

    assert!(price("", 1).await.is_err());
    assert!(price("", 1).await.is_err());
    assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), 4, "Err is never stored");

    let stats = price_stats();
    assert_eq!(stats.hits, 1);
    assert_eq!(stats.misses, 4);
    assert_eq!(stats.loads, 4);
    assert_eq!(stats.load_errors, 2);
    assert_eq!(stats.entries, 2);
    let listed = cachette::stats::all();
    let (_, listed) = listed
        .iter()
        .find(|(ns, _)| ns.ends_with("::price"))
        .expect("price is listed");
    assert_eq!(listed.hits, 1);
}

static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn find(id: u32) -> Option<String> {
    FIND_RUNS.fetch_add(1, Ordering::SeqCst);
    (id % 2 == 0).then(|| format!("user {id}"))
}

static FIND_NONE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache_none = true)]
async fn find_remembering_none(id: u32) -> Option<String> {
    FIND_NONE_RUNS.fetch_add(1, Ordering::SeqCst);
    (id % 2 == 0).then(|| format!("user {id}"))
}

#[tokio::test]
async fn none_is_cached_only_when_asked() {
    for _ in 0..3 {
        assert_eq!(find(2).await.as_deref(), Some("user 2"));
        assert_eq!(find(1).await, None);
    }
    assert_eq!(FIND_RUNS.load(Ordering::SeqCst), 1 + 3);

    for _ in 0..3 {
        assert_eq!(find_remembering_none(1).await, None);
    }
    assert_eq!(FIND_NONE_RUNS.load(Ordering::SeqCst), 1);
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1m")]
async fn slow(id: u64) -> String {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    format!("slow {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_misses_run_the_body_once() {
    let tasks: Vec<_> = (0..200).map(|_| tokio::spawn(slow(7))).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "slow 7");
    }
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
    let stats = slow_stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.hits + stats.misses, 200);
}

static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Panics on its first run, fails with a non-`Clone` error on its second, then works.
#[cached(ttl = 60)]
async fn flaky(id: u64) -> std::io::Result<u64> {
    let run = FLAKY_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    match run {
        0 => panic!("first run panics"),
        1 => Err(std::io::Error::other("second run fails")),
        _ => Ok(id * 10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_or_failing_loader_does_not_wedge_its_key() {
    let first = tokio::spawn(flaky(1));
    assert!(first.await.unwrap_err().is_panic());
    let second = flaky(1).await;
    assert!(
        second.is_err(),
        "the key is free again: the body runs afresh"
    );
    assert_eq!(flaky(1).await.unwrap(), 10);
    assert_eq!(flaky(1).await.unwrap(), 10);
    assert_eq!(FLAKY_RUNS.load(Ordering::SeqCst), 3);
    assert_eq!(flaky_stats().load_errors, 2);
}

static WAITER_RUNS: AtomicUsize = AtomicUsize::new(0);
static LEADER_ENTERED: Notify = Notify::const_new();
static LEADER_GATE: Notify = Notify::const_new();

/// The first run (the leader) waits for the test's gate, then fails; later runs succeed.
#[cached]
async fn failing_leader(id: u64) -> Result<u64, std::io::Error> {
    let run = WAITER_RUNS.fetch_add(1, Ordering::SeqCst);
    if run == 0 {
        LEADER_ENTERED.notify_one();
        LEADER_GATE.notified().await;
        return Err(std::io::Error::other("the leader fails"));
    }
    Ok(id)
}

/// On a current-thread runtime a spawned call runs only while the test awaits, and a call that
/// misses memory runs synchronously up to the flight: once a call's miss is counted, it has
/// either joined the leader's flight or (without single-flight) run its body to the end.
#[tokio::test(flavor = "current_thread")]
async fn waiters_share_the_leaders_load_and_run_their_own_body_when_it_fails() {
    let leader = tokio::spawn(failing_leader(5));
    LEADER_ENTERED.notified().await;
    let waiters: Vec<_> = (0..4).map(|_| tokio::spawn(failing_leader(5))).collect();
    while failing_leader_stats().misses < 5 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        WAITER_RUNS.load(Ordering::SeqCst),
        1,
        "the four waiters joined the leader's load instead of running the body"
    );
    assert!(waiters.iter().all(|w| !w.is_finished()), "they wait for it");

    LEADER_GATE.notify_one();
    assert!(leader.await.unwrap().is_err());
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap().unwrap(), 5);
    }
    // The waiters are released one after the other: the first runs its body to the end (it
    // does not wait here) and stores the value, which the other three find.
    assert_eq!(
        WAITER_RUNS.load(Ordering::SeqCst),
        1 + 1,
        "the leader failed: a waiter ran a body of its own, the others found its value"
    );
    assert_eq!(failing_leader_stats().loads, 2);
}

static GATE: Notify = Notify::const_new();
static GATE_ENTERED: Notify = Notify::const_new();
static GATED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn gated(id: u64) -> u64 {
    let run = GATED_RUNS.fetch_add(1, Ordering::SeqCst);
    if id == 0 && run == 0 {
        GATE_ENTERED.notify_one();
        GATE.notified().await;
    }
    id + 100
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_loader_frees_its_key_and_other_keys_never_wait() {
    let held = tokio::spawn(gated(0));
    GATE_ENTERED.notified().await;
    // Key 0's load is open (its body waits for GATE, which nobody opens): key 1 runs anyway.
    let other = tokio::time::timeout(Duration::from_secs(5), gated(1)).await;
    assert_eq!(other.expect("key 1 does not wait for key 0"), 101);
    assert!(!held.is_finished(), "key 0's load was still open");

    held.abort();
    assert!(held.await.unwrap_err().is_cancelled());
    let again = tokio::time::timeout(Duration::from_secs(5), gated(0)).await;
    assert_eq!(
        again.expect("the dropped load freed its key"),
        100,
        "the key is free again: the body runs afresh"
    );
    assert_eq!(
        gated(0).await,
        100,
        "and that run led a flight of its own: stored"
    );
    assert_eq!(GATED_RUNS.load(Ordering::SeqCst), 3, "a hit");
    assert_eq!(gated_stats().load_errors, 1, "the dropped load is counted");
}

static BLOCKED_GATE: Notify = Notify::const_new();
static ENTERED: Notify = Notify::const_new();

#[cached]
async fn blocked(id: u64) -> u64 {
    if id == 0 {
        ENTERED.notify_one();
        BLOCKED_GATE.notified().await;
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_keys_never_wait_on_each_other() {
    let stuck = tokio::spawn(blocked(0));
    ENTERED.notified().await;
    let other = tokio::time::timeout(Duration::from_secs(5), blocked(1)).await;
    assert_eq!(other.expect("key 1 does not wait for key 0"), 1);
    BLOCKED_GATE.notify_one();
    assert_eq!(stuck.await.unwrap(), 0);
}

static RACE_GATE: Notify = Notify::const_new();
static RACE_ENTERED: Notify = Notify::const_new();
static RACE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn raced(id: u64) -> usize {
    let run = RACE_RUNS.fetch_add(1, Ordering::SeqCst);
    if run == 0 {
        RACE_ENTERED.notify_one();
        RACE_GATE.notified().await;
    }
    run + id as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_begun_before_an_invalidation_is_not_stored() {
    let load = tokio::spawn(raced(0));
    RACE_ENTERED.notified().await;
    raced_invalidate(0).await;
    RACE_GATE.notify_one();
    assert_eq!(load.await.unwrap(), 0, "the caller still gets its result");
    assert_eq!(
        raced(0).await,
        1,
        "but it was not stored: the body runs again"
    );
    assert_eq!(raced(0).await, 1);
}

static BOUNDED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(capacity = 10)]
async fn bounded(id: u64) -> u64 {
    BOUNDED_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn the_capacity_bounds_the_entries() {
    for id in 0..100 {
        assert_eq!(bounded(id).await, id);
        assert!(bounded_stats().entries <= 10);
    }
    assert_eq!(bounded_stats().entries, 10);
    // A full cache keeps out keys asked for once, and lets in one that keeps being asked for.
    let runs = BOUNDED_RUNS.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(bounded(1000).await, 1000);
    }
    let runs = BOUNDED_RUNS.load(Ordering::SeqCst) - runs;
    assert!(runs <= 3, "admitted within three calls, not {runs}");
    let stats = bounded_stats();
    assert_eq!(stats.entries, 10);
    assert_eq!(stats.evictions, 1);
}

static COMPANION_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, skip(log))]
async fn greet(log: &str, name: &str, times: u8) -> String {
    COMPANION_RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = log;
    name.repeat(usize::from(times))
}

#[tokio::test]
async fn companions_bypass_invalidate_and_clear() {
    let runs = || COMPANION_RUNS.load(Ordering::SeqCst);
    assert_eq!(greet("a", "hi", 2).await, "hihi");
    assert_eq!(
        greet("b", "hi", 2).await,
        "hihi",
        "skipped arguments are not in the key"
    );
    assert_eq!(runs(), 1);

    assert_eq!(greet_uncached("a", "hi", 2).await, "hihi");
    assert_eq!(runs(), 2, "the uncached companion always runs the body");
    greet("a", "hi", 2).await;
    assert_eq!(runs(), 2, "and leaves the cache as it was");

    greet("a", "yo", 1).await;
    assert_eq!(runs(), 3);
    greet_invalidate("hi", 2).await;
    greet("a", "hi", 2).await;
    greet("a", "yo", 1).await;
    assert_eq!(runs(), 4, "only the invalidated entry ran again");

    greet_clear().await;
    assert_eq!(greet_stats().entries, 0);
    greet("a", "hi", 2).await;
    greet("a", "yo", 1).await;
    assert_eq!(runs(), 6);
}

#[derive(Debug)]
struct Repo {
    loads: AtomicUsize,
    writes: usize,
}

impl Repo {
    /// A method on `&self`.
    #[cached(ttl = 60)]
    pub(crate) async fn load(&self, id: u64) -> Result<String, std::num::ParseIntError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let parsed: u64 = format!("{id}").parse()?;
        Ok(format!("row {parsed}"))
    }

    #[cached]
    async fn load_mut(&mut self, bytes: &[u8]) -> usize {
        self.writes += 1;
        bytes.len()
    }

    #[cached(name = "repo::shared")]
    async fn load_arc(self: Arc<Self>, mut id: u64) -> u64 {
        id += 1;
        self.loads.fetch_add(1, Ordering::SeqCst);
        id
    }
}

#[tokio::test]
async fn methods_on_ref_mut_and_arc_self() {
    let repo = Repo {
        loads: AtomicUsize::new(0),
        writes: 0,
    };
    assert_eq!(repo.load(1).await.unwrap(), "row 1");
    assert_eq!(repo.load(1).await.unwrap(), "row 1");
    assert_eq!(repo.loads.load(Ordering::SeqCst), 1);
    assert_eq!(Repo::load_stats().hits, 1);

    let mut repo = repo;
    assert_eq!(repo.load_mut(b"abc").await, 3);
    assert_eq!(repo.load_mut(b"abc").await, 3);
    assert_eq!(repo.writes, 1);

    let repo = Arc::new(repo);
    assert_eq!(repo.clone().load_arc(1).await, 2);
    assert_eq!(repo.clone().load_arc(1).await, 2);
    assert_eq!(repo.loads.load(Ordering::SeqCst), 2);
    Repo::load_arc_invalidate(1).await;
    assert_eq!(repo.clone().load_arc(1).await, 2);
    assert_eq!(repo.loads.load(Ordering::SeqCst), 3);

    let names: Vec<String> = cachette::stats::all().into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().any(|n| n == "repo::shared"), "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with("Repo::load")),
        "methods are named after their type: {names:?}"
    );
}

static MAP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn total(weights: HashMap<String, u32>) -> u32 {
    MAP_RUNS.fetch_add(1, Ordering::SeqCst);
    weights.values().sum()
}

#[tokio::test]
async fn map_arguments_hash_the_same_in_any_order() {
    let forward: HashMap<String, u32> = (0..100).map(|i| (format!("k{i}"), i)).collect();
    let mut backward = HashMap::with_capacity(1000);
    for i in (0..100).rev() {
        backward.insert(format!("k{i}"), i);
    }
    assert_eq!(total(forward).await, 4950);
    assert_eq!(total(backward).await, 4950);
    assert_eq!(MAP_RUNS.load(Ordering::SeqCst), 1);
}

static CT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 5)]
async fn on_current_thread(id: u64) -> u64 {
    CT_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    id
}

#[test]
fn works_on_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let calls: Vec<_> = (0..20).map(|_| on_current_thread(3)).collect();
        for value in futures::future::join_all(calls).await {
            assert_eq!(value, 3);
        }
    });
    assert_eq!(CT_RUNS.load(Ordering::SeqCst), 1);
}
