//! Quota bookkeeping, as ZooKeeper's `DataTree` keeps it: a path gets a quota when
//! `/zookeeper/quota<path>/zookeeper_limits` is created, and the tree itself keeps
//! `/zookeeper/quota<path>/zookeeper_stats` (`count=<nodes>,bytes=<data bytes>`) up to date
//! as nodes under the path change, without txns (those nodes are outside the digest).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::tree::{DataTree, QUOTA_PATH};

/// The node holding a quota's limits.
pub const LIMITS_NODE: &str = "zookeeper_limits";
/// The node holding a quota's statistics.
pub const STATS_NODE: &str = "zookeeper_stats";

/// ZooKeeper's `StatsTrack`: `count=N,bytes=M`, then (after an extra `=`) any other
/// `;key=value` pairs in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack(BTreeMap<String, i64>);

impl StatsTrack {
    /// Parses the text of a limits or stats node (`,` or `;` between pairs).
    pub fn parse(text: &str) -> Self {
        let pairs = text.split([',', ';']).filter(|p| !p.is_empty());
        Self(
            pairs
                .filter_map(|pair| {
                    let mut kv = pair.split('=');
                    let key = kv.next()?.to_owned();
                    let value = kv
                        .next()
                        .filter(|v| !v.is_empty())
                        .map_or(Some(-1), |v| v.parse().ok())?;
                    Some((key, value))
                })
                .collect(),
        )
    }

    /// A value, or -1 when absent.
    pub fn get(&self, key: &str) -> i64 {
        self.0.get(key).copied().unwrap_or(-1)
    }

    /// Sets `count` and `bytes`.
    pub fn set(&mut self, count: i64, bytes: i64) {
        self.0.insert("count".into(), count);
        self.0.insert("bytes".into(), bytes);
    }

    /// Adds to `count` and `bytes`.
    pub fn add(&mut self, count: i64, bytes: i64) {
        self.set(self.get("count") + count, self.get("bytes") + bytes);
    }
}

impl std::fmt::Display for StatsTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "count={},bytes={}", self.get("count"), self.get("bytes"))?;
        let mut rest = self
            .0
            .iter()
            .filter(|(k, _)| *k != "count" && *k != "bytes")
            .peekable();
        if rest.peek().is_some() {
            f.write_str("=")?;
        }
        for (key, value) in rest {
            write!(f, ";{key}={value}")?;
        }
        Ok(())
    }
}

/// `/zookeeper/quota/a/b` → `/a/b`.
pub(crate) fn trim(quota_path: &str) -> &str {
    quota_path.strip_prefix(QUOTA_PATH).unwrap_or(quota_path)
}

fn stats_path(path: &str) -> String {
    format!("{QUOTA_PATH}{path}/{STATS_NODE}")
}

impl DataTree {
    /// The longest quota'd path that is `path` or an ancestor of it.
    pub(crate) fn quota_prefix(&self, path: &str) -> Option<String> {
        self.quotas()
            .iter()
            .filter(|q| !q.is_empty() && q.as_str() != "/")
            .filter(|q| {
                path == q.as_str()
                    || path
                        .strip_prefix(q.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
            .max_by_key(|q| q.len())
            .cloned()
    }

    /// Adds `count` nodes and `bytes` bytes to the statistics of the quota on `prefix`.
    pub(crate) fn update_quota_stat(&mut self, prefix: &str, bytes: i64, count: i64) {
        let path = stats_path(prefix);
        // A missing stats node is skipped, as ZooKeeper does (it logs that).
        let Some(node) = self.node_mut(&path) else {
            return;
        };
        let text = node
            .data
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let mut stats = StatsTrack::parse(&text);
        stats.add(count, bytes);
        node.data = Some(Bytes::from(stats.to_string()));
    }

    /// Recounts the subtree at `prefix` into its stats node (when a quota is set up).
    pub(crate) fn update_quota_for_path(&mut self, prefix: &str) {
        let (mut count, mut bytes) = (0_i64, 0_i64);
        let mut stack = vec![prefix.to_owned()];
        while let Some(path) = stack.pop() {
            if let Some(node) = self.node(&path) {
                count += 1;
                bytes += node.data.as_ref().map_or(0, |d| d.len() as i64);
                stack.extend(node.children.iter().map(|c| format!("{path}/{c}")));
            }
        }
        let mut stats = StatsTrack::default();
        stats.set(count, bytes);
        if let Some(node) = self.node_mut(&stats_path(prefix)) {
            node.data = Some(Bytes::from(stats.to_string()));
        }
    }

    /// Rebuilds the quota set from `/zookeeper/quota` after loading a snapshot.
    pub(crate) fn setup_quotas(&mut self) {
        // Only the quota subtree is walked, as ZooKeeper's `setupQuota` does: the rest of
        // a big tree would cost as much as loading it.
        let suffix = format!("/{LIMITS_NODE}");
        let mut limits = Vec::new();
        let mut stack = vec![QUOTA_PATH.to_owned()];
        while let Some(path) = stack.pop() {
            if let Some(node) = self.node(&path) {
                stack.extend(node.children.iter().map(|c| format!("{path}/{c}")));
            }
            if path.ends_with(&suffix) {
                limits.push(path);
            }
        }
        limits.sort();
        for path in limits {
            let parent = path.strip_suffix(&suffix).unwrap_or(&path);
            let prefix = trim(parent).to_owned();
            self.quotas_mut().insert(prefix.clone());
            self.update_quota_for_path(&prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_text_as_zookeeper_writes_it() {
        let mut s = StatsTrack::parse("count=1,bytes=1");
        s.add(1, 3);
        assert_eq!(s.to_string(), "count=2,bytes=4");
        let limits = StatsTrack::parse("count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5");
        assert_eq!(limits.get("countHardLimit"), 5);
        assert_eq!(
            limits.to_string(),
            "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5"
        );
    }
}
