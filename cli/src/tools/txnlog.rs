//! `zk-tools txnlog [-dhrvcy] <txn_log_file_name> (-z <zxid>)`: ZooKeeper's
//! `TxnLogToolkit` (`zkTxnLogToolkit.sh`), with its options, output and exit codes.
//!
//! - dump (the default, `-d`): the file header, then one line per txn as ZooKeeper prints
//!   it (time in the local time zone, session, cxid, zxid, the operation and its txn);
//!   an entry whose checksum fails is printed once more after `CRC ERROR - `;
//! - `-c -z <zxid>`: writes `<file>.chopped<zxid>` holding the entries up to that zxid
//!   (`LogChopper`), reporting gaps in the zxids;
//! - `-r` (with `-y`, `-v`): writes `<file>.fixed` with every checksum recomputed.
//!
//! The file is read entry by entry, never whole.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_jute::data::Acl;
use zk_jute::txn::{
    CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateSessionTxn, CreateTtlTxn,
    CreateTxn, DeleteTxn, ErrorTxn, MultiTxn, SetAclTxn, SetDataTxn, TxnHeader,
};
use zk_jute::{Reader, Record};
use zk_persistence::{LOG_MAGIC, adler32};

use crate::javatext::{jute_string as quoted, short_long};
use crate::progress::Progress;

const HELP: &str = "\
usage: TxnLogToolkit [-dhrvc] <txn_log_file_name> (-z <zxid>)
 -c,--chop         Chop mode. Chop txn file to a zxid.
 -d,--dump         Dump mode. Dump all entries of the log file with printing the content of a nodepath (default)
 -h,--help         Print help message
 -r,--recover      Recovery mode. Re-calculate CRC for broken entries.
 -v,--verbose      Be verbose in recovery mode: print all entries, not just fixed ones.
 -y,--yes          Non-interactive mode: repair all CRC errors without asking
 -z,--zxid <arg>   Used with chop. Zxid to which to chop.";

/// ZooKeeper's `ExitCode` values the tool uses.
const UNEXPECTED_ERROR: u8 = 1;
const INVALID_INVOCATION: u8 = 2;

/// jute's default `jute.maxbuffer` plus its slack: a longer entry is not believed.
const MAX_ENTRY: usize = 0xfffff + 1024;

#[derive(Debug, Default)]
struct Options {
    recover: bool,
    verbose: bool,
    yes: bool,
    chop: bool,
    zxid: Option<String>,
    file: Option<String>,
}

/// Parses the options as commons-cli's `DefaultParser` does: short flags (bundled or
/// not), long names, `-z` with its value attached or next.
fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut options = Options::default();
    let mut args = args.iter();
    let mut help = false;
    while let Some(arg) = args.next() {
        let flags: Vec<char> = match arg.as_str() {
            "--help" => vec!['h'],
            "--recover" => vec!['r'],
            "--verbose" => vec!['v'],
            "--dump" => vec!['d'],
            "--yes" => vec!['y'],
            "--chop" => vec!['c'],
            "--zxid" => vec!['z'],
            long if long.starts_with("--") => return Err(format!("Unrecognized option: {long}")),
            short if short.starts_with('-') && short.len() > 1 => short.chars().skip(1).collect(),
            _ => {
                if options.file.is_none() {
                    options.file = Some(arg.clone());
                }
                continue;
            }
        };
        for (i, flag) in flags.iter().enumerate() {
            match flag {
                'h' => help = true,
                'r' => options.recover = true,
                'v' => options.verbose = true,
                'd' => {}
                'y' => options.yes = true,
                'c' => options.chop = true,
                'z' => {
                    let attached: String = flags.iter().skip(i + 1).collect();
                    options.zxid = Some(if attached.is_empty() {
                        args.next()
                            .cloned()
                            .ok_or_else(|| "Missing argument for option: z".to_owned())?
                    } else {
                        attached
                    });
                    break;
                }
                _ => return Err(format!("Unrecognized option: {arg}")),
            }
        }
    }
    Ok((!help).then_some(options))
}

