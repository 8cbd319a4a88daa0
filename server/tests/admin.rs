//! The AdminServer over HTTP: the command list, commands by name and by alias, an
//! unknown command, and answers that follow the server's state (sessions, ephemerals,
//! watches, connections). `cargo xtask compat-admin` compares every answer with Apache
//! ZooKeeper 3.8.0's, field by field.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zk_client::{Client, ClientOptions, CreateOptions};
use zk_server::{Config, Server};

async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

async fn command(addr: SocketAddr, name: &str) -> Value {
    let (head, body) = get(addr, &format!("/commands/{name}")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/json"), "{head}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn commands_answer_in_json_with_zookeepers_fields() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config {
        client_addr: "127.0.0.1:0".parse().unwrap(),
        admin_enabled: true,
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        data_log_dir: dir.path().to_owned(),
        ..Config::default()
    })
    .await
    .unwrap();
    let admin = server.admin_addr().expect("the AdminServer runs");

    let (head, list) = get(admin, "/commands").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(list.matches("<a href=\"/commands/").count(), 26, "{list}");
    assert!(list.contains("<a href=\"/commands/watches_by_path\">watches_by_path</a>"));

    let options = ClientOptions {
        session_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    let client = Client::connect(&server.local_addr().to_string(), options)
        .await
        .unwrap();
    client
        .create("/app", b"v", &CreateOptions::persistent())
        .await
        .unwrap();
    client
        .create("/app/eph", b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let _watch = client.get_data_w("/app").await.unwrap();
    let session = client.session_id();

    let ruok = command(admin, "ruok").await;
    assert_eq!(ruok, serde_json::json!({"command": "ruok", "error": null}));
    let unknown = command(admin, "nosuch").await;
    assert_eq!(unknown["error"], "Unknown command: nosuch");
    // An alias answers under the primary name.
    let conf = command(admin, "conf").await;
    assert_eq!(conf["command"], "configuration");
    assert_eq!(conf["client_port"], server.local_addr().port());
    assert_eq!(conf["client_port_listen_backlog"], -1);

    let dump = command(admin, "dump").await;
    assert_eq!(
        dump["session_id_to_ephemeral_paths"][session.to_string()],
        serde_json::json!(["/app/eph"])
    );
    let expiring: Vec<i64> = dump["expiry_time_to_session_ids"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ids| {
            ids.as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_i64().unwrap())
        })
        .collect();
    assert_eq!(expiring, vec![session]);

    let watches = command(admin, "wchc").await;
    assert_eq!(watches["command"], "watches");
    assert_eq!(
        watches["session_id_to_watched_paths"][session.to_string()],
        serde_json::json!(["/app"])
    );
    let by_path = command(admin, "watches_by_path").await;
    assert_eq!(
        by_path["path_to_session_ids"]["/app"],
        serde_json::json!([session])
    );
    let summary = command(admin, "watch_summary").await;
    assert_eq!(summary["num_total_watches"], 1);

    let cons = command(admin, "connections").await;
    let connection = &cons["connections"][0];
    assert_eq!(connection["session_id"], session);
    assert_eq!(connection["session_timeout"], 10_000);
    assert_eq!(connection["last_operation"], "GETD");
    assert!(connection["packets_received"].as_u64().unwrap() >= 3);
    assert_eq!(cons["secure_connections"], serde_json::json!([]));

    let stats = command(admin, "srvr").await;
    assert_eq!(stats["command"], "server_stats");
    assert_eq!(stats["server_stats"]["server_state"], "standalone");
    assert_eq!(stats["server_stats"]["num_alive_client_connections"], 1);
    // Sizes without the length prefix: at least ZooKeeper's 16-byte reply header.
    let sizes = &stats["client_response"];
    let (min, max) = (
        sizes["min_buffer_size"].as_i64().unwrap(),
        sizes["max_buffer_size"].as_i64().unwrap(),
    );
    assert!(16 <= min && min <= max, "{sizes}");
    assert_eq!(stats["server_stats"]["client_response_stats"], *sizes);
    // ZooKeeper's count for this tree (`cargo xtask compat-admin` compares the two).
    assert_eq!(stats["node_count"], 7);
    let monitor = command(admin, "mntr").await;
    assert_eq!(monitor["command"], "monitor");
    assert_eq!(monitor["znode_count"], 7);
    assert_eq!(monitor["ephemerals_count"], 1);
    assert_eq!(monitor["server_state"], "standalone");

    let leader = command(admin, "leader").await;
    assert_eq!(leader["error"], "server is not initialized");
    let zab = command(admin, "zabstate").await;
    assert_eq!(zab["voting"], false);
    assert_eq!(zab["zabstate"], "");

    // crst zeroes the connections' counters, not the server's.
    command(admin, "crst").await;
    let cons = command(admin, "cons").await;
    assert_eq!(cons["connections"][0]["packets_received"], 0);
    assert_eq!(cons["connections"][0]["last_operation"], "NA");
    let stats = command(admin, "stats").await;
    assert!(stats["server_stats"]["packets_received"].as_u64().unwrap() >= 3);
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn a_taken_admin_port_leaves_the_server_serving() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config {
        client_addr: "127.0.0.1:0".parse().unwrap(),
        admin_enabled: true,
        admin_addr: taken.local_addr().unwrap(),
        data_dir: dir.path().to_owned(),
        data_log_dir: dir.path().to_owned(),
        ..Config::default()
    })
    .await
    .unwrap();
    assert_eq!(server.admin_addr(), None);
    let client = Client::connect(&server.local_addr().to_string(), ClientOptions::default())
        .await
        .unwrap();
    client
        .create("/still", b"", &CreateOptions::persistent())
        .await
        .unwrap();
    server.shutdown().await;
}
