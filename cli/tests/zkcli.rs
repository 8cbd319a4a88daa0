//! zk-cli, the real binary, runs the sessions that `cargo xtask compat-clients --only zk-cli
//! --record-cli` ran through Apache ZooKeeper's own `zkCli.sh`, against our server; each
//! command's answer and the session's watch events must be what zkCli.sh printed (times,
//! zxids, session ids and the server's address masked, as the recording is).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What zk-cli (as zkCli.sh) prints for a bare `printwatches`: the end of each answer.
const SENTINEL: &str = "printwatches is on\n";
const EVENTS: &str = "(watch events of the session, in order)";

/// One recorded session: its commands and zkCli.sh's answers.
struct Transcript {
    name: String,
    answers: Vec<(String, String)>,
}

fn transcripts() -> Vec<Transcript> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zkcli");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let mut answers: Vec<(String, String)> = Vec::new();
            for line in text.lines() {
                match line.strip_prefix("### ") {
                    Some(command) => answers.push((command.to_owned(), String::new())),
                    None => {
                        let (_, answer) = answers.last_mut().expect("a command first");
                        if !answer.is_empty() {
                            answer.push('\n');
                        }
                        answer.push_str(line);
                    }
                }
            }
            Transcript {
                name: file.file_stem().unwrap().to_string_lossy().into_owned(),
                answers,
            }
        })
        .collect()
}

fn is_session_id(hex: &str) -> bool {
    let digits = hex.trim().trim_start_matches("0x");
    match u64::from_str_radix(digits, 16) {
        Ok(0) | Err(_) => false,
        // TTL and container markers are not sessions.
        Ok(value) => !matches!(value >> 56, 0x80 | 0xff),
    }
}

/// Masks what differs from run to run, as the recording does.
fn normalise(line: &str, server: &str) -> String {
    let line = line.replace(server, "<server>");
    for (prefix, mask) in [
        ("ctime = ", "<time>"),
        ("mtime = ", "<time>"),
        ("cZxid = ", "<zxid>"),
        ("mZxid = ", "<zxid>"),
        ("pZxid = ", "<zxid>"),
    ] {
        if line.starts_with(prefix) {
            return format!("{prefix}{mask}");
        }
    }
    match line.strip_prefix("ephemeralOwner = ") {
        Some(owner) if is_session_id(owner) => "ephemeralOwner = <session>".into(),
        _ => line,
    }
}

/// Runs `commands` through zk-cli on stdin, each followed by `printwatches`; returns each
/// command's answer, then the session's watch events as one answer.
fn run_session(server: &str, commands: &[&str], dir: &Path) -> Vec<(String, String)> {
    let out_path = dir.join("out.txt");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zk-cli"))
        .args(["-server", server])
        .env("TZ", "UTC")
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut script = String::new();
    for command in commands {
        script.push_str(&format!("{command}\nprintwatches\n"));
    }
    script.push_str("quit\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "zk-cli did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out_path).unwrap();
    // Watch events come from another task and may land anywhere: take them out first.
    let mut events = Vec::new();
    let mut kept = Vec::new();
    for line in text.lines() {
        if let Some(event) = line.strip_prefix("WatchedEvent ") {
            let event = format!("WatchedEvent {event}");
            if !event.contains("type:None") {
                events.push(event);
            }
            // The blank line and `WATCHER::` before it.
            while kept
                .last()
                .is_some_and(|l: &String| l.is_empty() || l == "WATCHER::")
            {
                kept.pop();
            }
            continue;
        }
        kept.push(normalise(line, server));
    }
    let text = kept.join("\n") + "\n";
    // Before the first command: the greeting.
    let text = text
        .split_once("Welcome to ZooKeeper!\n")
        .map_or(text.as_str(), |(_, rest)| rest);
    let mut answers: Vec<(String, String)> = text
        .split(SENTINEL)
        .zip(commands)
        .map(|(answer, command)| {
            let answer = answer.trim_end_matches('\n');
            // The blank line a watch event left behind, where one was taken out.
            let answer: Vec<&str> = answer.lines().filter(|l| !l.is_empty()).collect();
            (command.to_string(), answer.join("\n"))
        })
        .collect();
    answers.push((EVENTS.into(), events.join("\n")));
    answers
}

#[test]
fn zk_cli_answers_as_zkcli_does() {
    let transcripts = transcripts();
    assert!(
        transcripts.len() >= 10,
        "the recorded sessions are in tests/zkcli"
    );
    let dir = tempfile::tempdir().unwrap();
    let (runtime, server) = common::start_server(dir.path());
    let addr = server.local_addr().to_string();
    let mut differences = Vec::new();
    let mut compared = 0;
    for transcript in &transcripts {
        let expected: Vec<&(String, String)> = transcript
            .answers
            .iter()
            .filter(|(c, _)| c != "(connect)" && c != "quit")
            .collect();
        let commands: Vec<&str> = expected
            .iter()
            .map(|(c, _)| c.as_str())
            .filter(|c| *c != EVENTS)
            .collect();
        let actual = run_session(&addr, &commands, dir.path());
        assert_eq!(
            actual.len(),
            expected.len(),
            "{}: zk-cli answered {} of {} commands",
            transcript.name,
            actual.len() - 1,
            commands.len()
        );
        for ((command, want), (_, got)) in expected.iter().zip(&actual) {
            compared += 1;
            // Blank lines were dropped on our side (see run_session); compare likewise.
            let want: Vec<&str> = want.lines().filter(|l| !l.is_empty()).collect();
            let want = want.join("\n");
            let order_free = |s: &str| {
                let mut lines: Vec<String> = s
                    .lines()
                    .map(|l| {
                        // getEphemerals lists a hash set: its order is not ZooKeeper's promise.
                        match l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                            Some(inner) if command.starts_with("getEphemerals") => {
                                let mut items: Vec<&str> = inner.split(", ").collect();
                                items.sort_unstable();
                                format!("[{}]", items.join(", "))
                            }
                            _ => l.to_owned(),
                        }
                    })
                    .collect();
                if command == "whoami" {
                    lines.sort();
                }
                lines
            };
            if order_free(&want) != order_free(got) {
                differences.push(format!(
                    "{} / {command}\n  zkCli.sh:\n{}\n  zk-cli:\n{}",
                    transcript.name,
                    indent(&want),
                    indent(got)
                ));
            }
        }
    }
    runtime.block_on(server.shutdown());
    assert!(compared > 150, "only {compared} answers compared");
    assert!(
        differences.is_empty(),
        "{} of {compared} answers differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
