//! What goes on the wire or to an operator: notification records, re-registration batches,
//! chroot handling, and the four-letter words' text.

use std::collections::BTreeMap;

use zk_jute::{EventType, KeeperState, OpCode, proto::WatcherEvent};
use zk_watch::{
    SET_WATCHES_MAX_LENGTH, SetWatchesRequest, WatchKind, WatchLists, WatchManager, WatchTable,
    WatchedEvent, WatcherId, client_path, format_by_connection, format_by_path, server_path,
};

#[test]
fn events_go_out_as_sync_connected_watcher_events() {
    let event = WatchedEvent::new(EventType::NodeChildrenChanged, "/app");
    assert_eq!(
        event.to_wire(),
        WatcherEvent {
            r#type: 4,
            state: KeeperState::SyncConnected.code(),
            path: "/app".into()
        }
    );
    assert_eq!(event.to_string(), "NodeChildrenChanged /app");
}

fn paths(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("/{prefix}/{i:08}")).collect()
}

#[test]
fn reconnect_lists_are_split_into_batches_of_128k_characters() {
    // Paths of 12 characters: a batch takes them in list order until it holds at least
    // 131,072 characters, i.e. 10,923 paths.
    let lists = WatchLists {
        data: paths("d1", 4000),
        exist: paths("e1", 4000),
        child: paths("c1", 4000),
        persistent: paths("p1", 1000),
        persistent_recursive: paths("r1", 10),
    };
    assert_eq!(lists.data[0].len(), 12);
    let requests = lists.clone().into_requests(77, None);
    let per_batch = SET_WATCHES_MAX_LENGTH.div_ceil(12);
    assert_eq!(per_batch, 10_923);
    match requests.as_slice() {
        [
            SetWatchesRequest::SetWatches(first),
            SetWatchesRequest::SetWatches2(second),
        ] => {
            // The first batch has no persistent path, so it goes as a plain setWatches.
            assert_eq!(first.data_watches.as_ref().map(Vec::len), Some(4000));
            assert_eq!(first.exist_watches.as_ref().map(Vec::len), Some(4000));
            assert_eq!(
                first.child_watches.as_ref().map(Vec::len),
                Some(per_batch - 8000)
            );
            assert_eq!(
                second.child_watches.as_ref().map(Vec::len),
                Some(12_000 - per_batch)
            );
            assert_eq!(second.persistent_watches.as_ref().map(Vec::len), Some(1000));
            assert_eq!(
                second.persistent_recursive_watches.as_ref().map(Vec::len),
                Some(10)
            );
            assert_eq!((first.relative_zxid, second.relative_zxid), (77, 77));
        }
        other => panic!(
            "expected setWatches then setWatches2, got {} requests",
            other.len()
        ),
    }
    assert_eq!(requests[1].opcode(), OpCode::SetWatches2);
    // Nothing lost, nothing repeated, order kept.
    let mut back = WatchLists::default();
    for request in requests {
        let part = request.into_lists();
        back.data.extend(part.data);
        back.exist.extend(part.exist);
        back.child.extend(part.child);
        back.persistent.extend(part.persistent);
        back.persistent_recursive.extend(part.persistent_recursive);
    }
    assert_eq!(back, lists);
}

#[test]
fn a_batch_without_persistent_paths_is_a_plain_set_watches() {
    let lists = WatchLists {
        data: paths("d", 20_000),
        persistent: vec!["/p".into()],
        ..WatchLists::default()
    };
    let requests = lists.into_requests(5, Some("/chroot"));
    let opcodes: Vec<OpCode> = requests.iter().map(SetWatchesRequest::opcode).collect();
    // 20,000 paths of 18 characters with the chroot: 3 batches, the last with "/p".
    assert_eq!(
        opcodes,
        [OpCode::SetWatches, OpCode::SetWatches, OpCode::SetWatches2]
    );
    assert!(requests.iter().all(|r| r.relative_zxid() == 5));
    match &requests[2] {
        SetWatchesRequest::SetWatches2(last) => {
            assert_eq!(last.persistent_watches, Some(vec!["/chroot/p".to_string()]));
        }
        other => panic!("{other:?}"),
    }
    assert!(WatchLists::default().into_requests(1, None).is_empty());
}

#[test]
fn batch_length_counts_utf16_units_as_java_does() {
    // 'é' is one UTF-16 unit but two UTF-8 bytes: 65,536 units fit twice as many paths
    // as a byte count would allow.
    let path = format!("/{}", "é".repeat(1023)); // 1024 units, 2047 bytes
    let lists = WatchLists {
        data: vec![path; 256],
        ..WatchLists::default()
    };
    let requests = lists.into_requests(0, None);
    let sizes: Vec<usize> = requests
        .into_iter()
        .map(|r| r.into_lists().data.len())
        .collect();
    assert_eq!(sizes, [128, 128]);
}

#[test]
fn chroot_paths_convert_as_the_java_client_does() {
    assert_eq!(server_path("/app", "/"), "/app");
    assert_eq!(server_path("/app", "/x/y"), "/app/x/y");
    assert_eq!(client_path("/app", "/app"), "/");
    assert_eq!(client_path("/app", "/app/x"), "/x");
    assert_eq!(client_path("/app", "/a"), "/a");
}

#[test]
fn four_letter_words_print_like_zookeeper() {
    let mut watches = WatchManager::new();
    for (path, w) in [("/a", 0x100), ("/b", 0x100), ("/a", 0x2ff)] {
        watches
            .add_watch(path, WatcherId(w), WatchKind::Data)
            .expect("room");
    }
    watches
        .add_watch("/c", WatcherId(0x300), WatchKind::Child)
        .expect("room");
    assert_eq!(
        watches.summary(WatchTable::Data).to_string(),
        "2 connections watching 2 paths\nTotal watches:3"
    );
    let session_of = |w: WatcherId| (w.0 as i64) << 8;
    assert_eq!(
        format_by_connection(&watches.by_watcher(WatchTable::Data), session_of),
        "0x10000\n\t/a\n\t/b\n0x2ff00\n\t/a\n"
    );
    assert_eq!(
        format_by_path(&watches.by_path(WatchTable::Data), session_of),
        "/a\n\t0x10000\n\t0x2ff00\n/b\n\t0x10000\n"
    );
    // Negative session ids print as Java's Long.toHexString does.
    let report = BTreeMap::from([(WatcherId(1), vec!["/x".to_string()])]);
    assert_eq!(
        format_by_connection(&report, |_| -2),
        "0xfffffffffffffffe\n\t/x\n"
    );
    assert_eq!(WatcherId(0xabc).to_string(), "0xabc");
}

#[test]
fn a_watcher_told_once_per_trigger_even_with_many_matches_in_a_crowd() {
    // 2000 watchers on one path (the hash-map form), each also recursive on the root: one
    // event each.
    let mut watches = WatchManager::new();
    for w in 0..2000 {
        watches
            .add_watch("/lock", WatcherId(w), WatchKind::Data)
            .expect("room");
        watches
            .add_watch("/", WatcherId(w), WatchKind::PersistentRecursive)
            .expect("room");
    }
    let fired = watches.node_deleted("/lock");
    assert_eq!(fired.len(), 1);
    let mut ids: Vec<u64> = fired[0].watchers.iter().map(|w| w.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..2000).collect::<Vec<_>>());
    // The one-shot watches are used up; the recursive ones stay (in the data table only).
    assert_eq!(watches.watch_count(), 2000);
}
