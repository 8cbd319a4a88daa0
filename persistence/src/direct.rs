//! Snapshot files written past the page cache ([`SequentialFile`]).
//!
//! Under `cargo xtask bench ensemble`'s creates on a virtual machine that gives freed
//! memory back to its host, copying snapshots into fresh page-cache pages cost 2.1-2.6 ms
//! of CPU per MiB, against 0.3 ms per MiB into pages still at hand: a fifth of the machine's
//! CPU. Written directly, from one buffer reused, it is 0.8-0.9 ms per MiB (the checksum
//! included).

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The alignment of a direct write's buffer, offset and length: 4096 bytes, a multiple of
/// the logical block of the disks this runs on (512 or 4096 bytes). A device with a larger
/// block refuses the direct writes, and the file goes through the page cache.
const ALIGN: usize = 4096;

/// How much is gathered before a write: a multiple of [`ALIGN`].
const CAPACITY: usize = 1 << 20;

/// A new file written front to back, past the page cache (`O_DIRECT`) where the file
/// system allows it: for snapshots, tens of megabytes written once and read back only by
/// a restart. [`Write`] gathers; [`finish`](Self::finish) writes the rest and hands back
/// the file, to sync. Whole blocks written before `finish` may already be on the file.
///
/// Through the page cache, every snapshot takes fresh pages for its bytes; on a virtual
/// machine whose host takes back the memory its guest frees (free page reporting), the host
/// faults each one in again as the copy first touches it. Full blocks go through a handle
/// opened with `O_DIRECT` from an aligned buffer that is reused; the tail shorter than a
/// block, through a plain handle on the same file. A file system or device that refuses
/// direct I/O refuses it at the open or at a write (`EINVAL`): the file is written through
/// the plain handle from there on. Off Linux, it is the plain handle alone.
///
/// Dropped without [`finish`](Self::finish), what it gathered is lost: the file is for
/// removing then.
#[must_use = "what is gathered reaches the file at `finish`"]
pub struct SequentialFile {
    /// The plain handle: the tail, everything once direct writes are refused, syncs.
    file: File,
    /// The `O_DIRECT` handle, while direct writes are accepted.
    direct: Option<File>,
    /// `CAPACITY + ALIGN` bytes, never reallocated; the gathered bytes start at `start`,
    /// the first address in it aligned to [`ALIGN`].
    buf: Vec<u8>,
    start: usize,
    /// Bytes gathered, not yet written.
    len: usize,
    /// Bytes written to the file so far: where the next write goes.
    offset: u64,
}

impl SequentialFile {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = File::create(path)?;
        let direct = open_direct(path);
        let buf = vec![0; CAPACITY + ALIGN];
        let start = (ALIGN - buf.as_ptr() as usize % ALIGN) % ALIGN;
        Ok(SequentialFile {
            file,
            direct,
            buf,
            start,
            len: 0,
            offset: 0,
        })
    }

    /// Writes the gathered bytes' whole blocks (all of them with `tail`), keeping the rest
    /// gathered.
    fn write_out(&mut self, tail: bool) -> std::io::Result<()> {
        let blocks = self.len / ALIGN * ALIGN;
        if blocks > 0 {
            let bytes = gathered(&self.buf, self.start, blocks)?;
            let written = match &self.direct {
                Some(direct) => write_at(direct, bytes, self.offset),
                None => write_at(&self.file, bytes, self.offset),
            };
            match written {
                Ok(()) => {}
                // `EINVAL`.
                Err(e) if self.direct.is_some() && e.kind() == std::io::ErrorKind::InvalidInput => {
                    // Refused past the page cache: through it from now on (a part written
                    // directly is written again).
                    tracing::debug!(error = %e, "direct writes refused; through the page cache");
                    self.direct = None;
                    write_at(&self.file, bytes, self.offset)?;
                }
                Err(e) => return Err(e),
            }
            self.offset += blocks as u64;
            self.buf
                .copy_within(self.start + blocks..self.start + self.len, self.start);
            self.len -= blocks;
        }
        if tail && self.len > 0 {
            write_at(
                &self.file,
                gathered(&self.buf, self.start, self.len)?,
                self.offset,
            )?;
            self.offset += self.len as u64;
            self.len = 0;
        }
        Ok(())
    }

    /// Writes everything gathered and returns the plain handle, to sync (the writes were
    /// positional: its cursor has not moved).
    pub fn finish(mut self) -> std::io::Result<File> {
        self.write_out(true)?;
        Ok(self.file)
    }

    /// Writes what is gathered, but for the tail short of a block, and syncs the file's
    /// data: what a crash then leaves is everything but at most that tail.
    pub fn sync_data(&mut self) -> std::io::Result<()> {
        self.write_out(false)?;
        self.file.sync_data()
    }
}

