//! From a typed line to a command: zkCli's tokenizing (quotes keep spaces), its
//! commons-cli option parsing (options anywhere among the arguments, clustered flags,
//! values attached or apart), and each command's arguments and usage string.

use std::fmt;

/// A command line split as zkCli splits it: on whitespace, except inside `"…"` or `'…'`,
/// whose quotes are dropped.
pub(crate) fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
        let token_len = match quote {
            Some(q) => match rest[1..].find(q) {
                Some(close) => close + 2,
                None => {
                    // zkCli's pattern matches nothing at an unclosed quote: it is skipped.
                    rest = rest[1..].trim_start();
                    continue;
                }
            },
            None => rest.find(char::is_whitespace).unwrap_or(rest.len()),
        };
        let token = &rest[..token_len];
        let unquoted = match quote {
            Some(q) if token.len() >= 2 && token.ends_with(q) => &token[1..token.len() - 1],
            _ => token,
        };
        out.push(unquoted.to_owned());
        rest = rest[token_len..].trim_start();
    }
    out
}

/// Why a line is not a command that can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// No such command (zkCli prints its usage, then this).
    NotFound(String),
    /// Wrong arguments: the message zkCli prints (usually the command's usage).
    Usage(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotFound(cmd) => write!(f, "Command not found: Command not found {cmd}"),
            ParseError::Usage(message) => f.write_str(message),
        }
    }
}

/// The options a command accepts: letters, and whether each takes a value.
struct Spec(&'static [(char, bool)]);

/// A command's arguments after its options are taken out.
#[derive(Debug, Default)]
struct Parsed {
    flags: Vec<char>,
    values: Vec<(char, String)>,
    args: Vec<String>,
}

impl Parsed {
    fn has(&self, c: char) -> bool {
        self.flags.contains(&c) || self.values.iter().any(|(k, _)| *k == c)
    }
    fn value(&self, c: char) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits options from arguments as commons-cli's `DefaultParser` does for short options:
/// `-s`, `-sw` (a cluster of flags), `-v 3` and `-v3`; `--` ends the options; a lone `-`
/// or a token that is not an option is an argument.
fn options(tokens: &[String], spec: &Spec) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    let mut only_args = false;
    while i < tokens.len() {
        let token = &tokens[i];
        i += 1;
        if only_args || !token.starts_with('-') || token.len() == 1 {
            parsed.args.push(token.clone());
            continue;
        }
        if token == "--" {
            only_args = true;
            continue;
        }
        let letters: Vec<char> = token[1..].chars().collect();
        let mut j = 0;
        while j < letters.len() {
            let c = letters[j];
            let Some((_, takes_value)) = spec.0.iter().find(|(k, _)| *k == c) else {
                return Err(ParseError::Usage(format!("Unrecognized option: {token}")));
            };
            if *takes_value {
                let attached: String = letters[j + 1..].iter().collect();
                let value = if !attached.is_empty() {
                    attached
                } else if let Some(next) = tokens.get(i) {
                    i += 1;
                    next.clone()
                } else {
                    return Err(ParseError::Usage(format!(
                        "Missing argument for option: {c}"
                    )));
                };
                parsed.values.push((c, value));
                break;
            }
            parsed.flags.push(c);
            j += 1;
        }
    }
    Ok(parsed)
}

/// Which watches `removewatches` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchKind {
    /// `-c`
    Children,
    /// `-d`
    Data,
    /// `-a` or nothing
    Any,
}

/// The mode of `addWatch -m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddWatchMode {
    /// `persistent`
    Persistent,
    /// `persistent_recursive` (the default)
    PersistentRecursive,
}

