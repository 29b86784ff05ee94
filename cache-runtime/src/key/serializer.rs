//! The serde serializer that feeds a [`Digest`]: one tag per value, then its bytes; compound
//! values as their elements between an opening tag and an end marker with the count; maps and
//! sets as a sum of entry digests.

use core::fmt;

use serde::ser::{
    Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

use super::*;

/// A `core::fmt::Write` that streams every piece of `Display` output into
/// the hasher and counts its bytes, so `collect_str` needs no buffer.
pub(super) struct StrSink<'a> {
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
pub(super) struct Compound<'a> {
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
pub(super) struct MapDigest<'a> {
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
