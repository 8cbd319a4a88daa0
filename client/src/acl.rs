//! ACL helpers: ZooKeeper's predefined ACLs (`ZooDefs.Ids`) and digest identities.

use base64::Engine;

use crate::error::{Error, Result};
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

/// Permission bits from `zkCli.sh` letters: any of `c`, `d`, `r`, `w`, `a`, in any
/// order (the reverse of [`Perms`]' display).
pub fn perms_from_letters(letters: &str) -> Result<Perms> {
    letters.chars().try_fold(Perms(0), |perms, letter| {
        let bit = match letter {
            'c' => Perms::CREATE,
            'd' => Perms::DELETE,
            'r' => Perms::READ,
            'w' => Perms::WRITE,
            'a' => Perms::ADMIN,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown permission {other:?} in {letters:?} (expected letters of cdrwa)"
                )));
            }
        };
        Ok(perms | bit)
    })
}

/// An ACL in `zkCli.sh`'s notation: comma-separated `scheme:id:perms` entries, the id
/// being everything between the first and the last `:` (so `digest:user:hash:cdrwa` and
/// `ip:10.0.0.0/8:r` work). Stricter than zkCli.sh, which warns about a malformed entry
/// or an unknown letter and goes on without it: here either is an error.
pub fn parse(text: &str) -> Result<Vec<Acl>> {
    text.split(',')
        .map(|entry| {
            let (scheme, rest) = entry.split_once(':').unwrap_or((entry, ""));
            let Some((id, perms)) = rest.rsplit_once(':') else {
                return Err(Error::InvalidArgument(format!(
                    "{entry:?} does not have the form scheme:id:perm"
                )));
            };
            Ok(acl(perms_from_letters(perms)?, scheme, id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_parse_as_zkcli_takes_them() {
        assert_eq!(parse("world:anyone:cdrwa").unwrap(), open_unsafe());
        assert_eq!(
            parse("digest:bob:abc=:ra,ip:10.0.0.0/8:r").unwrap(),
            [
                acl(Perms::READ | Perms::ADMIN, "digest", "bob:abc="),
                acl(Perms::READ, "ip", "10.0.0.0/8"),
            ]
        );
        assert!(parse("world:anyone").is_err());
        assert!(parse("world:anyone:rx").is_err());
        assert_eq!(perms_from_letters("").unwrap(), Perms(0));
    }

    #[test]
    fn digest_ids_match_zookeeper() {
        // The example of ZooKeeper's administrator guide: super:test.
        assert_eq!(
            digest_id("super", "test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }
}
