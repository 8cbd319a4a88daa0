//! Memory per watch with a million watches, measured as the growth of the process's
//! resident set (`/proc/self/statm`), each layout in a fresh child process so that one
//! layout's freed memory does not hide the next one's.
//!
//! `cargo bench -p zk-watch --bench memory` measures a million watches; run without
//! `--bench` (as a test run does) it measures ten thousand, quickly.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::process::Command;

use zk_watch::{WatchKind, WatchManager, WatcherId};

const LAYOUTS: [(&str, &str); 4] = [
    (
        "spread",
        "10 watchers a path: 10,000 watchers x 100 of 100,000 paths",
    ),
    (
        "unique",
        "1 watcher a path: 1,000 watchers x 1,000 paths of their own",
    ),
    (
        "crowded",
        "10,000 watchers a path: 100,000 watchers x 10 of 100 paths",
    ),
    (
        "naive",
        "spread, in HashMap<String, HashSet<u64>> + HashMap<u64, HashSet<String>>",
    ),
];

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { 1 } else { 100 };
    if let Ok(layout) = std::env::var("ZK_WATCH_MEMORY_LAYOUT") {
        measure(&layout, scale);
        return;
    }
    println!("bytes per watch, {} watches:", 1_000_000 / scale);
    let exe = std::env::current_exe().expect("own path");
    for (layout, about) in LAYOUTS {
        let out = Command::new(&exe)
            .args(std::env::args().skip(1))
            .env("ZK_WATCH_MEMORY_LAYOUT", layout)
            .output()
            .expect("run a measurement");
        let line = String::from_utf8_lossy(&out.stdout);
        println!("  {layout:8} {:>28}  ({about})", line.trim());
    }
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// (watcher, path index) pairs of a layout, and how many distinct paths it names.
fn pairs(layout: &str, scale: usize) -> (Vec<(u64, usize)>, usize) {
    let (watchers, per_watcher, paths) = match layout {
        "unique" => (1_000, 1_000, 1_000_000),
        "crowded" => (100_000, 10, 100),
        _ => (10_000, 100, 100_000),
    };
    let watchers = (watchers / scale).max(1);
    let paths = (paths / scale).max(per_watcher);
    let mut out = Vec::with_capacity(watchers * per_watcher);
    for w in 0..watchers {
        for k in 0..per_watcher {
            let i = match layout {
                "unique" => w * per_watcher + k,
                "crowded" => (w + k * 7) % paths,
                _ => (w * 7919 + k * 1009) % paths,
            };
            out.push((w as u64, i));
        }
    }
    (out, paths)
}

fn measure(layout: &str, scale: usize) {
    let (pairs, paths) = pairs(layout, scale);
    let names: Vec<String> = (0..paths)
        .map(|i| format!("/svc/s{:03}/n{:04}", i / 1000, i % 1000))
        .collect();
    let before = rss_bytes();
    // Measure while the structure is alive: dropping it would hand memory back first.
    let (watches, grown) = if layout == "naive" {
        let mut by_path: HashMap<String, HashSet<u64>> = HashMap::new();
        let mut by_watcher: HashMap<u64, HashSet<String>> = HashMap::new();
        for (w, i) in &pairs {
            by_path.entry(names[*i].clone()).or_default().insert(*w);
            by_watcher.entry(*w).or_default().insert(names[*i].clone());
        }
        let grown = rss_bytes().saturating_sub(before);
        black_box((by_path, by_watcher));
        (pairs.len(), grown)
    } else {
        let mut manager = WatchManager::new();
        for (w, i) in &pairs {
            manager
                .add_watch(&names[*i], WatcherId(*w), WatchKind::Data)
                .expect("room");
        }
        let grown = rss_bytes().saturating_sub(before);
        let count = black_box(&manager).watch_count();
        (count, grown)
    };
    println!(
        "{:6.1} ({:5.1} MiB)",
        grown as f64 / watches as f64,
        grown as f64 / 1048576.0
    );
}
