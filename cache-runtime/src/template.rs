//! Readable Redis keys from a key template such as `"user:{id}"`.
//!
//! `#[cached(store = "redis", key = "user:{id}")]` splits its template at
//! compile time into literal parts and parameters and generates a chain on
//! [`KeyName`]:
//!
//! ```
//! # use cache_runtime::KeyName;
//! let (id, page) = (42u64, "2");
//! let key = KeyName::new()
//!     .lit("user:")
//!     .arg(&id)
//!     .lit(":orders:")
//!     .arg(&page)
//!     .finish();
//! assert_eq!(key.unwrap(), "user:42:orders:2");
//! ```
//!
//! The store then prepends its own prefix (`{prefix}:user:42:orders:2`).
//!
//! # Rendering an argument
//!
//! Each argument is rendered through its [`serde::Serialize`] impl, straight
//! into the key (no intermediate `String` per value):
//!
//! * `str`, `String` and `char`: their UTF-8 bytes, escaped (see below);
//! * integers of every width (including `i128` and `u128`): decimal;
//! * `bool`: `true` or `false`;
//! * `f32` and `f64`: their `Display` output (`1.5`, `-0`, `NaN`, `inf`),
//!   escaped;
//! * a unit enum variant: its (serialized) name, escaped;
//! * a newtype struct: its inner value;
//! * `Some(x)`: `x`; `None`: a lone `%`, which escaping can never produce
//!   (it always writes `%` followed by two hex digits);
//! * `()` and a unit struct: nothing;
//! * bytes (`serialize_bytes`): each byte escaped as if it were text;
//! * a `Display` value given to `collect_str`: its output, escaped as it is
//!   written.
//!
//! Anything compound (sequences, tuples, maps, structs, and newtype, tuple or
//! struct enum variants) is an error: a key template names scalar values.
//! Use a plain `key = ...` digest key for compound arguments.
//!
//! # Escaping
//!
//! ASCII letters, digits, `_`, `.` and `-` are kept as they are. Every other
//! byte (`:`, `{`, `}`, `%`, `/`, space, `\n`, `\r`, the glob characters
//! `*`, `?`, `[` and `]`, and every byte of a non-ASCII character) is written
//! as `%` followed by two uppercase hex digits: `"a:b"` becomes `a%3Ab` and
//! `"é"` becomes `%C3%A9`. The empty string renders empty.
//!
//! So a rendered argument never contains a `:` or a brace, and no argument
//! value can forge the shape of another key (`id = "1:orders:9"` renders as
//! `1%3Aorders%3A9`). Escaping is reversible, so two different strings (or
//! byte strings) never render the same.
//!
//! # The separator rule
//!
//! Escaping alone does not keep two *adjacent* parameters apart: with
//! `"{a}{b}"`, `("1", "23")` and `("12", "3")` both give `123`. The macro
//! therefore rejects a template in which two parameters are not separated by
//! a literal that contains at least one character which never appears in a
//! rendered argument, that is any character other than ASCII letters,
//! digits, `_`, `.`, `-` and `%` (for example `:` or `/`). With such a
//! separator the first occurrence of it after a parameter marks where the
//! parameter ends, so the key determines every argument's rendering, and
//! `"u:{a}:{b}"` gives distinct keys for distinct arguments.

use core::fmt::{self, Write as _};

use serde::ser::{Impossible, Serialize, Serializer};

use crate::key::KeyError;

/// The error for an argument that is not a scalar.
const NOT_A_SCALAR: &str =
    "a key template value must be a string, number, bool, char, Option or unit enum variant";

/// The error for a `Display` impl that failed inside `collect_str`.
const DISPLAY_FAILED: &str = "an argument's Display impl failed";

/// What `None` renders as: a `%` not followed by two hex digits, which
/// escaping never writes.
const NONE: &str = "%";

