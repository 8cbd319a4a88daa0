//! Differential test against Apache ZooKeeper 3.8.0. Each `tests/reference/<scenario>/`
//! holds a script of client operations (`script.txt`) and what the real server answered
//! (`expected.txt`, recorded by `cargo xtask record-tree` through ZooKeeper's Java client).
//! Here the same script runs through our preparation, application, reads and watches, with
//! a small stand-in for the Java client's own checks and local watch table, and every line
//! must come out the same: result codes, paths, data, stats (times aside), ACLs, sequence
//! numbers, multi results and the events each session receives, in order.
//!
//! Where ZooKeeper fixed 3.8.0's behaviour in a later release and we follow the fix, the
//! scenario's `differences.txt` lists the recorded lines that change and why; each entry
//! must still match the recording, so a stale one fails too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_datatree::acl::{check_acl, digest_auth, digest_id, open_acl_unsafe, read_acl_unsafe};
use zk_datatree::path::validate_path;
use zk_datatree::{Applied, DataTree, Prepared, Session, WriteRequest, prepare};
use zk_jute::data::{Acl, Id, Stat};
use zk_jute::proto::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, SetAclRequest,
    SetDataRequest,
};
use zk_jute::txn::TxnHeader;
use zk_jute::{
    AddWatchMode, CreateMode, ErrorCode, EventType, KeeperState, MultiOp, MultiRequest, OpCode,
    Perms, WatcherType,
};
use zk_watch::{Registration, WatchKind, WatchManager, WatchRegistry, WatcherId};

const TIME_MS: i64 = 1_700_000_000_000;
const SESSION_TIMEOUT_MS: i32 = 30_000;

/// One client session: its server-side identity and its client-side watch table.
struct Client {
    name: String,
    id: i64,
    auth: Vec<Id>,
    local: WatchRegistry<u8>,
    events: Vec<String>,
}

/// The server (tree + watch manager) and the clients of one script run.
struct Run {
    tree: DataTree,
    watches: WatchManager,
    clients: Vec<Client>,
    next_session: i64,
    super_digest: String,
}

/// What a script line printed: the result line's code and keys.
type Outcome = Result<String, String>;

fn code_name(code: ErrorCode) -> String {
    code.name().to_uppercase()
}

fn fail(code: ErrorCode) -> Outcome {
    Err(code_name(code))
}

