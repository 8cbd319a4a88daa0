//! `multi` (several writes, all or nothing) and `multiRead` (several reads at once).

use bytes::Bytes;
use zk_jute::data::Stat;
use zk_jute::proto::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, GetChildrenRequest,
    GetDataRequest, SetDataRequest,
};
use zk_jute::{CreateMode, MultiOp, MultiResult};

use crate::error::{Error, Result};
use crate::path::{Chroot, validate_create_path, validate_path};
use crate::types::CreateOptions;

/// One write of a [`Multi`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum WriteOp {
    Create(String, Bytes, CreateOptions),
    Delete(String, i32),
    SetData(String, Bytes, i32),
    Check(String, i32),
}

/// A transaction: writes applied all together or not at all, in order.
///
/// ```
/// use zk_client::{CreateOptions, Multi};
/// let ops = Multi::new()
///     .check("/app", 3)
///     .create("/app/lock", b"", &CreateOptions::ephemeral())
///     .set_data("/app", b"locked", None);
/// assert_eq!(ops.len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multi {
    ops: Vec<WriteOp>,
}

impl Multi {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a znode (answered with its path and stat).
    pub fn create(mut self, path: &str, data: &[u8], options: &CreateOptions) -> Self {
        self.ops.push(WriteOp::Create(
            path.to_owned(),
            Bytes::copy_from_slice(data),
            options.clone(),
        ));
        self
    }

    /// Deletes a znode, if its version is `version` (any version for `None`).
    pub fn delete(mut self, path: &str, version: Option<i32>) -> Self {
        self.ops
            .push(WriteOp::Delete(path.to_owned(), version.unwrap_or(-1)));
        self
    }

    /// Writes a znode's data, if its version is `version` (any version for `None`).
    pub fn set_data(mut self, path: &str, data: &[u8], version: Option<i32>) -> Self {
        self.ops.push(WriteOp::SetData(
            path.to_owned(),
            Bytes::copy_from_slice(data),
            version.unwrap_or(-1),
        ));
        self
    }

    /// Requires the znode's version to be `version` (`-1`: only that it exists).
    pub fn check(mut self, path: &str, version: i32) -> Self {
        self.ops.push(WriteOp::Check(path.to_owned(), version));
        self
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The wire ops, validated, with the chroot applied.
    pub(crate) fn to_wire(&self, chroot: &Chroot) -> Result<Vec<MultiOp>> {
        self.ops
            .iter()
            .map(|op| {
                Ok(match op {
                    WriteOp::Create(path, data, options) => {
                        create_op(chroot, path, data.clone(), options)?
                    }
                    WriteOp::Delete(path, version) => {
                        validate_path(path)?;
                        MultiOp::Delete(DeleteRequest {
                            path: chroot.to_server(path),
                            version: *version,
                        })
                    }
                    WriteOp::SetData(path, data, version) => {
                        validate_path(path)?;
                        MultiOp::SetData(SetDataRequest {
                            path: chroot.to_server(path),
                            data: Some(data.clone()),
                            version: *version,
                        })
                    }
                    WriteOp::Check(path, version) => {
                        validate_path(path)?;
                        MultiOp::Check(CheckVersionRequest {
                            path: chroot.to_server(path),
                            version: *version,
                        })
                    }
                })
            })
            .collect()
    }
}

/// A create as a wire op: `create2`, `createContainer` or `createTTL` by mode, after the
/// client-side checks ZooKeeper's `ZooKeeper.create` makes.
pub(crate) fn create_op(
    chroot: &Chroot,
    path: &str,
    data: Bytes,
    options: &CreateOptions,
) -> Result<MultiOp> {
    validate_create_path(path, options.mode.is_sequential())?;
    if options.acl.is_empty() {
        return Err(Error::InvalidAcl);
    }
    let path = chroot.to_server(path);
    let acl = Some(options.acl.clone());
    let flags = options.mode.code();
    let data = (!options.null_data).then_some(data);
    match (options.mode.is_ttl(), options.ttl_ms) {
        (true, Some(ttl)) if (1..(1_i64 << 40)).contains(&ttl) => {
            Ok(MultiOp::CreateTtl(CreateTtlRequest {
                path,
                data,
                acl,
                flags,
                ttl,
            }))
        }
        (true, _) => Err(Error::InvalidArgument(
            "a TTL mode needs a TTL between 1 ms and 2^40 - 1 ms".into(),
        )),
        (false, Some(_)) => Err(Error::InvalidArgument(format!(
            "a TTL needs a TTL mode, not {}",
            options.mode
        ))),
        (false, None) => {
            let request = CreateRequest {
                path,
                data,
                acl,
                flags,
            };
            Ok(if options.mode == CreateMode::Container {
                MultiOp::CreateContainer(request)
            } else {
                MultiOp::Create2(request)
            })
        }
    }
}

/// The result of one operation of a successful [`Multi`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// A create: the path made (with its sequence suffix) and the new znode's stat.
    Create {
        /// The created path, relative to the chroot.
        path: String,
        /// The new znode's stat.
        stat: Stat,
    },
    /// A delete.
    Delete,
    /// A data write: the znode's stat after it.
    SetData(Stat),
    /// A version check.
    Check,
}

