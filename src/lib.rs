//! # cachette
//!
//! Cache an async function with one attribute.
#![doc = include_str!("../README.md")]

pub use cache_macros::{cache_put, cached, invalidates};
pub use cache_runtime::{stats, Config, ConfigBuilder, ConfigError, ConfigErrorKind, Stats};

/// What generated code needs. Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use cache_runtime::{CachedFn, Codec, Format, KeyName, Spec, StoreKind, Target};
}
