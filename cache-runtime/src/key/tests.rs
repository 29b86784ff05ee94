//! Tests of `key.rs`: the builder, the digest of every serde shape, and the pinned digests.

mod builder_tests {
    use crate::key::{Digest, KeyBuilder};

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

mod serde_shapes {
    use crate::key::*;
    use serde::ser::{SerializeMap, SerializeSeq, Serializer};
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

mod golden {
    use crate::key::digest;

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
