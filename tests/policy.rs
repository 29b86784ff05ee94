//! What gets stored, on the memory store: a ttl per value (`ttl_from`), values kept out
//! (`unless`), and `#[cache_put]` on the target's own `Option` shape. This binary installs a
//! manual clock before its first cached call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use cachette::{cache_put, cached, Clock, ManualClock};

/// The process's clock hand, and the right to move it: one test at a time.
async fn hand() -> (&'static ManualClock, tokio::sync::MutexGuard<'static, ()>) {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    static HAND: OnceLock<ManualClock> = OnceLock::new();
    let turn = TURN.lock().await;
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

#[derive(Clone, Debug, PartialEq)]
struct Token {
    id: u64,
    expires_in: Option<Duration>,
}

/// A token lives as long as it says it does; one that does not say lives the attribute's ttl.
fn token_ttl(token: &Token) -> Option<Duration> {
    token.expires_in
}

static TOKEN_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", ttl_from = token_ttl)]
async fn token(id: u64) -> Result<Token, String> {
    TOKEN_LOADS.fetch_add(1, Ordering::SeqCst);
    let expires_in = match id {
        1 => Some(Duration::from_secs(30)),
        2 => None,
        _ => Some(Duration::ZERO),
    };
    Ok(Token { id, expires_in })
}

#[tokio::test]
async fn each_value_lives_the_ttl_it_gives_itself() {
    let (hand, _turn) = hand().await;
    let loads = || TOKEN_LOADS.load(Ordering::SeqCst);
    token(1).await.unwrap();
    token(2).await.unwrap();
    assert_eq!(loads(), 2);

    hand.advance(Duration::from_secs(29));
    token(1).await.unwrap();
    assert_eq!(loads(), 2, "alive within its own 30 s");
    hand.advance(Duration::from_secs(1));
    token(1).await.unwrap();
    assert_eq!(
        loads(),
        3,
        "expired at its own 30 s, not the attribute's hour"
    );
    token(2).await.unwrap();
    assert_eq!(loads(), 3, "`None`: the attribute's hour");
    hand.advance(Duration::from_secs(3600));
    token(2).await.unwrap();
    assert_eq!(loads(), 4, "and expired at it");

    // A zero ttl keeps the value out: every call loads, and the value is still returned.
    for _ in 0..2 {
        assert_eq!(token(3).await.unwrap().id, 3);
    }
    assert_eq!(loads(), 6);
    assert_eq!(token_stats().declined, 2);
}

/// A page is partial while the upstream is still filling it: return it, but do not keep it.
#[allow(clippy::ptr_arg)] // `unless` names a `fn(&V)`
fn is_partial(page: &Vec<u64>) -> bool {
    page.len() < 3
}

static PAGE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "10m", unless = is_partial)]
async fn page(n: u64) -> Vec<u64> {
    let run = PAGE_LOADS.fetch_add(1, Ordering::SeqCst) as u64;
    tokio::time::sleep(Duration::from_millis(50)).await;
    (0..n + run).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_unless_declines_is_returned_to_every_waiter_but_not_stored() {
    let (_hand, _turn) = hand().await;
    let loads = || PAGE_LOADS.load(Ordering::SeqCst);
    // Ten concurrent callers of one key: one load, all of them get its (partial) value.
    let calls: Vec<_> = (0..10).map(|_| tokio::spawn(page(2))).collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), vec![0, 1]);
    }
    assert_eq!(loads(), 1, "the waiters shared the leader's load");
    let stats = page_stats();
    assert_eq!(stats.declined, 1, "one load, declined once");
    assert_eq!(stats.load_errors, 0, "declining is not a failed load");
    assert_eq!(stats.entries, 0);

    // Not stored: the next call loads again, and this time the page is full.
    assert_eq!(page(2).await, vec![0, 1, 2]);
    assert_eq!(loads(), 2);
    assert_eq!(page(2).await, vec![0, 1, 2], "a full page is kept");
    assert_eq!(loads(), 2);
    assert_eq!(page_stats().declined, 1);
}

#[derive(Clone, Debug, PartialEq)]
struct User {
    id: u64,
    name: String,
}

static USER_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn user(id: u64) -> Option<User> {
    USER_LOADS.fetch_add(1, Ordering::SeqCst);
    Some(User {
        id,
        name: format!("loaded {id}"),
    })
}

