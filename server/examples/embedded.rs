//! A ZooKeeper-compatible server inside your own process, as tests and tools embed one:
//! configured from `zoo.cfg` text, started on a free port with a fresh data directory,
//! used by an unmodified ZooKeeper client (the `zookeeper-client` crate; `zk-client` or
//! any other works the same), asked `ruok` and `srvr`, stopped, and started again from
//! the same directory with its data intact. `RUST_LOG=info` shows the server's log.
//!
//! ```sh
//! cargo run -p zk-server --example embedded
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zk_server::{Config, Server};
use zookeeper_client as zk;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    // The settings a zoo.cfg would hold; `clientPort=0` takes a free port.
    let data_dir = tempfile::tempdir()?;
    let zoo_cfg = format!(
        "tickTime=500\n\
         dataDir={}\n\
         clientPortAddress=127.0.0.1\n\
         clientPort=0\n\
         4lw.commands.whitelist=ruok,srvr\n",
        data_dir.path().display()
    );
    let config = Config::parse(&zoo_cfg)?;

    let server = Server::start(config.clone()).await?;
    let addr = server.local_addr();
    println!("serving on {addr}, data in {}", data_dir.path().display());
    println!("ruok -> {}", four_letter_word(addr, "ruok").await?);

    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(5))
        .connect(&addr.to_string())
        .await?;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.create("/app", b"", &open).await?;
    let (stat, _) = client.create("/app/config", b"v1", &open).await?;
    println!("created /app/config at zxid {:#x}", stat.czxid);

    // A watch, fired by a write from a second session.
    let (data, _, changed) = client.get_and_watch_data("/app/config").await?;
    let other = zk::Client::connect(&addr.to_string()).await?;
    other.set_data("/app/config", b"v2", Some(0)).await?;
    let event = changed.changed().await;
    println!(
        "read {:?}, then the watch fired: {:?} {}",
        String::from_utf8_lossy(&data),
        event.event_type,
        event.path
    );
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);

    print!("srvr ->\n{}", four_letter_word(addr, "srvr").await?);
    drop((client, other));
    server.shutdown().await; // connections closed, the log synced
    println!("stopped");

    // Restarted on the same data directory: the snapshot and txn log bring everything back.
    let server = Server::start(config).await?;
    let client = zk::Client::connect(&server.local_addr().to_string()).await?;
    let (data, stat) = client.get_data("/app/config").await?;
    println!(
        "restarted on {}: /app/config = {:?} (version {})",
        server.local_addr(),
        String::from_utf8_lossy(&data),
        stat.version
    );
    assert_eq!((data.as_slice(), stat.version), (&b"v2"[..], 1));
    drop(client);
    server.shutdown().await;
    Ok(())
}

/// Sends a four-letter word (`ruok`, `srvr`, `mntr`, ...) and reads the answer, as
/// `echo ruok | nc host port` does.
async fn four_letter_word(addr: SocketAddr, word: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(word.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}
