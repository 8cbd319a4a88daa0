//! `cargo xtask server-sim`: the whole server in `zk-server`'s seeded simulation (its
//! engines, `zk-election` and `zk-replication` cores over a simulated network, disk and
//! clock, with simulated clients), many seeds, each history checked by the checkers
//! `cargo xtask chaos` runs on real processes, plus the watch check. With
//! `--lying-disk` only the checkers' verdicts count as catches, never a stopped run.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use zk_server::simulation::{self, Final, Options, Report, history as sim};

use crate::chaos::check::{self, Violation};
use crate::chaos::history::{Kind, Op, Outcome};

const USAGE: &str = "usage: cargo xtask server-sim [--seeds N] [--start S] [--seed S] \
    [--duration-ms MS] [--members N] [--clients N] [--no-faults] [--lying-disk] [--reconfig]";

/// The recorded operation as the checkers read it.
fn convert(op: &sim::Op) -> Op {
    let kind = match &op.kind {
        sim::Kind::Read { key } => Kind::Read { key: key.clone() },
        sim::Kind::Write { key, value } => Kind::Write {
            key: key.clone(),
            value: *value,
        },
        sim::Kind::Cas {
            key,
            expected,
            value,
        } => Kind::Cas {
            key: key.clone(),
            expected: *expected,
            value: *value,
        },
        sim::Kind::CreateSequential { parent } => Kind::CreateSequential {
            parent: parent.clone(),
        },
        sim::Kind::FinalRead { key } => Kind::FinalRead { key: key.clone() },
        sim::Kind::SyncRead { key } => Kind::SyncRead { key: key.clone() },
        sim::Kind::CreateEphemeral { path } => Kind::CreateEphemeral { path: path.clone() },
        sim::Kind::WatchedRead { key } => Kind::WatchedRead { key: key.clone() },
        sim::Kind::WatchEvent { key } => Kind::WatchEvent { key: key.clone() },
    };
    let outcome = match &op.outcome {
        sim::Outcome::Ok { version, value } => Outcome::Ok {
            version: *version,
            value: *value,
        },
        sim::Outcome::Created { path } => Outcome::Created { path: path.clone() },
        sim::Outcome::Fail { code } => Outcome::Fail { code: *code },
        sim::Outcome::Unknown => Outcome::Unknown,
        sim::Outcome::Event { kind } => Outcome::Event { kind: *kind },
    };
    Op {
        session: op.session,
        invoke: op.invoke,
        complete: op.complete,
        kind,
        outcome,
    }
}

/// The history with each member's final registers as reads after everything else, and
/// what the checkers make of it.
fn check_report(report: &Report) -> (Vec<Op>, Vec<Violation>) {
    let mut history: Vec<Op> = report.history.iter().map(convert).collect();
    let end = history.iter().map(|op| op.complete).max().unwrap_or(0) + 1;
    let mut violations = Vec::new();
    for f in &report.finals {
        for (key, version, value) in &f.registers {
            history.push(Op {
                session: 0,
                invoke: end,
                complete: end,
                kind: Kind::FinalRead { key: key.clone() },
                outcome: Outcome::Ok {
                    version: *version,
                    value: *value,
                },
            });
        }
    }
    if let Some(first) = report.finals.first() {
        for f in &report.finals[1..] {
            // Everything but the member's number.
            fn held(m: &Final) -> impl PartialEq + '_ {
                let Final {
                    sid: _,
                    zxid,
                    digest,
                    registers,
                    sequential,
                    sessions,
                    ephemerals,
                    membership,
                } = m;
                (
                    zxid, digest, registers, sequential, sessions, ephemerals, membership,
                )
            }
            if held(f) != held(first) {
                violations.push(Violation {
                    checker: "convergence",
                    message: format!(
                        "member {} and member {} differ after healing: zxid {:#x} digest {} \
                         against zxid {:#x} digest {}",
                        f.sid, first.sid, f.zxid, f.digest, first.zxid, first.digest
                    ),
                    ops: Vec::new(),
                });
            }
        }
    }
    violations.extend(check::linearizable(&history));
    violations.extend(check::version_order(&history));
    violations.extend(check::session_order(&history));
    violations.extend(check::sync_reads(&history));
    violations.extend(check::watches(&history));
    if let Some(f) = report.finals.first() {
        violations.extend(check::ephemerals(&history, &f.sessions, &f.ephemerals));
    }
    let present: Vec<String> = report
        .finals
        .first()
        .map(|f| {
            f.sequential
                .iter()
                .map(|c| format!("/chaos/seq/{c}"))
                .collect()
        })
        .unwrap_or_default();
    violations.extend(check::sequential(&history, &present));
    (history, violations)
}

/// Totals over every seed run.
#[derive(Default)]
struct Totals {
    seeds: u64,
    simulated_ms: u64,
    events: u64,
    faults: BTreeMap<&'static str, u64>,
    outcomes: BTreeMap<(&'static str, &'static str), u64>,
    failovers_ms: Vec<u64>,
    leaders: u64,
    syncs: BTreeMap<&'static str, u64>,
    purges: u64,
    reconfigs: u64,
}

