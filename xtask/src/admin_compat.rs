//! `cargo xtask compat-admin [--ensemble]`: the AdminServer's answers, field by field,
//! against Apache ZooKeeper 3.8.0's for the same state; with `--ensemble`, the leaders' and
//! the followers' of two three-member ensembles.
//!
//! Both servers run standalone with the same `zoo.cfg` and their AdminServer on a port
//! of their own. Two sessions of `zk-client` give each the same state: znodes, an
//! ephemeral, a data watch, an `exists` watch on a missing path and a child watch. Then
//! every command (by its primary name, and the four-letter aliases) is asked of both,
//! and the two JSON answers are walked together: a field only one side has, or a value
//! that differs, is a difference (fields are named by their path, `/` between keys). Before comparing, what cannot be equal is made so:
//! session ids become `<session a>`/`<session b>`, the client's ports and the data
//! directories are masked, and the figures that depend on timing (latencies, uptimes,
//! sizes, times, counters) are compared by type. Every difference found must be one of
//! the intended ones listed in [`INTENDED`], each with its reason, or the run fails.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::ensemble::{Kind, LocalEnsemble};
use crate::servers::{ServerProc, ZOOKEEPER_JAR, free_port};
use crate::{Scratch, cargo, run as run_cmd};

/// The commands asked, with the aliases that name them too.
const COMMANDS: &[&str] = &[
    "configuration",
    "conf",
    "connection_stat_reset",
    "connections",
    "cons",
    "dirs",
    "dump",
    "environment",
    "get_trace_mask",
    "hash",
    "initial_configuration",
    "is_read_only",
    "last_snapshot",
    "leader",
    "monitor",
    "mntr",
    "observer_connection_stat_reset",
    "observers",
    "ruok",
    "server_stats",
    "srvr",
    "set_trace_mask",
    "stats",
    "stat",
    "stat_reset",
    "system_properties",
    "voting_view",
    "watch_summary",
    "watches",
    "watches_by_path",
    "zabstate",
    "no_such_command",
];

/// Fields whose values depend on timing or on the process: compared by JSON type only.
const VOLATILE: &[&str] = &[
    "uptime",
    "established",
    "timestamp",
    "avg_latency",
    "min_latency",
    "max_latency",
    "packets_received",
    "packets_sent",
    "datadir_size",
    "logdir_size",
    "data_dir_size",
    "log_dir_size",
    "open_file_descriptor_count",
    "max_file_descriptor_count",
    "version",
    "zookeeper.version",
    "host.name",
    "os.version",
    "user.name",
    "user.home",
    "user.dir",
    "last_buffer_size",
    "min_buffer_size",
    "max_buffer_size",
    "expiry_time_to_session_ids",
    "digests",
    "initial_configuration",
    "last_cxid",
    "last_operation",
];

/// Whether a field's value depends on timing (compared by type only): the listed ones,
/// and an ensemble's latencies, unavailability times, uptimes and sync counts (which
/// member syncs how depends on who started first).
fn volatile(field: &str) -> bool {
    VOLATILE.contains(&field)
        || field.ends_with("_latency")
        || field.contains("unavailable_time")
        || field.ends_with("uptime")
        || ["diff_count", "snap_count", "trunc_count", "looking_count"].contains(&field)
}

