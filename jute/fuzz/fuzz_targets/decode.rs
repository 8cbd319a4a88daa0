//! Frames, then every record type, from untrusted bytes: nothing may panic, and whatever
//! decodes must re-encode to bytes that decode again. After that one pass the value is
//! stable: jute itself normalises some inputs (null strings read as empty, any non-zero
//! boolean byte as true, 4-byte UTF-8 written back as surrogates that read as U+FFFD).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use zk_jute::{FrameCodec, Reader, Record, from_bytes, to_bytes};

fn check<R: Record + PartialEq + std::fmt::Debug>(body: &bytes::Bytes) {
    // As a whole record.
    if let Ok(record) = from_bytes::<R>(body.clone()) {
        let again = to_bytes(&record);
        assert_eq!(again.len(), record.encoded_len());
        let normalised = from_bytes::<R>(again).expect("our own encoding decodes");
        assert_eq!(from_bytes::<R>(to_bytes(&normalised)), Ok(normalised));
    }
    // As a prefix, the way a server reads a header and then a body.
    let mut reader = Reader::new(body.clone());
    if let Err(e) = R::decode(&mut reader) {
        assert!(e.offset <= body.len());
    }
}

macro_rules! check_all {
    ($($ty:path => $name:literal),* $(,)?) => {
        fn check_every_record(body: &bytes::Bytes) {
            $( check::<$ty>(body); )*
        }
    };
}
zk_jute::for_each_record!(check_all);

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::new(4096);
    let mut src = BytesMut::from(data);
    while let Ok(Some(body)) = codec.decode(&mut src) {
        check_every_record(&body);
    }
    // The same bytes unframed.
    check_every_record(&bytes::Bytes::copy_from_slice(data));
});
