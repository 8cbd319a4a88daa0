//! Checkers over a recorded history. Each is a pure function of the history, and each
//! has tests that feed it a crafted bad history and expect it to say so.
//!
//! - [`linearizable`]: per register (a znode written with setData, conditional or not,
//!   and read after the run has healed), a Wing–Gong search with Lowe's memoisation for
//!   an order of the operations that respects real time and the register's semantics:
//!   each successful write makes the version one more and returns it, a conditional one
//!   only from the version it names, a failed one saw another version, a read sees the
//!   current version and value. An operation whose outcome is unknown (connection lost,
//!   timed out) may take effect at any point after it was invoked, or never.
//! - [`session_order`]: within a session, the versions it sees of a register (reads and
//!   its own writes) never go back.
//! - [`sequential`]: no sequential name handed out twice; every acknowledged create is
//!   there at the end; no more nodes than creates that may have happened.
//! - [`sync_reads`]: a read after `sync` sees every write acknowledged before the `sync`
//!   was sent (ZooKeeper's promise: the member is caught up with the leader as of it).
//! - [`watches`]: within a session, a data watch's event comes before any answer showing
//!   the register changed, one event per watch set, and only for a change that was
//!   committed (the register ends past the version the watch was set at).
//! - [`ephemerals`]: at the end, an ephemeral node exists exactly while its session is
//!   open: every acknowledged one of an open session is there, none of a closed session
//!   is, and none exists that no create may have made.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::history::{Kind, Op, Outcome};

/// What a checker found wrong, with the operations that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Which property.
    pub(crate) checker: &'static str,
    /// What went wrong.
    pub(crate) message: String,
    /// The smallest slice of the history that shows it (indexes into the history).
    pub(crate) ops: Vec<usize>,
}

/// A register's state: its data version and the value that version holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct State {
    version: i32,
    value: u64,
}

/// One operation as the search sees it.
#[derive(Debug, Clone, Copy)]
struct Call {
    index: usize,
    invoke: u64,
    /// `u64::MAX` when the outcome is unknown.
    complete: u64,
    step: Step,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// setData: ok with the version it returned, or unknown.
    Write { value: u64, returned: Option<i32> },
    /// setData with a version: ok (returned), failed (BadVersion), or unknown.
    Cas {
        expected: i32,
        value: u64,
        outcome: CasOutcome,
    },
    /// A read that must see the current state (after the run healed).
    Read { version: i32, value: u64 },
}

#[derive(Debug, Clone, Copy)]
enum CasOutcome {
    Ok(i32),
    BadVersion,
    Unknown,
}

impl Step {
    /// The state after this step from `s`, or `None` if it cannot happen there.
    /// `known` holds the versions acknowledged writes returned: each version is made by
    /// one write, so one whose outcome is unknown can only have made another.
    fn apply(self, s: State, known: &HashSet<i32>) -> Option<State> {
        match self {
            Step::Write { value, returned } => {
                let next = State {
                    version: s.version.checked_add(1)?,
                    value,
                };
                match returned {
                    Some(v) if v != next.version => None,
                    None if known.contains(&next.version) => None,
                    _ => Some(next),
                }
            }
            Step::Cas {
                expected,
                value,
                outcome,
            } => match outcome {
                CasOutcome::Ok(v) => (s.version == expected && v == expected + 1)
                    .then_some(State { version: v, value }),
                CasOutcome::BadVersion => (s.version != expected).then_some(s),
                CasOutcome::Unknown if s.version == expected => {
                    let version = expected.checked_add(1)?;
                    (!known.contains(&version)).then_some(State { version, value })
                }
                CasOutcome::Unknown => Some(s),
            },
            Step::Read { version, value } => {
                (s.version == version && s.value == value).then_some(s)
            }
        }
    }
}

/// ZooKeeper's `BadVersion`: a conditional write that saw another version.
const BAD_VERSION: i32 = -103;

/// The largest number of search steps per register before the search gives up (and says
/// so; [`version_order`] still checks the register). Writes whose outcome is unknown can
/// fill a missing version in many ways, and each way is its own branch: a minute-long run
/// with every member killed a few times (hundreds of unknown writes) needs more than
/// this, a 30-second one far less.
const SEARCH_BUDGET: u64 = 1_000_000;

