//! `store = "tiered"` across two real OS processes sharing one test Redis.
//!
//! This binary is process A. It starts process B by running itself again on the ignored test
//! `peer_process`, with the Redis URL and the "database" directory in the environment, and
//! talks to it over stdin/stdout. The database is a file per user, which both processes read
//! and write.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cachette::{cache_put, cached, invalidates};
use support::RedisServer;

const URL_VAR: &str = "CACHETTE_TIERED_PEER_URL";
const DIR_VAR: &str = "CACHETTE_TIERED_PEER_DIR";

fn db_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| match std::env::var(DIR_VAR) {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            let dir = std::env::temp_dir().join(format!("cachette-tiered-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }
    })
    .clone()
}

#[cached(ttl = 60, store = "tiered", key = "tiered-user:{id}")]
async fn get_user(id: u64) -> std::io::Result<String> {
    std::fs::read_to_string(db_dir().join(format!("user-{id}")))
}

/// Writes the new name atomically (a reader never sees a half-written file).
#[invalidates(get_user(id))]
async fn rename_user(id: u64, name: &str) -> std::io::Result<()> {
    let dir = db_dir();
    let scratch = dir.join(format!("user-{id}.{}.tmp", std::process::id()));
    std::fs::write(&scratch, name)?;
    std::fs::rename(scratch, dir.join(format!("user-{id}")))
}

/// Writes a name and stores it as `get_user`'s entry (write-through).
#[cache_put(get_user(id))]
async fn put_user(id: u64, name: &str) -> std::io::Result<String> {
    let dir = db_dir();
    let scratch = dir.join(format!("user-{id}.{}.put", std::process::id()));
    std::fs::write(&scratch, name)?;
    std::fs::rename(scratch, dir.join(format!("user-{id}")))?;
    Ok(name.to_owned())
}

fn configure(url: &str) {
    cachette::Config::builder()
        .redis_url(url)
        .prefix("tiered")
        .redis_timeout(Duration::from_secs(5))
        .install()
        .unwrap();
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Process B: reads `rename ID NAME` and `get ID` lines, answers `PEER …` lines.
#[test]
#[ignore = "process B of the tiered tests, started by them"]
fn peer_process() {
    let Ok(url) = std::env::var(URL_VAR) else {
        return;
    };
    configure(&url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let line = line.unwrap();
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["rename", id, name] => {
                    let started = now_nanos();
                    rename_user(id.parse().unwrap(), name).await.unwrap();
                    println!("PEER done {started}");
                }
                ["get", id] => {
                    let value = get_user(id.parse().unwrap()).await.unwrap();
                    println!("PEER value {value}");
                }
                _ => break,
            }
        }
    });
}

