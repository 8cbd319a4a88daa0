//! `zoo.cfg`: ZooKeeper's configuration file, with ZooKeeper's defaults.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
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
    /// The file is not in Java's properties syntax.
    #[error(transparent)]
    Syntax(#[from] crate::properties::MalformedEscape),
    /// A `server.N`, `group.N` or `weight.N` line is wrong.
    #[error(transparent)]
    Ensemble(#[from] zk_election::ConfigError),
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
    /// Where clients connect: `clientPort` on `clientPortAddress` (every interface when
    /// only the port is set), or this member's client address on its own `server.N`
    /// line; 127.0.0.1:2181 with no zoo.cfg.
    pub client_addr: SocketAddr,
    /// Whether plain clients are served at `client_addr`: not when the file sets a
    /// `secureClientPort` and no `clientPort` (nor a client address on this member's
    /// `server.N` line), as ZooKeeper then opens the secure port alone.
    pub client_port_enabled: bool,
    /// `secureClientPort` on `secureClientPortAddress` (every interface by default):
    /// where TLS clients connect.
    pub secure_client_addr: Option<SocketAddr>,
    /// `client.portUnification`: the plain client port takes TLS clients too, told apart
    /// by their first byte.
    pub port_unification: bool,
    /// The `ssl.*` settings of the secure client port.
    pub tls: crate::tls::TlsSettings,
    /// `sslQuorum`: the members' election and quorum channels are mutual TLS, with the
    /// `ssl.quorum.*` settings, and each peer's server id proven by its certificate.
    pub ssl_quorum: bool,
    /// The `ssl.quorum.*` settings.
    pub quorum_tls: crate::tls::TlsSettings,
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
    /// `admin.enableServer`: whether the AdminServer (HTTP commands) runs. ZooKeeper's
    /// default, and a parsed `zoo.cfg`'s, is on; [`Config::default`] (for embedding) has
    /// it off.
    pub admin_enabled: bool,
    /// `admin.serverAddress` and `admin.serverPort` (0.0.0.0:8080).
    pub admin_addr: SocketAddr,
    /// `admin.commandURL`: where the commands are (`/commands`).
    pub admin_command_url: String,
    /// The text of the `zoo.cfg` read (the AdminServer's `initial_configuration`).
    pub initial_text: Option<String>,
    /// `znode.container.checkIntervalMs`: how often empty containers and expired TTL
    /// nodes are looked for (default a minute).
    pub container_check_interval: Duration,
    /// `znode.container.maxPerMinute`: at most this many of them deleted a minute
    /// (default 10,000).
    pub container_max_per_minute: u64,
    /// `znode.container.maxNeverUsedIntervalMs`: a container that never had a child goes
    /// after this long (0, the default: never).
    pub container_max_never_used: Duration,
    /// `fsync.warningthresholdms`: an fsync of the txn log slower than this is logged
    /// (default 1 s).
    pub fsync_warning: Duration,
    /// `enforce.auth.enabled` with `enforce.auth.schemes`: the schemes one of which a
    /// connection must have authenticated with before its requests are served (empty:
    /// no enforcement, the default). `digest` and `ip` are available here, and `x509`
    /// with a secure client port.
    pub enforce_auth_schemes: Vec<String>,
    /// `sessionRequireClientSASLAuth` (or `enforce.auth.schemes` naming `sasl`): a client
    /// that fails SASL gets `SessionClosedRequireSaslAuth` rather than `AuthFailed`.
    pub sasl_required: bool,
    /// The DIGEST-MD5 users (`user_<name>` options) of the JAAS login section
    /// `zookeeper.sasl.serverconfig` (default `Server`) in the file that
    /// `java.security.auth.login.config` names; `None` without one: SASL requests fail.
    pub sasl_users: Option<BTreeMap<String, String>>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: user `super`'s password,
    /// over the JAAS file's.
    pub sasl_super_password: Option<String>,
    /// `zookeeper.superUser` (and `zookeeper.superUser.*`): SASL users who are `super`.
    pub sasl_super_users: Vec<String>,
    /// `enableEagerACLCheck`: a learner checks ACLs before forwarding a write (default
    /// off; read now, used by an ensemble's members).
    pub enable_eager_acl_check: bool,
    /// The `server.N` lines, by id.
    pub servers: BTreeMap<u64, zk_election::ServerLine>,
    /// The ensemble as the election sees it (members, roles, majority or `group.N`/
    /// `weight.N` quorums), when there are `server.N` lines.
    pub election: Option<zk_election::Config>,
    /// The membership's lines as read (`server.N`, `group.N`, `weight.N`), in key order.
    pub membership_entries: Vec<(String, String)>,
    /// `initLimit`: ticks a learner may take to connect and sync (required in an ensemble).
    pub init_limit: u32,
    /// `syncLimit`: ticks a learner may fall behind (required in an ensemble).
    pub sync_limit: u32,
    /// `peerType`: whether this server votes (`participant`, the default) or observes.
    pub peer_type: zk_election::Role,
    /// `standaloneEnabled` (default true): a single `server.N` line runs standalone.
    pub standalone_enabled: bool,
    /// `quorumListenOnAllIPs`: quorum and election ports listen on every address.
    pub quorum_listen_on_all_ips: bool,
    /// `syncEnabled` (default true): observers log and snapshot what they learn.
    pub sync_enabled: bool,
    /// `leaderServes` (default yes): the leader takes client connections.
    pub leader_serves: bool,
    /// `learner.maxConcurrentSnapSyncs` (default 10).
    pub max_concurrent_snap_syncs: usize,
    /// `learner.maxConcurrentDiffSyncs` (default 100).
    pub max_concurrent_diff_syncs: usize,
    /// `localSessionsEnabled`.
    pub local_sessions_enabled: bool,
    /// `localSessionsUpgradingEnabled`.
    pub local_sessions_upgrading_enabled: bool,
    /// `readonlymode.enabled` (a system property): a member cut off from its quorum
    /// serves read-only clients.
    pub read_only_mode: bool,
    /// `reconfigEnabled` (default false): the `reconfig` operation changes the
    /// membership while the ensemble serves.
    pub reconfig_enabled: bool,
    /// The membership's version: the zxid of the reconfiguration that made it, from the
    /// name of the dynamic configuration file (`zoo.cfg.dynamic.<hex>`) or a `version=`
    /// line; 0 for a membership no reconfiguration made.
    pub config_version: i64,
    /// `dynamicConfigFile`: where the membership is kept, apart from the static settings.
    pub dynamic_config_file: Option<PathBuf>,
    /// The `zoo.cfg` read, if the configuration came from a file.
    pub config_file: Option<PathBuf>,
    /// Every key of the file as read (trimmed), for the `conf` four-letter word.
    pub raw: BTreeMap<String, String>,
    /// The Java system properties the settings were read from: `-D` flags of
    /// `SERVER_JVMFLAGS` and `JVMFLAGS`, then every key of the file that ZooKeeper does
    /// not read itself, under `zookeeper.<key>`, as ZooKeeper copies them.
    pub system_properties: BTreeMap<String, String>,
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
            client_port_enabled: true,
            secure_client_addr: None,
            port_unification: false,
            tls: crate::tls::TlsSettings::default(),
            ssl_quorum: false,
            quorum_tls: crate::tls::TlsSettings {
                prefix: "ssl.quorum".into(),
                ..crate::tls::TlsSettings::default()
            },
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
            admin_enabled: false,
            admin_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080),
            admin_command_url: "/commands".into(),
            initial_text: None,
            container_check_interval: Duration::from_secs(60),
            container_max_per_minute: 10_000,
            container_max_never_used: Duration::ZERO,
            fsync_warning: Duration::from_secs(1),
            enable_eager_acl_check: false,
            enforce_auth_schemes: Vec::new(),
            sasl_required: false,
            sasl_users: None,
            sasl_super_password: None,
            sasl_super_users: Vec::new(),
            servers: BTreeMap::new(),
            election: None,
            membership_entries: Vec::new(),
            init_limit: 0,
            sync_limit: 0,
            peer_type: zk_election::Role::Participant,
            standalone_enabled: true,
            quorum_listen_on_all_ips: false,
            sync_enabled: true,
            leader_serves: true,
            max_concurrent_snap_syncs: 10,
            max_concurrent_diff_syncs: 100,
            local_sessions_enabled: false,
            local_sessions_upgrading_enabled: false,
            read_only_mode: false,
            reconfig_enabled: false,
            config_version: 0,
            dynamic_config_file: None,
            config_file: None,
            raw: BTreeMap::new(),
            system_properties: BTreeMap::new(),
        }
    }
}

