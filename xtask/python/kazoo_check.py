#!/usr/bin/env python3
"""kazoo, the Python ZooKeeper client, against a server: `kazoo_check.py HOST:PORT`.

Prints one line per check, `ok NAME: OBSERVED` or `FAIL NAME: OBSERVED (expected ...)`,
where OBSERVED holds nothing that differs between two correct servers (no times, zxids
or session ids: those are compared with each other instead), then
`kazoo_check: all checks passed` (exit 0) or `kazoo_check: N check(s) failed` (exit 1).
A section that raises unexpectedly fails as a whole and the next one still runs.

`cargo xtask compat-clients` runs it against Apache ZooKeeper 3.8.0 and against
zk-server: both runs must pass and print the same lines. It expects a fresh server
(sequence numbers count from the creation of /kz).
"""

import os
import sys
import threading
import time
import traceback

from kazoo.client import KazooClient
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

ROOT = "/kz"
FAILURES = []


def check(name, observed, expected):
    if observed == expected:
        print(f"ok {name}: {observed!r}", flush=True)
    else:
        FAILURES.append(name)
        print(f"FAIL {name}: {observed!r} (expected {expected!r})", flush=True)


def summary(stat):
    """The fields of a stat that two correct servers agree on."""
    return (
        f"version={stat.version} cversion={stat.cversion} aversion={stat.aversion} "
        f"dataLength={stat.dataLength} numChildren={stat.numChildren}"
    )


def stat_of(version=0, cversion=0, aversion=0, length=0, children=0):
    return (
        f"version={version} cversion={cversion} aversion={aversion} "
        f"dataLength={length} numChildren={children}"
    )


def raises(fn):
    """The name of the exception `fn` raises, or what it returned."""
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - the name is the answer
        return type(e).__name__
    return f"no error, returned {result!r}"


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def connect(addr):
    client = KazooClient(hosts=addr, timeout=10.0)
    client.start(timeout=15)
    return client


def section_connect(zk, addr):
    check("connect", zk.connected, True)
    check("session id is set", zk.client_id is not None and zk.client_id[0] != 0, True)
    check("ruok", zk.command(b"ruok"), "imok")
    check("server_version (from envi)", zk.server_version(), (3, 8, 0))


def section_crud(zk, addr):
    check("ensure_path", bool(zk.ensure_path(ROOT + "/a/b")), True)
    check("ensure_path again", bool(zk.ensure_path(ROOT + "/a/b")), True)
    check(
        "ensure_path made each level",
        [zk.exists(p) is not None for p in (ROOT, ROOT + "/a", ROOT + "/a/b")],
        [True, True, True],
    )
    check("create", zk.create(ROOT + "/node", b"v1"), ROOT + "/node")
    check("create existing", raises(lambda: zk.create(ROOT + "/node", b"x")), "NodeExistsError")
    check("create without parent", raises(lambda: zk.create(ROOT + "/none/x")), "NoNodeError")
    check(
        "create makepath",
        zk.create(ROOT + "/deep/er/node", b"d", makepath=True),
        ROOT + "/deep/er/node",
    )
    path, stat = zk.create(ROOT + "/with-stat", b"abc", include_data=True)
    check("create include_data (create2)", (path, summary(stat)), (ROOT + "/with-stat", stat_of(length=3)))
    check("create2 zxids", (stat.czxid == stat.mzxid, stat.ephemeralOwner), (True, 0))

    data, stat = zk.get(ROOT + "/node")
    check("get", (data, summary(stat)), (b"v1", stat_of(length=2)))
    check("get missing", raises(lambda: zk.get(ROOT + "/missing")), "NoNodeError")
    check("exists missing", zk.exists(ROOT + "/missing"), None)
    check("exists", summary(zk.exists(ROOT + "/node")), stat_of(length=2))

    stat2 = zk.set(ROOT + "/node", b"v2")
    check("set", summary(stat2), stat_of(version=1, length=2))
    check(
        "set: czxid and ctime kept, mzxid grows",
        (stat2.czxid == stat.czxid, stat2.ctime == stat.ctime, stat2.mzxid > stat.mzxid),
        (True, True, True),
    )
    check("set bad version", raises(lambda: zk.set(ROOT + "/node", b"v3", version=0)), "BadVersionError")
    check("set good version", summary(zk.set(ROOT + "/node", b"v3", version=1)), stat_of(version=2, length=2))
    check("get after set", zk.get(ROOT + "/node")[0], b"v3")
    check("set empty", summary(zk.set(ROOT + "/node", b"")), stat_of(version=3))
    check("get empty", zk.get(ROOT + "/node")[0], b"")
    check("set missing", raises(lambda: zk.set(ROOT + "/missing", b"x")), "NoNodeError")

    check("get_children", sorted(zk.get_children(ROOT)), ["a", "deep", "node", "with-stat"])
    kids, stat = zk.get_children(ROOT, include_data=True)
    check("get_children include_data", (sorted(kids), summary(stat)), (
        ["a", "deep", "node", "with-stat"], stat_of(cversion=4, children=4)))
    check("get_children missing", raises(lambda: zk.get_children(ROOT + "/missing")), "NoNodeError")
    check("get_children leaf", zk.get_children(ROOT + "/node"), [])

    check("delete non-empty", raises(lambda: zk.delete(ROOT + "/a")), "NotEmptyError")
    check("delete bad version", raises(lambda: zk.delete(ROOT + "/node", version=7)), "BadVersionError")
    check("delete", zk.delete(ROOT + "/node", version=3), True)
    check("delete missing", raises(lambda: zk.delete(ROOT + "/node")), "NoNodeError")
    zk.delete(ROOT + "/deep", recursive=True)
    check("deleted", [zk.exists(ROOT + p) for p in ("/node", "/deep", "/deep/er")], [None, None, None])
    check("parent stat after deletes", summary(zk.exists(ROOT)), stat_of(cversion=6, children=2))
    check("sync", zk.sync(ROOT), ROOT)


