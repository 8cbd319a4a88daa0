//! Reads: served from the tree as it is applied, in the connection's turn.

use bytes::Bytes;
use zk_jute::data::{ClientInfo, Id};
use zk_jute::proto::{
    AddWatchRequest, CheckWatchesRequest, ErrorResponse, ExistsRequest, ExistsResponse,
    GetAclRequest, GetAclResponse, GetAllChildrenNumberRequest, GetAllChildrenNumberResponse,
    GetChildren2Response, GetChildrenRequest, GetChildrenResponse, GetDataRequest, GetDataResponse,
    GetEphemeralsRequest, GetEphemeralsResponse, SetWatches, SetWatches2, WhoAmIResponse,
};
use zk_jute::{
    AddWatchMode, DecodeError, ErrorCode, MultiOp, MultiRequest, MultiResponse, MultiResult,
    OpCode, Perms, Reader, Record, WatcherType, xid,
};
use zk_watch::{NodeZxids, WatchKind, WatchLists, WatcherId};

use super::{ConnId, Engine};
use crate::wire::{NO_ZXID, header_only, notification, reply};

/// Decodes a request body.
pub(super) fn decode<R: Record>(body: &Bytes) -> Result<R, DecodeError> {
    R::decode(&mut Reader::new(body.clone()))
}

