//! The process-wide configuration: read from the environment on first use, or installed at
//! start-up with [`Config::builder`].

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use crate::clock::Clock;

/// Entries a memory store holds when neither `capacity = N` nor the configuration says otherwise.
pub(crate) const DEFAULT_MEMORY_CAPACITY: usize = 10_000;

/// The environment variable that sets [`ConfigBuilder::memory_capacity`].
pub(crate) const ENV_MEMORY_CAPACITY: &str = "CACHETTE_MEMORY_CAPACITY";
/// The environment variable that sets [`ConfigBuilder::redis_url`]: one URL, or several
/// comma-separated node URLs of a Redis Cluster.
pub(crate) const ENV_REDIS_URL: &str = "CACHETTE_REDIS_URL";
/// The environment variable that sets [`ConfigBuilder::prefix`].
pub(crate) const ENV_PREFIX: &str = "CACHETTE_PREFIX";
/// The environment variable that sets [`ConfigBuilder::redis_timeout`], in milliseconds.
pub(crate) const ENV_REDIS_TIMEOUT_MS: &str = "CACHETTE_REDIS_TIMEOUT_MS";
/// The environment variable that sets [`ConfigBuilder::max_value_bytes`].
pub(crate) const ENV_MAX_VALUE_BYTES: &str = "CACHETTE_MAX_VALUE_BYTES";
/// The environment variable naming a PEM file of certificate authorities to trust for
/// `rediss://` (see `ConfigBuilder::redis_tls_ca`).
#[cfg(feature = "tls")]
pub(crate) const ENV_REDIS_TLS_CA: &str = "CACHETTE_REDIS_TLS_CA";

/// The Redis used when none is configured.
pub(crate) const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The first part of every Redis key, unless configured.
pub(crate) const DEFAULT_PREFIX: &str = "cachette";
/// The longest any Redis command may take before the call goes on without it.
pub(crate) const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// The largest encoded value stored in Redis; a larger one is returned but not stored.
pub(crate) const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;
/// The longest Redis timeout [`ConfigBuilder::build`] accepts.
const MAX_REDIS_TIMEOUT: Duration = Duration::from_secs(60);

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
    clock: Clock,
    #[cfg(feature = "tls")]
    redis_tls_ca: Option<Pem>,
}

/// PEM text, shown by its size only.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct Pem(std::sync::Arc<[u8]>);

#[cfg(feature = "tls")]
impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes of PEM>", self.0.len())
    }
}

