//! The server the client's integration tests run against: our in-process `zk-server` by
//! default, or Apache ZooKeeper 3.8.0 from Debian's `zookeeper` package when
//! `ZK_CLIENT_TEST_SERVER=reference` (Java and the package must be installed). The test
//! bodies are the same for both.
//!
//! Tests that do not restart the server share one reference server per test binary (a
//! JVM per test would be slow); each test works under its own top-level znode. Our server
//! starts in-process per test. Timing: tickTime is 100 ms, so sessions may be as short
//! as 200 ms; the tests ask for a few seconds.

#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use zk_client::{Client, ClientOptions, CreateOptions, SessionState};

/// Debian's Apache ZooKeeper jar; its manifest names the other jars.
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const TICK_MS: u64 = 100;
/// The SASL DIGEST-MD5 user every test server knows (the JAAS `Server` section of the
/// reference, the same users for ours).
pub(crate) const SASL_USER: (&str, &str) = ("bob", "b0b's secret");
/// The SASL provider both servers register (`authProvider.1`), so that `whoAmI` names
/// SASL users.
const SASL_PROVIDER: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
/// That section, as ZooKeeper's `DigestLoginModule` reads it.
const JAAS: &str = "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
                    user_bob=\"b0b's secret\";\n};\n";

/// Whether the tests run against Apache ZooKeeper.
pub(crate) fn reference() -> bool {
    std::env::var("ZK_CLIENT_TEST_SERVER").is_ok_and(|v| v == "reference")
}

/// Fails the test if `f` takes longer than 20 s.
pub(crate) async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Options for test clients: a 4 s session, quick reconnects.
pub(crate) fn options() -> ClientOptions {
    ClientOptions {
        session_timeout: Duration::from_secs(4),
        connect_timeout: Duration::from_secs(15),
        reconnect_delay: Duration::from_millis(100),
        ..ClientOptions::default()
    }
}

/// Waits until the client's state is `want`.
pub(crate) async fn wait_state(client: &Client, want: SessionState) {
    let mut states = client.state_watch();
    within(&format!("state {want:?}"), states.wait_for(|s| *s == want))
        .await
        .expect("the client task is alive");
}

/// A server a test may stop and start again on the same port and data directory.
pub(crate) struct TestServer {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    running: Option<Running>,
    /// Reference servers of their own run one test at a time: JVMs starting in parallel
    /// on a small machine make restarts too slow for short sessions.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// Which server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Our `zk-server`, in-process.
    Ours,
    /// Apache ZooKeeper 3.8.0, in a JVM.
    Reference,
}

enum Running {
    Ours(zk_server::Server),
    Reference(Jvm),
}

impl TestServer {
    /// Starts a server of its own.
    pub(crate) async fn start() -> TestServer {
        TestServer::start_first(if reference() {
            Kind::Reference
        } else {
            Kind::Ours
        })
        .await
    }

    /// Starts a server of its own, of `kind` (later starts may be of the other kind).
    pub(crate) async fn start_first(kind: Kind) -> TestServer {
        static TURNS: OnceLock<Arc<tokio::sync::Mutex<()>>> = OnceLock::new();
        let turn = if reference() {
            let turns = TURNS.get_or_init(Default::default).clone();
            Some(turns.lock_owned().await)
        } else {
            None
        };
        let dir = tempfile::tempdir().expect("a temp dir");
        let addr = if reference() {
            SocketAddr::from(([127, 0, 0, 1], free_port()))
        } else {
            SocketAddr::from(([127, 0, 0, 1], 0))
        };
        let mut server = TestServer {
            dir,
            addr,
            running: None,
            _turn: turn,
        };
        server.start_as(kind).await;
        server
    }

