//! A member of an ensemble: the election (`zk-election`'s gRPC node on the election
//! port), Zab (`zk-replication`'s core, its streams on the quorum port) and the log it
//! owns (ZooKeeper's files, with `acceptedEpoch` and `currentEpoch`).
//!
//! The serving task drives it ([`crate::runtime::Runtime`]) through a
//! [`Member`](crate::member::Member), which holds Zab and what it makes of the engine;
//! this module is that member's host: the sockets' tasks, the log, the snapshot a learner
//! receives.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zk_datatree::{DataTree, TreeOptions};
use zk_election::PeerData;
use zk_election::transport::{Node, NodeConfig};
use zk_jute::{Reader, Record, Zxid, txn::TxnHeader};
use zk_persistence::{FileTxnLog, LogEntry, LogOptions, Queued, Syncer};
use zk_replication::storage::{FileStorage, Storage, StorageError};
use zk_replication::transport::{Quorum, QuorumConfig};
use zk_replication::{Entry, Sid, Zab};

use crate::config::Config;
use crate::member::{Host, Member, Received, SyncStart};
use crate::runtime::Msg;

/// Why the member could not start.
#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    /// The configuration does not describe this member.
    #[error("{0}")]
    Config(String),
    /// The log or the epoch files could not be opened.
    #[error("opening the replicated log: {0}")]
    Storage(#[from] StorageError),
    /// The log's sync thread could not be started.
    #[error("starting the txn log's sync thread: {0}")]
    Thread(std::io::Error),
    /// The election port could not be served.
    #[error("election port: {0}")]
    Election(#[from] zk_election::TransportError),
    /// The quorum port could not be bound.
    #[error("quorum port {addr}: {source}")]
    Quorum {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One member's replication I/O: its log, its peers, its election.
pub(crate) struct Ensemble {
    pub(crate) storage: FileStorage,
    election: Option<Node>,
    /// Asks the election for a new round (with the history to vote with), or to count
    /// a new membership, in order.
    look: mpsc::UnboundedSender<ElectionRequest>,
    quorum: Option<Quorum>,
    quorum_addrs: BTreeMap<Sid, String>,
    /// The snapshot a learner is receiving.
    incoming: Option<crate::receive::Incoming>,
    /// Keeps a snapshot being taken from being published once a TRUNC, a leader's
    /// snapshot or a replaced tree made it stale.
    pub(crate) snapshot_fence: crate::snapshot::Fence,
    tasks: Vec<JoinHandle<()>>,
    snap_dir: PathBuf,
    log_dir: PathBuf,
    log_options: LogOptions,
    tree_options: TreeOptions,
    /// `autopurge.snapRetainCount`.
    snap_retain_count: usize,
    /// The autopurge running on a thread of its own, if any: one at a time, and waited
    /// for before a TRUNC or a leader's snapshot changes the same files.
    purging: Option<std::thread::JoinHandle<()>>,
    /// Bumped whenever the log is truncated or replaced: an fsync started before reports
    /// nothing durable ([`Msg::LogSynced`]).
    pub(crate) sync_generation: u64,
    /// The log's fsyncs, each batch ending in a [`Msg::LogSynced`] with the sync
    /// generation and the last zxid it made durable.
    syncer: Syncer<(u64, Zxid)>,
    /// Where clients are served now, and where to ask for it to move.
    client_addr: SocketAddr,
    pub(crate) rebind: Option<mpsc::UnboundedSender<SocketAddr>>,
}

/// What the serving task asks of the election, which runs on tasks of its own.
enum ElectionRequest {
    Look(PeerData),
    Reconfigure(zk_election::Config),
}

/// Resolves `host:port` to its first address.
fn resolve(addr: &str) -> Result<SocketAddr, EnsembleError> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| EnsembleError::Config(format!("cannot resolve {addr}")))
}

impl Ensemble {
    /// Starts the election and the quorum port of member `config.server_id`, whose log
    /// (with its newest snapshot at `snapshot_zxid`) the tree has applied. Events go to
    /// the serving task as [`Msg`]s. Returns the I/O and the member it hosts.
    pub(crate) async fn start(
        config: &Config,
        snapshot_zxid: i64,
        logged: Option<zk_replication::Membership>,
        tx: mpsc::UnboundedSender<Msg>,
    ) -> Result<(Ensemble, Member), EnsembleError> {
        let sid = config.server_id;
        let election = config
            .election
            .clone()
            .ok_or_else(|| EnsembleError::Config("no server.N lines".into()))?;
        let me = config
            .servers
            .get(&sid)
            .ok_or_else(|| EnsembleError::Config(format!("myid {sid} has no server.{sid} line")))?;
        let mut zab_config = zk_replication::Config::from_election(&election);
        zab_config.tick_ms = config.tick_time.as_millis().max(2) as u64;
        zab_config.init_limit = u64::from(config.init_limit.max(1));
        zab_config.sync_limit = u64::from(config.sync_limit.max(1));
        zab_config.max_concurrent_snap_syncs = config.max_concurrent_snap_syncs.max(1);
        zab_config.max_concurrent_diff_syncs = config.max_concurrent_diff_syncs.max(1);
        zab_config.reconfig_enabled = config.reconfig_enabled;
        zab_config.membership = zk_replication::Membership {
            version: config.config_version,
            text: config.membership_lines(),
        };
        let log_options = LogOptions {
            pre_alloc_size: config.pre_alloc_size,
            force_sync: config.force_sync,
            fsync_warning: config.fsync_warning,
        };
        let storage = FileStorage::open(&config.data_log_dir, Zxid(snapshot_zxid), log_options)?;
        let synced = tx.clone();
        let syncer = Syncer::start(move |(generation, zxid), result| {
            let result = result.map(|()| zxid).map_err(|e| e.to_string());
            let _ = synced.send(Msg::LogSynced { generation, result });
        })
        .map_err(EnsembleError::Thread)?;
        let persisted = storage.persisted()?;
        tracing::info!(
            sid,
            accepted_epoch = persisted.accepted_epoch,
            current_epoch = persisted.current_epoch,
            last_zxid = %persisted.history.last(),
            "replicated log opened"
        );
        let mut zab = Zab::new(zab_config, sid, persisted)
            .map_err(|e| EnsembleError::Config(e.to_string()))?;
        if let Some(membership) = logged {
            tracing::info!(
                version = format!("{:x}", membership.version),
                "the log holds a membership not known active: pending"
            );
            zab.logged_membership(membership)
                .map_err(|e| EnsembleError::Config(e.to_string()))?;
        }
        let mut node = NodeConfig::new(sid, election, zab.peer_data());
        let mut quorum_listen = resolve(&me.quorum_addr())?;
        if config.quorum_listen_on_all_ips {
            let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
            node.listen = Some(any(me.election_port));
            quorum_listen = any(me.quorum_port);
        }
        let mut quorum_config = QuorumConfig::new(sid, quorum_listen);
        if config.ssl_quorum {
            let tls = config
                .quorum_tls
                .peer_tls(&config.servers)
                .map_err(|e| EnsembleError::Config(format!("sslQuorum: {e}")))?;
            node.tls = Some(tls.clone());
            quorum_config.tls = Some(tls);
            tracing::info!(sid, "peers speak mutual TLS (sslQuorum)");
        }
        let node = Node::start(node).await?;
        let (quorum, mut events) =
            Quorum::start(quorum_config)
                .await
                .map_err(|source| EnsembleError::Quorum {
                    addr: quorum_listen,
                    source,
                })?;
        tracing::info!(
            sid,
            election = %node.local_addr(),
            quorum = %quorum.local_addr(),
            "looking for a leader"
        );
        let mut tasks = Vec::new();
        // The quorum streams' events.
        let peer_tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if peer_tx.send(Msg::Peer(event)).is_err() {
                    return;
                }
            }
        }));
        // The election's decisions.
        let mut status = node.watch();
        let election_tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let s = *status.borrow_and_update();
                if election_tx.send(Msg::Election(s)).is_err() {
                    return;
                }
                if status.changed().await.is_err() {
                    return;
                }
            }
        }));
        // New rounds, in the order asked.
        let (look, mut looks) = mpsc::unbounded_channel::<ElectionRequest>();
        let looker = node.looker();
        tasks.push(tokio::spawn(async move {
            while let Some(request) = looks.recv().await {
                match request {
                    ElectionRequest::Look(data) => looker.look(data).await,
                    ElectionRequest::Reconfigure(config) => looker.reconfigure(config).await,
                }
            }
        }));
        // Zab's timers: pings every half tick, as ZooKeeper's leader sends them.
        let tick = (config.tick_time / 4).clamp(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(250),
        );
        let ticks_tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if ticks_tx.send(Msg::ZabTick).is_err() {
                    return;
                }
            }
        }));
        let quorum_addrs = config
            .servers
            .iter()
            .map(|(sid, line)| (*sid, line.quorum_addr()))
            .collect();
        let member = Member::new(zab, me.role == zk_election::Role::Observer);
        let ensemble = Ensemble {
            storage,
            election: Some(node),
            look,
            quorum: Some(quorum),
            quorum_addrs,
            incoming: None,
            snapshot_fence: crate::snapshot::Fence::default(),
            tasks,
            snap_dir: config.data_dir.join(zk_persistence::VERSION_DIR),
            log_dir: config.data_log_dir.join(zk_persistence::VERSION_DIR),
            log_options,
            tree_options: TreeOptions {
                extended_types: config.extended_types,
            },
            snap_retain_count: config.snap_retain_count,
            purging: None,
            sync_generation: 0,
            syncer,
            client_addr: config.client_addr,
            rebind: None,
        };
        Ok((ensemble, member))
    }
}

