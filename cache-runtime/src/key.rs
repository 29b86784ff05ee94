//! Cache keys: a streaming 128-bit digest of any [`serde::Serialize`] value.
//!
//! [`digest`] walks the serde data model of a value and feeds a tagged,
//! self-delimiting byte encoding of it into an XXH3 hasher, without building
//! the encoding in memory and without allocating.
//!
//! The encoding is:
//!
//! * **deterministic and machine-independent**: every scalar is written
//!   little-endian behind a one-byte type tag, lengths are written as `u64`,
//!   floats are written by their bits after `-0.0` is folded into `0.0` and
//!   every NaN into one canonical NaN;
//! * **unambiguous**: strings and byte slices are length-prefixed, sequences,
//!   tuples and structs end with an end marker and their element count, and
//!   enum variants are identified by their index (names of structs, fields and
//!   variants are not hashed; only values, in order);
//! * **order-independent for maps and hash sets**: each entry is digested on
//!   its own and the entry digests are added up, so two maps (or two
//!   `HashSet`s) with the same content digest equal whatever their iteration
//!   order, capacity or insertion history.

use core::fmt;

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// Digest the serde output of `value` into a 128-bit key. Never allocates.
///
/// Equal values give equal keys on every machine; values that differ in any
/// part that serde shows (including the order of sequence elements, but not
/// the iteration order of maps and hash sets) give different keys, up to
/// the collision odds of a 128-bit hash.
///
/// # Errors
///
/// Returns a [`KeyError`] when the `Serialize` impl of `value` (or of
/// anything inside it) fails, or when a `Display` impl used through
/// `collect_str` fails.
pub fn digest<T: Serialize + ?Sized>(value: &T) -> Result<u128, KeyError> {
    let mut digest = Digest::new();
    value.serialize(&mut digest)?;
    Ok(digest.finish())
}

/// A key built one argument at a time. Generated code calls [`KeyBuilder::arg`] once per key
/// argument, so a missing `Serialize` is reported at that argument.
///
/// The arguments' encodings are simply concatenated: each is self-delimiting, and one function
/// always passes the same number of arguments of the same types, so no count or frame is
/// needed. A single integer argument thus encodes to 9 bytes, which XXH3 hashes on its
/// fastest path.
pub struct KeyBuilder {
    digest: Digest,
    error: Option<KeyError>,
}

impl Default for KeyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyBuilder {
    /// An empty key.
    #[inline]
    pub fn new() -> Self {
        Self {
            digest: Digest::new(),
            error: None,
        }
    }

    /// Adds one argument; the first error is kept.
    #[inline]
    pub fn arg<T: Serialize + ?Sized>(&mut self, value: &T) {
        if self.error.is_none() {
            if let Err(err) = value.serialize(&mut self.digest) {
                self.error = Some(err);
            }
        }
    }

    /// The key.
    ///
    /// # Errors
    /// The first argument whose `Serialize` failed.
    #[inline]
    pub fn finish(self) -> Result<u128, KeyError> {
        match self.error {
            Some(err) => Err(err),
            None => Ok(self.digest.finish()),
        }
    }
}

/// Why an argument could not be turned into a key (its Serialize impl failed).
///
/// It carries a fixed message only, so that building a key never allocates;
/// the message a failing `Serialize` impl passed to
/// [`serde::ser::Error::custom`] is not kept.
#[derive(Debug, Clone)]
pub struct KeyError {
    message: &'static str,
}

