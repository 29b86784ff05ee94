use cachette::{cached, invalidates};

#[cached(ttl = "1m", capacity = 100)]
async fn price(sku: &str) -> Result<u64, String> {
    Ok(sku.len() as u64)
}

#[invalidates(price(sku))]
async fn reprice(sku: &str) -> Result<(), String> {
    let _ = sku;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(price("tea").await, Ok(3));
    assert_eq!(price("tea").await, Ok(3));
    assert_eq!(price_stats().hits, 1);
    reprice("tea").await.unwrap();
    assert_eq!(price("tea").await, Ok(3));
    assert_eq!(price_stats().loads, 2);
}
