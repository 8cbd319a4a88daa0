//! The cost of firing watches: a crowd on one znode, and a million watches spread over a
//! hundred thousand znodes.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use zk_jute::EventType;
use zk_watch::{WatchKind, WatchManager, WatcherId};

const CROWD: u64 = 100_000;
const PATHS: usize = 100_000;
const WATCHERS: u64 = 10_000;
const PER_WATCHER: usize = 100;

fn path(i: usize) -> String {
    format!("/svc/s{:03}/n{:03}", i / 1000, i % 1000)
}

/// 100,000 watchers with a `kind` watch on `/lock`.
fn crowd(kind: WatchKind) -> WatchManager {
    let mut watches = WatchManager::new();
    for w in 0..CROWD {
        watches
            .add_watch("/lock", WatcherId(w), kind)
            .expect("room");
    }
    watches
}

/// 1,000,000 data watches: 10,000 watchers watching 100 of 100,000 paths each.
fn spread(paths: &[String]) -> WatchManager {
    let mut watches = WatchManager::new();
    for w in 0..WATCHERS {
        for k in 0..PER_WATCHER {
            let i = (w as usize * 7919 + k * 1009) % PATHS;
            watches
                .add_watch(&paths[i], WatcherId(w), WatchKind::Data)
                .expect("room");
        }
    }
    watches
}

fn one_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("100k_watchers_one_path");
    group.throughput(Throughput::Elements(CROWD));
    group.sample_size(20);

    let mut persistent = crowd(WatchKind::Persistent);
    group.bench_function("persistent_trigger", |b| {
        b.iter(|| black_box(persistent.trigger("/lock", EventType::NodeDataChanged)));
    });

    let mut recursive = crowd(WatchKind::PersistentRecursive);
    group.bench_function("recursive_on_parent_trigger_child", |b| {
        // The crowd watches /lock recursively; a child of it changes.
        b.iter(|| black_box(recursive.trigger("/lock/holder", EventType::NodeDataChanged)));
    });

    let one_shot = crowd(WatchKind::Data);
    group.bench_function("one_shot_trigger_and_remove", |b| {
        b.iter_batched(
            || one_shot.clone(),
            |mut watches| black_box(watches.trigger("/lock", EventType::NodeDataChanged)),
            BatchSize::LargeInput,
        );
    });
    group.bench_function("one_shot_add", |b| {
        b.iter(|| black_box(crowd(WatchKind::Data)));
    });
    group.finish();
}

fn spread_paths(c: &mut Criterion) {
    let paths: Vec<String> = (0..PATHS).map(path).collect();
    let watches = spread(&paths);
    assert_eq!(watches.watch_count(), WATCHERS as usize * PER_WATCHER);

    let mut group = c.benchmark_group("1m_watches_100k_paths");
    group.throughput(Throughput::Elements(WATCHERS * PER_WATCHER as u64));
    group.sample_size(10);
    group.bench_function("add", |b| b.iter(|| black_box(spread(&paths))));
    group.bench_function("trigger_every_path", |b| {
        b.iter_batched(
            || watches.clone(),
            |mut watches| {
                for p in &paths {
                    black_box(watches.trigger(p, EventType::NodeDataChanged));
                }
                watches
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("close_every_watcher", |b| {
        b.iter_batched(
            || watches.clone(),
            |mut watches| {
                for w in 0..WATCHERS {
                    black_box(watches.remove_watcher(WatcherId(w)));
                }
                watches
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();

    let mut group = c.benchmark_group("single_trigger_among_1m");
    let mut miss = watches.clone();
    group.bench_function("unwatched_path", |b| {
        b.iter(|| black_box(miss.trigger("/svc/none/x", EventType::NodeDataChanged)));
    });
    let mut hit = watches.clone();
    hit.add_watch("/svc", WatcherId(1), WatchKind::PersistentRecursive)
        .expect("room");
    group.bench_function("persistent_recursive_ancestor", |b| {
        b.iter(|| black_box(hit.trigger(&paths[4242], EventType::NodeDataChanged)));
    });
    group.finish();
}

criterion_group!(benches, one_path, spread_paths);
criterion_main!(benches);
