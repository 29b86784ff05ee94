//! What every store of one cached function shares: its namespace, its loads under way, its
//! counters, and the logging that goes with them.

use crate::behind::Overlay;
use crate::cached_fn::Key;
use crate::flight::Flights;
use crate::outcome::Policy;
use crate::stats::Counters;
#[cfg(feature = "redis")]
use crate::store::redis::{Redis, StoreError};

/// One cached function's namespace, loads under way and counters.
pub(crate) struct Context<V> {
    /// `name = "…"`, or the owner type or module path, then the function name.
    pub(crate) namespace: String,
    pub(crate) flights: Flights<V>,
    pub(crate) counters: Counters,
    /// Values of write-behind writes still pending, read on a miss.
    pub(crate) overlay: Overlay<V>,
    /// Which loaded values are stored, and for how long.
    pub(crate) policy: Policy<V>,
}

impl<V> Context<V> {
    /// A function's context, with nothing under way and every counter at zero.
    pub(crate) fn new(namespace: String, policy: Policy<V>) -> Self {
        Self {
            namespace,
            flights: Flights::default(),
            counters: Counters::default(),
            overlay: Overlay::default(),
            policy,
        }
    }

    /// Counts a hit and traces it.
    #[inline(always)]
    pub(crate) fn hit(&self, key: &Key) {
        self.counters.hits.bump();
        tracing::debug!(namespace = %self.namespace, key = %format_args!("{:032x}", key.digest()), "cachette: hit");
    }

    /// Counts a miss and traces it.
    pub(crate) fn miss(&self, key: &Key) {
        self.counters.misses.bump();
        tracing::debug!(namespace = %self.namespace, key = %format_args!("{:032x}", key.digest()), "cachette: miss");
    }

    /// The key, or `None` (counted and logged, saying what was not done) if the arguments
    /// could not be hashed.
    #[inline]
    pub(crate) fn usable<K, E: std::fmt::Display>(
        &self,
        key: Result<K, E>,
        skipped: &str,
    ) -> Option<K> {
        match key {
            Ok(key) => Some(key),
            Err(err) => {
                Counters::bump(&self.counters.key_errors);
                tracing::warn!(namespace = %self.namespace, %err, "cachette: arguments cannot be hashed, {skipped}");
                None
            }
        }
    }

    /// Counts a store error, and logs it unless the command was not even sent.
    #[cfg(feature = "redis")]
    pub(crate) fn store_error(&self, redis: &Redis, what: &str, err: &StoreError) {
        Counters::bump(&self.counters.store_errors);
        if !matches!(err, StoreError::Unavailable) {
            redis.warn(&self.namespace, what, err);
        }
    }
}
