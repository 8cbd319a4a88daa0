//! A snapshot built in memory (what a leader sends a learner) is byte for byte the file
//! `write_snapshot` writes, and reads back with every check a file gets.

use std::collections::BTreeMap;

use bytes::Bytes;
use zk_persistence::{
    ZxidDigest, read_snapshot, read_snapshot_bytes, snapshot_bytes, write_snapshot,
};

#[test]
fn a_snapshot_in_memory_is_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = BTreeMap::from([(7_i64, 4_000_i32), (9, 30_000)]);
    let digest = Some(ZxidDigest {
        zxid: 0x1_0000_0005,
        version: 2,
        digest: 12_345,
    });
    let body = |w: &mut dyn std::io::Write| w.write_all(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
    let path = write_snapshot(dir.path(), 0x1_0000_0005, &sessions, digest, body).unwrap();
    let in_memory = snapshot_bytes(&sessions, digest, body).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), in_memory);

    let parse = |r: &mut zk_jute::Reader, s: &BTreeMap<i64, i32>| {
        let body: Vec<i32> = (0..3)
            .map(|_| r.read_i32())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((body, s.clone()))
    };
    let from_file = read_snapshot(&path, parse).unwrap();
    let from_memory =
        read_snapshot_bytes(&path, 0x1_0000_0005, Bytes::from(in_memory.clone()), parse).unwrap();
    assert_eq!(from_memory.tree, from_file.tree);
    assert_eq!(from_memory.digest, digest);
    let mut broken = in_memory;
    let at = broken.len() / 2;
    broken[at] ^= 1;
    assert!(read_snapshot_bytes(&path, 0x1_0000_0005, Bytes::from(broken), parse).is_err());
}
