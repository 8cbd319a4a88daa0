//! Sessions across server restarts: our in-process server is shut down and started again
//! on the same port and data directory; Apache ZooKeeper's JVM
//! (`ZK_CLIENT_TEST_SERVER=reference`) is killed and started again.

mod harness;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::{TestServer, options, wait_state, within};
use zk_client::{
    AddWatchMode, Client, ClientOptions, CreateOptions, Error, EventType, KeeperState,
    SessionState, WatchedEvent,
};

async fn connect(server: &TestServer, options: ClientOptions) -> Client {
    connect_to(server, "", options).await
}

async fn connect_to(server: &TestServer, chroot: &str, options: ClientOptions) -> Client {
    within(
        "connect",
        Client::connect(&server.connect_string(chroot), options),
    )
    .await
    .expect("connects")
}

/// A client whose session outlives a server restart, and which comes back late.
fn outliving_a_restart() -> ClientOptions {
    ClientOptions {
        // Long enough for a JVM to restart on a busy machine (4/3 of it without a server
        // and the client gives the session up).
        session_timeout: Duration::from_secs(30),
        // Slow enough that another client's writes after the restart most likely come
        // before this one is back: its watches are then fired by the re-registration
        // (setWatches with the last zxid seen).
        reconnect_delay: Duration::from_millis(1500),
        ..options()
    }
}

