//! The simulated world: members, network, disks, clock, clients and the fault schedule.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use zk_datatree::{DataTree, TreeOptions};
use zk_election::transport::Status as ElectionStatus;
use zk_election::{Election, Input as EInput, Notification, Output as EOutput, PeerData};
use zk_jute::Zxid;
use zk_replication::storage::{MemStorage, Storage, StorageError};
use zk_replication::{Entry, History, Message, Persisted, Sid, State, Zab};

use super::clients::{self, Client, Conn, Frame, Reaction};
use super::history::Op;
use super::{Final, Options, Report, SimError, Stats};
use crate::config::Config;
use crate::engine::{ConnId, Engine, Input, Now, Output, Role};
use crate::ensemble::log_entry_of;
use crate::member::{Host, Member, Received, SyncStart};

/// The wall clock at the simulation's start (ms since the Unix epoch).
const WALL_BASE_MS: i64 = 1_750_000_000_000;

/// The world's timer: election and Zab timers, client timeouts.
const TICK_MS: u64 = 25;

/// The members' `tickTime`.
const TICK_TIME_MS: u64 = 100;

/// Snapshots a member keeps when it purges (`autopurge.snapRetainCount`'s least).
const SNAP_RETAIN_COUNT: usize = 3;

/// How long the ensemble may take to heal after the faults end.
const HEAL_LIMIT_MS: u64 = 60_000;

/// splitmix64: small, fast, and good enough to drive a simulation.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// A log in memory; a lying one reports syncs it did not make.
#[derive(Debug, Clone, Default)]
struct SimStorage {
    inner: MemStorage,
    lying: bool,
}

impl Storage for SimStorage {
    fn persisted(&self) -> Result<Persisted, StorageError> {
        self.inner.persisted()
    }
    fn set_accepted_epoch(&mut self, epoch: u32) -> Result<(), StorageError> {
        self.inner.set_accepted_epoch(epoch)
    }
    fn set_current_epoch(&mut self, epoch: u32) -> Result<(), StorageError> {
        self.inner.set_current_epoch(epoch)
    }
    fn append(&mut self, entry: &Entry) -> Result<(), StorageError> {
        self.inner.append(entry)
    }
    fn sync(&mut self) -> Result<Zxid, StorageError> {
        if self.lying {
            return Ok(self.inner.last());
        }
        self.inner.sync()
    }
    fn truncate(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.inner.truncate(zxid)
    }
    fn reset(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.inner.reset(zxid)
    }
    fn read(&mut self, after: Zxid, through: Zxid, max: usize) -> Result<Vec<Entry>, StorageError> {
        self.inner.read(after, through, max)
    }
}

/// What survives a crash: the log (less its unsynced tail) and the snapshots; and how
/// the disk syncs.
#[derive(Debug, Clone, Default)]
struct Disk {
    store: SimStorage,
    /// Snapshot files, in the order written: the zxid and the file's bytes.
    snapshots: Vec<(i64, Bytes)>,
    /// Whether this life's fsyncs run beside the member, as the server's runtime runs
    /// them, or in place when the world schedules them.
    async_fsync: bool,
    /// Whether this life's fsyncs beside the member are queued, as the server's sync
    /// thread queues them (a sync is asked for at every burst that appended, and they end
    /// in order), or asked for one at a time.
    queue_syncs: bool,
    /// Queued syncs: one runs (its `Event::Synced` is scheduled).
    sync_running: bool,
    /// Queued syncs: the one to start when the running one ends (the generation and the
    /// last zxid appended when it was last asked for); later asks merge into it.
    sync_queued: Option<(u64, Zxid)>,
    /// How long its fsyncs take: (least, most) ms.
    fsync_ms: (u64, u64),
    /// Bumped when the log is truncated or replaced: an fsync started before counts for
    /// nothing.
    sync_generation: u64,
    /// The membership a reconfiguration activated, as the server keeps it in
    /// `zoo.cfg.dynamic.<version>`; `None` while the configuration's own holds.
    membership: Option<zk_replication::Membership>,
}

/// The tree a snapshot holds, and the digest recorded at its end.
fn parse_snapshot(zxid: i64, bytes: Bytes, options: TreeOptions) -> Result<Received, String> {
    let snapshot = zk_persistence::read_snapshot_bytes(Path::new("sim"), zxid, bytes, |r, s| {
        let mut tree = DataTree::deserialize(r, options, |_| {})?;
        tree.set_sessions(s.clone());
        Ok::<_, zk_datatree::SnapshotError>(tree)
    })
    .map_err(|e| e.to_string())?;
    let mut tree = snapshot.tree;
    tree.set_last_zxid(snapshot.zxid);
    Ok(Received {
        tree,
        digest: snapshot.digest,
    })
}

impl Disk {
    /// The tree the files hold: the newest snapshot (at or before `upto`), then every
    /// logged txn after it (up to `upto`), committed or not, as the server restores.
    fn restore(&self, upto: Option<i64>, options: TreeOptions) -> Result<Received, String> {
        let snapshot = self
            .snapshots
            .iter()
            .filter(|(z, _)| upto.is_none_or(|u| *z <= u))
            .max_by_key(|(z, _)| *z);
        let (base, Received { mut tree, digest }) = match snapshot {
            Some((zxid, bytes)) => (*zxid, parse_snapshot(*zxid, bytes.clone(), options)?),
            None => (
                0,
                Received {
                    tree: DataTree::new(options),
                    digest: None,
                },
            ),
        };
        let mut last = base;
        for entry in self.store.inner.entries() {
            if entry.zxid.0 <= base {
                continue;
            }
            if upto.is_some_and(|u| entry.zxid.0 > u) {
                break;
            }
            let entry = log_entry_of(entry)?;
            // A fuzzy snapshot's window: its txns' digests cannot be compared.
            let window = digest.as_ref().filter(|d| entry.header.zxid <= d.zxid);
            crate::replay(&mut tree, &entry, window)
                .map_err(|e| format!("replaying {:#x}: {e}", entry.header.zxid))?;
            last = entry.header.zxid;
        }
        tree.set_last_zxid(last);
        if let Some(upto) = upto
            && last != upto
        {
            return Err(format!("the files hold {last:#x}, not {upto:#x}"));
        }
        Ok(Received { tree, digest })
    }

    /// What Zab starts from: the log's shape after the newest snapshot, as the server's
    /// `FileStorage` gives it. The log may lack txns the snapshot holds: a follower
    /// applies what a quorum without it committed, so a snapshot of its tree can be
    /// ahead of its own synced log, and a crash then loses that tail; what it logs next
    /// follows the snapshot, not the log. Only the entries past the snapshot count.
    fn persisted(&self) -> Result<Persisted, String> {
        let (accepted_epoch, current_epoch) = self.store.inner.epochs();
        let base = Zxid(self.snapshots.iter().map(|(z, _)| *z).max().unwrap_or(0));
        let entries = self.store.inner.entries();
        let history = History::from_zxids(base, entries.iter().map(|e| e.zxid))
            .map_err(|e| format!("the log after the snapshot at {base}: {e}"))?;
        Ok(Persisted {
            accepted_epoch,
            current_epoch,
            history,
        })
    }
}