/// Reads to run together with [`Client::multi_read`](crate::Client::multi_read); each
/// succeeds or fails on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiRead {
    ops: Vec<(String, bool)>,
}

impl MultiRead {
    /// No reads yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a znode's data and stat.
    pub fn get_data(mut self, path: &str) -> Self {
        self.ops.push((path.to_owned(), true));
        self
    }

    /// Lists a znode's children.
    pub fn get_children(mut self, path: &str) -> Self {
        self.ops.push((path.to_owned(), false));
        self
    }

    /// The number of reads.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no reads.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub(crate) fn to_wire(&self, chroot: &Chroot) -> Result<Vec<MultiOp>> {
        self.ops
            .iter()
            .map(|(path, data)| {
                validate_path(path)?;
                let path = chroot.to_server(path);
                Ok(if *data {
                    MultiOp::GetData(GetDataRequest { path, watch: false })
                } else {
                    MultiOp::GetChildren(GetChildrenRequest { path, watch: false })
                })
            })
            .collect()
    }
}

/// The result of one read of a [`MultiRead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// A `get_data`: the data and stat.
    Data {
        /// The data (empty for a znode with null data).
        data: Bytes,
        /// The znode's stat.
        stat: Stat,
    },
    /// A `get_children`: the children's names.
    Children(Vec<String>),
}

/// The results of a `multi` reply: all successes, or the first failure.
pub(crate) fn write_results(results: Vec<MultiResult>, chroot: &Chroot) -> Result<Vec<OpResult>> {
    let failed = results
        .iter()
        .position(|r| matches!(r, MultiResult::Error(e) if e.err != 0));
    if let Some(index) = failed {
        let code = match results.get(index) {
            Some(MultiResult::Error(e)) => e.err,
            _ => -1,
        };
        let error = Error::from_code(code).unwrap_or(Error::SystemError);
        return Err(Error::MultiFailed {
            index,
            error: Box::new(error),
        });
    }
    results
        .into_iter()
        .map(|r| match r {
            MultiResult::Create(c) => Ok(OpResult::Create {
                path: chroot.to_client(&c.path),
                stat: Stat::default(),
            }),
            MultiResult::Create2(c) => Ok(OpResult::Create {
                path: chroot.to_client(&c.path),
                stat: c.stat,
            }),
            MultiResult::Delete => Ok(OpResult::Delete),
            MultiResult::SetData(s) => Ok(OpResult::SetData(s.stat)),
            MultiResult::Check => Ok(OpResult::Check),
            other => Err(Error::Protocol(format!(
                "unexpected result in a multi reply: {other:?}"
            ))),
        })
        .collect()
}

/// The results of a `multiRead` reply, one per read.
pub(crate) fn read_results(results: Vec<MultiResult>) -> Result<Vec<Result<ReadResult>>> {
    results
        .into_iter()
        .map(|r| match r {
            MultiResult::GetData(d) => Ok(Ok(ReadResult::Data {
                data: d.data.unwrap_or_default(),
                stat: d.stat,
            })),
            MultiResult::GetChildren(c) => {
                Ok(Ok(ReadResult::Children(c.children.unwrap_or_default())))
            }
            MultiResult::Error(e) => Ok(Err(Error::from_code(e.err).unwrap_or(Error::SystemError))),
            other => Err(Error::Protocol(format!(
                "unexpected result in a multiRead reply: {other:?}"
            ))),
        })
        .collect()
}
