//! What the chaos clients record: every operation with its session, when it was invoked
//! and when it completed (nanoseconds since the run started), and how it ended.

use std::io::Write;
use std::path::Path;

/// An operation a client invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `getData` of a register (a plain read: ZooKeeper lets it be stale).
    Read { key: String },
    /// `setData` of a register with a value unique to this write, any version.
    Write { key: String, value: u64 },
    /// `setData` with the version the client last saw.
    Cas {
        key: String,
        expected: i32,
        value: u64,
    },
    /// `create` of a persistent sequential node under `parent`.
    CreateSequential { parent: String },
    /// After the run healed: `sync` then `getData` on one member.
    FinalRead { key: String },
    /// `sync` then `getData` on one connection, during the run.
    SyncRead { key: String },
    /// `create` of an ephemeral node (its session's, for as long as it lives).
    CreateEphemeral { path: String },
    /// `getData` of a register that leaves a data watch on it.
    WatchedRead { key: String },
    /// A watch event the session received (invoked and completed on arrival).
    WatchEvent { key: String },
}

impl Kind {
    /// Its name in the reports.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Kind::Read { .. } => "read",
            Kind::Write { .. } => "write",
            Kind::Cas { .. } => "cas",
            Kind::CreateSequential { .. } => "create-seq",
            Kind::FinalRead { .. } => "final-read",
            Kind::SyncRead { .. } => "sync-read",
            Kind::CreateEphemeral { .. } => "create-eph",
            Kind::WatchedRead { .. } => "read+watch",
            Kind::WatchEvent { .. } => "event",
        }
    }

    /// The register or parent the operation is about.
    pub(crate) fn key(&self) -> &str {
        match self {
            Kind::Read { key }
            | Kind::Write { key, .. }
            | Kind::Cas { key, .. }
            | Kind::FinalRead { key }
            | Kind::SyncRead { key }
            | Kind::WatchedRead { key }
            | Kind::WatchEvent { key } => key,
            Kind::CreateSequential { parent } => parent,
            Kind::CreateEphemeral { path } => path,
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It took effect (or read): the register's version and value after it.
    Ok { version: i32, value: u64 },
    /// A sequential create took effect with this name.
    Created { path: String },
    /// It definitely did not take effect: the server's error code.
    Fail { code: i32 },
    /// Unknown: the connection was lost or the reply did not come in time.
    Unknown,
    /// A watch event arrived: its type (ZooKeeper's `EventType` code).
    Event { kind: i32 },
}

impl Outcome {
    /// Its name in the reports: ok, fail, unknown, or received (an event).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } | Outcome::Created { .. } => "ok",
            Outcome::Fail { .. } => "fail",
            Outcome::Unknown => "unknown",
            Outcome::Event { .. } => "received",
        }
    }
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    /// The session that ran it.
    pub(crate) session: i64,
    /// When it was invoked, in nanoseconds since the run started.
    pub(crate) invoke: u64,
    /// When its outcome was known (for `Unknown`, when the client gave up).
    pub(crate) complete: u64,
    /// What it was.
    pub(crate) kind: Kind,
    /// How it ended.
    pub(crate) outcome: Outcome,
}

impl Op {
    /// One line of text: times, session, operation, outcome.
    pub(crate) fn line(&self) -> String {
        let what = match &self.kind {
            Kind::Read { key } => format!("read {key}"),
            Kind::Write { key, value } => format!("write {key} {value}"),
            Kind::Cas {
                key,
                expected,
                value,
            } => format!("cas {key} v{expected} {value}"),
            Kind::CreateSequential { parent } => format!("create-seq {parent}"),
            Kind::FinalRead { key } => format!("final-read {key}"),
            Kind::SyncRead { key } => format!("sync-read {key}"),
            Kind::CreateEphemeral { path } => format!("create-eph {path}"),
            Kind::WatchedRead { key } => format!("read+watch {key}"),
            Kind::WatchEvent { key } => format!("event {key}"),
        };
        let outcome = match &self.outcome {
            Outcome::Ok { version, value } => format!("ok v{version} {value}"),
            Outcome::Created { path } => format!("ok {path}"),
            Outcome::Fail { code } => format!("fail {code}"),
            Outcome::Unknown => "unknown".into(),
            Outcome::Event { kind } => format!("event type {kind}"),
        };
        format!(
            "{:>12.6} {:>12.6} {:#018x} {what} -> {outcome}",
            self.invoke as f64 / 1e9,
            self.complete as f64 / 1e9,
            self.session
        )
    }
}

/// Writes the history, one operation a line, in invocation order.
pub(crate) fn write(path: &Path, history: &[Op]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "# invoke(s) complete(s) session operation -> outcome")?;
    for (i, op) in history.iter().enumerate() {
        writeln!(out, "#{i} {}", op.line())?;
    }
    out.flush()
}
