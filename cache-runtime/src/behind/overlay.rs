//! Read-your-writes for `#[write_behind]`: the values of a cached function whose database
//! writes are still queued, read on a miss before any store or body.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// The pending values of one cached function, newest write per key.
///
/// Each value carries the sequence number of the write that put it; a write that ends removes
/// its value only if no newer write of the key replaced it.
pub(crate) struct Overlay<V> {
    /// How many keys have a value here: a read checks this alone while nothing is pending.
    live: AtomicUsize,
    pending: Mutex<HashMap<u128, (u64, V)>>,
}

impl<V> Default for Overlay<V> {
    fn default() -> Self {
        Self {
            live: AtomicUsize::new(0),
            pending: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> Overlay<V> {
    /// The pending value of `digest`, if a write of it is queued or running.
    #[inline]
    pub(crate) fn get(&self, digest: u128) -> Option<V> {
        if self.live.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.lock().get(&digest).map(|(_, value)| value.clone())
    }

    /// Records `value` as the pending value of `digest`, unless a newer write's is there.
    /// Returns the value left out: the one it replaced, or `value` itself; the caller drops it
    /// once it holds no lock (a drop is a user's code, and may panic).
    #[must_use = "the value left out is dropped outside the locks"]
    pub(crate) fn insert(&self, digest: u128, seq: u64, value: V) -> Option<V> {
        let mut pending = self.lock();
        match pending.get_mut(&digest) {
            Some(held) if held.0 > seq => Some(value),
            Some(held) => Some(std::mem::replace(held, (seq, value)).1),
            None => {
                pending.insert(digest, (seq, value));
                self.live.store(pending.len(), Ordering::Release);
                None
            }
        }
    }

    /// Ends write `seq` of `digest`: drops its value and returns `false`, or returns `true`
    /// when a newer write of the key holds the place (its value stays).
    pub(crate) fn remove(&self, digest: u128, seq: u64) -> bool {
        let mut pending = self.lock();
        match pending.get(&digest) {
            Some(held) if held.0 > seq => true,
            Some(_) => {
                let removed = pending.remove(&digest);
                self.live.store(pending.len(), Ordering::Release);
                // The value is dropped once the overlay is consistent and unlocked.
                drop(pending);
                drop(removed);
                false
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, (u64, V)>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Overlay;

    #[test]
    fn a_newer_write_keeps_its_value_when_an_older_one_ends() {
        let overlay = Overlay::default();
        assert_eq!(overlay.insert(1, 1, "old"), None);
        assert_eq!(overlay.insert(1, 2, "new"), Some("old"));
        assert!(
            overlay.remove(1, 1),
            "the older write must see the newer one"
        );
        assert_eq!(overlay.get(1), Some("new"));
        assert!(!overlay.remove(1, 2));
        assert_eq!(overlay.get(1), None);
    }

    #[test]
    fn an_older_value_never_replaces_a_newer_one() {
        let overlay = Overlay::default();
        assert_eq!(overlay.insert(7, 5, "five"), None);
        assert_eq!(overlay.insert(7, 3, "three"), Some("three"));
        assert_eq!(overlay.get(7), Some("five"));
    }
}
