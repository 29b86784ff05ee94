//! The Redis key layout of one function, and how `all(f)` finds its keys.
//!
//! - Digest keys: `{prefix}:{namespace}:v{version}:{digest as 32 hex digits}`.
//! - Template keys (`key = "user:{id}"`): `{prefix}:{rendered template}`, whose values are
//!   escaped by [`crate::template`], so that no argument can forge another key.
//!
//! A clear `SCAN`s with a glob ([`RedisKeys::pattern`]) that may match other functions' keys too
//! (`user:*` matches `user:1:orders`), and keeps only those [`RedisKeys::owns`] says are this
//! function's.

use crate::cached_fn::Key;

/// Where one function's keys live in Redis.
pub(crate) struct RedisKeys {
    /// `{prefix}:{namespace}:v{version}:`, before the digest.
    pub(crate) digest_prefix: String,
    /// `{prefix}:`, before a template's name.
    pub(crate) name_prefix: String,
    /// The template's literal parts, if the function has one.
    pub(crate) template: Option<&'static [&'static str]>,
}

impl RedisKeys {
    /// The Redis key of a digest key, written on the stack: a hit only sends it, so it costs
    /// no allocation. `None` for a template's key, or a prefix too long for the buffer.
    pub(crate) fn digest_key_on_stack(&self, key: &Key) -> Option<([u8; 128], usize)> {
        if key.name().is_some() {
            return None;
        }
        let prefix = self.digest_prefix.as_bytes();
        let len = prefix.len() + 32;
        let mut buf = [0u8; 128];
        buf.get_mut(..prefix.len())?.copy_from_slice(prefix);
        buf.get_mut(prefix.len()..len)?
            .copy_from_slice(&hex(key.digest()));
        Some((buf, len))
    }

    /// The full Redis key of a call.
    pub(crate) fn redis_key(&self, key: &Key) -> String {
        match key.name() {
            Some(name) => [self.name_prefix.as_str(), name].concat(),
            None => format!("{}{:032x}", self.digest_prefix, key.digest()),
        }
    }

    /// A glob matching every key of this function (and maybe others: see [`Self::owns`]).
    pub(crate) fn pattern(&self) -> String {
        match self.template {
            Some(parts) => {
                let mut pattern = glob_escape(&self.name_prefix);
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        pattern.push('*');
                    }
                    pattern.push_str(&glob_escape(part));
                }
                pattern
            }
            None => format!("{}*", glob_escape(&self.digest_prefix)),
        }
    }

    /// Whether `key`, matched by [`Self::pattern`], is one of this function's keys.
    pub(crate) fn owns(&self, key: &str) -> bool {
        match self.template {
            None => key
                .strip_prefix(self.digest_prefix.as_str())
                .is_some_and(|digest| {
                    digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit())
                }),
            Some(parts) => key
                .strip_prefix(self.name_prefix.as_str())
                .is_some_and(|name| template_matches(parts, name)),
        }
    }
}

/// Whether `name` is what the template of literal `parts` renders for some arguments: the
/// literals in order, each parameter's escaped value in between (which never holds a character
/// that escaping rewrites, and the macro requires one such between two parameters).
fn template_matches(parts: &[&str], name: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return false;
    };
    name.strip_prefix(first)
        .is_some_and(|name| values_then(rest, name))
}

/// Whether `name` is an escaped value followed by `parts[0]`, then again, to the end.
fn values_then(parts: &[&str], name: &str) -> bool {
    let Some((part, rest)) = parts.split_first() else {
        return name.is_empty();
    };
    let longest = name
        .find(|c: char| !crate::template::is_value_char(c))
        .unwrap_or(name.len());
    (0..=longest).any(|len| {
        name[len..]
            .strip_prefix(part)
            .is_some_and(|after| values_then(rest, after))
    })
}

fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `digest` as 32 lowercase hex digits, as `format!("{digest:032x}")` writes it, without the
/// formatting machinery: a Redis key is built on every call, and `format!` made that a tenth of
/// the client's work per Redis hit. Eight digits at a time, in a `u64`.
fn hex(digest: u128) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let word = (digest >> (96 - 32 * i)) as u32;
        chunk.copy_from_slice(&hex8(word));
    }
    out
}

/// Eight hex digits of `word`, most significant first.
fn hex8(word: u32) -> [u8; 8] {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // One nibble per byte, the most significant nibble in the most significant byte.
    let mut v = u64::from(word);
    v = (v | (v << 16)) & 0x0000_ffff_0000_ffff;
    v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v | (v << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in each byte whose nibble is 10 or more; no byte carries into the next.
    let letters = ((v + 6 * ONES) >> 4) & ONES;
    (v + u64::from(b'0') * ONES + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::{hex, RedisKeys};
    use crate::cached_fn::Key;

    fn keys(prefix: &str) -> RedisKeys {
        RedisKeys {
            digest_prefix: format!("{prefix}:m::f:v1:"),
            name_prefix: format!("{prefix}:"),
            template: None,
        }
    }

    #[test]
    fn the_key_on_the_stack_is_the_key_on_the_heap() {
        let short = keys("app");
        let long = keys(&"p".repeat(100));
        for digest in [0, 7, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
            let key = Key::from_digest(digest);
            let (buf, len) = short.digest_key_on_stack(&key).unwrap();
            assert_eq!(&buf[..len], short.redis_key(&key).as_bytes());
            assert_eq!(
                long.digest_key_on_stack(&key),
                None,
                "too long: on the heap"
            );
        }
        let named = Key::from_name("user:42".into());
        assert_eq!(short.digest_key_on_stack(&named), None);
        assert_eq!(short.redis_key(&named), "app:user:42");
    }

    #[test]
    fn hex_writes_what_format_writes() {
        let mut d = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        for fixed in [0, 1, 0xabc, u128::MAX, 1 << 127, 0x9a9a_a9a9 << 64] {
            assert_eq!(hex(fixed).as_slice(), format!("{fixed:032x}").as_bytes());
        }
        for _ in 0..10_000 {
            assert_eq!(hex(d).as_slice(), format!("{d:032x}").as_bytes());
            d = d
                .wrapping_mul(0x2545_f491_4f6c_dd1d_9e37_79b9_7f4a_7c15)
                .wrapping_add(1);
        }
    }
}
