//! A key argument whose `Serialize` fails: the body runs uncached, every time, and the call
//! is counted in `key_errors`; write paths naming such a key do nothing and still return.

use std::sync::atomic::{AtomicUsize, Ordering};

use cachette::{cache_put, cached, invalidates};
use serde::{Serialize, Serializer};

/// Serializes fine unless `broken`.
#[derive(Clone, Copy)]
struct Arg {
    id: u64,
    broken: bool,
}

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.broken {
            return Err(serde::ser::Error::custom(
                "this argument cannot be serialized",
            ));
        }
        serializer.serialize_u64(self.id)
    }
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60)]
async fn lookup(arg: Arg) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    arg.id * 10
}

#[invalidates(lookup(arg))]
async fn change(arg: Arg) -> Result<u64, ()> {
    Ok(arg.id)
}

#[cache_put(lookup(arg))]
async fn store(arg: Arg) -> u64 {
    arg.id * 100
}

#[tokio::test]
async fn an_unhashable_key_runs_the_body_uncached_and_is_counted() {
    let runs = || RUNS.load(Ordering::SeqCst);
    let good = Arg {
        id: 1,
        broken: false,
    };
    let bad = Arg {
        id: 2,
        broken: true,
    };
    assert_eq!(lookup(good).await, 10);
    assert_eq!(lookup(good).await, 10);
    assert_eq!(runs(), 1, "a hashable key is cached");
    assert_eq!(lookup_stats().key_errors, 0);

    for n in 1..=3u64 {
        assert_eq!(lookup(bad).await, 20, "the body's own result");
        assert_eq!(
            runs() as u64,
            1 + n,
            "never cached: the body ran every time"
        );
        assert_eq!(lookup_stats().key_errors, n, "counted");
    }
    let stats = lookup_stats();
    assert_eq!(stats.entries, 1, "nothing stored for the unhashable key");
    assert_eq!(stats.hits, 1);

    assert_eq!(
        change(bad).await,
        Ok(2),
        "a write path still returns its result"
    );
    assert_eq!(store(bad).await, 200);
    assert_eq!(lookup_stats().key_errors, 5, "and counts its key error");
    assert_eq!(lookup(good).await, 10, "other entries untouched");
    assert_eq!(runs(), 4);
}