/// Differences this server has on purpose: (command, field path prefix, reason). A
/// difference whose path starts with the prefix (`*` for every command) is reported
/// under the reason and does not fail the run. Under [`ABSENT_ONLY`] commands, only a
/// field this server does not have is excused: the fields both have must agree.
const INTENDED: &[(&str, &str, &str)] = &[
    (
        "monitor",
        "",
        "ZooKeeper's metrics system publishes ~480 figures of its Java pipeline (request \
         processors' queues, JVM pauses, Netty buffers, per-namespace counters); this \
         server publishes the mntr figures it measures (the README lists them)",
    ),
    (
        "environment",
        "java.",
        "the JVM's properties: there is no JVM",
    ),
    (
        "environment",
        "os.memory.",
        "the JVM's heap figures: there is no JVM",
    ),
    (
        "system_properties",
        "",
        "a JVM's system properties: this server shows the zookeeper.* properties it read \
         (zoo.cfg keys and -D flags from SERVER_JVMFLAGS/JVMFLAGS), not the JVM's own",
    ),
    (
        "initial_configuration",
        "",
        "ZooKeeper 3.8's ensemble members answer null (QuorumPeerMain never hands the text \
         on); this server answers the zoo.cfg it read, as ZooKeeper's standalone server does",
    ),
    (
        "last_snapshot",
        "zxid",
        "ZooKeeper's learner also writes a snapshot when it syncs with a new leader; a member \
         here snapshots every snapCount txns, so its newest snapshot can be older",
    ),
    (
        "get_trace_mask",
        "",
        "ZooTrace masks do not exist here: logging is set with RUST_LOG",
    ),
    (
        "set_trace_mask",
        "",
        "ZooTrace masks do not exist here: logging is set with RUST_LOG",
    ),
    (
        "*",
        "connections[]/interest_ops",
        "a Java NIO selector's interest set: no selector here",
    ),
    ("*", "connections[]/last_zxid", "not tracked per connection"),
    (
        "*",
        "connections[]/last_response_time",
        "not tracked per connection",
    ),
    (
        "*",
        "connections[]/last_latency",
        "per-connection latencies are not tracked (the server's are)",
    ),
    (
        "*",
        "connections[]/min_latency",
        "per-connection latencies are not tracked (the server's are)",
    ),
    (
        "*",
        "connections[]/avg_latency",
        "per-connection latencies are not tracked (the server's are)",
    ),
    (
        "*",
        "connections[]/max_latency",
        "per-connection latencies are not tracked (the server's are)",
    ),
    ("*", "server_stats/auth_failed_count", "not counted"),
    (
        "*",
        "server_stats/non_mtls",
        "counts of plaintext connections accepted, which ZooKeeper keeps only with its \
         Netty connection factory (its default NIO one reports 0): not counted",
    ),
    (
        "*",
        "server_stats/fsync_threshold_exceed_count",
        "slow fsyncs are logged (fsync.warningthresholdms), not counted",
    ),
];

/// `cargo xtask compat-admin`.
pub(crate) fn run(rest: &[String]) -> Result<()> {
    let ensemble = match rest.first().map(String::as_str) {
        None => false,
        Some("--ensemble") => true,
        Some(arg) => bail!("compat-admin takes only --ensemble (got {arg})"),
    };
    if !Path::new(ZOOKEEPER_JAR).is_file() {
        bail!("{ZOOKEEPER_JAR} is missing: this needs Debian's `zookeeper` package and a JRE");
    }
    run_cmd(cargo().args(["build", "-p", "zk-server"]))?;
    let binary = crate::bench::target_dir()?.join("debug/zk-server");
    let scratch = Scratch::new("compat-admin")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut report = Report::default();
    if ensemble {
        let start = |kind, name: &str| -> Result<(LocalEnsemble, usize)> {
            let dir = scratch.0.join(name);
            std::fs::create_dir_all(&dir)?;
            let e = LocalEnsemble::start(kind, 3, &dir, Some(&binary), "admin.enableServer=true")?;
            let leader = e.wait_for_leader(Duration::from_secs(120))?;
            Ok((e, leader))
        };
        let (theirs, their_leader) = start(Kind::ZooKeeper, "zookeeper")?;
        let (ours, our_leader) = start(Kind::Ours, "ours")?;
        // The state is made through a follower; the follower and the leader are asked.
        let (their_follower, our_follower) = ((their_leader + 1) % 3, (our_leader + 1) % 3);
        let their_sessions = runtime.block_on(make_state(theirs.addrs[their_follower]))?;
        let our_sessions = runtime.block_on(make_state(ours.addrs[our_follower]))?;
        let masks = |e: &LocalEnsemble, sessions: &Sessions, dir: &str| {
            let mut ports = Vec::new();
            for i in 0..3 {
                let sid = i + 1;
                ports.push((e.addrs[i].port(), format!("<client port {sid}>")));
                ports.push((e.admin_ports[i], format!("<admin port {sid}>")));
                ports.push((e.peer_ports[i].0, format!("<quorum port {sid}>")));
                ports.push((e.peer_ports[i].1, format!("<election port {sid}>")));
            }
            Masks {
                sessions: sessions.ids(),
                ports,
                dir: scratch.0.join(dir).display().to_string(),
            }
        };
        let (their_masks, our_masks) = (
            masks(&theirs, &their_sessions, "zookeeper"),
            masks(&ours, &our_sessions, "ours"),
        );
        for (role, theirs_at, ours_at) in [
            ("leader", their_leader, our_leader),
            ("follower", their_follower, our_follower),
        ] {
            eprintln!(
                "compat-admin: the {role}s: Apache ZooKeeper's server {}, ours {}",
                theirs_at + 1,
                ours_at + 1
            );
            report.compare_all(
                role,
                (&their_masks, theirs.admin_ports[theirs_at]),
                (&our_masks, ours.admin_ports[ours_at]),
            )?;
        }
        drop((their_sessions, our_sessions));
    } else {
        let (their_admin, our_admin) = (free_port()?, free_port()?);
        let admin = |port: u16| format!("admin.enableServer=true\nadmin.serverPort={port}\n");
        let theirs = ServerProc::start_zookeeper_with(&scratch.0, &admin(their_admin))?;
        let ours = ServerProc::start_ours_with(&binary, &scratch.0, &admin(our_admin))?;
        eprintln!(
            "compat-admin: Apache ZooKeeper 3.8.0 on {} (admin {their_admin}), zk-server on \
             {} (admin {our_admin})",
            theirs.addr, ours.addr
        );
        let their_sessions = runtime.block_on(make_state(theirs.addr))?;
        let our_sessions = runtime.block_on(make_state(ours.addr))?;
        let their_masks = Masks {
            sessions: their_sessions.ids(),
            ports: vec![
                (theirs.addr.port(), "<client port>".into()),
                (their_admin, "<admin port>".into()),
            ],
            dir: scratch.0.join("zookeeper").display().to_string(),
        };
        let our_masks = Masks {
            sessions: our_sessions.ids(),
            ports: vec![
                (ours.addr.port(), "<client port>".into()),
                (our_admin, "<admin port>".into()),
            ],
            dir: scratch.0.join("ours").display().to_string(),
        };
        report.compare_all(
            "standalone",
            (&their_masks, their_admin),
            (&our_masks, our_admin),
        )?;
        drop((their_sessions, our_sessions));
    }
    report.finish()
}

