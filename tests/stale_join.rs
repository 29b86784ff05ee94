//! A leader's second look in Redis (`RedisFn::get_leading`), made after an invalidation voided
//! the key's flight but before its `DEL` was answered, may read the old value: a call that
//! begins after the invalidation returned must not be handed it. Its own binary: it owns its
//! server and the process's configuration.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cachette::cached;
use support::RedisServer;

static DB: AtomicU64 = AtomicU64::new(0);
static PAUSE_IN_BODY: AtomicBool = AtomicBool::new(false);
static PORT: AtomicU32 = AtomicU32::new(0);

#[cached(ttl = 60, store = "redis", key = "sj:{id}")]
async fn read_db(id: u64) -> u64 {
    let _ = id;
    if PAUSE_IN_BODY.swap(false, Ordering::SeqCst) {
        // Holds the fill's SET (writes paused, reads go on).
        let status = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &PORT.load(Ordering::SeqCst).to_string(),
            ])
            .args(["CLIENT", "PAUSE", "550", "WRITE"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    DB.load(Ordering::SeqCst)
}

fn one_worker() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Blocks the runtime's only worker for `d`: its tasks are not polled meanwhile.
fn block(rt: &tokio::runtime::Runtime, d: Duration) {
    rt.spawn(async move { std::thread::sleep(d) });
}

/// Redis notices that a `CLIENT PAUSE` ran out in its cron, up to 100 ms (`hz 10`) after the
/// time asked for, so each step of the schedule leaves 200 ms or more either side of a pause's
/// end; a step may come up to 100 ms late and the race is still staged as planned.
fn sleep_until(start: Instant, ms: u64) {
    let at = start + Duration::from_millis(ms);
    let now = Instant::now();
    assert!(
        now <= at + Duration::from_millis(100),
        "harness late for {ms} ms"
    );
    std::thread::sleep(at.saturating_duration_since(now));
}

#[test]
fn a_call_after_an_invalidation_never_gets_a_value_read_from_redis_before_its_delete() {
    let server = RedisServer::start();
    PORT.store(u32::from(server.port()), Ordering::SeqCst);
    cachette::Config::builder()
        .redis_url(server.url())
        .prefix("sj")
        .redis_timeout(Duration::from_millis(3000))
        .install()
        .unwrap();
    let (re, rm, rc, rd) = (one_worker(), one_worker(), one_worker(), one_worker());
    // Warm every runtime's read connection, and the shared one.
    for (i, rt) in [&re, &rm, &rc, &rd].into_iter().enumerate() {
        let id = 100 + i as u64;
        rt.block_on(rt.spawn(read_db(id))).unwrap();
        rt.block_on(rt.spawn(read_db(id))).unwrap();
    }
    re.block_on(cachette::flush());
    let key = "sj:sj:1";
    assert_eq!(server.cli(&["EXISTS", key]), "0");
    DB.store(0, Ordering::SeqCst); // v0

    let start = Instant::now();
    // C's first GET is held, then answered (a miss) while C's runtime is blocked.
    server.cli(&["CLIENT", "PAUSE", "300", "ALL"]);
    let c = rc.spawn(read_db(1));
    sleep_until(start, 100);
    block(&rc, Duration::from_millis(1500)); // until ~1600
    sleep_until(start, 550);
    // E loads v0 and leads F1; its SET is held by a write pause until ~1100.
    PAUSE_IN_BODY.store(true, Ordering::SeqCst);
    assert_eq!(re.block_on(re.spawn(read_db(1))).unwrap(), 0);
    // E returned before its fill sent the SET; an invalidation before it is sent would skip it.
    server.wait_for_held_commands(1);
    // M writes v1 and invalidates: F1 marked stale, M waits for F1's gate.
    DB.store(1, Ordering::SeqCst);
    let m = rm.spawn(read_db_invalidate(1));
    sleep_until(start, 750);
    assert!(!m.is_finished(), "M waits for F1's SET");
    block(&rm, Duration::from_millis(1500)); // until ~2250: M cannot send its DEL
    sleep_until(start, 1450);
    assert_eq!(server.cli(&["GET", key]), "0", "F1's SET landed");
    // C's next GET is held until ~1950, then answered while C's runtime is blocked again.
    server.cli(&["CLIENT", "PAUSE", "500", "ALL"]);
    // ~1600: C goes on: its GET missed, F1 is gone, it leads F2; a fill of its bucket ended
    // since its count was read, so it reads Redis again (held by the pause).
    sleep_until(start, 1750);
    // Until ~3750. Meanwhile, ~1950: C's GET runs (v0); ~2250: M sends its DEL, which is
    // answered.
    block(&rc, Duration::from_millis(2000));
    rm.block_on(m).unwrap();
    assert_eq!(server.cli(&["EXISTS", key]), "0", "M deleted the key");
    let m_returned = start.elapsed();
    // D begins after M returned: it must not see v0.
    let d = rd.spawn(read_db(1));
    let d = rd.block_on(d).unwrap();
    let c = rc.block_on(c).unwrap();
    eprintln!(
        "M returned at {m_returned:?}; C got {c}; D (began after M returned) got {d}; DB is {}",
        DB.load(Ordering::SeqCst)
    );
    assert_eq!(
        d, 1,
        "a call that began after the invalidation returned got the value it replaced"
    );
}