/// The keys ZooKeeper's `QuorumPeerConfig` reads itself (by name or prefix); every other
/// key of the file becomes the system property `zookeeper.<key>`.
const FILE_KEYS: &[&str] = &[
    "dataDir",
    "dataLogDir",
    "clientPort",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "clientPortAddress",
    "secureClientPort",
    "secureClientPortAddress",
    "observerMasterPort",
    "clientPortListenBacklog",
    "tickTime",
    "maxClientCnxns",
    "minSessionTimeout",
    "maxSessionTimeout",
    "initLimit",
    "syncLimit",
    "connectToLearnerMasterLimit",
    "electionAlg",
    "quorumListenOnAllIPs",
    "peerType",
    "syncEnabled",
    "dynamicConfigFile",
    "autopurge.snapRetainCount",
    "autopurge.purgeInterval",
    "standaloneEnabled",
    "reconfigEnabled",
    "sslQuorum",
    "portUnification",
    "sslQuorumReloadCertFiles",
    "client.portUnification",
    "quorum.cnxn.threads.size",
];
/// The keys of a dynamic configuration file (ZooKeeper's `parseDynamicConfig`).
const DYNAMIC_PREFIXES: &[&str] = &["server.", "group", "weight"];
const FILE_PREFIXES: &[&str] = &[
    "server.",
    "group",
    "weight",
    "metricsProvider.",
    "multiAddress.",
    "quorum.auth.",
    "jvm.pause.",
];

/// System properties a ZooKeeper server reads that this one reads or deliberately
/// ignores; a key of the file that ends up as none of them is logged as unknown.
const KNOWN_PROPERTIES: &[&str] = &[
    "zookeeper.snapCount",
    "zookeeper.snapSizeLimitInKb",
    "zookeeper.preAllocSize",
    "zookeeper.forceSync",
    "zookeeper.jute.maxbuffer",
    "zookeeper.4lw.commands.whitelist",
    "zookeeper.extendedTypesEnabled",
    "zookeeper.globalOutstandingLimit",
    "zookeeper.DigestAuthenticationProvider.superDigest",
    "zookeeper.znode.container.checkIntervalMs",
    "zookeeper.znode.container.maxPerMinute",
    "zookeeper.znode.container.maxNeverUsedIntervalMs",
    "zookeeper.fsync.warningthresholdms",
    "zookeeper.enableEagerACLCheck",
    "zookeeper.skipACL",
    "zookeeper.serverCnxnFactory",
    "zookeeper.digest.enabled",
    "zookeeper.commitLogCount",
    "zookeeper.leaderServes",
    "zookeeper.maxCnxns",
    // A single-file configuration's membership version, read as ZooKeeper reads it.
    "zookeeper.version",
];
const KNOWN_PROPERTY_PREFIXES: &[&str] = &[
    "zookeeper.admin.",
    "zookeeper.ssl.",
    "zookeeper.authProvider.",
    "zookeeper.audit.",
    "zookeeper.sasl",
    "zookeeper.enforce.auth.",
    "zookeeper.sessionRequireClientSASLAuth",
    "zookeeper.superUser",
    "zookeeper.SASLAuthenticationProvider.",
    "zookeeper.X509AuthenticationProvider.",
    "zookeeper.client.portUnification",
    "zookeeper.learner.",
    "zookeeper.leader.",
    "zookeeper.request_throttle",
    "zookeeper.connection_throttle",
];

/// ZooKeeper's `ProviderRegistry`: `ip` and `digest` always, `x509` when a client port
/// takes TLS (`tls`), and those an `authProvider.N` system property names.
fn auth_provider_registered(system: &BTreeMap<String, String>, tls: bool, scheme: &str) -> bool {
    let named = |class: &str| {
        system.iter().any(|(k, v)| {
            k.starts_with("zookeeper.authProvider.")
                && v.trim()
                    .strip_suffix(class)
                    .is_some_and(|package| package.ends_with('.'))
        })
    };
    match scheme {
        "ip" | "digest" => true,
        "x509" => tls || named("X509AuthenticationProvider"),
        "sasl" => named("SASLAuthenticationProvider"),
        _ => false,
    }
}

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

