//! What the server measures, and the two ways operators read it: the latency figures of
//! `srvr`/`mntr`, and a Prometheus `/metrics` endpoint (`metricsProvider.httpPort`) with
//! the metric names Apache ZooKeeper's Prometheus provider uses.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::core::Msg;

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
    fn render(&self, out: &mut String, name: &str, help: &str) {
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

/// Everything `/metrics` reports, gathered by the core in one step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) read_latency: Histogram,
    pub(crate) update_latency: Histogram,
    pub(crate) packets_received: u64,
    pub(crate) packets_sent: u64,
    pub(crate) connections: usize,
    pub(crate) outstanding: usize,
    pub(crate) uptime_ms: u64,
    pub(crate) znodes: usize,
    /// Paths and data, in bytes ([`zk_datatree::DataTree::approximate_data_size`]).
    pub(crate) data_size: u64,
    pub(crate) watches: usize,
    pub(crate) ephemerals: usize,
    pub(crate) sessions: usize,
    pub(crate) log_commits: u64,
    pub(crate) log_entries: u64,
    pub(crate) commit_micros: u64,
    pub(crate) commit_micros_max: u64,
}

impl Snapshot {
    /// The Prometheus text exposition format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let mut all = self.read_latency.clone();
        all.merge(&self.update_latency);
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
                self.packets_received.to_string(),
            ),
            (
                "packets_sent",
                "replies and events sent",
                self.packets_sent.to_string(),
            ),
            (
                "num_alive_connections",
                "open client connections",
                self.connections.to_string(),
            ),
            (
                "outstanding_requests",
                "requests received and not yet answered",
                self.outstanding.to_string(),
            ),
            (
                "uptime",
                "milliseconds since the server started",
                self.uptime_ms.to_string(),
            ),
            ("znode_count", "znodes in the tree", self.znodes.to_string()),
            (
                "approximate_data_size",
                "bytes of znode paths and data",
                self.data_size.to_string(),
            ),
            ("watch_count", "watches set", self.watches.to_string()),
            (
                "ephemerals_count",
                "ephemeral znodes",
                self.ephemerals.to_string(),
            ),
            (
                "global_sessions",
                "live sessions",
                self.sessions.to_string(),
            ),
            (
                "local_sessions",
                "local sessions (none in this server)",
                "0".into(),
            ),
            (
                "log_commits",
                "txn log commits (fsyncs with forceSync)",
                self.log_commits.to_string(),
            ),
            (
                "log_entries",
                "txns written to the log",
                self.log_entries.to_string(),
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
        self.read_latency
            .render(&mut out, "readlatency", "latency of read requests (ms)");
        self.update_latency
            .render(&mut out, "updatelatency", "latency of write requests (ms)");
        let _ = writeln!(
            out,
            "# HELP fsynctime time of txn log commits and their fsync (ms)"
        );
        let _ = writeln!(out, "# TYPE fsynctime summary");
        let _ = writeln!(out, "fsynctime_count {}", self.log_commits);
        let _ = writeln!(out, "fsynctime_sum {}", self.commit_micros as f64 / 1000.0);
        let _ = writeln!(out, "# HELP fsynctime_max the longest txn log commit (ms)");
        let _ = writeln!(out, "# TYPE fsynctime_max gauge");
        let _ = writeln!(
            out,
            "fsynctime_max {}",
            self.commit_micros_max as f64 / 1000.0
        );
        out
    }
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

/// Serves `GET /metrics` (any path, as ZooKeeper's provider) on `listener` until the core
/// stops answering.
pub(crate) async fn serve(listener: TcpListener, core: mpsc::UnboundedSender<Msg>) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                continue;
            }
        };
        let core = core.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &core).await {
                tracing::debug!(%addr, error = %e, "metrics request failed");
            }
        });
    }
}

/// Reads one HTTP request head and answers it.
async fn answer(mut stream: TcpStream, core: &mpsc::UnboundedSender<Msg>) -> std::io::Result<()> {
    const HEAD_MAX: usize = 16 * 1024;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0_u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if head.len() > HEAD_MAX {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
    }
    let method = head.split(|&b| b == b' ').next().unwrap_or_default();
    if method != b"GET" && method != b"HEAD" {
        return respond(&mut stream, "405 Method Not Allowed", "").await;
    }
    let (reply, answered) = oneshot::channel();
    if core.send(Msg::Metrics { reply }).is_err() {
        return respond(&mut stream, "503 Service Unavailable", "").await;
    }
    match answered.await {
        Ok(snapshot) => {
            let body = if method == b"HEAD" {
                String::new()
            } else {
                snapshot.render()
            };
            respond(&mut stream, "200 OK", &body).await
        }
        Err(_) => respond(&mut stream, "503 Service Unavailable", "").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
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

    #[test]
    fn the_exposition_is_well_formed() {
        let mut snapshot = Snapshot {
            znodes: 4,
            ..Snapshot::default()
        };
        snapshot.read_latency.record(400);
        let text = snapshot.render();
        assert!(text.contains("\nznode_count 4\n"));
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
