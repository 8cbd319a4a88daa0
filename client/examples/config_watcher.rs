//! A configuration watcher: prints a znode's data, then again each time it changes, waits
//! for it while it does not exist, rides out lost connections, and starts a new session
//! if the old one expires. Stop it with Ctrl-C.
//!
//! ```sh
//! cargo run -p zk-client --example config_watcher -- 127.0.0.1:2181 /app/config
//! # elsewhere: zk-cli -server 127.0.0.1:2181 create /app; ... set /app/config v2
//! ```
//!
//! The first argument is a connect string (`host:port,host:port/chroot`, default
//! `127.0.0.1:2181`), the second the znode (default `/app/config`). Any ZooKeeper-compatible
//! server will do: `cargo run -p zk-server`, or Apache ZooKeeper.

use std::time::Duration;

use zk_client::{Client, ClientOptions, Error, EventType, KeeperState};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let hosts = args.next().unwrap_or_else(|| "127.0.0.1:2181".to_owned());
    let path = args.next().unwrap_or_else(|| "/app/config".to_owned());
    zk_client::validate_path(&path)?;

    loop {
        let client = Client::connect(&hosts, ClientOptions::default()).await?;
        println!(
            "connected to {hosts}: session {:#x}, timeout {:?}",
            client.session_id(),
            client.session_timeout()
        );
        match watch(&client, &path).await {
            Ok(KeeperState::Expired) => println!("session expired; starting a new one"),
            Ok(state) => {
                println!("session ended: {state:?}");
                return Ok(());
            }
            Err(Error::SessionExpired) => println!("session expired; starting a new one"),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Prints `path`'s data each time it changes, until the session ends; returns its state.
async fn watch(client: &Client, path: &str) -> Result<KeeperState, Error> {
    let mut last_version = None;
    loop {
        let event = match client.get_data_w(path).await {
            Ok((data, stat, changed)) => {
                // A watch fires once per change; reading again may show a later version.
                if last_version != Some((stat.czxid, stat.version)) {
                    println!(
                        "{path} version {} (zxid {:#x}): {}",
                        stat.version,
                        stat.mzxid,
                        String::from_utf8_lossy(&data)
                    );
                    last_version = Some((stat.czxid, stat.version));
                }
                changed.await
            }
            Err(Error::NoNode) => {
                // Not there: wait for its creation. (It may have been created between the
                // two calls; then this is a watch on its data, and we read it at once.)
                let (stat, created) = client.exists_w(path).await?;
                if stat.is_some() {
                    continue;
                }
                if last_version.take().is_some() {
                    println!("{path} was deleted; waiting for it");
                } else {
                    println!("{path} does not exist; waiting for it");
                }
                created.await
            }
            Err(Error::ConnectionLoss) => {
                // The client is already reconnecting, to this host or the next, with the
                // same session; its watches are set again there.
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if event.event_type == EventType::None {
            return Ok(event.state); // the session ended: expired, closed or auth failed
        }
    }
}
