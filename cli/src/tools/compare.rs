//! `zk-tools compare -l <left> -r <right> -b <bytes> -n <nodes> [-d] [-i]`: ZooKeeper's
//! `SnapshotComparer`. Both snapshots are summarised (node count, total data size, nodes
//! per depth), then compared depth by depth: a node only one side has, or whose subtree
//! differs by more than the thresholds in data bytes or descendants, is printed.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

use crate::snapshot::Indexed;

const HELP: &str = "\
usage: java -cp <classPath> org.apache.zookeeper.server.SnapshotComparer
 -b,--bytes <BYTETHRESHOLD>   (Required) The node data delta size threshold, in bytes, for printing the node.
 -d,--debug                   Use debug output.
 -i,--interactive             Enter interactive mode.
 -l,--left <LEFT>             (Required) The left snapshot file.
 -n,--nodes <NODETHRESHOLD>   (Required) The descendant node delta size threshold, in nodes, for printing the node.
 -r,--right <RIGHT>           (Required) The right snapshot file.";

/// ZooKeeper's `ExitCode.INVALID_INVOCATION`.
const INVALID_INVOCATION: u8 = 2;

/// A node as the comparer sees it.
struct TreeNode {
    label: String,
    descendant_size: i64,
    descendant_count: i64,
    children: Vec<usize>,
}

/// One snapshot's nodes, by depth and by path.
struct TreeInfo {
    nodes: Vec<TreeNode>,
    at_depth: Vec<Vec<usize>>,
    by_name: HashMap<String, usize>,
}