/// A running member.
struct Live {
    engine: Engine,
    member: Member,
    election: Election,
    looks: u64,
    snapshot_rx: BytesMut,
    election_out: Vec<EOutput>,
}

struct Node {
    /// Bumped by every crash: what was sent to an earlier life is dropped.
    life: u64,
    disk: Disk,
    live: Option<Live>,
    fsync_due: bool,
    /// A step of a snapshot streamed to a learner is scheduled.
    snapshot_step_due: bool,
}

#[derive(Debug)]
enum Event {
    Tick,
    Fsync {
        sid: Sid,
        life: u64,
    },
    /// An fsync started beside the member has ended.
    Synced {
        sid: Sid,
        life: u64,
        generation: u64,
        zxid: Zxid,
    },
    Zab {
        from: Sid,
        to: Sid,
        stream: u64,
        message: Message,
    },
    Election {
        from: Sid,
        to: Sid,
        notification: Notification,
    },
    Connect {
        learner: Sid,
        leader: Sid,
        life: u64,
    },
    Closed {
        to: Sid,
        peer: Sid,
        stream: u64,
    },
    /// A crashed member's election stream reset at `to` (dropped if it is back by then).
    ElectionLost {
        to: Sid,
        peer: Sid,
    },
    ToServer {
        sid: Sid,
        life: u64,
        conn: ConnId,
        frame: Option<Frame>,
    },
    ToClient {
        client: usize,
        conn: ConnId,
        bytes: Option<Bytes>,
    },
    ClientGo {
        client: usize,
    },
    /// The next step of the snapshots member `sid` streams to learners.
    SnapshotStep {
        sid: Sid,
        life: u64,
    },
    Fault,
    Heal,
}

struct Queued {
    at_ms: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

/// A Zab stream between two members.
#[derive(Debug, Clone, Copy)]
struct Stream {
    id: u64,
    /// Cut by a partition: it carries nothing more, and nobody is told.
    dead: bool,
    /// Snapshot pieces sent on it and not yet delivered.
    pieces: usize,
}

/// Snapshot pieces a stream holds before its sender waits for room (the runtime's
/// `QuorumConfig::snapshot_window`, in pieces of the simulation's size).
const SNAPSHOT_WINDOW: usize = 2;

/// The network, the clock and the generator: everything a member's host touches.
struct Net {
    now_ms: u64,
    rng: Rng,
    seq: u64,
    queue: BinaryHeap<Queued>,
    /// Open streams by (lower sid, higher sid).
    streams: BTreeMap<(Sid, Sid), Stream>,
    next_stream: u64,
    /// Directed links that carry nothing: (from, to).
    cut: BTreeSet<(Sid, Sid)>,
    /// When the last message on an ordered channel is due.
    last_at: BTreeMap<(u64, u64, u8), u64>,
    trace: VecDeque<String>,
}

fn key(a: Sid, b: Sid) -> (Sid, Sid) {
    (a.min(b), a.max(b))
}

impl Net {
    /// Whether the stream from `from` to `to` holds fewer snapshot pieces than the
    /// window (true with none: a send then fails).
    fn snapshot_room(&self, from: Sid, to: Sid) -> bool {
        self.streams
            .get(&key(from, to))
            .is_none_or(|s| s.pieces < SNAPSHOT_WINDOW)
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Queued {
            at_ms: self.now_ms + delay_ms,
            seq: self.seq,
            event,
        });
    }

    /// The end of an fsync of member `sid` in its life `life` that makes `zxid` durable
    /// (if the disk's sync generation is still `generation`), after `fsync_ms` (least, most).
    fn schedule_synced(
        &mut self,
        fsync_ms: (u64, u64),
        (sid, life): (Sid, u64),
        generation: u64,
        zxid: Zxid,
    ) {
        let d = self.rng.range(fsync_ms.0, fsync_ms.1);
        self.schedule(
            d,
            Event::Synced {
                sid,
                life,
                generation,
                zxid,
            },
        );
    }

    /// Schedules on an ordered channel: never before what was sent on it earlier.
    fn schedule_ordered(&mut self, channel: (u64, u64, u8), delay_ms: u64, event: Event) {
        let at = (self.now_ms + delay_ms).max(self.last_at.get(&channel).copied().unwrap_or(0));
        self.last_at.insert(channel, at);
        self.seq += 1;
        self.queue.push(Queued {
            at_ms: at,
            seq: self.seq,
            event,
        });
    }

    /// A message's delay: mostly a few ms, now and then much more.
    fn delay(&mut self) -> u64 {
        if self.rng.chance(10) {
            self.rng.range(20, 200)
        } else {
            self.rng.range(1, 5)
        }
    }

    /// A frame for client `client` on connection `conn` (`None`: the connection
    /// closes), after what was sent on it before.
    fn send_to_client(&mut self, client: usize, conn: ConnId, bytes: Option<Bytes>) {
        let d = self.delay();
        self.schedule_ordered(
            (conn, 0, 2),
            d,
            Event::ToClient {
                client,
                conn,
                bytes,
            },
        );
    }

    /// A frame for member `sid` (in its life `life`) on connection `conn` (`None`: the
    /// client closed it), after what was sent on it before.
    fn send_to_server(&mut self, sid: Sid, life: u64, conn: ConnId, frame: Option<Frame>) {
        let d = self.delay();
        self.schedule_ordered(
            (conn, 1, 2),
            d,
            Event::ToServer {
                sid,
                life,
                conn,
                frame,
            },
        );
    }

    fn note(&mut self, line: String) {
        self.trace.push_back(format!("{:>8} {line}", self.now_ms));
        if self.trace.len() > 300 {
            self.trace.pop_front();
        }
    }
}

/// A member's host in the simulation: its disk, its election, the network.
struct Io<'a> {
    sid: Sid,
    life: u64,
    disk: &'a mut Disk,
    election: &'a mut Election,
    looks: &'a mut u64,
    snapshot_rx: &'a mut BytesMut,
    election_out: &'a mut Vec<EOutput>,
    net: &'a mut Net,
    options: TreeOptions,
    /// Purges done, ensemble-wide.
    purges: &'a mut u64,
}

