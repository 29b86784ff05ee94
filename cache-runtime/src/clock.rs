//! Time as the stores see it: milliseconds on a monotonic clock, or a clock a test moves by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A monotonic millisecond clock.
///
/// [`Clock::system`] reads the machine's monotonic clock; [`Clock::manual`] returns a clock
/// that only moves when [`ManualClock::advance`] is called, so TTL tests need not sleep.
#[derive(Clone, Debug, Default)]
pub struct Clock(Source);

#[derive(Clone, Debug, Default)]
enum Source {
    #[default]
    System,
    Manual(Arc<AtomicU64>),
}

/// The hand of a [`Clock::manual`] clock.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl Clock {
    /// The machine's monotonic clock.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock standing at zero that moves only through the returned [`ManualClock`].
    pub fn manual() -> (Self, ManualClock) {
        let hand = Arc::new(AtomicU64::new(0));
        (Self(Source::Manual(hand.clone())), ManualClock(hand))
    }

    /// Milliseconds since this process first read the clock.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Source::System => {
                static EPOCH: OnceLock<Instant> = OnceLock::new();
                let epoch = *EPOCH.get_or_init(Instant::now);
                let elapsed = epoch.elapsed();
                elapsed.as_secs() * 1000 + u64::from(elapsed.subsec_millis())
            }
            Source::Manual(hand) => hand.load(Ordering::Acquire),
        }
    }

    /// The deadline `ttl` from now, or `u64::MAX` (never) without a ttl.
    #[inline]
    pub(crate) fn deadline(&self, ttl: Option<Duration>) -> u64 {
        match ttl {
            None => u64::MAX,
            Some(ttl) => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                self.now_ms().saturating_add(ms.max(1))
            }
        }
    }
}

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(ms, Ordering::AcqRel);
    }
}