    /// The connect string (with `suffix`, e.g. a chroot, appended).
    pub(crate) fn connect_string(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.addr)
    }

    /// Stops the server: ours shuts down, the reference's JVM is killed (SIGKILL).
    pub(crate) async fn stop(&mut self) {
        match self.running.take() {
            Some(Running::Ours(server)) => server.shutdown().await,
            Some(Running::Reference(jvm)) => {
                tokio::task::spawn_blocking(move || drop(jvm))
                    .await
                    .expect("stopping the JVM");
            }
            None => {}
        }
    }

    /// The reference server's log (empty for ours).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Empties the data directory (while stopped): the server comes back knowing nothing.
    pub(crate) fn wipe_data(&self) {
        assert!(self.running.is_none(), "stop the server first");
        for entry in std::fs::read_dir(self.dir.path()).expect("the data dir") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).expect("removing a folder");
            } else if path.extension().is_none_or(|e| e != "cfg" && e != "log") {
                std::fs::remove_file(&path).expect("removing a file");
            }
        }
    }

    /// Starts the server again on the same port and data directory.
    pub(crate) async fn start_again(&mut self) {
        self.start_as(if reference() {
            Kind::Reference
        } else {
            Kind::Ours
        })
        .await;
    }

    /// Starts `kind` of server on this one's port and data directory (`data/`), which
    /// either reads as its own.
    pub(crate) async fn start_as(&mut self, kind: Kind) {
        assert!(self.running.is_none(), "already running");
        if kind == Kind::Reference {
            let (dir, addr) = (self.dir.path().to_owned(), self.addr);
            let jvm = tokio::task::spawn_blocking(move || Jvm::start(&dir, addr))
                .await
                .expect("starting the JVM");
            self.running = Some(Running::Reference(jvm));
        } else {
            let config = zk_server::Config {
                client_addr: self.addr,
                data_dir: self.dir.path().join("data"),
                data_log_dir: self.dir.path().join("data"),
                tick_time: Duration::from_millis(TICK_MS),
                min_session_timeout: Duration::from_millis(2 * TICK_MS),
                max_session_timeout: Duration::from_secs(60),
                four_letter_words: vec!["*".into()],
                extended_types: true,
                sasl_users: Some(
                    [(SASL_USER.0.to_owned(), SASL_USER.1.to_owned())]
                        .into_iter()
                        .collect(),
                ),
                system_properties: [(
                    "zookeeper.authProvider.1".to_owned(),
                    SASL_PROVIDER.to_owned(),
                )]
                .into_iter()
                .collect(),
                ..zk_server::Config::default()
            };
            let server = zk_server::Server::start(config)
                .await
                .expect("zk-server starts");
            self.addr = server.local_addr();
            self.running = Some(Running::Ours(server));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Our server stops with the test's runtime; the JVM is killed by Jvm's drop.
        if let Some(Running::Reference(jvm)) = self.running.take() {
            drop(jvm);
        }
    }
}

/// A test's place on a server: a server of its own (ours) or the shared one (the
/// reference), and a top-level znode of its own.
pub(crate) struct Fixture {
    own: Option<TestServer>,
    addr: String,
    /// The test's top-level znode, e.g. `/crud`.
    pub(crate) base: String,
}

impl Fixture {
    /// A server for the test named `name`, with `/name` created and empty.
    pub(crate) async fn new(name: &str) -> Fixture {
        let (own, addr) = if reference() {
            (None, shared_reference().to_string())
        } else {
            let server = TestServer::start().await;
            let addr = server.connect_string("");
            (Some(server), addr)
        };
        let fixture = Fixture {
            own,
            addr,
            base: format!("/{name}"),
        };
        let client = fixture.client().await;
        client
            .create(&fixture.base, b"", &CreateOptions::persistent())
            .await
            .expect("the test's base znode is new");
        client.close().await.expect("closes");
        fixture
    }

