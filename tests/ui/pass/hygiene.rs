// Local items named like what the expansion uses must not disturb it: generated code
// names `::core`, `::cachette` and its own locals, never the caller's.
#![allow(dead_code, non_camel_case_types, non_snake_case)]

mod core {}
mod std {}
mod cachette {}

struct Option;
struct Result;
struct Duration;
struct String;
struct Some;
struct None;
struct Ok;
struct Err;
struct Stats;
struct CachedFn;
struct Spec;
struct Target;
struct KeyName;
struct StoreKind;
struct Format;
struct Codec;
fn __CACHETTE_FN() {}

mod shadowed {
    pub struct Option<T>(pub T);
    pub struct Duration;
}

use ::cachette::cached;

#[cached(ttl = "1m", capacity = 100, name = "hygiene::add")]
async fn add(__cachette_key: u64, __cachette_fn: u64) -> u64 {
    __cachette_key + __cachette_fn
}

#[cached(skip(__cachette_fn))]
async fn first(__cachette_key: u64, __cachette_fn: &str) -> u64 {
    let _ = __cachette_fn;
    __cachette_key
}

struct Repo;

impl Repo {
    #[cached]
    async fn get(&self, __cachette_key: u64, __cachette_fn: u64) -> u64 {
        __cachette_key * __cachette_fn
    }
}

fn main() {
    let rt = ::tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(add(1, 2).await, 3);
        assert_eq!(add(1, 2).await, 3);
        assert_eq!(add_stats().hits, 1);
        assert_eq!(first(7, "a").await, 7);
        assert_eq!(first(7, "b").await, 7);
        assert_eq!(first_stats().hits, 1);
        add_invalidate(1, 2).await;
        first_clear().await;
        assert_eq!(Repo.get(2, 3).await, 6);
        assert_eq!(Repo.get(2, 3).await, 6);
        assert_eq!(Repo::get_stats().hits, 1);
    });
}
