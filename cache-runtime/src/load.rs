//! The miss path of a call: join the key's load under way or lead one; the leader's lookup
//! under its flight; the body, run once; the fill. The memory store keeps the key's load under
//! way itself ([`MemoryStore::join_or_lead`]); the shared stores' flights are in
//! [`crate::flight`]. A cached sync function takes the memory store's path, waiting for the
//! leader by parking its thread ([`crate::blocking`]).

use std::future::Future;
use std::pin::Pin;

use crate::blocking::block_on;
use crate::cached_fn::{Key, State};
use crate::flight::{self, FlightGuard, Landing, LoadErrorGuard, Role};
use crate::outcome::Outcome;
use crate::stats::Counters;
use crate::store::memory::{Begin, LoadTicket, MemoryStore};

/// What a call that joined a memory store's load does once that load has landed.
enum After<V: Clone + 'static> {
    /// Return the value.
    Value(V),
    /// Wait for the key's next load, which it joined.
    Wait(tokio::sync::watch::Receiver<Landing<V>>),
    /// Run its own body: leading the key's next load (with a ticket), or beside it.
    Lead(Option<LoadTicket<'static, V>>),
}

/// [`After`] `landing`: the load's value; or, if an invalidation, a put or a clear dropped
/// the load, the key's next load, joined together (or the value it stored); or, if the load
/// failed, a load of the call's own, leading only if the key is free, so that no call queues
/// behind another's failure.
fn after_landing<V: Clone + 'static>(
    memory: &'static MemoryStore<V>,
    digest: u128,
    landing: Option<Landing<V>>,
) -> After<V> {
    let join = match landing {
        Some(Landing::Done(value) | Landing::Hit(value)) => return After::Value(value),
        Some(Landing::Dropped) => true,
        _ => false,
    };
    match memory.join_or_lead(digest, join) {
        Begin::Found(value) => After::Value(value),
        Begin::Wait(rx) => After::Wait(rx),
        Begin::Lead(ticket) => After::Lead(Some(ticket)),
        Begin::Busy => After::Lead(None),
    }
}

/// What a memory store's miss has left to do ([`State::miss_memory`]).
pub(crate) enum MemoryMiss<V, L, W> {
    /// Nothing: a load stored the value since the call's lookup.
    Found(V),
    /// Lead the key's load (or run the body beside another call's).
    Lead(Pin<Box<L>>),
    /// Wait for the key's load under way.
    Wait(Pin<Box<W>>),
}

