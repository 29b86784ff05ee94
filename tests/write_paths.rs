//! `#[invalidates]` and `#[cache_put]` on the memory store, used as a user would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cachette::{cache_put, cached, invalidates};

#[derive(Debug, Clone, PartialEq)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct DbError;

/// A tiny "database".
struct Db {
    users: Mutex<HashMap<u64, String>>,
    loads: AtomicUsize,
}

impl Db {
    fn new() -> Self {
        let users = (1..=3).map(|id| (id, format!("user{id}"))).collect();
        Db {
            users: Mutex::new(users),
            loads: AtomicUsize::new(0),
        }
    }
}

#[cached(skip(db))]
async fn get_user(db: &Db, id: u64) -> Result<User, DbError> {
    db.loads.fetch_add(1, Ordering::SeqCst);
    let users = db.users.lock().unwrap();
    let name = users.get(&id).cloned().ok_or(DbError)?;
    Ok(User { id, name })
}

static LIST_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(skip(db))]
async fn list_ids(db: &Db) -> Vec<u64> {
    LIST_LOADS.fetch_add(1, Ordering::SeqCst);
    let mut ids: Vec<u64> = db.users.lock().unwrap().keys().copied().collect();
    ids.sort_unstable();
    ids
}

/// Renames a user; the body moves `name`, the key was computed before.
#[invalidates(get_user(db, id), all(list_ids))]
async fn rename_user(db: &Db, id: u64, name: String) -> Result<(), DbError> {
    let mut users = db.users.lock().unwrap();
    let slot = users.get_mut(&id).ok_or(DbError)?;
    *slot = name; // moved
    Ok(())
}

#[cache_put(get_user(db, id))]
async fn set_name(db: &Db, id: u64, name: &str) -> Result<User, DbError> {
    db.users.lock().unwrap().insert(id, name.to_owned());
    Ok(User {
        id,
        name: name.to_owned(),
    })
}

#[tokio::test]
async fn a_successful_mutator_drops_the_entries_it_names() {
    let db = Db::new();
    assert_eq!(get_user(&db, 1).await.unwrap().name, "user1");
    assert_eq!(get_user(&db, 2).await.unwrap().name, "user2");
    assert_eq!(list_ids(&db).await, vec![1, 2, 3]);
    assert_eq!(db.loads.load(Ordering::SeqCst), 2);

    rename_user(&db, 1, "ada".to_owned()).await.unwrap();
    assert_eq!(
        get_user(&db, 1).await.unwrap().name,
        "ada",
        "stale entry dropped"
    );
    assert_eq!(get_user(&db, 2).await.unwrap().name, "user2");
    assert_eq!(db.loads.load(Ordering::SeqCst), 3, "only user 1 reloaded");
    list_ids(&db).await;
    assert_eq!(
        LIST_LOADS.load(Ordering::SeqCst),
        2,
        "all(list_ids) dropped every entry"
    );

    // A failing mutator invalidates nothing.
    assert!(rename_user(&db, 99, "nobody".to_owned()).await.is_err());
    get_user(&db, 1).await.unwrap();
    assert_eq!(db.loads.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn cache_put_writes_the_returned_value_through() {
    let db = Db::new();
    assert_eq!(get_user(&db, 3).await.unwrap().name, "user3");
    let loads = db.loads.load(Ordering::SeqCst);
    let user = set_name(&db, 3, "grace").await.unwrap();
    assert_eq!(user.name, "grace");
    assert_eq!(get_user(&db, 3).await.unwrap().name, "grace");
    assert_eq!(
        db.loads.load(Ordering::SeqCst),
        loads,
        "served from the entry written through"
    );
}

struct Repo {
    loads: AtomicUsize,
    names: Mutex<HashMap<u64, String>>,
}

impl Repo {
    #[cached(ttl = 60)]
    async fn find(&self, id: u64) -> Option<String> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.names.lock().unwrap().get(&id).cloned()
    }

    #[invalidates(Self::find(self, id), before = true)]
    async fn rename(&self, id: u64, name: &str) {
        self.names.lock().unwrap().insert(id, name.to_owned());
    }

    /// Fails: only `before = true` can have dropped the entry.
    #[invalidates(Self::find(self, id), before = true)]
    async fn refuse(&self, id: u64) -> Result<(), DbError> {
        let _ = id;
        Err(DbError)
    }

    #[cache_put(Self::find(self, id))]
    async fn put(&self, id: u64, name: String) -> Option<String> {
        self.names.lock().unwrap().insert(id, name.clone());
        Some(name)
    }
}

mod elsewhere {
    use super::*;

    pub(crate) static TOTAL_LOADS: AtomicUsize = AtomicUsize::new(0);

    #[cached]
    pub(crate) async fn total(a: u32, b: u32) -> u32 {
        TOTAL_LOADS.fetch_add(1, Ordering::SeqCst);
        a + b
    }
}

#[invalidates(elsewhere::total(a, 2))]
async fn touch(a: u32) -> u32 {
    a
}

#[tokio::test]
async fn methods_and_functions_in_other_modules_are_targets() {
    let repo = Repo {
        loads: AtomicUsize::new(0),
        names: Mutex::new(HashMap::new()),
    };
    assert_eq!(repo.find(1).await, None, "None is not cached");
    repo.rename(1, "x").await;
    assert_eq!(repo.find(1).await.as_deref(), Some("x"));
    assert_eq!(repo.find(1).await.as_deref(), Some("x"));
    assert_eq!(repo.loads.load(Ordering::SeqCst), 2);
    repo.rename(1, "y").await;
    assert_eq!(repo.find(1).await.as_deref(), Some("y"));
    assert_eq!(repo.loads.load(Ordering::SeqCst), 3);
    // `before = true` drops the entry before the body runs: even a body that fails, which
    // invalidates nothing afterwards, leaves the entry gone.
    assert!(repo.refuse(1).await.is_err());
    assert_eq!(repo.find(1).await.as_deref(), Some("y"));
    assert_eq!(
        repo.loads.load(Ordering::SeqCst),
        4,
        "dropped before the failing body"
    );
    // cache_put on an Option: the whole returned value is the entry.
    assert_eq!(repo.put(1, "z".into()).await.as_deref(), Some("z"));
    assert_eq!(repo.find(1).await.as_deref(), Some("z"));
    assert_eq!(repo.loads.load(Ordering::SeqCst), 4);

    assert_eq!(elsewhere::total(5, 2).await, 7);
    assert_eq!(elsewhere::total(5, 2).await, 7);
    assert_eq!(elsewhere::TOTAL_LOADS.load(Ordering::SeqCst), 1);
    assert_eq!(touch(5).await, 5);
    assert_eq!(elsewhere::total(5, 2).await, 7);
    assert_eq!(elsewhere::TOTAL_LOADS.load(Ordering::SeqCst), 2);
}
