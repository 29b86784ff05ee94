//! `#[write_behind]`: a call stores its value in the cache now and queues the body, which runs
//! later on a task of cachette's, in order per key, coalesced, retried.
//!
//! The protocol, per write (`seq` is a process-wide sequence number taken when it is accepted):
//!
//! 1. **Room.** The call waits for a permit of the function's queue (`capacity`); the permit
//!    is held until the write has ended, so the queue never holds more than `capacity` writes
//!    and a full queue makes callers wait, never drops a write.
//! 2. **Accept.** Under the queue's lock: the write takes its `seq`, its value goes into the
//!    target's overlay (the pending value a miss reads, see [`overlay`]), and the write joins
//!    its key's lane. With coalescing, a write still waiting in the lane is replaced by the new
//!    one, which takes its place and due time. A lane that did not exist gets a runner task.
//!    So lane order, `seq` order and the overlay always agree. What the write displaced (the
//!    key's older overlay value, the waiting write it replaced, with its body's captures) is
//!    dropped after the put below is on its way, outside every lock: a drop is a user's code,
//!    and a panic there (logged) loses nothing.
//! 3. **Put.** The value is stored in every tier of the target, in a task on cachette's
//!    write-behind thread, so that a cancelled caller (or one whose runtime ends) still
//!    finishes it. Puts of one key are ordered by `seq` (an older put that comes late is
//!    skipped), so the cache ends with the newest accepted value; a put that ends in any way
//!    (done, panicked, dropped) lets its write run.
//! 4. **Run.** The lane's runner, a task on cachette's own write-behind thread, takes its
//!    writes one at a time, in `seq` order: it waits for the write's due time (`delay`;
//!    skipped while a flush runs) and for its put, then runs the body, retrying a failure (an
//!    `Err` or a panic) with capped exponential backoff.
//! 5. **End.** The write's overlay value is dropped unless a newer write of the key holds the
//!    place. A write that failed every attempt drops the key's cached value everywhere (so
//!    reads fall back to the database) unless a newer write is pending, and is reported to the
//!    failure handler. In a shared store (Redis, tiered) a write that succeeded drops the
//!    entry too, unless a newer write is pending: while it was pending, another process (which
//!    has no overlay) may have missed, read the database's older value and stored it. Then the
//!    write's permit is returned. The end, and the write's drop, run a user's code: a panic
//!    there is logged, and the lane goes on.
//!
//! So per key, two writes never run at once nor out of order; a read sees the newest accepted
//! value until the database has it; and the cache is never left holding a value the database
//! refused.
//!
//! A [`flush`] waits for the writes accepted before it began, not for those accepted since:
//! each write outstanding is known by the `seq` of the oldest write it stands for (its own, or
//! that of the waiting write it replaced), and the flush waits until none below the next `seq`
//! when it began is left. So it returns under a steady stream of writes too.

mod overlay;
#[cfg(test)]
mod tests;

pub(crate) use overlay::Overlay;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

use crate::cached_fn::settle;
use crate::write::Target;

/// What `#[write_behind(...)]` said about a function, fixed at compile time.
#[derive(Clone, Copy, Debug)]
pub struct BehindSpec {
    /// `module_path!()` where the function is written.
    pub module: &'static str,
    /// The function's name.
    pub function: &'static str,
    /// `capacity = N`: the most writes accepted and not yet ended.
    pub capacity: usize,
    /// `delay = …`: how long a write waits before it runs, so a newer one can replace it.
    pub delay: Duration,
    /// `retries = N`: how many times a failed write is run again.
    pub retries: u32,
    /// `coalesce = false` runs every write; by default a waiting write is replaced by a newer
    /// one of the same key.
    pub coalesce: bool,
}

/// The default `capacity` of a write-behind queue.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// The default `retries` of a write-behind function.
pub const DEFAULT_RETRIES: u32 = 3;

/// The first wait before a retry; it doubles with each attempt, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The write-behind queue of one function: the static that `#[write_behind]` puts behind it.
pub struct WriteBehind {
    spec: BehindSpec,
    queue: OnceLock<Arc<Queue>>,
}

/// A write-behind function's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBehindStats {
    /// Writes accepted (calls that returned).
    pub queued: u64,
    /// Writes whose body succeeded.
    pub written: u64,
    /// Writes replaced, before they ran, by a newer write of the same key.
    pub coalesced: u64,
    /// Runs of a body after a failed one.
    pub retried: u64,
    /// Writes that failed every attempt (reported to the failure handler).
    pub failed: u64,
    /// Writes accepted and not yet ended: waiting, or running.
    pub depth: u64,
    /// How long the oldest of those has been waiting or running.
    pub oldest_pending: Option<Duration>,
}

