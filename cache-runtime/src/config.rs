//! The process-wide configuration: read from the environment on first use, or installed at
//! start-up with [`Config::builder`].

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

/// Entries a memory store holds when neither `capacity = N` nor the configuration says otherwise.
pub const DEFAULT_MEMORY_CAPACITY: usize = 10_000;

/// The environment variable that sets [`ConfigBuilder::memory_capacity`].
pub const ENV_MEMORY_CAPACITY: &str = "CACHETTE_MEMORY_CAPACITY";
/// The environment variable that sets [`ConfigBuilder::redis_url`]: one URL, or several
/// comma-separated node URLs of a Redis Cluster.
pub const ENV_REDIS_URL: &str = "CACHETTE_REDIS_URL";
/// The environment variable that sets [`ConfigBuilder::prefix`].
pub const ENV_PREFIX: &str = "CACHETTE_PREFIX";
/// The environment variable that sets [`ConfigBuilder::redis_timeout`], in milliseconds.
pub const ENV_REDIS_TIMEOUT_MS: &str = "CACHETTE_REDIS_TIMEOUT_MS";
/// The environment variable that sets [`ConfigBuilder::max_value_bytes`].
pub const ENV_MAX_VALUE_BYTES: &str = "CACHETTE_MAX_VALUE_BYTES";

/// The Redis used when none is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The first part of every Redis key, unless configured.
pub const DEFAULT_PREFIX: &str = "cachette";
/// The longest any Redis command may take before the call goes on without it.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// The largest encoded value stored in Redis; a larger one is returned but not stored.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

static GLOBAL: OnceLock<Config> = OnceLock::new();

/// The runtime's settings. Build one with [`Config::builder`] and [`ConfigBuilder::install`] it
/// before the first cached call, or let the first call read the environment.
#[derive(Clone, Debug)]
pub struct Config {
    memory_capacity: usize,
    redis_urls: Vec<String>,
    prefix: String,
    redis_timeout: Duration,
    max_value_bytes: usize,
}

impl Config {
    /// A builder starting from the defaults (not from the environment).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            memory_capacity: DEFAULT_MEMORY_CAPACITY,
            redis_url: DEFAULT_REDIS_URL.to_owned(),
            prefix: DEFAULT_PREFIX.to_owned(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }

    /// A builder starting from the environment: `CACHETTE_REDIS_URL`, `CACHETTE_PREFIX`,
    /// `CACHETTE_REDIS_TIMEOUT_MS`, `CACHETTE_MAX_VALUE_BYTES`, `CACHETTE_MEMORY_CAPACITY`.
    ///
    /// # Errors
    /// A number variable that is set but cannot be parsed. (URLs are checked by
    /// [`ConfigBuilder::build`].)
    pub fn from_env() -> Result<ConfigBuilder, ConfigError> {
        let mut builder = Self::builder();
        if let Some(n) = env_number(ENV_MEMORY_CAPACITY)? {
            builder = builder.memory_capacity(n);
        }
        if let Ok(url) = std::env::var(ENV_REDIS_URL) {
            builder = builder.redis_url(url);
        }
        if let Ok(prefix) = std::env::var(ENV_PREFIX) {
            builder = builder.prefix(prefix);
        }
        if let Some(ms) = env_number(ENV_REDIS_TIMEOUT_MS)? {
            builder = builder.redis_timeout(Duration::from_millis(ms as u64));
        }
        if let Some(n) = env_number(ENV_MAX_VALUE_BYTES)? {
            builder = builder.max_value_bytes(n);
        }
        Ok(builder)
    }

    /// Entries a memory store holds unless its function says `capacity = N`.
    pub fn memory_capacity(&self) -> usize {
        self.memory_capacity
    }

    /// The Redis node URLs: one for a standalone server, several for a Redis Cluster; none when
    /// the configuration in the environment was unusable (Redis is then never used).
    pub fn redis_urls(&self) -> &[String] {
        &self.redis_urls
    }

    /// The first part of every Redis key and channel.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The longest a Redis command may take before the call goes on without it.
    pub fn redis_timeout(&self) -> Duration {
        self.redis_timeout
    }

    /// The largest encoded value stored in Redis.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// The configuration in force: the installed one, or else the environment's (a bad variable
    /// is logged and its default used, since a cache must not fail the calls it serves).
    pub fn global() -> &'static Config {
        GLOBAL.get_or_init(|| {
            Self::from_env().and_then(ConfigBuilder::build).unwrap_or_else(|err| {
                tracing::warn!(%err, "cachette: bad configuration in the environment: Redis is off, memory stores use the defaults");
                let mut config = Self::builder().into_config(Vec::new());
                config.redis_urls.clear();
                config
            })
        })
    }
}

/// Builds a [`Config`]. Settings are checked by [`ConfigBuilder::build`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ConfigBuilder {
    memory_capacity: usize,
    redis_url: String,
    prefix: String,
    redis_timeout: Duration,
    max_value_bytes: usize,
}

impl ConfigBuilder {
    /// Entries each memory store holds unless its function says `capacity = N`
    /// (default [`DEFAULT_MEMORY_CAPACITY`]).
    pub fn memory_capacity(mut self, entries: usize) -> Self {
        self.memory_capacity = entries;
        self
    }

