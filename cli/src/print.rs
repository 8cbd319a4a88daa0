//! zkCli's output shapes: stats as `StatPrinter` prints them (Java's `Date.toString` for
//! times), ACL entries as jute's `toString` of an `Id` then the permission letters, and
//! errors with the messages of zkCli's `CliWrapperException`.

use serde_json::{Value, json};
use zk_client::Error;
use zk_jute::Perms;
use zk_jute::data::{Acl, Stat};

pub(crate) use crate::javatext::java_date;
use crate::javatext::jute_string;

/// The eleven lines of zkCli's `StatPrinter`.
pub(crate) fn stat(stat: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        stat.czxid,
        java_date(stat.ctime),
        stat.mzxid,
        java_date(stat.mtime),
        stat.pzxid,
        stat.cversion,
        stat.version,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children,
    )
}

/// A stat as JSON, with zxids and the owner in hex as zkCli shows them.
pub(crate) fn stat_json(stat: &Stat) -> Value {
    json!({
        "czxid": format!("0x{:x}", stat.czxid),
        "ctime": stat.ctime,
        "mzxid": format!("0x{:x}", stat.mzxid),
        "mtime": stat.mtime,
        "pzxid": format!("0x{:x}", stat.pzxid),
        "cversion": stat.cversion,
        "dataVersion": stat.version,
        "aclVersion": stat.aversion,
        "ephemeralOwner": format!("0x{:x}", stat.ephemeral_owner),
        "dataLength": stat.data_length,
        "numChildren": stat.num_children,
    })
}

/// Permission letters in zkCli's order: `cdrwa`.
pub(crate) fn perms(perms: i32) -> String {
    Perms(perms).to_string()
}

/// Parses permission letters; unknown letters are reported and skipped, as zkCli does.
fn perms_from(letters: &str) -> i32 {
    letters.chars().fold(0, |acc, c| {
        acc | match c {
            'r' => Perms::READ.0,
            'w' => Perms::WRITE.0,
            'c' => Perms::CREATE.0,
            'd' => Perms::DELETE.0,
            'a' => Perms::ADMIN.0,
            other => {
                eprintln!("Unknown perm type: {other}");
                0
            }
        }
    })
}

/// An ACL as zkCli's `AclParser` reads it: `scheme:id:perms[,…]`, the id being everything
/// between the first and last colon. Malformed entries are reported and skipped.
pub(crate) fn parse_acl(text: &str) -> Vec<Acl> {
    text.split(',')
        .filter_map(|entry| match (entry.find(':'), entry.rfind(':')) {
            (Some(first), Some(last)) if first != last => Some(Acl {
                perms: perms_from(&entry[last + 1..]),
                id: zk_jute::data::Id {
                    scheme: entry[..first].to_owned(),
                    id: entry[first + 1..last].to_owned(),
                },
            }),
            _ => {
                eprintln!("{entry} does not have the form scheme:id:perm");
                None
            }
        })
        .collect()
}

/// One ACL entry as `getAcl` prints it: the id's jute `toString` (which ends in a newline)
/// then `: ` and the permissions.
pub(crate) fn acl_entry(acl: &Acl) -> String {
    format!(
        "{},{}\n: {}\n",
        jute_string(&acl.id.scheme),
        jute_string(&acl.id.id),
        perms(acl.perms)
    )
}

/// An ACL entry as JSON.
pub(crate) fn acl_json(acl: &Acl) -> Value {
    json!({"scheme": acl.id.scheme, "id": acl.id.id, "perms": perms(acl.perms)})
}

/// The message zkCli prints for a failed operation on `path`.
pub(crate) fn error(error: &Error, path: &str) -> String {
    match error {
        Error::NoNode => format!("Node does not exist: {path}"),
        Error::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {path}"),
        Error::NodeExists => format!("Node already exists: {path}"),
        Error::NotEmpty => format!("Node not empty: {path}"),
        Error::NotReadOnly => format!("Not a read-only call: {path}"),
        Error::InvalidAcl => format!("Acl is not valid : {path}"),
        Error::NoAuth => format!("Insufficient permission : {path}"),
        Error::BadArguments => format!("Arguments are not valid : {path}"),
        Error::BadVersion => format!("version No is not valid : {path}"),
        Error::InvalidPath { path, reason } => path_message(path, reason),
        other => keeper_message(other, path),
    }
}