impl<V> State<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// A miss of the lookups made so far, on a shared store: the load, boxed, since it holds
    /// the body's future. A store that reads a shared store under the flight counts the call
    /// once it knows whether that store had the value.
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
            None => {
                self.store
                    .get_leading(&self.ctx, &key, guard.flight())
                    .await
            }
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
        let outcome = self.body(load).await;
        if let Some(value) = outcome.cacheable() {
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

    /// Runs the body, counted as a load, and as a load error unless it gives a cacheable
    /// result, in a `cachette.load` span.
    async fn body<O, F, Fut>(&self, load: F) -> O
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
        if cacheable {
            error_guard.0 = None;
        }
        outcome
    }

    /// A miss of a function on the memory store. The key's single-flight is in the store
    /// ([`MemoryStore::join_or_lead`]): the call finds the value stored since its lookup, or
    /// joins the load under way, or leads one. The rest of the call is boxed, since it holds
    /// the body's future; the leader's and the waiter's in boxes of their own, each as small as
    /// its path.
    pub(crate) fn miss_memory<O, F, Fut>(
        &'static self,
        memory: &'static MemoryStore<V>,
        key: Key,
        load: F,
    ) -> MemoryMiss<V, impl Future<Output = O>, impl Future<Output = O>>
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        self.ctx.miss(&key);
        let digest = key.digest();
        let ticket = match memory.join_or_lead(digest, true) {
            Begin::Found(value) => return MemoryMiss::Found(value),
            Begin::Wait(rx) => {
                return MemoryMiss::Wait(Box::pin(self.wait_memory(memory, digest, rx, load)))
            }
            Begin::Lead(ticket) => Some(ticket),
            Begin::Busy => None,
        };
        MemoryMiss::Lead(Box::pin(self.lead_memory(ticket, digest, load)))
    }

    /// The leader of a memory store's load (or, without a ticket, a call that runs its own
    /// body beside another's load): a pending write-behind value, or the body, whose value the
    /// ticket stores (if the policy admits it) and hands to the waiters.
    async fn lead_memory<O, F, Fut>(
        &'static self,
        ticket: Option<LoadTicket<'static, V>>,
        digest: u128,
        load: F,
    ) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let ticket = match self.pending_memory(digest, ticket) {
            Ok(value) => return O::from_cached(value),
            Err(ticket) => ticket,
        };
        let outcome = self.body(load).await;
        self.finish_memory(&outcome, ticket);
        outcome
    }

    /// Stores a memory store's loaded value through the load's ticket, for the ttl the policy
    /// gives it, and hands it to the waiters (a call without a ticket stores nothing).
    fn finish_memory<O: Outcome<Value = V>>(
        &self,
        outcome: &O,
        ticket: Option<LoadTicket<'static, V>>,
    ) {
        if let Some(value) = outcome.cacheable() {
            let admitted = self.admit(value);
            if let Some(ticket) = ticket {
                ticket.finish(value, admitted);
            }
        }
    }

    /// A waiter of a memory store's load: its value, or, if that load failed (or an
    /// invalidation dropped it), a load of the caller's own, as [`State::load`] runs one.
    async fn wait_memory<O, F, Fut>(
        &'static self,
        memory: &'static MemoryStore<V>,
        digest: u128,
        rx: tokio::sync::watch::Receiver<Landing<V>>,
        load: F,
    ) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let mut rx = rx;
        let ticket = loop {
            match after_landing(memory, digest, flight::landing(rx).await) {
                After::Value(value) => return O::from_cached(value),
                After::Wait(next) => rx = next,
                After::Lead(ticket) => break ticket,
            }
        };
        self.lead_memory(ticket, digest, load).await
    }

    /// [`State::pending_for`] for a call on the memory store, holding its key's load
    /// (`ticket`) or not: the pending value, handed to the waiters in place of a load, or the
    /// ticket back.
    fn pending_memory(
        &self,
        digest: u128,
        ticket: Option<LoadTicket<'static, V>>,
    ) -> Result<V, Option<LoadTicket<'static, V>>> {
        let Some(value) = self.ctx.overlay.get(digest) else {
            return Err(ticket);
        };
        if let Some(ticket) = ticket {
            ticket.hand_over(&value);
        }
        Ok(value)
    }

    /// The miss path of a cached sync function on the memory store: the same loads, ttl,
    /// policy and counters as [`State::miss_memory`], with a blocking wait for the leader. The
    /// waiters go on as async callers do ([`after_landing`]): a leader that fails, panics or
    /// unwinds releases them (its ticket drops), and each runs its own body unless it finds
    /// the value; a load dropped by an invalidation sends them to the key's next load.
    pub(crate) fn miss_blocking<O, F>(&'static self, key: Key, load: F) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> O,
    {
        self.ctx.miss(&key);
        let Some(memory) = self.store.memory() else {
            return load();
        };
        let digest = key.digest();
        let mut rx = match memory.join_or_lead(digest, true) {
            Begin::Found(value) => return O::from_cached(value),
            Begin::Lead(ticket) => return self.lead_blocking(Some(ticket), digest, load),
            Begin::Wait(rx) => rx,
            Begin::Busy => return self.lead_blocking(None, digest, load),
        };
        let ticket = loop {
            match after_landing(memory, digest, block_on(flight::landing(rx))) {
                After::Value(value) => return O::from_cached(value),
                After::Wait(next) => rx = next,
                After::Lead(ticket) => break ticket,
            }
        };
        self.lead_blocking(ticket, digest, load)
    }

    /// The ttl the policy gives a loaded value, or `None` (counted) if it keeps it out.
    fn admit(&self, value: &V) -> Option<Option<std::time::Duration>> {
        let admitted = self.ctx.policy.admit(value);
        if admitted.is_none() {
            Counters::bump(&self.ctx.counters.declined);
        }
        admitted
    }

    /// [`State::lead_memory`] for a sync body.
    fn lead_blocking<O, F>(
        &'static self,
        ticket: Option<LoadTicket<'static, V>>,
        digest: u128,
        load: F,
    ) -> O
    where
        O: Outcome<Value = V>,
        F: FnOnce() -> O,
    {
        let ticket = match self.pending_memory(digest, ticket) {
            Ok(value) => return O::from_cached(value),
            Err(ticket) => ticket,
        };
        self.ctx.counters.loads.bump();
        let mut error_guard = LoadErrorGuard(Some(&self.ctx.counters.load_errors));
        let outcome = load();
        if outcome.cacheable().is_some() {
            error_guard.0 = None;
        }
        self.finish_memory(&outcome, ticket);
        outcome
    }
}
