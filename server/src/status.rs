//! One status: every figure the server reports, gathered in one step. The four-letter
//! words, the Prometheus endpoint and the logs render it; nothing computes a figure twice.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Upper bounds of the latency buckets, in microseconds.
const BOUNDS_US: [u64; 17] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Latencies (or durations) in fixed buckets, with count, sum, min and max.
#[derive(Debug, Clone, Default)]
pub(crate) struct Histogram {
    /// One more than the bounds: the last counts everything above them.
    buckets: [u64; BOUNDS_US.len() + 1],
    count: u64,
    sum_us: u64,
    min_us: Option<u64>,
    max_us: u64,
}

impl Histogram {
    /// Counts one sample.
    pub(crate) fn record(&mut self, us: u64) {
        // One bucket a bound and one past the last: the index always exists.
        let bucket = BOUNDS_US.partition_point(|&bound| bound < us);
        if let Some(count) = self.buckets.get_mut(bucket) {
            *count += 1;
        }
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.min_us = Some(self.min_us.map_or(us, |m| m.min(us)));
        self.max_us = self.max_us.max(us);
    }

    /// Adds another histogram's samples.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.min_us = match (self.min_us, other.min_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Samples counted.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The smallest sample in whole milliseconds (0 with none), as ZooKeeper reports.
    pub(crate) fn min_ms(&self) -> u64 {
        self.min_us.unwrap_or(0) / 1000
    }

    /// The largest sample in whole milliseconds, rounded up (so that min ≤ avg ≤ max holds
    /// for sub-millisecond latencies).
    pub(crate) fn max_ms(&self) -> u64 {
        self.max_us.div_ceil(1000)
    }

    /// The mean in milliseconds, rounded half-up to 4 decimals as ZooKeeper rounds it.
    pub(crate) fn avg_ms(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let avg = self.sum_us as f64 / self.count as f64 / 1000.0;
        (avg * 10_000.0).round() / 10_000.0
    }

    /// The upper bound (ms) of the bucket holding the `q` quantile; the largest sample
    /// for the overflow bucket.
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = BOUNDS_US.get(i).copied().unwrap_or(self.max_us);
                return bound.min(self.max_us) as f64 / 1000.0;
            }
        }
        self.max_us as f64 / 1000.0
    }

    /// Writes the histogram as a Prometheus summary named `name` (milliseconds, quantiles
    /// 0.5/0.9/0.99 as ZooKeeper's provider exports) and as a histogram `<name>_ms`.
    pub(crate) fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} summary");
        for q in ["0.5", "0.9", "0.99"] {
            let value = self.quantile_ms(q.parse().unwrap_or(0.5));
            let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {value}");
        }
        let _ = writeln!(out, "{name}_count {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum_us as f64 / 1000.0);
        let _ = writeln!(out, "# HELP {name}_ms {help}, in buckets");
        let _ = writeln!(out, "# TYPE {name}_ms histogram");
        let mut cumulative = 0;
        for (bound, n) in BOUNDS_US.iter().zip(self.buckets) {
            cumulative += n;
            let le = *bound as f64 / 1000.0;
            let _ = writeln!(out, "{name}_ms_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_ms_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_ms_count {}", self.count);
        let _ = writeln!(out, "{name}_ms_sum {}", self.sum_us as f64 / 1000.0);
    }
}

/// A number as Java's `Double.toString` prints it for the values ZooKeeper reports
/// (`0.0`, `0.5`, `1.2345`).
pub(crate) fn java_double(value: f64) -> String {
    let text = format!("{value}");
    if text.contains('.') || text.contains('e') || !value.is_finite() {
        text
    } else {
        format!("{text}.0")
    }
}

/// The process's open file descriptors and its soft limit on them, as ZooKeeper reports
/// them (`open_file_descriptor_count`, `max_file_descriptor_count`); `None` where `/proc`
/// does not tell.
pub(crate) fn file_descriptors() -> Option<(u64, u64)> {
    // Less the descriptor that reads the directory.
    let open = std::fs::read_dir("/proc/self/fd")
        .ok()?
        .count()
        .checked_sub(1)?;
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let max = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((open as u64, max))
}