impl KeyError {
    pub(crate) const fn new(message: &'static str) -> Self {
        Self { message }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl std::error::Error for KeyError {}

impl ser::Error for KeyError {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        // Formatting `_msg` would allocate; a fixed message is enough to say
        // which argument failed at the call site.
        Self::new("an argument's Serialize impl failed")
    }
}

/// One-byte type tags, written before every value so that values of
/// different shapes never share an encoding.
mod tag {
    pub(super) const BOOL: u8 = 0x01;
    pub(super) const I8: u8 = 0x02;
    pub(super) const I16: u8 = 0x03;
    pub(super) const I32: u8 = 0x04;
    pub(super) const I64: u8 = 0x05;
    pub(super) const I128: u8 = 0x06;
    pub(super) const U8: u8 = 0x07;
    pub(super) const U16: u8 = 0x08;
    pub(super) const U32: u8 = 0x09;
    pub(super) const U64: u8 = 0x0a;
    pub(super) const U128: u8 = 0x0b;
    pub(super) const F32: u8 = 0x0c;
    pub(super) const F64: u8 = 0x0d;
    pub(super) const CHAR: u8 = 0x0e;
    pub(super) const STR: u8 = 0x0f;
    pub(super) const BYTES: u8 = 0x10;
    pub(super) const NONE: u8 = 0x11;
    pub(super) const SOME: u8 = 0x12;
    pub(super) const UNIT: u8 = 0x13;
    pub(super) const UNIT_STRUCT: u8 = 0x14;
    pub(super) const UNIT_VARIANT: u8 = 0x15;
    pub(super) const NEWTYPE_STRUCT: u8 = 0x16;
    pub(super) const NEWTYPE_VARIANT: u8 = 0x17;
    pub(super) const SEQ: u8 = 0x18;
    pub(super) const TUPLE: u8 = 0x19;
    pub(super) const TUPLE_STRUCT: u8 = 0x1a;
    pub(super) const TUPLE_VARIANT: u8 = 0x1b;
    pub(super) const MAP: u8 = 0x1c;
    pub(super) const STRUCT: u8 = 0x1d;
    pub(super) const STRUCT_VARIANT: u8 = 0x1e;
    /// A hash set, digested without regard to order (see `collect_seq`).
    pub(super) const SET: u8 = 0x1f;
    /// A string streamed through `collect_str`: its length is only known at
    /// the end, so it is written after the text, and it gets a tag of its
    /// own so that it can never be read as a length-prefixed `STR`.
    pub(super) const DISPLAY_STR: u8 = 0x20;
    /// A struct field left out by `#[serde(skip_serializing_if = ...)]`; it
    /// keeps its position so that which field was left out still counts.
    pub(super) const SKIPPED_FIELD: u8 = 0x21;
    /// Closes a sequence, tuple or struct, before its element count.
    pub(super) const END: u8 = 0xff;
}

/// The bits of the one NaN every `f32` NaN is folded into.
const CANONICAL_NAN_F32: u32 = 0x7fc0_0000;
/// The bits of the one NaN every `f64` NaN is folded into.
const CANONICAL_NAN_F64: u64 = 0x7ff8_0000_0000_0000;

/// The hasher, and the serde serializer (on `&mut Digest`) that feeds it.
///
/// Most keys encode to a few dozen bytes: they are gathered in a buffer on the stack and hashed
/// with one `xxh3_128` call, which costs a fraction of feeding a streaming hasher piece by
/// piece, and keeps the state small enough to move for free (a streaming XXH3 state is over
/// half a kilobyte). A longer encoding is hashed in blocks of [`BLOCK`] bytes, each block's
/// 128-bit digest seeding the next (folded to the 64-bit seed XXH3 takes). Blocks are cut at
/// fixed offsets, so the digest depends only on the bytes, never on how they were written.
struct Digest {
    buf: [u8; BLOCK],
    len: usize,
    chain: Option<u128>,
}

/// Bytes hashed in one call.
const BLOCK: usize = 128;

fn fold(digest: u128) -> u64 {
    (digest as u64) ^ ((digest >> 64) as u64)
}

impl Digest {
    #[inline(always)]
    const fn new() -> Self {
        Self {
            buf: [0; BLOCK],
            len: 0,
            chain: None,
        }
    }

    /// Puts the hasher back in the state of [`Digest::new`].
    fn reset(&mut self) {
        self.len = 0;
        self.chain = None;
    }

    /// The digest of the bytes written so far.
    ///
    /// Inlined for encodings of up to 16 bytes (one integer, a short string), where the
    /// compiler sees the length bound and keeps only XXH3's short path at the call site, so that
    /// it can see through the stores the encoding just made.
    #[inline(always)]
    fn finish(&self) -> u128 {
        match self.buf.get(..self.len) {
            Some(short) if short.len() <= 16 && self.chain.is_none() => {
                xxhash_rust::xxh3::xxh3_128(short)
            }
            _ => self.finish_long(),
        }
    }

    #[inline(never)]
    fn finish_long(&self) -> u128 {
        let rest = &self.buf[..self.len];
        match self.chain {
            None => xxhash_rust::xxh3::xxh3_128(rest),
            Some(chain) => xxhash_rust::xxh3::xxh3_128_with_seed(rest, fold(chain)),
        }
    }

    #[inline(always)]
    fn write(&mut self, mut bytes: &[u8]) {
        loop {
            if let Some(room) = self.buf.get_mut(self.len..self.len + bytes.len()) {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
                return;
            }
            // The block is full and more bytes follow: hash it into the chain.
            let (head, tail) = bytes.split_at(BLOCK - self.len);
            self.buf[self.len..].copy_from_slice(head);
            let seed = self.chain.map_or(0, fold);
            self.chain = Some(xxhash_rust::xxh3::xxh3_128_with_seed(&self.buf, seed));
            self.len = 0;
            bytes = tail;
        }
    }

    #[inline(always)]
    fn tag(&mut self, tag: u8) {
        self.write(&[tag]);
    }

    /// Writes `tag` then the low `width` bytes of `v` (little-endian), as [`Digest::tag`]
    /// followed by [`Digest::write`] would.
    ///
    /// With room in the block, the whole field goes in with one 16-byte store. Written as two
    /// stores, a scalar key makes XXH3's first 8-byte load span both, which the CPU cannot
    /// forward from its store buffer: that stall cost a third of a hit. The bytes past the field
    /// are scratch, overwritten by the next write and never hashed.
    #[inline(always)]
    fn tagged(&mut self, tag: u8, v: u64, width: usize) {
        debug_assert!(width <= 8);
        let word = u128::from(tag) | (u128::from(v) << 8);
        if let Some(room) = self.buf.get_mut(self.len..self.len + 16) {
            room.copy_from_slice(&word.to_le_bytes());
            self.len += 1 + width;
        } else {
            self.write(&word.to_le_bytes()[..1 + width]);
        }
    }

