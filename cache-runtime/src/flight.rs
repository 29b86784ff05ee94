//! Single-flight of the shared stores (Redis, tiered): one load per key per process, the other
//! callers of the key wait for it. (The memory store keeps its loads under way itself:
//! [`crate::store::memory::MemoryStore::join_or_lead`].)
//!
//! A [`Flight`] is also its load's ticket against invalidation. An invalidation of the key (or
//! a clear) marks the flight stale ([`Flights::void`]), then takes its `gate`. A stale flight
//! stays in the map until its leader lets it go, but no call joins it: the next call leads a
//! new flight that holds it, and a flight whose leader lets go puts back in its place the
//! voided flight it holds that is still writing. So an invalidation always finds, and waits
//! for, every write of a load of its key that began before it, also one that an earlier
//! invalidation is still waiting for. The leader stores its value only while the flight is not
//! stale: checked under the memory tier's segment lock for memory, and under the `gate`, held
//! until its writes are answered, for Redis ([`Flight::write_if_current`]). So the
//! invalidation's own deletes reach the stores after any write of the flight, and a value
//! loaded before an invalidation never outlives it. Each flight stands for one key:
//! invalidating one key voids no other key's load. A Redis store voids again once its `DEL`
//! (or put) is answered: a leader that began after the first void may have read the old value
//! from Redis before it.

use std::future::Future;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::watch;

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
    /// The newest of the key's voided flights whose leader had not let go when this one
    /// replaced it in the map: an invalidation of this flight waits for its gate too, and for
    /// those it holds in turn.
    before: Option<Arc<Flight<V>>>,
    /// Set once its leader has let go (the guard dropped): its writes are over.
    ended: AtomicBool,
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
    /// An invalidation, a put or a clear of the key dropped the load (the memory store's): the
    /// calls that joined it load afresh, together.
    Dropped,
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
            Entry::Occupied(running) if running.get().current() => {
                Role::Wait(running.get().subscribe())
            }
            slot => Role::Lead(self.lead_in(digest, slot)),
        }
    }

    /// Leads a new load in `slot`, which holds no current flight of `digest`: empty, or a
    /// voided one, which the new flight holds (see [`Flight::after`]).
    fn lead_in(&self, digest: u128, slot: Entry<'_, u128, Arc<Flight<V>>>) -> FlightGuard<'_, V> {
        let flight = match slot {
            Entry::Occupied(mut voided) => {
                let flight = Flight::after(voided.get());
                voided.insert(flight.clone());
                flight
            }
            Entry::Vacant(slot) => slot.insert(Flight::new()).clone(),
        };
        FlightGuard::new(self, digest, flight)
    }

    /// Leads a new load of `digest` if none is under way.
    pub(crate) fn lead_if_free(&self, digest: u128) -> Option<FlightGuard<'_, V>> {
        match self.0.entry(digest) {
            Entry::Occupied(running) if running.get().current() => None,
            slot => Some(self.lead_in(digest, slot)),
        }
    }

    /// Marks the load of `digest` under way (if any) stale, so that calls from now on start
    /// their own; returns once every write of a load of `digest` that began before is
    /// answered: this one's, and those of loads voided earlier and still writing (an earlier
    /// invalidation may be waiting for one of them, but this one must not delete before it).
    pub(crate) async fn void(&self, digest: u128) {
        let flight = self.0.get(&digest).map(|f| {
            f.stale.store(true, Ordering::SeqCst);
            f.clone()
        });
        if let Some(flight) = flight {
            flight.void().await;
        }
    }

    /// [`Flights::void`] for every load under way.
    pub(crate) async fn void_all(&self) {
        let flights: Vec<Arc<Flight<V>>> = self
            .0
            .iter()
            .map(|f| {
                f.stale.store(true, Ordering::SeqCst);
                f.value().clone()
            })
            .collect();
        for flight in flights {
            flight.void().await;
        }
    }

    /// Marks every load under way stale, without waiting for their writes: for what only
    /// concerns memory (a lost subscription clears the memory tier).
    pub(crate) fn mark_all_stale(&self) {
        for flight in self.0.iter() {
            flight.stale.store(true, Ordering::SeqCst);
        }
    }
}

impl<V> Flight<V> {
    fn new() -> Arc<Self> {
        Self::with_before(None)
    }

    /// A flight of a key whose flight `voided` is stale, and may still be writing.
    fn after(voided: &Arc<Self>) -> Arc<Self> {
        Self::with_before(Self::live(Some(voided)))
    }

    fn with_before(before: Option<Arc<Self>>) -> Arc<Self> {
        Arc::new(Flight {
            waiters: std::sync::Mutex::new(None),
            joined: AtomicBool::new(false),
            stale: AtomicBool::new(false),
            gate: tokio::sync::Mutex::new(()),
            before,
            ended: AtomicBool::new(false),
        })
    }

