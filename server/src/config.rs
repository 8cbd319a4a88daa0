//! `zoo.cfg`: ZooKeeper's configuration file, with ZooKeeper's defaults.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A key has a value that makes no sense.
    #[error("{key}={value}: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A line is not `key=value`.
    #[error("line {line}: expected key=value, found {text:?}")]
    BadLine {
        /// The 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// The settings the standalone server uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `tickTime`: the basic time unit, for session expiry (default 2000 ms).
    pub tick_time: Duration,
    /// `dataDir`: snapshots (and the log unless `dataLogDir`), and `myid`.
    pub data_dir: PathBuf,
    /// `dataLogDir`: the txn log; defaults to `dataDir`.
    pub data_log_dir: PathBuf,
    /// `clientPort` and `clientPortAddress`.
    pub client_addr: SocketAddr,
    /// `maxClientCnxns`: connections per client IP (0: unlimited; default 60).
    pub max_client_cnxns: usize,
    /// `minSessionTimeout` (default 2 ticks).
    pub min_session_timeout: Duration,
    /// `maxSessionTimeout` (default 20 ticks).
    pub max_session_timeout: Duration,
    /// `snapCount`: txns between snapshots (default 100,000).
    pub snap_count: u64,
    /// `preAllocSize` in bytes (configured in KiB; default 64 MiB).
    pub pre_alloc_size: u64,
    /// `forceSync`: fsync the log before acknowledging (default yes).
    pub force_sync: bool,
    /// `autopurge.snapRetainCount` (default 3).
    pub snap_retain_count: usize,
    /// `autopurge.purgeInterval` in hours (0: off, the default).
    pub purge_interval_hours: u64,
    /// `jute.maxbuffer`: the largest request frame (default 0xfffff).
    pub jute_max_buffer: usize,
    /// `4lw.commands.whitelist` (default `srvr`; `*` for all).
    pub four_letter_words: Vec<String>,
    /// `extendedTypesEnabled`: TTL nodes (default false).
    pub extended_types: bool,
    /// `globalOutstandingLimit`: requests in flight before throttling (default 1000).
    pub global_outstanding_limit: usize,
    /// `superDigest` (`zookeeper.DigestAuthenticationProvider.superDigest`).
    pub super_digest: Option<String>,
    /// The server id from `dataDir/myid` (0 when absent, as for a standalone server).
    pub server_id: u64,
    /// Where the Prometheus endpoint listens: set when `metricsProvider.className` names
    /// ZooKeeper's `PrometheusMetricsProvider`, at `metricsProvider.httpHost` (default
    /// 0.0.0.0) and `metricsProvider.httpPort` (default 7000), as ZooKeeper does.
    pub metrics_addr: Option<SocketAddr>,
    /// Every key as read, for the `conf` four-letter word.
    pub raw: BTreeMap<String, String>,
}

impl Default for Config {
    /// Standalone on 127.0.0.1:2181 with data under `./data`: what the server runs without
    /// a `zoo.cfg`.
    fn default() -> Self {
        let tick_time = Duration::from_millis(2000);
        Self {
            tick_time,
            data_dir: PathBuf::from("data"),
            data_log_dir: PathBuf::from("data"),
            client_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2181),
            max_client_cnxns: 60,
            min_session_timeout: tick_time * 2,
            max_session_timeout: tick_time * 20,
            snap_count: 100_000,
            pre_alloc_size: 64 * 1024 * 1024,
            force_sync: true,
            snap_retain_count: 3,
            purge_interval_hours: 0,
            jute_max_buffer: zk_jute::DEFAULT_MAX_FRAME_LEN,
            four_letter_words: vec!["srvr".into()],
            extended_types: false,
            global_outstanding_limit: 1000,
            super_digest: None,
            server_id: 0,
            metrics_addr: None,
            raw: BTreeMap::new(),
        }
    }
}

/// Keys ZooKeeper knows that this server reads or deliberately ignores; anything else is
/// logged as unknown.
const KNOWN_PREFIXES: &[&str] = &[
    "server.",
    "group.",
    "weight.",
    "admin.",
    "metricsProvider.",
    "ssl.",
    "authProvider.",
    "zookeeper.",
    "quorum.",
    "sasl",
    "audit",
];

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::BadValue {
        key: key.into(),
        value: value.into(),
        reason: "not a number".into(),
    })
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(ConfigError::BadValue {
            key: key.into(),
            value: value.into(),
            reason: "expected yes/no or true/false".into(),
        }),
    }
}

