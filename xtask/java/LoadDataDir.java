/*
 * LoadDataDir: loads a ZooKeeper data directory with Apache ZooKeeper 3.8.0's
 * own loading code and dumps the tree it gets, in RecordTree's tree.txt format
 * (RecordTree.dumpTree, compiled together with this file).
 *
 * Usage:
 *   java -cp <classes>:/usr/share/java/zookeeper.jar[:slf4j-simple.jar] \
 *       LoadDataDir <datadir> <tree-out>
 * <datadir> holds version-2/; it should be a scratch copy: ZooKeeper's restore
 * writes a snapshot.0 into a directory without snapshot or log, and deletes a
 * file named `initialize` next to version-2/.
 *
 * Checks, each with ZooKeeper's classes (FileSnap, FileTxnSnapLog, ZKDatabase,
 * DataTree):
 *   - every version-2/snapshot.* alone, as FileSnap restores one: it must be
 *     taken as a valid snapshot of its file name's zxid (isValidSnapshot, the
 *     checksum seals, the digest trailer; a non-fuzzy snapshot's digest must
 *     equal the digest of the tree read from it);
 *   - the whole directory, as a starting server loads it (ZKDatabase.loadDataBase):
 *     the newest snapshot must be the one used (FileSnap silently falls back to
 *     an older one when the newest does not read), the logs replayed on top,
 *     every txn digest in the log must match the tree at that txn, the snapshot's
 *     digest zxid must be reached, and the txns replayed must follow each other
 *     (zxid + 1, or counter 1 of a later epoch; ZooKeeper itself does not check
 *     this).
 * Prints one line per snapshot and one for the load to stdout (with the digest
 * trailers, read again for the report), writes the loaded tree to <tree-out>,
 * and exits 1 (after "FAIL: ..." lines on stderr) if any check fails.
 * System properties as RecordTree's server: zookeeper.extendedTypesEnabled=true
 * (TTL nodes), zookeeper.digest.enabled=true. When slf4j-simple is on the class
 * path, ZooKeeper's own warnings and errors go to stderr.
 */

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.jute.BinaryInputArchive;
import org.apache.jute.InputArchive;
import org.apache.zookeeper.server.DataTree;
import org.apache.zookeeper.server.ZKDatabase;
import org.apache.zookeeper.server.persistence.FileSnap;
import org.apache.zookeeper.server.persistence.FileTxnSnapLog;
import org.apache.zookeeper.server.persistence.SnapStream;
import org.apache.zookeeper.server.persistence.SnapshotInfo;
import org.apache.zookeeper.server.persistence.TxnLog;
import org.apache.zookeeper.server.persistence.Util;
import org.apache.zookeeper.txn.TxnHeader;

public class LoadDataDir {

    static final List<String> failures = new ArrayList<>();

    static void fail(String msg) {
        failures.add(msg);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: LoadDataDir <datadir> <tree-out>");
            System.exit(2);
        }
        // Before any ZooKeeper class (and so any logger) initialises.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        System.setProperty("zookeeper.extendedTypesEnabled", "true");
        System.setProperty("zookeeper.digest.enabled", "true");

        File dataDir = new File(args[0]);
        File versionDir = new File(dataDir, "version-2");
        if (!versionDir.isDirectory()) {
            System.err.println("LoadDataDir: no " + versionDir);
            System.exit(2);
        }
        List<File> snapshots = Util.sortDataDir(versionDir.listFiles((d, n) -> n.startsWith("snapshot.")), "snapshot", true);
        for (File snap : snapshots) {
            checkSnapshot(snap);
        }
        long newest = snapshots.isEmpty() ? -1 : Util.getZxidFromName(snapshots.get(snapshots.size() - 1).getName(), "snapshot");
        DataTree tree = loadAll(dataDir, newest);
        RecordTree.writeLines(Paths.get(args[1]), RecordTree.dumpTree(tree));

