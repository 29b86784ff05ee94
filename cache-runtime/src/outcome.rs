//! Which results of a cached function are stored, and for how long.

use std::time::Duration;

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

/// What a function's options say about storing a value it loaded: how long it lives
/// (`ttl = …`, or `ttl_from = f` per value) and whether it is stored at all (`unless = f`).
pub(crate) struct Policy<V> {
    ttl: Option<Duration>,
    ttl_from: Option<fn(&V) -> Option<Duration>>,
    unless: Option<fn(&V) -> bool>,
}

// Not derived: a derive would ask `V: Copy`.
impl<V> Clone for Policy<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Policy<V> {}

impl<V> Policy<V> {
    /// Every value stored, for `ttl` (forever when `None`).
    pub(crate) const fn new(ttl: Option<Duration>) -> Self {
        Self {
            ttl,
            ttl_from: None,
            unless: None,
        }
    }

    /// `ttl_from = f`: `f(value)` is the value's ttl; `None` leaves it the function's `ttl`.
    pub(crate) const fn ttl_from(mut self, f: fn(&V) -> Option<Duration>) -> Self {
        self.ttl_from = Some(f);
        self
    }

    /// `unless = f`: a value for which `f(value)` is `true` is not stored.
    pub(crate) const fn unless(mut self, f: fn(&V) -> bool) -> Self {
        self.unless = Some(f);
        self
    }

    /// How long `value` is stored (`Some(None)`: until evicted), or `None` if it is not stored:
    /// `unless` said so, or its ttl is zero (an entry that would be expired when written).
    #[inline]
    pub(crate) fn admit(&self, value: &V) -> Option<Option<Duration>> {
        if let Some(unless) = self.unless {
            if unless(value) {
                return None;
            }
        }
        let ttl = match self.ttl_from {
            Some(ttl_from) => ttl_from(value).or(self.ttl),
            None => self.ttl,
        };
        match ttl {
            Some(ttl) if ttl.is_zero() => None,
            ttl => Some(ttl),
        }
    }
}

#[cfg(test)]
#[allow(clippy::ptr_arg)] // a policy's functions take `&V`
mod tests {
    use super::*;

    fn short_when_empty(value: &String) -> Option<Duration> {
        value.is_empty().then_some(Duration::from_secs(5))
    }

    fn zero_when_x(value: &String) -> Option<Duration> {
        (value == "x").then_some(Duration::ZERO)
    }

    fn unless_secret(value: &String) -> bool {
        value.starts_with("secret")
    }

    #[test]
    fn a_policy_gives_each_value_its_ttl_or_keeps_it_out() {
        let hour = Some(Duration::from_secs(3600));
        let plain = Policy::<String>::new(hour);
        assert_eq!(plain.admit(&String::new()), Some(hour));
        assert_eq!(Policy::<String>::new(None).admit(&"a".into()), Some(None));

        let per_value = Policy::new(hour).ttl_from(short_when_empty);
        assert_eq!(
            per_value.admit(&String::new()),
            Some(Some(Duration::from_secs(5)))
        );
        assert_eq!(per_value.admit(&"a".into()), Some(hour), "None: the ttl");
        let zero = Policy::new(hour).ttl_from(zero_when_x);
        assert_eq!(zero.admit(&"x".into()), None, "a zero ttl stores nothing");

        let unless = Policy::new(hour).unless(unless_secret);
        assert_eq!(unless.admit(&"secret 1".into()), None);
        assert_eq!(unless.admit(&"public".into()), Some(hour));
    }
}
