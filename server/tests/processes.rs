//! Ensembles of `zk-server` processes on loopback, each started from its own `zoo.cfg`
//! and `myid`, killed with SIGKILL as a crash would: clients (the third-party
//! `zookeeper-client` crate and `zk-client`) keep their sessions across a leader's
//! death, no acknowledged write is lost, a restarted ensemble holds everything
//! acknowledged, members rejoin through DIFF, TRUNC and SNAP, and an ensemble grows and
//! shrinks through `reconfig` while clients write.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zookeeper_client as zk;

mod common;
use common::free_port;

static OPEN: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

/// One member: its directory, client port and process.
struct Member {
    dir: PathBuf,
    client_port: u16,
    child: Option<Child>,
}

/// An ensemble of processes.
struct Ensemble {
    _root: tempfile::TempDir,
    members: Vec<Member>,
    /// `SERVER_JVMFLAGS` for every member (`-D` system properties, as ZooKeeper's).
    jvmflags: String,
}

impl Ensemble {
    /// `n` members; `extra` goes into every `zoo.cfg`; `observers` are the ids (1-based)
    /// that observe.
    fn new(n: usize, extra: &str, observers: &[usize]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let mut servers = String::new();
        let mut ports = Vec::new();
        for sid in 1..=n {
            let client = free_port();
            let role = if observers.contains(&sid) {
                ":observer"
            } else {
                ""
            };
            servers.push_str(&format!(
                "server.{sid}=127.0.0.1:{}:{}{role}\n",
                free_port(),
                free_port()
            ));
            ports.push(client);
        }
        let members = (1..=n)
            .map(|sid| {
                let dir = root.path().join(format!("m{sid}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("myid"), format!("{sid}\n")).unwrap();
                let observer = if observers.contains(&sid) {
                    "peerType=observer\n"
                } else {
                    ""
                };
                std::fs::write(
                    dir.join("zoo.cfg"),
                    format!(
                        "tickTime=100\ninitLimit=50\nsyncLimit=30\n\
                         minSessionTimeout=2000\nmaxSessionTimeout=20000\n\
                         4lw.commands.whitelist=*\nadmin.enableServer=false\n\
                         dataDir={}\nclientPort={}\n\
                         clientPortAddress=127.0.0.1\n{observer}{extra}\n{servers}",
                        dir.display(),
                        ports[sid - 1]
                    ),
                )
                .unwrap();
                Member {
                    dir,
                    client_port: ports[sid - 1],
                    child: None,
                }
            })
            .collect();
        Ensemble {
            _root: root,
            members,
            jvmflags: String::new(),
        }
    }

    fn start(&mut self, i: usize) {
        let m = &mut self.members[i];
        assert!(m.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.join("server.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_zk-server"))
            .arg(m.dir.join("zoo.cfg"))
            .env("RUST_LOG", "info")
            .env("SERVER_JVMFLAGS", &self.jvmflags)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        m.child = Some(child);
    }

    fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.start(i);
        }
    }