/// Checks every register's operations for a linearization. `initial` is each register's
/// state before the run: version 0 holding value 0.
pub(crate) fn linearizable(history: &[Op]) -> Vec<Violation> {
    let mut by_key: BTreeMap<&str, Vec<Call>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        let unknown = matches!(op.outcome, Outcome::Unknown);
        let complete = if unknown { u64::MAX } else { op.complete };
        let step = match (&op.kind, &op.outcome) {
            (Kind::Write { value, .. }, Outcome::Ok { version, .. }) => Step::Write {
                value: *value,
                returned: Some(*version),
            },
            (Kind::Write { value, .. }, Outcome::Unknown) => Step::Write {
                value: *value,
                returned: None,
            },
            // Any other failure did not take effect and saw nothing.
            (Kind::Cas { .. }, Outcome::Fail { code }) if *code != BAD_VERSION => continue,
            (
                Kind::Cas {
                    expected, value, ..
                },
                outcome,
            ) => Step::Cas {
                expected: *expected,
                value: *value,
                outcome: match outcome {
                    Outcome::Ok { version, .. } => CasOutcome::Ok(*version),
                    Outcome::Fail { .. } => CasOutcome::BadVersion,
                    Outcome::Unknown | Outcome::Created { .. } | Outcome::Event { .. } => {
                        CasOutcome::Unknown
                    }
                },
            },
            (Kind::FinalRead { .. }, Outcome::Ok { version, value }) => Step::Read {
                version: *version,
                value: *value,
            },
            _ => continue,
        };
        let key = op.kind.key();
        by_key.entry(key).or_default().push(Call {
            index,
            invoke: op.invoke,
            complete,
            step,
        });
    }
    let mut violations = Vec::new();
    for (key, calls) in by_key {
        match search(&calls) {
            Search::Linearizable => {}
            Search::Budget => {
                // Too many orders to try: the version-order check still runs.
                eprintln!(
                    "chaos: {key}: the linearizability search gave up after {SEARCH_BUDGET} \
                     steps ({} operations); version order checked instead",
                    calls.len()
                );
            }
            Search::Not { stuck } => {
                // The smallest slice: the operations that overlap the first one no order
                // could place, and every operation before it that completed (it must
                // have been linearized first).
                let first = calls.iter().find(|c| c.index == stuck).copied();
                let ops = slice(&calls, first);
                violations.push(Violation {
                    checker: "linearizable",
                    message: format!(
                        "{key}: no order of its {} operations respects real time and the \
                         register's versions; the search could not place op #{stuck}",
                        calls.len()
                    ),
                    ops,
                });
            }
        }
    }
    violations
}

/// The operations around a stuck one: those it overlaps, and the last few that completed
/// before it was invoked.
fn slice(calls: &[Call], stuck: Option<Call>) -> Vec<usize> {
    let Some(stuck) = stuck else {
        return calls.iter().map(|c| c.index).collect();
    };
    let mut before: Vec<&Call> = calls.iter().filter(|c| c.complete < stuck.invoke).collect();
    before.sort_by_key(|c| c.complete);
    let keep_before = before.len().saturating_sub(5);
    let mut ops: Vec<usize> = before
        .into_iter()
        .skip(keep_before)
        .map(|c| c.index)
        .chain(
            calls
                .iter()
                .filter(|c| c.invoke <= stuck.complete && c.complete >= stuck.invoke)
                .map(|c| c.index),
        )
        .collect();
    ops.sort_unstable();
    ops.dedup();
    ops
}

enum Search {
    Linearizable,
    Not { stuck: usize },
    Budget,
}

