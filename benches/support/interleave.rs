//! Hand-timed, interleaved comparisons shared by the benchmarks.
//!
//! The machines these run on are shared and noisy: two variants measured one after the other
//! can differ by a third from the load alone. Here every variant runs one block of calls per
//! round, in an order that rotates from round to round, and ratios are taken round by round, so
//! the background load falls on every variant alike.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

/// Times `n` sequential calls of one variant.
pub(crate) type Block<'a> = Box<dyn Fn(usize) -> Duration + 'a>;

/// A variant awaited from `block_on` on `rt`, as criterion's async benches do.
pub(crate) fn block<'a, T, F, Fut>(rt: &'a Runtime, op: F) -> Block<'a>
where
    F: Fn() -> Fut + 'a,
    Fut: Future<Output = T>,
{
    Box::new(move |n| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                black_box(op().await);
            }
            start.elapsed()
        })
    })
}

/// A variant called synchronously.
#[allow(dead_code)]
pub(crate) fn block_sync<'a, T, F>(op: F) -> Block<'a>
where
    F: Fn() -> T + 'a,
{
    Box::new(move |n| {
        let start = Instant::now();
        for _ in 0..n {
            black_box(op());
        }
        start.elapsed()
    })
}

/// A variant run by `tasks` tasks spawned on `rt` (a multi-thread runtime), timed from the
/// first spawn to the last join: the block's `n` calls are split evenly between the tasks, and
/// the calls of one block get the arguments `0..n`, each once (a task takes a contiguous run of
/// them). The ns per call it yields is the inverse of the throughput.
#[allow(dead_code)]
pub(crate) fn block_tasks<'a, T, F, Fut>(rt: &'a Runtime, tasks: usize, op: F) -> Block<'a>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let op = Arc::new(op);
    Box::new(move |n| {
        rt.block_on(async {
            let start = Instant::now();
            let mut first = 0u64;
            let handles: Vec<_> = (0..tasks)
                .map(|task| {
                    let count = (n / tasks + usize::from(task < n % tasks)) as u64;
                    let from = first;
                    first += count;
                    let op = Arc::clone(&op);
                    tokio::spawn(async move {
                        for i in from..from + count {
                            black_box(op(i).await);
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("a task of the block");
            }
            start.elapsed()
        })
    })
}

/// Runs `rounds` rounds of one block of `calls` calls per variant, in a rotating order, after
/// one warm-up block each. Returns, per variant, the ns per call of each round.
pub(crate) fn interleaved(
    variants: &[(&str, Block<'_>)],
    calls: usize,
    rounds: usize,
) -> Vec<Vec<f64>> {
    for (_, run) in variants {
        run(calls);
    }
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for round in 0..rounds {
        for i in 0..variants.len() {
            let v = (round + i) % variants.len();
            let elapsed = variants[v].1(calls);
            samples[v].push(elapsed.as_nanos() as f64 / calls as f64);
        }
    }
    samples
}

/// The median of `values`.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median and the quartiles over rounds of `a[round] / b[round]`.
pub(crate) fn ratio_spread(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let mut r: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    r.sort_by(f64::total_cmp);
    let at = |q: usize| r[(r.len() - 1) * q / 4];
    (at(2), at(1), at(3))
}

/// Prints the median and quartiles of the per-round ratios `a / b`; returns the median.
pub(crate) fn ratio_line(label: &str, a: &[f64], b: &[f64]) -> f64 {
    let (r, low, high) = ratio_spread(a, b);
    println!("ratio {label:<50} {r:.3} [{low:.3}..{high:.3}]");
    r
}

/// A current-thread runtime, as in a single-threaded service.
pub(crate) fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// A multi-thread runtime with 2 workers, one per core of the machines these benches run on.
pub(crate) fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a multi-thread runtime")
}
