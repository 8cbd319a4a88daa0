//! Corrupted reference bytes: every fixture truncated at every length and with every byte
//! overwritten by hostile values. Decoding must fail with an error inside the input or
//! succeed with a value that survives a re-encode; it must never panic. (The open-ended
//! version of this is the cargo-fuzz target in `jute/fuzz`.)

use std::path::Path;

use bytes::Bytes;
use zk_jute::{DecodeError, Record, from_bytes, to_bytes};

fn survives<R: Record + PartialEq + std::fmt::Debug>(input: &Bytes) -> Result<(), DecodeError> {
    match from_bytes::<R>(input.clone()) {
        Err(e) => {
            assert!(
                e.offset <= input.len(),
                "{e} points past the {} bytes",
                input.len()
            );
            assert!(!e.to_string().is_empty());
            Err(e)
        }
        Ok(record) => {
            let again = to_bytes(&record);
            assert_eq!(again.len(), record.encoded_len());
            let normalised = from_bytes::<R>(again).expect("our own encoding decodes");
            assert_eq!(
                from_bytes::<R>(to_bytes(&normalised)).as_ref(),
                Ok(&normalised)
            );
            Ok(())
        }
    }
}

macro_rules! dispatch {
    ($($ty:path => $name:literal),* $(,)?) => {
        fn decode_as(record: &str, input: &Bytes) -> Option<Result<(), DecodeError>> {
            match record {
                $( $name => Some(survives::<$ty>(input)), )*
                _ => None,
            }
        }

        fn decode_as_every_record(input: &Bytes) {
            $( let _ = survives::<$ty>(input); )*
        }
    };
}
zk_jute::for_each_record!(dispatch);

fn fixtures() -> Vec<(String, Bytes)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut all: Vec<(String, Bytes)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "bin"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, Bytes::from(std::fs::read(&path).unwrap()))
        })
        .collect();
    all.sort();
    assert!(all.len() > 100);
    all
}

fn record_name(file: &str) -> &str {
    file.split('.').next().unwrap()
}

#[test]
fn truncated_fixtures_fail_cleanly() {
    let mut failures = 0;
    for (file, bytes) in fixtures() {
        for len in 0..bytes.len() {
            let Some(result) = decode_as(record_name(&file), &bytes.slice(..len)) else {
                continue; // frames: covered by the frame codec's own tests
            };
            // A strict prefix can only decode where the record ends in an optional field.
            if result.is_err() {
                failures += 1;
            }
        }
    }
    assert!(failures > 1000, "only {failures} truncations were refused");
}

#[test]
fn overwritten_bytes_never_panic() {
    for (file, bytes) in fixtures() {
        for at in 0..bytes.len() {
            for hostile in [0x00, 0x7f, 0x80, 0xff] {
                let mut corrupt = bytes.to_vec();
                corrupt[at] = hostile;
                let _ = decode_as(record_name(&file), &Bytes::from(corrupt));
            }
        }
    }
}

#[test]
fn every_fixture_as_every_record_type_never_panics() {
    for (_, bytes) in fixtures() {
        decode_as_every_record(&bytes);
    }
}

#[test]
fn a_huge_vector_count_is_refused_without_allocating() {
    // GetChildrenResponse claiming i32::MAX children in an 8-byte input.
    let input = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    let err = decode_as("GetChildrenResponse", &input)
        .unwrap()
        .unwrap_err();
    assert_eq!(err.offset, 0);
    assert_eq!(err.field, Some(("GetChildrenResponse", "children")));
}
