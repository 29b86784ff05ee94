//! How values become bytes in a shared store, and back.
//!
//! - `json`: plain JSON text, nothing added, so a service in any language reads it with its own
//!   Redis client.
//! - `bincode`: a three-byte header — [`BINCODE_MAGIC`], the format id, the layout version —
//!   then bincode 2's standard encoding of the value's serde form.
//!
//! A value is stored only if it reads back as itself. JSON has no NaN or infinity — serde_json
//! writes them as `null`, which reads back as `None` or not at all — so a value holding a
//! non-finite `f32`/`f64` anywhere is not encodable in JSON (it is computed, never cached).
//! bincode keeps every float bit for bit.
//!
//! Decoding never fails a call: bytes written by the other codec, by an older shape of the type,
//! or corrupted, decode to `None` — a miss, which the fresh value then overwrites.

use serde::de::DeserializeOwned;
use serde::{ser, Serialize};
use std::fmt;

/// First byte of every bincode value: no JSON text starts with it (it is not valid UTF-8 there).
pub(crate) const BINCODE_MAGIC: u8 = 0xCA;
/// Second byte: the format id of bincode.
pub(crate) const BINCODE_FORMAT_ID: u8 = 0x02;
/// Third byte: the layout version, bumped if the encoding's configuration ever changes.
pub(crate) const BINCODE_LAYOUT: u8 = 0x01;

#[cfg_attr(not(feature = "bincode"), allow(dead_code))]
const HEADER: [u8; 3] = [BINCODE_MAGIC, BINCODE_FORMAT_ID, BINCODE_LAYOUT];

/// The serialization format of a store that holds bytes (`format = "…"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Plain JSON text (the default).
    Json,
    /// bincode 2 behind a short header.
    Bincode,
}

impl Format {
    /// The name used in `format = "…"`.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Bincode => "bincode",
        }
    }
}

/// Encodes and decodes one value type in one [`Format`]; `const`-built so it can sit in a static.
pub struct Codec<V> {
    format: Format,
    encode: fn(&V, &mut Vec<u8>) -> bool,
    decode: fn(&[u8]) -> Option<V>,
}

impl<V> Clone for Codec<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Codec<V> {}

impl<V: Serialize + DeserializeOwned> Codec<V> {
    /// The codec of `format`.
    pub const fn new(format: Format) -> Self {
        match format {
            Format::Json => Self {
                format,
                encode: json_encode::<V>,
                decode: json_decode::<V>,
            },
            Format::Bincode => Self {
                format,
                encode: bincode_encode::<V>,
                decode: bincode_decode::<V>,
            },
        }
    }
}

impl<V> Codec<V> {
    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Appends the bytes of `value` to `out`; `false` if the value cannot be encoded (say, a
    /// map with non-string keys in JSON), with `out` left as it was.
    pub fn encode(&self, value: &V, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let ok = (self.encode)(value, out);
        if !ok {
            out.truncate(start);
        }
        ok
    }

    /// The value in `bytes`, or `None` if they do not hold one of this type in this format.
    pub fn decode(&self, bytes: &[u8]) -> Option<V> {
        (self.decode)(bytes)
    }
}

fn json_encode<V: Serialize>(value: &V, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        return false;
    }
    // A NaN or an infinity would read back as another value: refuse it. Each one leaves a
    // `null` in the text, so a text without `null` needs no second look.
    !out[start..].windows(4).any(|w| w == b"null") || value.serialize(FiniteFloats).is_ok()
}

/// A serializer that writes nothing and fails at the first non-finite float: it walks the value
/// in the same serde form serde_json saw, every compound returning itself to walk its elements.
#[derive(Clone, Copy)]
struct FiniteFloats;

type Walk = Result<(), fmt::Error>;

fn finite(is_finite: bool) -> Walk {
    if is_finite {
        Ok(())
    } else {
        Err(fmt::Error)
    }
}

/// Methods of leaves that hold no float: accepted.
macro_rules! accept {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Walk {
            Ok(())
        })*
    };
}

/// Methods that open a compound: the walker itself walks its elements.
macro_rules! open {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self, fmt::Error> {
            Ok(self)
        })*
    };
}

impl ser::Serializer for FiniteFloats {
    type Ok = ();
    type Error = fmt::Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_f32(self, v: f32) -> Walk {
        finite(v.is_finite())
    }

    fn serialize_f64(self, v: f64) -> Walk {
        finite(v.is_finite())
    }

