//! SASL DIGEST-MD5 on a running server, with our `zk-client` as the client: under
//! `sessionRequireClientSASLAuth`, a client that authenticates is served as `sasl:<user>`,
//! one that skips SASL or gives a wrong password is refused, and the server goes on
//! serving.

use std::time::Duration;

use zk_client::{Client, ClientOptions, CreateOptions, Error, SaslCredentials};
use zk_server::{Config, Server};

fn config(dir: &std::path::Path, jaas: &std::path::Path) -> Config {
    let system = [
        (
            "java.security.auth.login.config".to_owned(),
            jaas.display().to_string(),
        ),
        (
            "zookeeper.authProvider.1".to_owned(),
            "org.apache.zookeeper.server.auth.SASLAuthenticationProvider".to_owned(),
        ),
        (
            "zookeeper.sessionRequireClientSASLAuth".to_owned(),
            "true".to_owned(),
        ),
    ];
    // Through the file's path, as zkServer.sh hands the JVM its flags.
    let mut config = Config::parse_with("", system.into_iter().collect()).unwrap();
    config.client_addr = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.to_owned();
    config.data_log_dir = dir.to_owned();
    config.tick_time = Duration::from_millis(200);
    config.min_session_timeout = Duration::from_millis(400);
    config
}

fn options(sasl: Option<(&str, &str)>) -> ClientOptions {
    ClientOptions {
        session_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        reconnect_delay: Duration::from_millis(100),
        sasl: sasl.map(|(user, password)| SaslCredentials {
            user: user.into(),
            password: password.into(),
        }),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn required_sasl_serves_its_users_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let jaas = dir.path().join("jaas.conf");
    std::fs::write(
        &jaas,
        "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
         user_alice=\"4lice\";\n};\n",
    )
    .unwrap();
    let server = Server::start(config(dir.path(), &jaas)).await.unwrap();
    let at = server.local_addr().to_string();

    let alice = Client::connect(&at, options(Some(("alice", "4lice"))))
        .await
        .expect("alice authenticates");
    let who = alice.who_am_i().await.unwrap();
    assert!(
        who.iter()
            .any(|i| i.auth_scheme == "sasl" && i.user == "alice"),
        "{who:?}"
    );
    alice
        .create(
            "/alice",
            b"",
            &CreateOptions::persistent().with_acl(zk_client::acl::creator_all()),
        )
        .await
        .unwrap();

    // A wrong password ends the session attempt; so does skipping SASL, at the first
    // request (SessionClosedRequireSaslAuth, then the connection closes).
    let wrong = Client::connect(&at, options(Some(("alice", "guess")))).await;
    assert_eq!(wrong.err(), Some(Error::AuthFailed));
    let skipper = Client::connect(&at, options(None))
        .await
        .expect("the session is made before any request");
    assert_eq!(
        skipper.exists("/alice").await.unwrap_err(),
        Error::SessionClosedRequireSaslAuth
    );
    // Alice is still served.
    assert!(alice.exists("/alice").await.unwrap().is_some());
    server.shutdown().await;
}
