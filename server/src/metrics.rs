//! What the server measures, and the two ways operators read it: the latency figures of
//! `srvr`/`mntr`, and a Prometheus `/metrics` endpoint (`metricsProvider.httpPort`) with
//! the metric names Apache ZooKeeper's Prometheus provider uses.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, oneshot};

use crate::status::{Status, file_descriptors, java_double};

/// Asks the server for its status: false once it no longer answers.
pub(crate) type AskStatus = Box<dyn Fn(oneshot::Sender<Status>) -> bool + Send + Sync>;

/// The Prometheus text exposition format (version 0.0.4) of `status`.
pub(crate) fn render(status: &Status) -> String {
    let s = status;
    let mut out = String::new();
    let all = s.latency();
    let gauges: [(&str, &str, String); 16] = [
        (
            "avg_latency",
            "average request latency (ms)",
            java_double(all.avg_ms()),
        ),
        (
            "min_latency",
            "smallest request latency (ms)",
            all.min_ms().to_string(),
        ),
        (
            "max_latency",
            "largest request latency (ms)",
            all.max_ms().to_string(),
        ),
        (
            "packets_received",
            "requests received",
            s.packets_received.to_string(),
        ),
        (
            "packets_sent",
            "replies and events sent",
            s.packets_sent.to_string(),
        ),
        (
            "num_alive_connections",
            "open client connections",
            s.connections.len().to_string(),
        ),
        (
            "outstanding_requests",
            "requests received and not yet answered",
            s.outstanding.to_string(),
        ),
        (
            "uptime",
            "milliseconds since the server started",
            s.uptime_ms.to_string(),
        ),
        ("znode_count", "znodes in the tree", s.znodes.to_string()),
        (
            "approximate_data_size",
            "bytes of znode paths and data",
            s.data_size.to_string(),
        ),
        ("watch_count", "watches set", s.watches.to_string()),
        (
            "ephemerals_count",
            "ephemeral znodes",
            s.ephemerals.to_string(),
        ),
        ("global_sessions", "live sessions", s.sessions.to_string()),
        (
            "local_sessions",
            "sessions living on this member alone (local or read-only)",
            s.local_sessions.to_string(),
        ),
        (
            "log_commits",
            "txn log commits (fsyncs with forceSync)",
            s.log.commits.to_string(),
        ),
        (
            "log_entries",
            "txns written to the log",
            s.log.entries.to_string(),
        ),
    ];
    let fds = file_descriptors().map(|(open, max)| {
        [
            (
                "open_file_descriptor_count",
                "file descriptors the process has open",
                open.to_string(),
            ),
            (
                "max_file_descriptor_count",
                "file descriptors the process may open (soft limit)",
                max.to_string(),
            ),
        ]
    });
    for (name, help, value) in gauges.into_iter().chain(fds.into_iter().flatten()) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    if let Some(e) = &s.ensemble {
        let counters: [(&str, &str, u64); 8] = [
            ("quorum_size", "voting members", e.quorum_size as u64),
            ("learners", "learners connected (leader)", e.learners as u64),
            (
                "synced_followers",
                "synced voting followers (leader)",
                e.synced_followers as u64,
            ),
            (
                "synced_observers",
                "synced observers (leader)",
                e.synced_observers as u64,
            ),
            (
                "pending_syncs",
                "sync requests waiting for their commit",
                e.pending_syncs as u64,
            ),
            ("proposal_count", "txns proposed as leader", e.proposals),
            ("looking_count", "elections decided", e.elections),
            (
                "leader_uptime",
                "milliseconds since this member became the established leader",
                e.leader_uptime_ms.unwrap_or(0),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP learner_syncs learners synced, by kind (leader)"
        );
        let _ = writeln!(out, "# TYPE learner_syncs counter");
        for (kind, count) in &e.syncs {
            let _ = writeln!(out, "learner_syncs{{kind=\"{kind}\"}} {count}");
        }
        e.quorum_ack_latency.render(
            &mut out,
            "quorum_ack_latency",
            "from proposing a txn to its commit by a quorum (ms)",
        );
        e.unavailable_time.render(
            &mut out,
            "unavailable_time",
            "from leaving service to serving again (ms)",
        );
    }
    s.read_latency
        .render(&mut out, "readlatency", "latency of read requests (ms)");
    s.update_latency
        .render(&mut out, "updatelatency", "latency of write requests (ms)");
    let _ = writeln!(
        out,
        "# HELP fsynctime time of txn log commits and their fsync (ms)"
    );
    let _ = writeln!(out, "# TYPE fsynctime summary");
    let _ = writeln!(out, "fsynctime_count {}", s.log.commits);
    let _ = writeln!(out, "fsynctime_sum {}", s.log.commit_micros as f64 / 1000.0);
    let _ = writeln!(out, "# HELP fsynctime_max the longest txn log commit (ms)");
    let _ = writeln!(out, "# TYPE fsynctime_max gauge");
    let _ = writeln!(
        out,
        "fsynctime_max {}",
        s.log.commit_micros_max as f64 / 1000.0
    );
    out
}

/// `globalOutstandingLimit`: connections stop reading requests while this many are in
/// flight server-wide, and resume as replies go out (as ZooKeeper disables a connection's
/// reads while throttled).
#[derive(Debug)]
pub(crate) struct Throttle {
    limit: usize,
    in_flight: AtomicUsize,
    below: Notify,
}

impl Throttle {
    /// A throttle at `limit` requests (0: never throttle).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            in_flight: AtomicUsize::new(0),
            below: Notify::new(),
        }
    }

    /// The core's count of requests in flight.
    pub(crate) fn set(&self, in_flight: usize) {
        let before = self.in_flight.swap(in_flight, Ordering::Release);
        if self.limit > 0 && before >= self.limit && in_flight < self.limit {
            self.below.notify_waiters();
        }
    }

    /// Waits until fewer requests than the limit are in flight.
    pub(crate) async fn wait(&self) {
        loop {
            let below = self.below.notified();
            if self.limit == 0 || self.in_flight.load(Ordering::Acquire) < self.limit {
                return;
            }
            below.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_is_well_formed() {
        let mut status = Status {
            znodes: 4,
            ensemble: Some(crate::status::EnsembleStatus {
                quorum_size: 3,
                syncs: vec![("DIFF", 2)],
                ..Default::default()
            }),
            ..Status::default()
        };
        status.read_latency.record(400);
        let text = render(&status);
        assert!(text.contains("\nznode_count 4\n"));
        assert!(text.contains("\nquorum_size 3\n"));
        assert!(text.contains("\nlearner_syncs{kind=\"DIFF\"} 2\n"));
        assert!(text.contains("\nquorum_ack_latency_count 0\n"));
        if cfg!(target_os = "linux") {
            let (open, max) = file_descriptors().expect("/proc tells");
            assert!(open >= 3 && max >= open, "{open} of {max}");
            assert!(text.contains("\nmax_file_descriptor_count "));
        }
        assert!(text.contains("readlatency{quantile=\"0.5\"} 0.4\n"));
        assert!(text.contains("readlatency_ms_bucket{le=\"0.5\"} 1\n"));
        assert!(text.contains("readlatency_ms_bucket{le=\"+Inf\"} 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(!name.is_empty());
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[tokio::test]
    async fn the_throttle_holds_readers_until_replies_go_out() {
        let throttle = std::sync::Arc::new(Throttle::new(2));
        throttle.set(2);
        let waiting = tokio::spawn({
            let throttle = throttle.clone();
            async move { throttle.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        throttle.set(1);
        waiting.await.unwrap();
        Throttle::new(0).wait().await;
    }
}
