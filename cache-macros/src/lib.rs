//! The attribute macros of [cachette](https://docs.rs/cachette). Use them through `cachette`;
//! their documentation lives there.

use proc_macro::TokenStream;

mod attr;
mod expand;
mod valid;

/// Caches an async function's results. See `cachette::cached` for the documentation.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(args.into(), item.into()).into()
}
