//! `store = "redis"`: the Redis store of one function, also the shared tier of `"tiered"`.
//!
//! - `conn`: the process's connections, the timeout and the breaker.
//! - `keys`: where a function's keys live, and how a clear finds them.
//! - `pending`: invalidations Redis has not confirmed, kept and replayed.
//!
//! A read is one `GET`, made before any flight (the hit path). A fill is one `SET … PX`, encoded
//! by the caller and sent in a task of its own under its flight's gate (see `crate::flight`
//! and `store::fills`), so an invalidation's `DEL` is sent after it; the caller does not wait
//! for it. An invalidation voids the key's flight, then deletes; what Redis does not
//! confirm is kept, and the key is neither read nor written here until it is.

mod conn;
pub(crate) mod keys;
pub(crate) mod pending;
mod reader;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::bus::{Announce, Bus};
use crate::cached_fn::{Key, Spec};
use crate::codec::Codec;
use crate::context::Context;
use crate::flight::FlightGuard;
use crate::stats::Counters;

pub(crate) use conn::{io_runtime, Redis, StoreError, RETRY_AFTER};
use keys::RedisKeys;
use pending::{Pending, Replay};

/// One function's Redis: its keys, its codec, and its kept invalidations.
pub(crate) struct RedisFn<V> {
    pub(crate) redis: &'static Redis,
    codec: Codec<V>,
    pub(crate) keys: RedisKeys,
    pub(crate) pending: Pending,
    namespace: String,
    /// Fills ended, per bucket of keys (see [`RedisFn::get_leading`]).
    fills_ended: [AtomicU32; FILL_BUCKETS],
}

/// Buckets of [`RedisFn::fills_ended`]: a leader looks again when any key of its bucket was
/// filled meanwhile.
const FILL_BUCKETS: usize = 128;

/// A value encoded for Redis, with its key and ttl: what a `SET` sends.
pub(crate) struct Write {
    digest: u128,
    name: String,
    bytes: Vec<u8>,
    ttl: Duration,
}

/// What [`RedisFn::write`] did with a value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Stored in Redis.
    Kept,
    /// Not stored: Redis is unavailable, the key's invalidation is still pending, or the value
    /// could not be stored (encoding, size cap, an error).
    No,
}

