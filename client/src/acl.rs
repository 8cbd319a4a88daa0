//! ACL helpers: ZooKeeper's predefined ACLs (`ZooDefs.Ids`) and digest identities.

use base64::Engine;
use sha1::{Digest, Sha1};
use zk_jute::Perms;
use zk_jute::data::{Acl, Id};

/// `world:anyone` with every permission (`OPEN_ACL_UNSAFE`).
pub fn open_unsafe() -> Vec<Acl> {
    vec![acl(Perms::ALL, "world", "anyone")]
}

/// `world:anyone` with read permission only (`READ_ACL_UNSAFE`).
pub fn read_unsafe() -> Vec<Acl> {
    vec![acl(Perms::READ, "world", "anyone")]
}

/// Every permission for the identities the creating session authenticated with
/// (`CREATOR_ALL_ACL`, `auth:` scheme); the server refuses it (`InvalidAcl`) from a
/// session without any.
pub fn creator_all() -> Vec<Acl> {
    vec![acl(Perms::ALL, "auth", "")]
}

/// One entry: `perms` for `scheme:id`.
pub fn acl(perms: Perms, scheme: &str, id: &str) -> Acl {
    Acl {
        perms: perms.0,
        id: Id {
            scheme: scheme.to_owned(),
            id: id.to_owned(),
        },
    }
}

/// The `digest` id for `user:password`: `user:base64(sha1("user:password"))`, as
/// ZooKeeper's `DigestAuthenticationProvider.generateDigest` computes it. A session that
/// ran `add_auth("digest", b"user:password")` holds this id.
pub fn digest_id(user: &str, password: &str) -> String {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// A `digest` ACL entry granting `perms` to whoever authenticates as `user:password`.
pub fn digest(perms: Perms, user: &str, password: &str) -> Acl {
    acl(perms, "digest", &digest_id(user, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ids_match_zookeeper() {
        // The example of ZooKeeper's administrator guide: super:test.
        assert_eq!(
            digest_id("super", "test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }
}
