/*
 * RecordTree: drives a real, in-process Apache ZooKeeper 3.8.0 standalone server
 * with a scripted list of client operations and records what it answers, so
 * that the Rust tree can be checked against the reference.
 *
 * Usage:
 *   java -cp <classes>:/usr/share/java/zookeeper.jar RecordTree <script.txt> <outdir>
 * (zookeeper.jar's manifest pulls in zookeeper-jute, slf4j-api, netty, ...;
 * add slf4j-nop.jar to silence SLF4J's "no binding" warning.)
 *
 * Server: ZooKeeperServer + NIOServerCnxnFactory on 127.0.0.1 (kernel-chosen
 * port), fresh temporary data dir, tickTime 2000. No ContainerManager is
 * started, so containers and TTL nodes are never reaped. System properties:
 * zookeeper.extendedTypesEnabled=true, zookeeper.digest.enabled=true,
 * zookeeper.snapCount=1000000 (no snapshot mid-run but those the script asks
 * for), zookeeper.preAllocSize=16 (KiB of txn-log preallocation instead of
 * 64 MiB, so logs stay small; a -Dzookeeper.preAllocSize=<KiB> given to the JVM
 * wins, e.g. 65536 for ZooKeeper's default), zookeeper.sasl.client=false, and
 * zookeeper.DigestAuthenticationProvider.superDigest = digest of "super:secret".
 *
 * Script: one op per line, '#' (at the start of a token) starts a comment.
 *   open <s> | close <s>
 *   create <s> <path> <data> <mode> [acl] [ttl]
 *   set <s> <path> <data> <version> | delete <s> <path> <version>
 *   get|exists|children <s> <path> [watch]
 *   getacl <s> <path> | setacl <s> <path> <acl> <version>
 *   addauth <s> <scheme> <credentials>
 *   addwatch <s> <path> persistent|recursive
 *   removewatches <s> <path> children|data|any
 *   sync <s> <path> | ephemerals <s> <prefix> | count <s> <path>
 *   snapshot   the server takes a snapshot now, as SyncRequestProcessor does
 *              when snapCount is reached: roll the txn log (the next txn opens
 *              a new log.<its zxid>), then write snapshot.<last zxid> (fsynced).
 *              The server is idle between ops, so the snapshot is not fuzzy.
 *   multi <s> <op> ; <op> ; ...   (create <path> <data> <mode> [acl] [ttl] |
 *                                 delete <path> <version> | set <path> <data> <version> |
 *                                 check <path> <version>)
 * Two ops bypass the Java client's own checks and send the raw request, to see
 * what the *server* answers:
 *   rawcreate <s> <create|create2|container|ttl> <path> <data> <mode-or-flags> [ttl]
 *       opcode create(1)/create2(15)/createContainer(19)/createTTL(21) with the
 *       given flags (a mode name or an integer) and ttl (default -1; only sent
 *       with createTTL); ACL world:anyone:cdrwa.
 *   rawremovewatches <s> <path> children|data|any
 *       removeWatches(18) without touching the client's watch table.
 *
 * data: '-' = null, '' = empty, else the token as UTF-8.
 * mode: persistent | ephemeral | persistent_sequential | ephemeral_sequential |
 *       container | ttl | ttl_sequential
 * acl: open | read | creator | scheme:id:perms[,scheme:id:perms...]
 *
 * After each op the recorder waits on every open session for a barrier (an
 * async exists("/") whose callback runs on the session's event thread after
 * every earlier event), then prints the events received since the last op.
 *
 * Output, in <outdir>:
 *   expected.txt  per op on script line N: "N <op> <CODE>[ key=value...]", CODE a
 *                 KeeperException.Code name, or CLIENT_REJECTED when the Java
 *                 client threw IllegalArgumentException before sending. Keys:
 *                 create/rawcreate path= stat= (rawcreate with opcode create: path
 *                 only); set/setacl stat=; get data= stat=; exists stat= (or
 *                 stat=null); children children=a,b (sorted) stat=; getacl
 *                 acl=scheme:id:perms,... stat=; multi results=r;r;... with r one of
 *                 create:<path> delete set:<stat> check error:<CODE> (also after a
 *                 failed multi); ephemerals paths=a,b (sorted); count count=<n>;
 *                 snapshot zxid=<the snapshot's zxid>.
 *                 Then "N event <s> <EventType> <path>" per event, sessions in
 *                 opening order; connection-state events as "N event <s> None
 *                 <state>", SyncConnected left out.
 *                 data: '-' null, '' empty, else UTF-8 text. stat: czxid,mzxid,
 *                 pzxid,version,cversion,aversion,ephemeralOwner,dataLength,
 *                 numChildren with zxids as 0x-hex and ephemeralOwner as the
 *                 owning session's script name (else 0x-hex). No times.
 *   tree.txt      the server's DataTree before shutdown, preorder, children
 *                 sorted: "<path> data=<hex or -> czxid= mzxid= ctime= mtime=
 *                 version= cversion= aversion= ephemeralOwner= dataLength=
 *                 numChildren= pzxid= acl=scheme:id:perms,..." with the values
 *                 as stored (StatPersisted: cversion counts child creations,
 *                 ephemeralOwner keeps the container/TTL markers), then
 *                 "digest 0x<DataTree.getTreeDigest()>".
 *   version-2/    the server's txn logs (log.*) and snapshots: snapshot.0, taken
 *                 at startup, and one per `snapshot` op.
 * Times, session ids (raw ephemeralOwner in tree.txt) and so the digest vary
 * from run to run; everything in expected.txt is deterministic.
 */

