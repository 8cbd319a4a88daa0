//! Apache ZooKeeper's `zkCli.sh` over TLS and SASL, configured as its users configure it
//! (`CLIENT_JVMFLAGS`: the Netty socket, `zookeeper.client.secure`, `zookeeper.ssl.*` key
//! and trust stores, a JAAS `Client` section), against Apache ZooKeeper 3.8.0 and against
//! ours, each serving a secure client port from keytool's JKS stores (`ssl.clientAuth`
//! need) with the SASL provider and a JAAS `Server` section. The session's answers
//! (`whoami` with its `x509` and `sasl` ids, an `x509` ACL, a read, an `addauth`-free
//! denial) are compared as the plain zkCli.sh cases are.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{Client, Report, Servers, Unit, ZKCLI, ZkCliCase, target_dir, zkcli_session};
use crate::servers::{ServerProc, free_port, server_classpath};

/// Under the cargo target directory.
const DIR: &str = "compat-secure-cli";

/// Both JAAS sections: the server's users and the client's login.
const JAAS: &str = "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
                    user_bob=\"b0b's secret\";\n};\nClient {\n  \
                    org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
                    username=\"bob\"\n  password=\"b0b's secret\";\n};\n";

/// The session: who the client is, a znode only its certificate may read, and the
/// answers around it.
const CASE: ZkCliCase = ZkCliCase {
    name: "tls+sasl",
    commands: &[
        "whoami",
        "create /secure data",
        // `auth`: every id the session authenticated with (x509 and sasl), in
        // ZooKeeper's order.
        "setAcl /secure auth::cdrwa",
        "getAcl /secure",
        "get /secure",
        "create /open",
        "setAcl /open sasl:bob:r",
        "getAcl /open",
        "get /open",
        "set /open x",
    ],
};

/// The key stores keytool wrote for the server's tests.
fn stores() -> PathBuf {
    crate::root().join("server/tests/data/tls")
}

/// A zoo.cfg serving TLS clients on a free port (a plain port beside it for `ruok`).
fn config(home: &Path) -> Result<(PathBuf, std::net::SocketAddr, u16)> {
    let data = home.join("data");
    std::fs::create_dir_all(&data)?;
    let (plain, secure) = (free_port()?, free_port()?);
    let stores = stores();
    let text = format!(
        "tickTime=2000\n\
         dataDir={}\n\
         clientPort={plain}\n\
         clientPortAddress=127.0.0.1\n\
         secureClientPort={secure}\n\
         secureClientPortAddress=127.0.0.1\n\
         serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
         authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
         ssl.keyStore.location={}\n\
         ssl.keyStore.password=secret\n\
         ssl.trustStore.location={}\n\
         ssl.trustStore.password=secret\n\
         ssl.clientAuth=need\n\
         4lw.commands.whitelist=*\n\
         admin.enableServer=false\n",
        data.display(),
        stores.join("server.jks").display(),
        stores.join("trust.jks").display(),
    );
    let cfg = home.join("zoo.cfg");
    std::fs::write(&cfg, text)?;
    std::fs::write(home.join("jaas.conf"), JAAS)?;
    Ok((
        cfg,
        std::net::SocketAddr::from(([127, 0, 0, 1], plain)),
        secure,
    ))
}

/// The Java client's TLS and SASL settings, as `CLIENT_JVMFLAGS` (with Netty's jars,
/// which Debian's zkCli.sh class path leaves out: the last `-cp` wins).
fn client_jvmflags(jaas: &Path) -> String {
    let stores = stores();
    [
        "-Duser.timezone=UTC -Duser.language=en -Duser.country=US -Dfile.encoding=UTF-8".to_owned(),
        "-Xmx128m".to_owned(),
        format!("-cp {}", server_classpath().join(":")),
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty".to_owned(),
        "-Dzookeeper.client.secure=true".to_owned(),
        format!(
            "-Dzookeeper.ssl.keyStore.location={}",
            stores.join("server.jks").display()
        ),
        "-Dzookeeper.ssl.keyStore.password=secret".to_owned(),
        format!(
            "-Dzookeeper.ssl.trustStore.location={}",
            stores.join("trust.jks").display()
        ),
        "-Dzookeeper.ssl.trustStore.password=secret".to_owned(),
        format!("-Djava.security.auth.login.config={}", jaas.display()),
    ]
    .join(" ")
}

/// A shell on `localhost:port` set up by [`client_jvmflags`]: zkCli.sh, or our zk-cli
/// (`program`), which reads the same `-D` settings (the JVM's own flags mean nothing to
/// it).
fn secure_shell(program: Option<&Path>, port: u16, jaas: &Path) -> Command {
    let mut cmd = match program {
        Some(binary) => Command::new(binary),
        None => {
            let mut cmd = Command::new("bash");
            cmd.arg(ZKCLI);
            cmd
        }
    };
    cmd.arg("-server")
        .arg(format!("localhost:{port}"))
        .env("TZ", "UTC")
        .env("CLIENT_JVMFLAGS", client_jvmflags(jaas));
    cmd
}

