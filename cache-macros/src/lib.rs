//! The attribute macros of [cachette](https://docs.rs/cachette). Use them through `cachette`;
//! their documentation lives there.
//!
//! One concern per module; none holds runtime logic (generated code calls the runtime):
//!
//! - `attr`: the grammar of `#[cached(...)]`, into `CachedArgs`.
//! - `ast`: the model of the function (parameters, return classification, what is stored).
//! - `check`: the cross-checks of function and options; errors on the user's tokens.
//! - `template`: the grammar of `key = "…"`.
//! - `expand`: `#[cached]`'s items, one generator each.
//! - `impls`: `#[cached_impl]`, which expands the `#[cached]` functions of an `impl` block.
//! - `hidden`: the names of the hidden items `#[cached]` writes and the write paths call.
//! - `write`: `#[invalidates]` and `#[cache_put]`.
//! - `behind`: `#[write_behind]`, whose target is written as `write`'s.
//! - `ctxt`: the error collector, so that one compile reports every mistake.

use proc_macro::TokenStream;

mod ast;
mod attr;
mod behind;
mod check;
mod ctxt;
mod expand;
mod hidden;
mod impls;
mod template;
mod write;

/// Caches an async function's results. See `cachette::cached` for the documentation.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(args.into(), item.into()).into()
}

/// Lets `#[cached]` work on every function of an `impl` block: associated functions without
/// `self`, and trait impls. See `cachette::cached_impl`.
#[proc_macro_attribute]
pub fn cached_impl(args: TokenStream, item: TokenStream) -> TokenStream {
    impls::expand(args.into(), item.into()).into()
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

/// Stores a value in the cache now and runs the body later. See `cachette::write_behind`.
#[proc_macro_attribute]
pub fn write_behind(args: TokenStream, item: TokenStream) -> TokenStream {
    behind::expand(args.into(), item.into()).into()
}