/// Wing & Gong's search with Lowe's cache of (linearized set, state) pairs. Events are
/// the calls' invocations and completions in time order; an operation is linearized at
/// its invocation event (tried first), and a completion event of an operation not yet
/// linearized means the last choice was wrong.
fn search(calls: &[Call]) -> Search {
    let known: HashSet<i32> = calls
        .iter()
        .filter_map(|c| match c.step {
            Step::Write {
                returned: Some(v), ..
            } => Some(v),
            Step::Cas {
                outcome: CasOutcome::Ok(v),
                ..
            } => Some(v),
            _ => None,
        })
        .collect();
    #[derive(Clone, Copy)]
    struct Event {
        call: usize,
        is_return: bool,
        time: u64,
    }
    let mut events: Vec<Event> = Vec::with_capacity(calls.len() * 2);
    for (i, c) in calls.iter().enumerate() {
        events.push(Event {
            call: i,
            is_return: false,
            time: c.invoke,
        });
        events.push(Event {
            call: i,
            is_return: true,
            time: c.complete,
        });
    }
    // Invocations before completions at one instant: they overlap.
    events.sort_by_key(|e| (e.time, e.is_return));
    // A doubly linked list over the events, so that lifting a call is O(1): positions
    // 0..n are the events, `head` a sentinel before them, `end` the mark after them.
    let n = events.len();
    let (head, end) = (n, n + 1);
    let mut next: Vec<usize> = (0..=n)
        .map(|i| if i + 1 < n { i + 1 } else { end })
        .collect();
    let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { head } else { i - 1 }).collect();
    next[head] = if n > 0 { 0 } else { end };
    let mut match_of = vec![(0_usize, 0_usize); calls.len()];
    for (pos, e) in events.iter().enumerate() {
        if e.is_return {
            match_of[e.call].1 = pos;
        } else {
            match_of[e.call].0 = pos;
        }
    }
    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, pos: usize| {
        let (p, nx) = (prev[pos], next[pos]);
        next[p] = nx;
        if nx != end {
            prev[nx] = p;
        }
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, pos: usize| {
        let (p, nx) = (prev[pos], next[pos]);
        next[p] = pos;
        if nx != end {
            prev[nx] = pos;
        }
    };

    let words = calls.len().div_ceil(64);
    let mut linearized = vec![0_u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut state = State {
        version: 0,
        value: 0,
    };
    // (call, state before it)
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut entry = next[head];
    let mut steps = 0_u64;
    let mut deepest = 0_usize;
    let mut stuck_call = calls.first().map_or(0, |c| c.index);
    while entry != end {
        steps += 1;
        if steps > SEARCH_BUDGET {
            return Search::Budget;
        }
        let event = events[entry];
        if !event.is_return {
            let call = calls[event.call];
            if let Some(after) = call.step.apply(state, &known) {
                let mut set = linearized.clone();
                set[event.call / 64] |= 1 << (event.call % 64);
                if cache.insert((set.clone(), after)) {
                    stack.push((event.call, state));
                    state = after;
                    linearized = set;
                    let (call_pos, ret_pos) = match_of[event.call];
                    lift(&mut next, &mut prev, call_pos);
                    lift(&mut next, &mut prev, ret_pos);
                    if stack.len() > deepest {
                        deepest = stack.len();
                    }
                    entry = next[head];
                    continue;
                }
            }
            entry = next[entry];
        } else {
            // An operation completed before any order could place it: undo the last one.
            if stack.len() >= deepest {
                stuck_call = calls[event.call].index;
            }
            let Some((call, before)) = stack.pop() else {
                return Search::Not { stuck: stuck_call };
            };
            state = before;
            linearized[call / 64] &= !(1 << (call % 64));
            let (call_pos, ret_pos) = match_of[call];
            unlift(&mut next, &mut prev, ret_pos);
            unlift(&mut next, &mut prev, call_pos);
            entry = next[call_pos];
        }
    }
    Search::Linearizable
}

/// What [`version_order`] gathers of one register.
#[derive(Default)]
struct VersionedRegister {
    /// version -> (op, value written)
    made: BTreeMap<i32, (usize, u64)>,
    /// Values of writes whose outcome is unknown.
    unknown_values: HashSet<u64>,
    /// How many writes' outcome is unknown.
    unknown: usize,
    /// Conditional writes refused with BadVersion: (op, version expected).
    refused: Vec<(usize, i32)>,
    /// Reads after healing: (op, version, value).
    finals: Vec<(usize, i32, u64)>,
}

/// The register checks that need only the versions writes returned (see the module
/// docs); sound, and fast on any length of history.
pub(crate) fn version_order(history: &[Op]) -> Vec<Violation> {
    let mut registers: BTreeMap<&str, VersionedRegister> = BTreeMap::new();
    let mut violations = Vec::new();
    let violation = |message: String, ops: Vec<usize>| Violation {
        checker: "version order",
        message,
        ops,
    };
    for (i, op) in history.iter().enumerate() {
        let key = op.kind.key();
        let r = registers.entry(key).or_default();
        match (&op.kind, &op.outcome) {
            (Kind::Write { .. } | Kind::Cas { .. }, Outcome::Ok { version, value }) => {
                if let Kind::Cas { expected, .. } = op.kind {
                    if expected.checked_add(1) != Some(*version) {
                        violations.push(violation(
                            format!("{key}: a write expecting version {expected} made {version}"),
                            vec![i],
                        ));
                    }
                }
                if let Some(&(first, _)) = r.made.get(version) {
                    violations.push(violation(
                        format!("{key}: version {version} acknowledged twice"),
                        vec![first, i],
                    ));
                } else {
                    r.made.insert(*version, (i, *value));
                }
            }
            (Kind::Write { value, .. } | Kind::Cas { value, .. }, Outcome::Unknown) => {
                r.unknown += 1;
                r.unknown_values.insert(*value);
            }
            (Kind::Cas { expected, .. }, Outcome::Fail { code }) if *code == BAD_VERSION => {
                r.refused.push((i, *expected));
            }
            (Kind::FinalRead { .. }, Outcome::Ok { version, value }) => {
                r.finals.push((i, *version, *value));
            }
            _ => {}
        }
    }
    for (key, r) in &registers {
        let final_read = r.finals.first().copied();
        // The last version: the one read after healing, else the highest acknowledged.
        let last = final_read
            .map(|(_, v, _)| v)
            .or(r.made.keys().next_back().copied())
            .unwrap_or(0);
        if let Some((final_op, last, value)) = final_read {
            final_checks(key, r, final_op, last, value, &mut violations);
        }
        // Real time: a write acknowledged with a higher version must not have completed
        // before one with a lower version was invoked.
        let mut earliest_later: Option<usize> = None;
        for (_, &(op, _)) in r.made.iter().rev() {
            if let Some(later) = earliest_later {
                if history[later].complete < history[op].invoke {
                    violations.push(violation(
                        format!(
                            "{key}: a write completed with a higher version before one with a \
                             lower version was invoked"
                        ),
                        vec![op, later],
                    ));
                }
            }
            if earliest_later.is_none_or(|l| history[op].complete < history[l].complete) {
                earliest_later = Some(op);
            }
        }
        // A refused conditional write: the version it named must not have been current
        // for all of its time (made before it began, the next one begun after it ended).
        // Past the last version, that needs the final read or no write of unknown outcome.
        for &(op, expected) in &r.refused {
            let made_before = expected == 0
                || r.made
                    .get(&expected)
                    .is_some_and(|&(m, _)| history[m].complete < history[op].invoke);
            let next_after = (expected >= last && (final_read.is_some() || r.unknown == 0))
                || r.made
                    .get(&(expected + 1))
                    .is_some_and(|&(m, _)| history[m].invoke > history[op].complete);
            if made_before && next_after {
                let mut ops: Vec<usize> =
                    r.made.get(&expected).map(|&(m, _)| m).into_iter().collect();
                ops.push(op);
                violations.push(violation(
                    format!(
                        "{key}: a write expecting version {expected} was refused while it was current"
                    ),
                    ops,
                ));
            }
        }
    }
    violations
}

/// The checks against the state read after healing.
fn final_checks(
    key: &str,
    r: &VersionedRegister,
    final_op: usize,
    last: i32,
    value: u64,
    violations: &mut Vec<Violation>,
) {
    let violation = |message: String, ops: Vec<usize>| Violation {
        checker: "version order",
        message,
        ops,
    };
    if let Some((&v, &(op, _))) = r.made.range(last + 1..).next() {
        violations.push(violation(
            format!("{key}: version {v} was acknowledged, but the register ends at {last}"),
            vec![op, final_op],
        ));
    }
    match r.made.get(&last) {
        Some(&(op, wrote)) if wrote != value => violations.push(violation(
            format!("{key}: ends at version {last} holding {value}, written as {wrote}"),
            vec![op, final_op],
        )),
        None if last > 0 && !r.unknown_values.contains(&value) => violations.push(violation(
            format!("{key}: ends holding {value}, which no write may have written"),
            vec![final_op],
        )),
        _ => {}
    }
    let gaps = (1..=last).filter(|v| !r.made.contains_key(v)).count();
    if gaps > r.unknown {
        violations.push(violation(
            format!(
                "{key}: {gaps} versions up to {last} were made by no acknowledged write, \
                     but only {} writes may have made them",
                r.unknown
            ),
            vec![final_op],
        ));
    }
}

/// Within each session, the version seen of each register never goes back: reads and the
/// session's own successful writes, in the session's order.
pub(crate) fn session_order(history: &[Op]) -> Vec<Violation> {
    let mut seen: HashMap<(i64, &str), (i32, usize)> = HashMap::new();
    let mut order: Vec<usize> = (0..history.len()).collect();
    order.sort_by_key(|&i| (history[i].session, history[i].invoke));
    let mut violations = Vec::new();
    for i in order {
        let op = &history[i];
        let version = match (&op.kind, &op.outcome) {
            (
                Kind::Read { .. }
                | Kind::SyncRead { .. }
                | Kind::WatchedRead { .. }
                | Kind::Write { .. }
                | Kind::Cas { .. },
                Outcome::Ok { version, .. },
            ) => *version,
            _ => continue,
        };
        let key = (op.session, op.kind.key());
        if let Some(&(before, at)) = seen.get(&key) {
            if version < before {
                violations.push(Violation {
                    checker: "session order",
                    message: format!(
                        "session {:#x} saw {} at version {before}, then at version {version}",
                        op.session,
                        op.kind.key()
                    ),
                    ops: vec![at, i],
                });
                continue;
            }
        }
        seen.insert(key, (version, i));
    }
    violations
}

/// Sequential creates: each name handed out once; each acknowledged one present at the
/// end (`present`, read after the run healed); no more present than may have been made.
pub(crate) fn sequential(history: &[Op], present: &[String]) -> Vec<Violation> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut violations = Vec::new();
    let (mut ok, mut unknown) = (0_usize, 0_usize);
    for (i, op) in history.iter().enumerate() {
        let Kind::CreateSequential { .. } = op.kind else {
            continue;
        };
        match &op.outcome {
            Outcome::Created { path } => {
                ok += 1;
                if let Some(&first) = names.get(path.as_str()) {
                    violations.push(Violation {
                        checker: "sequential",
                        message: format!("{path} was handed out twice"),
                        ops: vec![first, i],
                    });
                }
                names.insert(path, i);
            }
            Outcome::Unknown => unknown += 1,
            _ => {}
        }
    }
    let present_set: HashSet<&str> = present.iter().map(String::as_str).collect();
    for (name, &i) in &names {
        if !present_set.contains(name) {
            violations.push(Violation {
                checker: "sequential",
                message: format!("{name} was acknowledged but is gone"),
                ops: vec![i],
            });
        }
    }
    if present.len() > ok + unknown {
        violations.push(Violation {
            checker: "sequential",
            message: format!(
                "{} sequential nodes exist, but only {ok} creates succeeded and {unknown} may have",
                present.len()
            ),
            ops: Vec::new(),
        });
    }
    violations
}