pub(crate) fn main(args: &[String]) -> u8 {
    let options = match parse(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{HELP}");
            return 0;
        }
        Err(message) => {
            eprintln!("{message}\n");
            println!("{HELP}");
            return UNEXPECTED_ERROR;
        }
    };
    let Some(file) = options.file.as_deref() else {
        println!("{HELP}");
        return UNEXPECTED_ERROR;
    };
    let path = Path::new(file);
    if File::open(path).is_err() {
        eprintln!("File doesn't exist or not readable: {file}");
        return UNEXPECTED_ERROR;
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match (&options.zxid, options.chop) {
        (Some(zxid), true) => {
            let Some(zxid) = java_long_decode(zxid) else {
                let _ = out.flush();
                eprintln!("zk-tools txnlog: `{zxid}` is not a number (Long.decode)");
                return UNEXPECTED_ERROR;
            };
            chop(path, zxid, &mut out)
        }
        _ => dump(path, &options, &mut out),
    };
    let flushed = out.flush();
    match (result, flushed) {
        (Ok(()), Ok(())) => 0,
        (Err(Failure { code, message }), _) => {
            eprintln!("{message}");
            code
        }
        (Ok(()), Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        (Ok(()), Err(e)) => {
            eprintln!("zk-tools txnlog: writing: {e}");
            UNEXPECTED_ERROR
        }
    }
}

/// Why the tool stops: its exit code and message.
struct Failure {
    code: u8,
    message: String,
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self {
            code: UNEXPECTED_ERROR,
            message: e.to_string(),
        }
    }
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// Java's `Long.decode`: decimal, `0x`/`0X`/`#` hex, `0` octal, with a sign.
fn java_long_decode(text: &str) -> Option<i64> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (radix, digits) =
        if let Some(hex) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            (16, hex)
        } else if let Some(hex) = rest.strip_prefix('#') {
            (16, hex)
        } else if rest.len() > 1 && rest.starts_with('0') {
            (8, &rest[1..])
        } else {
            (10, rest)
        };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// A log file read entry by entry.
struct Entries {
    input: BufReader<File>,
    /// Bytes read so far.
    offset: u64,
}

/// What the next read found.
enum Next {
    /// A whole entry: its stored checksum and bytes (`'B'` not yet read).
    Entry(i64, Vec<u8>),
    /// The end: the file ends, or preallocated zeros begin.
    End,
}

