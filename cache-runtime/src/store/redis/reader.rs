//! The read connections: one per runtime that reads, driven by that runtime, so a hit never
//! waits on another thread. Past a few reads in flight on it, a read takes the shared
//! connection instead, which a thread of its own drives: many reads at once go faster there.
//! A read connection that fails on a connection error is dropped and the read goes to the
//! shared connection. Each thread keeps the connection it used last, and
//! takes it again only for the same runtime and while no connection was dropped since, so a
//! hit reads no lock the threads share. Writes never go here: see `conn.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};

use redis::aio::ConnectionManager;
use redis::{Cmd, FromRedisValue};

use super::conn::{connection_error, Redis, StoreError, Target, ON_IO_THREAD};

/// The read connection of one runtime, driven by that runtime.
pub(super) struct Reader {
    runtime: tokio::runtime::Id,
    /// Alive as long as the runtime: a task of the runtime holds the only strong reference.
    alive: std::sync::Weak<()>,
    /// That task, ended when the reader is dropped.
    keeper: tokio::task::AbortHandle,
    conn: ConnectionManager,
    /// Reads in flight on it.
    busy: Arc<AtomicUsize>,
}

/// Reads in flight on a runtime's read connection past which a read takes the shared one.
/// Many reads at once go faster through the shared connection, which a thread of its own
/// drives, than through one driven by the same busy workers that run the callers; a few go
/// faster on the caller's own.
const NEAR_IN_FLIGHT: usize = 8;

impl Drop for Reader {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl Redis {
    /// `cmd` sent on the read connection of the caller's runtime ([`Redis::reader`]); `None`
    /// when there is none to use, or when it failed on a connection error (it is dropped, and
    /// the caller goes on with the shared connection, which decides about the breaker).
    pub(super) async fn read_nearest<T: FromRedisValue>(
        &'static self,
        cmd: &Cmd,
    ) -> Option<Result<T, StoreError>> {
        if !self.available() {
            return None;
        }
        let (mut conn, runtime, busy) = self.reader()?;
        if busy.fetch_add(1, Ordering::Relaxed) >= NEAR_IN_FLIGHT {
            busy.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let _done = InFlight(&busy);
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Some(Ok(value)),
            // Redis answered (`LOADING`, a wrong type…): the connection is fine.
            Ok(Err(err)) if !connection_error(&err) => Some(Err(StoreError::Redis(err))),
            Ok(Err(_)) => {
                self.forget(runtime);
                None
            }
            Err(_) => {
                self.forget(runtime);
                self.trip();
                Some(Err(StoreError::Timeout))
            }
        }
    }

    /// The read connection of the caller's runtime: made on its first read, from that
    /// runtime, whose tasks then drive it. None on the io thread, for a cluster, or outside
    /// tokio. Runtime ids are never reused, so a runtime only ever finds its own connection;
    /// the connections of runtimes that have ended are dropped when another one is made.
    fn reader(&'static self) -> Option<(ConnectionManager, tokio::runtime::Id, Arc<AtomicUsize>)> {
        let Target::Single(_) = &self.target else {
            return None;
        };
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let id = runtime.id();
        let generation = self.readers_changed.load(Ordering::Acquire);
        // This thread's last reader, if it is still the one of this runtime: the hit path
        // takes no lock shared with the other threads.
        let near = NEAR.with(|near| match &*near.borrow() {
            Some(last) if last.is(self, id, generation) => {
                Some((last.conn.clone(), last.busy.clone()))
            }
            _ => None,
        });
        if let Some((conn, busy)) = near {
            return Some((conn, id, busy));
        }
        let (conn, busy) = self.reader_of(runtime)?;
        NEAR.with(|near| {
            *near.borrow_mut() = Some(Near {
                redis: self,
                runtime: id,
                generation,
                conn: conn.clone(),
                busy: busy.clone(),
            })
        });
        Some((conn, id, busy))
    }

    /// The read connection of `runtime`, from the shared list, made if it has none.
    #[cold]
    fn reader_of(
        &'static self,
        runtime: tokio::runtime::Handle,
    ) -> Option<(ConnectionManager, Arc<AtomicUsize>)> {
        let Target::Single(client) = &self.target else {
            return None;
        };
        if ON_IO_THREAD.with(std::cell::Cell::get) {
            return None;
        }
        let id = runtime.id();
        let find = |readers: &[Reader]| {
            readers
                .iter()
                .find(|reader| reader.runtime == id)
                .map(|reader| (reader.conn.clone(), reader.busy.clone()))
        };
        if let Some(found) = find(&self.readers.read().unwrap_or_else(PoisonError::into_inner)) {
            return Some(found);
        }
        let mut readers = self.readers.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = find(&readers) {
            return Some(found);
        }
        readers.retain(|reader| reader.alive.strong_count() > 0);
        // Lazy: its first command connects it, from this runtime, whose task then drives it.
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), self.manager_config()).ok()?;
        let token = std::sync::Arc::new(());
        let alive = std::sync::Arc::downgrade(&token);
        let keeper = runtime
            .spawn(async move {
                let _token = token;
                std::future::pending::<()>().await;
            })
            .abort_handle();
        let busy = Arc::new(AtomicUsize::new(0));
        readers.push(Reader {
            runtime: id,
            alive,
            keeper,
            conn: conn.clone(),
            busy: busy.clone(),
        });
        Some((conn, busy))
    }

    /// Drops the read connection of `runtime` after a connection failure.
    fn forget(&self, runtime: tokio::runtime::Id) {
        let mut readers = self.readers.write().unwrap_or_else(PoisonError::into_inner);
        readers.retain(|reader| reader.runtime != runtime);
        // Every thread's cached reader is taken from the list again.
        self.readers_changed.fetch_add(1, Ordering::AcqRel);
    }
}

/// A thread's last read connection: the connection of `runtime` in `redis`'s list as it was at
/// `generation`.
struct Near {
    redis: *const Redis,
    runtime: tokio::runtime::Id,
    generation: u64,
    conn: ConnectionManager,
    busy: Arc<AtomicUsize>,
}

/// One read in flight on a read connection, counted until it ends or is dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Near {
    /// Whether this is still the connection `redis` would give the runtime `runtime`: the
    /// runtime's own (runtime ids are never reused), and not dropped since.
    fn is(&self, redis: &Redis, runtime: tokio::runtime::Id, generation: u64) -> bool {
        std::ptr::eq(self.redis, redis) && self.runtime == runtime && self.generation == generation
    }
}

thread_local! {
    /// The read connection this thread used last, so that a read finds it without the lock the
    /// threads share.
    static NEAR: std::cell::RefCell<Option<Near>> = const { std::cell::RefCell::new(None) };
}