/// A client connection, as `cons` and `stat` list them.
#[derive(Debug, Clone)]
pub(crate) struct ConnStatus {
    /// The connection's number.
    pub(crate) conn: u64,
    /// The client's address.
    pub(crate) addr: SocketAddr,
    /// Its session (0 before the handshake is answered).
    pub(crate) session: i64,
    /// Whether it is TLS (the secure port, or TLS on a unified port).
    pub(crate) secure: bool,
    /// Requests received on it, and replies and events sent.
    pub(crate) received: u64,
    /// Frames sent.
    pub(crate) sent: u64,
    /// Requests not yet answered.
    pub(crate) outstanding: usize,
    /// When it connected (ms since the Unix epoch).
    pub(crate) established_ms: i64,
    /// Its session's timeout (ms; 0 before the handshake is answered).
    pub(crate) timeout_ms: u64,
    /// The xid of its last request (-1 before any).
    pub(crate) last_cxid: i64,
    /// Its last request's operation, as ZooKeeper abbreviates it (`GETD`, `NA`).
    pub(crate) last_operation: &'static str,
}

/// What the txn log reports of itself (its writer's counters).
#[derive(Debug, Clone, Default)]
pub(crate) struct LogStatus {
    /// Commits (fsyncs with forceSync).
    pub(crate) commits: u64,
    /// Txns written.
    pub(crate) entries: u64,
    /// Time spent committing, in microseconds.
    pub(crate) commit_micros: u64,
    /// The longest commit, in microseconds.
    pub(crate) commit_micros_max: u64,
}

/// Every figure the server reports, as of one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    /// `standalone`, `leader`, `follower` or `observer`.
    pub(crate) mode: &'static str,
    pub(crate) read_latency: Histogram,
    pub(crate) update_latency: Histogram,
    pub(crate) packets_received: u64,
    pub(crate) packets_sent: u64,
    /// Sizes of the frames sent to clients: last, min, max (-1 before any).
    pub(crate) response_sizes: (i64, i64, i64),
    /// The open connections, by number.
    pub(crate) connections: Vec<ConnStatus>,
    /// Requests received and not yet answered.
    pub(crate) outstanding: usize,
    pub(crate) uptime_ms: u64,
    /// The last applied zxid.
    pub(crate) zxid: i64,
    /// The tree's digest at `zxid`.
    pub(crate) digest: i64,
    /// The node count as ZooKeeper reports it: its node map holds the root twice, under
    /// "" and "/", and its count includes both.
    pub(crate) znodes: usize,
    /// Paths and data, in bytes ([`zk_datatree::DataTree::approximate_data_size`]).
    pub(crate) data_size: u64,
    pub(crate) watches: usize,
    pub(crate) ephemerals: usize,
    pub(crate) sessions: usize,
    /// Sessions that live on this member alone (local or read-only sessions).
    pub(crate) local_sessions: usize,
    pub(crate) log: LogStatus,
    /// An ensemble member's figures.
    pub(crate) ensemble: Option<EnsembleStatus>,
}

/// What an ensemble's member reports beyond a standalone server's.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnsembleStatus {
    /// ZooKeeper's `zk_peer_state`: the state and the Zab phase.
    pub(crate) peer_state: &'static str,
    /// The leader this member follows or is, once known.
    pub(crate) leader: Option<u64>,
    /// Voting members.
    pub(crate) quorum_size: usize,
    /// Leader: learners connected.
    pub(crate) learners: usize,
    /// Leader: synced voting followers.
    pub(crate) synced_followers: usize,
    /// Leader: synced observers.
    pub(crate) synced_observers: usize,
    /// The synced observers' ids.
    pub(crate) observers: Vec<u64>,
    /// `sync` requests waiting for their commit.
    pub(crate) pending_syncs: usize,
    /// Leader: since it was established, in ms.
    pub(crate) leader_uptime_ms: Option<u64>,
    /// Leader: the last, smallest and largest proposal, in bytes (-1 before any).
    pub(crate) proposal_sizes: (i64, i64, i64),
    /// Proposals made (leader) or received (follower).
    pub(crate) proposals: u64,
    /// Leader: learners synced by kind (DIFF, TRUNC, SNAP) since the start.
    pub(crate) syncs: Vec<(&'static str, u64)>,
    /// Elections this member took part in since the start.
    pub(crate) elections: u64,
    /// Leader: from proposing a txn to its commit by a quorum (ZooKeeper's
    /// `quorum_ack_latency`).
    pub(crate) quorum_ack_latency: Histogram,
    /// From leaving service (looking for a leader) to serving again (ZooKeeper's
    /// `unavailable_time`).
    pub(crate) unavailable_time: Histogram,
}

