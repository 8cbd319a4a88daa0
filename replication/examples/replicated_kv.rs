//! A replicated key-value store on Zab's pure core: three members in one process, their
//! messages carried by hand, their logs in memory (`MemStorage`). The leader commits
//! writes once a quorum has logged them; a follower that was down catches up by DIFF; the
//! leader fails and the member with the most recent history takes over in a new epoch; the
//! old leader rejoins. Every member ends with the same state.
//!
//! ```sh
//! cargo run -p zk-replication --example replicated_kv
//! ```
//!
//! A real deployment carries the outputs over `transport::Quorum` (gRPC), chooses leaders
//! with `zk-election`, and keeps the log in `storage::FileStorage` (ZooKeeper's files);
//! `runtime::Member` does all of that. The core is the same.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::error::Error;

use bytes::Bytes;
use zk_jute::Zxid;
use zk_replication::storage::{MemStorage, Storage, read_log};
use zk_replication::{Config, Entry, Input, Message, Output, Sid, State, Zab};

/// What one member keeps on disk: the log and epochs, and the state its log starts from
/// (the last snapshot installed; empty at first).
#[derive(Default)]
struct Disk {
    store: MemStorage,
    base: BTreeMap<String, String>,
}

/// A running member: the core, and the state machine it applies txns to.
struct Member {
    zab: Zab,
    kv: BTreeMap<String, String>,
    applied: Zxid,
    snapshot: Option<Vec<u8>>,
}

/// Three members, the inputs in flight between them, and who is up.
struct Ensemble {
    config: Config,
    disks: BTreeMap<Sid, Disk>,
    members: BTreeMap<Sid, Member>,
    inbox: VecDeque<(Sid, Input)>,
    syncs: BTreeMap<&'static str, usize>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let config = Config::majority([1, 2, 3], []);
    let mut ensemble = Ensemble {
        config: config.clone(),
        disks: (1..=3).map(|sid| (sid, Disk::default())).collect(),
        members: BTreeMap::new(),
        inbox: VecDeque::new(),
        syncs: BTreeMap::new(),
    };
    for sid in 1..=3 {
        ensemble.start(sid)?;
    }

    // The election chose member 1 in round 1 (zk-election decides this in an ensemble).
    ensemble.elect(1, 1);
    ensemble.run()?;
    println!(
        "member 1 leads epoch {}",
        ensemble.members[&1].zab.current_epoch()
    );
    ensemble.write(1, "color", "red")?;
    ensemble.write(1, "size", "10")?;

    println!("member 3 goes down");
    ensemble.crash(3);
    ensemble.write(1, "color", "blue")?; // 2 of 3 log it: committed
    ensemble.write(1, "shape", "circle")?;

    println!("member 3 comes back and follows member 1");
    ensemble.start(3)?;
    ensemble.follow(3, 1, 1);
    ensemble.run()?;
    ensemble.check_same_state(&[1, 2, 3])?;

    println!("member 1, the leader, goes down");
    ensemble.crash(1);
    for sid in [2, 3] {
        ensemble.push(sid, Input::Disconnected { peer: 1 });
    }
    ensemble.run()?;
    // The election prefers the greatest (current epoch, last zxid, sid), what `peer_data`
    // says each member would vote with.
    let next = [2, 3]
        .into_iter()
        .max_by_key(|sid| {
            let data = ensemble.members[sid].zab.peer_data();
            (data.current_epoch, data.last_zxid, *sid)
        })
        .ok_or("no member")?;
    ensemble.elect(next, 2);
    ensemble.run()?;
    println!(
        "member {next} leads epoch {}",
        ensemble.members[&next].zab.current_epoch()
    );
    ensemble.write(next, "size", "12")?;

    println!("member 1 comes back and follows member {next}");
    ensemble.start(1)?;
    ensemble.follow(1, next, 2);
    ensemble.run()?;
    ensemble.check_same_state(&[1, 2, 3])?;

    let state = &ensemble.members[&1].kv;
    println!("every member applied {state:?}");
    println!("syncs sent by leaders: {:?}", ensemble.syncs);
    assert_eq!(state["color"], "blue");
    assert_eq!(state["size"], "12");
    assert!(ensemble.syncs.contains_key("DIFF"));
    Ok(())
}

