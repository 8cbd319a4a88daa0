//! Running commands against a session: what each prints (zkCli's text, or one JSON value
//! with `--json`), the shell's own commands (history, redo, printwatches, connect, close),
//! and watch events printed as they arrive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use zk_client::{
    AddWatchMode, Client, ClientOptions, CreateMode, CreateOptions, Error, EventType, Multi,
    SessionState, WatchedEvent, WatcherType,
};
use zk_jute::KeeperState;

use crate::Args;
use crate::parse::{self, Command, ParseError, WatchKind};
use crate::print;

/// Where watch events and connection changes are printed: a shell's prompt must be redrawn
/// around them, so the shell supplies this.
pub(crate) type EventPrinter = Arc<dyn Fn(String) + Send + Sync>;

/// What a command prints when it succeeds.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// zkCli's standard output.
    text: String,
    /// zkCli's standard error (e.g. `Created /path`, which zkCli prints there).
    note: String,
    /// The answer as JSON.
    json: Value,
}

impl Reply {
    fn text(text: impl Into<String>, json: Value) -> Self {
        Reply {
            text: text.into(),
            note: String::new(),
            json,
        }
    }

    /// Adds the stat that `-s` prints after the answer (and JSON always carries).
    fn with_stat(mut self, node: &zk_client::Stat, print_it: bool) -> Self {
        if print_it {
            self.text.push_str(&print::stat(node));
        }
        self.json["stat"] = print::stat_json(node);
        self
    }
}

/// Why a command failed.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    /// The process's exit code in one-shot mode: 1 for a failed command, 2 for one that
    /// could not be understood.
    code: u8,
    /// The ZooKeeper error's name, for JSON.
    error: String,
}

