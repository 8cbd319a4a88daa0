//! Every record of Apache ZooKeeper's `zookeeper.jute` (3.8 and 3.9), one module per jute
//! module. Field order is wire order; Rust names are the jute names in snake case.

use bytes::Bytes;

use crate::macros::records;

/// `org.apache.zookeeper.data`: identities, ACLs and stats.
pub mod data {
    use super::*;

    records! {
        /// An identity: an auth scheme and an id in that scheme (`world:anyone`,
        /// `digest:user:hash`, `ip:10.0.0.0/8`, ...).
        pub struct Id("org.apache.zookeeper.data.Id") {
            /// The scheme name, e.g. `world`, `digest`, `ip`, `auth`, `sasl`.
            pub scheme: String,
            /// The id within the scheme.
            pub id: String,
        }

        /// One access control entry: permission bits for an identity.
        pub struct Acl("org.apache.zookeeper.data.ACL") {
            /// Bits of [`Perms`](crate::Perms).
            pub perms: i32,
            /// Who the permissions are granted to.
            pub id: Id,
        }

        /// A znode's metadata as clients see it.
        pub struct Stat("org.apache.zookeeper.data.Stat") {
            /// The zxid of the change that created the node.
            pub czxid: i64,
            /// The zxid of the change that last modified the node's data.
            pub mzxid: i64,
            /// Creation time, milliseconds since the epoch.
            pub ctime: i64,
            /// Last data modification time, milliseconds since the epoch.
            pub mtime: i64,
            /// Number of changes to the data.
            pub version: i32,
            /// Number of changes to the children.
            pub cversion: i32,
            /// Number of changes to the ACL.
            pub aversion: i32,
            /// The owning session's id if the node is ephemeral, else 0 (or a TTL/container
            /// marker).
            pub ephemeral_owner: i64,
            /// Length of the data in bytes.
            pub data_length: i32,
            /// Number of children.
            pub num_children: i32,
            /// The zxid of the change that last modified the children.
            pub pzxid: i64,
        }

        /// A znode's metadata as the server persists it (no derived fields).
        pub struct StatPersisted("org.apache.zookeeper.data.StatPersisted") {
            /// The zxid of the change that created the node.
            pub czxid: i64,
            /// The zxid of the change that last modified the node's data.
            pub mzxid: i64,
            /// Creation time, milliseconds since the epoch.
            pub ctime: i64,
            /// Last data modification time, milliseconds since the epoch.
            pub mtime: i64,
            /// Number of changes to the data.
            pub version: i32,
            /// Number of changes to the children.
            pub cversion: i32,
            /// Number of changes to the ACL.
            pub aversion: i32,
            /// The owning session's id if the node is ephemeral, else 0 (or a TTL/container
            /// marker).
            pub ephemeral_owner: i64,
            /// The zxid of the change that last modified the children.
            pub pzxid: i64,
        }

        /// One authenticated identity of a session, as `whoAmI` reports it.
        pub struct ClientInfo("org.apache.zookeeper.data.ClientInfo") {
            /// The authentication scheme.
            pub auth_scheme: String,
            /// The user name or other id (e.g. an ip).
            pub user: String,
        }
    }
}

/// `org.apache.zookeeper.proto`: the client protocol's requests, responses and headers.
pub mod proto {
    use super::data::{Acl, ClientInfo, Stat};
    use super::*;

