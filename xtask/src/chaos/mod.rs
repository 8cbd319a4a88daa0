//! `cargo xtask chaos`: faults on a real ensemble of `zk-server` processes while
//! `zk-client` sessions write, read and create, every operation recorded and the
//! history checked afterwards (see `check`).
//!
//! Faults follow a schedule drawn from the seed: SIGKILL of the leader, of a follower,
//! of every member at once, and SIGSTOP of the leader (a paused, stale leader) until the
//! others have elected another, then SIGCONT; the leader or a follower cut off from the
//! others (both ways, or only its own connections) through forwarders on every peer link
//! (`links`). `--faults` picks the kinds. One fault at a time, healed before the
//! next, so never more than a minority is down for long. After the run every member is
//! healed, must converge on one zxid, and is read directly: the registers, checked as
//! linearizable with everything the clients saw, and the sequential nodes.
//!
//! The schedule replays with the same seed; the operations' timing (and so the history)
//! does not, as the processes are real.

pub(crate) mod check;
pub(crate) mod history;
mod links;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use zk_client::{Client, ClientOptions, CreateMode, CreateOptions, Error as ZkError};

use crate::diff::Rng;
use crate::ensemble::{Kind as EnsembleKind, LocalEnsemble, four_letter_blocking};
use check::Violation;
use history::{Kind, Op, Outcome};

const USAGE: &str = "usage: cargo xtask chaos [--duration SECS] [--seed N] [--members N] \
    [--clients N] [--registers N] [--faults kill,pause,partition,disk] [--release] \
    [--zk-server PATH] [--keep] [--broken]";

/// The run's settings.
#[derive(Debug, Clone)]
struct Settings {
    duration: Duration,
    seed: u64,
    members: usize,
    clients: usize,
    registers: usize,
    release: bool,
    binary: Option<PathBuf>,
    keep: bool,
    /// Which kinds of fault to inject: `kill`, `pause`, `partition`, `disk`.
    faults: Vec<String>,
    /// Run a deliberately broken server (a leader that commits without a quorum) and
    /// succeed only if the checkers catch it.
    broken: bool,
}

fn parse(rest: &[String]) -> Result<Settings> {
    let mut s = Settings {
        duration: Duration::from_secs(60),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
        members: 3,
        clients: 5,
        registers: 8,
        release: false,
        binary: None,
        keep: false,
        broken: false,
        faults: vec![
            "kill".into(),
            "pause".into(),
            "partition".into(),
            "disk".into(),
        ],
    };
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--duration" => s.duration = Duration::from_secs(value()?.parse()?),
            "--seed" => s.seed = value()?.parse()?,
            "--members" => s.members = value()?.parse()?,
            "--clients" => s.clients = value()?.parse()?,
            "--registers" => s.registers = value()?.parse()?,
            "--zk-server" => s.binary = Some(PathBuf::from(value()?)),
            "--release" => s.release = true,
            "--keep" => s.keep = true,
            "--broken" => s.broken = true,
            "--faults" => {
                s.faults = value()?.split(',').map(str::to_owned).collect();
                if let Some(bad) = s
                    .faults
                    .iter()
                    .find(|f| !["kill", "pause", "partition", "disk"].contains(&f.as_str()))
                {
                    bail!("unknown fault kind `{bad}`\n{USAGE}");
                }
            }
            other => bail!("unknown option `{other}`\n{USAGE}"),
        }
    }
    if s.members < 3 || s.members % 2 == 0 {
        bail!("--members must be odd and at least 3");
    }
    Ok(s)
}

/// A fault the schedule injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillLeader,
    KillFollower,
    PauseLeader,
    /// The leader cut off from every other member, both ways.
    PartitionLeader,
    /// A follower cut off from every other member, both ways.
    PartitionFollower,
    /// The leader unable to open connections to the others; they still reach it.
    OneWayLeader,
    KillAll,
    /// The leader's fsyncs slowed down by 200 ms each.
    SlowDisk,
    /// A member's fsync fails: it stops (as ZooKeeper does), and is restarted.
    FailFsync,
    /// A member's disk is full: its log writes fail, it stops, and is restarted.
    FullDisk,
}