/// A write that failed every attempt, as the failure handler receives it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WriteFailure {
    /// The write-behind function: module path and name.
    pub function: String,
    /// The last attempt's error (its `Debug` form), or the panic's message.
    pub error: String,
    /// How many times the body ran.
    pub attempts: u32,
}

impl fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write-behind {} failed after {} attempt(s): {}",
            self.function, self.attempts, self.error
        )
    }
}

type Handler = Box<dyn Fn(&WriteFailure) + Send + Sync>;

static HANDLER: RwLock<Option<Handler>> = RwLock::new(None);

/// Sets what is done with a write that failed every attempt (its cached value has been
/// dropped already). By default it is logged at `error`. The handler runs on cachette's
/// worker task: keep it short, and hand slow work to a channel.
pub fn on_write_failure<F>(handler: F)
where
    F: Fn(&WriteFailure) + Send + Sync + 'static,
{
    *HANDLER.write().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(handler));
}

fn report(failure: &WriteFailure) {
    let handler = HANDLER.read().unwrap_or_else(PoisonError::into_inner);
    match handler.as_ref() {
        Some(handler) => {
            // A panicking handler must not take the key's lane down with it.
            if std::panic::catch_unwind(AssertUnwindSafe(|| handler(failure))).is_err() {
                tracing::error!(function = %failure.function, "cachette: the write failure handler panicked");
            }
        }
        None => tracing::error!(
            function = %failure.function,
            error = %failure.error,
            attempts = failure.attempts,
            "cachette: a write-behind write failed every attempt; its cached value was dropped"
        ),
    }
}

/// A write-behind function's argument is kept by its queue and cloned for each run of the body.
#[diagnostic::on_unimplemented(
    message = "#[write_behind] keeps the arguments until the body runs, later and on another task, and clones them for each retry: `{Self}` must be `Clone + Send + 'static`",
    label = "`{Self}` is not `Clone + Send + 'static`",
    note = "pass what the body needs owned, behind an `Arc` if it is shared (not an `Rc`), and derive `Clone` on your own types"
)]
pub trait BehindArg {
    /// Checks one argument, at the argument's type.
    #[inline(always)]
    fn check(&self) {}
}

#[diagnostic::do_not_recommend]
impl<T: Clone + Send + 'static> BehindArg for T {}

/// What a write-behind body returns, as the queue sees it: `()` or `Result<(), E>`.
pub trait BodyResult {
    /// `Ok`, or the error's text.
    fn into_write(self) -> Result<(), String>;
}