import java.io.File;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.InetSocketAddress;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.jute.Record;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.data.StatPersisted;
import org.apache.zookeeper.proto.Create2Response;
import org.apache.zookeeper.proto.CreateRequest;
import org.apache.zookeeper.proto.CreateResponse;
import org.apache.zookeeper.proto.CreateTTLRequest;
import org.apache.zookeeper.proto.RemoveWatchesRequest;
import org.apache.zookeeper.proto.ReplyHeader;
import org.apache.zookeeper.proto.RequestHeader;
import org.apache.zookeeper.server.DataNode;
import org.apache.zookeeper.server.DataTree;
import org.apache.zookeeper.server.NIOServerCnxnFactory;
import org.apache.zookeeper.server.ZKDatabase;
import org.apache.zookeeper.server.ZooKeeperServer;
import org.apache.zookeeper.server.persistence.FileTxnSnapLog;

public class RecordTree {

    static final int SESSION_TIMEOUT_MS = 30000;
    static final int TICK_TIME_MS = 2000;
    static final long WAIT_SECONDS = 30;

    /** A script error: the script, not ZooKeeper, is at fault. */
    static final class ScriptError extends RuntimeException {
        ScriptError(int line, String msg) {
            super("script line " + line + ": " + msg);
        }
    }

    /** ZooKeeper subclass that can send raw requests (cnxn is protected). */
    static final class RawZooKeeper extends ZooKeeper {
        RawZooKeeper(String connect, int timeout, Watcher watcher) throws IOException {
            super(connect, timeout, watcher);
        }

        ReplyHeader raw(RequestHeader h, Record request, Record response) throws InterruptedException {
            return cnxn.submitRequest(h, request, response, null);
        }
    }

    /** Records every event a session's default watcher receives, in order. */
    static final class Recorder implements Watcher {
        final String name;
        final List<String> events = new ArrayList<>();
        final CountDownLatch connected = new CountDownLatch(1);
        final CountDownLatch closed = new CountDownLatch(1);

        Recorder(String name) {
            this.name = name;
        }

        @Override
        public void process(WatchedEvent e) {
            if (e.getType() == Event.EventType.None) {
                if (e.getState() == Event.KeeperState.SyncConnected) {
                    connected.countDown();
                    return;
                }
                add("None " + e.getState());
                if (e.getState() == Event.KeeperState.Closed) {
                    closed.countDown();
                }
                return;
            }
            add(e.getType() + " " + e.getPath());
        }

        synchronized void add(String s) {
            events.add(s);
        }

        synchronized List<String> drain() {
            List<String> out = new ArrayList<>(events);
            events.clear();
            return out;
        }
    }

    static final class Session {
        final String name;
        final RawZooKeeper zk;
        final Recorder recorder;
        boolean open = true;

        Session(String name, RawZooKeeper zk, Recorder recorder) {
            this.name = name;
            this.zk = zk;
            this.recorder = recorder;
        }
    }

    // Sessions in the order they were opened (closed ones stay until printed).
    final List<Session> sessions = new ArrayList<>();
    final Map<String, Session> byName = new HashMap<>();
    final Map<Long, String> sessionNames = new HashMap<>();
    final String connectString;
    final ZooKeeperServer zks;