impl Engine {
    /// Serves a read from the tree as it is now.
    pub(super) fn read(&mut self, conn: ConnId, xid: i32, op: i32, body: &Bytes) -> Bytes {
        // Lent out for the read rather than copied.
        let auth = self
            .conns
            .get_mut(&conn)
            .map(|c| std::mem::take(&mut c.auth))
            .unwrap_or_default();
        let reply = self.read_as(conn, xid, op, body, &auth);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.auth = auth;
        }
        reply
    }

    /// Serves a read for a connection with identities `auth`.
    fn read_as(&mut self, conn: ConnId, xid: i32, op: i32, body: &Bytes, auth: &[Id]) -> Bytes {
        let zxid = self.tree.last_zxid();
        let watcher = WatcherId(conn);
        let fail = |code: ErrorCode| header_only(xid, zxid, code.code());
        let Ok(op) = OpCode::try_from(op) else {
            return fail(ErrorCode::Unimplemented);
        };
        macro_rules! body {
            ($t:ty) => {
                match decode::<$t>(body) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::info!(conn, error = %e, "request body does not decode");
                        return fail(ErrorCode::MarshallingError);
                    }
                }
            };
        }
        let result: Result<Bytes, ErrorCode> = match op {
            OpCode::Ping => Ok(header_only(xid::PING, zxid, 0)),
            OpCode::Exists => {
                let r = body!(ExistsRequest);
                let result = self.tree.exists(&r.path);
                if r.watch && result != Err(ErrorCode::BadArguments) {
                    let _ = self.watches.add_watch(&r.path, watcher, WatchKind::Data);
                }
                result.map(|stat| reply(xid, zxid, 0, Some(ExistsResponse { stat })))
            }
            OpCode::GetData => {
                let r = body!(GetDataRequest);
                self.tree.get_data(&r.path, auth).map(|(data, stat)| {
                    if r.watch {
                        let _ = self.watches.add_watch(&r.path, watcher, WatchKind::Data);
                    }
                    reply(xid, zxid, 0, Some(GetDataResponse { data, stat }))
                })
            }
            OpCode::GetChildren | OpCode::GetChildren2 => {
                let r = body!(GetChildrenRequest);
                self.tree
                    .get_children(&r.path, auth)
                    .map(|(children, stat)| {
                        if r.watch {
                            let _ = self.watches.add_watch(&r.path, watcher, WatchKind::Child);
                        }
                        if op == OpCode::GetChildren {
                            reply(
                                xid,
                                zxid,
                                0,
                                Some(GetChildrenResponse {
                                    children: Some(children),
                                }),
                            )
                        } else {
                            reply(
                                xid,
                                zxid,
                                0,
                                Some(GetChildren2Response {
                                    children: Some(children),
                                    stat,
                                }),
                            )
                        }
                    })
            }
            OpCode::GetAcl => {
                let r = body!(GetAclRequest);
                self.tree.get_acl(&r.path, auth).map(|(acl, stat)| {
                    reply(
                        xid,
                        zxid,
                        0,
                        Some(GetAclResponse {
                            acl: Some(acl),
                            stat,
                        }),
                    )
                })
            }
            OpCode::GetAllChildrenNumber => {
                let r = body!(GetAllChildrenNumberRequest);
                self.tree
                    .get_all_children_number(&r.path, auth)
                    .map(|total_number| {
                        reply(
                            xid,
                            zxid,
                            0,
                            Some(GetAllChildrenNumberResponse { total_number }),
                        )
                    })
            }
            OpCode::GetEphemerals => {
                let r = body!(GetEphemeralsRequest);
                let session = self.conns.get(&conn).map_or(0, |c| c.session);
                let ephemerals = Some(self.tree.get_ephemerals(session, &r.prefix_path));
                Ok(reply(
                    xid,
                    zxid,
                    0,
                    Some(GetEphemeralsResponse { ephemerals }),
                ))
            }
            OpCode::WhoAmI => {
                let client_info = zk_datatree::acl::auth_order(auth)
                    .into_iter()
                    .map(|id| {
                        // ZooKeeper's AuthUtil: the provider's user name, or "" for a
                        // scheme with no provider registered (`super`, or `sasl` without
                        // its authProvider.N).
                        let user = match id.scheme.as_str() {
                            "digest" => id.id.split(':').next().unwrap_or_default().to_owned(),
                            scheme if self.config.has_auth_provider(scheme) => id.id.clone(),
                            _ => String::new(),
                        };
                        ClientInfo {
                            auth_scheme: id.scheme.clone(),
                            user,
                        }
                    })
                    .collect();
                Ok(reply(
                    xid,
                    zxid,
                    0,
                    Some(WhoAmIResponse {
                        client_info: Some(client_info),
                    }),
                ))
            }
            OpCode::AddWatch => {
                let r = body!(AddWatchRequest);
                match AddWatchMode::try_from(r.mode) {
                    Ok(mode) => {
                        let _ = self
                            .watches
                            .add_watch(&r.path, watcher, WatchKind::from(mode));
                        // ZooKeeper answers addWatch with an ErrorResponse(0) body, and
                        // its Java client reads one.
                        Ok(reply(xid, zxid, 0, Some(ErrorResponse { err: 0 })))
                    }
                    Err(_) => Err(ErrorCode::BadArguments),
                }
            }
            OpCode::CheckWatches | OpCode::RemoveWatches => {
                let r = body!(CheckWatchesRequest);
                let kind = WatcherType::try_from(r.r#type).map_err(|_| ErrorCode::BadArguments);
                kind.and_then(|kind| {
                    let found = if op == OpCode::CheckWatches {
                        self.watches.check_watches(&r.path, kind, watcher)
                    } else {
                        self.watches.remove_watches(&r.path, kind, watcher)
                    };
                    if found {
                        Ok(header_only(xid, zxid, 0))
                    } else {
                        Err(ErrorCode::NoWatcher)
                    }
                })
            }
            OpCode::SetWatches | OpCode::SetWatches2 => {
                let lists = if op == OpCode::SetWatches {
                    let r = body!(SetWatches);
                    (
                        r.relative_zxid,
                        WatchLists {
                            data: r.data_watches.unwrap_or_default(),
                            exist: r.exist_watches.unwrap_or_default(),
                            child: r.child_watches.unwrap_or_default(),
                            persistent: Vec::new(),
                            persistent_recursive: Vec::new(),
                        },
                    )
                } else {
                    let r = body!(SetWatches2);
                    (
                        r.relative_zxid,
                        WatchLists {
                            data: r.data_watches.unwrap_or_default(),
                            exist: r.exist_watches.unwrap_or_default(),
                            child: r.child_watches.unwrap_or_default(),
                            persistent: r.persistent_watches.unwrap_or_default(),
                            persistent_recursive: r
                                .persistent_recursive_watches
                                .unwrap_or_default(),
                        },
                    )
                };
                let tree = &self.tree;
                let missed = self
                    .watches
                    .set_watches(watcher, lists.0, &lists.1, |path| {
                        tree.node(path).map(|n| NodeZxids {
                            mzxid: n.stat.mzxid,
                            pzxid: n.stat.pzxid,
                        })
                    });
                for event in missed.unwrap_or_default() {
                    let acl = self.tree.acl_at(&event.path);
                    if zk_datatree::acl::check_acl(&acl, Perms::READ, auth).is_ok() {
                        self.send(conn, notification(&event, NO_ZXID));
                    }
                }
                Ok(header_only(xid::SET_WATCHES, zxid, 0))
            }
            OpCode::MultiRead => {
                let r = body!(MultiRequest);
                let results = r.ops.iter().map(|op| self.multi_read(op, auth)).collect();
                Ok(reply(xid, zxid, 0, Some(MultiResponse { results })))
            }
            OpCode::Sasl => Err(ErrorCode::AuthFailed),
            _ => Err(ErrorCode::Unimplemented),
        };
        result.unwrap_or_else(fail)
    }

    fn multi_read(&self, op: &MultiOp, auth: &[Id]) -> MultiResult {
        let error = |code: ErrorCode| MultiResult::Error(ErrorResponse { err: code.code() });
        match op {
            MultiOp::GetChildren(r) => match self.tree.get_children(&r.path, auth) {
                Ok((children, _)) => MultiResult::GetChildren(GetChildrenResponse {
                    children: Some(children),
                }),
                Err(code) => error(code),
            },
            MultiOp::GetData(r) => match self.tree.get_data(&r.path, auth) {
                Ok((data, stat)) => MultiResult::GetData(GetDataResponse { data, stat }),
                Err(code) => error(code),
            },
            _ => error(ErrorCode::Unimplemented),
        }
    }
}
