// `#[must_use]` stays on the cached fn: dropping its awaited output is an error here.
#![deny(unused_must_use)]

use cachette::cached;

#[cached]
#[must_use = "the price is the point"]
async fn price(sku: &str) -> u64 {
    sku.len() as u64
}

async fn caller() {
    price("abc").await;
}

fn main() {
    drop(caller());
}