fn parse_ip(key: &str, value: &str) -> Result<IpAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::BadValue {
        key: key.into(),
        value: value.into(),
        reason: "not an IP address".into(),
    })
}

/// The `-Dkey=value` settings of JVM flags, as `zkServer.sh` passes `$JVMFLAGS` (split at
/// blanks, no quoting); a later one wins.
pub fn jvm_system_properties(flags: &str) -> BTreeMap<String, String> {
    flags
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-D"))
        .map(|setting| match setting.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (setting.to_owned(), String::new()),
        })
        .collect()
}

impl Config {
    /// Reads a `zoo.cfg`, with the `-D` settings of the `SERVER_JVMFLAGS` and `JVMFLAGS`
    /// environment variables (as `zkServer.sh` hands them to the JVM), and `myid` from its
    /// `dataDir` when present.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let flags = ["SERVER_JVMFLAGS", "JVMFLAGS"]
            .map(|name| std::env::var(name).unwrap_or_default())
            .join(" ");
        let mut config = Self::parse_with(&text, jvm_system_properties(&flags))?;
        config.config_file = Some(path.to_path_buf());
        if let Some(dynamic) = config.dynamic_config_file.clone() {
            config.read_dynamic_file(&dynamic)?;
        }
        let myid = config.data_dir.join("myid");
        match std::fs::read_to_string(&myid) {
            Ok(id) => config.server_id = parse_num("myid", &id)?,
            Err(_) if config.is_distributed() => {
                return Err(ConfigError::BadValue {
                    key: "myid".into(),
                    value: myid.display().to_string(),
                    reason: "missing: an ensemble's member needs its id there".into(),
                });
            }
            Err(_) => {}
        }
        if config.is_distributed() && !config.servers.contains_key(&config.server_id) {
            return Err(ConfigError::BadValue {
                key: "myid".into(),
                value: config.server_id.to_string(),
                reason: "not among the server.N lines".into(),
            });
        }
        config.own_client_address()?;
        Ok(config)
    }

    /// Reads the membership from a dynamic configuration file, as ZooKeeper does: only
    /// `server.N`, `group.N` and `weight.N` lines, no `version=` line (the version is the
    /// hexadecimal suffix of the file's name).
    fn read_dynamic_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let bad = |key: &str, reason: &str| ConfigError::BadValue {
            key: key.into(),
            value: path.display().to_string(),
            reason: reason.into(),
        };
        let mut entries = Vec::new();
        for (key, value) in crate::properties::parse(&text)? {
            let key = key.trim().to_owned();
            if key == "version" {
                return Err(bad(
                    "dynamicConfigFile",
                    "dynamic file shouldn't have version inside",
                ));
            }
            if !DYNAMIC_PREFIXES.iter().any(|p| key.starts_with(p)) {
                return Err(bad(&key, "Unrecognised parameter in the dynamic file"));
            }
            entries.push((key, value.trim().to_owned()));
        }
        self.config_version = path
            .extension()
            .and_then(|suffix| i64::from_str_radix(&suffix.to_string_lossy(), 16).ok())
            .unwrap_or(0);
        self.set_membership_entries(&entries)
    }

    /// Makes `entries` (`server.N`, `group.N`, `weight.N` keys and values) the membership.
    pub fn set_membership_entries(
        &mut self,
        entries: &[(String, String)],
    ) -> Result<(), ConfigError> {
        let mut servers = BTreeMap::new();
        for (key, value) in entries {
            if let Some(sid) = key.strip_prefix("server.") {
                let sid = parse_num(key, sid)?;
                servers.insert(sid, zk_election::ServerLine::parse(sid, value)?);
            }
        }
        self.election = if servers.is_empty() {
            None
        } else {
            let mut election = zk_election::Config::from_entries(
                entries.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )?;
            election.reconfig_enabled = self.reconfig_enabled;
            election.version = self.config_version;
            Some(election)
        };
        self.servers = servers;
        self.membership_entries = entries.to_vec();
        self.check_ensemble_limits()
    }

    /// The same configuration with `membership` (a reconfiguration's) as its own, this
    /// server's client address taken from its line there when the line has one (as
    /// ZooKeeper's `processReconfig` takes it).
    pub fn with_membership(
        &self,
        membership: &zk_replication::Membership,
    ) -> Result<Config, ConfigError> {
        let entries: Vec<(String, String)> = membership
            .text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut config = self.clone();
        config.config_version = membership.version;
        config.set_membership_entries(&entries)?;
        if let Some(addr) = config.line_client_addr() {
            config.client_addr = addr;
            config.client_port_enabled = true;
        }
        Ok(config)
    }

    /// An ensemble needs `initLimit` and `syncLimit`.
    fn check_ensemble_limits(&self) -> Result<(), ConfigError> {
        if self.is_distributed() {
            for (key, value) in [
                ("initLimit", self.init_limit),
                ("syncLimit", self.sync_limit),
            ] {
                if value == 0 {
                    return Err(ConfigError::BadValue {
                        key: key.into(),
                        value: "0".into(),
                        reason: "must be set in an ensemble".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether an authentication provider for `scheme` is registered, as ZooKeeper's
    /// `ProviderRegistry` has them: `ip` and `digest` always, `x509` with a secure client
    /// port, and those an `authProvider.N` names.
    pub fn has_auth_provider(&self, scheme: &str) -> bool {
        auth_provider_registered(&self.system_properties, self.serves_tls(), scheme)
    }

    /// Whether some client port takes TLS clients (a secure port, or port unification):
    /// ZooKeeper then registers the x509 provider itself.
    fn serves_tls(&self) -> bool {
        self.secure_client_addr.is_some() || self.port_unification
    }

    /// The client address on this server's own `server.N` line, resolved, if it has one.
    fn line_client_addr(&self) -> Option<SocketAddr> {
        let (host, port) = self.servers.get(&self.server_id)?.client.clone()?;
        let resolved: Vec<SocketAddr> = (host.as_str(), port).to_socket_addrs().ok()?.collect();
        resolved
            .iter()
            .find(|a| a.is_ipv4())
            .or(resolved.first())
            .copied()
    }

    /// ZooKeeper's `setupClientPort`: the client address on this server's own `server.N`
    /// line (after `;`) is where it serves clients. A `clientPort` (with
    /// `clientPortAddress`) that says otherwise is refused: another address, or another
    /// port when the static one is the wildcard.
    pub fn own_client_address(&mut self) -> Result<(), ConfigError> {
        let Some((host, port)) = self
            .servers
            .get(&self.server_id)
            .and_then(|line| line.client.clone())
        else {
            return Ok(());
        };
        let bad = |reason: String| ConfigError::BadValue {
            key: format!("server.{}", self.server_id),
            value: format!("{host}:{port}"),
            reason,
        };
        let resolved: Vec<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| bad(format!("the client address does not resolve: {e}")))?
            .collect();
        let addr = resolved
            .iter()
            .find(|a| a.is_ipv4())
            .or(resolved.first())
            .copied()
            .ok_or_else(|| bad("the client address does not resolve".into()))?;
        if self.raw.contains_key("clientPort") {
            let stat = self.client_addr;
            let differs = if stat.ip().is_unspecified() {
                stat.port() != addr.port()
            } else {
                stat != addr
            };
            if differs {
                return Err(bad(format!(
                    "the client address for this server in the static config is {stat}, \
                     different from the one on its server line, {addr}"
                )));
            }
        }
        self.client_addr = addr;
        self.client_port_enabled = true;
        Ok(())
    }

    /// Parses the text of a `zoo.cfg` (Java properties) with no system properties set.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, BTreeMap::new())
    }

    /// Parses the text of a `zoo.cfg` over the system properties `system` (`-D` flags):
    /// as ZooKeeper, keys it does not read itself are copied into `zookeeper.<key>`
    /// system properties, which override the flags, and the settings kept there are read
    /// from them.
    pub fn parse_with(
        text: &str,
        mut system: BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut raw = BTreeMap::new();
        for (key, value) in crate::properties::parse(text)? {
            raw.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        for (key, value) in &raw {
            let read_by_zookeeper = FILE_KEYS.contains(&key.as_str())
                || FILE_PREFIXES.iter().any(|p| key.starts_with(p));
            if read_by_zookeeper {
                continue;
            }
            let property = format!("zookeeper.{key}");
            if !KNOWN_PROPERTIES.contains(&property.as_str())
                && !KNOWN_PROPERTY_PREFIXES
                    .iter()
                    .any(|p| property.starts_with(p))
            {
                tracing::warn!(key = key.as_str(), "unknown configuration key ignored");
            }
            system.insert(property, value.clone());
        }
        let mut c = Config {
            // ZooKeeper's default for a server started from a file.
            admin_enabled: true,
            initial_text: Some(text.to_owned()),
            ..Config::default()
        };
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
        // As ZooKeeper: without `clientPortAddress`, every interface (the built-in
        // default, with no zoo.cfg at all, keeps to loopback).
        let mut host = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let mut secure_port: Option<u16> = None;
        let mut secure_host = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let mut metrics_port: u16 = 7000;
        let mut metrics_host = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        for (key, value) in &raw {
            match key.as_str() {
                "dataDir" => c.data_dir = PathBuf::from(value),
                "dataLogDir" => c.data_log_dir = PathBuf::from(value),
                "clientPort" => port = parse_num(key, value)?,
                "clientPortAddress" => host = parse_ip(key, value)?,
                "secureClientPort" => secure_port = Some(parse_num(key, value)?),
                "secureClientPortAddress" => secure_host = parse_ip(key, value)?,
                "client.portUnification" => c.port_unification = parse_bool(key, value)?,
                "maxClientCnxns" => c.max_client_cnxns = parse_num(key, value)?,
                "minSessionTimeout" => {
                    c.min_session_timeout = Duration::from_millis(parse_num(key, value)?)
                }
                "maxSessionTimeout" => {
                    c.max_session_timeout = Duration::from_millis(parse_num(key, value)?)
                }
                "autopurge.snapRetainCount" => c.snap_retain_count = parse_num(key, value)?,
                "autopurge.purgeInterval" => c.purge_interval_hours = parse_num(key, value)?,
                "initLimit" => c.init_limit = parse_num(key, value)?,
                "syncLimit" => c.sync_limit = parse_num(key, value)?,
                "electionAlg" if parse_num::<i32>(key, value)? != 3 => {
                    return Err(ConfigError::BadValue {
                        key: key.clone(),
                        value: value.clone(),
                        reason: "only 3 (fast leader election) is supported".into(),
                    });
                }
                "peerType" => {
                    c.peer_type = match value.to_ascii_lowercase().as_str() {
                        "participant" => zk_election::Role::Participant,
                        "observer" => zk_election::Role::Observer,
                        _ => {
                            return Err(ConfigError::BadValue {
                                key: key.clone(),
                                value: value.clone(),
                                reason: "expected participant or observer".into(),
                            });
                        }
                    }
                }
                "standaloneEnabled" => c.standalone_enabled = parse_bool(key, value)?,
                "reconfigEnabled" => c.reconfig_enabled = parse_bool(key, value)?,
                "quorumListenOnAllIPs" => c.quorum_listen_on_all_ips = parse_bool(key, value)?,
                "sslQuorum" => c.ssl_quorum = parse_bool(key, value)?,
                "portUnification" if parse_bool(key, value)? => tracing::warn!(
                    "portUnification (plaintext and TLS peers on one port, for a rolling \
                     upgrade to sslQuorum) is not supported; peers speak TLS only with \
                     sslQuorum=true"
                ),
                "sslQuorumReloadCertFiles" if parse_bool(key, value)? => tracing::warn!(
                    "sslQuorumReloadCertFiles is not supported: a member reads its stores at \
                     start"
                ),
                "syncEnabled" => c.sync_enabled = parse_bool(key, value)?,
                "localSessionsEnabled" => c.local_sessions_enabled = parse_bool(key, value)?,
                "localSessionsUpgradingEnabled" => {
                    c.local_sessions_upgrading_enabled = parse_bool(key, value)?
                }
                "metricsProvider.httpPort" => metrics_port = parse_num(key, value)?,
                "metricsProvider.httpHost" => metrics_host = parse_ip(key, value)?,
                _ => {}
            }
        }
        c.secure_client_addr = secure_port.map(|port| SocketAddr::new(secure_host, port));
        if let Some(v) = system.get("zookeeper.client.portUnification") {
            c.port_unification = parse_bool("client.portUnification", v)?;
        }
        c.read_system_properties(&system)?;
        let dynamic: Vec<(String, String)> = raw
            .iter()
            .filter(|(k, _)| DYNAMIC_PREFIXES.iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(file) = raw.get("dynamicConfigFile") {
            if let Some((key, _)) = dynamic.first() {
                return Err(ConfigError::BadValue {
                    key: key.clone(),
                    value: String::new(),
                    reason: "must be in a separate dynamic config file".into(),
                });
            }
            c.dynamic_config_file = Some(PathBuf::from(file));
        } else {
            c.set_membership_entries(&dynamic)?;
            if let Some(v) = raw.get("version") {
                c.config_version =
                    i64::from_str_radix(v, 16).map_err(|_| ConfigError::BadValue {
                        key: "version".into(),
                        value: v.clone(),
                        reason: "not a hexadecimal number".into(),
                    })?;
                if let Some(election) = c.election.as_mut() {
                    election.version = c.config_version;
                }
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
        c.client_port_enabled = raw.contains_key("clientPort") || secure_port.is_none();
        c.tls = crate::tls::TlsSettings::from_properties(&system).map_err(|e| {
            ConfigError::BadValue {
                key: "ssl.*".into(),
                value: String::new(),
                reason: e.to_string(),
            }
        })?;
        c.quorum_tls = crate::tls::TlsSettings::quorum_from_properties(&system).map_err(|e| {
            ConfigError::BadValue {
                key: "ssl.quorum.*".into(),
                value: String::new(),
                reason: e.to_string(),
            }
        })?;
        if raw
            .get("metricsProvider.className")
            .is_some_and(|class| class.ends_with(".PrometheusMetricsProvider"))
        {
            c.metrics_addr = Some(SocketAddr::new(metrics_host, metrics_port));
        }
        c.raw = raw;
        c.system_properties = system;
        Ok(c)
    }

    /// Reads the settings ZooKeeper keeps in system properties, under their names.
    fn read_system_properties(
        &mut self,
        system: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        let get = |name: &'static str| system.get(name).map(|v| (name, v.trim()));
        // The first of several names that is set.
        let first = |names: &[&'static str]| names.iter().find_map(|name| get(name));
        if let Some((key, v)) = get("zookeeper.snapCount") {
            self.snap_count = parse_num(key, v)?;
        }
        if let Some((key, v)) = get("zookeeper.preAllocSize") {
            self.pre_alloc_size = parse_num::<u64>(key, v)? * 1024;
        }
        if let Some((_, v)) = get("zookeeper.forceSync") {
            // ZooKeeper: anything but "no" syncs.
            self.force_sync = v != "no";
        }
        if let Some((key, v)) = first(&["jute.maxbuffer", "zookeeper.jute.maxbuffer"]) {
            self.jute_max_buffer = parse_num(key, v)?;
        }
        if let Some((_, v)) = get("zookeeper.4lw.commands.whitelist") {
            self.four_letter_words = v
                .split(',')
                .map(|w| w.trim().to_owned())
                .filter(|w| !w.is_empty())
                .collect();
        }
        if let Some((key, v)) = get("zookeeper.extendedTypesEnabled") {
            self.extended_types = parse_bool(key, v)?;
        }
        if let Some((key, v)) = get("zookeeper.globalOutstandingLimit") {
            self.global_outstanding_limit = parse_num(key, v)?;
        }
        if let Some((key, v)) = get("zookeeper.admin.enableServer") {
            self.admin_enabled = parse_bool(key, v)?;
        }
        if let Some((key, v)) = get("zookeeper.admin.serverAddress") {
            self.admin_addr.set_ip(parse_ip(key, v)?);
        }
        if let Some((key, v)) = get("zookeeper.admin.serverPort") {
            self.admin_addr.set_port(parse_num(key, v)?);
        }
        if let Some((_, v)) = get("zookeeper.admin.commandURL") {
            self.admin_command_url = format!("/{}", v.trim_matches('/'));
        }
        if let Some((_, v)) = get("zookeeper.DigestAuthenticationProvider.superDigest") {
            self.super_digest = Some(v.to_owned());
        }
        // ZooKeeper reads these three without the prefix only; a zoo.cfg line (which
        // lands under the prefix) is honoured too.
        if let Some((key, v)) = first(&[
            "znode.container.checkIntervalMs",
            "zookeeper.znode.container.checkIntervalMs",
        ]) {
            self.container_check_interval = Duration::from_millis(parse_num(key, v)?);
        }
        if let Some((key, v)) = first(&[
            "znode.container.maxPerMinute",
            "zookeeper.znode.container.maxPerMinute",
        ]) {
            self.container_max_per_minute = parse_num(key, v)?;
        }
        if let Some((key, v)) = first(&[
            "znode.container.maxNeverUsedIntervalMs",
            "zookeeper.znode.container.maxNeverUsedIntervalMs",
        ]) {
            self.container_max_never_used = Duration::from_millis(parse_num(key, v)?);
        }
        if let Some((key, v)) = first(&[
            "fsync.warningthresholdms",
            "zookeeper.fsync.warningthresholdms",
        ]) {
            self.fsync_warning = Duration::from_millis(parse_num(key, v)?);
        }
        if let Some((_, v)) = get("zookeeper.leaderServes") {
            // ZooKeeper: anything but "no" serves.
            self.leader_serves = !v.eq_ignore_ascii_case("no");
        }
        if let Some((key, v)) = get("zookeeper.learner.maxConcurrentSnapSyncs") {
            self.max_concurrent_snap_syncs = parse_num(key, v)?;
        }
        if let Some((key, v)) = get("zookeeper.learner.maxConcurrentDiffSyncs") {
            self.max_concurrent_diff_syncs = parse_num(key, v)?;
        }
        if let Some((_, v)) = get("readonlymode.enabled") {
            self.read_only_mode = v.eq_ignore_ascii_case("true");
        }
        let require_sasl = get("zookeeper.sessionRequireClientSASLAuth")
            .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"));
        let enforce = get("zookeeper.enforce.auth.enabled")
            .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"));
        if require_sasl || enforce {
            // As ZooKeeper's AuthenticationHelper: sessionRequireClientSASLAuth wins.
            let schemes: Vec<String> = if require_sasl {
                vec!["sasl".to_owned()]
            } else {
                get("zookeeper.enforce.auth.schemes")
                    .map(|(_, v)| v)
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
            // As ZooKeeper's AuthenticationHelper refuses to start.
            if schemes.is_empty() {
                return Err(ConfigError::BadValue {
                    key: "enforce.auth.schemes".into(),
                    value: String::new(),
                    reason: "must be set when enforce.auth.enabled is true".into(),
                });
            }
            let tls = self.serves_tls();
            if let Some(missing) = schemes
                .iter()
                .find(|s| !auth_provider_registered(system, tls, s))
            {
                return Err(ConfigError::BadValue {
                    key: "enforce.auth.schemes".into(),
                    value: schemes.join(","),
                    reason: format!("authentication scheme {missing} is not available"),
                });
            }
            self.sasl_required = schemes.iter().any(|s| s == "sasl");
            self.enforce_auth_schemes = schemes;
        }
        if let Some((key, path)) = get("java.security.auth.login.config") {
            let section = get("zookeeper.sasl.serverconfig").map_or("Server", |(_, v)| v);
            let bad = |reason: String| ConfigError::BadValue {
                key: key.into(),
                value: path.into(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            let modules =
                zk_jute::sasl::jaas_section(&text, section).map_err(|e| bad(e.to_string()))?;
            self.sasl_users = modules.map(|m| crate::sasl::digest_users(&m));
        }
        if let Some((_, v)) = get("zookeeper.SASLAuthenticationProvider.superPassword") {
            self.sasl_super_password = Some(v.to_owned());
        }
        self.sasl_super_users = system
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("zookeeper.superUser")
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            })
            .map(|(_, v)| v.trim().to_owned())
            .collect();
        if let Some((key, v)) = get("zookeeper.enableEagerACLCheck") {
            self.enable_eager_acl_check = parse_bool(key, v)?;
        }
        if get("zookeeper.skipACL").is_some_and(|(_, v)| v == "yes") {
            tracing::warn!("skipACL=yes is not supported: ACLs are still checked");
        }
        Ok(())
    }

    /// Whether this server is an ensemble's member, as ZooKeeper decides it
    /// (`isDistributed`): `server.N` lines with more than one voter, or any at all with
    /// `standaloneEnabled=false`.
    pub fn is_distributed(&self) -> bool {
        self.election.as_ref().is_some_and(|election| {
            !self.standalone_enabled || election.verifier.voters().len() > 1
        })
    }

    /// The ensemble's membership as ZooKeeper writes it to `/zookeeper/config` and
    /// shows it in `conf`: [`membership_lines`](Self::membership_lines), then
    /// `version=<hex>`, lines joined by `\n` with none after the last. `None` standalone.
    pub fn membership(&self) -> Option<String> {
        if !self.is_distributed() {
            return None;
        }
        let mut text = self.membership_lines();
        text.push_str(&format!("\nversion={:x}", self.config_version));
        Some(text)
    }

    /// The membership's lines as ZooKeeper's quorum verifier prints them: a
    /// `server.N=host:quorumPort:electionPort:role[;host:port]` line a member, in the
    /// order of Java's `HashMap` of ids, then the `group.N` and `weight.N` lines of a
    /// hierarchical quorum; joined by `\n`.
    pub fn membership_lines(&self) -> String {
        let mut lines: Vec<String> = java_long_map_order(self.servers.keys().copied())
            .into_iter()
            .filter_map(|sid| self.servers.get(&sid))
            .map(|s| format!("server.{}={}", s.sid, server_line_text(s)))
            .collect();
        for (key, value) in &self.membership_entries {
            if key.starts_with("group") || key.starts_with("weight") {
                lines.push(format!("{key}={value}"));
            }
        }
        lines.join("\n")
    }

    /// Whether a four-letter word is allowed.
    pub fn allows(&self, word: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == "*" || w == word)
    }
}

/// A `server.N` line's value as ZooKeeper's `QuorumServer.toString` prints it: the
/// role always, the client address when the line has one.
pub(crate) fn server_line_text(s: &zk_election::ServerLine) -> String {
    let role = match s.role {
        zk_election::Role::Observer => "observer",
        _ => "participant",
    };
    let mut line = format!("{}:{}:{role}", s.quorum_addr(), s.election_port);
    if let Some((host, port)) = &s.client {
        line.push_str(&format!(";{host}:{port}"));
    }
    line
}

/// The order in which Java's `HashMap<Long, _>` (default capacity, load factor 0.75)
/// iterates `ids`: by bucket of the spread hash, ids of one bucket in ascending order.
pub(crate) fn java_long_map_order(ids: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let ids: Vec<u64> = ids.into_iter().collect();
    let mut capacity: usize = 16;
    while ids.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let bucket = |id: u64| {
        let h = (id ^ (id >> 32)) as u32;
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut ordered = ids;
    ordered.sort_by_key(|id| (bucket(*id), *id));
    ordered
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
    fn keys_zookeeper_copies_to_system_properties_are_read_there() {
        let text = "tickTime 1000\ndataDir: /d\n\
                    DigestAuthenticationProvider.superDigest=super:abc\\\n   def\n\
                    znode.container.checkIntervalMs=1000\nfsync.warningthresholdms=50\n\
                    globalOutstandingLimit=7\nsnapCount=10\nforceSync=maybe\n\
                    server.1=127.0.0.1:2888:3888;2181\nserver.2=h2:2888:3888:observer\n";
        let c = Config::parse(text).unwrap();
        assert_eq!(c.tick_time, Duration::from_secs(1));
        assert_eq!(c.data_dir, PathBuf::from("/d"));
        assert_eq!(c.super_digest.as_deref(), Some("super:abcdef"));
        assert_eq!(c.container_check_interval, Duration::from_secs(1));
        assert_eq!(c.fsync_warning, Duration::from_millis(50));
        assert_eq!((c.global_outstanding_limit, c.snap_count), (7, 10));
        assert!(c.force_sync, "only \"no\" turns it off, as in ZooKeeper");
        assert_eq!(
            c.system_properties
                .get("zookeeper.snapCount")
                .map(String::as_str),
            Some("10")
        );
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.servers[&1].client, Some(("0.0.0.0".into(), 2181)));
        assert_eq!(c.servers[&2].role, zk_election::Role::Observer);
    }

    #[test]
    fn jvm_flags_set_system_properties_and_the_file_overrides_them() {
        let flags = "-Xmx1g -Dznode.container.checkIntervalMs=500 \
                     -Dzookeeper.DigestAuthenticationProvider.superDigest=a:b \
                     -Dzookeeper.snapCount=5 -Djute.maxbuffer=4096 -Dflag";
        let system = jvm_system_properties(flags);
        assert_eq!(system.get("flag").map(String::as_str), Some(""));
        let c = Config::parse_with("snapCount=9\n", system).unwrap();
        assert_eq!(c.container_check_interval, Duration::from_millis(500));
        assert_eq!(c.super_digest.as_deref(), Some("a:b"));
        assert_eq!(c.jute_max_buffer, 4096);
        assert_eq!(c.snap_count, 9, "zoo.cfg's copy is set after the flags");
    }

    #[test]
    fn an_ensembles_keys() {
        let servers = "server.1=h1:2888:3888\nserver.2=h2:2888:3888\n\
                       server.3=h3:2888:3888:observer\n";
        let c = Config::parse(&format!(
            "initLimit=10\nsyncLimit=5\npeerType=observer\nelectionAlg=3\n\
             quorumListenOnAllIPs=true\nsyncEnabled=false\nleaderServes=no\n\
             learner.maxConcurrentSnapSyncs=2\nlocalSessionsEnabled=true\n{servers}"
        ))
        .unwrap();
        assert!(c.is_distributed());
        assert_eq!((c.init_limit, c.sync_limit), (10, 5));
        assert_eq!(c.peer_type, zk_election::Role::Observer);
        assert!(c.quorum_listen_on_all_ips && !c.sync_enabled && !c.leader_serves);
        assert_eq!(
            (c.max_concurrent_snap_syncs, c.max_concurrent_diff_syncs),
            (2, 100)
        );
        assert!(c.local_sessions_enabled);
        assert_eq!(c.election.as_ref().unwrap().verifier.voters(), vec![1, 2]);
        // Groups make the quorum hierarchical, through the election's own parser.
        let grouped =
            format!("initLimit=10\nsyncLimit=5\n{servers}group.1=1:2\ngroup.2=3\nweight.3=0\n");
        let c = Config::parse(&grouped).unwrap();
        assert!(matches!(
            c.election.unwrap().verifier,
            zk_election::QuorumVerifier::Hierarchical(_)
        ));
        // One server line with standaloneEnabled (the default) stays standalone.
        let one = Config::parse("server.1=h1:2888:3888;2181\n").unwrap();
        assert!(!one.is_distributed());
        let forced = Config::parse(
            "server.1=h1:2888:3888\nstandaloneEnabled=false\ninitLimit=5\nsyncLimit=2\n",
        )
        .unwrap();
        assert!(forced.is_distributed());
    }

    #[test]
    fn a_membership_reads_from_its_own_file_with_the_version_in_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "2").unwrap();
        let dynamic = dir.path().join("zoo.cfg.dynamic.200000003");
        std::fs::write(
            &dynamic,
            "server.1=h1:2888:3888:participant\nserver.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182\n\
             server.10=h3:2888:3888:observer",
        )
        .unwrap();
        let zoo_cfg = dir.path().join("zoo.cfg");
        let static_part = format!(
            "dataDir={}\ninitLimit=5\nsyncLimit=2\nreconfigEnabled=true\ndynamicConfigFile={}\n",
            dir.path().display(),
            dynamic.display()
        );
        std::fs::write(&zoo_cfg, &static_part).unwrap();
        let c = Config::from_file(&zoo_cfg).unwrap();
        assert!(c.reconfig_enabled && c.is_distributed());
        assert_eq!(c.config_version, 0x2_0000_0003);
        assert_eq!(c.client_addr, "127.0.0.1:2182".parse().unwrap());
        // `/zookeeper/config` as ZooKeeper prints it: ids in Java's hash order, the role
        // always, the client address when the line has one.
        assert_eq!(
            c.membership().unwrap(),
            "server.1=h1:2888:3888:participant\n\
             server.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182\n\
             server.10=h3:2888:3888:observer\nversion=200000003"
        );
        // The membership may not be in both files; the dynamic file holds nothing else.
        std::fs::write(&zoo_cfg, format!("{static_part}server.4=h4:1:2\n")).unwrap();
        let err = Config::from_file(&zoo_cfg).unwrap_err().to_string();
        assert!(err.contains("separate dynamic config file"), "{err}");
        std::fs::write(&zoo_cfg, &static_part).unwrap();
        for (text, why) in [
            ("server.1=h1:1:2\nversion=1", "shouldn't have version"),
            ("server.1=h1:1:2\ntickTime=5", "Unrecognised parameter"),
        ] {
            std::fs::write(&dynamic, text).unwrap();
            let err = Config::from_file(&zoo_cfg).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
        // One file with a `version=` line: its hexadecimal value.
        let single = Config::parse(
            "initLimit=5\nsyncLimit=2\nserver.1=h1:1:2\nserver.2=h2:1:2\nversion=1a\n",
        )
        .unwrap();
        assert_eq!(single.config_version, 0x1a);
    }

    #[test]
    fn ids_come_in_the_order_of_javas_hash_map() {
        assert_eq!(java_long_map_order([3, 1, 2]), [1, 2, 3]);
        // 16 bins: 17 shares the bin of 1 and follows it.
        assert_eq!(java_long_map_order([17, 2, 1, 100]), [1, 17, 2, 100]);
        // Past 12 ids the table has 32 bins.
        let many: Vec<u64> = (1..=13).chain([33]).collect();
        assert_eq!(
            java_long_map_order(many),
            [1, 33, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
        );
    }

    #[test]
    fn an_ensembles_bad_lines_are_fatal() {
        let servers = "server.1=h1:2888:3888\nserver.2=h2:2888:3888\n";
        for (text, key) in [
            (servers.to_string(), "initLimit"),
            (format!("initLimit=5\n{servers}"), "syncLimit"),
            (
                format!("initLimit=5\nsyncLimit=2\nelectionAlg=1\n{servers}"),
                "electionAlg",
            ),
            (format!("peerType=voter\n{servers}"), "peerType"),
        ] {
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.starts_with(key), "{err}");
        }
        let err = Config::parse("server.1=h1:2888:2888\n").unwrap_err();
        assert!(err.to_string().contains("must be different"), "{err}");
        let err =
            Config::parse(&format!("initLimit=5\nsyncLimit=2\n{servers}group.1=1\n")).unwrap_err();
        assert!(err.to_string().contains("not in a group"), "{err}");
    }

    #[test]
    fn a_members_myid_must_be_among_the_servers() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        let text = format!(
            "dataDir={}\ninitLimit=5\nsyncLimit=2\n\
             server.1=h1:2888:3888\nserver.2=h2:2888:3888\n",
            dir.path().display()
        );
        std::fs::write(&cfg, text).unwrap();
        let err = Config::from_file(&cfg).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        std::fs::write(dir.path().join("myid"), "3\n").unwrap();
        let err = Config::from_file(&cfg).unwrap_err().to_string();
        assert!(err.contains("not among the server.N lines"), "{err}");
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        assert_eq!(Config::from_file(&cfg).unwrap().server_id, 2);
    }

    #[test]
    fn a_member_serves_clients_where_its_server_line_says() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        let cfg = dir.path().join("zoo.cfg");
        let write = |extra: &str| {
            let text = format!(
                "dataDir={}\ninitLimit=5\nsyncLimit=2\n{extra}\n\
                 server.1=127.0.0.1:2001:3001;127.0.0.1:4001\n\
                 server.2=127.0.0.1:2002:3002:participant;localhost:4002\n",
                dir.path().display()
            );
            std::fs::write(&cfg, text).unwrap();
        };
        write("");
        let at = |c: Config| c.client_addr.to_string();
        assert_eq!(at(Config::from_file(&cfg).unwrap()), "127.0.0.1:4002");
        // A static port that agrees (on every interface) is fine; one that does not is
        // refused, as ZooKeeper refuses it.
        write("clientPort=4002");
        assert_eq!(at(Config::from_file(&cfg).unwrap()), "127.0.0.1:4002");
        write("clientPort=2181");
        let err = Config::from_file(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("different from the one on its server line"),
            "{err}"
        );
        write("clientPort=4002\nclientPortAddress=10.0.0.1");
        assert!(Config::from_file(&cfg).is_err());
        // Without a client address on the line, clientPort on every interface.
        let plain = Config::parse("clientPort=2182\n").unwrap();
        assert_eq!(plain.client_addr.to_string(), "0.0.0.0:2182");
    }

    #[test]
    fn a_secure_port_alone_serves_no_plain_clients() {
        let both = Config::parse("clientPort=2181\nsecureClientPort=2281\n").unwrap();
        assert!(both.client_port_enabled);
        assert_eq!(both.secure_client_addr.unwrap().to_string(), "0.0.0.0:2281");
        let secure = Config::parse(
            "secureClientPort=2281\nsecureClientPortAddress=127.0.0.1\n\
             ssl.keyStore.location=/k.pem\nclient.portUnification=true\n",
        )
        .unwrap();
        assert!(!secure.client_port_enabled);
        assert!(secure.port_unification);
        assert_eq!(
            secure.secure_client_addr.unwrap().to_string(),
            "127.0.0.1:2281"
        );
        let store = secure.tls.key_store.unwrap();
        assert_eq!(store.path, std::path::Path::new("/k.pem"));
        assert!(Config::parse("").unwrap().client_port_enabled);
    }

    #[test]
    fn quorum_tls_has_its_own_keys() {
        let c = Config::parse(
            "sslQuorum=true\nssl.quorum.keyStore.location=/q.p12\n\
             ssl.quorum.keyStore.password=secret\nssl.quorum.trustStore.location=/t.jks\n\
             ssl.quorum.hostnameVerification=false\nssl.keyStore.location=/client.pem\n",
        )
        .unwrap();
        assert!(c.ssl_quorum);
        let key_store = c.quorum_tls.key_store.as_ref().unwrap();
        assert_eq!(key_store.path, std::path::Path::new("/q.p12"));
        assert_eq!(key_store.password, "secret");
        assert!(!c.quorum_tls.hostname_verification);
        assert_eq!(c.quorum_tls.prefix, "ssl.quorum");
        // The client port's settings are apart.
        assert_eq!(
            c.tls.key_store.unwrap().path,
            std::path::Path::new("/client.pem")
        );
        assert!(c.tls.hostname_verification);
        assert!(!Config::parse("").unwrap().ssl_quorum);
        let bad = Config::parse("ssl.quorum.clientAuth=sometimes\n").unwrap_err();
        assert!(bad.to_string().contains("ssl.quorum.clientAuth"), "{bad}");
    }

    #[test]
    fn enforced_authentication_needs_available_schemes() {
        let c = Config::parse("enforce.auth.enabled=true\nenforce.auth.schemes=digest, ip\n");
        assert_eq!(c.unwrap().enforce_auth_schemes, vec!["digest", "ip"]);
        let off = Config::parse("enforce.auth.schemes=digest\n").unwrap();
        assert!(off.enforce_auth_schemes.is_empty());
        let err = Config::parse("enforce.auth.enabled=true\n").unwrap_err();
        assert!(err.to_string().contains("must be set"), "{err}");
        let x509 = "enforce.auth.enabled=true\nenforce.auth.schemes=x509\n";
        assert!(
            Config::parse(x509).is_err(),
            "no secure port, no x509 provider"
        );
        let secure = Config::parse(&format!("{x509}secureClientPort=2281\n")).unwrap();
        assert_eq!(secure.enforce_auth_schemes, ["x509"]);
        // Port unification takes TLS clients too, so x509 is registered as well.
        let unified = Config::parse(&format!("{x509}client.portUnification=true\n")).unwrap();
        assert!(unified.has_auth_provider("x509"));
        let sasl = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n";
        let required = Config::parse(&format!("{sasl}sessionRequireClientSASLAuth=true\n"));
        let required = required.unwrap();
        assert_eq!(required.enforce_auth_schemes, ["sasl"]);
        assert!(required.sasl_required);
        let err = Config::parse("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n");
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("sasl is not available")
        );
    }

    #[test]
    fn bad_values_are_fatal_with_the_key_named() {
        let err = Config::parse("clientPort=abc").unwrap_err();
        assert_eq!(err.to_string(), "clientPort=abc: not a number");
        assert!(Config::parse("extendedTypesEnabled=maybe").is_err());
        assert!(Config::parse("server.1=h:1").is_err());
        assert!(Config::parse("k=\\u12").is_err());
    }
}
