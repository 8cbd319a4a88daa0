//! Snapshots of a 1M-znode tree (1,000 parents of 1,000 znodes each, 100-byte values, as
//! `zk-datatree` builds it through prepare and apply): write time (to the fsync and rename),
//! read time (parse and seals, into a `DataTree`), and file size.
//! `cargo bench -p zk-persistence --bench snapshot`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use zk_datatree::acl::open_acl_unsafe;
use zk_datatree::{DIGEST_VERSION, DataTree, Session, TreeOptions, WriteRequest, prepare};
use zk_jute::proto::CreateRequest;
use zk_jute::txn::TxnHeader;
use zk_persistence::{ZxidDigest, read_snapshot, write_snapshot};

const PARENTS: usize = 1_000;
const CHILDREN: usize = 1_000;
const TIME_MS: i64 = 1_700_000_000_000;
const SESSION: Session<'static> = Session {
    id: 0x100,
    auth: &[],
};

fn create(tree: &mut DataTree, path: String) {
    let request = WriteRequest::Create {
        request: CreateRequest {
            path,
            data: Some(Bytes::from_static(&[b'v'; 100])),
            acl: Some(open_acl_unsafe()),
            flags: 0,
        },
        with_stat: false,
        container: false,
    };
    let zxid = tree.last_zxid() + 1;
    let prepared = prepare(tree, &SESSION, zxid, TIME_MS, &request);
    let header = TxnHeader {
        client_id: SESSION.id,
        cxid: 0,
        zxid,
        time: TIME_MS,
        r#type: prepared.txn.op_code().code(),
    };
    assert_eq!(tree.apply(&header, &prepared.txn).err, 0);
}

fn build() -> DataTree {
    let mut tree = DataTree::default();
    for p in 0..PARENTS {
        create(&mut tree, format!("/app-{p}"));
        for c in 0..CHILDREN {
            create(&mut tree, format!("/app-{p}/node-{c}"));
        }
    }
    tree
}

fn main() {
    println!("snapshot: building a tree of {PARENTS} × {CHILDREN} znodes");
    let started = Instant::now();
    let tree = build();
    println!(
        "snapshot: {} znodes built in {:.1} s",
        tree.node_count(),
        started.elapsed().as_secs_f64()
    );
    let sessions: BTreeMap<i64, i32> = (0..1_000).map(|id| (0x100 + id, 30_000)).collect();
    let digest = Some(ZxidDigest {
        zxid: tree.last_zxid(),
        version: DIGEST_VERSION,
        digest: tree.digest() as i64,
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let write = || {
        write_snapshot(dir.path(), tree.last_zxid(), &sessions, digest, |w| {
            tree.write_body(w)
        })
        .expect("snapshot written")
    };
    let path = write();
    let size = std::fs::metadata(&path).expect("snapshot file").len();
    println!(
        "snapshot: {} MiB, {} bytes per znode",
        size >> 20,
        size / tree.node_count() as u64
    );

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("snapshot_1M_znodes");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(tree.node_count() as u64));
    println!("snapshot: timing writes");
    group.bench_function("write", |b| b.iter(write));
    println!("snapshot: timing reads");
    group.bench_function("read", |b| {
        b.iter_batched(
            || (),
            |()| {
                let snapshot = read_snapshot(&path, |r, _sessions| {
                    DataTree::deserialize(r, TreeOptions::default(), |_| {})
                })
                .expect("snapshot reads");
                assert_eq!(snapshot.tree.node_count(), tree.node_count());
                snapshot
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    c.final_summary();
}
