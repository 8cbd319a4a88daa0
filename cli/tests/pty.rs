//! The interactive shell in a real terminal (a pty): zkCli's prompt, tab completion of
//! commands and znode paths, history recall, watch events printed while waiting at the
//! prompt, and `quit`.

mod common;

use std::process::Command;

use rexpect::session::spawn_command;

/// Sends keys to the terminal at once (rexpect buffers what it sends).
fn type_keys(shell: &mut rexpect::session::PtySession, keys: &str) {
    shell.send(keys).unwrap();
    shell.flush().unwrap();
}

#[test]
fn the_shell_completes_recalls_and_prints_events() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, server) = common::start_server(dir.path());
    let addr = server.local_addr().to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_zk-cli"));
    command
        .args(["-server", &addr])
        .env("HOME", dir.path())
        .env("TERM", "xterm")
        .env("TZ", "UTC");
    let mut shell = spawn_command(command, Some(20_000)).unwrap();
    let prompt = |n: usize| format!("[zk: {addr}(CONNECTED) {n}] ");

    // The shell starts at once, as zkCli (its first prompt may show CONNECTING), and
    // the session follows.
    shell
        .exp_string("WatchedEvent state:SyncConnected type:None path:null")
        .unwrap();
    type_keys(
        &mut shell,
        &format!("{}\r", "create /completion-target hello"),
    );
    shell.exp_string("Created /completion-target").unwrap();
    shell.exp_string(&prompt(1)).unwrap();

    // A command name, then a znode path, completed with tab.
    type_keys(&mut shell, "getA");
    type_keys(&mut shell, "\t");
    type_keys(&mut shell, "/compl");
    type_keys(&mut shell, "\t");
    type_keys(&mut shell, "\r");
    shell.exp_string("'world,'anyone").unwrap();
    shell.exp_string(": cdrwa").unwrap();
    shell.exp_string(&prompt(2)).unwrap();

    // A watch set here fires while the shell waits at its prompt.
    type_keys(&mut shell, &format!("{}\r", "get -w /completion-target"));
    shell.exp_string("hello").unwrap();
    shell.exp_string(&prompt(3)).unwrap();
    let other = std::process::Command::new(env!("CARGO_BIN_EXE_zk-cli"))
        .args(["-server", &addr, "set", "/completion-target", "changed"])
        .output()
        .unwrap();
    assert!(other.status.success());
    shell
        .exp_string("WatchedEvent state:SyncConnected type:NodeDataChanged path:/completion-target")
        .unwrap();

    // The previous line, recalled with the up arrow.
    type_keys(&mut shell, "\x1b[A");
    type_keys(&mut shell, "\r");
    shell.exp_string("changed").unwrap();

    type_keys(&mut shell, &format!("{}\r", "history"));
    shell
        .exp_string("0 - create /completion-target hello")
        .unwrap();
    shell.exp_string("4 - history").unwrap();
    type_keys(&mut shell, &format!("{}\r", "quit"));
    shell.exp_eof().unwrap();
    runtime.block_on(server.shutdown());
}
