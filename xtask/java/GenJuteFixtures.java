/*
 * GenJuteFixtures: writes golden-byte fixtures for the ZooKeeper jute wire
 * format, produced by Apache ZooKeeper 3.8.0's own generated record classes.
 *
 * Every output file holds the raw bytes of one record serialized through
 * org.apache.jute.BinaryOutputArchive (record.serialize(archive, "")), named
 * <RecordName>.<case>.bin. A few extra fixtures cover framing that is not a
 * generated jute class (connect handshake with its trailing readOnly flag,
 * multi requests/responses, length-prefixed TCP frames).
 *
 * Usage (from the repository root):
 *   ZK=/usr/share/java
 *   javac -cp $ZK/zookeeper-jute.jar:$ZK/zookeeper.jar -d /tmp/genfix xtask/java/GenJuteFixtures.java
 *   java -cp /tmp/genfix:$ZK/zookeeper-jute.jar:$ZK/zookeeper.jar:$ZK/slf4j-api.jar:$ZK/slf4j-nop.jar \
 *        GenJuteFixtures <outdir>
 * (slf4j-nop only silences SLF4J's "no binding" warning.) Besides the .bin
 * files, <outdir>/MANIFEST.txt lists "<file> <RecordName> <length>" per line.
 *
 * Output is fully deterministic: no clocks, no randomness; all "timestamps"
 * are fixed constants.
 */

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.apache.jute.BinaryInputArchive;
import org.apache.jute.BinaryOutputArchive;
import org.apache.jute.Record;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.MultiOperationRecord;
import org.apache.zookeeper.MultiResponse;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.ZooDefs.OpCode;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.data.StatPersisted;
import org.apache.zookeeper.proto.AddWatchRequest;
import org.apache.zookeeper.proto.AuthPacket;
import org.apache.zookeeper.proto.CheckVersionRequest;
import org.apache.zookeeper.proto.CheckWatchesRequest;
import org.apache.zookeeper.proto.ConnectRequest;
import org.apache.zookeeper.proto.ConnectResponse;
import org.apache.zookeeper.proto.Create2Response;
import org.apache.zookeeper.proto.CreateRequest;
import org.apache.zookeeper.proto.CreateResponse;
import org.apache.zookeeper.proto.CreateTTLRequest;
import org.apache.zookeeper.proto.DeleteRequest;
import org.apache.zookeeper.proto.ErrorResponse;
import org.apache.zookeeper.proto.ExistsRequest;
import org.apache.zookeeper.proto.ExistsResponse;
import org.apache.zookeeper.proto.GetACLRequest;
import org.apache.zookeeper.proto.GetACLResponse;
import org.apache.zookeeper.proto.GetAllChildrenNumberRequest;
import org.apache.zookeeper.proto.GetAllChildrenNumberResponse;
import org.apache.zookeeper.proto.GetChildren2Request;
import org.apache.zookeeper.proto.GetChildren2Response;
import org.apache.zookeeper.proto.GetChildrenRequest;
import org.apache.zookeeper.proto.GetChildrenResponse;
import org.apache.zookeeper.proto.GetDataRequest;
import org.apache.zookeeper.proto.GetDataResponse;
import org.apache.zookeeper.proto.GetEphemeralsRequest;
import org.apache.zookeeper.proto.GetEphemeralsResponse;
import org.apache.zookeeper.proto.GetMaxChildrenRequest;
import org.apache.zookeeper.proto.GetMaxChildrenResponse;
import org.apache.zookeeper.proto.GetSASLRequest;
import org.apache.zookeeper.proto.MultiHeader;
import org.apache.zookeeper.proto.ReconfigRequest;
import org.apache.zookeeper.proto.RemoveWatchesRequest;
import org.apache.zookeeper.proto.ReplyHeader;
import org.apache.zookeeper.proto.RequestHeader;
import org.apache.zookeeper.proto.SetACLRequest;
import org.apache.zookeeper.proto.SetACLResponse;
import org.apache.zookeeper.proto.SetDataRequest;
import org.apache.zookeeper.proto.SetDataResponse;
import org.apache.zookeeper.proto.SetMaxChildrenRequest;
import org.apache.zookeeper.proto.SetSASLRequest;
import org.apache.zookeeper.proto.SetSASLResponse;
import org.apache.zookeeper.proto.SetWatches;
import org.apache.zookeeper.proto.SetWatches2;
import org.apache.zookeeper.proto.SyncRequest;
import org.apache.zookeeper.proto.SyncResponse;
import org.apache.zookeeper.proto.WatcherEvent;
import org.apache.zookeeper.proto.WhoAmIResponse;
import org.apache.zookeeper.server.persistence.FileHeader;
import org.apache.zookeeper.server.quorum.LearnerInfo;
import org.apache.zookeeper.server.quorum.QuorumAuthPacket;
import org.apache.zookeeper.server.quorum.QuorumPacket;
import org.apache.zookeeper.txn.CheckVersionTxn;
import org.apache.zookeeper.txn.CloseSessionTxn;
import org.apache.zookeeper.txn.CreateContainerTxn;
import org.apache.zookeeper.txn.CreateSessionTxn;
import org.apache.zookeeper.txn.CreateTTLTxn;
import org.apache.zookeeper.txn.CreateTxn;
import org.apache.zookeeper.txn.CreateTxnV0;
import org.apache.zookeeper.txn.DeleteTxn;
import org.apache.zookeeper.txn.ErrorTxn;
import org.apache.zookeeper.txn.MultiTxn;
import org.apache.zookeeper.txn.SetACLTxn;
import org.apache.zookeeper.txn.SetDataTxn;
import org.apache.zookeeper.txn.SetMaxChildrenTxn;
import org.apache.zookeeper.txn.Txn;
import org.apache.zookeeper.txn.TxnDigest;
import org.apache.zookeeper.txn.TxnHeader;