    records! {
        /// The first frame a client sends on a new connection.
        pub struct ConnectRequest("org.apache.zookeeper.proto.ConnectRequest") {
            /// Protocol version, 0.
            pub protocol_version: i32,
            /// The highest zxid the client has seen.
            pub last_zxid_seen: i64,
            /// The session timeout the client asks for, in milliseconds.
            pub timeout: i32,
            /// The session to resume, or 0 for a new one.
            pub session_id: i64,
            /// The session's password (16 bytes), or zeros for a new session.
            pub passwd: Option<Bytes>,
            /// Whether the client accepts a read-only server; omitted by old clients.
            pub read_only: Option<bool>,
        }

        /// The server's answer to a [`ConnectRequest`].
        pub struct ConnectResponse("org.apache.zookeeper.proto.ConnectResponse") {
            /// Protocol version, 0.
            pub protocol_version: i32,
            /// The negotiated session timeout in milliseconds; 0 means the session expired.
            pub timeout: i32,
            /// The session id.
            pub session_id: i64,
            /// The session's password.
            pub passwd: Option<Bytes>,
            /// Whether this server is read-only; omitted by old servers.
            pub read_only: Option<bool>,
        }

        /// Re-registers watches after a reconnect (opcode `setWatches`).
        pub struct SetWatches("org.apache.zookeeper.proto.SetWatches") {
            /// The last zxid the client saw; changes after it fire the watches at once.
            pub relative_zxid: i64,
            /// Paths with data watches.
            pub data_watches: Option<Vec<String>>,
            /// Paths with exists watches.
            pub exist_watches: Option<Vec<String>>,
            /// Paths with child watches.
            pub child_watches: Option<Vec<String>>,
        }

        /// Re-registers watches, persistent ones included (opcode `setWatches2`).
        pub struct SetWatches2("org.apache.zookeeper.proto.SetWatches2") {
            /// The last zxid the client saw; changes after it fire the watches at once.
            pub relative_zxid: i64,
            /// Paths with data watches.
            pub data_watches: Option<Vec<String>>,
            /// Paths with exists watches.
            pub exist_watches: Option<Vec<String>>,
            /// Paths with child watches.
            pub child_watches: Option<Vec<String>>,
            /// Paths with persistent watches.
            pub persistent_watches: Option<Vec<String>>,
            /// Paths with persistent recursive watches.
            pub persistent_recursive_watches: Option<Vec<String>>,
        }

        /// Precedes every request body: the client's sequence number and the opcode.
        pub struct RequestHeader("org.apache.zookeeper.proto.RequestHeader") {
            /// The client's request id, echoed in the reply; special values in
            /// [`xid`](crate::xid).
            pub xid: i32,
            /// The [`OpCode`](crate::OpCode).
            pub r#type: i32,
        }

        /// Precedes each operation and result inside a multi, and ends the list.
        pub struct MultiHeader("org.apache.zookeeper.proto.MultiHeader") {
            /// The operation's opcode, or -1 in the closing header.
            pub r#type: i32,
            /// True only in the closing header.
            pub done: bool,
            /// The result's error code (-1 in requests and in the closing header).
            pub err: i32,
        }

        /// Adds authentication to a session (opcode `auth`, xid -4).
        pub struct AuthPacket("org.apache.zookeeper.proto.AuthPacket") {
            /// Unused, 0.
            pub r#type: i32,
            /// The scheme, e.g. `digest`.
            pub scheme: String,
            /// The credentials, e.g. `user:password`.
            pub auth: Option<Bytes>,
        }

        /// Precedes every reply and notification.
        pub struct ReplyHeader("org.apache.zookeeper.proto.ReplyHeader") {
            /// The xid of the request answered, or a special xid.
            pub xid: i32,
            /// The server's last zxid when replying.
            pub zxid: i64,
            /// The [`ErrorCode`](crate::ErrorCode), 0 on success.
            pub err: i32,
        }

        /// Reads a znode's data (opcode `getData`).
        pub struct GetDataRequest("org.apache.zookeeper.proto.GetDataRequest") {
            /// The znode.
            pub path: String,
            /// Whether to leave a data watch.
            pub watch: bool,
        }

        /// Writes a znode's data (opcode `setData`).
        pub struct SetDataRequest("org.apache.zookeeper.proto.SetDataRequest") {
            /// The znode.
            pub path: String,
            /// The new data.
            pub data: Option<Bytes>,
            /// The expected version, or -1 for any.
            pub version: i32,
        }

        /// Changes the ensemble's membership (opcode `reconfig`).
        pub struct ReconfigRequest("org.apache.zookeeper.proto.ReconfigRequest") {
            /// Servers to add, comma separated; null for none.
            pub joining_servers: Option<String>,
            /// Server ids to remove, comma separated; null for none.
            pub leaving_servers: Option<String>,
            /// A whole new membership, for non-incremental reconfig; null for none.
            pub new_members: Option<String>,
            /// The config version the change applies to, or -1.
            pub cur_config_id: i64,
        }

        /// The answer to a [`SetDataRequest`].
        pub struct SetDataResponse("org.apache.zookeeper.proto.SetDataResponse") {
            /// The znode's stat after the write.
            pub stat: Stat,
        }

        /// A SASL token from server to client.
        pub struct GetSaslRequest("org.apache.zookeeper.proto.GetSASLRequest") {
            /// The token.
            pub token: Option<Bytes>,
        }

        /// A SASL token from client to server (opcode `sasl`).
        pub struct SetSaslRequest("org.apache.zookeeper.proto.SetSASLRequest") {
            /// The token.
            pub token: Option<Bytes>,
        }

        /// The answer to a [`SetSaslRequest`].
        pub struct SetSaslResponse("org.apache.zookeeper.proto.SetSASLResponse") {
            /// The token.
            pub token: Option<Bytes>,
        }

        /// Creates a znode (opcodes `create`, `create2`, `createContainer`).
        pub struct CreateRequest("org.apache.zookeeper.proto.CreateRequest") {
            /// The znode (the prefix, for sequential nodes).
            pub path: String,
            /// The initial data.
            pub data: Option<Bytes>,
            /// The initial ACL.
            pub acl: Option<Vec<Acl>>,
            /// The [`CreateMode`](crate::CreateMode).
            pub flags: i32,
        }

        /// Creates a TTL znode (opcode `createTTL`).
        pub struct CreateTtlRequest("org.apache.zookeeper.proto.CreateTTLRequest") {
            /// The znode (the prefix, for sequential nodes).
            pub path: String,
            /// The initial data.
            pub data: Option<Bytes>,
            /// The initial ACL.
            pub acl: Option<Vec<Acl>>,
            /// The [`CreateMode`](crate::CreateMode).
            pub flags: i32,
            /// Time to live in milliseconds.
            pub ttl: i64,
        }

        /// Deletes a znode (opcode `delete`).
        pub struct DeleteRequest("org.apache.zookeeper.proto.DeleteRequest") {
            /// The znode.
            pub path: String,
            /// The expected version, or -1 for any.
            pub version: i32,
        }

        /// Lists a znode's children (opcode `getChildren`).
        pub struct GetChildrenRequest("org.apache.zookeeper.proto.GetChildrenRequest") {
            /// The znode.
            pub path: String,
            /// Whether to leave a child watch.
            pub watch: bool,
        }

        /// Counts all descendants of a znode (opcode `getAllChildrenNumber`).
        pub struct GetAllChildrenNumberRequest(
            "org.apache.zookeeper.proto.GetAllChildrenNumberRequest"
        ) {
            /// The znode.
            pub path: String,
        }

        /// Lists a znode's children with its stat (opcode `getChildren2`).
        pub struct GetChildren2Request("org.apache.zookeeper.proto.GetChildren2Request") {
            /// The znode.
            pub path: String,
            /// Whether to leave a child watch.
            pub watch: bool,
        }

        /// Checks a znode's version, inside a multi (opcode `check`).
        pub struct CheckVersionRequest("org.apache.zookeeper.proto.CheckVersionRequest") {
            /// The znode.
            pub path: String,
            /// The expected version.
            pub version: i32,
        }

        /// Obsolete quota request, kept for completeness.
        pub struct GetMaxChildrenRequest("org.apache.zookeeper.proto.GetMaxChildrenRequest") {
            /// The znode.
            pub path: String,
        }

        /// Obsolete quota response, kept for completeness.
        pub struct GetMaxChildrenResponse("org.apache.zookeeper.proto.GetMaxChildrenResponse") {
            /// The maximum.
            pub max: i32,
        }

        /// Obsolete quota request, kept for completeness.
        pub struct SetMaxChildrenRequest("org.apache.zookeeper.proto.SetMaxChildrenRequest") {
            /// The znode.
            pub path: String,
            /// The maximum.
            pub max: i32,
        }

        /// Waits for the server to catch up with the leader (opcode `sync`).
        pub struct SyncRequest("org.apache.zookeeper.proto.SyncRequest") {
            /// The znode.
            pub path: String,
        }

        /// The answer to a [`SyncRequest`].
        pub struct SyncResponse("org.apache.zookeeper.proto.SyncResponse") {
            /// The znode.
            pub path: String,
        }

        /// Reads a znode's ACL (opcode `getACL`).
        pub struct GetAclRequest("org.apache.zookeeper.proto.GetACLRequest") {
            /// The znode.
            pub path: String,
        }

        /// Replaces a znode's ACL (opcode `setACL`).
        pub struct SetAclRequest("org.apache.zookeeper.proto.SetACLRequest") {
            /// The znode.
            pub path: String,
            /// The new ACL.
            pub acl: Option<Vec<Acl>>,
            /// The expected ACL version, or -1 for any.
            pub version: i32,
        }

        /// The answer to a [`SetAclRequest`].
        pub struct SetAclResponse("org.apache.zookeeper.proto.SetACLResponse") {
            /// The znode's stat after the change.
            pub stat: Stat,
        }

        /// Adds a persistent watch (opcode `addWatch`).
        pub struct AddWatchRequest("org.apache.zookeeper.proto.AddWatchRequest") {
            /// The znode.
            pub path: String,
            /// The [`AddWatchMode`](crate::AddWatchMode).
            pub mode: i32,
        }

        /// A watch notification (sent with xid -1).
        pub struct WatcherEvent("org.apache.zookeeper.proto.WatcherEvent") {
            /// The [`EventType`](crate::EventType).
            pub r#type: i32,
            /// The [`KeeperState`](crate::KeeperState).
            pub state: i32,
            /// The znode, relative to no chroot.
            pub path: String,
        }

        /// An error result inside a multi response.
        pub struct ErrorResponse("org.apache.zookeeper.proto.ErrorResponse") {
            /// The [`ErrorCode`](crate::ErrorCode).
            pub err: i32,
        }

        /// The answer to a `create`.
        pub struct CreateResponse("org.apache.zookeeper.proto.CreateResponse") {
            /// The created path (with its sequence suffix, if any).
            pub path: String,
        }

        /// The answer to a `create2`, `createContainer` or `createTTL`.
        pub struct Create2Response("org.apache.zookeeper.proto.Create2Response") {
            /// The created path (with its sequence suffix, if any).
            pub path: String,
            /// The new znode's stat.
            pub stat: Stat,
        }

        /// Tests whether a znode exists (opcode `exists`).
        pub struct ExistsRequest("org.apache.zookeeper.proto.ExistsRequest") {
            /// The znode.
            pub path: String,
            /// Whether to leave a watch (data if it exists, exists otherwise).
            pub watch: bool,
        }

        /// The answer to an [`ExistsRequest`].
        pub struct ExistsResponse("org.apache.zookeeper.proto.ExistsResponse") {
            /// The znode's stat.
            pub stat: Stat,
        }

        /// The answer to a [`GetDataRequest`].
        pub struct GetDataResponse("org.apache.zookeeper.proto.GetDataResponse") {
            /// The data.
            pub data: Option<Bytes>,
            /// The znode's stat.
            pub stat: Stat,
        }

        /// The answer to a [`GetChildrenRequest`].
        pub struct GetChildrenResponse("org.apache.zookeeper.proto.GetChildrenResponse") {
            /// The children's names.
            pub children: Option<Vec<String>>,
        }

        /// The answer to a [`GetAllChildrenNumberRequest`].
        pub struct GetAllChildrenNumberResponse(
            "org.apache.zookeeper.proto.GetAllChildrenNumberResponse"
        ) {
            /// The number of descendants.
            pub total_number: i32,
        }

        /// The answer to a [`GetChildren2Request`].
        pub struct GetChildren2Response("org.apache.zookeeper.proto.GetChildren2Response") {
            /// The children's names.
            pub children: Option<Vec<String>>,
            /// The znode's stat.
            pub stat: Stat,
        }

        /// The answer to a [`GetAclRequest`].
        pub struct GetAclResponse("org.apache.zookeeper.proto.GetACLResponse") {
            /// The ACL.
            pub acl: Option<Vec<Acl>>,
            /// The znode's stat.
            pub stat: Stat,
        }

        /// Asks whether a watch exists (opcode `checkWatches`).
        pub struct CheckWatchesRequest("org.apache.zookeeper.proto.CheckWatchesRequest") {
            /// The znode.
            pub path: String,
            /// The [`WatcherType`](crate::WatcherType).
            pub r#type: i32,
        }

        /// Removes watches (opcode `removeWatches`).
        pub struct RemoveWatchesRequest("org.apache.zookeeper.proto.RemoveWatchesRequest") {
            /// The znode.
            pub path: String,
            /// The [`WatcherType`](crate::WatcherType).
            pub r#type: i32,
        }

        /// Lists the session's ephemeral nodes (opcode `getEphemerals`).
        pub struct GetEphemeralsRequest("org.apache.zookeeper.proto.GetEphemeralsRequest") {
            /// Only paths starting with this prefix.
            pub prefix_path: String,
        }

        /// The answer to a [`GetEphemeralsRequest`].
        pub struct GetEphemeralsResponse("org.apache.zookeeper.proto.GetEphemeralsResponse") {
            /// The paths.
            pub ephemerals: Option<Vec<String>>,
        }

        /// The answer to `whoAmI`.
        pub struct WhoAmIResponse("org.apache.zookeeper.proto.WhoAmIResponse") {
            /// The session's identities.
            pub client_info: Option<Vec<ClientInfo>>,
        }
    }
}

