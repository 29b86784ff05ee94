// The Redis options, defined and type-checked but never called (no server is needed):
// `store = "redis"` and `"tiered"`, `format = "bincode"`, key templates, `l1_ttl`, `name`,
// `version`, a method with a key template, and the companions of each.
#![allow(dead_code)]

use cachette::{cache_put, cached, invalidates};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct DbError;

#[cached(ttl = "10m", store = "redis")]
async fn user_json(id: u64) -> Result<User, DbError> {
    Ok(User {
        id,
        name: format!("user{id}"),
    })
}

#[cached(ttl = 300, store = "redis", format = "bincode", name = "users::bin", version = 2)]
async fn user_bincode(id: u64) -> Option<User> {
    Some(User {
        id,
        name: format!("user{id}"),
    })
}

#[cached(ttl = "5m", store = "redis", key = "user:{id}:{page}")]
async fn page(id: u64, page: u32) -> Vec<String> {
    vec![format!("{id}:{page}")]
}

struct Db;

#[cached(ttl = "5m", store = "redis", skip(db), key = "user:{id}")]
async fn with_skip(db: &Db, id: u64) -> String {
    let _ = db;
    format!("user{id}")
}

#[cached(ttl = "1h", store = "tiered", l1_ttl = "10s", format = "bincode", capacity = 1_000)]
async fn tiered(id: u64, tag: String) -> Result<Vec<u64>, DbError> {
    Ok(vec![id, tag.len() as u64])
}

#[cached(ttl = "1m", store = "tiered", key = "profile:v3:{id}", name = "profiles")]
async fn profile(id: u64) -> Option<User> {
    let _ = id;
    None
}

struct Repo;

impl Repo {
    #[cached(ttl = "2m", store = "tiered", key = "repo:{id}:{{v1}}")]
    async fn find(&self, id: u64) -> Option<String> {
        Some(format!("repo{id}"))
    }

    #[invalidates(Self::find(self, id))]
    async fn rename(&self, id: u64) {}

    #[cache_put(Self::find(self, id))]
    async fn store(&self, id: u64, name: String) -> Option<String> {
        Some(name)
    }
}

#[invalidates(user_json(id), user_bincode(id), page(id, 1), all(tiered))]
async fn rename(id: u64) -> Result<(), DbError> {
    let _ = id;
    Ok(())
}

#[cache_put(with_skip(db, id))]
async fn set_name(db: &Db, id: u64, name: String) -> String {
    let _ = db;
    name
}

fn main() {
    let _ = user_json;
    let _ = user_json_invalidate;
    let _ = user_json_clear;
    let _ = user_json_stats;
    let _ = user_json_uncached;
    let _ = user_bincode_invalidate;
    let _ = page_invalidate;
    let _ = with_skip_invalidate;
    let _ = with_skip_uncached;
    let _ = tiered_invalidate;
    let _ = tiered_clear;
    let _ = profile_invalidate;
    let _ = Repo::find_invalidate;
    let _ = Repo::find_clear;
    let _ = Repo::find_uncached;
    let _ = Repo::rename;
    let _ = Repo::store;
    let _ = rename;
    let _ = set_name;
}
