// Methods of trait impls marked `#[cached_impl]`: async fn in a trait, a generic impl, a
// method with a skipped argument beside one that is not cached; write paths name them as
// `Type::f`, `Self::f` and `<Type as Trait>::f`, and `all(…)` of one.
#![allow(dead_code)]

use std::marker::PhantomData;

use cachette::{cache_put, cached, cached_impl, invalidates};

#[derive(Clone, Debug, PartialEq)]
struct User {
    id: u64,
}

trait UserStore {
    async fn get(&self, id: u64) -> Option<User>;
    async fn search(&self, log: &str, text: String) -> Vec<u64>;
    fn name(&self) -> &'static str;
}

struct PgStore;

#[cached_impl]
impl UserStore for PgStore {
    #[cached(ttl = "5m")]
    async fn get(&self, id: u64) -> Option<User> {
        Some(User { id })
    }

    #[cached(skip(log))]
    async fn search(&self, log: &str, text: String) -> Vec<u64> {
        let _ = log;
        vec![text.len() as u64]
    }

    fn name(&self) -> &'static str {
        "pg"
    }
}

impl PgStore {
    #[invalidates(Self::get(self, id), <PgStore as UserStore>::search(self, "log", text))]
    async fn rename(&self, id: u64, text: String) -> Result<(), String> {
        Ok(())
    }

    #[invalidates(all(<PgStore as UserStore>::search))]
    async fn reindex(&self) {}
}

#[cache_put(PgStore::get(store, id))]
async fn save(store: &PgStore, id: u64) -> Result<Option<User>, String> {
    let _ = store;
    Ok(Some(User { id }))
}

struct MemStore<T>(PhantomData<T>);

#[cached_impl]
impl<T: Send + Sync> UserStore for MemStore<T> {
    #[cached]
    async fn get(&self, id: u64) -> Option<User> {
        Some(User { id: id + 1 })
    }

    async fn search(&self, _log: &str, _text: String) -> Vec<u64> {
        Vec::new()
    }

    fn name(&self) -> &'static str {
        "mem"
    }
}

async fn first(store: &impl UserStore) -> Option<User> {
    store.get(1).await
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let pg = PgStore;
        assert_eq!(first(&pg).await, Some(User { id: 1 }));
        assert_eq!(first(&pg).await, Some(User { id: 1 }));
        assert_eq!(PgStore::get_stats().hits, 1);
        assert_eq!(pg.search("a", "abc".into()).await, vec![3]);
        pg.rename(1, "abc".into()).await.unwrap();
        pg.reindex().await;
        save(&pg, 2).await.unwrap();
        assert_eq!(pg.get(2).await, Some(User { id: 2 }));
        assert_eq!(pg.name(), "pg");
        PgStore::get_invalidate(2).await;
        assert_eq!(PgStore::get_uncached(&pg, 9).await, Some(User { id: 9 }));
        let mem: MemStore<u8> = MemStore(PhantomData);
        assert_eq!(first(&mem).await, Some(User { id: 2 }));
        assert_eq!(MemStore::<u8>::get_stats().misses, 1);
    });
}
