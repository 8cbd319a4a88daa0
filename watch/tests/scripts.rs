//! Script-driven tests: each file under `tests/server/` and `tests/client/` is a small
//! script of operations, each followed by the lines (`> ...`) it must print. The runner
//! replays a script and compares the whole transcript with the file, so adding a case is
//! writing a few lines. Run with `ZK_WATCH_BLESS=1` to rewrite the files with what the code
//! prints now (then review the diff).
//!
//! Server commands (watchers are `c<N>`, i.e. `WatcherId(N)`):
//!
//! ```text
//! watch c1 data|exists|child|persistent|recursive /path   # add_watch ("> already watching" if not new)
//! create /path | delete /path | set /path                   # DataTree's trigger sequences
//! trigger /path EventType                                   # one raw trigger
//! remove c1 children|data|any|persistent|recursive /path   # removeWatches: "> removed" or "> NOWATCHER"
//! check c1 children|data|any|persistent|recursive /path    # checkWatches: "> ok" or "> NOWATCHER"
//! close c1                                                  # connection closed: "> dropped N"
//! held c1                                                   # the watcher's watches
//! count                                                     # mntr's zk_watch_count
//! wchs|wchc|wchp [data|child]                               # reports (data by default)
//! node /path mzxid=N pzxid=N                                # tree facts for setwatches
//! setwatches c1 zxid=N data=/a,/b exist=.. child=.. persistent=.. recursive=..
//! ```
//!
//! Client commands (watchers are any word):
//!
//! ```text
//! default w0 | noautoreset
//! register w1 getdata|exists|getchildren|persistent|recursive /path [ErrorCode]
//! event EventType /path [KeeperState]          # who is told: "> w1 w2" or "> (none)"
//! contains w1|* children|data|any /path        # "> yes" or "> no"
//! unregister w1|* children|data|any /path [local] [ErrorCode]
//! lists | setwatches ZXID [chroot=/x]
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use zk_jute::{AddWatchMode, ErrorCode, EventType, KeeperState, WatcherType};
use zk_watch::{
    Fired, NodeZxids, Registration, SetWatchesRequest, WatchKind, WatchLists, WatchManager,
    WatchModes, WatchRegistry, WatchTable, WatcherId, WatcherMode,
};

#[test]
fn server_scripts() {
    run_dir("server", |script| {
        let mut harness = ServerHarness::default();
        transcript(script, |words| harness.run(words))
    });
}

#[test]
fn client_scripts() {
    run_dir("client", |script| {
        let mut harness = ClientHarness::default();
        transcript(script, |words| harness.run(words))
    });
}

/// Runs every `*.txt` of `tests/<dir>` through `replay`, failing with a diff for each file
/// whose transcript differs (or rewriting it under `ZK_WATCH_BLESS=1`).
fn run_dir(dir: &str, replay: impl Fn(&str) -> String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .expect("script directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", root.display());
    let bless = std::env::var_os("ZK_WATCH_BLESS").is_some();
    let mut failures = Vec::new();
    for file in files {
        let script = std::fs::read_to_string(&file).expect("read script");
        let actual = replay(&script);
        if actual != script {
            if bless {
                std::fs::write(&file, &actual).expect("write script");
            } else {
                failures.push(format!("{}:\n{}", file.display(), diff(&script, &actual)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "transcripts differ:\n\n{}",
        failures.join("\n")
    );
}

/// Replays the script's commands and returns the transcript: comments, blank lines and
/// commands as written, each command followed by the lines it printed now.
fn transcript(script: &str, mut run: impl FnMut(&[&str]) -> Vec<String>) -> String {
    let mut out = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('>') {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        for printed in run(&words) {
            let _ = writeln!(out, "> {printed}");
        }
    }
    out
}

fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<_>, Vec<_>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i).copied(), a.get(i).copied());
        if x != y {
            let _ = writeln!(
                out,
                "  line {}: expected {:?}\n  line {}:   actual {:?}",
                i + 1,
                x,
                i + 1,
                y
            );
        }
    }
    out
}

fn watcher(word: &str) -> WatcherId {
    let n = word.strip_prefix('c').and_then(|n| n.parse().ok());
    WatcherId(n.unwrap_or_else(|| panic!("watcher names are c<N>, got {word}")))
}

fn name(id: WatcherId) -> String {
    format!("c{}", id.0)
}

fn event_type(word: &str) -> EventType {
    *EventType::ALL
        .iter()
        .find(|t| t.name() == word)
        .unwrap_or_else(|| panic!("unknown event type {word}"))
}

fn watcher_type(word: &str) -> WatcherType {
    match word {
        "children" => WatcherType::Children,
        "data" => WatcherType::Data,
        "any" => WatcherType::Any,
        "persistent" => WatcherType::Persistent,
        "recursive" => WatcherType::PersistentRecursive,
        _ => panic!("watcher types are children|data|any|persistent|recursive, got {word}"),
    }
}