    /// SIGSTOP: the process stops where it is; its sockets stay open, unread.
    fn pause(&self, i: usize) {
        let pid = self.members[i].child.as_ref().unwrap().id();
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // A stop signal freezes a multi-threaded process only once the thread it woke
        // gets a processor and stops the others; on a loaded machine another thread,
        // woken by a message, can run first (a follower "stopped" this way logged and
        // acknowledged a proposal sent after `kill` returned). Wait until every thread
        // is stopped.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !all_threads_stopped(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "member {} did not stop",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGKILL: the process dies where it is, as in a crash.
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    fn hosts(&self, members: impl IntoIterator<Item = usize>) -> String {
        members
            .into_iter()
            .map(|i| self.addr(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether member `i`'s txn log files hold `bytes` (a path a txn names).
    fn logged(&self, i: usize, bytes: &[u8]) -> bool {
        let Ok(files) = std::fs::read_dir(self.members[i].dir.join("version-2")) else {
            return false;
        };
        files.flatten().any(|f| {
            f.file_name().to_string_lossy().starts_with("log.")
                && std::fs::read(f.path())
                    .is_ok_and(|data| data.windows(bytes.len()).any(|w| w == bytes))
        })
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.members[i].dir.join("server.log")).unwrap_or_default()
    }

    /// Each running member's mode, from `srvr`.
    fn modes(&self) -> Vec<Option<String>> {
        (0..self.members.len())
            .map(|i| {
                self.members[i].child.as_ref()?;
                let srvr = four_letter_word(&self.addr(i), "srvr");
                let mode = srvr.lines().find_map(|l| l.strip_prefix("Mode: "));
                // A process not answering yet is running, and not serving.
                Some(mode.unwrap_or("unreachable").to_owned())
            })
            .collect()
    }

    /// Waits until every running member serves, one as leader; returns the leader.
    async fn leader(&self) -> usize {
        for _ in 0..600 {
            let modes = self.modes();
            let running = modes.iter().flatten().count();
            let serving = modes
                .iter()
                .flatten()
                .filter(|m| ["leader", "follower", "observer"].contains(&m.as_str()))
                .count();
            let leaders: Vec<usize> = (0..modes.len())
                .filter(|i| modes[*i].as_deref() == Some("leader"))
                .collect();
            if leaders.len() == 1 && serving == running {
                return leaders[0];
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader with every member serving: {}", self.dump());
    }

    /// Each member's mode and the end of its log, for a failure's message.
    fn dump(&self) -> String {
        let mut out = format!("{:?}\n", self.modes());
        for i in 0..self.members.len() {
            let log = self.log(i);
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- member {}\n", i + 1));
            for line in &lines[lines.len().saturating_sub(80)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

fn four_letter_word(addr: &str, word: &str) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(word.as_bytes());
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

/// Whether every thread of process `pid` is stopped (state `T` in `/proc`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .is_some_and(|state| state == 'T' || state == 't')
        })
    })
}

async fn third_party(hosts: &str) -> zk::Client {
    tokio::time::timeout(
        Duration::from_secs(30),
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(hosts),
    )
    .await
    .expect("connects in time")
    .expect("connects")
}

async fn ours(hosts: &str) -> zk_client::Client {
    let options = zk_client::ClientOptions {
        session_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    tokio::time::timeout(
        Duration::from_secs(30),
        zk_client::Client::connect(hosts, options),
    )
    .await
    .expect("connects in time")
    .expect("connects")
}

/// Writes acknowledged so far, by path.
type Acked = Arc<Mutex<BTreeSet<String>>>;

/// Creates `/k/<tag>-<n>` in a loop until `stop`, recording each acknowledged create.
/// A create that fails may or may not have been applied; only acknowledged ones count.
fn writer<F, Fut>(
    tag: &'static str,
    acked: Acked,
    stop: Arc<AtomicBool>,
    create: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let path = format!("/k/{tag}-{n:06}");
            n += 1;
            match tokio::time::timeout(Duration::from_secs(5), create(path.clone())).await {
                Ok(true) => {
                    acked.lock().unwrap().insert(path);
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
}

/// A writer on each client crate's session: `/k/zkc-*` and `/k/ours-*`.
fn both_writers(
    third: &zk::Client,
    our: &zk_client::Client,
    acked: &Acked,
    stop: &Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let c = third.clone();
    let w1 = writer("zkc", acked.clone(), stop.clone(), move |path| {
        let c = c.clone();
        async move { c.create(&path, b"x", OPEN).await.is_ok() }
    });
    let c = our.clone();
    let w2 = writer("ours", acked.clone(), stop.clone(), move |path| {
        let c = c.clone();
        async move {
            c.create(&path, b"x", &zk_client::CreateOptions::persistent())
                .await
                .is_ok()
        }
    });
    (w1, w2)
}

/// Waits until `acked` holds `more` writes beyond `from`.
async fn until_acked(e: &Ensemble, acked: &Acked, from: usize, more: usize, what: &str) {
    for _ in 0..600 {
        if acked.lock().unwrap().len() >= from + more {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = acked.lock().unwrap().len();
    panic!(
        "{what}: {n} writes acknowledged, {from} before\n{}",
        e.dump()
    );
}

/// Every path in `acked` is in `/k` on the member at `addr`, after a sync.
async fn check_acked(addr: &str, acked: &BTreeSet<String>) {
    let reader = third_party(addr).await;
    reader.sync("/k").await.unwrap();
    let children: BTreeSet<String> = reader
        .list_children("/k")
        .await
        .unwrap()
        .into_iter()
        .map(|c| format!("/k/{c}"))
        .collect();
    let lost: Vec<&String> = acked.difference(&children).collect();
    assert!(
        lost.is_empty(),
        "acknowledged writes lost on {addr}: {lost:?}"
    );
}

/// Clients of both crates write through the ensemble while its leader is SIGKILLed, twice
/// for five members; their sessions survive, and every acknowledged write is there, also
/// after the whole ensemble restarts.
async fn leader_killed_while_clients_write(n: usize, kills: usize) {
    let mut ensemble = Ensemble::new(n, "", &[]);
    ensemble.start_all();
    let mut leader = ensemble.leader().await;
    let hosts = ensemble.hosts(0..n);
    let setup = third_party(&hosts).await;
    setup.create("/k", b"", OPEN).await.unwrap();

    let third = third_party(&hosts).await;
    let our = ours(&hosts).await;
    let sessions = (third.session_id(), our.session_id());
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (w1, w2) = both_writers(&third, &our, &acked, &stop);
    until_acked(&ensemble, &acked, 0, 50, "before the kill").await;
    let mut killed = Vec::new();
    for _ in 0..kills {
        ensemble.kill(leader);
        killed.push(leader);
        let before = acked.lock().unwrap().len();
        leader = ensemble.leader().await;
        assert!(!killed.contains(&leader));
        until_acked(&ensemble, &acked, before, 50, "after the leader's kill").await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::join!(w1, w2);
    assert_eq!((third.session_id(), our.session_id()), sessions);
    let acked = acked.lock().unwrap().clone();
    let zkc = acked.iter().filter(|p| p.starts_with("/k/zkc")).count();
    let own = acked.len() - zkc;
    assert!(zkc > 0 && own > 0, "both clients wrote: {zkc} and {own}");
    let survivor = (0..n).find(|i| !killed.contains(i)).unwrap();
    check_acked(&ensemble.addr(survivor), &acked).await;

    // Every member stops (SIGKILL) and starts again: everything acknowledged is there,
    // on every member, the killed leaders included.
    drop((third, our, setup));
    for i in 0..n {
        ensemble.kill(i);
    }
    ensemble.start_all();
    ensemble.leader().await;
    for i in 0..n {
        check_acked(&ensemble.addr(i), &acked).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_lose_their_leader_while_clients_write() {
    leader_killed_while_clients_write(3, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_lose_two_leaders_in_turn_while_clients_write() {
    leader_killed_while_clients_write(5, 2).await;
}

/// A follower that missed writes rejoins by DIFF; one whose log holds a txn the quorum
/// never committed rejoins by TRUNC; one whose disk was wiped, behind a leader whose log
/// starts after a snapshot, rejoins by SNAP. Each then serves every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_rejoin_through_diff_trunc_and_snap() {
    let mut e = Ensemble::new(3, "snapCount=20", &[]);
    e.start_all();
    let leader = e.leader().await;
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    // On the leader: the follower about to be killed may not hold the session.
    let c = third_party(&e.addr(leader)).await;
    c.create("/r", b"", OPEN).await.unwrap();

    // DIFF: a follower misses a few writes.
    e.kill(a);
    for i in 0..5 {
        c.create(&format!("/r/diff-{i}"), b"", OPEN).await.unwrap();
    }
    e.start(a);
    e.leader().await;
    let log = e.log(leader);
    assert!(log.contains("syncing learner by DIFF"), "{log}");
    let on_a = third_party(&e.addr(a)).await;
    on_a.sync("/r").await.unwrap();
    assert_eq!(on_a.list_children("/r").await.unwrap().len(), 5);
    drop(on_a);

    // TRUNC: the leader logs a write its followers never log (they are stopped, then
    // killed with it unread in their sockets), and dies.
    drop(c);
    let lone = third_party(&e.addr(leader)).await;
    e.pause(a);
    e.pause(b);
    let orphan = tokio::time::timeout(
        Duration::from_millis(300),
        lone.create("/r/orphan", b"", OPEN),
    )
    .await;
    assert!(
        !matches!(orphan, Ok(Ok(_))),
        "no quorum acknowledged it, yet it was created: {}",
        e.dump()
    );
    // The TRUNC below needs the orphan in the leader's log file: on a loaded machine its
    // log writer may take longer than the 300 ms above to write it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !e.logged(leader, b"/r/orphan") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader never logged the orphan: {}",
            e.dump()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    e.kill(a);
    e.kill(b);
    e.kill(leader);
    drop(lone);
    e.start(a);
    e.start(b);
    let new_leader = e.leader().await;
    let c = third_party(&e.hosts([a, b])).await;
    c.create("/r/after", b"", OPEN).await.unwrap();
    e.start(leader);
    e.leader().await;
    let log = e.log(new_leader);
    assert!(log.contains("syncing learner by TRUNC"), "{}", e.dump());
    let old = third_party(&e.addr(leader)).await;
    old.sync("/r").await.unwrap();
    let children = old.list_children("/r").await.unwrap();
    assert!(children.contains(&"after".to_string()), "{children:?}");
    assert!(!children.contains(&"orphan".to_string()), "{children:?}");
    drop(old);

    // SNAP: more writes than snapCount, so every member snapshots; the ensemble
    // restarts (each log now starts at a snapshot), and a member comes back with an
    // empty disk.
    for i in 0..60 {
        c.create(&format!("/r/snap-{i}"), b"", OPEN).await.unwrap();
    }
    drop(c);
    for i in 0..3 {
        e.kill(i);
    }
    e.start_all();
    let leader = e.leader().await;
    let wiped = (leader + 1) % 3;
    e.kill(wiped);
    let dir = e.members[wiped].dir.join("version-2");
    std::fs::remove_dir_all(&dir).unwrap();
    e.start(wiped);
    e.leader().await;
    let log = e.log(leader);
    assert!(log.contains("syncing learner by SNAP"), "{log}");
    let back = third_party(&e.addr(wiped)).await;
    back.sync("/r").await.unwrap();
    assert_eq!(back.list_children("/r").await.unwrap().len(), 5 + 1 + 60);
}

/// A follower whose disk was wiped rejoins by SNAP while clients write: the leader streams
/// a snapshot of 20,000 znodes a piece at a time, applying writes between the pieces, and
/// the follower applies them over it; it ends with the leader's tree (every acknowledged
/// write, the same stat for every znode written meanwhile, as many bulk znodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_rejoins_by_snap_while_clients_write() {
    const BULK: usize = 20_000;
    let mut e = Ensemble::new(3, "snapCount=1000", &[]);
    e.start_all();
    let leader = e.leader().await;
    let setup = third_party(&e.addr(leader)).await;
    setup.create("/k", b"", OPEN).await.unwrap();
    setup.create("/bulk", b"", OPEN).await.unwrap();
    let loaders: Vec<_> = (0..16)
        .map(|t| {
            let c = setup.clone();
            tokio::spawn(async move {
                for i in 0..BULK / 16 {
                    let path = format!("/bulk/n{t:02}-{i:05}");
                    c.create(&path, &[7; 100], OPEN).await.unwrap();
                }
            })
        })
        .collect();
    for loader in loaders {
        loader.await.unwrap();
    }
    drop(setup);
    // Every member restarts from a snapshot, so no log goes back to an empty disk.
    for i in 0..3 {
        e.kill(i);
    }
    e.start_all();
    let leader = e.leader().await;
    let (wiped, other) = ((leader + 1) % 3, (leader + 2) % 3);
    let hosts = e.hosts([leader, other]);
    let (third, our) = (third_party(&hosts).await, ours(&hosts).await);
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (w1, w2) = both_writers(&third, &our, &acked, &stop);
    until_acked(&e, &acked, 0, 20, "before the wipe").await;
    e.kill(wiped);
    std::fs::remove_dir_all(e.members[wiped].dir.join("version-2")).unwrap();
    e.start(wiped);
    let back = third_party(&e.addr(wiped)).await;
    let before = acked.lock().unwrap().len();
    until_acked(&e, &acked, before, 20, "after the rejoin").await;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::join!(w1, w2);
    let log = e.log(leader);
    assert!(log.contains("syncing learner by SNAP"), "{}", e.dump());

    let acked = acked.lock().unwrap().clone();
    check_acked(&e.addr(wiped), &acked).await;
    let on_leader = third_party(&e.addr(leader)).await;
    back.sync("/k").await.unwrap();
    let children = on_leader.list_children("/k").await.unwrap();
    assert_eq!(back.list_children("/k").await.unwrap(), children);
    for child in children {
        let path = format!("/k/{child}");
        let (theirs, ours) = (on_leader.get_data(&path).await, back.get_data(&path).await);
        assert_eq!(
            format!("{:?}", theirs.unwrap()),
            format!("{:?}", ours.unwrap()),
            "{path}"
        );
    }
    let bulk = back.list_children("/bulk").await.unwrap().len();
    assert_eq!(bulk, BULK);
}

/// A raw session on `addr` that creates the ephemeral `path`, then vanishes without
/// closing (its socket is dropped): only expiry ends it. Returns its id.
async fn abandoned_session(addr: &str, path: &str) -> i64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use zk_jute::proto::{ConnectRequest, ConnectResponse, CreateRequest, RequestHeader};
    use zk_jute::{CreateMode, OpCode, Record};
    fn frame(parts: &[&dyn Fn(&mut bytes::BytesMut)]) -> Vec<u8> {
        let mut body = bytes::BytesMut::new();
        for part in parts {
            part(&mut body);
        }
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }
    async fn read_frame(s: &mut tokio::net::TcpStream) -> bytes::Bytes {
        let len = s.read_i32().await.unwrap();
        let mut buf = vec![0; len as usize];
        s.read_exact(&mut buf).await.unwrap();
        buf.into()
    }
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connect = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 4_000,
        session_id: 0,
        passwd: Some(bytes::Bytes::from_static(&[0; 16])),
        read_only: Some(false),
    };
    s.write_all(&frame(&[&|b| connect.encode(b)]))
        .await
        .unwrap();
    let response =
        ConnectResponse::decode(&mut zk_jute::Reader::new(read_frame(&mut s).await)).unwrap();
    let header = RequestHeader {
        xid: 1,
        r#type: OpCode::Create.code(),
    };
    let create = CreateRequest {
        path: path.into(),
        data: Some(bytes::Bytes::new()),
        acl: Some(vec![zk_jute::data::Acl {
            perms: 31,
            id: zk_jute::data::Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]),
        flags: CreateMode::Ephemeral.code(),
    };
    s.write_all(&frame(&[&|b| header.encode(b), &|b| create.encode(b)]))
        .await
        .unwrap();
    let reply = read_frame(&mut s).await;
    let err = i32::from_be_bytes(reply[12..16].try_into().unwrap());
    assert_eq!(err, 0, "the ephemeral is created");
    response.session_id
}

/// Three voters and an observer: the observer serves reads and forwards writes; a
/// session opened on a follower and abandoned expires once, on the leader's word, and
/// its ephemeral vanishes from every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_serves_and_a_session_expires_once_everywhere() {
    let mut e = Ensemble::new(4, "", &[4]);
    e.start_all();
    let leader = e.leader().await;
    assert_eq!(e.modes()[3].as_deref(), Some("observer"));
    let observer = third_party(&e.addr(3)).await;
    observer
        .create("/o", b"through the observer", OPEN)
        .await
        .unwrap();
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let reader = third_party(&e.addr(follower)).await;
    reader.sync("/o").await.unwrap();
    assert_eq!(
        reader.get_data("/o").await.unwrap().0,
        b"through the observer"
    );
    reader
        .set_data("/o", b"through a follower", None)
        .await
        .unwrap();
    observer.sync("/o").await.unwrap();
    assert_eq!(
        observer.get_data("/o").await.unwrap().0,
        b"through a follower"
    );
    let mntr = four_letter_word(&e.addr(leader), "mntr");
    assert!(mntr.contains("zk_synced_observers\t1\n"), "{mntr}");
    assert!(mntr.contains("zk_synced_followers\t2\n"), "{mntr}");

    // An abandoned session on a follower: its touches stop, the leader expires it.
    let session = abandoned_session(&e.addr(follower), "/o/eph").await;
    observer.sync("/o").await.unwrap();
    assert!(observer.check_stat("/o/eph").await.unwrap().is_some());
    let mut gone = false;
    for _ in 0..200 {
        observer.sync("/o").await.unwrap();
        if observer.check_stat("/o/eph").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the abandoned session's ephemeral goes");
    for i in 0..4 {
        let c = third_party(&e.addr(i)).await;
        c.sync("/o").await.unwrap();
        assert!(
            c.check_stat("/o/eph").await.unwrap().is_none(),
            "member {i}"
        );
    }
    let expired = format!("session expired session=\"{session:#x}\"");
    let counts: Vec<usize> = (0..4).map(|i| e.log(i).matches(&expired).count()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 1, "{counts:?}");
    assert_eq!(counts[leader], 1, "{counts:?}");
}

/// With `readonlymode.enabled`, a member cut off from its quorum serves clients that ask
/// for a read-only session: reads answer, writes get `NotReadOnly`, `isro` says `ro`;
/// a client that did not ask is turned away. Once the quorum is back it serves
/// read-write again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cut_off_serves_read_only_clients() {
    let mut e = Ensemble::new(3, "", &[]);
    e.jvmflags = "-Dreadonlymode.enabled=true".into();
    e.start_all();
    let leader = e.leader().await;
    let survivor = (leader + 1) % 3;
    let c = third_party(&e.addr(leader)).await;
    c.create("/ro", b"kept", OPEN).await.unwrap();
    let on_survivor = third_party(&e.addr(survivor)).await;
    on_survivor.sync("/ro").await.unwrap();
    assert_eq!(four_letter_word(&e.addr(survivor), "isro"), "rw");
    drop((c, on_survivor));
    for i in 0..3 {
        if i != survivor {
            e.kill(i);
        }
    }
    let mut isro = String::new();
    for _ in 0..200 {
        isro = four_letter_word(&e.addr(survivor), "isro");
        if isro == "ro" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(isro, "ro", "{}", e.dump());
    let srvr = four_letter_word(&e.addr(survivor), "srvr");
    assert!(srvr.contains("Mode: read-only\n"), "{srvr}");

    let ro = tokio::time::timeout(
        Duration::from_secs(30),
        zk::Client::connector()
            .with_readonly(true)
            .with_session_timeout(Duration::from_secs(10))
            .connect(&e.addr(survivor)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(ro.get_data("/ro").await.unwrap().0, b"kept");
    assert_eq!(
        ro.create("/ro/new", b"", OPEN).await.unwrap_err(),
        zk::Error::NotReadOnly
    );
    let options = zk_client::ClientOptions {
        read_only: true,
        session_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let ours = zk_client::Client::connect(&e.addr(survivor), options)
        .await
        .unwrap();
    assert_eq!(&ours.get_data("/ro").await.unwrap().0[..], b"kept");
    assert_eq!(
        ours.set_data("/ro", b"x", None).await.unwrap_err(),
        zk_client::Error::NotReadOnly
    );
    let refused = zk_client::ClientOptions {
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    assert!(
        tokio::time::timeout(
            Duration::from_secs(5),
            zk_client::Client::connect(&e.addr(survivor), refused)
        )
        .await
        .map_or(true, |r| r.is_err()),
        "a read-write client is turned away"
    );
    drop((ro, ours));

    // The quorum is back: read-write again.
    for i in 0..3 {
        if i != survivor {
            e.start(i);
        }
    }
    e.leader().await;
    assert_eq!(four_letter_word(&e.addr(survivor), "isro"), "rw");
    let rw = third_party(&e.addr(survivor)).await;
    rw.create("/ro/new", b"", OPEN).await.unwrap();
}

/// `localSessionsEnabled` with `localSessionsUpgradingEnabled`: a session opened on a
/// follower lives there alone (no txn) until it creates an ephemeral, which makes it a
/// global session first; its ephemeral then vanishes everywhere when it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_sessions_stay_on_their_member_until_an_ephemeral_upgrades_them() {
    let mut e = Ensemble::new(
        3,
        "localSessionsEnabled=true\nlocalSessionsUpgradingEnabled=true",
        &[],
    );
    e.start_all();
    let leader = e.leader().await;
    let follower = (leader + 1) % 3;
    let zxid_of = |e: &Ensemble, i: usize| {
        four_letter_word(&e.addr(i), "srvr")
            .lines()
            .find_map(|l| l.strip_prefix("Zxid: "))
            .map(str::to_owned)
    };
    let before = zxid_of(&e, leader);
    let local = third_party(&e.addr(follower)).await;
    let mntr = four_letter_word(&e.addr(follower), "mntr");
    assert!(mntr.contains("zk_local_sessions\t1\n"), "{mntr}");
    assert_eq!(zxid_of(&e, leader), before, "no txn opened the session");

    local.create("/l", b"", OPEN).await.unwrap();
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    local.create("/l/e", b"", &eph).await.unwrap();
    let on_leader = third_party(&e.addr(leader)).await;
    on_leader.sync("/l").await.unwrap();
    let (_, stat) = on_leader.get_data("/l/e").await.unwrap();
    assert_eq!(stat.ephemeral_owner, local.session_id().0);
    let mntr = four_letter_word(&e.addr(follower), "mntr");
    assert!(mntr.contains("zk_local_sessions\t0\n"), "upgraded: {mntr}");

    drop(local);
    let mut gone = false;
    for _ in 0..100 {
        on_leader.sync("/l").await.unwrap();
        if on_leader.check_stat("/l/e").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the upgraded session's close removes its ephemeral");
}

/// The `server.N` line of member `sid` in `zoo.cfg` text, with its client address added,
/// as a `reconfig` joins it.
fn joining_line(zoo_cfg: &str, sid: usize, client_port: u16) -> String {
    let line = zoo_cfg
        .lines()
        .find(|l| l.starts_with(&format!("server.{sid}=")))
        .unwrap();
    format!("{line}:participant;127.0.0.1:{client_port}")
}

/// With `reconfigEnabled`, three members grow to five (two servers started with the
/// membership plus themselves join through `reconfig`) and shrink back to three (the
/// leader and another leave), while both client crates write: no acknowledged write is
/// lost, zk-client follows the new server list with its session, and every member ends
/// with the same membership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ensemble_grows_to_five_and_shrinks_to_three_while_clients_write() {
    let digest = "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=";
    let mut ensemble = Ensemble::new(5, &format!("reconfigEnabled=true\n{digest}\n"), &[]);
    let full = std::fs::read_to_string(ensemble.members[0].dir.join("zoo.cfg")).unwrap();
    // Members 1 to 3 know only each other; 4 and 5 know all five.
    for m in &ensemble.members[..3] {
        let path = m.dir.join("zoo.cfg");
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("server.4=") && !l.starts_with("server.5="))
            .collect();
        std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    }
    for i in 0..3 {
        ensemble.start(i);
    }
    ensemble.leader().await;
    let hosts = ensemble.hosts(0..3);
    let admin = tokio::time::timeout(
        Duration::from_secs(30),
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .with_auth("digest", b"super:test")
            .connect(&hosts),
    )
    .await
    .unwrap()
    .unwrap();
    admin.create("/k", b"", OPEN).await.unwrap();

    let third = third_party(&hosts).await;
    let our = ours(&hosts).await;
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (w1, w2) = both_writers(&third, &our, &acked, &stop);
    until_acked(&ensemble, &acked, 0, 50, "before growing").await;

    // 4 and 5 start, follow without a vote, and join.
    ensemble.start(3);
    ensemble.start(4);
    ensemble.leader().await;
    let joining: Vec<String> = [4, 5]
        .iter()
        .map(|sid| joining_line(&full, *sid, ensemble.members[sid - 1].client_port))
        .collect();
    let joining: Vec<&str> = joining.iter().map(String::as_str).collect();
    let update = zk::EnsembleUpdate::Incremental {
        joinings: joining.iter().copied(),
        leavings: [].iter().copied(),
    };
    let (grown, _) = admin.update_ensemble(update, None).await.unwrap();
    let grown = String::from_utf8(grown).unwrap();
    assert_eq!(grown.matches(":participant").count(), 5, "{grown}");
    let before = acked.lock().unwrap().len();
    until_acked(&ensemble, &acked, before, 50, "after growing").await;

    // The leader and one more leave; the three left elect among themselves.
    let leader = ensemble.leader().await;
    let other = (leader + 1) % 5;
    let leaving = [(leader + 1).to_string(), (other + 1).to_string()];
    let leaving: Vec<&str> = leaving.iter().map(String::as_str).collect();
    let update = zk::EnsembleUpdate::Incremental {
        joinings: [].iter().copied(),
        leavings: leaving.iter().copied(),
    };
    // The leader's own clients may lose the answer when it steps down: the membership
    // is read back instead.
    let _ = admin.update_ensemble(update, None).await;
    let remaining: Vec<usize> = (0..5).filter(|i| *i != leader && *i != other).collect();
    let mut shrunk = String::new();
    for _ in 0..100 {
        let reader = third_party(&ensemble.addr(remaining[0])).await;
        if reader.sync("/").await.is_ok() {
            if let Ok((data, _)) = reader.get_config().await {
                shrunk = String::from_utf8(data).unwrap();
                if shrunk.matches(":participant").count() == 3 {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shrunk.matches(":participant").count(), 3, "{shrunk}");
    let new_leader = ensemble.leader().await;
    assert!(remaining.contains(&new_leader), "{}", ensemble.dump());
    // zk-client follows the new list (ZooKeeper's updateServerList); its session and its
    // writes go on.
    let session = our.session_id();
    our.update_server_list(&ensemble.hosts(remaining.iter().copied()))
        .await
        .unwrap();
    let ours_acked = |acked: &Acked| {
        acked
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.starts_with("/k/ours"))
            .count()
    };
    let ours_before = ours_acked(&acked);
    let before = acked.lock().unwrap().len();
    until_acked(&ensemble, &acked, before, 50, "after shrinking").await;
    for _ in 0..200 {
        if ours_acked(&acked) >= ours_before + 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ours_acked(&acked) >= ours_before + 10,
        "zk-client writes after moving"
    );
    assert_eq!(our.session_id(), session);
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::join!(w1, w2);

    // Every acknowledged write is on every member, and every member has the membership.
    let acked = acked.lock().unwrap().clone();
    for i in 0..5 {
        check_acked(&ensemble.addr(i), &acked).await;
        let reader = third_party(&ensemble.addr(i)).await;
        reader.sync("/").await.unwrap();
        let (data, _) = reader.get_config().await.unwrap();
        assert_eq!(String::from_utf8(data).unwrap(), shrunk, "member {}", i + 1);
    }
}
