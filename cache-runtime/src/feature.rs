//! The Cargo features an attribute option needs, checked where the user wrote the option.
//!
//! The macro cannot see which features of this crate are on, so for `store = "redis"` (or
//! `"tiered"`) and `format = "bincode"` it names a marker trait here, at the option's own
//! tokens, the way `assert` checks value types: `<Features as RedisFeature>::OK` joins the
//! value's checks. The impl exists only when the feature is on; without it, rustc reports the
//! marker's message once, at the option, and every use of the checked type is an error
//! already reported.

/// The type the feature markers are implemented for.
pub struct Features;

/// `store = "redis"` and `store = "tiered"` need the `redis` feature.
#[diagnostic::on_unimplemented(
    message = "this `store` needs cachette's `redis` feature, which is off",
    label = "needs the `redis` feature",
    note = "turn it on in Cargo.toml: `cachette = {{ version = \"0.1\", features = [\"redis\"] }}` (it is a default feature: `default-features = false` turns it off)"
)]
pub trait RedisFeature {
    /// Evaluates only where the feature is on.
    const OK: usize = 1;
}

#[cfg(feature = "redis")]
impl RedisFeature for Features {}

/// `format = "bincode"` needs the `bincode` feature.
#[diagnostic::on_unimplemented(
    message = "`format = \"bincode\"` needs cachette's `bincode` feature, which is off",
    label = "needs the `bincode` feature",
    note = "turn it on in Cargo.toml: `cachette = {{ version = \"0.1\", features = [\"bincode\"] }}` (it is a default feature: `default-features = false` turns it off), or use `format = \"json\"`"
)]
pub trait BincodeFeature {
    /// Evaluates only where the feature is on.
    const OK: usize = 1;
}

#[cfg(feature = "bincode")]
impl BincodeFeature for Features {}