        for (String f : failures) {
            System.err.println("FAIL: " + f);
        }
        System.exit(failures.isEmpty() ? 0 : 1);
    }

    /** The znodes reachable from the root (DataTree.getNodeCount() holds the root twice). */
    static int znodes(DataTree dt) {
        return RecordTree.dumpTree(dt).size() - 1;
    }

    /** One snapshot file alone in a scratch directory, read as FileSnap restores one. */
    static void checkSnapshot(File snap) throws IOException {
        String name = snap.getName();
        long zxid = Util.getZxidFromName(name, "snapshot");
        Path alone = Files.createTempDirectory("loaddatadir");
        try {
            Files.copy(snap.toPath(), alone.resolve(name), StandardCopyOption.COPY_ATTRIBUTES);
            DataTree dt = new DataTree();
            List<Long> mismatches = new ArrayList<>();
            dt.addDigestWatcher(mismatches::add);
            Map<Long, Integer> sessions = new HashMap<>();
            long read;
            try {
                read = new FileSnap(alone.toFile()).deserialize(dt, sessions);
            } catch (IOException e) {
                fail(name + ": FileSnap could not read it: " + e.getMessage());
                return;
            }
            if (read != zxid) {
                fail(name + ": FileSnap did not take it as a valid snapshot (read zxid " + RecordTree.hex(read) + ")");
                return;
            }
            if (!mismatches.isEmpty()) {
                fail(name + ": the tree's digest differs from the snapshot's digest trailer");
            }
            DataTree.ZxidDigest trailer = trailer(snap, zxid);
            String digest = trailer == null
                ? "digest trailer absent or empty"
                : "digest trailer zxid " + RecordTree.hex(trailer.getZxid()) + " version " + trailer.getDigestVersion()
                    + " digest " + RecordTree.hex(trailer.getDigest())
                    + (trailer.getZxid() == zxid ? (mismatches.isEmpty() ? " (= the tree's)" : "") : " (fuzzy: checked on load)");
            System.out.println(name + ": FileSnap read zxid " + RecordTree.hex(read) + ", " + znodes(dt)
                + " znodes, " + sessions.size() + " sessions, tree digest " + RecordTree.hex(dt.getTreeDigest())
                + ", " + digest);
        } finally {
            RecordTree.deleteTree(alone);
        }
    }

    /**
     * The digest trailer FileSnap read after the first checksum seal (null when
     * there is none, or its zxid is 0), read again with ZooKeeper's classes, for
     * the report only: FileSnap.deserialize has already checked it.
     */
    static DataTree.ZxidDigest trailer(File snap, long zxid) throws IOException {
        try (InputStream is = SnapStream.getInputStream(snap)) {
            InputArchive ia = BinaryInputArchive.getArchive(is);
            DataTree dt = new DataTree();
            new FileSnap(null).deserialize(dt, new HashMap<>(), ia);
            ia.readLong("val");
            ia.readString("path");
            return dt.deserializeZxidDigest(ia, zxid) ? dt.getDigestFromLoadedSnapshot() : null;
        }
    }

    /** The whole directory, as a starting server loads it. */
    static DataTree loadAll(File dataDir, long newestSnapshot) throws IOException {
        FileTxnSnapLog snapLog = new FileTxnSnapLog(dataDir, dataDir);
        ZKDatabase db = new ZKDatabase(snapLog);
        DataTree dt = db.getDataTree();
        List<Long> mismatches = new ArrayList<>();
        dt.addDigestWatcher(mismatches::add);
        long highest;
        try {
            highest = db.loadDataBase();
        } catch (IOException e) {
            fail("ZKDatabase.loadDataBase: " + e.getMessage());
            snapLog.close();
            return dt;
        }
        SnapshotInfo used = snapLog.getLastSnapshotInfo();
        long usedZxid = used == null ? -1 : used.zxid;
        if (usedZxid != newestSnapshot) {
            fail("loading used snapshot " + RecordTree.hex(usedZxid) + ", not the newest, "
                + RecordTree.hex(newestSnapshot));
        }
        for (long z : mismatches) {
            fail("digest mismatch at zxid " + RecordTree.hex(z) + " while loading");
        }
        DataTree.ZxidDigest pending = dt.getDigestFromLoadedSnapshot();
        if (pending != null) {
            fail("the logs do not reach the snapshot's digest zxid " + RecordTree.hex(pending.getZxid()));
        }

        // The txns replayed on top of the snapshot, with ZooKeeper's log iterator.
        int replayed = 0;
        long prev = usedZxid;
        TxnLog.TxnIterator it = snapLog.readTxnLog(usedZxid + 1);
        try {
            for (TxnHeader h = it.getHeader(); h != null; h = it.next() ? it.getHeader() : null) {
                long z = h.getZxid();
                boolean follows = z == prev + 1 || ((z >>> 32) > (prev >>> 32) && (z & 0xffffffffL) == 1);
                if (!follows) {
                    fail("txn " + RecordTree.hex(z) + " does not follow " + RecordTree.hex(prev));
                }
                prev = z;
                replayed++;
            }
        } finally {
            it.close();
        }
        if (prev != highest) {
            fail("replay ended at " + RecordTree.hex(prev) + " but loadDataBase reported " + RecordTree.hex(highest));
        }
        System.out.println("load: ZKDatabase.loadDataBase used snapshot." + Long.toHexString(usedZxid) + " + "
            + replayed + " txns, highest zxid " + RecordTree.hex(highest) + ", " + znodes(dt) + " znodes, "
            + db.getSessionWithTimeOuts().size() + " sessions, " + mismatches.size() + " digest mismatches, digest "
            + RecordTree.hex(dt.getTreeDigest()));
        snapLog.close();
        return dt;
    }
}
