//! Single-flight: one load per key per process, the other callers of the key wait for it.
//!
//! A [`Flight`] is also its load's ticket against invalidation. An invalidation of the key (or
//! a clear) marks the flight stale and takes it out of the map ([`Flights::void`]), then takes
//! its `gate`. The leader stores its value only while the flight is not stale: checked under
//! the memory store's segment lock for memory, and under the `gate`, held until its writes are
//! answered, for Redis ([`Flight::write_if_current`]). So the invalidation's own deletes reach
//! the stores after any write of the flight, and a value loaded before an invalidation never
//! outlives it. Each flight stands for one key: invalidating one key voids no other key's load.

use std::future::Future;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::watch;

use crate::cached_fn::settle;
use crate::outcome::Outcome;
use crate::stats::Counters;
use crate::store::memory::DigestHasher;

/// The loads under way of one function, by key digest.
pub(crate) struct Flights<V>(DashMap<u128, Arc<Flight<V>>, BuildHasherDefault<DigestHasher>>);

/// One load in progress: waiters watch it until it is done or has failed.
pub(crate) struct Flight<V> {
    /// The channel to the waiters, made when the first one joins: most loads have none.
    waiters: std::sync::Mutex<Option<watch::Sender<Landing<V>>>>,
    /// Set, under `waiters`, once the channel is made: until then a landing has no one to
    /// reach and takes no lock.
    joined: AtomicBool,
    stale: AtomicBool,
    gate: tokio::sync::Mutex<()>,
}

/// How a flight ended, as its waiters see it.
#[derive(Clone)]
pub(crate) enum Landing<V> {
    Pending,
    /// The value the leader loaded.
    Done(V),
    /// The value the leader found in a shared store (a tiered store's memory-tier miss).
    Hit(V),
    /// The leading load produced nothing to share: `Err`/`None`, a panic, or it was dropped.
    Failed,
}

/// What [`Flights::join_or_lead`] made of a caller.
pub(crate) enum Role<'a, V> {
    /// Runs the load; waiters are released when the guard lands or drops.
    Lead(FlightGuard<'a, V>),
    /// Waits for the load under way.
    Wait(watch::Receiver<Landing<V>>),
}

impl<V> Default for Flights<V> {
    fn default() -> Self {
        Self(DashMap::default())
    }
}

impl<V: Clone> Flights<V> {
    /// Joins the load of `digest` under way, or leads a new one.
    pub(crate) fn join_or_lead(&self, digest: u128) -> Role<'_, V> {
        match self.0.entry(digest) {
            Entry::Occupied(running) => Role::Wait(running.get().subscribe()),
            Entry::Vacant(slot) => {
                let flight = slot.insert(Flight::new()).clone();
                Role::Lead(FlightGuard::new(self, digest, flight))
            }
        }
    }

    /// Leads a new load of `digest` if none is under way.
    pub(crate) fn lead_if_free(&self, digest: u128) -> Option<FlightGuard<'_, V>> {
        match self.0.entry(digest) {
            Entry::Vacant(slot) => {
                let flight = slot.insert(Flight::new()).clone();
                Some(FlightGuard::new(self, digest, flight))
            }
            Entry::Occupied(_) => None,
        }
    }

    /// Marks the load of `digest` under way (if any) stale and forgets it, so that calls from
    /// now on start their own; returns once a write it already began is answered.
    pub(crate) async fn void(&self, digest: u128) {
        if let Some((_, flight)) = self.0.remove(&digest) {
            flight.void().await;
        }
    }

    /// [`Flights::void`] for every load under way.
    pub(crate) async fn void_all(&self) {
        let flights: Vec<(u128, Arc<Flight<V>>)> = self
            .0
            .iter()
            .map(|f| (*f.key(), f.value().clone()))
            .collect();
        for (digest, flight) in &flights {
            self.0.remove_if(digest, |_, f| Arc::ptr_eq(f, flight));
        }
        for (_, flight) in flights {
            flight.void().await;
        }
    }

    /// Marks every load under way stale and forgets it, without waiting for their writes: for
    /// what only concerns memory (a lost subscription clears the memory tier).
    pub(crate) fn mark_all_stale(&self) {
        for flight in self.0.iter() {
            flight.stale.store(true, Ordering::SeqCst);
        }
        self.0.clear();
    }
}

