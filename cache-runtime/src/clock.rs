//! Time as the stores see it: milliseconds on a monotonic clock, or a clock a test moves by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

    /// Milliseconds on a monotonic clock (since boot on Linux, since this process first read
    /// it elsewhere).
    #[inline]
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Source::System => system_ms(),
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

/// The monotonic clock at millisecond grain. On Linux, `CLOCK_MONOTONIC_COARSE`: it reads the
/// time the kernel last ticked (resolution 1 to 4 ms) without touching the hardware clock, in a
/// few nanoseconds instead of the tens `Instant::now` takes on some virtual machines. A TTL
/// check on every cache hit is what it is for.
#[cfg(target_os = "linux")]
#[inline]
fn system_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every
    // Linux since 2.6.32 and this call cannot fail with a valid clock id and pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    (now.tv_sec as u64) * 1000 + (now.tv_nsec as u64) / 1_000_000
}

#[cfg(not(target_os = "linux"))]
#[inline]
fn system_ms() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let elapsed = epoch.elapsed();
    elapsed.as_secs() * 1000 + u64::from(elapsed.subsec_millis())
}