public class GenJuteFixtures {

    // ---------------------------------------------------------------------
    // Shared sample values
    // ---------------------------------------------------------------------

    /**
     * Non-ASCII path with 2-byte, 3-byte and supplementary-plane characters.
     *
     * Note: jute's BinaryOutputArchive.writeString encodes each UTF-16 char on
     * its own, so a supplementary character (the crab, a surrogate pair) comes
     * out as two 3-byte sequences (CESU-8 style, 6 bytes) rather than the
     * 4-byte UTF-8 form. Buffers built with String.getBytes(UTF_8) use real
     * UTF-8. UNICODE_BMP below avoids the difference.
     */
    static final String UNICODE = "/\u00fcn\u00efc\u00f8d\u00e9/\u65e5\u672c\u8a9e/\uD83E\uDD80";
    // Components of UNICODE (source kept ASCII so javac's default charset does not matter).
    static final String U_LATIN = "\u00fcn\u00efc\u00f8d\u00e9";   // latin letters with diacritics
    static final String U_CJK = "\u65e5\u672c\u8a9e";              // three CJK ideographs
    static final String U_CRAB = "\uD83E\uDD80";                   // U+1F980, 4 bytes in UTF-8
    /** Non-ASCII path with BMP characters only (same bytes as standard UTF-8). */
    static final String UNICODE_BMP = "/" + U_LATIN + "/" + U_CJK;

    /** Fixed "wall clock" used wherever ZooKeeper would store a timestamp. */
    static final long TIME = 1_700_000_000_000L;

    /** A typical session id: server id 1 in the top byte. */
    static final long SESSION = 0x0100_0abc_def0_1234L;

    // Watcher.Event.EventType / KeeperState numeric codes.
    static final int EVENT_NONE = -1;
    static final int EVENT_NODE_DATA_CHANGED = 3;
    static final int STATE_SYNC_CONNECTED = 3;
    static final int STATE_EXPIRED = -112;

    // KeeperException.Code values used in samples.
    static final int ERR_OK = 0;
    static final int ERR_RUNTIME_INCONSISTENCY = -2;
    static final int ERR_NO_NODE = -101;
    static final int ERR_NODE_EXISTS = -110;

    // Learner/leader packet types (QuorumPacket.type) as the leader uses them.
    static final int QP_REQUEST = 1;
    static final int QP_PROPOSAL = 2;
    static final int QP_ACK = 3;

    // Magic numbers of on-disk files: the ASCII bytes "ZKLG" / "ZKSN" read as
    // a big-endian int, with file-format version 2.
    static final int TXNLOG_MAGIC = ByteBuffer.wrap(ascii("ZKLG")).getInt();
    static final int SNAP_MAGIC = ByteBuffer.wrap(ascii("ZKSN")).getInt();
    static final int FILE_VERSION = 2;