impl Failure {
    /// What is printed.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 2,
            error: "Usage".into(),
        }
    }
    fn invalid(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
            error: "BadArguments".into(),
        }
    }
    fn zk(error: &Error, path: &str) -> Self {
        Failure {
            message: print::error(error, path),
            code: 1,
            error: format!("{:?}", error.root())
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// How a line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It ran (or printed its failure); the shell goes on. The code is for one-shot mode.
    Done(u8),
    /// `quit`.
    Quit,
}

/// A shell's state: the session, the options it was opened with, history, and whether
/// watch events are printed.
pub(crate) struct Session {
    args: Args,
    client: Option<Client>,
    host: String,
    print_watches: Arc<AtomicBool>,
    events: EventPrinter,
    history: BTreeMap<usize, String>,
    count: usize,
    /// The tasks keeping persistent watches set, by path: a new `addWatch` on a path
    /// replaces the old one, so that an event after the replacement is printed only if the
    /// new one hears it, as on ZooKeeper 3.8, where the new mode replaces the old one's.
    /// (zkCli keeps both; on a server where both modes coexist, ZooKeeper 3.9 or ours, it
    /// also prints the events only the replaced one hears.)
    persistent: std::collections::HashMap<String, tokio::task::JoinHandle<()>>,
    /// The line to the task printing the session's watch events: a flush request sent down
    /// it is answered once every event the client had received is printed.
    printer: Option<FlushLine>,
}

/// A flush request's line to the event printer, which answers on the sender.
type FlushLine = tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<()>>;

/// A watch event as zkCli's watcher prints it, or as one JSON line.
fn event_text(event: &WatchedEvent, json: bool) -> String {
    if json {
        let value = json!({"event": {
            "state": format!("{:?}", event.state),
            "type": format!("{:?}", event.event_type),
            "path": (!event.path.is_empty()).then_some(&event.path),
        }});
        format!("{value}\n")
    } else {
        format!("\nWATCHER::\n\n{event}\n")
    }
}

fn version(text: Option<&str>) -> Result<Option<i32>, Failure> {
    text.map(|v| {
        v.parse()
            .map_err(|_| Failure::invalid(format!("For input string: \"{v}\"")))
    })
    .transpose()
}

impl Session {
    /// A session that is not connected yet.
    pub(crate) fn new(args: &Args, events: EventPrinter) -> Self {
        Session {
            args: args.clone(),
            client: None,
            host: args.server.clone(),
            print_watches: Arc::new(AtomicBool::new(true)),
            events,
            history: BTreeMap::new(),
            count: 0,
            persistent: std::collections::HashMap::new(),
            printer: None,
        }
    }

    /// The client, if a session is open.
    pub(crate) fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    /// The prompt zkCli shows: `[zk: host(CONNECTED) 3] `.
    pub(crate) fn prompt(&self) -> String {
        let state = match self.client.as_ref().map(Client::state) {
            None => "CLOSED",
            Some(SessionState::Connecting) => "CONNECTING",
            Some(SessionState::Connected) => "CONNECTED",
            Some(SessionState::ConnectedReadOnly) => "CONNECTEDREADONLY",
            Some(SessionState::Disconnected) => "CONNECTING",
            Some(SessionState::Expired | SessionState::Closed) => "CLOSED",
            Some(SessionState::AuthFailed) => "AUTH_FAILED",
        };
        format!("[zk: {}({state}) {}] ", self.host, self.count)
    }

    /// Opens a session to `host` (closing any open one). The shell (`announce`) prints its
    /// state changes as zkCli's watcher does and, as zkCli, does not wait for the first
    /// connection unless `-waitforconnection` was given: commands wait for it instead.
    /// One-shot mode waits up to `-timeout` and fails (exit code 3) without a server.
    pub(crate) async fn connect(&mut self, host: &str, announce: bool) -> Result<(), Failure> {
        self.close().await;
        // The old session's watches ended with it.
        self.persistent.clear();
        self.host = host.to_owned();
        let options = ClientOptions {
            session_timeout: self.args.timeout,
            connect_timeout: self.args.timeout,
            read_only: self.args.read_only,
            tls: self.args.security.tls.clone(),
            sasl: self.args.security.sasl.clone(),
            ..ClientOptions::default()
        };
        let cannot = |e: Error| Failure {
            message: format!("Cannot connect to {host}: {e}"),
            code: 3,
            error: "ConnectionLoss".into(),
        };
        let client = if announce && !self.args.wait_for_connection {
            Client::start(host, options).map_err(cannot)?
        } else {
            Client::connect(host, options).await.map_err(cannot)?
        };
        // With the session's states announced, they print in one stream with the watch
        // events, in the order the client met them, as zkCli's one watcher hears both.
        let events = if announce {
            client.events()
        } else {
            client.watch_events()
        };
        self.printer = Some(self.print_events(events));
        self.client = Some(client);
        Ok(())
    }

    /// Closes the session, if one is open, and prints what the session heard until then:
    /// the watch events that had arrived and, with the states announced, `Closed`, as
    /// zkCli's watcher hears the close.
    pub(crate) async fn close(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
        // The closed session's stream has ended: the printer prints it to its end.
        self.print_pending_events().await;
    }

    /// Keeps a one-shot watch set until it fires: its event is printed from the session's
    /// ordered stream (see `print_events`).
    fn follow(&self, watch: zk_client::OneshotWatch) {
        tokio::spawn(async move {
            let _ = watch.await;
        });
    }

    /// Prints the session's events as they arrive, in the order the server sent them
    /// across all watches (zkCli's one watcher hears them on the Java client's one event
    /// thread), from a task that ends on a flush request, answered once what had arrived is
    /// printed; returns the flush line. A state event is printed when the state changed.
    fn print_events(&self, mut events: zk_client::WatchEvents) -> FlushLine {
        let (flush, mut requests) =
            tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<()>>();
        let printer = self.events.clone();
        let (print_watches, json) = (self.print_watches.clone(), self.args.json);
        let sasl = self.args.security.sasl.is_some();
        let mut shown = None;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    // An event that has arrived is printed before a flush is answered.
                    biased;
                    event = events.next_event() => {
                        let Some(event) = event else { break };
                        let state = (event.event_type == EventType::None).then_some(event.state);
                        if state.is_some() && std::mem::replace(&mut shown, state) == state {
                            continue;
                        }
                        if print_watches.load(Ordering::Relaxed) {
                            printer(event_text(&event, json));
                            // zk-client connects only once the SASL exchange succeeded:
                            // then the Java client's watcher hears SaslAuthenticated too.
                            if sasl && state == Some(KeeperState::SyncConnected) {
                                let event = WatchedEvent::session(KeeperState::SaslAuthenticated);
                                printer(event_text(&event, json));
                            }
                        }
                    }
                    Some(done) = requests.recv() => {
                        let _ = done.send(());
                        break;
                    }
                }
            }
        });
        flush
    }

    /// Waits until every watch event the client has received is printed, then stops
    /// printing them, as zkCli's event thread delivers what is queued before the session's
    /// close. The client hands an event over before it resolves the reply that followed it
    /// on the wire, so an event a command's change fired is printed before the session
    /// closes or the shell ends.
    async fn print_pending_events(&mut self) {
        let Some(line) = self.printer.take() else {
            return;
        };
        let (done, printed) = tokio::sync::oneshot::channel();
        if line.send(done).is_ok() {
            // A printer that ends first (its session over) drops the request.
            let _ = printed.await;
        }
    }

    /// Runs one line as the shell does: recorded in the history, then run; prints its
    /// output and any failure.
    pub(crate) async fn execute_line(&mut self, line: &str) -> Outcome {
        if line.trim().is_empty() {
            return Outcome::Done(0);
        }
        self.history.insert(self.count, line.to_owned());
        let outcome = self.execute(&parse::tokenize(line)).await;
        self.count += 1;
        outcome
    }

    /// Runs a command given as words, as one-shot mode gets them from the command line
    /// (no quoting to undo).
    pub(crate) async fn execute_words(&mut self, words: &[String]) -> Outcome {
        self.history.insert(self.count, words.join(" "));
        let outcome = self.execute(words).await;
        self.count += 1;
        outcome
    }

    async fn execute(&mut self, tokens: &[String]) -> Outcome {
        let command = match parse::parse(tokens) {
            Ok(command) => command,
            Err(e) => {
                if matches!(e, ParseError::NotFound(_)) && !self.args.json {
                    eprint!("{}", parse::usage());
                }
                return self.report(Err(Failure::usage(e.to_string())));
            }
        };
        match command {
            Command::Quit => {
                self.print_pending_events().await;
                if let Some(client) = self.client.take() {
                    // As zkCli's watcher hears the session close: printed here, before
                    // the close and the shell's exit (the printer has stopped), so that
                    // it shows even when the close waits on an unreachable server.
                    if self.print_watches.swap(false, Ordering::Relaxed)
                        && !client.state().is_terminal()
                    {
                        let event = WatchedEvent::session(KeeperState::Closed);
                        (self.events)(event_text(&event, self.args.json));
                    }
                    let _ = client.close().await;
                }
                Outcome::Quit
            }
            Command::Redo { index } => {
                let Some(previous) = index
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < self.count)
                    .and_then(|i| self.history.get(&i).cloned())
                else {
                    return self.report(Err(Failure::usage("Command index out of range")));
                };
                if parse::tokenize(&previous).first().map(String::as_str) == Some("redo") {
                    return self.report(Err(Failure::usage("No redoing redos")));
                }
                self.history.insert(self.count, previous.clone());
                Box::pin(self.execute(&parse::tokenize(&previous))).await
            }
            command => {
                let result = self.run(command).await;
                self.report(result)
            }
        }
    }

    /// Prints a command's result; returns its exit code.
    fn report(&self, result: Result<Reply, Failure>) -> Outcome {
        match result {
            Ok(reply) if self.args.json => {
                if !reply.json.is_null() {
                    println!("{}", reply.json);
                }
                Outcome::Done(0)
            }
            Ok(reply) => {
                eprint!("{}", reply.note);
                print!("{}", reply.text);
                Outcome::Done(0)
            }
            Err(failure) => {
                if self.args.json {
                    println!(
                        "{}",
                        json!({"error": {"code": failure.error, "message": failure.message}})
                    );
                } else {
                    eprintln!("{}", failure.message);
                }
                Outcome::Done(failure.code)
            }
        }
    }

    /// Runs a command that needs no history of its own.
    async fn run(&mut self, command: Command) -> Result<Reply, Failure> {
        match command {
            Command::History => {
                let from = self.count.saturating_sub(10);
                let mut text = String::new();
                let mut entries = Vec::new();
                for (i, line) in self.history.range(from..=self.count) {
                    text.push_str(&format!("{i} - {line}\n"));
                    entries.push(json!({"index": i, "command": line}));
                }
                return Ok(Reply::text(text, Value::Array(entries)));
            }
            Command::PrintWatches { on: None } => {
                let on = self.print_watches.load(Ordering::Relaxed);
                let word = if on { "on" } else { "off" };
                return Ok(Reply::text(
                    format!("printwatches is {word}\n"),
                    json!({"printwatches": on}),
                ));
            }
            Command::PrintWatches { on: Some(on) } => {
                self.print_watches.store(on, Ordering::Relaxed);
                return Ok(Reply::default());
            }
            Command::Connect { host } => {
                let host = host.unwrap_or_else(|| self.host.clone());
                self.connect(&host, true).await?;
                return Ok(Reply::default());
            }
            _ => {}
        }
        let Some(client) = self.client.clone().filter(|c| !c.state().is_terminal()) else {
            return Ok(Reply::text(
                "Not connected\n",
                json!({"error": "Not connected"}),
            ));
        };
        self.run_on(&client, command).await
    }

    /// Runs a command against the session.
    async fn run_on(&mut self, client: &Client, command: Command) -> Result<Reply, Failure> {
        match command {
            Command::Ls {
                path,
                stat,
                watch,
                recursive,
            } => {
                if recursive {
                    let (paths, failure) = self.subtree_dfs(client, &path, watch).await;
                    let text: String = paths.iter().map(|p| format!("{p}\n")).collect();
                    return match failure {
                        None => Ok(Reply::text(text, json!(paths))),
                        Some(failure) => {
                            // What was listed before the failure is printed, as zkCli does.
                            if !self.args.json {
                                print!("{text}");
                            }
                            Err(failure)
                        }
                    };
                }
                let listed = match (stat, watch) {
                    (false, false) => client.get_children(&path).await.map(|c| (c, None)),
                    (true, false) => client
                        .get_children_with_stat(&path)
                        .await
                        .map(|(c, s)| (c, Some(s))),
                    (false, true) => client.get_children_w(&path).await.map(|(c, w)| {
                        self.follow(w);
                        (c, None)
                    }),
                    (true, true) => {
                        client
                            .get_children_with_stat_w(&path)
                            .await
                            .map(|(c, s, w)| {
                                self.follow(w);
                                (c, Some(s))
                            })
                    }
                };
                let (mut children, node) = listed.map_err(|e| Failure::zk(&e, &path))?;
                children.sort();
                let reply = Reply::text(
                    format!("[{}]\n", children.join(", ")),
                    json!({"children": children}),
                );
                Ok(match node {
                    Some(node) => reply.with_stat(&node, true),
                    None => reply,
                })
            }
            Command::Create {
                path,
                data,
                acl,
                ephemeral,
                sequential,
                container,
                ttl,
            } => {
                if container && (ephemeral || sequential) {
                    return Err(Failure::invalid(
                        "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
                    ));
                }
                let ttl = ttl
                    .map(|t| {
                        t.parse::<i64>()
                            .map_err(|_| Failure::invalid("-t argument must be a long value"))
                    })
                    .transpose()?;
                if ttl.is_some() && ephemeral {
                    return Err(Failure::invalid(
                        "TTLs cannot be used with Ephemeral znodes",
                    ));
                }
                if ttl.is_some() && container {
                    return Err(Failure::invalid(
                        "TTLs cannot be used with Container znodes",
                    ));
                }
                let mode = match (ephemeral, sequential, container, ttl.is_some()) {
                    (true, true, _, _) => CreateMode::EphemeralSequential,
                    (true, false, _, _) => CreateMode::Ephemeral,
                    (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
                    (false, true, _, false) => CreateMode::PersistentSequential,
                    (false, false, true, _) => CreateMode::Container,
                    (false, false, false, true) => CreateMode::PersistentWithTtl,
                    (false, false, false, false) => CreateMode::Persistent,
                };
                if let Some(ttl) = ttl {
                    // EphemeralType.TTL's bounds: positive, at most 2^40 - 1 ms.
                    if ttl <= 0 || ttl > (1_i64 << 40) - 1 {
                        return Err(Failure::invalid(format!(
                            "ttl must be positive and cannot be larger than: {}",
                            (1_i64 << 40) - 1
                        )));
                    }
                }
                let mut options = CreateOptions::new(mode);
                if let Some(acl) = acl {
                    options = options.with_acl(print::parse_acl(&acl));
                }
                options.ttl_ms = ttl;
                // zkCli sends null data when none is given.
                options.null_data = data.is_none();
                let created = client
                    .create(&path, data.as_deref().unwrap_or("").as_bytes(), &options)
                    .await
                    .map_err(|e| Failure::zk(&e, &path))?;
                Ok(Reply {
                    text: String::new(),
                    note: format!("Created {}\n", created.0),
                    json: json!({"created": created.0, "stat": print::stat_json(&created.1)}),
                })
            }
            Command::Get { path, stat, watch } => {
                let (data, node) = self
                    .read_data(client, &path, watch)
                    .await
                    .map_err(|e| Failure::zk(&e, &path))?;
                let text = format!("{}\n", data.as_deref().unwrap_or("null"));
                let value = json!({"data": data});
                Ok(Reply::text(text, value).with_stat(&node, stat))
            }
            Command::Set {
                path,
                data,
                stat,
                version: v,
            } => {
                let v = version(v.as_deref())?;
                let node = client
                    .set_data(&path, data.as_bytes(), v)
                    .await
                    .map_err(|e| Failure::zk(&e, &path))?;
                Ok(Reply::text("", json!({})).with_stat(&node, stat))
            }
            Command::Stat { path, watch } => {
                let node = if watch {
                    client.exists_w(&path).await.map(|(s, w)| {
                        self.follow(w);
                        s
                    })
                } else {
                    client.exists(&path).await
                }
                .map_err(|e| Failure::zk(&e, &path))?
                .ok_or_else(|| Failure::zk(&Error::NoNode, &path))?;
                Ok(Reply::text(
                    print::stat(&node),
                    json!({"stat": print::stat_json(&node)}),
                ))
            }
            Command::Delete { path, version: v } => {
                let v = version(v.as_deref())?;
                client
                    .delete(&path, v)
                    .await
                    .map_err(|e| Failure::zk(&e, &path))?;
                Ok(Reply::text("", json!({"deleted": path})))
            }
            Command::DeleteAll { path, batch } => {
                let batch: usize = match batch {
                    Some(b) => b
                        .parse()
                        .ok()
                        .filter(|b| *b > 0)
                        .ok_or_else(|| Failure::invalid("-b argument must be an int value"))?,
                    None => 1000,
                };
                zk_client::validate_path(&path).map_err(|e| Failure::zk(&e, &path))?;
                let tree = client
                    .list_subtree(&path)
                    .await
                    .map_err(|e| Failure::zk(&e, &path))?;
                let mut failed = false;
                for chunk in tree.rchunks(batch) {
                    let ops = chunk
                        .iter()
                        .rev()
                        .fold(Multi::new(), |ops, p| ops.delete(p, None));
                    if client.multi(&ops).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                let note = if failed {
                    "Failed to delete some node(s) in the subtree!\n".to_owned()
                } else {
                    String::new()
                };
                Ok(Reply {
                    text: String::new(),
                    note,
                    json: json!({"deleted": tree, "complete": !failed}),
                })
            }
            Command::GetAcl { path, stat } => {
                let (acl, node) = client
                    .get_acl(&path)
                    .await
                    .map_err(|e| Failure::zk(&e, &path))?;
                let text: String = acl.iter().map(print::acl_entry).collect();
                let value = json!({"acl": acl.iter().map(print::acl_json).collect::<Vec<_>>()});
                Ok(Reply::text(text, value).with_stat(&node, stat))
            }
            Command::SetAcl {
                path,
                acl,
                stat,
                version: v,
                recursive,
            } => {
                let acl = print::parse_acl(&acl);
                let v = version(v.as_deref())?;
                if recursive {
                    let mut text = String::new();
                    let (paths, failure) = self.subtree_dfs(client, &path, false).await;
                    if let Some(failure) = failure {
                        return Err(failure);
                    }
                    for p in paths {
                        if let Err(e) = client.set_acl(&p, &acl, v).await {
                            // zkCli prints the exception's own message here, unwrapped and
                            // without a newline.
                            text.push_str(&print::keeper_message(&e, &p));
                        }
                    }
                    return Ok(Reply::text(text, json!({"path": path})));
                }
                let node = client
                    .set_acl(&path, &acl, v)
                    .await
                    .map_err(|e| Failure::zk(&e, &path))?;
                Ok(Reply::text("", json!({})).with_stat(&node, stat))
            }
            Command::AddAuth { scheme, auth } => {
                let auth = auth.unwrap_or_default();
                // zkCli does not wait for the answer; a failure ends the session, which the
                // state printer reports.
                let added = tokio::time::timeout(
                    Duration::from_secs(30),
                    client.add_auth(&scheme, auth.as_bytes()),
                )
                .await;
                match added {
                    Ok(Err(e)) => Err(Failure::zk(&e, "")),
                    _ => Ok(Reply::text("", json!({"added": scheme}))),
                }
            }
            Command::Sync { path } => match client.sync(&path).await {
                Ok(()) => Ok(Reply::text("Sync is OK\n", json!({"synced": path}))),
                Err(e @ Error::InvalidPath { .. }) => Err(Failure::zk(&e, &path)),
                // zkCli reports a failed sync on stdout and carries on (exit code 0).
                Err(e) => Ok(Reply::text(
                    format!("Sync has failed. rc={}\n", e.code().unwrap_or(-1)),
                    json!({"error": {"code": Failure::zk(&e, &path).error, "path": path}}),
                )),
            },
            Command::AddWatch { path, mode } => {
                let mode = match mode {
                    parse::AddWatchMode::Persistent => AddWatchMode::Persistent,
                    parse::AddWatchMode::PersistentRecursive => AddWatchMode::PersistentRecursive,
                };
                let mut watch = client
                    .add_watch(&path, mode)
                    .await
                    .map_err(|e| Failure::zk(&e, &path))?;
                // Kept set until removed; its events are printed from the session's
                // ordered stream.
                let task = tokio::spawn(async move { while watch.next_event().await.is_some() {} });
                if let Some(old) = self.persistent.insert(path.clone(), task) {
                    // Once the task has ended its watch is dropped: the client hands
                    // nothing more to it.
                    old.abort();
                    let _ = old.await;
                }
                Ok(Reply::text("", json!({"watching": path})))
            }
            Command::RemoveWatches { path, kind, local } => {
                let kind = match kind {
                    WatchKind::Children => WatcherType::Children,
                    WatchKind::Data => WatcherType::Data,
                    WatchKind::Any => WatcherType::Any,
                };
                client
                    .remove_watches(&path, kind, local)
                    .await
                    .map_err(|e| Failure::zk(&e, &path))?;
                Ok(Reply::text("", json!({"removed": path})))
            }
            Command::GetEphemerals { path } => {
                let prefix = path.unwrap_or_else(|| "/".into());
                let list = client
                    .get_ephemerals(&prefix)
                    .await
                    .map_err(|e| Failure::zk(&e, &prefix))?;
                Ok(Reply::text(
                    format!("[{}]\n", list.join(", ")),
                    json!({"ephemerals": list}),
                ))
            }
            Command::GetAllChildrenNumber { path } => {
                let Some(path) = path else {
                    return Err(Failure::usage("getAllChildrenNumber path"));
                };
                let n = client
                    .get_all_children_number(&path)
                    .await
                    .map_err(|e| Failure::zk(&e, &path))?;
                Ok(Reply::text(format!("{n}\n"), json!({"count": n})))
            }
            Command::WhoAmI => {
                let ids = client.who_am_i().await.map_err(|e| Failure::zk(&e, ""))?;
                let mut text = String::from("Auth scheme: User\n");
                for id in &ids {
                    text.push_str(&format!("{}: {}\n", id.auth_scheme, id.user));
                }
                let value: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"scheme": id.auth_scheme, "user": id.user}))
                    .collect();
                Ok(Reply::text(text, json!({"identities": value})))
            }
            Command::Config {
                stat,
                watch,
                client: client_only,
            } => {
                let path = "/zookeeper/config";
                let (data, node) = self
                    .read_data(client, path, watch)
                    .await
                    .map_err(|e| Failure::zk(&e, path))?;
                let data = data.unwrap_or_else(|| "null".into());
                let data = if client_only {
                    client_config(&data)
                } else {
                    data
                };
                let text = format!("{data}\n");
                let value = json!({"config": data});
                Ok(Reply::text(text, value).with_stat(&node, stat))
            }
            Command::Reconfig {
                stat,
                version,
                joining,
                leaving,
                members,
            } => {
                let (data, node) = client
                    .reconfig(
                        joining.as_deref(),
                        leaving.as_deref(),
                        members.as_deref(),
                        version,
                    )
                    .await
                    .map_err(|e| Failure {
                        message: print::reconfig_error(&e),
                        ..Failure::zk(&e, "")
                    })?;
                let data = String::from_utf8_lossy(&data).into_owned();
                let text = format!("Committed new configuration:\n{data}\n");
                let value = json!({"config": data});
                Ok(Reply::text(text, value).with_stat(&node, stat))
            }
            Command::Close => {
                self.close().await;
                Ok(Reply::default())
            }
            Command::Version => Ok(Reply::text(
                format!(
                    "ZooKeeper CLI version: zk-cli {}\n",
                    env!("CARGO_PKG_VERSION")
                ),
                json!({"version": env!("CARGO_PKG_VERSION")}),
            )),
            Command::History
            | Command::PrintWatches { .. }
            | Command::Connect { .. }
            | Command::Redo { .. }
            | Command::Quit => Ok(Reply::default()),
        }
    }

    /// A znode's data as text (`None` for null data, which zkCli prints as `null`), leaving
    /// a watch if asked.
    async fn read_data(
        &self,
        client: &Client,
        path: &str,
        watch: bool,
    ) -> Result<(Option<String>, zk_client::Stat), Error> {
        let (data, stat) = if watch {
            let (data, stat, w) = client.get_data_nullable_w(path).await?;
            self.follow(w);
            (data, stat)
        } else {
            client.get_data_nullable(path).await?
        };
        Ok((data.map(|d| String::from_utf8_lossy(&d).into_owned()), stat))
    }

    /// `path` and its descendants, depth first, each level's children sorted and listed
    /// before any is descended into (ZooKeeper's `ZKUtil.visitSubTreeDFS`).
    ///
    /// A failure part way returns what was listed before it, as zkCli has printed it by then.
    async fn subtree_dfs(
        &self,
        client: &Client,
        path: &str,
        watch: bool,
    ) -> (Vec<String>, Option<Failure>) {
        if let Err(e) = zk_client::validate_path(path) {
            return (Vec::new(), Some(Failure::zk(&e, path)));
        }
        let read = if watch {
            client
                .get_data_w(path)
                .await
                .map(|(_, _, w)| self.follow(w))
        } else {
            client.get_data(path).await.map(drop)
        };
        if let Err(e) = read {
            return (Vec::new(), Some(Failure::zk(&e, path)));
        }
        let mut out = vec![path.to_owned()];
        let mut failure = None;
        let mut stack = vec![path.to_owned()];
        // Each node's children are printed when it is visited, then visited in order.
        let mut order = Vec::new();
        while let Some(node) = stack.pop() {
            let children = if watch {
                client.get_children_w(&node).await.map(|(c, w)| {
                    self.follow(w);
                    c
                })
            } else {
                client.get_children(&node).await
            };
            let mut children = match children {
                Ok(children) => children,
                Err(Error::NoNode) => continue,
                Err(e) => {
                    failure = Some(Failure::zk(&e, &node));
                    break;
                }
            };
            children.sort();
            let paths: Vec<String> = children
                .iter()
                .map(|c| {
                    if node == "/" {
                        format!("/{c}")
                    } else {
                        format!("{node}/{c}")
                    }
                })
                .collect();
            order.push((node, paths.clone()));
            stack.extend(paths.into_iter().rev());
        }
        // `order` holds (node, children) in preorder of nodes; zkCli prints, per visit, the
        // node's children: so the output is the concatenation of the children lists.
        for (_, paths) in order {
            out.extend(paths);
        }
        (out, failure)
    }
}

