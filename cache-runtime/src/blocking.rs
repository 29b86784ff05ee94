//! Waiting without a runtime, for cached sync functions: a future polled on the calling
//! thread, which parks between wake-ups.
//!
//! Only futures that need no runtime go through here: a flight's channel and the memory
//! store's invalidations (a lock and a channel, no IO, no timers). So it is safe on any thread,
//! inside a tokio runtime or not; like any blocking call, it holds up a runtime thread it is
//! called on until the future is ready.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Wakes the thread that is blocked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on this thread, parking it while the future waits.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            // A wake-up between the poll and the park leaves the token set: park returns
            // at once. A spurious return only polls again.
            Poll::Pending => thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::block_on;

    #[test]
    fn a_future_woken_from_another_thread_completes() {
        let (tx, mut rx) = tokio::sync::watch::channel(0u32);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.send_replace(7);
        });
        let seen = block_on(async { *rx.wait_for(|v| *v == 7).await.unwrap() });
        assert_eq!(seen, 7);
        sender.join().unwrap();
    }
}