impl Status {
    /// Reads and writes together, as `srvr` and `mntr` report latency.
    pub(crate) fn latency(&self) -> Histogram {
        let mut all = self.read_latency.clone();
        all.merge(&self.update_latency);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_the_samples() {
        let mut h = Histogram::default();
        assert_eq!((h.min_ms(), h.avg_ms(), h.max_ms()), (0, 0.0, 0));
        for us in [300, 700, 1_500, 12_000] {
            h.record(us);
        }
        assert_eq!(h.count, 4);
        assert_eq!(h.avg_ms(), 3.625);
        assert_eq!(h.min_ms(), 0);
        assert_eq!(h.max_ms(), 12);
        h.record(12_001);
        assert_eq!(h.max_ms(), 13);
        assert_eq!(h.quantile_ms(0.5), 2.5);
        assert_eq!(h.quantile_ms(0.99), 12.001);
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(3.625), "3.625");
    }
}

/// One figure of `mntr` (and of the AdminServer's `monitor`): a number or a text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Figure {
    /// A count or a duration in whole units.
    Int(i64),
    /// An average.
    Float(f64),
    /// A version or a state.
    Text(String),
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Figure::Int(n) => write!(f, "{n}"),
            Figure::Float(x) => f.write_str(&java_double(*x)),
            Figure::Text(s) => f.write_str(s),
        }
    }
}

/// The figures of `mntr`, in its order, under ZooKeeper's names without their `zk_`
/// prefix: the four-letter word prints them as `zk_<name>\t<value>` lines, the
/// AdminServer's `monitor` as JSON.
pub(crate) fn monitor(status: &Status) -> Vec<(String, Figure)> {
    use Figure::{Float, Int, Text};
    let latency = status.latency();
    let count = |n: usize| Int(n as i64);
    let mut out: Vec<(String, Figure)> = Vec::new();
    let mut put = |key: &str, value: Figure| out.push((key.to_owned(), value));
    put("version", Text(crate::fourlw::VERSION.to_owned()));
    put("server_state", Text(status.mode.to_owned()));
    if let Some(e) = &status.ensemble {
        put("peer_state", Text(e.peer_state.to_owned()));
    }
    put("avg_latency", Float(latency.avg_ms()));
    put("max_latency", Int(latency.max_ms() as i64));
    put("min_latency", Int(latency.min_ms() as i64));
    put("packets_received", Int(status.packets_received as i64));
    put("packets_sent", Int(status.packets_sent as i64));
    put("num_alive_connections", count(status.connections.len()));
    put("outstanding_requests", count(status.outstanding));
    put("znode_count", count(status.znodes));
    put("watch_count", count(status.watches));
    put("ephemerals_count", count(status.ephemerals));
    put("global_sessions", count(status.sessions));
    put("local_sessions", count(status.local_sessions));
    put("uptime", Int(status.uptime_ms as i64));
    put("approximate_data_size", Int(status.data_size as i64));
    if let Some(e) = &status.ensemble {
        put("quorum_size", count(e.quorum_size));
        put("proposal_count", Int(e.proposals as i64));
        if status.mode == "leader" {
            let (last, min, max) = e.proposal_sizes;
            put("learners", count(e.learners));
            put("synced_followers", count(e.synced_followers));
            put("synced_non_voting_followers", Int(0));
            put("synced_observers", count(e.synced_observers));
            put("pending_syncs", count(e.pending_syncs));
            put(
                "leader_uptime",
                Int(e.leader_uptime_ms.map_or(0, |ms| ms as i64)),
            );
            put("last_proposal_size", Int(last));
            put("min_proposal_size", Int(min));
            put("max_proposal_size", Int(max));
        }
        for (kind, n) in &e.syncs {
            put(
                &format!("{}_count", kind.to_ascii_lowercase()),
                Int(*n as i64),
            );
        }
        put("looking_count", Int(e.elections as i64));
        for (name, h) in [
            ("quorum_ack_latency", &e.quorum_ack_latency),
            ("unavailable_time", &e.unavailable_time),
        ] {
            put(&format!("avg_{name}"), Float(h.avg_ms()));
            put(&format!("min_{name}"), Int(h.min_ms() as i64));
            put(&format!("max_{name}"), Int(h.max_ms() as i64));
            put(&format!("cnt_{name}"), Int(h.count() as i64));
        }
    }
    if let Some((open, max)) = file_descriptors() {
        put("open_file_descriptor_count", Int(open as i64));
        put("max_file_descriptor_count", Int(max as i64));
    }
    out
}
