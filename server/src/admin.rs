//! The AdminServer: ZooKeeper's commands over HTTP (`admin.serverPort`, 8080 by default),
//! as JSON with ZooKeeper's field names, and the Prometheus `/metrics` endpoint, both on
//! axum.
//!
//! `GET {admin.commandURL}` (`/commands`) lists the commands as links, as ZooKeeper's
//! servlet does; `GET /commands/<name>` runs one, by its primary name or an alias
//! (`conf`, `mntr`, `srvr`, ...), and always
//! answers `200` with a JSON object holding at least `command` (the primary name) and
//! `error` (`null`, or why it did not run: an unknown command, or a server that is not
//! serving). The answers are rendered on the serving task from the one status snapshot
//! the four-letter words and the metrics use ([`answer`]); the HTTP side only carries
//! them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use zk_watch::WatchTable;

use crate::engine::Engine;
use crate::status::{Figure, Status};

/// A command and its arguments, for the serving task; the answer goes to `reply`.
#[derive(Debug)]
pub(crate) struct AdminRequest {
    /// The name asked for.
    pub(crate) command: String,
    /// Where the JSON answer goes.
    pub(crate) reply: oneshot::Sender<Value>,
}

/// Hands a request to the serving task: false once it no longer takes any.
pub(crate) type AskAdmin = Arc<dyn Fn(AdminRequest) -> bool + Send + Sync>;

/// The commands of ZooKeeper 3.8's AdminServer: primary name, aliases, and whether the
/// command needs a serving server.
const COMMANDS: &[(&str, &[&str], bool)] = &[
    ("configuration", &["conf", "config"], true),
    ("connection_stat_reset", &["crst"], true),
    ("connections", &["cons"], true),
    ("dirs", &[], true),
    ("dump", &[], true),
    ("environment", &["env", "envi"], false),
    ("get_trace_mask", &["gtmk"], false),
    ("hash", &[], true),
    ("initial_configuration", &["icfg"], true),
    ("is_read_only", &["isro"], true),
    ("last_snapshot", &["lsnp"], true),
    ("leader", &["lead"], true),
    ("monitor", &["mntr"], false),
    ("observer_connection_stat_reset", &["orst"], true),
    ("observers", &["obsr"], true),
    ("ruok", &[], true),
    ("server_stats", &["srvr"], true),
    ("set_trace_mask", &["stmk"], false),
    ("stat_reset", &["srst"], true),
    ("stats", &["stat"], true),
    ("system_properties", &["sysp"], false),
    ("voting_view", &[], true),
    ("watch_summary", &["wchs"], true),
    ("watches", &["wchc"], true),
    ("watches_by_path", &["wchp"], true),
    ("zabstate", &[], false),
];

/// The primary name of the command `name` names, and whether it needs a serving server.
fn lookup(name: &str) -> Option<(&'static str, bool)> {
    COMMANDS
        .iter()
        .find(|(primary, aliases, _)| *primary == name || aliases.contains(&name))
        .map(|(primary, _, needs_server)| (*primary, *needs_server))
}