/// Each `sync` + read sees at least the version of every write acknowledged before the
/// `sync` was invoked.
pub(crate) fn sync_reads(history: &[Op]) -> Vec<Violation> {
    // Per register: acknowledged writes by completion time, with the highest version
    // acknowledged up to each.
    let mut acked: BTreeMap<&str, Vec<(u64, i32, usize)>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        if let (Kind::Write { key, .. } | Kind::Cas { key, .. }, Outcome::Ok { version, .. }) =
            (&op.kind, &op.outcome)
        {
            acked
                .entry(key.as_str())
                .or_default()
                .push((op.complete, *version, i));
        }
    }
    for writes in acked.values_mut() {
        writes.sort_unstable();
        let mut best: Option<(i32, usize)> = None;
        for w in writes.iter_mut() {
            if best.is_none_or(|(v, _)| w.1 > v) {
                best = Some((w.1, w.2));
            }
            (w.1, w.2) = best.unwrap_or((w.1, w.2));
        }
    }
    let mut violations = Vec::new();
    for (i, op) in history.iter().enumerate() {
        let (Kind::SyncRead { key }, Outcome::Ok { version, .. }) = (&op.kind, &op.outcome) else {
            continue;
        };
        let Some(writes) = acked.get(key.as_str()) else {
            continue;
        };
        // The writes acknowledged strictly before the sync was sent.
        let before = writes.partition_point(|w| w.0 < op.invoke);
        let Some(&(_, newest, by)) = before.checked_sub(1).and_then(|n| writes.get(n)) else {
            continue;
        };
        if *version < newest {
            violations.push(Violation {
                checker: "sync read",
                message: format!(
                    "{key}: a read after sync saw version {version}, but version {newest} \
                     was acknowledged before the sync was sent"
                ),
                ops: vec![by, i],
            });
        }
    }
    violations
}

