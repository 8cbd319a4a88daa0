//! Golden bytes written by Apache ZooKeeper 3.8.0's own jute classes (`cargo xtask
//! fixtures`): every fixture decodes, and re-encodes to exactly what the reference writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;
use zk_jute::data::{Acl, Id, Stat};
use zk_jute::proto::{
    CreateRequest, GetDataRequest, GetDataResponse, ReconfigRequest, ReplyHeader, RequestHeader,
    WatcherEvent,
};
use zk_jute::{
    DecodeError, EventType, FrameCodec, KeeperState, MultiOp, MultiRequest, OpCode, Perms, Reader,
    Record, from_bytes, to_bytes, xid,
};

/// Fixtures where the reference writes a null `ustring` into a field this crate models as
/// `String`: null decodes as empty, so the re-encoding has length 0 where the original has
/// -1. Each entry lists the offsets of those null lengths.
const NULL_STRINGS_AS_EMPTY: &[(&str, &[usize])] = &[
    ("Id.null-strings.bin", &[0, 4]),
    ("ClientInfo.null-strings.bin", &[0, 4]),
    ("WatcherEvent.session-expired.bin", &[8]),
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> Bytes {
    let path = fixtures_dir().join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

macro_rules! dispatch {
    ($($ty:path => $name:literal),* $(,)?) => {
        /// Decodes `bytes` as the record ZooKeeper names `record` and encodes it again.
        fn reencode(record: &str, bytes: Bytes) -> Option<Result<Bytes, DecodeError>> {
            match record {
                $( $name => Some(from_bytes::<$ty>(bytes).map(|r| to_bytes(&r))), )*
                _ => None,
            }
        }

        const RECORD_NAMES: &[&str] = &[$($name),*];
    };
}
zk_jute::for_each_record!(dispatch);

/// `(file name, record name)` of every `.bin` fixture in the manifest.
fn manifest() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixtures_dir().join("MANIFEST.txt")).unwrap();
    let entries: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (file, record) = (words.next()?, words.next()?);
            file.ends_with(".bin")
                .then(|| (file.to_owned(), record.to_owned()))
        })
        .collect();
    assert!(
        entries.len() > 100,
        "the manifest lists only {} fixtures",
        entries.len()
    );
    entries
}

/// What a faithful decode-then-encode of fixture `file` must produce.
fn expected_reencoding(file: &str) -> Bytes {
    let reencoded = fixtures_dir().join(file.replace(".bin", ".reencoded"));
    if reencoded.exists() {
        return Bytes::from(std::fs::read(reencoded).unwrap());
    }
    let original = fixture(file);
    match NULL_STRINGS_AS_EMPTY.iter().find(|(name, _)| *name == file) {
        None => original,
        Some((_, offsets)) => {
            let mut bytes = BytesMut::from(&original[..]);
            for &at in *offsets {
                assert_eq!(bytes[at..at + 4], [0xff; 4], "{file}: no null at {at}");
                bytes[at..at + 4].fill(0);
            }
            bytes.freeze()
        }
    }
}

#[test]
fn every_fixture_reencodes_to_the_reference_bytes() {
    let mut checked = 0;
    for (file, record) in manifest() {
        if record == "Frame" {
            continue; // Frames hold several records; see the frame tests below.
        }
        let result = reencode(&record, fixture(&file))
            .unwrap_or_else(|| panic!("{file}: no Rust type for record {record}"));
        let bytes = result.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(bytes, expected_reencoding(&file), "{file}");
        checked += 1;
    }
    assert!(checked > 100);
}

#[test]
fn every_record_type_has_a_fixture() {
    let covered: BTreeSet<String> = manifest().into_iter().map(|(_, record)| record).collect();
    let missing: Vec<&&str> = RECORD_NAMES
        .iter()
        .filter(|n| !covered.contains(**n))
        .collect();
    assert!(missing.is_empty(), "records without a fixture: {missing:?}");
}

fn stat() -> Stat {
    // The generator's sample stat: every field distinct.
    from_bytes(fixture("Stat.basic.bin")).unwrap()
}

