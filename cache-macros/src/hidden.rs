//! The names of the hidden items `#[cached]` generates beside a function, in one place: the
//! write paths (`#[invalidates]`, `#[cache_put]`) call them, so producer and consumer must
//! agree. Each is the function's own name behind a prefix no other hidden item starts with,
//! so no two functions' items can clash, and each carries the function name's span, so rustc
//! points at the user's function when it reports about one.

use proc_macro2::Ident;
use quote::format_ident;

/// `__cachette_fn_{f}()`: the function's `&'static CachedFn`.
pub(crate) fn cached_fn(f: &Ident) -> Ident {
    format_ident!("__cachette_fn_{}", f, span = f.span())
}

/// `__cachette_keyof_{f}(&key args…)`: the key of one call.
pub(crate) fn key(f: &Ident) -> Ident {
    format_ident!("__cachette_keyof_{}", f, span = f.span())
}

/// `__cachette_target_{f}(&every arg…)`: the write target (entry) of one call.
pub(crate) fn target(f: &Ident) -> Ident {
    format_ident!("__cachette_target_{}", f, span = f.span())
}
