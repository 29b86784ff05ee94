// `#[invalidates]` and `#[cache_put]` as a user writes them: several targets, a target in
// another module, a cached method through `Self::`, `all(f)`, `before = true`; puts on
// `Result<T, E>`, `Option<T>` and plain `T`; skipped arguments passed to the target; bodies
// that move an argument after its key was computed. A local `mod core {}` and a local `Result`
// alias must not disturb the expansion.
#![allow(dead_code)]

mod core {}

use ::std::collections::HashMap;
use ::std::sync::atomic::{AtomicUsize, Ordering};
use ::std::sync::Mutex;

use cachette::{cache_put, cached, invalidates};

#[derive(Debug, PartialEq)]
struct DbError;

/// Shadows the prelude's `Result` everywhere below.
type Result<T> = ::std::result::Result<T, DbError>;

#[derive(Debug, Clone, PartialEq)]
struct User {
    id: u64,
    name: String,
}

/// A tiny "database", skipped from every key.
struct Db {
    names: Mutex<HashMap<u64, String>>,
    loads: AtomicUsize,
}

impl Db {
    fn new() -> Self {
        let names = (1..=3).map(|id| (id, format!("user{id}"))).collect();
        Db {
            names: Mutex::new(names),
            loads: AtomicUsize::new(0),
        }
    }

    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

mod users {
    use super::{Db, DbError, Ordering, Result, User};
    use cachette::cached;

    #[cached(skip(db))]
    pub(crate) async fn get_user(db: &Db, id: u64) -> Result<User> {
        db.loads.fetch_add(1, Ordering::SeqCst);
        let name = db.names.lock().unwrap().get(&id).cloned().ok_or(DbError)?;
        Ok(User { id, name })
    }
}

static NICK_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn nickname(id: u64) -> Option<String> {
    NICK_LOADS.fetch_add(1, Ordering::SeqCst);
    Some(format!("nick{id}"))
}

static LIST_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(skip(db))]
async fn list_ids(db: &Db) -> Vec<u64> {
    LIST_LOADS.fetch_add(1, Ordering::SeqCst);
    let mut ids: Vec<u64> = db.names.lock().unwrap().keys().copied().collect();
    ids.sort_unstable();
    ids
}

static SCORE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn score(id: u64) -> u64 {
    SCORE_LOADS.fetch_add(1, Ordering::SeqCst);
    id * 10
}

/// Several targets, one in another module with its skipped `db`, `all(...)`, `before = true`;
/// the body moves `name`.
#[invalidates(users::get_user(db, id), nickname(id), all(list_ids), before = true)]
async fn rename(db: &Db, id: u64, name: String) -> Result<()> {
    let mut names = db.names.lock().unwrap();
    let slot = names.get_mut(&id).ok_or(DbError)?;
    *slot = name; // moved: the keys were made before the body
    Ok(())
}

/// Adds a user: every cached list is stale.
#[invalidates(all(list_ids))]
async fn add_user(db: &Db, id: u64, name: String) {
    db.names.lock().unwrap().insert(id, name);
}

/// Write-through on `Result<T, E>`; the body moves `name`.
#[cache_put(users::get_user(db, id))]
async fn set_user(db: &Db, id: u64, name: String) -> Result<User> {
    db.names.lock().unwrap().insert(id, name.clone());
    let user = User { id, name }; // `name` moved
    Ok(user)
}

/// Write-through on `Option<T>`.
#[cache_put(nickname(id))]
async fn set_nickname(id: u64, nick: String) -> Option<String> {
    if nick.is_empty() {
        None
    } else {
        Some(nick)
    }
}

/// Write-through on a plain `T`.
#[cache_put(score(id))]
async fn set_score(id: u64, score: u64) -> u64 {
    score
}

static EMAIL_LOADS: AtomicUsize = AtomicUsize::new(0);
static EMAILS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

/// Keyed by an owned `String`.
#[cached]
async fn user_by_email(email: String) -> Option<u64> {
    EMAIL_LOADS.fetch_add(1, Ordering::SeqCst);
    let emails = EMAILS.lock().unwrap();
    emails.iter().find(|(e, _)| *e == email).map(|(_, id)| *id)
}

/// The body moves `email`, the very argument the target's key is made of.
#[invalidates(user_by_email(email))]
async fn add_email(id: u64, email: String) -> Result<()> {
    EMAILS.lock().unwrap().push((email, id)); // moved
    Ok(())
}

/// The same for a put.
#[cache_put(user_by_email(email))]
async fn register(id: u64, email: String) -> Option<u64> {
    EMAILS.lock().unwrap().push((email, id)); // moved
    Some(id)
}

struct Repo {
    names: Mutex<HashMap<u64, String>>,
    loads: AtomicUsize,
}

impl Repo {
    #[cached(ttl = 60)]
    async fn find(&self, id: u64) -> Option<String> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.names.lock().unwrap().get(&id).cloned()
    }

    #[invalidates(Self::find(self, id))]
    async fn rename(&self, id: u64, name: String) {
        self.names.lock().unwrap().insert(id, name);
    }

    #[cache_put(Self::find(self, id))]
    async fn store(&self, id: u64, name: String) -> Option<String> {
        self.names.lock().unwrap().insert(id, name.clone());
        Some(name)
    }
}

