// `ttl_from` and `unless` on every store and return shape, naming functions by path; puts in
// the target's own `Option` shape. Only compiled: the Redis functions are never called.
#![allow(dead_code)]

use std::time::Duration;

use cachette::{cache_put, cached};

mod policy {
    use std::time::Duration;

    pub fn by_len(text: &String) -> Option<Duration> {
        Some(Duration::from_secs(text.len() as u64))
    }

    pub fn is_empty(text: &String) -> bool {
        text.is_empty()
    }
}

fn none_shorter(found: &Option<u64>) -> Option<Duration> {
    found.is_none().then_some(Duration::from_secs(5))
}

#[cached(ttl = "1m", ttl_from = policy::by_len, unless = policy::is_empty)]
async fn memory(id: u64) -> Result<String, std::io::Error> {
    Ok(id.to_string())
}

#[cached(ttl = "1m", store = "redis", ttl_from = policy::by_len, unless = policy::is_empty)]
async fn redis(id: u64) -> Option<String> {
    Some(id.to_string())
}

#[cached(ttl = "1m", store = "tiered", cache_none = true, ttl_from = none_shorter)]
async fn tiered(id: u64) -> Option<u64> {
    Some(id)
}

struct Repo;

impl Repo {
    #[cached(ttl = "1m", unless = policy::is_empty)]
    async fn name(&self, id: u64) -> String {
        id.to_string()
    }
}

#[cache_put(redis(id))]
async fn put_redis(id: u64) -> Result<Option<String>, String> {
    Ok(None)
}

#[cache_put(tiered(id))]
async fn put_tiered(id: u64) -> Option<Option<u64>> {
    Some(None)
}

#[cache_put(memory(id))]
async fn put_memory(id: u64) -> String {
    String::new()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(memory(12).await.unwrap(), "12");
        assert_eq!(Repo.name(1).await, "1");
        put_memory(1).await;
        assert_eq!(memory_stats().declined, 1);
    });
}
