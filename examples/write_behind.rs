//! Write-behind on a real SQLite database: a burst of writes answered at memory speed, reads
//! that see them at once, and the database catching up behind, with the queue's counters.
//!
//! ```text
//! cargo run --example write_behind
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachette::{cached, write_behind};
use rusqlite::{params, Connection};

/// What the database can answer instead of a row.
#[derive(Debug)]
enum DbError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Sqlite(err) => write!(f, "SQLite: {err}"),
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        DbError::Sqlite(err)
    }
}

/// The database: each statement waits `LATENCY` first, standing in for a network hop.
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
        for id in 1..=users {
            conn.execute(
                "INSERT INTO users (id, name, email) VALUES (?1, ?2, ?3)",
                params![id, format!("user{id}"), format!("user{id}@example.com")],
            )?;
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

/// A user's name, cached.
#[cached(ttl = "5m", skip(db))]
async fn user_name(db: &Db, id: i64) -> Result<String, DbError> {
    db.query(|conn| {
        Ok(
            conn.query_row("SELECT name FROM users WHERE id = ?1", params![id], |row| {
                row.get(0)
            })?,
        )
    })
    .await
}

/// Renames a user: the cache has the new name when this returns; the `UPDATE` runs later,
/// once per user for a burst of renames (the newest name wins), retried if it fails.
#[write_behind(user_name(&*db, id), value = name, delay = "20ms")]
async fn rename(db: Arc<Db>, id: i64, name: String) -> Result<(), DbError> {
    db.query(|conn| {
        conn.execute(
            "UPDATE users SET name = ?1 WHERE id = ?2",
            params![name, id],
        )?;
        Ok(())
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), DbError> {
    let db = Arc::new(Db::open(1_000)?);

    let renames = 5_000;
    let started = Instant::now();
    for n in 0..renames {
        let id = 1 + n % 100;
        rename(Arc::clone(&db), id, format!("user{id} v{n}")).await?;
    }
    let took = started.elapsed();
    println!(
        "{renames} renames of 100 users answered in {took:.2?} ({:.1} µs each); \
         a database write takes {LATENCY:?}",
        took.as_secs_f64() * 1e6 / f64::from(renames as u32)
    );

    let started = Instant::now();
    let name = user_name(&db, 7).await?;
    println!(
        "user_name(7) right after: {name:?} in {:.2?} (the database may not have it yet)",
        started.elapsed()
    );

    for _ in 0..3 {
        let s = rename_stats();
        println!(
            "catching up: {} queued, {} written, {} coalesced, {} pending (oldest {:.0?})",
            s.queued,
            s.written,
            s.coalesced,
            s.depth,
            s.oldest_pending.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = Instant::now();
    cachette::flush().await;
    let s = rename_stats();
    println!(
        "flush() returned after {:.2?}: {} queued, {} database writes, {} coalesced, {} failed",
        started.elapsed(),
        s.queued,
        s.written,
        s.coalesced,
        s.failed
    );

    let stored: String = db
        .query(|conn| {
            Ok(conn.query_row("SELECT name FROM users WHERE id = 7", [], |row| row.get(0))?)
        })
        .await?;
    println!("the database has {stored:?} for user 7; the cache has {name:?}");
    assert_eq!(stored, name);
    Ok(())
}
