//! A standalone ZooKeeper-compatible server: the thin composition of `zk-jute` (wire),
//! `zk-datatree` (state), `zk-watch` (watches) and `zk-persistence` (files).
//!
//! [`Server::start`] restores the data directory, listens for clients and runs the core
//! task that owns the tree; [`Server::shutdown`] stops it cleanly (clients see their
//! connections close, the log is synced). The `zk-server` binary wraps this with a
//! `zoo.cfg`.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = zk_server::Config { client_addr: "127.0.0.1:0".parse()?, ..Default::default() };
//! let server = zk_server::Server::start(config).await?;
//! println!("serving on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)
)]

mod admin;
mod config;
mod conn;
mod dynamic;
mod engine;
mod ensemble;
mod fourlw;
pub mod keystore;
mod member;
mod metrics;
pub mod properties;
mod receive;
mod runtime;
pub mod sasl;
#[cfg(any(test, feature = "simulation"))]
pub mod simulation;
mod snapshot;
mod status;
pub mod tls;
mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use zk_datatree::{DataTree, Transaction, TreeOptions};
use zk_jute::txn::TxnDigest;
use zk_jute::{Reader, Record};
use zk_persistence::{
    FileTxnLog, GroupCommit, GroupOptions, LogEntry, LogOptions, VERSION_DIR, ZxidDigest,
};

pub use config::{Config, ConfigError, jvm_system_properties};

