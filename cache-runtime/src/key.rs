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

use serde::ser::{self, Serialize};

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

mod serializer;

#[cfg(test)]
mod tests;
