//! Invalidations Redis has not confirmed: kept, and sent again until it takes them.
//!
//! An invalidation that does not reach Redis — the breaker is open, the connection broke and
//! broke again on the retry, Redis answered with an error (`READONLY` after a failover,
//! `NOAUTH`, `LOADING`) — is not dropped. Its function keeps it in its [`Pending`], coalesced
//! per key: a `DEL` of one key, a clear of every entry (which stands for every `DEL` too), the
//! keys to announce to other processes, or "all". A task on cachette's io thread sends them
//! again every [`RETRY_AFTER`] while Redis is available, and forgets each one only once Redis
//! confirmed it.
//!
//! Until its invalidation is confirmed, a key is neither read from Redis nor written there by
//! this process ([`Pending::blocks`]): what Redis holds under it may be the stale value the
//! invalidation was meant to delete, and a write would only be deleted by the replay.
//!
//! Bounded: past [`MAX_KEYS`] keys of one function, its pending deletes become one clear of
//! the function, and its pending announcements one "all".

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::bus::BoxFuture;
use crate::store::redis::{io_runtime, RETRY_AFTER};

/// Keys of one function kept one by one; past this the function is cleared whole instead.
pub(crate) const MAX_KEYS: usize = 10_000;

/// What one function could not deliver to Redis yet.
#[derive(Default)]
pub(crate) struct Pending {
    /// Whether anything is kept: read without the lock on every Redis read.
    any: AtomicBool,
    inner: Mutex<Inner>,
}

/// Each item carries the sequence number of its last request, so that a replay forgets only
/// what it sent, not a newer request for the same key made while it was on its way.
#[derive(Default)]
struct Inner {
    seq: u64,
    /// Digest → (Redis key, seq): a `DEL` to send.
    deletes: HashMap<u128, (String, u64)>,
    /// Every entry of the function: a `SCAN`/`UNLINK` to run.
    clear: Option<u64>,
    /// Digest → seq: keys to announce to the other processes.
    announce: HashMap<u128, u64>,
    /// Announce "all of the function".
    announce_all: Option<u64>,
    /// Whether the function is in the replay queue.
    scheduled: bool,
}

/// A copy of what is kept, for one replay.
pub(crate) struct Snapshot {
    /// The `DEL`s to send: digest, Redis key, seq.
    pub(crate) deletes: Vec<(u128, String, u64)>,
    /// A clear to run, with its seq.
    pub(crate) clear: Option<u64>,
    /// Keys to announce, with their seqs.
    pub(crate) announce: Vec<(u128, u64)>,
    /// An "all" to announce, with its seq.
    pub(crate) announce_all: Option<u64>,
}

/// A function whose [`Pending`] the replay task serves.
pub(crate) trait Replay: Sync + 'static {
    /// The function's pending invalidations.
    fn pending(&self) -> &Pending;
    /// Sends what [`Pending::snapshot`] holds, if Redis is available, and tells the
    /// [`Pending`] what Redis confirmed.
    fn replay(&'static self) -> BoxFuture<'static>;
}