#[tokio::test]
async fn a_session_survives_a_restart_and_its_watches_still_fire() {
    let mut server = TestServer::start().await;
    let a = connect(&server, outliving_a_restart()).await;
    let persistent = CreateOptions::persistent();
    a.create("/r", b"", &persistent).await.unwrap();
    a.create("/r/data", b"v1", &persistent).await.unwrap();
    a.create("/r/eph", b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    a.create("/q", b"", &persistent).await.unwrap();
    a.add_auth("digest", b"dave:pw").await.unwrap();
    let session = a.session_id();
    let (_, _, data_watch) = a.get_data_w("/r/data").await.unwrap();
    let (_, created_watch) = a.exists_w("/r/new").await.unwrap();
    let (_, child_watch) = a.get_children_w("/r").await.unwrap();
    // On a path of its own: in ZooKeeper 3.8 a persistent recursive watch on /r would take
    // the place of the child watch on /r (one mode per path and watcher), and whether the
    // child watch then fires would depend on whether this client is back before the other
    // one's writes.
    let mut recursive = a
        .add_watch("/q", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    // Enough watches that re-registering them takes several setWatches batches (128K
    // characters each), on paths long enough to fill them.
    let long = "x".repeat(200);
    let many: Vec<_> = (0..1000)
        .map(|i| a.exists_w(&format!("/r/{long}{i}")))
        .collect();
    let mut many_watches = Vec::new();
    for watch in many {
        many_watches.push(watch.await.unwrap().1);
    }
    // And one under a chroot.
    let chrooted = connect_to(
        &server,
        "/r",
        ClientOptions {
            // Apache ZooKeeper 3.8 accepts connections while it is still starting; one seen
            // then was neither answered nor closed ("Unexpected exception" in its worker
            // log), and a client waits out its attempt (session timeout / hosts, as
            // ZooKeeper's Java client) before the next. With 30 s that outlasted the
            // 20 s wait for this watch; 10 s still outlives the restart.
            session_timeout: Duration::from_secs(10),
            ..options()
        },
    )
    .await;
    let (_, _, chrooted_watch) = chrooted.get_data_w("/data").await.unwrap();
    let mut states = a.state_events();

    server.stop().await;
    assert_eq!(
        within("disconnected", states.next()).await,
        Some(SessionState::Disconnected)
    );
    assert_eq!(
        a.get_data("/r/data").await.unwrap_err(),
        Error::ConnectionLoss
    );
    // Identities added while disconnected go out with the next connection.
    let auth = a.add_auth("digest", b"carol:pw");
    server.start_again().await;

    let b = connect(&server, options()).await;
    b.set_data("/r/data", b"v2", None).await.unwrap();
    b.create("/r/new", b"", &persistent).await.unwrap();
    b.create(&format!("/r/{long}999"), b"", &persistent)
        .await
        .unwrap();

    wait_state(&a, SessionState::Connected).await;
    assert_eq!(a.session_id(), session);
    let stat = a
        .exists("/r/eph")
        .await
        .unwrap()
        .expect("the ephemeral is still there");
    assert_eq!(stat.ephemeral_owner, session);
    within("auth", auth).await.unwrap();
    let mut users: Vec<_> = a
        .who_am_i()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.auth_scheme == "digest")
        .map(|i| i.user)
        .collect();
    users.sort();
    assert_eq!(users, ["carol", "dave"]);
    assert_eq!(
        within("data watch", data_watch).await,
        WatchedEvent::node(EventType::NodeDataChanged, "/r/data")
    );
    assert_eq!(
        within("exists watch", created_watch).await,
        WatchedEvent::node(EventType::NodeCreated, "/r/new")
    );
    assert_eq!(
        within("child watch", child_watch).await,
        WatchedEvent::node(EventType::NodeChildrenChanged, "/r")
    );
    let last = many_watches.pop().unwrap();
    assert_eq!(
        within("a watch of the last batch", last).await,
        WatchedEvent::node(EventType::NodeCreated, format!("/r/{long}999"))
    );
    assert_eq!(
        within("chrooted watch", chrooted_watch).await,
        WatchedEvent::node(EventType::NodeDataChanged, "/data")
    );
    chrooted.close().await.unwrap();
    // The persistent watch is registered again too (missed changes are not replayed for
    // persistent watches): a change after the reconnect reaches it.
    b.create("/q/after", b"", &persistent).await.unwrap();
    within("recursive watch", async {
        loop {
            let event = recursive.next().await.expect("the stream goes on");
            if event == WatchedEvent::node(EventType::NodeCreated, "/q/after") {
                return;
            }
        }
    })
    .await;
    a.close().await.unwrap();
    b.close().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_session_expires_when_the_server_is_away_longer_than_its_timeout() {
    let mut server = TestServer::start().await;
    let a = connect(
        &server,
        ClientOptions {
            session_timeout: Duration::from_secs(1),
            ..options()
        },
    )
    .await;
    assert_eq!(a.session_timeout(), Duration::from_secs(1));
    a.create("/e", b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let (session, password) = (a.session_id(), a.session_password());
    let (_, _, watch) = a.get_data_w("/e").await.unwrap();
    let mut stream = a.add_watch("/", AddWatchMode::Persistent).await.unwrap();

    server.stop().await;
    wait_state(&a, SessionState::Expired).await;
    let expired = WatchedEvent::session(KeeperState::Expired);
    assert_eq!(within("watch", watch).await, expired);
    assert_eq!(within("stream", stream.next()).await, Some(expired));
    assert_eq!(within("stream end", stream.next()).await, None);
    assert_eq!(a.get_data("/e").await.unwrap_err(), Error::SessionExpired);
    assert_eq!(a.close().await, Ok(()));

    // The server, restarted, expires the session a timeout later: its ephemeral goes.
    server.start_again().await;
    let b = connect(&server, options()).await;
    within("ephemeral removed", async {
        while b.exists("/e").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // Resuming it now is refused.
    let resume = ClientOptions {
        session: Some((session, password)),
        ..options()
    };
    assert_eq!(
        Client::connect(&server.connect_string(""), resume)
            .await
            .unwrap_err(),
        Error::SessionExpired
    );
    b.close().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn the_server_says_when_a_session_it_closed_expired() {
    let mut server = TestServer::start().await;
    let a = connect(&server, options()).await;
    a.create("/mine", b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let (_, _, watch) = a.get_data_w("/mine").await.unwrap();
    // Another client takes the session over and closes it (Curator's KillSession).
    let thief = connect(
        &server,
        ClientOptions {
            session: Some((a.session_id(), a.session_password())),
            ..options()
        },
    )
    .await;
    assert_eq!(thief.session_id(), a.session_id());
    let started = Instant::now();
    thief.close().await.unwrap();
    wait_state(&a, SessionState::Expired).await;
    // Told by the server on reconnecting, well before the client would decide alone.
    assert!(
        started.elapsed() < a.session_timeout(),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        within("watch", watch).await,
        WatchedEvent::session(KeeperState::Expired)
    );
    let b = connect(&server, options()).await;
    assert_eq!(b.exists("/mine").await.unwrap(), None);
    b.close().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn pings_keep_an_idle_session_alive() {
    let mut server = TestServer::start().await;
    let a = connect(
        &server,
        ClientOptions {
            session_timeout: Duration::from_millis(1500),
            ..options()
        },
    )
    .await;
    let mut states = a.state_events();
    let session = a.session_id();
    // Idle for twice the session timeout: only pings keep it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a.state(), SessionState::Connected);
    assert!(a.exists("/").await.unwrap().is_some());
    assert_eq!(a.session_id(), session);
    // No state change happened meanwhile.
    assert!(futures_util::FutureExt::now_or_never(states.next()).is_none());
    a.close().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_server_behind_the_last_zxid_seen_is_refused() {
    let mut server = TestServer::start().await;
    let a = connect(
        &server,
        ClientOptions {
            session_timeout: Duration::from_secs(3),
            ..options()
        },
    )
    .await;
    for i in 0..5 {
        a.create(&format!("/n{i}"), b"", &CreateOptions::persistent())
            .await
            .unwrap();
    }
    let mut states = a.state_events();
    server.stop().await;
    let stopped = Instant::now();
    // The server comes back with nothing: it has not seen the client's last zxid, so it
    // closes the client's connections without an answer (ZooKeeper's "Refusing session
    // request ... as it has seen zxid"), and the client gives up 4/3 of the timeout after
    // it last heard from a server.
    server.wipe_data();
    server.start_again().await;
    let b = connect(&server, options()).await;
    assert_eq!(b.exists("/n0").await.unwrap(), None);
    assert_eq!(
        within("disconnected", states.next()).await,
        Some(SessionState::Disconnected)
    );
    let next = within("expired", states.next()).await;
    assert_eq!(next, Some(SessionState::Expired));
    assert!(
        stopped.elapsed() >= Duration::from_millis(3800),
        "expired after {:?}: the server answered instead of refusing",
        stopped.elapsed()
    );
    b.close().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_auth_scheme_ends_the_session() {
    let mut server = TestServer::start().await;
    let a = connect(&server, options()).await;
    assert_eq!(
        a.add_auth("no-such-scheme", b"x").await.unwrap_err(),
        Error::AuthFailed
    );
    assert_eq!(a.state(), SessionState::AuthFailed);
    assert_eq!(a.exists("/").await.unwrap_err(), Error::AuthFailed);
    server.stop().await;
}

#[tokio::test]
async fn the_sessions_states_come_in_order_among_its_watch_events() {
    let mut server = TestServer::start().await;
    // The other client's write most likely comes before this one is back, and
    // re-registering the watch fires it; either way the event comes after the reconnection.
    let a = connect(&server, outliving_a_restart()).await;
    a.create("/s", b"v1", &CreateOptions::persistent())
        .await
        .unwrap();
    let mut events = a.events();
    let mut node_events = a.watch_events();
    let (_, _, watch) = a.get_data_w("/s").await.unwrap();

    server.stop().await;
    server.start_again().await;
    let b = connect(&server, options()).await;
    b.set_data("/s", b"v2", None).await.unwrap();
    within("data watch", watch).await;
    within("close", a.close()).await.unwrap();

    let changed = WatchedEvent::node(EventType::NodeDataChanged, "/s");
    let mut seen = Vec::new();
    while let Some(event) = within("the stream's end", events.next()).await {
        seen.push(event);
    }
    assert_eq!(
        seen,
        [
            WatchedEvent::session(KeeperState::SyncConnected),
            WatchedEvent::session(KeeperState::Disconnected),
            WatchedEvent::session(KeeperState::SyncConnected),
            changed.clone(),
            WatchedEvent::session(KeeperState::Closed),
        ],
        "{}",
        server.log()
    );
    // The node events alone, without the states.
    assert_eq!(
        within("node event", node_events.next()).await,
        Some(changed)
    );
    assert_eq!(within("node events' end", node_events.next()).await, None);
    server.stop().await;
}

/// A TCP proxy to `target` that can be cut: it stops listening and every connection
/// through it closes.
struct Proxy {
    addr: std::net::SocketAddr,
    links: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = links.clone();
        let task = tokio::spawn(async move {
            // Dropped with the task: every link is aborted.
            let mut open = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                open.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { addr, links, task }
    }

    /// How many connections came through.
    fn links(&self) -> usize {
        self.links.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn cut(&self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_lost_host_is_replaced_by_the_next_one_with_the_same_session() {
    let mut server = TestServer::start().await;
    let target: std::net::SocketAddr = server.connect_string("").parse().unwrap();
    let proxies = [Proxy::start(target).await, Proxy::start(target).await];
    let hosts = format!("{},{}", proxies[0].addr, proxies[1].addr);
    let a = within(
        "connect through a proxy",
        Client::connect(
            &hosts,
            ClientOptions {
                // Longer than the test may take: only a whole round of failed hosts pauses.
                reconnect_delay: Duration::from_secs(30),
                // Each host gets a session timeout / host count to answer.
                session_timeout: Duration::from_secs(8),
                ..options()
            },
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    a.create("/h", b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let (_, _, watch) = a.get_data_w("/h").await.unwrap();
    let session = a.session_id();
    let mut states = a.state_events();

    // Cut the host in use (the list is shuffled): the client goes on with the other one.
    let (used, other) = if proxies[0].links() > 0 {
        (&proxies[0], &proxies[1])
    } else {
        (&proxies[1], &proxies[0])
    };
    assert_eq!((used.links(), other.links()), (1, 0));
    used.cut();
    assert_eq!(
        within("disconnected", states.next()).await,
        Some(SessionState::Disconnected)
    );
    assert_eq!(
        within("connected", states.next()).await,
        Some(SessionState::Connected)
    );
    assert_eq!(other.links(), 1);
    assert_eq!(a.session_id(), session);
    let stat = a
        .exists("/h")
        .await
        .unwrap()
        .expect("the ephemeral is there");
    assert_eq!(stat.ephemeral_owner, session);
    let b = connect(&server, options()).await;
    b.set_data("/h", b"x", None).await.unwrap();
    assert_eq!(
        within("watch", watch).await,
        WatchedEvent::node(EventType::NodeDataChanged, "/h")
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
    other.cut();
    server.stop().await;
}
