//! An async ZooKeeper client on tokio.
