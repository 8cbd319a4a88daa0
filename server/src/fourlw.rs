//! The four-letter words, with ZooKeeper's output shapes.

use std::fmt::Write as _;

use zk_watch::WatchTable;

use crate::engine::Engine;
use crate::status::{Status, java_double};

/// Every word this server knows, whitelisted or not.
pub(crate) const WORDS: &[&str] = &[
    "ruok", "srvr", "stat", "conf", "cons", "crst", "srst", "dump", "envi", "mntr", "wchs", "wchc",
    "wchp", "dirs", "isro", "hash",
];

pub(crate) const VERSION: &str =
    concat!("3.8.0-zk-rs-", env!("CARGO_PKG_VERSION"), ", built on rust");

/// The answer to `word`: the figures from `status`, the details (sessions, watches) from
/// the engine.
pub(crate) fn answer(word: &str, engine: &mut Engine, status: &Status) -> String {
    if !engine.config().allows(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    let mut out = String::new();
    if status.mode == "looking" && !matches!(word, "ruok" | "envi" | "isro") {
        // As ZooKeeper answers while it looks for a leader or syncs with one.
        return "This ZooKeeper instance is not currently serving requests\n".into();
    }
    let latency = status.latency();
    let (min, max) = (latency.min_ms(), latency.max_ms());
    let avg = java_double(latency.avg_ms());
    let (zxid, nodes) = (status.zxid, status.znodes);
    let sessions: std::collections::HashMap<u64, i64> = status
        .connections
        .iter()
        .map(|c| (c.conn, c.session))
        .collect();
    match word {
        "ruok" => out.push_str("imok"),
        "isro" if status.mode == "looking" => out.push_str("null"),
        "isro" if status.mode == "read-only" => out.push_str("ro"),
        "isro" => out.push_str("rw"),
        "srvr" | "stat" => {
            let _ = writeln!(out, "Zookeeper version: {VERSION}");
            if word == "stat" {
                out.push_str("Clients:\n");
                for c in &status.connections {
                    let _ = writeln!(out, " /{}[1](queued=0,recved=0,sent=0)", c.addr);
                }
                out.push('\n');
            }
            let _ = writeln!(out, "Latency min/avg/max: {min}/{avg}/{max}");
            let _ = writeln!(out, "Received: {}", status.packets_received);
            let _ = writeln!(out, "Sent: {}", status.packets_sent);
            let _ = writeln!(out, "Connections: {}", status.connections.len());
            let _ = writeln!(out, "Outstanding: {}", status.outstanding);
            let _ = writeln!(out, "Zxid: {zxid:#x}");
            let _ = writeln!(out, "Mode: {}", status.mode);
            let _ = writeln!(out, "Node count: {nodes}");
            if let Some(e) = status.ensemble.as_ref().filter(|_| status.mode == "leader") {
                let (last, min, max) = e.proposal_sizes;
                let _ = writeln!(out, "Proposal sizes last/min/max: {last}/{min}/{max}");
            }
        }
        "conf" => {
            let c = engine.config();
            // As ZooKeeper: -1 for a port it does not listen on.
            let port =
                |addr: Option<std::net::SocketAddr>| addr.map_or(-1, |a| i32::from(a.port()));
            let plain = Some(c.client_addr).filter(|_| c.client_port_enabled);
            let _ = writeln!(out, "clientPort={}", port(plain));
            let _ = writeln!(out, "secureClientPort={}", port(c.secure_client_addr));
            let _ = writeln!(out, "dataDir={}", c.data_dir.join("version-2").display());
            let _ = writeln!(out, "dataDirSize=0");
            let _ = writeln!(
                out,
                "dataLogDir={}",
                c.data_log_dir.join("version-2").display()
            );
            let _ = writeln!(out, "dataLogSize=0");
            let _ = writeln!(out, "tickTime={}", c.tick_time.as_millis());
            let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
            let _ = writeln!(
                out,
                "minSessionTimeout={}",
                c.min_session_timeout.as_millis()
            );
            let _ = writeln!(
                out,
                "maxSessionTimeout={}",
                c.max_session_timeout.as_millis()
            );
            let _ = writeln!(out, "clientPortListenBacklog=-1");
            let _ = writeln!(out, "serverId={}", c.server_id);
            if let (Some(membership), Some(me)) = (c.membership(), c.servers.get(&c.server_id)) {
                let _ = writeln!(out, "initLimit={}", c.init_limit);
                let _ = writeln!(out, "syncLimit={}", c.sync_limit);
                let _ = writeln!(out, "electionAlg=3");
                let _ = writeln!(out, "electionPort={}", me.election_port);
                let _ = writeln!(out, "quorumPort={}", me.quorum_port);
                let observer = me.role == zk_election::Role::Observer;
                let _ = writeln!(out, "peerType={}", u8::from(observer));
                // As ZooKeeper prints it: a space after the colon, no newline at the end.
                let _ = write!(out, "membership: \n{membership}");
            }
        }
        "cons" => {
            for c in &status.connections {
                let _ = writeln!(
                    out,
                    " /{}[1](queued=0,recved=0,sent=0,sid={:#x},conn={})",
                    c.addr, c.session, c.conn
                );
            }
            out.push('\n');
        }
        "crst" | "srst" => {
            if word == "crst" {
                engine.reset_connection_stats();
            } else {
                engine.reset_stats();
            }
            out.push_str(if word == "crst" {
                "Connection stats reset.\n"
            } else {
                "Server stats reset.\n"
            });
        }
        "dump" => {
            out.push_str("SessionTracker dump:\n");
            let _ = writeln!(out, "Session Sets ({}):", status.sessions);
            for (id, timeout) in engine.session_timeouts() {
                let _ = writeln!(out, "{id:#x}\t{timeout}ms");
            }
            out.push_str("ephemeral nodes dump:\n");
            let ephemerals = engine.tree().all_ephemerals();
            let _ = writeln!(out, "Sessions with Ephemerals ({}):", ephemerals.len());
            for (session, paths) in ephemerals {
                let _ = writeln!(out, "{session:#x}:");
                for path in paths.iter() {
                    let _ = writeln!(out, "\t{path}");
                }
            }
        }
        "envi" => {
            out.push_str("Environment:\n");
            for (key, value) in crate::admin::environment() {
                let _ = writeln!(out, "{key}={value}");
            }
        }
        "mntr" => {
            for (key, value) in crate::status::monitor(status) {
                let _ = writeln!(out, "zk_{key}\t{value}");
            }
        }
        "wchs" => {
            let _ = writeln!(out, "{}", engine.watches().summary(WatchTable::Data));
        }
        "wchc" => {
            let by = engine.watches().by_watcher(WatchTable::Data);
            out.push_str(&zk_watch::format_by_connection(&by, |w| {
                sessions.get(&w.0).copied().unwrap_or(0)
            }));
        }
        "wchp" => {
            let by = engine.watches().by_path(WatchTable::Data);
            out.push_str(&zk_watch::format_by_path(&by, |w| {
                sessions.get(&w.0).copied().unwrap_or(0)
            }));
        }
        "dirs" => {
            let c = engine.config();
            let _ = writeln!(out, "datadir_size: {}", crate::admin::dir_size(&c.data_dir));
            let _ = writeln!(
                out,
                "logdir_size: {}",
                crate::admin::dir_size(&c.data_log_dir)
            );
        }
        "hash" => {
            let _ = writeln!(out, "Digests in Cache: 1");
            let _ = writeln!(out, "Zxid: {zxid:#x}, Digest: {}", status.digest);
        }
        _ => {}
    }
    out
}
