//! Access control: the reference-counted ACL cache ZooKeeper keeps (and snapshots), the
//! permission check, and the expansion and validation of ACLs a client sets.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use sha1::{Digest, Sha1};
use zk_jute::data::{Acl, Id};
use zk_jute::{ErrorCode, Perms};

/// The cache id meaning `world:anyone:cdrwa` without a cache entry (`OPEN_ACL_UNSAFE`).
pub const OPEN_ACL_UNSAFE_ID: i64 = -1;

/// An ACL list as stored: shared, immutable.
pub type AclList = Arc<[Acl]>;

/// `world:anyone` with every permission.
pub fn open_acl_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: Perms::ALL.0,
        id: world_anyone(),
    }]
}

/// `world:anyone` with read permission only.
pub fn read_acl_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: Perms::READ.0,
        id: world_anyone(),
    }]
}

fn world_anyone() -> Id {
    Id {
        scheme: "world".into(),
        id: "anyone".into(),
    }
}

/// ZooKeeper's `ReferenceCountedACLCache`: each distinct ACL list is stored once under a
/// long id, which nodes (and snapshots) refer to. Ids start at 1; `-1` is the open ACL.
#[derive(Debug, Clone, Default)]
pub struct AclCache {
    by_id: BTreeMap<i64, (AclList, u64)>,
    by_list: HashMap<AclList, i64, foldhash::fast::RandomState>,
    last_id: i64,
}

impl AclCache {
    /// The id for `acl`, adding it (or a reference to it) to the cache.
    pub fn intern(&mut self, acl: &[Acl]) -> i64 {
        if let Some(&id) = self.by_list.get(acl) {
            if let Some(entry) = self.by_id.get_mut(&id) {
                entry.1 += 1;
            }
            return id;
        }
        self.last_id += 1;
        let list: AclList = acl.into();
        self.by_list.insert(list.clone(), self.last_id);
        self.by_id.insert(self.last_id, (list, 1));
        self.last_id
    }

    /// The ACL list for `id`; the open ACL for `-1`; `None` for an unknown id.
    pub fn get(&self, id: i64) -> Option<AclList> {
        if id == OPEN_ACL_UNSAFE_ID {
            return Some(open_acl_unsafe().into());
        }
        self.by_id.get(&id).map(|(list, _)| list.clone())
    }

    /// Drops one reference to `id`, forgetting the list when none remain.
    pub fn release(&mut self, id: i64) {
        let Some(entry) = self.by_id.get_mut(&id) else {
            return;
        };
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 == 0 {
            if let Some((list, _)) = self.by_id.remove(&id) {
                self.by_list.remove(&list);
            }
        }
    }

    /// Adds a reference to an id that came from a snapshot.
    pub fn retain(&mut self, id: i64) {
        if let Some(entry) = self.by_id.get_mut(&id) {
            entry.1 += 1;
        }
    }

    /// Loads an entry from a snapshot, with no references yet.
    pub fn insert_loaded(&mut self, id: i64, acl: Vec<Acl>) {
        let list: AclList = acl.into();
        self.by_list.insert(list.clone(), id);
        self.by_id.insert(id, (list, 0));
        self.last_id = self.last_id.max(id);
    }

    /// Forgets entries that no node refers to (after loading a snapshot).
    pub fn purge_unused(&mut self) {
        let unused: Vec<i64> = self
            .by_id
            .iter()
            .filter(|e| e.1.1 == 0)
            .map(|e| *e.0)
            .collect();
        for id in unused {
            if let Some((list, _)) = self.by_id.remove(&id) {
                self.by_list.remove(&list);
            }
        }
    }

    /// Every entry, in id order: what a snapshot stores.
    pub fn entries(&self) -> impl Iterator<Item = (i64, &[Acl])> {
        self.by_id.iter().map(|(id, (list, _))| (*id, &**list))
    }

    /// The number of distinct ACL lists.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// `user:base64(sha1("user:password"))`: the id a `digest` ACL names for a password, as
/// ZooKeeper's `DigestAuthenticationProvider.generateDigest` makes it.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The identities a session gains from `addauth digest user:password`: the digest id, and
/// `super` too when it matches the configured super digest (`superDigest`).
pub fn digest_auth(user_password: &str, super_digest: Option<&str>) -> Vec<Id> {
    let id = digest_id(user_password);
    let mut ids = Vec::with_capacity(2);
    if super_digest == Some(id.as_str()) {
        ids.push(Id {
            scheme: "super".into(),
            id: String::new(),
        });
    }
    ids.push(Id {
        scheme: "digest".into(),
        id,
    });
    ids
}

/// Whether the client address `addr` matches an `ip` ACL id: an address, or an address and
/// a prefix length (`10.0.0.0/8`).
fn ip_matches(addr: &str, acl_expr: &str) -> bool {
    let (net, bits) = match acl_expr.split_once('/') {
        Some((net, bits)) => (net, bits.parse::<u32>().ok()),
        None => (acl_expr, None),
    };
    let (Ok(addr), Ok(net)) = (addr.parse::<IpAddr>(), net.parse::<IpAddr>()) else {
        return false;
    };
    let (addr, net, width) = match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(a.to_bits()), u128::from(n.to_bits()), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (a.to_bits(), n.to_bits(), 128),
        _ => return false,
    };
    let bits = bits.unwrap_or(width);
    if bits > width {
        return false;
    }
    let mask = if bits == 0 {
        0
    } else {
        (u128::MAX << (width - bits)) & (u128::MAX >> (128 - width))
    };
    addr & mask == net & mask
}

