//! Runtimes of cachette's own: a current-thread tokio runtime on a named thread, for work that
//! must outlive the runtime of whoever started it (Redis writes, write-behind bodies).

use tokio::runtime::Handle;

/// Starts a current-thread runtime (IO and timers enabled) on a thread named `name`, first
/// running `on_start` there, and keeps it for the life of the process. Without a thread or a
/// runtime of its own, the caller's runtime.
///
/// # Panics
///
/// When neither can be had: no thread, and no runtime to fall back on.
pub(crate) fn runtime_thread(name: &str, on_start: fn()) -> Handle {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            on_start();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    let _ = tx.send(Some(runtime.handle().clone()));
                    runtime.block_on(std::future::pending::<()>());
                }
                Err(err) => {
                    tracing::error!(%err, "cachette: cannot start a runtime of its own");
                    let _ = tx.send(None);
                }
            }
        });
    match spawned.ok().and_then(|_| rx.recv().ok()).flatten() {
        Some(handle) => handle,
        None => Handle::current(),
    }
}
