//! What the types a user gives `#[cached]` must implement, checked once each, at the user's
//! own type, with a message saying what to add.
//!
//! Each requirement is a marker trait whose `on_unimplemented` names the fix; its blanket impl
//! is `do_not_recommend`, so rustc reports the marker itself rather than the bound behind it
//! (and no dependency's trait path). A key argument is added through [`KeyArg`], the one bound
//! its use needs. Generated code names a checked value type as
//! `Checked<T, { <T as Marker>::OK }>`: that is `T` when `T` has the marker. When it does not,
//! the constant fails to evaluate, rustc reports the missing marker at `T`, and every use of
//! the checked type (the static, each `CachedFn` method, each store's bounds) is an error
//! already reported, so none of them adds a second.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::KeyBuilder;
use crate::template::KeyName;

/// `T`, once the constant `OK` (a sum of the markers' `OK`s) evaluates.
pub type Checked<T, const OK: usize> = <[(); OK] as Gate<T>>::Out;

/// Passes `T` through an array type, so that a constant that fails to evaluate makes the
/// whole type an error rustc has already reported.
pub trait Gate<T: ?Sized> {
    /// `T`.
    type Out: ?Sized;
}

impl<T: ?Sized, const N: usize> Gate<T> for [(); N] {
    type Out = T;
}

/// A cached value is handed out as a clone.
#[diagnostic::on_unimplemented(
    message = "#[cached] hands every caller a clone of the stored value: `{Self}` must implement `Clone`",
    label = "`{Self}` is not `Clone`",
    note = "add `#[derive(Clone)]` to the type, or share it as `Arc<{Self}>`"
)]
pub trait ValueClone {
    /// Evaluates only where `Self` has the marker.
    const OK: usize = 1;
}

#[diagnostic::do_not_recommend]
impl<T: Clone> ValueClone for T {}

/// A cached value is shared between threads and outlives the call.
#[diagnostic::on_unimplemented(
    message = "#[cached] shares the stored value between threads: `{Self}` must be `Send` and `Sync`",
    label = "`{Self}` is not `Send + Sync`",
    note = "make it `Send + Sync`: `Arc` for `Rc`, `Mutex` or an atomic for `Cell` and `RefCell`"
)]
pub trait ValueSend {
    /// Evaluates only where `Self` has the marker.
    const OK: usize = 1;
}

#[diagnostic::do_not_recommend]
impl<T: Send + Sync + 'static> ValueSend for T {}

/// A value kept in Redis is kept as bytes.
#[diagnostic::on_unimplemented(
    message = "a shared store keeps the value as bytes: `{Self}` must implement `Serialize` and `Deserialize`",
    label = "`{Self}` is not `Serialize + Deserialize`",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to the type"
)]
pub trait ValueSerde {
    /// Evaluates only where `Self` has the marker.
    const OK: usize = 1;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> ValueSerde for T {}

/// A key argument is serialized into the key. Generated code adds each argument through this
/// trait, so that a missing `Serialize` is this one error at the argument's type.
#[diagnostic::on_unimplemented(
    message = "#[cached] builds the cache key from this argument: `{Self}` must implement `Serialize`",
    label = "`{Self}` is not `Serialize`",
    note = "add `#[derive(serde::Serialize)]` to the type, or leave the argument out of the key with `skip(…)`"
)]
pub trait KeyArg {
    /// [`KeyBuilder::arg`].
    fn key_arg(&self, key: &mut KeyBuilder);
    /// [`KeyName::arg`].
    #[must_use]
    fn name_arg(&self, name: KeyName) -> KeyName;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + ?Sized> KeyArg for T {
    #[inline]
    fn key_arg(&self, key: &mut KeyBuilder) {
        key.arg(self);
    }

    #[inline]
    fn name_arg(&self, name: KeyName) -> KeyName {
        name.arg(self)
    }
}
