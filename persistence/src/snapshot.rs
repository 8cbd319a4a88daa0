//! Snapshots as ZooKeeper writes them: `version-2/snapshot.<last zxid in hex>`, holding a
//! `ZKSN` header, the session table (`count`, then `id: long, timeout: int` each), the tree
//! body, a seal (the Adler-32 of every byte before it, then the string `"/"`), and, from
//! ZooKeeper 3.6 on, the digest (`zxid: long, version: int, digest: long`) and a second
//! seal. ZooKeeper 3.9 may add the last processed zxid and a third seal; reading accepts it.
//!
//! The tree body belongs to the tree layer: writing takes a callback that writes it, and
//! reading takes one that parses it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes, BytesMut};
use zk_jute::{DecodeError, Reader, Record};

use crate::error::{PersistenceError, Result};
use crate::format::{FORMAT_VERSION, HEADER_LEN, SNAP_MAGIC, file_header, file_name, zxid_of};

/// The digest a snapshot records: the tree digest at a zxid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZxidDigest {
    /// The zxid the digest was taken at.
    pub zxid: i64,
    /// The digest algorithm's version.
    pub version: i32,
    /// The tree digest.
    pub digest: i64,
}

/// A snapshot read back: what was around the tree body, and what the body parsed to.
#[derive(Debug)]
pub struct Snapshot<T> {
    /// The zxid in the file name: the last txn the snapshot is known to include.
    pub zxid: i64,
    /// The file.
    pub path: PathBuf,
    /// Sessions and their timeouts.
    pub sessions: BTreeMap<i64, i32>,
    /// The parsed tree body.
    pub tree: T,
    /// The digest, if the writer recorded one.
    pub digest: Option<ZxidDigest>,
}

/// The magic a snappy-compressed snapshot starts with (snappy-java's stream header).
const SNAPPY_MAGIC: &[u8] = b"\x82SNAPPY\0";

/// How much of a synced snapshot is written before it is synced: written through the page
/// cache (a file system that refuses direct writes), a big snapshot reaches the disk in
/// steps rather than in one burst at the end, which would queue ahead of the txn log's
/// fsyncs (and stall every write meanwhile).
const SYNC_STEP: usize = 8 << 20;

/// The snapshot file being written: keeps the running Adler-32 of what passes through and,
/// for a synced snapshot, syncs every [`SYNC_STEP`] bytes.
struct Checked {
    inner: crate::direct::SequentialFile,
    adler: crate::format::Adler,
    /// Bytes written since the last sync; `None` for a snapshot never synced.
    unsynced: Option<usize>,
}