impl Config {
    /// A builder starting from the defaults (not from the environment).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            memory_capacity: DEFAULT_MEMORY_CAPACITY,
            redis_url: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            clock: Clock::system(),
            #[cfg(feature = "tls")]
            redis_tls_ca: None,
        }
    }

    /// A builder starting from the environment: `CACHETTE_REDIS_URL`, `CACHETTE_PREFIX`,
    /// `CACHETTE_REDIS_TIMEOUT_MS`, `CACHETTE_MAX_VALUE_BYTES`, `CACHETTE_MEMORY_CAPACITY`, and
    /// with the `tls` feature `CACHETTE_REDIS_TLS_CA` (a PEM file). Unset variables keep their
    /// defaults. This is the strict reading, for a program that wants to refuse a bad
    /// environment; [`Config::global`] instead replaces each bad setting with its default.
    ///
    /// # Errors
    /// A number variable that is set but is not a positive whole number, or a
    /// `CACHETTE_REDIS_TLS_CA` file that cannot be read (kind [`ConfigErrorKind::Tls`]).
    /// (Ranges, the prefix, URLs and certificates are checked by [`ConfigBuilder::build`].)
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
        #[cfg(feature = "tls")]
        if let Ok(path) = std::env::var(ENV_REDIS_TLS_CA) {
            let pem = read_pem(&path)
                .map_err(|why| ConfigError::tls(&format!("{ENV_REDIS_TLS_CA}: {why}")))?;
            builder.redis_tls_ca = Some(pem);
        }
        Ok(builder)
    }

    /// Entries a memory store holds unless its function says `capacity = N`.
    pub fn memory_capacity(&self) -> usize {
        self.memory_capacity
    }

    /// The Redis node URLs: one for a standalone server, several for a Redis Cluster; none when
    /// `CACHETTE_REDIS_URL` did not parse (Redis is then never used).
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

    /// The clock entries' ttls are measured on.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The client of one Redis node URL, trusting the configured certificate authorities for
    /// `rediss://`; what [`ConfigBuilder::build`] accepts is what connects.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        #[cfg(feature = "tls")]
        if is_tls(url) {
            // rustls needs one process-wide crypto provider, and cannot pick one itself when
            // another crate in the build turns on a second: ring's, unless the application
            // installed one (then this is an error, and changes nothing).
            let _ = rustls::crypto::ring::default_provider().install_default();
            if let Some(certs) = self.tls_certificates() {
                return redis::Client::build_with_tls(url, certs);
            }
        }
        redis::Client::open(url)
    }

    /// The certificates `rediss://` connections trust instead of the system's, if configured.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_certificates(&self) -> Option<redis::TlsCertificates> {
        self.redis_tls_ca
            .as_ref()
            .map(|pem| redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.0.to_vec()),
            })
    }

    /// The configuration in force: the installed one, or else the environment's, read on first
    /// use. A cache must not fail the calls it serves, nor go silent over one typo, so each bad
    /// setting in the environment is replaced by its own default, with a warning naming it: a
    /// number that does not parse, is zero or is out of range, or an empty `CACHETTE_PREFIX`.
    /// Only a `CACHETTE_REDIS_URL` that does not parse turns Redis off (there is no default
    /// for someone else's server); the memory settings still apply then.
    pub fn global() -> &'static Config {
        GLOBAL.get_or_init(|| {
            let (config, warnings) = Self::from_env_lenient(|name| std::env::var(name).ok());
            for warning in warnings {
                tracing::warn!("cachette: {warning}");
            }
            config
        })
    }

    /// The configuration in the variables `var` looks up, each unusable setting replaced by
    /// its default, and one warning per replaced setting (see [`Config::global`]).
    fn from_env_lenient(var: impl Fn(&str) -> Option<String>) -> (Config, Vec<String>) {
        let mut warnings = Vec::new();
        // An unset variable is the default, silently; a set one that `build` would refuse is
        // the default too, but said, so the typo gets fixed.
        let mut number = |name: &str, default: usize, max: usize| -> usize {
            let Some(raw) = var(name) else {
                return default;
            };
            match parse_positive(&raw) {
                Some(n) if n <= max => n,
                _ => {
                    let expected = if max == usize::MAX {
                        "a positive whole number".to_owned()
                    } else {
                        format!("a whole number from 1 to {max}")
                    };
                    warnings.push(format!(
                        "{name}={raw:?} is not {expected}: using the default, {default}"
                    ));
                    default
                }
            }
        };
        let memory_capacity = number(ENV_MEMORY_CAPACITY, DEFAULT_MEMORY_CAPACITY, usize::MAX);
        let timeout_ms = number(
            ENV_REDIS_TIMEOUT_MS,
            DEFAULT_REDIS_TIMEOUT.as_millis() as usize,
            MAX_REDIS_TIMEOUT.as_millis() as usize,
        );
        let max_value_bytes = number(ENV_MAX_VALUE_BYTES, DEFAULT_MAX_VALUE_BYTES, usize::MAX);
        let mut builder = Self::builder()
            .memory_capacity(memory_capacity)
            .redis_timeout(Duration::from_millis(timeout_ms as u64))
            .max_value_bytes(max_value_bytes);

        match var(ENV_PREFIX) {
            Some(prefix) if prefix.trim().is_empty() => warnings.push(format!(
                "{ENV_PREFIX}={prefix:?} is empty: using the default, {DEFAULT_PREFIX:?}"
            )),
            Some(prefix) => builder = builder.prefix(prefix),
            None => {}
        }
        if let Some(url) = var(ENV_REDIS_URL) {
            builder = builder.redis_url(url);
        }
        #[cfg(feature = "tls")]
        if let Some(path) = var(ENV_REDIS_TLS_CA) {
            let usable = read_pem(&path).and_then(|pem| check_ca(&pem).map(|()| pem));
            match usable {
                Ok(pem) => builder.redis_tls_ca = Some(pem),
                Err(why) => warnings.push(format!(
                    "{ENV_REDIS_TLS_CA}: {why}: trusting the system's certificate authorities"
                )),
            }
        }
        // Every other setting is now one `build` accepts, so only the URL (and the certificates
        // it is used with) can turn Redis off.
        let urls = builder.redis_urls().unwrap_or_else(|err| {
            warnings.push(format!(
                "{ENV_REDIS_URL}: {err}: Redis is off, memory stores still work"
            ));
            Vec::new()
        });
        (builder.into_config(urls), warnings)
    }
}