impl Host for Ensemble {
    fn storage(&mut self) -> &mut dyn Storage {
        &mut self.storage
    }

    /// Writes what was appended, and hands its fsync to the sync thread while the serving
    /// task goes on (ZooKeeper's SyncRequestProcessor is a thread of its own too). What is
    /// written while an fsync runs is synced right after it, without waiting for this
    /// task: the thread's batches follow one another as fast as the disk allows.
    fn start_sync(&mut self) -> Result<SyncStart, String> {
        let (zxid, pending) = self.storage.write().map_err(|e| e.to_string())?;
        Ok(
            match self.syncer.sync(pending, (self.sync_generation, zxid)) {
                Queued::Idle => SyncStart::Done(zxid),
                Queued::Queued => SyncStart::Started,
            },
        )
    }

    fn queues_syncs(&self) -> bool {
        true
    }

    fn send(&mut self, to: Sid, message: zk_replication::Message) -> bool {
        self.quorum
            .as_ref()
            .is_some_and(|q| q.send(to, message).is_ok())
    }

    fn snapshot_room(&self, learner: Sid) -> bool {
        self.quorum
            .as_ref()
            .is_none_or(|q| q.snapshot_room(learner))
    }

    fn connect(&mut self, peer: Sid) -> bool {
        match (self.quorum.as_mut(), self.quorum_addrs.get(&peer)) {
            (Some(q), Some(addr)) => {
                q.connect(peer, addr.clone());
                true
            }
            _ => false,
        }
    }