impl Entries {
    /// Opens a log and reads its header: `(dbid, version)` once the magic checks out.
    fn open(path: &Path) -> Result<(Self, i64, i32), Failure> {
        let file = File::open(path)?;
        let mut entries = Self {
            input: BufReader::with_capacity(1 << 20, file),
            offset: 0,
        };
        let mut header = [0_u8; 16];
        entries.read_exact(&mut header).map_err(|_| {
            fail(
                UNEXPECTED_ERROR,
                format!("{}: shorter than a txn log header", path.display()),
            )
        })?;
        let word = |at: usize| header.get(at..at + 4).and_then(|b| b.try_into().ok());
        let magic = word(0).map_or(0, i32::from_be_bytes);
        let version = word(4).map_or(0, i32::from_be_bytes);
        let dbid = header
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .map_or(0, i64::from_be_bytes);
        if magic != LOG_MAGIC {
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            return Err(fail(
                INVALID_INVOCATION,
                format!("Invalid magic number for {name}"),
            ));
        }
        Ok((entries, dbid, version))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.input.read_exact(buf)?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Reads the next checksum and entry, as `BinaryInputArchive` reads them: an end of
    /// file inside either is the end (ZooKeeper's tool says "EOF reached" there too).
    fn next(&mut self) -> Result<Next, Failure> {
        let mut head = [0_u8; 12];
        match self.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Next::End),
            Err(e) => return Err(e.into()),
        }
        let crc = i64::from_be_bytes(
            head.get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        );
        let len = i32::from_be_bytes(
            head.get(8..)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        );
        if len == 0 {
            return Ok(Next::End);
        }
        let Some(len) = usize::try_from(len).ok().filter(|l| *l <= MAX_ENTRY) else {
            return Err(fail(
                UNEXPECTED_ERROR,
                format!("Unreasonable length = {len}"),
            ));
        };
        let mut bytes = vec![0_u8; len];
        match self.read_exact(&mut bytes) {
            Ok(()) => Ok(Next::Entry(crc, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(Next::End),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the byte after an entry; `false` unless it is `'B'`.
    fn end_of_record(&mut self) -> bool {
        let mut b = [0_u8; 1];
        self.read_exact(&mut b).is_ok() && b[0] == b'B'
    }
}

fn header_line(out: &mut impl Write, dbid: i64, version: i32) -> std::io::Result<()> {
    writeln!(
        out,
        "ZooKeeper Transactional Log File with dbid {dbid} txnlog format version {version}"
    )
}

fn dump(path: &Path, options: &Options, out: &mut impl Write) -> Result<(), Failure> {
    let fixed_path = PathBuf::from(format!("{}.fixed", path.display()));
    if options.recover && fixed_path.exists() {
        return Err(fail(
            UNEXPECTED_ERROR,
            format!(
                "Recovery file {} already exists or not writable",
                fixed_path.display()
            ),
        ));
    }
    let (mut entries, dbid, version) = Entries::open(path)?;
    let mut fixed = match options.recover {
        true => Some(BufWriter::new(File::create(&fixed_path)?)),
        false => None,
    };
    header_line(out, dbid, version)?;
    if let Some(w) = fixed.as_mut() {
        w.write_all(&LOG_MAGIC.to_be_bytes())?;
        w.write_all(&version.to_be_bytes())?;
        w.write_all(&dbid.to_be_bytes())?;
    }
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let mut progress = Progress::new("log bytes", size);
    let stdin = std::io::stdin();
    let mut answers = stdin.lock().lines();
    let (mut count, mut crc_fixed) = (0_u64, 0_u64);
    loop {
        let (mut crc, bytes) = match entries.next()? {
            Next::End => {
                writeln!(out, "EOF reached after {count} txns.")?;
                break;
            }
            Next::Entry(crc, bytes) => (crc, bytes),
        };
        let actual = i64::from(adler32(&bytes));
        if crc != actual {
            if options.recover && !options.yes {
                print_txn(out, &bytes, "CRC ERROR")?;
                if ask_for_fix(out, &mut answers)? {
                    crc = actual;
                    crc_fixed += 1;
                }
            } else if options.recover {
                crc = actual;
                print_txn(out, &bytes, "CRC FIXED")?;
                crc_fixed += 1;
            } else {
                print_txn(out, &bytes, "CRC ERROR")?;
            }
        }
        if !options.recover || options.verbose {
            print_txn(out, &bytes, "")?;
        }
        if !entries.end_of_record() {
            return Err(fail(UNEXPECTED_ERROR, "Last transaction was partial."));
        }
        if let Some(w) = fixed.as_mut() {
            w.write_all(&crc.to_be_bytes())?;
            w.write_all(&(bytes.len() as i32).to_be_bytes())?;
            w.write_all(&bytes)?;
            w.write_all(b"B")?;
        }
        count += 1;
        progress.at(entries.offset);
    }
    progress.done();
    if let Some(mut w) = fixed {
        w.flush()?;
        w.get_ref().sync_all()?;
        writeln!(
            out,
            "Recovery file {} has been written with {crc_fixed} fixed CRC error(s)",
            fixed_path.display()
        )?;
    }
    Ok(())
}

/// `askForFix`: `Would you like to fix it (Yes/No/Abort) ? `, until an answer starts
/// with y, n or a.
fn ask_for_fix(
    out: &mut impl Write,
    answers: &mut impl Iterator<Item = std::io::Result<String>>,
) -> Result<bool, Failure> {
    loop {
        write!(out, "Would you like to fix it (Yes/No/Abort) ? ")?;
        out.flush()?;
        let Some(answer) = answers.next().transpose()? else {
            return Err(fail(0, "Recovery aborted."));
        };
        for word in answer.split_whitespace() {
            match word.chars().next().map(|c| c.to_ascii_uppercase()) {
                Some('Y') => return Ok(true),
                Some('N') => return Ok(false),
                Some('A') => return Err(fail(0, "Recovery aborted.")),
                _ => {}
            }
        }
    }
}

/// `LogChopper.chop`: copies the entries up to `zxid` into `<file>.chopped<zxid>`.
fn chop(path: &Path, zxid: i64, out: &mut impl Write) -> Result<(), Failure> {
    let target = PathBuf::from(format!("{}.chopped{zxid}", path.display()));
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let (mut entries, dbid, version) = match Entries::open(path) {
        Ok(opened) => opened,
        Err(Failure {
            code: INVALID_INVOCATION,
            ..
        }) => {
            File::create(&target)?;
            eprintln!("Invalid magic number in txn log file");
            writeln!(out, "Got exception: Failed to chop {name}")?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut chopped = BufWriter::new(File::create(&target)?);
    header_line(out, dbid, version)?;
    chopped.write_all(&LOG_MAGIC.to_be_bytes())?;
    chopped.write_all(&version.to_be_bytes())?;
    chopped.write_all(&dbid.to_be_bytes())?;
    let (mut count, mut has_zxid, mut previous) = (0_u64, false, -1_i64);
    let done = loop {
        let (crc, bytes) = match entries.next()? {
            Next::End => {
                writeln!(out, "EOF reached after {count} txns.")?;
                break false;
            }
            Next::Entry(crc, bytes) => (crc, bytes),
        };
        let actual = i64::from(adler32(&bytes));
        if crc != actual {
            writeln!(out, "Got exception: CRC doesn't match {crc} vs {actual}")?;
            chopped.flush()?;
            return Ok(());
        }
        let header = match decode(&bytes) {
            Ok((header, _)) => header,
            Err(message) => {
                writeln!(out, "Got exception: {message}")?;
                chopped.flush()?;
                return Ok(());
            }
        };
        if !entries.end_of_record() {
            writeln!(out, "Last transaction was partial.")?;
            writeln!(out, "Got exception: Last transaction was partial.")?;
            chopped.flush()?;
            return Ok(());
        }
        let txn_zxid = header.zxid;
        if txn_zxid == zxid {
            has_zxid = true;
        }
        if previous != -1 && txn_zxid != previous + 1 {
            if txn_zxid >> 32 == previous >> 32 {
                writeln!(
                    out,
                    "There is intra-epoch gap between {previous:x} and {txn_zxid:x}"
                )?;
            } else if txn_zxid & 0xffff_ffff != 1 {
                writeln!(
                    out,
                    "There is inter-epoch gap between {previous:x} and {txn_zxid:x}"
                )?;
            }
        }
        previous = txn_zxid;
        if txn_zxid > zxid {
            if count == 0 || !has_zxid {
                writeln!(out, "This log does not contain zxid {zxid:x}")?;
                break false;
            }
            writeln!(out, "Chopping at {zxid:x} new log has {count} records")?;
            break true;
        }
        chopped.write_all(&crc.to_be_bytes())?;
        chopped.write_all(&(bytes.len() as i32).to_be_bytes())?;
        chopped.write_all(&bytes)?;
        chopped.write_all(b"B")?;
        count += 1;
    };
    chopped.flush()?;
    chopped.get_ref().sync_all()?;
    if !done {
        writeln!(out, "Got exception: Failed to chop {name}")?;
    }
    Ok(())
}

/// A txn entry's header and the text `TxnLogToolkit.getFormattedTxnStr` gives its txn.
fn decode(bytes: &[u8]) -> Result<(TxnHeader, String), String> {
    let mut r = Reader::new(Bytes::copy_from_slice(bytes));
    let header = TxnHeader::decode(&mut r).map_err(|e| e.to_string())?;
    let text = txn_text(header.r#type, &mut r)?;
    Ok((header, text))
}

/// `printTxn`: the entry's line, after `prefix - ` when there is a prefix.
fn print_txn(out: &mut impl Write, bytes: &[u8], prefix: &str) -> Result<(), Failure> {
    let (header, text) = decode(bytes).map_err(|e| fail(UNEXPECTED_ERROR, e))?;
    let line = format!(
        "{} session 0x{:x} cxid 0x{:x} zxid 0x{:x} {} {}",
        short_long(header.time),
        header.client_id,
        i64::from(header.cxid),
        header.zxid,
        op_name(header.r#type),
        text
    );
    if !prefix.trim().is_empty() {
        write!(out, "{prefix} - ")?;
    }
    // A txn printed by jute's toString ends with a newline already.
    if line.ends_with('\n') {
        write!(out, "{line}")?;
    } else {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `Request.op2String`.
fn op_name(op: i32) -> String {
    match op {
        0 => "notification",
        1 => "create",
        2 => "delete",
        3 => "exists",
        4 => "getData",
        5 => "setData",
        6 => "getACL",
        7 => "setACL",
        8 => "getChildren",
        9 => "sync",
        11 => "ping",
        12 => "getChildren2",
        13 => "check",
        14 => "multi",
        15 => "create2",
        16 => "reconfig",
        17 => "checkWatches",
        18 => "removeWatches",
        19 => "createContainer",
        20 => "deleteContainer",
        21 => "createTtl",
        22 => "multiRead",
        100 => "auth",
        101 => "setWatches",
        105 => "setWatches2",
        102 => "sasl",
        103 => "getEphemerals",
        104 => "getAllChildrenNumber",
        -10 => "createSession",
        -11 => "closeSession",
        -1 => "error",
        107 => "whoAmI",
        other => return format!("unknown {other}"),
    }
    .to_owned()
}

/// `checkNullToEmpty`: data as UTF-8 text, invalid bytes replaced.
fn text(data: Option<&Bytes>) -> String {
    data.map(|d| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default()
}

/// A `List<ACL>`'s `toString`: each ACL's jute text (ending in a newline) in brackets.
fn acl_list(acl: Option<&Vec<Acl>>) -> String {
    match acl {
        None => "null".into(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|a| {
                    format!(
                        "{},s{{{},{}}}\n",
                        a.perms,
                        quoted(&a.id.scheme),
                        quoted(&a.id.id)
                    )
                })
                .collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// jute's `toString` of an ACL vector: `v{s{perms,s{'scheme,'id}},...}`.
fn acl_vector(acl: Option<&Vec<Acl>>) -> String {
    let items: Vec<String> = acl
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "s{{{},s{{{},{}}}}}",
                a.perms,
                quoted(&a.id.scheme),
                quoted(&a.id.id)
            )
        })
        .collect();
    format!("v{{{}}}", items.join(","))
}

fn decode_as<T: Record>(r: &mut Reader) -> Result<T, String> {
    T::decode(r).map_err(|e| e.to_string())
}

/// The txn after the header, as `getFormattedTxnStr` prints it (`SerializeUtils` decides
/// the record from the type; a type it has no record for is an error).
fn txn_text(op: i32, r: &mut Reader) -> Result<String, String> {
    Ok(match op {
        -10 => {
            let t: CreateSessionTxn = decode_as(r)?;
            format!("{}\n", t.time_out)
        }
        -11 => {
            // Logs before 3.6 have no body: nothing is printed.
            if r.remaining() == 0 {
                return Ok(String::new());
            }
            match CloseSessionTxn::decode(r) {
                Ok(t) => {
                    let paths: Vec<String> = t
                        .paths2_delete
                        .iter()
                        .flatten()
                        .map(|p| quoted(p))
                        .collect();
                    format!("v{{{}}}\n", paths.join(","))
                }
                Err(_) => String::new(),
            }
        }
        1 | 15 => {
            let t: CreateTxn = decode_as(r)?;
            format!(
                "{},{},{},{},{}",
                t.path,
                text(t.data.as_ref()),
                acl_list(t.acl.as_ref()),
                t.ephemeral,
                t.parent_c_version
            )
        }
        21 => {
            let t: CreateTtlTxn = decode_as(r)?;
            format!(
                "{},{},{},{},{}",
                t.path,
                text(t.data.as_ref()),
                acl_list(t.acl.as_ref()),
                t.parent_c_version,
                t.ttl
            )
        }
        19 => {
            let t: CreateContainerTxn = decode_as(r)?;
            format!(
                "{},{},{},{}",
                t.path,
                text(t.data.as_ref()),
                acl_list(t.acl.as_ref()),
                t.parent_c_version
            )
        }
        2 | 20 => {
            let t: DeleteTxn = decode_as(r)?;
            format!("{}\n", quoted(&t.path))
        }
        5 | 16 => {
            let t: SetDataTxn = decode_as(r)?;
            format!("{},{},{}", t.path, text(t.data.as_ref()), t.version)
        }
        7 => {
            let t: SetAclTxn = decode_as(r)?;
            format!(
                "{},{},{}\n",
                quoted(&t.path),
                acl_vector(t.acl.as_ref()),
                t.version
            )
        }
        -1 => {
            let t: ErrorTxn = decode_as(r)?;
            format!("{}\n", t.err)
        }
        14 => {
            let t: MultiTxn = decode_as(r)?;
            let ops: Vec<String> = t
                .txns
                .iter()
                .flatten()
                .map(|op| format!("{}:{}", op_name(op.r#type), text(op.data.as_ref())))
                .collect();
            ops.join(";")
        }
        13 => {
            // SerializeUtils has no case for a check outside a multi.
            let _: CheckVersionTxn = decode_as(r)?;
            return Err(format!("Unsupported Txn with type={op}"));
        }
        other => return Err(format!("Unsupported Txn with type={other}")),
    })
}