/// Builds a [`Config`]. Settings are checked by [`ConfigBuilder::build`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ConfigBuilder {
    memory_capacity: usize,
    /// `None`: [`DEFAULT_REDIS_URL`], not asked for.
    redis_url: Option<String>,
    prefix: String,
    redis_timeout: Duration,
    max_value_bytes: usize,
    clock: Clock,
    #[cfg(feature = "tls")]
    redis_tls_ca: Option<Pem>,
}

impl ConfigBuilder {
    /// Entries each memory store holds unless its function says `capacity = N`
    /// (default [`DEFAULT_MEMORY_CAPACITY`]).
    pub fn memory_capacity(mut self, entries: usize) -> Self {
        self.memory_capacity = entries;
        self
    }

    /// The Redis to use: `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS (the
    /// `tls` feature), or several comma-separated node URLs of a Redis Cluster (default
    /// [`DEFAULT_REDIS_URL`]). Without the `redis` feature, [`ConfigBuilder::build`] refuses
    /// any URL; without `tls`, a `rediss://` one.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Certificate authorities, PEM-encoded (one or more `BEGIN CERTIFICATE` blocks), that
    /// `rediss://` connections trust instead of the system's: a private CA, or a managed Redis
    /// whose CA is not in the system store. The environment's `CACHETTE_REDIS_TLS_CA` names a
    /// file holding them. Without this, the system's roots are trusted. The server's name
    /// (the URL's host) is always verified against its certificate.
    #[cfg(feature = "tls")]
    pub fn redis_tls_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.redis_tls_ca = Some(Pem(pem.into().into()));
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