impl Write for SequentialFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.len == CAPACITY {
            self.write_out(false)?;
        }
        let room = CAPACITY - self.len;
        let n = data.len().min(room);
        let at = self.start + self.len;
        match (self.buf.get_mut(at..at + n), data.get(..n)) {
            (Some(to), Some(from)) => to.copy_from_slice(from),
            _ => {
                return Err(std::io::Error::other(
                    "the gathering buffer is out of bounds",
                ));
            }
        }
        self.len += n;
        Ok(n)
    }

    /// Writes the whole blocks gathered; the tail short of a block waits for
    /// [`finish`](SequentialFile::finish) (or is written by it, unlike a `BufWriter`).
    fn flush(&mut self) -> std::io::Result<()> {
        self.write_out(false)
    }
}

/// `len` gathered bytes from `start`.
fn gathered(buf: &[u8], start: usize, len: usize) -> std::io::Result<&[u8]> {
    buf.get(start..start + len)
        .ok_or_else(|| std::io::Error::other("the gathering buffer is out of bounds"))
}

/// Writes all of `bytes` at `offset`.
#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

/// Writes all of `bytes` at `offset`.
#[cfg(not(unix))]
fn write_at(mut file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// A write-only handle on `path` with `O_DIRECT`, if the file system takes it.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(
            |e| tracing::debug!(error = %e, "no direct writes; writing through the page cache"),
        )
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a test file is written: directly, through the page cache alone, or directly from
    /// a buffer out of alignment, which a file system that takes direct I/O refuses at the
    /// first write (the file then goes through the page cache).
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Way {
        Direct,
        Buffered,
        Refused,
    }

    /// Whatever the sizes of the writes, the file holds every byte in order, written
    /// directly (where the file system takes it), through the page cache alone, or falling
    /// back to it when a direct write is refused; a sync midway changes nothing.
    #[test]
    fn the_file_holds_what_was_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            CAPACITY,
            3 * CAPACITY + 12_345,
        ];
        let writes = [1, 7, ALIGN + 3, 100_000, CAPACITY + 5];
        let ways = [Way::Direct, Way::Buffered, Way::Refused];
        for (total, way) in sizes.into_iter().flat_map(|t| ways.map(|w| (t, w))) {
            let path = dir.path().join(format!("f{total}-{way:?}"));
            let bytes: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
            let mut file = SequentialFile::create(&path).unwrap();
            let direct_taken = file.direct.is_some();
            match way {
                Way::Direct => {}
                Way::Buffered => file.direct = None,
                Way::Refused => file.start += 1,
            }
            let mut at = 0;
            for (i, size) in writes.iter().cycle().enumerate() {
                if at == total {
                    break;
                }
                let end = (at + size).min(total);
                file.write_all(&bytes[at..end]).unwrap();
                at = end;
                if i == 3 {
                    file.sync_data().unwrap();
                }
            }
            // Everything out, so that a whole block has met the direct handle if there is one.
            file.write_out(true).unwrap();
            let wrote_blocks = total >= ALIGN;
            if direct_taken && way == Way::Direct {
                assert!(file.direct.is_some(), "{total} bytes: direct writes kept");
            }
            if direct_taken && way == Way::Refused && wrote_blocks {
                assert!(file.direct.is_none(), "{total} bytes: fell back");
            }
            file.finish().unwrap().sync_all().unwrap();
            let read = std::fs::read(&path).unwrap();
            assert_eq!(read, bytes, "{total} bytes, {way:?}");
        }
    }
}
