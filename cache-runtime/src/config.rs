//! The process-wide configuration: read from the environment on first use, or installed at
//! start-up with [`Config::builder`].

use std::fmt;
use std::sync::OnceLock;

/// Entries a memory store holds when neither `capacity = N` nor the configuration says otherwise.
pub const DEFAULT_MEMORY_CAPACITY: usize = 10_000;

/// The environment variable that sets [`ConfigBuilder::memory_capacity`].
pub const ENV_MEMORY_CAPACITY: &str = "CACHETTE_MEMORY_CAPACITY";

static GLOBAL: OnceLock<Config> = OnceLock::new();

/// The runtime's settings. Build one with [`Config::builder`] and [`ConfigBuilder::install`] it
/// before the first cached call, or let the first call read the environment.
#[derive(Clone, Debug)]
pub struct Config {
    memory_capacity: usize,
}

impl Config {
    /// A builder starting from the defaults (not from the environment).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            memory_capacity: DEFAULT_MEMORY_CAPACITY,
        }
    }

    /// A builder starting from the environment (`CACHETTE_MEMORY_CAPACITY`).
    ///
    /// # Errors
    /// A variable that is set but cannot be parsed.
    pub fn from_env() -> Result<ConfigBuilder, ConfigError> {
        let mut builder = Self::builder();
        if let Ok(raw) = std::env::var(ENV_MEMORY_CAPACITY) {
            let capacity = raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| ConfigError::invalid(ENV_MEMORY_CAPACITY, raw))?;
            builder = builder.memory_capacity(capacity);
        }
        Ok(builder)
    }

    /// Entries a memory store holds unless its function says `capacity = N`.
    pub fn memory_capacity(&self) -> usize {
        self.memory_capacity
    }

    /// The configuration in force: the installed one, or else the environment's (a bad variable
    /// is logged and its default used, since a cache must not fail the calls it serves).
    pub fn global() -> &'static Config {
        GLOBAL.get_or_init(|| {
            Self::from_env().and_then(ConfigBuilder::build).unwrap_or_else(|err| {
                tracing::warn!(%err, "cachette: bad configuration in the environment, using defaults");
                Self::builder().into_config()
            })
        })
    }
}

/// Builds a [`Config`]. Settings are checked by [`ConfigBuilder::build`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ConfigBuilder {
    memory_capacity: usize,
}

impl ConfigBuilder {
    /// Entries each memory store holds unless its function says `capacity = N`
    /// (default [`DEFAULT_MEMORY_CAPACITY`]).
    pub fn memory_capacity(mut self, entries: usize) -> Self {
        self.memory_capacity = entries;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A zero capacity.
    pub fn build(self) -> Result<Config, ConfigError> {
        if self.memory_capacity == 0 {
            return Err(ConfigError::invalid("memory_capacity", "0"));
        }
        Ok(self.into_config())
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

    fn into_config(self) -> Config {
        Config {
            memory_capacity: self.memory_capacity,
        }
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
            ConfigErrorKind::AlreadyInstalled => f.write_str(
                "a cachette configuration is already in force: install it before the first cached call",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
