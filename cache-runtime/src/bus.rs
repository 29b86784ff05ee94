//! The invalidation bus of the tiered store: Redis pub/sub keeps every process's memory tier
//! (L1) in step.
//!
//! An invalidation of a tiered function deletes the key from Redis, drops the local L1 copy,
//! then publishes `{namespace, keys}` on `{prefix}:invalidations`; every subscribed process
//! drops those keys from its own L1. One message may carry many keys, or "all".
//!
//! While the subscription is down, L1 is neither read nor filled (every read goes to Redis),
//! and L1 is cleared when it drops and again when it is back: messages may have been missed
//! in between. On Redis Cluster, `PUBLISH` reaches every node, so one subscription to any node
//! hears all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Once, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::store::redis::{io_runtime, Redis};

/// What a process does with a message for one of its tiered functions.
pub(crate) trait Subscriber: Sync {
    /// Drops these keys from L1 (and whatever else it takes); the message counts as delivered
    /// once the future is done. An `echo` only asks for the L1 drop (see [`Message::echo`]).
    fn drop_keys<'a>(&'static self, digests: &'a [u128], echo: bool) -> BoxFuture<'a>;
    /// Drops every L1 entry (and whatever else it takes).
    fn drop_all(&'static self) -> BoxFuture<'static>;
    /// Drops every L1 entry at once, when messages may have been missed.
    fn clear(&self);
}

/// What [`Subscriber::drop_keys`] returns, and a replay (`store::pending`).
pub(crate) type BoxFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// What a message on the bus says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Announce {
    /// These keys changed: drop them, and delete again what you wrote lately.
    Keys,
    /// Every entry changed.
    All,
    /// These keys were deleted again after an invalidation: only drop them from memory.
    Echo,
}

/// One message on the bus.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct Message {
    /// The function's namespace.
    pub(crate) ns: String,
    /// Digests as 32 hex digits; empty with `all`.
    #[serde(default)]
    pub(crate) keys: Vec<String>,
    /// Every entry of the function.
    #[serde(default)]
    pub(crate) all: bool,
    /// The process that published it: a process does not act on its own messages (it has
    /// done what they say already, and a write-through's own message must not undo it).
    #[serde(default)]
    pub(crate) from: u64,
    /// Sent by a process that deleted keys again because its own write may have outlived an
    /// invalidation: receivers drop them from L1 and do nothing else, so one invalidation never
    /// sets off another round of deletes and messages.
    #[serde(default)]
    pub(crate) echo: bool,
}

/// This process's id on the bus: random, so that two processes never share one.
pub(crate) fn process_id() -> u64 {
    static ID: OnceLock<u64> = OnceLock::new();
    *ID.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish() | 1
    })
}

/// The process's bus.
pub(crate) struct Bus {
    subscribers: RwLock<HashMap<String, &'static dyn Subscriber>>,
    channel: String,
    live: AtomicBool,
    started: Once,
    /// Successful (re)subscriptions so far.
    subscriptions: AtomicU64,
    /// Woken when the first attempt to subscribe has ended, and on every subscription.
    subscribed: tokio::sync::Notify,
    /// Whether the first attempt to subscribe has ended, either way.
    tried: AtomicBool,
}

/// How long the subscriber waits before it tries again after losing its connection.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(100);

