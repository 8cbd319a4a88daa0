//! A `docker` command that runs ZooKeeper "containers" as local processes, for
//! zookeeper-client's integration suite (`compat-clients --only zookeeper-client`).
//!
//! The suite starts every server through testcontainers' `Cli`, which runs the `docker`
//! binary found on `PATH`. `compat-clients` puts a symlink named `docker` to this xtask
//! binary first on that `PATH`; `main` sees the name and comes here. It implements what
//! testcontainers' CLI client runs and reads:
//!
//! - `run [--network=N] [--name=N] [-e K=V]... [-v SRC:DEST]... [--health-cmd C]
//!   [--health-interval Ns] [--health-timeout Ns] [--health-start-period Ns]
//!   [--health-retries N] [-p L:I]... [--expose=P]... [-P] -d zookeeper:TAG`: prints a
//!   64-hex-digit id. The image's `docker-entrypoint.sh` is followed: `/conf/zoo.cfg` when
//!   mounted, else the zoo.cfg it writes (its `ZOO_*` variables with the image's defaults),
//!   and `myid`. The server is the one `ZK_DOCKER_SHIM_SERVER` names (`ours`: the zk-server
//!   binary at `ZK_DOCKER_SHIM_ZK_SERVER`, which reads `SERVER_JVMFLAGS` itself;
//!   `zookeeper`: Apache ZooKeeper 3.8.0's `ZooKeeperServerMain` with the `-D` flags of
//!   `SERVER_JVMFLAGS` and `JVMFLAGS` on java's command line, as `zkServer.sh` passes them),
//!   whatever the tag. It runs standalone on 127.0.0.1 and a free port, which is published
//!   as the container's client port (2181); paths under a mounted volume are mapped to the
//!   host file, others (`/data`, `/datalog`) to the container's own folder.
//! - `inspect ID`: a JSON array with `State` (status, pid, exit code and, with a health
//!   check, `Health.Status`) and `NetworkSettings.Ports` (`"2181/tcp"` to
//!   `[{"HostIp":"0.0.0.0","HostPort":"PORT"}]`). The health check is what the image's
//!   `zkServer.sh status` does: `srvr` must answer with a `Mode:` line; a server that has
//!   exited, or not answered within the start period plus interval times retries, is
//!   `unhealthy`.
//! - `logs [-f] ID` (the server's output), `stop [-t S] ID...` (SIGTERM, SIGKILL after S
//!   seconds, 10 by default), `start ID...` (the same command and port again), `rm [-f] [-v]
//!   ID...`, `network ls/create/rm` (names only), `version`.
//!
//! Each container is a folder under `$ZK_DOCKER_SHIM_STATE/containers/ID` (config, data,
//! `log`, the command line, pid and exit files). A detached supervisor (this binary again,
//! `docker __supervise DIR`, leading its own process group) runs the server and records its
//! exit status, since `docker run -d` returns at once. `rm` keeps the log as
//! `removed/ID.log`. An ensemble (several `server.N` lines, or `standaloneEnabled=false`)
//! runs only on the host's network (`--network=host`), where its lines name ports on this
//! host and are kept as they are; its members run as `zkServer.sh` runs them (Apache
//! ZooKeeper's `QuorumPeerMain`). TLS ports are refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::servers::{free_port, server_classpath, signal_group};

/// The folder that holds the containers' state.
pub(crate) const STATE_ENV: &str = "ZK_DOCKER_SHIM_STATE";
/// Which server a container runs: `ours` or `zookeeper`.
pub(crate) const SERVER_ENV: &str = "ZK_DOCKER_SHIM_SERVER";
/// The zk-server binary, for `ours`.
pub(crate) const BINARY_ENV: &str = "ZK_DOCKER_SHIM_ZK_SERVER";

/// The networks every docker host has.
const DEFAULT_NETWORKS: &[&str] = &["bridge", "host", "none"];

/// Whether this process was started as `docker` (through the symlink).
pub(crate) fn invoked_as_docker() -> bool {
    std::env::args_os()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .is_some_and(|name| name == "docker")
}

/// Runs one `docker` command and exits with its status (125 when the shim itself fails,
/// as docker does).
pub(crate) fn main() -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match command(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("docker (zk-rs shim): {e:#}");
            125
        }
    };
    std::process::exit(code)
}

