//! What a node's `ephemeralOwner` encodes (ZooKeeper's `EphemeralType`): nothing, an owning
//! session, the container marker, or a TTL.

/// `ephemeralOwner` of every container node.
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;

const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;
const RESERVED_BITS_MASK: i64 = 0x00ff_ff00_0000_0000;
const EXTENDED_FEATURE_VALUE_MASK: i64 = !(EXTENDED_MASK | RESERVED_BITS_MASK);
const EXTENDED_BIT_TTL: i64 = 0;

/// The largest TTL ZooKeeper accepts, in milliseconds (about 34 years).
pub const MAX_TTL_MS: i64 = EXTENDED_FEATURE_VALUE_MASK;

/// The kind of node an `ephemeralOwner` value denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralType {
    /// A plain persistent node (owner 0).
    Void,
    /// An ephemeral node owned by a session.
    Normal,
    /// A container node.
    Container,
    /// A persistent node with a time to live.
    Ttl,
    /// An extended-type owner whose feature bits ZooKeeper does not know.
    Invalid,
}

impl EphemeralType {
    /// Classifies `ephemeral_owner`. With `extended_types` off (ZooKeeper's default unless
    /// `extendedTypesEnabled`), TTL owners read as ordinary session ids.
    pub fn of(ephemeral_owner: i64, extended_types: bool) -> Self {
        if extended_types && ephemeral_owner & EXTENDED_MASK == EXTENDED_MASK {
            let feature = (ephemeral_owner & RESERVED_BITS_MASK) >> 40;
            return if feature == EXTENDED_BIT_TTL {
                Self::Ttl
            } else {
                Self::Invalid
            };
        }
        match ephemeral_owner {
            CONTAINER_EPHEMERAL_OWNER => Self::Container,
            0 => Self::Void,
            _ => Self::Normal,
        }
    }
}

/// The `ephemeralOwner` of a TTL node, or `None` if the TTL is not in `1..=MAX_TTL_MS`.
pub fn ttl_owner(ttl_ms: i64) -> Option<i64> {
    (1..=MAX_TTL_MS)
        .contains(&ttl_ms)
        .then_some(EXTENDED_MASK | EXTENDED_BIT_TTL | ttl_ms)
}

/// The TTL in milliseconds a TTL node's `ephemeralOwner` carries.
pub fn ttl_of(ephemeral_owner: i64) -> i64 {
    ephemeral_owner & EXTENDED_FEATURE_VALUE_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_classify_as_zookeeper_does() {
        let ttl = ttl_owner(60_000).unwrap();
        assert_eq!(ttl as u64, 0xff00_0000_0000_ea60);
        assert_eq!(EphemeralType::of(ttl, true), EphemeralType::Ttl);
        assert_eq!(ttl_of(ttl), 60_000);
        assert_eq!(EphemeralType::of(ttl, false), EphemeralType::Normal);
        assert_eq!(
            EphemeralType::of(CONTAINER_EPHEMERAL_OWNER, true),
            EphemeralType::Container
        );
        assert_eq!(
            EphemeralType::of(0x0100_0000_0000_0001, true),
            EphemeralType::Normal
        );
        assert_eq!(EphemeralType::of(0, true), EphemeralType::Void);
        assert_eq!(
            EphemeralType::of(0xff00_0100_0000_0000_u64 as i64, true),
            EphemeralType::Invalid
        );
        assert_eq!(ttl_owner(0), None);
        assert_eq!(ttl_owner(MAX_TTL_MS + 1), None);
    }
}
