//! The targets of write paths: what `#[invalidates]` drops and `#[cache_put]` replaces.

use crate::cached_fn::{CachedFn, CallKey};

/// One entry of a cached function, named by a write path: what `#[invalidates]` drops and
/// `#[cache_put]` replaces. Its key is computed when it is made, before the write path's body runs.
pub struct Target<V: 'static> {
    cached: &'static CachedFn<V>,
    key: CallKey,
}

impl<V> Target<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// The entry under `key` of `cached`.
    pub fn new(cached: &'static CachedFn<V>, key: CallKey) -> Self {
        Self { cached, key }
    }

    /// Drops the entry everywhere it is kept. Store failures are counted and logged, never
    /// returned; a delete Redis does not confirm is kept and sent again.
    pub async fn invalidate(&self) {
        self.cached.invalidate_ref(&self.key).await;
    }

    /// Stores `value` as the entry. Store failures are counted and logged, never returned; a
    /// value that cannot be stored drops the entry instead.
    pub async fn put(&self, value: &V) {
        self.cached.put(&self.key, value).await;
    }

    /// Never called: names the entry's value type where generated code checks a value against
    /// it (`if false { target.value_type() } else { value }`).
    #[doc(hidden)]
    pub fn value_type(&self) -> V {
        unreachable!("only named in an `if false` branch")
    }

    /// Whether the entry lives in a store other processes read (Redis, or the tiered store).
    pub(crate) fn shared(&self) -> bool {
        self.cached.is_shared()
    }

    /// The key's digest, if the key could be computed.
    pub(crate) fn digest(&self) -> Option<u128> {
        self.key.as_ref().ok().map(|key| key.digest())
    }

    /// Makes `value` what a read of the entry returns while write-behind write `seq` is
    /// pending, whatever the stores hold. Returns the value left out (the one it replaced, or
    /// `value`), for the caller to drop outside its locks.
    #[must_use = "the value left out is dropped outside the locks"]
    pub(crate) fn hold(&self, seq: u64, value: V) -> Option<V> {
        match self.digest() {
            Some(digest) => self.cached.overlay().insert(digest, seq, value),
            None => Some(value),
        }
    }

    /// Ends write-behind write `seq`'s hold on the entry; `true` if a newer write holds it.
    pub(crate) fn release(&self, seq: u64) -> bool {
        match self.digest() {
            Some(digest) => self.cached.overlay().remove(digest, seq),
            None => false,
        }
    }

    /// The entry a write path's value makes: the value itself, or for an `Option` of it, the
    /// value if there is one ([`PutValue`]). Names `V`, so that rustc checks the write path's
    /// type against the target's.
    #[inline]
    pub fn entry_of<P: PutValue<V> + ?Sized>(&self, value: &P) -> Option<V> {
        value.entry()
    }

    /// Stores `entry` as the entry, or drops the entry for `None`.
    pub async fn put_entry(&self, entry: Option<V>) {
        match entry {
            Some(value) => self.put(&value).await,
            None => self.invalidate().await,
        }
    }
}

/// What `#[cache_put]` accepts as the new entry of a function whose stored value is `V`: `V`
/// itself, or `Option<V>`, whose `None` drops the entry (the shape of a target returning
/// `Option<V>`, where `None` is the new answer and is not cached).
#[diagnostic::on_unimplemented(
    message = "#[cache_put] stores the write path's value as the entry, whose type is `{V}`: this write path gives `{Self}`",
    label = "the entry is a `{V}`",
    note = "return `{V}`, or `Option<{V}>` to drop the entry with `None` (inside `Ok(…)` for a `Result`)"
)]
pub trait PutValue<V> {
    /// The entry to store, or `None` to drop it.
    fn entry(&self) -> Option<V>;
}

#[diagnostic::do_not_recommend]
impl<V: Clone> PutValue<V> for V {
    #[inline]
    fn entry(&self) -> Option<V> {
        Some(self.clone())
    }
}

#[diagnostic::do_not_recommend]
impl<V: Clone> PutValue<V> for Option<V> {
    #[inline]
    fn entry(&self) -> Option<V> {
        self.clone()
    }
}
