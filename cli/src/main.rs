//! `zk-cli`: a ZooKeeper shell that speaks zkCli's commands with zkCli's output shapes.
//!
//! ```text
//! zk-cli [-server host:port[,...][/chroot]] [-timeout ms] [-r] [-waitforconnection]
//!        [--json] [command args...]
//! ```
//!
//! TLS and SASL DIGEST-MD5 are set as for zkCli.sh, with `-D` flags in `CLIENT_JVMFLAGS`
//! (see `javaopts`).
//!
//! Without a command it is an interactive shell (line editing, history, completion of
//! commands and znode paths; a plain line reader when stdin is not a terminal, as zkCli
//! without JLine). With one, it runs that command and exits:
//!
//! | exit code | meaning |
//! |---|---|
//! | 0 | the command succeeded |
//! | 1 | the command failed (a ZooKeeper error such as a missing node, or bad arguments) |
//! | 2 | the command line of `zk-cli` itself is wrong, or the command is unknown |
//! | 3 | no server could be reached within the timeout |

mod exec;
mod javaopts;
mod javatext;
mod parse;
mod print;
mod shell;

use std::process::ExitCode;
use std::time::Duration;

/// What the command line asks for.
#[derive(Debug, Clone)]
struct Args {
    server: String,
    timeout: Duration,
    read_only: bool,
    /// `-waitforconnection`: the shell waits for its first connection before reading.
    wait_for_connection: bool,
    json: bool,
    command: Vec<String>,
    /// TLS and SASL, from the Java client's `-D` settings in `CLIENT_JVMFLAGS`.
    security: javaopts::Security,
}

/// Reads zkCli's options (`-server`, `-timeout`, `-r`, `-waitforconnection`) and ours
/// (`--json`); the first other word starts the command.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        server: "localhost:2181".into(),
        timeout: Duration::from_millis(30_000),
        read_only: false,
        wait_for_connection: false,
        json: false,
        command: Vec::new(),
        security: javaopts::Security::default(),
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-server" => {
                parsed.server = args
                    .next()
                    .ok_or("Error: no argument found for option -server")?
            }
            "-timeout" => {
                let ms = args
                    .next()
                    .ok_or("Error: no argument found for option -timeout")?;
                let ms: u64 = ms.parse().map_err(|_| format!("Error: bad timeout {ms}"))?;
                parsed.timeout = Duration::from_millis(ms);
            }
            "-r" => parsed.read_only = true,
            "--json" => parsed.json = true,
            "-waitforconnection" => parsed.wait_for_connection = true,
            "-h" | "-help" | "--help" => {
                return Err(parse::usage());
            }
            _ => {
                parsed.command.push(arg);
                parsed.command.extend(args.by_ref());
            }
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let parsed = parse_args(std::env::args().skip(1)).and_then(|mut args| {
        args.security = javaopts::security(&javaopts::properties_from_env())
            .map_err(|e| format!("zk-cli: {e}"))?;
        Ok(args)
    });
    let args = match parsed {
        Ok(args) => args,
        Err(message) => {
            eprint!("{message}");
            if !message.ends_with('\n') {
                eprintln!();
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("zk-cli: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let code = if args.command.is_empty() {
        shell::run(&runtime, &args)
    } else {
        runtime.block_on(exec::one_shot(&args))
    };
    // Background tasks (the connection) end with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Args, String> {
        parse_args(line.split_whitespace().map(String::from))
    }

    #[test]
    fn zkclis_options_then_the_command() {
        let a = args("-server h1:2181,h2:2181/app -timeout 5000 --json ls -s /").unwrap();
        assert_eq!(a.server, "h1:2181,h2:2181/app");
        assert_eq!(a.timeout, Duration::from_secs(5));
        assert!(a.json && !a.read_only);
        assert_eq!(a.command, ["ls", "-s", "/"]);
        let a = args("").unwrap();
        assert_eq!(a.server, "localhost:2181");
        assert!(a.command.is_empty());
        assert!(args("-server").is_err());
        assert!(args("-timeout soon").is_err());
    }
}