/// A command with its arguments, checked as zkCli checks them before running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Ls {
        path: String,
        stat: bool,
        watch: bool,
        recursive: bool,
    },
    Create {
        path: String,
        data: Option<String>,
        acl: Option<String>,
        ephemeral: bool,
        sequential: bool,
        container: bool,
        ttl: Option<String>,
    },
    Get {
        path: String,
        stat: bool,
        watch: bool,
    },
    Set {
        path: String,
        data: String,
        stat: bool,
        version: Option<String>,
    },
    Stat {
        path: String,
        watch: bool,
    },
    Delete {
        path: String,
        version: Option<String>,
    },
    DeleteAll {
        path: String,
        batch: Option<String>,
    },
    GetAcl {
        path: String,
        stat: bool,
    },
    SetAcl {
        path: String,
        acl: String,
        stat: bool,
        version: Option<String>,
        recursive: bool,
    },
    AddAuth {
        scheme: String,
        auth: Option<String>,
    },
    Sync {
        path: String,
    },
    AddWatch {
        path: String,
        mode: AddWatchMode,
    },
    RemoveWatches {
        path: String,
        kind: WatchKind,
        local: bool,
    },
    GetEphemerals {
        path: Option<String>,
    },
    GetAllChildrenNumber {
        path: Option<String>,
    },
    WhoAmI,
    Config {
        stat: bool,
        watch: bool,
        client: bool,
    },
    Reconfig {
        stat: bool,
        /// `-v`: the version the change applies to (hexadecimal), or -1.
        version: i64,
        /// `-add`: servers to add, comma separated.
        joining: Option<String>,
        /// `-remove`: ids to remove, comma separated.
        leaving: Option<String>,
        /// `-members`, or the membership lines of `-file`: the whole new membership.
        members: Option<String>,
    },
    Connect {
        host: Option<String>,
    },
    Close,
    History,
    Redo {
        index: String,
    },
    PrintWatches {
        on: Option<bool>,
    },
    Version,
    Quit,
}