def section_ephemeral_sequence(zk, addr):
    temp = connect(addr)
    try:
        session = temp.client_id[0]
        check("create ephemeral", temp.create(ROOT + "/eph", b"e", ephemeral=True), ROOT + "/eph")
        stat = zk.exists(ROOT + "/eph")
        check("ephemeralOwner is the creating session", stat.ephemeralOwner == session, True)
        check("ephemeral has no children",
              raises(lambda: temp.create(ROOT + "/eph/kid")), "NoChildrenForEphemeralsError")
        zk.create(ROOT + "/seq")
        seqs = [zk.create(ROOT + "/seq/n-", b"", sequence=True) for _ in range(3)]
        check("sequence", seqs, [ROOT + f"/seq/n-{i:010d}" for i in range(3)])
        eseq = temp.create(ROOT + "/seq/e-", b"", ephemeral=True, sequence=True)
        check("ephemeral sequence", eseq, ROOT + "/seq/e-0000000003")
        zk.delete(seqs[0])
        # Sequence numbers count creates; the cversion clients see counts deletes too.
        check("sequence after a delete", zk.create(ROOT + "/seq/n-", sequence=True),
              ROOT + "/seq/n-0000000004")
        check("cversion after a delete", summary(zk.exists(ROOT + "/seq")),
              stat_of(cversion=6, children=4))
        check("another session sees the ephemeral", zk.exists(eseq) is not None, True)
    finally:
        temp.stop()
        temp.close()
    check("ephemerals gone when their session closes",
          [zk.exists(ROOT + "/eph"), zk.exists(ROOT + "/seq/e-0000000003")], [None, None])
    check("sequence parent after the close", sorted(zk.get_children(ROOT + "/seq")),
          ["n-0000000001", "n-0000000002", "n-0000000004"])


def result_name(result):
    if isinstance(result, Exception):
        return type(result).__name__
    if hasattr(result, "version") and hasattr(result, "numChildren"):
        return summary(result)
    return result


