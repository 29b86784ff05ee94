//! Time-to-live on a clock the test moves by hand: no sleeping, and exact to the millisecond.
//! This binary installs a manual clock before its first cached call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use cachette::{cached, Clock, ManualClock};

/// The process's clock hand, and the right to move it: one test at a time, since every
/// function of the process reads the one clock.
async fn hand() -> (&'static ManualClock, tokio::sync::MutexGuard<'static, ()>) {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let turn = TURN.lock().await;
    (clock_hand(), turn)
}

fn clock_hand() -> &'static ManualClock {
    static HAND: OnceLock<ManualClock> = OnceLock::new();
    HAND.get_or_init(|| {
        let (clock, hand) = Clock::manual();
        cachette::Config::builder()
            .clock(clock)
            .install()
            .expect("the first configuration of this process");
        hand
    })
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "150ms")]
async fn short_lived(id: u64) -> usize {
    RUNS.fetch_add(1, Ordering::SeqCst) + id as usize
}

#[tokio::test]
async fn an_entry_lives_exactly_its_ttl() {
    let (hand, _turn) = hand().await;
    let first = short_lived(0).await;
    hand.advance(Duration::from_millis(149));
    assert_eq!(short_lived(0).await, first, "alive until its ttl is up");
    assert_eq!(short_lived_stats().hits, 1);
    hand.advance(Duration::from_millis(1));
    let second = short_lived(0).await;
    assert_ne!(second, first, "expired at 150 ms: the body ran again");
    assert_eq!(short_lived_stats().loads, 2);
    hand.advance(Duration::from_millis(100));
    assert_eq!(
        short_lived(0).await,
        second,
        "the new entry has a ttl of its own"
    );
}

static FOREVER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn forever(id: u64) -> usize {
    FOREVER_RUNS.fetch_add(1, Ordering::SeqCst) + id as usize
}

#[tokio::test]
async fn without_a_ttl_an_entry_never_expires() {
    let (hand, _turn) = hand().await;
    let first = forever(0).await;
    hand.advance(Duration::from_secs(10 * 365 * 24 * 3600));
    assert_eq!(forever(0).await, first);
    assert_eq!(FOREVER_RUNS.load(Ordering::SeqCst), 1);
}