    /// The clock entries' ttls in memory are measured on (default [`Clock::system`], the
    /// machine's monotonic clock). A test installs a [`Clock::manual`] clock to move time by
    /// hand instead of sleeping. Redis keeps its own time for the ttls it holds.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A zero capacity, timeout or size; an empty prefix; a Redis URL that does not parse, or
    /// that needs a feature that is off (`redis`, or `tls` for `rediss://`); certificate
    /// authorities that do not parse, or that no `rediss://` URL uses.
    pub fn build(self) -> Result<Config, ConfigError> {
        if self.memory_capacity == 0 {
            return Err(ConfigError::invalid("memory_capacity", "0"));
        }
        if self.redis_timeout.is_zero() || self.redis_timeout > MAX_REDIS_TIMEOUT {
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
        let urls = self.redis_urls()?;
        #[cfg(feature = "tls")]
        if let Some(pem) = &self.redis_tls_ca {
            if !urls.iter().any(|url| is_tls(url)) {
                return Err(ConfigError::tls(
                    "redis_tls_ca is set, but no Redis URL is rediss://",
                ));
            }
            check_ca(pem).map_err(|why| ConfigError::tls(&format!("redis_tls_ca: {why}")))?;
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
            clock: self.clock,
            #[cfg(feature = "tls")]
            redis_tls_ca: self.redis_tls_ca,
        }
    }

    /// The node URLs, each checked by making its client as [`Config::redis_client`] will.
    #[cfg(feature = "redis")]
    fn redis_urls(&self) -> Result<Vec<String>, ConfigError> {
        let list = self.redis_url.as_deref().unwrap_or(DEFAULT_REDIS_URL);
        let urls = split_urls(list)?;
        let config = self.clone().into_config(Vec::new());
        for url in &urls {
            #[cfg(not(feature = "tls"))]
            if is_tls(url) {
                return Err(ConfigError::feature_off(url, "tls"));
            }
            redis::Client::open(url.as_str())
                .map_err(|err| ConfigError::bad_url(url, &err.to_string()))?;
            config
                .redis_client(url)
                .map_err(|err| ConfigError::tls(&format!("{url:?}: {err}")))?;
        }
        Ok(urls)
    }

    /// Without the `redis` feature there is no Redis: a URL asked for is refused.
    #[cfg(not(feature = "redis"))]
    fn redis_urls(&self) -> Result<Vec<String>, ConfigError> {
        match &self.redis_url {
            None => Ok(Vec::new()),
            Some(list) => Err(ConfigError::feature_off(list, "redis")),
        }
    }
}

/// Checks that `pem` holds one certificate or more, and nothing that fails to parse.
#[cfg(feature = "tls")]
fn check_ca(pem: &Pem) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&pem.0) {
        cert.map_err(|err| format!("not PEM certificates ({err})"))?;
        found += 1;
    }
    if found == 0 {
        return Err("no `BEGIN CERTIFICATE` block in it".to_owned());
    }
    Ok(())
}

/// Whether `url` asks for TLS.
fn is_tls(url: &str) -> bool {
    url.trim_start().starts_with("rediss://")
}

/// The contents of the PEM file at `path`, or why it cannot be read.
#[cfg(feature = "tls")]
fn read_pem(path: &str) -> Result<Pem, String> {
    std::fs::read(path)
        .map(|bytes| Pem(bytes.into()))
        .map_err(|err| format!("cannot read {path:?} ({err})"))
}

/// The node URLs in a comma-separated list: at least one.
#[cfg(feature = "redis")]
fn split_urls(list: &str) -> Result<Vec<String>, ConfigError> {
    let urls: Vec<String> = list
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(ConfigError::bad_url(list, "no URL given"));
    }
    Ok(urls)
}

/// A positive whole number, surrounding spaces allowed; `None` for anything else, zero included.
fn parse_positive(raw: &str) -> Option<usize> {
    raw.trim().parse::<usize>().ok().filter(|&n| n > 0)
}

fn env_number(name: &str) -> Result<Option<usize>, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(raw) => parse_positive(&raw)
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
    /// A setting needs a Cargo feature of cachette that is off (`redis` for any Redis URL,
    /// `tls` for `rediss://`).
    FeatureOff,
    /// A TLS setting cannot be used: certificate authorities that do not parse, or that no
    /// `rediss://` URL uses.
    Tls,
}

impl ConfigError {
    fn invalid(setting: &str, value: impl fmt::Display) -> Self {
        Self {
            kind: ConfigErrorKind::Invalid,
            detail: format!("{setting} = {value}"),
        }
    }

    fn tls(why: &str) -> Self {
        Self {
            kind: ConfigErrorKind::Tls,
            detail: why.to_owned(),
        }
    }