    #[inline(always)]
    fn u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }

    #[inline(always)]
    fn u128(&mut self, v: u128) {
        self.write(&v.to_le_bytes());
    }

    fn tagged_variant(&mut self, tag: u8, variant_index: u32) {
        self.tagged(tag, u64::from(variant_index), 4);
    }

    /// Writes a map or set digested without regard to order.
    fn unordered(&mut self, tag: u8, sum: Unordered) {
        self.tag(tag);
        self.u64(sum.count);
        self.u128(sum.sum);
    }
}

/// Tells a `HashSet` (std's or hashbrown's) apart from an ordered sequence,
/// given the type that was handed to `Serializer::collect_seq`.
///
/// Serde gives sets and sequences the same shape: both `Vec<T>` and
/// `HashSet<T, S>` serialize through `collect_seq(self)`, so nothing in the
/// data model says whether the element order means anything. Only the
/// iterator type tells them apart, and that type is `&HashSet<T, S>` for a
/// hash set, whose order depends on its hasher seed, capacity and insertion
/// history. Such a set must be digested without regard to order. A
/// `BTreeSet` is already iterated in sorted order, so digesting it in order is
/// deterministic and fine.
///
/// Only the outermost type is looked at (`&Vec<HashSet<u64>>` or
/// `&[HashSet<u64>]` is an ordered sequence of sets), and only its last path
/// segment, so `std::collections::HashSet` and `hashbrown::HashSet` both match.
/// `type_name` is best-effort; if its output ever changed shape, a hash set
/// would fall back to being digested in order, which stays correct for equal
/// sets with the same history but loses order-independence.
fn is_hash_set<I>() -> bool {
    let name = core::any::type_name::<I>().trim_start_matches('&');
    let name = name.strip_prefix("mut ").unwrap_or(name);
    let path = name.split('<').next().unwrap_or(name);
    path.chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == ':')
        && path.rsplit("::").next() == Some("HashSet")
}

/// A commutative sum of entry digests: `wrapping_add`, so that the order of
/// entries does not matter and equal entries do not cancel out (as they
/// would with XOR).
#[derive(Clone, Copy)]
struct Unordered {
    sum: u128,
    count: u64,
}

impl Unordered {
    const fn new() -> Self {
        Self { sum: 0, count: 0 }
    }

    fn add(&mut self, entry: u128) {
        self.sum = self.sum.wrapping_add(entry);
        self.count += 1;
    }
}

/// A `core::fmt::Write` that streams every piece of `Display` output into
/// the hasher and counts its bytes, so `collect_str` needs no buffer.
struct StrSink<'a> {
    digest: &'a mut Digest,
    len: u64,
}

impl fmt::Write for StrSink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.digest.write(s.as_bytes());
        self.len += s.len() as u64;
        Ok(())
    }
}