    /// The Redis to use: `redis://[user:password@]host:port[/db]`, or several comma-separated
    /// node URLs of a Redis Cluster (default [`DEFAULT_REDIS_URL`]). TLS (`rediss://`) is not
    /// built in yet: such a URL is refused by [`ConfigBuilder::build`].
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = url.into();
        self
    }

    /// The first part of every Redis key (default [`DEFAULT_PREFIX`]).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a Redis command may take (default [`DEFAULT_REDIS_TIMEOUT`]): a read that
    /// takes longer is a miss, a write that takes longer is dropped.
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis_timeout = timeout;
        self
    }

    /// The largest encoded value stored in Redis (default [`DEFAULT_MAX_VALUE_BYTES`], 1 MiB):
    /// a larger value is returned to the caller but not stored.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A zero capacity, timeout or size; an empty prefix; a Redis URL that does not parse.
    pub fn build(self) -> Result<Config, ConfigError> {
        if self.memory_capacity == 0 {
            return Err(ConfigError::invalid("memory_capacity", "0"));
        }
        if self.redis_timeout.is_zero() || self.redis_timeout > Duration::from_secs(60) {
            return Err(ConfigError::invalid(
                "redis_timeout",
                format!("{:?} (from 1 ms to 60 s)", self.redis_timeout),
            ));
        }
        if self.max_value_bytes == 0 {
            return Err(ConfigError::invalid("max_value_bytes", "0"));
        }
        if self.prefix.is_empty() {
            return Err(ConfigError::invalid("prefix", "\"\""));
        }
        let urls: Vec<String> = self
            .redis_url
            .split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(ConfigError::bad_url(&self.redis_url, "no URL given"));
        }
        for url in &urls {
            redis::Client::open(url.as_str())
                .map_err(|err| ConfigError::bad_url(url, &err.to_string()))?;
        }
        Ok(self.into_config(urls))
    }

    /// Checks the settings and makes them the process's configuration.
    ///
    /// # Errors
    /// A bad setting, or a configuration already in force (installed before, or read from the
    /// environment by a cached call made earlier).
    pub fn install(self) -> Result<(), ConfigError> {
        let config = self.build()?;
        GLOBAL.set(config).map_err(|_| ConfigError {
            kind: ConfigErrorKind::AlreadyInstalled,
            detail: String::new(),
        })
    }

    fn into_config(self, redis_urls: Vec<String>) -> Config {
        Config {
            memory_capacity: self.memory_capacity,
            redis_urls,
            prefix: self.prefix,
            redis_timeout: self.redis_timeout,
            max_value_bytes: self.max_value_bytes,
        }
    }
}

fn env_number(name: &str) -> Result<Option<usize>, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .map(Some)
            .ok_or_else(|| ConfigError::invalid(name, raw)),
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Clone)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    detail: String,
}

/// What is wrong with a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A setting has a value it cannot take.
    Invalid,
    /// A Redis URL does not parse.
    BadUrl,
    /// A configuration is already in force.
    AlreadyInstalled,
}

impl ConfigError {
    fn invalid(setting: &str, value: impl fmt::Display) -> Self {
        Self {
            kind: ConfigErrorKind::Invalid,
            detail: format!("{setting} = {value}"),
        }
    }

    fn bad_url(url: &str, why: &str) -> Self {
        Self {
            kind: ConfigErrorKind::BadUrl,
            detail: format!("{url:?}: {why}"),
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ConfigErrorKind::Invalid => write!(
                f,
                "invalid cachette setting {}: expected a positive number",
                self.detail
            ),
            ConfigErrorKind::BadUrl => write!(
                f,
                "invalid Redis URL {}; expected redis://[user:password@]host:port[/db], or several \\
                 comma-separated node URLs for a Redis Cluster (TLS, rediss://, is not built in yet)",
                self.detail
            ),
            ConfigErrorKind::AlreadyInstalled => f.write_str(
                "a cachette configuration is already in force: install it before the first cached call",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_checks_what_it_is_given() {
        let config = Config::builder()
            .redis_url("redis://127.0.0.1:7001, redis://user:secret@127.0.0.1:7002/0")
            .prefix("app")
            .build()
            .unwrap();
        assert_eq!(config.redis_urls().len(), 2, "several URLs: a cluster");
        assert_eq!(config.prefix(), "app");
        assert_eq!(config.redis_timeout(), DEFAULT_REDIS_TIMEOUT);

        for bad in ["not a url", "http://127.0.0.1:6379", "", " , "] {
            let err = Config::builder().redis_url(bad).build().unwrap_err();
            assert_eq!(err.kind(), ConfigErrorKind::BadUrl, "{bad:?}");
            assert!(
                err.to_string().contains("redis://"),
                "says what to write: {err}"
            );
        }
        let tls = Config::builder()
            .redis_url("rediss://127.0.0.1:6380")
            .build();
        assert!(
            tls.is_err(),
            "TLS is not compiled in, and the builder says so up front"
        );

        let zero = Config::builder().memory_capacity(0).build().unwrap_err();
        assert_eq!(zero.kind(), ConfigErrorKind::Invalid);
        assert!(Config::builder().prefix("").build().is_err());
        assert!(Config::builder()
            .redis_timeout(Duration::ZERO)
            .build()
            .is_err());
    }

    #[test]
    fn a_second_install_is_refused() {
        Config::builder().prefix("first").install().unwrap();
        let again = Config::builder().prefix("second").install().unwrap_err();
        assert_eq!(again.kind(), ConfigErrorKind::AlreadyInstalled);
        assert_eq!(Config::global().prefix(), "first");
    }
}
