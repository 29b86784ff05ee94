//! `#[cached]` in `impl` blocks marked `#[cached_impl]`: associated functions without `self`,
//! and methods of trait impls (async fn in traits), with write paths naming them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cachette::{cache_put, cached, cached_impl, invalidates};

#[derive(Clone, Debug, PartialEq)]
struct User {
    id: u64,
    name: String,
}

static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static FIND_LOADS: AtomicUsize = AtomicUsize::new(0);

struct Repo;

#[cached_impl]
impl Repo {
    /// An associated function without `self`.
    #[cached(ttl = "5m")]
    async fn find(id: usize) -> Option<String> {
        FIND_LOADS.fetch_add(1, Ordering::SeqCst);
        NAMES.lock().unwrap().get(id).cloned()
    }

    #[invalidates(Self::find(id))]
    async fn rename(id: usize, name: &str) -> Result<(), String> {
        let mut names = NAMES.lock().unwrap();
        *names.get_mut(id).ok_or("no such id")? = name.to_owned();
        Ok(())
    }
}

/// From outside the impl, through the type's name.
#[cache_put(Repo::find(id))]
async fn put_name(id: usize, name: &str) -> Option<String> {
    NAMES.lock().unwrap()[id] = name.to_owned();
    Some(name.to_owned())
}

#[tokio::test]
async fn an_associated_function_without_self_is_cached_and_invalidated() {
    NAMES
        .lock()
        .unwrap()
        .extend(["ada".to_owned(), "bob".to_owned()]);
    let loads = || FIND_LOADS.load(Ordering::SeqCst);
    assert_eq!(Repo::find(0).await.as_deref(), Some("ada"));
    assert_eq!(Repo::find(0).await.as_deref(), Some("ada"));
    assert_eq!(loads(), 1);
    assert_eq!(Repo::find_stats().hits, 1);

    Repo::rename(0, "grace").await.unwrap();
    assert_eq!(Repo::find(0).await.as_deref(), Some("grace"));
    assert_eq!(loads(), 2);

    put_name(0, "lin").await;
    assert_eq!(Repo::find(0).await.as_deref(), Some("lin"));
    assert_eq!(loads(), 2, "written through");

    Repo::find_invalidate(0).await;
    assert_eq!(Repo::find(0).await.as_deref(), Some("lin"));
    assert_eq!(loads(), 3);
    assert!(
        cachette::stats::all()
            .iter()
            .any(|(ns, _)| ns.ends_with("Repo::find")),
        "namespaced by the type"
    );
}

trait UserStore {
    async fn get(&self, id: u64) -> Option<User>;
    async fn count(&self) -> usize;
}

struct PgStore {
    users: Mutex<HashMap<u64, String>>,
    loads: AtomicUsize,
}

#[cached_impl]
impl UserStore for PgStore {
    #[cached(ttl = "1m")]
    async fn get(&self, id: u64) -> Option<User> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let name = self.users.lock().unwrap().get(&id).cloned()?;
        Some(User { id, name })
    }

    /// Not cached: left as written.
    async fn count(&self) -> usize {
        self.users.lock().unwrap().len()
    }
}

impl PgStore {
    #[invalidates(Self::get(self, id))]
    async fn rename(&self, id: u64, name: &str) {
        self.users.lock().unwrap().insert(id, name.to_owned());
    }

    /// The spelling, a qualified path.
    #[invalidates(<PgStore as UserStore>::get(self, id))]
    async fn remove(&self, id: u64) {
        self.users.lock().unwrap().remove(&id);
    }

    #[cache_put(PgStore::get(self, id))]
    async fn save(&self, id: u64, name: &str) -> Result<Option<User>, String> {
        self.users.lock().unwrap().insert(id, name.to_owned());
        Ok(Some(User {
            id,
            name: name.to_owned(),
        }))
    }
}

/// Generic over the trait: the cache sits behind it.
async fn name_of(store: &impl UserStore, id: u64) -> Option<String> {
    store.get(id).await.map(|user| user.name)
}

#[tokio::test]
async fn a_trait_method_is_cached_and_write_paths_name_it_three_ways() {
    let store = PgStore {
        users: Mutex::new(HashMap::from([(1, "ada".to_owned())])),
        loads: AtomicUsize::new(0),
    };
    let loads = || store.loads.load(Ordering::SeqCst);
    assert_eq!(name_of(&store, 1).await.as_deref(), Some("ada"));
    assert_eq!(name_of(&store, 1).await.as_deref(), Some("ada"));
    assert_eq!(loads(), 1);
    assert_eq!(store.count().await, 1);

    store.rename(1, "grace").await;
    assert_eq!(name_of(&store, 1).await.as_deref(), Some("grace"));
    assert_eq!(loads(), 2);

    store.save(1, "lin").await.unwrap();
    assert_eq!(name_of(&store, 1).await.as_deref(), Some("lin"));
    assert_eq!(loads(), 2, "written through");

    store.remove(1).await;
    assert_eq!(name_of(&store, 1).await, None);
    assert_eq!(loads(), 3);

    // The companions live in an inherent impl of the type.
    assert_eq!(PgStore::get_stats().loads, 3);
    PgStore::get_clear().await;
    assert_eq!(PgStore::get_stats().entries, 0);
}
