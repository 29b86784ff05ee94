//! What gets stored, on Redis and the tiered store, against a real redis-server this binary
//! starts: `ttl_from` sets each key's `PX` (and caps the tiered memory tier), `unless` keeps
//! values out of Redis, `#[cache_put]` on an `Option` shape deletes on `None`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use cachette::{cache_put, cached};
use support::RedisServer;

/// One server for this binary; every test names its own keys.
fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = RedisServer::start();
        cachette::Config::builder()
            .redis_url(server.url())
            .prefix("pol")
            .redis_timeout(Duration::from_secs(10))
            .install()
            .expect("the first configuration of this process");
        server
    })
}

fn pttl(key: &str) -> i64 {
    server().cli(&["PTTL", key]).parse().unwrap()
}

/// Negative answers are kept a short time, positive ones the attribute's ttl.
fn short_when_missing(found: &Option<String>) -> Option<Duration> {
    found.is_none().then_some(Duration::from_secs(5))
}

#[cached(ttl = "10m", store = "redis", key = "lookup:{id}", cache_none = true, ttl_from = short_when_missing)]
async fn lookup(id: u64) -> Option<String> {
    (id % 2 == 0).then(|| format!("found {id}"))
}

#[tokio::test]
async fn ttl_from_sets_each_keys_expiry_in_redis() {
    server();
    assert_eq!(lookup(2).await.as_deref(), Some("found 2"));
    assert_eq!(lookup(3).await, None);
    cachette::flush().await;
    let found = pttl("pol:lookup:2");
    assert!((590_000..=600_000).contains(&found), "PTTL {found}");
    let missing = pttl("pol:lookup:3");
    assert!((4_000..=5_000).contains(&missing), "PTTL {missing}");
    assert_eq!(lookup_stats().loads, 2);
}

#[allow(clippy::ptr_arg)] // `unless` names a `fn(&V)`
fn is_draft(text: &String) -> bool {
    text.starts_with("draft")
}

static DOC_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", key = "doc:{id}", unless = is_draft)]
async fn doc(id: u64) -> Result<String, String> {
    let run = DOC_LOADS.fetch_add(1, Ordering::SeqCst);
    Ok(if run == 0 {
        format!("draft {id}")
    } else {
        format!("final {id}")
    })
}

#[tokio::test]
async fn unless_keeps_a_value_out_of_redis() {
    let server = server();
    assert_eq!(doc(1).await.unwrap(), "draft 1");
    // A wrongly sent `SET` would have landed by now.
    cachette::flush().await;
    assert_eq!(server.cli(&["EXISTS", "pol:doc:1"]), "0");
    assert_eq!(doc_stats().declined, 1);
    assert_eq!(doc(1).await.unwrap(), "final 1");
    cachette::flush().await;
    assert_eq!(server.cli(&["GET", "pol:doc:1"]), "\"final 1\"");
    assert_eq!(doc(1).await.unwrap(), "final 1");
    assert_eq!(DOC_LOADS.load(Ordering::SeqCst), 2);
}

#[cached(ttl = 60, store = "redis", key = "profile:{id}")]
async fn profile(id: u64) -> Option<String> {
    Some(format!("loaded {id}"))
}

#[cache_put(profile(id))]
async fn save_profile(id: u64, text: Option<String>) -> Result<Option<String>, String> {
    let _ = id;
    Ok(text)
}

#[tokio::test]
async fn cache_put_of_none_deletes_the_redis_key() {
    let server = server();
    save_profile(5, Some("ada".into())).await.unwrap();
    assert_eq!(server.cli(&["GET", "pol:profile:5"]), "\"ada\"");
    assert_eq!(profile(5).await.as_deref(), Some("ada"));
    save_profile(5, None).await.unwrap();
    assert_eq!(server.cli(&["EXISTS", "pol:profile:5"]), "0");
    assert_eq!(profile(5).await.as_deref(), Some("loaded 5"));
}

fn brief(_: &u64) -> Option<Duration> {
    Some(Duration::from_millis(1500))
}

static BRIEF_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "10m", store = "tiered", l1_ttl = "1m", key = "brief:{id}", ttl_from = brief)]
async fn brief_value(id: u64) -> u64 {
    BRIEF_LOADS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn the_tiered_memory_tier_keeps_a_value_no_longer_than_its_own_ttl() {
    server();
    assert_eq!(brief_value(8).await, 8);
    cachette::flush().await;
    assert_eq!(brief_value(8).await, 8);
    assert_eq!(BRIEF_LOADS.load(Ordering::SeqCst), 1, "an L1 hit");
    let left = pttl("pol:brief:8");
    assert!((1..=1_500).contains(&left), "PTTL {left}");
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert_eq!(brief_value(8).await, 8);
    assert_eq!(
        BRIEF_LOADS.load(Ordering::SeqCst),
        2,
        "gone from L1 with its 1.5 s, not kept for l1_ttl's minute"
    );
}
