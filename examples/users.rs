//! A small user service on a real SQLite database, with its reads cached and its writes
//! keeping the cache honest.
//!
//! ```text
//! cargo run --example users                                   # memory store, nothing to install
//! CACHETTE_REDIS_URL=redis://127.0.0.1:6379 cargo run --example users   # tiered: memory + Redis
//! ```
//!
//! `get_user` and `list_users` are cached; `rename_user` invalidates `get_user` for that id and
//! every page of `list_users`; `update_email` writes the new row through to `get_user`'s entry.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// A user row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: i64,
    name: String,
    email: String,
}

/// What the database can answer instead of a row.
#[derive(Debug)]
enum DbError {
    /// No such user.
    NotFound(i64),
    /// SQLite failed.
    Sqlite(rusqlite::Error),
}

impl User {
    /// A row of `SELECT id, name, email`.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
        Ok(User {
            id: row.get(0)?,
            name: row.get(1)?,
            email: row.get(2)?,
        })
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::NotFound(id) => write!(f, "no user {id}"),
            DbError::Sqlite(err) => write!(f, "SQLite: {err}"),
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        DbError::Sqlite(err)
    }
}

/// The database. SQLite answers in microseconds here; a real one is a network hop away, which
/// `LATENCY` stands in for, so the difference the cache makes is visible.
struct Db {
    conn: Mutex<Connection>,
}

const LATENCY: Duration = Duration::from_millis(5);

impl Db {
    fn open(users: i64) -> Result<Db, DbError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL);",
        )?;
        {
            let mut insert =
                conn.prepare("INSERT INTO users (id, name, email) VALUES (?1, ?2, ?3)")?;
            for id in 1..=users {
                insert.execute(params![
                    id,
                    format!("user{id}"),
                    format!("user{id}@example.com")
                ])?;
            }
        }
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    async fn query<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        tokio::time::sleep(LATENCY).await;
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn)
    }
}