fn table(words: &[&str], at: usize) -> WatchTable {
    match words.get(at).copied() {
        None | Some("data") => WatchTable::Data,
        Some("child") => WatchTable::Child,
        Some(other) => panic!("tables are data|child, got {other}"),
    }
}

fn mode(modes: WatchModes) -> String {
    if modes.is_empty() {
        return "-".into();
    }
    let names: Vec<&str> = modes
        .iter()
        .map(|m| match m {
            WatcherMode::Standard => "standard",
            WatcherMode::Persistent => "persistent",
            WatcherMode::PersistentRecursive => "recursive",
        })
        .collect();
    names.join("+")
}

fn arg<'a>(words: &[&'a str], at: usize) -> &'a str {
    words
        .get(at)
        .copied()
        .unwrap_or_else(|| panic!("missing argument {at} in {words:?}"))
}

#[derive(Default)]
struct ServerHarness {
    watches: WatchManager,
    nodes: BTreeMap<String, NodeZxids>,
}

impl ServerHarness {
    fn run(&mut self, words: &[&str]) -> Vec<String> {
        let w = &mut self.watches;
        match arg(words, 0) {
            "watch" => {
                let kind = match arg(words, 2) {
                    "data" | "exists" => WatchKind::Data,
                    "child" => WatchKind::Child,
                    "persistent" => WatchKind::Persistent,
                    "recursive" => WatchKind::PersistentRecursive,
                    other => panic!("unknown watch kind {other}"),
                };
                match w.add_watch(arg(words, 3), watcher(arg(words, 1)), kind) {
                    Ok(true) => vec![],
                    Ok(false) => vec!["already watching".into()],
                    Err(e) => vec![format!("error: {e}")],
                }
            }
            "create" => fired(w.node_created(arg(words, 1))),
            "delete" => fired(w.node_deleted(arg(words, 1))),
            "set" => fired(w.node_data_changed(arg(words, 1))),
            "trigger" => fired(vec![w.trigger(arg(words, 1), event_type(arg(words, 2)))]),
            "remove" => {
                let removed = w.remove_watches(
                    arg(words, 3),
                    watcher_type(arg(words, 2)),
                    watcher(arg(words, 1)),
                );
                vec![if removed { "removed" } else { "NOWATCHER" }.into()]
            }
            "check" => {
                let ok = w.check_watches(
                    arg(words, 3),
                    watcher_type(arg(words, 2)),
                    watcher(arg(words, 1)),
                );
                vec![if ok { "ok" } else { "NOWATCHER" }.into()]
            }
            "close" => vec![format!(
                "dropped {}",
                w.remove_watcher(watcher(arg(words, 1)))
            )],
            "held" => w
                .watches_of(watcher(arg(words, 1)))
                .into_iter()
                .map(|h| format!("{} data={} child={}", h.path, mode(h.data), mode(h.child)))
                .collect(),
            "count" => vec![format!("watch_count {}", w.watch_count())],
            "wchs" => w
                .summary(table(words, 1))
                .to_string()
                .lines()
                .map(String::from)
                .collect(),
            "wchc" => w
                .by_watcher(table(words, 1))
                .into_iter()
                .map(|(id, paths)| {
                    format!("{}: {}", name(id), paths.join(" "))
                        .trim_end()
                        .to_string()
                })
                .collect(),
            "wchp" => w
                .by_path(table(words, 1))
                .into_iter()
                .map(|(path, ids)| {
                    let ids: Vec<_> = ids.into_iter().map(name).collect();
                    format!("{path}: {}", ids.join(" "))
                })
                .collect(),
            "node" => {
                let mut zxids = NodeZxids::default();
                for kv in words.iter().skip(2) {
                    let (key, value) = kv.split_once('=').expect("key=value");
                    let value: i64 = value.parse().expect("a zxid");
                    match key {
                        "mzxid" => zxids.mzxid = value,
                        "pzxid" => zxids.pzxid = value,
                        _ => panic!("node takes mzxid= and pzxid="),
                    }
                }
                self.nodes.insert(arg(words, 1).to_string(), zxids);
                vec![]
            }
            "setwatches" => {
                let mut zxid = 0;
                let mut lists = WatchLists::default();
                for kv in words.iter().skip(2) {
                    let (key, value) = kv.split_once('=').expect("key=value");
                    let paths = || {
                        value
                            .split(',')
                            .filter(|p| !p.is_empty())
                            .map(String::from)
                            .collect()
                    };
                    match key {
                        "zxid" => zxid = value.parse().expect("a zxid"),
                        "data" => lists.data = paths(),
                        "exist" => lists.exist = paths(),
                        "child" => lists.child = paths(),
                        "persistent" => lists.persistent = paths(),
                        "recursive" => lists.persistent_recursive = paths(),
                        _ => panic!("unknown setwatches list {key}"),
                    }
                }
                let nodes = &self.nodes;
                let missed = w
                    .set_watches(watcher(arg(words, 1)), zxid, &lists, |p| {
                        nodes.get(p).copied()
                    })
                    .expect("set_watches");
                missed.into_iter().map(|e| e.to_string()).collect()
            }
            other => panic!("unknown server command {other}"),
        }
    }
}