def section_transaction(zk, addr):
    zk.create(ROOT + "/tx")
    t = zk.transaction()
    t.create(ROOT + "/tx/t1", b"one")
    t.create(ROOT + "/tx/t2", b"two")
    t.set_data(ROOT + "/tx/t1", b"uno")
    t.check(ROOT + "/tx/t2", 0)
    t.delete(ROOT + "/tx/t2")
    t.create(ROOT + "/tx/s-", b"", sequence=True)
    results = t.commit()
    check("transaction results", [result_name(r) for r in results], [
        ROOT + "/tx/t1", ROOT + "/tx/t2", stat_of(version=1, length=3), True, True,
        ROOT + "/tx/s-0000000002"])
    check("transaction applied", (zk.get(ROOT + "/tx/t1")[0], zk.exists(ROOT + "/tx/t2")), (b"uno", None))

    t = zk.transaction()
    t.create(ROOT + "/tx/t3", b"")
    t.check(ROOT + "/tx/t1", 99)
    t.create(ROOT + "/tx/t4", b"")
    results = t.commit()
    check("failed transaction results", [result_name(r) for r in results],
          ["RolledBackError", "BadVersionError", "RuntimeInconsistency"])
    check("failed transaction applied nothing",
          [zk.exists(ROOT + "/tx/t3"), zk.exists(ROOT + "/tx/t4")], [None, None])

    t = zk.transaction()
    t.delete(ROOT + "/tx/missing")
    check("transaction on a missing node", [result_name(r) for r in t.commit()], ["NoNodeError"])
    check("parent stat after transactions", summary(zk.exists(ROOT + "/tx")),
          stat_of(cversion=4, children=2))


def section_acl(zk, addr):
    acls, stat = zk.get_acls(ROOT)
    check("get_acls", [(a.perms, a.id.scheme, a.id.id) for a in acls], [(31, "world", "anyone")])
    other = connect(addr)
    try:
        zk.add_auth("digest", "alice:secret")
        zk.create(ROOT + "/secret", b"s", acl=[make_digest_acl("alice", "secret", all=True)])
        check("digest ACL, no auth", raises(lambda: other.get(ROOT + "/secret")), "NoAuthError")
        check("digest ACL, authenticated", zk.get(ROOT + "/secret")[0], b"s")
        acls, stat = zk.get_acls(ROOT + "/secret")
        check("get_acls digest", [(a.perms, a.id.scheme, a.id.id) for a in acls],
              [(31, "digest", make_digest_acl("alice", "secret").id.id)])
        check("get_acls without ADMIN", raises(lambda: other.get_acls(ROOT + "/secret")), "NoAuthError")
        other.add_auth("digest", "alice:wrong")
        check("wrong password", raises(lambda: other.get(ROOT + "/secret")), "NoAuthError")
        check("set_acls", summary(zk.set_acls(ROOT + "/secret", OPEN_ACL_UNSAFE)),
              stat_of(aversion=1, length=1))
        check("open after set_acls", other.get(ROOT + "/secret")[0], b"s")
        check("set_acls bad version",
              raises(lambda: zk.set_acls(ROOT + "/secret", OPEN_ACL_UNSAFE, version=0)),
              "BadVersionError")
        zk.create(ROOT + "/readonly", b"r", acl=[make_digest_acl("nobody", "x", read=True)])
        check("read-only ACL, write refused", raises(lambda: zk.set(ROOT + "/readonly", b"w")), "NoAuthError")
        check("delete needs only the parent's permission", zk.delete(ROOT + "/readonly"), True)
    finally:
        other.stop()
        other.close()