    /** Magic that prefixes every quorum SASL auth packet. */
    static final long QUORUM_AUTH_MAGIC = -0xa0dbcafecafe1234L;

    /** Protocol version a 3.x learner announces in LearnerInfo. */
    static final int LEARNER_PROTOCOL_VERSION = 0x10000;

    /** Digest version ZooKeeper 3.8 writes in TxnDigest. */
    static final int DIGEST_VERSION = 2;

    static final Id WORLD_ANYONE = new Id("world", "anyone");
    static final Id DIGEST_ID = new Id("digest", "alice:Yw6QTaCzAcfPi3ESPHLHSMPCpoY=");
    static final Id IP_ID = new Id("ip", "10.0.0.0/8");

    /** The "open" ACL: world:anyone with all permissions. */
    static final List<ACL> OPEN_ACL = List.of(new ACL(Perms.ALL, WORLD_ANYONE));

    /** One ACL entry per common scheme. */
    static final List<ACL> MIXED_ACL = List.of(
        new ACL(Perms.READ, WORLD_ANYONE),
        new ACL(Perms.ALL, DIGEST_ID),
        new ACL(Perms.READ | Perms.WRITE, IP_ID));

    // ---------------------------------------------------------------------
    // Output bookkeeping
    // ---------------------------------------------------------------------

    private final Path outDir;
    /** file name -> byte length (and sorted by file name for the manifest). */
    private final Map<String, Integer> written = new TreeMap<>();