impl Bus {
    pub(crate) fn global() -> &'static Bus {
        static BUS: OnceLock<Bus> = OnceLock::new();
        BUS.get_or_init(|| Bus {
            subscribers: RwLock::new(HashMap::new()),
            channel: format!("{}:invalidations", Config::global().prefix()),
            live: AtomicBool::new(false),
            started: Once::new(),
            subscriptions: AtomicU64::new(0),
            subscribed: tokio::sync::Notify::new(),
            tried: AtomicBool::new(false),
        })
    }

    /// Registers a tiered function and starts the subscriber if it is not running yet.
    pub(crate) fn join(&'static self, namespace: &str, subscriber: &'static dyn Subscriber) {
        self.subscribers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(namespace.to_owned(), subscriber);
        self.started.call_once(|| {
            io_runtime().spawn(self.run());
        });
    }

    /// Whether messages are being received: L1 may be read and filled only then.
    #[inline]
    pub(crate) fn live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Publishes what happened to keys of the function `namespace`; failures are the
    /// caller's to count and keep.
    pub(crate) async fn announce(
        &self,
        redis: &'static Redis,
        namespace: &str,
        digests: &[u128],
        what: Announce,
    ) -> Result<(), crate::store::redis::StoreError> {
        let message = Message {
            ns: namespace.to_owned(),
            keys: digests.iter().map(|d| format!("{d:032x}")).collect(),
            all: what == Announce::All,
            from: process_id(),
            echo: what == Announce::Echo,
        };
        self.publish(redis, &message).await
    }

    /// Publishes a message; failures are the caller's to count.
    async fn publish(
        &self,
        redis: &'static Redis,
        message: &Message,
    ) -> Result<(), crate::store::redis::StoreError> {
        let payload = serde_json::to_string(message).unwrap_or_default();
        redis
            .query::<()>(redis::cmd("PUBLISH").arg(&self.channel).arg(payload))
            .await
    }

    fn clear_all(&self) {
        let subscribers: Vec<&'static dyn Subscriber> = self
            .subscribers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .copied()
            .collect();
        for subscriber in subscribers {
            subscriber.clear();
        }
    }

    async fn deliver(&self, payload: &[u8]) {
        let Ok(message) = serde_json::from_slice::<Message>(payload) else {
            tracing::debug!("cachette: ignored a malformed invalidation message");
            return;
        };
        if message.from == process_id() {
            return;
        }
        let subscriber = self
            .subscribers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&message.ns)
            .copied();
        let Some(subscriber) = subscriber else { return };
        if message.all {
            subscriber.drop_all().await;
        } else {
            let digests: Vec<u128> = message
                .keys
                .iter()
                .filter_map(|k| u128::from_str_radix(k, 16).ok())
                .collect();
            subscriber.drop_keys(&digests, message.echo).await;
        }
    }

    /// The subscriber: subscribe, deliver, and on any loss clear L1 and start again.
    async fn run(&'static self) {
        let urls: Vec<String> = Config::global().redis_urls().to_vec();
        if urls.is_empty() {
            return;
        }
        let timeout = Config::global()
            .redis_timeout()
            .max(Duration::from_millis(500));
        let mut next = 0usize;
        loop {
            let url = &urls[next % urls.len()];
            next += 1;
            let pubsub = async {
                let client = Config::global().redis_client(url)?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            match tokio::time::timeout(timeout, pubsub).await {
                Ok(Ok(pubsub)) => {
                    // Messages may have been missed while we were away.
                    self.clear_all();
                    self.live.store(true, Ordering::Release);
                    self.subscriptions.fetch_add(1, Ordering::Release);
                    self.tried.store(true, Ordering::Release);
                    self.subscribed.notify_waiters();
                    tracing::debug!(channel = %self.channel, "cachette: subscribed to invalidations");
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        self.deliver(message.get_payload_bytes()).await;
                    }
                    self.live.store(false, Ordering::Release);
                    self.clear_all();
                    tracing::warn!(channel = %self.channel, "cachette: lost the invalidation subscription; memory tiers cleared, resubscribing");
                }
                Ok(Err(err)) => {
                    tracing::debug!(%err, "cachette: cannot subscribe to invalidations yet");
                }
                Err(_) => {
                    tracing::debug!("cachette: subscribing to invalidations timed out");
                }
            }
            if !self.tried.swap(true, Ordering::AcqRel) {
                // A first attempt that failed: calls stop waiting for it.
                self.subscribed.notify_waiters();
            }
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
        }
    }

    /// Waits, at most `limit`, until the bus's first attempt to subscribe has ended. The first
    /// subscription voids every load under way (messages sent before it were missed), so a
    /// load that begins before it stores nothing: a process's first calls wait for it rather
    /// than each load its key again. Once that attempt has ended (a Redis that is down at
    /// start), nothing waits.
    pub(crate) async fn first_subscription(&self, limit: Duration) {
        if self.tried.load(Ordering::Acquire) {
            return;
        }
        let notified = self.subscribed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.tried.load(Ordering::Acquire) {
            return;
        }
        let _ = tokio::time::timeout(limit, notified).await;
    }

    /// Successful (re)subscriptions so far.
    pub(crate) fn subscriptions(&self) -> u64 {
        self.subscriptions.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::Message;

    #[test]
    fn messages_round_trip_and_default_their_fields() {
        let m = Message {
            ns: "a::b".into(),
            keys: vec![format!("{:032x}", 7u128), format!("{:032x}", u128::MAX)],
            all: false,
            from: super::process_id(),
            echo: true,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), m);
        let all: Message = serde_json::from_str(r#"{"ns":"x","all":true}"#).unwrap();
        assert!(all.all && all.keys.is_empty() && !all.echo);
        assert_ne!(
            all.from,
            super::process_id(),
            "a message from outside is not our own"
        );
    }
}
