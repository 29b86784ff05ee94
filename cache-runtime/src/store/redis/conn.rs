//! The shared store: Redis, standalone or Redis Cluster, reached through auto-reconnecting
//! multiplexed connections: one per process for writes, one per runtime for reads (below).
//!
//! Nothing here can fail a call. Every command is bounded by the configured timeout. A command
//! whose connection turns out to be broken (killed, closed by the server's idle `timeout` or a
//! proxy) is sent once more, on the connection made again in its place; a second connection
//! failure, or a timeout, opens a short *breaker* during which no command is even tried
//! (invalidations included: their caller keeps them, see `store::pending`), so a Redis that is
//! down or frozen costs at most one timeout per [`RETRY_AFTER`], not one per call. The
//! connection heals on its own (redis-rs's `ConnectionManager` reconnects; a cluster
//! connection is made again), and the cache is used again as soon as Redis answers.
//!
//! Writes — `SET`, `DEL`, `UNLINK`, `PUBLISH` — all go through one shared connection, driven by
//! a runtime of cachette's own on one background thread ([`io_runtime`]), which outlives every
//! other runtime (each `#[tokio::test]` has its own). Redis runs them in the order they were
//! sent: a `PUBLISH` is not seen before the `DEL` it announces, and an invalidation's `DEL`
//! never overtakes a fill's `SET` sent before it, even across a reconnection (a near
//! connection, below, would give no such order). A `SET` that times out may still land later,
//! so a `DEL` is sent behind it on the same connection, where Redis runs it after the `SET`
//! (at worst a miss).
//!
//! Reads (`GET`, the hit path) take a connection driven by the caller's own runtime, made on
//! its first read and kept for as long as that runtime lives (`Redis::reader`): a hit never
//! waits on another thread, as with a `ConnectionManager` an application makes and uses on
//! its runtime. Each runtime has its own (every `#[tokio::test]` has its own runtime; a service
//! usually one). A cluster is read through the shared connection.
//!
//! A read may overtake a write sent from another task. No caller can tell that from the two
//! calls running in the other order (each call waits for its own replies), but the tiered
//! store's memory tier can, and drops its copy again once a write is done. A read connection
//! that fails on a connection error is dropped, and the read is sent again on the shared one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisError};

use crate::clock::Clock;
use crate::config::Config;

use super::reader::Reader;

/// How long Redis is left alone after a connection failure before it is tried again.
pub(crate) const RETRY_AFTER: Duration = Duration::from_millis(500);

/// The process's connection to Redis, with its settings.
pub(crate) struct Redis {
    pub(super) target: Target,
    conn: RwLock<Option<Conn>>,
    /// The read connections, one per runtime that reads (see [`Redis::reader`]).
    pub(super) readers: RwLock<Vec<Reader>>,
    /// Bumped when a read connection is dropped from `readers`, so that no thread keeps using
    /// it (see `reader::Near`).
    pub(super) readers_changed: AtomicU64,
    connecting: AtomicBool,
    connected: Notify,
    /// Clock milliseconds before which no command is tried.
    open_until: AtomicU64,
    pub(super) timeout: Duration,
    prefix: String,
    max_value_bytes: usize,
    clock: Clock,
    last_warning: AtomicU64,
    suppressed_warnings: AtomicU64,
}

// One per process, in a static: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Target {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
    /// The configuration named no usable Redis.
    Off,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Why a command did not answer.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// The breaker is open or Redis is not configured: the command was not sent.
    Unavailable,
    /// No answer within the timeout.
    Timeout,
    /// Redis or the connection reported an error.
    Redis(RedisError),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable => f.write_str("Redis is unavailable"),
            StoreError::Timeout => f.write_str("Redis did not answer in time"),
            StoreError::Redis(err) => write!(f, "Redis error: {err}"),
        }
    }
}

impl std::error::Error for StoreError {}

static GLOBAL: OnceLock<Redis> = OnceLock::new();

