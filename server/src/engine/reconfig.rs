//! The `reconfig` operation's membership: ZooKeeper's `PrepRequestProcessor` checks, in
//! its order, and the new membership's lines.

use std::collections::{BTreeMap, BTreeSet};

use zk_election::ServerLine;
use zk_jute::ErrorCode;
use zk_jute::proto::ReconfigRequest;

use crate::config::{Config, server_line_text};

/// Why a reconfiguration is refused, with ZooKeeper's message for the log.
pub(super) type Refusal = (ErrorCode, String);

/// The membership `request` asks for, as `server.N=...` (and `group`/`weight`) entries,
/// from `config`'s (at version `config.config_version`), given the voters `synced` with
/// the leader (the leader included): the version check (`BadVersion`), the request's
/// lines (`BadArguments`; an id that is not a number fails to marshal, as in ZooKeeper),
/// the count of voters, and whether the new voters synced now make a quorum
/// (`NewConfigNoQuorum`).
pub(super) fn new_membership(
    config: &Config,
    request: &ReconfigRequest,
    synced: &BTreeSet<u64>,
) -> Result<Vec<(String, String)>, Refusal> {
    let bad = |message: String| (ErrorCode::BadArguments, message);
    if request.cur_config_id != -1 && request.cur_config_id != config.config_version {
        return Err((
            ErrorCode::BadVersion,
            format!(
                "Reconfiguration from version {} failed -- last seen version is {}",
                request.cur_config_id, config.config_version
            ),
        ));
    }
    let entries = match &request.new_members {
        Some(members) => bulk(members)?,
        None => incremental(config, request)?,
    };
    let mut next = config.clone();
    next.set_membership_entries(&entries)
        .map_err(|e| bad(e.to_string()))?;
    let voters = next
        .election
        .as_ref()
        .map_or(0, |e| e.verifier.voters().len());
    if config.standalone_enabled && voters < 2 {
        return Err(bad(
            "Reconfig failed - new configuration must include at least 2 followers".into(),
        ));
    }
    if voters < 1 {
        return Err(bad(
            "Reconfig failed - new configuration must include at least 1 follower".into(),
        ));
    }
    let quorum = next
        .election
        .as_ref()
        .is_some_and(|e| e.verifier.contains_quorum(synced.iter()));
    if !quorum {
        return Err((
            ErrorCode::NewConfigNoQuorum,
            "the voters of the new configuration synced with the leader are no quorum".into(),
        ));
    }
    Ok(entries)
}

/// `newMembers`: a whole membership, lines separated by commas.
fn bulk(members: &str) -> Result<Vec<(String, String)>, Refusal> {
    let text = members.replace(',', "\n");
    let pairs =
        crate::properties::parse(&text).map_err(|e| (ErrorCode::BadArguments, e.to_string()))?;
    let mut entries = Vec::new();
    for (key, value) in pairs {
        let key = key.trim().to_owned();
        if key == "version" {
            continue;
        }
        if !["server.", "group", "weight"]
            .iter()
            .any(|p| key.starts_with(p))
        {
            return Err((
                ErrorCode::BadArguments,
                format!("Unrecognised parameter: {key}"),
            ));
        }
        entries.push((key, value.trim().to_owned()));
    }
    Ok(entries)
}

/// `joiningServers` and `leavingServers`, against the current membership, which must be
/// a majority one.
fn incremental(
    config: &Config,
    request: &ReconfigRequest,
) -> Result<Vec<(String, String)>, Refusal> {
    let bad = |message: &str| (ErrorCode::BadArguments, message.to_owned());
    let marshalling = |what: &str| {
        (
            ErrorCode::MarshallingError,
            format!("not a server id: {what}"),
        )
    };
    let hierarchical = config
        .membership_entries
        .iter()
        .any(|(k, _)| k.starts_with("group"));
    if hierarchical {
        return Err(bad(
            "Incremental reconfiguration requested but last configuration seen has a \
             non-majority quorum system",
        ));
    }
    let mut servers: BTreeMap<u64, ServerLine> = config.servers.clone();
    let split = |list: &Option<String>| -> Vec<String> {
        list.as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    for id in split(&request.leaving_servers) {
        let sid: u64 = id.parse().map_err(|_| marshalling(&id))?;
        servers.remove(&sid);
    }
    for joining in split(&request.joining_servers) {
        let parts: Vec<&str> = joining.split('=').collect();
        let [key, value] = parts.as_slice() else {
            return Err(bad("Wrong format of server string"));
        };
        let id = key.rsplit('.').next().unwrap_or_default().trim();
        let sid: u64 = id.parse().map_err(|_| marshalling(id))?;
        let line = ServerLine::parse(sid, value).map_err(|_| bad("Reconfiguration failed"))?;
        if line.client.is_none() {
            return Err(bad(
                "Wrong format of server string - each server should have 3 ports specified",
            ));
        }
        servers.remove(&sid);
        check_address_duplicate(&line, &servers)?;
        servers.insert(sid, line);
    }
    Ok(servers
        .values()
        .map(|s| (format!("server.{}", s.sid), server_line_text(s)))
        .collect())
}

/// ZooKeeper's `checkAddressDuplicate`: a joining server may not take another's quorum
/// or election address (wildcard and loopback hosts are not compared).
fn check_address_duplicate(
    line: &ServerLine,
    others: &BTreeMap<u64, ServerLine>,
) -> Result<(), Refusal> {
    let comparable = |host: &str| {
        !matches!(
            host,
            "0.0.0.0" | "::" | "127.0.0.1" | "::1" | "localhost" | "0:0:0:0:0:0:0:0"
        )
    };
    if !comparable(&line.host) {
        return Ok(());
    }
    let mine = [line.quorum_addr(), line.election_addr()];
    for other in others.values() {
        for theirs in [other.quorum_addr(), other.election_addr()] {
            if mine.contains(&theirs) {
                return Err((
                    ErrorCode::BadArguments,
                    format!(
                        "{theirs} of server.{} conflicts {theirs} of server.{}",
                        line.sid, other.sid
                    ),
                ));
            }
        }
    }
    Ok(())
}