impl<'a> Serializer for &'a mut Digest {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = MapDigest<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), KeyError> {
        self.tagged(tag::BOOL, u64::from(v), 1);
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.tagged(tag::I8, u64::from(v as u8), 1);
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.tagged(tag::I16, u64::from(v as u16), 2);
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.tagged(tag::I32, u64::from(v as u32), 4);
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        self.tagged(tag::I64, v as u64, 8);
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), KeyError> {
        self.tag(tag::I128);
        self.write(&v.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.tagged(tag::U8, u64::from(v), 1);
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.tagged(tag::U16, u64::from(v), 2);
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.tagged(tag::U32, u64::from(v), 4);
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.tagged(tag::U64, v, 8);
        Ok(())
    }

    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), KeyError> {
        self.tag(tag::U128);
        self.u128(v);
        Ok(())
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        let bits = if v.is_nan() {
            CANONICAL_NAN_F32
        } else if v == 0.0 {
            // Both 0.0 and -0.0.
            0
        } else {
            v.to_bits()
        };
        self.tagged(tag::F32, u64::from(bits), 4);
        Ok(())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        let bits = if v.is_nan() {
            CANONICAL_NAN_F64
        } else if v == 0.0 {
            // Both 0.0 and -0.0.
            0
        } else {
            v.to_bits()
        };
        self.tagged(tag::F64, bits, 8);
        Ok(())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        self.tagged(tag::CHAR, u64::from(u32::from(v)), 4);
        Ok(())
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        self.tagged(tag::STR, v.len() as u64, 8);
        self.write(v.as_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        self.tagged(tag::BYTES, v.len() as u64, 8);
        self.write(v);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), KeyError> {
        self.tag(tag::NONE);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        self.tag(tag::SOME);
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), KeyError> {
        self.tag(tag::UNIT);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), KeyError> {
        self.tag(tag::UNIT_STRUCT);
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), KeyError> {
        self.tagged_variant(tag::UNIT_VARIANT, variant_index);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.tag(tag::NEWTYPE_STRUCT);
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.tagged_variant(tag::NEWTYPE_VARIANT, variant_index);
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, KeyError> {
        Ok(Compound::open(self, tag::SEQ))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>, KeyError> {
        Ok(Compound::open(self, tag::TUPLE))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, KeyError> {
        Ok(Compound::open(self, tag::TUPLE_STRUCT))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, KeyError> {
        self.tagged_variant(tag::TUPLE_VARIANT, variant_index);
        Ok(Compound::new(self))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<MapDigest<'a>, KeyError> {
        Ok(MapDigest {
            parent: self,
            entry: Digest::new(),
            has_key: false,
            entries: Unordered::new(),
        })
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>, KeyError> {
        Ok(Compound::open(self, tag::STRUCT))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, KeyError> {
        self.tagged_variant(tag::STRUCT_VARIANT, variant_index);
        Ok(Compound::new(self))
    }

    fn collect_seq<I>(self, iter: I) -> Result<(), KeyError>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        // See `is_hash_set` for why the iterator's type name is looked at.
        if is_hash_set::<I>() {
            let mut elements = Unordered::new();
            let mut element = Digest::new();
            for item in iter {
                element.reset();
                item.serialize(&mut element)?;
                elements.add(element.finish());
            }
            self.unordered(tag::SET, elements);
            Ok(())
        } else {
            // What serde's default `collect_seq` does.
            let mut seq = self.serialize_seq(None)?;
            for item in iter {
                SerializeSeq::serialize_element(&mut seq, &item)?;
            }
            SerializeSeq::end(seq)
        }
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        self.tag(tag::DISPLAY_STR);
        let mut sink = StrSink {
            digest: &mut *self,
            len: 0,
        };
        fmt::write(&mut sink, format_args!("{value}"))
            .map_err(|_| KeyError::new("an argument's Display impl failed"))?;
        let len = sink.len;
        self.u64(len);
        Ok(())
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The serializer of sequences, tuples and structs (plain or enum variants):
/// the opening tag (and variant index) is already written; each element
/// follows in order, then an end marker and the element count.
struct Compound<'a> {
    digest: &'a mut Digest,
    count: u64,
}

impl<'a> Compound<'a> {
    fn new(digest: &'a mut Digest) -> Self {
        Self { digest, count: 0 }
    }

    fn open(digest: &'a mut Digest, tag: u8) -> Self {
        digest.tag(tag);
        Self::new(digest)
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut *self.digest)?;
        self.count += 1;
        Ok(())
    }

    fn skipped(&mut self) {
        self.digest.tag(tag::SKIPPED_FIELD);
        self.count += 1;
    }

    fn close(self) -> Result<(), KeyError> {
        self.digest.tag(tag::END);
        self.digest.u64(self.count);
        Ok(())
    }
}

impl SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        self.close()
    }
}

impl SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        self.close()
    }
}

impl SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        self.close()
    }
}

impl SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.element(value)
    }

    fn end(self) -> Result<(), KeyError> {
        self.close()
    }
}

impl SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.element(value)
    }

    fn skip_field(&mut self, _key: &'static str) -> Result<(), KeyError> {
        self.skipped();
        Ok(())
    }

    fn end(self) -> Result<(), KeyError> {
        self.close()
    }
}

impl SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.element(value)
    }

    fn skip_field(&mut self, _key: &'static str) -> Result<(), KeyError> {
        self.skipped();
        Ok(())
    }

    fn end(self) -> Result<(), KeyError> {
        self.close()
    }
}

/// The serializer of maps: every entry (key, then value) is digested with a
/// nested `Digest` of its own, the entry digests are summed, and the parent
/// gets the map tag, the entry count and the sum, whatever the entry order.
struct MapDigest<'a> {
    parent: &'a mut Digest,
    /// The digest of the entry being written; reset for every entry.
    entry: Digest,
    /// Whether `entry` holds a key still waiting for its value.
    has_key: bool,
    entries: Unordered,
}

impl SerializeMap for MapDigest<'_> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), KeyError> {
        if self.has_key {
            return Err(KeyError::new("a map key was serialized without its value"));
        }
        self.entry.reset();
        key.serialize(&mut self.entry)?;
        self.has_key = true;
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        if !self.has_key {
            return Err(KeyError::new("a map value was serialized without its key"));
        }
        value.serialize(&mut self.entry)?;
        self.has_key = false;
        self.entries.add(self.entry.finish());
        Ok(())
    }

    fn serialize_entry<K, V>(&mut self, key: &K, value: &V) -> Result<(), KeyError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        self.serialize_key(key)?;
        self.serialize_value(value)
    }

    fn end(self) -> Result<(), KeyError> {
        if self.has_key {
            return Err(KeyError::new("a map key was serialized without its value"));
        }
        self.parent.unordered(tag::MAP, self.entries);
        Ok(())
    }
}

#[cfg(test)]
mod builder_tests {
    use super::{Digest, KeyBuilder};

    fn digest_in_chunks(bytes: &[u8], chunk: usize) -> u128 {
        let mut d = Digest::new();
        for piece in bytes.chunks(chunk) {
            d.write(piece);
        }
        d.finish()
    }

