//! Fills of the shared stores in flight. A value a function on Redis (or the tiered store)
//! loaded is stored by a task of its own on cachette's io runtime, the one that drives the
//! write connection, while its caller goes on with the value: a miss waits for the lookup and
//! the body, not for the write. The task keeps the load's flight until its write is answered,
//! so an invalidation of the key still sends its `DEL` after the `SET`, and a call of the key
//! in this process meanwhile gets the value from the flight (see `crate::flight`).
//!
//! This module counts those tasks, so that [`crate::flush`] can wait until every value loaded
//! so far is stored (or has failed to be).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Fill tasks spawned and not ended.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Woken when the last fill in flight ends.
static SETTLED: Notify = Notify::const_new();

/// One fill in flight: counted down however its task ends (done, panicked, or dropped unrun).
struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        if IN_FLIGHT.fetch_sub(1, Ordering::SeqCst) == 1 {
            SETTLED.notify_waiters();
        }
    }
}

/// Runs `fill` on cachette's io runtime, counted until it ends.
#[cfg(feature = "redis")]
pub(crate) fn spawn(fill: impl std::future::Future<Output = ()> + Send + 'static) {
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let counted = Counted;
    crate::store::redis::io_runtime().spawn(async move {
        let _counted = counted;
        fill.await;
    });
}

/// Fills not ended yet.
pub(crate) fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::SeqCst)
}

/// Returns once no fill is in flight: every one spawned before, and any spawned meanwhile,
/// has ended.
pub(crate) async fn settled() {
    loop {
        let notified = SETTLED.notified();
        tokio::pin!(notified);
        // Registered before the count is read, so an end in between is not missed.
        notified.as_mut().enable();
        if in_flight() == 0 {
            return;
        }
        notified.await;
    }
}