def section_watches(zk, addr):
    path = ROOT + "/watched"
    seen = []

    @zk.DataWatch(path)
    def on_data(data, stat, event):  # noqa: ARG001 - kazoo's signature
        seen.append((data, None if event is None else event.type))

    wait_for(lambda: len(seen) == 1)
    zk.create(path, b"1")
    wait_for(lambda: len(seen) == 2)
    zk.set(path, b"2")
    wait_for(lambda: len(seen) == 3)
    zk.delete(path)
    wait_for(lambda: len(seen) == 4)
    check("DataWatch", seen, [(None, None), (b"1", "CREATED"), (b"2", "CHANGED"), (None, "DELETED")])

    kids = ROOT + "/kids"
    zk.create(kids)
    lists = []
    zk.ChildrenWatch(kids, lambda children: lists.append(sorted(children)))
    wait_for(lambda: len(lists) == 1)
    zk.create(kids + "/k1")
    wait_for(lambda: len(lists) == 2)
    zk.create(kids + "/k2")
    wait_for(lambda: len(lists) == 3)
    zk.delete(kids + "/k1")
    wait_for(lambda: len(lists) == 4)
    check("ChildrenWatch", lists, [[], ["k1"], ["k1", "k2"], ["k2"]])

    events = []

    def record(event):
        events.append((event.type, event.path))

    zk.create(ROOT + "/w", b"")
    zk.get(ROOT + "/w", watch=record)
    zk.set(ROOT + "/w", b"x")
    wait_for(lambda: len(events) >= 1)
    zk.set(ROOT + "/w", b"y")
    zk.exists(ROOT + "/later", watch=record)
    zk.create(ROOT + "/later")
    wait_for(lambda: len(events) >= 2)
    zk.get_children(kids, watch=record)
    zk.create(kids + "/k3")
    wait_for(lambda: len(events) >= 3)
    zk.exists(ROOT + "/w", watch=record)
    zk.delete(ROOT + "/w")
    wait_for(lambda: len(events) >= 4)
    time.sleep(0.3)
    check("one-shot watches", events, [
        ("CHANGED", ROOT + "/w"), ("CREATED", ROOT + "/later"),
        ("CHILD", kids), ("DELETED", ROOT + "/w")])

    if not hasattr(zk, "add_watch"):
        print("kazoo_check: this kazoo has no add_watch; persistent watches not checked")
        return
    from kazoo.protocol.states import AddWatchMode

    recursive = []
    zk.create(ROOT + "/pr")
    zk.add_watch(ROOT + "/pr", lambda e: recursive.append((e.type, e.path)),
                 AddWatchMode.PERSISTENT_RECURSIVE)
    zk.create(ROOT + "/pr/a", b"")
    zk.set(ROOT + "/pr/a", b"x")
    zk.create(ROOT + "/pr/a/b", b"")
    zk.delete(ROOT + "/pr/a/b")
    zk.set(ROOT + "/pr", b"y")
    wait_for(lambda: len(recursive) >= 5)
    time.sleep(0.3)
    check("persistent recursive watch", recursive, [
        ("CREATED", ROOT + "/pr/a"), ("CHANGED", ROOT + "/pr/a"), ("CREATED", ROOT + "/pr/a/b"),
        ("DELETED", ROOT + "/pr/a/b"), ("CHANGED", ROOT + "/pr")])


def section_recipes(zk, addr):
    other = connect(addr)
    try:
        lock = zk.Lock(ROOT + "/lock", "first")
        check("Lock acquire", lock.acquire(timeout=5), True)
        rival = other.Lock(ROOT + "/lock", "second")
        check("Lock held elsewhere", rival.acquire(blocking=False), False)
        check("Lock contenders", lock.contenders(), ["first"])
        lock.release()
        check("Lock acquire after release", rival.acquire(timeout=5), True)
        rival.release()
        counter = zk.Counter(ROOT + "/counter")
        counter += 5
        counter -= 2
        check("Counter", counter.value, 3)
    finally:
        other.stop()
        other.close()


def section_cleanup(zk, addr):
    zk.delete(ROOT, recursive=True)
    check("gone", zk.exists(ROOT), None)


SECTIONS = [
    section_connect,
    section_crud,
    section_ephemeral_sequence,
    section_transaction,
    section_acl,
    section_watches,
    section_recipes,
    section_cleanup,
]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: kazoo_check.py HOST:PORT")
    addr = sys.argv[1]

    def give_up():
        print("FAIL (timeout): the checks did not finish within 100s", flush=True)
        os._exit(3)

    watchdog = threading.Timer(100.0, give_up)
    watchdog.daemon = True
    watchdog.start()

    zk = connect(addr)
    for section in SECTIONS:
        try:
            section(zk, addr)
        except Exception as e:  # noqa: BLE001 - reported, and the next section runs
            name = f"{section.__name__} raised"
            FAILURES.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stdout)
    zk.stop()
    zk.close()
    watchdog.cancel()
    if FAILURES:
        print(f"kazoo_check: {len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("kazoo_check: all checks passed")


if __name__ == "__main__":
    main()