// The README's examples, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use crate::engine::{Engine, Input, Now, Role};
use crate::metrics::Throttle;
use crate::runtime::{Msg, Runtime};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The ensemble's election or quorum port could not start.
    #[error("joining the ensemble: {0}")]
    Ensemble(#[from] ensemble::EnsembleError),
    /// The data directory could not be restored.
    #[error("restoring the data directory: {0}")]
    Restore(#[from] zk_persistence::PersistenceError),
    /// The secure client port's TLS settings cannot be served.
    #[error("secure client port: {0}")]
    Tls(#[from] tls::TlsError),
    /// The client port or the metrics port could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    secure_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    core: mpsc::UnboundedSender<Msg>,
    tasks: Vec<JoinHandle<()>>,
    core_task: JoinHandle<()>,
    failed: watch::Receiver<Option<String>>,
}

/// Replays one logged txn; one that does not decode stops the restore (ZooKeeper refuses
/// to start too): skipping it would serve a state no other member has. So does a tree
/// whose digest after the txn is not the one logged with it: the tree would not be the
/// one the log describes. Within a fuzzy snapshot's window (`fuzzy`, its recorded digest)
/// the logged digests cannot be compared; the tree at the window's end must have the
/// snapshot's digest.
fn replay(tree: &mut DataTree, entry: &LogEntry, fuzzy: Option<&ZxidDigest>) -> Result<(), String> {
    let mut body = Reader::new(entry.body.clone());
    let txn = Transaction::read(entry.header.r#type, &mut body).map_err(|e| e.to_string())?;
    tree.apply(&entry.header, &txn);
    if let Some(snapshot) = fuzzy {
        if entry.header.zxid == snapshot.zxid
            && snapshot.version == zk_datatree::DIGEST_VERSION
            && snapshot.digest != tree.digest() as i64
        {
            return Err(format!(
                "the tree's digest at the snapshot's digest zxid is {}, the snapshot holds {}",
                tree.digest() as i64,
                snapshot.digest
            ));
        }
        return Ok(());
    }
    if body.remaining() > 0 {
        let digest = TxnDigest::decode(&mut body).map_err(|e| format!("its digest: {e}"))?;
        if digest.version == zk_datatree::DIGEST_VERSION
            && digest.tree_digest != tree.digest() as i64
        {
            return Err(format!(
                "the tree's digest after it is {}, the log holds {}",
                tree.digest() as i64,
                digest.tree_digest
            ));
        }
    }
    Ok(())
}

impl Server {
    /// Restores state from the configured directories, binds the client port and starts
    /// serving.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let config = Arc::new(config);
        // TLS settings that cannot work stop the start before anything is restored.
        let tls = if config.secure_client_addr.is_some() || config.port_unification {
            Some(tokio_rustls::TlsAcceptor::from(config.tls.server_config()?))
        } else {
            None
        };
        let options = TreeOptions {
            extended_types: config.extended_types,
        };
        let snap_dir = config.data_dir.join(VERSION_DIR);
        let log_dir = config.data_log_dir.join(VERSION_DIR);
        std::fs::create_dir_all(&snap_dir)
            .map_err(|e| zk_persistence::PersistenceError::io(&snap_dir, e))?;
        let log_options = LogOptions {
            pre_alloc_size: config.pre_alloc_size,
            force_sync: config.force_sync,
            fsync_warning: config.fsync_warning,
        };
        match zk_persistence::remove_unfinished_snapshots(&snap_dir) {
            Ok(removed) => {
                for path in removed {
                    tracing::info!(file = %path.display(), "removed an unfinished snapshot");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot remove an unfinished snapshot"),
        }
        let log = FileTxnLog::open(&log_dir, log_options)?;
        let restored = zk_persistence::restore(
            &snap_dir,
            &log,
            |r, sessions| {
                let mut tree = DataTree::deserialize(r, options, |n| {
                    tracing::info!(nodes = n, "loading snapshot");
                })?;
                tree.set_sessions(sessions.clone());
                Ok::<_, zk_datatree::SnapshotError>(tree)
            },
            || DataTree::new(options),
            replay,
        )?;
        let mut tree = restored.tree;
        tree.set_last_zxid(restored.last_zxid);
        // A fuzzy snapshot whose window the log does not reach (a learner that stopped
        // right after its leader's snapshot): the txns still to come close it.
        let window = restored.snapshot.as_ref().and_then(|s| s.digest);
        let dead = tree.kill_dead_sessions();
        if !dead.is_empty() {
            tracing::info!(
                sessions = dead.len(),
                "deleted the ephemerals of sessions the session table does not hold"
            );
        }
        tracing::info!(
            zxid = format!("{:#x}", restored.last_zxid),
            nodes = tree.node_count(),
            sessions = tree.sessions().len(),
            "data directory restored"
        );
        let mut snapshot_zxid = restored.snapshot.as_ref().map_or(0, |s| s.zxid);
        if restored.snapshot.is_none() {
            snapshot_zxid = restored.last_zxid;
            // As ZooKeeper does on start: log entries never come without a snapshot before
            // them (ZooKeeper refuses such a directory), so a fresh directory gets
            // `snapshot.0`, and one holding only logs a snapshot of what they gave.
            let path = zk_persistence::write_snapshot(
                &snap_dir,
                restored.last_zxid,
                tree.sessions(),
                Some(crate::snapshot::tree_digest(&tree)),
                |w| tree.write_body(w),
            )?;
            tracing::info!(file = %path.display(), "wrote the first snapshot");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // A reconfiguration that moves this member's client address (ZooKeeper's
        // `cnxnFactory.reconfigure`).
        let (rebind_tx, rebind_rx) = mpsc::unbounded_channel::<SocketAddr>();
        let (log, ensemble) = if config.is_distributed() {
            // Zab owns the log of an ensemble's member.
            drop(log);
            if let (true, None, Some(file)) = (
                config.reconfig_enabled,
                &config.dynamic_config_file,
                &config.config_file,
            ) {
                // The membership leaves zoo.cfg at the first activation; the file as
                // written is kept first, as ZooKeeper keeps it.
                match dynamic::backup(file) {
                    Ok(backup) => {
                        tracing::info!(file = %backup.display(), "kept the configuration as it was")
                    }
                    Err(e) => {
                        tracing::warn!(file = %file.display(), error = %e, "cannot back the configuration up")
                    }
                }
            }
            let logged = member::logged_membership(&tree, &config);
            let (mut ensemble, member) =
                ensemble::Ensemble::start(&config, snapshot_zxid, logged, tx.clone()).await?;
            ensemble.rebind = Some(rebind_tx.clone());
            (None, Some((Box::new(ensemble), member)))
        } else {
            // The log's writer thread tells the serving task each time a commit made
            // more durable.
            let durable = tx.clone();
            let log = GroupCommit::start_with_listener(log, GroupOptions::default(), move |mark| {
                let msg = match mark {
                    Ok(zxid) => Msg::Durable {
                        zxid: *zxid,
                        ok: true,
                    },
                    Err(_) => Msg::Durable { zxid: 0, ok: false },
                };
                let _ = durable.send(msg);
            });
            (Some(log), None)
        };
        let bind = |addr: SocketAddr| async move {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Listen { addr, source })?;
            Ok::<_, StartError>((listener, bound))
        };
        let plain = match config.client_port_enabled {
            true => Some(bind(config.client_addr).await?),
            false => None,
        };
        let secure = match config.secure_client_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let secure_addr = secure.as_ref().map(|(_, bound)| *bound);
        // `conf` and the AdminServer report the port bound, as ZooKeeper reports its
        // listener's (port 0 picks one).
        let config = match &plain {
            Some((_, bound)) if *bound != config.client_addr => {
                let mut bound_config = (*config).clone();
                bound_config.client_addr = *bound;
                Arc::new(bound_config)
            }
            _ => config,
        };
        let addr = plain
            .as_ref()
            .map(|(_, bound)| *bound)
            .or(secure_addr)
            .unwrap_or(config.client_addr);
        let metrics = match config.metrics_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let metrics_addr = metrics.as_ref().map(|(_, bound)| *bound);
        let admin = match config.admin_enabled {
            true => admin::bind(config.admin_addr).await,
            false => None,
        };
        let admin_addr = admin.as_ref().map(|(_, bound)| *bound);
        let throttle = Arc::new(Throttle::new(config.global_outstanding_limit));
        let started = std::time::Instant::now();
        let now = Now {
            mono_us: 0,
            wall_ms: runtime::wall_ms(),
        };
        let mut engine = Engine::new(config.clone(), tree, now, Role::Standalone);
        match window {
            Some(digest) if ensemble.is_some() => engine.reopen_window(digest),
            // Standalone, the txns to come are this server's own: as ZooKeeper, it warns.
            Some(digest) if digest.zxid > engine.tree().last_zxid() => tracing::warn!(
                digest_zxid = format!("{:#x}", digest.zxid),
                "the log does not reach the zxid of the snapshot's digest"
            ),
            _ => {}
        }
        let mut nonce_key = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut nonce_key) {
            tracing::warn!(error = %e, "no system randomness for SASL nonces; using the clock");
            for (byte, clock) in nonce_key.iter_mut().zip(runtime::wall_ms().to_be_bytes()) {
                *byte = clock;
            }
        }
        engine.set_nonce_key(nonce_key);
        if ensemble.is_some() {
            // A member serves once it leads an established epoch or has synced.
            engine.set_role(Role::Learner, false, None, &mut Vec::new());
        }
        let (failed_tx, failed) = watch::channel(None);
        let mut runtime = Runtime::new(
            engine,
            started,
            log,
            ensemble,
            tx.clone(),
            throttle.clone(),
            failed_tx,
        );
        if restored.snapshot.is_some()
            && (!dead.is_empty() || restored.replayed > config.snap_count)
        {
            // ZooKeeper snapshots every start, so that the next one replays less. Ours does
            // when the tree holds what the log does not (dead sessions killed), or when the
            // log after the last snapshot has grown past snapCount (restarts in a row, each
            // short of a snapshot), in the background. Snapshotting every start cost 0.5 s
            // to the first getData after a restart at 1M znodes (1.9-2.2 s against 1.4 s).
            runtime.input(Input::Snapshot);
        }
        let core_task = tokio::spawn(runtime.serve(rx));
        let ticker = {
            let tx = tx.clone();
            // Ticks often enough for the container check too.
            let tick = match config.container_check_interval {
                interval if interval.is_zero() => config.tick_time,
                interval => config.tick_time.min(interval),
            };
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(tick);
                loop {
                    interval.tick().await;
                    if tx.send(Msg::Tick).is_err() {
                        return;
                    }
                }
            })
        };
        let mut tasks = vec![ticker];
        let per_ip = Arc::new(std::sync::Mutex::new(HashMap::new()));
        if let Some((listener, _)) = plain {
            // With port unification the plain port takes TLS clients too.
            let tls = tls.clone().filter(|_| config.port_unification);
            let accept = Accept {
                core: tx.clone(),
                config: config.clone(),
                throttle: throttle.clone(),
                per_ip: per_ip.clone(),
                tls,
                unified: config.port_unification,
            };
            tasks.push(tokio::spawn(plain_port(listener, accept, rebind_rx)));
        }
        if let (Some((listener, bound)), Some(tls)) = (secure, tls) {
            tracing::info!(addr = %bound, "serving TLS clients");
            let accept = Accept {
                core: tx.clone(),
                config: config.clone(),
                throttle: throttle.clone(),
                per_ip,
                tls: Some(tls),
                unified: false,
            };
            tasks.push(tokio::spawn(accept_loop(listener, accept)));
        }
        if let Some((listener, bound)) = metrics {
            tracing::info!(addr = %bound, "serving Prometheus metrics");
            let tx = tx.clone();
            let ask: metrics::AskStatus =
                Box::new(move |reply| tx.send(Msg::Status { reply }).is_ok());
            tasks.push(tokio::spawn(admin::serve_metrics(listener, ask)));
        }
        if let Some((listener, bound)) = admin {
            tracing::info!(addr = %bound, url = %config.admin_command_url, "serving the AdminServer");
            let tx = tx.clone();
            let ask: admin::AskAdmin =
                Arc::new(move |request| tx.send(Msg::Admin(request)).is_ok());
            tasks.push(tokio::spawn(admin::serve(
                listener,
                config.admin_command_url.clone(),
                ask,
            )));
        }
        if config.client_port_enabled {
            tracing::info!(%addr, "serving clients");
        }
        Ok(Server {
            addr,
            secure_addr,
            metrics_addr,
            admin_addr,
            core: tx,
            tasks,
            core_task,
            failed,
        })
    }

    /// Waits until the server stops serving on its own, on an error it cannot go on from
    /// (the txn log failed, a txn did not give the tree the digest logged with it), and
    /// says why. Never returns while the server serves.
    pub async fn failed(&self) -> String {
        let mut failed = self.failed.clone();
        match failed.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The serving task is gone without a reason: it was shut down.
            Err(_) => std::future::pending().await,
        }
    }

    /// The address clients connect to: the plain client port's, or the secure one's
    /// when that is the only one.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The secure client port's address, when there is one.
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.secure_addr
    }

    /// The address of the Prometheus `/metrics` endpoint, when it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the AdminServer listens (`admin.serverPort`), when it runs: off with
    /// `admin.enableServer=false`, or when its address was taken at start.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Stops accepting, closes every connection and syncs the log.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.core.send(Msg::Shutdown);
        let _ = self.core_task.await;
    }
}

