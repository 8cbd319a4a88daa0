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

mod config;
mod conn;
mod core;
mod fourlw;
mod metrics;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zk_datatree::{DataTree, Transaction, TreeOptions};
use zk_jute::Reader;
use zk_persistence::{FileTxnLog, GroupCommit, GroupOptions, LogEntry, LogOptions, VERSION_DIR};

pub use config::{Config, ConfigError};

use crate::core::{Core, Msg};
use crate::metrics::Throttle;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be restored.
    #[error("restoring the data directory: {0}")]
    Restore(#[from] zk_persistence::PersistenceError),
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

/// Messages the core handles before writing the replies they made.
const BURST_MAX: usize = 256;

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    core: mpsc::UnboundedSender<Msg>,
    tasks: Vec<JoinHandle<()>>,
    core_task: JoinHandle<()>,
}

/// Replays one logged txn; one that does not decode stops the restore (ZooKeeper refuses
/// to start too): skipping it would serve a state no other member has.
fn replay(tree: &mut DataTree, entry: &LogEntry) -> Result<(), String> {
    let mut body = Reader::new(entry.body.clone());
    let txn = Transaction::read(entry.header.r#type, &mut body).map_err(|e| e.to_string())?;
    tree.apply(&entry.header, &txn);
    Ok(())
}

impl Server {
    /// Restores state from the configured directories, binds the client port and starts
    /// serving.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let config = Arc::new(config);
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
            ..LogOptions::default()
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
        if restored.snapshot.is_none() {
            // As ZooKeeper does on start: log entries never come without a snapshot before
            // them (ZooKeeper refuses such a directory), so a fresh directory gets
            // `snapshot.0`, and one holding only logs a snapshot of what they gave.
            let path = zk_persistence::write_snapshot(
                &snap_dir,
                restored.last_zxid,
                tree.sessions(),
                Some(crate::core::tree_digest(&tree)),
                |w| tree.write_body(w),
            )?;
            tracing::info!(file = %path.display(), "wrote the first snapshot");
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        // The log's writer thread tells the core itself each time a commit made more durable.
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
        let listener = TcpListener::bind(config.client_addr)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.client_addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.client_addr,
            source,
        })?;
        let metrics = match config.metrics_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Listen { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| StartError::Listen { addr, source })?;
                Some((listener, bound))
            }
            None => None,
        };
        let metrics_addr = metrics.as_ref().map(|(_, bound)| *bound);
        let throttle = Arc::new(Throttle::new(config.global_outstanding_limit));
        let mut core = Core::new(config.clone(), tree, log, tx.clone(), throttle.clone());
        if restored.snapshot.is_some()
            && (!dead.is_empty() || restored.replayed > config.snap_count)
        {
            // ZooKeeper snapshots every start, so that the next one replays less. Ours does
            // when the tree holds what the log does not (dead sessions killed), or when the
            // log after the last snapshot has grown past snapCount (restarts in a row, each
            // short of a snapshot), in the background. Snapshotting every start cost 0.5 s
            // to the first getData after a restart at 1M znodes (1.9-2.2 s against 1.4 s).
            core.snapshot();
        }
        let core_task = tokio::spawn(async move {
            'serve: loop {
                // A snapshot being serialized goes on a piece at a time between bursts:
                // the core waits for a message only when there is nothing else to do.
                let msg = if core.wants_step() {
                    rx.try_recv().ok()
                } else {
                    match rx.recv().await {
                        Some(msg) => Some(msg),
                        None => break 'serve,
                    }
                };
                // Everything already waiting is handled before the replies it made are
                // written, so a busy connection gets one write for many replies.
                let mut next = msg;
                let mut burst = 0;
                while let Some(msg) = next.take() {
                    let stop = matches!(msg, Msg::Shutdown);
                    core.handle(msg);
                    if stop {
                        core.flush();
                        break 'serve;
                    }
                    burst += 1;
                    if burst < BURST_MAX {
                        next = rx.try_recv().ok();
                    }
                }
                core.flush();
                if core.wants_step() {
                    core.snapshot_step();
                    // The connections' readers get their turn before the next piece, so a
                    // snapshot delays a request by a piece at most.
                    tokio::task::yield_now().await;
                }
            }
            // A snapshot being taken is finished; dropping the core stops the log writer
            // after it commits what is queued.
            let _ = tokio::task::spawn_blocking(move || {
                core.finish_snapshot();
                drop(core);
            })
            .await;
        });
        let ticker = {
            let tx = tx.clone();
            let tick = config.tick_time;
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
        let acceptor = tokio::spawn(accept_loop(listener, tx.clone(), config.clone(), throttle));
        let mut tasks = vec![ticker, acceptor];
        if let Some((listener, bound)) = metrics {
            tracing::info!(addr = %bound, "serving Prometheus metrics");
            tasks.push(tokio::spawn(metrics::serve(listener, tx.clone())));
        }
        tracing::info!(%addr, "serving clients");
        Ok(Server {
            addr,
            metrics_addr,
            core: tx,
            tasks,
            core_task,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the Prometheus `/metrics` endpoint, when it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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

async fn accept_loop(
    listener: TcpListener,
    core: mpsc::UnboundedSender<Msg>,
    config: Arc<Config>,
    throttle: Arc<Throttle>,
) {
    static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
    let per_ip = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        std::net::IpAddr,
        usize,
    >::new()));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let max = config.max_client_cnxns;
        {
            let Ok(mut counts) = per_ip.lock() else {
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
        let core = core.clone();
        let per_ip = per_ip.clone();
        let max_frame_len = config.jute_max_buffer;
        let throttle = throttle.clone();
        tokio::spawn(async move {
            conn::serve(conn, stream, addr, core, max_frame_len, throttle).await;
            if let Ok(mut counts) = per_ip.lock() {
                if let Some(count) = counts.get_mut(&addr.ip()) {
                    *count = count.saturating_sub(1);
                }
            }
        });
    }
}
