//! Where values live. Each backend is a module here.

pub mod memory;
pub(crate) mod pending;
pub mod redis;

pub use self::memory::MemoryStore;
pub use self::redis::Redis;
