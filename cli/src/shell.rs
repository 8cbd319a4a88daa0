//! The interactive shell: rustyline with history and completion of commands and znode
//! paths when stdin is a terminal; a plain line reader otherwise (as zkCli without JLine),
//! so scripts can pipe commands in.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use tokio::runtime::Runtime;
use zk_client::Client;

use crate::Args;
use crate::exec::{EventPrinter, Outcome, Session};
use crate::parse;

/// Completes command names in the first word and znode paths after it, asking the server
/// for the children of the path typed so far.
struct ZnodeCompleter {
    runtime: tokio::runtime::Handle,
    client: Arc<Mutex<Option<Client>>>,
}

impl Completer for ZnodeCompleter {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        let pair = |s: String| Pair {
            display: s.clone(),
            replacement: s,
        };
        if before[..start].trim().is_empty() {
            let names = parse::command_names()
                .filter(|c| c.starts_with(word))
                .map(|c| pair(format!("{c} ")))
                .collect();
            return Ok((start, names));
        }
        if !word.starts_with('/') {
            return Ok((start, Vec::new()));
        }
        let Some(client) = self.client.lock().ok().and_then(|c| c.clone()) else {
            return Ok((start, Vec::new()));
        };
        let cut = word.rfind('/').unwrap_or(0);
        let (parent, prefix) = (&word[..cut.max(1)], &word[cut + 1..]);
        let listed = self.runtime.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(2),
                client.get_children(parent),
            )
            .await
        });
        let Ok(Ok(mut children)) = listed else {
            return Ok((start, Vec::new()));
        };
        children.sort();
        let base = if parent == "/" { "" } else { parent };
        let candidates = children
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .map(|c| pair(format!("{base}/{c}")))
            .collect();
        Ok((start, candidates))
    }
}

impl Hinter for ZnodeCompleter {
    type Hint = String;
}
impl Highlighter for ZnodeCompleter {}
impl Validator for ZnodeCompleter {}
impl Helper for ZnodeCompleter {}

/// Where the shell keeps its history between runs.
fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".zk-cli_history"))
}

/// Runs the shell until `quit` or end of input; returns the exit code.
pub(crate) fn run(runtime: &Runtime, args: &Args) -> u8 {
    println!("Connecting to {}", args.server);
    if std::io::stdin().is_terminal() {
        interactive(runtime, args)
    } else {
        piped(runtime, args)
    }
}

/// Prints an event at once, whole.
fn print_to_stdout() -> EventPrinter {
    Arc::new(|text: String| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    })
}

/// Without a terminal: one command per line, no prompt, output as it comes.
fn piped(runtime: &Runtime, args: &Args) -> u8 {
    let mut session = Session::new(args, print_to_stdout());
    let connected = runtime.block_on(session.connect(&args.server, true));
    if let Err(e) = connected {
        eprintln!("{}", e.message());
    }
    println!("Welcome to ZooKeeper!");
    let mut code = 0;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let outcome = runtime.block_on(session.execute_line(&line));
        let _ = std::io::stdout().flush();
        match outcome {
            Outcome::Done(c) => code = c,
            // As zkCli: the exit code is the last command's.
            Outcome::Quit => return code,
        }
    }
    runtime.block_on(session.close());
    code
}

/// With a terminal: rustyline, events printed above the prompt.
fn interactive(runtime: &Runtime, args: &Args) -> u8 {
    let client_slot = Arc::new(Mutex::new(None));
    let helper = ZnodeCompleter {
        runtime: runtime.handle().clone(),
        client: client_slot.clone(),
    };
    let mut editor: Editor<ZnodeCompleter, DefaultHistory> = match Editor::new() {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("zk-cli: no line editor ({e}); reading lines plainly");
            return piped(runtime, args);
        }
    };
    editor.set_helper(Some(helper));
    let history = history_file();
    if let Some(file) = &history {
        let _ = editor.load_history(file);
    }
    // Events are printed where the cursor is, as zkCli prints them. (rustyline's external
    // printer would redraw the prompt, but it stalls on input that arrives in one chunk,
    // as a paste does.)
    let events: EventPrinter = Arc::new(|text: String| {
        // The terminal is in raw mode while a line is edited: end lines with CR LF.
        let text = text.replace('\n', "\r\n");
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    });
    let mut session = Session::new(args, events);
    if let Err(e) = runtime.block_on(session.connect(&args.server, true)) {
        eprintln!("{}", e.message());
    }
    println!("Welcome to ZooKeeper!");
    let mut code = 0;
    loop {
        if let Ok(mut slot) = client_slot.lock() {
            *slot = session.client().cloned();
        }
        match editor.readline(&session.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                match runtime.block_on(session.execute_line(&line)) {
                    Outcome::Done(c) => code = c,
                    Outcome::Quit => break,
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(file) = &history {
        let _ = editor.save_history(file);
    }
    runtime.block_on(session.close());
    code
}
