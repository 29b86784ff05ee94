//! Races of write-behind against the miss path, the put and the caller's runtime, at the
//! runtime's own API: each test is a sequence of events that once left a wrong value or a
//! write that never ran.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{flush, flush_within, BehindSpec, WriteBehind};
use crate::cached_fn::{CachedFn, Spec};
use crate::write::Target;

const fn spec(function: &'static str) -> Spec {
    Spec::memory_for_tests("behind_tests", function)
}

const fn behind(function: &'static str, delay_ms: u64) -> BehindSpec {
    BehindSpec {
        module: "behind_tests",
        function,
        capacity: 100,
        delay: Duration::from_millis(delay_ms),
        retries: 0,
        coalesce: true,
    }
}

// A write's sequence number is taken when it is accepted, under the lanes' lock: a write that
// reaches the lock late is the newer one, for the lane, the put order and the overlay alike.

/// A value whose first clone in `submit` (for the overlay) is slow, on demand.
#[derive(Debug, PartialEq)]
struct Slow(u64, bool);
static SLOW_CLONE: AtomicBool = AtomicBool::new(false);
impl Clone for Slow {
    fn clone(&self) -> Self {
        if self.1 && SLOW_CLONE.swap(false, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
        Slow(self.0, false)
    }
}

static RACE: CachedFn<Slow> = CachedFn::new(spec("race"));
static RACE_W: WriteBehind = WriteBehind::new(behind("write_race", 500));
static RACE_DB: Mutex<Vec<u64>> = Mutex::new(Vec::new());

async fn write_race(value: Slow) {
    let key = RACE.digest_key(Ok(1));
    let v = value.0;
    RACE_W
        .submit(Target::new(&RACE, key), value, move || async move {
            RACE_DB.lock().unwrap().push(v);
            Ok(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_slow_to_be_accepted_is_ordered_by_when_it_was_accepted() {
    SLOW_CLONE.store(true, Ordering::SeqCst);
    // A: takes seq n, then spends 200 ms cloning before it reaches the lanes lock.
    let a = tokio::spawn(write_race(Slow(1, true)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    // B: takes seq n+1 and is accepted first.
    write_race(Slow(2, false)).await;
    a.await.unwrap();
    flush().await;
    let db = RACE_DB.lock().unwrap().clone();
    let key = RACE.digest_key(Ok(1));
    let cached = RACE.lookup(&key);
    let overlay = RACE.overlay().get(1);
    eprintln!("db writes {db:?}, cached {cached:?}, overlay after flush {overlay:?}");
    assert_eq!(
        overlay, None,
        "flush returned, yet a pending value is left in the overlay"
    );
    assert_eq!(
        cached.map(|s| s.0),
        db.last().copied(),
        "cache and database disagree"
    );
}

// A put that panics (here in a user's `unless`) still lets its write run.

fn unless_panics(v: &u64) -> bool {
    assert!(*v != 13, "unless panicked");
    false
}
static PANICKY: CachedFn<u64> = CachedFn::new(spec("panicky")).unless(unless_panics);
static PANICKY_W: WriteBehind = WriteBehind::new(behind("write_panicky", 0));
static PANICKY_DB: Mutex<Vec<u64>> = Mutex::new(Vec::new());

async fn write_panicky(value: u64) {
    let key = PANICKY.digest_key(Ok(2));
    PANICKY_W
        .submit(Target::new(&PANICKY, key), value, move || async move {
            PANICKY_DB.lock().unwrap().push(value);
            Ok(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_panics_does_not_hold_its_lane_up() {
    write_panicky(13).await; // returns normally: settle swallows the panic
    let left = flush_within(Duration::from_secs(2)).await;
    let db = PANICKY_DB.lock().unwrap().clone();
    eprintln!(
        "left after 2 s: {left}, db {db:?}, stats {:?}",
        PANICKY_W.stats()
    );
    assert_eq!(left, 0, "the write never runs, flush never returns");
}

// A waiter whose leader failed runs its own body under a fresh flight: it must read the
// pending write first, or it would answer, and store over the put, the database's value from
// before the write, which nothing removes when the write ends (memory store).

static FALLBACK: CachedFn<u64> = CachedFn::new(spec("fallback"));
static FALLBACK_W: WriteBehind = WriteBehind::new(behind("write_fallback", 300));
static FALLBACK_DB: AtomicU64 = AtomicU64::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_leader_failed_reads_the_pending_write_not_the_database() {
    let key = FALLBACK.digest_key(Ok(3));
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    // L leads a load that will fail.
    let leader = tokio::spawn({
        let key = key.clone();
        let release = release.clone();
        async move {
            FALLBACK
                .get_or_load(key, || async move {
                    release.notified().await;
                    Err::<u64, String>("db hiccup".into())
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // R joins L's flight.
    let reader = tokio::spawn({
        let key = key.clone();
        async move {
            FALLBACK
                .get_or_load(key, || async {
                    Ok::<u64, String>(FALLBACK_DB.load(Ordering::SeqCst))
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A write-behind write of the key is accepted (DB written 300 ms later).
    FALLBACK_W
        .submit(Target::new(&FALLBACK, key.clone()), 1, || async {
            FALLBACK_DB.store(1, Ordering::SeqCst);
            Ok(())
        })
        .await;
    assert_eq!(
        FALLBACK.lookup(&key),
        Some(1),
        "the put stored the new value"
    );
    // L fails; R runs its own body and reads the database's old value.
    release.notify_one();
    let _ = leader.await.unwrap();
    let seen = reader.await.unwrap();
    flush().await;
    let cached = FALLBACK.lookup(&key);
    eprintln!(
        "reader got {seen:?}; after flush db = {}, cached = {cached:?}",
        FALLBACK_DB.load(Ordering::SeqCst)
    );
    assert_eq!(seen, Ok(1), "read-your-writes: the pending value");
    assert_eq!(
        cached,
        Some(1),
        "cache holds a value the database no longer has"
    );
}

// A caller polled once (accepted, put under way), then dropped with its runtime: the put and
// the write still happen.
static GONE: CachedFn<u64> = CachedFn::new(spec("gone"));
static GONE_W: WriteBehind = WriteBehind::new(behind("write_gone", 0));

#[test]
fn a_write_whose_caller_and_runtime_went_away_still_runs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let key = GONE.digest_key(Ok(4));
        let mut call = Box::pin(GONE_W.submit(Target::new(&GONE, key), 5, || async { Ok(()) }));
        // One poll: accepted, put spawned on this runtime; then the caller gives up.
        std::future::poll_fn(|cx| {
            let _ = std::future::Future::poll(call.as_mut(), cx);
            std::task::Poll::Ready(())
        })
        .await;
    });
    drop(rt);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let left = rt.block_on(flush_within(Duration::from_secs(2)));
    eprintln!("left after 2 s: {left}, stats {:?}", GONE_W.stats());
    assert_eq!(left, 0, "an accepted write never runs");
}

// A flush waits for the writes accepted before it, not for those accepted meanwhile: under a
// steady stream of writes it still returns (a shutdown must not hang on live traffic).
static STREAM: CachedFn<u64> = CachedFn::new(spec("stream"));
static STREAM_W: WriteBehind = WriteBehind::new(behind("write_stream", 0));
static STREAM_DB: Mutex<Vec<u64>> = Mutex::new(Vec::new());
/// The newest key whose write was accepted (its call returned).
static STREAM_ACCEPTED: AtomicU64 = AtomicU64::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_under_a_steady_stream_of_writes_returns_once_the_earlier_ones_ended() {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let stop = stop.clone();
        async move {
            // Each write's body takes 20 ms and one is accepted every 2 ms or so: some write
            // is always outstanding.
            let mut id = 0;
            while !stop.load(Ordering::SeqCst) {
                id += 1;
                let key = STREAM.digest_key(Ok(u128::from(id)));
                STREAM_W
                    .submit(Target::new(&STREAM, key), id, move || async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        STREAM_DB.lock().unwrap().push(id);
                        Ok(())
                    })
                    .await;
                STREAM_ACCEPTED.store(id, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let accepted = STREAM_ACCEPTED.load(Ordering::SeqCst);
    // The stream stops only once the flush has returned: a flush that waits for writes
    // accepted meanwhile never does.
    let flushed = tokio::time::timeout(Duration::from_secs(5), flush()).await;
    let written = STREAM_DB.lock().unwrap().clone();
    let outstanding = STREAM_W.stats().depth;
    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    assert!(accepted > 5, "the stream ran: {accepted} writes");
    assert!(
        flushed.is_ok(),
        "the flush waited for the writes accepted after it ({outstanding} outstanding)"
    );
    let missing: Vec<u64> = (1..=accepted).filter(|id| !written.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "flush returned before writes accepted before it ended: {missing:?}"
    );
    assert!(outstanding > 0, "the stream kept writes outstanding");
}

// A write accepted before a flush and replaced by a newer one of its key meanwhile
// (coalescing): the flush waits for the newer one, which carries it.
static CARRY: CachedFn<u64> = CachedFn::new(spec("carry"));
static CARRY_W: WriteBehind = WriteBehind::new(behind("write_carry", 0));
static CARRY_DB: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static CARRY_GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);
/// Bodies that reached the gate.
static CARRY_ENTERED: AtomicU64 = AtomicU64::new(0);

async fn write_carry(value: u64) {
    let key = CARRY.digest_key(Ok(5));
    CARRY_W
        .submit(Target::new(&CARRY, key), value, move || async move {
            // Each body waits for a permit of the test's.
            CARRY_ENTERED.fetch_add(1, Ordering::SeqCst);
            CARRY_GATE.acquire().await.unwrap().forget();
            CARRY_DB.lock().unwrap().push(value);
            Ok(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_waits_for_the_newer_write_that_replaced_an_earlier_one() {
    // 1 runs (held at the gate), 2 waits behind it.
    write_carry(1).await;
    while CARRY_ENTERED.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    write_carry(2).await;
    let flush = tokio::spawn(flush_within(Duration::from_secs(3)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    // 3, accepted after the flush began, takes 2's place.
    write_carry(3).await;
    assert_eq!(CARRY_W.stats().coalesced, 1, "3 replaced 2");
    CARRY_GATE.add_permits(1);
    // 1 ends; the flush still waits, for 3.
    while CARRY_DB.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !flush.is_finished(),
        "the flush returned before 3, which carries 2, ran"
    );
    CARRY_GATE.add_permits(1);
    assert_eq!(flush.await.unwrap(), 0);
    assert_eq!(*CARRY_DB.lock().unwrap(), [1, 3]);
}

// A value whose drop panics: the write's end drops its pending value, and the panic must not
// take the key's lane down (its later writes would never run, and no flush would return).
#[derive(Clone, Debug)]
struct Bomb(u64);

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.0 == 13 && !std::thread::panicking() {
            panic!("a value's drop panicked");
        }
    }
}

static BOMB: CachedFn<Bomb> = CachedFn::new(spec("bomb"));
static BOMB_W: WriteBehind = WriteBehind::new(behind("write_bomb", 0));
static BOMB_DB: Mutex<Vec<u64>> = Mutex::new(Vec::new());

async fn write_bomb(value: u64) {
    let key = BOMB.digest_key(Ok(6));
    BOMB_W
        .submit(Target::new(&BOMB, key), Bomb(value), move || async move {
            BOMB_DB.lock().unwrap().push(value);
            Ok(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_end_panics_leaves_its_lane_running() {
    write_bomb(13).await;
    assert_eq!(flush_within(Duration::from_secs(2)).await, 0, "flush hangs");
    write_bomb(14).await;
    let left = flush_within(Duration::from_secs(2)).await;
    assert_eq!(left, 0, "the key's next write never ran");
    assert_eq!(*BOMB_DB.lock().unwrap(), [13, 14]);
    assert_eq!(BOMB_W.stats().depth, 0);
}

// Accepting a write drops what it displaces: the key's older pending value in the overlay,
// and, when coalescing, the waiting write it replaces (its body's captures). Both are a user's
// code, and may panic: the write must still be accepted, put and run.

/// A value (or a capture) whose drop panics once its fuse is lit, if it is 13; the drop puts
/// the fuse out.
#[derive(Clone, Debug)]
struct Fused(u64, &'static AtomicBool);

impl PartialEq for Fused {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Drop for Fused {
    fn drop(&mut self) {
        if self.0 == 13 && self.1.swap(false, Ordering::SeqCst) {
            panic!("a drop panicked");
        }
    }
}

static FUSED_FUSE: AtomicBool = AtomicBool::new(false);
static CAPTURE_FUSE: AtomicBool = AtomicBool::new(false);

static FUSED: CachedFn<Fused> = CachedFn::new(spec("fused"));
static FUSED_W: WriteBehind = WriteBehind::new(behind("write_fused", 0));
static FUSED_DB: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static FUSED_GATE: Semaphore = Semaphore::const_new(0);
static CAPTURE: CachedFn<u64> = CachedFn::new(spec("capture"));
static CAPTURE_W: WriteBehind = WriteBehind::new(behind("write_capture", 0));
static CAPTURE_DB: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static CAPTURE_GATE: Semaphore = Semaphore::const_new(0);

static FUSED_RUNS: AtomicBool = AtomicBool::new(false);
static CAPTURE_RUNS: AtomicBool = AtomicBool::new(false);

/// A body that records `value`; write 12's first says it `runs` and waits at `gate`, keeping
/// the key's later writes waiting.
async fn record(
    db: &Mutex<Vec<u64>>,
    runs: &AtomicBool,
    gate: &Semaphore,
    value: u64,
) -> Result<(), String> {
    if value == 12 {
        runs.store(true, Ordering::SeqCst);
        gate.acquire().await.expect("never closed").forget();
    }
    db.lock().unwrap().push(value);
    Ok(())
}

/// Writes `value`, as its own task: whether the call returned rather than panicked.
async fn write_fused(value: u64) -> bool {
    tokio::spawn(async move {
        let key = FUSED.digest_key(Ok(8));
        let target = Target::new(&FUSED, key);
        FUSED_W
            .submit(target, Fused(value, &FUSED_FUSE), move || {
                record(&FUSED_DB, &FUSED_RUNS, &FUSED_GATE, value)
            })
            .await;
    })
    .await
    .is_ok()
}

/// Writes `value` with a body that captures a `Fused` of it, as its own task: whether the
/// call returned rather than panicked.
async fn write_capture(value: u64) -> bool {
    tokio::spawn(async move {
        let key = CAPTURE.digest_key(Ok(9));
        let captured = Fused(value, &CAPTURE_FUSE);
        CAPTURE_W
            .submit(Target::new(&CAPTURE, key), value, move || {
                // The whole `Fused` (not just its number) is the body's.
                let captured = &captured;
                record(&CAPTURE_DB, &CAPTURE_RUNS, &CAPTURE_GATE, captured.0)
            })
            .await;
    })
    .await
    .is_ok()
}

/// Waits until a write's body says it `runs`.
async fn running(runs: &AtomicBool) {
    while !runs.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_older_pending_value_panics_in_its_drop_is_still_accepted_and_run() {
    assert!(write_fused(12).await);
    running(&FUSED_RUNS).await;
    assert!(write_fused(13).await);
    // Only the overlay's 13 is left to drop: the store's (which 14's put would replace, on
    // another thread) goes now.
    FUSED.invalidate(FUSED.digest_key(Ok(8))).await;
    FUSED_FUSE.store(true, Ordering::SeqCst);
    // 14 takes 13's place in the overlay, which drops 13's value there.
    let returned = write_fused(14).await;
    FUSED_GATE.add_permits(1);
    assert!(returned, "the write's call panicked");
    assert!(!FUSED_FUSE.load(Ordering::SeqCst), "no drop of 13 came");
    assert_eq!(flush_within(Duration::from_secs(3)).await, 0, "flush hangs");
    assert_eq!(
        *FUSED_DB.lock().unwrap(),
        [12, 14],
        "14 replaced 13, waiting"
    );
    let digest = FUSED.digest_key(Ok(8)).unwrap().digest();
    assert_eq!(
        FUSED.overlay().get(digest),
        None,
        "a pending value outlived its write"
    );
    let cached = FUSED.lookup(&FUSED.digest_key(Ok(8)));
    assert_eq!(cached.map(|value| value.0), Some(14));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_replaces_a_waiting_one_whose_captures_panic_in_their_drop_still_runs() {
    assert!(write_capture(12).await);
    running(&CAPTURE_RUNS).await;
    assert!(write_capture(13).await);
    CAPTURE_FUSE.store(true, Ordering::SeqCst);
    // 14 replaces 13, waiting: 13's body, and what it captured, are dropped.
    let returned = write_capture(14).await;
    CAPTURE_GATE.add_permits(1);
    assert!(returned, "the write's call panicked");
    assert!(!CAPTURE_FUSE.load(Ordering::SeqCst), "no drop of 13 came");
    assert_eq!(flush_within(Duration::from_secs(3)).await, 0, "flush hangs");
    assert_eq!(*CAPTURE_DB.lock().unwrap(), [12, 14]);
    assert_eq!(CAPTURE_W.stats().coalesced, 1);
    assert_eq!(CAPTURE.lookup(&CAPTURE.digest_key(Ok(9))), Some(14));
}

/// A value (or a capture) whose drop panics, if it is 13, while charges are left; each such
/// drop spends one.
#[derive(Clone, Debug)]
struct Charged(u64);
static CHARGES: AtomicU64 = AtomicU64::new(0);

impl Drop for Charged {
    fn drop(&mut self) {
        let charged = |left: u64| left.checked_sub(1);
        if self.0 == 13
            && CHARGES
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, charged)
                .is_ok()
        {
            panic!("a drop panicked");
        }
    }
}

static BOTH: CachedFn<Charged> = CachedFn::new(spec("both"));
static BOTH_W: WriteBehind = WriteBehind::new(behind("write_both", 0));
static BOTH_DB: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static BOTH_GATE: Semaphore = Semaphore::const_new(0);
static BOTH_RUNS: AtomicBool = AtomicBool::new(false);

/// Writes `value`, with a body that captures a `Charged` of it too, as its own task: whether
/// the call returned rather than panicked.
async fn write_both(value: u64) -> bool {
    tokio::spawn(async move {
        let key = BOTH.digest_key(Ok(10));
        let captured = Charged(value);
        BOTH_W
            .submit(Target::new(&BOTH, key), Charged(value), move || {
                let captured = &captured;
                record(&BOTH_DB, &BOTH_RUNS, &BOTH_GATE, captured.0)
            })
            .await;
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_displaces_a_value_and_a_write_whose_drops_both_panic_still_runs() {
    assert!(write_both(12).await);
    running(&BOTH_RUNS).await;
    assert!(write_both(13).await);
    // Only the overlay's 13 and the waiting write's capture of 13 are left to drop.
    BOTH.invalidate(BOTH.digest_key(Ok(10))).await;
    CHARGES.store(2, Ordering::SeqCst);
    // 14 displaces both: two drops that panic, neither while the other unwinds (an abort).
    let returned = write_both(14).await;
    BOTH_GATE.add_permits(1);
    assert!(returned, "the write's call panicked");
    assert_eq!(
        CHARGES.load(Ordering::SeqCst),
        0,
        "a drop of 13 did not come"
    );
    assert_eq!(flush_within(Duration::from_secs(3)).await, 0, "flush hangs");
    assert_eq!(*BOTH_DB.lock().unwrap(), [12, 14]);
    assert_eq!(BOTH.lookup(&BOTH.digest_key(Ok(10))).map(|v| v.0), Some(14));
}
