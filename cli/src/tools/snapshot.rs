//! `zk-tools snapshot [-d|-json] <snapshot_file>`: ZooKeeper's `SnapshotFormatter`.
//!
//! The file is read once (decompressed when `.gz` or `.snappy`) and its seals checked;
//! the nodes are indexed in place (each a slice of the file's bytes) and printed in the
//! order ZooKeeper's loaded tree iterates them: depth first from `/`, children in the
//! order of the `HashSet` each node's children go into as the file is read.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use bytes::Bytes;
use zk_jute::data::StatPersisted;
use zk_jute::{Reader, Record};

use crate::java::{iteration_order, long_hash, string_hash};
use crate::javatext::java_date;
use crate::progress::Progress;

const USAGE: &str = "USAGE: SnapshotFormatter [-d|-json] snapshot_file
       -d dump the data for each znode
       -json dump znode info in json format";

pub(crate) fn main(args: &[String]) -> u8 {
    let (mut dump, mut json, mut file) = (false, false, None);
    for arg in args {
        match arg.as_str() {
            "-d" => dump = true,
            "-json" => json = true,
            _ if file.is_none() => file = Some(arg),
            _ => {
                eprintln!("{USAGE}");
                return 2;
            }
        }
    }
    let Some(file) = file.filter(|_| !(dump && json)) else {
        eprintln!("{USAGE}");
        return 2;
    };
    let snapshot = match Indexed::read(Path::new(file)) {
        Ok(s) => s,
        Err(message) => {
            eprintln!("zk-tools snapshot: {message}");
            return 1;
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = if json {
        snapshot.print_json(&mut out)
    } else {
        snapshot.print_details(&mut out, dump)
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => 0,
        // A closed pipe (`| head`) ends the output quietly, as it would a Java tool's.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("zk-tools snapshot: writing: {e}");
            1
        }
    }
}

/// One node of the file: slices of the file's bytes and its stat.
pub(crate) struct Node {
    /// The full path (`""` for the root, as the file holds it).
    pub(crate) path: Bytes,
    /// The data; `None` when the file holds a null buffer.
    pub(crate) data: Option<Bytes>,
    /// The persisted stat.
    pub(crate) stat: StatPersisted,
    /// Children, by index, in the order the file adds them.
    children: Vec<u32>,
}

impl Node {
    /// The path as ZooKeeper names it (`/` for the root).
    pub(crate) fn name(&self) -> std::borrow::Cow<'_, str> {
        if self.path.is_empty() {
            "/".into()
        } else {
            String::from_utf8_lossy(&self.path)
        }
    }

    /// Its children, by index, in the order the file holds them.
    pub(crate) fn file_children(&self) -> &[u32] {
        &self.children
    }

    /// The last segment of the path.
    fn leaf(&self) -> std::borrow::Cow<'_, str> {
        let at = self
            .path
            .iter()
            .rposition(|b| *b == b'/')
            .map_or(0, |i| i + 1);
        String::from_utf8_lossy(self.path.get(at..).unwrap_or_default())
    }
}

/// A snapshot file read and indexed.
pub(crate) struct Indexed {
    /// The zxid in the file name.
    pub(crate) zxid: i64,
    /// Sessions and timeouts, in the file's order where it could be read, else by id.
    pub(crate) sessions: Vec<(i64, i32)>,
    /// The nodes, in file order; the root first.
    pub(crate) nodes: Vec<Node>,
}

impl Indexed {
    /// Reads and indexes a snapshot file.
    pub(crate) fn read(path: &Path) -> Result<Self, String> {
        let size = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let snapshot = zk_persistence::read_snapshot(path, |r, _| index(r, size))
            .map_err(|e| e.to_string())?;
        let (mut nodes, by_path) = snapshot.tree;
        recompute_quotas(&mut nodes, &by_path);
        let sessions = sessions_in_file_order(path)
            .unwrap_or_else(|| snapshot.sessions.iter().map(|(&s, &t)| (s, t)).collect());
        Ok(Self {
            zxid: snapshot.zxid,
            sessions,
            nodes,
        })
    }

    /// The node at `index`.
    fn node(&self, index: u32) -> Option<&Node> {
        self.nodes.get(index as usize)
    }

    /// A node's children in the order ZooKeeper iterates them.
    pub(crate) fn children(&self, node: &Node) -> Vec<u32> {
        let hashes: Vec<i32> = node
            .children
            .iter()
            .filter_map(|&c| self.node(c))
            .map(|c| string_hash(&c.leaf()))
            .collect();
        iteration_order(&hashes, 8)
            .into_iter()
            .filter_map(|i| node.children.get(i).copied())
            .collect()
    }

    /// Nodes in ZooKeeper's print order: depth first from the root.
    pub(crate) fn preorder(&self) -> Vec<u32> {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![0_u32];
        while let Some(index) = stack.pop() {
            let Some(node) = self.node(index) else {
                continue;
            };
            order.push(index);
            let mut children = self.children(node);
            children.reverse();
            stack.extend(children);
        }
        order
    }