/// A failed `reconfig`'s message, as zkCli prints it: the path-bound messages with an
/// empty path, and the reconfiguration errors in its words.
pub(crate) fn reconfig_error(error: &Error) -> String {
    match error {
        Error::NoNode
        | Error::NoChildrenForEphemerals
        | Error::NodeExists
        | Error::NotEmpty
        | Error::NotReadOnly
        | Error::InvalidAcl
        | Error::NoAuth
        | Error::BadArguments
        | Error::BadVersion => self::error(error, ""),
        Error::ReconfigInProgress => {
            "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                .into()
        }
        Error::NewConfigNoQuorum => "No quorum of new config is connected and up-to-date with \
                                     the leader of last commmitted config - try invoking \
                                     reconfiguration after new servers are connected and synced"
            .into(),
        other => keeper_message(other, ""),
    }
}

/// A `KeeperException`'s own message, `KeeperErrorCode = <message>[ for <path>]` (e.g.
/// `KeeperErrorCode = NoAuth for /a`), or the client's own text for errors that are not
/// ZooKeeper's.
pub(crate) fn keeper_message(error: &Error, path: &str) -> String {
    match keeper_code_message(error) {
        Some(message) if path.is_empty() => format!("KeeperErrorCode = {message}"),
        Some(message) => format!("KeeperErrorCode = {message} for {path}"),
        None => error.to_string(),
    }
}

/// A bad path's message as Java's `PathUtils` words it.
fn path_message(path: &str, reason: &str) -> String {
    if reason.contains(" @") {
        format!("Invalid path string \"{path}\" caused by {reason}")
    } else {
        let mut chars = reason.chars();
        chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    }
}

/// ZooKeeper's `Code` messages (`KeeperException.getCodeMessage`).
fn keeper_code_message(error: &Error) -> Option<&'static str> {
    Some(match error {
        Error::NoNode => "NoNode",
        Error::NodeExists => "NodeExists",
        Error::NotEmpty => "Directory not empty",
        Error::NoAuth => "NoAuth",
        Error::BadVersion => "BadVersion",
        Error::InvalidAcl => "InvalidACL",
        Error::BadArguments => "BadArguments",
        Error::NoChildrenForEphemerals => "NoChildrenForEphemerals",
        Error::NotReadOnly => "Not a read-only call",
        Error::ConnectionLoss => "ConnectionLoss",
        Error::SessionExpired => "Session expired",
        Error::OperationTimeout => "OperationTimeout",
        Error::Unimplemented => "Unimplemented",
        Error::AuthFailed => "AuthFailed",
        Error::SessionMoved => "Session moved",
        Error::NoWatcher => "No such watcher",
        Error::QuotaExceeded => "Quota has exceeded",
        Error::ReconfigDisabled => "Reconfig is disabled",
        Error::RuntimeInconsistency => "RuntimeInconsistency",
        Error::DataInconsistency => "DataInconsistency",
        Error::MarshallingError => "MarshallingError",
        Error::SystemError => "SystemError",
        Error::ApiError => "APIError",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_permissions_print_as_zkcli_prints_them() {
        // The time zone is the machine's; the epoch's text in UTC is checked only there.
        if jiff::tz::TimeZone::system().iana_name() == Some("UTC") {
            assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        }
        assert_eq!(perms(31), "cdrwa");
        assert_eq!(perms(Perms::READ.0 | Perms::ADMIN.0), "ra");
        assert_eq!(perms(0), "");
    }

    #[test]
    fn acls_parse_as_zkclis_acl_parser() {
        let acl = parse_acl("digest:bob:ikIaKsbtGweaHnb/jKn7OHqbunM=:cdrwa,world:anyone:r");
        assert_eq!(acl.len(), 2);
        assert_eq!(acl[0].id.scheme, "digest");
        assert_eq!(acl[0].id.id, "bob:ikIaKsbtGweaHnb/jKn7OHqbunM=");
        assert_eq!(acl[0].perms, 31);
        assert_eq!(acl[1].perms, Perms::READ.0);
        assert_eq!(parse_acl("world:anyone"), []);
        assert_eq!(
            acl_entry(&acl[1]),
            "'world,'anyone\n: r\n",
            "the id's jute toString ends its line"
        );
        assert_eq!(jute_string("a,b%"), "'a%2Cb%25");
    }

    #[test]
    fn errors_word_as_zkcli_and_keeper_exception() {
        assert_eq!(error(&Error::NoNode, "/a"), "Node does not exist: /a");
        assert_eq!(
            keeper_message(&Error::NoAuth, "/a"),
            "KeeperErrorCode = NoAuth for /a"
        );
        assert_eq!(
            error(&Error::ConnectionLoss, "/a"),
            "KeeperErrorCode = ConnectionLoss for /a"
        );
        assert_eq!(
            keeper_message(&Error::NotEmpty, "/a"),
            "KeeperErrorCode = Directory not empty for /a"
        );
    }
}
