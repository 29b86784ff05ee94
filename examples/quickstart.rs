//! A slow loader behind `#[cached]`: run with `cargo run --example quickstart`. Needs nothing installed.

use std::time::{Duration, Instant};

use cachette::cached;

#[derive(Debug, Clone)]
struct Product {
    sku: String,
    cents: u64,
}

#[derive(Debug)]
struct NotFound;

/// Looks a product up in a "database" that takes 200 ms to answer.
#[cached(ttl = "5m")]
async fn product(sku: &str) -> Result<Product, NotFound> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    if sku.is_empty() {
        return Err(NotFound);
    }
    Ok(Product {
        sku: sku.to_owned(),
        cents: 100 * sku.len() as u64,
    })
}

async fn timed(sku: &str) {
    let before = product_stats();
    let started = Instant::now();
    let result = product(sku).await;
    let took = started.elapsed();
    let after = product_stats();
    let how = if after.hits > before.hits {
        "hit "
    } else {
        "miss"
    };
    let shown = match result {
        Ok(p) => format!("{} at {} cents", p.sku, p.cents),
        Err(NotFound) => "not found".to_owned(),
    };
    println!("product({sku:?}) -> {how} in {took:>10.2?}: {shown}");
}

#[tokio::main]
async fn main() {
    println!("-- the first call runs the body, the next ones are served from memory");
    timed("tea").await;
    timed("tea").await;
    timed("tea").await;
    timed("coffee").await;

    println!("-- errors are never cached: each call runs the body");
    timed("").await;
    timed("").await;

    println!("-- ten concurrent calls on a cold key run the body once");
    let started = Instant::now();
    let calls: Vec<_> = (0..10).map(|_| tokio::spawn(product("cocoa"))).collect();
    for call in calls {
        call.await
            .expect("the call does not panic")
            .expect("cocoa exists");
    }
    println!(
        "10 calls in {:.2?}, loads so far: {}",
        started.elapsed(),
        product_stats().loads
    );

    println!("-- product_invalidate(\"tea\") drops that entry: the next call loads again");
    product_invalidate("tea").await;
    timed("tea").await;
    timed("tea").await;

    println!("-- product_uncached bypasses the cache altogether");
    let started = Instant::now();
    let fresh = product_uncached("tea").await;
    let cents = fresh.map(|p| p.cents).unwrap_or_default();
    println!(
        "product_uncached(\"tea\") in {:.2?}: {cents} cents",
        started.elapsed()
    );

    let stats = product_stats();
    println!(
        "stats: {} hits, {} misses, {} loads, {} load errors, {} entries (hit ratio {:.0}%)",
        stats.hits,
        stats.misses,
        stats.loads,
        stats.load_errors,
        stats.entries,
        stats.hit_ratio() * 100.0
    );
}
