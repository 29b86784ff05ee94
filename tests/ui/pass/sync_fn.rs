// Sync functions on the memory store: free, a method, an associated function in a
// `#[cached_impl]` block; `Result`, `Option` and plain values; `ttl_from` and `unless`; sync
// companions; an async write path naming a sync function.
#![allow(dead_code)]

use std::time::Duration;

use cachette::{cache_put, cached, cached_impl, invalidates};

fn short(value: &u64) -> Option<Duration> {
    (*value == 0).then_some(Duration::from_secs(1))
}

fn odd(value: &u64) -> bool {
    value % 2 == 1
}

#[cached(ttl = "1m", ttl_from = short, unless = odd)]
fn square(x: u64) -> u64 {
    x * x
}

#[cached]
fn parse(text: &str) -> Result<u64, std::num::ParseIntError> {
    text.parse()
}

/// Looked up by id.
#[cached(capacity = 10)]
pub fn lookup(id: u64) -> Option<String> {
    (id > 0).then(|| format!("id {id}"))
}

struct Repo;

impl Repo {
    #[cached]
    fn get(&self, id: u64) -> u64 {
        id + 1
    }
}

#[cached_impl]
impl Repo {
    #[cached(ttl = 60)]
    fn find(id: u64) -> Option<u64> {
        Some(id)
    }
}

#[invalidates(square(x), Repo::find(x))]
async fn touch(x: u64) {}

#[cache_put(lookup(id))]
async fn rename(id: u64) -> Option<String> {
    Some(format!("renamed {id}"))
}

fn main() {
    assert_eq!(square(3), 9);
    assert_eq!(square(4), 16);
    assert_eq!(square(4), 16);
    assert_eq!(square_stats().hits, 1);
    assert_eq!(parse("12"), Ok(12));
    assert!(parse("x").is_err());
    assert_eq!(lookup(1).as_deref(), Some("id 1"));
    assert_eq!(Repo.get(1), 2);
    assert_eq!(Repo::find(1), Some(1));
    square_invalidate(4);
    square_clear();
    Repo::find_invalidate(1);
    Repo::get_clear();
    lookup_clear();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        touch(4).await;
        rename(1).await;
    });
    assert_eq!(lookup(1).as_deref(), Some("renamed 1"));
}