fn data_text(data: Option<&Bytes>) -> String {
    match data {
        None => "-".into(),
        Some(b) if b.is_empty() => "''".into(),
        Some(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn parse_data(token: &str) -> Option<Bytes> {
    match token {
        "-" => None,
        "''" => Some(Bytes::new()),
        text => Some(Bytes::from(text.as_bytes().to_vec())),
    }
}

fn parse_perms(letters: &str) -> i32 {
    let bit = |c| match c {
        'c' => Perms::CREATE.0,
        'd' => Perms::DELETE.0,
        'r' => Perms::READ.0,
        'w' => Perms::WRITE.0,
        'a' => Perms::ADMIN.0,
        _ => 0,
    };
    letters.chars().map(bit).fold(0, |a, b| a | b)
}

fn parse_acl(token: &str) -> Vec<Acl> {
    match token {
        "open" => open_acl_unsafe(),
        "read" => read_acl_unsafe(),
        "creator" => vec![Acl {
            perms: Perms::ALL.0,
            id: Id {
                scheme: "auth".into(),
                id: "".into(),
            },
        }],
        list => list
            .split(',')
            .map(|entry| {
                let (scheme, rest) = entry.split_once(':').unwrap_or((entry, ""));
                let (id, perms) = rest.rsplit_once(':').unwrap_or(("", rest));
                Acl {
                    perms: parse_perms(perms),
                    id: Id {
                        scheme: scheme.into(),
                        id: id.into(),
                    },
                }
            })
            .collect(),
    }
}

fn parse_mode(token: &str) -> Option<CreateMode> {
    Some(match token {
        "persistent" => CreateMode::Persistent,
        "ephemeral" => CreateMode::Ephemeral,
        "persistent_sequential" => CreateMode::PersistentSequential,
        "ephemeral_sequential" => CreateMode::EphemeralSequential,
        "container" => CreateMode::Container,
        "ttl" => CreateMode::PersistentWithTtl,
        "ttl_sequential" => CreateMode::PersistentSequentialWithTtl,
        _ => return None,
    })
}

fn watcher_type(token: &str) -> WatcherType {
    match token {
        "children" => WatcherType::Children,
        "data" => WatcherType::Data,
        _ => WatcherType::Any,
    }
}

/// The Java client's own path check (`PathUtils.validatePath(path, isSequential)`).
fn client_path_ok(path: &str, sequential: bool) -> bool {
    let path = if sequential {
        format!("{path}1")
    } else {
        path.to_owned()
    };
    validate_path(&path).is_ok()
}

/// The Java client's TTL check (`EphemeralType.validateTTL`).
fn client_ttl_ok(mode: CreateMode, ttl: i64) -> bool {
    if mode.is_ttl() {
        zk_datatree::ttl_owner(ttl).is_some()
    } else {
        ttl < 0
    }
}

impl Run {
    fn new() -> Self {
        Self {
            tree: DataTree::default(),
            watches: WatchManager::new(),
            clients: Vec::new(),
            next_session: 0x100_0000_0000_0001,
            super_digest: digest_id("super:secret"),
        }
    }

    fn client(&self, name: &str) -> usize {
        self.clients
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("no session {name}"))
    }

    fn stat_text(&self, stat: &Stat) -> String {
        let owner = match self.clients.iter().find(|c| c.id == stat.ephemeral_owner) {
            Some(client) if stat.ephemeral_owner != 0 => client.name.clone(),
            _ => format!("{:#x}", stat.ephemeral_owner),
        };
        format!(
            "{:#x},{:#x},{:#x},{},{},{},{owner},{},{}",
            stat.czxid,
            stat.mzxid,
            stat.pzxid,
            stat.version,
            stat.cversion,
            stat.aversion,
            stat.data_length,
            stat.num_children
        )
    }

    /// Prepares and applies a write from client `c`, then delivers the watch events.
    fn write(&mut self, c: usize, request: &WriteRequest) -> (Prepared, Applied) {
        let zxid = self.tree.last_zxid() + 1;
        let session = Session {
            id: self.clients[c].id,
            auth: &self.clients[c].auth,
        };
        let prepared = prepare(&self.tree, &session, zxid, TIME_MS, request);
        let header = TxnHeader {
            client_id: self.clients[c].id,
            cxid: 0,
            zxid,
            time: TIME_MS,
            r#type: prepared.txn.op_code().code(),
        };
        let digest_before = self.tree.digest();
        let applied = self.tree.apply(&header, &prepared.txn);
        // Preparation predicts the digest the log records; applying must reach it.
        assert_eq!(
            digest_before.wrapping_add(prepared.digest_delta),
            self.tree.digest(),
            "{request:?}"
        );
        for trigger in &applied.triggers {
            let fired = self.watches.trigger(&trigger.path, trigger.event);
            for watcher in fired.watchers {
                // As the server does: no event to a session that may not read the znode.
                let auth = self
                    .clients
                    .iter()
                    .find(|c| c.id as u64 == watcher.0)
                    .map(|c| &c.auth);
                let readable =
                    auth.is_some_and(|auth| check_acl(&trigger.acl, Perms::READ, auth).is_ok());
                if readable {
                    self.deliver(watcher, trigger.event, &trigger.path);
                }
            }
        }
        (prepared, applied)
    }

    /// A server event reaching a session: the client's watch table decides who hears it.
    fn deliver(&mut self, watcher: WatcherId, event: EventType, path: &str) {
        let Some(client) = self.clients.iter_mut().find(|c| c.id as u64 == watcher.0) else {
            return;
        };
        if !client
            .local
            .materialize(KeeperState::SyncConnected, event, path)
            .is_empty()
        {
            client
                .events
                .push(format!("{} {event} {path}", client.name));
        }
    }

    fn watch(
        &mut self,
        c: usize,
        path: &str,
        kind: WatchKind,
        registration: Registration,
        rc: ErrorCode,
    ) {
        let id = WatcherId(self.clients[c].id as u64);
        self.watches.add_watch(path, id, kind).unwrap();
        self.clients[c].local.register(registration, path, 0, rc);
    }

    fn open(&mut self, name: &str) -> Outcome {
        let id = self.next_session;
        self.next_session += 1;
        self.clients.push(Client {
            name: name.into(),
            id,
            auth: vec![Id {
                scheme: "ip".into(),
                id: "127.0.0.1".into(),
            }],
            local: WatchRegistry::new(Some(0)),
            events: Vec::new(),
        });
        let c = self.clients.len() - 1;
        self.write(
            c,
            &WriteRequest::CreateSession {
                timeout_ms: SESSION_TIMEOUT_MS,
            },
        );
        Ok(String::new())
    }

    fn close(&mut self, c: usize) -> Outcome {
        self.write(c, &WriteRequest::CloseSession);
        let client = &mut self.clients[c];
        client
            .events
            .push(format!("{} None {}", client.name, KeeperState::Closed));
        self.watches.remove_watcher(WatcherId(client.id as u64));
        Ok(String::new())
    }

    fn create(&mut self, c: usize, args: &[&str], raw_op: Option<&str>) -> Outcome {
        let (path, data) = (args[0], parse_data(args[1]));
        let flags = match parse_mode(args[2]) {
            Some(mode) => mode.code(),
            None => args[2].parse().unwrap(),
        };
        let mode = CreateMode::try_from(flags).ok();
        let acl = args
            .get(3)
            .filter(|a| a.parse::<i64>().is_err())
            .map_or_else(open_acl_unsafe, |a| parse_acl(a));
        let ttl = args
            .iter()
            .skip(3)
            .find_map(|a| a.parse::<i64>().ok())
            .unwrap_or(-1);
        let op = match (raw_op, mode) {
            (Some(op), _) => op,
            (None, Some(m)) if m.is_ttl() => "ttl",
            (None, Some(CreateMode::Container)) => "container",
            (None, _) => "create2",
        };
        if raw_op.is_none() {
            let mode = mode.unwrap();
            if !client_path_ok(path, mode.is_sequential()) || !client_ttl_ok(mode, ttl) {
                return Err("CLIENT_REJECTED".into());
            }
        }
        let request = CreateRequest {
            path: path.into(),
            data: data.clone(),
            acl: Some(acl.clone()),
            flags,
        };
        let write = match op {
            "ttl" => WriteRequest::CreateTtl(CreateTtlRequest {
                path: path.into(),
                data,
                acl: Some(acl),
                flags,
                ttl,
            }),
            "container" => WriteRequest::Create {
                request,
                with_stat: false,
                container: true,
            },
            "create" => WriteRequest::Create {
                request,
                with_stat: false,
                container: false,
            },
            _ => WriteRequest::Create {
                request,
                with_stat: true,
                container: false,
            },
        };
        let (_, applied) = self.write(c, &write);
        self.result(&applied)?;
        let mut out = format!(" path={}", applied.path.unwrap_or_default());
        // A plain create is answered with the path alone.
        let with_stat = applied.op != OpCode::Create.code();
        if let Some(stat) = applied.stat.filter(|_| with_stat) {
            let _ = write!(out, " stat={}", self.stat_text(&stat));
        }
        Ok(out)
    }

    fn result(&self, applied: &Applied) -> Result<(), String> {
        match ErrorCode::try_from(applied.err) {
            Ok(ErrorCode::Ok) => Ok(()),
            Ok(code) => Err(code_name(code)),
            Err(n) => Err(n.to_string()),
        }
    }

    fn multi(&mut self, c: usize, line: &str) -> Outcome {
        let body = line.split_once(' ').map(|x| x.1).unwrap_or_default();
        let body = body.split_once(' ').map(|x| x.1).unwrap_or_default();
        let mut ops = Vec::new();
        for op in body.split(" ; ") {
            let t: Vec<&str> = op.split_whitespace().collect();
            let path = t[1].to_owned();
            let op = match t[0] {
                "create" => {
                    let mode = parse_mode(t[3]).unwrap();
                    let acl = t.get(4).map_or_else(open_acl_unsafe, |a| parse_acl(a));
                    let ttl: i64 = t.get(5).map_or(-1, |t| t.parse().unwrap());
                    let ttl_ok = !mode.is_ttl() || client_ttl_ok(mode, ttl);
                    if !client_path_ok(&path, mode.is_sequential()) || !ttl_ok {
                        return Err("CLIENT_REJECTED".into());
                    }
                    let request = CreateRequest {
                        path,
                        data: parse_data(t[2]),
                        acl: Some(acl),
                        flags: mode.code(),
                    };
                    if mode.is_ttl() {
                        let CreateRequest {
                            path,
                            data,
                            acl,
                            flags,
                        } = request;
                        MultiOp::CreateTtl(CreateTtlRequest {
                            path,
                            data,
                            acl,
                            flags,
                            ttl,
                        })
                    } else if mode.is_container() {
                        MultiOp::CreateContainer(request)
                    } else {
                        // The Java client's Op.create drops a TTL given with other modes.
                        MultiOp::Create(request)
                    }
                }
                other => {
                    if !client_path_ok(&path, false) {
                        return Err("CLIENT_REJECTED".into());
                    }
                    match other {
                        "delete" => MultiOp::Delete(DeleteRequest {
                            path,
                            version: t[2].parse().unwrap(),
                        }),
                        "set" => MultiOp::SetData(SetDataRequest {
                            path,
                            data: parse_data(t[2]),
                            version: t[3].parse().unwrap(),
                        }),
                        "check" => MultiOp::Check(CheckVersionRequest {
                            path,
                            version: t[2].parse().unwrap(),
                        }),
                        _ => panic!("unknown multi op {other}"),
                    }
                }
            };
            ops.push(op);
        }
        let (_, applied) = self.write(c, &WriteRequest::Multi(MultiRequest { ops }));
        let results: Vec<String> = applied
            .multi
            .iter()
            .map(
                |sub| match (OpCode::try_from(sub.op), ErrorCode::try_from(sub.err)) {
                    (Ok(OpCode::Error), Ok(code)) => format!("error:{}", code_name(code)),
                    (Ok(OpCode::SetData), _) => {
                        format!("set:{}", self.stat_text(sub.stat.as_ref().unwrap()))
                    }
                    (Ok(OpCode::Delete), _) => "delete".into(),
                    (Ok(OpCode::Check), _) => "check".into(),
                    _ => format!("create:{}", sub.path.clone().unwrap_or_default()),
                },
            )
            .collect();
        let text = format!(" results={}", results.join(";"));
        match self.result(&applied) {
            Ok(()) => Ok(text),
            Err(code) => Err(format!("{code}{text}")),
        }
    }

    fn remove_watches(&mut self, c: usize, path: &str, kind: WatcherType, raw: bool) -> Outcome {
        let id = WatcherId(self.clients[c].id as u64);
        let rc = if self.watches.remove_watches(path, kind, id) {
            ErrorCode::Ok
        } else {
            ErrorCode::NoWatcher
        };
        if raw {
            return if rc == ErrorCode::Ok {
                Ok(String::new())
            } else {
                fail(rc)
            };
        }
        let client = &mut self.clients[c];
        let removed = client
            .local
            .unregister(path, None, kind, false, rc)
            .map_err(code_name)?;
        for (event, _) in removed.events() {
            client
                .events
                .push(format!("{} {event} {path}", client.name));
        }
        Ok(String::new())
    }

    /// Runs one script line; `None` for lines that are not operations.
    fn line(&mut self, line: &str) -> Option<(String, Outcome)> {
        let tokens: Vec<&str> = line
            .split_whitespace()
            .take_while(|t| !t.starts_with('#'))
            .collect();
        let (&op, rest) = tokens.split_first()?;
        let (&name, args) = rest.split_first()?;
        if op == "open" {
            return Some((op.into(), self.open(name)));
        }
        let c = self.client(name);
        let auth = self.clients[c].auth.clone();
        let path = args.first().copied().unwrap_or_default();
        let read_path_ok = client_path_ok(path, false);
        let rejected = || Err("CLIENT_REJECTED".to_owned());
        let outcome = match op {
            "close" => {
                let out = self.close(c);
                return Some((op.into(), out));
            }
            "create" => self.create(c, args, None),
            "rawcreate" => self.create(c, &args[1..], Some(args[0])),
            "set" | "delete" | "setacl" if !read_path_ok => rejected(),
            "set" => {
                let request = SetDataRequest {
                    path: path.into(),
                    data: parse_data(args[1]),
                    version: args[2].parse().unwrap(),
                };
                let (_, applied) = self.write(c, &WriteRequest::SetData(request));
                self.result(&applied)
                    .map(|()| format!(" stat={}", self.stat_text(applied.stat.as_ref().unwrap())))
            }
            "delete" => {
                let request = DeleteRequest {
                    path: path.into(),
                    version: args[1].parse().unwrap(),
                };
                let (_, applied) = self.write(c, &WriteRequest::Delete(request));
                self.result(&applied).map(|()| String::new())
            }
            "setacl" => {
                let request = SetAclRequest {
                    path: path.into(),
                    acl: Some(parse_acl(args[1])),
                    version: args[2].parse().unwrap(),
                };
                let (_, applied) = self.write(c, &WriteRequest::SetAcl(request));
                self.result(&applied)
                    .map(|()| format!(" stat={}", self.stat_text(applied.stat.as_ref().unwrap())))
            }
            "multi" => self.multi(c, line),
            "get" | "exists" | "children" | "getacl" | "count" | "addwatch" | "removewatches"
            | "sync"
                if !read_path_ok =>
            {
                rejected()
            }
            "get" => match self.tree.get_data(path, &auth) {
                Ok((data, stat)) => {
                    if args.get(1) == Some(&"watch") {
                        self.watch(
                            c,
                            path,
                            WatchKind::Data,
                            Registration::GetData,
                            ErrorCode::Ok,
                        );
                    }
                    Ok(format!(
                        " data={} stat={}",
                        data_text(data.as_ref()),
                        self.stat_text(&stat)
                    ))
                }
                Err(code) => fail(code),
            },
            "exists" => {
                let result = self.tree.exists(path);
                if args.get(1) == Some(&"watch") && result != Err(ErrorCode::BadArguments) {
                    let rc = result.as_ref().err().copied().unwrap_or(ErrorCode::Ok);
                    self.watch(c, path, WatchKind::Data, Registration::Exists, rc);
                }
                match result {
                    Ok(stat) => Ok(format!(" stat={}", self.stat_text(&stat))),
                    Err(ErrorCode::NoNode) => Ok(" stat=null".into()),
                    Err(code) => fail(code),
                }
            }
            "children" => match self.tree.get_children(path, &auth) {
                Ok((children, stat)) => {
                    if args.get(1) == Some(&"watch") {
                        self.watch(
                            c,
                            path,
                            WatchKind::Child,
                            Registration::GetChildren,
                            ErrorCode::Ok,
                        );
                    }
                    Ok(format!(
                        " children={} stat={}",
                        children.join(","),
                        self.stat_text(&stat)
                    ))
                }
                Err(code) => fail(code),
            },
            "getacl" => match self.tree.get_acl(path, &auth) {
                Ok((acl, stat)) => {
                    let acl: Vec<String> = acl
                        .iter()
                        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, Perms(a.perms)))
                        .collect();
                    Ok(format!(
                        " acl={} stat={}",
                        acl.join(","),
                        self.stat_text(&stat)
                    ))
                }
                Err(code) => fail(code),
            },
            "count" => self
                .tree
                .get_all_children_number(path, &auth)
                .map(|n| format!(" count={n}"))
                .or_else(fail),
            "ephemerals" => {
                let paths = self.tree.get_ephemerals(self.clients[c].id, path);
                Ok(format!(" paths={}", paths.join(",")))
            }
            "sync" => Ok(String::new()),
            "addauth" => {
                for id in digest_auth(args[1], Some(&self.super_digest)) {
                    if !self.clients[c].auth.contains(&id) {
                        self.clients[c].auth.push(id);
                    }
                }
                Ok(String::new())
            }
            "addwatch" => {
                let (kind, mode) = match args[1] {
                    "recursive" => (
                        WatchKind::PersistentRecursive,
                        AddWatchMode::PersistentRecursive,
                    ),
                    _ => (WatchKind::Persistent, AddWatchMode::Persistent),
                };
                self.watch(c, path, kind, Registration::AddWatch(mode), ErrorCode::Ok);
                Ok(String::new())
            }
            "removewatches" => self.remove_watches(c, path, watcher_type(args[1]), false),
            "rawremovewatches" => self.remove_watches(c, path, watcher_type(args[1]), true),
            other => panic!("unknown op {other}"),
        };
        Some((op.into(), outcome))
    }

    fn take_events(&mut self, number: usize, out: &mut String) {
        for client in &mut self.clients {
            for event in client.events.drain(..) {
                let _ = writeln!(out, "{number} event {event}");
            }
        }
        // A closed session's events are printed once, under its close line.
        let closed: Vec<i64> = self
            .clients
            .iter()
            .filter(|c| !self.tree.sessions().contains_key(&c.id))
            .map(|c| c.id)
            .collect();
        self.clients.retain(|c| !closed.contains(&c.id));
    }
}