    fn disconnect(&mut self, peer: Sid) {
        if let Some(q) = &self.quorum {
            q.disconnect(peer);
        }
    }

    fn look(&mut self, data: PeerData) {
        let _ = self.look.send(ElectionRequest::Look(data));
    }

    fn snapshot_begin(&mut self, zxid: Zxid) {
        // A snapshot of the tree being taken will not be published: the tree it holds is
        // about to go (and may hold txns the leader's snapshot does not).
        drop(self.snapshot_fence.advance());
        // One received before is dropped unfinished, with its file.
        self.incoming = Some(crate::receive::Incoming::start(
            &self.snap_dir,
            zxid.0,
            self.tree_options,
        ));
    }

    fn snapshot_piece(&mut self, data: Bytes) {
        if let Some(incoming) = &mut self.incoming {
            incoming.piece(data);
        }
    }

    fn snapshot_abort(&mut self) {
        self.incoming = None;
    }

    /// The pieces were parsed and written as they came: this waits for the last one's
    /// parse and the file's sync.
    fn snapshot_end(&mut self, zxid: Zxid) -> Result<Received, String> {
        let incoming = self
            .incoming
            .take()
            .ok_or_else(|| format!("the snapshot at {zxid} ended before it began"))?;
        // Before the file is installed: a purge must not take it for an old one.
        self.wait_for_purge();
        let received = incoming.end()?;
        // Snapshots past the leader's are of a history it does not have: they go, as a
        // TRUNC removes them, or a restart would take the newest of them.
        self.remove_snapshots_after(zxid, true)?;
        self.sync_generation += 1;
        self.storage.reset(zxid).map_err(|e| e.to_string())?;
        Ok(received)
    }