/// Every command with its option string, as zkCli's usage lists them (sorted).
pub(crate) const USAGE: &[(&str, &str)] = &[
    (
        "addWatch",
        "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
    ),
    ("addauth", "scheme auth"),
    ("close", ""),
    ("config", "[-c] [-w] [-s]"),
    ("connect", "host:port"),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("get", "[-s] [-w] path"),
    ("getAcl", "[-s] path"),
    ("getAllChildrenNumber", "path"),
    ("getEphemerals", "path"),
    ("history", ""),
    ("ls", "[-s] [-w] [-R] path"),
    ("printwatches", "on|off"),
    ("quit", ""),
    (
        "reconfig",
        "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
    ),
    ("redo", "cmdno"),
    ("removewatches", "path [-c|-d|-a] [-l]"),
    ("set", "[-s] [-v version] path data"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("version", ""),
    ("whoami", ""),
];

/// The full usage text zkCli prints (to stderr) for an unknown or empty command.
pub(crate) fn usage() -> String {
    let mut out = String::from("ZooKeeper -server host:port[,...][/chroot] [--json] cmd args\n");
    for (cmd, options) in USAGE {
        out.push('\t');
        out.push_str(cmd);
        out.push(' ');
        out.push_str(options);
        out.push('\n');
    }
    out
}

fn usage_of(cmd: &str) -> ParseError {
    let options = USAGE
        .iter()
        .find(|(c, _)| *c == cmd)
        .map_or("", |(_, o)| *o);
    ParseError::Usage(format!("{cmd} {options}"))
}

/// What a tokenized line asks for. `tokens[0]` is the command.
pub(crate) fn parse(tokens: &[String]) -> Result<Command, ParseError> {
    let Some(cmd) = tokens.first() else {
        return Err(ParseError::Usage("No command entered".into()));
    };
    let rest = &tokens[1..];
    let spec = |letters: &'static [(char, bool)]| options(rest, &Spec(letters));
    let usage = || usage_of(cmd);
    let arg = |p: &Parsed, i: usize| p.args.get(i).cloned();
    Ok(match cmd.as_str() {
        "ls" => {
            let mut p = spec(&[('?', false), ('s', false), ('w', false), ('R', false)])?;
            // `ls path watch`, deprecated: the extra argument means -w.
            if p.args.len() > 1 {
                eprintln!(
                    "'ls path [watch]' has been deprecated. Please use 'ls [-w] path' instead."
                );
                p.flags.push('w');
            }
            Command::Ls {
                path: arg(&p, 0).ok_or_else(usage)?,
                stat: p.has('s'),
                watch: p.has('w'),
                recursive: p.has('R'),
            }
        }
        "create" => {
            let p = spec(&[('e', false), ('s', false), ('c', false), ('t', true)])?;
            Command::Create {
                path: arg(&p, 0).ok_or_else(usage)?,
                data: arg(&p, 1),
                acl: arg(&p, 2),
                ephemeral: p.has('e'),
                sequential: p.has('s'),
                container: p.has('c'),
                ttl: p.value('t').map(str::to_owned),
            }
        }
        "get" => {
            let mut p = spec(&[('s', false), ('w', false)])?;
            if p.args.len() > 1 {
                eprintln!(
                    "'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead."
                );
                p.flags.push('w');
            }
            Command::Get {
                path: arg(&p, 0).ok_or_else(usage)?,
                stat: p.has('s'),
                watch: p.has('w'),
            }
        }
        "set" => {
            let p = spec(&[('s', false), ('v', true)])?;
            if p.args.len() < 2 {
                return Err(usage());
            }
            Command::Set {
                path: p.args[0].clone(),
                data: p.args[1].clone(),
                stat: p.has('s'),
                version: p.value('v').map(str::to_owned),
            }
        }
        "stat" => {
            let mut p = spec(&[('w', false)])?;
            if p.args.len() > 1 {
                eprintln!(
                    "'stat path [watch]' has been deprecated. Please use 'stat [-w] path' instead."
                );
                p.flags.push('w');
            }
            Command::Stat {
                path: arg(&p, 0).ok_or_else(usage)?,
                watch: p.has('w'),
            }
        }
        "delete" => {
            let p = spec(&[('v', true)])?;
            let mut version = p.value('v').map(str::to_owned);
            if p.args.len() > 1 {
                eprintln!(
                    "'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead."
                );
                version = version.or_else(|| arg(&p, 1));
            }
            Command::Delete {
                path: arg(&p, 0).ok_or_else(usage)?,
                version,
            }
        }
        "deleteall" | "rmr" => {
            let p = spec(&[('b', true)])?;
            Command::DeleteAll {
                path: arg(&p, 0).ok_or_else(usage)?,
                batch: p.value('b').map(str::to_owned),
            }
        }
        "getAcl" => {
            let p = spec(&[('s', false)])?;
            Command::GetAcl {
                path: arg(&p, 0).ok_or_else(usage)?,
                stat: p.has('s'),
            }
        }
        "setAcl" => {
            let p = spec(&[('s', false), ('v', true), ('R', false)])?;
            if p.args.len() < 2 {
                return Err(usage());
            }
            Command::SetAcl {
                path: p.args[0].clone(),
                acl: p.args[1].clone(),
                stat: p.has('s'),
                version: p.value('v').map(str::to_owned),
                recursive: p.has('R'),
            }
        }
        "addauth" => {
            let p = spec(&[])?;
            Command::AddAuth {
                scheme: arg(&p, 0).ok_or_else(usage)?,
                auth: arg(&p, 1),
            }
        }
        "sync" => {
            let p = spec(&[])?;
            Command::Sync {
                path: arg(&p, 0).ok_or_else(usage)?,
            }
        }
        "addWatch" => {
            let p = spec(&[('m', true)])?;
            if p.args.len() != 1 {
                return Err(usage());
            }
            let mode = match p.value('m').map(str::to_ascii_uppercase).as_deref() {
                None | Some("PERSISTENT_RECURSIVE") => AddWatchMode::PersistentRecursive,
                Some("PERSISTENT") => AddWatchMode::Persistent,
                Some(_) => return Err(usage()),
            };
            Command::AddWatch {
                path: p.args[0].clone(),
                mode,
            }
        }
        "removewatches" => {
            let p = spec(&[('c', false), ('d', false), ('a', false), ('l', false)])?;
            let kind = if p.has('c') {
                WatchKind::Children
            } else if p.has('d') {
                WatchKind::Data
            } else {
                WatchKind::Any
            };
            Command::RemoveWatches {
                path: arg(&p, 0).ok_or_else(usage)?,
                kind,
                local: p.has('l'),
            }
        }
        "getEphemerals" => {
            let p = spec(&[])?;
            Command::GetEphemerals { path: arg(&p, 0) }
        }
        "getAllChildrenNumber" => {
            let p = spec(&[])?;
            Command::GetAllChildrenNumber { path: arg(&p, 0) }
        }
        "whoami" => Command::WhoAmI,
        "config" => {
            let p = spec(&[('s', false), ('w', false), ('c', false)])?;
            Command::Config {
                stat: p.has('s'),
                watch: p.has('w'),
                client: p.has('c'),
            }
        }
        "reconfig" => reconfig(rest)?,
        "connect" => Command::Connect {
            host: rest.first().cloned(),
        },
        "close" => Command::Close,
        "history" => Command::History,
        "redo" => match rest.first() {
            Some(index) => Command::Redo {
                index: index.clone(),
            },
            // zkCli treats a bare `redo` as doing nothing.
            None => Command::History,
        },
        "printwatches" => Command::PrintWatches {
            on: rest.first().map(|a| a == "on"),
        },
        "version" => {
            if !rest.is_empty() {
                return Err(usage());
            }
            Command::Version
        }
        "quit" => Command::Quit,
        other => return Err(ParseError::NotFound(other.to_owned())),
    })
}

/// `reconfig`'s options, as ZooKeeper's `ReconfigCommand` reads them: `-s`, `-v`
/// (hexadecimal), `-file`, `-members`, `-add` and `-remove` (the last three lowercased,
/// as there), incremental and whole-membership modes not mixed.
fn reconfig(rest: &[String]) -> Result<Command, ParseError> {
    let usage = || {
        let options = USAGE
            .iter()
            .find(|(c, _)| *c == "reconfig")
            .map_or("", |(_, o)| *o);
        ParseError::Usage(format!("reconfig {options}"))
    };
    let mut stat = false;
    let mut values: Vec<(&str, String)> = Vec::new();
    let mut tokens = rest.iter();
    while let Some(token) = tokens.next() {
        match token.as_str() {
            "-s" => stat = true,
            "-v" | "-file" | "-members" | "-add" | "-remove" => {
                let value = tokens.next().ok_or_else(|| {
                    ParseError::Usage(format!("Missing argument for option: {}", &token[1..]))
                })?;
                values.push((&token[1..], value.clone()));
            }
            other if other.starts_with('-') => {
                return Err(ParseError::Usage(format!("Unrecognized option: {other}")));
            }
            _ => {}
        }
    }
    let get = |name: &str| {
        values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let (file, members, add, remove) = (get("file"), get("members"), get("add"), get("remove"));
    let whole = file.is_some() || members.is_some();
    if !whole && add.is_none() && remove.is_none() {
        return Err(usage());
    }
    let version = match get("v") {
        Some(v) => i64::from_str_radix(&v, 16).map_err(|_| {
            ParseError::Usage("-v must be followed by a long (configuration version)".into())
        })?,
        None => -1,
    };
    if whole && (add.is_some() || remove.is_some()) {
        return Err(ParseError::Usage(
            "Can't use -file or -members together with -add or -remove (mixing incremental \
             and non-incremental modes is not allowed)"
                .into(),
        ));
    }
    if file.is_some() && members.is_some() {
        return Err(ParseError::Usage(
            "Can't use -file and -members together (conflicting non-incremental modes)".into(),
        ));
    }
    let members = match file {
        Some(path) => Some(
            membership_file(&path)
                .map_err(|e| ParseError::Usage(format!("Error processing {path}{e}")))?,
        ),
        None => members.map(|m| m.to_lowercase()),
    };
    Ok(Command::Reconfig {
        stat,
        version,
        joining: add.map(|a| a.to_lowercase()),
        leaving: remove.map(|r| r.to_lowercase()),
        members,
    })
}

/// The membership lines (`server.N`, `group.N`, `weight.N`) of a configuration file,
/// one a line.
fn membership_file(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let pairs = zk_server::properties::parse(&text).map_err(|e| e.to_string())?;
    let lines: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| {
            ["server.", "group", "weight"]
                .iter()
                .any(|p| k.trim().starts_with(p))
        })
        .map(|(k, v)| format!("{}={}", k.trim(), v.trim()))
        .collect();
    if lines.is_empty() {
        return Err(": no server lines".into());
    }
    Ok(lines.join("\n"))
}

/// Every command name, for completion.
pub(crate) fn command_names() -> impl Iterator<Item = &'static str> {
    USAGE.iter().map(|(c, _)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Result<Command, ParseError> {
        parse(&tokenize(s))
    }

    #[test]
    fn reconfig_reads_options_as_zookeepers_reconfig_command() {
        assert_eq!(
            line("reconfig -s -v 1a -add server.4=H:1:2;3,server.5=h:4:5;6 -remove 2").unwrap(),
            Command::Reconfig {
                stat: true,
                version: 0x1a,
                joining: Some("server.4=h:1:2;3,server.5=h:4:5;6".into()),
                leaving: Some("2".into()),
                members: None,
            }
        );
        assert_eq!(
            line("reconfig -members server.1=h:1:2;3").unwrap(),
            Command::Reconfig {
                stat: false,
                version: -1,
                joining: None,
                leaving: None,
                members: Some("server.1=h:1:2;3".into()),
            }
        );
        let refused = |l: &str| match line(l) {
            Err(ParseError::Usage(message)) => message,
            other => panic!("{l}: {other:?}"),
        };
        assert!(refused("reconfig -s").starts_with("reconfig [-s] [-v version]"));
        assert!(refused("reconfig -members a -add b").contains("mixing incremental"));
        assert!(refused("reconfig -v zz -remove 1").contains("-v must be followed by a long"));
        assert!(refused("reconfig -x 1").contains("Unrecognized option: -x"));
        // `-file`: the membership lines of a configuration file.
        let dir = std::env::temp_dir().join(format!("zkcli-reconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("zoo.cfg.dynamic");
        std::fs::write(
            &file,
            "server.1=h:1:2;3\nserver.2=h:4:5:observer;6\ntickTime=9\n",
        )
        .unwrap();
        let from_file = line(&format!("reconfig -file {}", file.display())).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            from_file,
            Command::Reconfig {
                stat: false,
                version: -1,
                joining: None,
                leaving: None,
                members: Some("server.1=h:1:2;3\nserver.2=h:4:5:observer;6".into()),
            }
        );
    }

    #[test]
    fn tokens_split_on_spaces_but_not_in_quotes() {
        assert_eq!(tokenize("  create /a  b "), ["create", "/a", "b"]);
        assert_eq!(
            tokenize(r#"create /a "hello world" 'x y'"#),
            ["create", "/a", "hello world", "x y"]
        );
        assert_eq!(
            tokenize(r#"set /a "unclosed x"#),
            ["set", "/a", "unclosed", "x"]
        );
        assert!(tokenize("   ").is_empty());
        assert_eq!(tokenize("get '/a"), ["get", "/a"]);
    }

    #[test]
    fn options_go_anywhere_and_cluster() {
        assert_eq!(
            line("ls -s -R /a").unwrap(),
            Command::Ls {
                path: "/a".into(),
                stat: true,
                watch: false,
                recursive: true
            }
        );
        assert_eq!(
            line("create -es /a x").unwrap(),
            Command::Create {
                path: "/a".into(),
                data: Some("x".into()),
                acl: None,
                ephemeral: true,
                sequential: true,
                container: false,
                ttl: None
            }
        );
        assert_eq!(
            line("deleteall /zc7 -b 2").unwrap(),
            Command::DeleteAll {
                path: "/zc7".into(),
                batch: Some("2".into())
            }
        );
        assert_eq!(
            line("set -v3 /a b").unwrap(),
            Command::Set {
                path: "/a".into(),
                data: "b".into(),
                stat: false,
                version: Some("3".into())
            }
        );
        assert_eq!(
            line("removewatches /a -d").unwrap(),
            Command::RemoveWatches {
                path: "/a".into(),
                kind: WatchKind::Data,
                local: false
            }
        );
    }

    #[test]
    fn bad_lines_get_zkclis_messages() {
        assert_eq!(
            line("ls").unwrap_err().to_string(),
            "ls [-s] [-w] [-R] path"
        );
        assert_eq!(
            line("bogus").unwrap_err().to_string(),
            "Command not found: Command not found bogus"
        );
        assert_eq!(
            line("get -x /a").unwrap_err().to_string(),
            "Unrecognized option: -x"
        );
        assert_eq!(
            line("create -t").unwrap_err().to_string(),
            "Missing argument for option: t"
        );
        assert_eq!(
            line("set /a").unwrap_err().to_string(),
            "set [-s] [-v version] path data"
        );
        assert!(line("addWatch -m sideways /a").is_err());
        assert_eq!(
            line("addWatch -m persistent /a").unwrap(),
            Command::AddWatch {
                path: "/a".into(),
                mode: AddWatchMode::Persistent
            }
        );
    }
}
