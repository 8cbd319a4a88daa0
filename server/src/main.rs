//! `zk-server [zoo.cfg]`: a standalone ZooKeeper-compatible server. Without an argument it
//! serves 127.0.0.1:2181 with data under `./data`.

use std::path::PathBuf;

use anyhow::Context;
use zk_server::{Config, Server};

/// mimalloc instead of glibc's malloc. A write allocates a few dozen small blocks
/// (paths, ACL lists, pending changes, reply frames) that live for about a millisecond,
/// interleaved with the tree's long-lived nodes; under a create load glibc spent a fifth
/// of the serving thread's time in `_int_malloc` and `malloc_consolidate`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    no_huge_pages();
    let config = match std::env::args_os().nth(1).map(PathBuf::from) {
        Some(path) => {
            Config::from_file(&path).with_context(|| format!("reading {}", path.display()))?
        }
        None => Config::default(),
    };
    // One thread serves every connection, the core and, in an ensemble, the election's
    // and the quorum's streams: a request crosses no thread on its way (the txn log's
    // fsyncs and the snapshots have threads of their own). Measured with `cargo
    // xtask bench` on two cores, this gives lower read latency and a higher read-write mix
    // than tokio's multi-threaded scheduler standalone; with `cargo xtask bench ensemble`
    // (three members on the same two cores) about a fifth more writes than the
    // multi-threaded scheduler (setData via the leader 65-67k against 50-56k ops/s) and a
    // quarter more reads: every hand-over between worker threads is a wake-up.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas;
/// it then gives freed memory back a 64 KiB range at a time, which splits the huge pages,
/// and the next allocation there faults a whole 2 MiB page in and zeroes it. Under the
/// ensemble's create load, zeroing those pages was a seventh of the leader's samples;
/// without them, `cargo xtask bench ensemble` creates 43-44k against 35-36k ops/s via the
/// leader (32-33k against 28-29k via a follower), two runs each, alternating.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::warn!(error = %e, "could not turn transparent huge pages off");
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::start(config).await.context("starting the server")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let failed = tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("SIGINT: shutting down");
            None
        }
        _ = terminate.recv() => {
            tracing::info!("SIGTERM: shutting down");
            None
        }
        reason = server.failed() => Some(reason),
    };
    server.shutdown().await;
    match failed {
        // As ZooKeeper exits when it cannot go on, with a status that says so.
        Some(reason) => Err(anyhow::anyhow!(reason).context("the server stopped")),
        None => Ok(()),
    }
}