impl Totals {
    fn add(&mut self, report: &Report, history: &[Op]) {
        self.seeds += 1;
        self.simulated_ms += report.stats.simulated_ms;
        self.events += report.stats.events;
        self.leaders += report.stats.leaders;
        self.purges += report.stats.purges;
        self.reconfigs += report.stats.reconfigs;
        for (k, n) in &report.stats.faults {
            *self.faults.entry(k).or_default() += n;
        }
        for (k, n) in &report.stats.syncs {
            *self.syncs.entry(k).or_default() += n;
        }
        self.failovers_ms.extend(&report.stats.failovers_ms);
        for op in history {
            *self
                .outcomes
                .entry((op.kind.label(), op.outcome.label()))
                .or_default() += 1;
        }
    }

    fn print(&mut self, wall: std::time::Duration) {
        self.failovers_ms.sort_unstable();
        let ops: u64 = self.outcomes.values().sum();
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|((k, o), n)| format!("{k} {o} {n}"))
            .collect();
        println!(
            "server-sim: {} seeds, {:.2} simulated hours in {:.1?} ({} events)",
            self.seeds,
            self.simulated_ms as f64 / 3_600_000.0,
            wall,
            self.events
        );
        println!("faults: {:?}", self.faults);
        println!("operations: {ops} ({})", outcomes.join(", "));
        println!(
            "leaders established: {}; failover (leader lost to the next established): \
             median {} ms, max {} ms over {}",
            self.leaders,
            self.failovers_ms
                .get(self.failovers_ms.len() / 2)
                .copied()
                .unwrap_or(0),
            self.failovers_ms.last().copied().unwrap_or(0),
            self.failovers_ms.len()
        );
        println!(
            "syncs served: {:?}; autopurges: {}; reconfigurations: {}",
            self.syncs, self.purges, self.reconfigs
        );
    }
}

fn print_violations(seed: u64, report: &Report, history: &[Op], violations: &[Violation]) {
    eprintln!("seed {seed}: {} violation(s)", violations.len());
    eprintln!("fault schedule:");
    for line in &report.schedule {
        eprintln!("  {line}");
    }
    for v in violations {
        eprintln!("- [{}] {}", v.checker, v.message);
        for &i in v.ops.iter().take(40) {
            eprintln!("    #{i} {}", history[i].line());
        }
    }
}

pub(crate) fn run(rest: &[String]) -> Result<()> {
    let mut seeds = 100u64;
    let mut start = 1u64;
    let mut one = None;
    let mut template = Options::new(0);
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        let mut value = || -> Result<u64> {
            args.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))?
                .parse()
                .with_context(|| format!("{arg} takes a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--seeds" => seeds = value()?,
            "--start" => start = value()?,
            "--seed" => one = Some(value()?),
            "--duration-ms" => template.duration_ms = value()?,
            "--members" => template.members = value()?,
            "--clients" => template.clients = usize::try_from(value()?)?,
            "--no-faults" => template.faults = false,
            "--lying-disk" => template.lying_disk = true,
            "--reconfig" => template.reconfig = true,
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    if let Some(seed) = one {
        (start, seeds) = (seed, 1);
    }
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut caught = Vec::new();
    for seed in start..start + seeds {
        let options = Options {
            seed,
            ..template.clone()
        };
        let report = match simulation::run(&options) {
            Ok(report) => report,
            Err(e) if template.lying_disk => {
                // Not a catch: only the checkers' verdicts count.
                eprintln!("seed {seed}: the run stopped (not counted): {}", e.reason);
                continue;
            }
            Err(e) => {
                eprintln!("fault schedule:");
                for line in &e.schedule {
                    eprintln!("  {line}");
                }
                bail!("server-sim: {e}");
            }
        };
        let (history, violations) = check_report(&report);
        totals.add(&report, &history);
        if let Some(first) = violations.first() {
            if !template.lying_disk {
                print_violations(seed, &report, &history, &violations);
                bail!("server-sim: seed {seed} broke the checks (replay: --seed {seed})");
            }
            let mut checkers: Vec<&str> = violations.iter().map(|v| v.checker).collect();
            checkers.dedup();
            checkers.sort_unstable();
            checkers.dedup();
            eprintln!(
                "seed {seed}: caught, {} violation(s) ({}), the first: [{}] {}",
                violations.len(),
                checkers.join(", "),
                first.checker,
                first.message
            );
            caught.push(seed);
        }
        if seeds > 1 && (seed - start + 1) % 25 == 0 {
            eprintln!(
                "server-sim: {} of {seeds} seeds checked ({:.1?})",
                seed - start + 1,
                started.elapsed()
            );
        }
    }
    totals.print(started.elapsed());
    if template.lying_disk {
        if caught.is_empty() {
            bail!("server-sim: the lying disk was never caught in {seeds} seeds");
        }
        println!(
            "the lying disk was caught in {} of {seeds} seeds: {caught:?}",
            caught.len()
        );
    }
    Ok(())
}