/// What a client port's accepting task shares with its connections.
#[derive(Clone)]
struct Accept {
    core: mpsc::UnboundedSender<Msg>,
    config: Arc<Config>,
    throttle: Arc<Throttle>,
    /// Connections by client IP, across the plain and secure ports (`maxClientCnxns`).
    per_ip: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    /// TLS for the port's connections (all of them, or with `unified` those whose first
    /// byte opens a TLS handshake).
    tls: Option<tokio_rustls::TlsAcceptor>,
    unified: bool,
}

/// How long a TLS client may take over its handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The plain client port: its accept loop, moved to another address when a
/// reconfiguration changes this member's client address. Connections already open stay;
/// if the new address cannot be bound, the old one serves on.
async fn plain_port(
    listener: TcpListener,
    accept: Accept,
    mut rebind: mpsc::UnboundedReceiver<SocketAddr>,
) {
    let mut current = AbortOnDrop(tokio::spawn(accept_loop(listener, accept.clone())));
    while let Some(addr) = rebind.recv().await {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, "serving clients at the address the reconfiguration gave");
                current = AbortOnDrop(tokio::spawn(accept_loop(listener, accept.clone())));
            }
            Err(e) => tracing::error!(%addr, error = %e, "cannot move the client port there"),
        }
    }
    // No reconfiguration can come any more: serve on.
    let _ = (&mut current.0).await;
}

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