    #[cfg(not(all(feature = "redis", feature = "tls")))]
    fn feature_off(url: &str, feature: &str) -> Self {
        Self {
            kind: ConfigErrorKind::FeatureOff,
            detail: format!("{url:?} needs cachette's `{feature}` feature"),
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
                "invalid Redis URL {}; expected redis://[user:password@]host:port[/db] (rediss:// \\
                 for TLS), or several comma-separated node URLs for a Redis Cluster",
                self.detail
            ),
            ConfigErrorKind::Tls => write!(f, "unusable TLS setting: {}", self.detail),
            ConfigErrorKind::FeatureOff => write!(
                f,
                "the Redis URL {}, which is off: turn it on in Cargo.toml \\
                 (`cachette = {{ version = \"0.1\", features = [...] }}`), or leave the URL unset",
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
    use std::collections::HashMap;

    /// A valid environment; each case below spoils one variable of it.
    const VALID: [(&str, &str); 5] = [
        (ENV_REDIS_URL, "redis://127.0.0.1:7001"),
        (ENV_PREFIX, "app"),
        (ENV_REDIS_TIMEOUT_MS, "250"),
        (ENV_MAX_VALUE_BYTES, "4096"),
        (ENV_MEMORY_CAPACITY, "500"),
    ];

    /// The lenient reading of `vars`, without touching the process's environment (tests run
    /// in parallel threads).
    fn read(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        Config::from_env_lenient(|name| vars.get(name).map(|v| (*v).to_owned()))
    }

    /// `VALID` with `name` set to `value`.
    fn valid_but(name: &str, value: &'static str) -> Vec<(&'static str, &'static str)> {
        VALID
            .iter()
            .map(|&(n, v)| (n, if n == name { value } else { v }))
            .collect()
    }

    /// Memory capacity, Redis timeout, largest value, prefix.
    fn settings(config: &Config) -> (usize, Duration, usize, &str) {
        (
            config.memory_capacity(),
            config.redis_timeout(),
            config.max_value_bytes(),
            config.prefix(),
        )
    }

    #[test]
    fn the_environment_read_leniently_is_used_as_given_when_valid() {
        let (config, warnings) = read(&VALID);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.redis_urls(), ["redis://127.0.0.1:7001"]);
        assert_eq!(
            settings(&config),
            (500, Duration::from_millis(250), 4096, "app")
        );

        let (config, warnings) = read(&valid_but(ENV_REDIS_TIMEOUT_MS, "60000"));
        assert!(warnings.is_empty(), "60 s is allowed: {warnings:?}");
        assert_eq!(config.redis_timeout(), Duration::from_secs(60));

        let (config, warnings) = read(&[]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.redis_urls(), [DEFAULT_REDIS_URL]);
        assert_eq!(
            settings(&config),
            (
                DEFAULT_MEMORY_CAPACITY,
                DEFAULT_REDIS_TIMEOUT,
                DEFAULT_MAX_VALUE_BYTES,
                DEFAULT_PREFIX
            )
        );
    }

    #[test]
    fn a_bad_number_or_prefix_falls_back_to_its_own_default_and_redis_stays_on() {
        let ms = Duration::from_millis;
        let cases = [
            (
                ENV_MAX_VALUE_BYTES,
                "1MB",
                (500, ms(250), DEFAULT_MAX_VALUE_BYTES, "app"),
                "1048576",
            ),
            (
                ENV_REDIS_TIMEOUT_MS,
                "0",
                (500, DEFAULT_REDIS_TIMEOUT, 4096, "app"),
                "100",
            ),
            (
                ENV_REDIS_TIMEOUT_MS,
                "70000",
                (500, DEFAULT_REDIS_TIMEOUT, 4096, "app"),
                "100",
            ),
            (
                ENV_MEMORY_CAPACITY,
                "10k",
                (DEFAULT_MEMORY_CAPACITY, ms(250), 4096, "app"),
                "10000",
            ),
            (
                ENV_MEMORY_CAPACITY,
                "0",
                (DEFAULT_MEMORY_CAPACITY, ms(250), 4096, "app"),
                "10000",
            ),
            (
                ENV_PREFIX,
                "",
                (500, ms(250), 4096, DEFAULT_PREFIX),
                DEFAULT_PREFIX,
            ),
            (
                ENV_PREFIX,
                "  ",
                (500, ms(250), 4096, DEFAULT_PREFIX),
                DEFAULT_PREFIX,
            ),
        ];
        for (name, bad, expected, default) in cases {
            let (config, warnings) = read(&valid_but(name, bad));
            assert_eq!(
                config.redis_urls(),
                ["redis://127.0.0.1:7001"],
                "{name}={bad:?} keeps Redis on"
            );
            assert_eq!(settings(&config), expected, "{name}={bad:?}");
            assert_eq!(warnings.len(), 1, "{name}={bad:?}: {warnings:?}");
            let warning = &warnings[0];
            assert!(
                warning.contains(name)
                    && warning.contains(&format!("{bad:?}"))
                    && warning.contains(default),
                "names the variable, the value and the default: {warning}"
            );
        }
    }

