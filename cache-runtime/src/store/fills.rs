//! Fills of the shared stores in flight. A value a function on Redis (or the tiered store)
//! loaded is stored by a task of its own on cachette's io runtime, the one that drives the
//! write connection, while its caller goes on with the value: a miss waits for the lookup and
//! the body, not for the write. The task keeps the load's flight until its write is answered,
//! so an invalidation of the key still sends its `DEL` after the `SET`, and a call of the key
//! in this process meanwhile gets the value from the flight (see `crate::flight`).
//!
//! This module numbers those tasks in the order they are spawned, so that [`crate::flush`] can
//! wait until every value loaded before it began is stored (or has failed to be), however many
//! are loaded meanwhile.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// The fills spawned so far, and those not ended yet.
struct Fills {
    /// The number the next fill takes.
    next: u64,
    /// The numbers of the fills spawned and not ended.
    running: BTreeSet<u64>,
}

static FILLS: Mutex<Fills> = Mutex::new(Fills {
    next: 0,
    running: BTreeSet::new(),
});
/// Calls of [`settled`] waiting now: only then does a fill's end wake anyone.
static WATCHING: AtomicUsize = AtomicUsize::new(0);
/// Woken when a fill ends while a call of [`settled`] waits.
static ENDED: Notify = Notify::const_new();

fn fills() -> MutexGuard<'static, Fills> {
    // Nothing runs under the lock that could panic and leave the set inconsistent.
    FILLS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One fill in flight: it leaves the running set however its task ends (done, panicked, or
/// dropped unrun).
struct Counted(u64);

impl Drop for Counted {
    fn drop(&mut self) {
        fills().running.remove(&self.0);
        // After the removal: a waiter that counted itself before its check either saw the
        // removal or is woken here.
        if WATCHING.load(Ordering::SeqCst) > 0 {
            ENDED.notify_waiters();
        }
    }
}

/// Runs `fill` on cachette's io runtime, counted until it ends.
#[cfg(feature = "redis")]
pub(crate) fn spawn(fill: impl std::future::Future<Output = ()> + Send + 'static) {
    let counted = {
        let mut fills = fills();
        let number = fills.next;
        fills.next += 1;
        fills.running.insert(number);
        Counted(number)
    };
    crate::store::redis::io_runtime().spawn(async move {
        let _counted = counted;
        fill.await;
    });
}

/// The mark of the fills spawned so far, for [`settled`] and [`before`].
pub(crate) fn mark() -> u64 {
    fills().next
}

/// Fills spawned before `mark` and not ended yet.
pub(crate) fn before(mark: u64) -> usize {
    fills().running.range(..mark).count()
}

/// Returns once every fill spawned before `mark` has ended; fills spawned since are not
/// waited for, so that it returns under a steady stream of misses too.
pub(crate) async fn settled(mark: u64) {
    WATCHING.fetch_add(1, Ordering::SeqCst);
    let _watching = Watching;
    loop {
        let ended = ENDED.notified();
        tokio::pin!(ended);
        // Registered before the set is read, so an end in between is not missed.
        ended.as_mut().enable();
        if fills().running.first().map_or(true, |&first| first >= mark) {
            return;
        }
        ended.await;
    }
}

/// Counts a call of [`settled`] out however it ends (returned, or dropped by a timeout).
struct Watching;

impl Drop for Watching {
    fn drop(&mut self) {
        WATCHING.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A fill spawned before the mark holds `settled` until it ends; one spawned after does
    /// not, however long it runs.
    #[tokio::test]
    async fn settled_waits_for_the_fills_before_its_mark_only() {
        let (end_old, old) = tokio::sync::oneshot::channel::<()>();
        spawn(async move {
            let _ = old.await;
        });
        let mark = mark();
        let (_end_new, new) = tokio::sync::oneshot::channel::<()>();
        spawn(async move {
            let _ = new.await;
        });
        assert_eq!(before(mark), 1);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), settled(mark))
                .await
                .is_err(),
            "settled before the older fill ended"
        );
        end_old.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), settled(mark))
            .await
            .expect("a fill spawned after the mark, still running, held settled back");
        assert_eq!(before(mark), 0);
    }
}
