// Two mistakes in the value type, two errors: each at the type, each saying what to add.
use std::cell::Cell;

use cachette::cached;

struct Counter(Cell<u64>);

#[cached]
async fn counter(id: u64) -> Counter {
    Counter(Cell::new(id))
}

fn main() {}