fn fired(fired: Vec<Fired>) -> Vec<String> {
    fired
        .into_iter()
        .map(|f| {
            let mut ids = f.watchers.clone();
            ids.sort_unstable();
            let names: Vec<_> = ids.into_iter().map(name).collect();
            format!("{} -> {}", f.event, names.join(" "))
        })
        .collect()
}

#[derive(Default)]
struct ClientHarness {
    registry: WatchRegistry<String>,
}

fn error_code(word: &str) -> Option<ErrorCode> {
    ErrorCode::ALL.iter().copied().find(|c| c.name() == word)
}

fn lists_line(label: &str, lists: &[(&str, &Option<Vec<String>>)], zxid: i64) -> String {
    let mut line = format!("{label} zxid={zxid}");
    for (name, list) in lists {
        let list = list.as_deref().unwrap_or_default();
        let _ = write!(line, " {name}=[{}]", list.join(","));
    }
    line
}

impl ClientHarness {
    fn run(&mut self, words: &[&str]) -> Vec<String> {
        let r = &mut self.registry;
        match arg(words, 0) {
            "default" => {
                r.set_default_watcher(Some(arg(words, 1).to_string()));
                vec![]
            }
            "noautoreset" => {
                *r = std::mem::take(r).with_auto_watch_reset(false);
                vec![]
            }
            "register" => {
                let registration = match arg(words, 2) {
                    "getdata" => Registration::GetData,
                    "exists" => Registration::Exists,
                    "getchildren" => Registration::GetChildren,
                    "persistent" => Registration::AddWatch(AddWatchMode::Persistent),
                    "recursive" => Registration::AddWatch(AddWatchMode::PersistentRecursive),
                    other => panic!("unknown registration {other}"),
                };
                let rc = words
                    .get(4)
                    .map_or(ErrorCode::Ok, |w| error_code(w).expect("an error code"));
                let added = r.register(registration, arg(words, 3), arg(words, 1).to_string(), rc);
                if added {
                    vec![]
                } else {
                    vec!["not registered".into()]
                }
            }
            "event" => {
                let state = words.get(3).map_or(KeeperState::SyncConnected, |w| {
                    *KeeperState::ALL
                        .iter()
                        .find(|s| s.name() == *w)
                        .expect("a keeper state")
                });
                let reached = r.materialize(state, event_type(arg(words, 1)), arg(words, 2));
                vec![if reached.is_empty() {
                    "(none)".to_string()
                } else {
                    reached.join(" ")
                }]
            }
            "contains" => {
                let who = arg(words, 1).to_string();
                let who = (who != "*").then_some(who);
                let yes = r.contains(arg(words, 3), who.as_ref(), watcher_type(arg(words, 2)));
                vec![if yes { "yes" } else { "no" }.into()]
            }
            "unregister" => {
                let who = arg(words, 1).to_string();
                let who = (who != "*").then_some(who);
                let local = words.contains(&"local");
                let rc = words
                    .iter()
                    .skip(4)
                    .find_map(|w| error_code(w))
                    .unwrap_or(ErrorCode::Ok);
                match r.unregister(
                    arg(words, 3),
                    who.as_ref(),
                    watcher_type(arg(words, 2)),
                    local,
                    rc,
                ) {
                    Ok(removed) => removed
                        .events()
                        .into_iter()
                        .map(|(t, ws)| format!("{t}: {}", ws.join(" ")))
                        .collect(),
                    Err(code) => vec![format!("error {code}")],
                }
            }
            "lists" => {
                let l = r.watch_lists();
                vec![format!(
                    "data=[{}] exist=[{}] child=[{}] persistent=[{}] recursive=[{}]",
                    l.data.join(","),
                    l.exist.join(","),
                    l.child.join(","),
                    l.persistent.join(","),
                    l.persistent_recursive.join(",")
                )]
            }
            "setwatches" => {
                let zxid: i64 = arg(words, 1).parse().expect("a zxid");
                let chroot = words.iter().find_map(|w| w.strip_prefix("chroot="));
                let requests = r.set_watches(zxid, chroot);
                if requests.is_empty() {
                    return vec!["(no request)".into()];
                }
                requests
                    .into_iter()
                    .map(|req| match req {
                        SetWatchesRequest::SetWatches(s) => lists_line(
                            "SetWatches",
                            &[
                                ("data", &s.data_watches),
                                ("exist", &s.exist_watches),
                                ("child", &s.child_watches),
                            ],
                            s.relative_zxid,
                        ),
                        SetWatchesRequest::SetWatches2(s) => lists_line(
                            "SetWatches2",
                            &[
                                ("data", &s.data_watches),
                                ("exist", &s.exist_watches),
                                ("child", &s.child_watches),
                                ("persistent", &s.persistent_watches),
                                ("recursive", &s.persistent_recursive_watches),
                            ],
                            s.relative_zxid,
                        ),
                    })
                    .collect()
            }
            other => panic!("unknown client command {other}"),
        }
    }
}
