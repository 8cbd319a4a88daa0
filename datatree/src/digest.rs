//! The tree digest of ZooKeeper 3.6+ (`DigestCalculator`, version 2): each node's digest is
//! a CRC32 over its path, data and stat; the tree's is their sum, wrapping at 64 bits
//! (`AdHash`). Nodes under `/zookeeper/` are left out, and the root counts under path "".

use zk_jute::data::StatPersisted;

/// The digest version ZooKeeper 3.8 writes in `TxnDigest`.
pub const DIGEST_VERSION: i32 = 2;

/// The digest of one node; 0 for the `/zookeeper` subtree.
pub fn node_digest(path: &str, data: Option<&[u8]>, stat: &StatPersisted) -> u64 {
    if path.starts_with("/zookeeper/") {
        return 0;
    }
    let path = if path == "/" { "" } else { path };
    let mut crc = crc32fast::Hasher::new();
    crc.update(path.as_bytes());
    crc.update(data.unwrap_or_default());
    let mut fields = [0_u8; 60];
    let parts = [
        &stat.czxid.to_be_bytes()[..],
        &stat.mzxid.to_be_bytes(),
        &stat.pzxid.to_be_bytes(),
        &stat.ctime.to_be_bytes(),
        &stat.mtime.to_be_bytes(),
        &stat.version.to_be_bytes(),
        &stat.cversion.to_be_bytes(),
        &stat.aversion.to_be_bytes(),
        &stat.ephemeral_owner.to_be_bytes(),
    ];
    let mut at = 0;
    for part in parts {
        if let Some(slot) = fields.get_mut(at..at + part.len()) {
            slot.copy_from_slice(part);
        }
        at += part.len();
    }
    crc.update(&fields);
    u64::from(crc.finalize())
}
