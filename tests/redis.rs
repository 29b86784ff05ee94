//! `store = "redis"` against a real redis-server that this test binary starts for itself.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use cachette::cached;
use serde::{Deserialize, Serialize};
use support::RedisServer;

const PREFIX: &str = "it";
const MAX_VALUE_BYTES: usize = 64 * 1024;

/// One server for this binary; every test names its own functions, so keys never overlap.
///
/// The tests share the process's one circuit breaker: a command that times out keeps every
/// test off Redis for half a second, and those asserting hits would fail. The timeout is
/// generous, so a loaded machine does not trip it (nothing here tests failures).
fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = RedisServer::start();
        cachette::Config::builder()
            .redis_url(server.url())
            .prefix(PREFIX)
            .redis_timeout(Duration::from_secs(10))
            .max_value_bytes(MAX_VALUE_BYTES)
            .install()
            .expect("the first configuration of this process");
        server
    })
}

#[derive(Debug)]
struct DbError;

static USER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", key = "user:{id}")]
async fn user(id: u64) -> Result<String, DbError> {
    USER_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(format!("user {id}"))
}

#[tokio::test]
async fn a_readable_key_holds_plain_json_with_the_ttl_asked() {
    let server = server();
    assert_eq!(user(42).await.unwrap(), "user 42");
    // The call returns before its SET is answered; flush waits for it.
    cachette::flush().await;
    assert_eq!(server.cli(&["GET", "it:user:42"]), "\"user 42\"");
    let pttl: u64 = server.cli(&["PTTL", "it:user:42"]).parse().unwrap();
    assert!((59_000..=60_000).contains(&pttl), "PTTL {pttl}");

    assert_eq!(user(42).await.unwrap(), "user 42");
    assert_eq!(
        USER_RUNS.load(Ordering::SeqCst),
        1,
        "the second call is a hit"
    );
    assert_eq!(user_stats().hits, 1);

    user_invalidate(42).await;
    assert_eq!(server.cli(&["EXISTS", "it:user:42"]), "0");
    assert_eq!(user(42).await.unwrap(), "user 42");
    assert_eq!(USER_RUNS.load(Ordering::SeqCst), 2);
}