    /// How many ephemerals each session owns.
    fn ephemeral_counts(&self) -> std::collections::HashMap<i64, usize> {
        let mut counts = std::collections::HashMap::new();
        for node in &self.nodes {
            let owner = node.stat.ephemeral_owner;
            // TTL and container nodes carry markers in the owner field, not sessions.
            if owner != 0 && (owner as u64) >> 56 != 0xff && owner != i64::MIN {
                *counts.entry(owner).or_insert(0) += 1;
            }
        }
        counts
    }

    /// `SnapshotFormatter` without `-json`.
    fn print_details(&self, out: &mut impl Write, dump: bool) -> std::io::Result<()> {
        // ZooKeeper's tree holds the root twice, as "" and "/".
        writeln!(out, "ZNode Details (count={}):", self.nodes.len() + 1)?;
        let order = self.preorder();
        let mut progress = Progress::new("znodes", order.len() as u64);
        for (done, &index) in order.iter().enumerate() {
            let Some(node) = self.node(index) else {
                continue;
            };
            writeln!(out, "----")?;
            writeln!(out, "{}", node.name())?;
            print_stat(out, &node.stat)?;
            if dump {
                let data = node.data.as_deref().unwrap_or_default();
                writeln!(
                    out,
                    "  data = {}",
                    base64::engine::general_purpose::STANDARD.encode(data)
                )?;
            } else {
                let len = node.data.as_ref().map_or(0, Bytes::len);
                writeln!(out, "  dataLength = {len}")?;
            }
            progress.at(done as u64);
        }
        progress.done();
        writeln!(out, "----")?;
        writeln!(out, "Session Details (sid, timeout, ephemeralCount):")?;
        let counts = self.ephemeral_counts();
        let hashes: Vec<i32> = self.sessions.iter().map(|(s, _)| long_hash(*s)).collect();
        for i in iteration_order(&hashes, 16) {
            let Some(&(sid, timeout)) = self.sessions.get(i) else {
                continue;
            };
            let count = counts.get(&sid).copied().unwrap_or(0);
            writeln!(out, "{sid:#016x}, {timeout}, {count}")?;
        }
        writeln!(out, "----")?;
        // The larger of the name's zxid and the newest change any node records.
        let tree_zxid = self
            .nodes
            .iter()
            .map(|n| n.stat.mzxid.max(n.stat.pzxid))
            .max()
            .unwrap_or(i64::MIN);
        writeln!(out, "Last zxid: 0x{:x}", self.zxid.max(tree_zxid))
    }

    /// `SnapshotFormatter -json`: the tree in ncdu's export format.
    fn print_json(&self, out: &mut impl Write) -> std::io::Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        write!(
            out,
            "[1,0,{{\"progname\":\"SnapshotFormatter.java\",\"progver\":\"0.01\",\"timestamp\":{now}}}"
        )?;
        let mut inode = 1000_u64;
        // (node, its children in order, how many are printed): an explicit stack, as a
        // deep tree must not overflow ours.
        let mut stack: Vec<(Vec<u32>, usize)> = Vec::new();
        let mut pending = Some(0_u32);
        loop {
            if let Some(index) = pending.take() {
                let Some(node) = self.node(index) else {
                    break;
                };
                let children = self.children(node);
                write!(out, ",")?;
                if !children.is_empty() {
                    write!(out, "[")?;
                }
                inode += 1;
                let name = if index == 0 {
                    "/".to_owned()
                } else {
                    node.leaf().into_owned()
                };
                let size = node.data.as_ref().map_or(0, Bytes::len);
                write!(
                    out,
                    "{{\"name\":{},\"asize\":{size},\"dsize\":{size},\"dev\":0,\"ino\":{inode}}}",
                    json_string(&name)
                )?;
                if !children.is_empty() {
                    stack.push((children, 0));
                }
            }
            let Some((children, next)) = stack.last_mut() else {
                break;
            };
            if let Some(&child) = children.get(*next) {
                *next += 1;
                pending = Some(child);
            } else {
                write!(out, "]")?;
                stack.pop();
            }
        }
        // ZooKeeper prints no newline after the JSON.
        write!(out, "]")
    }
}

/// `SnapshotFormatter.printStat`: zxids as `0x` and at least 14 hex digits.
fn print_stat(out: &mut impl Write, stat: &StatPersisted) -> std::io::Result<()> {
    writeln!(out, "  cZxid = 0x{:014x}", stat.czxid)?;
    writeln!(out, "  ctime = {}", java_date(stat.ctime))?;
    writeln!(out, "  mZxid = 0x{:014x}", stat.mzxid)?;
    writeln!(out, "  mtime = {}", java_date(stat.mtime))?;
    writeln!(out, "  pZxid = 0x{:014x}", stat.pzxid)?;
    writeln!(out, "  cversion = {}", stat.cversion)?;
    writeln!(out, "  dataVersion = {}", stat.version)?;
    writeln!(out, "  aclVersion = {}", stat.aversion)?;
    writeln!(out, "  ephemeralOwner = 0x{:014x}", stat.ephemeral_owner)
}

