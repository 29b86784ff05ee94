//! How values become bytes in a shared store, and back.
//!
//! - `json`: plain JSON text, nothing added, so a service in any language reads it with its own
//!   Redis client.
//! - `bincode`: a three-byte header — [`BINCODE_MAGIC`], the format id, the layout version —
//!   then bincode 2's standard encoding of the value's serde form.
//!
//! Decoding never fails a call: bytes written by the other codec, by an older shape of the type,
//! or corrupted, decode to `None` — a miss, which the fresh value then overwrites.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// First byte of every bincode value: no JSON text starts with it (it is not valid UTF-8 there).
pub const BINCODE_MAGIC: u8 = 0xCA;
/// Second byte: the format id of bincode.
pub const BINCODE_FORMAT_ID: u8 = 0x02;
/// Third byte: the layout version, bumped if the encoding's configuration ever changes.
pub const BINCODE_LAYOUT: u8 = 0x01;

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
    serde_json::to_writer(out, value).is_ok()
}

fn json_decode<V: DeserializeOwned>(bytes: &[u8]) -> Option<V> {
    serde_json::from_slice(bytes).ok()
}

fn bincode_encode<V: Serialize>(value: &V, out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(&HEADER);
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard()).is_ok()
}

fn bincode_decode<V: DeserializeOwned>(bytes: &[u8]) -> Option<V> {
    let body = bytes.strip_prefix(&HEADER)?;
    let (value, read) =
        bincode::serde::decode_from_slice(body, bincode::config::standard()).ok()?;
    // Trailing bytes mean another shape wrote this: a miss, not a guess.
    (read == body.len()).then_some(value)
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