    /// `base` joined with `rest`.
    pub(crate) fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.base)
    }

    /// The connect string, with `suffix` appended.
    pub(crate) fn connect_string(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.addr)
    }

    /// A new session with [`options`].
    pub(crate) async fn client(&self) -> Client {
        self.client_with(options()).await
    }

    /// A new session with `options`.
    pub(crate) async fn client_with(&self, options: ClientOptions) -> Client {
        within("connect", Client::connect(&self.addr, options))
            .await
            .expect("connects")
    }

    /// Keeps the server alive as long as the fixture (ours only).
    pub(crate) fn server(&self) -> Option<&TestServer> {
        self.own.as_ref()
    }
}

/// The reference server shared by a test binary, started on first use. Its JVM dies with
/// the test process (the wrapper kills it when its stdin closes).
fn shared_reference() -> SocketAddr {
    static SHARED: OnceLock<(SocketAddr, Mutex<Jvm>)> = OnceLock::new();
    let (addr, _) = SHARED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("zk-client-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let jvm = Jvm::start(&dir, addr);
        // The wrapper removes the folder after the JVM, when the test process ends.
        std::fs::write(dir.join(".remove"), "yes").expect("marking the folder");
        (addr, Mutex::new(jvm))
    });
    *addr
}

/// Apache ZooKeeper in a JVM, under a shell that kills it (SIGKILL) when its stdin
/// closes: on drop, or when the test process ends however it ends.
struct Jvm {
    shell: Child,
    stdin: Option<ChildStdin>,
}

impl Jvm {
    fn start(dir: &Path, addr: SocketAddr) -> Jvm {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("a data dir");
        let cfg = dir.join("zoo.cfg");
        let text = format!(
            "tickTime={TICK_MS}\n\
             initLimit=10\n\
             syncLimit=5\n\
             dataDir={}\n\
             clientPort={}\n\
             clientPortAddress=127.0.0.1\n\
             maxSessionTimeout=60000\n\
             4lw.commands.whitelist=*\n\
             extendedTypesEnabled=true\n\
             admin.enableServer=false\n\
             authProvider.1={SASL_PROVIDER}\n",
            data.display(),
            addr.port()
        );
        std::fs::write(&cfg, text).expect("writing zoo.cfg");
        std::fs::write(dir.join("jaas.conf"), JAAS).expect("writing jaas.conf");
        let mut classpath = vec![PathBuf::from(ZOOKEEPER_JAR)];
        if Path::new(SLF4J_SIMPLE_JAR).is_file() {
            classpath.push(PathBuf::from(SLF4J_SIMPLE_JAR));
        }
        let classpath: Vec<String> = classpath.iter().map(|p| p.display().to_string()).collect();
        let log = std::fs::File::create(dir.join("server.log")).expect("a log file");
        let script = "java -Xmx256m -XX:TieredStopAtLevel=1 -cp \"$1\" \
                      -Djava.security.auth.login.config=\"$3/jaas.conf\" \
                      org.apache.zookeeper.server.ZooKeeperServerMain \"$2\" & \
                      pid=$!; read _; kill -9 $pid; wait $pid; \
                      if [ \"$(cat \"$3/.remove\" 2>/dev/null)\" = yes ]; then rm -rf \"$3\"; fi";
        let mut shell = Command::new("sh")
            .args(["-c", script, "sh"])
            .args([classpath.join(":"), cfg.display().to_string()])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect(
                "java runs (ZK_CLIENT_TEST_SERVER=reference needs Java and Debian's zookeeper)",
            );
        let stdin = shell.stdin.take();
        let jvm = Jvm { shell, stdin };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !serving(addr) {
            assert!(
                Instant::now() < deadline,
                "Apache ZooKeeper did not serve on {addr} within 60 s; see {}",
                dir.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        jvm
    }
}

impl Drop for Jvm {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.shell.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// Whether the server serves requests: `ruok` says imok as soon as it listens, `srvr`
/// reports a mode only once it runs.
fn serving(addr: SocketAddr) -> bool {
    four_letter(addr, "srvr").is_some_and(|answer| answer.contains("Mode:"))
}

fn four_letter(addr: SocketAddr, word: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(word.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    Some(answer)
}