/// The answer to `command`, from `status` and the engine: what
/// ZooKeeper 3.8's `Commands.runCommand` answers, field for field where this server has
/// the figure (the README lists the fields it leaves out).
pub(crate) fn answer(command: &str, engine: &mut Engine, status: &Status) -> Value {
    let mut out = Map::new();
    let Some((primary, needs_server)) = lookup(command) else {
        out.insert("command".into(), json!(command));
        out.insert("error".into(), json!(format!("Unknown command: {command}")));
        return Value::Object(out);
    };
    out.insert("command".into(), json!(primary));
    out.insert("error".into(), Value::Null);
    if needs_server && status.mode == "looking" {
        out.insert(
            "error".into(),
            json!("This ZooKeeper instance is not currently serving requests"),
        );
        return Value::Object(out);
    }
    let sessions: std::collections::HashMap<u64, i64> = status
        .connections
        .iter()
        .map(|c| (c.conn, c.session))
        .collect();
    // The two resets are the only commands that change anything; the rest read.
    match primary {
        "connection_stat_reset" => engine.reset_connection_stats(),
        "stat_reset" => engine.reset_stats(),
        _ => {}
    }
    let engine: &Engine = engine;
    let config = engine.config();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_owned(), value);
    };
    match primary {
        "configuration" => {
            let client_port = Some(config.client_addr)
                .filter(|_| config.client_port_enabled)
                .map_or(-1, |a| i32::from(a.port()));
            put("client_port", json!(client_port));
            put(
                "data_dir",
                json!(config.data_dir.join("version-2").display().to_string()),
            );
            put(
                "data_log_dir",
                json!(config.data_log_dir.join("version-2").display().to_string()),
            );
            put("tick_time", json!(config.tick_time.as_millis() as u64));
            put("max_client_cnxns", json!(config.max_client_cnxns));
            put(
                "min_session_timeout",
                json!(config.min_session_timeout.as_millis() as u64),
            );
            put(
                "max_session_timeout",
                json!(config.max_session_timeout.as_millis() as u64),
            );
            put("server_id", json!(config.server_id));
            put("client_port_listen_backlog", json!(-1));
        }
        "connections" => {
            let (plain, secure) = connection_lists(status, true);
            put("connections", plain);
            put("secure_connections", secure);
        }
        "dirs" => {
            put("datadir_size", json!(dir_size(&config.data_dir)));
            put("logdir_size", json!(dir_size(&config.data_log_dir)));
        }
        "dump" => {
            let expiries: Map<String, Value> = engine
                .session_expiries()
                .into_iter()
                .map(|(at, ids)| (at.to_string(), json!(ids)))
                .collect();
            put("expiry_time_to_session_ids", Value::Object(expiries));
            let ephemerals: Map<String, Value> = engine
                .tree()
                .all_ephemerals()
                .iter()
                .map(|(session, paths)| {
                    let paths: Vec<String> = paths.iter().map(ToString::to_string).collect();
                    (session.to_string(), json!(paths))
                })
                .collect();
            put("session_id_to_ephemeral_paths", Value::Object(ephemerals));
        }
        "environment" => {
            for (key, value) in environment() {
                put(key, json!(value));
            }
        }
        "get_trace_mask" | "set_trace_mask" => {
            put(
                "error",
                json!(
                    "trace masks are not supported: logging is set with RUST_LOG \
                     (tracing's filter)"
                ),
            );
        }
        "hash" => {
            // ZooKeeper keeps a history of (zxid, digest) pairs; this server keeps the
            // latest.
            put(
                "digests",
                json!([{ "zxid": status.zxid, "digest": status.digest }]),
            );
        }
        "initial_configuration" => put("initial_configuration", json!(config.initial_text)),
        "is_read_only" => put("read_only", json!(status.mode == "read-only")),
        "last_snapshot" => {
            let (zxid, timestamp) = last_snapshot(&config.data_dir).unwrap_or((-1, -1));
            // Java's Long.toHexString: two's complement, no prefix.
            put("zxid", json!(format!("{:x}", zxid as u64)));
            put("timestamp", json!(timestamp));
        }
        "leader" => match status.ensemble.as_ref() {
            Some(e) => {
                let leader = e.leader.unwrap_or(0);
                put("is_leader", json!(status.mode == "leader"));
                put("leader_id", json!(leader));
                let ip = config
                    .servers
                    .get(&leader)
                    .map(|line| line.host.clone())
                    .unwrap_or_default();
                put("leader_ip", json!(ip));
            }
            None => put("error", json!("server is not initialized")),
        },
        "monitor" => {
            for (key, value) in crate::status::monitor(status) {
                let value = match value {
                    Figure::Int(n) => json!(n),
                    Figure::Float(x) => json!(x),
                    Figure::Text(s) => json!(s),
                };
                put(&key, value);
            }
        }
        "connection_stat_reset" | "stat_reset" | "observer_connection_stat_reset" | "ruok" => {}
        "observers" => {
            let (synced, observers) = match status.ensemble.as_ref() {
                Some(e) if status.mode == "leader" => (e.synced_observers, e.observers.clone()),
                _ => (0, Vec::new()),
            };
            let observers: Vec<Value> = observers.iter().map(|sid| json!({ "sid": sid })).collect();
            put("synced_observers", json!(synced));
            put("observers", json!(observers));
        }
        "server_stats" | "stats" => {
            put("version", json!(crate::fourlw::VERSION));
            put("read_only", json!(status.mode == "read-only"));
            let latency = status.latency();
            let (last, min, max) = status.response_sizes;
            let response = json!({
                "last_buffer_size": last,
                "min_buffer_size": min,
                "max_buffer_size": max,
            });
            put(
                "server_stats",
                json!({
                    "client_response_stats": response,
                    "packets_sent": status.packets_sent,
                    "packets_received": status.packets_received,
                    "max_latency": latency.max_ms(),
                    "min_latency": latency.min_ms(),
                    "avg_latency": latency.avg_ms(),
                    "outstanding_requests": status.outstanding,
                    "server_state": status.mode,
                    "num_alive_client_connections": status.connections.len(),
                    "last_processed_zxid": status.zxid,
                    "data_dir_size": dir_size(&config.data_dir),
                    "log_dir_size": dir_size(&config.data_log_dir),
                    "uptime": status.uptime_ms,
                    "provider_null": false,
                }),
            );
            put("client_response", response);
            if let Some(e) = status.ensemble.as_ref().filter(|_| status.mode == "leader") {
                let (last, min, max) = e.proposal_sizes;
                put(
                    "proposal_stats",
                    json!({
                        "last_buffer_size": last,
                        "min_buffer_size": min,
                        "max_buffer_size": max,
                    }),
                );
            }
            put("node_count", json!(status.znodes));
            if primary == "stats" {
                let (plain, secure) = connection_lists(status, false);
                put("connections", plain);
                put("secure_connections", secure);
            }
        }
        "system_properties" => {
            for (key, value) in &config.system_properties {
                put(key, json!(value));
            }
        }
        "voting_view" => {
            let mut view = Map::new();
            if status.ensemble.is_some() {
                for (sid, line) in &config.servers {
                    let host = delimited(&line.host);
                    // A member knows its own client address even when its line does
                    // not give it (from clientPort and clientPortAddress).
                    let own = (*sid == config.server_id && config.client_port_enabled)
                        .then(|| config.client_addr.to_string());
                    let client = line
                        .client
                        .as_ref()
                        .map(|(h, p)| format!("{}:{p}", delimited(h)))
                        .or(own)
                        .unwrap_or_default();
                    let learner_type = match line.role {
                        zk_election::Role::Observer => "observer",
                        zk_election::Role::Participant => "participant",
                    };
                    view.insert(
                        sid.to_string(),
                        json!({
                            "server_addresses": [format!("{host}:{}", line.quorum_port)],
                            "election_addresses": [format!("{host}:{}", line.election_port)],
                            "client_address": client,
                            "learner_type": learner_type,
                        }),
                    );
                }
            }
            put("current_config", Value::Object(view));
        }
        "watch_summary" => {
            let summary = engine.watches().summary(WatchTable::Data);
            put("num_connections", json!(summary.connections));
            put("num_paths", json!(summary.paths));
            put("num_total_watches", json!(summary.total_watches));
        }
        "watches" => {
            let mut by_session: BTreeMap<i64, Vec<String>> = BTreeMap::new();
            for (watcher, paths) in engine.watches().by_watcher(WatchTable::Data) {
                let session = sessions.get(&watcher.0).copied().unwrap_or(0);
                by_session.entry(session).or_default().extend(paths);
            }
            let map: Map<String, Value> = by_session
                .into_iter()
                .map(|(session, paths)| (session.to_string(), json!(paths)))
                .collect();
            put("session_id_to_watched_paths", Value::Object(map));
        }
        "watches_by_path" => {
            let map: Map<String, Value> = engine
                .watches()
                .by_path(WatchTable::Data)
                .into_iter()
                .map(|(path, watchers)| {
                    let ids: Vec<i64> = watchers
                        .iter()
                        .map(|w| sessions.get(&w.0).copied().unwrap_or(0))
                        .collect();
                    (path, json!(ids))
                })
                .collect();
            put("path_to_session_ids", Value::Object(map));
        }
        "zabstate" => match (
            status.ensemble.as_ref(),
            config.servers.get(&config.server_id),
        ) {
            (Some(e), Some(me)) => {
                let phase = match e.peer_state.rsplit(" - ").next() {
                    Some("looking") | None => "election",
                    Some(phase) => phase,
                };
                let host = delimited(&me.host);
                let client = Some(config.client_addr)
                    .filter(|_| config.client_port_enabled)
                    .map(|a| a.to_string());
                put("myid", json!(config.server_id));
                put("is_leader", json!(status.mode == "leader"));
                put("quorum_address", addresses(&host, me.quorum_port));
                put("election_address", addresses(&host, me.election_port));
                put("client_address", json!(client));
                put("voting", json!(me.role == zk_election::Role::Participant));
                let zxid = status.zxid;
                put("last_zxid", json!(format!("{:#x}", zxid)));
                put("zab_epoch", json!(zxid >> 32));
                put("zab_counter", json!(zxid & 0xffff_ffff));
                put("zabstate", json!(phase));
            }
            _ => {
                put("voting", json!(false));
                put("zabstate", json!(""));
            }
        },
        _ => {}
    }
    Value::Object(out)
}