fn command(args: &[String]) -> Result<i32> {
    let state = PathBuf::from(std::env::var_os(STATE_ENV).with_context(|| {
        format!("{STATE_ENV} is not set: this docker only runs under `cargo xtask compat-clients`")
    })?);
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("run") => run(&state, rest),
        Some("inspect") => inspect(&state, rest),
        Some("logs") => logs(&state, rest),
        Some("stop") => stop(&state, rest),
        Some("start") => start_command(&state, rest),
        Some("rm") => rm(&state, rest),
        Some("network") => network(&state, rest),
        Some("version" | "--version") => {
            println!("Docker version 20.10.0, build zk-rs-shim (local processes, no containers)");
            Ok(0)
        }
        Some("__supervise") => supervise(Path::new(rest.first().context("__supervise DIR")?)),
        other => {
            eprintln!(
                "docker (zk-rs shim): `{}` is not supported; only run, inspect, logs, stop, \
                 start, rm, network and version are",
                other.unwrap_or("")
            );
            Ok(125)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Container state

/// One container's folder and what `run` recorded in it.
struct Container {
    id: String,
    dir: PathBuf,
    meta: BTreeMap<String, String>,
}

/// What a container is doing now.
struct Status {
    running: bool,
    pid: Option<u32>,
    exit_code: Option<i32>,
}

impl Container {
    fn find(state: &Path, key: &str) -> Result<Option<Self>> {
        let root = state.join("containers");
        let Ok(entries) = std::fs::read_dir(&root) else {
            return Ok(None);
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            // A container being created or removed right now has no readable meta.
            let Ok(container) = Self::load(&root.join(&id), &id) else {
                continue;
            };
            let named = container.meta.get("name").is_some_and(|n| n == key);
            if id == key || named || (key.len() >= 4 && id.starts_with(key)) {
                found.push(container);
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => bail!("several containers match `{key}`"),
        }
    }

    fn load(dir: &Path, id: &str) -> Result<Self> {
        let text = std::fs::read_to_string(dir.join("meta"))
            .with_context(|| format!("reading {}", dir.join("meta").display()))?;
        let meta = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Self {
            id: id.to_string(),
            dir: dir.to_path_buf(),
            meta,
        })
    }

    fn meta(&self, key: &str) -> &str {
        self.meta.get(key).map_or("", String::as_str)
    }

    fn number(&self, key: &str) -> u64 {
        self.meta(key).parse().unwrap_or(0)
    }

    fn read_number(&self, file: &str) -> Option<i64> {
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn status(&self) -> Status {
        let exit_code = self.read_number("exit").map(|c| c as i32);
        let pid = self.read_number("pid").map(|p| p as u32);
        let running = exit_code.is_none() && pid.is_some_and(alive);
        Status {
            running,
            pid,
            exit_code,
        }
    }

    /// Starts the supervisor (which starts the server) and waits until the server is
    /// spawned.
    fn start(&self) -> Result<()> {
        for file in ["exit", "pid", "healthy", "started"] {
            let _ = std::fs::remove_file(self.dir.join(file));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))?;
        let exe = std::env::current_exe().context("finding this executable")?;
        let supervisor = Command::new(exe)
            .arg0("docker")
            .arg("__supervise")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the supervisor")?;
        write_file(&self.dir.join("supervisor"), &supervisor.id().to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.dir.join("pid").exists() && !self.dir.join("exit").exists() {
            if Instant::now() >= deadline {
                bail!("the server of container {} did not start", self.id);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// The host port clients reach the server on.
    fn client_port(&self) -> u16 {
        self.number("host_port") as u16
    }

    /// The health check's status, as `docker inspect` reports it.
    fn health(&self, status: &Status) -> &'static str {
        if !status.running {
            return "unhealthy";
        }
        if self.dir.join("healthy").exists() {
            return "healthy";
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], self.client_port()));
        let answered = if self.meta("secure") == "true" {
            srvr_over_tls_has_mode(addr, Path::new(&self.meta("client_identity")))
        } else {
            srvr_has_mode(addr)
        };
        if answered {
            let _ = write_file(&self.dir.join("healthy"), "");
            return "healthy";
        }
        let started = self.read_number("started").unwrap_or(0) as u64;
        let patience = self.number("health_start_period_ms")
            + self.number("health_interval_ms") * self.number("health_retries");
        if now_ms().saturating_sub(started) > patience {
            "unhealthy"
        } else {
            "starting"
        }
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// What `zkServer.sh status` checks: `srvr` answers with a `Mode:` line.
fn srvr_has_mode(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"srvr").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().any(|line| line.starts_with("Mode: "))
}

/// `srvr_has_mode` over TLS, as the image's `zkServer.sh status` asks a secure-only
/// server: with the client certificate (and key) of the PEM file `identity`, when there
/// is one. The server's own certificate is not checked: the question is whether it
/// serves, not who it is.
fn srvr_over_tls_has_mode(addr: SocketAddr, identity: &Path) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(builder) = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
    else {
        return false;
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
    let config = match std::fs::read(identity) {
        Ok(pem) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .filter_map(Result::ok)
                .collect();
            let Ok(key) = PrivateKeyDer::from_pem_slice(&pem) else {
                return false;
            };
            match builder.with_client_auth_cert(chain, key) {
                Ok(config) => config,
                Err(_) => return false,
            }
        }
        Err(_) => builder.with_no_client_auth(),
    };
    let Ok(name) = ServerName::try_from(addr.ip().to_string()) else {
        return false;
    };
    let Ok(conn) = rustls::ClientConnection::new(Arc::new(config), name) else {
        return false;
    };
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut tls = rustls::StreamOwned::new(conn, stream);
    if tls.write_all(b"srvr").and_then(|()| tls.flush()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    answer.lines().any(|line| line.starts_with("Mode: "))
}

/// A certificate verifier that takes any server (for the health check only), checking
/// the handshake's signatures with `0`'s algorithms.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))
}

fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

// ---------------------------------------------------------------------------------------
// docker run

/// The options of one `docker run`.
#[derive(Default)]
struct RunOptions {
    network: Option<String>,
    name: Option<String>,
    env: Vec<(String, String)>,
    /// (host path, container path)
    volumes: Vec<(String, String)>,
    health_cmd: Option<String>,
    health_interval: Option<Duration>,
    health_start_period: Option<Duration>,
    health_retries: Option<u64>,
    /// `-p HOST:CONTAINER`
    ports: Vec<(u16, u16)>,
    image: String,
    command: Vec<String>,
}

fn parse_seconds(value: &str) -> Result<Duration> {
    let number = value.strip_suffix('s').unwrap_or(value);
    Ok(Duration::from_secs(
        number
            .parse()
            .with_context(|| format!("bad duration `{value}`"))?,
    ))
}

fn parse_run(args: &[String]) -> Result<RunOptions> {
    let mut options = RunOptions::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if !arg.starts_with('-') {
            options.image = arg.clone();
            options.command = args.cloned().collect();
            break;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag {
            "-d" | "--detach" | "-P" | "--publish-all" | "--rm" => {}
            "--network" | "--net" => options.network = Some(value()?),
            "--name" => options.name = Some(value()?),
            "-e" | "--env" => {
                let setting = value()?;
                let (key, val) = match setting.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (setting.clone(), std::env::var(&setting).unwrap_or_default()),
                };
                options.env.push((key, val));
            }
            "-v" | "--volume" => {
                let spec = value()?;
                let mut parts = spec.splitn(3, ':');
                let (Some(source), Some(dest)) = (parts.next(), parts.next()) else {
                    bail!("bad volume `{spec}` (only SOURCE:DEST)");
                };
                options.volumes.push((source.to_string(), dest.to_string()));
            }
            "--health-cmd" => options.health_cmd = Some(value()?),
            "--health-interval" => options.health_interval = Some(parse_seconds(&value()?)?),
            "--health-timeout" => {
                value()?;
            }
            "--health-start-period" => {
                options.health_start_period = Some(parse_seconds(&value()?)?)
            }
            "--health-retries" => options.health_retries = Some(value()?.parse()?),
            "--expose" => {
                value()?;
            }
            "-p" | "--publish" => {
                let spec = value()?;
                let (host, container) = spec
                    .rsplit_once(':')
                    .with_context(|| format!("bad port `{spec}` (only HOST:CONTAINER)"))?;
                options
                    .ports
                    .push((host.parse()?, container.trim_end_matches("/tcp").parse()?));
            }
            "--entrypoint" => bail!("--entrypoint is not supported: the shim runs the image's own"),
            _ => bail!("docker run option `{arg}` is not supported"),
        }
    }
    if options.image.is_empty() {
        bail!("docker run: no image given");
    }
    Ok(options)
}

/// The zoo.cfg the image's `docker-entrypoint.sh` writes when none is mounted, from its
/// `ZOO_*` variables (the Dockerfile's defaults unless `-e` sets them).
fn entrypoint_config(env: &BTreeMap<String, String>) -> String {
    let get = |key: &str, default: &str| env.get(key).cloned().unwrap_or_else(|| default.into());
    let mut text = String::new();
    for (key, var, default) in [
        ("dataDir", "ZOO_DATA_DIR", "/data"),
        ("dataLogDir", "ZOO_DATA_LOG_DIR", "/datalog"),
        ("tickTime", "ZOO_TICK_TIME", "2000"),
        ("initLimit", "ZOO_INIT_LIMIT", "5"),
        ("syncLimit", "ZOO_SYNC_LIMIT", "2"),
        (
            "autopurge.snapRetainCount",
            "ZOO_AUTOPURGE_SNAPRETAINCOUNT",
            "3",
        ),
        (
            "autopurge.purgeInterval",
            "ZOO_AUTOPURGE_PURGEINTERVAL",
            "0",
        ),
        ("maxClientCnxns", "ZOO_MAX_CLIENT_CNXNS", "60"),
        ("standaloneEnabled", "ZOO_STANDALONE_ENABLED", "true"),
        ("admin.enableServer", "ZOO_ADMINSERVER_ENABLED", "true"),
    ] {
        let _ = writeln!(text, "{key}={}", get(var, default));
    }
    let servers = get("ZOO_SERVERS", "");
    let servers = if servers.is_empty() {
        "server.1=localhost:2888:3888;2181".to_string()
    } else {
        servers
    };
    for server in servers.split_whitespace() {
        let _ = writeln!(text, "{server}");
    }
    if let Some(words) = env
        .get("ZOO_4LW_COMMANDS_WHITELIST")
        .filter(|w| !w.is_empty())
    {
        let _ = writeln!(text, "4lw.commands.whitelist={words}");
    }
    for extra in get("ZOO_CFG_EXTRA", "").split_whitespace() {
        let _ = writeln!(text, "{extra}");
    }
    text
}

/// Maps container paths to host paths: under a volume, the mounted host path; elsewhere,
/// the container's own `rootfs/`.
struct Paths<'a> {
    volumes: &'a [(String, String)],
    rootfs: PathBuf,
}

impl Paths<'_> {
    fn mounted(&self, path: &str) -> Option<String> {
        self.volumes
            .iter()
            .filter_map(|(source, dest)| {
                let rest = path.strip_prefix(dest.as_str())?;
                (rest.is_empty() || rest.starts_with('/'))
                    .then(|| (dest.len(), format!("{source}{rest}")))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, host)| host)
    }

    fn host(&self, path: &str) -> PathBuf {
        self.mounted(path).map_or_else(
            || self.rootfs.join(path.trim_start_matches('/')),
            PathBuf::from,
        )
    }

    /// Replaces mounted container paths in a text of flags.
    fn in_text(&self, text: &str) -> String {
        text.split(' ')
            .map(|word| match word.split_once('=') {
                Some((key, value)) if value.starts_with('/') => {
                    format!(
                        "{key}={}",
                        self.mounted(value).unwrap_or_else(|| value.into())
                    )
                }
                _ => word.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The client port a `server.N=host:port:port[:role];[host:]clientPort` line gives.
fn server_line_client_port(value: &str) -> Option<u16> {
    let (_, client) = value.split_once(';')?;
    client.rsplit(':').next()?.trim().parse().ok()
}

/// What [`local_config`] makes of a container's zoo.cfg.
struct LocalConfig {
    /// The config the server runs with.
    text: String,
    /// The container's client port (the one `-p` publishes).
    internal_port: u16,
    /// The server is an ensemble's member.
    ensemble: bool,
    /// Its clients connect over TLS (`secureClientPort`).
    secure: bool,
}

/// The config the server runs with: the container's zoo.cfg with its data folders mapped
/// to host paths, the client port (or the secure client port) moved to `host_port` on
/// 127.0.0.1 (unless the container is on the host's network), the lone `server.1` line of
/// a standalone server dropped and the admin server off.
///
/// An ensemble runs only on the host's network (`host_member` is then the member's
/// `myid`): its `server.N` lines name ports on this host, and are kept as they are; the
/// member's client port is its own line's.
fn local_config(
    text: &str,
    paths: &Paths<'_>,
    host_port: Option<u16>,
    host_member: Option<u32>,
) -> Result<LocalConfig> {
    let mut out = String::new();
    let mut client_port = None;
    let mut secure_port: Option<u16> = None;
    let mut server_port = None;
    let mut own_port = None;
    let mut servers = 0;
    let mut standalone = true;
    let mut server_lines = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let Some((key, value)) = trimmed.split_once('=') else {
            let _ = writeln!(out, "{line}");
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "dataDir" | "dataLogDir" => {
                let host = paths.host(value);
                std::fs::create_dir_all(&host)?;
                let _ = writeln!(out, "{key}={}", host.display());
            }
            "clientPort" => client_port = Some(value.parse().context("clientPort")?),
            "clientPortAddress" | "secureClientPortAddress" => {}
            "secureClientPort" => secure_port = Some(value.parse().context("secureClientPort")?),
            "dynamicConfigFile" => {
                bail!("`{key}` is not supported by the docker shim (no dynamic config)")
            }
            "standaloneEnabled" => {
                standalone = value != "false";
                let _ = writeln!(out, "{key}={value}");
            }
            "admin.enableServer" => {
                let _ = writeln!(out, "admin.enableServer=false");
            }
            "admin.serverPort" => {}
            _ if key.starts_with("server.") => {
                servers += 1;
                server_port = server_line_client_port(value);
                if host_member.is_some_and(|m| key == format!("server.{m}")) {
                    own_port = server_port;
                }
                let _ = writeln!(server_lines, "{key}={value}");
            }
            _ if value.starts_with('/') => {
                let mapped = paths.mounted(value).unwrap_or_else(|| value.into());
                let _ = writeln!(out, "{key}={mapped}");
            }
            _ => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    if servers > 1 || !standalone {
        let Some(member) = host_member else {
            bail!(
                "the docker shim runs an ensemble ({servers} server lines, \
                 standaloneEnabled={standalone}) only on the host's network"
            );
        };
        let internal = client_port.or(own_port).with_context(|| {
            format!("member {member} has no client port (clientPort, or its server line)")
        })?;
        out.push_str(&server_lines);
        if let Some(port) = client_port {
            let _ = writeln!(out, "clientPort={port}");
        }
        if let Some(port) = secure_port {
            let _ = writeln!(out, "secureClientPort={port}");
        }
        return Ok(LocalConfig {
            text: out,
            internal_port: internal,
            ensemble: true,
            secure: false,
        });
    }
    if let Some(secure) = secure_port {
        // One published port: the secure one, when the image serves TLS clients only.
        if client_port.is_some() {
            bail!("clientPort and secureClientPort together are not supported by the docker shim");
        }
        let _ = writeln!(out, "secureClientPort={}", host_port.unwrap_or(secure));
        let _ = writeln!(out, "secureClientPortAddress=127.0.0.1");
        return Ok(LocalConfig {
            text: out,
            internal_port: secure,
            ensemble: false,
            secure: true,
        });
    }
    let internal = client_port.or(server_port).unwrap_or(2181);
    let _ = writeln!(out, "clientPort={}", host_port.unwrap_or(internal));
    let _ = writeln!(out, "clientPortAddress=127.0.0.1");
    Ok(LocalConfig {
        text: out,
        internal_port: internal,
        ensemble: false,
        secure: false,
    })
}

fn run(state: &Path, args: &[String]) -> Result<i32> {
    let options = parse_run(args)?;
    let (repository, tag) = options
        .image
        .rsplit_once(':')
        .unwrap_or((options.image.as_str(), "latest"));
    let repository = repository
        .trim_start_matches("docker.io/")
        .trim_start_matches("library/");
    if repository != "zookeeper" {
        bail!(
            "image `{}` is not supported: only `zookeeper`",
            options.image
        );
    }
    if !(options.command.is_empty() || options.command == ["zkServer.sh", "start-foreground"]) {
        bail!("a command other than the image's own is not supported");
    }
    let server = std::env::var(SERVER_ENV).unwrap_or_default();
    if !matches!(server.as_str(), "ours" | "zookeeper") {
        bail!("{SERVER_ENV} must be `ours` or `zookeeper`, not `{server}`");
    }

    let id = random_id()?;
    let dir = state.join("containers").join(&id);
    std::fs::create_dir_all(&dir)?;
    let env: BTreeMap<String, String> = options.env.iter().cloned().collect();
    let paths = Paths {
        volumes: &options.volumes,
        rootfs: dir.join("rootfs"),
    };

    let mounted_cfg = paths.mounted("/conf/zoo.cfg");
    let text = match &mounted_cfg {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => entrypoint_config(&env),
    };
    let host_network = options.network.as_deref() == Some("host");
    let host_port = match options.ports.first() {
        _ if host_network => None,
        Some(&(host, _)) => Some(host),
        None => Some(free_port()?),
    };
    // docker-entrypoint.sh writes myid into the data folder unless it is there.
    let data_dir = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("dataDir="))
        .map_or_else(|| paths.host("/data"), |d| paths.host(d.trim()));
    std::fs::create_dir_all(&data_dir)?;
    if !data_dir.join("myid").exists() {
        let myid = env.get("ZOO_MY_ID").map_or("1", String::as_str);
        std::fs::write(data_dir.join("myid"), format!("{myid}\n"))?;
    }
    let myid: u32 = std::fs::read_to_string(data_dir.join("myid"))?
        .trim()
        .parse()
        .context("the data folder's myid")?;
    let LocalConfig {
        text: config,
        internal_port,
        ensemble,
        secure,
    } = local_config(&text, &paths, host_port, host_network.then_some(myid))?;
    let cfg = dir.join("zoo.cfg");
    std::fs::write(&cfg, config)?;
    // The health check's client identity: the image's zkServer.sh status connects as
    // `CLIENT_JVMFLAGS` says, with `zookeeper.ssl.keyStore.location` (a PEM file here).
    let client_identity = env
        .get("CLIENT_JVMFLAGS")
        .map(|flags| paths.in_text(flags))
        .and_then(|flags| {
            flags.split_whitespace().find_map(|f| {
                f.strip_prefix("-Dzookeeper.ssl.keyStore.location=")
                    .map(str::to_owned)
            })
        })
        .unwrap_or_default();

    let flags: Vec<String> = ["SERVER_JVMFLAGS", "JVMFLAGS"]
        .iter()
        .filter_map(|name| env.get(*name))
        .map(|flags| paths.in_text(flags))
        .collect();
    let mut process_env = env.clone();
    for name in ["SERVER_JVMFLAGS", "JVMFLAGS"] {
        if let Some(flags) = env.get(name) {
            process_env.insert(name.to_string(), paths.in_text(flags));
        }
    }
    let argv: Vec<String> = if server == "ours" {
        let binary =
            std::env::var(BINARY_ENV).with_context(|| format!("{BINARY_ENV} is not set"))?;
        process_env.insert("NO_COLOR".into(), "1".into());
        vec![binary, cfg.display().to_string()]
    } else {
        let java = crate::java(&server_classpath());
        let mut argv = vec![java.get_program().to_string_lossy().into_owned()];
        argv.extend(java.get_args().map(|a| a.to_string_lossy().into_owned()));
        argv.push("-Xmx256m".into());
        argv.extend(
            flags
                .iter()
                .flat_map(|f| f.split_whitespace())
                .map(String::from),
        );
        // zkServer.sh runs QuorumPeerMain, which hands a standalone config to
        // ZooKeeperServerMain; the standalone runs have always used the latter directly.
        argv.push(if ensemble {
            "org.apache.zookeeper.server.quorum.QuorumPeerMain".into()
        } else {
            "org.apache.zookeeper.server.ZooKeeperServerMain".into()
        });
        argv.push(cfg.display().to_string());
        for (key, value) in java.get_envs() {
            if let Some(value) = value {
                process_env.insert(
                    key.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                );
            }
        }
        argv
    };
    std::fs::write(dir.join("argv"), argv.join("\0"))?;
    let env_text: Vec<String> = process_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    std::fs::write(dir.join("env"), env_text.join("\0"))?;

    let mut meta = String::new();
    let health_ms = |d: Option<Duration>, default: u64| d.map_or(default, |d| d.as_millis() as u64);
    for (key, value) in [
        ("image", options.image.clone()),
        ("tag", tag.to_string()),
        ("server", server.clone()),
        ("name", options.name.clone().unwrap_or_default()),
        ("network", options.network.clone().unwrap_or_default()),
        ("created", now_ms().to_string()),
        ("internal_port", internal_port.to_string()),
        ("host_port", host_port.unwrap_or(internal_port).to_string()),
        ("published", (!host_network).to_string()),
        ("secure", secure.to_string()),
        ("client_identity", client_identity),
        ("health", options.health_cmd.is_some().to_string()),
        ("health_cmd", options.health_cmd.clone().unwrap_or_default()),
        (
            "health_interval_ms",
            health_ms(options.health_interval, 30_000).to_string(),
        ),
        (
            "health_start_period_ms",
            health_ms(options.health_start_period, 0).to_string(),
        ),
        (
            "health_retries",
            options.health_retries.unwrap_or(3).to_string(),
        ),
    ] {
        let _ = writeln!(meta, "{key}={}", value.replace('\n', " "));
    }
    std::fs::write(dir.join("meta"), meta)?;
    let container = Container::load(&dir, &id)?;
    container.start()?;
    println!("{id}");
    Ok(0)
}

/// `docker __supervise DIR`: runs the container's command, records its pid, and its exit
/// status when it ends.
fn supervise(dir: &Path) -> Result<i32> {
    let argv_text = std::fs::read_to_string(dir.join("argv"))?;
    let argv: Vec<&str> = argv_text.split('\0').collect();
    let env_text = std::fs::read_to_string(dir.join("env"))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))?;
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    for setting in env_text.split('\0').filter(|s| !s.is_empty()) {
        if let Some((key, value)) = setting.split_once('=') {
            cmd.env(key, value);
        }
    }
    write_file(&dir.join("started"), &now_ms().to_string())?;
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("docker (zk-rs shim): starting {argv:?}: {e}");
            write_file(&dir.join("exit"), "127")?;
            return Ok(127);
        }
    };
    write_file(&dir.join("pid"), &child.id().to_string())?;
    let status = child.wait()?;
    let code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    });
    write_file(&dir.join("exit"), &code.to_string())?;
    Ok(0)
}