impl TreeInfo {
    fn read(path: &Path) -> Result<Self, String> {
        let started = Instant::now();
        let snapshot = Indexed::read(path)?;
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        println!(
            "Deserialized snapshot in {name} in {:.6} seconds",
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        // Parents come before their children in the file: depths top down, subtree
        // totals bottom up.
        let n = snapshot.nodes.len();
        let mut depth = vec![0_usize; n];
        for (index, node) in snapshot.nodes.iter().enumerate() {
            let d = depth[index] + 1;
            for &child in node.file_children() {
                depth[child as usize] = d;
            }
        }
        let mut size: Vec<i64> = snapshot
            .nodes
            .iter()
            .map(|node| node.data.as_ref().map_or(0, |d| d.len() as i64))
            .collect();
        let mut count = vec![0_i64; n];
        for (index, node) in snapshot.nodes.iter().enumerate().rev() {
            let children = node.file_children();
            count[index] = children.len() as i64;
            for &child in children {
                size[index] += size[child as usize];
                count[index] += count[child as usize];
            }
        }
        let nodes: Vec<TreeNode> = snapshot
            .nodes
            .iter()
            .enumerate()
            .map(|(index, node)| TreeNode {
                label: String::from_utf8_lossy(&node.path).into_owned(),
                descendant_size: size[index],
                descendant_count: count[index],
                children: node.file_children().iter().map(|&c| c as usize).collect(),
            })
            .collect();
        let mut at_depth: Vec<Vec<usize>> = Vec::new();
        let mut by_name = HashMap::with_capacity(nodes.len());
        for (index, node) in nodes.iter().enumerate() {
            let d = depth.get(index).copied().unwrap_or(0);
            while at_depth.len() <= d {
                at_depth.push(Vec::new());
            }
            if let Some(level) = at_depth.get_mut(d) {
                level.push(index);
            }
            by_name.insert(node.label.clone(), index);
        }
        for level in &mut at_depth {
            level.sort_by(|a, b| {
                let label = |i: &usize| nodes.get(*i).map(|n| n.label.as_str());
                label(a).cmp(&label(b))
            });
        }
        println!(
            "Processed data tree in {:.6} seconds",
            started.elapsed().as_secs_f64()
        );
        Ok(Self {
            nodes,
            at_depth,
            by_name,
        })
    }

    fn summary(&self) -> String {
        let mut text = format!(
            "Node count: {}\nTotal size: {}\nMax depth: {}\n",
            self.nodes.len(),
            self.nodes.first().map_or(0, |n| n.descendant_size),
            self.at_depth.len()
        );
        for (i, level) in self.at_depth.iter().enumerate() {
            text.push_str(&format!("Count of nodes at depth {i}: {}\n", level.len()));
        }
        text
    }

    fn node(&self, index: usize) -> Option<&TreeNode> {
        self.nodes.get(index)
    }
}

/// The thresholds and switches of a comparison.
#[derive(Clone, Copy)]
struct Thresholds {
    bytes: i64,
    nodes: i64,
    debug: bool,
    interactive: bool,
}

pub(crate) fn main(args: &[String]) -> u8 {
    let mut values: HashMap<char, String> = HashMap::new();
    let (mut debug, mut interactive) = (false, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let key = match arg.as_str() {
            "-l" | "--left" => 'l',
            "-r" | "--right" => 'r',
            "-b" | "--bytes" => 'b',
            "-n" | "--nodes" => 'n',
            "-d" | "--debug" => {
                debug = true;
                continue;
            }
            "-i" | "--interactive" => {
                interactive = true;
                continue;
            }
            other => {
                eprintln!("Unrecognized option: {other}");
                println!("{HELP}");
                return INVALID_INVOCATION;
            }
        };
        let Some(value) = args.next() else {
            eprintln!("Missing argument for option: {key}");
            println!("{HELP}");
            return INVALID_INVOCATION;
        };
        values.insert(key, value.clone());
    }
    let missing: Vec<String> = ['l', 'r', 'b', 'n']
        .iter()
        .filter(|k| !values.contains_key(k))
        .map(char::to_string)
        .collect();
    if !missing.is_empty() {
        eprintln!("Missing required options: {}", missing.join(", "));
        println!("{HELP}");
        return INVALID_INVOCATION;
    }
    let number = |key: char| -> Result<i64, String> {
        let text = values.get(&key).map_or("", String::as_str);
        text.parse::<i32>()
            .map(i64::from)
            .map_err(|_| format!("For input string: \"{text}\""))
    };
    let thresholds = match (number('b'), number('n')) {
        (Ok(bytes), Ok(nodes)) => Thresholds {
            bytes,
            nodes,
            debug,
            interactive,
        },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("zk-tools compare: {e}");
            return INVALID_INVOCATION;
        }
    };
    println!("Successfully parsed options!");
    let file = |key: char| Path::new(values.get(&key).map_or("", String::as_str)).to_owned();
    let (left, right) = match (TreeInfo::read(&file('l')), TreeInfo::read(&file('r'))) {
        (Ok(left), Ok(right)) => (left, right),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("zk-tools compare: {e}");
            return 1;
        }
    };
    println!("{}", left.summary());
    println!("{}", right.summary());
    compare_trees(&left, &right, thresholds);
    0
}

fn threshold_info(t: Thresholds) {
    println!(
        "Printing analysis for nodes difference larger than {} bytes or node count difference larger than {}.",
        t.bytes, t.nodes
    );
}

fn compare_trees(left: &TreeInfo, right: &TreeInfo, t: Thresholds) {
    let max_depth = left.at_depth.len().max(right.at_depth.len());
    if !t.interactive {
        threshold_info(t);
        for depth in 0..max_depth {
            println!("Analysis for depth {depth}");
            compare_line(left, right, depth, t);
        }
    } else {
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        let mut depth = 0;
        while depth < max_depth {
            println!("Current depth is {depth}");
            println!(
                "- Press enter to move to print current depth layer;\n- Type a number to jump to and print all nodes at a given depth;\n- Enter an ABSOLUTE path to print the immediate subtree of a node. Path must start with '/'."
            );
            let Some(Ok(input)) = lines.next() else {
                break;
            };
            threshold_info(t);
            if input.is_empty() {
                println!("Analysis for depth {depth}");
                compare_line(left, right, depth, t);
                depth += 1;
            } else if input.starts_with('/') {
                println!("Analysis for node {input}");
                compare_subtree(left, right, &input, t);
            } else {
                match input.parse::<i64>() {
                    Ok(d) if d < 0 || d >= max_depth as i64 => {
                        println!("Depth must be in range [0, {}]", max_depth - 1);
                        continue;
                    }
                    Ok(d) => {
                        depth = d as usize;
                        println!("Analysis for depth {depth}");
                        compare_line(left, right, depth, t);
                    }
                    Err(_) => println!(
                        "Input {input} is not valid. Depth must be in range [0, {}]. Path must be an absolute path which starts with '/'.",
                        max_depth - 1
                    ),
                }
            }
            println!();
        }
    }
    println!("All layers compared.");
}