/// `org.apache.zookeeper.server.quorum`: ZooKeeper's peer protocol records.
pub mod quorum {
    use super::data::Id;
    use super::*;

    records! {
        /// What a learner tells the leader about itself.
        pub struct LearnerInfo("org.apache.zookeeper.server.quorum.LearnerInfo") {
            /// The learner's server id.
            pub serverid: i64,
            /// The learner's protocol version.
            pub protocol_version: i32,
            /// The learner's config version.
            pub config_version: i64,
        }

        /// One message between leader and learners.
        pub struct QuorumPacket("org.apache.zookeeper.server.quorum.QuorumPacket") {
            /// Request, Ack, Commit, Ping, ...
            pub r#type: i32,
            /// The zxid the packet concerns.
            pub zxid: i64,
            /// The payload, for requests.
            pub data: Option<Bytes>,
            /// The request's auth info.
            pub authinfo: Option<Vec<Id>>,
        }

        /// A quorum SASL authentication packet.
        pub struct QuorumAuthPacket("org.apache.zookeeper.server.quorum.QuorumAuthPacket") {
            /// A magic number.
            pub magic: i64,
            /// The authentication status.
            pub status: i32,
            /// The SASL token.
            pub token: Option<Bytes>,
        }
    }
}

/// `org.apache.zookeeper.server.persistence`: on-disk file headers.
pub mod persistence {
    use super::*;

