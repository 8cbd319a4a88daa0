//! What every zk-cli test needs: our server, in process, on a free port.

use std::path::Path;

use zk_server::{Config, Server};

/// A running server with its data under `dir/data`, and the runtime that runs it (the
/// tests themselves drive the zk-cli binary synchronously). Every four-letter word and
/// TTL nodes are enabled, as the recorded zkCli.sh sessions had them.
pub(crate) fn start_server(dir: &Path) -> (tokio::runtime::Runtime, Server) {
    start_server_on(dir, "127.0.0.1:0")
}

/// As [`start_server`], on a given address.
pub(crate) fn start_server_on(dir: &Path, addr: &str) -> (tokio::runtime::Runtime, Server) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(Server::start(Config {
            client_addr: addr.parse().unwrap(),
            data_dir: dir.join("data"),
            data_log_dir: dir.join("data"),
            four_letter_words: vec!["*".into()],
            extended_types: true,
            ..Config::default()
        }))
        .unwrap();
    (runtime, server)
}