/// Process B, seen from A.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(server: &RedisServer) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["peer_process", "--exact", "--ignored", "--nocapture"])
            .env(URL_VAR, server.url())
            .env(DIR_VAR, db_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Peer {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next `PEER …` answer, without the prefix.
    fn answer(&mut self) -> String {
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "process B ended"
            );
            if let Some(answer) = line.trim_end().strip_prefix("PEER ") {
                return answer.to_owned();
            }
        }
    }

    /// Runs the mutator in B; returns B's clock just before it started.
    fn rename(&mut self, id: u64, name: &str) -> u128 {
        self.send(&format!("rename {id} {name}"));
        let answer = self.answer();
        answer.strip_prefix("done ").unwrap().parse().unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server and one configuration for this process; the tests run one at a time, since
/// one of them cuts the process's subscription.
async fn setup() -> (tokio::sync::MutexGuard<'static, ()>, &'static RedisServer) {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    let guard = SERIAL.lock().await;
    let server = SERVER.get_or_init(|| {
        let server = RedisServer::start();
        configure(&server.url());
        server
    });
    (guard, server)
}

/// Waits until this process has applied `count` remote invalidations of `get_user`.
async fn delivered(count: u64) -> u128 {
    let deadline = Instant::now() + Duration::from_secs(5);
    while get_user_stats().remote_invalidations < count {
        assert!(
            Instant::now() < deadline,
            "invalidation {count} not delivered in 5 s"
        );
        // A short OS sleep: tokio's timer would round it up to a millisecond and blur the
        // measurement. The subscriber runs on cachette's own thread, so nothing waits on us.
        std::thread::sleep(Duration::from_micros(20));
    }
    now_nanos()
}

/// Waits until this process is subscribed (at least `count` times so far).
async fn subscribed(count: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cachette::stats::bus_subscriptions() < count {
        assert!(Instant::now() < deadline, "not subscribed within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_in_one_process_reaches_the_memory_tier_of_another() {
    let (_serial, server) = setup().await;
    rename_user(1, "v0").await.unwrap();
    subscribed(1).await;
    let mut peer = Peer::start(server);
    peer.send("get 1");
    assert_eq!(peer.answer(), "value v0", "B reads through the same Redis");

    let mut delays = Vec::new();
    for i in 1..=1000u64 {
        // A reads: from L1 once it was filled.
        let expected = format!("v{}", i - 1);
        assert_eq!(get_user(1).await.unwrap(), expected);
        // Its store (Redis, then L1) ends behind the call.
        cachette::flush().await;
        let l1_hits = get_user_stats().l1_hits;
        assert_eq!(get_user(1).await.unwrap(), expected);
        assert_eq!(
            get_user_stats().l1_hits,
            l1_hits + 1,
            "the second read is an L1 hit"
        );

        let seen_before = get_user_stats().remote_invalidations;
        let started = peer.rename(1, &format!("v{i}"));
        let seen = delivered(seen_before + 1).await;
        delays.push(seen.saturating_sub(started));
        assert_eq!(
            get_user(1).await.unwrap(),
            format!("v{i}"),
            "A sees B's write"
        );
    }
    delays.sort_unstable();
    let (p50, p99) = (percentile(&delays, 0.5), percentile(&delays, 0.99));
    println!(
        "propagation over {} invalidations, from B calling the mutator to A's L1 dropping the key: \
         p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        Duration::from_nanos(p50 as u64),
        Duration::from_nanos(p99 as u64),
        Duration::from_nanos(*delays.last().unwrap() as u64),
    );
    assert!(p99 < Duration::from_secs(1).as_nanos());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscription_clears_the_memory_tier_and_comes_back() {
    let (_serial, server) = setup().await;
    rename_user(2, "before").await.unwrap();
    subscribed(1).await;
    let mut peer = Peer::start(server);
    assert_eq!(get_user(2).await.unwrap(), "before");
    assert_eq!(get_user(2).await.unwrap(), "before");
    // The load's store (Redis, then L1) ends behind the call.
    cachette::flush().await;
    assert!(get_user_stats().entries > 0, "L1 holds the entry");

    // Revoking the channel from Redis's default user disconnects the subscription, and keeps
    // it from coming back until it is granted again: the memory tier must be cleared on the
    // drop itself, not only on the next subscription.
    struct Regrant<'a>(&'a RedisServer);
    impl Drop for Regrant<'_> {
        fn drop(&mut self) {
            self.0.cli(&["ACL", "SETUSER", "default", "allchannels"]);
        }
    }
    let subscriptions = cachette::stats::bus_subscriptions();
    let regrant = Regrant(server);
    assert_eq!(
        server.cli(&["ACL", "SETUSER", "default", "resetchannels"]),
        "OK"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while get_user_stats().entries > 0 {
        assert!(
            Instant::now() < deadline,
            "L1 was not cleared when the subscription dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let l1_hits = get_user_stats().l1_hits;
    assert_eq!(get_user(2).await.unwrap(), "before");
    assert_eq!(get_user(2).await.unwrap(), "before");
    assert_eq!(
        get_user_stats().l1_hits,
        l1_hits,
        "no L1 read while the subscription is down"
    );
    assert_eq!(
        cachette::stats::bus_subscriptions(),
        subscriptions,
        "still down: all of this happened before any resubscription"
    );

    drop(regrant);
    subscribed(subscriptions + 1).await;
    assert_eq!(
        get_user_stats().entries,
        0,
        "L1 was cleared: messages may have been missed"
    );

    // Invalidations flow again.
    assert_eq!(get_user(2).await.unwrap(), "before");
    let seen_before = get_user_stats().remote_invalidations;
    peer.rename(2, "after");
    delivered(seen_before + 1).await;
    assert_eq!(get_user(2).await.unwrap(), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_never_keep_a_value_older_than_the_last_delivered_write() {
    let (_serial, server) = setup().await;
    rename_user(3, "w0").await.unwrap();
    subscribed(1).await;
    let mut peer = Peer::start(server);

    // The last write delivered to this process: a read that begins after it was delivered
    // must return it or a newer one, including reads that begin well after (a late fill of
    // an older value would show there).
    let delivered_write = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (stop, reads, delivered_write) =
                (stop.clone(), reads.clone(), delivered_write.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let floor = delivered_write.load(Ordering::SeqCst);
                    let value = get_user(3).await.unwrap();
                    let seen: u64 = value.trim_start_matches('w').parse().unwrap();
                    assert!(
                        seen >= floor,
                        "read {value} after write w{floor} was delivered"
                    );
                    reads.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    for i in 1..=200u64 {
        let seen_before = get_user_stats().remote_invalidations;
        peer.rename(3, &format!("w{i}"));
        delivered(seen_before + 1).await;
        delivered_write.store(i, Ordering::SeqCst);
        // Once the write is delivered, no read may return anything older: now, and after the
        // readers have each finished reads begun since (their older loads' fills are done).
        for _ in 0..3 {
            assert_eq!(
                get_user(3).await.unwrap(),
                format!("w{i}"),
                "after write {i}"
            );
        }
        let reads_now = reads.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while reads.load(Ordering::SeqCst) < reads_now + 6 {
            assert!(Instant::now() < deadline, "the readers stopped reading");
            tokio::task::yield_now().await;
        }
        assert_eq!(
            get_user(3).await.unwrap(),
            format!("w{i}"),
            "later, after write {i}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader
            .await
            .expect("no reader saw a value older than a delivered write");
    }
    let reads = reads.load(Ordering::SeqCst);
    assert!(
        reads > 200,
        "the readers really ran alongside: {reads} reads"
    );
}

/// Regression: a process hears its own invalidation messages; the one a write-through
/// publishes must not delete the value it has just written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_is_not_undone_by_its_own_message() {
    let (_serial, server) = setup().await;
    get_user_stats(); // sets the function up, which subscribes the process
    subscribed(1).await;
    assert_eq!(put_user(4, "stored").await.unwrap(), "stored");
    let loads = get_user_stats().loads;
    // Wait until the process's own message came back (and was ignored): a message published
    // after it, as another process would (for key 999, which nothing here reads), is
    // delivered after it on the channel.
    let counted = get_user_stats().remote_invalidations;
    let digest = format!("{:032x}", __cachette_keyof_get_user(&999).unwrap().digest());
    let marker = format!(
        r#"{{"ns":"{}","keys":["{digest}"]}}"#,
        __cachette_fn_get_user().namespace()
    );
    server.cli(&["PUBLISH", "tiered:invalidations", &marker]);
    delivered(counted + 1).await;
    assert_eq!(get_user(4).await.unwrap(), "stored");
    assert_eq!(
        get_user_stats().loads,
        loads,
        "served from the cache, not loaded again"
    );
    assert_eq!(server.cli(&["GET", "tiered:tiered-user:4"]), "\"stored\"");
}

/// A message marked `echo` (sent by a process that deleted a key again because its own write
/// may have outlived an invalidation) only drops the key from memory: it is not counted as an
/// invalidation, and a key this process wrote lately is not deleted from Redis again, so one
/// invalidation never sets off a round of deletes and messages between processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_only_drops_the_memory_copy() {
    let (_serial, server) = setup().await;
    rename_user(4, "kept").await.unwrap();
    subscribed(1).await;
    assert_eq!(
        get_user(4).await.unwrap(),
        "kept",
        "written to Redis just now"
    );
    cachette::flush().await;
    let entries = get_user_stats().entries;
    assert!(entries > 0, "and to memory");
    let counted = get_user_stats().remote_invalidations;
    let l1_hits = get_user_stats().l1_hits;
    // As another process would name it: the digest of the key and the function's namespace.
    let digest = format!("{:032x}", __cachette_keyof_get_user(&4).unwrap().digest());
    let message = format!(
        r#"{{"ns":"{}","keys":["{digest}"],"echo":true}}"#,
        __cachette_fn_get_user().namespace()
    );
    server.cli(&["PUBLISH", "tiered:invalidations", &message]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while get_user_stats().entries == entries {
        assert!(Instant::now() < deadline, "the echo never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        get_user_stats().remote_invalidations,
        counted,
        "an echo is not counted as an invalidation"
    );
    assert_eq!(
        server.cli(&["EXISTS", "tiered:tiered-user:4"]),
        "1",
        "the key this process wrote lately stays in Redis"
    );
    assert_eq!(get_user(4).await.unwrap(), "kept");
    assert_eq!(
        get_user_stats().l1_hits,
        l1_hits,
        "read from Redis, not memory"
    );
}