fn main() {
    let rt = ::tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = Db::new();

        // Miss, then hit.
        assert_eq!(users::get_user(&db, 1).await.unwrap().name, "user1");
        assert_eq!(users::get_user(&db, 1).await.unwrap().name, "user1");
        assert_eq!(db.loads(), 1);
        assert_eq!(nickname(1).await.as_deref(), Some("nick1"));
        assert_eq!(list_ids(&db).await, vec![1, 2, 3]);
        assert_eq!(LIST_LOADS.load(Ordering::SeqCst), 1);

        // A successful rename drops all three targets: misses after it.
        rename(&db, 1, "ada".to_owned()).await.unwrap();
        assert_eq!(users::get_user(&db, 1).await.unwrap().name, "ada");
        assert_eq!(db.loads(), 2, "get_user(1) was invalidated");
        assert_eq!(nickname(1).await.as_deref(), Some("nick1"));
        assert_eq!(NICK_LOADS.load(Ordering::SeqCst), 2, "nickname(1) was invalidated");
        list_ids(&db).await;
        assert_eq!(LIST_LOADS.load(Ordering::SeqCst), 2, "all(list_ids) was invalidated");

        // A failing rename: `before = true` dropped its targets before the body ran, entries
        // it does not name stay.
        assert_eq!(users::get_user(&db, 2).await.unwrap().name, "user2");
        assert_eq!(db.loads(), 3);
        list_ids(&db).await;
        assert_eq!(LIST_LOADS.load(Ordering::SeqCst), 2, "a hit");
        assert_eq!(rename(&db, 99, "nobody".to_owned()).await, Err(DbError));
        users::get_user(&db, 2).await.unwrap();
        assert_eq!(db.loads(), 3, "get_user(2) was not a target");
        list_ids(&db).await;
        assert_eq!(LIST_LOADS.load(Ordering::SeqCst), 3, "before = true dropped all(list_ids)");

        add_user(&db, 4, "dan".to_owned()).await;
        assert_eq!(list_ids(&db).await, vec![1, 2, 3, 4]);
        assert_eq!(LIST_LOADS.load(Ordering::SeqCst), 4);

        // Write-through on Result: a hit after the put, no load.
        let loads = db.loads();
        let user = set_user(&db, 3, "grace".to_owned()).await.unwrap();
        assert_eq!(user, User { id: 3, name: "grace".to_owned() });
        assert_eq!(users::get_user(&db, 3).await.unwrap().name, "grace");
        assert_eq!(db.loads(), loads, "served from the entry written through");

        // On Option: `Some` is stored, `None` stores nothing.
        let nick_loads = NICK_LOADS.load(Ordering::SeqCst);
        assert_eq!(set_nickname(5, "eve".to_owned()).await.as_deref(), Some("eve"));
        assert_eq!(nickname(5).await.as_deref(), Some("eve"));
        assert_eq!(NICK_LOADS.load(Ordering::SeqCst), nick_loads);
        assert_eq!(set_nickname(6, String::new()).await, None);
        assert_eq!(nickname(6).await.as_deref(), Some("nick6"));
        assert_eq!(NICK_LOADS.load(Ordering::SeqCst), nick_loads + 1);

        // On a plain value.
        assert_eq!(score(7).await, 70);
        assert_eq!(set_score(7, 99).await, 99);
        assert_eq!(score(7).await, 99);
        assert_eq!(SCORE_LOADS.load(Ordering::SeqCst), 1);
        assert!(score_stats().hits >= 1);

        // Arguments moved by the body: the keys were computed before.
        assert_eq!(user_by_email("a@x".to_owned()).await, None);
        add_email(1, "a@x".to_owned()).await.unwrap();
        assert_eq!(user_by_email("a@x".to_owned()).await, Some(1));
        assert_eq!(user_by_email("a@x".to_owned()).await, Some(1));
        assert_eq!(EMAIL_LOADS.load(Ordering::SeqCst), 2, "None not cached, then one load");
        assert_eq!(register(2, "b@x".to_owned()).await, Some(2));
        assert_eq!(user_by_email("b@x".to_owned()).await, Some(2));
        assert_eq!(EMAIL_LOADS.load(Ordering::SeqCst), 2, "hit after put");
        add_email(3, "c@x".to_owned()).await.unwrap();
        assert_eq!(user_by_email("a@x".to_owned()).await, Some(1));
        assert_eq!(EMAIL_LOADS.load(Ordering::SeqCst), 2, "another key was invalidated");

        // Methods through `Self::`.
        let repo = Repo {
            names: Mutex::new(HashMap::new()),
            loads: AtomicUsize::new(0),
        };
        repo.names.lock().unwrap().insert(1, "x".to_owned());
        assert_eq!(repo.find(1).await.as_deref(), Some("x"));
        assert_eq!(repo.find(1).await.as_deref(), Some("x"));
        assert_eq!(repo.loads.load(Ordering::SeqCst), 1);
        repo.rename(1, "y".to_owned()).await;
        assert_eq!(repo.find(1).await.as_deref(), Some("y"));
        assert_eq!(repo.loads.load(Ordering::SeqCst), 2, "miss after invalidate");
        assert_eq!(repo.store(1, "z".to_owned()).await.as_deref(), Some("z"));
        assert_eq!(repo.find(1).await.as_deref(), Some("z"));
        assert_eq!(repo.loads.load(Ordering::SeqCst), 2, "hit after put");
    });
}
