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

/// `__cachette_targetof_{f}`: the trait through which a write path reaches a free function's
/// target from the function itself, `f.__cachette_target_{f}(…)`, so that a misspelled `f`
/// fails as rustc's own "cannot find value `f`" and nothing else (a method on a value that
/// does not exist is never looked up).
pub(crate) fn target_trait(f: &Ident) -> Ident {
    format_ident!("__cachette_targetof_{}", f, span = f.span())
}