/// Uppercase hex digits, indexed by nibble.
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A readable Redis key built from a template's literal parts and escaped argument values.
///
/// Built by a chain of [`lit`](KeyName::lit) and [`arg`](KeyName::arg)
/// calls and closed by [`finish`](KeyName::finish); see the
/// [module docs](self) for how arguments are rendered and escaped.
#[derive(Debug)]
pub struct KeyName {
    buf: String,
    error: Option<KeyError>,
}

impl KeyName {
    /// Starts an empty key (with room for 64 bytes).
    pub fn new() -> Self {
        Self {
            buf: String::with_capacity(64),
            error: None,
        }
    }

    /// Appends a literal part of the template, verbatim.
    #[must_use]
    pub fn lit(mut self, part: &'static str) -> Self {
        self.buf.push_str(part);
        self
    }

    /// Appends an argument, rendered and escaped as the
    /// [module docs](self) describe.
    ///
    /// If the argument cannot be rendered, the error is kept and returned by
    /// [`finish`](KeyName::finish); once an error is kept, later arguments
    /// are skipped, so the first error is the one reported.
    #[must_use]
    pub fn arg<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        if self.error.is_none() {
            let len = self.buf.len();
            if let Err(error) = value.serialize(Render { buf: &mut self.buf }) {
                self.buf.truncate(len);
                self.error = Some(error);
            }
        }
        self
    }

    /// Returns the key.
    ///
    /// # Errors
    ///
    /// Returns the first [`KeyError`] an argument gave: a compound value
    /// (sequence, map, struct, ...), a failing `Serialize` impl, or a failing
    /// `Display` impl used through `collect_str`.
    pub fn finish(self) -> Result<String, KeyError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.buf),
        }
    }
}

impl Default for KeyName {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether escaping keeps the ASCII byte `b` as it is.
const fn is_kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// The one definition of the characters an escaped value may hold: the kept ones and the `%`
/// of an escape. A template needs a character outside these between two parameters, so that
/// a rendered key splits back into its values in one way only. (The macro crate, which cannot
/// depend on this one, checks templates with the same set; `tests/ui` pins that check.)
pub(crate) const fn is_value_char(c: char) -> bool {
    c.is_ascii() && (is_kept(c as u8) || c == '%')
}

/// Appends `bytes` to `buf`, escaped.
fn push_escaped(buf: &mut String, bytes: &[u8]) {
    buf.reserve(bytes.len());
    for &b in bytes {
        if is_kept(b) {
            buf.push(char::from(b));
        } else {
            buf.push('%');
            buf.push(char::from(HEX[usize::from(b >> 4)]));
            buf.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// A `fmt::Write` that escapes everything written to it into the key, so
/// that `Display` output is escaped as it streams, with no buffer.
struct Escape<'a> {
    buf: &'a mut String,
}

impl fmt::Write for Escape<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.buf, s.as_bytes());
        Ok(())
    }
}

/// The serde serializer that renders one argument into the key.
struct Render<'a> {
    buf: &'a mut String,
}

impl Render<'_> {
    /// Writes `value`'s `Display` output, escaped.
    fn display<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        write!(Escape { buf: self.buf }, "{value}").map_err(|_| KeyError::new(DISPLAY_FAILED))
    }

    /// Writes an integer: only digits and `-`, which escaping keeps, so it
    /// goes in unescaped.
    fn integer<T: fmt::Display>(self, value: T) -> Result<(), KeyError> {
        write!(self.buf, "{value}").map_err(|_| KeyError::new(DISPLAY_FAILED))
    }
}

/// The error for every compound value.
fn not_a_scalar<T>() -> Result<T, KeyError> {
    Err(KeyError::new(NOT_A_SCALAR))
}