    RecordTree(String connectString, ZooKeeperServer zks) {
        this.connectString = connectString;
        this.zks = zks;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: RecordTree <script.txt> <outdir>");
            System.exit(2);
        }
        Path script = Paths.get(args[0]);
        Path outDir = Paths.get(args[1]);
        List<String> lines = Files.readAllLines(script, StandardCharsets.UTF_8);

        // Properties first: several are read once, when ZooKeeper's classes load.
        String superDigest = superDigest("super:secret");
        System.setProperty("zookeeper.DigestAuthenticationProvider.superDigest", superDigest);
        System.setProperty("zookeeper.extendedTypesEnabled", "true");
        System.setProperty("zookeeper.digest.enabled", "true");
        System.setProperty("zookeeper.snapCount", "1000000");
        if (System.getProperty("zookeeper.preAllocSize") == null) {
            System.setProperty("zookeeper.preAllocSize", "16");
        }
        System.setProperty("zookeeper.sasl.client", "false");
        System.setProperty("zookeeper.admin.enableServer", "false");

        Path dataDir = Files.createTempDirectory("recordtree");
        FileTxnSnapLog txnLog = new FileTxnSnapLog(dataDir.toFile(), dataDir.toFile());
        ZooKeeperServer zks = new ZooKeeperServer(txnLog, TICK_TIME_MS, "");
        NIOServerCnxnFactory factory = new NIOServerCnxnFactory();
        factory.configure(new InetSocketAddress("127.0.0.1", 0), 100, -1, false);
        factory.startup(zks);
        String connect = "127.0.0.1:" + factory.getLocalPort();

        RecordTree rec = new RecordTree(connect, zks);
        List<String> expected = rec.run(lines);

        Files.createDirectories(outDir);
        writeLines(outDir.resolve("expected.txt"), expected);
        writeLines(outDir.resolve("tree.txt"), dumpTree(zks.getZKDatabase().getDataTree()));

        // Stop the server cleanly: connections, request processors (flushing the
        // log), then the log itself. Client sessions that are still open are not
        // closed, so the log ends with the last scripted op.
        factory.shutdown();
        zks.shutdown();
        txnLog.close();