static SHORT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60900ms", store = "redis", name = "short", version = 3)]
async fn short(id: u64) -> u64 {
    SHORT_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn a_digest_key_is_namespaced_and_keeps_milliseconds() {
    let server = server();
    assert_eq!(short(1).await, 1);
    cachette::flush().await;
    let keys = server.cli(&["KEYS", "it:short:v3:*"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let digest = keys[0].strip_prefix("it:short:v3:").unwrap();
    assert_eq!(digest.len(), 32);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
    let pttl: u64 = server.cli(&["PTTL", keys[0]]).parse().unwrap();
    // Over a minute: the 900 ms were kept (`PX 60900`, not `EX 60`).
    assert!((60_001..=60_900).contains(&pttl), "PTTL {pttl}");
    assert_eq!(short(1).await, 1);
    assert_eq!(SHORT_RUNS.load(Ordering::SeqCst), 1);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Plan {
    Free,
    Paid { seats: u32 },
    Custom(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Account {
    id: u128,
    name: String,
    plan: Plan,
    parent: Option<Box<Account>>,
    tags: Vec<String>,
    limits: BTreeMap<String, i64>,
    usage: HashMap<u32, f64>,
}

fn account(id: u64) -> Account {
    Account {
        id: u128::MAX - u128::from(id),
        name: format!("Zoë ✓ {id} \"quoted\"\n"),
        plan: Plan::Paid { seats: 3 },
        parent: Some(Box::new(Account {
            id: 1,
            name: String::new(),
            plan: Plan::Custom("ünï".into()),
            parent: None,
            tags: vec![],
            limits: BTreeMap::new(),
            usage: HashMap::new(),
        })),
        tags: vec!["a".into(), "b:c".into()],
        limits: [("x".to_string(), i64::MIN)].into_iter().collect(),
        usage: [(7, 0.25)].into_iter().collect(),
    }
}

static JSON_RUNS: AtomicUsize = AtomicUsize::new(0);
static BINCODE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", key = "account:{id}")]
async fn account_json(id: u64) -> Option<Account> {
    JSON_RUNS.fetch_add(1, Ordering::SeqCst);
    Some(account(id))
}

/// The same Redis key as `account_json`, in the other format.
#[cached(ttl = 60, store = "redis", format = "bincode", key = "account:{id}")]
async fn account_bincode(id: u64) -> Option<Account> {
    BINCODE_RUNS.fetch_add(1, Ordering::SeqCst);
    Some(account(id))
}

#[tokio::test]
async fn both_codecs_round_trip_and_each_reads_the_others_bytes_as_a_miss() {
    let server = server();
    assert_eq!(account_json(1).await, Some(account(1)));
    cachette::flush().await;
    assert_eq!(
        account_json(1).await,
        Some(account(1)),
        "decoded from Redis"
    );
    assert_eq!(JSON_RUNS.load(Ordering::SeqCst), 1);
    let text = server.cli(&["GET", "it:account:1"]);
    assert!(text.starts_with('{') && text.contains("\"Paid\""), "{text}");

    // The JSON written above is a miss for bincode, counted, and overwritten.
    assert_eq!(account_bincode(1).await, Some(account(1)));
    assert_eq!(BINCODE_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(account_bincode_stats().decode_errors, 1);
    cachette::flush().await;
    assert_eq!(
        account_bincode(1).await,
        Some(account(1)),
        "decoded from Redis"
    );
    assert_eq!(BINCODE_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(account_bincode_stats().hits, 1);
    let header = server.cli(&["GETRANGE", "it:account:1", "0", "0"]);
    assert!(
        !header.starts_with('{'),
        "bincode bytes replaced the JSON: {header:?}"
    );

    // And the bincode bytes are a miss for JSON.
    assert_eq!(account_json(1).await, Some(account(1)));
    assert_eq!(JSON_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(account_json_stats().decode_errors, 1);
}

static GARBAGE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", format = "bincode", key = "garbage:{id}")]
async fn over_garbage(id: u64) -> Vec<u32> {
    GARBAGE_RUNS.fetch_add(1, Ordering::SeqCst);
    vec![id as u32; 3]
}

#[tokio::test]
async fn garbage_under_a_key_is_a_miss_then_overwritten() {
    let server = server();
    server.cli(&["SET", "it:garbage:5", "\u{1}\u{2}not a value"]);
    assert_eq!(over_garbage(5).await, vec![5, 5, 5]);
    cachette::flush().await;
    assert_eq!(over_garbage(5).await, vec![5, 5, 5]);
    assert_eq!(
        GARBAGE_RUNS.load(Ordering::SeqCst),
        1,
        "overwritten, then a hit"
    );
    let stats = over_garbage_stats();
    assert_eq!((stats.decode_errors, stats.hits), (1, 1));
}

static BIG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", key = "big:{len}")]
async fn big(len: usize) -> String {
    BIG_RUNS.fetch_add(1, Ordering::SeqCst);
    "x".repeat(len)
}

#[tokio::test]
async fn a_value_over_the_size_cap_is_returned_whole_but_not_stored() {
    let server = server();
    let len = MAX_VALUE_BYTES + 10;
    assert_eq!(big(len).await.len(), len);
    assert_eq!(big(len).await.len(), len);
    assert_eq!(BIG_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(big_stats().oversize, 2);
    assert_eq!(server.cli(&["EXISTS", &format!("it:big:{len}")]), "0");
    assert_eq!(big(10).await.len(), 10);
    assert_eq!(big(10).await.len(), 10);
    assert_eq!(BIG_RUNS.load(Ordering::SeqCst), 3, "a small one is stored");
}

static ITEM_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", key = "item:{name}:{kind}")]
async fn item(name: &str, kind: &str) -> String {
    ITEM_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{name}|{kind}")
}

#[tokio::test]
async fn no_argument_value_can_forge_another_key() {
    let server = server();
    let tricky = [
        "", " ", ":", "a:b", "a%3Ab", "%", "{x}", "\n", "a\r\nb", "ü", "*", "item",
    ];
    let mut calls = 0;
    for name in tricky {
        for kind in ["", ":", "k"] {
            assert_eq!(item(name, kind).await, format!("{name}|{kind}"));
            calls += 1;
        }
    }
    assert_eq!(
        ITEM_RUNS.load(Ordering::SeqCst),
        calls,
        "every pair is its own entry"
    );
    cachette::flush().await;
    let keys = server.cli(&["KEYS", "it:item:*"]);
    assert_eq!(keys.lines().count(), calls);
    for key in keys.lines() {
        let rest = key.strip_prefix("it:item:").unwrap();
        assert_eq!(
            rest.matches(':').count(),
            1,
            "values never bring a `:` of their own: {key}"
        );
    }
    // Every entry reads back as its own value.
    for name in tricky {
        assert_eq!(item(name, ":").await, format!("{name}|:"));
    }
    assert_eq!(ITEM_RUNS.load(Ordering::SeqCst), calls);
}

static MEMBER_RUNS: AtomicUsize = AtomicUsize::new(0);
static ORDERS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", key = "member:{id}")]
async fn member(id: u64) -> u64 {
    MEMBER_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

/// Its keys match `member`'s clear pattern (`it:member:*`), yet are not `member`'s.
#[cached(ttl = 60, store = "redis", key = "member:{id}:orders")]
async fn member_orders(id: u64) -> u64 {
    ORDERS_RUNS.fetch_add(1, Ordering::SeqCst);
    id + 1
}

static ACCT_RUNS: AtomicUsize = AtomicUsize::new(0);
static ACCT_V0_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis", name = "acct")]
async fn acct(id: u64) -> u64 {
    ACCT_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

/// Namespace `acct:v0`: its keys `it:acct:v0:v0:{digest}` match `acct`'s clear pattern
/// `it:acct:v0:*` (version 0 is the default).
#[cached(ttl = 60, store = "redis", name = "acct:v0")]
async fn acct_nested(id: u64) -> u64 {
    ACCT_V0_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

fn count_keys(server: &RedisServer, pattern: &str) -> usize {
    server.cli(&["KEYS", pattern]).lines().count()
}

#[tokio::test]
async fn clear_drops_every_entry_of_the_function_and_nothing_else() {
    let server = server();
    server.cli(&["SET", "it:unrelated", "keep me"]);
    let runs = |counter: &AtomicUsize| counter.load(Ordering::SeqCst);
    for id in 0..20 {
        member(id).await;
        member_orders(id).await;
        acct(id).await;
        acct_nested(id).await;
    }
    cachette::flush().await;
    assert_eq!(count_keys(server, "it:member:*"), 40);
    assert_eq!(count_keys(server, "it:acct:v0:*"), 40);

    member_clear().await;
    assert_eq!(count_keys(server, "it:member:*:orders"), 20, "orders kept");
    assert_eq!(count_keys(server, "it:member:*"), 20, "members gone");
    acct_clear().await;
    assert_eq!(count_keys(server, "it:acct:v0:v0:*"), 20, "acct:v0 kept");
    assert_eq!(count_keys(server, "it:acct:v0:*"), 20, "acct gone");

    for id in 0..20 {
        assert_eq!(member(id).await, id);
        assert_eq!(member_orders(id).await, id + 1);
        assert_eq!(acct(id).await, id);
        assert_eq!(acct_nested(id).await, id);
    }
    assert_eq!(runs(&MEMBER_RUNS), 40, "every member entry was dropped");
    assert_eq!(runs(&ACCT_RUNS), 40, "every acct entry was dropped");
    assert_eq!(runs(&ORDERS_RUNS), 20, "no orders entry was: all hits");
    assert_eq!(runs(&ACCT_V0_RUNS), 20, "no acct:v0 entry was: all hits");
    cachette::flush().await;

    // And the other way round.
    member_orders_clear().await;
    acct_nested_clear().await;
    assert_eq!(count_keys(server, "it:member:*"), 20);
    assert_eq!(count_keys(server, "it:member:*:orders"), 0);
    assert_eq!(count_keys(server, "it:acct:v0:*"), 20);
    assert_eq!(count_keys(server, "it:acct:v0:v0:*"), 0);
    for id in 0..20 {
        member(id).await;
        acct(id).await;
    }
    assert_eq!((runs(&MEMBER_RUNS), runs(&ACCT_RUNS)), (40, 40), "hits");
    assert_eq!(server.cli(&["GET", "it:unrelated"]), "keep me");
}

static SAME_V1_RUNS: AtomicUsize = AtomicUsize::new(0);
static SAME_V2_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Same namespace, signature and argument as `same_v2`; only the version differs.
#[cached(ttl = 60, store = "redis", name = "same", version = 1)]
async fn same_v1(id: u64) -> u64 {
    SAME_V1_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[cached(ttl = 60, store = "redis", name = "same", version = 2)]
async fn same_v2(id: u64) -> u64 {
    SAME_V2_RUNS.fetch_add(1, Ordering::SeqCst);
    id + 1
}

#[tokio::test]
async fn versions_of_one_namespace_never_share_an_entry() {
    let server = server();
    assert_eq!(same_v1(1).await, 1);
    assert_eq!(same_v2(1).await, 2, "not v1's value");
    assert_eq!(same_v1(1).await, 1);
    assert_eq!(same_v2(1).await, 2);
    assert_eq!(
        (
            SAME_V1_RUNS.load(Ordering::SeqCst),
            SAME_V2_RUNS.load(Ordering::SeqCst)
        ),
        (1, 1),
        "each a hit on its own entry"
    );
    cachette::flush().await;
    assert_eq!(count_keys(server, "it:same:v1:*"), 1);
    assert_eq!(count_keys(server, "it:same:v2:*"), 1);
}

static FLIGHT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis")]
async fn slow_shared(id: u64) -> u64 {
    FLIGHT_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_run_the_body_once() {
    server();
    let calls: Vec<_> = (0..50).map(|_| tokio::spawn(slow_shared(9))).collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 9);
    }
    assert_eq!(FLIGHT_RUNS.load(Ordering::SeqCst), 1);
}

static TWO_RUNTIMES_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, store = "redis")]
async fn two_runtimes(id: u64) -> u64 {
    TWO_RUNTIMES_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

/// A read goes on the connection of the runtime it runs on, even from a thread whose last read
/// ran on another runtime that is still alive but no longer driven: that runtime's connection
/// would not answer until its runtime runs again.
#[test]
fn a_thread_reads_through_the_runtime_it_is_on() {
    server();
    let current_thread = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = current_thread();
    assert_eq!(first.block_on(two_runtimes(7)), 7);
    first.block_on(cachette::flush());
    assert_eq!(
        first.block_on(two_runtimes(7)),
        7,
        "a hit on the first runtime"
    );
    let second = current_thread();
    let started = std::time::Instant::now();
    assert_eq!(second.block_on(two_runtimes(7)), 7);
    let stats = two_runtimes_stats();
    assert_eq!(stats.store_errors, 0, "no read waited on the idle runtime");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the read answered in {:?}",
        started.elapsed()
    );
    assert_eq!(
        (stats.hits, TWO_RUNTIMES_RUNS.load(Ordering::SeqCst)),
        (2, 1),
        "both later calls are Redis hits"
    );
    drop(first);
}