fn compare_subtree(left: &TreeInfo, right: &TreeInfo, path: &str, t: Thresholds) {
    let children = |tree: &TreeInfo| -> Option<Vec<usize>> {
        let node = tree.node(*tree.by_name.get(path)?)?;
        let mut children = node.children.clone();
        children.sort_by(|a, b| {
            let label = |i: &usize| tree.node(*i).map(|n| n.label.as_str());
            label(a).cmp(&label(b))
        });
        Some(children)
    };
    match (children(left), children(right)) {
        (None, None) => {
            println!("Path {path} is neither found in left tree nor right tree.");
        }
        (l, r) => compare_nodes(
            left,
            right,
            &l.unwrap_or_default(),
            &r.unwrap_or_default(),
            t,
        ),
    }
}

fn compare_line(left: &TreeInfo, right: &TreeInfo, depth: usize, t: Thresholds) {
    let empty = Vec::new();
    let l = left.at_depth.get(depth).unwrap_or(&empty);
    let r = right.at_depth.get(depth).unwrap_or(&empty);
    compare_nodes(left, right, l, r, t);
}

/// Walks two label-sorted lists side by side.
fn compare_nodes(left: &TreeInfo, right: &TreeInfo, l: &[usize], r: &[usize], t: Thresholds) {
    let (mut li, mut ri) = (0, 0);
    loop {
        let ln = l.get(li).and_then(|&i| left.node(i));
        let rn = r.get(ri).and_then(|&i| right.node(i));
        match (ln, rn) {
            (Some(a), Some(b)) => {
                if t.debug {
                    println!("Comparing {} to {}", a.label, b.label);
                }
                match a.label.cmp(&b.label) {
                    std::cmp::Ordering::Less => {
                        if t.debug {
                            println!("left is less");
                        }
                        only(a, "left", t);
                        li += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        if t.debug {
                            println!("right is less");
                        }
                        only(b, "right", t);
                        ri += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        if t.debug {
                            println!("same");
                        }
                        both(a, b, t);
                        li += 1;
                        ri += 1;
                    }
                }
            }
            (Some(a), None) => {
                only(a, "left", t);
                li += 1;
            }
            (None, Some(b)) => {
                only(b, "right", t);
                ri += 1;
            }
            (None, None) => break,
        }
    }
}

/// `printLeftOnly` / `printRightOnly`.
fn only(node: &TreeNode, side: &str, t: Thresholds) {
    if node.descendant_size > t.bytes || node.descendant_count > t.nodes {
        println!(
            "Node {} found only in {side} tree. Descendant size: {}. Descendant count: {}",
            node.label, node.descendant_size, node.descendant_count
        );
    } else if t.debug || t.interactive {
        println!(
            "Filtered {side} node {} of size {}",
            node.label, node.descendant_size
        );
    }
}

/// `printBoth`.
fn both(a: &TreeNode, b: &TreeNode, t: Thresholds) {
    let size = b.descendant_size - a.descendant_size;
    let count = b.descendant_count - a.descendant_count;
    if size.abs() > t.bytes || count.abs() > t.nodes {
        println!(
            "Node {} found in both trees. Delta: {size} bytes, {count} descendants",
            a.label
        );
    } else if t.debug || t.interactive {
        println!(
            "Filtered node {} of left size {}, right size {}",
            a.label, a.descendant_size, b.descendant_size
        );
    }
}