impl Host for Io<'_> {
    fn storage(&mut self) -> &mut dyn Storage {
        &mut self.disk.store
    }

    /// The world schedules a member's fsync as an event of its own, a few ms after its
    /// appends; the sync itself is done in place.
    fn start_sync(&mut self) -> Result<SyncStart, String> {
        if !self.disk.async_fsync {
            return self
                .disk
                .store
                .sync()
                .map(SyncStart::Done)
                .map_err(|e| e.to_string());
        }
        // As the server's runtime: the fsync runs elsewhere while the member goes on.
        let zxid = self.disk.store.inner.last();
        let generation = self.disk.sync_generation;
        if self.disk.queue_syncs {
            // As `zk_persistence::Syncer`: with one running, this waits for its end (merged
            // with any other waiting); with none, nothing unsynced is durable at once.
            if self.disk.sync_running || self.disk.sync_queued.is_some() {
                self.disk.sync_queued = Some((generation, zxid));
                return Ok(SyncStart::Started);
            }
            if self.disk.store.inner.unsynced() == 0 {
                return Ok(SyncStart::Done(zxid));
            }
            self.disk.sync_running = true;
        }
        self.net
            .schedule_synced(self.disk.fsync_ms, (self.sid, self.life), generation, zxid);
        Ok(SyncStart::Started)
    }

    fn queues_syncs(&self) -> bool {
        self.disk.queue_syncs
    }

    fn snapshot_room(&self, learner: Sid) -> bool {
        self.net.snapshot_room(self.sid, learner)
    }

    fn send(&mut self, to: Sid, message: Message) -> bool {
        let Some(stream) = self.net.streams.get_mut(&key(self.sid, to)) else {
            return false;
        };
        if matches!(message, Message::SnapPiece { .. }) && !stream.dead {
            stream.pieces += 1;
        }
        let stream = *stream;
        if stream.dead {
            return true;
        }
        if self.net.cut.contains(&(self.sid, to)) {
            // A link cut under a stream: it goes silent, and its ends find out by their
            // timeouts.
            if let Some(s) = self.net.streams.get_mut(&key(self.sid, to)) {
                s.dead = true;
            }
            return true;
        }
        let d = self.net.delay();
        self.net.schedule_ordered(
            (self.sid, to, 0),
            d,
            Event::Zab {
                from: self.sid,
                to,
                stream: stream.id,
                message,
            },
        );
        true
    }

    fn connect(&mut self, peer: Sid) -> bool {
        let d = self.net.delay();
        self.net.schedule(
            d,
            Event::Connect {
                learner: self.sid,
                leader: peer,
                life: self.life,
            },
        );
        true
    }

    fn disconnect(&mut self, peer: Sid) {
        if let Some(stream) = self.net.streams.remove(&key(self.sid, peer)) {
            let d = self.net.delay();
            self.net.schedule_ordered(
                (self.sid, peer, 0),
                d,
                Event::Closed {
                    to: peer,
                    peer: self.sid,
                    stream: stream.id,
                },
            );
        }
    }

    fn look(&mut self, data: PeerData) {
        self.election.set_peer_data(data);
        *self.looks += 1;
        let out = self.election.handle(self.net.now_ms, EInput::StartLooking);
        self.election_out.extend(out);
    }

    fn truncate(&mut self, zxid: Zxid, rebuild: Option<Zxid>) -> Result<Option<Received>, String> {
        self.disk.sync_generation += 1;
        self.disk.snapshots.retain(|(z, _)| *z <= zxid.0);
        self.disk.store.truncate(zxid).map_err(|e| e.to_string())?;
        match rebuild {
            Some(target) => self.disk.restore(Some(target.0), self.options).map(Some),
            None => Ok(None),
        }
    }

    fn snapshot_begin(&mut self, _zxid: Zxid) {
        self.snapshot_rx.clear();
    }

    fn snapshot_piece(&mut self, data: Bytes) {
        self.snapshot_rx.extend_from_slice(&data);
    }

    fn snapshot_end(&mut self, zxid: Zxid) -> Result<Received, String> {
        let bytes = std::mem::take(self.snapshot_rx).freeze();
        let received = parse_snapshot(zxid.0, bytes.clone(), self.options)?;
        self.disk.snapshots.push((zxid.0, bytes));
        self.disk.sync_generation += 1;
        self.disk.store.reset(zxid).map_err(|e| e.to_string())?;
        Ok(received)
    }

    fn snapshot_abort(&mut self) {
        self.snapshot_rx.clear();
    }

    fn replacing_tree(&mut self) {}

    /// The simulated network reaches every member by id; the election counts the new
    /// membership, and the disk keeps it for the next life.
    fn activate(&mut self, config: &crate::config::Config) {
        if let Some(election) = config.election.clone() {
            let out = self
                .election
                .handle(self.net.now_ms, EInput::Reconfigure(election));
            self.election_out.extend(out);
        }
        self.disk.membership = Some(zk_replication::Membership {
            version: config.config_version,
            text: config.membership_lines(),
        });
    }

    fn oldest_kept_snapshot(&mut self) -> Result<Option<Zxid>, String> {
        let mut zxids: Vec<i64> = self.disk.snapshots.iter().map(|(z, _)| *z).collect();
        zxids.sort_unstable_by(|a, b| b.cmp(a));
        zxids.dedup();
        Ok(zk_persistence::oldest_kept(&zxids, SNAP_RETAIN_COUNT).map(Zxid))
    }

    /// Stricter than the files: every logged txn at or below `zxid` goes, not only
    /// whole files before it.
    fn purge(&mut self, zxid: Zxid) -> Result<(), String> {
        self.disk.snapshots.retain(|(z, _)| *z >= zxid.0);
        self.disk.store.inner.purge(zxid);
        *self.purges += 1;
        Ok(())
    }
}

/// Follow-up work after a member's step.
enum Follow {
    Input(Input),
    Election,
}

/// The whole simulated world.
struct World {
    options: Options,
    config_text: String,
    election_config: zk_election::Config,
    net: Net,
    nodes: BTreeMap<Sid, Node>,
    clients: Vec<Client>,
    /// Client connections: the client and the member.
    conns: BTreeMap<ConnId, (usize, Sid)>,
    next_conn: ConnId,
    next_value: u64,
    history: Vec<Op>,
    /// Faults end, clients stop starting operations.
    healing: bool,
    /// Crashed members to restart at the next heal.
    down: BTreeSet<Sid>,
    /// A fault is in force.
    faulted: bool,
    leaders: BTreeMap<u32, Sid>,
    /// When the established leader was lost, for the failover time.
    leaderless_since: Option<u64>,
    current_leader: Option<Sid>,
    stats: Stats,
    schedule: Vec<String>,
    failure: Option<String>,
}

fn now_of(ms: u64) -> Now {
    Now {
        mono_us: ms * 1000,
        wall_ms: WALL_BASE_MS + ms as i64,
    }
}

/// Runs one simulated ensemble under `options` and returns the history and what the
/// members hold once healed.
pub fn run(options: &Options) -> Result<Report, SimError> {
    let mut world = World::new(options.clone()).map_err(|reason| SimError {
        seed: options.seed,
        reason,
        at_ms: 0,
        trace: String::new(),
        schedule: Vec::new(),
    })?;
    let result = world.go();
    let trace = world
        .net
        .trace
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    match result {
        Ok(finals) => Ok(Report {
            history: std::mem::take(&mut world.history),
            finals,
            stats: world.stats.clone(),
            schedule: world.schedule.clone(),
        }),
        Err(reason) => Err(SimError {
            seed: options.seed,
            reason,
            at_ms: world.net.now_ms,
            trace,
            schedule: world.schedule.clone(),
        }),
    }
}

