//! Every operation, watches, multi, ACLs, chroot and ephemerals, against our server or
//! (with `ZK_CLIENT_TEST_SERVER=reference`) Apache ZooKeeper 3.8.0: the same expectations.

mod harness;

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use harness::{Fixture, options, within};
use zk_client::{
    AddWatchMode, Client, ClientOptions, CreateMode, CreateOptions, Error, EventType, KeeperState,
    Multi, MultiRead, OpResult, Perms, ReadResult, SaslCredentials, SessionState, WatchedEvent,
    WatcherType, acl,
};

fn persistent() -> CreateOptions {
    CreateOptions::persistent()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn crud_stats_and_errors() {
    let fx = Fixture::new("crud").await;
    let c = fx.client().await;
    let app = fx.path("app");

    let (path, stat) = c.create(&app, b"v1", &persistent()).await.unwrap();
    assert_eq!(path, app);
    assert_eq!(
        (stat.version, stat.data_length, stat.num_children),
        (0, 2, 0)
    );
    let (data, read) = c.get_data(&app).await.unwrap();
    assert_eq!((&data[..], read), (&b"v1"[..], stat.clone()));
    assert_eq!(c.exists(&app).await.unwrap(), Some(stat.clone()));
    assert_eq!(c.exists(&fx.path("none")).await.unwrap(), None);
    assert_eq!(
        c.create(&app, b"", &persistent()).await.unwrap_err(),
        Error::NodeExists
    );
    assert_eq!(
        c.create(&fx.path("missing/child"), b"", &persistent())
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        c.get_data(&fx.path("none")).await.unwrap_err(),
        Error::NoNode
    );

    let stat2 = c.set_data(&app, b"v2", Some(0)).await.unwrap();
    assert_eq!((stat2.version, stat2.mzxid > stat.mzxid), (1, true));
    assert_eq!(
        c.set_data(&app, b"v3", Some(0)).await.unwrap_err(),
        Error::BadVersion
    );
    assert_eq!(c.set_data(&app, b"", None).await.unwrap().version, 2);
    assert_eq!(c.get_data(&app).await.unwrap().0.len(), 0);

    let seq = CreateOptions::new(CreateMode::PersistentSequential);
    let job = format!("{app}/job-");
    let (first, _) = c.create(&job, b"", &seq).await.unwrap();
    let (second, _) = c.create(&job, b"", &seq).await.unwrap();
    assert_eq!(first, format!("{app}/job-0000000000"));
    assert_eq!(second, format!("{app}/job-0000000001"));
    // A sequential prefix may end in `/`.
    let (slash, _) = c.create(&format!("{app}/"), b"", &seq).await.unwrap();
    assert_eq!(slash, format!("{app}/0000000002"));

    let children = sorted(c.get_children(&app).await.unwrap());
    assert_eq!(children, ["0000000002", "job-0000000000", "job-0000000001"]);
    let (children, parent) = c.get_children_with_stat(&app).await.unwrap();
    assert_eq!(children.len(), 3);
    assert_eq!((parent.num_children, parent.cversion), (3, 3));
    c.create(&format!("{first}/deep"), b"", &persistent())
        .await
        .unwrap();
    assert_eq!(c.get_all_children_number(&app).await.unwrap(), 4);
    assert_eq!(
        c.get_children(&fx.path("none")).await.unwrap_err(),
        Error::NoNode
    );

    assert_eq!(c.delete(&app, None).await.unwrap_err(), Error::NotEmpty);
    assert_eq!(
        c.delete(&second, Some(7)).await.unwrap_err(),
        Error::BadVersion
    );
    c.delete(&second, Some(0)).await.unwrap();
    assert_eq!(c.delete(&second, None).await.unwrap_err(), Error::NoNode);
    assert_eq!(c.exists(&second).await.unwrap(), None);
    c.sync(&app).await.unwrap();
    // The root cannot be deleted.
    assert_eq!(c.delete("/", None).await.unwrap_err(), Error::BadArguments);
    c.close().await.unwrap();
}

#[tokio::test]
async fn null_data_is_not_empty_data() {
    let fx = Fixture::new("null-data").await;
    let c = fx.client().await;
    let (null, empty) = (fx.path("null"), fx.path("empty"));
    c.create(&null, b"ignored", &persistent().with_null_data())
        .await
        .unwrap();
    c.create(&empty, b"", &persistent()).await.unwrap();
    assert_eq!(c.get_data_nullable(&null).await.unwrap().0, None);
    assert_eq!(
        c.get_data_nullable(&empty).await.unwrap().0.as_deref(),
        Some(&b""[..])
    );
    let (data, stat, _watch) = c.get_data_nullable_w(&null).await.unwrap();
    assert_eq!((data, stat.data_length), (None, 0));
    // Without asking, both read as empty.
    assert!(c.get_data(&null).await.unwrap().0.is_empty());
}

#[tokio::test]
async fn bad_paths_fail_before_sending() {
    let fx = Fixture::new("badpaths").await;
    let c = fx.client().await;
    for path in ["", "a", "/a/", "/a//b", "/a/./b", "/a/../b", "/a\u{0}b"] {
        let err = c.get_data(path).await.unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{path:?}: {err}");
        let err = c.create(path, b"", &persistent()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{path:?}: {err}");
    }
    let err = c
        .create(
            &fx.path("x"),
            b"",
            &CreateOptions::persistent().with_acl(vec![]),
        )
        .await
        .unwrap_err();
    assert_eq!(err, Error::InvalidAcl);
    let err = c
        .create(
            &fx.path("x"),
            b"",
            &CreateOptions::new(CreateMode::PersistentWithTtl),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = c
        .create(
            &fx.path("x"),
            b"",
            &CreateOptions::persistent().with_ttl(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    // The session is fine after all that.
    assert!(c.exists(&fx.base).await.unwrap().is_some());
    c.close().await.unwrap();
}

#[tokio::test]
async fn create_modes() {
    let fx = Fixture::new("modes").await;
    let c = fx.client().await;

    let (_, eph) = c
        .create(&fx.path("eph"), b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    assert_eq!(eph.ephemeral_owner, c.session_id());
    assert_eq!(
        c.create(&fx.path("eph/child"), b"", &persistent())
            .await
            .unwrap_err(),
        Error::NoChildrenForEphemerals
    );
    let (path, _) = c
        .create(
            &fx.path("eseq-"),
            b"",
            &CreateOptions::new(CreateMode::EphemeralSequential),
        )
        .await
        .unwrap();
    assert_eq!(path, fx.path("eseq-0000000001"));

    let (_, container) = c
        .create(
            &fx.path("box"),
            b"",
            &CreateOptions::new(CreateMode::Container),
        )
        .await
        .unwrap();
    // The server marks containers and TTL znodes in ephemeralOwner, but clients see 0.
    assert_eq!(container.ephemeral_owner, 0);

    let ttl = CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_secs(60));
    let (_, stat) = c.create(&fx.path("ttl"), b"t", &ttl).await.unwrap();
    assert_eq!(stat.ephemeral_owner, 0);
    let ttl_seq = CreateOptions::new(CreateMode::PersistentSequentialWithTtl)
        .with_ttl(Duration::from_secs(60));
    let (path, _) = c.create(&fx.path("ttl-"), b"", &ttl_seq).await.unwrap();
    assert_eq!(path, fx.path("ttl-0000000004"));
    c.close().await.unwrap();
}

#[tokio::test]
async fn one_shot_watches() {
    let fx = Fixture::new("oneshot").await;
    let (a, b) = (fx.client().await, fx.client().await);
    let w = fx.path("w");
    a.create(&w, b"", &persistent()).await.unwrap();

    let (_, _, data_watch) = a.get_data_w(&w).await.unwrap();
    let (_, child_watch) = a.get_children_w(&w).await.unwrap();
    let (none, exists_watch) = a.exists_w(&fx.path("w/later")).await.unwrap();
    assert_eq!(none, None);
    let (some, deleted_watch) = a.exists_w(&w).await.unwrap();
    assert!(some.is_some());

    b.set_data(&w, b"x", None).await.unwrap();
    // A reply that follows an event is delivered after it: the watch has fired by the time
    // a later request of the same session is answered.
    a.sync(&w).await.unwrap();
    a.get_data(&w).await.unwrap();
    let fired = data_watch
        .now_or_never()
        .expect("fired before the later reply");
    assert_eq!(fired, WatchedEvent::node(EventType::NodeDataChanged, &w));
    // The exists watch on an existing znode is a data watch too.
    assert_eq!(
        within("exists watch", deleted_watch).await,
        WatchedEvent::node(EventType::NodeDataChanged, &w)
    );

    b.create(&fx.path("w/later"), b"", &persistent())
        .await
        .unwrap();
    assert_eq!(
        within("exists watch", exists_watch).await,
        WatchedEvent::node(EventType::NodeCreated, fx.path("w/later"))
    );
    assert_eq!(
        within("child watch", child_watch).await,
        WatchedEvent::node(EventType::NodeChildrenChanged, &w)
    );

    // One-shot: a second change is not reported, but a new watch is.
    let (_, _, again) = a.get_data_w(&fx.path("w/later")).await.unwrap();
    let (_, children_again) = a.get_children_w(&fx.path("w/later")).await.unwrap();
    b.delete(&fx.path("w/later"), None).await.unwrap();
    assert_eq!(
        within("data watch on delete", again).await,
        WatchedEvent::node(EventType::NodeDeleted, fx.path("w/later"))
    );
    assert_eq!(
        within("child watch on delete", children_again).await,
        WatchedEvent::node(EventType::NodeDeleted, fx.path("w/later"))
    );

    // Several watches on one path each fire.
    let (_, _, one) = a.get_data_w(&w).await.unwrap();
    let (_, _, two) = a.get_data_w(&w).await.unwrap();
    b.set_data(&w, b"y", None).await.unwrap();
    assert_eq!(
        within("first", one).await.event_type,
        EventType::NodeDataChanged
    );
    assert_eq!(
        within("second", two).await.event_type,
        EventType::NodeDataChanged
    );

    // A failed get_data leaves no watch.
    assert_eq!(
        a.get_data_w(&fx.path("nothing")).await.unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        a.check_watches(&fx.path("nothing"), WatcherType::Data)
            .await
            .unwrap_err(),
        Error::NoWatcher
    );
    // A watch dropped before its answer is not kept (nor set again on reconnect).
    let kept = fx.path("kept");
    a.create(&kept, b"", &persistent()).await.unwrap();
    drop(a.get_data_w(&kept));
    a.sync(&kept).await.unwrap();
    assert_eq!(
        a.check_watches(&kept, WatcherType::Data).await.unwrap_err(),
        Error::NoWatcher
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn persistent_and_recursive_watches() {
    let fx = Fixture::new("persistent").await;
    let (a, b) = (fx.client().await, fx.client().await);
    let p = fx.path("p");
    let r = fx.path("r");
    let mut persistent_watch = a.add_watch(&p, AddWatchMode::Persistent).await.unwrap();
    let mut recursive = b
        .add_watch(&r, AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    a.create(&p, b"", &persistent()).await.unwrap();
    a.set_data(&p, b"1", None).await.unwrap();
    a.create(&format!("{p}/c"), b"", &persistent())
        .await
        .unwrap();
    a.set_data(&format!("{p}/c"), b"1", None).await.unwrap();
    a.delete(&format!("{p}/c"), None).await.unwrap();
    a.delete(&p, None).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let event = within("persistent", persistent_watch.next()).await.unwrap();
        seen.push((event.event_type, event.path));
    }
    assert_eq!(
        seen,
        [
            (EventType::NodeCreated, p.clone()),
            (EventType::NodeDataChanged, p.clone()),
            (EventType::NodeChildrenChanged, p.clone()),
            (EventType::NodeChildrenChanged, p.clone()),
            (EventType::NodeDeleted, p.clone()),
        ]
    );

    a.create(&r, b"", &persistent()).await.unwrap();
    a.create(&format!("{r}/x"), b"", &persistent())
        .await
        .unwrap();
    a.create(&format!("{r}/x/y"), b"", &persistent())
        .await
        .unwrap();
    a.set_data(&format!("{r}/x/y"), b"1", None).await.unwrap();
    a.delete(&format!("{r}/x/y"), None).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let event = within("recursive", recursive.next()).await.unwrap();
        seen.push((event.event_type, event.path));
    }
    // Never NodeChildrenChanged on a recursive watch.
    assert_eq!(
        seen,
        [
            (EventType::NodeCreated, r.clone()),
            (EventType::NodeCreated, format!("{r}/x")),
            (EventType::NodeCreated, format!("{r}/x/y")),
            (EventType::NodeDataChanged, format!("{r}/x/y")),
            (EventType::NodeDeleted, format!("{r}/x/y")),
        ]
    );

    // Removing: the stream ends with PersistentWatchRemoved.
    b.check_watches(&r, WatcherType::Any).await.unwrap();
    b.remove_watches(&r, WatcherType::Any, false).await.unwrap();
    let last = within("removed", recursive.next()).await.unwrap();
    assert_eq!(
        last,
        WatchedEvent::node(EventType::PersistentWatchRemoved, &r)
    );
    assert_eq!(within("end", recursive.next()).await, None);
    assert_eq!(
        b.remove_watches(&r, WatcherType::Any, false)
            .await
            .unwrap_err(),
        Error::NoWatcher
    );
    assert_eq!(
        b.check_watches(&r, WatcherType::Any).await.unwrap_err(),
        Error::NoWatcher
    );
    a.set_data(&r, b"after", None).await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn removing_one_shot_watches() {
    let fx = Fixture::new("removal").await;
    let c = fx.client().await;
    let n = fx.path("n");
    c.create(&n, b"", &persistent()).await.unwrap();
    let (_, _, data) = c.get_data_w(&n).await.unwrap();
    let (_, children) = c.get_children_w(&n).await.unwrap();

    c.check_watches(&n, WatcherType::Data).await.unwrap();
    c.check_watches(&n, WatcherType::Children).await.unwrap();
    c.remove_watches(&n, WatcherType::Children, false)
        .await
        .unwrap();
    assert_eq!(
        within("child removed", children).await,
        WatchedEvent::node(EventType::ChildWatchRemoved, &n)
    );
    assert_eq!(
        c.check_watches(&n, WatcherType::Children)
            .await
            .unwrap_err(),
        Error::NoWatcher
    );
    c.remove_watches(&n, WatcherType::Any, false).await.unwrap();
    assert_eq!(
        within("data removed", data).await,
        WatchedEvent::node(EventType::DataWatchRemoved, &n)
    );
    // The server no longer holds it either: a change reaches no one.
    c.set_data(&n, b"x", None).await.unwrap();
    assert_eq!(
        c.remove_watches(&n, WatcherType::Data, false)
            .await
            .unwrap_err(),
        Error::NoWatcher
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn the_sessions_watch_events_come_once_each_in_the_servers_order() {
    let fx = Fixture::new("ordered").await;
    let c = fx.client().await;
    let (a, b, gone) = (fx.path("a"), fx.path("b"), fx.path("gone"));
    c.create(&a, b"", &persistent()).await.unwrap();
    c.create(&b, b"", &persistent()).await.unwrap();
    let mut events = c.watch_events();
    let (_, _, data_a) = c.get_data_w(&a).await.unwrap();
    let (_, children_a) = c.get_children_w(&a).await.unwrap();
    let mut persistent_b = c.add_watch(&b, AddWatchMode::Persistent).await.unwrap();
    let (_, _, data_b) = c.get_data_w(&b).await.unwrap();
    let (_, dropped) = c.exists_w(&gone).await.unwrap();
    drop(dropped);

    // Each event is in the stream by the time the reply that followed it resolves.
    let mut next_now = || events.next().now_or_never().flatten();
    // Heard by two watches: once in the stream.
    c.set_data(&b, b"1", None).await.unwrap();
    let changed_b = WatchedEvent::node(EventType::NodeDataChanged, &b);
    assert_eq!(next_now(), Some(changed_b.clone()));
    c.create(&fx.path("a/x"), b"", &persistent()).await.unwrap();
    assert_eq!(
        next_now(),
        Some(WatchedEvent::node(EventType::NodeChildrenChanged, &a))
    );
    c.set_data(&a, b"1", None).await.unwrap();
    assert_eq!(
        next_now(),
        Some(WatchedEvent::node(EventType::NodeDataChanged, &a))
    );
    // Only a dropped watch hears this one.
    c.create(&gone, b"", &persistent()).await.unwrap();
    c.remove_watches(&b, WatcherType::Any, false).await.unwrap();
    assert_eq!(
        next_now(),
        Some(WatchedEvent::node(EventType::PersistentWatchRemoved, &b))
    );
    c.set_data(&b, b"2", None).await.unwrap();
    c.close().await.unwrap();
    // Nothing else came, and the stream ended with the session.
    assert_eq!(within("the stream's end", events.next()).await, None);

    // The watches heard theirs as well.
    assert_eq!(within("data b", data_b).await, changed_b);
    assert_eq!(
        within("persistent b", persistent_b.next()).await,
        Some(changed_b)
    );
    assert_eq!(
        within("data a", data_a).await,
        WatchedEvent::node(EventType::NodeDataChanged, &a)
    );
    assert_eq!(
        within("children a", children_a).await,
        WatchedEvent::node(EventType::NodeChildrenChanged, &a)
    );
    // A stream asked for once the session is over ends at once.
    assert_eq!(within("a late stream", c.watch_events().next()).await, None);
}

#[tokio::test]
async fn multi_and_multi_read() {
    let fx = Fixture::new("multi").await;
    let c = fx.client().await;
    let (a, b) = (fx.path("a"), fx.path("b"));
    let ops = Multi::new()
        .create(&a, b"1", &persistent())
        .create(&b, b"", &persistent())
        .set_data(&a, b"2", Some(0))
        .check(&a, 1)
        .delete(&b, None);
    let results = c.multi(&ops).await.unwrap();
    assert_eq!(results.len(), 5);
    match &results[0] {
        OpResult::Create { path, stat } => {
            assert_eq!(path, &a);
            assert_eq!(stat.version, 0);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&results[2], OpResult::SetData(s) if s.version == 1));
    assert_eq!(results[3], OpResult::Check);
    assert_eq!(results[4], OpResult::Delete);

    // All or nothing: the failing op is named, nothing is applied.
    let failing = Multi::new()
        .create(&b, b"", &persistent())
        .check(&a, 0)
        .delete(&a, None);
    assert_eq!(
        c.multi(&failing).await.unwrap_err(),
        Error::MultiFailed {
            index: 1,
            error: Box::new(Error::BadVersion)
        }
    );
    assert_eq!(c.exists(&b).await.unwrap(), None);
    assert_eq!(c.multi(&Multi::new()).await.unwrap(), []);

    let reads = MultiRead::new()
        .get_data(&a)
        .get_children(&fx.base)
        .get_data(&b);
    let results = c.multi_read(&reads).await.unwrap();
    assert!(
        matches!(&results[0], Ok(ReadResult::Data { data, stat }) if &data[..] == b"2" && stat.version == 1)
    );
    assert_eq!(results[1], Ok(ReadResult::Children(vec!["a".to_string()])));
    assert_eq!(results[2], Err(Error::NoNode));
    c.close().await.unwrap();
}

#[tokio::test]
async fn acls_and_digest_auth() {
    let fx = Fixture::new("acl").await;
    let owner = fx.client().await;
    let stranger = fx.client().await;
    let secret = fx.path("secret");

    owner.add_auth("digest", b"alice:pw").await.unwrap();
    let who = owner.who_am_i().await.unwrap();
    assert!(
        who.iter()
            .any(|i| i.auth_scheme == "digest" && i.user == "alice"),
        "{who:?}"
    );
    let alice_only = vec![acl::digest(Perms::ALL, "alice", "pw")];
    owner
        .create(&secret, b"s", &persistent().with_acl(alice_only.clone()))
        .await
        .unwrap();
    assert_eq!(&owner.get_data(&secret).await.unwrap().0[..], b"s");
    assert_eq!(stranger.get_data(&secret).await.unwrap_err(), Error::NoAuth);
    assert_eq!(
        stranger.set_data(&secret, b"x", None).await.unwrap_err(),
        Error::NoAuth
    );
    let (acl, stat) = owner.get_acl(&secret).await.unwrap();
    assert_eq!((acl, stat.aversion), (alice_only.clone(), 0));

    // creator_all: the creator's identities.
    let mine = fx.path("mine");
    owner
        .create(&mine, b"", &persistent().with_acl(acl::creator_all()))
        .await
        .unwrap();
    assert_eq!(owner.get_acl(&mine).await.unwrap().0, alice_only);
    assert_eq!(
        stranger
            .create(
                &fx.path("x"),
                b"",
                &persistent().with_acl(acl::creator_all())
            )
            .await
            .unwrap_err(),
        Error::InvalidAcl
    );

    let open = fx.path("open");
    owner.create(&open, b"", &persistent()).await.unwrap();
    assert_eq!(
        owner
            .set_acl(&open, &acl::read_unsafe(), Some(3))
            .await
            .unwrap_err(),
        Error::BadVersion
    );
    let stat = owner
        .set_acl(&open, &acl::read_unsafe(), Some(0))
        .await
        .unwrap();
    assert_eq!(stat.aversion, 1);
    assert_eq!(owner.get_acl(&open).await.unwrap().0, acl::read_unsafe());
    assert_eq!(
        owner.set_data(&open, b"x", None).await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        owner.set_acl(&open, &[], None).await.unwrap_err(),
        Error::InvalidAcl
    );

    // The stranger authenticates and gets in.
    stranger.add_auth("digest", b"alice:pw").await.unwrap();
    assert_eq!(&stranger.get_data(&secret).await.unwrap().0[..], b"s");
    owner.close().await.unwrap();
    stranger.close().await.unwrap();
}

#[tokio::test]
async fn auth_given_in_the_options() {
    let fx = Fixture::new("authopts").await;
    let options = ClientOptions {
        auth: vec![("digest".into(), b"bob:pw".to_vec())],
        ..options()
    };
    let c = fx.client_with(options).await;
    let who = c.who_am_i().await.unwrap();
    assert!(
        who.iter()
            .any(|i| i.auth_scheme == "digest" && i.user == "bob"),
        "{who:?}"
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn chroot_paths_are_relative() {
    let fx = Fixture::new("chroot").await;
    let outside = fx.client().await;
    let root = fx.path("app");
    outside.create(&root, b"r", &persistent()).await.unwrap();
    let c = within(
        "connect with chroot",
        Client::connect(&fx.connect_string(&root), options()),
    )
    .await
    .unwrap();
    assert_eq!(c.chroot(), Some(root.as_str()));

    assert_eq!(&c.get_data("/").await.unwrap().0[..], b"r");
    let (path, _) = c.create("/x", b"", &persistent()).await.unwrap();
    assert_eq!(path, "/x");
    let (path, _) = c
        .create(
            "/s-",
            b"",
            &CreateOptions::new(CreateMode::EphemeralSequential),
        )
        .await
        .unwrap();
    assert_eq!(path, "/s-0000000001");
    assert!(
        outside
            .exists(&format!("{root}/x"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        sorted(c.get_children("/").await.unwrap()),
        ["s-0000000001", "x"]
    );

    let (_, _, watch) = c.get_data_w("/x").await.unwrap();
    let mut recursive = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    outside
        .set_data(&format!("{root}/x"), b"1", None)
        .await
        .unwrap();
    assert_eq!(
        within("chrooted watch", watch).await,
        WatchedEvent::node(EventType::NodeDataChanged, "/x")
    );
    assert_eq!(
        within("chrooted recursive", recursive.next())
            .await
            .unwrap(),
        WatchedEvent::node(EventType::NodeDataChanged, "/x")
    );

    let results = c
        .multi(&Multi::new().create("/m", b"", &persistent()))
        .await
        .unwrap();
    assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/m"));
    assert_eq!(c.get_ephemerals("/").await.unwrap(), ["/s-0000000001"]);
    assert_eq!(c.get_all_children_number("/").await.unwrap(), 3);
    c.close().await.unwrap();
    outside.close().await.unwrap();
}

#[tokio::test]
async fn ephemerals_go_when_the_session_closes() {
    let fx = Fixture::new("ephemerals").await;
    let watcher = fx.client().await;
    let c = fx.client().await;
    let mut states = c.state_events();
    c.create(&fx.path("e1"), b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    c.create(&fx.path("e2"), b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    c.create(&fx.path("p"), b"", &persistent()).await.unwrap();
    assert_eq!(
        sorted(c.get_ephemerals(&fx.base).await.unwrap()),
        [fx.path("e1"), fx.path("e2")]
    );
    assert_eq!(
        c.get_ephemerals(&fx.path("e2")).await.unwrap(),
        [fx.path("e2")]
    );
    let (_, gone) = watcher.exists_w(&fx.path("e1")).await.unwrap();
    let (_, _, own_watch) = c.get_data_w(&fx.path("p")).await.unwrap();
    let mut own_stream = c
        .add_watch(&fx.path("p"), AddWatchMode::Persistent)
        .await
        .unwrap();

    c.close().await.unwrap();
    assert_eq!(
        within("ephemeral deleted", gone).await,
        WatchedEvent::node(EventType::NodeDeleted, fx.path("e1"))
    );
    assert_eq!(watcher.exists(&fx.path("e2")).await.unwrap(), None);
    // The closed session's watchers hear of it; later calls fail.
    assert_eq!(
        within("closed", own_watch).await,
        WatchedEvent::session(KeeperState::Closed)
    );
    assert_eq!(
        within("closed stream", own_stream.next()).await,
        Some(WatchedEvent::session(KeeperState::Closed))
    );
    assert_eq!(within("stream end", own_stream.next()).await, None);
    assert_eq!(c.state(), SessionState::Closed);
    assert_eq!(
        within("state", states.next()).await,
        Some(SessionState::Closed)
    );
    assert_eq!(c.get_data(&fx.base).await.unwrap_err(), Error::Closed);
    watcher.close().await.unwrap();
}

#[tokio::test]
async fn dropping_every_handle_closes_the_session() {
    let fx = Fixture::new("drop").await;
    let watcher = fx.client().await;
    let c = fx.client().await;
    c.create(&fx.path("e"), b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    let (_, gone) = watcher.exists_w(&fx.path("e")).await.unwrap();
    drop(c);
    assert_eq!(
        within("ephemeral deleted", gone).await.event_type,
        EventType::NodeDeleted
    );
    watcher.close().await.unwrap();
}

#[tokio::test]
async fn requests_are_pipelined_in_order() {
    let fx = Fixture::new("pipeline").await;
    let c = fx.client().await;
    let n = fx.path("n");
    c.create(&n, b"", &persistent()).await.unwrap();
    // Sent when called, answered in order: each expects the version the previous made.
    let writes: Vec<_> = (0..200)
        .map(|i| c.set_data(&n, format!("{i}").as_bytes(), Some(i)))
        .collect();
    let read = c.get_data(&n);
    for (i, write) in writes.into_iter().enumerate() {
        assert_eq!(write.await.unwrap().version, i as i32 + 1);
    }
    let (data, stat) = read.await.unwrap();
    assert_eq!((&data[..], stat.version), (&b"199"[..], 200));
    c.close().await.unwrap();
}

#[tokio::test]
async fn session_facts() {
    let fx = Fixture::new("session").await;
    let c = fx.client().await;
    assert_ne!(c.session_id(), 0);
    assert_eq!(c.session_password().len(), 16);
    assert_eq!(c.session_timeout(), Duration::from_secs(4));
    assert_eq!(c.state(), SessionState::Connected);
    c.create(&fx.path("z"), b"", &persistent()).await.unwrap();
    assert!(c.last_zxid() > 0);
    // A connect string naming a dead host first still connects (hosts are tried in turn).
    let dead = "127.0.0.1:1";
    let both = format!("{dead},{}", fx.connect_string(""));
    let other = within("connect", Client::connect(&both, options()))
        .await
        .unwrap();
    assert!(other.exists(&fx.path("z")).await.unwrap().is_some());
    other.close().await.unwrap();
    let nobody = ClientOptions {
        connect_timeout: Duration::from_millis(300),
        ..options()
    };
    assert_eq!(
        Client::connect(dead, nobody).await.unwrap_err(),
        Error::ConnectTimeout
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn subtrees_listed_and_deleted() {
    let fx = Fixture::new("subtree").await;
    let c = fx.client().await;
    for rest in ["t", "t/a", "t/a/x", "t/a/y", "t/b"] {
        c.create(&fx.path(rest), b"", &persistent()).await.unwrap();
    }
    let tree = c.list_subtree(&fx.path("t")).await.unwrap();
    assert_eq!(tree[0], fx.path("t"));
    assert_eq!(
        sorted(tree[1..3].to_vec()),
        [fx.path("t/a"), fx.path("t/b")]
    );
    assert_eq!(
        sorted(tree[3..].to_vec()),
        [fx.path("t/a/x"), fx.path("t/a/y")]
    );
    c.delete_recursive(&fx.path("t")).await.unwrap();
    assert_eq!(c.exists(&fx.path("t")).await.unwrap(), None);
    // A missing root is NoNode, as ZooKeeper's ZKUtil.listSubTreeBFS.
    assert_eq!(
        c.list_subtree(&fx.path("t")).await.unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        c.delete_recursive(&fx.path("t")).await.unwrap_err(),
        Error::NoNode
    );
    c.close().await.unwrap();
}

#[test]
fn events_print_as_zookeeper_prints_them() {
    assert_eq!(
        WatchedEvent::node(EventType::NodeDataChanged, "/a").to_string(),
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/a"
    );
    assert_eq!(
        WatchedEvent::session(KeeperState::Expired).to_string(),
        "WatchedEvent state:Expired type:None path:null"
    );
    assert_eq!(SessionState::Connected.to_string(), "SyncConnected");
}

#[tokio::test]
async fn sasl_digest_md5_makes_the_session_its_user_or_ends_it() {
    let fx = Fixture::new("sasl").await;
    let (user, password) = harness::SASL_USER;
    let bob = fx
        .client_with(ClientOptions {
            sasl: Some(SaslCredentials {
                user: user.into(),
                password: password.into(),
            }),
            ..options()
        })
        .await;
    let who = bob.who_am_i().await.unwrap();
    assert!(
        who.iter()
            .any(|i| i.auth_scheme == "sasl" && i.user == user),
        "{who:?}"
    );
    let wrong = Client::connect(
        &fx.connect_string(""),
        ClientOptions {
            sasl: Some(SaslCredentials {
                user: user.into(),
                password: "guess".into(),
            }),
            ..options()
        },
    )
    .await;
    assert_eq!(wrong.err(), Some(Error::AuthFailed));
    // The server goes on serving.
    assert!(bob.exists(&fx.base).await.unwrap().is_some());
}

#[tokio::test]
async fn edge_cases_answered_as_zookeeper_answers_them() {
    let fx = Fixture::new("edges").await;
    let c = fx.client().await;
    let missing = fx.path("missing");

    // Who a session is before any addauth: its address.
    let who = c.who_am_i().await.unwrap();
    assert_eq!(who.len(), 1, "{who:?}");
    assert_eq!(
        (who[0].auth_scheme.as_str(), who[0].user.as_str()),
        ("ip", "127.0.0.1")
    );
    assert_eq!(c.get_acl(&missing).await.unwrap_err(), Error::NoNode);
    assert_eq!(
        c.get_all_children_number(&missing).await.unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        c.get_children_with_stat(&missing).await.unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        c.set_acl(&missing, &acl::open_unsafe(), None)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        c.set_data(&missing, b"", None).await.unwrap_err(),
        Error::NoNode
    );

    // ACLs the server refuses.
    for bad in [
        acl::acl(Perms::ALL, "world", "someone"),
        acl::acl(Perms::ALL, "ip", "not-an-ip"),
        acl::acl(Perms::ALL, "digest", "no-colon"),
        acl::acl(Perms::ALL, "nosuchscheme", "x"),
    ] {
        let err = c
            .create(
                &fx.path("bad"),
                b"",
                &persistent().with_acl(vec![bad.clone()]),
            )
            .await
            .unwrap_err();
        assert_eq!(err, Error::InvalidAcl, "{bad:?}");
    }

    // Multi: sequential names, a check on a missing znode.
    let seq = CreateOptions::new(CreateMode::PersistentSequential);
    let results = c
        .multi(
            &Multi::new()
                .create(&fx.path("s-"), b"", &seq)
                .create(&fx.path("s-"), b"", &seq),
        )
        .await
        .unwrap();
    let names: Vec<_> = results
        .iter()
        .map(|r| match r {
            OpResult::Create { path, .. } => path.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, [fx.path("s-0000000000"), fx.path("s-0000000001")]);
    assert_eq!(
        c.multi(&Multi::new().check(&missing, -1))
            .await
            .unwrap_err(),
        Error::MultiFailed {
            index: 0,
            error: Box::new(Error::NoNode)
        }
    );
    // Writes in a multi fire watches like single ones.
    let (_, children) = c.get_children_w(&fx.base).await.unwrap();
    c.multi(&Multi::new().create(&fx.path("m"), b"", &persistent()))
        .await
        .unwrap();
    assert_eq!(
        within("child watch", children).await,
        WatchedEvent::node(EventType::NodeChildrenChanged, &fx.base)
    );

    // Ephemerals by prefix: a string prefix, not a path prefix.
    c.create(&fx.path("eph1"), b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    c.create(&fx.path("eph2"), b"", &CreateOptions::ephemeral())
        .await
        .unwrap();
    assert_eq!(
        sorted(c.get_ephemerals(&fx.path("eph")).await.unwrap()),
        [fx.path("eph1"), fx.path("eph2")]
    );
    assert_eq!(
        c.get_ephemerals(&missing).await.unwrap(),
        Vec::<String>::new()
    );

    // Local removal while connected asks the server too.
    let (_, _, w) = c.get_data_w(&fx.path("m")).await.unwrap();
    c.remove_watches(&fx.path("m"), WatcherType::Data, true)
        .await
        .unwrap();
    assert_eq!(
        within("removed", w).await.event_type,
        EventType::DataWatchRemoved
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_request_too_large_for_the_server_costs_the_connection_not_the_session() {
    let fx = Fixture::new("large").await;
    let c = fx.client().await;
    let n = fx.path("n");
    c.create(&n, b"", &persistent()).await.unwrap();
    let session = c.session_id();
    // Over the server's jute.maxbuffer (0xfffff): the server drops the connection.
    let big = vec![b'x'; 0x100000 + 10];
    assert_eq!(
        c.set_data(&n, &big, None).await.unwrap_err(),
        Error::ConnectionLoss
    );
    // The client reconnects with the same session; smaller writes go through.
    let stat = within("reconnect", async {
        loop {
            match c.set_data(&n, &big[..1000], None).await {
                Ok(stat) => return stat,
                Err(Error::ConnectionLoss) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!((stat.version, stat.data_length), (1, 1000));
    assert_eq!(c.session_id(), session);
    c.close().await.unwrap();
}

#[tokio::test]
async fn config_of_a_standalone_server() {
    let fx = Fixture::new("config").await;
    let chrooted = within(
        "connect",
        Client::connect(&fx.connect_string(&fx.base), options()),
    )
    .await
    .unwrap();
    // Read outside the chroot.
    let (data, stat) = chrooted.get_config().await.unwrap();
    assert_eq!((data.len(), stat.aversion), (0, -1));
    assert_eq!(
        chrooted
            .reconfig(Some("server.2=127.0.0.1:2888:3888"), None, None, -1)
            .await
            .unwrap_err(),
        Error::ReconfigDisabled
    );
    chrooted.close().await.unwrap();
}