impl Fault {
    /// The kind `--faults` names it by.
    fn kind(self) -> &'static str {
        match self {
            Fault::KillLeader | Fault::KillFollower | Fault::KillAll => "kill",
            Fault::PauseLeader => "pause",
            Fault::PartitionLeader | Fault::PartitionFollower | Fault::OneWayLeader => "partition",
            Fault::SlowDisk | Fault::FailFsync | Fault::FullDisk => "disk",
        }
    }
}

/// What one member holds after healing: each register's (version, value), the
/// sequential nodes' names, and the ephemeral nodes with their owners.
type MemberView = (
    BTreeMap<String, (i32, u64)>,
    Vec<String>,
    Vec<(String, i64)>,
);

/// What happened to the ensemble, for the report.
#[derive(Debug, Default)]
struct Schedule {
    /// (seconds since start, fault, member, time until a leader served again)
    events: Vec<(f64, Fault, usize, Option<Duration>)>,
}

pub(crate) fn run(rest: &[String]) -> Result<()> {
    let settings = parse(rest)?;
    let binary = match &settings.binary {
        Some(path) => path.clone(),
        None => {
            let mut cmd = crate::cargo();
            // With zk-persistence's disk failpoints, inert unless a member's
            // ZK_FAILPOINTS_FILE holds a fault.
            cmd.args(["build", "-p", "zk-server", "--features", "failpoints"]);
            let mut target = crate::root().join("target");
            if settings.broken {
                // Its own target directory, so that the usual build is left alone.
                target = target.join("chaos-broken");
                cmd.args(["--features", "broken-commit-alone", "--target-dir"])
                    .arg(&target);
            }
            if settings.release {
                cmd.arg("--release");
            }
            crate::run(&mut cmd)?;
            let profile = if settings.release { "release" } else { "debug" };
            target.join(profile).join("zk-server")
        }
    };
    let dir = crate::root().join(format!("target/chaos/seed-{}", settings.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    eprintln!(
        "chaos: seed {} for {:?}, {} members, {} clients, {} registers (in {})",
        settings.seed,
        settings.duration,
        settings.members,
        settings.clients,
        settings.registers,
        dir.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Ticks of 100 ms: a stalled leader is noticed within 3 s. With partitions among
    // the faults, members reach each other through cuttable links.
    let mut links = links::Links::default();
    let partitions = settings.faults.iter().any(|f| f == "partition");
    // The forwarders run apart from the clients, so that nothing a client does can slow
    // the members' traffic.
    let link_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("links")
        .enable_all()
        .build()?;
    let ensemble = LocalEnsemble::start_viewed(
        EnsembleKind::Ours,
        settings.members,
        &dir,
        Some(&binary),
        "tickTime=100\ninitLimit=50\nsyncLimit=30\nminSessionTimeout=2000\nmaxSessionTimeout=30000",
        |from, to, (quorum, election)| {
            if !partitions {
                return Ok((quorum, election));
            }
            Ok((
                links.proxy(link_runtime.handle(), from, to, quorum)?,
                links.proxy(link_runtime.handle(), from, to, election)?,
            ))
        },
    )?;
    // Shared with the fault thread, and kept here until the end: the links must outlive
    // the schedule (healing and the final reads still go through them).
    let links = Arc::new(links);
    ensemble.wait_for_leader(Duration::from_secs(60))?;
    let connect = ensemble.connect_string();
    let addrs = ensemble.addrs.clone();

    let keys: Vec<String> = (0..settings.registers)
        .map(|k| format!("/chaos/r{k}"))
        .collect();
    runtime.block_on(setup(&connect, &keys))?;

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let history: Arc<Mutex<Vec<Op>>> = Arc::new(Mutex::new(Vec::new()));
    let values = Arc::new(AtomicU64::new(1));
    let workers: Vec<_> = (0..settings.clients)
        .map(|w| {
            runtime.spawn(worker(
                w,
                connect.clone(),
                keys.clone(),
                settings.seed.wrapping_add(w as u64 * 7919),
                started,
                stop.clone(),
                history.clone(),
                values.clone(),
            ))
        })
        .collect();

    let faults = std::thread::spawn({
        let settings = settings.clone();
        let links = Arc::clone(&links);
        move || inject(ensemble, &links, &settings, started)
    });
    let (mut ensemble, schedule) = faults
        .join()
        .map_err(|_| anyhow::anyhow!("the fault thread panicked"))??;
    stop.store(true, Ordering::SeqCst);
    // The clients stay connected (their sessions, and so their ephemerals, open) until
    // every member has been read.
    let mut clients = Vec::new();
    for worker in workers {
        clients.push(runtime.block_on(worker)??);
    }

    // Heal, converge, read every member directly.
    for i in 0..settings.members {
        if ensemble.members[i].is_none() {
            ensemble.start_member(i)?;
        }
    }
    ensemble.wait_for_leader(Duration::from_secs(60))?;
    let zxid = converge(&ensemble, Duration::from_secs(60))?;
    let mut violations = Vec::new();
    let mut finals: Vec<MemberView> = Vec::new();
    for addr in &addrs {
        let (reads, children, ephemerals) =
            runtime.block_on(final_reads(&addr.to_string(), &keys, started))?;
        let mut state = BTreeMap::new();
        for op in &reads {
            if let Outcome::Ok { version, value } = op.outcome {
                state.insert(op.kind.key().to_owned(), (version, value));
            }
        }
        history
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .extend(reads);
        finals.push((state, children, ephemerals));
    }
    for (i, f) in finals.iter().enumerate().skip(1) {
        if f != &finals[0] {
            violations.push(Violation {
                checker: "convergence",
                message: format!(
                    "member {} and member 1 differ after healing: {:?} against {:?}",
                    i + 1,
                    f,
                    finals[0]
                ),
                ops: Vec::new(),
            });
        }
    }
    // Which clients' sessions are still open, asked after the final reads (a session
    // that answers now was open then); one that cannot tell is left out of the check.
    let mut open = Vec::new();
    let mut unsure = Vec::new();
    for client in clients {
        let session = client.session_id();
        // The timers are made inside the runtime.
        let answer = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), client.exists("/chaos")).await
        });
        match answer {
            Ok(Ok(_)) => open.push(session),
            Ok(Err(ZkError::SessionExpired)) => {}
            _ => unsure.push(session),
        }
        let _ = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), client.close()).await });
    }
    drop(ensemble);

    let history = Arc::try_unwrap(history)
        .map_err(|_| anyhow::anyhow!("history still shared"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let file = dir.join("history.txt");
    history::write(&file, &history)?;
    let checking = Instant::now();
    violations.extend(check::linearizable(&history));
    violations.extend(check::version_order(&history));
    violations.extend(check::session_order(&history));
    violations.extend(check::sync_reads(&history));
    let present: Vec<String> = finals
        .first()
        .map(|(_, children, _)| children.iter().map(|c| format!("/chaos/seq/{c}")).collect())
        .unwrap_or_default();
    violations.extend(check::sequential(&history, &present));
    if !unsure.is_empty() {
        eprintln!(
            "chaos: {} session(s) could not say whether they were open; their ephemerals \
             are left out of the check",
            unsure.len()
        );
    }
    let sure: Vec<Op> = history
        .iter()
        .filter(|op| !unsure.contains(&op.session))
        .cloned()
        .collect();
    let ephemerals: Vec<(String, i64)> = finals
        .first()
        .map(|(_, _, e)| {
            e.iter()
                .filter(|(_, o)| !unsure.contains(o))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    violations.extend(check::ephemerals(&sure, &open, &ephemerals));
    let checked_in = checking.elapsed();

    report(&settings, &schedule, &history, zxid, checked_in, &file);
    if settings.broken {
        if violations.is_empty() {
            bail!(
                "the broken build (a leader committing without a quorum) was not caught \
                 (seed {}, history in {})",
                settings.seed,
                file.display()
            );
        }
        eprintln!("\nthe broken build was caught; seed {}:", settings.seed);
        print_violations(&violations, &history, &schedule);
        return Ok(());
    }
    if !violations.is_empty() {
        eprintln!(
            "\n{} violation(s); seed {}:",
            violations.len(),
            settings.seed
        );
        print_violations(&violations, &history, &schedule);
        bail!(
            "chaos found {} violation(s) (seed {}, history in {})",
            violations.len(),
            settings.seed,
            file.display()
        );
    }
    if !settings.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// The fault schedule, then each violation with the slice of the history that shows it.
fn print_violations(violations: &[Violation], history: &[Op], schedule: &Schedule) {
    eprintln!("fault schedule:");
    for (at, fault, victim, _) in &schedule.events {
        eprintln!("  {at:7.2}s {fault:?} member {}", victim + 1);
    }
    for v in violations {
        eprintln!("- [{}] {}", v.checker, v.message);
        for &i in v.ops.iter().take(40) {
            eprintln!("    #{i} {}", history[i].line());
        }
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        session_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(30),
        reconnect_delay: Duration::from_millis(200),
        ..ClientOptions::default()
    }
}

async fn setup(connect: &str, keys: &[String]) -> Result<()> {
    let client = Client::connect(connect, options()).await?;
    let open = CreateOptions::persistent();
    client.create("/chaos", b"", &open).await?;
    client.create("/chaos/seq", b"", &open).await?;
    client.create("/chaos/eph", b"", &open).await?;
    for key in keys {
        client.create(key, b"0", &open).await?;
    }
    client.close().await?;
    Ok(())
}

/// How long a client waits for an answer before counting the operation as unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(8);

/// One client: a session on the whole ensemble, operations until `stop`, each recorded.
#[allow(clippy::too_many_arguments)]
async fn worker(
    id: usize,
    connect: String,
    keys: Vec<String>,
    seed: u64,
    started: Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Op>>>,
    values: Arc<AtomicU64>,
) -> Result<Client> {
    let mut rng = Rng::new(seed);
    let mut client = Client::connect(&connect, options())
        .await
        .with_context(|| format!("client {id} connecting"))?;
    ephemeral(&client, id, started, &history).await?;
    let mut seen: Vec<i32> = vec![0; keys.len()];
    let seq = CreateOptions::new(CreateMode::PersistentSequential);
    let now = |started: Instant| started.elapsed().as_nanos() as u64;
    while !stop.load(Ordering::SeqCst) {
        let k = rng.below(keys.len());
        let key = keys[k].clone();
        let roll = rng.below(100);
        let session = client.session_id();
        let invoke = now(started);
        let (kind, result) = if roll < 20 {
            let r = tokio::time::timeout(OP_TIMEOUT, client.get_data(&key)).await;
            (
                Kind::Read { key },
                r.map(|r| r.map(|(d, s)| (Some(d), s.version, None))),
            )
        } else if roll < 25 {
            // sync, then the read on the same session: it must see every write
            // acknowledged before the sync was sent.
            let r = tokio::time::timeout(OP_TIMEOUT, async {
                client.sync(&key).await?;
                client.get_data(&key).await
            })
            .await;
            (
                Kind::SyncRead { key },
                r.map(|r| r.map(|(d, s)| (Some(d), s.version, None))),
            )
        } else if roll < 50 {
            let value = values.fetch_add(1, Ordering::SeqCst);
            let r = tokio::time::timeout(
                OP_TIMEOUT,
                client.set_data(&key, value.to_string().as_bytes(), None),
            )
            .await;
            (
                Kind::Write { key, value },
                r.map(|r| r.map(|s| (None, s.version, Some(value)))),
            )
        } else if roll < 85 {
            let value = values.fetch_add(1, Ordering::SeqCst);
            let expected = seen[k];
            let r = tokio::time::timeout(
                OP_TIMEOUT,
                client.set_data(&key, value.to_string().as_bytes(), Some(expected)),
            )
            .await;
            (
                Kind::Cas {
                    key,
                    expected,
                    value,
                },
                r.map(|r| r.map(|s| (None, s.version, Some(value)))),
            )
        } else {
            let r =
                tokio::time::timeout(OP_TIMEOUT, client.create("/chaos/seq/n-", b"", &seq)).await;
            let complete = now(started);
            let expired = matches!(r, Ok(Err(ZkError::SessionExpired)));
            let outcome = match r {
                Ok(Ok((path, _))) => Outcome::Created { path },
                Ok(Err(e)) => classify(&e),
                Err(_) => Outcome::Unknown,
            };
            record(
                &history,
                session,
                invoke,
                complete,
                Kind::CreateSequential {
                    parent: "/chaos/seq".into(),
                },
                outcome,
            )?;
            if expired {
                client = reconnect(&connect, id).await?;
                ephemeral(&client, id, started, &history).await?;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let complete = now(started);
        let (outcome, expired) = match result {
            Ok(Ok((data, version, written))) => {
                let value = match (data, written) {
                    (_, Some(v)) => v,
                    (Some(d), None) => std::str::from_utf8(&d)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(u64::MAX),
                    (None, None) => u64::MAX,
                };
                seen[k] = seen[k].max(version);
                (Outcome::Ok { version, value }, false)
            }
            Ok(Err(e)) => (classify(&e), matches!(e, ZkError::SessionExpired)),
            Err(_) => (Outcome::Unknown, false),
        };
        // A failed CAS saw another version: read it again before the next one.
        if matches!(outcome, Outcome::Fail { .. }) {
            if let Ok(Ok((_, stat))) =
                tokio::time::timeout(OP_TIMEOUT, client.get_data(&keys[k])).await
            {
                seen[k] = stat.version;
            }
        }
        record(&history, session, invoke, complete, kind, outcome)?;
        if expired {
            client = reconnect(&connect, id).await?;
            ephemeral(&client, id, started, &history).await?;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(client)
}

/// A new session's first act: an ephemeral node of its own, recorded.
async fn ephemeral(
    client: &Client,
    id: usize,
    started: Instant,
    history: &Mutex<Vec<Op>>,
) -> Result<()> {
    let session = client.session_id();
    let path = format!("/chaos/eph/w{id}-{session:016x}");
    let invoke = started.elapsed().as_nanos() as u64;
    let r = tokio::time::timeout(
        OP_TIMEOUT,
        client.create(&path, b"", &CreateOptions::new(CreateMode::Ephemeral)),
    )
    .await;
    let outcome = match r {
        Ok(Ok((path, _))) => Outcome::Created { path },
        Ok(Err(e)) => classify(&e),
        Err(_) => Outcome::Unknown,
    };
    let complete = started.elapsed().as_nanos() as u64;
    record(
        history,
        session,
        invoke,
        complete,
        Kind::CreateEphemeral { path },
        outcome,
    )
}

async fn reconnect(connect: &str, id: usize) -> Result<Client> {
    Client::connect(connect, options())
        .await
        .with_context(|| format!("client {id} reconnecting after its session expired"))
}

/// A client error as an outcome: lost connections and timeouts leave it unknown.
fn classify(e: &ZkError) -> Outcome {
    match e {
        ZkError::ConnectionLoss
        | ZkError::OperationTimeout
        | ZkError::SessionExpired
        | ZkError::SessionMoved => Outcome::Unknown,
        other => match other.code() {
            Some(code) => Outcome::Fail { code },
            None => Outcome::Unknown,
        },
    }
}

fn record(
    history: &Mutex<Vec<Op>>,
    session: i64,
    invoke: u64,
    complete: u64,
    kind: Kind,
    outcome: Outcome,
) -> Result<()> {
    history
        .lock()
        .map_err(|_| anyhow::anyhow!("history lock poisoned"))?
        .push(Op {
            session,
            invoke,
            complete,
            kind,
            outcome,
        });
    Ok(())
}

/// The fault schedule, on its own thread (the ensemble's controls block). Returns the
/// ensemble (with every member running or restarted) and what was done.
fn inject(
    mut ensemble: LocalEnsemble,
    links: &links::Links,
    settings: &Settings,
    started: Instant,
) -> Result<(LocalEnsemble, Schedule)> {
    let mut rng = Rng::new(settings.seed);
    let mut schedule = Schedule::default();
    let deadline = started + settings.duration;
    let pause = |rng: &mut Rng, from_ms: usize, to_ms: usize| {
        Duration::from_millis((from_ms + rng.below(to_ms - from_ms)) as u64)
    };
    while Instant::now() + Duration::from_secs(3) < deadline {
        std::thread::sleep(pause(&mut rng, 1500, 4000));
        let leader = ensemble.wait_for_leader(Duration::from_secs(60))?;
        let fault = loop {
            let fault = match rng.below(115) {
                0..22 => Fault::KillLeader,
                22..40 => Fault::KillFollower,
                40..60 => Fault::PauseLeader,
                60..75 => Fault::PartitionLeader,
                75..85 => Fault::PartitionFollower,
                85..94 => Fault::OneWayLeader,
                94..100 => Fault::KillAll,
                100..105 => Fault::SlowDisk,
                105..110 => Fault::FailFsync,
                _ => Fault::FullDisk,
            };
            if settings.faults.iter().any(|k| k == fault.kind()) {
                break fault;
            }
        };
        let at = started.elapsed().as_secs_f64();
        let n = ensemble.members.len();
        let victim = match fault {
            Fault::KillFollower | Fault::PartitionFollower => (leader + 1 + rng.below(n - 1)) % n,
            Fault::FailFsync | Fault::FullDisk => rng.below(n),
            _ => leader,
        };
        eprintln!("chaos: {at:7.2}s {fault:?} (member {})", victim + 1);
        let recovered = match fault {
            Fault::KillLeader | Fault::KillFollower => {
                let t = Instant::now();
                ensemble.kill_member(victim);
                ensemble.wait_for_leader(Duration::from_secs(60))?;
                let failover = (fault == Fault::KillLeader).then(|| t.elapsed());
                std::thread::sleep(pause(&mut rng, 1000, 4000));
                ensemble.start_member(victim)?;
                failover
            }
            Fault::PauseLeader => {
                let pid = ensemble.members[victim]
                    .as_ref()
                    .map(|m| m.child.borrow().id())
                    .context("the leader is running")?;
                crate::servers::signal_group(pid, "-STOP");
                // Long enough for the others to notice (syncLimit) and elect.
                std::thread::sleep(pause(&mut rng, 4000, 7000));
                crate::servers::signal_group(pid, "-CONT");
                ensemble.wait_for_leader(Duration::from_secs(60))?;
                None
            }
            Fault::PartitionLeader | Fault::PartitionFollower | Fault::OneWayLeader => {
                links.isolate(victim, n, fault != Fault::OneWayLeader);
                // Long enough for the others to notice (syncLimit) and elect.
                std::thread::sleep(pause(&mut rng, 4000, 8000));
                links.heal();
                ensemble.wait_for_leader(Duration::from_secs(60))?;
                None
            }
            Fault::SlowDisk => {
                let file = ensemble.failpoint_file(victim);
                std::fs::write(&file, "slow-fsync 200")?;
                std::thread::sleep(pause(&mut rng, 3000, 6000));
                std::fs::write(&file, "")?;
                None
            }
            Fault::FailFsync | Fault::FullDisk => {
                let file = ensemble.failpoint_file(victim);
                let what = if fault == Fault::FailFsync {
                    "fail-fsync"
                } else {
                    "full-disk"
                };
                let t = Instant::now();
                std::fs::write(&file, what)?;
                // Its next commit fails and it stops; clients keep it writing.
                let exited = match &ensemble.members[victim] {
                    Some(m) => crate::servers::wait_for_exit(
                        &mut m.child.borrow_mut(),
                        Duration::from_secs(15),
                    ),
                    None => None,
                };
                if exited.is_none() {
                    eprintln!(
                        "chaos: member {} did not stop on its disk fault",
                        victim + 1
                    );
                }
                ensemble.kill_member(victim);
                ensemble.wait_for_leader(Duration::from_secs(60))?;
                let failover = (victim == leader).then(|| t.elapsed());
                std::fs::write(&file, "")?;
                std::thread::sleep(pause(&mut rng, 500, 2000));
                ensemble.start_member(victim)?;
                failover
            }
            Fault::KillAll => {
                for i in 0..n {
                    ensemble.kill_member(i);
                }
                std::thread::sleep(pause(&mut rng, 500, 2000));
                let t = Instant::now();
                for i in 0..n {
                    ensemble.start_member(i)?;
                }
                ensemble.wait_for_leader(Duration::from_secs(60))?;
                Some(t.elapsed())
            }
        };
        schedule.events.push((at, fault, victim, recovered));
    }
    Ok((ensemble, schedule))
}

/// Waits until every member reports one zxid; returns it.
fn converge(ensemble: &LocalEnsemble, timeout: Duration) -> Result<i64> {
    let deadline = Instant::now() + timeout;
    loop {
        let zxids: Vec<Option<i64>> = ensemble
            .addrs
            .iter()
            .map(|a| {
                let srvr = four_letter_blocking(*a, "srvr");
                let hex = srvr.lines().find_map(|l| l.strip_prefix("Zxid: "))?;
                i64::from_str_radix(hex.trim().trim_start_matches("0x"), 16).ok()
            })
            .collect();
        if let Some(Some(first)) = zxids.first() {
            if zxids.iter().all(|z| z == &Some(*first)) {
                return Ok(*first);
            }
        }
        if Instant::now() >= deadline {
            bail!("the members did not converge on one zxid within {timeout:?}: {zxids:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads one member directly after `sync`: every register, and the sequential nodes.
async fn final_reads(
    addr: &str,
    keys: &[String],
    started: Instant,
) -> Result<(Vec<Op>, Vec<String>, Vec<(String, i64)>)> {
    let client = Client::connect(addr, options()).await?;
    client.sync("/chaos").await?;
    let mut ops = Vec::new();
    for key in keys {
        let invoke = started.elapsed().as_nanos() as u64;
        let (data, stat) = client.get_data(key).await?;
        let value = std::str::from_utf8(&data)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(u64::MAX);
        ops.push(Op {
            session: client.session_id(),
            invoke,
            complete: started.elapsed().as_nanos() as u64,
            kind: Kind::FinalRead { key: key.clone() },
            outcome: Outcome::Ok {
                version: stat.version,
                value,
            },
        });
    }
    let mut children = client.get_children("/chaos/seq").await?;
    children.sort();
    let mut ephemerals = Vec::new();
    let mut names = client.get_children("/chaos/eph").await?;
    names.sort();
    for name in names {
        let path = format!("/chaos/eph/{name}");
        if let Some(stat) = client.exists(&path).await? {
            ephemerals.push((path, stat.ephemeral_owner));
        }
    }
    client.close().await?;
    Ok((ops, children, ephemerals))
}

fn report(
    settings: &Settings,
    schedule: &Schedule,
    history: &[Op],
    zxid: i64,
    checked_in: Duration,
    file: &std::path::Path,
) {
    let mut by_fault: BTreeMap<String, usize> = BTreeMap::new();
    let mut failovers: Vec<Duration> = Vec::new();
    for (_, fault, _, recovered) in &schedule.events {
        *by_fault.entry(format!("{fault:?}")).or_default() += 1;
        if *fault == Fault::KillLeader {
            failovers.extend(recovered);
        }
    }
    failovers.sort();
    let mut by_outcome: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for op in history {
        *by_outcome
            .entry((op.kind.label().to_owned(), op.outcome.label()))
            .or_default() += 1;
    }
    println!("chaos: seed {}, {:?}", settings.seed, settings.duration);
    println!("faults: {by_fault:?}");
    let failover = match (failovers.get(failovers.len() / 2), failovers.last()) {
        (Some(median), Some(max)) => format!(
            "median {:.1} ms, max {:.1} ms over {}",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            failovers.len()
        ),
        _ => "none measured".to_owned(),
    };
    println!("leader failover (SIGKILL to a leader serving with every running member): {failover}");
    let outcomes: Vec<String> = by_outcome
        .iter()
        .map(|((k, o), n)| format!("{k} {o} {n}"))
        .collect();
    println!("operations: {} ({})", history.len(), outcomes.join(", "));
    println!(
        "converged at zxid {zxid:#x}; checked in {checked_in:.2?}; history in {}",
        file.display()
    );
}