/// The service, written once and instantiated for each store: the store is part of the
/// attribute, so choosing one at run time means having both.
macro_rules! user_service {
    ($store:tt) => {
        use super::{Db, DbError, User};
        use cachette::{cache_put, cached, invalidates};
        use rusqlite::{params, OptionalExtension};

        /// One user by id.
        #[cached(ttl = "5m", store = $store, skip(db), name = "users::get_user")]
        pub(crate) async fn get_user(db: &Db, id: i64) -> Result<User, DbError> {
            db.query(|conn| {
                conn.query_row(
                    "SELECT id, name, email FROM users WHERE id = ?1",
                    params![id],
                    User::from_row,
                )
                .optional()?
                .ok_or(DbError::NotFound(id))
            })
            .await
        }

        /// One page of users, by id.
        #[cached(ttl = "1m", store = $store, skip(db), name = "users::list_users")]
        pub(crate) async fn list_users(
            db: &Db,
            page: u32,
            per_page: u32,
        ) -> Result<Vec<User>, DbError> {
            db.query(|conn| {
                let mut select = conn
                    .prepare("SELECT id, name, email FROM users ORDER BY id LIMIT ?1 OFFSET ?2")?;
                let rows = select.query_map(params![per_page, page * per_page], User::from_row)?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
        }

        /// Renames a user: that user's entry and every page of the list are stale.
        #[invalidates(get_user(db, id), all(list_users))]
        pub(crate) async fn rename_user(db: &Db, id: i64, name: String) -> Result<(), DbError> {
            db.query(|conn| {
                match conn.execute(
                    "UPDATE users SET name = ?1 WHERE id = ?2",
                    params![name, id],
                )? {
                    0 => Err(DbError::NotFound(id)),
                    _ => Ok(()),
                }
            })
            .await
        }

        /// Changes a user's email and returns the new row, which becomes `get_user`'s entry.
        #[cache_put(get_user(db, id))]
        pub(crate) async fn update_email(db: &Db, id: i64, email: &str) -> Result<User, DbError> {
            db.query(|conn| {
                conn.query_row(
                    "UPDATE users SET email = ?1 WHERE id = ?2 RETURNING id, name, email",
                    params![email, id],
                    User::from_row,
                )
                .optional()?
                .ok_or(DbError::NotFound(id))
            })
            .await
        }
    };
}

mod memory {
    user_service!("memory");
}

mod tiered {
    user_service!("tiered");
}

/// Runs a write, printing what it took.
macro_rules! write_path {
    ($what:expr, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        println!("{:<44} {:<4} {:>10.2?}", $what, "-", started.elapsed());
        result
    }};
}

/// Runs `call`, printing what it took and whether the cache answered.
macro_rules! show {
    ($what:expr, $stats:expr, $call:expr) => {{
        let before = $stats().hits;
        let started = Instant::now();
        let result = $call.await;
        let took = started.elapsed();
        let how = if $stats().hits > before {
            "hit "
        } else {
            "miss"
        };
        println!("{:<44} {how} {took:>10.2?}", $what);
        result
    }};
}

macro_rules! tour {
    ($service:ident, $db:expr) => {{
        use $service::*;
        let db = $db;

        println!("\n-- reads: the first goes to the database, the next ones to the cache");
        let ada = show!("get_user(42)", get_user_stats, get_user(db, 42)).expect("user 42");
        show!("get_user(42)", get_user_stats, get_user(db, 42)).expect("user 42");
        show!("get_user(42)", get_user_stats, get_user(db, 42)).expect("user 42");
        let page = show!(
            "list_users(page 0, 10 per page)",
            list_users_stats,
            list_users(db, 0, 10)
        )
        .expect("page 0");
        show!(
            "list_users(page 0, 10 per page)",
            list_users_stats,
            list_users(db, 0, 10)
        )
        .expect("page 0");
        println!(
            "   user 42 is {:?} <{}>; page 0 has {} users",
            ada.name,
            ada.email,
            page.len()
        );

        println!("\n-- a miss on a missing user is not cached");
        let missing = show!("get_user(99999)", get_user_stats, get_user(db, 99_999));
        if let Err(err) = missing {
            println!("   -> {err}");
        }

        println!("\n-- rename_user(42) invalidates get_user(42) and every page of list_users");
        write_path!(
            "rename_user(42, \"Ada Lovelace\")",
            rename_user(db, 42, "Ada Lovelace".into())
        )
        .expect("renamed");
        let renamed = show!("get_user(42)", get_user_stats, get_user(db, 42)).expect("user 42");
        show!(
            "list_users(page 0, 10 per page)",
            list_users_stats,
            list_users(db, 0, 10)
        )
        .expect("page 0");
        println!("   user 42 is now {:?}", renamed.name);

        println!("\n-- update_email(42) writes the new row through: the next read is a hit");
        write_path!(
            "update_email(42, \"ada@analytical.engine\")",
            update_email(db, 42, "ada@analytical.engine")
        )
        .expect("updated");
        let updated = show!("get_user(42)", get_user_stats, get_user(db, 42)).expect("user 42");
        println!("   user 42's email is now {:?}", updated.email);

        let stats = get_user_stats();
        println!(
            "\nget_user: {} hits, {} misses, {} loads, {} store errors (hit ratio {:.0}%)",
            stats.hits,
            stats.misses,
            stats.loads,
            stats.store_errors,
            stats.hit_ratio() * 100.0
        );
    }};
}

#[tokio::main]
async fn main() -> Result<(), DbError> {
    let db = Db::open(1_000)?;
    // Prove the database is real before caching anything.
    let count: i64 = db
        .query(|conn| {
            Ok(conn
                .query_row("SELECT count(*) FROM users", [], |row| row.get(0))
                .optional()?
                .unwrap_or(0))
        })
        .await?;
    println!(
        "SQLite database with {count} users; every query also waits {LATENCY:?} (a network hop)"
    );

    match std::env::var("CACHETTE_REDIS_URL") {
        Ok(url) => {
            println!("store: tiered (memory in front of Redis at {url})");
            tour!(tiered, &db);
        }
        Err(_) => {
            println!("store: memory (set CACHETTE_REDIS_URL to use the tiered store)");
            tour!(memory, &db);
        }
    }
    Ok(())
}
