//! Snapshots in pieces, as a leader streams one to a learner: the pieces `SnapshotEncoder`
//! makes join into the bytes `snapshot_bytes` makes, and the snapshot files Apache
//! ZooKeeper 3.8.0 wrote, cut anywhere and fed to `SnapshotStream`, give what reading the
//! whole file gives; a broken or cut stream is an error, never a tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_datatree::{BodyWriter, DataTree, TreeLoader, TreeOptions};
use zk_jute::Reader;
use zk_persistence::{
    SnapshotEncoder, SnapshotStream, ZxidDigest, read_snapshot, snapshot_bytes, zxid_of,
};

/// Every snapshot file in the data folders ZooKeeper 3.8.0 wrote.
fn zookeeper_snapshots() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files: Vec<PathBuf> = ["datatree/tests/reference", "persistence/tests"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).into_iter().flatten())
        .map(|e| e.unwrap().path().join("version-2"))
        .filter(|p| p.is_dir())
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| zxid_of(p, "snapshot").is_some())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "ZooKeeper-written snapshots: {files:?}");
    files
}

/// The tree's snapshot body, to compare trees by.
fn body_of(tree: &DataTree) -> Vec<u8> {
    let mut out = Vec::new();
    tree.write_body(&mut out).unwrap();
    out
}

/// What a streamed snapshot gave: the tree, the sessions and the digest.
type Streamed = (DataTree, BTreeMap<i64, i32>, Option<ZxidDigest>);

/// Streams `bytes` in pieces of `piece` bytes.
fn stream(path: &Path, zxid: i64, bytes: &[u8], piece: usize) -> Result<Streamed, String> {
    let mut stream = SnapshotStream::new(path, zxid);
    let mut loader = TreeLoader::new(TreeOptions::default());
    let mut body = |r: &mut Reader, more: bool| loader.read_some(r, more);
    for chunk in bytes.chunks(piece) {
        stream
            .push(Bytes::copy_from_slice(chunk), &mut body)
            .map_err(|e| e.to_string())?;
    }
    let snapshot = stream.finish(&mut body).map_err(|e| e.to_string())?;
    let tree = loader.finish().map_err(|e| e.to_string())?;
    Ok((tree, snapshot.sessions, snapshot.digest))
}

#[test]
fn zookeepers_snapshots_in_pieces_read_as_whole_files() {
    for path in zookeeper_snapshots() {
        let zxid = zxid_of(&path, "snapshot").unwrap();
        let whole = read_snapshot(&path, |r, _| {
            DataTree::deserialize(r, TreeOptions::default(), |_| {})
        })
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for piece in [1, 2, 3, 7, 64, 1000, bytes.len()] {
            let (tree, sessions, digest) = stream(&path, zxid, &bytes, piece)
                .unwrap_or_else(|e| panic!("{} in pieces of {piece}: {e}", path.display()));
            let at = format!("{} in pieces of {piece}", path.display());
            assert_eq!(body_of(&tree), body_of(&whole.tree), "{at}");
            assert_eq!(tree.digest(), whole.tree.digest(), "{at}");
            assert_eq!(sessions, whole.sessions, "{at}");
            assert_eq!(digest, whole.digest, "{at}");
        }
    }
}

#[test]
fn a_broken_or_cut_stream_is_an_error() {
    for path in zookeeper_snapshots() {
        let zxid = zxid_of(&path, "snapshot").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // Every tenth byte flipped in turn: the tree, a length or a seal says so.
        for at in (0..bytes.len()).step_by(10) {
            let mut broken = bytes.clone();
            broken[at] ^= 0x20;
            assert!(
                stream(&path, zxid, &broken, 7).is_err(),
                "{} with byte {at} flipped",
                path.display()
            );
        }
        for keep in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let err = stream(&path, zxid, &bytes[..keep], 5).unwrap_err();
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
    }
}

#[test]
fn encoded_pieces_join_into_the_snapshot_bytes() {
    for path in zookeeper_snapshots() {
        let whole = read_snapshot(&path, |r, _| {
            DataTree::deserialize(r, TreeOptions::default(), |_| {})
        })
        .unwrap();
        let tree = whole.tree;
        let expected =
            snapshot_bytes(&whole.sessions, whole.digest, |w| tree.write_body(w)).unwrap();
        for (nodes, piece) in [(1, 1), (2, 50), (5, 4096)] {
            let mut encoder = SnapshotEncoder::new(&whole.sessions);
            let mut writer = BodyWriter::new();
            let mut joined = Vec::new();
            while !writer.write_some(&tree, encoder.body(), nodes) {
                while encoder.len() >= piece {
                    let taken = encoder.take(piece);
                    assert_eq!(taken.len(), piece);
                    joined.extend_from_slice(&taken);
                }
            }
            joined.extend_from_slice(&encoder.finish(whole.digest));
            assert_eq!(joined, expected, "{} in steps of {nodes}", path.display());
        }
    }
}