    records! {
        /// The header of a transaction log or snapshot file.
        pub struct FileHeader("org.apache.zookeeper.server.persistence.FileHeader") {
            /// `ZKLG` for logs, `ZKSN` for snapshots, as a big-endian int.
            pub magic: i32,
            /// Format version, 2.
            pub version: i32,
            /// Database id, 0.
            pub dbid: i64,
        }
    }
}

/// `org.apache.zookeeper.txn`: the transactions the log stores and the tree applies.
pub mod txn {
    use super::data::Acl;
    use super::*;

    records! {
        /// The tree digest that follows a txn in the log (ZooKeeper 3.6+).
        pub struct TxnDigest("org.apache.zookeeper.txn.TxnDigest") {
            /// The digest algorithm's version.
            pub version: i32,
            /// The digest of the tree after the txn.
            pub tree_digest: i64,
        }

        /// Precedes every txn: who, when, and which.
        pub struct TxnHeader("org.apache.zookeeper.txn.TxnHeader") {
            /// The session that issued the request.
            pub client_id: i64,
            /// The request's xid.
            pub cxid: i32,
            /// The txn's zxid.
            pub zxid: i64,
            /// The leader's time when preparing the txn, milliseconds since the epoch.
            pub time: i64,
            /// The [`OpCode`](crate::OpCode) of the txn.
            pub r#type: i32,
        }

        /// The create txn of ZooKeeper before 3.3 (no parent cversion).
        pub struct CreateTxnV0("org.apache.zookeeper.txn.CreateTxnV0") {
            /// The znode.
            pub path: String,
            /// The data.
            pub data: Option<Bytes>,
            /// The ACL.
            pub acl: Option<Vec<Acl>>,
            /// Whether the node is ephemeral.
            pub ephemeral: bool,
        }

        /// Creates a znode.
        pub struct CreateTxn("org.apache.zookeeper.txn.CreateTxn") {
            /// The znode (final, with any sequence suffix).
            pub path: String,
            /// The data.
            pub data: Option<Bytes>,
            /// The ACL.
            pub acl: Option<Vec<Acl>>,
            /// Whether the node is ephemeral.
            pub ephemeral: bool,
            /// The parent's cversion after the create.
            pub parent_c_version: i32,
        }

        /// Creates a TTL znode.
        pub struct CreateTtlTxn("org.apache.zookeeper.txn.CreateTTLTxn") {
            /// The znode (final, with any sequence suffix).
            pub path: String,
            /// The data.
            pub data: Option<Bytes>,
            /// The ACL.
            pub acl: Option<Vec<Acl>>,
            /// The parent's cversion after the create.
            pub parent_c_version: i32,
            /// Time to live in milliseconds.
            pub ttl: i64,
        }

        /// Creates a container znode.
        pub struct CreateContainerTxn("org.apache.zookeeper.txn.CreateContainerTxn") {
            /// The znode.
            pub path: String,
            /// The data.
            pub data: Option<Bytes>,
            /// The ACL.
            pub acl: Option<Vec<Acl>>,
            /// The parent's cversion after the create.
            pub parent_c_version: i32,
        }

        /// Deletes a znode.
        pub struct DeleteTxn("org.apache.zookeeper.txn.DeleteTxn") {
            /// The znode.
            pub path: String,
        }

        /// Sets a znode's data.
        pub struct SetDataTxn("org.apache.zookeeper.txn.SetDataTxn") {
            /// The znode.
            pub path: String,
            /// The new data.
            pub data: Option<Bytes>,
            /// The new version.
            pub version: i32,
        }

        /// A version check inside a multi.
        pub struct CheckVersionTxn("org.apache.zookeeper.txn.CheckVersionTxn") {
            /// The znode.
            pub path: String,
            /// The version checked.
            pub version: i32,
        }

        /// Sets a znode's ACL.
        pub struct SetAclTxn("org.apache.zookeeper.txn.SetACLTxn") {
            /// The znode.
            pub path: String,
            /// The new ACL.
            pub acl: Option<Vec<Acl>>,
            /// The new ACL version.
            pub version: i32,
        }

        /// Obsolete quota txn, kept for completeness.
        pub struct SetMaxChildrenTxn("org.apache.zookeeper.txn.SetMaxChildrenTxn") {
            /// The znode.
            pub path: String,
            /// The maximum.
            pub max: i32,
        }

        /// Creates a session.
        pub struct CreateSessionTxn("org.apache.zookeeper.txn.CreateSessionTxn") {
            /// The negotiated timeout in milliseconds.
            pub time_out: i32,
        }

        /// Closes a session, deleting its ephemerals.
        pub struct CloseSessionTxn("org.apache.zookeeper.txn.CloseSessionTxn") {
            /// The ephemeral paths to delete (3.6+; absent in older logs).
            pub paths2_delete: Option<Vec<String>>,
        }

        /// A request that failed; the log keeps it so zxids stay dense.
        pub struct ErrorTxn("org.apache.zookeeper.txn.ErrorTxn") {
            /// The [`ErrorCode`](crate::ErrorCode).
            pub err: i32,
        }

        /// One txn inside a [`MultiTxn`]: its opcode and its encoded record.
        pub struct Txn("org.apache.zookeeper.txn.Txn") {
            /// The [`OpCode`](crate::OpCode) of the inner txn.
            pub r#type: i32,
            /// The encoded inner txn.
            pub data: Option<Bytes>,
        }

        /// The txns of a multi, applied all or nothing.
        pub struct MultiTxn("org.apache.zookeeper.txn.MultiTxn") {
            /// The inner txns.
            pub txns: Option<Vec<Txn>>,
        }
    }
}