    accept! {
        serialize_bool(bool); serialize_char(char); serialize_str(&str); serialize_bytes(&[u8]);
        serialize_i8(i8); serialize_i16(i16); serialize_i32(i32); serialize_i64(i64);
        serialize_i128(i128); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_u128(u128); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn collect_str<T: ?Sized + fmt::Display>(self, _: &T) -> Walk {
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Walk {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Walk {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Walk {
        value.serialize(self)
    }

    open! {
        serialize_seq(Option<usize>); serialize_tuple(usize);
        serialize_tuple_struct(&'static str, usize);
        serialize_tuple_variant(&'static str, u32, &'static str, usize);
        serialize_map(Option<usize>); serialize_struct(&'static str, usize);
        serialize_struct_variant(&'static str, u32, &'static str, usize);
    }
}

/// Compounds: each element (after its name, if any) is walked in turn.
macro_rules! walk_elements {
    ($($compound:ident::$method:ident($($arg:ty),*);)*) => {$(
        impl ser::$compound for FiniteFloats {
            type Ok = ();
            type Error = fmt::Error;

            fn $method<T: ?Sized + Serialize>(&mut self, $(_: $arg,)* value: &T) -> Walk {
                value.serialize(*self)
            }

            fn end(self) -> Walk {
                Ok(())
            }
        }
    )*};
}

walk_elements! {
    SerializeSeq::serialize_element();
    SerializeTuple::serialize_element();
    SerializeTupleStruct::serialize_field();
    SerializeTupleVariant::serialize_field();
    SerializeStruct::serialize_field(&'static str);
    SerializeStructVariant::serialize_field(&'static str);
}

impl ser::SerializeMap for FiniteFloats {
    type Ok = ();
    type Error = fmt::Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Walk {
        key.serialize(*self)
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Walk {
        value.serialize(*self)
    }

    fn end(self) -> Walk {
        Ok(())
    }
}

fn json_decode<V: DeserializeOwned>(bytes: &[u8]) -> Option<V> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(feature = "bincode")]
fn bincode_encode<V: Serialize>(value: &V, out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(&HEADER);
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard()).is_ok()
}

#[cfg(feature = "bincode")]
fn bincode_decode<V: DeserializeOwned>(bytes: &[u8]) -> Option<V> {
    let body = bytes.strip_prefix(&HEADER)?;
    let (value, read) =
        bincode::serde::decode_from_slice(body, bincode::config::standard()).ok()?;
    // Trailing bytes mean another shape wrote this: a miss, not a guess.
    (read == body.len()).then_some(value)
}

// Without the `bincode` feature, `format = "bincode"` is a compile error at the option (see
// `feature::BincodeFeature`), so no codec of generated code ever calls these.
#[cfg(not(feature = "bincode"))]
fn bincode_encode<V: Serialize>(_: &V, _: &mut Vec<u8>) -> bool {
    false
}

#[cfg(not(feature = "bincode"))]
fn bincode_decode<V: DeserializeOwned>(_: &[u8]) -> Option<V> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::{BTreeMap, HashMap};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Role {
        Admin,
        Member { since: u32 },
        Guest(String),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u128,
        name: String,
        roles: Vec<Role>,
        manager: Option<Box<User>>,
        tags: BTreeMap<String, i64>,
        scores: HashMap<u32, f64>,
    }

    fn user() -> User {
        User {
            id: u128::MAX - 7,
            name: "Zoë 🦀 \"quoted\"\n".into(),
            roles: vec![
                Role::Admin,
                Role::Member { since: 2020 },
                Role::Guest("x".into()),
            ],
            manager: Some(Box::new(User {
                id: 1,
                name: String::new(),
                roles: vec![],
                manager: None,
                tags: BTreeMap::new(),
                scores: HashMap::new(),
            })),
            tags: [("a".to_string(), -1), ("b".to_string(), i64::MIN)]
                .into_iter()
                .collect(),
            scores: [(1, 0.5), (2, -3.25)].into_iter().collect(),
        }
    }

    fn round_trip(format: Format) -> Vec<u8> {
        let codec = Codec::<User>::new(format);
        let mut bytes = Vec::new();
        assert!(codec.encode(&user(), &mut bytes));
        assert_eq!(codec.decode(&bytes), Some(user()));
        bytes
    }

    #[test]
    fn json_is_plain_json() {
        let bytes = round_trip(Format::Json);
        let text: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(text["name"], "Zoë 🦀 \"quoted\"\n");
        assert_eq!(text["roles"][0], "Admin");
    }

    #[test]
    fn bincode_carries_its_header() {
        let bytes = round_trip(Format::Bincode);
        assert_eq!(&bytes[..3], &HEADER);
    }

    #[test]
    fn the_other_codec_and_garbage_decode_to_nothing() {
        let json = round_trip(Format::Json);
        let bincode = round_trip(Format::Bincode);
        assert_eq!(Codec::<User>::new(Format::Bincode).decode(&json), None);
        assert_eq!(Codec::<User>::new(Format::Json).decode(&bincode), None);
        for garbage in [
            &b""[..],
            b"\xff\xfe",
            b"{\"id\": 1",
            &HEADER,
            b"\xCA\x02\x01\xff\xff",
        ] {
            assert_eq!(Codec::<User>::new(Format::Json).decode(garbage), None);
            assert_eq!(Codec::<User>::new(Format::Bincode).decode(garbage), None);
        }
        let mut truncated = bincode.clone();
        truncated.pop();
        assert_eq!(Codec::<User>::new(Format::Bincode).decode(&truncated), None);
        let mut longer = bincode;
        longer.push(0);
        assert_eq!(Codec::<User>::new(Format::Bincode).decode(&longer), None);
    }

    #[test]
    fn an_older_shape_decodes_to_nothing() {
        #[derive(Serialize)]
        struct Old {
            id: u32,
        }
        let mut bytes = Vec::new();
        for format in [Format::Json, Format::Bincode] {
            bytes.clear();
            assert!(Codec::<Old>::new_for_test(format).encode(&Old { id: 3 }, &mut bytes));
            assert_eq!(Codec::<User>::new(format).decode(&bytes), None);
        }
    }

    #[test]
    fn an_unencodable_value_leaves_the_buffer_alone() {
        let mut map = HashMap::new();
        map.insert((1, 2), 3);
        let mut out = b"kept".to_vec();
        assert!(!Codec::<HashMap<(u8, u8), u8>>::new(Format::Json).encode(&map, &mut out));
        assert_eq!(out, b"kept");
    }

    /// JSON refuses `value`, leaving the buffer as it was.
    fn json_refuses<V: Serialize + DeserializeOwned>(value: V) {
        let mut out = b"kept".to_vec();
        assert!(!Codec::<V>::new(Format::Json).encode(&value, &mut out));
        assert_eq!(out, b"kept");
    }

    #[test]
    fn json_refuses_an_option_holding_nan() {
        json_refuses(Some(f64::NAN));
    }

    #[test]
    fn json_refuses_an_infinity() {
        json_refuses(f64::INFINITY);
    }

    #[test]
    fn json_refuses_a_negative_f32_infinity() {
        json_refuses((1u8, f32::NEG_INFINITY));
    }

    #[test]
    fn json_refuses_nan_in_a_vec_in_a_struct() {
        #[derive(Serialize, Deserialize)]
        struct Series {
            name: String,
            points: Vec<f64>,
        }
        json_refuses(Series {
            name: "s".into(),
            points: vec![1.0, f64::NAN, 2.0],
        });
    }

    #[test]
    fn json_refuses_nan_as_a_map_value() {
        json_refuses(BTreeMap::from([
            ("a".to_string(), 1.0),
            ("b".to_string(), f64::NAN),
        ]));
    }

    #[test]
    fn json_refuses_an_enum_variant_holding_an_infinity() {
        #[derive(Serialize, Deserialize)]
        enum Reading {
            Missing,
            Celsius { value: f64 },
        }
        json_refuses(vec![
            Reading::Missing,
            Reading::Celsius {
                value: f64::INFINITY,
            },
        ]);
    }

    #[test]
    fn json_keeps_nulls_beside_finite_floats() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Sparse {
            missing: Option<f64>,
            unit: (),
            json: serde_json::Value,
            text: String,
            present: Option<f64>,
        }
        let value = Sparse {
            missing: None,
            unit: (),
            json: serde_json::Value::Null,
            text: "null".into(),
            present: Some(-1.5),
        };
        let codec = Codec::<Sparse>::new(Format::Json);
        let mut bytes = Vec::new();
        assert!(codec.encode(&value, &mut bytes));
        assert!(bytes.windows(4).any(|w| w == b"null"));
        assert_eq!(codec.decode(&bytes), Some(value));
    }

    #[test]
    fn json_keeps_finite_extremes() {
        let extremes = vec![f64::MAX, f64::MIN, f64::MIN_POSITIVE, -0.0, 5e-324];
        let codec = Codec::<(Vec<f64>, Option<f32>)>::new(Format::Json);
        let mut bytes = Vec::new();
        assert!(codec.encode(&(extremes.clone(), None), &mut bytes));
        let (back, none) = codec.decode(&bytes).unwrap();
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&extremes));
        assert_eq!(none, None);
    }

    #[test]
    fn bincode_keeps_nan_and_infinities() {
        let codec = Codec::<(Option<f64>, Vec<f64>, f32)>::new(Format::Bincode);
        let mut bytes = Vec::new();
        let value = (
            Some(f64::NAN),
            vec![f64::INFINITY, f64::NEG_INFINITY],
            f32::NAN,
        );
        assert!(codec.encode(&value, &mut bytes));
        let (nan, infinities, nan32) = codec.decode(&bytes).unwrap();
        assert!(nan.unwrap().is_nan());
        assert_eq!(infinities, [f64::INFINITY, f64::NEG_INFINITY]);
        assert!(nan32.is_nan());
    }

    impl<V: Serialize> Codec<V> {
        /// An encode-only codec, for types that do not deserialize.
        fn new_for_test(format: Format) -> Self {
            fn never<V>(_: &[u8]) -> Option<V> {
                None
            }
            Self {
                format,
                encode: match format {
                    Format::Json => json_encode::<V>,
                    Format::Bincode => bincode_encode::<V>,
                },
                decode: never::<V>,
            }
        }
    }
}