/// The connections as `cons` (`brief`: as `stat`) lists them, plain and TLS apart.
fn connection_lists(status: &Status, full: bool) -> (Value, Value) {
    let (mut plain, mut secure) = (Vec::new(), Vec::new());
    for c in &status.connections {
        let mut info = json!({
            "remote_socket_address": c.addr.to_string(),
            "outstanding_requests": c.outstanding,
            "packets_received": c.received,
            "packets_sent": c.sent,
        });
        if full {
            if let Value::Object(map) = &mut info {
                map.insert("session_id".into(), json!(c.session));
                map.insert("session_timeout".into(), json!(c.timeout_ms));
                map.insert("established".into(), json!(c.established_ms));
                map.insert("last_cxid".into(), json!(c.last_cxid));
                map.insert("last_operation".into(), json!(c.last_operation));
            }
        }
        if c.secure {
            secure.push(info);
        } else {
            plain.push(info);
        }
    }
    (Value::Array(plain), Value::Array(secure))
}

/// A host as ZooKeeper writes it in an address: IPv6 in brackets.
fn delimited(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// A member's address as Jackson writes ZooKeeper's `MultipleAddresses` (one address
/// here: `multiAddress` is not supported).
fn addresses(host: &str, port: u16) -> Value {
    let address = format!("{host}:{port}");
    let wildcard = format!("0.0.0.0:{port}");
    json!({
        "all_addresses": [address],
        "all_host_strings": [host.trim_matches(['[', ']'])],
        "all_ports": [port],
        "all_reachable_addresses": [address],
        "all_reachable_addresses_or_all": [address],
        "empty": false,
        "one": address,
        "reachable_address": address,
        "reachable_or_one": address,
        "wildcard_addresses": [wildcard],
    })
}

/// The bytes of the files in `dir/version-2` (`dirs`).
pub(crate) fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("version-2"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The newest snapshot in `dir/version-2`: its zxid and its file's modification time
/// (seconds since the epoch).
fn last_snapshot(dir: &std::path::Path) -> Option<(i64, i64)> {
    std::fs::read_dir(dir.join("version-2"))
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let zxid = i64::from_str_radix(name.strip_prefix("snapshot.")?, 16).ok()?;
            let modified = e.metadata().ok()?.modified().ok()?;
            let secs = modified
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs();
            Some((zxid, secs as i64))
        })
        .max_by_key(|(zxid, _)| *zxid)
}