/// A JSON string as Jackson's `JsonStringEncoder.quoteAsString` writes it: `"` and `\\`
/// escaped, the usual short escapes, other control characters as `\u00XX` in upper case,
/// everything else as it is.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads a snapshot body (the ACL cache, then nodes up to the `/` that ends them) into
/// an index of the file's bytes. `size` (the file's) paces the progress report.
fn index(r: &mut Reader, size: u64) -> Result<(Vec<Node>, ByPath), String> {
    let acls = r.read_i32().map_err(|e| e.to_string())?;
    for _ in 0..acls.max(0) {
        r.read_i64().map_err(|e| e.to_string())?;
        r.read_vec::<zk_jute::data::Acl>()
            .map_err(|e| e.to_string())?;
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_path = ByPath::new();
    let mut progress = Progress::new("snapshot bytes", size);
    loop {
        let path = read_bytes(r)?;
        if path.as_ref() == b"/" {
            break;
        }
        let data = r.read_buffer().map_err(|e| e.to_string())?;
        let _acl = r.read_i64().map_err(|e| e.to_string())?;
        let stat = StatPersisted::decode(r).map_err(|e| e.to_string())?;
        let index = u32::try_from(nodes.len()).map_err(|_| "too many nodes".to_owned())?;
        if !path.is_empty() {
            let slash = path.iter().rposition(|b| *b == b'/').unwrap_or(0);
            let parent_path = path.slice(..slash);
            let Some(&parent) = by_path.get(&parent_path) else {
                return Err(format!(
                    "node {} comes before its parent",
                    String::from_utf8_lossy(&path)
                ));
            };
            if let Some(p) = nodes.get_mut(parent as usize) {
                p.children.push(index);
            }
        }
        by_path.insert(path.clone(), index);
        nodes.push(Node {
            path,
            data,
            stat,
            children: Vec::new(),
        });
        if nodes.len() % 4096 == 0 {
            progress.at(r.offset() as u64);
        }
    }
    progress.done();
    if nodes.first().is_none_or(|root| !root.path.is_empty()) {
        return Err("the snapshot does not start with the root node".into());
    }
    Ok((nodes, by_path))
}

/// Node indexes by path.
type ByPath = std::collections::HashMap<Bytes, u32>;

/// What ZooKeeper's `DataTree.setupQuota` does once a snapshot is loaded: for every leaf
/// `/zookeeper/quota<path>/zookeeper_limits`, the data of `.../zookeeper_stats` becomes
/// `count=<nodes>,bytes=<data bytes>` of `<path>`'s subtree as the file holds it.
fn recompute_quotas(nodes: &mut [Node], by_path: &ByPath) {
    const QUOTA: &[u8] = b"/zookeeper/quota";
    const LIMITS: &[u8] = b"/zookeeper_limits";
    let mut updates = Vec::new();
    for node in nodes.iter() {
        let path = &node.path;
        if !node.children.is_empty()
            || !path.starts_with(b"/zookeeper/quota/")
            || !path.ends_with(LIMITS)
        {
            continue;
        }
        let Some(first) = path.windows(LIMITS.len()).position(|w| w == LIMITS) else {
            continue;
        };
        let real = path.slice(QUOTA.len().min(first)..first);
        let (mut count, mut bytes) = (0_u64, 0_u64);
        if let Some(&top) = by_path.get(&real) {
            let mut stack = vec![top];
            while let Some(index) = stack.pop() {
                if let Some(n) = nodes.get(index as usize) {
                    count += 1;
                    bytes += n.data.as_ref().map_or(0, |d| d.len() as u64);
                    stack.extend(&n.children);
                }
            }
        }
        let stats = Bytes::from([QUOTA, &real[..], b"/zookeeper_stats"].concat());
        if let Some(&index) = by_path.get(&stats) {
            updates.push((index, format!("count={count},bytes={bytes}")));
        }
    }
    for (index, text) in updates {
        if let Some(node) = nodes.get_mut(index as usize) {
            node.data = Some(Bytes::from(text.into_bytes()));
        }
    }
}

/// A jute string's bytes, without copying them.
fn read_bytes(r: &mut Reader) -> Result<Bytes, String> {
    r.read_buffer()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "a node with a null path".to_owned())
}

/// The session table in the order the file lists it (read from the file's start; only
/// for uncompressed files, else `None`).
fn sessions_in_file_order(path: &Path) -> Option<Vec<(i64, i32)>> {
    use std::io::Read;
    if path.extension().is_some_and(|e| e == "gz" || e == "snappy") {
        return None;
    }
    let mut file = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let mut header = [0_u8; 20];
    file.read_exact(&mut header).ok()?;
    let count = i32::from_be_bytes(header.get(16..20)?.try_into().ok()?);
    let mut sessions = Vec::with_capacity(usize::try_from(count).ok()?.min(1 << 20));
    for _ in 0..count {
        let mut pair = [0_u8; 12];
        file.read_exact(&mut pair).ok()?;
        let id = i64::from_be_bytes(pair.get(..8)?.try_into().ok()?);
        let timeout = i32::from_be_bytes(pair.get(8..)?.try_into().ok()?);
        sessions.push((id, timeout));
    }
    Some(sessions)
}