impl Pending {
    /// Whether this process must neither read nor write `digest` in Redis: its invalidation
    /// (or a clear of the whole function) has not been confirmed yet.
    #[inline]
    pub(crate) fn blocks(&self, digest: u128) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let inner = self.lock();
        inner.clear.is_some() || inner.deletes.contains_key(&digest)
    }

    /// Whether anything is kept.
    pub(crate) fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// How many keys (and clears) wait for Redis.
    pub(crate) fn len(&self) -> usize {
        let inner = self.lock();
        inner.deletes.len() + usize::from(inner.clear.is_some())
    }

    /// Keeps a `DEL` of `name` to send again.
    pub(crate) fn delete(&self, owner: &'static dyn Replay, digest: u128, name: String) {
        self.add(owner, |inner, seq| {
            if inner.clear.is_some() {
                return;
            }
            if inner.deletes.len() >= MAX_KEYS && !inner.deletes.contains_key(&digest) {
                inner.deletes.clear();
                inner.clear = Some(seq);
                return;
            }
            inner.deletes.insert(digest, (name, seq));
        });
    }

    /// Keeps a clear of every entry of the function to run again.
    pub(crate) fn clear(&self, owner: &'static dyn Replay) {
        self.add(owner, |inner, seq| {
            inner.deletes.clear();
            inner.clear = Some(seq);
        });
    }

    /// Keeps an announcement of `digests` (or of every key, with `all`) to send again.
    pub(crate) fn announce(&self, owner: &'static dyn Replay, digests: &[u128], all: bool) {
        self.add(owner, |inner, seq| {
            if all || inner.announce.len() + digests.len() > MAX_KEYS {
                inner.announce.clear();
                inner.announce_all = Some(seq);
            } else if inner.announce_all.is_none() {
                inner.announce.extend(digests.iter().map(|&d| (d, seq)));
            }
        });
    }

    /// What is kept now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            deletes: inner
                .deletes
                .iter()
                .map(|(&digest, (name, seq))| (digest, name.clone(), *seq))
                .collect(),
            clear: inner.clear,
            announce: inner.announce.iter().map(|(&d, &seq)| (d, seq)).collect(),
            announce_all: inner.announce_all,
        }
    }

    /// Redis confirmed these `DEL`s: forgets each unless it was asked for again since.
    pub(crate) fn deleted(&self, sent: &[(u128, String, u64)]) {
        self.forget(|inner| {
            for (digest, _, seq) in sent {
                if inner.deletes.get(digest).is_some_and(|(_, s)| s == seq) {
                    inner.deletes.remove(digest);
                }
            }
        });
    }

    /// Redis confirmed the clear of seq `seq`.
    pub(crate) fn cleared(&self, seq: u64) {
        self.forget(|inner| {
            if inner.clear == Some(seq) {
                inner.clear = None;
            }
        });
    }

    /// Redis took the announcement of these keys, and of "all" if `all` is its seq.
    pub(crate) fn announced(&self, sent: &[(u128, u64)], all: Option<u64>) {
        self.forget(|inner| {
            for (digest, seq) in sent {
                if inner.announce.get(digest) == Some(seq) {
                    inner.announce.remove(digest);
                }
            }
            if all.is_some() && inner.announce_all == all {
                inner.announce_all = None;
            }
        });
    }

    fn add(&self, owner: &'static dyn Replay, change: impl FnOnce(&mut Inner, u64)) {
        let schedule = {
            let mut inner = self.lock();
            inner.seq += 1;
            let seq = inner.seq;
            change(&mut inner, seq);
            self.any.store(true, Ordering::Release);
            !std::mem::replace(&mut inner.scheduled, true)
        };
        if schedule {
            schedule_replay(owner);
        }
    }

    fn forget(&self, change: impl FnOnce(&mut Inner)) {
        let mut inner = self.lock();
        change(&mut inner);
        let empty = inner.deletes.is_empty()
            && inner.clear.is_none()
            && inner.announce.is_empty()
            && inner.announce_all.is_none();
        if empty {
            self.any.store(false, Ordering::Release);
        }
    }

    /// Leaves the replay queue if nothing is kept. Called by the replay task with the queue
    /// locked, so that a request made meanwhile either is seen here or schedules anew.
    fn unschedule_if_empty(&self) -> bool {
        let mut inner = self.lock();
        if self.any.load(Ordering::Acquire) {
            return false;
        }
        inner.scheduled = false;
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // No user code runs under this lock: a panic cannot leave it half-changed.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The functions with something kept, and whether the replay task runs.
static QUEUE: Mutex<(Vec<&'static dyn Replay>, bool)> = Mutex::new((Vec::new(), false));

fn schedule_replay(owner: &'static dyn Replay) {
    let mut queue = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
    if !queue.0.iter().any(|f| same(*f, owner)) {
        queue.0.push(owner);
    }
    if !queue.1 {
        queue.1 = true;
        io_runtime().spawn(replay_until_done());
    }
}

fn same(a: &'static dyn Replay, b: &'static dyn Replay) -> bool {
    std::ptr::addr_eq(a as *const dyn Replay, b as *const dyn Replay)
}

/// The replay task: every [`RETRY_AFTER`] each queued function sends what it keeps (when
/// Redis is available); the task ends once nothing is kept anywhere.
async fn replay_until_done() {
    loop {
        tokio::time::sleep(RETRY_AFTER).await;
        let queued: Vec<&'static dyn Replay> = QUEUE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone();
        for owner in queued {
            if !owner.pending().is_empty() {
                owner.replay().await;
            }
        }
        let mut queue = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
        queue
            .0
            .retain(|owner| !owner.pending().unschedule_if_empty());
        if queue.0.is_empty() {
            queue.1 = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nobody(Pending);

    impl Replay for Nobody {
        fn pending(&self) -> &Pending {
            &self.0
        }
        fn replay(&'static self) -> BoxFuture<'static> {
            Box::pin(async {})
        }
    }

    fn owner() -> &'static Nobody {
        Box::leak(Box::new(Nobody(Pending::default())))
    }

    #[test]
    fn a_kept_delete_blocks_its_key_until_confirmed() {
        let f = owner();
        assert!(!f.0.blocks(1));
        f.0.delete(f, 1, "k1".into());
        assert!(f.0.blocks(1) && !f.0.blocks(2));
        let sent = f.0.snapshot();
        f.0.deleted(&sent.deletes);
        assert!(!f.0.blocks(1));
        assert!(f.0.is_empty());
    }

    #[test]
    fn a_request_made_during_a_replay_is_not_forgotten_by_it() {
        let f = owner();
        f.0.delete(f, 1, "k1".into());
        let sent = f.0.snapshot();
        // Asked again while the replay was on its way: its confirmation does not cover it.
        f.0.delete(f, 1, "k1".into());
        f.0.deleted(&sent.deletes);
        assert!(f.0.blocks(1));
        f.0.announce(f, &[5], false);
        let sent = f.0.snapshot();
        f.0.announce(f, &[5], false);
        f.0.announced(&sent.announce, sent.announce_all);
        assert_eq!(f.0.snapshot().announce.len(), 1);
    }

    #[test]
    fn past_the_bound_deletes_become_one_clear() {
        let f = owner();
        for digest in 0..MAX_KEYS as u128 + 1 {
            f.0.delete(f, digest, format!("k{digest}"));
        }
        let kept = f.0.snapshot();
        assert!(kept.deletes.is_empty() && kept.clear.is_some());
        assert!(
            f.0.blocks(u128::MAX),
            "a pending clear blocks every key of the function"
        );
        f.0.cleared(kept.clear.unwrap());
        assert!(!f.0.blocks(u128::MAX) && f.0.is_empty());
    }
}
