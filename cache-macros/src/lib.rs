//! The attribute macros of [cachette](https://docs.rs/cachette). Use them through `cachette`;
//! their documentation lives there.

use proc_macro::TokenStream;

mod attr;
mod expand;
mod valid;
mod write;

/// Caches an async function's results. See `cachette::cached` for the documentation.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(args.into(), item.into()).into()
}

/// Drops cached entries after a write path succeeds. See `cachette::invalidates`.
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    write::expand(write::Write::Invalidate, args.into(), item.into()).into()
}

/// Stores a write path's returned value as a cached entry. See `cachette::cache_put`.
#[proc_macro_attribute]
pub fn cache_put(args: TokenStream, item: TokenStream) -> TokenStream {
    write::expand(write::Write::Put, args.into(), item.into()).into()
}