/// What the comparisons found.
#[derive(Default)]
struct Report {
    same: usize,
    asked: usize,
    intended: BTreeMap<&'static str, Vec<String>>,
    unexpected: Vec<String>,
}

impl Report {
    /// Asks every command of both AdminServers and compares the answers.
    fn compare_all(
        &mut self,
        role: &str,
        (their_masks, their_admin): (&Masks, u16),
        (our_masks, our_admin): (&Masks, u16),
    ) -> Result<()> {
        for command in COMMANDS {
            let reference = their_masks.apply(fetch(their_admin, command)?);
            let answer = our_masks.apply(fetch(our_admin, command)?);
            let mut differences = Vec::new();
            self.same += compare("", &reference, &answer, &mut differences);
            self.asked += 1;
            for difference in differences {
                match intended_reason(command, &difference) {
                    Some(reason) => self
                        .intended
                        .entry(reason)
                        .or_default()
                        .push(format!("{role} {command}: {}", difference.path)),
                    None => self
                        .unexpected
                        .push(format!("{role} {command}: {difference}")),
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        println!(
            "compat-admin: {} answers compared, {} fields equal",
            self.asked, self.same
        );
        for (reason, fields) in &self.intended {
            println!("intended ({} fields): {reason}", fields.len());
            for field in fields.iter().take(4) {
                println!("    {field}");
            }
            if fields.len() > 4 {
                println!("    ... and {} more", fields.len() - 4);
            }
        }
        if !self.unexpected.is_empty() {
            for difference in &self.unexpected {
                println!("DIFFERENT {difference}");
            }
            bail!("{} unexpected differences", self.unexpected.len());
        }
        println!("no unexpected difference");
        Ok(())
    }
}

/// The two sessions that made the state, kept open while the commands run.
struct Sessions {
    a: zk_client::Client,
    b: zk_client::Client,
}

impl Sessions {
    fn ids(&self) -> [(i64, &'static str); 2] {
        [
            (self.a.session_id(), "<session a>"),
            (self.b.session_id(), "<session b>"),
        ]
    }
}

async fn make_state(addr: SocketAddr) -> Result<Sessions> {
    use zk_client::{Client, ClientOptions, CreateOptions};
    let options = ClientOptions {
        session_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    let connect = addr.to_string();
    let a = Client::connect(&connect, options.clone()).await?;
    let b = Client::connect(&connect, options).await?;
    a.create("/app", b"", &CreateOptions::persistent()).await?;
    a.create("/app/config", b"v0", &CreateOptions::persistent())
        .await?;
    a.set_data("/app/config", b"v1", None).await?;
    b.create("/app/eph", b"e", &CreateOptions::ephemeral())
        .await?;
    // Watches: a data watch, an exists watch on a missing path, a child watch. The
    // watch futures are dropped; the server keeps the watches.
    let _ = a.get_data_w("/app/config").await?;
    let _ = b.exists_w("/app/missing").await?;
    let _ = b.get_children_w("/app").await?;
    Ok(Sessions { a, b })
}

/// What is masked in one server's answers: its sessions' ids, its ports (as numbers, and
/// after a `:` in addresses) and its directory.
struct Masks {
    sessions: [(i64, &'static str); 2],
    ports: Vec<(u16, String)>,
    dir: String,
}

impl Masks {
    fn apply(&self, value: Value) -> Value {
        match value {
            Value::Number(n) => {
                let id = n.as_i64();
                if let Some((_, name)) = self.sessions.iter().find(|(s, _)| Some(*s) == id) {
                    return Value::String((*name).to_owned());
                }
                match self.ports.iter().find(|(p, _)| Some(i64::from(*p)) == id) {
                    Some((_, name)) => Value::String(name.clone()),
                    None => Value::Number(n),
                }
            }
            Value::String(s) => Value::String(self.text(&s)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.apply(v)).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.text(&k), self.apply(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    fn text(&self, s: &str) -> String {
        if let Some((_, name)) = self.sessions.iter().find(|(id, _)| s == id.to_string()) {
            return (*name).to_owned();
        }
        if let Some((_, name)) = self.ports.iter().find(|(p, _)| s == p.to_string()) {
            return name.clone();
        }
        let mut s = s.replace(&self.dir, "<dir>");
        for (port, name) in &self.ports {
            s = s.replace(&format!(":{port}"), &format!(":{name}"));
        }
        // A client's address: 127.0.0.1:<its ephemeral port>.
        if s.strip_prefix("127.0.0.1:")
            .is_some_and(|port| port.parse::<u16>().is_ok())
        {
            s = "127.0.0.1:<port>".into();
        }
        s
    }
}

/// One field that differs.
struct Difference {
    path: String,
    reference: String,
    ours: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: Apache ZooKeeper {}, ours {}",
            self.path, self.reference, self.ours
        )
    }
}

/// The JSON type's name (what a volatile field is compared by).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Walks `reference` and `ours` together from `path`, adding each difference; returns
/// how many leaf fields were equal.
fn compare(path: &str, reference: &Value, ours: &Value, out: &mut Vec<Difference>) -> usize {
    let leaf = path.rsplit(['/', ']']).next().unwrap_or(path);
    if volatile(leaf) {
        if kind(reference) == kind(ours) {
            return 1;
        }
        out.push(Difference {
            path: path.to_owned(),
            reference: format!("a {}", kind(reference)),
            ours: format!("a {}", kind(ours)),
        });
        return 0;
    }
    match (reference, ours) {
        (Value::Object(r), Value::Object(o)) => {
            let mut same = 0;
            for (key, value) in r {
                let at = join(path, key);
                match o.get(key) {
                    Some(mine) => same += compare(&at, value, mine, out),
                    None => out.push(Difference {
                        path: at,
                        reference: short(value),
                        ours: "absent".into(),
                    }),
                }
            }
            for (key, value) in o {
                if !r.contains_key(key) {
                    out.push(Difference {
                        path: join(path, key),
                        reference: "absent".into(),
                        ours: short(value),
                    });
                }
            }
            same
        }
        (Value::Array(r), Value::Array(o)) if r.len() == o.len() => {
            // Lists of sessions, paths and connections come in a hash set's order from
            // ZooKeeper: connections are paired by session.
            let (mut r, mut o) = (r.clone(), o.clone());
            let key = |v: &Value| v.get("session_id").unwrap_or(v).to_string();
            r.sort_by_key(key);
            o.sort_by_key(key);
            let at = format!("{path}[]");
            let at = at.as_str();
            r.iter().zip(&o).map(|(a, b)| compare(at, a, b, out)).sum()
        }
        _ if reference == ours => 1,
        _ => {
            out.push(Difference {
                path: path.to_owned(),
                reference: short(reference),
                ours: short(ours),
            });
            0
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}/{key}")
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Commands whose intended differences are fields this server leaves out, never values.
const ABSENT_ONLY: &[&str] = &["monitor", "environment", "system_properties"];

fn intended_reason(command: &str, difference: &Difference) -> Option<&'static str> {
    let path = difference.path.as_str();
    let primary = match command {
        "conf" => "configuration",
        "cons" => "connections",
        "mntr" => "monitor",
        "srvr" => "server_stats",
        "stat" => "stats",
        other => other,
    };
    if ABSENT_ONLY.contains(&primary) && difference.ours != "absent" {
        return None;
    }
    INTENDED
        .iter()
        .find(|(c, prefix, _)| (*c == "*" || *c == primary) && path.starts_with(prefix))
        .map(|(_, _, reason)| *reason)
}

/// `GET /commands/<command>` on 127.0.0.1:`port`: the JSON body.
fn fetch(port: u16, command: &str) -> Result<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to the AdminServer on port {port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /commands/{command} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("{command}: no HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("{command}: {}", head.lines().next().unwrap_or_default());
    }
    serde_json::from_str(body).with_context(|| format!("{command}: not JSON: {body}"))
}