impl<V> RedisFn<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// The Redis store of the function `spec` describes, named `namespace`.
    pub(crate) fn new(spec: &Spec, namespace: &str, codec: Codec<V>) -> Self {
        let redis = Redis::global();
        Self {
            redis,
            codec,
            keys: RedisKeys {
                digest_prefix: format!("{}:{namespace}:v{}:", redis.prefix(), spec.version),
                name_prefix: format!("{}:", redis.prefix()),
                template: spec.key_template,
            },
            pending: Pending::default(),
            namespace: namespace.to_owned(),
            fills_ended: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    /// A Redis lookup: a hit decodes; a miss, a store error or undecodable bytes are all misses,
    /// and so is a key whose invalidation Redis has not confirmed yet.
    pub(crate) async fn get(&self, ctx: &Context<V>, key: &Key) -> Option<V> {
        if self.pending.blocks(key.digest()) {
            return None;
        }
        let on_stack = self.keys.digest_key_on_stack(key);
        let on_heap;
        let name = match &on_stack {
            Some((buf, len)) => &buf[..*len],
            None => {
                on_heap = self.keys.redis_key(key);
                on_heap.as_bytes()
            }
        };
        match self.redis.get(name).await {
            Ok(Some(bytes)) => {
                let value = self.codec.decode(&bytes);
                if value.is_none() {
                    Counters::bump(&ctx.counters.decode_errors);
                    tracing::debug!(namespace = %ctx.namespace, key = %String::from_utf8_lossy(name), "cachette: undecodable value in Redis, treated as a miss");
                }
                value
            }
            Ok(None) => None,
            Err(err) => {
                ctx.store_error(self.redis, "GET", &err);
                None
            }
        }
    }

    /// Stores a loaded value unless an invalidation voided its flight, in a task of its own that
    /// the caller does not wait for ([`FlightGuard::write_detached`]). The value is encoded
    /// here, on the caller's thread.
    pub(crate) fn fill(
        &'static self,
        ctx: &'static Context<V>,
        key: &Key,
        value: &V,
        ttl: Option<Duration>,
        flight: FlightGuard<'static, V>,
    ) {
        let Some(write) = self.encode(ctx, key, value, ttl) else {
            return;
        };
        flight.write_detached(value, async move {
            self.send(ctx, &write).await;
            // Before the flight is let go: see `get_leading`.
            self.fills_ended[bucket(write.digest)].fetch_add(1, Ordering::SeqCst);
        });
    }

    /// How many fills of keys of `digest`'s bucket have ended.
    pub(crate) fn fills_ended(&self, digest: u128) -> u32 {
        self.fills_ended[bucket(digest)].load(Ordering::SeqCst)
    }

    /// The leader's lookup: Redis again only if a fill of the key's bucket ended since the
    /// caller's lookup ([`Key::fills_seen`]). A fill lets its flight go once its `SET` is
    /// answered, and the caller's `GET` may have run before that `SET` (it goes on another
    /// connection): without a second look the key would load twice. A fill that ended before
    /// the count was read had its `SET` answered before the `GET` was sent, which saw it.
    pub(crate) async fn get_leading(&self, ctx: &Context<V>, key: &Key) -> Option<V> {
        if self.fills_ended(key.digest()) == key.fills_seen {
            return None;
        }
        self.get(ctx, key).await
    }

    /// Writes a value to Redis for `ttl` (`SET … PX`), unless Redis is unavailable or the
    /// key's invalidation is still pending. Without a ttl nothing is written: an entry in a
    /// shared store must expire.
    pub(crate) async fn write(
        &self,
        ctx: &Context<V>,
        key: &Key,
        value: &V,
        ttl: Option<Duration>,
    ) -> Written {
        match self.encode(ctx, key, value, ttl) {
            Some(write) => self.send(ctx, &write).await,
            None => Written::No,
        }
    }

    /// What [`RedisFn::write`] sends for `value`, or `None` (counted) if it sends nothing.
    pub(crate) fn encode(
        &self,
        ctx: &Context<V>,
        key: &Key,
        value: &V,
        ttl: Option<Duration>,
    ) -> Option<Write> {
        let ttl = ttl?;
        if self.pending.blocks(key.digest()) || !self.redis.available() {
            return None;
        }
        let mut bytes = Vec::new();
        if !self.codec.encode(value, &mut bytes) {
            Counters::bump(&ctx.counters.encode_errors);
            tracing::warn!(namespace = %ctx.namespace, format = self.codec.format().name(), "cachette: the value cannot be encoded so that it reads back as itself; not stored");
            return None;
        }
        if bytes.len() > self.redis.max_value_bytes() {
            Counters::bump(&ctx.counters.oversize);
            tracing::debug!(namespace = %ctx.namespace, bytes = bytes.len(), "cachette: value over the size cap; not stored");
            return None;
        }
        Some(Write {
            digest: key.digest(),
            name: self.keys.redis_key(key),
            bytes,
            ttl,
        })
    }

    /// Sends an encoded write, unless the key's invalidation became pending or Redis
    /// unavailable since it was encoded.
    pub(crate) async fn send(&self, ctx: &Context<V>, write: &Write) -> Written {
        if self.pending.blocks(write.digest) || !self.redis.available() {
            return Written::No;
        }
        // A `SET` that times out may still land, after an invalidation it would then outlive:
        // `set` sends a `DEL` behind it on its connection, which lands after it.
        if let Err(err) = self.redis.set(&write.name, &write.bytes, write.ttl).await {
            ctx.store_error(self.redis, "SET", &err);
            return Written::No;
        }
        Written::Kept
    }

    /// Drops the entry under `key`; a load of it already under way will not store its value.
    pub(crate) async fn invalidate(&'static self, ctx: &Context<V>, key: &Key) {
        ctx.flights.void(key.digest()).await;
        self.delete(ctx, key).await;
        // A leader that began after the first void may have read the old value from Redis
        // (`get_leading`) before the `DEL`: voided now, no call that begins after this
        // invalidation returned joins it.
        ctx.flights.void(key.digest()).await;
    }

    /// Stores `value` under `key` for `ttl`; if it cannot, drops the old entry instead.
    pub(crate) async fn put(
        &'static self,
        ctx: &Context<V>,
        key: &Key,
        value: &V,
        ttl: Option<Duration>,
    ) {
        ctx.flights.void(key.digest()).await;
        if self.write(ctx, key, value, ttl).await == Written::No {
            self.delete(ctx, key).await;
        }
        // As in `invalidate`: a leader may have read the old value before the write.
        ctx.flights.void(key.digest()).await;
    }

    /// Drops every entry; loads under way will not store their values.
    pub(crate) async fn clear(&'static self, ctx: &Context<V>) {
        ctx.flights.void_all().await;
        self.delete_all(ctx).await;
        // As in `invalidate`.
        ctx.flights.void_all().await;
    }

    /// Deletes `key` from Redis; if Redis does not confirm it, keeps it to send again (and
    /// until then this process neither reads nor writes the key there). Returns whether Redis
    /// confirmed it.
    pub(crate) async fn delete(&'static self, ctx: &Context<V>, key: &Key) -> bool {
        let name = self.keys.redis_key(key);
        match self.redis.delete(&name).await {
            Ok(()) => true,
            Err(err) => {
                ctx.store_error(self.redis, "DEL", &err);
                self.pending.delete(self, key.digest(), name);
                false
            }
        }
    }

    /// Deletes every entry of this function from Redis, or keeps the clear to run again.
    pub(crate) async fn delete_all(&'static self, ctx: &Context<V>) -> bool {
        let deleted = self
            .redis
            .delete_matching(&self.keys.pattern(), |key| self.keys.owns(key))
            .await;
        match deleted {
            Ok(_) => true,
            Err(err) => {
                ctx.store_error(self.redis, "clear", &err);
                self.pending.clear(self);
                false
            }
        }
    }

    /// Deletes the Redis keys `names` (of the keys `digests`), or keeps them to delete again
    /// and to announce once deleted.
    pub(crate) async fn delete_keys(
        &'static self,
        ctx: &Context<V>,
        digests: &[u128],
        names: Vec<String>,
    ) -> bool {
        match self.redis.delete_many(&names).await {
            Ok(()) => true,
            Err(err) => {
                ctx.store_error(self.redis, "DEL", &err);
                for (&digest, name) in digests.iter().zip(names) {
                    self.pending.delete(self, digest, name);
                }
                self.pending.announce(self, digests, false);
                false
            }
        }
    }

    /// Tells the other processes to drop these keys (or every key) from their memory tier:
    /// now if `now` (the deletes it announces were confirmed), else once the kept deletes are.
    pub(crate) async fn announce(
        &'static self,
        ctx: &Context<V>,
        digests: &[u128],
        what: Announce,
        now: bool,
    ) {
        let sent = now && {
            let published = self.publish(digests, what).await;
            if let Err(err) = &published {
                ctx.store_error(self.redis, "PUBLISH", err);
            }
            published.is_ok()
        };
        if !sent && what != Announce::Echo {
            self.pending.announce(self, digests, what == Announce::All);
        }
    }

    async fn publish(&self, digests: &[u128], what: Announce) -> Result<(), StoreError> {
        Bus::global()
            .announce(self.redis, &self.namespace, digests, what)
            .await
    }
}

impl<V> Replay for RedisFn<V>
where
    V: Clone + Send + Sync + 'static,
{
    fn pending(&self) -> &Pending {
        &self.pending
    }

    /// Sends the kept clear, then the kept deletes, then the announcements of what they
    /// deleted: another process must not drop its memory copy before Redis lost the key.
    fn replay(&'static self) -> crate::bus::BoxFuture<'static> {
        Box::pin(async move {
            if !self.redis.available() {
                return;
            }
            let kept = self.pending.snapshot();
            if let Some(seq) = kept.clear {
                let cleared = self
                    .redis
                    .delete_matching(&self.keys.pattern(), |key| self.keys.owns(key))
                    .await;
                if cleared.is_err() {
                    return;
                }
                self.pending.cleared(seq);
            }
            for chunk in kept.deletes.chunks(1000) {
                let names: Vec<String> = chunk.iter().map(|(_, name, _)| name.clone()).collect();
                if self.redis.delete_many(&names).await.is_err() {
                    return;
                }
                self.pending.deleted(chunk);
            }
            if kept.announce_all.is_none() && kept.announce.is_empty() {
                return;
            }
            let (digests, what) = match kept.announce_all {
                Some(_) => (Vec::new(), Announce::All),
                None => (
                    kept.announce.iter().map(|(d, _)| *d).collect(),
                    Announce::Keys,
                ),
            };
            if self.publish(&digests, what).await.is_ok() {
                self.pending.announced(&kept.announce, kept.announce_all);
            }
        })
    }
}

/// The bucket of [`RedisFn::fills_ended`] that counts `digest`'s fills.
fn bucket(digest: u128) -> usize {
    (digest as usize) % FILL_BUCKETS
}