/// Data watches, per session in the order its answers and events arrived (the history's
/// order within a session): a watch set by a read at version `v` is armed; its event
/// must arrive before any answer showing a version above `v`; an event needs an armed
/// watch (one-shot: it disarms it); and the register must end above `v`, else the event
/// announced a change that never committed.
pub(crate) fn watches(history: &[Op]) -> Vec<Violation> {
    let mut finals: HashMap<&str, i32> = HashMap::new();
    for op in history {
        if let (Kind::FinalRead { key }, Outcome::Ok { version, .. }) = (&op.kind, &op.outcome) {
            finals.insert(key, *version);
        }
    }
    // (session, key) -> the version the watch was set at, and by which op.
    let mut armed: HashMap<(i64, &str), (i32, usize)> = HashMap::new();
    let mut violations = Vec::new();
    let violation = |message: String, ops: Vec<usize>| Violation {
        checker: "watches",
        message,
        ops,
    };
    for (i, op) in history.iter().enumerate() {
        let key = (op.session, op.kind.key());
        match (&op.kind, &op.outcome) {
            (Kind::WatchEvent { key: path }, Outcome::Event { .. }) => {
                let Some((at, set_by)) = armed.remove(&key) else {
                    violations.push(violation(
                        format!(
                            "session {:#x} got an event for {path} with no watch set there \
                             (a duplicate of a one-shot event, or one never asked for)",
                            op.session
                        ),
                        vec![i],
                    ));
                    continue;
                };
                if finals.get(path.as_str()).is_some_and(|end| *end <= at) {
                    violations.push(violation(
                        format!(
                            "session {:#x} got an event for {path}, watched at version {at}, \
                             but it never changed after that",
                            op.session
                        ),
                        vec![set_by, i],
                    ));
                }
            }
            (
                Kind::Read { .. }
                | Kind::SyncRead { .. }
                | Kind::WatchedRead { .. }
                | Kind::Write { .. }
                | Kind::Cas { .. },
                Outcome::Ok { version, .. },
            ) => {
                if let Some(&(at, set_by)) = armed.get(&key) {
                    if *version > at {
                        violations.push(violation(
                            format!(
                                "session {:#x} saw {} at version {version} before the event of \
                                 its watch set at version {at}",
                                op.session,
                                op.kind.key()
                            ),
                            vec![set_by, i],
                        ));
                        armed.remove(&key);
                    }
                }
                if let Kind::WatchedRead { .. } = op.kind {
                    armed.entry(key).or_insert((*version, i));
                }
            }
            _ => {}
        }
    }
    violations
}

