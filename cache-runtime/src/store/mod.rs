//! Where values live. Each backend is a module here.

pub mod memory;

pub use memory::MemoryStore;