impl World {
    fn new(options: Options) -> Result<Self, String> {
        let mut config_text = format!(
            "tickTime={TICK_TIME_MS}\ninitLimit=10\nsyncLimit=5\nsnapCount=60\n\
             maxSessionTimeout=8000\ndataDir=sim\nclientPort=2181\n"
        );
        for sid in 1..=options.members {
            config_text.push_str(&format!(
                "server.{sid}=127.0.0.{sid}:2888:3888;127.0.0.{sid}:2181\n"
            ));
        }
        if options.reconfig {
            // `super:test`, for the administrator.
            config_text.push_str(
                "reconfigEnabled=true\n\
                 DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n",
            );
        }
        let probe = Config::parse(&config_text).map_err(|e| e.to_string())?;
        let election_config = probe
            .election
            .clone()
            .ok_or("a simulated ensemble needs at least one member")?;
        let nodes = (1..=options.members)
            .map(|sid| {
                let node = Node {
                    life: 0,
                    disk: Disk {
                        store: SimStorage {
                            inner: MemStorage::new(),
                            lying: options.lying_disk,
                        },
                        snapshots: Vec::new(),
                        async_fsync: false,
                        queue_syncs: false,
                        sync_running: false,
                        sync_queued: None,
                        fsync_ms: (1, 10),
                        sync_generation: 0,
                        membership: None,
                    },
                    live: None,
                    fsync_due: false,
                    snapshot_step_due: false,
                };
                (sid, node)
            })
            .collect();
        let mut clients: Vec<Client> = (0..options.clients.max(1))
            .map(|id| Client::new(id == 0))
            .collect();
        if options.reconfig {
            clients.push(Client::admin(options.members));
        }
        Ok(World {
            net: Net {
                now_ms: 0,
                rng: Rng(options.seed ^ 0x5eed_0f5e_4e51_0000),
                seq: 0,
                queue: BinaryHeap::new(),
                streams: BTreeMap::new(),
                next_stream: 1,
                cut: BTreeSet::new(),
                last_at: BTreeMap::new(),
                trace: VecDeque::new(),
            },
            options,
            config_text,
            election_config,
            nodes,
            clients,
            conns: BTreeMap::new(),
            next_conn: 1,
            next_value: 0,
            history: Vec::new(),
            healing: false,
            down: BTreeSet::new(),
            faulted: false,
            leaders: BTreeMap::new(),
            leaderless_since: Some(0),
            current_leader: None,
            stats: Stats::default(),
            schedule: Vec::new(),
            failure: None,
        })
    }

    fn go(&mut self) -> Result<Vec<Final>, String> {
        let sids: Vec<Sid> = self.nodes.keys().copied().collect();
        for sid in &sids {
            self.boot(*sid)?;
        }
        self.net.schedule(0, Event::Tick);
        for client in 0..self.clients.len() {
            let d = self.net.rng.range(1, 50);
            self.net.schedule(d, Event::ClientGo { client });
        }
        if self.options.faults {
            let d = self.net.rng.range(1_000, 3_000);
            self.net.schedule(d, Event::Fault);
        }
        let fault_end = self.options.duration_ms;
        let mut heal_started = None;
        while let Some(q) = self.net.queue.pop() {
            self.net.now_ms = q.at_ms;
            self.stats.events += 1;
            self.event(q.event)?;
            if let Some(reason) = self.failure.take() {
                return Err(reason);
            }
            if !self.healing && self.net.now_ms >= fault_end {
                self.healing = true;
                heal_started = Some(self.net.now_ms);
                self.net.note("faults end; healing".into());
                self.heal()?;
            }
            if let Some(started) = heal_started {
                if self.healed() {
                    break;
                }
                if self.net.now_ms > started + HEAL_LIMIT_MS {
                    let states: Vec<String> = self
                        .nodes
                        .iter()
                        .map(|(sid, n)| match &n.live {
                            Some(l) => format!(
                                "{sid}: {:?} at {:#x}",
                                l.member.zab().state(),
                                l.engine.tree().last_zxid()
                            ),
                            None => format!("{sid}: down"),
                        })
                        .collect();
                    return Err(format!(
                        "the ensemble did not heal within {} s: {}",
                        HEAL_LIMIT_MS / 1000,
                        states.join("; ")
                    ));
                }
            }
        }
        self.stats.simulated_ms = self.net.now_ms;
        for node in self.nodes.values() {
            if let Some(live) = &node.live {
                for (kind, n) in live.member.status(now_of(self.net.now_ms)).syncs {
                    *self.stats.syncs.entry(kind).or_default() += n;
                }
            }
        }
        self.stats.reconfigs = self.clients.iter().map(Client::reconfigs).sum();
        let finals = self.finals();
        // Every member ends with the same membership.
        if let Some(first) = finals.first() {
            if let Some(other) = finals.iter().find(|f| f.membership != first.membership) {
                return Err(format!(
                    "members {} and {} end with different memberships:\n{}\n--\n{}",
                    first.sid, other.sid, first.membership, other.membership
                ));
            }
        }
        Ok(finals)
    }

    /// Every member serves the same tree, and no client waits.
    fn healed(&self) -> bool {
        let mut zxid = None;
        for node in self.nodes.values() {
            let Some(live) = &node.live else {
                return false;
            };
            if !live.member.zab().is_serving() || live.member.unsynced(node.disk.queue_syncs) {
                return false;
            }
            let at = live.engine.tree().last_zxid();
            if zxid.is_some_and(|z| z != at) {
                return false;
            }
            zxid = Some(at);
        }
        self.clients.iter().all(|c| !c.busy() && c.set_up())
    }

