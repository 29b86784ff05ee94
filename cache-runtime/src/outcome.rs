//! Which results of a cached function are stored.

/// A return type the cache understands: which part of it to store, and how a stored value
/// becomes a return value again.
///
/// `Result<T, E>` stores `Ok` only and `Option<T>` stores `Some` only, so errors and absences are
/// never cached. Any other type goes through [`Always`].
pub trait Outcome {
    /// What the cache stores.
    type Value;

    /// The part of `self` to store, if any.
    fn cacheable(&self) -> Option<&Self::Value>;

    /// The return value for a stored value.
    fn from_cached(value: Self::Value) -> Self;
}

impl<T, E> Outcome for Result<T, E> {
    type Value = T;

    #[inline]
    fn cacheable(&self) -> Option<&T> {
        self.as_ref().ok()
    }

    #[inline]
    fn from_cached(value: T) -> Self {
        Ok(value)
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;

    #[inline]
    fn cacheable(&self) -> Option<&T> {
        self.as_ref()
    }

    #[inline]
    fn from_cached(value: T) -> Self {
        Some(value)
    }
}

/// A return value that is always stored, whatever its type (`Option` with `cache_none = true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Always<T>(pub T);

impl<T> Outcome for Always<T> {
    type Value = T;

    #[inline]
    fn cacheable(&self) -> Option<&T> {
        Some(&self.0)
    }

    #[inline]
    fn from_cached(value: T) -> Self {
        Always(value)
    }
}