impl BodyResult for () {
    fn into_write(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Debug> BodyResult for Result<(), E> {
    fn into_write(self) -> Result<(), String> {
        self.map_err(|err| format!("{err:?}"))
    }
}

/// Every queue used so far, for [`flush`].
static QUEUES: Mutex<Vec<Arc<Queue>>> = Mutex::new(Vec::new());
/// How many flushes run now: while any does, writes skip their `delay`.
static FLUSHING: AtomicUsize = AtomicUsize::new(0);
/// Wakes the runners waiting out a `delay` when a flush starts.
static FLUSH_STARTED: Notify = Notify::const_new();
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

/// Runs every queued write now (skipping what is left of their `delay`), and returns when
/// every write accepted before the call has ended: written, or failed and reported to the
/// failure handler (a newer write of the same key that took the place of one of them, too).
/// It also waits for the values calls loaded before it to be stored in Redis: a miss returns
/// before its `SET` is answered. What is accepted or loaded meanwhile is not waited for, so
/// it returns under a steady stream of calls too. Call it on a graceful shutdown, after the
/// last call, so that the next process finds what this one loaded.
pub async fn flush() {
    Flush::begin().wait().await;
}

/// [`flush`], giving up at `deadline`: returns how many of the writes it waits for
/// (write-behind writes, and stores of loaded values) have not ended (0 when all have). Those
/// left keep running.
pub async fn flush_within(deadline: Duration) -> usize {
    let flush = Flush::begin();
    if tokio::time::timeout(deadline, flush.wait()).await.is_ok() {
        return 0;
    }
    flush.left()
}

/// A flush under way: what was accepted, and loaded, before it began.
struct Flush {
    /// Writes with a lower sequence number were accepted before the flush began.
    seq: u64,
    /// The mark of the fills spawned before it began.
    fills: u64,
    queues: Vec<Arc<Queue>>,
}

impl Flush {
    fn begin() -> Self {
        FLUSHING.fetch_add(1, Ordering::SeqCst);
        FLUSH_STARTED.notify_waiters();
        // Read before the queues are: a queue is listed before it takes its first write.
        let seq = NEXT_SEQ.load(Ordering::SeqCst);
        let queues = QUEUES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for queue in &queues {
            // A write takes its number and joins the outstanding ones under this lock: once
            // it is free, every write numbered below `seq` is among them.
            drop(queue.lanes());
        }
        Self {
            seq,
            fills: crate::store::fills::mark(),
            queues,
        }
    }

    async fn wait(&self) {
        for queue in &self.queues {
            let mut outstanding = queue.outstanding.subscribe();
            // The sender lives as long as the queue, which is never dropped.
            let _ = outstanding
                .wait_for(|firsts| firsts.first().map_or(true, |&first| first >= self.seq))
                .await;
        }
        crate::store::fills::settled(self.fills).await;
    }

    /// The writes it waits for that have not ended.
    fn left(&self) -> usize {
        let behind: usize = self
            .queues
            .iter()
            .map(|queue| queue.outstanding.borrow().range(..self.seq).count())
            .sum();
        behind + crate::store::fills::before(self.fills)
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        FLUSHING.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WriteBehind {
    /// A function's queue, with nothing set up yet.
    pub const fn new(spec: BehindSpec) -> Self {
        Self {
            spec,
            queue: OnceLock::new(),
        }
    }

    /// One call: waits for room in the queue, makes `value` the entry of `target` (and what a
    /// read of it returns until the write has ended), and queues `body` to run later, again on
    /// a retry. Returns once the write is accepted and the value stored; a caller that stops
    /// waiting after acceptance does not stop either.
    pub async fn submit<V, F, Fut>(&'static self, target: Target<V>, value: V, body: F)
    where
        V: Clone + Send + Sync + 'static,
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let queue = self.queue();
        let Ok(permit) = Arc::clone(&queue.room).acquire_owned().await else {
            unreachable!("a write-behind queue's semaphore is never closed");
        };
        let target = Arc::new(target);
        let held = value.clone();
        let (seq, order, displaced) = queue.accept(
            target.digest(),
            |seq| target.hold(seq, held),
            |seq| {
                Box::new(Typed {
                    target: Arc::clone(&target),
                    seq,
                    body,
                })
            },
            permit,
        );
        // On cachette's thread, awaited: the put outlives a caller that stops waiting, and
        // the runtime it called from.
        let put = worker().spawn(async move {
            order.put(seq, target.put(&value)).await;
        });
        // What the write displaced (the key's older pending value, the waiting write it
        // replaced) is dropped once the write is accepted and its put on its way, outside every
        // lock: a drop is a user's code, and a panic there must not lose this write. Each apart,
        // so that a second panicking drop does not run while the first unwinds (an abort).
        let (value_left, write_replaced) = displaced;
        quiet_drop(&queue.name, value_left);
        quiet_drop(&queue.name, write_replaced);
        let _ = put.await;
    }

    /// This function's counters.
    pub fn stats(&'static self) -> WriteBehindStats {
        self.queue().stats()
    }

    fn queue(&'static self) -> &'static Arc<Queue> {
        self.queue.get_or_init(|| {
            let queue = Arc::new(Queue {
                name: format!("{}::{}", self.spec.module, self.spec.function),
                spec: self.spec,
                room: Arc::new(Semaphore::new(self.spec.capacity.max(1))),
                lanes: Mutex::new(HashMap::new()),
                outstanding: watch::Sender::new(BTreeSet::new()),
                counters: Counters::default(),
            });
            QUEUES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(&queue));
            queue
        })
    }
}

/// One function's queue: a lane per key with writes waiting or running.
struct Queue {
    name: String,
    spec: BehindSpec,
    room: Arc<Semaphore>,
    lanes: Mutex<HashMap<u128, Lane>>,
    /// The writes accepted and not yet ended, each by the sequence number of the oldest
    /// write it stands for ([`Queued::first`]).
    outstanding: watch::Sender<BTreeSet<u64>>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    written: AtomicU64,
    coalesced: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
}

/// One key's writes. The lane exists exactly while its runner task does.
struct Lane {
    waiting: VecDeque<Queued>,
    /// When the write running now was accepted.
    running: Option<Instant>,
    order: Arc<PutOrder>,
}

/// An accepted write, waiting in its lane.
struct Queued {
    seq: u64,
    /// The sequence number of the oldest write this one stands for: its own, or that of the
    /// write it replaced (coalescing), which a flush waits for through it.
    first: u64,
    job: Box<dyn Job>,
    due: tokio::time::Instant,
    accepted: Instant,
    _room: OwnedSemaphorePermit,
}

impl Queue {
    fn lanes(&self) -> MutexGuard<'_, HashMap<u128, Lane>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts a write of the entry `digest`: under the lanes' lock, takes its sequence
    /// number, makes its value the entry's pending one (`hold`), and puts it in its key's lane
    /// (replacing a waiting one when coalescing), starting the lane's runner if it had none.
    /// So lane order, sequence order and the overlay agree. Returns the sequence number, the
    /// lane's put order, and what the write displaced (what `hold` returned, and the write it
    /// replaced), which the caller drops outside the lock.
    fn accept<H>(
        self: &Arc<Self>,
        digest: Option<u128>,
        hold: impl FnOnce(u64) -> H,
        job: impl FnOnce(u64) -> Box<dyn Job>,
        room: OwnedSemaphorePermit,
    ) -> (u64, Arc<PutOrder>, (H, Option<Queued>)) {
        let now = (tokio::time::Instant::now(), Instant::now());
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        let mut lanes = self.lanes();
        let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
        // A key that cannot be hashed has no cache entry to keep; its write gets a lane alone.
        let lane_key = digest.unwrap_or(u128::from(seq) | 1 << 127);
        let held = hold(seq);
        let mut queued = Queued {
            seq,
            first: seq,
            job: job(seq),
            due: now.0 + self.spec.delay,
            accepted: now.1,
            _room: room,
        };
        if let Some(lane) = lanes.get_mut(&lane_key) {
            match lane.waiting.back_mut() {
                Some(waiting) if self.spec.coalesce => {
                    // The newer write takes the waiting one's place and due time; the older
                    // one's permit goes back with it.
                    queued.due = waiting.due;
                    queued.accepted = waiting.accepted;
                    queued.first = waiting.first;
                    let replaced = std::mem::replace(waiting, queued);
                    self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
                    return (seq, Arc::clone(&lane.order), (held, Some(replaced)));
                }
                _ => {
                    lane.waiting.push_back(queued);
                    self.outstanding.send_modify(|firsts| {
                        firsts.insert(seq);
                    });
                }
            }
            return (seq, Arc::clone(&lane.order), (held, None));
        }
        let order = Arc::new(PutOrder::default());
        lanes.insert(
            lane_key,
            Lane {
                waiting: VecDeque::from([queued]),
                running: None,
                order: Arc::clone(&order),
            },
        );
        self.outstanding.send_modify(|firsts| {
            firsts.insert(seq);
        });
        drop(lanes);
        worker().spawn(run_lane(Arc::clone(self), lane_key, Arc::clone(&order)));
        (seq, order, (held, None))
    }

    fn stats(&self) -> WriteBehindStats {
        let c = &self.counters;
        let oldest = self
            .lanes()
            .values()
            .filter_map(|lane| lane.running.or(lane.waiting.front().map(|q| q.accepted)))
            .min();
        WriteBehindStats {
            queued: c.queued.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            depth: self.outstanding.borrow().len() as u64,
            oldest_pending: oldest.map(|at| at.elapsed()),
        }
    }
}

/// Orders the puts of one key by `seq`: a put older than one already made is skipped, and a
/// lane's runner waits until a write's put is done (or superseded) before running its body.
#[derive(Default)]
struct PutOrder {
    lock: tokio::sync::Mutex<()>,
    /// The newest `seq` put so far.
    done: watch::Sender<u64>,
}

impl PutOrder {
    async fn put(&self, seq: u64, put: impl Future<Output = ()>) {
        let _order = self.lock.lock().await;
        // Advanced however the put ends (done, panicked, dropped), so that the lane never
        // waits for a put that will not come.
        let _done = Advance(&self.done, seq);
        if *self.done.borrow() < seq {
            put.await;
        }
    }

    async fn wait(&self, seq: u64) {
        let mut done = self.done.subscribe();
        // The sender lives in `self`.
        let _ = done.wait_for(|done| *done >= seq).await;
    }
}

/// Marks put `seq` done when dropped.
struct Advance<'a>(&'a watch::Sender<u64>, u64);

impl Drop for Advance<'_> {
    fn drop(&mut self) {
        let seq = self.1;
        self.0.send_modify(|done| *done = (*done).max(seq));
    }
}

/// Runs one lane's writes, one at a time, until none is left.
async fn run_lane(queue: Arc<Queue>, lane_key: u128, order: Arc<PutOrder>) {
    loop {
        let due = {
            let mut lanes = queue.lanes();
            let Some(lane) = lanes.get_mut(&lane_key) else {
                return;
            };
            match lane.waiting.front() {
                Some(next) => next.due,
                None => {
                    lanes.remove(&lane_key);
                    return;
                }
            }
        };
        wait_until(due).await;
        let mut next = {
            let mut lanes = queue.lanes();
            let Some(lane) = lanes.get_mut(&lane_key) else {
                return;
            };
            let Some(next) = lane.waiting.pop_front() else {
                continue;
            };
            lane.running = Some(next.accepted);
            next
        };
        order.wait(next.seq).await;
        let outcome = attempts(&queue, next.job.as_mut()).await;
        let written = outcome.is_ok();
        // The end runs a user's code (a value's drop, a store's put): a panic there must not
        // take the lane down, or its later writes would never run, nor a flush return.
        if let Err(panic) = CatchUnwind(next.job.end(written)).await {
            tracing::error!(function = %queue.name, %panic, "cachette: a write-behind write's end panicked");
        }
        match outcome {
            Ok(()) => {
                queue.counters.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(failure) => {
                queue.counters.failed.fetch_add(1, Ordering::Relaxed);
                report(&failure);
            }
        }
        if let Some(lane) = queue.lanes().get_mut(&lane_key) {
            lane.running = None;
        }
        // Room for the next caller, then the set a flush waits on. (A panicking drop of the
        // body's captures still drops the rest, the permit with them.)
        let first = next.first;
        quiet_drop(&queue.name, next);
        queue.outstanding.send_modify(|firsts| {
            firsts.remove(&first);
        });
    }
}

/// The runtime the lanes run on: one thread of cachette's, started on first use, for the life
/// of the process. Not the caller's: a write accepted on a runtime that then shuts down (a
/// test's, a short-lived `block_on`) must still run, and `flush` must still see it end.
fn worker() -> &'static tokio::runtime::Handle {
    static WORKER: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    WORKER.get_or_init(|| crate::thread::runtime_thread("cachette-write-behind", || {}))
}

/// Waits out a write's `delay`, unless a flush runs or starts meanwhile.
async fn wait_until(due: tokio::time::Instant) {
    let started = FLUSH_STARTED.notified();
    tokio::pin!(started);
    started.as_mut().enable();
    if FLUSHING.load(Ordering::SeqCst) > 0 || due <= tokio::time::Instant::now() {
        return;
    }
    let _ = tokio::time::timeout_at(due, started).await;
}

/// Runs a write's body until it succeeds or has failed `retries + 1` times.
async fn attempts(queue: &Queue, job: &mut dyn Job) -> Result<(), WriteFailure> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match (CatchUnwind(job.attempt())).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
            Err(panic) => format!("the body panicked: {panic}"),
        };
        if attempt > queue.spec.retries {
            return Err(WriteFailure {
                function: queue.name.clone(),
                error,
                attempts: attempt,
            });
        }
        tracing::warn!(function = %queue.name, %error, attempt, "cachette: a write-behind write failed; retrying");
        queue.counters.retried.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

type Attempt = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A queued write, with its value type erased.
trait Job: Send {
    /// One run of the body.
    fn attempt(&mut self) -> Attempt;
    /// After the last attempt: the write's overlay value goes. Unless a newer write of the
    /// key is pending, a failed write drops the cached value, and so does a written one in a
    /// shared store, where another process may have cached the database's older value while
    /// this write was pending.
    fn end(&mut self, written: bool) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

struct Typed<V: 'static, F> {
    target: Arc<Target<V>>,
    seq: u64,
    body: F,
}

impl<V, F, Fut> Job for Typed<V, F>
where
    V: Clone + Send + Sync + 'static,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn attempt(&mut self) -> Attempt {
        Box::pin((self.body)())
    }

    fn end(&mut self, written: bool) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let newer = self.target.release(self.seq);
            if !newer && (!written || self.target.shared()) {
                let target = Arc::clone(&self.target);
                settle(async move { target.invalidate().await }).await;
            }
        })
    }
}

/// Drops `value` (a write, or a value it held), which runs a user's code: a panic there is
/// logged, not let go on.
fn quiet_drop<T>(function: &str, value: T) {
    if std::panic::catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
        tracing::error!(%function, "cachette: dropping a write-behind write or its value panicked");
    }
}

/// A future (a body's, or a write's end), with a panic turned into an error.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *future).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".to_owned());
                Poll::Ready(Err(message))
            }
        }
    }
}