impl<V> Flight<V> {
    fn new() -> Arc<Self> {
        Arc::new(Flight {
            waiters: std::sync::Mutex::new(None),
            joined: AtomicBool::new(false),
            stale: AtomicBool::new(false),
            gate: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether no invalidation of the key ran since the flight began.
    pub(crate) fn current(&self) -> bool {
        !self.stale.load(Ordering::SeqCst)
    }

    /// A waiter's end of the channel, made with the first waiter. Called only while the flight
    /// is in the map (under its entry's lock), so none joins once the leader has let it go.
    fn subscribe(&self) -> watch::Receiver<Landing<V>> {
        let mut channel = self.channel();
        let rx = channel
            .get_or_insert_with(|| watch::channel(Landing::Pending).0)
            .subscribe();
        self.joined.store(true, Ordering::Release);
        rx
    }

    /// Hands what `landing` makes to the waiters, if there are any. A waiter that joins after
    /// `joined` was read here missed this landing as one that joins after it does: it is
    /// released when the leader lets the flight go (the channel's sender drops with it).
    fn land_with(&self, landing: impl FnOnce() -> Landing<V>) {
        if !self.joined.load(Ordering::Acquire) {
            return;
        }
        if let Some(tx) = self.channel().as_ref() {
            tx.send_replace(landing());
        }
    }

    fn channel(&self) -> std::sync::MutexGuard<'_, Option<watch::Sender<Landing<V>>>> {
        // Nothing panics under this lock.
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the flight stale, then waits until a write it already began is answered.
    async fn void(&self) {
        self.stale.store(true, Ordering::SeqCst);
        drop(self.gate.lock().await);
    }

    /// Runs `write` if the flight is still current, holding the gate until it is done: an
    /// invalidation that marks the flight meanwhile waits for it before sending its deletes.
    pub(crate) async fn write_if_current(&self, write: impl Future<Output = ()>) {
        let _gate = self.gate.lock().await;
        if self.current() {
            write.await;
        }
    }
}

/// Waits for the flight `rx` watches to land: its value (and whether it came from a shared
/// store), or `None` if it failed.
pub(crate) async fn wait<V: Clone>(mut rx: watch::Receiver<Landing<V>>) -> Option<(V, bool)> {
    let landing = rx
        .wait_for(|l| !matches!(l, Landing::Pending))
        .await
        .map(|l| (*l).clone());
    match landing {
        Ok(Landing::Done(value)) => Some((value, false)),
        Ok(Landing::Hit(value)) => Some((value, true)),
        _ => None,
    }
}

/// The leader's hold on its flight. However the leader ends — value, error, panic or being
/// dropped — waiters are released and the key is free for the next caller.
pub(crate) struct FlightGuard<'a, V> {
    flights: &'a Flights<V>,
    key: u128,
    flight: Arc<Flight<V>>,
    landed: bool,
}

impl<'a, V: Clone> FlightGuard<'a, V> {
    fn new(flights: &'a Flights<V>, key: u128, flight: Arc<Flight<V>>) -> Self {
        Self {
            flights,
            key,
            flight,
            landed: false,
        }
    }

    /// The flight: the load's ticket against invalidation.
    pub(crate) fn flight(&self) -> &Arc<Flight<V>> {
        &self.flight
    }

    /// Whether no invalidation of the key ran since the flight began.
    pub(crate) fn current(&self) -> bool {
        self.flight.current()
    }

    /// Runs `write` in a task of its own that keeps this guard, under the flight's gate, if the
    /// flight is still current ([`Flight::write_if_current`]). A caller that stops waiting (a
    /// timeout, a dropped future) must not stop a fill between its check and its write, and the
    /// flight must stay where an invalidation finds it until the write is done.
    pub(crate) async fn write_detached(self, write: impl Future<Output = ()> + Send + 'static)
    where
        V: Send + Sync + 'static,
        'a: 'static,
    {
        settle(async move { self.flight.write_if_current(write).await }).await;
    }

    /// Hands what `landing` makes to the waiters, if there are any.
    pub(crate) fn land(&mut self, landing: impl FnOnce() -> Landing<V>) {
        self.landed = true;
        self.flight.land_with(landing);
    }

    /// Hands a loaded value to the waiters, if there are any.
    pub(crate) fn land_outcome<O: Outcome<Value = V>>(&mut self, outcome: &O) {
        if let Some(value) = outcome.cacheable() {
            self.land(|| Landing::Done(value.clone()));
        }
    }
}

impl<V> Drop for FlightGuard<'_, V> {
    fn drop(&mut self) {
        // Only our own flight: an invalidation may have replaced it with a newer one.
        self.flights
            .0
            .remove_if(&self.key, |_, f| Arc::ptr_eq(f, &self.flight));
        // Waiters subscribe only while the flight is in the map, so once it is out, none can
        // come: those who did are released.
        if !self.landed {
            self.flight.land_with(|| Landing::Failed);
        }
    }
}

/// Counts a load error unless disarmed: covers `Err`/`None`, panics and cancellation alike.
pub(crate) struct LoadErrorGuard<'a>(pub(crate) Option<&'a AtomicU64>);

impl Drop for LoadErrorGuard<'_> {
    fn drop(&mut self) {
        if let Some(counter) = self.0 {
            Counters::bump(counter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn voiding_a_flight_waits_for_the_write_it_began() {
        let flight = Flight::<u64>::new();
        // A fill that passed its check and holds the gate while its `SET` is on its way.
        let write = flight.gate.lock().await;
        assert!(flight.current());
        let voiding = tokio::spawn({
            let flight = flight.clone();
            async move { flight.void().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!flight.current(), "marked stale at once: later checks fail");
        assert!(
            !voiding.is_finished(),
            "the invalidation's delete must wait for the write under way"
        );
        drop(write);
        voiding.await.unwrap();
        // A fill that takes the gate after the void sees the mark, and writes nothing.
        let mut wrote = false;
        flight.write_if_current(async { wrote = true }).await;
        assert!(!wrote);
    }

    #[tokio::test]
    async fn one_key_at_a_time_joins_leads_and_frees() {
        let flights = Flights::<u64>::default();
        let Role::Lead(mut lead) = flights.join_or_lead(1) else {
            panic!("the first caller leads");
        };
        let Role::Wait(rx) = flights.join_or_lead(1) else {
            panic!("the second caller waits");
        };
        assert!(
            matches!(flights.join_or_lead(2), Role::Lead(_)),
            "another key never waits"
        );
        lead.land(|| Landing::Done(7));
        assert_eq!(wait(rx).await, Some((7, false)));
        drop(lead);
        assert!(
            flights.lead_if_free(1).is_some(),
            "freed once the leader is done"
        );
    }

    #[tokio::test]
    async fn a_leader_that_is_dropped_releases_its_waiters_and_the_key() {
        let flights = Flights::<u64>::default();
        let Role::Lead(lead) = flights.join_or_lead(1) else {
            panic!("leads");
        };
        let Role::Wait(rx) = flights.join_or_lead(1) else {
            panic!("waits");
        };
        drop(lead);
        assert_eq!(wait(rx).await, None, "a failed load, not a hang");
        assert!(flights.lead_if_free(1).is_some());
    }

    #[tokio::test]
    async fn a_waiter_that_joins_after_an_unseen_landing_is_released_when_the_leader_ends() {
        let flights = Flights::<u64>::default();
        let Role::Lead(mut lead) = flights.join_or_lead(1) else {
            panic!("leads");
        };
        // No waiter yet: the landing is not kept (no channel is even made).
        lead.land(|| Landing::Done(7));
        // The leader still holds the key (its fill is under way): a caller joins.
        let Role::Wait(rx) = flights.join_or_lead(1) else {
            panic!("waits");
        };
        drop(lead);
        assert_eq!(wait(rx).await, None, "released, to run a load of its own");
    }

    #[tokio::test]
    async fn voiding_one_key_leaves_the_others_current() {
        let flights = Flights::<u64>::default();
        let Role::Lead(one) = flights.join_or_lead(1) else {
            panic!()
        };
        let Role::Lead(two) = flights.join_or_lead(2) else {
            panic!()
        };
        flights.void(1).await;
        assert!(!one.flight().current());
        assert!(two.flight().current());
        assert!(
            matches!(flights.join_or_lead(1), Role::Lead(_)),
            "a call after the invalidation leads a load of its own"
        );
        flights.void_all().await;
        assert!(!two.flight().current());
    }
}