    GenJuteFixtures(Path outDir) {
        this.outDir = outDir;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: GenJuteFixtures <outdir>");
            System.exit(2);
        }
        Path out = Paths.get(args[0]);
        Files.createDirectories(out);
        GenJuteFixtures g = new GenJuteFixtures(out);
        g.dataModule();
        g.protoModule();
        g.quorumModule();
        g.persistenceModule();
        g.txnModule();
        g.handshake();
        g.multi();
        g.frames();
        g.writeManifest();
        System.out.println("wrote " + g.written.size() + " fixtures to " + out);
    }

    /** Serialize a generated jute record; file name prefix is its class name. */
    void rec(String kase, Record r) throws Exception {
        byte[] bytes = serialize(r);
        emit(r.getClass().getSimpleName(), kase, bytes);
        reencoded(r.getClass().getSimpleName(), kase, r.getClass(), bytes);
    }

    /**
     * Reads bytes back with ZooKeeper's own BinaryInputArchive into a fresh instance of
     * recordClass and writes them again. Where that does not reproduce the input (jute
     * writes supplementary characters as two 3-byte surrogates but reads strings as
     * standard UTF-8, so they come back as replacement characters), the re-encoding is
     * kept as <recordName>.<case>.reencoded: what a compatible decoder+encoder must give.
     */
    void reencoded(String recordName, String kase, Class<? extends Record> recordClass,
                   byte[] bytes) throws Exception {
        Record fresh = recordClass.getDeclaredConstructor().newInstance();
        fresh.deserialize(BinaryInputArchive.getArchive(new ByteArrayInputStream(bytes)), "");
        byte[] again = serialize(fresh);
        if (!java.util.Arrays.equals(bytes, again)) {
            String name = recordName + "." + kase + ".reencoded";
            Files.write(outDir.resolve(name), again);
            written.put(name, again.length);
        }
    }

    /** Write raw bytes as <recordName>.<kase>.bin; duplicate names are a bug. */
    void emit(String recordName, String kase, byte[] bytes) throws IOException {
        if (!kase.matches("[a-z0-9]+(-[a-z0-9]+)*")) {
            throw new IllegalArgumentException("bad case label: " + kase);
        }
        String name = recordName + "." + kase + ".bin";
        if (written.containsKey(name)) {
            throw new IllegalStateException("duplicate fixture: " + name);
        }
        Files.write(outDir.resolve(name), bytes);
        written.put(name, bytes.length);
    }

    void writeManifest() throws IOException {
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, Integer> e : written.entrySet()) {
            String name = e.getKey();
            String recordName = name.substring(0, name.indexOf('.'));
            sb.append(name).append(' ').append(recordName).append(' ')
              .append(e.getValue()).append('\n');
        }
        Files.write(outDir.resolve("MANIFEST.txt"), sb.toString().getBytes(StandardCharsets.UTF_8));
    }

    // ---------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------

    static byte[] serialize(Record r) throws IOException {
        ByteArrayOutputStream baos = new ByteArrayOutputStream();
        BinaryOutputArchive boa = BinaryOutputArchive.getArchive(baos);
        r.serialize(boa, "");
        return baos.toByteArray();
    }

    static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** n bytes with value i % 251 (a prime, so the pattern does not align to 256). */
    static byte[] pattern(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i % 251);
        }
        return b;
    }

    /** 16-byte session password with recognisable content. */
    static byte[] passwd() {
        byte[] b = new byte[16];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) (0xa0 + i);
        }
        return b;
    }

    /** A plausible Stat with every field distinct, so field order is checked. */
    static Stat stat() {
        return new Stat(
            0x100000001L,      // czxid
            0x100000005L,      // mzxid
            TIME,              // ctime
            TIME + 1234,       // mtime
            4,                 // version
            2,                 // cversion
            1,                 // aversion
            SESSION,           // ephemeralOwner
            5,                 // dataLength
            2,                 // numChildren
            0x100000003L);     // pzxid
    }

    static Stat statAll(long l, int i) {
        return new Stat(l, l, l, l, i, i, i, l, i, i, l);
    }

    /** Concatenate the serialized forms of several records (no separators). */
    static byte[] concat(Record... rs) throws IOException {
        ByteArrayOutputStream baos = new ByteArrayOutputStream();
        BinaryOutputArchive boa = BinaryOutputArchive.getArchive(baos);
        for (Record r : rs) {
            r.serialize(boa, "");
        }
        return baos.toByteArray();
    }

    /** Prefix a payload with its 4-byte big-endian length, as on the TCP wire. */
    static byte[] frame(byte[] payload) {
        return ByteBuffer.allocate(4 + payload.length).putInt(payload.length).put(payload).array();
    }

    /** An inner txn as ZooKeeper stores it inside Txn/MultiTxn: type + record bytes. */
    static Txn txn(int type, Record inner) throws IOException {
        return new Txn(type, serialize(inner));
    }

    // ---------------------------------------------------------------------
    // module org.apache.zookeeper.data
    // ---------------------------------------------------------------------

    void dataModule() throws Exception {
        rec("basic", WORLD_ANYONE);
        rec("ip", IP_ID);
        rec("null-strings", new Id(null, null));
        rec("unicode", new Id("x-" + U_LATIN, UNICODE));

        rec("basic", new ACL(Perms.ALL, WORLD_ANYONE));
        rec("digest", new ACL(Perms.READ | Perms.ADMIN, DIGEST_ID));
        rec("ip", new ACL(Perms.READ | Perms.WRITE, IP_ID));
        rec("min", new ACL(Integer.MIN_VALUE, WORLD_ANYONE));

        rec("basic", stat());
        rec("max", statAll(Long.MAX_VALUE, Integer.MAX_VALUE));
        rec("min", statAll(Long.MIN_VALUE, Integer.MIN_VALUE));

        rec("basic", new StatPersisted(0x100000001L, 0x100000005L, TIME, TIME + 1234,
            4, 2, 1, 0L, 0x100000003L));
        rec("max", new StatPersisted(Long.MAX_VALUE, Long.MAX_VALUE, Long.MAX_VALUE, Long.MAX_VALUE,
            Integer.MAX_VALUE, Integer.MAX_VALUE, Integer.MAX_VALUE, Long.MAX_VALUE, Long.MAX_VALUE));

        rec("basic", new ClientInfo("digest", "alice"));
        rec("null-strings", new ClientInfo(null, null));
        rec("unicode", new ClientInfo("sasl", U_LATIN + "@" + U_CJK));
    }

    // ---------------------------------------------------------------------
    // module org.apache.zookeeper.proto
    // ---------------------------------------------------------------------

    void protoModule() throws Exception {
        // Fresh session: protocol 0, nothing seen, no session yet, 16 zero bytes.
        rec("basic", new ConnectRequest(0, 0L, 30000, 0L, new byte[16]));
        rec("reconnect", new ConnectRequest(0, 0x100000005L, 40000, SESSION, passwd()));
        rec("null-passwd", new ConnectRequest(0, 0L, 30000, 0L, null));

        rec("basic", new ConnectResponse(0, 30000, SESSION, passwd()));
        rec("null-passwd", new ConnectResponse(0, 0, 0L, null));

        rec("basic", new SetWatches(0x100000005L,
            List.of("/a", "/b"), List.of("/c"), List.of("/d", "/e", "/f")));
        rec("empty", new SetWatches(0L, List.of(), List.of(), List.of()));
        rec("null-vectors", new SetWatches(-1L, null, null, null));

        rec("basic", new SetWatches2(0x100000005L,
            List.of("/a"), List.of("/b"), List.of("/c"), List.of("/p"), List.of("/r", "/r2")));
        rec("null-vectors", new SetWatches2(0L, null, null, null, null, null));

        rec("basic", new RequestHeader(1, OpCode.create));
        rec("ping", new RequestHeader(-2, OpCode.ping));           // ping uses xid -2
        rec("max", new RequestHeader(Integer.MAX_VALUE, Integer.MAX_VALUE));
        rec("min", new RequestHeader(Integer.MIN_VALUE, Integer.MIN_VALUE));

        rec("basic", new MultiHeader(OpCode.create, false, -1));
        rec("done", new MultiHeader(-1, true, -1));                // end-of-multi marker
        rec("error", new MultiHeader(OpCode.error, false, ERR_NO_NODE));

        rec("basic", new AuthPacket(0, "digest", utf8("alice:secret")));
        rec("null-auth", new AuthPacket(0, "digest", null));
        rec("empty-auth", new AuthPacket(0, "ip", new byte[0]));

        rec("basic", new ReplyHeader(1, 0x100000005L, ERR_OK));
        rec("notification", new ReplyHeader(-1, -1L, ERR_OK));     // watch event
        rec("error", new ReplyHeader(3, 0x100000005L, ERR_NO_NODE));
        rec("min", new ReplyHeader(Integer.MIN_VALUE, Long.MIN_VALUE, Integer.MIN_VALUE));

        rec("basic", new GetDataRequest("/a/b", true));
        rec("no-watch", new GetDataRequest("/a/b", false));

        rec("basic", new SetDataRequest("/a", utf8("hello"), 3));
        rec("null-data", new SetDataRequest("/a", null, -1));
        rec("empty-data", new SetDataRequest("/a", new byte[0], 0));

        rec("basic", new ReconfigRequest("server.4=127.0.0.1:2891:3891;2184", "2",
            null, -1L));
        rec("null-strings", new ReconfigRequest(null, null, null, -1L));
        rec("new-members", new ReconfigRequest(null, null,
            "server.1=h1:2888:3888;2181,server.2=h2:2888:3888;2181", 0x100000000L));

        rec("basic", new SetDataResponse(stat()));

        rec("basic", new GetSASLRequest(utf8("sasl-token")));
        rec("null-token", new GetSASLRequest(null));

        rec("basic", new SetSASLRequest(utf8("client-response")));
        rec("empty-token", new SetSASLRequest(new byte[0]));

        rec("basic", new SetSASLResponse(utf8("server-challenge")));
        rec("null-token", new SetSASLResponse(null));

        // flags: CreateMode.toFlag() values (0 persistent, 3 ephemeral sequential).
        rec("basic", new CreateRequest("/a", utf8("hello"), OPEN_ACL, 0));
        rec("ephemeral-sequential", new CreateRequest("/q/item-", utf8("x"), MIXED_ACL, 3));
        rec("null-data", new CreateRequest("/a", null, OPEN_ACL, 0));
        rec("empty-acl", new CreateRequest("/a", utf8("hello"), List.of(), 0));
        rec("null-acl", new CreateRequest("/a", utf8("hello"), null, 0));
        rec("unicode", new CreateRequest(UNICODE, utf8(UNICODE), OPEN_ACL, 1));
        rec("unicode-bmp", new CreateRequest(UNICODE_BMP, utf8(UNICODE_BMP), OPEN_ACL, 0));

        // flags 5/6: persistent(-sequential) with TTL.
        rec("basic", new CreateTTLRequest("/ttl", utf8("v"), OPEN_ACL, 5, 60_000L));
        rec("max", new CreateTTLRequest("/ttl", utf8("v"), OPEN_ACL, 6, Long.MAX_VALUE));

        rec("basic", new DeleteRequest("/a", 3));
        rec("any-version", new DeleteRequest("/a", -1));

        rec("basic", new GetChildrenRequest("/a", true));

        rec("basic", new GetAllChildrenNumberRequest("/a"));

        rec("basic", new GetChildren2Request("/a", true));

        rec("basic", new CheckVersionRequest("/a", 3));
        rec("negative", new CheckVersionRequest("/a", -1));

        rec("basic", new GetMaxChildrenRequest("/a"));

        rec("basic", new GetMaxChildrenResponse(10));

        rec("basic", new SetMaxChildrenRequest("/a", 10));

        rec("basic", new SyncRequest("/a"));
        rec("basic", new SyncResponse("/a"));

        rec("basic", new GetACLRequest("/a"));

        rec("basic", new SetACLRequest("/a", MIXED_ACL, 1));
        rec("empty-acl", new SetACLRequest("/a", List.of(), -1));

        rec("basic", new SetACLResponse(stat()));

        // mode: 0 persistent, 1 persistent recursive.
        rec("basic", new AddWatchRequest("/a", 0));
        rec("recursive", new AddWatchRequest("/a", 1));

        rec("basic", new WatcherEvent(EVENT_NODE_DATA_CHANGED, STATE_SYNC_CONNECTED, "/a"));
        // A session-state event carries no path; it is sent as a null string.
        rec("session-expired", new WatcherEvent(EVENT_NONE, STATE_EXPIRED, null));

        rec("basic", new ErrorResponse(ERR_NO_NODE));

        rec("basic", new CreateResponse("/a"));
        rec("sequential", new CreateResponse("/q/item-0000000001"));

        rec("basic", new Create2Response("/a", stat()));

        rec("basic", new ExistsRequest("/a", true));

        rec("basic", new ExistsResponse(stat()));

        rec("basic", new GetDataResponse(utf8("hello"), stat()));
        rec("null-data", new GetDataResponse(null, stat()));
        rec("empty-data", new GetDataResponse(new byte[0], stat()));
        rec("1k", new GetDataResponse(pattern(1024), stat()));

        rec("basic", new GetChildrenResponse(List.of("a", "b", "c")));
        rec("empty", new GetChildrenResponse(List.of()));
        rec("null-vector", new GetChildrenResponse(null));
        rec("unicode", new GetChildrenResponse(List.of(U_LATIN, U_CJK, U_CRAB)));
        rec("unicode-bmp", new GetChildrenResponse(List.of(U_LATIN, U_CJK)));

        rec("basic", new GetAllChildrenNumberResponse(42));

        rec("basic", new GetChildren2Response(List.of("a", "b"), stat()));

        rec("basic", new GetACLResponse(OPEN_ACL, stat()));
        rec("mixed-acl", new GetACLResponse(MIXED_ACL, stat()));

        // type: WatcherType code (1 children, 2 data, 3 any).
        rec("basic", new CheckWatchesRequest("/a", 1));

        rec("basic", new RemoveWatchesRequest("/a", 2));

        rec("basic", new GetEphemeralsRequest("/app"));

        rec("basic", new GetEphemeralsResponse(List.of("/app/lock-1", "/app/lock-2")));
        rec("empty", new GetEphemeralsResponse(List.of()));

        rec("basic", new WhoAmIResponse(List.of(
            new ClientInfo("ip", "127.0.0.1"), new ClientInfo("digest", "alice"))));
        rec("empty", new WhoAmIResponse(List.of()));
        rec("null-vector", new WhoAmIResponse(null));
    }

    // ---------------------------------------------------------------------
    // module org.apache.zookeeper.server.quorum
    // ---------------------------------------------------------------------

    void quorumModule() throws Exception {
        rec("basic", new LearnerInfo(1L, LEARNER_PROTOCOL_VERSION, 0x100000000L));

        // A proposal's data is the marshalled txn entry: TxnHeader, txn record,
        // then the optional TxnDigest, back to back.
        TxnHeader hdr = new TxnHeader(SESSION, 1, 0x100000006L, TIME, OpCode.create);
        byte[] entry = concat(hdr,
            new CreateTxn("/a", utf8("hello"), OPEN_ACL, false, 1),
            new TxnDigest(DIGEST_VERSION, 0x1234_5678_9abcL));

        rec("basic", new QuorumPacket(QP_ACK, 0x100000006L, null, null));
        rec("proposal", new QuorumPacket(QP_PROPOSAL, 0x100000006L, entry, null));
        rec("request-authinfo", new QuorumPacket(QP_REQUEST, -1L, utf8("req"),
            List.of(WORLD_ANYONE, DIGEST_ID, IP_ID)));

        // status: 0 in progress, 1 success, -1 error.
        rec("basic", new QuorumAuthPacket(QUORUM_AUTH_MAGIC, 0, utf8("sasl-token")));
        rec("success-null-token", new QuorumAuthPacket(QUORUM_AUTH_MAGIC, 1, null));
    }

    // ---------------------------------------------------------------------
    // module org.apache.zookeeper.server.persistence
    // ---------------------------------------------------------------------

    void persistenceModule() throws Exception {
        rec("basic", new FileHeader(TXNLOG_MAGIC, FILE_VERSION, 0L));     // txn log
        rec("snapshot", new FileHeader(SNAP_MAGIC, FILE_VERSION, 0L));
    }

    // ---------------------------------------------------------------------
    // module org.apache.zookeeper.txn
    // ---------------------------------------------------------------------

    void txnModule() throws Exception {
        rec("basic", new TxnDigest(DIGEST_VERSION, 0x1234_5678_9abcL));
        rec("max", new TxnDigest(Integer.MAX_VALUE, Long.MAX_VALUE));
        rec("min", new TxnDigest(Integer.MIN_VALUE, Long.MIN_VALUE));

        rec("basic", new TxnHeader(SESSION, 1, 0x100000006L, TIME, OpCode.create));
        rec("create-session", new TxnHeader(SESSION, 0, 0x100000001L, TIME, OpCode.createSession));
        rec("min", new TxnHeader(Long.MIN_VALUE, Integer.MIN_VALUE, Long.MIN_VALUE,
            Long.MIN_VALUE, Integer.MIN_VALUE));

        rec("basic", new CreateTxnV0("/a", utf8("hello"), OPEN_ACL, false));
        rec("null-data", new CreateTxnV0("/a", null, OPEN_ACL, true));

        rec("basic", new CreateTxn("/a", utf8("hello"), OPEN_ACL, false, 1));
        rec("ephemeral", new CreateTxn("/e", utf8("x"), MIXED_ACL, true, 7));
        rec("null-data", new CreateTxn("/a", null, OPEN_ACL, false, 1));
        rec("null-acl", new CreateTxn("/a", utf8("hello"), null, false, -1));
        rec("unicode", new CreateTxn(UNICODE, utf8(UNICODE), OPEN_ACL, false, Integer.MAX_VALUE));

        rec("basic", new CreateTTLTxn("/ttl", utf8("v"), OPEN_ACL, 1, 60_000L));
        rec("max", new CreateTTLTxn("/ttl", null, OPEN_ACL, Integer.MAX_VALUE, Long.MAX_VALUE));

        rec("basic", new CreateContainerTxn("/c", utf8("v"), OPEN_ACL, 1));

        rec("basic", new DeleteTxn("/a"));

        rec("basic", new SetDataTxn("/a", utf8("world"), 4));
        rec("null-data", new SetDataTxn("/a", null, 1));

        rec("basic", new CheckVersionTxn("/a", 4));

        rec("basic", new SetACLTxn("/a", MIXED_ACL, 2));

        rec("basic", new SetMaxChildrenTxn("/a", 10));

        rec("basic", new CreateSessionTxn(30000));

        rec("basic", new CloseSessionTxn(List.of("/e1", "/e2")));
        rec("empty", new CloseSessionTxn(List.of()));

        rec("basic", new ErrorTxn(ERR_NO_NODE));

        // Txn.data is the serialized bytes of the inner txn record, as ZooKeeper
        // builds the sub-transactions of a multi.
        rec("basic", txn(OpCode.create, new CreateTxn("/a", utf8("hello"), OPEN_ACL, false, 1)));
        rec("delete", txn(OpCode.delete, new DeleteTxn("/a")));
        rec("null-data", new Txn(OpCode.delete, null));

        rec("basic", new MultiTxn(List.of(
            txn(OpCode.create, new CreateTxn("/m", utf8("1"), OPEN_ACL, false, 1)),
            txn(OpCode.setData, new SetDataTxn("/m", utf8("2"), 1)),
            txn(OpCode.check, new CheckVersionTxn("/m", 1)),
            txn(OpCode.delete, new DeleteTxn("/m")))));
        // A failed multi is logged as error sub-txns: the failing op carries its
        // own code, the others a runtime-inconsistency code.
        rec("failed", new MultiTxn(List.of(
            txn(OpCode.error, new ErrorTxn(ERR_RUNTIME_INCONSISTENCY)),
            txn(OpCode.error, new ErrorTxn(ERR_NODE_EXISTS)),
            txn(OpCode.error, new ErrorTxn(ERR_RUNTIME_INCONSISTENCY)))));
        rec("empty", new MultiTxn(List.of()));
    }

    // ---------------------------------------------------------------------
    // Connect handshake: record followed by a trailing readOnly boolean
    // ---------------------------------------------------------------------

    void handshake() throws Exception {
        // ZooKeeper 3.8's ConnectRequest/ConnectResponse jute classes have no
        // readOnly field. The client appends the "may I use a read-only server"
        // flag after the ConnectRequest record (the connect packet has no
        // RequestHeader), and a server answering a non-legacy client appends
        // its own "am I read-only" flag after the ConnectResponse.
        // These fixtures are the payload only (no 4-byte length prefix).
        emit("ConnectRequest", "readonly", withReadOnly(
            new ConnectRequest(0, 0x100000005L, 30000, SESSION, passwd()), true));
        emit("ConnectResponse", "readonly", withReadOnly(
            new ConnectResponse(0, 30000, SESSION, passwd()), true));
    }

    static byte[] withReadOnly(Record r, boolean readOnly) throws IOException {
        ByteArrayOutputStream baos = new ByteArrayOutputStream();
        BinaryOutputArchive boa = BinaryOutputArchive.getArchive(baos);
        r.serialize(boa, "connect");
        boa.writeBool(readOnly, "readOnly");
        return baos.toByteArray();
    }

    // ---------------------------------------------------------------------
    // Multi: MultiOperationRecord ("MultiRequest") and MultiResponse
    // ---------------------------------------------------------------------

    void multi() throws Exception {
        // Write ops. Op picks the opcode from the create mode: persistent ->
        // create(1), container -> createContainer(19), TTL -> createTTL(21).
        MultiOperationRecord writes = new MultiOperationRecord(List.of(
            Op.create("/m", utf8("1"), OPEN_ACL, CreateMode.PERSISTENT),
            Op.create("/c", new byte[0], OPEN_ACL, CreateMode.CONTAINER),
            Op.create("/t", utf8("ttl"), OPEN_ACL, CreateMode.PERSISTENT_WITH_TTL, 60_000L),
            Op.delete("/d", -1),
            Op.setData("/m", utf8("2"), 0),
            Op.check("/m", 1)));
        emit("MultiRequest", "all-ops", serialize(writes));

        MultiOperationRecord reads = new MultiOperationRecord(List.of(
            Op.getChildren("/a"),
            Op.getData("/a/b")));
        emit("MultiRequest", "read-ops", serialize(reads));

        emit("MultiRequest", "empty", serialize(new MultiOperationRecord()));

        // Results of a write multi: create without stat is sent as a create
        // result, create with stat as create2.
        MultiResponse writeResults = new MultiResponse();
        writeResults.add(new OpResult.CreateResult("/m"));
        writeResults.add(new OpResult.CreateResult("/c", stat()));
        writeResults.add(new OpResult.DeleteResult());
        writeResults.add(new OpResult.SetDataResult(stat()));
        writeResults.add(new OpResult.CheckResult());
        writeResults.add(new OpResult.ErrorResult(ERR_NO_NODE));
        emit("MultiResponse", "basic", serialize(writeResults));

        MultiResponse readResults = new MultiResponse();
        readResults.add(new OpResult.GetChildrenResult(List.of("x", "y")));
        readResults.add(new OpResult.GetDataResult(utf8("hello"), stat()));
        readResults.add(new OpResult.GetDataResult(null, stat()));
        emit("MultiResponse", "read", serialize(readResults));

        emit("MultiResponse", "empty", serialize(new MultiResponse()));
    }

    // ---------------------------------------------------------------------
    // Complete TCP frames: 4-byte big-endian length + header + body
    // ---------------------------------------------------------------------

    void frames() throws Exception {
        emit("Frame", "getdata-request", frame(concat(
            new RequestHeader(7, OpCode.getData),
            new GetDataRequest("/a/b", true))));
        emit("Frame", "ping-request", frame(concat(
            new RequestHeader(-2, OpCode.ping))));
        emit("Frame", "notification", frame(concat(
            new ReplyHeader(-1, -1L, ERR_OK),
            new WatcherEvent(EVENT_NODE_DATA_CHANGED, STATE_SYNC_CONNECTED, "/a"))));
    }
}