impl Ensemble {
    /// Starts (or restarts) `sid` from what its disk holds.
    fn start(&mut self, sid: Sid) -> Result<(), Box<dyn Error>> {
        let disk = self.disks.get_mut(&sid).ok_or("no such member")?;
        disk.store.crash(0); // what was not synced is lost
        let persisted = disk.store.persisted()?;
        // As ZooKeeper's start-up: the state is the snapshot plus the whole log (a sync
        // truncates what the leader does not have).
        let mut kv = disk.base.clone();
        for entry in disk.store.entries() {
            apply(&mut kv, &entry.data)?;
        }
        let applied = persisted.history.last();
        let zab = Zab::new(self.config.clone(), sid, persisted)?;
        self.members.insert(
            sid,
            Member {
                zab,
                kv,
                applied,
                snapshot: None,
            },
        );
        Ok(())
    }

    fn crash(&mut self, sid: Sid) {
        self.members.remove(&sid);
        self.inbox.retain(|(to, _)| *to != sid);
        for peer in self.members.keys().copied().collect::<Vec<_>>() {
            self.push(peer, Input::Disconnected { peer: sid });
        }
    }

    /// The election's decision: `leader` leads round `round`, every other live member
    /// follows it.
    fn elect(&mut self, leader: Sid, round: i64) {
        self.push(
            leader,
            Input::Lead {
                election_epoch: round,
            },
        );
        for sid in self.members.keys().copied().collect::<Vec<_>>() {
            if sid != leader {
                self.follow(sid, leader, round);
            }
        }
    }

    fn follow(&mut self, sid: Sid, leader: Sid, round: i64) {
        self.push(
            sid,
            Input::Follow {
                leader,
                election_epoch: round,
            },
        );
    }

    /// A client write at the leader: proposed with the next zxid, committed once a
    /// quorum has it on disk, applied everywhere.
    fn write(&mut self, leader: Sid, key: &str, value: &str) -> Result<(), Box<dyn Error>> {
        let zab = &self.members.get(&leader).ok_or("the leader is down")?.zab;
        let zxid = zab.next_zxid().ok_or("not an established leader")?;
        let data = Bytes::from(format!("{key}={value}"));
        self.push(leader, Input::Propose(Entry::new(zxid, data)));
        self.run()?;
        let applied: Vec<Sid> = self
            .members
            .iter()
            .filter(|(_, m)| m.applied >= zxid)
            .map(|(sid, _)| *sid)
            .collect();
        println!("  {key}={value} committed as {zxid}, applied by {applied:?}");
        Ok(())
    }

    fn push(&mut self, sid: Sid, input: Input) {
        self.inbox.push_back((sid, input));
    }

    /// Hands inputs to their members and carries out the outputs, until all is quiet.
    fn run(&mut self) -> Result<(), Box<dyn Error>> {
        while let Some((sid, input)) = self.inbox.pop_front() {
            let Some(member) = self.members.get_mut(&sid) else {
                continue; // down: the input is lost
            };
            let outputs = member.zab.handle(0, input);
            for output in outputs {
                self.carry(sid, output)?;
            }
        }
        Ok(())
    }

