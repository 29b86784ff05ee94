//! What a build without cachette's default features (`default-features = false`) accepts and
//! refuses: the memory store compiles; `store = "redis"`, `"tiered"` and `format = "bincode"`
//! are one error each, at the option, naming the feature to turn on. Run by CI as
//! `cargo test --no-default-features --test ui_features_off`; with the features on there is
//! nothing to check here.
#![cfg(not(any(feature = "redis", feature = "bincode")))]

#[test]
fn ui_features_off() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/features_off/*_compiles.rs");
    t.compile_fail("tests/ui/features_off/*_needs_*.rs");
}