fn is_valid_ip_expr(expr: &str) -> bool {
    let (net, bits) = match expr.split_once('/') {
        Some((net, bits)) => (net, Some(bits)),
        None => (expr, None),
    };
    let Ok(ip) = net.parse::<IpAddr>() else {
        return false;
    };
    let width = if ip.is_ipv4() { 32 } else { 128 };
    bits.is_none_or(|b| b.parse::<u32>().is_ok_and(|b| b <= width))
}

/// Whether `auth` (a session's identity) satisfies the ACL id `acl_id` of the same scheme.
fn id_matches(auth: &Id, acl_id: &Id) -> bool {
    if auth.scheme != acl_id.scheme {
        return false;
    }
    match acl_id.scheme.as_str() {
        // X509AuthenticationProvider: the certificate's subject, exactly;
        // SASLAuthenticationProvider: the authorization id, exactly.
        "digest" | "x509" | "sasl" => auth.id == acl_id.id,
        "ip" => ip_matches(&auth.id, &acl_id.id),
        _ => false,
    }
}

/// ZooKeeper's permission check: allowed if the ACL is empty, the session is `super`, or an
/// entry granting one of `perm`'s bits names `world:anyone` or one of the session's ids.
pub fn check_acl(acl: &[Acl], perm: Perms, auth: &[Id]) -> Result<(), ErrorCode> {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == "super") {
        return Ok(());
    }
    let allowed = acl.iter().filter(|a| a.perms & perm.0 != 0).any(|a| {
        (a.id.scheme == "world" && a.id.id == "anyone")
            || auth.iter().any(|id| id_matches(id, &a.id))
    });
    if allowed {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

/// What a client may see of an ACL it can read but not administer: digest ids lose their
/// password hash (`user:x`), as ZooKeeper answers `getACL`.
pub fn redact_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| match a.id.scheme.as_str() {
            "digest" => {
                let user = a.id.id.split(':').next().unwrap_or_default();
                Acl {
                    perms: a.perms,
                    id: Id {
                        scheme: "digest".into(),
                        id: format!("{user}:x"),
                    },
                }
            }
            _ => a.clone(),
        })
        .collect()
}

/// A connection's identities in the order ZooKeeper 3.8 lists them (`fixupACL`, `whoAmI`),
/// given `auth` in the order they were added (the connection's `ip` first, then each
/// `addauth`'s, `super` before `digest`, duplicates left out). ZooKeeper keeps them in a
/// `ConcurrentHashMap` key set, so that order is the map's, not the order of adding.
pub fn auth_order(auth: &[Id]) -> Vec<&Id> {
    crate::java::concurrent_set_order(auth)
}