    #[test]
    fn a_bad_redis_url_turns_redis_off_and_keeps_the_memory_settings() {
        for bad in ["not a url", "http://127.0.0.1:6379", ""] {
            let (config, warnings) = read(&valid_but(ENV_REDIS_URL, bad));
            assert!(config.redis_urls().is_empty(), "{bad:?} turns Redis off");
            assert_eq!(config.memory_capacity(), 500, "{bad:?}");
            assert_eq!(warnings.len(), 1, "{bad:?}: {warnings:?}");
            assert!(warnings[0].contains(ENV_REDIS_URL), "{}", warnings[0]);
        }
    }

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
        if cfg!(feature = "tls") {
            assert_eq!(tls.unwrap().redis_urls(), ["rediss://127.0.0.1:6380"]);
        } else {
            let err = tls.unwrap_err();
            assert_eq!(err.kind(), ConfigErrorKind::FeatureOff);
            assert!(err.to_string().contains("`tls` feature"), "{err}");
        }

        let zero = Config::builder().memory_capacity(0).build().unwrap_err();
        assert_eq!(zero.kind(), ConfigErrorKind::Invalid);
        assert!(Config::builder().prefix("").build().is_err());
        assert!(Config::builder()
            .redis_timeout(Duration::ZERO)
            .build()
            .is_err());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn certificate_authorities_are_checked_and_need_a_tls_url() {
        let garbage = Config::builder()
            .redis_url("rediss://127.0.0.1:6380")
            .redis_tls_ca("not a certificate")
            .build()
            .unwrap_err();
        assert_eq!(garbage.kind(), ConfigErrorKind::Tls);
        assert!(
            garbage.to_string().contains("BEGIN CERTIFICATE"),
            "{garbage}"
        );

        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let broken = Config::builder()
            .redis_url("rediss://127.0.0.1:6380")
            .redis_tls_ca(broken)
            .build()
            .unwrap_err();
        assert_eq!(broken.kind(), ConfigErrorKind::Tls, "{broken}");

        let unused = Config::builder()
            .redis_url("redis://127.0.0.1:6380")
            .redis_tls_ca("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
            .build()
            .unwrap_err();
        assert_eq!(unused.kind(), ConfigErrorKind::Tls);
        assert!(unused.to_string().contains("rediss://"), "{unused}");

        let (config, warnings) = read(&[
            (ENV_REDIS_URL, "rediss://127.0.0.1:6380"),
            (ENV_REDIS_TLS_CA, "/nonexistent/ca.pem"),
        ]);
        assert_eq!(config.redis_urls(), ["rediss://127.0.0.1:6380"]);
        assert!(config.tls_certificates().is_none());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains(ENV_REDIS_TLS_CA), "{}", warnings[0]);
    }

    #[test]
    fn a_second_install_is_refused() {
        // Another test of this binary may have installed one first (the default, by calling a
        // cached function): either way, once one is installed the next is refused.
        let _ = Config::builder().prefix("first").install();
        let installed = Config::global().prefix().to_owned();
        let again = Config::builder().prefix("second").install().unwrap_err();
        assert_eq!(again.kind(), ConfigErrorKind::AlreadyInstalled);
        assert_eq!(Config::global().prefix(), installed);
    }
}