    /// ZooKeeper's TRUNC. Snapshots taken past `zxid` go first (durably: they hold what
    /// is being dropped). With `rebuild`, the tree is rebuilt from the files as of that
    /// zxid, as ZooKeeper reloads its database.
    fn truncate(&mut self, zxid: Zxid, rebuild: Option<Zxid>) -> Result<Option<Received>, String> {
        self.wait_for_purge();
        // Without a rebuild the tree holds nothing past `zxid`: a snapshot of it being
        // taken is not stale.
        self.remove_snapshots_after(zxid, rebuild.is_some())?;
        self.sync_generation += 1;
        self.storage.truncate(zxid).map_err(|e| e.to_string())?;
        let Some(target) = rebuild else {
            return Ok(None);
        };
        let log = FileTxnLog::open(&self.log_dir, self.log_options).map_err(|e| e.to_string())?;
        let options = self.tree_options;
        let restored = zk_persistence::restore(
            &self.snap_dir,
            &log,
            |r, sessions| {
                let mut tree = DataTree::deserialize(r, options, |_| {})?;
                tree.set_sessions(sessions.clone());
                Ok::<_, zk_datatree::SnapshotError>(tree)
            },
            || DataTree::new(options),
            |tree, entry, fuzzy| {
                // Past the target: logged, not applied (Zab delivers it if committed).
                if entry.zxid() > target.0 {
                    return Ok(());
                }
                crate::replay(tree, entry, fuzzy)
            },
        )
        .map_err(|e| e.to_string())?;
        let digest = restored.snapshot.as_ref().and_then(|s| s.digest);
        let mut tree = restored.tree;
        let last = restored.last_zxid.min(target.0);
        tree.set_last_zxid(last);
        if last != target.0 {
            return Err(format!(
                "after truncating to {zxid} the files hold {last:#x}, not {target}"
            ));
        }
        Ok(Some(Received { tree, digest }))
    }

    fn activate(&mut self, config: &Config) {
        // Members that left keep their addresses: one may still lead this member's next
        // election (it missed their leaving) until NEWLEADER brings the membership.
        self.quorum_addrs.extend(
            config
                .servers
                .iter()
                .map(|(sid, line)| (*sid, line.quorum_addr())),
        );
        if let Some(election) = config.election.clone() {
            let _ = self.look.send(ElectionRequest::Reconfigure(election));
        }
        // A new client address on this member's own line moves the client port.
        if config.client_addr != self.client_addr && config.client_port_enabled {
            if let Some(rebind) = &self.rebind {
                tracing::info!(from = %self.client_addr, to = %config.client_addr, "the reconfiguration moves the client port");
                let _ = rebind.send(config.client_addr);
                self.client_addr = config.client_addr;
            }
        }
        // As ZooKeeper's `setQuorumVerifier`: the membership goes to its own file, which
        // zoo.cfg names from now on.
        if let (true, Some(file)) = (config.reconfig_enabled, &config.config_file) {
            match crate::dynamic::write(config, file) {
                Ok(dynamic) => tracing::info!(file = %dynamic.display(), "wrote the membership"),
                Err(e) => {
                    tracing::error!(file = %file.display(), error = %e, "cannot write the membership")
                }
            }
        }
    }

    /// The snapshot being taken goes stale: its thread stops at its next chunk, is never
    /// published, and reports it has failed.
    fn replacing_tree(&mut self) {
        drop(self.snapshot_fence.advance());
    }

    fn oldest_kept_snapshot(&mut self) -> Result<Option<Zxid>, String> {
        zk_persistence::oldest_kept_snapshot(&self.snap_dir, self.snap_retain_count)
            .map(|zxid| zxid.map(Zxid))
            .map_err(|e| e.to_string())
    }

