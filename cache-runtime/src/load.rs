//! The miss path of a call: join the key's load under way or lead one; the leader's lookup
//! under its flight; the body, run once; the fill. A cached sync function takes the same path
//! on the memory store, waiting for the leader by parking its thread ([`crate::blocking`]).

use std::future::Future;
use std::pin::Pin;

use crate::blocking::block_on;
use crate::cached_fn::{Key, State};
use crate::flight::{self, FlightGuard, Landing, LoadErrorGuard, Role};
use crate::outcome::Outcome;
use crate::stats::Counters;

impl<V> State<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// A miss of the lookups made so far: the load, boxed, since it holds the body's future.
    /// A store that reads a shared store under the flight counts the call once it knows
    /// whether that store had the value.
    pub(crate) fn miss<O, F, Fut>(
        &'static self,
        key: Key,
        load: F,
    ) -> Pin<Box<impl Future<Output = O>>>
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        if !self.store.reads_under_flight() {
            self.ctx.miss(&key);
        }
        Box::pin(self.load(key, load))
    }

    /// Joins the load under way for `key`, or leads one.
    async fn load<O, F, Fut>(&'static self, key: Key, load: F) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let rx = match self.ctx.flights.join_or_lead(key.digest()) {
            Role::Lead(guard) => return self.lead(key, guard, load).await,
            Role::Wait(rx) => rx,
        };
        let count_late = self.store.reads_under_flight();
        match flight::wait(rx).await {
            Some((value, true)) => {
                self.ctx.hit(&key);
                return O::from_cached(value);
            }
            Some((value, false)) => {
                if count_late {
                    self.ctx.miss(&key);
                }
                return O::from_cached(value);
            }
            None => {}
        }
        if count_late {
            self.ctx.miss(&key);
        }
        // The leader failed: run our own body rather than queue behind another leader, so no
        // caller waits longer than one failed load plus its own. It leads a flight of its own
        // if none runs yet; otherwise it stores nothing, having no ticket an invalidation
        // could void.
        let mut guard = self.ctx.flights.lead_if_free(key.digest());
        if let Some(value) = self.pending_for(&key, &mut guard) {
            return O::from_cached(value);
        }
        self.run(&key, guard, load).await
    }

    /// The value of a write-behind write of `key` still pending, read once the caller holds
    /// the key's flight (or found none to hold) and before it runs the body: a write accepted
    /// before is seen here, and one accepted after voids the flight, so a body that read the
    /// database before a write never answers, or stores, over that write's value.
    fn pending_for(&self, key: &Key, guard: &mut Option<FlightGuard<'static, V>>) -> Option<V> {
        let value = self.ctx.overlay.get(key.digest())?;
        if let Some(guard) = guard.as_mut() {
            guard.land(|| Landing::Done(value.clone()));
        }
        Some(value)
    }

    async fn lead<O, F, Fut>(
        &'static self,
        key: Key,
        mut guard: FlightGuard<'static, V>,
        load: F,
    ) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let late = self.store.reads_under_flight();
        // A write-behind value first: see `pending_for`.
        let found = match self.ctx.overlay.get(key.digest()) {
            Some(value) => Some(value),
            // The memory store's look-up and fill are synchronous: called directly, they
            // build no future of the store's inside the load's.
            None => match self.store.memory() {
                Some(memory) => memory.get(key.digest()),
                None => {
                    self.store
                        .get_leading(&self.ctx, &key, guard.flight())
                        .await
                }
            },
        };
        if let Some(value) = found {
            if late {
                self.ctx.hit(&key);
                guard.land(|| Landing::Hit(value.clone()));
            } else {
                guard.land(|| Landing::Done(value.clone()));
            }
            return O::from_cached(value);
        }
        if late {
            self.ctx.miss(&key);
        }
        self.run(&key, Some(guard), load).await
    }

    /// Runs the body, hands a cacheable value to the waiters, and stores it, for the ttl the
    /// policy gives it, if the policy admits it and the flight is still current. The fill takes
    /// the flight's guard: the flight stays in the map, where an invalidation finds it, until
    /// the fill is done, even if the caller stops waiting.
    async fn run<O, F, Fut>(
        &'static self,
        key: &Key,
        guard: Option<FlightGuard<'static, V>>,
        load: F,
    ) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        self.ctx.counters.loads.bump();
        let mut error_guard = LoadErrorGuard(Some(&self.ctx.counters.load_errors));
        // The body's own spans nest under this one; a body that panics or is cancelled leaves
        // `outcome` unset.
        let span = tracing::info_span!(
            "cachette.load",
            function = %self.ctx.namespace,
            outcome = tracing::field::Empty,
        );
        let outcome = tracing::Instrument::instrument(load(), span.clone()).await;
        let cacheable = outcome.cacheable().is_some();
        span.record(
            "outcome",
            if cacheable {
                "cacheable"
            } else {
                "not_cacheable"
            },
        );
        if let Some(value) = outcome.cacheable() {
            error_guard.0 = None;
            let admitted = self.admit(value);
            if let Some(mut guard) = guard {
                guard.land_outcome(&outcome);
                if let Some(ttl) = admitted {
                    self.store.fill(&self.ctx, key, value, ttl, guard);
                }
            }
        }
        outcome
    }

    /// The miss path of a cached sync function on the memory store: the same flights, ttl,
    /// policy and counters as [`State::miss`], with a blocking wait for the leader. A leader
    /// that fails, panics or unwinds releases its waiters (its guard drops), and each runs its
    /// own body then, as async callers do.
    pub(crate) fn miss_blocking<O, F>(&'static self, key: Key, load: F) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> O,
    {
        self.ctx.miss(&key);
        let rx = match self.ctx.flights.join_or_lead(key.digest()) {
            Role::Lead(mut guard) => {
                // A load that ended since the caller's lookup has filled the store.
                let memory = self.store.memory();
                let pending = self.ctx.overlay.get(key.digest());
                if let Some(value) = pending.or_else(|| memory.and_then(|m| m.get(key.digest()))) {
                    guard.land(|| Landing::Done(value.clone()));
                    return O::from_cached(value);
                }
                return self.run_blocking(&key, Some(guard), load);
            }
            Role::Wait(rx) => rx,
        };
        if let Some((value, _)) = block_on(flight::wait(rx)) {
            return O::from_cached(value);
        }
        let mut guard = self.ctx.flights.lead_if_free(key.digest());
        if let Some(value) = self.pending_for(&key, &mut guard) {
            return O::from_cached(value);
        }
        self.run_blocking(&key, guard, load)
    }

    /// The ttl the policy gives a loaded value, or `None` (counted) if it keeps it out.
    fn admit(&self, value: &V) -> Option<Option<std::time::Duration>> {
        let admitted = self.ctx.policy.admit(value);
        if admitted.is_none() {
            Counters::bump(&self.ctx.counters.declined);
        }
        admitted
    }

    /// [`State::run`] for a sync body, storing in memory (the one store of sync functions).
    fn run_blocking<O, F>(
        &'static self,
        key: &Key,
        guard: Option<FlightGuard<'static, V>>,
        load: F,
    ) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> O,
    {
        self.ctx.counters.loads.bump();
        let mut error_guard = LoadErrorGuard(Some(&self.ctx.counters.load_errors));
        let outcome = load();
        if let Some(value) = outcome.cacheable() {
            error_guard.0 = None;
            let admitted = self.admit(value);
            if let Some(mut guard) = guard {
                guard.land_outcome(&outcome);
                if let (Some(ttl), Some(memory)) = (admitted, self.store.memory()) {
                    memory.insert(key.digest(), value.clone(), ttl, || guard.current());
                }
            }
        }
        outcome
    }
}