    fn finals(&self) -> Vec<Final> {
        let keys = clients::keys();
        self.nodes
            .iter()
            .filter_map(|(sid, node)| {
                let tree = node.live.as_ref()?.engine.tree();
                let registers = keys
                    .iter()
                    .map(|k| match tree.get_data(k, &[]) {
                        Ok((data, stat)) => (
                            k.clone(),
                            stat.version,
                            clients::parse_value(data.as_deref()),
                        ),
                        Err(_) => (k.clone(), -1, u64::MAX),
                    })
                    .collect();
                let sequential = tree
                    .get_children(clients::SEQ_PARENT, &[])
                    .map(|(c, _)| c)
                    .unwrap_or_default();
                let ephemerals = tree
                    .get_children(clients::EPH_PARENT, &[])
                    .map(|(c, _)| c)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|name| {
                        let path = format!("{}/{name}", clients::EPH_PARENT);
                        let owner = tree
                            .node(&path)
                            .map_or(0, |n| n.client_stat().ephemeral_owner);
                        (path, owner)
                    })
                    .collect();
                let membership = node
                    .live
                    .as_ref()?
                    .engine
                    .config()
                    .membership()
                    .unwrap_or_default();
                Some(Final {
                    membership,
                    sid: *sid,
                    zxid: tree.last_zxid(),
                    digest: tree.digest(),
                    registers,
                    sequential,
                    sessions: tree.sessions().keys().copied().collect(),
                    ephemerals,
                })
            })
            .collect()
    }

    /// Starts member `sid` from its disk.
    fn boot(&mut self, sid: Sid) -> Result<(), String> {
        let now = now_of(self.net.now_ms);
        let mut config = Config::parse(&self.config_text).map_err(|e| e.to_string())?;
        config.server_id = sid;
        let options = TreeOptions::default();
        let node = self.nodes.get_mut(&sid).ok_or("no such member")?;
        // A membership a reconfiguration made is read back, as from the dynamic file; a
        // member it left out runs without a vote.
        if let Some(membership) = &node.disk.membership {
            config = config
                .with_membership(membership)
                .map_err(|e| format!("member {sid}'s membership: {e}"))?;
        }
        let election_config = config
            .election
            .clone()
            .unwrap_or_else(|| self.election_config.clone());
        // Half the lives sync beside the member, as the server's runtime does with
        // forceSync on; the others in place (a host's `SyncStart::Done`).
        node.disk.async_fsync = self.net.rng.chance(500);
        // Half of those queue their syncs, as the server's sync thread does.
        node.disk.queue_syncs = node.disk.async_fsync && self.net.rng.chance(500);
        node.disk.sync_running = false;
        node.disk.sync_queued = None;
        let Received {
            mut tree,
            digest: window,
        } = node
            .disk
            .restore(None, options)
            .map_err(|e| format!("member {sid} restoring: {e}"))?;
        tree.kill_dead_sessions();
        let mut zab_config = zk_replication::Config::from_election(&election_config);
        zab_config.reconfig_enabled = config.reconfig_enabled;
        zab_config.membership = zk_replication::Membership {
            version: config.config_version,
            text: config.membership_lines(),
        };
        zab_config.tick_ms = TICK_TIME_MS;
        zab_config.init_limit = u64::from(config.init_limit.max(1));
        zab_config.sync_limit = u64::from(config.sync_limit.max(1));
        // Small windows, so that syncs by DIFF, TRUNC and SNAP all happen.
        zab_config.commit_log_count = 40;
        zab_config.diff_max_txns = 100;
        let persisted = node.disk.persisted()?;
        let mut zab = Zab::new(zab_config, sid, persisted).map_err(|e| e.to_string())?;
        if let Some(membership) = crate::member::logged_membership(&tree, &config) {
            zab.logged_membership(membership)
                .map_err(|e| e.to_string())?;
        }
        let mut election =
            Election::new(election_config, sid, zab.peer_data()).map_err(|e| e.to_string())?;
        let mut engine = Engine::new(Arc::new(config), tree, now, Role::Standalone);
        if let Some(digest) = window {
            engine.reopen_window(digest);
        }
        engine.set_role(Role::Learner, false, None, &mut Vec::new());
        let election_out = election.handle(self.net.now_ms, EInput::StartLooking);
        node.live = Some(Live {
            engine,
            // A few nodes and bytes a piece: a learner's snapshot takes several steps,
            // between which the leader goes on applying txns (a fuzzy snapshot).
            member: Member::new(zab, false).with_snapshot_steps(3, 256),
            election,
            looks: 0,
            snapshot_rx: BytesMut::new(),
            election_out,
        });
        self.net.note(format!("boot {sid}"));
        self.step(sid, |_, _, _, _| Ok(()))
    }

    /// Crashes member `sid`: its process is gone, its unsynced log tail partly lost,
    /// its streams and connections reset.
    fn crash(&mut self, sid: Sid) {
        let keep = self.net.rng.below(3) as usize;
        let Some(node) = self.nodes.get_mut(&sid) else {
            return;
        };
        if node.live.take().is_none() {
            return;
        }
        node.life += 1;
        node.fsync_due = false;
        node.snapshot_step_due = false;
        node.disk.store.inner.crash(keep);
        let last = node.disk.store.inner.last();
        self.net.note(format!("crash {sid} (log kept to {last})"));
        let streams: Vec<((Sid, Sid), Stream)> = self
            .net
            .streams
            .iter()
            .filter(|((a, b), _)| *a == sid || *b == sid)
            .map(|(k, s)| (*k, *s))
            .collect();
        for ((a, b), stream) in streams {
            self.net.streams.remove(&(a, b));
            let peer = if a == sid { b } else { a };
            let d = self.net.delay();
            self.net.schedule(
                d,
                Event::Closed {
                    to: peer,
                    peer: sid,
                    stream: stream.id,
                },
            );
        }
        let others: Vec<Sid> = self.nodes.keys().copied().filter(|s| *s != sid).collect();
        for to in others {
            // A fixed delay, drawing nothing from the seed: a schedule replays as before.
            self.net.schedule(3, Event::ElectionLost { to, peer: sid });
        }
        let conns: Vec<(ConnId, usize)> = self
            .conns
            .iter()
            .filter(|(_, (_, s))| *s == sid)
            .map(|(c, (client, _))| (*c, *client))
            .collect();
        for (conn, client) in conns {
            self.conns.remove(&conn);
            self.net.send_to_client(client, conn, None);
        }
        if self.current_leader == Some(sid) {
            self.current_leader = None;
            self.leaderless_since.get_or_insert(self.net.now_ms);
        }
    }

    /// Runs `f` on member `sid`, then whatever follows from it: the engine's frames to
    /// clients, snapshots, the election's notifications and decisions.
    fn step(
        &mut self,
        sid: Sid,
        f: impl FnOnce(&mut Member, &mut Engine, &mut dyn Host, Now) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut work: VecDeque<Follow> = VecDeque::new();
        self.run_step(sid, f, &mut work)?;
        while let Some(next) = work.pop_front() {
            match next {
                Follow::Input(input) => self.run_step(
                    sid,
                    |member, engine, host, now| member.input(engine, host, now, input),
                    &mut work,
                )?,
                Follow::Election => {
                    let Some(live) = self.nodes.get(&sid).and_then(|n| n.live.as_ref()) else {
                        continue;
                    };
                    let status = ElectionStatus {
                        state: live.election.state(),
                        vote: live.election.vote(),
                        round: live.election.logical_clock(),
                        looks: live.looks,
                        heard_version: live.election.heard_config_version(),
                    };
                    self.run_step(
                        sid,
                        |member, engine, host, now| member.election(engine, host, now, status),
                        &mut work,
                    )?;
                }
            }
        }
        self.after_step(sid);
        Ok(())
    }

    fn run_step(
        &mut self,
        sid: Sid,
        f: impl FnOnce(&mut Member, &mut Engine, &mut dyn Host, Now) -> Result<(), String>,
        work: &mut VecDeque<Follow>,
    ) -> Result<(), String> {
        let now = now_of(self.net.now_ms);
        let Some(node) = self.nodes.get_mut(&sid) else {
            return Ok(());
        };
        let life = node.life;
        let Node { disk, live, .. } = node;
        let Some(live) = live.as_mut() else {
            return Ok(());
        };
        let Live {
            engine,
            member,
            election,
            looks,
            snapshot_rx,
            election_out,
        } = live;
        let mut io = Io {
            sid,
            life,
            disk: &mut *disk,
            election,
            looks,
            snapshot_rx,
            election_out: &mut *election_out,
            net: &mut self.net,
            options: TreeOptions::default(),
            purges: &mut self.stats.purges,
        };
        let result = f(member, engine, &mut io, now);
        let outputs = member.take_output();
        let election_out = std::mem::take(election_out);
        if let Err(reason) = result {
            return Err(format!("member {sid} stopped: {reason}"));
        }
        for output in outputs {
            match output {
                Output::Frame { conn, bytes } => {
                    if let Some((client, _)) = self.conns.get(&conn).copied() {
                        self.net.send_to_client(client, conn, Some(bytes));
                    }
                }
                Output::Close { conn } => {
                    if let Some((client, _)) = self.conns.remove(&conn) {
                        self.net.send_to_client(client, conn, None);
                    }
                }
                // Its log is one list in memory, with no files to roll.
                Output::RollLog => {}
                Output::Snapshot => {
                    let tree = engine.tree();
                    let zxid = tree.last_zxid();
                    let digest = Some(engine.snapshot_digest());
                    let bytes = zk_persistence::snapshot_bytes(tree.sessions(), digest, |w| {
                        tree.write_body(w)
                    })
                    .map_err(|e| format!("member {sid} snapshotting: {e}"))?;
                    disk.snapshots.push((zxid, Bytes::from(bytes)));
                    work.push_back(Follow::Input(Input::SnapshotDone { zxid, ok: true }));
                    // Autopurge after every snapshot (ZooKeeper's runs hours apart):
                    // histories cut often, learners behind the cut synced by SNAP.
                    member.want_purge();
                }
                Output::Fatal(reason) => return Err(format!("member {sid} failed: {reason}")),
                // A member's engine sends these to Zab, through its member.
                Output::Append(_) | Output::Forward(_) | Output::Sync { .. } | Output::Purge => {}
            }
        }
        let mut decided = false;
        for output in election_out {
            match output {
                EOutput::Send { to, notification } => {
                    if self.net.cut.contains(&(sid, to)) || self.net.rng.chance(5) {
                        continue;
                    }
                    let d = self.net.delay();
                    self.net.schedule(
                        d,
                        Event::Election {
                            from: sid,
                            to,
                            notification,
                        },
                    );
                }
                EOutput::Decided(_) | EOutput::Looking { .. } | EOutput::MembershipHeard { .. } => {
                    decided = true
                }
            }
        }
        if decided {
            work.push_back(Follow::Election);
        }
        Ok(())
    }

    /// Schedules the log's fsync, and checks who leads.
    fn after_step(&mut self, sid: Sid) {
        let Some(node) = self.nodes.get_mut(&sid) else {
            return;
        };
        let Some(live) = &node.live else {
            return;
        };
        if live.member.unsynced(node.disk.queue_syncs) && !node.fsync_due {
            node.fsync_due = true;
            // In place, the fsync's time passes before the member hears of it; beside the
            // member, the sync starts at once (the end of the runtime's burst) and takes
            // its time.
            let d = if node.disk.async_fsync {
                0
            } else {
                self.net
                    .rng
                    .range(node.disk.fsync_ms.0, node.disk.fsync_ms.1)
            };
            let life = node.life;
            self.net.schedule(d, Event::Fsync { sid, life });
        }
        let net = &self.net;
        if live
            .member
            .wants_snapshot_step(|learner| net.snapshot_room(sid, learner))
            && !node.snapshot_step_due
        {
            // Between a runtime's bursts: other events may come first.
            node.snapshot_step_due = true;
            let d = self.net.rng.range(0, 2);
            let life = node.life;
            self.net.schedule(d, Event::SnapshotStep { sid, life });
        }
        if let State::Leading {
            epoch: Some(epoch),
            established: true,
        } = live.member.zab().state()
        {
            match self.leaders.insert(epoch, sid) {
                Some(other) if other != sid => {
                    self.failure = Some(format!(
                        "two leaders established in epoch {epoch}: {other} and {sid}"
                    ));
                }
                Some(_) => {}
                None => {
                    self.stats.leaders += 1;
                    self.net.note(format!("{sid} leads epoch {epoch}"));
                    if let Some(since) = self.leaderless_since.take() {
                        self.stats.failovers_ms.push(self.net.now_ms - since);
                    }
                    self.current_leader = Some(sid);
                }
            }
        } else if self.current_leader == Some(sid) {
            self.current_leader = None;
            self.leaderless_since.get_or_insert(self.net.now_ms);
        }
    }

    fn event(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Tick => self.tick()?,
            Event::Fsync { sid, life } => {
                let Some(node) = self.nodes.get_mut(&sid) else {
                    return Ok(());
                };
                if node.life != life {
                    return Ok(());
                }
                node.fsync_due = false;
                self.step(sid, |member, engine, host, now| {
                    member.sync(engine, host, || now)
                })?;
            }
            Event::Synced {
                sid,
                life,
                generation,
                zxid,
            } => {
                let Some(node) = self.nodes.get_mut(&sid) else {
                    return Ok(());
                };
                if node.life != life {
                    return Ok(());
                }
                let current = node.disk.sync_generation == generation;
                if current && !node.disk.store.lying {
                    node.disk.store.inner.sync_through(zxid);
                }
                if node.disk.queue_syncs {
                    // The sync thread starts the next batch as this one ends, before the
                    // member hears of it.
                    node.disk.sync_running = false;
                    if let Some((generation, zxid)) = node.disk.sync_queued.take() {
                        node.disk.sync_running = true;
                        self.net
                            .schedule_synced(node.disk.fsync_ms, (sid, life), generation, zxid);
                    }
                }
                self.step(sid, |member, engine, host, now| {
                    member.synced(engine, host, now, Ok(current.then_some(zxid)))
                })?;
            }
            Event::Zab {
                from,
                to,
                stream,
                message,
            } => {
                let current = self.net.streams.get_mut(&key(from, to));
                let Some(current) = current.filter(|s| s.id == stream && !s.dead) else {
                    return Ok(());
                };
                let piece = matches!(message, Message::SnapPiece { .. });
                if piece {
                    current.pieces = current.pieces.saturating_sub(1);
                }
                let input = zk_replication::Input::Receive { from, message };
                self.step(to, |member, engine, host, now| {
                    member.zab_input(engine, host, now, input)
                })?;
                if piece {
                    // The runtime's `Event::Room`: the sender may go on.
                    self.after_step(from);
                }
            }
            Event::Election {
                from,
                to,
                notification,
            } => {
                let now = self.net.now_ms;
                let Some(live) = self.nodes.get_mut(&to).and_then(|n| n.live.as_mut()) else {
                    return Ok(());
                };
                let out = live
                    .election
                    .handle(now, EInput::Receive { from, notification });
                live.election_out.extend(out);
                self.step(to, |_, _, _, _| Ok(()))?;
            }
            Event::ElectionLost { to, peer } => {
                let now = self.net.now_ms;
                let back = self.nodes.get(&peer).is_some_and(|n| n.live.is_some());
                let Some(live) = self.nodes.get_mut(&to).and_then(|n| n.live.as_mut()) else {
                    return Ok(());
                };
                if back {
                    return Ok(());
                }
                let out = live.election.handle(now, EInput::PeerDisconnected(peer));
                live.election_out.extend(out);
                self.step(to, |_, _, _, _| Ok(()))?;
            }
            Event::Connect {
                learner,
                leader,
                life,
            } => {
                let alive = |w: &World, sid: Sid| {
                    w.nodes
                        .get(&sid)
                        .and_then(|n| n.live.as_ref())
                        .map(|l| l.member.zab().state())
                };
                if self.nodes.get(&learner).is_none_or(|n| n.life != life)
                    || alive(self, learner).is_none()
                {
                    return Ok(());
                }
                let leads = matches!(alive(self, leader), Some(State::Leading { .. }));
                let reachable = !self.net.cut.contains(&(learner, leader))
                    && !self.net.cut.contains(&(leader, learner));
                let input = if leads && reachable {
                    let id = self.net.next_stream;
                    self.net.next_stream += 1;
                    self.net.streams.insert(
                        key(learner, leader),
                        Stream {
                            id,
                            dead: false,
                            pieces: 0,
                        },
                    );
                    zk_replication::Input::Connected { peer: leader }
                } else {
                    zk_replication::Input::Disconnected { peer: leader }
                };
                self.step(learner, |member, engine, host, now| {
                    member.zab_input(engine, host, now, input)
                })?;
            }
            Event::Closed { to, peer, stream } => {
                let k = key(to, peer);
                match self.net.streams.get(&k) {
                    // A newer stream is not the one that closed.
                    Some(s) if s.id != stream => return Ok(()),
                    Some(_) => {
                        self.net.streams.remove(&k);
                    }
                    None => {}
                }
                let input = zk_replication::Input::Disconnected { peer };
                self.step(to, |member, engine, host, now| {
                    member.zab_input(engine, host, now, input)
                })?;
            }
            Event::ToServer {
                sid,
                life,
                conn,
                frame,
            } => self.deliver_to_server(sid, life, conn, frame)?,
            Event::ToClient {
                client,
                conn,
                bytes,
            } => self.deliver_to_client(client, conn, bytes),
            Event::ClientGo { client } => self.client_go(client),
            Event::SnapshotStep { sid, life } => {
                let Some(node) = self.nodes.get_mut(&sid) else {
                    return Ok(());
                };
                if node.life != life {
                    return Ok(());
                }
                node.snapshot_step_due = false;
                self.step(sid, |member, engine, host, now| {
                    member.snapshot_step(engine, host, now)
                })?;
            }
            Event::Fault => self.fault()?,
            Event::Heal => {
                if !self.healing {
                    self.heal()?;
                }
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), String> {
        let now = self.net.now_ms;
        let sids: Vec<Sid> = self.nodes.keys().copied().collect();
        for sid in sids {
            let Some(live) = self.nodes.get_mut(&sid).and_then(|n| n.live.as_mut()) else {
                continue;
            };
            if live.election.next_deadline_ms().is_some_and(|d| d <= now) {
                let out = live.election.handle(now, EInput::Tick);
                live.election_out.extend(out);
            }
            self.step(sid, |member, engine, host, now| {
                member.tick(engine, host, now)
            })?;
            if now % TICK_TIME_MS < TICK_MS {
                self.step(sid, |member, engine, host, now| {
                    member.input(engine, host, now, Input::Tick)
                })?;
            }
        }
        for client in 0..self.clients.len() {
            if self.clients.get(client).is_some_and(|c| c.overdue(now)) {
                self.drop_conn(client);
                let d = self.net.rng.range(10, 100);
                self.net.schedule(d, Event::ClientGo { client });
            }
        }
        self.net.schedule(TICK_MS, Event::Tick);
        Ok(())
    }

    fn deliver_to_server(
        &mut self,
        sid: Sid,
        life: u64,
        conn: ConnId,
        frame: Option<Frame>,
    ) -> Result<(), String> {
        let up = self
            .nodes
            .get(&sid)
            .is_some_and(|n| n.life == life && n.live.is_some());
        if !up {
            if frame.is_some() {
                if let Some((client, _)) = self.conns.remove(&conn) {
                    self.net.send_to_client(client, conn, None);
                }
            }
            return Ok(());
        }
        let addr = SocketAddr::from(([10, 0, 0, 1], 40_000 + (conn % 20_000) as u16));
        let input = match frame {
            Some(Frame::Connect(request)) => Input::Connect {
                conn,
                addr,
                request,
                identities: Vec::new(),
            },
            Some(Frame::Request { xid, op, body }) => Input::Request {
                conn,
                xid,
                op,
                body,
            },
            None => Input::Closed { conn },
        };
        self.step(sid, |member, engine, host, now| {
            member.input(engine, host, now, input)
        })
    }

    fn deliver_to_client(&mut self, client: usize, conn: ConnId, bytes: Option<Bytes>) {
        let now = self.net.now_ms;
        let Some(c) = self.clients.get_mut(client) else {
            return;
        };
        if c.conn.is_none_or(|k| k.id != conn) {
            return;
        }
        let Some(bytes) = bytes else {
            self.conns.remove(&conn);
            c.lost(now, &mut self.history);
            let d = self.net.rng.range(20, 200);
            self.net.schedule(d, Event::ClientGo { client });
            return;
        };
        match c.on_frame(&bytes, now, &mut self.history) {
            Reaction::None => {}
            Reaction::Next => {
                let d = self.net.rng.range(1, 20);
                self.net.schedule(d, Event::ClientGo { client });
            }
            Reaction::Send(frame) => {
                let Some((_, sid)) = self.conns.get(&conn).copied() else {
                    return;
                };
                // The next operation follows, unless one is pending (a sync's read).
                let d = self.net.rng.range(1, 20);
                self.net.schedule(d, Event::ClientGo { client });
                let life = self.nodes.get(&sid).map_or(0, |n| n.life);
                self.net.send_to_server(sid, life, conn, Some(frame));
            }
            Reaction::Expired => {
                self.drop_conn(client);
                let d = self.net.rng.range(1, 20);
                self.net.schedule(d, Event::ClientGo { client });
            }
        }
    }

    /// The client gives up its connection: what it waited for is unknown.
    fn drop_conn(&mut self, client: usize) {
        let now = self.net.now_ms;
        let Some(c) = self.clients.get_mut(client) else {
            return;
        };
        let Some(conn) = c.conn else {
            return;
        };
        c.lost(now, &mut self.history);
        if let Some((_, sid)) = self.conns.remove(&conn.id) {
            let life = self.nodes.get(&sid).map_or(0, |n| n.life);
            self.net.send_to_server(sid, life, conn.id, None);
        }
    }

    fn client_go(&mut self, client: usize) {
        let now = self.net.now_ms;
        let Some(c) = self.clients.get(client) else {
            return;
        };
        if c.busy() {
            return;
        }
        let Some(conn) = c.conn else {
            let sid = 1 + self.net.rng.below(self.options.members);
            let id = self.next_conn;
            self.next_conn += 1;
            let life = self.nodes.get(&sid).map_or(0, |n| n.life);
            self.conns.insert(id, (client, sid));
            let Some(c) = self.clients.get_mut(client) else {
                return;
            };
            c.conn = Some(Conn {
                id,
                sid,
                ready: false,
                since_ms: now,
            });
            let frame = c.handshake();
            self.net.send_to_server(sid, life, id, Some(frame));
            return;
        };
        if !conn.ready {
            return;
        }
        let setting_up = !self.clients.first().is_some_and(Client::set_up);
        if (setting_up && client != 0) || (self.healing && !setting_up) {
            if !self.healing {
                self.net.schedule(50, Event::ClientGo { client });
            }
            return;
        }
        if !setting_up && self.net.rng.chance(15) {
            // Now and then a client walks away from its session: it must expire, and its
            // ephemeral node go with it.
            self.drop_conn(client);
            if let Some(c) = self.clients.get_mut(client) {
                c.abandon();
            }
            let d = self.net.rng.range(1, 50);
            self.net.schedule(d, Event::ClientGo { client });
            return;
        }
        let Some(c) = self.clients.get_mut(client) else {
            return;
        };
        let frame = c.next(&mut self.net.rng, &mut self.next_value, now);
        let life = self.nodes.get(&conn.sid).map_or(0, |n| n.life);
        self.net
            .send_to_server(conn.sid, life, conn.id, Some(frame));
    }

    fn record_fault(&mut self, kind: &'static str, line: String) {
        *self.stats.faults.entry(kind).or_default() += 1;
        let line = format!("{:>8} ms {line}", self.net.now_ms);
        self.net.note(line.clone());
        self.schedule.push(line);
    }

    /// Injects one fault, healed after a while.
    fn fault(&mut self) -> Result<(), String> {
        if self.healing {
            return Ok(());
        }
        let sids: Vec<Sid> = self.nodes.keys().copied().collect();
        let pick = |rng: &mut Rng| {
            let i = rng.below(sids.len() as u64) as usize;
            sids.get(i).copied().unwrap_or(1)
        };
        let leader = self.current_leader;
        match self.net.rng.below(100) {
            0..20 => {
                let sid = pick(&mut self.net.rng);
                self.crash(sid);
                self.down.insert(sid);
                self.record_fault("crash", format!("crash member {sid}"));
            }
            20..40 => {
                let sid = leader.unwrap_or_else(|| pick(&mut self.net.rng));
                self.crash(sid);
                self.down.insert(sid);
                self.record_fault("crash-leader", format!("crash the leader, member {sid}"));
            }
            40..48 => {
                for sid in &sids {
                    self.crash(*sid);
                    self.down.insert(*sid);
                }
                self.record_fault("crash-all", "crash every member".into());
            }
            48..70 => {
                let sid = if self.net.rng.chance(500) {
                    leader.unwrap_or_else(|| pick(&mut self.net.rng))
                } else {
                    pick(&mut self.net.rng)
                };
                for other in &sids {
                    if *other != sid {
                        self.net.cut.insert((sid, *other));
                        self.net.cut.insert((*other, sid));
                    }
                }
                self.record_fault("partition", format!("isolate member {sid}"));
            }
            70..85 => {
                let from = pick(&mut self.net.rng);
                let mut to = pick(&mut self.net.rng);
                if to == from {
                    to = if from == self.options.members {
                        1
                    } else {
                        from + 1
                    };
                }
                self.net.cut.insert((from, to));
                self.record_fault("one-way", format!("cut {from} -> {to}"));
            }
            _ => {
                let sid = leader.unwrap_or_else(|| pick(&mut self.net.rng));
                if let Some(node) = self.nodes.get_mut(&sid) {
                    node.disk.fsync_ms = (50, 400);
                }
                self.record_fault("slow-disk", format!("slow fsync on member {sid}"));
            }
        }
        self.faulted = true;
        let d = self.net.rng.range(300, 3_000);
        self.net.schedule(d, Event::Heal);
        Ok(())
    }

    /// Ends the fault: links mend, disks speed up, crashed members restart.
    fn heal(&mut self) -> Result<(), String> {
        if self.faulted {
            self.net.note("heal".into());
        }
        self.faulted = false;
        self.net.cut.clear();
        for node in self.nodes.values_mut() {
            node.disk.fsync_ms = (1, 10);
        }
        for sid in std::mem::take(&mut self.down) {
            self.boot(sid)?;
        }
        if !self.healing && self.options.faults {
            let d = self.net.rng.range(500, 3_000);
            self.net.schedule(d, Event::Fault);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::history::{Kind, Outcome};
    use super::*;

    #[test]
    fn a_run_without_faults_serves_and_converges() {
        let mut options = Options::new(7);
        options.faults = false;
        options.duration_ms = 5_000;
        let report = run(&options).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.history.len() > 100, "{} ops", report.history.len());
        let ok = report
            .history
            .iter()
            .filter(|op| !matches!(op.outcome, Outcome::Unknown))
            .count();
        assert!(
            ok * 10 > report.history.len() * 9,
            "{ok} of {}",
            report.history.len()
        );
        assert_eq!(report.finals.len(), 3);
        assert!(report.finals.windows(2).all(|w| w[0].digest == w[1].digest));
        assert!(
            report
                .history
                .iter()
                .any(|op| matches!(op.kind, Kind::Cas { .. }))
        );
    }

    #[test]
    fn a_seed_replays_exactly() {
        for seed in 1..=4 {
            let mut options = Options::new(seed);
            options.duration_ms = 6_000;
            let a = run(&options).unwrap_or_else(|e| panic!("{e}"));
            let b = run(&options).unwrap_or_else(|e| panic!("{e}"));
            assert!(!a.schedule.is_empty(), "seed {seed} injected no fault");
            assert_eq!(a.history, b.history, "seed {seed}");
            assert_eq!(a.schedule, b.schedule, "seed {seed}");
            assert_eq!(a.finals, b.finals, "seed {seed}");
        }
    }
}