        Path versionDir = dataDir.resolve("version-2");
        Path outVersion = outDir.resolve("version-2");
        deleteTree(outVersion);
        Files.createDirectories(outVersion);
        try (Stream<Path> files = Files.list(versionDir)) {
            for (Path f : files.sorted().collect(Collectors.toList())) {
                String n = f.getFileName().toString();
                if (n.startsWith("log.") || n.startsWith("snapshot.")) {
                    Files.copy(f, outVersion.resolve(n), StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
        deleteTree(dataDir);
        System.err.println("RecordTree: " + script + ": " + expected.size() + " lines -> " + outDir);
        // Client threads of sessions left open are daemons; exit without waiting
        // for them to give up reconnecting.
        System.exit(0);
    }

    /**
     * DigestAuthenticationProvider reads the superDigest property once, when the
     * class initialises; so compute the digest with a throwaway copy of the
     * class, loaded by its own class loader, before the property is set.
     */
    static String superDigest(String idPassword) throws Exception {
        List<URL> urls = new ArrayList<>();
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            if (!entry.isEmpty()) {
                urls.add(new File(entry).toURI().toURL());
            }
        }
        try (URLClassLoader loader = new URLClassLoader(urls.toArray(new URL[0]), ClassLoader.getPlatformClassLoader())) {
            Class<?> c = Class.forName("org.apache.zookeeper.server.auth.DigestAuthenticationProvider", true, loader);
            return (String) c.getMethod("generateDigest", String.class).invoke(null, idPassword);
        }
    }

    // ------------------------------------------------------------------ script

    List<String> run(List<String> lines) throws Exception {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            int n = i + 1;
            List<String> tok = tokens(lines.get(i));
            if (tok.isEmpty()) {
                continue;
            }
            String op = tok.get(0);
            String result;
            try {
                result = execute(n, op, tok);
            } catch (KeeperException e) {
                result = e.code().name();
                if (op.equals("multi") && e.getResults() != null) {
                    result += " results=" + formatResults(e.getResults());
                }
            } catch (IllegalArgumentException e) {
                result = "CLIENT_REJECTED";
            }
            out.add(n + " " + op + " " + result);
            barrierAndCollect(n, out);
        }
        return out;
    }

    static List<String> tokens(String line) {
        List<String> tok = new ArrayList<>();
        for (String t : line.trim().split("\\s+")) {
            if (t.startsWith("#")) {
                break;
            }
            if (!t.isEmpty()) {
                tok.add(t);
            }
        }
        return tok;
    }

    static void arity(int n, List<String> tok, int min, int max) {
        if (tok.size() < min || tok.size() > max) {
            throw new ScriptError(n, "`" + tok.get(0) + "` takes " + (min - 1)
                + (max == min ? "" : ".." + (max - 1)) + " arguments, got " + (tok.size() - 1));
        }
    }

    Session session(int n, String name) {
        Session s = byName.get(name);
        if (s == null || !s.open) {
            throw new ScriptError(n, "no open session `" + name + "`");
        }
        return s;
    }

    /** Runs one op; returns "CODE[ key=value...]". */
    String execute(int n, String op, List<String> tok) throws Exception {
        switch (op) {
        case "open": {
            arity(n, tok, 2, 2);
            String name = tok.get(1);
            if (byName.containsKey(name) && byName.get(name).open) {
                throw new ScriptError(n, "session `" + name + "` is already open");
            }
            Recorder r = new Recorder(name);
            RawZooKeeper zk = new RawZooKeeper(connectString, SESSION_TIMEOUT_MS, r);
            if (!r.connected.await(WAIT_SECONDS, TimeUnit.SECONDS)) {
                throw new IllegalStateException("session " + name + " did not connect");
            }
            Session s = new Session(name, zk, r);
            sessions.removeIf(old -> old.name.equals(name));
            sessions.add(s);
            byName.put(name, s);
            sessionNames.put(zk.getSessionId(), name);
            return "OK";
        }
        case "close": {
            arity(n, tok, 2, 2);
            Session s = session(n, tok.get(1));
            s.zk.close();
            s.open = false;
            if (!s.recorder.closed.await(WAIT_SECONDS, TimeUnit.SECONDS)) {
                throw new IllegalStateException("session " + s.name + " did not report Closed");
            }
            return "OK";
        }
        case "create": {
            arity(n, tok, 5, 7);
            Session s = session(n, tok.get(1));
            CreateMode mode = mode(n, tok.get(4));
            List<ACL> acl = tok.size() > 5 ? acl(n, tok.get(5)) : ZooDefs.Ids.OPEN_ACL_UNSAFE;
            Stat stat = new Stat();
            String path;
            if (tok.size() > 6) {
                path = s.zk.create(tok.get(2), data(tok.get(3)), acl, mode, stat, number(n, tok.get(6)));
            } else {
                path = s.zk.create(tok.get(2), data(tok.get(3)), acl, mode, stat);
            }
            return "OK path=" + path + " stat=" + stat(stat);
        }
        case "rawcreate": {
            arity(n, tok, 6, 7);
            Session s = session(n, tok.get(1));
            String kind = tok.get(2);
            String path = tok.get(3);
            byte[] data = data(tok.get(4));
            int flags = flags(n, tok.get(5));
            long ttl = tok.size() > 6 ? number(n, tok.get(6)) : -1;
            RequestHeader h = new RequestHeader();
            Record request;
            Record response;
            switch (kind) {
            case "create":
                h.setType(ZooDefs.OpCode.create);
                request = new CreateRequest(path, data, ZooDefs.Ids.OPEN_ACL_UNSAFE, flags);
                response = new CreateResponse();
                break;
            case "create2":
                h.setType(ZooDefs.OpCode.create2);
                request = new CreateRequest(path, data, ZooDefs.Ids.OPEN_ACL_UNSAFE, flags);
                response = new Create2Response();
                break;
            case "container":
                h.setType(ZooDefs.OpCode.createContainer);
                request = new CreateRequest(path, data, ZooDefs.Ids.OPEN_ACL_UNSAFE, flags);
                response = new Create2Response();
                break;
            case "ttl":
                h.setType(ZooDefs.OpCode.createTTL);
                request = new CreateTTLRequest(path, data, ZooDefs.Ids.OPEN_ACL_UNSAFE, flags, ttl);
                response = new Create2Response();
                break;
            default:
                throw new ScriptError(n, "rawcreate opcode must be create|create2|container|ttl, not `" + kind + "`");
            }
            ReplyHeader r = s.zk.raw(h, request, response);
            if (r.getErr() != 0) {
                return codeName(r.getErr());
            }
            if (response instanceof CreateResponse) {
                return "OK path=" + ((CreateResponse) response).getPath();
            }
            Create2Response c2 = (Create2Response) response;
            return "OK path=" + c2.getPath() + " stat=" + stat(c2.getStat());
        }
        case "set": {
            arity(n, tok, 5, 5);
            Session s = session(n, tok.get(1));
            Stat stat = s.zk.setData(tok.get(2), data(tok.get(3)), (int) number(n, tok.get(4)));
            return "OK stat=" + stat(stat);
        }
        case "delete": {
            arity(n, tok, 4, 4);
            Session s = session(n, tok.get(1));
            s.zk.delete(tok.get(2), (int) number(n, tok.get(3)));
            return "OK";
        }
        case "get": {
            arity(n, tok, 3, 4);
            Session s = session(n, tok.get(1));
            Stat stat = new Stat();
            byte[] d = s.zk.getData(tok.get(2), watchFlag(n, tok), stat);
            return "OK data=" + showData(d) + " stat=" + stat(stat);
        }
        case "exists": {
            arity(n, tok, 3, 4);
            Session s = session(n, tok.get(1));
            Stat stat = s.zk.exists(tok.get(2), watchFlag(n, tok));
            return "OK stat=" + (stat == null ? "null" : stat(stat));
        }
        case "children": {
            arity(n, tok, 3, 4);
            Session s = session(n, tok.get(1));
            Stat stat = new Stat();
            List<String> children = new ArrayList<>(s.zk.getChildren(tok.get(2), watchFlag(n, tok), stat));
            Collections.sort(children);
            return "OK children=" + String.join(",", children) + " stat=" + stat(stat);
        }
        case "getacl": {
            arity(n, tok, 3, 3);
            Session s = session(n, tok.get(1));
            Stat stat = new Stat();
            List<ACL> acl = s.zk.getACL(tok.get(2), stat);
            return "OK acl=" + showAcl(acl) + " stat=" + stat(stat);
        }
        case "setacl": {
            arity(n, tok, 5, 5);
            Session s = session(n, tok.get(1));
            Stat stat = s.zk.setACL(tok.get(2), acl(n, tok.get(3)), (int) number(n, tok.get(4)));
            return "OK stat=" + stat(stat);
        }
        case "addauth": {
            arity(n, tok, 4, 4);
            Session s = session(n, tok.get(1));
            s.zk.addAuthInfo(tok.get(2), tok.get(3).getBytes(StandardCharsets.UTF_8));
            return "OK";
        }
        case "addwatch": {
            arity(n, tok, 4, 4);
            Session s = session(n, tok.get(1));
            AddWatchMode m;
            switch (tok.get(3)) {
            case "persistent":
                m = AddWatchMode.PERSISTENT;
                break;
            case "recursive":
                m = AddWatchMode.PERSISTENT_RECURSIVE;
                break;
            default:
                throw new ScriptError(n, "addwatch mode must be persistent|recursive");
            }
            s.zk.addWatch(tok.get(2), m);
            return "OK";
        }
        case "removewatches": {
            arity(n, tok, 4, 4);
            Session s = session(n, tok.get(1));
            s.zk.removeAllWatches(tok.get(2), watcherType(n, tok.get(3)), false);
            return "OK";
        }
        case "rawremovewatches": {
            arity(n, tok, 4, 4);
            Session s = session(n, tok.get(1));
            RequestHeader h = new RequestHeader();
            h.setType(ZooDefs.OpCode.removeWatches);
            RemoveWatchesRequest req = new RemoveWatchesRequest(tok.get(2), watcherType(n, tok.get(3)).getIntValue());
            ReplyHeader r = s.zk.raw(h, req, null);
            return codeName(r.getErr());
        }
        case "sync": {
            arity(n, tok, 3, 3);
            Session s = session(n, tok.get(1));
            CountDownLatch done = new CountDownLatch(1);
            AtomicInteger rc = new AtomicInteger();
            s.zk.sync(tok.get(2), (code, path, ctx) -> {
                rc.set(code);
                done.countDown();
            }, null);
            await(done, "sync");
            return codeName(rc.get());
        }
        case "ephemerals": {
            arity(n, tok, 3, 3);
            Session s = session(n, tok.get(1));
            List<String> paths = new ArrayList<>(s.zk.getEphemerals(tok.get(2)));
            Collections.sort(paths);
            return "OK paths=" + String.join(",", paths);
        }
        case "count": {
            arity(n, tok, 3, 3);
            Session s = session(n, tok.get(1));
            return "OK count=" + s.zk.getAllChildrenNumber(tok.get(2));
        }
        case "multi": {
            if (tok.size() < 2) {
                throw new ScriptError(n, "multi needs a session");
            }
            Session s = session(n, tok.get(1));
            List<Op> ops = new ArrayList<>();
            List<String> cur = new ArrayList<>();
            for (String t : tok.subList(2, tok.size())) {
                if (t.equals(";")) {
                    ops.add(multiOp(n, cur));
                    cur = new ArrayList<>();
                } else {
                    cur.add(t);
                }
            }
            if (!cur.isEmpty()) {
                ops.add(multiOp(n, cur));
            }
            List<OpResult> results = s.zk.multi(ops);
            return "OK results=" + formatResults(results);
        }
        case "snapshot": {
            arity(n, tok, 1, 1);
            return snapshot();
        }
        default:
            throw new ScriptError(n, "unknown op `" + op + "`");
        }
    }

    /**
     * Rolls the txn log and takes a snapshot, in SyncRequestProcessor's order.
     * Every earlier op has been answered (the barrier), so the request
     * processors are idle and every txn is applied and flushed; FileTxnLog's
     * methods are synchronized, so rolling from this thread is safe.
     */
    String snapshot() throws IOException {
        ZKDatabase db = zks.getZKDatabase();
        long zxid = db.getDataTreeLastProcessedZxid();
        db.rollLog();
        zks.takeSnapshot(true);
        // With zookeeper.snapshot.compression.method=gz|snappy the name has that suffix.
        String name = "snapshot." + Long.toHexString(zxid);
        String method = System.getProperty("zookeeper.snapshot.compression.method", "");
        File written = new File(zks.getTxnLogFactory().getSnapDir(), method.isEmpty() ? name : name + "." + method);
        if (!written.isFile()) {
            throw new IllegalStateException("no " + written + " after takeSnapshot");
        }
        return "OK zxid=" + hex(zxid);
    }

    Op multiOp(int n, List<String> t) {
        if (t.isEmpty()) {
            throw new ScriptError(n, "empty op in multi");
        }
        switch (t.get(0)) {
        case "create": {
            if (t.size() < 4 || t.size() > 6) {
                throw new ScriptError(n, "multi create <path> <data> <mode> [acl] [ttl]");
            }
            List<ACL> acl = t.size() > 4 ? acl(n, t.get(4)) : ZooDefs.Ids.OPEN_ACL_UNSAFE;
            CreateMode mode = mode(n, t.get(3));
            if (t.size() > 5) {
                return Op.create(t.get(1), data(t.get(2)), acl, mode, number(n, t.get(5)));
            }
            return Op.create(t.get(1), data(t.get(2)), acl, mode);
        }
        case "delete":
            if (t.size() != 3) {
                throw new ScriptError(n, "multi delete <path> <version>");
            }
            return Op.delete(t.get(1), (int) number(n, t.get(2)));
        case "set":
            if (t.size() != 4) {
                throw new ScriptError(n, "multi set <path> <data> <version>");
            }
            return Op.setData(t.get(1), data(t.get(2)), (int) number(n, t.get(3)));
        case "check":
            if (t.size() != 3) {
                throw new ScriptError(n, "multi check <path> <version>");
            }
            return Op.check(t.get(1), (int) number(n, t.get(2)));
        default:
            throw new ScriptError(n, "unknown multi op `" + t.get(0) + "`");
        }
    }

    String formatResults(List<OpResult> results) {
        List<String> out = new ArrayList<>();
        for (OpResult r : results) {
            if (r instanceof OpResult.CreateResult) {
                out.add("create:" + ((OpResult.CreateResult) r).getPath());
            } else if (r instanceof OpResult.DeleteResult) {
                out.add("delete");
            } else if (r instanceof OpResult.SetDataResult) {
                out.add("set:" + stat(((OpResult.SetDataResult) r).getStat()));
            } else if (r instanceof OpResult.CheckResult) {
                out.add("check");
            } else if (r instanceof OpResult.ErrorResult) {
                out.add("error:" + codeName(((OpResult.ErrorResult) r).getErr()));
            } else {
                out.add("unknown:" + r.getClass().getSimpleName());
            }
        }
        return String.join(";", out);
    }

    /** Waits until every open session has delivered all earlier events, then prints them. */
    void barrierAndCollect(int n, List<String> out) throws InterruptedException {
        for (Session s : sessions) {
            if (!s.open) {
                continue;
            }
            CountDownLatch done = new CountDownLatch(1);
            s.zk.exists("/", false, (rc, path, ctx, stat) -> done.countDown(), null);
            await(done, "barrier on session " + s.name);
        }
        for (Session s : new ArrayList<>(sessions)) {
            for (String e : s.recorder.drain()) {
                out.add(n + " event " + s.name + " " + e);
            }
            if (!s.open) {
                sessions.remove(s);
            }
        }
    }

    static void await(CountDownLatch latch, String what) throws InterruptedException {
        if (!latch.await(WAIT_SECONDS, TimeUnit.SECONDS)) {
            throw new IllegalStateException("timed out waiting for " + what);
        }
    }

    // ------------------------------------------------------------- arguments

    static byte[] data(String token) {
        if (token.equals("-")) {
            return null;
        }
        if (token.equals("''")) {
            return new byte[0];
        }
        return token.getBytes(StandardCharsets.UTF_8);
    }

    static long number(int n, String token) {
        try {
            return Long.parseLong(token);
        } catch (NumberFormatException e) {
            throw new ScriptError(n, "`" + token + "` is not a number");
        }
    }

    static boolean watchFlag(int n, List<String> tok) {
        if (tok.size() < 4) {
            return false;
        }
        if (!tok.get(3).equals("watch")) {
            throw new ScriptError(n, "expected `watch`, got `" + tok.get(3) + "`");
        }
        return true;
    }

    static Watcher.WatcherType watcherType(int n, String token) {
        switch (token) {
        case "children":
            return Watcher.WatcherType.Children;
        case "data":
            return Watcher.WatcherType.Data;
        case "any":
            return Watcher.WatcherType.Any;
        default:
            throw new ScriptError(n, "watcher type must be children|data|any");
        }
    }

    static final Map<String, CreateMode> MODES = new LinkedHashMap<>();

    static {
        MODES.put("persistent", CreateMode.PERSISTENT);
        MODES.put("ephemeral", CreateMode.EPHEMERAL);
        MODES.put("persistent_sequential", CreateMode.PERSISTENT_SEQUENTIAL);
        MODES.put("ephemeral_sequential", CreateMode.EPHEMERAL_SEQUENTIAL);
        MODES.put("container", CreateMode.CONTAINER);
        MODES.put("ttl", CreateMode.PERSISTENT_WITH_TTL);
        MODES.put("ttl_sequential", CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL);
    }

    static CreateMode mode(int n, String token) {
        CreateMode m = MODES.get(token);
        if (m == null) {
            throw new ScriptError(n, "unknown create mode `" + token + "`, expected one of " + MODES.keySet());
        }
        return m;
    }

    static int flags(int n, String token) {
        CreateMode m = MODES.get(token);
        return m != null ? m.toFlag() : (int) number(n, token);
    }

    static List<ACL> acl(int n, String token) {
        switch (token) {
        case "open":
            return ZooDefs.Ids.OPEN_ACL_UNSAFE;
        case "read":
            return ZooDefs.Ids.READ_ACL_UNSAFE;
        case "creator":
            return ZooDefs.Ids.CREATOR_ALL_ACL;
        default:
            break;
        }
        List<ACL> out = new ArrayList<>();
        for (String entry : token.split(",")) {
            int first = entry.indexOf(':');
            int last = entry.lastIndexOf(':');
            if (first < 0 || first == last) {
                throw new ScriptError(n, "ACL entry `" + entry + "` is not scheme:id:perms");
            }
            int perms = 0;
            for (char c : entry.substring(last + 1).toCharArray()) {
                switch (c) {
                case 'c':
                    perms |= ZooDefs.Perms.CREATE;
                    break;
                case 'd':
                    perms |= ZooDefs.Perms.DELETE;
                    break;
                case 'r':
                    perms |= ZooDefs.Perms.READ;
                    break;
                case 'w':
                    perms |= ZooDefs.Perms.WRITE;
                    break;
                case 'a':
                    perms |= ZooDefs.Perms.ADMIN;
                    break;
                default:
                    throw new ScriptError(n, "unknown permission `" + c + "` in `" + entry + "`");
                }
            }
            out.add(new ACL(perms, new Id(entry.substring(0, first), entry.substring(first + 1, last))));
        }
        return out;
    }

    // ---------------------------------------------------------------- output

    static String codeName(int code) {
        KeeperException.Code c = KeeperException.Code.get(code);
        return c == null ? "CODE" + code : c.name();
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    static String showData(byte[] d) {
        if (d == null) {
            return "-";
        }
        if (d.length == 0) {
            return "''";
        }
        return new String(d, StandardCharsets.UTF_8);
    }

    static String perms(int p) {
        StringBuilder sb = new StringBuilder();
        if ((p & ZooDefs.Perms.CREATE) != 0) {
            sb.append('c');
        }
        if ((p & ZooDefs.Perms.DELETE) != 0) {
            sb.append('d');
        }
        if ((p & ZooDefs.Perms.READ) != 0) {
            sb.append('r');
        }
        if ((p & ZooDefs.Perms.WRITE) != 0) {
            sb.append('w');
        }
        if ((p & ZooDefs.Perms.ADMIN) != 0) {
            sb.append('a');
        }
        int rest = p & ~ZooDefs.Perms.ALL;
        if (rest != 0) {
            sb.append('+').append(hex(rest));
        }
        return sb.toString();
    }

    static String showAcl(List<ACL> acl) {
        if (acl == null) {
            return "-";
        }
        return acl.stream()
            .map(a -> a.getId().getScheme() + ":" + a.getId().getId() + ":" + perms(a.getPerms()))
            .collect(Collectors.joining(","));
    }

    String owner(long id) {
        String name = sessionNames.get(id);
        return name != null ? name : hex(id);
    }

    String stat(Stat s) {
        if (s == null) {
            return "null";
        }
        return hex(s.getCzxid()) + "," + hex(s.getMzxid()) + "," + hex(s.getPzxid()) + ","
            + s.getVersion() + "," + s.getCversion() + "," + s.getAversion() + ","
            + owner(s.getEphemeralOwner()) + "," + s.getDataLength() + "," + s.getNumChildren();
    }

    /**
     * The tree exactly as the server's DataTree holds it, preorder, children
     * sorted. Stat fields are the stored (StatPersisted) values: cversion is the
     * stored count, ephemeralOwner the raw owner (container and TTL markers
     * included); dataLength and numChildren are derived from the node.
     */
    static List<String> dumpTree(DataTree tree) {
        List<String> out = new ArrayList<>();
        dumpNode(tree, "/", out);
        out.add("digest " + hex(tree.getTreeDigest()));
        return out;
    }

    static void dumpNode(DataTree tree, String path, List<String> out) {
        DataNode node = tree.getNode(path);
        if (node == null) {
            return;
        }
        byte[] data;
        StatPersisted st = new StatPersisted();
        List<String> children;
        synchronized (node) {
            data = node.getData();
            DataTree.copyStatPersisted(node.stat, st);
            children = new ArrayList<>(node.getChildren());
        }
        Collections.sort(children);
        List<ACL> acl = tree.getACL(node);
        StringBuilder sb = new StringBuilder(path);
        sb.append(" data=").append(data == null ? "-" : hexBytes(data));
        sb.append(" czxid=").append(hex(st.getCzxid()));
        sb.append(" mzxid=").append(hex(st.getMzxid()));
        sb.append(" ctime=").append(st.getCtime());
        sb.append(" mtime=").append(st.getMtime());
        sb.append(" version=").append(st.getVersion());
        sb.append(" cversion=").append(st.getCversion());
        sb.append(" aversion=").append(st.getAversion());
        sb.append(" ephemeralOwner=").append(hex(st.getEphemeralOwner()));
        sb.append(" dataLength=").append(data == null ? 0 : data.length);
        sb.append(" numChildren=").append(children.size());
        sb.append(" pzxid=").append(hex(st.getPzxid()));
        sb.append(" acl=").append(showAcl(acl));
        out.add(sb.toString());
        for (String c : children) {
            dumpNode(tree, path.equals("/") ? "/" + c : path + "/" + c, out);
        }
    }

    static String hexBytes(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) {
            sb.append(String.format("%02x", x & 0xff));
        }
        return sb.toString();
    }

    static void writeLines(Path p, List<String> lines) throws IOException {
        try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(p, StandardCharsets.UTF_8))) {
            for (String l : lines) {
                w.print(l);
                w.print('\n');
            }
        }
    }

    static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(p)) {
            for (Path q : walk.sorted(Comparator.reverseOrder()).collect(Collectors.toList())) {
                Files.delete(q);
            }
        }
    }
}