#[test]
fn values_built_in_rust_encode_like_the_reference() {
    let open_acl = Some(vec![Acl {
        perms: Perms::ALL.0,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]);
    let unicode = "/ünïcødé/日本語/\u{1f980}";
    let create = CreateRequest {
        path: unicode.into(),
        data: Some(Bytes::from(unicode.as_bytes().to_vec())),
        acl: open_acl,
        flags: 1,
    };
    assert_eq!(to_bytes(&create), fixture("CreateRequest.unicode.bin"));

    let reconfig = ReconfigRequest {
        joining_servers: None,
        leaving_servers: None,
        new_members: None,
        cur_config_id: -1,
    };
    assert_eq!(
        to_bytes(&reconfig),
        fixture("ReconfigRequest.null-strings.bin")
    );

    let data: Vec<u8> = (0..1024_u32).map(|i| (i % 251) as u8).collect();
    let response = GetDataResponse {
        data: Some(Bytes::from(data)),
        stat: stat(),
    };
    assert_eq!(to_bytes(&response), fixture("GetDataResponse.1k.bin"));
    assert_eq!(
        to_bytes(&GetDataResponse {
            data: None,
            stat: stat()
        }),
        { fixture("GetDataResponse.null-data.bin") }
    );
}

#[test]
fn stat_fields_are_in_wire_order() {
    let stat = stat();
    assert_eq!((stat.czxid, stat.mzxid), (0x1_0000_0001, 0x1_0000_0005));
    assert_eq!(
        (stat.ctime, stat.mtime),
        (1_700_000_000_000, 1_700_000_001_234)
    );
    assert_eq!((stat.version, stat.cversion, stat.aversion), (4, 2, 1));
}

#[test]
fn connect_request_with_and_without_read_only() {
    let with: zk_jute::proto::ConnectRequest = from_bytes(fixture("ConnectRequest.readonly.bin"))
        .expect("the 3.8 client's connect request");
    assert_eq!(with.read_only, Some(true));
    let passwd = with.passwd.as_ref().map(Bytes::len);
    assert_eq!(passwd, Some(16));
    let without: zk_jute::proto::ConnectRequest =
        from_bytes(fixture("ConnectRequest.basic.bin")).unwrap();
    assert_eq!(without.read_only, None);
}

#[test]
fn multi_request_ops_decode_with_their_opcodes() {
    let multi: MultiRequest = from_bytes(fixture("MultiRequest.all-ops.bin")).unwrap();
    let ops: Vec<(OpCode, &str)> = multi
        .ops
        .iter()
        .map(|op| (op.op_code(), op.path()))
        .collect();
    assert_eq!(
        ops,
        [
            (OpCode::Create, "/m"),
            (OpCode::CreateContainer, "/c"),
            (OpCode::CreateTtl, "/t"),
            (OpCode::Delete, "/d"),
            (OpCode::SetData, "/m"),
            (OpCode::Check, "/m"),
        ]
    );
    let MultiOp::CreateTtl(ttl) = &multi.ops[2] else {
        panic!("not a TTL create")
    };
    assert_eq!(ttl.ttl, 60_000);
}

fn frame(name: &str) -> Reader {
    let mut src = BytesMut::from(&fixture(name)[..]);
    let body = FrameCodec::default()
        .decode(&mut src)
        .unwrap()
        .expect("a whole frame");
    assert!(src.is_empty(), "{name}: bytes after the frame");
    Reader::new(body)
}

#[test]
fn request_frames_from_the_reference() {
    let mut r = frame("Frame.getdata-request.bin");
    assert_eq!(
        RequestHeader::decode(&mut r).unwrap(),
        RequestHeader {
            xid: 7,
            r#type: OpCode::GetData.code()
        }
    );
    assert_eq!(
        GetDataRequest::decode(&mut r).unwrap(),
        GetDataRequest {
            path: "/a/b".into(),
            watch: true
        }
    );
    r.finish().unwrap();

    let mut r = frame("Frame.ping-request.bin");
    let ping = RequestHeader {
        xid: xid::PING,
        r#type: OpCode::Ping.code(),
    };
    assert_eq!(RequestHeader::decode(&mut r).unwrap(), ping);
    r.finish().unwrap();
}

#[test]
fn notification_frame_from_the_reference() {
    let mut r = frame("Frame.notification.bin");
    let header = ReplyHeader::decode(&mut r).unwrap();
    assert_eq!(
        (header.xid, header.zxid, header.err),
        (xid::NOTIFICATION, -1, 0)
    );
    let event = WatcherEvent::decode(&mut r).unwrap();
    assert_eq!(
        EventType::try_from(event.r#type),
        Ok(EventType::NodeDataChanged)
    );
    assert_eq!(
        KeeperState::try_from(event.state),
        Ok(KeeperState::SyncConnected)
    );
    assert_eq!(event.path, "/a");
    r.finish().unwrap();
}