impl Redis {
    /// The process's Redis, set up from [`Config::global`] on first use. Connecting is lazy:
    /// this never waits on the network.
    pub(crate) fn global() -> &'static Redis {
        GLOBAL.get_or_init(|| Redis::new(Config::global()))
    }

    /// A Redis for `config`; the connection is made on first use.
    pub(crate) fn new(config: &Config) -> Redis {
        let timeout = config.redis_timeout();
        let target = match config.redis_urls() {
            [] => Target::Off,
            [url] => match config.redis_client(url) {
                Ok(client) => Target::Single(client),
                Err(err) => {
                    tracing::warn!(%err, "cachette: cannot use Redis at {url}; caching without it");
                    Target::Off
                }
            },
            urls => match cluster_builder(config, urls)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .build()
            {
                Ok(client) => Target::Cluster(Box::new(client)),
                Err(err) => {
                    tracing::warn!(%err, "cachette: cannot use Redis Cluster {urls:?}; caching without it");
                    Target::Off
                }
            },
        };
        Redis {
            target,
            conn: RwLock::new(None),
            readers: RwLock::new(Vec::new()),
            readers_changed: AtomicU64::new(0),
            connecting: AtomicBool::new(false),
            connected: Notify::new(),
            open_until: AtomicU64::new(0),
            timeout,
            prefix: config.prefix().to_owned(),
            max_value_bytes: config.max_value_bytes(),
            clock: Clock::system(),
            last_warning: AtomicU64::new(0),
            suppressed_warnings: AtomicU64::new(0),
        }
    }

    /// The first part of every key.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The largest value stored.
    pub(crate) fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// The longest a command may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The bytes under `key`, if any, read through the caller runtime's own connection.
    pub(crate) async fn get(&'static self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        match self.read_nearest(&cmd).await {
            Some(answer) => answer,
            // Boxed: the shared connection's future is large, and a hit never takes it.
            None => Box::pin(self.query(&cmd)).await,
        }
    }

    /// Stores `bytes` under `key` for `ttl`, in one `SET … PX`, on the shared connection, where
    /// no invalidation sent after it can overtake it.
    pub(crate) async fn set(
        &'static self,
        key: &str,
        bytes: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(bytes);
        if ms % 1000 == 0 {
            cmd.arg("EX").arg(ms / 1000);
        } else {
            cmd.arg("PX").arg(ms);
        }
        // One that times out may still land: a `DEL` follows it on the same connection.
        let mut undo = redis::cmd("DEL");
        undo.arg(key);
        let answer = self.query::<()>(&cmd).await;
        if matches!(answer, Err(StoreError::Timeout)) {
            // Sent as is, past the breaker the timeout just opened.
            if let Some(conn) = self.current() {
                let timeout = self.timeout;
                io_runtime().spawn(async move {
                    let _ = tokio::time::timeout(
                        timeout,
                        Self::send::<redis::Value>(conn, None, &undo),
                    )
                    .await;
                });
            }
        }
        answer
    }

    /// Deletes `key`. Not sent while the breaker is open: the caller keeps what failed (see
    /// `store::pending`).
    pub(crate) async fn delete(&'static self, key: &str) -> Result<(), StoreError> {
        self.query::<()>(redis::cmd("DEL").arg(key)).await
    }

    /// Deletes `keys`: one `UNLINK` on a single server; on a cluster, where they sit in many
    /// slots, one `DEL` each, all in flight at once on the multiplexed connection.
    pub(crate) async fn delete_many(&'static self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        if matches!(self.target, Target::Cluster(_)) {
            let deletes = keys.iter().map(|key| self.delete(key));
            for result in futures_util::future::join_all(deletes).await {
                result?;
            }
            Ok(())
        } else {
            self.query::<()>(redis::cmd("UNLINK").arg(keys)).await
        }
    }

    /// Deletes every key matching the glob `pattern` (and accepted by `keep`), on every master.
    /// Returns how many were deleted.
    pub(crate) async fn delete_matching(
        &'static self,
        pattern: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<usize, StoreError> {
        let nodes: Vec<Option<String>> = match self.connection().await? {
            Conn::Single(_) => vec![None],
            Conn::Cluster(_) => self.masters().await?.into_iter().map(Some).collect(),
        };
        let mut deleted = 0;
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, keys): (u64, Vec<String>) =
                    self.query_at(node.as_deref(), &scan).await?;
                let keys: Vec<String> = keys.into_iter().filter(|k| keep(k)).collect();
                self.delete_many(&keys).await?;
                deleted += keys.len();
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// `host:port` of every master of the cluster.
    async fn masters(&'static self) -> Result<Vec<String>, StoreError> {
        let nodes: String = self
            .query(&redis::cmd("CLUSTER").arg("NODES").to_owned())
            .await?;
        Ok(nodes
            .lines()
            .filter(|line| {
                // Flags such as `master`, `myself,master`, `master,fail?`: a master suspected
                // of failing may still hold keys; only one marked `fail` is skipped.
                line.split(' ').nth(2).is_some_and(|flags| {
                    flags.split(',').any(|f| f == "master")
                        && !flags.split(',').any(|f| f == "fail")
                })
            })
            .filter_map(|line| line.split(' ').nth(1))
            .map(|addr| addr.split(['@', ',']).next().unwrap_or(addr).to_owned())
            .collect())
    }

    /// Runs `cmd` on the shared connection (the one writes take), bounded by the timeout; a
    /// connection failure opens the breaker, and while it is open the command is not sent.
    pub(crate) async fn query<T: FromRedisValue>(
        &'static self,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        self.query_at(None, cmd).await
    }

    /// Sends `cmd`, and once more if the connection turned out to be broken: a connection that
    /// died while idle (a server `timeout`, a proxy, `CLIENT KILL`) fails the first command
    /// sent on it and is made again for the next, so the retry reaches Redis. A second
    /// connection failure, or a timeout, opens the breaker.
    async fn query_at<T: FromRedisValue>(
        &'static self,
        node: Option<&str>,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        let mut retried = false;
        loop {
            let conn = self.connection().await?;
            match tokio::time::timeout(self.timeout, Self::send(conn, node, cmd)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) if connection_error(&err) && !retried && !err.is_timeout() => {
                    retried = true;
                }
                Ok(Err(err)) => {
                    if connection_error(&err) {
                        self.trip();
                    }
                    return Err(StoreError::Redis(err));
                }
                Err(_) => {
                    self.trip();
                    return Err(StoreError::Timeout);
                }
            }
        }
    }

    async fn send<T: FromRedisValue>(
        conn: Conn,
        node: Option<&str>,
        cmd: &Cmd,
    ) -> Result<T, RedisError> {
        match (conn, node) {
            (Conn::Single(mut c), _) => cmd.query_async::<T>(&mut c).await,
            (Conn::Cluster(mut c), None) => cmd.query_async::<T>(&mut c).await,
            (Conn::Cluster(mut c), Some(addr)) => {
                let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
                let routing = redis::cluster_routing::RoutingInfo::SingleNode(
                    redis::cluster_routing::SingleNodeRoutingInfo::ByAddress {
                        host: host.to_owned(),
                        port: port.parse().unwrap_or(6379),
                    },
                );
                let value = c.route_command(cmd.clone(), routing).await?;
                redis::from_redis_value(value).map_err(RedisError::from)
            }
        }
    }

    /// Whether commands are being sent (the breaker is closed and Redis is configured).
    pub(crate) fn available(&self) -> bool {
        !matches!(self.target, Target::Off)
            && self.clock.now_ms() >= self.open_until.load(Ordering::Relaxed)
    }

    pub(super) fn trip(&self) {
        let until = self.clock.now_ms() + RETRY_AFTER.as_millis() as u64;
        self.open_until.fetch_max(until, Ordering::Relaxed);
    }

    /// The settings of a single-server connection: no response timeout of its own, since every
    /// command is bounded by ours.
    pub(super) fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_max_delay(RETRY_AFTER)
    }

    fn current(&self) -> Option<Conn> {
        self.conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn connection(&'static self) -> Result<Conn, StoreError> {
        if !self.available() {
            return Err(StoreError::Unavailable);
        }
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let notified = self.connected.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        if !self.connecting.swap(true, Ordering::AcqRel) {
            io_runtime().spawn(self.connect());
        }
        // Wait for the attempt, but never longer than a command may take.
        let _ = tokio::time::timeout(self.timeout, notified).await;
        self.current().ok_or(StoreError::Unavailable)
    }

    /// Makes the connection, on the io runtime so that it is driven there for good.
    async fn connect(&'static self) {
        let made = match &self.target {
            Target::Off => None,
            Target::Single(client) => {
                match ConnectionManager::new_lazy_with_config(client.clone(), self.manager_config())
                {
                    Ok(mut manager) => {
                        // Connect now, here, so the connection's task lives on this runtime.
                        let ping = redis::cmd("PING");
                        let answered = tokio::time::timeout(
                            self.timeout.saturating_mul(4),
                            ping.query_async::<String>(&mut manager),
                        )
                        .await;
                        if !matches!(answered, Ok(Ok(_))) {
                            self.trip();
                        }
                        // Kept either way: the manager reconnects by itself.
                        Some(Conn::Single(manager))
                    }
                    Err(err) => {
                        tracing::warn!(%err, "cachette: cannot set up the Redis connection");
                        self.trip();
                        None
                    }
                }
            }
            Target::Cluster(client) => {
                match tokio::time::timeout(
                    self.timeout.saturating_mul(4),
                    client.get_async_connection(),
                )
                .await
                {
                    Ok(Ok(conn)) => Some(Conn::Cluster(conn)),
                    _ => {
                        self.trip();
                        None
                    }
                }
            }
        };
        if let Some(conn) = made {
            *self.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(conn);
        }
        self.connecting.store(false, Ordering::Release);
        self.connected.notify_waiters();
    }

    /// Logs a store error at warn, at most once a second per process, with how many were
    /// left unlogged since.
    pub(crate) fn warn(&self, namespace: &str, what: &str, err: &StoreError) {
        let now = self.clock.now_ms();
        let last = self.last_warning.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= 1000;
        if due
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let suppressed = self.suppressed_warnings.swap(0, Ordering::Relaxed);
            tracing::warn!(%namespace, %err, suppressed, "cachette: Redis {what} failed; the call went on without the cache");
        } else {
            self.suppressed_warnings.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A cluster client's builder for `urls`, trusting the configured certificate authorities.
fn cluster_builder(config: &Config, urls: &[String]) -> redis::cluster::ClusterClientBuilder {
    let builder = ClusterClient::builder(urls.iter().map(String::as_str));
    #[cfg(feature = "tls")]
    if let Some(certs) = config.tls_certificates() {
        return builder.certs(certs);
    }
    let _ = config;
    builder
}

thread_local! {
    /// Set on cachette's io thread, which uses the shared connection it drives.
    pub(super) static ON_IO_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether `err` says the connection failed, rather than Redis answering with an error.
pub(super) fn connection_error(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
}

/// The runtime that drives Redis connections: one thread, started on first use, for the life
/// of the process.
pub(crate) fn io_runtime() -> &'static tokio::runtime::Handle {
    static IO: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    IO.get_or_init(|| {
        crate::thread::runtime_thread("cachette-io", || ON_IO_THREAD.with(|on| on.set(true)))
    })
}
