//! Strings as ZooKeeper's jute really writes and reads them.
//!
//! Jute's writer encodes a Java string one UTF-16 unit at a time, so a character outside
//! the Basic Multilingual Plane (an emoji, say) becomes two 3-byte surrogate sequences
//! (6 bytes, as in CESU-8) rather than UTF-8's 4 bytes. Jute's reader decodes standard
//! UTF-8 and replaces each malformed sequence, and so each encoded surrogate, with one
//! U+FFFD. For every other string the bytes are plain UTF-8. This module reproduces both
//! sides exactly, so that our bytes equal the reference's.

use bytes::BufMut;

/// Whether a UTF-8 byte starts a 4-byte sequence (a supplementary character).
fn starts_supplementary(byte: &u8) -> bool {
    *byte >= 0xf0
}

/// The number of bytes jute's writer produces for `s`.
pub(crate) fn encoded_len(s: &str) -> usize {
    // Each 4-byte UTF-8 sequence becomes two 3-byte surrogates.
    s.len()
        + 2 * s
            .as_bytes()
            .iter()
            .filter(|b| starts_supplementary(b))
            .count()
}

/// Appends `s` as jute's writer encodes it.
pub(crate) fn encode<B: BufMut>(s: &str, out: &mut B) {
    if !s.as_bytes().iter().any(starts_supplementary) {
        out.put_slice(s.as_bytes());
        return;
    }
    let mut units = [0_u16; 2];
    for ch in s.chars() {
        if ch.len_utf8() < 4 {
            out.put_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
            continue;
        }
        for unit in ch.encode_utf16(&mut units).iter() {
            out.put_slice(&[0xe0 | (unit >> 12) as u8, 0x80 | ((unit >> 6) & 0x3f) as u8]);
            out.put_u8(0x80 | (unit & 0x3f) as u8);
        }
    }
}

/// Decodes bytes as jute's reader does: UTF-8, with each malformed sequence (an encoded
/// surrogate counts as one) replaced by U+FFFD.
pub(crate) fn decode(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => decode_lossy(e.as_bytes()),
    }
}

fn decode_lossy(mut rest: &[u8]) -> String {
    let mut out = String::with_capacity(rest.len());
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push(char::REPLACEMENT_CHARACTER);
                let skip = match bad {
                    [0xed, 0xa0..=0xbf, 0x80..=0xbf, ..] => 3,
                    _ => e.error_len().unwrap_or(bad.len()),
                };
                rest = bad.get(skip..).unwrap_or_default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_string_reads_back_with_supplementary_characters_replaced(s in any::<String>()) {
            let mut out = Vec::new();
            encode(&s, &mut out);
            prop_assert_eq!(out.len(), encoded_len(&s));
            let expected: String = s
                .chars()
                .flat_map(|c| if c.len_utf8() == 4 { vec!['\u{fffd}'; 2] } else { vec![c] })
                .collect();
            prop_assert_eq!(decode(out), expected);
        }
    }

    #[test]
    fn supplementary_characters_become_two_surrogates() {
        let mut out = Vec::new();
        encode("a\u{1f980}é", &mut out);
        assert_eq!(out, [b'a', 0xed, 0xa0, 0xbe, 0xed, 0xb6, 0x80, 0xc3, 0xa9]);
        assert_eq!(encoded_len("a\u{1f980}é"), out.len());
    }

    #[test]
    fn encoded_surrogates_read_back_as_one_replacement_each() {
        let bytes = vec![b'a', 0xed, 0xa0, 0xbe, 0xed, 0xb6, 0x80, 0xc3, 0xa9];
        assert_eq!(decode(bytes), "a\u{fffd}\u{fffd}é");
        assert_eq!(decode(vec![0xff, b'x']), "\u{fffd}x");
        assert_eq!(decode(vec![b'x', 0xe6, 0x97]), "x\u{fffd}");
    }
}
