//! The lists of watched paths a client re-registers after reconnecting, and the
//! `setWatches`/`setWatches2` requests that carry them.

use zk_jute::OpCode;
use zk_jute::proto::{SetWatches, SetWatches2};

/// How many characters of paths one re-registration request carries at most (ZooKeeper's
/// `ClientCnxn.SET_WATCHES_MAX_LENGTH`, ZOOKEEPER-706): well under the server's default
/// `jute.maxbuffer`. A batch may pass it by its last path.
pub const SET_WATCHES_MAX_LENGTH: usize = 128 * 1024;

/// The paths of a client's watches, one list per kind, as `setWatches2` carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchLists {
    /// Paths with `getData` watches.
    pub data: Vec<String>,
    /// Paths with `exists` watches on znodes that did not exist.
    pub exist: Vec<String>,
    /// Paths with `getChildren` watches.
    pub child: Vec<String>,
    /// Paths with persistent watches.
    pub persistent: Vec<String>,
    /// Paths with persistent recursive watches.
    pub persistent_recursive: Vec<String>,
}

impl WatchLists {
    /// Whether every list is empty.
    pub fn is_empty(&self) -> bool {
        self.lists().iter().all(|list| list.is_empty())
    }

    fn lists(&self) -> [&Vec<String>; 5] {
        [
            &self.data,
            &self.exist,
            &self.child,
            &self.persistent,
            &self.persistent_recursive,
        ]
    }

    /// The requests a client sends after reconnecting, as `ClientCnxn.primeConnection`
    /// builds them: paths (with `chroot` prepended, if any) taken in list order into batches
    /// of about [`SET_WATCHES_MAX_LENGTH`] characters (UTF-16 units, as Java counts), each a
    /// `setWatches` when it has no persistent paths (so old servers understand it) and a
    /// `setWatches2` otherwise. None when every list is empty.
    pub fn into_requests(self, relative_zxid: i64, chroot: Option<&str>) -> Vec<SetWatchesRequest> {
        let to_server = |path: String| match chroot {
            Some(root) => crate::client::server_path(root, &path),
            None => path,
        };
        let mut queues = [
            self.data,
            self.exist,
            self.child,
            self.persistent,
            self.persistent_recursive,
        ]
        .map(|list| list.into_iter().map(to_server).peekable());
        let mut requests = Vec::new();
        while queues.iter_mut().any(|q| q.peek().is_some()) {
            let mut batch: [Vec<String>; 5] = Default::default();
            let mut length = 0;
            'fill: while length < SET_WATCHES_MAX_LENGTH {
                for (queue, out) in queues.iter_mut().zip(batch.iter_mut()) {
                    if let Some(path) = queue.next() {
                        length += path.encode_utf16().count();
                        out.push(path);
                        continue 'fill;
                    }
                }
                break;
            }
            let [data, exist, child, persistent, recursive] = batch;
            requests.push(if persistent.is_empty() && recursive.is_empty() {
                SetWatchesRequest::SetWatches(SetWatches {
                    relative_zxid,
                    data_watches: Some(data),
                    exist_watches: Some(exist),
                    child_watches: Some(child),
                })
            } else {
                SetWatchesRequest::SetWatches2(SetWatches2 {
                    relative_zxid,
                    data_watches: Some(data),
                    exist_watches: Some(exist),
                    child_watches: Some(child),
                    persistent_watches: Some(persistent),
                    persistent_recursive_watches: Some(recursive),
                })
            });
        }
        requests
    }
}

impl From<SetWatches> for WatchLists {
    /// The lists of a `setWatches` request (null lists read as empty).
    fn from(request: SetWatches) -> Self {
        WatchLists {
            data: request.data_watches.unwrap_or_default(),
            exist: request.exist_watches.unwrap_or_default(),
            child: request.child_watches.unwrap_or_default(),
            persistent: Vec::new(),
            persistent_recursive: Vec::new(),
        }
    }
}

impl From<SetWatches2> for WatchLists {
    /// The lists of a `setWatches2` request (null lists read as empty).
    fn from(request: SetWatches2) -> Self {
        WatchLists {
            data: request.data_watches.unwrap_or_default(),
            exist: request.exist_watches.unwrap_or_default(),
            child: request.child_watches.unwrap_or_default(),
            persistent: request.persistent_watches.unwrap_or_default(),
            persistent_recursive: request.persistent_recursive_watches.unwrap_or_default(),
        }
    }
}

/// One re-registration request, sent with xid [`zk_jute::xid::SET_WATCHES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetWatchesRequest {
    /// Opcode `setWatches` (101): no persistent watches in this batch.
    SetWatches(SetWatches),
    /// Opcode `setWatches2` (105).
    SetWatches2(SetWatches2),
}

impl SetWatchesRequest {
    /// The request's opcode.
    pub fn opcode(&self) -> OpCode {
        match self {
            SetWatchesRequest::SetWatches(_) => OpCode::SetWatches,
            SetWatchesRequest::SetWatches2(_) => OpCode::SetWatches2,
        }
    }

    /// The last zxid the client saw.
    pub fn relative_zxid(&self) -> i64 {
        match self {
            SetWatchesRequest::SetWatches(r) => r.relative_zxid,
            SetWatchesRequest::SetWatches2(r) => r.relative_zxid,
        }
    }

    /// The paths it carries.
    pub fn into_lists(self) -> WatchLists {
        match self {
            SetWatchesRequest::SetWatches(r) => r.into(),
            SetWatchesRequest::SetWatches2(r) => r.into(),
        }
    }
}