/// Checks and expands an ACL a client sets (ZooKeeper's `fixupACL`): duplicates removed,
/// `auth` entries replaced by the session's authenticated (digest) ids in
/// [`auth_order`], every id valid for its scheme. An empty or invalid list is
/// `InvalidACL`.
pub fn fixup_acl(acl: Option<&[Acl]>, auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let mut unique: Vec<&Acl> = Vec::new();
    for entry in acl.unwrap_or_default() {
        if !unique.contains(&entry) {
            unique.push(entry);
        }
    }
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut fixed = Vec::with_capacity(unique.len());
    for entry in unique {
        let id = &entry.id;
        match id.scheme.as_str() {
            "world" if id.id == "anyone" => fixed.push(entry.clone()),
            "auth" => {
                // Only providers that authenticate (digest, x509, sasl) count; ip does not.
                let ids: Vec<&Id> = auth_order(auth)
                    .into_iter()
                    .filter(|a| matches!(a.scheme.as_str(), "digest" | "x509" | "sasl"))
                    .collect();
                if ids.is_empty() {
                    return Err(ErrorCode::InvalidAcl);
                }
                fixed.extend(ids.into_iter().map(|a| Acl {
                    perms: entry.perms,
                    id: a.clone(),
                }));
            }
            "digest" if id.id.split(':').count() == 2 => fixed.push(entry.clone()),
            "ip" if is_valid_ip_expr(&id.id) => fixed.push(entry.clone()),
            // An X.500 name (ZooKeeper parses it; one without an attribute is not one).
            "x509" if id.id.contains('=') => fixed.push(entry.clone()),
            // SASLAuthenticationProvider takes any id.
            "sasl" => fixed.push(entry.clone()),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    fn acl(perms: Perms, scheme: &str, who: &str) -> Acl {
        Acl {
            perms: perms.0,
            id: id(scheme, who),
        }
    }

    #[test]
    fn digest_ids_match_zookeeper() {
        // What ZooKeeper 3.8.0's own `DigestAuthenticationProvider` prints for these.
        assert_eq!(
            digest_id("super:secret"),
            "super:lK75jTNcA+U9vtVEw5vB51mj/w4="
        );
        assert_eq!(digest_id("alice:pw"), "alice:V55/p2T0OpjQ+low3NVAH4aLvm0=");
    }

    #[test]
    fn cache_ids_are_reference_counted() {
        let mut cache = AclCache::default();
        let open = open_acl_unsafe();
        let a = cache.intern(&open);
        let b = cache.intern(&open);
        let c = cache.intern(&read_acl_unsafe());
        assert_eq!((a, b, c), (1, 1, 2));
        cache.release(a);
        assert!(cache.get(a).is_some());
        cache.release(a);
        assert!(cache.get(a).is_none());
        assert_eq!(cache.intern(&open), 3, "ids are never reused");
    }

    #[test]
    fn permission_checks() {
        let alice = digest_id("alice:pw");
        let node = [
            acl(Perms::READ, "world", "anyone"),
            acl(Perms::ALL, "digest", &alice),
        ];
        assert_eq!(check_acl(&node, Perms::READ, &[]), Ok(()));
        assert_eq!(check_acl(&node, Perms::WRITE, &[]), Err(ErrorCode::NoAuth));
        assert_eq!(
            check_acl(&node, Perms::WRITE, &[id("digest", &alice)]),
            Ok(())
        );
        assert_eq!(check_acl(&node, Perms::WRITE, &[id("super", "")]), Ok(()));
        let subnet = [acl(Perms::ALL, "ip", "10.1.0.0/16")];
        assert_eq!(
            check_acl(&subnet, Perms::READ, &[id("ip", "10.1.2.3")]),
            Ok(())
        );
        assert_eq!(
            check_acl(&subnet, Perms::READ, &[id("ip", "10.2.0.1")]),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(check_acl(&[], Perms::ADMIN, &[]), Ok(()));
    }

    #[test]
    fn fixup_expands_auth_and_refuses_bad_ids() {
        let alice = id("digest", &digest_id("alice:pw"));
        let creator = [acl(Perms::ALL, "auth", "")];
        assert_eq!(fixup_acl(Some(&creator), &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            fixup_acl(Some(&creator), &[id("ip", "127.0.0.1"), alice.clone()]),
            Ok(vec![Acl {
                perms: Perms::ALL.0,
                id: alice
            }])
        );
        assert_eq!(fixup_acl(Some(&[]), &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup_acl(None, &[]), Err(ErrorCode::InvalidAcl));
        let bad = [acl(Perms::READ, "world", "someone")];
        assert_eq!(fixup_acl(Some(&bad), &[]), Err(ErrorCode::InvalidAcl));
        let dup = [
            acl(Perms::READ, "ip", "10.0.0.1"),
            acl(Perms::READ, "ip", "10.0.0.1"),
        ];
        assert_eq!(fixup_acl(Some(&dup), &[]).map(|a| a.len()), Ok(1));
    }

    #[test]
    fn x509_ids_match_exactly_and_expand_auth() {
        let alice = id("x509", "CN=alice,O=tests");
        let acl_alice = [acl(Perms::ALL, "x509", "CN=alice,O=tests")];
        assert_eq!(
            check_acl(&acl_alice, Perms::READ, std::slice::from_ref(&alice)),
            Ok(())
        );
        assert_eq!(
            check_acl(&acl_alice, Perms::READ, &[id("x509", "CN=alice")]),
            Err(ErrorCode::NoAuth)
        );
        let creator = [acl(Perms::ALL, "auth", "")];
        let ip = id("ip", "127.0.0.1");
        let fixed = fixup_acl(Some(&creator), &[ip, alice.clone()]).unwrap();
        assert_eq!(fixed, acl_alice);
        let not_a_name = [acl(Perms::ALL, "x509", "alice")];
        assert_eq!(
            fixup_acl(Some(&not_a_name), &[]),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn auth_expands_in_zookeepers_order_not_the_order_of_adding() {
        // ZooKeeper 3.8.0 (its authInfo a ConcurrentHashMap key set) lists bob before
        // alice whichever was added first.
        let ip = id("ip", "127.0.0.1");
        let alice = id("digest", &digest_id("alice:pw"));
        let bob = id("digest", &digest_id("bob:pw"));
        let creator = [
            acl(Perms::READ, "world", "anyone"),
            acl(Perms::ALL, "auth", ""),
        ];
        for auth in [
            [ip.clone(), alice.clone(), bob.clone()],
            [ip.clone(), bob.clone(), alice.clone()],
        ] {
            let fixed = fixup_acl(Some(&creator), &auth).unwrap();
            let ids: Vec<&Id> = fixed.iter().map(|a| &a.id).collect();
            assert_eq!(ids, [&creator[0].id, &bob, &alice]);
            assert_eq!(auth_order(&auth), [&bob, &ip, &alice]);
        }
    }
}
