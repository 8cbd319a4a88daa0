//! A fuzzy snapshot body (written while writes go on between its pieces), loaded and
//! followed by every txn logged after its start zxid, gives exactly the live tree: every
//! path, data, stat, ACL and the digest. Random seeded workloads of creates (persistent,
//! ephemeral, sequential, container), deletes, setData, setACL with ACLs new since the
//! body started, multis, and sessions opening and closing; and, under a node with more
//! children than the writer takes in name order, creates and deletes that free slots and
//! fill them again while the writer gathers and writes those children in slot order.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use zk_datatree::{BodyWriter, DataTree, Session, Transaction, TreeOptions, WriteRequest, prepare};
use zk_jute::data::{Acl, Id};
use zk_jute::proto::{CreateRequest, DeleteRequest, SetAclRequest, SetDataRequest};
use zk_jute::txn::TxnHeader;
use zk_jute::{CreateMode, MultiOp, MultiRequest, Reader};

/// xorshift64*: the same workload for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A tree and the txns applied to it, as a server's log would hold them.
struct Live {
    tree: DataTree,
    log: Vec<(TxnHeader, Transaction)>,
    sessions: Vec<i64>,
    next_session: i64,
    acls_made: u32,
    /// Whether half the paths are under `/w`, a node with a thousand children and more.
    wide: bool,
}

impl Live {
    fn write(&mut self, session: i64, request: &WriteRequest) {
        let zxid = self.tree.last_zxid() + 1;
        let time = 1_000_000 + zxid;
        let prepared = prepare(
            &self.tree,
            &Session {
                id: session,
                auth: &[],
            },
            zxid,
            time,
            request,
        );
        let header = TxnHeader {
            client_id: session,
            cxid: 1,
            zxid,
            time,
            r#type: prepared.txn.op_code().code(),
        };
        self.tree.apply(&header, &prepared.txn);
        self.log.push((header, prepared.txn));
    }

    fn path(&self, rng: &mut Rng) -> String {
        if self.wide && rng.below(2) == 0 {
            let child = format!("/w/n{}", rng.below(WIDE_NAMES));
            return if rng.below(4) == 0 {
                format!("{child}/x")
            } else {
                child
            };
        }
        let depth = 1 + rng.below(3);
        (0..depth)
            .map(|_| ["a", "b", "c", "d"][rng.below(4) as usize])
            .fold(String::new(), |path, name| format!("{path}/{name}"))
    }

    fn acl(&mut self, rng: &mut Rng) -> Vec<Acl> {
        let mut acl = vec![Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }];
        if rng.below(3) == 0 {
            // An ACL list never seen before: a new id in the tree's ACL cache.
            self.acls_made += 1;
            acl.push(Acl {
                perms: 1,
                id: Id {
                    scheme: "ip".into(),
                    id: format!("10.0.{}.{}", self.acls_made / 250, self.acls_made % 250),
                },
            });
        }
        acl
    }

    fn random_op(&mut self, rng: &mut Rng) -> MultiOp {
        let path = self.path(rng);
        match rng.below(10) {
            0..=3 => {
                let flags = match rng.below(6) {
                    0 => CreateMode::Ephemeral,
                    1 => CreateMode::PersistentSequential,
                    2 => CreateMode::Container,
                    _ => CreateMode::Persistent,
                };
                MultiOp::Create(CreateRequest {
                    path,
                    data: Some(Bytes::from(format!("v{}", rng.below(100)))),
                    acl: Some(self.acl(rng)),
                    flags: flags as i32,
                })
            }
            4..=5 => MultiOp::Delete(DeleteRequest { path, version: -1 }),
            _ => MultiOp::SetData(SetDataRequest {
                path,
                data: Some(Bytes::from(format!("w{}", rng.below(100)))),
                version: -1,
            }),
        }
    }

    fn random_write(&mut self, rng: &mut Rng) {
        let session = self.sessions[rng.below(self.sessions.len() as u64) as usize];
        let request = match rng.below(20) {
            0 => {
                let session = self.next_session;
                self.next_session += 1;
                self.sessions.push(session);
                self.write(session, &WriteRequest::CreateSession { timeout_ms: 30_000 });
                return;
            }
            1 if self.sessions.len() > 1 => {
                let at = rng.below(self.sessions.len() as u64) as usize;
                let session = self.sessions.swap_remove(at);
                self.write(session, &WriteRequest::CloseSession);
                return;
            }
            2..=3 => WriteRequest::SetAcl(SetAclRequest {
                path: self.path(rng),
                acl: Some(self.acl(rng)),
                version: -1,
            }),
            4..=5 => WriteRequest::Multi(MultiRequest {
                ops: vec![self.random_op(rng), self.random_op(rng)],
            }),
            _ => match self.random_op(rng) {
                MultiOp::Create(request) => WriteRequest::Create {
                    container: request.flags == CreateMode::Container as i32,
                    request,
                    with_stat: rng.below(2) == 0,
                },
                MultiOp::Delete(r) => WriteRequest::Delete(r),
                MultiOp::SetData(r) => WriteRequest::SetData(r),
                _ => return,
            },
        };
        self.write(session, &request);
    }
}