    /// The first of `from` and the flights it holds whose leader has not let go.
    fn live(from: Option<&Arc<Self>>) -> Option<Arc<Self>> {
        let mut next = from;
        while let Some(flight) = next {
            if !flight.ended.load(Ordering::SeqCst) {
                return Some(flight.clone());
            }
            next = flight.before.as_ref();
        }
        None
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
        // The only user code run under this lock is a landing's clone of a value, made before
        // anything is sent: a panic there leaves the channel as it was.
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the flight stale, then waits until a write it already began is answered, and
    /// those of the voided flights of its key it holds.
    async fn void(self: Arc<Self>) {
        let mut next = Some(self);
        while let Some(flight) = next {
            flight.stale.store(true, Ordering::SeqCst);
            drop(flight.gate.lock().await);
            next = flight.before.clone();
        }
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
pub(crate) async fn wait<V: Clone>(rx: watch::Receiver<Landing<V>>) -> Option<(V, bool)> {
    match landing(rx).await {
        Some(Landing::Done(value)) => Some((value, false)),
        Some(Landing::Hit(value)) => Some((value, true)),
        _ => None,
    }
}

/// Waits for the load `rx` watches to land: how it did, or `None` if its channel closed
/// without a landing (its leader let go).
pub(crate) async fn landing<V: Clone>(mut rx: watch::Receiver<Landing<V>>) -> Option<Landing<V>> {
    rx.wait_for(|l| !matches!(l, Landing::Pending))
        .await
        .ok()
        .map(|l| (*l).clone())
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
    /// flight is still current ([`Flight::write_if_current`]), and returns at once: the caller
    /// has its value, and does not wait for the write ([`crate::store::fills`]). Until the
    /// write is done the flight stays in the map, where an invalidation finds it (and waits
    /// for the write before it deletes), and where a call of the key finds `value` rather than
    /// loading it again.
    #[cfg(feature = "redis")]
    pub(crate) fn write_detached(self, value: &V, write: impl Future<Output = ()> + Send + 'static)
    where
        V: Send + Sync + 'static,
        'a: 'static,
    {
        // A waiter that joins from now on sees the value at once, and so does one that joined
        // earlier and has not seen a landing yet.
        let mut channel = self.flight.channel();
        match channel.as_ref() {
            Some(tx) => {
                if matches!(*tx.borrow(), Landing::Pending) {
                    tx.send_replace(Landing::Done(value.clone()));
                }
            }
            None => *channel = Some(watch::channel(Landing::Done(value.clone())).0),
        }
        drop(channel);
        crate::store::fills::spawn(async move { self.flight.write_if_current(write).await });
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
        self.flight.ended.store(true, Ordering::SeqCst);
        // Only our own flight: an invalidation may have replaced it with a newer one. A voided
        // flight it holds whose leader has not let go takes its place (stale: no call joins
        // it), so that an invalidation from now on still finds, and waits for, its write.
        if let Entry::Occupied(mut slot) = self.flights.0.entry(self.key) {
            if Arc::ptr_eq(slot.get(), &self.flight) {
                match Flight::live(self.flight.before.as_ref()) {
                    Some(voided) => {
                        slot.insert(voided);
                    }
                    None => {
                        slot.remove();
                    }
                }
            }
        }
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

    /// A flight of key 1 whose fill passed its check and holds the gate while its `SET` is on
    /// its way (the gate's guard), and a first invalidation, waiting for that write.
    async fn a_write_under_way(
        flights: &'static Flights<u64>,
    ) -> (
        FlightGuard<'static, u64>,
        tokio::sync::MutexGuard<'static, ()>,
        tokio::task::JoinHandle<()>,
    ) {
        let Role::Lead(fill) = flights.join_or_lead(1) else {
            panic!("leads");
        };
        let flight: &'static Arc<Flight<u64>> = Box::leak(Box::new(fill.flight().clone()));
        let write = flight.gate.lock().await;
        let first = tokio::spawn(flights.void(1));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        (fill, write, first)
    }

    #[tokio::test]
    async fn a_second_invalidation_waits_for_the_write_the_first_one_waits_for() {
        // 'static, for the invalidations' tasks.
        let flights: &'static Flights<u64> = Box::leak(Box::default());
        let (fill, write, first) = a_write_under_way(flights).await;
        let Role::Lead(next) = flights.join_or_lead(1) else {
            panic!("a stale flight is never joined: the next call leads");
        };
        let second = tokio::spawn(flights.void(1));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!first.is_finished(), "the first waits for the write");
        assert!(
            !second.is_finished(),
            "the second must not delete before the write the first waits for"
        );
        drop(write);
        drop(fill);
        first.await.unwrap();
        second.await.unwrap();
        assert!(
            !next.current(),
            "the second voided the load after the first"
        );
    }

    #[tokio::test]
    async fn an_invalidation_waits_for_a_voided_write_after_the_next_flight_ended() {
        let flights: &'static Flights<u64> = Box::leak(Box::default());
        let (fill, write, first) = a_write_under_way(flights).await;
        // The next call leads F2 (F1 is stale) and ends at once: its body failed, it was
        // cancelled, or its lookup hit. F2 leaves the map; F1 (still writing) is not in it.
        let Role::Lead(next) = flights.join_or_lead(1) else {
            panic!("leads");
        };
        drop(next);
        let second = tokio::spawn(flights.void(1));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!first.is_finished(), "the first waits for the write");
        let second_done = second.is_finished();
        drop(write);
        drop(fill);
        first.await.unwrap();
        assert!(
            !second_done,
            "the second invalidation returned (and would delete) before the write the first waits for"
        );
    }

    #[tokio::test]
    async fn an_invalidation_waits_for_a_voided_write_behind_a_flight_that_ended() {
        let flights: &'static Flights<u64> = Box::leak(Box::default());
        let (fill, write, first) = a_write_under_way(flights).await;
        // F2 leads after F1; a second invalidation voids F2 (and waits for F1).
        let Role::Lead(two) = flights.join_or_lead(1) else {
            panic!("leads");
        };
        let second = tokio::spawn(flights.void(1));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        // F3 leads after F2; F2's leader ends: F3.before no longer upgrades.
        let Role::Lead(three) = flights.join_or_lead(1) else {
            panic!("leads");
        };
        drop(two);
        let third = tokio::spawn(flights.void(1));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!first.is_finished() && !second.is_finished());
        let third_done = third.is_finished();
        drop(write);
        drop(fill);
        drop(three);
        first.await.unwrap();
        second.await.unwrap();
        assert!(
            !third_done,
            "the third invalidation returned before the write the first two wait for"
        );
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