async fn accept_loop(listener: TcpListener, accept: Accept) {
    static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
    let accept = Arc::new(accept);
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let max = accept.config.max_client_cnxns;
        {
            let Ok(mut counts) = accept.per_ip.lock() else {
                continue;
            };
            let count = counts.entry(addr.ip()).or_default();
            if max > 0 && *count >= max {
                tracing::warn!(%addr, max, "too many connections from this address (maxClientCnxns)");
                continue;
            }
            *count += 1;
        }
        let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let accept = accept.clone();
        tokio::spawn(async move {
            serve_conn(conn, stream, addr, &accept).await;
            if let Ok(mut counts) = accept.per_ip.lock() {
                if let Some(count) = counts.get_mut(&addr.ip()) {
                    *count = count.saturating_sub(1);
                }
            }
        });
    }
}

/// Serves one accepted connection: plain, or over TLS once its handshake (and its
/// certificate's identity) checks out.
async fn serve_conn(conn: u64, stream: TcpStream, addr: SocketAddr, accept: &Accept) {
    let mut link = conn::Link {
        conn,
        addr,
        core: accept.core.clone(),
        max_frame_len: accept.config.jute_max_buffer,
        throttle: accept.throttle.clone(),
        identities: Vec::new(),
    };
    let Some(tls) = &accept.tls else {
        return conn::serve(link, stream).await;
    };
    if accept.unified {
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
        match peeked {
            Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
            Ok(Ok(1)) => return conn::serve(link, stream).await,
            _ => return,
        }
    }
    let _ = stream.set_nodelay(true);
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!(%addr, error = %e, "TLS handshake failed; connection closed");
            return;
        }
        Err(_) => {
            tracing::warn!(%addr, "TLS handshake timed out; connection closed");
            return;
        }
    };
    let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
    let tls_settings = &accept.config.tls;
    let registered = accept.config.has_auth_provider(&tls_settings.auth_provider);
    let identities = match tls_settings.identities(chain, registered) {
        Ok(ids) => ids,
        Err(reason) => {
            tracing::warn!(%addr, %reason, "client certificate refused; connection closed");
            return;
        }
    };
    for id in &identities {
        tracing::info!(%addr, scheme = %id.scheme, id = %id.id, "authenticated by client certificate");
    }
    link.identities = identities;
    conn::serve_tls(link, stream).await;
}