// ---------------------------------------------------------------------------------------
// The other commands

fn no_such(kind: &str, key: &str) -> i32 {
    eprintln!("Error: No such {kind}: {key}");
    1
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn rfc3339(ms: u64) -> String {
    // Days to civil date (Howard Hinnant's algorithm), UTC.
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

fn inspect_json(container: &Container) -> String {
    let status = container.status();
    let state = if status.running {
        "running"
    } else if status.exit_code.is_some() {
        "exited"
    } else {
        "created"
    };
    let health = if container.meta("health") == "true" {
        format!(
            r#","Health":{{"Status":"{}","FailingStreak":0,"Log":[]}}"#,
            container.health(&status)
        )
    } else {
        String::new()
    };
    let port_key = format!("{}/tcp", container.meta("internal_port"));
    let ports = if status.running && container.meta("published") == "true" {
        format!(
            r#"{{{}:[{{"HostIp":"0.0.0.0","HostPort":"{}"}}]}}"#,
            json_string(&port_key),
            container.client_port()
        )
    } else {
        "{}".to_string()
    };
    let name = container.meta("name");
    let name = if name.is_empty() {
        format!("/zk-shim-{}", &container.id[..12])
    } else {
        format!("/{name}")
    };
    let created = rfc3339(container.number("created"));
    format!(
        concat!(
            r#"{{"Id":{id},"Created":{created},"Path":"/docker-entrypoint.sh","#,
            r#""Args":["zkServer.sh","start-foreground"],"#,
            r#""State":{{"Status":"{state}","Running":{running},"Paused":false,"#,
            r#""Restarting":false,"OOMKilled":false,"Dead":false,"Pid":{pid},"#,
            r#""ExitCode":{exit},"Error":""{health}}},"#,
            r#""Image":{image},"Name":{name},"#,
            r#""Config":{{"Image":{image},"ExposedPorts":{{{port_key}:{{}}}}}},"#,
            r#""NetworkSettings":{{"IPAddress":"127.0.0.1","Ports":{ports}}}}}"#
        ),
        id = json_string(&container.id),
        created = json_string(&created),
        state = state,
        running = status.running,
        pid = if status.running {
            status.pid.unwrap_or(0)
        } else {
            0
        },
        exit = status.exit_code.unwrap_or(0),
        health = health,
        image = json_string(container.meta("image")),
        name = json_string(&name),
        port_key = json_string(&port_key),
        ports = ports,
    )
}

fn inspect(state: &Path, args: &[String]) -> Result<i32> {
    let mut found = Vec::new();
    let mut code = 0;
    for key in args.iter().filter(|a| !a.starts_with('-')) {
        match Container::find(state, key)? {
            Some(container) => found.push(inspect_json(&container)),
            None => code = no_such("object", key),
        }
    }
    println!("[{}]", found.join(","));
    Ok(code)
}

fn logs(state: &Path, args: &[String]) -> Result<i32> {
    let follow = args.iter().any(|a| a == "-f" || a == "--follow");
    let Some(key) = args.iter().find(|a| !a.starts_with('-')) else {
        bail!("docker logs: no container given");
    };
    let Some(container) = Container::find(state, key)? else {
        return Ok(no_such("container", key));
    };
    let mut file = File::open(container.dir.join("log"))?;
    let mut stdout = std::io::stdout();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n > 0 {
            if stdout
                .write_all(&buffer[..n])
                .and_then(|()| stdout.flush())
                .is_err()
            {
                // The reader went away.
                return Ok(0);
            }
            continue;
        }
        if !follow || !container.status().running {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits up to `timeout` for the container's server to end.
fn wait_stopped(container: &Container, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while container.status().running {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn stop(state: &Path, args: &[String]) -> Result<i32> {
    let mut grace = Duration::from_secs(10);
    let mut code = 0;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-t" | "--time" => grace = parse_seconds(args.next().context("-t needs seconds")?)?,
            key => match Container::find(state, key)? {
                Some(container) => {
                    let status = container.status();
                    if let (true, Some(pid)) = (status.running, status.pid) {
                        let _ = Command::new("kill")
                            .args(["-TERM", &pid.to_string()])
                            .status();
                        if !wait_stopped(&container, grace) {
                            let _ = Command::new("kill")
                                .args(["-KILL", &pid.to_string()])
                                .status();
                            wait_stopped(&container, Duration::from_secs(5));
                        }
                    }
                    println!("{key}");
                }
                None => code = no_such("container", key),
            },
        }
    }
    Ok(code)
}

fn start_command(state: &Path, args: &[String]) -> Result<i32> {
    let mut code = 0;
    for key in args.iter().filter(|a| !a.starts_with('-')) {
        match Container::find(state, key)? {
            Some(container) => {
                if !container.status().running {
                    container.start()?;
                }
                println!("{key}");
            }
            None => code = no_such("container", key),
        }
    }
    Ok(code)
}

/// Kills a container's supervisor and server (their process group).
fn kill_container(container: &Container) {
    if container.status().running
        && let Some(supervisor) = container.read_number("supervisor")
    {
        signal_group(supervisor as u32, "-KILL");
        wait_stopped(container, Duration::from_secs(5));
    }
}

fn rm(state: &Path, args: &[String]) -> Result<i32> {
    let force = args.iter().any(|a| {
        a == "-f"
            || a == "--force"
            || (a.starts_with('-') && !a.starts_with("--") && a.contains('f'))
    });
    let mut code = 0;
    for key in args.iter().filter(|a| !a.starts_with('-')) {
        let Some(container) = Container::find(state, key)? else {
            code = no_such("container", key);
            continue;
        };
        if container.status().running && !force {
            eprintln!(
                "Error response from daemon: You cannot remove a running container {}. Stop \
                 the container before attempting removal or force remove",
                container.id
            );
            code = 1;
            continue;
        }
        kill_container(&container);
        let removed = state.join("removed");
        std::fs::create_dir_all(&removed)?;
        let _ = std::fs::rename(
            container.dir.join("log"),
            removed.join(format!("{}.log", container.id)),
        );
        std::fs::remove_dir_all(&container.dir)
            .with_context(|| format!("removing {}", container.dir.display()))?;
        println!("{key}");
    }
    Ok(code)
}

/// Kills every container still running under `state` (after a test that did not clean up,
/// e.g. one stopped for taking too long). Returns how many there were.
pub(crate) fn kill_all(state: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(state.join("containers")) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if let Ok(container) = Container::load(&entry.path(), &id)
            && container.status().running
        {
            kill_container(&container);
            killed += 1;
        }
    }
    killed
}

fn network(state: &Path, args: &[String]) -> Result<i32> {
    let folder = state.join("networks");
    std::fs::create_dir_all(&folder)?;
    let names = args
        .get(1..)
        .unwrap_or_default()
        .iter()
        .filter(|a| !a.starts_with('-'));
    match args.first().map(String::as_str) {
        Some("ls" | "list") => {
            let mut all: Vec<String> = DEFAULT_NETWORKS.iter().map(|n| n.to_string()).collect();
            for entry in std::fs::read_dir(&folder)?.flatten() {
                all.push(entry.file_name().to_string_lossy().into_owned());
            }
            for name in all {
                println!("{name}");
            }
            Ok(0)
        }
        Some("create") => {
            for name in names.filter(|n| !n.contains("{{")) {
                if DEFAULT_NETWORKS.contains(&name.as_str()) || folder.join(name).exists() {
                    eprintln!(
                        "Error response from daemon: network with name {name} already exists"
                    );
                    return Ok(1);
                }
                std::fs::write(folder.join(name), "")?;
                println!("{}", random_id()?);
            }
            Ok(0)
        }
        Some("rm" | "remove") => {
            let mut code = 0;
            for name in names {
                if std::fs::remove_file(folder.join(name)).is_ok() {
                    println!("{name}");
                } else {
                    code = no_such("network", name);
                }
            }
            Ok(code)
        }
        other => bail!("docker network {} is not supported", other.unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_default_config() {
        let text = entrypoint_config(&BTreeMap::new());
        assert!(text.starts_with("dataDir=/data\ndataLogDir=/datalog\ntickTime=2000\n"));
        assert!(text.ends_with("admin.enableServer=true\nserver.1=localhost:2888:3888;2181\n"));
    }

    #[test]
    fn local_config_maps_paths_and_port() {
        let volumes = vec![("/tmp/x/zoo1.cfg".to_string(), "/conf/zoo.cfg".to_string())];
        let dir = std::env::temp_dir().join(format!("docker-shim-test-{}", std::process::id()));
        let paths = Paths {
            volumes: &volumes,
            rootfs: dir.join("rootfs"),
        };
        let text = entrypoint_config(&BTreeMap::new());
        let LocalConfig {
            text: config,
            internal_port: internal,
            ensemble,
            secure,
        } = local_config(&text, &paths, Some(40000), None).unwrap();
        assert_eq!(internal, 2181);
        assert!(!ensemble && !secure);
        assert!(config.contains(&format!("dataDir={}", dir.join("rootfs/data").display())));
        assert!(config.contains("admin.enableServer=false\n"));
        assert!(config.ends_with("clientPort=40000\nclientPortAddress=127.0.0.1\n"));
        assert!(!config.contains("server.1"));
        let ensemble = "server.1=a:1:2;4001\nserver.2=b:1:2;4002\n";
        assert!(local_config(ensemble, &paths, Some(1), None).is_err());
        let quorum_of_one = "standaloneEnabled=false\nserver.1=a:1:2;4001\n";
        assert!(local_config(quorum_of_one, &paths, Some(1), None).is_err());
        // On the host's network, an ensemble keeps its lines; member 2 serves on 4002.
        let member = local_config(ensemble, &paths, None, Some(2)).unwrap();
        assert_eq!(member.internal_port, 4002);
        assert!(member.ensemble);
        assert!(
            member
                .text
                .contains("server.1=a:1:2;4001\nserver.2=b:1:2;4002\n")
        );
        assert!(!member.text.contains("clientPortAddress"));
        // A TLS-only standalone server: its secure port is the one published.
        let secure = local_config(
            "secureClientPort=2181\nssl.keyStore.location=/certs/server.pem\n",
            &paths,
            Some(40001),
            None,
        )
        .unwrap();
        assert!(secure.secure);
        assert_eq!(secure.internal_port, 2181);
        assert!(
            secure
                .text
                .ends_with("secureClientPort=40001\nsecureClientPortAddress=127.0.0.1\n")
        );
        assert!(!secure.text.contains("clientPort=4"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn paths_under_volumes() {
        let volumes = vec![("/host/certs".to_string(), "/certs".to_string())];
        let paths = Paths {
            volumes: &volumes,
            rootfs: PathBuf::from("/c/rootfs"),
        };
        assert_eq!(
            paths.host("/certs/a.pem"),
            PathBuf::from("/host/certs/a.pem")
        );
        assert_eq!(paths.host("/data"), PathBuf::from("/c/rootfs/data"));
        assert_eq!(paths.host("/certsx"), PathBuf::from("/c/rootfs/certsx"));
        assert_eq!(
            paths.in_text("-Da=/certs/b -Dc=/other -Dd"),
            "-Da=/host/certs/b -Dc=/other -Dd"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
