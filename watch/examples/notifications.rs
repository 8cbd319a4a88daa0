//! A server's watch manager fed by the triggers of a few writes, as a server feeds it
//! those `zk-datatree`'s `DataTree::apply` returns: who is told what, one-shot watches
//! used up, persistent recursive watches staying, a connection closing, the `wchc`/`wchp`
//! reports, and a client that reconnects and sets its watches again.
//!
//! ```sh
//! cargo run -p zk-watch --example notifications
//! ```

use std::collections::BTreeMap;

use zk_jute::{EventType, Record, to_bytes};
use zk_watch::{
    NodeZxids, WatchKind, WatchLists, WatchManager, WatchTable, WatcherId, format_by_connection,
    format_by_path,
};

fn main() -> Result<(), zk_watch::WatchError> {
    // The server numbers its connections; each has a session.
    let reader = WatcherId(1); // getData("/app/config", watch = true)
    let lister = WatcherId(2); // getChildren("/app/jobs", watch = true)
    let auditor = WatcherId(3); // addWatch("/app", PERSISTENT_RECURSIVE)
    let locker = WatcherId(4); // exists("/app/lock", watch = true) while it is absent
    let names = BTreeMap::from([
        (reader, "reader"),
        (lister, "lister"),
        (auditor, "auditor"),
        (locker, "locker"),
    ]);
    let session_of = |w: WatcherId| 0x1000_0000_0000_0000_i64 + w.0 as i64;

    let mut watches = WatchManager::new();
    watches.add_watch("/app/config", reader, WatchKind::Data)?;
    watches.add_watch("/app/jobs", lister, WatchKind::Child)?;
    watches.add_watch("/app", auditor, WatchKind::PersistentRecursive)?;
    watches.add_watch("/app/lock", locker, WatchKind::Data)?;
    println!(
        "{} watches on {} paths\n",
        watches.watch_count(),
        watches.path_count()
    );

    // Each write with the triggers `DataTree::apply` returns for it, in its order.
    let writes: [(&str, &[(&str, EventType)]); 5] = [
        (
            "setData /app/config",
            &[("/app/config", EventType::NodeDataChanged)],
        ),
        (
            "create /app/jobs/job-1",
            &[
                ("/app/jobs/job-1", EventType::NodeCreated),
                ("/app/jobs", EventType::NodeChildrenChanged),
            ],
        ),
        (
            "create -e /app/lock",
            &[
                ("/app/lock", EventType::NodeCreated),
                ("/app", EventType::NodeChildrenChanged),
            ],
        ),
        (
            "setData /app/config",
            &[("/app/config", EventType::NodeDataChanged)],
        ),
        (
            "delete /app/jobs/job-1",
            &[
                ("/app/jobs/job-1", EventType::NodeDeleted),
                ("/app/jobs", EventType::NodeChildrenChanged),
            ],
        ),
    ];
    let mut told = BTreeMap::<&str, usize>::new();
    for (write, triggers) in writes {
        println!("{write}");
        for (path, event) in triggers {
            let fired = watches.trigger(path, *event);
            // What goes on the wire: a `WatcherEvent` after a reply header with xid -1.
            let wire = fired.event.to_wire();
            for watcher in &fired.watchers {
                println!(
                    "  -> {:<8} {:?} {} ({} bytes)",
                    names[watcher],
                    fired.event.event_type,
                    fired.event.path,
                    wire.encoded_len()
                );
                *told.entry(names[watcher]).or_default() += 1;
            }
        }
    }
    // One-shot watches fired once each; the recursive watch heard every change under
    // `/app` but never `NodeChildrenChanged`.
    assert_eq!(
        told,
        BTreeMap::from([("auditor", 5), ("lister", 1), ("locker", 1), ("reader", 1)])
    );
    assert_eq!(watches.watch_count(), 1); // the auditor's, in the data table

    // `wchc` and `wchp` (the data table, as ZooKeeper's report it; as there, a connection
    // that ever watched stays listed until it closes, or until removeWatches takes its
    // last watch there), then the auditor's connection closes.
    print!(
        "\nwchc:\n{}",
        format_by_connection(&watches.by_watcher(WatchTable::Data), session_of)
    );
    print!(
        "wchp:\n{}",
        format_by_path(&watches.by_path(WatchTable::Data), session_of)
    );
    println!("{}", watches.summary(WatchTable::Data));
    let removed = watches.remove_watcher(auditor);
    println!("auditor's connection closed: {removed} watches gone\n");
    assert_eq!(watches.watch_count(), 0);

    // The reader reconnects (to this server or another) and sets its watch again with the
    // last zxid it saw, 0x10. `/app/config` changed at 0x12 since: the missed event comes
    // at once instead of a watch. `/app/jobs` did not change: the child watch is set.
    let lists = WatchLists {
        data: vec!["/app/config".into()],
        child: vec!["/app/jobs".into()],
        ..WatchLists::default()
    };
    let tree = |path: &str| match path {
        "/app/config" => Some(NodeZxids {
            mzxid: 0x12,
            pzxid: 0x2,
        }),
        "/app/jobs" => Some(NodeZxids {
            mzxid: 0x3,
            pzxid: 0xf,
        }),
        _ => None,
    };
    let missed = watches.set_watches(reader, 0x10, &lists, tree)?;
    for event in &missed {
        let bytes = to_bytes(&event.to_wire());
        println!(
            "setWatches: reader missed {:?} {} ({} bytes)",
            event.event_type,
            event.path,
            bytes.len()
        );
    }
    assert_eq!(missed.len(), 1);
    assert_eq!(watches.watch_count(), 1);
    for held in watches.watches_of(reader) {
        println!(
            "setWatches: reader now watches {} (child: {:?})",
            held.path, held.child
        );
    }
    Ok(())
}