/// Written through in the target's own shape: `Ok(Some(user))` is the new entry,
/// `Ok(None)` (the user is gone) drops it, `Err` changes nothing.
#[cache_put(user(id))]
async fn save_user(id: u64, name: Option<&str>) -> Result<Option<User>, String> {
    match name {
        Some("") => Err("refused".into()),
        Some(name) => Ok(Some(User {
            id,
            name: name.into(),
        })),
        None => Ok(None),
    }
}

/// The same, returning the `Option` itself.
#[cache_put(user(id))]
async fn save_user_plain(id: u64, name: Option<&str>) -> Option<User> {
    name.map(|name| User {
        id,
        name: name.into(),
    })
}

/// The bare value keeps working.
#[cache_put(user(id))]
async fn save_user_bare(id: u64, name: &str) -> Result<User, String> {
    Ok(User {
        id,
        name: name.into(),
    })
}

#[tokio::test]
async fn cache_put_takes_the_targets_own_option_shape() {
    let (_hand, _turn) = hand().await;
    let loads = || USER_LOADS.load(Ordering::SeqCst);
    let name = |user: Option<User>| user.map(|u| u.name);
    assert_eq!(name(user(1).await).as_deref(), Some("loaded 1"));
    assert_eq!(loads(), 1);

    save_user(1, Some("ada")).await.unwrap();
    assert_eq!(name(user(1).await).as_deref(), Some("ada"), "Some: stored");
    assert!(save_user(1, Some("")).await.is_err());
    assert_eq!(
        name(user(1).await).as_deref(),
        Some("ada"),
        "Err: untouched"
    );
    assert_eq!(loads(), 1);

    save_user(1, None).await.unwrap();
    assert_eq!(user_stats().entries, 0, "None: the entry is dropped");
    assert_eq!(name(user(1).await).as_deref(), Some("loaded 1"));
    assert_eq!(loads(), 2);

    save_user_plain(1, Some("grace")).await;
    assert_eq!(name(user(1).await).as_deref(), Some("grace"));
    save_user_plain(1, None).await;
    assert_eq!(name(user(1).await).as_deref(), Some("loaded 1"));
    assert_eq!(loads(), 3);

    save_user_bare(1, "lin").await.unwrap();
    assert_eq!(name(user(1).await).as_deref(), Some("lin"));
    assert_eq!(loads(), 3);
}

static SEEN_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache_none = true)]
async fn seen(id: u64) -> Option<u64> {
    SEEN_LOADS.fetch_add(1, Ordering::SeqCst);
    Some(id)
}

/// With `cache_none = true` the entry is the whole `Option`: a `None` is stored as the answer.
#[cache_put(seen(id))]
async fn forget(id: u64) -> Result<Option<u64>, String> {
    let _ = id;
    Ok(None)
}

static SHELF_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(unless = is_partial)]
async fn shelf(n: u64) -> Vec<u64> {
    SHELF_LOADS.fetch_add(1, Ordering::SeqCst);
    vec![n; 3]
}

/// A put the policy declines drops the entry rather than keep the old value.
#[cache_put(shelf(n))]
async fn store_shelf(n: u64, books: Vec<u64>) -> Vec<u64> {
    let _ = n;
    books
}

#[tokio::test]
async fn cache_put_with_cache_none_and_with_a_declined_value() {
    let (_hand, _turn) = hand().await;
    assert_eq!(seen(4).await, Some(4));
    forget(4).await.unwrap();
    assert_eq!(seen(4).await, None, "the stored None is the answer");
    assert_eq!(SEEN_LOADS.load(Ordering::SeqCst), 1);

    store_shelf(9, vec![7, 7, 7]).await;
    assert_eq!(shelf(9).await, vec![7, 7, 7], "a full shelf put is stored");
    assert_eq!(SHELF_LOADS.load(Ordering::SeqCst), 0);
    store_shelf(9, vec![7]).await;
    assert_eq!(shelf_stats().declined, 1);
    assert_eq!(
        shelf(9).await,
        vec![9, 9, 9],
        "the declined put dropped the old entry"
    );
    assert_eq!(SHELF_LOADS.load(Ordering::SeqCst), 1);
}