    #[test]
    fn the_digest_depends_on_the_bytes_not_on_how_they_were_written() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for len in [0, 1, 63, 127, 128, 129, 255, 256, 257, 400, 1000] {
            let whole = digest_in_chunks(&bytes[..len], len.max(1));
            for chunk in [1, 5, 64, 127, 200] {
                assert_eq!(
                    digest_in_chunks(&bytes[..len], chunk),
                    whole,
                    "{len} bytes by {chunk}"
                );
            }
            if len <= 128 {
                // One block: plain XXH3-128 of the bytes.
                assert_eq!(whole, xxhash_rust::xxh3::xxh3_128(&bytes[..len]));
            }
        }
        // Every byte counts, in every block.
        let base = digest_in_chunks(&bytes, 7);
        for at in [0, 127, 128, 500, 999] {
            let mut changed = bytes.clone();
            changed[at] ^= 1;
            assert_ne!(digest_in_chunks(&changed, 7), base, "byte {at}");
        }
        assert_ne!(
            digest_in_chunks(&bytes[..256], 7),
            digest_in_chunks(&bytes[..257], 7)
        );
    }

    #[test]
    fn a_built_key_is_the_concatenation_of_its_arguments() {
        let mut built = KeyBuilder::new();
        built.arg(&42u64);
        built.arg("user");
        let mut same = KeyBuilder::new();
        same.arg(&42u64);
        same.arg(&String::from("user"));
        let mut other = KeyBuilder::new();
        other.arg(&43u64);
        other.arg("user");
        let (built, same, other) = (built.finish(), same.finish(), other.finish());
        assert_eq!(built.as_ref().ok(), same.as_ref().ok());
        assert_ne!(built.ok(), other.ok());
        // Self-delimiting: ("ab", "c") and ("a", "bc") differ.
        let mut ab_c = KeyBuilder::new();
        ab_c.arg("ab");
        ab_c.arg("c");
        let mut a_bc = KeyBuilder::new();
        a_bc.arg("a");
        a_bc.arg("bc");
        assert_ne!(ab_c.finish().ok(), a_bc.finish().ok());
        // A long argument goes through the block chain and is still stable.
        let long = "x".repeat(1000);
        let twice: Vec<_> = (0..2)
            .map(|_| {
                let mut k = KeyBuilder::new();
                k.arg(&7u8);
                k.arg(long.as_str());
                k.finish().ok()
            })
            .collect();
        assert_eq!(twice[0], twice[1]);
        assert!(twice[0].is_some());
        // A failing argument is an error, whatever comes after it.
        struct Fails;
        impl serde::Serialize for Fails {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let mut failing = KeyBuilder::new();
        failing.arg(&Fails);
        failing.arg(&1u8);
        assert!(failing.finish().is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    fn key<T: Serialize + ?Sized>(value: &T) -> u128 {
        digest(value).expect("value digests")
    }

    #[test]
    fn same_value_twice_gives_same_digest() {
        let value = (7u64, "x", vec![1i32, -2, 3], Some('c'));
        assert_eq!(key(&value), key(&value));
        assert_eq!(key(&42u64), key(&42u64));
    }

    #[test]
    fn different_integers_differ() {
        assert_ne!(key(&42u64), key(&43u64));
        // Same numeric value, different integer type: different tags.
        assert_ne!(key(&1u32), key(&1u64));
        assert_ne!(key(&1i64), key(&1u64));
        assert_ne!(key(&u128::MAX), key(&(u128::MAX - 1)));
        assert_ne!(key(&i128::MIN), key(&i128::MAX));
    }

    #[test]
    fn tuple_order_matters() {
        assert_ne!(key(&(1u32, 2u32)), key(&(2u32, 1u32)));
    }

    #[test]
    fn strings_are_length_prefixed() {
        assert_ne!(key(&("ab", "c")), key(&("a", "bc")));
        // Without the length prefix these would both write
        // STR 'a' STR STR 'b', the STR tag byte (0x0f) moving between them.
        assert_ne!(key(&("a\u{f}", "b")), key(&("a", "\u{f}b")));
        let a = (serde_bytes_like(b"a\x10"), serde_bytes_like(b"b"));
        let b = (serde_bytes_like(b"a"), serde_bytes_like(b"\x10b"));
        assert_ne!(key(&a), key(&b));
        assert_eq!(
            key(&a),
            key(&(serde_bytes_like(b"a\x10"), serde_bytes_like(b"b")))
        );
        // Bytes are not a string of the same bytes.
        assert_ne!(key(&serde_bytes_like(b"ab")), key("ab"));
    }

    #[test]
    fn nested_sequences_are_delimited() {
        assert_ne!(
            key(&vec![vec![1], vec![2, 3]]),
            key(&vec![vec![1, 2], vec![3]])
        );
        assert_ne!(key(&vec![Vec::<u8>::new()]), key(&Vec::<Vec<u8>>::new()));
    }

    #[test]
    fn sequences_end_with_a_marker_and_count() {
        // Without the end marker these two would write the same bytes:
        // SEQ SEQ 1 2, the second element moving in or out of the inner list.
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Tree {
            Leaf(u8),
            Node(Vec<Tree>),
        }
        let inner_then_leaf = Tree::Node(vec![Tree::Node(vec![Tree::Leaf(1)]), Tree::Leaf(2)]);
        let both_inside = Tree::Node(vec![Tree::Node(vec![Tree::Leaf(1), Tree::Leaf(2)])]);
        assert_ne!(key(&inner_then_leaf), key(&both_inside));
    }

    #[test]
    fn options_and_units_differ_by_tag() {
        assert_ne!(key(&None::<u32>), key(&Some(0u32)));
        assert_ne!(key(&()), key(&Some(())));
        assert_ne!(key(&None::<()>), key(&()));
        // `()` is a unit, `((),)` a one-element tuple, `Vec::<u8>::new()` an
        // empty sequence: all distinct.
        assert_ne!(key(&()), key(&((),)));
        assert_ne!(key(&()), key(&Vec::<u8>::new()));
        #[derive(Serialize)]
        struct UnitStruct;
        assert_ne!(key(&()), key(&UnitStruct));
    }

    #[test]
    fn empty_string_and_empty_vec_differ() {
        assert_ne!(key(""), key(&Vec::<u8>::new()));
        assert_ne!(key(""), key(&serde_bytes_like(&[])));
    }

    /// Bytes through `serialize_bytes`, without the serde_bytes crate.
    fn serde_bytes_like(bytes: &[u8]) -> impl Serialize + '_ {
        struct Bytes<'a>(&'a [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Bytes(bytes)
    }

    #[derive(Serialize)]
    enum Enum {
        First,
        Second,
        A(u32),
        B(u32),
        TupleA(u32, u32),
        TupleB(u32, u32),
        StructA { x: u32 },
        StructB { x: u32 },
    }

    #[test]
    fn enum_variants_differ_by_index() {
        assert_ne!(key(&Enum::First), key(&Enum::Second));
        assert_eq!(key(&Enum::First), key(&Enum::First));
        assert_ne!(key(&Enum::A(5)), key(&Enum::B(5)));
        assert_ne!(key(&Enum::TupleA(1, 2)), key(&Enum::TupleB(1, 2)));
        assert_ne!(key(&Enum::StructA { x: 1 }), key(&Enum::StructB { x: 1 }));
        assert_eq!(key(&Enum::A(5)), key(&Enum::A(5)));
        assert_ne!(key(&Enum::A(5)), key(&Enum::A(6)));
    }

    #[test]
    fn hash_maps_digest_equal_whatever_the_insertion_order() {
        let mut forward = HashMap::new();
        for i in 0..1000u64 {
            forward.insert(i, format!("value {i}"));
        }
        let mut backward = HashMap::with_capacity(5000);
        for i in (0..1000u64).rev() {
            backward.insert(i, format!("value {i}"));
        }
        // Make it likely that the iteration orders really differ.
        let forward_order: Vec<u64> = forward.keys().copied().collect();
        let backward_order: Vec<u64> = backward.keys().copied().collect();
        assert_ne!(forward_order, backward_order);

        assert_eq!(key(&forward), key(&backward));

        let sorted: BTreeMap<u64, String> = forward.clone().into_iter().collect();
        assert_eq!(key(&forward), key(&sorted));

        let mut changed = backward.clone();
        changed.insert(500, "another value".to_owned());
        assert_ne!(key(&forward), key(&changed));

        let mut fewer = backward;
        fewer.remove(&999);
        assert_ne!(key(&forward), key(&fewer));
    }

    #[test]
    fn map_entries_keep_keys_and_values_paired() {
        let a = BTreeMap::from([(1u8, 2u8), (3, 4)]);
        let b = BTreeMap::from([(1u8, 4u8), (3, 2)]);
        assert_ne!(key(&a), key(&b));
        // A map is not the sequence of its pairs.
        assert_ne!(key(&a), key(&vec![(1u8, 2u8), (3, 4)]));
    }

    #[test]
    fn duplicate_map_entries_do_not_cancel() {
        /// A multimap that writes each of its pairs as a map entry, twice.
        struct Twice(Vec<(u8, u8)>);
        impl Serialize for Twice {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len() * 2))?;
                for (k, v) in &self.0 {
                    map.serialize_entry(k, v)?;
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        // Combined with XOR, both would be four entries summing to zero.
        assert_ne!(
            key(&Twice(vec![(1, 1), (2, 2)])),
            key(&Twice(vec![(3, 3), (4, 4)]))
        );
    }

    #[test]
    fn map_keys_may_be_any_serialize_type() {
        let mut a = HashMap::new();
        a.insert((1u8, "x"), vec![1u8]);
        a.insert((2u8, "y"), vec![2u8]);
        let mut b = HashMap::new();
        b.insert((2u8, "y"), vec![2u8]);
        b.insert((1u8, "x"), vec![1u8]);
        assert_eq!(key(&a), key(&b));
        b.insert((1u8, "z"), vec![1u8]);
        assert_ne!(key(&a), key(&b));
    }

    #[test]
    fn hash_sets_digest_equal_whatever_the_insertion_order() {
        let forward: HashSet<u64> = (0..1000).collect();
        let mut backward = HashSet::with_capacity(4096);
        for i in (0..1000u64).rev() {
            backward.insert(i);
        }
        let forward_order: Vec<u64> = forward.iter().copied().collect();
        let backward_order: Vec<u64> = backward.iter().copied().collect();
        assert_ne!(forward_order, backward_order);
        assert_eq!(key(&forward), key(&backward));

        backward.remove(&0);
        backward.insert(1000);
        assert_ne!(key(&forward), key(&backward));
    }

    #[test]
    fn sequences_stay_ordered() {
        assert_ne!(key(&vec![1, 2]), key(&vec![2, 1]));
        let sorted: BTreeSet<u64> = [1, 2, 3].into();
        assert_eq!(key(&sorted), key(&BTreeSet::from([3u64, 2, 1])));
        assert_ne!(key(&sorted), key(&BTreeSet::from([1u64, 2])));
        // A hash set is not the sequence of its elements.
        assert_ne!(key(&HashSet::from([1u64])), key(&vec![1u64]));
    }

    #[test]
    fn only_the_outermost_type_makes_a_hash_set() {
        assert!(is_hash_set::<&HashSet<u64>>());
        assert!(!is_hash_set::<&BTreeSet<u64>>());
        assert!(!is_hash_set::<&Vec<HashSet<u64>>>());
        assert!(!is_hash_set::<&[HashSet<u64>]>());
        assert!(!is_hash_set::<&BTreeMap<u8, HashSet<u64>>>());

        // So a sequence of hash sets is still ordered...
        let one = HashSet::from([1u64]);
        let two = HashSet::from([2u64]);
        assert_ne!(
            key(&vec![one.clone(), two.clone()]),
            key(&vec![two.clone(), one.clone()])
        );
        let forward: &[HashSet<u64>] = &[one.clone(), two.clone()];
        let backward: &[HashSet<u64>] = &[two, one];
        assert_ne!(key(forward), key(backward));
    }

    #[test]
    fn ordered_collect_seq_matches_serialize_seq() {
        /// Serializes through `serialize_seq` directly, like serde's default
        /// `collect_seq` does.
        struct ManualSeq(Vec<u32>, Option<usize>);
        impl Serialize for ManualSeq {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(self.1)?;
                for e in &self.0 {
                    seq.serialize_element(e)?;
                }
                seq.end()
            }
        }
        let v = vec![3u32, 1, 2];
        assert_eq!(key(&v), key(&ManualSeq(v.clone(), Some(3))));
        assert_eq!(key(&v), key(&ManualSeq(v.clone(), None)));
        assert_ne!(key(&v), key(&ManualSeq(vec![3, 1], None)));
    }

    #[derive(Serialize)]
    struct Nested {
        name: String,
        index: HashMap<String, HashSet<u64>>,
    }

    #[test]
    fn nested_maps_of_sets_digest_equal_whatever_the_order() {
        let mut a = Nested {
            name: "n".to_owned(),
            index: HashMap::new(),
        };
        for word in ["alpha", "beta", "gamma", "delta"] {
            let set: HashSet<u64> = (0..50).map(|i| i * word.len() as u64).collect();
            a.index.insert(word.to_owned(), set);
        }
        let mut b = Nested {
            name: "n".to_owned(),
            index: HashMap::with_capacity(64),
        };
        for word in ["delta", "gamma", "beta", "alpha"] {
            let mut set = HashSet::with_capacity(200);
            for i in (0..50u64).rev() {
                set.insert(i * word.len() as u64);
            }
            b.index.insert(word.to_owned(), set);
        }
        assert_eq!(key(&a), key(&b));

        if let Some(set) = b.index.get_mut("beta") {
            set.insert(10_000);
        }
        assert_ne!(key(&a), key(&b));
    }

    #[test]
    fn a_failing_serialize_impl_is_an_error() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("boom"))
            }
        }
        let err = digest(&Fails).expect_err("Fails cannot be digested");
        assert_eq!(err.to_string(), "an argument's Serialize impl failed");
        assert!(digest(&(1u8, vec![Fails])).is_err());
        let mut map = HashMap::new();
        map.insert(1u8, Fails);
        assert!(digest(&map).is_err());
    }

    #[test]
    fn a_failing_display_impl_is_an_error() {
        struct BadDisplay;
        impl fmt::Display for BadDisplay {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                Err(fmt::Error)
            }
        }
        struct ViaDisplay;
        impl Serialize for ViaDisplay {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&BadDisplay)
            }
        }
        assert!(digest(&ViaDisplay).is_err());
    }

    #[test]
    fn zero_and_negative_zero_are_equal_and_nans_are_equal() {
        assert_eq!(key(&0.0f64), key(&-0.0f64));
        assert_eq!(key(&0.0f32), key(&-0.0f32));
        assert_eq!(key(&f64::NAN), key(&f64::NAN));
        assert_eq!(key(&f64::NAN), key(&-f64::NAN));
        assert_eq!(key(&f64::NAN), key(&f64::from_bits(0x7ff0_0000_0000_0001)));
        assert_eq!(key(&f32::NAN), key(&f32::from_bits(0xffc0_0001)));
        assert_ne!(key(&1.0f64), key(&-1.0f64));
        assert_ne!(key(&0.0f64), key(&f64::MIN_POSITIVE));
        assert_ne!(key(&f64::INFINITY), key(&f64::NEG_INFINITY));
        assert_ne!(key(&f64::NAN), key(&f64::INFINITY));
        assert_ne!(key(&1.0f32), key(&1.0f64));
    }

    #[test]
    fn str_and_string_are_equal() {
        assert_eq!(key("abc"), key(&String::from("abc")));
        assert_eq!(key(&("abc", 1u8)), key(&(String::from("abc"), 1u8)));
        assert_ne!(key("abc"), key("abd"));
        // A char is not a one-character string.
        assert_ne!(key(&'a'), key("a"));
    }

    /// Serializes through `collect_str` with the `Display` of a `u64`.
    struct Shown(u64);

    impl Serialize for Shown {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&self.0)
        }
    }

    #[test]
    fn collect_str_streams_the_display_output() {
        assert_eq!(key(&Shown(1)), key(&Shown(1)));
        assert_ne!(key(&Shown(1)), key(&Shown(2)));
        assert_ne!(key(&Shown(12)), key(&Shown(21)));
        assert_ne!(key(&(Shown(1), Shown(23))), key(&(Shown(12), Shown(3))));
    }

    #[test]
    fn skipped_fields_keep_their_position() {
        #[derive(Serialize)]
        struct Sparse {
            #[serde(skip_serializing_if = "Option::is_none")]
            a: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            b: Option<u32>,
        }
        let first = Sparse {
            a: Some(1),
            b: None,
        };
        let second = Sparse {
            a: None,
            b: Some(1),
        };
        assert_ne!(key(&first), key(&second));
        assert_eq!(
            key(&first),
            key(&Sparse {
                a: Some(1),
                b: None
            })
        );
    }

    #[test]
    fn field_names_are_not_hashed_but_values_are() {
        #[derive(Serialize)]
        struct P {
            x: u32,
            y: u32,
        }
        #[derive(Serialize)]
        struct Q {
            first: u32,
            second: u32,
        }
        assert_eq!(
            key(&P { x: 1, y: 2 }),
            key(&Q {
                first: 1,
                second: 2
            })
        );
        assert_ne!(key(&P { x: 1, y: 2 }), key(&P { x: 2, y: 1 }));
        // A struct is not a tuple of the same values.
        assert_ne!(key(&P { x: 1, y: 2 }), key(&(1u32, 2u32)));
    }

    #[test]
    fn digest_of_a_fixed_value_is_stable_and_non_zero() {
        let value = (42u64, "user", vec![1u8, 2, 3]);
        let first = key(&value);
        let second = key(&(42u64, String::from("user"), vec![1u8, 2, 3]));
        assert_eq!(first, second);
        assert_ne!(first, 0);
    }
}