impl Serializer for Render<'_> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Impossible<(), KeyError>;
    type SerializeTuple = Impossible<(), KeyError>;
    type SerializeTupleStruct = Impossible<(), KeyError>;
    type SerializeTupleVariant = Impossible<(), KeyError>;
    type SerializeMap = Impossible<(), KeyError>;
    type SerializeStruct = Impossible<(), KeyError>;
    type SerializeStructVariant = Impossible<(), KeyError>;

    fn serialize_bool(self, v: bool) -> Result<(), KeyError> {
        self.buf.push_str(if v { "true" } else { "false" });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.integer(v)
    }

    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.integer(v)
    }

    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.integer(v)
    }

    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        self.integer(v)
    }

    fn serialize_i128(self, v: i128) -> Result<(), KeyError> {
        self.integer(v)
    }

    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.integer(v)
    }

    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.integer(v)
    }

    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.integer(v)
    }

    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.integer(v)
    }

    fn serialize_u128(self, v: u128) -> Result<(), KeyError> {
        self.integer(v)
    }

    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        self.display(&v)
    }

    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        self.display(&v)
    }

    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        push_escaped(self.buf, v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        push_escaped(self.buf, v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        push_escaped(self.buf, v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), KeyError> {
        self.buf.push_str(NONE);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), KeyError> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), KeyError> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
    ) -> Result<(), KeyError> {
        push_escaped(self.buf, variant.as_bytes());
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _variant_index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), KeyError> {
        not_a_scalar()
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, KeyError> {
        not_a_scalar()
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, KeyError> {
        not_a_scalar()
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, KeyError> {
        not_a_scalar()
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, KeyError> {
        not_a_scalar()
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, KeyError> {
        not_a_scalar()
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, KeyError> {
        not_a_scalar()
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, KeyError> {
        not_a_scalar()
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        self.display(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::{BTreeMap, HashSet};

    /// The key of the template `"{value}"`.
    fn one<T: Serialize + ?Sized>(value: &T) -> String {
        KeyName::new().arg(value).finish().expect("value renders")
    }

    #[test]
    fn literal_then_integer() {
        assert_eq!(
            KeyName::new().lit("user:").arg(&42u64).finish().unwrap(),
            "user:42"
        );
        assert_eq!(
            KeyName::default()
                .lit("user:")
                .arg(&42u64)
                .lit(":orders:")
                .arg("p/2")
                .finish()
                .unwrap(),
            "user:42:orders:p%2F2"
        );
        assert_eq!(KeyName::new().finish().unwrap(), "");
        // Literals are never escaped.
        assert_eq!(KeyName::new().lit("{a}: %").finish().unwrap(), "{a}: %");
    }

    #[test]
    fn strings_are_escaped_exactly() {
        assert_eq!(one("a:b"), "a%3Ab");
        assert_eq!(one("{x}"), "%7Bx%7D");
        assert_eq!(one("a b"), "a%20b");
        assert_eq!(one("a\nb\r"), "a%0Ab%0D");
        assert_eq!(one("100%"), "100%25");
        assert_eq!(one("é"), "%C3%A9");
        assert_eq!(one("ü"), "%C3%BC");
        assert_eq!(one("日"), "%E6%97%A5");
        assert_eq!(one("*?[]/"), "%2A%3F%5B%5D%2F");
        assert_eq!(one("\0\u{7f}"), "%00%7F");
        // Kept as they are.
        assert_eq!(one("Az09_.-"), "Az09_.-");
        assert_eq!(one(""), "");
        assert_eq!(one(&String::from("a:b")), "a%3Ab");
    }

    #[test]
    fn every_byte_is_kept_or_percent_encoded() {
        for b in 0..=u8::MAX {
            let rendered = one(&Bytes(&[b]));
            if b.is_ascii_alphanumeric() || b"_.-".contains(&b) {
                assert_eq!(rendered, char::from(b).to_string());
            } else {
                assert_eq!(rendered, format!("%{b:02X}"));
            }
            assert!(!rendered.contains(':') && !rendered.contains('{'));
        }
    }

    #[test]
    fn empty_none_and_some_all_differ() {
        let empty = one("");
        let none = one(&None::<&str>);
        let some_empty = one(&Some(""));
        let some_percent = one(&Some("%"));
        assert_eq!(empty, "");
        assert_eq!(none, "%");
        assert_eq!(some_empty, "");
        assert_eq!(some_percent, "%25");
        assert_ne!(none, empty);
        assert_ne!(none, some_percent);
        assert_ne!(some_empty, some_percent);
        assert_eq!(one(&Some(7u8)), "7");
        assert_eq!(one(&None::<u8>), "%");
        // `None` inside a template, between separators.
        assert_eq!(
            KeyName::new()
                .lit("u:")
                .arg(&None::<u32>)
                .lit(":")
                .arg(&Some(3u32))
                .finish()
                .unwrap(),
            "u:%:3"
        );
    }

    #[test]
    fn distinct_arguments_give_distinct_keys() {
        let tricky = [
            "", ":", "%", "%3A", "a:b", " ", "{x}", "\n", "ü", "a%b", "a", "3A", "%25", "::",
        ];
        let mut values: Vec<Option<&str>> = tricky.iter().copied().map(Some).collect();
        values.push(None);
        let mut seen = HashSet::new();
        for a in &values {
            for b in &values {
                let key = KeyName::new()
                    .lit("u:")
                    .arg(a)
                    .lit(":")
                    .arg(b)
                    .finish()
                    .unwrap();
                assert_eq!(key.matches(':').count(), 2, "{key}");
                assert!(seen.insert(key.clone()), "{a:?}, {b:?} collide on {key}");
            }
        }
        assert_eq!(seen.len(), values.len() * values.len());
    }

    #[test]
    fn adjacent_parameters_can_collide() {
        // Why the macro requires a separator between parameters.
        let key = |a: &str, b: &str| KeyName::new().arg(a).arg(b).finish().unwrap();
        assert_eq!(key("1", "23"), key("12", "3"));
    }

    #[test]
    fn numbers_bools_and_chars() {
        assert_eq!(one(&1.5f64), "1.5");
        assert_eq!(one(&-0.25f32), "-0.25");
        assert_eq!(one(&0.1f32), "0.1");
        assert_eq!(one(&-0.0f64), "-0");
        assert_eq!(one(&f64::NAN), "NaN");
        assert_eq!(one(&f64::NEG_INFINITY), "-inf");
        assert_eq!(one(&1e21f64), "1000000000000000000000");
        assert_eq!(one(&true), "true");
        assert_eq!(one(&false), "false");
        assert_eq!(one(&i128::MIN), "-170141183460469231731687303715884105728");
        assert_eq!(one(&u128::MAX), "340282366920938463463374607431768211455");
        assert_eq!(one(&-7i8), "-7");
        assert_eq!(one(&u8::MAX), "255");
        assert_eq!(one(&i16::MIN), "-32768");
        assert_eq!(one(&u32::MAX), "4294967295");
        assert_eq!(one(&i64::MIN), "-9223372036854775808");
        assert_eq!(one(&'x'), "x");
        assert_eq!(one(&':'), "%3A");
        assert_eq!(one(&'é'), "%C3%A9");
        assert_eq!(one(&'😀'), "%F0%9F%98%80");
    }

    #[derive(Serialize)]
    enum Color {
        Red,
        #[serde(rename = "dark:blue")]
        DarkBlue,
    }

    #[derive(Serialize)]
    struct UserId(u64);

    #[derive(Serialize)]
    struct Name(String);

    #[derive(Serialize)]
    struct Marker;

    #[test]
    fn unit_variants_newtypes_and_units() {
        assert_eq!(one(&Color::Red), "Red");
        assert_eq!(one(&Color::DarkBlue), "dark%3Ablue");
        assert_eq!(one(&UserId(42)), "42");
        assert_eq!(one(&Name("a:b".to_owned())), "a%3Ab");
        assert_eq!(one(&Some(UserId(9))), "9");
        assert_eq!(one(&()), "");
        assert_eq!(one(&Marker), "");
    }

    /// Bytes through `serialize_bytes`, without the serde_bytes crate.
    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    #[test]
    fn bytes_are_escaped_like_text() {
        assert_eq!(one(&Bytes(b"ab:c")), "ab%3Ac");
        assert_eq!(one(&Bytes(&[0xff, 0x00, b'z'])), "%FF%00z");
        assert_eq!(one(&Bytes("é".as_bytes())), one("é"));
        assert_eq!(one(&Bytes(b"")), "");
    }

    #[derive(Serialize)]
    struct Point {
        x: u32,
    }

    #[derive(Serialize)]
    enum Shape {
        Circle(u32),
        Rect(u32, u32),
        Square { side: u32 },
    }

    fn error_of<T: Serialize + ?Sized>(value: &T) -> String {
        KeyName::new()
            .arg(value)
            .finish()
            .expect_err("compound values are rejected")
            .to_string()
    }

    #[test]
    fn compound_values_are_errors() {
        assert_eq!(error_of(&vec![1u8, 2]), NOT_A_SCALAR);
        assert!(NOT_A_SCALAR.starts_with("a key template value must be a string"));
        assert_eq!(error_of(&Point { x: 1 }), NOT_A_SCALAR);
        assert_eq!(error_of(&(1u8, 2u8)), NOT_A_SCALAR);
        assert_eq!(error_of(&BTreeMap::from([(1u8, 2u8)])), NOT_A_SCALAR);
        assert_eq!(error_of(&Shape::Circle(1)), NOT_A_SCALAR);
        assert_eq!(error_of(&Shape::Rect(1, 2)), NOT_A_SCALAR);
        assert_eq!(error_of(&Shape::Square { side: 1 }), NOT_A_SCALAR);
        assert_eq!(error_of(&Some(vec![1u8])), NOT_A_SCALAR);
        // An empty Vec is still a sequence.
        assert_eq!(error_of(&Vec::<u8>::new()), NOT_A_SCALAR);
    }

    #[test]
    fn the_first_error_is_kept() {
        let result = KeyName::new()
            .lit("u:")
            .arg(&vec![1u8])
            .lit(":")
            .arg(&7u32)
            .arg(&Point { x: 2 })
            .arg(&Failing)
            .finish();
        assert_eq!(result.unwrap_err().to_string(), NOT_A_SCALAR);

        let result = KeyName::new()
            .arg(&Failing)
            .arg(&vec![1u8])
            .arg("fine")
            .finish();
        assert_eq!(
            result.unwrap_err().to_string(),
            "an argument's Serialize impl failed"
        );

        let result = KeyName::new()
            .arg(&1u8)
            .arg(&Point { x: 2 })
            .lit(":")
            .arg("fine")
            .finish();
        assert!(result.is_err());
    }

    /// A type whose Serialize impl fails.
    struct Failing;

    impl Serialize for Failing {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("boom"))
        }
    }

    /// Serializes through `collect_str` with the `Display` of its field.
    struct Shown<T>(T);

    impl<T: fmt::Display> Serialize for Shown<T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&self.0)
        }
    }

    /// A `Display` written in several pieces, with characters to escape.
    struct Pieces;

    impl fmt::Display for Pieces {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("ns:")?;
            write!(f, "{{{}}}", 5)?;
            f.write_str(" é")
        }
    }

    #[test]
    fn collect_str_is_escaped() {
        assert_eq!(one(&Shown("a:b")), "a%3Ab");
        assert_eq!(one(&Shown(Pieces)), "ns%3A%7B5%7D%20%C3%A9");
        assert_eq!(one(&Shown(42u64)), "42");
        assert_eq!(one(&Shown("")), "");
        assert_eq!(
            KeyName::new()
                .lit("k:")
                .arg(&Shown("x:y"))
                .lit(":")
                .arg(&1u8)
                .finish()
                .unwrap(),
            "k:x%3Ay:1"
        );
    }

    #[test]
    fn a_failing_display_impl_is_an_error() {
        struct BadDisplay;
        impl fmt::Display for BadDisplay {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                Err(fmt::Error)
            }
        }
        assert_eq!(error_of(&Shown(BadDisplay)), DISPLAY_FAILED);
    }
}
