//! One-shot mode, as scripts use it: the answer on stdout, failures on stderr, exit codes
//! that say what happened, and `--json`.

mod common;

use std::process::{Command, Output};

fn zk_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zk-cli"))
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn answers_errors_exit_codes_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, server) = common::start_server(dir.path());
    let addr = server.local_addr().to_string();
    let server_arg = ["-server", addr.as_str()];
    let run = |rest: &[&str]| zk_cli(&[&server_arg[..], rest].concat());

    let created = run(&["create", "/one", "first value"]);
    assert_eq!(created.status.code(), Some(0));
    assert_eq!(text(&created.stderr), "Created /one\n");
    assert_eq!(text(&created.stdout), "");

    let got = run(&["get", "/one"]);
    assert_eq!(got.status.code(), Some(0));
    assert_eq!(text(&got.stdout), "first value\n");

    let missing = run(&["get", "/missing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(text(&missing.stderr), "Node does not exist: /missing\n");

    let stale = run(&["set", "-v", "5", "/one", "x"]);
    assert_eq!(stale.status.code(), Some(1));
    assert_eq!(text(&stale.stderr), "version No is not valid : /one\n");

    let unknown = run(&["frobnicate", "/one"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).ends_with("Command not found: Command not found frobnicate\n"));

    let usage = run(&["get"]);
    assert_eq!(usage.status.code(), Some(2));
    assert_eq!(text(&usage.stderr), "get [-s] [-w] path\n");

    // Words reach the command as given: quotes inside data are data.
    let quoted = run(&["set", "/one", r#"{"a": 1}"#]);
    assert_eq!(quoted.status.code(), Some(0));
    assert_eq!(text(&run(&["get", "/one"]).stdout), "{\"a\": 1}\n");
    assert_eq!(run(&["set", "/one", "first value"]).status.code(), Some(0));

    let json = run(&["--json", "get", "-s", "/one"]);
    assert_eq!(json.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["data"], "first value");
    assert_eq!(value["stat"]["dataVersion"], 2);
    assert_eq!(value["stat"]["dataLength"], 11);

    let json = run(&["--json", "ls", "/"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["children"], serde_json::json!(["one", "zookeeper"]));

    let json_error = run(&["--json", "delete", "/missing"]);
    assert_eq!(json_error.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&json_error.stdout).unwrap();
    assert_eq!(value["error"]["code"], "NoNode");
    assert_eq!(value["error"]["message"], "Node does not exist: /missing");

    // A chroot in the connect string: paths are inside it.
    assert_eq!(run(&["create", "/one/app", "in"]).status.code(), Some(0));
    let chrooted = zk_cli(&["-server", &format!("{addr}/one"), "ls", "/"]);
    assert_eq!(text(&chrooted.stdout), "[app]\n");

    // A script on stdin exits with its last command's code, as zkCli does.
    let mut piped = Command::new(env!("CARGO_BIN_EXE_zk-cli"))
        .args(server_arg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    piped
        .stdin
        .take()
        .unwrap()
        .write_all(b"get /one\nget /missing\nquit\n")
        .unwrap();
    assert_eq!(piped.wait().unwrap().code(), Some(1));

    runtime.block_on(server.shutdown());
}

#[test]
fn an_unreachable_server_exits_3() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = zk_cli(&[
        "-server",
        &format!("127.0.0.1:{port}"),
        "-timeout",
        "1500",
        "ls",
        "/",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Cannot connect"));
}

#[test]
fn a_shell_starts_before_its_server_and_connects_when_it_comes() {
    // As zkCli: the shell starts at once (in CONNECTING); a command while no server
    // answers fails with ConnectionLoss, as ZooKeeper's client fails what is queued when
    // an attempt fails; once the server is up the session is established and used.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut shell = Command::new(env!("CARGO_BIN_EXE_zk-cli"))
        .args(["-server", &addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    let mut stdin = shell.stdin.take().unwrap();
    stdin.write_all(b"create /late here\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let dir = tempfile::tempdir().unwrap();
    let (runtime, server) = common::start_server_on(dir.path(), &addr);
    // Wait for the session before the next commands, as a user would see it come.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut sessions = 0;
    while sessions == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        sessions = zk_client_sessions(&server).unwrap_or(0);
    }
    assert_eq!(sessions, 1, "the shell's session was established");
    stdin
        .write_all(b"create /late here\nget /late\nquit\n")
        .unwrap();
    drop(stdin);
    let out = shell.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stderr.contains("KeeperErrorCode = ConnectionLoss for /late"),
        "{stderr}"
    );
    assert!(stderr.contains("Created /late"), "{stderr}");
    assert!(stdout.contains("state:SyncConnected"), "{stdout}");
    assert!(stdout.contains("\nhere\n"), "{stdout}");
    assert_eq!(out.status.code(), Some(0));
    runtime.block_on(server.shutdown());
}

/// Sessions the server holds, from its `mntr` answer.
fn zk_client_sessions(server: &zk_server::Server) -> Option<usize> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(server.local_addr()).ok()?;
    stream.write_all(b"mntr").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer
        .lines()
        .find_map(|l| l.strip_prefix("zk_global_sessions\t"))?
        .parse()
        .ok()
}

/// TLS and SASL set as zkCli.sh's users set them, in `CLIENT_JVMFLAGS`: a secure port
/// that needs a client certificate and a JAAS user, against the key stores keytool wrote
/// for the server's tests (a PEM key store, its certificate as the trust store).
#[test]
fn tls_and_sasl_from_the_java_clients_flags() {
    let stores = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/tests/data/tls");
    let dir = tempfile::tempdir().unwrap();
    let jaas = dir.path().join("jaas.conf");
    std::fs::write(
        &jaas,
        "Server {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n \
         user_bob=\"b0b\";\n};\nClient {\n \
         org.apache.zookeeper.server.auth.DigestLoginModule required\n \
         username=\"bob\" password=\"b0b\";\n};\n",
    )
    .unwrap();
    let pem = |name: &str| stores.join(name).display().to_string();
    let text_cfg = format!(
        "dataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\nsecureClientPort=0\n\
         secureClientPortAddress=127.0.0.1\n\
         authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
         ssl.keyStore.location={}\nssl.trustStore.location={}\nssl.clientAuth=need\n",
        dir.path().join("data").display(),
        pem("server.pem"),
        pem("server.cert.pem"),
    );
    let system = [(
        "java.security.auth.login.config".to_owned(),
        jaas.display().to_string(),
    )];
    let config = zk_server::Config::parse_with(&text_cfg, system.into_iter().collect()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(zk_server::Server::start(config)).unwrap();
    let secure = format!("localhost:{}", server.secure_addr().unwrap().port());
    let flags = format!(
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty \
         -Dzookeeper.client.secure=true -Dzookeeper.ssl.keyStore.location={} \
         -Dzookeeper.ssl.trustStore.location={} -Djava.security.auth.login.config={}",
        pem("server.pem"),
        pem("server.cert.pem"),
        jaas.display()
    );
    let who = Command::new(env!("CARGO_BIN_EXE_zk-cli"))
        .args(["-server", &secure, "whoami"])
        .env("CLIENT_JVMFLAGS", &flags)
        .output()
        .unwrap();
    let out = text(&who.stdout);
    assert_eq!(who.status.code(), Some(0), "{out}{}", text(&who.stderr));
    assert!(out.contains("x509: CN=localhost,O=zk-rs tests"), "{out}");
    assert!(out.contains("sasl: bob"), "{out}");
    // Without the client certificate the handshake fails: no server reached.
    let bare = Command::new(env!("CARGO_BIN_EXE_zk-cli"))
        .args(["-server", &secure, "-timeout", "2000", "whoami"])
        .env(
            "CLIENT_JVMFLAGS",
            format!(
                "-Dzookeeper.client.secure=true -Dzookeeper.ssl.trustStore.location={}",
                pem("server.cert.pem")
            ),
        )
        .output()
        .unwrap();
    assert_eq!(bare.status.code(), Some(3), "{}", text(&bare.stderr));
    runtime.block_on(server.shutdown());
}