    /// On a thread of its own, as a standalone server's: the purge syncs the snapshots it
    /// keeps first, which the serving loop must not wait for. One still running from the
    /// last interval makes this one wait for the next.
    fn purge(&mut self, zxid: Zxid) -> Result<(), String> {
        if self.purging.as_ref().is_some_and(|p| !p.is_finished()) {
            tracing::info!(through = %zxid, "autopurge skipped: the last one is still running");
            return Ok(());
        }
        let (snap_dir, log_dir) = (self.snap_dir.clone(), self.log_dir.clone());
        let purging = std::thread::Builder::new()
            .name("purge".into())
            .spawn(
                move || match zk_persistence::purge_before(&snap_dir, &log_dir, zxid.0) {
                    Ok(files) => {
                        tracing::info!(files = files.len(), through = %zxid, "autopurge done")
                    }
                    Err(e) => tracing::warn!(error = %e, "autopurge failed"),
                },
            )
            .map_err(|e| format!("starting the purge's thread: {e}"))?;
        self.purging = Some(purging);
        Ok(())
    }
}

impl Ensemble {
    /// Waits for an autopurge still running: its deletions must not meet a TRUNC's or a
    /// leader's snapshot's (a member then is syncing, not serving).
    fn wait_for_purge(&mut self) {
        if let Some(purging) = self.purging.take() {
            if !purging.is_finished() {
                tracing::info!("waiting for the autopurge to finish");
            }
            let _ = purging.join();
        }
    }

    /// Removes the snapshots past `zxid` (durably: they hold what is being dropped),
    /// holding the fence; with `stale` it advances it, so that a snapshot being taken is
    /// not published after.
    fn remove_snapshots_after(&mut self, zxid: Zxid, stale: bool) -> Result<(), String> {
        let _fence = if stale {
            self.snapshot_fence.advance()
        } else {
            self.snapshot_fence.lock()
        };
        let snapshots =
            zk_persistence::snapshot_files(&self.snap_dir).map_err(|e| e.to_string())?;
        let mut removed = false;
        for (at, path) in snapshots {
            if at > zxid.0 {
                tracing::info!(file = %path.display(), "removing a snapshot past the leader's history");
                std::fs::remove_file(&path).map_err(|e| e.to_string())?;
                removed = true;
            }
        }
        if removed {
            std::fs::File::open(&self.snap_dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Closes the streams and the election's sockets.
    pub(crate) async fn shutdown(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let (quorum, election) = (self.quorum.take(), self.election.take());
        // The log's last writes are synced, and the sync thread joined once what it was
        // handed is synced, off this task's thread (which serves other tasks meanwhile)
        // while the streams and the election's sockets close. Nothing synced here was
        // acknowledged: ACKs follow their fsyncs.
        let closing = tokio::task::spawn_blocking(move || {
            if let Err(e) = self.storage.sync() {
                tracing::warn!(error = %e, "syncing the log at shutdown failed");
            }
            // An autopurge still running finishes: a clean stop leaves no half-purged
            // directory to the next start.
            self.wait_for_purge();
            drop(self);
        });
        if let Some(q) = quorum {
            q.shutdown().await;
        }
        if let Some(node) = election {
            node.shutdown().await;
        }
        let _ = closing.await;
    }
}

/// A log record as Zab carries it: the txn header, then the body (and digest).
pub(crate) fn entry_of(entry: &LogEntry) -> Entry {
    let mut out = BytesMut::with_capacity(entry.header.encoded_len() + entry.body.len());
    entry.header.encode(&mut out);
    out.extend_from_slice(&entry.body);
    Entry {
        zxid: Zxid(entry.header.zxid),
        data: out.freeze(),
    }
}

/// The log record in a Zab entry.
pub(crate) fn log_entry_of(entry: &Entry) -> Result<LogEntry, String> {
    let mut reader = Reader::new(entry.data.clone());
    let header = TxnHeader::decode(&mut reader).map_err(|e| e.to_string())?;
    if header.zxid != entry.zxid.0 {
        return Err(format!(
            "entry {} holds a txn of zxid {:#x}",
            entry.zxid, header.zxid
        ));
    }
    Ok(LogEntry {
        header,
        body: reader.rest().clone(),
    })
}
