// Doc comments, lint attributes and `#[must_use]` stay on the function.
#![deny(missing_docs, unused_variables)]
//! A crate with docs required.

use cachette::cached;

/// Public, documented, cached.
#[cached]
#[must_use = "the price is the point"]
pub async fn price(sku: &str) -> u64 {
    sku.len() as u64
}

/// A function whose body trips lints that it allows: the allow must follow the body.
#[cached]
#[allow(clippy::needless_return, unused_variables)]
pub async fn allows(id: u64) -> u64 {
    let unused = 1;
    return id;
}

#[cached]
#[doc = "Documented by attribute."]
pub async fn doc_attribute(id: u64) -> u64 {
    id
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(price("abc").await, 3);
        assert_eq!(allows(1).await, 1);
        assert_eq!(doc_attribute(2).await, 2);
    });
}