fn run_script(script: &str) -> String {
    let mut run = Run::new();
    let mut out = String::new();
    for (i, line) in script.lines().enumerate() {
        let number = i + 1;
        let Some((op, outcome)) = run.line(line) else {
            continue;
        };
        let _ = match outcome {
            Ok(keys) => writeln!(out, "{number} {op} OK{keys}"),
            Err(code) => writeln!(out, "{number} {op} {code}"),
        };
        run.take_events(number, &mut out);
    }
    out
}

/// The recording with a scenario's intended differences applied. `differences` holds blocks
/// separated by blank lines: `#` lines saying why (at least one), an `@` line naming the
/// recorded line the block follows (which must occur exactly once), the `-` lines recorded
/// right after it that change, and the `+` lines given instead.
fn apply_differences(expected: &str, differences: &str) -> Result<String, String> {
    let mut lines: Vec<String> = expected.lines().map(String::from).collect();
    for block in differences.split("\n\n") {
        if block.trim().is_empty() {
            continue;
        }
        let (mut why, mut anchor, mut old, mut new) = (0, None, Vec::new(), Vec::new());
        for line in block.lines() {
            if line.starts_with('#') {
                why += 1;
            } else if let Some(rest) = line.strip_prefix("@ ") {
                if anchor.replace(rest).is_some() {
                    return Err(format!("a block with two @ lines:\n{block}"));
                }
            } else if let Some(rest) = line.strip_prefix("- ") {
                old.push(rest);
            } else if let Some(rest) = line.strip_prefix("+ ") {
                new.push(rest.to_string());
            } else if !line.is_empty() {
                return Err(format!("unreadable line in differences.txt: {line}"));
            }
        }
        let Some(anchor) = anchor else {
            if why > 0 && old.is_empty() && new.is_empty() {
                continue; // the file's heading
            }
            return Err(format!("a block without its @ line:\n{block}"));
        };
        if why == 0 || (old.is_empty() && new.is_empty()) {
            return Err(format!("a block without a reason or a change:\n{block}"));
        }
        let at: Vec<usize> = (0..lines.len()).filter(|i| lines[*i] == anchor).collect();
        let [at] = at[..] else {
            return Err(format!(
                "@ {anchor}: found {} times in the recording",
                at.len()
            ));
        };
        let recorded = lines.get(at + 1..at + 1 + old.len()).unwrap_or_default();
        if recorded != old.as_slice() {
            return Err(format!(
                "after @ {anchor} the recording has {recorded:?}, not {old:?}"
            ));
        }
        lines.splice(at + 1..at + 1 + old.len(), new);
    }
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.retain(|d| d.join("expected.txt").exists());
    dirs.sort();
    dirs
}

#[test]
fn scripts_answer_as_zookeeper_does() {
    let mut failures = BTreeMap::new();
    for dir in scenarios() {
        let script = std::fs::read_to_string(dir.join("script.txt")).unwrap();
        let mut expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
        if let Ok(differences) = std::fs::read_to_string(dir.join("differences.txt")) {
            expected = apply_differences(&expected, &differences)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let actual = run_script(&script);
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines().chain(std::iter::repeat("<missing>")))
            .filter(|(e, a)| e != a)
            .map(|(e, a)| format!("  expected: {e}\n  actual:   {a}"))
            .take(5)
            .collect();
        if !diff.is_empty() || expected.lines().count() != actual.lines().count() {
            failures.insert(
                dir.file_name().unwrap().to_string_lossy().into_owned(),
                diff.join("\n"),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "differences from ZooKeeper 3.8.0 (intended ones aside):\n{failures:#?}"
    );
}