#[cfg(test)]
mod golden {
    use super::digest;

    /// The digests are part of the Redis key format: every process, machine and release must
    /// compute the same ones, or a deploy would silently orphan every stored entry (and two
    /// releases side by side would not share a cache). These were computed once and are pinned.
    /// `long` crosses several hashing blocks.
    #[test]
    #[allow(clippy::unreadable_literal)]
    fn digests_do_not_change_between_releases() {
        let long: Vec<(u64, u8, String)> =
            (0..100u64).map(|i| (i, i as u8, format!("k{i}"))).collect();
        for (name, got, want) in [
            ("u64", digest(&42u64), 0xb75be7ea2525e64171592a7ce34ce4ed),
            ("i8", digest(&-3i8), 0x660f6227c09da49be14f4da92d1e4b6e),
            ("i16", digest(&-300i16), 0x681c78aa48c7d455480c8ad8fdd43a58),
            (
                "i32",
                digest(&-70_000i32),
                0xf240bbfe48f49a76340d166972402c91,
            ),
            (
                "u16",
                digest(&65_000u16),
                0x64585f30954bd9edd49d2474f42c1824,
            ),
            ("bool", digest(&true), 0x50e58cbd6ada00a1070d80d6a76865f3),
            ("char", digest(&'é'), 0x24f6bd279d583075beaeedf679271844),
            ("f64", digest(&1.5f64), 0x51ee3cc224d56787225a846c496e8d0e),
            ("f32", digest(&-0.25f32), 0xdf3e94c96d80e9fb51309b4d89327361),
            ("str", digest("user"), 0x3cadf983175d65b816276286bc63eccc),
            (
                "tuple",
                digest(&(42u64, "user", vec![1u8, 2, 3])),
                0xccd08b76f3e32a20b3028a2d243c8557,
            ),
            (
                "option",
                digest(&Some(7u32)),
                0xa22b28666701b8f967c82d4d24bfd62a,
            ),
            (
                "u128",
                digest(&u128::MAX),
                0x8b7a8faff6e4bcf1b5b65aec9b032a3b,
            ),
            ("long", digest(&long), 0xca32255ec3d601ee33321bec614458cd),
        ] {
            assert_eq!(got.ok(), Some(want), "the digest of `{name}` changed");
        }
    }
}
