//! The runtime of [cachette](https://docs.rs/cachette): keys, stores, single-flight loads and
//! statistics. Generated code reaches it through `cachette::__private`; users reach the public
//! parts through `cachette` itself. `ARCHITECTURE.md` at the repository root maps the modules.

// The memory store alone leaves the parts only the Redis stores use (their flight tickets,
// key escaping) unused; the default build still checks them for dead code.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

mod assert;
mod behind;
mod blocking;
#[cfg(feature = "redis")]
mod bus;
mod cached_fn;
mod clock;
mod codec;
mod config;
mod context;
mod feature;
mod flight;
mod key;
mod load;
mod outcome;
pub mod stats;
mod store;
mod template;
mod thread;
mod write;

pub use assert::{Checked, Gate, KeyArg, ValueClone, ValueSend, ValueSerde};
pub use behind::{
    flush, flush_within, on_write_failure, BehindArg, BehindSpec, BodyResult, WriteBehind,
    WriteBehindStats, WriteFailure, DEFAULT_CAPACITY, DEFAULT_RETRIES,
};
pub use cached_fn::{settle, CachedFn, CallKey, Key, Spec, StoreKind};
pub use clock::{Clock, ManualClock};
pub use codec::{Codec, Format};
pub use config::{Config, ConfigBuilder, ConfigError, ConfigErrorKind};
pub use feature::{BincodeFeature, Features, RedisFeature};
pub use key::{digest, KeyBuilder, KeyError};
pub use outcome::{Always, Outcome};
pub use stats::Stats;
#[cfg(feature = "redis")]
pub use store::tiered::DEFAULT_L1_TTL;
pub use template::KeyName;
pub use write::{PutValue, Target};