/// The names under `/w` are `n0` to `n<WIDE_NAMES - 1>`.
const WIDE_NAMES: u64 = 2_500;

fn run(seed: u64, wide: bool) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut live = Live {
        tree: DataTree::new(TreeOptions::default()),
        log: Vec::new(),
        sessions: Vec::new(),
        next_session: 0x100,
        acls_made: 0,
        wide,
    };
    live.sessions.push(live.next_session);
    live.write(
        live.next_session,
        &WriteRequest::CreateSession { timeout_ms: 30_000 },
    );
    live.next_session += 1;
    if wide {
        // Children created in an order of their own, so that their slots' order is not
        // their names'.
        live.write(0x100, &create("/w"));
        while live.tree.node("/w").map_or(0, |w| w.children.len()) < 1_300 {
            live.write(0x100, &create(&format!("/w/n{}", rng.below(WIDE_NAMES))));
        }
    }
    for _ in 0..rng.below(300) {
        live.random_write(&mut rng);
    }

    if wide {
        // More than the writer takes in name order (1,024): `/w`'s come in slot order.
        let children = live.tree.node("/w").map_or(0, |w| w.children.len());
        assert!(children >= 1_024, "seed {seed}: /w has {children} children");
    }
    let mut body = BytesMut::new();
    let mut writer = BodyWriter::fuzzy();
    let mut sessions_at_start: Option<BTreeMap<i64, i32>> = None;
    loop {
        // A few nodes a piece, or enough for the writer to read ahead of itself.
        let piece = [0, 1, 2, 3, 16, 40][rng.below(6) as usize];
        let done = writer.write_some(&live.tree, &mut body, piece);
        sessions_at_start.get_or_insert_with(|| live.tree.sessions().clone());
        if done {
            break;
        }
        for _ in 0..rng.below(if wide { 40 } else { 4 }) {
            live.random_write(&mut rng);
        }
    }
    let start = writer.start_zxid();

    let mut reader = Reader::new(body.freeze());
    let mut restored = DataTree::deserialize(&mut reader, TreeOptions::default(), |_| {})
        .unwrap_or_else(|e| panic!("seed {seed}: the fuzzy body does not load: {e}"));
    reader.finish().unwrap();
    restored.set_sessions(sessions_at_start.unwrap_or_default());
    restored.set_last_zxid(start);
    for (header, txn) in live.log.iter().filter(|(h, _)| h.zxid > start) {
        restored.apply(header, txn);
    }
    assert_eq!(
        restored.dump(),
        live.tree.dump(),
        "seed {seed}: the restored tree differs from the live one"
    );
    assert_eq!(restored.digest(), live.tree.digest(), "seed {seed}: digest");
    // The size kept up to date by every change is the size of the tree as loaded whole
    // (these workloads set no quotas, whose stats nodes the kept size does not follow).
    let mut whole = bytes::BytesMut::new();
    live.tree.serialize(&mut whole);
    let loaded = DataTree::deserialize(
        &mut Reader::new(whole.freeze()),
        TreeOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        (
            restored.approximate_data_size(),
            live.tree.approximate_data_size()
        ),
        (
            loaded.approximate_data_size(),
            loaded.approximate_data_size()
        ),
        "seed {seed}: approximate data size"
    );
    assert_eq!(
        restored.sessions(),
        live.tree.sessions(),
        "seed {seed}: sessions"
    );
}

/// A persistent create of `path` with no data.
fn create(path: &str) -> WriteRequest {
    WriteRequest::Create {
        request: CreateRequest {
            path: path.into(),
            data: None,
            acl: Some(zk_datatree::acl::open_acl_unsafe()),
            flags: CreateMode::Persistent as i32,
        },
        with_stat: false,
        container: false,
    }
}

#[test]
fn a_fuzzy_body_plus_the_later_log_is_the_live_tree() {
    for seed in 0..400 {
        run(seed, false);
    }
}

#[test]
fn a_fuzzy_body_of_a_node_with_many_children_plus_the_later_log_is_the_live_tree() {
    for seed in 0..60 {
        run(seed, true);
    }
}
