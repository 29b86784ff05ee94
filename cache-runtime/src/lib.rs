//! The runtime of [cachette](https://docs.rs/cachette): keys, stores, single-flight loads and
//! statistics. Generated code reaches it through `cachette::__private`; users reach the public
//! parts through `cachette` itself.

mod bus;
pub mod cached_fn;
pub mod clock;
pub mod codec;
pub mod config;
pub mod key;
pub mod outcome;
pub mod stats;
pub mod store;
pub mod template;

pub use cached_fn::{assert_value, settle, CachedFn, CallKey, Key, Spec, StoreKind, Target};
pub use clock::{Clock, ManualClock};
pub use codec::{Codec, Format};
pub use config::{Config, ConfigBuilder, ConfigError, ConfigErrorKind};
pub use key::{digest, KeyBuilder, KeyError};
pub use outcome::{Always, Outcome};
pub use stats::Stats;
pub use store::{MemoryStore, Redis};
pub use template::KeyName;