pub(super) fn run(servers: &Servers<'_>, report: &mut Report) -> Result<()> {
    let dir = target_dir().join(DIR);
    crate::remove_path(&dir)?;
    let binary = servers
        .options
        .zk_server
        .clone()
        .unwrap_or_else(|| target_dir().join("debug/zk-server"));
    let zk_cli = target_dir().join("debug/zk-cli");
    let mut answers = Vec::new();
    // zkCli.sh against Apache ZooKeeper, zkCli.sh against ours, and our zk-cli (set up by
    // the same CLIENT_JVMFLAGS) against Apache ZooKeeper; each with a fresh server.
    for (tag, ours, shell_is_ours) in [
        ("zookeeper", false, false),
        ("ours", true, false),
        ("zk-cli", false, true),
    ] {
        let home = dir.join(tag);
        let (cfg, addr, secure) = config(&home)?;
        let jaas = format!(
            "-Djava.security.auth.login.config={}",
            home.join("jaas.conf").display()
        );
        let server = if ours {
            let mut cmd = Command::new(&binary);
            cmd.arg(&cfg)
                .env("NO_COLOR", "1")
                .env("SERVER_JVMFLAGS", &jaas);
            ServerProc::spawn("zk-server", cmd, addr, home.join("server.log"))?
        } else {
            let mut cmd = crate::java(&server_classpath());
            cmd.arg("-Xmx256m")
                .arg(&jaas)
                .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
                .arg(&cfg);
            ServerProc::spawn("Apache ZooKeeper", cmd, addr, home.join("server.log"))?
        };
        let program = shell_is_ours.then_some(zk_cli.as_path());
        let shell = secure_shell(program, secure, &home.join("jaas.conf"));
        let mut segments = zkcli_session(shell, &CASE, &home.join("shell.out"))
            .with_context(|| format!("{tag}: a shell over TLS against {}", server.name))?;
        let transcript: String = segments.iter().map(|(_, text)| text.as_str()).collect();
        if !transcript.contains("state:SaslAuthenticated") {
            bail!("{tag}: the shell never announced SaslAuthenticated:\n{transcript}");
        }
        // The greetings differ between the two shells (zk-cli has no JLine).
        if let Some((_, greeting)) = segments.first_mut() {
            greeting.clear();
        }
        answers.push(
            segments
                .into_iter()
                .map(|(command, text)| (command, normalise(&text, secure)))
                .collect::<Vec<_>>(),
        );
        drop(server);
    }
    let zk_cli_answers = answers.pop().unwrap_or_default();
    let ours = answers.pop().unwrap_or_default();
    let reference = answers.pop().unwrap_or_default();
    let units = |case: String, answers: &[(String, String)]| -> Vec<Unit> {
        reference
            .iter()
            .zip(answers)
            .map(|((command, zk), (_, us))| Unit {
                client: Client::SecureCli,
                case: case.clone(),
                command: command.clone(),
                reference: zk.clone(),
                ours: us.clone(),
                pass: zk == us,
                order_only: false,
                intended: None,
            })
            .collect()
    };
    let (keep_going, verbose) = (servers.options.keep_going, servers.options.verbose);
    report.record_case(units(CASE.name.into(), &ours), keep_going, verbose);
    // zk-cli reading the Java client's settings (JKS stores, JAAS) answers as zkCli.sh.
    let zk_cli_case = format!("{} (zk-cli)", CASE.name);
    report.record_case(units(zk_cli_case, &zk_cli_answers), keep_going, verbose);
    Ok(())
}

/// zkCli.sh's output with its logging, times, zxids, session ids and the port masked.
/// The Java client's `SaslAuthenticated` event comes whenever its SASL thread is done,
/// so the segment it lands in is a matter of timing: it is taken out (with its
/// `WATCHER::` line) wherever it is; that it comes at all is checked by the zk-cli
/// session's transcript holding it once.
fn normalise(text: &str, port: u16) -> String {
    let sasl_event = "WatchedEvent state:SaslAuthenticated type:None path:null";
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut kept = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let next_is_sasl = lines.get(i + 1).is_some_and(|n| n.trim() == sasl_event);
        if line.trim() == sasl_event || (line.trim() == "WATCHER::" && next_is_sasl) {
            continue;
        }
        kept.push(*line);
    }
    kept.join("\n")
        .replace(&port.to_string(), "<port>")
        .lines()
        .filter(|l| {
            !(l.starts_with("SLF4J:")
                || l.contains(" INFO ")
                || l.contains(" WARN ")
                // A Java log line's exception, and the shell's exit: the JVM's own.
                || l.starts_with("EndOfStreamException:")
                || l.contains("ServiceUtils - Exiting JVM")
                || l.trim().is_empty())
        })
        .map(|l| {
            for prefix in ["ctime = ", "mtime = "] {
                if l.starts_with(prefix) {
                    return format!("{prefix}<time>");
                }
            }
            for prefix in ["cZxid = ", "mZxid = ", "pZxid = ", "ephemeralOwner = "] {
                if l.starts_with(prefix) {
                    return format!("{prefix}<id>");
                }
            }
            if l.contains("sessionid = ") || l.contains("session id") {
                return "<session>".to_owned();
            }
            l.to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
