// `missing_docs` fires on the user's undocumented `pub` fn, once, and never on the generated
// companions (they carry docs or `#[doc(hidden)]`).
#![deny(missing_docs)]
//! A crate with docs required.

use cachette::cached;

#[cached]
pub async fn price(sku: &str) -> u64 {
    sku.len() as u64
}

fn main() {
    drop(price("abc"));
}