impl Write for Checked {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.adler.write(buf.get(..n).unwrap_or_default());
        if let Some(unsynced) = &mut self.unsynced {
            *unsynced += n;
            if *unsynced >= SYNC_STEP {
                *unsynced = 0;
                self.inner.sync_data()?;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that sums what passes through it (Adler-32), for the file's seals.
trait Summing: Write {
    fn checksum(&mut self) -> u32;
}

impl Summing for Checked {
    fn checksum(&mut self) -> u32 {
        self.adler.finish()
    }
}

/// Writes the checksum of everything so far, then ZooKeeper's `/` seal.
fn seal(out: &mut impl Summing) -> std::io::Result<()> {
    let checksum = i64::from(out.checksum());
    out.write_all(&checksum.to_be_bytes())?;
    out.write_all(&[0, 0, 0, 1, b'/'])
}

/// A snapshot file's contents: header, `sessions`, the body `write_tree` writes, seal,
/// and the digest it returns with its own seal.
fn write_contents(
    out: &mut impl Summing,
    sessions: &BTreeMap<i64, i32>,
    write_tree: impl FnOnce(&mut dyn Write) -> std::io::Result<Option<ZxidDigest>>,
) -> std::io::Result<()> {
    write_header(out, sessions)?;
    let digest = write_tree(out)?;
    write_trailer(out, digest)
}

/// A snapshot file's header and session table.
fn write_header(out: &mut impl Write, sessions: &BTreeMap<i64, i32>) -> std::io::Result<()> {
    out.write_all(&file_header(SNAP_MAGIC))?;
    let count = i32::try_from(sessions.len()).unwrap_or(i32::MAX);
    out.write_all(&count.to_be_bytes())?;
    for (id, timeout) in sessions {
        out.write_all(&id.to_be_bytes())?;
        out.write_all(&timeout.to_be_bytes())?;
    }
    Ok(())
}

/// What follows the body: its seal, then `digest` and its own seal.
fn write_trailer(out: &mut impl Summing, digest: Option<ZxidDigest>) -> std::io::Result<()> {
    seal(out)?;
    if let Some(d) = digest {
        out.write_all(&d.zxid.to_be_bytes())?;
        out.write_all(&d.version.to_be_bytes())?;
        out.write_all(&d.digest.to_be_bytes())?;
        seal(out)?;
    }
    Ok(())
}

/// Removes the temporary files of snapshots whose writing never finished (the process
/// was killed mid-write; [`write_snapshot`] removes its own on an error): nothing reads
/// them. Returns the files removed.
pub fn remove_unfinished_snapshots(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    for (path, name) in named_entries(dir)? {
        if name.starts_with("snapshot.") && name.ends_with(TMP_SUFFIX) {
            std::fs::remove_file(&path).map_err(|e| PersistenceError::io(&path, e))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// What a snapshot is called while it is being written.
const TMP_SUFFIX: &str = ".tmp";

/// The entries of `dir`, with their names (empty for one that is not UTF-8).
fn named_entries(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| PersistenceError::io(dir, e))?;
    entries
        .map(|entry| {
            let path = entry.map_err(|e| PersistenceError::io(dir, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            Ok((path, name))
        })
        .collect()
}

/// The snapshot files in `dir`, newest first.
pub fn snapshot_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut files = Vec::new();
    for (path, name) in named_entries(dir)? {
        if name.ends_with(TMP_SUFFIX) {
            continue;
        }
        if let Some(zxid) = zxid_of(&path, "snapshot") {
            files.push((zxid, path));
        }
    }
    // Newest first; of two with one zxid, the uncompressed one (what this crate writes, so
    // a snapshot rewritten at a zxid wins over a compressed one ZooKeeper left there).
    let compressed = |path: &Path| path.extension().is_some_and(|e| e == "gz" || e == "snappy");
    files.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| compressed(&a.1).cmp(&compressed(&b.1)))
    });
    Ok(files)
}

/// Writes `snapshot.<zxid>` in `dir`: header, `sessions`, the body `write_tree` writes,
/// seal, `digest` and its seal. The file appears complete or not at all (it is written
/// under a temporary name, fsynced, then renamed).
pub fn write_snapshot(
    dir: &Path,
    zxid: i64,
    sessions: &BTreeMap<i64, i32>,
    digest: Option<ZxidDigest>,
    write_tree: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<PathBuf> {
    write_snapshot_with(dir, zxid, sessions, |w| write_tree(w).map(|()| digest))
}

/// [`write_snapshot`] for a body whose digest is known only once it is written, as a
/// fuzzy snapshot's is (the tree's digest when its last piece was taken): `write_tree`
/// writes the body and returns the digest to record.
pub fn write_snapshot_with(
    dir: &Path,
    zxid: i64,
    sessions: &BTreeMap<i64, i32>,
    write_tree: impl FnOnce(&mut dyn Write) -> std::io::Result<Option<ZxidDigest>>,
) -> Result<PathBuf> {
    write_file(dir, zxid, sessions, true, write_tree)?.publish()
}

/// [`write_snapshot_with`] without any fsync, as ZooKeeper writes its periodic snapshots
/// (`takeSnapshot(syncSnap = false)`): the txn log, synced, is what makes writes durable,
/// and a snapshot only shortens the replay; writing one does not queue its megabytes
/// ahead of the txn log's fsyncs. The file is left under its temporary name: the caller
/// [publishes](UnpublishedSnapshot::publish) it, once nothing has made it stale, or drops
/// it, which removes it. After a crash of the machine a published one may be torn;
/// restoring then skips it, its seal broken, for an older snapshot, and
/// [`oldest_kept_snapshot`](crate::oldest_kept_snapshot) counts only whole ones.
pub fn write_snapshot_unsynced(
    dir: &Path,
    zxid: i64,
    sessions: &BTreeMap<i64, i32>,
    write_tree: impl FnOnce(&mut dyn Write) -> std::io::Result<Option<ZxidDigest>>,
) -> Result<UnpublishedSnapshot> {
    write_file(dir, zxid, sessions, false, write_tree)
}

/// A snapshot file written under a temporary name (which a restart clears away, see
/// [`remove_unfinished_snapshots`]): [`publish`](Self::publish) renames it into place;
/// dropped unpublished, it is removed.
#[derive(Debug)]
pub struct UnpublishedSnapshot {
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    synced: bool,
    published: bool,
}

impl UnpublishedSnapshot {
    /// The name it will have.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames it into place (and, for a synced snapshot, syncs the directory); returns
    /// its path.
    pub fn publish(mut self) -> Result<PathBuf> {
        std::fs::rename(&self.tmp, &self.path).map_err(|e| PersistenceError::io(&self.path, e))?;
        self.published = true;
        if self.synced {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| PersistenceError::io(&self.dir, e))?;
        }
        Ok(self.path.clone())
    }
}

impl Drop for UnpublishedSnapshot {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn write_file(
    dir: &Path,
    zxid: i64,
    sessions: &BTreeMap<i64, i32>,
    sync: bool,
    write_tree: impl FnOnce(&mut dyn Write) -> std::io::Result<Option<ZxidDigest>>,
) -> Result<UnpublishedSnapshot> {
    std::fs::create_dir_all(dir).map_err(|e| PersistenceError::io(dir, e))?;
    // Dropped on an error below, it removes what was written: no half-written file stays.
    let file = UnpublishedSnapshot {
        tmp: dir.join(format!("{}{TMP_SUFFIX}", file_name("snapshot", zxid))),
        path: dir.join(file_name("snapshot", zxid)),
        dir: dir.to_owned(),
        synced: sync,
        published: false,
    };
    let written = (|| {
        let mut out = Checked {
            inner: crate::direct::SequentialFile::create(&file.tmp)?,
            adler: crate::format::Adler::new(),
            unsynced: sync.then_some(0),
        };
        write_contents(&mut out, sessions, write_tree)?;
        let written = out.inner.finish()?;
        if sync { written.sync_all() } else { Ok(()) }
    })();
    written.map_err(|e| PersistenceError::io(&file.tmp, e))?;
    Ok(file)
}

/// Whether the snapshot file at `path` looks whole, as ZooKeeper's `isValidSnapshot`
/// judges it without reading it through: an uncompressed one is at least 10 bytes long
/// and ends with the seal's `/` (an int 1, then `/`); a gzip or snappy one starts with its
/// format's magic. Restoring checks every seal; this is for counting the snapshots a
/// purge keeps, so that torn ones never take the place of whole ones.
pub fn is_valid_snapshot(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let head = |file: &mut File, magic: &[u8]| {
        let mut bytes = vec![0; magic.len()];
        file.read_exact(&mut bytes).is_ok() && bytes == magic
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => head(&mut file, &[0x1f, 0x8b]),
        Some("snappy") => head(&mut file, SNAPPY_MAGIC),
        _ => {
            let mut tail = [0; 5];
            file.metadata().is_ok_and(|m| m.len() >= 10)
                && file.seek(SeekFrom::End(-5)).is_ok()
                && file.read_exact(&mut tail).is_ok()
                && tail == [0, 0, 0, 1, b'/']
        }
    }
}

/// The bytes of a `snapshot.<zxid>` file built in memory, as [`write_snapshot`] writes
/// the file (a leader sends them to a learner rather than writing and reading a file).
pub fn snapshot_bytes(
    sessions: &BTreeMap<i64, i32>,
    digest: Option<ZxidDigest>,
    write_tree: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<Vec<u8>> {
    let mut out = SnapshotEncoder::new(sessions);
    write_tree(&mut out)?;
    Ok(out.finish(digest).into())
}

/// A snapshot file made a piece at a time, as a leader streams one to a learner while it
/// serializes the tree: the header and session table first, then the body the caller
/// appends through [`body`](Self::body), taken in pieces with [`take`](Self::take), and
/// [`finish`](Self::finish) adds the seals and the digest. Joined, the pieces are the bytes
/// [`snapshot_bytes`] makes (it writes through the encoder's `Write`).
#[derive(Debug)]
pub struct SnapshotEncoder {
    buf: BytesMut,
    /// Bytes at the front of `buf` already summed.
    summed: usize,
    adler: crate::format::Adler,
}

impl SnapshotEncoder {
    /// Starts a snapshot holding `sessions`.
    pub fn new(sessions: &BTreeMap<i64, i32>) -> Self {
        let mut encoder = Self {
            buf: BytesMut::with_capacity(HEADER_LEN + 4 + sessions.len() * 12),
            summed: 0,
            adler: crate::format::Adler::new(),
        };
        // Writing to memory does not fail.
        let _ = write_header(&mut encoder, sessions);
        encoder
    }

    /// Where the body goes: append its next bytes here.
    pub fn body(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes made and not taken yet.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether every byte made has been taken.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next piece: at most `max` of the bytes made and not taken yet.
    pub fn take(&mut self, max: usize) -> Bytes {
        self.sum();
        let piece = self.buf.split_to(max.min(self.buf.len()));
        self.summed -= piece.len();
        piece.freeze()
    }

    /// The rest: the body not taken yet, its seal, `digest` and its seal.
    pub fn finish(mut self, digest: Option<ZxidDigest>) -> Bytes {
        // Writing to memory does not fail.
        let _ = write_trailer(&mut self, digest);
        self.buf.freeze()
    }

    fn sum(&mut self) {
        self.adler
            .write(self.buf.get(self.summed..).unwrap_or_default());
        self.summed = self.buf.len();
    }
}

impl Write for SnapshotEncoder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Summing for SnapshotEncoder {
    fn checksum(&mut self) -> u32 {
        self.sum();
        self.adler.finish()
    }
}

/// A snapshot file parsed as its bytes arrive, a piece at a time, as a learner receives
/// its leader's: the header and the session table as soon as they are whole, the body as
/// its records come (read by the caller's `body`), the seals and the digest at
/// [`finish`](Self::finish). The pieces may be cut anywhere. `body` is called with a
/// reader over the bytes not read yet and whether more may follow; it reads the whole
/// records at the front (with more to follow, it leaves a record cut short unread), and
/// returns true once it has read the body's end. After an error the stream is spent.
#[derive(Debug)]
pub struct SnapshotStream {
    path: PathBuf,
    zxid: i64,
    /// The bytes not read yet.
    pending: Bytes,
    /// The offset in the file of `pending`'s first byte.
    at: usize,
    /// The checksum of the bytes before `at`.
    adler: crate::format::Adler,
    sessions: Option<BTreeMap<i64, i32>>,
    body_done: bool,
}

/// The most bytes a [`SnapshotStream`] holds unread: a record or session table longer than
/// this is taken for a broken length.
const MAX_UNREAD: usize = 256 << 20;

/// Reads snapshot body records from a [`SnapshotStream`]: `(bytes, more may follow)` to
/// whether the body's end was read.
pub type BodyRecords<'a, E> = dyn FnMut(&mut Reader, bool) -> std::result::Result<bool, E> + 'a;

impl SnapshotStream {
    /// A stream for the snapshot at `zxid`, named `path` in errors (the file it becomes).
    pub fn new(path: impl Into<PathBuf>, zxid: i64) -> Self {
        Self {
            path: path.into(),
            zxid,
            pending: Bytes::new(),
            at: 0,
            adler: crate::format::Adler::new(),
            sessions: None,
            body_done: false,
        }
    }

    /// Bytes read so far.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// Takes the next piece and reads what it completes.
    pub fn push<E: std::fmt::Display>(
        &mut self,
        piece: Bytes,
        body: &mut BodyRecords<'_, E>,
    ) -> Result<()> {
        if self.pending.is_empty() {
            self.pending = piece;
        } else {
            // A record cut by the piece's start: the bytes before it join the piece (in
            // place when nothing else holds them, so a long record is not copied over
            // and over as its pieces come).
            let mut joined = std::mem::take(&mut self.pending)
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
            joined.extend_from_slice(&piece);
            self.pending = joined.freeze();
        }
        self.read(true, body)?;
        if self.pending.len() > MAX_UNREAD {
            return Err(PersistenceError::corrupt(
                &self.path,
                self.at as u64,
                format!(
                    "{} bytes without a whole record or session table",
                    self.pending.len()
                ),
            ));
        }
        Ok(())
    }

    /// No more pieces: reads the rest, checks the seals, and returns what was around the
    /// body.
    pub fn finish<E: std::fmt::Display>(
        mut self,
        body: &mut BodyRecords<'_, E>,
    ) -> Result<Snapshot<()>> {
        self.read(false, body)?;
        let at = self.at;
        let corrupt = |offset: usize, reason: String| {
            PersistenceError::corrupt(&self.path, (at + offset) as u64, reason)
        };
        if !self.body_done {
            return Err(corrupt(0, "tree: the body does not end".into()));
        }
        let all = self.pending.clone();
        let mut r = Reader::new(all.clone());
        let mut sum = RunningSum {
            adler: self.adler,
            upto: 0,
        };
        let digest = read_trailer(&all, &mut r, &mut sum).map_err(|(at, why)| corrupt(at, why))?;
        Ok(Snapshot {
            zxid: self.zxid,
            path: self.path,
            sessions: self.sessions.unwrap_or_default(),
            tree: (),
            digest,
        })
    }

    fn read<E: std::fmt::Display>(
        &mut self,
        more: bool,
        body: &mut BodyRecords<'_, E>,
    ) -> Result<()> {
        if self.sessions.is_none() {
            let Some((sessions, len)) = self.header(more)? else {
                return Ok(());
            };
            self.sessions = Some(sessions);
            self.consume(len);
        }
        if !self.body_done {
            let mut r = Reader::new(self.pending.clone());
            let done = body(&mut r, more).map_err(|e| {
                // The reader's offsets count from `pending`; the file's from its start.
                let at = (self.at + r.offset()) as u64;
                PersistenceError::corrupt(&self.path, at, format!("tree: {e}"))
            })?;
            self.consume(r.offset());
            self.body_done = done;
        }
        Ok(())
    }

    /// The session table and the bytes it takes with the header, once they are all here.
    fn header(&self, more: bool) -> Result<Option<(BTreeMap<i64, i32>, usize)>> {
        let mut r = Reader::new(self.pending.clone());
        match read_header(&mut r, more) {
            Ok(sessions) => Ok(sessions.map(|s| (s, r.offset()))),
            Err((at, why)) => Err(PersistenceError::corrupt(&self.path, at as u64, why)),
        }
    }

    /// Drops `n` bytes read, summing them for the seals.
    fn consume(&mut self, n: usize) {
        let n = n.min(self.pending.len());
        self.adler.write(self.pending.get(..n).unwrap_or_default());
        self.pending.advance(n);
        self.at += n;
    }
}

/// Reads the snapshot at `path`, handing the tree body (and the session table read before
/// it) to `parse_tree` and checking every seal. Any failure names the file and offset.
pub fn read_snapshot<T, E: std::fmt::Display>(
    path: &Path,
    parse_tree: impl FnOnce(&mut Reader, &BTreeMap<i64, i32>) -> std::result::Result<T, E>,
) -> Result<Snapshot<T>> {
    let zxid = zxid_of(path, "snapshot")
        .ok_or_else(|| PersistenceError::corrupt(path, 0, "not a snapshot file name"))?;
    let raw = std::fs::read(path).map_err(|e| PersistenceError::io(path, e))?;
    let bytes = Bytes::from(match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => {
            gunzip(&raw).map_err(|e| PersistenceError::corrupt(path, 0, format!("gzip: {e}")))?
        }
        Some("snappy") => {
            unsnappy(&raw).map_err(|(at, why)| PersistenceError::corrupt(path, at, why))?
        }
        _ => raw,
    });
    parse_snapshot(path, zxid, bytes, parse_tree)
}

/// Reads a snapshot held in memory (as a leader sends it to a learner): the bytes of an
/// uncompressed `snapshot.<zxid>` file, checked as [`read_snapshot`] checks a file.
/// `path` only names it in errors, and in the [`Snapshot`] returned.
pub fn read_snapshot_bytes<T, E: std::fmt::Display>(
    path: &Path,
    zxid: i64,
    bytes: Bytes,
    parse_tree: impl FnOnce(&mut Reader, &BTreeMap<i64, i32>) -> std::result::Result<T, E>,
) -> Result<Snapshot<T>> {
    parse_snapshot(path, zxid, bytes, parse_tree)
}

fn parse_snapshot<T, E: std::fmt::Display>(
    path: &Path,
    zxid: i64,
    bytes: Bytes,
    parse_tree: impl FnOnce(&mut Reader, &BTreeMap<i64, i32>) -> std::result::Result<T, E>,
) -> Result<Snapshot<T>> {
    let corrupt =
        |offset: usize, reason: String| PersistenceError::corrupt(path, offset as u64, reason);
    let mut r = Reader::new(bytes.clone());
    let sessions = read_header(&mut r, false)
        .map_err(|(at, why)| corrupt(at, why))?
        .unwrap_or_default();
    let body_at = r.offset();
    // The seals cover everything before them: the checksum of nearly all the file is
    // summed on another thread while this one parses the tree.
    let (tree, mut sum) = std::thread::scope(|scope| {
        let summing = scope.spawn(|| RunningSum::over(&bytes, bytes.len().saturating_sub(128)));
        let tree = parse_tree(&mut r, &sessions);
        let sum = summing
            .join()
            .unwrap_or_else(|_| RunningSum::over(&bytes, 0));
        (tree, sum)
    });
    let tree = tree.map_err(|e| corrupt(body_at, format!("tree: {e}")))?;
    let digest = read_trailer(&bytes, &mut r, &mut sum).map_err(|(at, why)| corrupt(at, why))?;
    Ok(Snapshot {
        zxid,
        path: path.to_owned(),
        sessions,
        tree,
        digest,
    })
}

/// A `.gz` snapshot (`zookeeper.snapshot.compression.method=gz`).
fn gunzip(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::GzDecoder::new(raw).read_to_end(&mut out)?;
    Ok(out)
}

/// A `.snappy` snapshot: snappy-java's stream format (what ZooKeeper's `SnappyOutputStream`
/// writes): an 8-byte magic `\x82SNAPPY\0`, two version ints, then blocks of
/// `length: int` and that many bytes of raw snappy.
fn unsnappy(raw: &[u8]) -> std::result::Result<Vec<u8>, (u64, String)> {
    if raw.get(..SNAPPY_MAGIC.len()) != Some(SNAPPY_MAGIC) || raw.len() < 16 {
        return Err((0, "not a snappy-java stream".into()));
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    let mut at = 16;
    let mut decoder = snap::raw::Decoder::new();
    while at < raw.len() {
        let len = raw
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u32::from_be_bytes(b) as usize)
            .ok_or((at as u64, "truncated block length".to_owned()))?;
        let block = raw
            .get(at + 4..at + 4 + len)
            .ok_or((at as u64, format!("block of {len} bytes runs past the end")))?;
        let data = decoder
            .decompress_vec(block)
            .map_err(|e| (at as u64, format!("snappy: {e}")))?;
        out.extend(data);
        at += 4 + len;
    }
    Ok(out)
}

/// The Adler-32 of a file's first `upto` bytes, extended as later seals need.
struct RunningSum {
    adler: crate::format::Adler,
    upto: usize,
}

impl RunningSum {
    fn over(all: &[u8], upto: usize) -> Self {
        let mut adler = crate::format::Adler::new();
        adler.write(all.get(..upto).unwrap_or_default());
        Self { adler, upto }
    }

    /// The checksum of `all[..at]`.
    fn at(&mut self, all: &[u8], at: usize) -> u32 {
        if at < self.upto {
            *self = Self::over(all, at);
        } else {
            self.adler.write(all.get(self.upto..at).unwrap_or_default());
            self.upto = at;
        }
        self.adler.finish()
    }
}

/// The header and the session table at the front of `r`: `None` when they run past its
/// end and `more` bytes may follow. Errors carry their offset in `r`'s input.
fn read_header(
    r: &mut Reader,
    more: bool,
) -> std::result::Result<Option<BTreeMap<i64, i32>>, (usize, String)> {
    let decode = |e: DecodeError| (e.offset, e.to_string());
    if r.remaining() < HEADER_LEN + 4 {
        if more {
            return Ok(None);
        }
        return Err((0, "file shorter than its header and session count".into()));
    }
    let (magic, version) = (
        i32::decode(r).map_err(decode)?,
        i32::decode(r).map_err(decode)?,
    );
    if magic != SNAP_MAGIC || version != FORMAT_VERSION {
        return Err((
            0,
            format!("not a ZooKeeper snapshot (magic {magic:#x}, version {version})"),
        ));
    }
    let _dbid = i64::decode(r).map_err(decode)?;
    let count = i32::decode(r).map_err(decode)?;
    let fits = usize::try_from(count).is_ok_and(|n| n.saturating_mul(12) <= r.remaining());
    if !fits {
        if more && count >= 0 {
            return Ok(None);
        }
        return Err((
            HEADER_LEN,
            format!("session count {count} does not fit the file"),
        ));
    }
    let mut sessions = BTreeMap::new();
    for _ in 0..count {
        let id = i64::decode(r).map_err(decode)?;
        sessions.insert(id, i32::decode(r).map_err(decode)?);
    }
    Ok(Some(sessions))
}

/// What follows the body, in `all` from the reader's position on: the seal, the digest
/// and its seal if there is one, ZooKeeper 3.9's last processed zxid and a third seal if
/// there is one, and nothing more. Errors carry their offset in `all`.
fn read_trailer(
    all: &Bytes,
    r: &mut Reader,
    sum: &mut RunningSum,
) -> std::result::Result<Option<ZxidDigest>, (usize, String)> {
    let decode = |e: DecodeError| (e.offset, e.to_string());
    check_seal(all, r, sum)?;
    let mut digest = None;
    if r.remaining() > 0 {
        let zxid = i64::decode(r).map_err(decode)?;
        let version = i32::decode(r).map_err(decode)?;
        let value = i64::decode(r).map_err(decode)?;
        check_seal(all, r, sum)?;
        digest = (zxid > 0).then_some(ZxidDigest {
            zxid,
            version,
            digest: value,
        });
    }
    if r.remaining() > 0 {
        // ZooKeeper 3.9: the last processed zxid, sealed once more.
        let _last_processed = i64::decode(r).map_err(decode)?;
        check_seal(all, r, sum)?;
    }
    if r.remaining() > 0 {
        return Err((
            r.offset(),
            format!("{} unexpected bytes after the seal", r.remaining()),
        ));
    }
    Ok(digest)
}

/// Checks a seal at the reader's position: the Adler-32 of everything before it, then `"/"`.
fn check_seal(
    all: &Bytes,
    r: &mut Reader,
    sum: &mut RunningSum,
) -> std::result::Result<(), (usize, String)> {
    let at = r.offset();
    let expected = i64::from(sum.at(all, at));
    let found = i64::decode(r).map_err(|e| (e.offset, format!("seal: {e}")))?;
    let slash = String::decode(r).map_err(|e| (e.offset, format!("seal: {e}")))?;
    if found != expected {
        return Err((
            at,
            format!("seal checksum {found:#x} does not match {expected:#x}"),
        ));
    }
    if slash != "/" {
        return Err((at + 8, "seal does not end with \"/\"".into()));
    }
    Ok(())
}

/// Reads the newest snapshot whose seal verifies, trying at most `tries` files (ZooKeeper
/// tries 100). A bad snapshot is logged and skipped for an older one; `None` when there is
/// no snapshot at all, and [`PersistenceError::NoValidSnapshot`] when none tried is valid,
/// as ZooKeeper's `FileSnap` refuses ("Not able to find valid snapshots").
pub fn read_newest<T, E: std::fmt::Display>(
    dir: &Path,
    tries: usize,
    mut parse_tree: impl FnMut(&mut Reader, &BTreeMap<i64, i32>) -> std::result::Result<T, E>,
) -> Result<Option<Snapshot<T>>> {
    if !dir.exists() {
        return Ok(None);
    }
    let files = snapshot_files(dir)?;
    let tried = files.len().min(tries);
    for (_, path) in files.into_iter().take(tries) {
        match read_snapshot(&path, &mut parse_tree) {
            Ok(snapshot) => return Ok(Some(snapshot)),
            Err(e) => tracing::warn!(error = %e, "skipping an invalid snapshot"),
        }
    }
    if tried > 0 {
        return Err(PersistenceError::NoValidSnapshot {
            dir: dir.to_owned(),
            tried,
        });
    }
    Ok(None)
}