/// The environment as ZooKeeper's `Environment.list()` gives it (the `envi` word and the
/// `environment` command), with the keys that are not the JVM's, under Java's names for
/// the system and the processor.
pub(crate) fn environment() -> Vec<(&'static str, String)> {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let os = match std::env::consts::OS {
        "linux" => "Linux".to_owned(),
        "macos" => "Mac OS X".to_owned(),
        "freebsd" => "FreeBSD".to_owned(),
        other => other.to_owned(),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        other => other,
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| var("HOSTNAME"));
    let mut env = vec![
        ("zookeeper.version", crate::fourlw::VERSION.to_owned()),
        ("host.name", host),
        ("os.name", os),
        ("os.arch", arch.to_owned()),
    ];
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        env.push(("os.version", release.trim().to_owned()));
    }
    env.push(("user.name", user_name().unwrap_or_else(|| var("USER"))));
    env.push(("user.home", var("HOME")));
    env.push((
        "user.dir",
        std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    ));
    env
}

/// The name of the user this process runs as: its real uid looked up in `/etc/passwd`,
/// as the JVM finds `user.name`.
fn user_name() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_owned())
    })
}

/// The commands as links, as ZooKeeper's servlet lists them.
fn links(base: &str) -> String {
    let mut names: Vec<&str> = COMMANDS.iter().map(|(name, _, _)| *name).collect();
    names.sort_unstable();
    let mut out = String::new();
    for name in names {
        out.push_str(&format!("<a href=\"{base}/{name}\">{name}</a>\n<br/>\n"));
    }
    out
}