impl Config {
    /// Reads a `zoo.cfg`, and `myid` from its `dataDir` when present.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut config = Self::parse(&text)?;
        let myid = config.data_dir.join("myid");
        if let Ok(id) = std::fs::read_to_string(&myid) {
            config.server_id = parse_num("myid", &id)?;
        }
        Ok(config)
    }

    /// Parses the text of a `zoo.cfg` (Java properties: `key=value`, `#` comments).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut raw = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, value)) = line.split_once(['=', ':']) else {
                return Err(ConfigError::BadLine {
                    line: i + 1,
                    text: line.into(),
                });
            };
            raw.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        let mut c = Config::default();
        if let Some(v) = raw.get("tickTime") {
            c.tick_time = Duration::from_millis(parse_num("tickTime", v)?);
            if c.tick_time.is_zero() {
                return Err(ConfigError::BadValue {
                    key: "tickTime".into(),
                    value: v.clone(),
                    reason: "must be positive".into(),
                });
            }
        }
        c.min_session_timeout = c.tick_time * 2;
        c.max_session_timeout = c.tick_time * 20;
        let mut port = c.client_addr.port();
        let mut host = c.client_addr.ip();
        let mut metrics_port: u16 = 7000;
        let mut metrics_host = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        for (key, value) in &raw {
            match key.as_str() {
                "tickTime" => {}
                "dataDir" => c.data_dir = PathBuf::from(value),
                "dataLogDir" => c.data_log_dir = PathBuf::from(value),
                "clientPort" => port = parse_num(key, value)?,
                "clientPortAddress" => {
                    host = value.parse().map_err(|_| ConfigError::BadValue {
                        key: key.clone(),
                        value: value.clone(),
                        reason: "not an IP address".into(),
                    })?
                }
                "maxClientCnxns" => c.max_client_cnxns = parse_num(key, value)?,
                "minSessionTimeout" => {
                    c.min_session_timeout = Duration::from_millis(parse_num(key, value)?)
                }
                "maxSessionTimeout" => {
                    c.max_session_timeout = Duration::from_millis(parse_num(key, value)?)
                }
                "snapCount" => c.snap_count = parse_num(key, value)?,
                "preAllocSize" => c.pre_alloc_size = parse_num::<u64>(key, value)? * 1024,
                "forceSync" => c.force_sync = parse_bool(key, value)?,
                "autopurge.snapRetainCount" => c.snap_retain_count = parse_num(key, value)?,
                "autopurge.purgeInterval" => c.purge_interval_hours = parse_num(key, value)?,
                "jute.maxbuffer" => c.jute_max_buffer = parse_num(key, value)?,
                "4lw.commands.whitelist" => {
                    c.four_letter_words = value
                        .split(',')
                        .map(|w| w.trim().to_owned())
                        .filter(|w| !w.is_empty())
                        .collect()
                }
                "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                    c.extended_types = parse_bool(key, value)?
                }
                "globalOutstandingLimit" => c.global_outstanding_limit = parse_num(key, value)?,
                "superDigest" | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                    c.super_digest = Some(value.clone())
                }
                "metricsProvider.httpPort" => metrics_port = parse_num(key, value)?,
                "metricsProvider.httpHost" => {
                    metrics_host = value.parse().map_err(|_| ConfigError::BadValue {
                        key: key.clone(),
                        value: value.clone(),
                        reason: "not an IP address".into(),
                    })?
                }
                "initLimit" | "syncLimit" | "standaloneEnabled" | "reconfigEnabled" | "skipACL"
                | "secureClientPort" | "serverCnxnFactory" | "dynamicConfigFile" => {}
                other if KNOWN_PREFIXES.iter().any(|p| other.starts_with(p)) => {}
                other => tracing::warn!(key = other, "unknown configuration key ignored"),
            }
        }
        if !raw.contains_key("dataLogDir") {
            c.data_log_dir = c.data_dir.clone();
        }
        if c.min_session_timeout > c.max_session_timeout {
            return Err(ConfigError::BadValue {
                key: "minSessionTimeout".into(),
                value: format!("{}", c.min_session_timeout.as_millis()),
                reason: "must not exceed maxSessionTimeout".into(),
            });
        }
        c.client_addr = SocketAddr::new(host, port);
        if raw
            .get("metricsProvider.className")
            .is_some_and(|class| class.ends_with(".PrometheusMetricsProvider"))
        {
            c.metrics_addr = Some(SocketAddr::new(metrics_host, metrics_port));
        }
        c.raw = raw;
        Ok(c)
    }

    /// Whether a four-letter word is allowed.
    pub fn allows(&self, word: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == "*" || w == word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typical_zoo_cfg() {
        let text = "# example\ntickTime=1000\ndataDir=/var/lib/zk\nclientPort=2182\n\
                    maxClientCnxns=10\nforceSync=no\n4lw.commands.whitelist=ruok, srvr\n\
                    autopurge.purgeInterval=1\nserver.1=h:2888:3888\nnoSuchKey=1\n";
        let c = Config::parse(text).unwrap();
        assert_eq!(c.tick_time, Duration::from_millis(1000));
        assert_eq!(c.data_log_dir, PathBuf::from("/var/lib/zk"));
        assert_eq!(c.client_addr.port(), 2182);
        assert_eq!(
            (c.min_session_timeout, c.max_session_timeout),
            (Duration::from_secs(2), Duration::from_secs(20))
        );
        assert!(!c.force_sync);
        assert!(c.allows("ruok") && !c.allows("dump"));
        assert_eq!(c.metrics_addr, None);
    }

    #[test]
    fn the_prometheus_provider_opens_the_metrics_endpoint() {
        let provider = "metricsProvider.className=\
                        org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n";
        let c = Config::parse(provider).unwrap();
        assert_eq!(c.metrics_addr, Some("0.0.0.0:7000".parse().unwrap()));
        let c = Config::parse(&format!(
            "{provider}metricsProvider.httpPort=7070\nmetricsProvider.httpHost=127.0.0.1\n"
        ))
        .unwrap();
        assert_eq!(c.metrics_addr, Some("127.0.0.1:7070".parse().unwrap()));
        assert_eq!(
            Config::parse("metricsProvider.httpPort=7070")
                .unwrap()
                .metrics_addr,
            None,
            "ZooKeeper's default provider has no endpoint"
        );
    }

    #[test]
    fn bad_values_are_fatal_with_the_key_named() {
        let err = Config::parse("clientPort=abc").unwrap_err();
        assert_eq!(err.to_string(), "clientPort=abc: not a number");
        assert!(Config::parse("forceSync=maybe").is_err());
        assert!(Config::parse("just a line").is_err());
    }
}