/// Ephemeral nodes at the end (`present`: path and owner, read after the run healed)
/// against the sessions open then (`sessions`) and the creates in the history.
pub(crate) fn ephemerals(
    history: &[Op],
    sessions: &[i64],
    present: &[(String, i64)],
) -> Vec<Violation> {
    let open: HashSet<i64> = sessions.iter().copied().collect();
    let there: HashMap<&str, i64> = present.iter().map(|(p, o)| (p.as_str(), *o)).collect();
    let mut created: HashMap<&str, usize> = HashMap::new();
    let mut violations = Vec::new();
    for (i, op) in history.iter().enumerate() {
        let Kind::CreateEphemeral { path } = &op.kind else {
            continue;
        };
        match &op.outcome {
            Outcome::Created { .. } => {
                created.insert(path, i);
                if open.contains(&op.session) && there.get(path.as_str()) != Some(&op.session) {
                    violations.push(Violation {
                        checker: "ephemerals",
                        message: format!(
                            "{path} was acknowledged to session {:#x}, which is still open, \
                             but is gone",
                            op.session
                        ),
                        ops: vec![i],
                    });
                }
            }
            Outcome::Unknown => {
                created.entry(path).or_insert(i);
            }
            _ => {}
        }
    }
    for (path, owner) in present {
        if !open.contains(owner) {
            violations.push(Violation {
                checker: "ephemerals",
                message: format!("{path} outlived its session {owner:#x}"),
                ops: created.get(path.as_str()).copied().into_iter().collect(),
            });
        }
        if !created.contains_key(path.as_str()) {
            violations.push(Violation {
                checker: "ephemerals",
                message: format!("{path} exists, but no create may have made it"),
                ops: Vec::new(),
            });
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(session: i64, invoke: u64, complete: u64, kind: Kind, outcome: Outcome) -> Op {
        Op {
            session,
            invoke,
            complete,
            kind,
            outcome,
        }
    }

    fn write(value: u64) -> Kind {
        Kind::Write {
            key: "r".into(),
            value,
        }
    }

    fn cas(expected: i32, value: u64) -> Kind {
        Kind::Cas {
            key: "r".into(),
            expected,
            value,
        }
    }

    fn ok(version: i32, value: u64) -> Outcome {
        Outcome::Ok { version, value }
    }

    fn final_read() -> Kind {
        Kind::FinalRead { key: "r".into() }
    }

    #[test]
    fn concurrent_writes_and_unknowns_linearize() {
        let history = vec![
            // Two overlapping writes: either order, as their versions say.
            op(1, 0, 10, write(1), ok(2, 1)),
            op(2, 1, 9, write(2), ok(1, 2)),
            // A write whose outcome is unknown, then a CAS that shows it happened.
            op(1, 11, 12, write(3), Outcome::Unknown),
            op(2, 20, 21, cas(3, 4), ok(4, 4)),
            // A write lost with its connection that never happened.
            op(1, 22, 23, write(5), Outcome::Unknown),
            op(2, 30, 31, cas(4, 6), Outcome::Fail { code: -103 }),
            op(3, 40, 41, final_read(), ok(5, 5)),
        ];
        assert_eq!(linearizable(&history), []);
        assert_eq!(version_order(&history), []);
        assert_eq!(session_order(&history), []);
    }

    #[test]
    fn two_acknowledged_writes_with_one_version_are_caught() {
        // The bug a leader acknowledging before its quorum shows after a failover.
        let history = vec![
            op(1, 0, 5, write(1), ok(1, 1)),
            op(2, 10, 15, write(2), ok(1, 2)),
        ];
        let found = linearizable(&history);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].ops, [0, 1]);
        assert!(!version_order(&history).is_empty());
    }

    #[test]
    fn a_real_time_violation_is_caught() {
        // B was invoked after A completed, yet took the earlier version.
        let history = vec![
            op(1, 0, 5, write(1), ok(1, 1)),
            op(2, 6, 10, write(2), ok(2, 2)),
            op(3, 11, 15, write(3), ok(1, 3)),
        ];
        assert_eq!(linearizable(&history).len(), 1);
        assert!(!version_order(&history).is_empty());
        // Without the duplicate: a write invoked after another completed took a lower
        // version.
        let history = vec![
            op(1, 0, 5, write(1), ok(2, 1)),
            op(2, 6, 10, write(2), ok(1, 2)),
        ];
        assert_eq!(linearizable(&history).len(), 1);
        assert_eq!(version_order(&history).len(), 1);
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        // The write was acknowledged; later nothing but the initial state is there.
        let history = vec![
            op(1, 0, 5, write(1), ok(1, 1)),
            op(2, 10, 15, cas(0, 2), ok(1, 2)),
        ];
        assert_eq!(linearizable(&history).len(), 1);
        assert!(!version_order(&history).is_empty());
        let history = vec![
            op(1, 0, 5, write(1), ok(1, 1)),
            op(2, 10, 15, final_read(), ok(0, 0)),
        ];
        assert_eq!(linearizable(&history).len(), 1);
        assert!(!version_order(&history).is_empty());
        // A CAS that failed although nobody else wrote: it saw a stale version.
        let history = vec![
            op(1, 0, 5, write(1), ok(1, 1)),
            op(2, 10, 15, cas(1, 2), Outcome::Fail { code: -103 }),
        ];
        assert_eq!(linearizable(&history).len(), 1);
        assert_eq!(version_order(&history).len(), 1);
    }

    #[test]
    fn a_phantom_value_is_caught() {
        // The final state holds a value nobody wrote at that version.
        let history = vec![
            op(1, 0, 5, write(1), ok(1, 1)),
            op(2, 10, 15, final_read(), ok(1, 9)),
        ];
        assert_eq!(linearizable(&history).len(), 1);
        assert_eq!(version_order(&history).len(), 1);
    }

    #[test]
    fn a_session_that_goes_back_is_caught() {
        let history = vec![
            op(1, 0, 5, write(1), ok(2, 1)),
            op(1, 6, 8, Kind::Read { key: "r".into() }, ok(1, 0)),
        ];
        let found = session_order(&history);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].ops, [0, 1]);
    }

    #[test]
    fn a_stale_read_after_sync_is_caught() {
        let sync_read = || Kind::SyncRead { key: "r".into() };
        let history = vec![
            op(1, 0, 5, write(1), ok(1, 1)),
            op(1, 6, 8, write(2), ok(2, 2)),
            op(2, 10, 15, sync_read(), ok(1, 1)),
        ];
        let found = sync_reads(&history);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].ops, [1, 2]);
        // A write still in flight when the sync was sent need not be seen.
        let history = vec![
            op(1, 0, 5, write(1), ok(1, 1)),
            op(1, 6, 12, write(2), ok(2, 2)),
            op(2, 10, 15, sync_read(), ok(1, 1)),
        ];
        assert_eq!(sync_reads(&history), []);
    }

    #[test]
    fn watch_events_late_twice_or_phantom_are_caught() {
        let watched = || Kind::WatchedRead { key: "r".into() };
        let event = || Kind::WatchEvent { key: "r".into() };
        let fired = Outcome::Event { kind: 3 };
        // Fine: watch at 1, the event, then version 2 seen, and the register ends at 2.
        let good = vec![
            op(1, 0, 1, watched(), ok(1, 1)),
            op(2, 2, 3, write(2), ok(2, 2)),
            op(1, 4, 4, event(), fired.clone()),
            op(1, 5, 6, Kind::Read { key: "r".into() }, ok(2, 2)),
            op(0, 9, 9, final_read(), ok(2, 2)),
        ];
        assert_eq!(watches(&good), []);
        // The new data before the event.
        let mut late = good.clone();
        late.swap(2, 3);
        let found = watches(&late);
        assert!(found.iter().any(|v| v.message.contains("before the event")));
        // A one-shot event twice.
        let mut twice = good.clone();
        twice.insert(3, op(1, 4, 4, event(), fired.clone()));
        assert!(
            watches(&twice)
                .iter()
                .any(|v| v.message.contains("no watch set"))
        );
        // An event for a change that never committed: the register ends where it was.
        let phantom = vec![
            op(1, 0, 1, watched(), ok(1, 1)),
            op(1, 4, 4, event(), fired),
            op(0, 9, 9, final_read(), ok(1, 1)),
        ];
        assert!(
            watches(&phantom)
                .iter()
                .any(|v| v.message.contains("never changed"))
        );
    }

    #[test]
    fn ephemerals_lost_outliving_or_phantom_are_caught() {
        let create = |session, path: &str, outcome| {
            op(
                session,
                0,
                1,
                Kind::CreateEphemeral { path: path.into() },
                outcome,
            )
        };
        let created = |p: &str| Outcome::Created { path: p.into() };
        let history = vec![
            create(1, "/e/a", created("/e/a")),
            create(2, "/e/b", created("/e/b")),
            create(3, "/e/c", Outcome::Unknown),
        ];
        // Session 1 open, its node there; session 2 closed, its node gone; the unknown
        // create of session 3 (closed) left nothing: all fine.
        assert_eq!(ephemerals(&history, &[1], &[("/e/a".into(), 1)]), []);
        // Session 1 is open and its node is gone.
        assert!(
            ephemerals(&history, &[1], &[])
                .iter()
                .any(|v| v.message.contains("still open"))
        );
        // Session 2 is closed and its node is still there.
        let found = ephemerals(&history, &[1], &[("/e/a".into(), 1), ("/e/b".into(), 2)]);
        assert!(found.iter().any(|v| v.message.contains("outlived")));
        // A node nobody created.
        let found = ephemerals(&history, &[1, 9], &[("/e/a".into(), 1), ("/e/z".into(), 9)]);
        assert!(found.iter().any(|v| v.message.contains("no create")));
    }

    #[test]
    fn sequential_names_twice_lost_or_phantom_are_caught() {
        let create = |outcome| {
            op(
                1,
                0,
                1,
                Kind::CreateSequential {
                    parent: "/s".into(),
                },
                outcome,
            )
        };
        let created = |p: &str| Outcome::Created { path: p.into() };
        let history = vec![create(created("/s/n-1")), create(created("/s/n-1"))];
        assert!(
            sequential(&history, &["/s/n-1".into()])
                .iter()
                .any(|v| v.message.contains("twice"))
        );
        let history = vec![create(created("/s/n-1")), create(created("/s/n-2"))];
        assert!(
            sequential(&history, &["/s/n-1".into()])
                .iter()
                .any(|v| v.message.contains("gone"))
        );
        let history = vec![create(created("/s/n-1")), create(Outcome::Unknown)];
        let present: Vec<String> = vec!["/s/n-1".into(), "/s/n-2".into(), "/s/n-3".into()];
        assert!(
            sequential(&history, &present)
                .iter()
                .any(|v| v.message.contains("exist"))
        );
        assert_eq!(sequential(&history, &present[..2]), []);
    }
}