#[derive(Clone)]
struct Admin {
    ask: AskAdmin,
    base: Arc<str>,
}

/// Serves the commands under `command_url` on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, command_url: String, ask: AskAdmin) {
    let base: Arc<str> = Arc::from(command_url.trim_end_matches('/'));
    let state = Admin {
        ask,
        base: base.clone(),
    };
    let router = axum::Router::new()
        .route(&format!("{base}"), get(list))
        .route(&format!("{base}/"), get(list))
        .route(&format!("{base}/{{name}}"), get(run))
        .with_state(state);
    if let Err(error) = axum::serve(listener, router).await {
        tracing::warn!(%error, "the AdminServer stopped");
    }
}

async fn list(State(admin): State<Admin>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html;charset=utf-8")],
        links(&admin.base),
    )
        .into_response()
}

async fn run(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    let (reply, answered) = oneshot::channel();
    let request = AdminRequest {
        command: name,
        reply,
    };
    if !(admin.ask)(request) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match answered.await {
        Ok(value) => {
            let body = serde_json::to_string_pretty(&value).unwrap_or_default();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Serves the Prometheus exposition on `listener` at every path, as ZooKeeper's
/// provider does.
pub(crate) async fn serve_metrics(listener: TcpListener, ask: crate::metrics::AskStatus) {
    let ask: Arc<crate::metrics::AskStatus> = Arc::new(ask);
    let handler = move || {
        let ask = ask.clone();
        async move {
            let (reply, answered) = oneshot::channel();
            if !ask(reply) {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            match answered.await {
                Ok(status) => (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    crate::metrics::render(&status),
                )
                    .into_response(),
                Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
    };
    let router = axum::Router::new().fallback(get(handler));
    if let Err(error) = axum::serve(listener, router).await {
        tracing::warn!(%error, "the metrics endpoint stopped");
    }
}

/// Where the AdminServer listens, bound: `None` (and one log line) when the address is
/// taken, as a ZooKeeper member goes on without its AdminServer.
pub(crate) async fn bind(addr: SocketAddr) -> Option<(TcpListener, SocketAddr)> {
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            let bound = listener.local_addr().unwrap_or(addr);
            Some((listener, bound))
        }
        Err(error) => {
            tracing::warn!(%addr, %error, "the AdminServer is not started");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_find_primary_names() {
        assert_eq!(lookup("mntr"), Some(("monitor", false)));
        assert_eq!(lookup("conf"), Some(("configuration", true)));
        assert_eq!(lookup("config"), Some(("configuration", true)));
        assert_eq!(lookup("srvr"), Some(("server_stats", true)));
        assert_eq!(lookup("zabstate"), Some(("zabstate", false)));
        assert_eq!(lookup("nosuch"), None);
        let listed = links("/commands");
        assert_eq!(listed.matches("<a href").count(), COMMANDS.len());
        assert!(
            listed.starts_with("<a href=\"/commands/configuration\">configuration</a>\n<br/>\n")
        );
    }
}