    /// Carries out one output of `sid`, in order, as a runtime would.
    fn carry(&mut self, sid: Sid, output: Output) -> Result<(), Box<dyn Error>> {
        let up: BTreeSet<Sid> = self.members.keys().copied().collect();
        let (Some(member), Some(disk)) = (self.members.get_mut(&sid), self.disks.get_mut(&sid))
        else {
            return Ok(());
        };
        match output {
            Output::Send { to, message } => {
                let kind = match &message {
                    Message::Diff { .. } => Some("DIFF"),
                    Message::Trunc { .. } => Some("TRUNC"),
                    Message::Snap { .. } => Some("SNAP"),
                    _ => None,
                };
                if let Some(kind) = kind {
                    *self.syncs.entry(kind).or_default() += 1;
                }
                if up.contains(&to) {
                    self.inbox
                        .push_back((to, Input::Receive { from: sid, message }));
                }
            }
            Output::Connect { peer } => {
                let answer = if up.contains(&peer) {
                    Input::Connected { peer }
                } else {
                    Input::Disconnected { peer }
                };
                self.inbox.push_back((sid, answer));
            }
            Output::Disconnect { peer } => {
                self.inbox
                    .push_back((peer, Input::Disconnected { peer: sid }));
            }
            Output::SetAcceptedEpoch(epoch) => disk.store.set_accepted_epoch(epoch)?,
            Output::SetCurrentEpoch(epoch) => disk.store.set_current_epoch(epoch)?,
            Output::Append(entry) => {
                disk.store.append(&entry)?;
                let zxid = disk.store.sync()?; // a real store syncs once per batch
                self.inbox.push_back((sid, Input::Durable { zxid }));
            }
            Output::Truncate { zxid } => {
                disk.store.truncate(zxid)?;
                member.applied = member.applied.min(zxid);
                member.kv = disk.base.clone();
                for entry in disk
                    .store
                    .entries()
                    .iter()
                    .filter(|e| e.zxid <= member.applied)
                {
                    apply(&mut member.kv, &entry.data)?;
                }
            }
            Output::Deliver(entry) => {
                apply(&mut member.kv, &entry.data)?;
                member.applied = entry.zxid;
            }
            Output::ReadLog {
                learner,
                stream,
                after,
                through,
                batch,
            } => {
                let reads = read_log(&mut disk.store, learner, stream, (after, through), batch)?;
                self.inbox
                    .extend(reads.into_iter().map(|input| (sid, input)));
            }
            Output::SendSnapshot {
                learner,
                stream,
                zxid,
            } => {
                assert_eq!(zxid, member.applied, "a snapshot of the state as applied");
                let data = Bytes::from(encode(&member.kv));
                let piece = Input::SnapshotPiece {
                    learner,
                    stream,
                    data,
                    last: true,
                };
                self.inbox.push_back((sid, piece));
            }
            Output::SnapshotBegin { .. } => member.snapshot = Some(Vec::new()),
            Output::SnapshotPiece(data) => {
                member
                    .snapshot
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&data);
            }
            Output::SnapshotEnd { zxid } => {
                let bytes = member.snapshot.take().unwrap_or_default();
                member.kv = BTreeMap::new();
                for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    apply(&mut member.kv, line)?;
                }
                member.applied = zxid;
                disk.base = member.kv.clone();
                disk.store.reset(zxid)?;
            }
            Output::State(state) => {
                let role = match state {
                    State::Looking => "looking".to_owned(),
                    State::Leading { epoch: None, .. } => "leading, finding its epoch".to_owned(),
                    State::Leading {
                        epoch: Some(epoch),
                        established: false,
                    } => {
                        format!("leading epoch {epoch}, syncing a quorum")
                    }
                    State::Leading {
                        epoch: Some(epoch),
                        established: true,
                    } => {
                        format!("leading epoch {epoch}, serving")
                    }
                    State::Learning {
                        leader,
                        serving: true,
                        ..
                    } => format!("following {leader}, serving"),
                    State::Learning { leader, .. } => format!("syncing with {leader}"),
                };
                println!("    member {sid}: {role}");
            }
            // Client sessions and `sync` requests: a server's business, not this store's.
            Output::Request { .. }
            | Output::Touched { .. }
            | Output::Revalidate { .. }
            | Output::Revalidated { .. }
            | Output::Synced { .. }
            | Output::Activated { .. } => {}
        }
        Ok(())
    }

    fn check_same_state(&self, sids: &[Sid]) -> Result<(), Box<dyn Error>> {
        let states: Vec<_> = sids
            .iter()
            .map(|sid| (&self.members[sid].kv, self.members[sid].applied))
            .collect();
        if states.windows(2).any(|w| w[0] != w[1]) {
            return Err(format!("members disagree: {states:?}").into());
        }
        println!(
            "  members {sids:?} agree, all applied through {}",
            states[0].1
        );
        Ok(())
    }
}

/// The state machine: a txn is `key=value`.
fn apply(kv: &mut BTreeMap<String, String>, txn: &[u8]) -> Result<(), Box<dyn Error>> {
    let txn = std::str::from_utf8(txn)?;
    let (key, value) = txn.split_once('=').ok_or("not key=value")?;
    kv.insert(key.to_owned(), value.to_owned());
    Ok(())
}

/// A snapshot: every pair as `key=value`, one a line.
fn encode(kv: &BTreeMap<String, String>) -> Vec<u8> {
    kv.iter()
        .flat_map(|(k, v)| format!("{k}={v}\n").into_bytes())
        .collect()
}
