//! The tree alone, without I/O: how fast creates, setData and getData go through
//! preparation and application, and what a znode costs in memory.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use zk_datatree::acl::open_acl_unsafe;
use zk_datatree::{DataTree, Session, WriteRequest, prepare};
use zk_jute::proto::{CreateRequest, DeleteRequest, SetDataRequest};
use zk_jute::txn::TxnHeader;

const TIME_MS: i64 = 1_700_000_000_000;
const SESSION: Session<'static> = Session {
    id: 0x100,
    auth: &[],
};

fn value() -> Bytes {
    Bytes::from_static(&[b'v'; 100])
}

/// Prepares and applies `request` as the next txn.
fn write(tree: &mut DataTree, request: &WriteRequest) {
    let zxid = tree.last_zxid() + 1;
    let prepared = prepare(tree, &SESSION, zxid, TIME_MS, request);
    let header = TxnHeader {
        client_id: SESSION.id,
        cxid: 0,
        zxid,
        time: TIME_MS,
        r#type: prepared.txn.op_code().code(),
    };
    let applied = tree.apply(&header, &prepared.txn);
    assert_eq!(applied.err, 0);
}

fn create(path: String) -> WriteRequest {
    WriteRequest::Create {
        request: CreateRequest {
            path,
            data: Some(value()),
            acl: Some(open_acl_unsafe()),
            flags: 0,
        },
        with_stat: false,
        container: false,
    }
}

/// A tree with `/bench` and `n` children under it.
fn tree_with(n: usize) -> DataTree {
    let mut tree = DataTree::default();
    write(&mut tree, &create("/bench".into()));
    for i in 0..n {
        write(&mut tree, &create(format!("/bench/node-{i}")));
    }
    tree
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Measures a fuzzy snapshot body of `tree` in 1,000-node pieces (a leader's steps of a
/// learner's SNAP; a periodic snapshot takes 64 at a time).
fn fuzzy_body(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    tree: &DataTree,
) {
    group.throughput(Throughput::Elements(tree.node_count() as u64));
    group.bench_function(name, |b| {
        let mut piece = bytes::BytesMut::with_capacity(2 << 20);
        b.iter(|| {
            let mut writer = zk_datatree::BodyWriter::fuzzy();
            let mut bytes = 0;
            while !writer.write_some(tree, &mut piece, 1_000) {
                bytes += piece.len();
                piece.clear();
            }
            black_box(bytes + piece.len())
        })
    });
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("create_1000", |b| {
        b.iter_batched(
            || tree_with(0),
            |mut tree| {
                for i in 0..1000 {
                    write(&mut tree, &create(format!("/bench/node-{i}")));
                }
                tree
            },
            BatchSize::LargeInput,
        )
    });
    // Creates under a parent that already has 200,000 children, as a long run of
    // creates into one parent leaves it (names in the load generator's pattern).
    let mut wide = tree_with(0);
    for i in 0..200_000 {
        write(&mut wide, &create(format!("/bench/w{}-{i}", i % 16)));
    }
    let mut next = 200_000;
    group.bench_function("create_delete_1000_wide", |b| {
        b.iter(|| {
            let first = next;
            for _ in 0..1000 {
                next += 1;
                write(&mut wide, &create(format!("/bench/w{}-{next}", next % 16)));
            }
            // Deleted again, so every iteration meets a parent of the same size.
            for i in first + 1..=next {
                let path = format!("/bench/w{}-{i}", i % 16);
                let request = DeleteRequest { path, version: -1 };
                write(&mut wide, &WriteRequest::Delete(request));
            }
        })
    });
    drop(wide);
    let mut tree = tree_with(1000);
    group.bench_function("set_data_1000", |b| {
        b.iter(|| {
            for i in 0..1000 {
                let request = SetDataRequest {
                    path: format!("/bench/node-{i}"),
                    data: Some(value()),
                    version: -1,
                };
                write(&mut tree, &WriteRequest::SetData(request));
            }
        })
    });
    let paths: Vec<String> = (0..1000).map(|i| format!("/bench/node-{i}")).collect();
    group.bench_function("get_data_1000", |b| {
        b.iter(|| {
            for path in &paths {
                black_box(tree.get_data(path, &[]).ok());
            }
        })
    });
    group.finish();

    // A fuzzy snapshot body of 300,000 znodes (100-byte values) under 16 parents: the work
    // a member does every 50,000 to 100,000 writes.
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    let mut big = DataTree::default();
    write(&mut big, &create("/bench".into()));
    for parent in 0..16 {
        write(&mut big, &create(format!("/bench/p{parent}")));
    }
    for i in 0..300_000 {
        write(
            &mut big,
            &create(format!("/bench/p{}/w{}-{i}", i % 16, i % 7)),
        );
    }
    fuzzy_body(&mut group, "fuzzy_body_300k", &big);
    drop(big);

    // The same under one parent whose 300,000 children were created by 256 writers at
    // once, each naming its own in sequence (as `cargo xtask bench ensemble` creates):
    // siblings that sort together were created far apart in time, and so lie far apart in
    // memory; a parent with that many children is written in slot order.
    let mut burst = DataTree::default();
    write(&mut burst, &create("/bench".into()));
    for i in 0..300_000 {
        write(
            &mut burst,
            &create(format!("/bench/w{}-{}", i % 256, i / 256)),
        );
    }
    fuzzy_body(&mut group, "fuzzy_body_300k_one_parent_256_writers", &burst);
    group.finish();
    drop(burst);

    // Memory: one million znodes with 100-byte values, measured as the process RSS delta.
    let before = rss_bytes();
    let big = tree_with(1_000_000);
    if let (Some(before), Some(after)) = (before, rss_bytes()) {
        let per_node = after.saturating_sub(before) as f64 / big.node_count() as f64;
        println!(
            "memory: {} znodes, RSS +{} MiB, {per_node:.0} bytes per znode",
            big.node_count(),
            (after - before) >> 20
        );
    }
    black_box(big);
}

criterion_group!(tree, benches);
criterion_main!(tree);