#[cfg(test)]
mod tests {
    use zk_datatree::{Session, WriteRequest};
    use zk_jute::txn::TxnHeader;

    use super::*;

    /// A logged `createSession` txn whose digest is the tree's after it, plus `skew`.
    fn entry(tree: &DataTree, skew: i64) -> LogEntry {
        let session = Session { id: 7, auth: &[] };
        let request = WriteRequest::CreateSession { timeout_ms: 5_000 };
        let prepared = zk_datatree::prepare(tree, &session, 1, 0, &request);
        let header = TxnHeader {
            client_id: 7,
            cxid: 0,
            zxid: 1,
            time: 0,
            r#type: prepared.txn.op_code().code(),
        };
        let digest = TxnDigest {
            version: zk_datatree::DIGEST_VERSION,
            tree_digest: tree.digest().wrapping_add(prepared.digest_delta) as i64 + skew,
        };
        LogEntry::new(header, &prepared.txn.encode(), Some(&digest))
    }

    #[test]
    fn replay_checks_the_digest_logged_with_each_txn() {
        let mut tree = DataTree::new(TreeOptions::default());
        let good = entry(&tree, 0);
        assert_eq!(replay(&mut tree, &good, None), Ok(()));
        let mut tree = DataTree::new(TreeOptions::default());
        let bad = entry(&tree, 1);
        let error = replay(&mut tree, &bad, None).unwrap_err();
        assert!(
            error.starts_with("the tree's digest after it is"),
            "{error}"
        );
    }
}
