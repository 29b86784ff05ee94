//! The attribute macros of [cachette](https://docs.rs/cachette). Use them through `cachette`;
//! their documentation lives there.
//!
//! Map: `attr` reads `#[cached(...)]`'s options, `ast` models the function, `check` holds the
//! cross-checks, `template` reads `key = "…"`, `expand` generates `#[cached]`'s items, whose
//! hidden names live in `hidden`, and `write` expands `#[invalidates]` and `#[cache_put]`.
//! Errors are collected in `ctxt`, so one compile reports them all.

use proc_macro::TokenStream;

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod hidden;
mod template;
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