/// The client part of a dynamic configuration (`config -c`): the servers' client
/// addresses, comma-separated, then the version (ZooKeeper's `ConfigUtils`).
fn client_config(config: &str) -> String {
    let mut servers = Vec::new();
    let mut version = String::new();
    for line in config.lines() {
        if let Some(v) = line.strip_prefix("version=") {
            version = v.to_owned();
        } else if let Some((_, spec)) = line.split_once('=') {
            if let Some((_, client)) = spec.split_once(';') {
                servers.push(client.to_owned());
            }
        }
    }
    format!("{} {version}", servers.join(","))
}

/// One-shot mode: connect, run the command, print, return the exit code.
pub(crate) async fn one_shot(args: &Args) -> u8 {
    let json = args.json;
    let events: EventPrinter = Arc::new(move |text: String| {
        if json {
            print!("{text}");
        }
    });
    let mut session = Session::new(args, events);
    if let Err(failure) = session.connect(&args.server.clone(), false).await {
        let code = failure.code;
        session.report(Err(failure));
        return code;
    }
    let code = match session.execute_words(&args.command).await {
        Outcome::Done(code) => code,
        Outcome::Quit => 0,
    };
    session.close().await;
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_client::EventType;

    #[test]
    fn events_print_as_zkclis_watcher() {
        let event = WatchedEvent::node(EventType::NodeDataChanged, "/a");
        assert_eq!(
            event_text(&event, false),
            "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/a\n"
        );
        let closed = WatchedEvent::session(zk_client::KeeperState::Closed);
        assert!(event_text(&closed, false).ends_with("state:Closed type:None path:null\n"));
        assert_eq!(
            event_text(&event, true),
            "{\"event\":{\"path\":\"/a\",\"state\":\"SyncConnected\",\"type\":\"NodeDataChanged\"}}\n"
        );
    }

    #[test]
    fn the_client_part_of_a_dynamic_config() {
        let config = "server.1=a:2888:3888:participant;0.0.0.0:2181\n\
                      server.2=b:2888:3888:participant;0.0.0.0:2182\nversion=100000000";
        assert_eq!(client_config(config), "0.0.0.0:2181,0.0.0.0:2182 100000000");
    }
}
