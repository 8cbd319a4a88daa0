//! Server processes for the tools that compare our server with Apache ZooKeeper
//! (`compat-clients`, `diff`): a generated zoo.cfg with its own data folder and free port,
//! start-up checked with `ruok`, and stopping by process group.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::JAVA_DIR;

/// Apache ZooKeeper's server jar from Debian's package.
pub(crate) const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// The classpath Apache ZooKeeper's server runs with: Debian's jar, plus slf4j-simple
/// (its log on stderr) when installed.
pub(crate) fn server_classpath() -> Vec<String> {
    let mut classpath = vec![ZOOKEEPER_JAR.to_string()];
    // NettyServerCnxnFactory (TLS) needs Netty's codec and resolver, and the AdminServer
    // (Jetty) the servlet API, which the jar's manifest leaves out.
    for jar in ["netty-codec.jar", "netty-resolver.jar", "servlet-api.jar"] {
        let path = Path::new(JAVA_DIR).join(jar);
        if path.is_file() {
            classpath.push(path.display().to_string());
        }
    }
    let simple = Path::new(JAVA_DIR).join("slf4j-simple.jar");
    if simple.is_file() {
        classpath.push(simple.display().to_string());
    }
    classpath
}

/// Sends `signal` to the process group led by `pid` (every child here leads its own group,
/// so a shell script's JVM goes with it).
pub(crate) fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits up to `timeout` for `child` to exit.
pub(crate) fn wait_for_exit(
    child: &mut Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops `child` and its process group: SIGTERM, then SIGKILL after `grace`.
pub(crate) fn stop_group(child: &mut Child, grace: Duration) {
    let pid = child.id();
    if child.try_wait().ok().flatten().is_none() {
        signal_group(pid, "-TERM");
        if wait_for_exit(child, grace).is_some() {
            signal_group(pid, "-KILL");
            return;
        }
    }
    signal_group(pid, "-KILL");
    let _ = wait_for_exit(child, Duration::from_secs(5));
}

/// A free port on the loopback interface, below the ephemeral range (32768 and up on
/// Linux). A port the kernel hands out for `bind(0)` and that is then released may be
/// handed out again (to a link proxy binding port 0, or as some connection's source port)
/// before the server binds it; CI's chaos run once lost a member that way. Ports here
/// come from a block chosen by process id, never the same one twice in a process, each
/// checked free by binding it. The walk through the block starts at a point drawn from
/// the clock: the docker shim runs as a new process for every container, and two of
/// them whose ids share a block would otherwise both start at its first port.
pub(crate) fn free_port() -> Result<u16> {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static START: OnceLock<u32> = OnceLock::new();
    const BLOCK: u32 = 512;
    let base = 10_000 + (std::process::id() % 40) * BLOCK;
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_micros())
    });
    for _ in 0..BLOCK {
        let offset = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
        let port = (base + offset % BLOCK) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in 127.0.0.1:{base}..{}", base + BLOCK)
}

/// Asks `ruok` and returns whether the answer is `imok`.
pub(crate) fn ruok(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"ruok").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer == "imok"
}

/// A server under test, stopped on drop.
pub(crate) struct ServerProc {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) child: RefCell<Child>,
    pub(crate) log: PathBuf,
}

impl ServerProc {
    /// Writes `dir/<tag>/zoo.cfg` (with its own dataDir and a free port) and returns it.
    pub(crate) fn config(dir: &Path, tag: &str) -> Result<(PathBuf, SocketAddr)> {
        Self::config_with(dir, tag, "")
    }

    /// Like [`config`](Self::config), with `extra` lines; an `admin.enableServer` line
    /// among them replaces the default (off).
    pub(crate) fn config_with(dir: &Path, tag: &str, extra: &str) -> Result<(PathBuf, SocketAddr)> {
        let home = dir.join(tag);
        let data = home.join("data");
        std::fs::create_dir_all(&data)?;
        let port = free_port()?;
        let cfg = home.join("zoo.cfg");
        let text = format!(
            "tickTime=2000\n\
             initLimit=10\n\
             syncLimit=5\n\
             dataDir={}\n\
             clientPort={port}\n\
             clientPortAddress=127.0.0.1\n\
             4lw.commands.whitelist=*\n\
             extendedTypesEnabled=true\n",
            data.display()
        );
        let text = if extra.contains("admin.enableServer") {
            format!("{text}{extra}")
        } else {
            format!("{text}admin.enableServer=false\n{extra}")
        };
        std::fs::write(&cfg, text).with_context(|| format!("writing {}", cfg.display()))?;
        Ok((cfg, SocketAddr::from(([127, 0, 0, 1], port))))
    }

    pub(crate) fn spawn(
        name: &'static str,
        mut cmd: Command,
        addr: SocketAddr,
        log: PathBuf,
    ) -> Result<Self> {
        // Appended to: a member restarted keeps what its earlier lives logged.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let server = ServerProc {
            name,
            addr,
            child: RefCell::new(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ruok(addr) {
            if let Some(status) = server.exited() {
                bail!(
                    "{name} exited with {status} before serving\n{}",
                    server.log_tail()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{name} did not answer ruok on {addr} within 60s\n{}",
                    server.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(server)
    }

    pub(crate) fn start_zookeeper(dir: &Path) -> Result<Self> {
        Self::start_zookeeper_with(dir, "")
    }

    /// Apache ZooKeeper with `extra` lines in its `zoo.cfg`.
    pub(crate) fn start_zookeeper_with(dir: &Path, extra: &str) -> Result<Self> {
        let (cfg, addr) = Self::config_with(dir, "zookeeper", extra)?;
        let mut cmd = crate::java(&server_classpath());
        cmd.arg("-Xmx256m")
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(&cfg);
        Self::spawn(
            "Apache ZooKeeper",
            cmd,
            addr,
            dir.join("zookeeper/server.log"),
        )
    }

    pub(crate) fn start_ours(binary: &Path, dir: &Path) -> Result<Self> {
        Self::start_ours_with(binary, dir, "")
    }

    /// Our server with `extra` lines in its `zoo.cfg`.
    pub(crate) fn start_ours_with(binary: &Path, dir: &Path, extra: &str) -> Result<Self> {
        let (cfg, addr) = Self::config_with(dir, "ours", extra)?;
        let mut cmd = Command::new(binary);
        cmd.arg(&cfg).env("NO_COLOR", "1");
        Self::spawn("zk-server", cmd, addr, dir.join("ours/server.log"))
    }

    pub(crate) fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child.borrow_mut().try_wait().ok().flatten()
    }

    /// The end of the server's log: from its last `Error:` line (a binary's anyhow error,
    /// whose backtrace would otherwise push the message out of view) when there is one,
    /// else the last 20 lines; at most 20 lines either way.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .rposition(|line| line.starts_with("Error:"))
            .unwrap_or(lines.len().saturating_sub(20));
        let tail = lines
            .iter()
            .skip(start)
            .take(20)
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        format!("lines of {} from the end:\n{tail}", self.log.display())
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        stop_group(self.child.get_mut(), Duration::from_secs(5));
    }
}

/// Sends a four-letter word and returns the answer (5 s at most).
pub(crate) async fn four_letter(addr: SocketAddr, word: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .with_context(|| format!("four-letter word {word} timed out"))?
        .with_context(|| format!("four-letter word {word}"))
}
