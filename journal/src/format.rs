//! Byte formats of segment headers, records and snapshot files.
//!
//! Segment header (32 bytes, little endian):
//!
//! | offset | bytes | field                                                         |
//! |-------:|------:|---------------------------------------------------------------|
//! | 0      | 8     | magic `ORDOJNL\n`                                             |
//! | 8      | 4     | format version (`1`)                                          |
//! | 12     | 4     | crc32c of bytes 0..12 followed by bytes 16..32                |
//! | 16     | 8     | `first_id`: the file's name; every record id is `>= first_id` |
//! | 24     | 8     | `prev_last_id`: id of the last record before this segment     |
//!
//! Record: `u32 len | u32 crc32c | payload`, where `len` counts the payload bytes and the
//! crc32c covers the four `len` bytes followed by the payload. The payload is the postcard
//! encoding of [`Entry`]: `varint(variant) varint(id) varint(data.len()) data`.
//!
//! Snapshot file (`snapshot-<id>.snap`): magic `ORDOSNP\n` (8), format version (4), crc32c
//! (4) of bytes 0..12 followed by everything from byte 16 on, `id` (8), `len` (8), then `len`
//! opaque bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Visitor};

/// Format version written into segment headers and snapshot files.
pub const FORMAT_VERSION: u32 = 1;
/// Size of a segment header in bytes.
pub const SEGMENT_HEADER_BYTES: u64 = 32;
/// Bytes in front of every record's payload: `u32 len | u32 crc32c`.
pub const RECORD_FRAME_BYTES: usize = 8;
/// Largest possible payload overhead over the data: variant (1), id (10), data length (5).
pub const PAYLOAD_OVERHEAD_BYTES_MAX: usize = 16;
/// Size of a snapshot file header in bytes.
pub const SNAPSHOT_HEADER_BYTES: usize = 32;

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"ORDOJNL\n";
pub(crate) const SNAPSHOT_MAGIC: [u8; 8] = *b"ORDOSNP\n";

/// One persisted record. New shapes are added as new variants at the end; existing variants
/// never change, so journals written by older versions keep loading.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Entry<'a> {
    V1 {
        id: u64,
        #[serde(borrow)]
        data: Bytes<'a>,
    },
}

/// A byte slice that postcard writes as `varint(len) bytes` in one copy. The wire format is the
/// same as a sequence of `u8`, but it avoids one serializer call per byte.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Bytes<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub first_id: u64,
    pub prev_last_id: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    BadMagic,
    UnsupportedVersion(u32),
    BadChecksum,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES as usize] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES as usize];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_id.to_le_bytes());
        out[24..32].copy_from_slice(&self.prev_last_id.to_le_bytes());
        let crc = header_crc(&out);
        out[12..16].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(
        bytes: &[u8; SEGMENT_HEADER_BYTES as usize],
    ) -> Result<SegmentHeader, HeaderError> {
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u32_at(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        if u32_at(bytes, 12) != header_crc(bytes) {
            return Err(HeaderError::BadChecksum);
        }
        Ok(SegmentHeader {
            first_id: u64_at(bytes, 16),
            prev_last_id: u64_at(bytes, 24),
        })
    }
}

/// crc32c of bytes 0..12 followed by bytes 16.. (the checksum field itself is left out).
fn header_crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&bytes[0..12]), &bytes[16..])
}

pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Appends one framed record to `buf`; returns the number of bytes appended.
pub(crate) fn encode_record(buf: &mut Vec<u8>, id: u64, data: &[u8]) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; RECORD_FRAME_BYTES]);
    let entry = Entry::V1 {
        id,
        data: Bytes(data),
    };
    let mut out = postcard::to_extend(&entry, std::mem::take(buf))
        // Serializing into a Vec only fails when memory runs out, which aborts anyway.
        .unwrap_or_else(|e| unreachable!("postcard into a Vec cannot fail: {e}"));
    let payload_len = out.len() - start - RECORD_FRAME_BYTES;
    let len_bytes = u32::try_from(payload_len)
        .unwrap_or_else(|_| unreachable!("record sizes are limited below u32::MAX at append"))
        .to_le_bytes();
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&len_bytes),
        &out[start + RECORD_FRAME_BYTES..],
    );
    out[start..start + 4].copy_from_slice(&len_bytes);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    *buf = out;
    buf.len() - start
}

/// What [`parse_record`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// A complete, valid record of `bytes` bytes (frame included).
    Record {
        id: u64,
        data: &'a [u8],
        bytes: usize,
    },
    /// The buffer holds fewer bytes than the record needs; `bytes` is the total it needs.
    NeedMore { bytes: usize },
    /// The bytes are not a record: a torn write or corruption.
    Invalid(String),
    /// The checksum is right but the payload cannot be decoded: written by a newer version or
    /// by a bug, never by a torn write.
    Undecodable(String),
}

pub(crate) fn parse_record(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < RECORD_FRAME_BYTES {
        return Parsed::NeedMore {
            bytes: RECORD_FRAME_BYTES,
        };
    }
    let len = u32_at(buf, 0) as usize;
    let total = RECORD_FRAME_BYTES + len;
    if buf.len() < total {
        return Parsed::NeedMore { bytes: total };
    }
    let payload = &buf[RECORD_FRAME_BYTES..total];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[0..4]), payload);
    if crc != u32_at(buf, 4) {
        return Parsed::Invalid(format!(
            "checksum mismatch in a record of {len} payload bytes"
        ));
    }
    match postcard::take_from_bytes::<Entry>(payload) {
        Ok((Entry::V1 { id, data }, [])) => Parsed::Record {
            id,
            data: data.0,
            bytes: total,
        },
        Ok((_, rest)) => Parsed::Undecodable(format!(
            "{} unexpected bytes after the record payload",
            rest.len()
        )),
        Err(e) => Parsed::Undecodable(format!(
            "record payload cannot be decoded ({e}); was it written by a newer version?"
        )),
    }
}

pub(crate) fn encode_snapshot(id: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + bytes.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
    let crc = header_crc(&out);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a whole snapshot file; the error says what is wrong with it.
pub(crate) fn decode_snapshot(file: &[u8]) -> Result<(u64, &[u8]), String> {
    if file.len() < SNAPSHOT_HEADER_BYTES {
        return Err(format!(
            "{} bytes is shorter than the {SNAPSHOT_HEADER_BYTES}-byte header",
            file.len()
        ));
    }
    if file[0..8] != SNAPSHOT_MAGIC {
        return Err("not a snapshot file (bad magic)".to_string());
    }
    let version = u32_at(file, 8);
    if version != FORMAT_VERSION {
        return Err(format!(
            "format version {version}; this build reads version {FORMAT_VERSION}"
        ));
    }
    let id = u64_at(file, 16);
    let len = u64_at(file, 24);
    if len != (file.len() - SNAPSHOT_HEADER_BYTES) as u64 {
        return Err(format!(
            "header says {len} bytes but the file holds {}",
            file.len() - SNAPSHOT_HEADER_BYTES
        ));
    }
    if u32_at(file, 12) != header_crc(file) {
        return Err("checksum mismatch".to_string());
    }
    Ok((id, &file[SNAPSHOT_HEADER_BYTES..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn record_golden_bytes() {
        let mut buf = Vec::new();
        let n = encode_record(&mut buf, 300, b"hi");
        assert_eq!(n, buf.len());
        // payload: variant 0, varint(300) = ac 02, varint(2) = 02, "hi"
        assert_eq!(&buf[8..], &[0x00, 0xac, 0x02, 0x02, b'h', b'i']);
        assert_eq!(hex(&buf[0..4]), "06000000");
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[0..4]), &buf[8..]);
        assert_eq!(u32_at(&buf, 4), crc);
        assert_eq!(hex(&buf), "06000000e10e2cf700ac02026869");
    }

    #[test]
    fn bytes_wrapper_matches_postcard_sequence_encoding() {
        #[derive(Serialize)]
        enum Plain {
            V1 { id: u64, data: Vec<u8> },
        }
        let data: Vec<u8> = (0..200u8).collect();
        let plain = postcard::to_allocvec(&Plain::V1 {
            id: 7,
            data: data.clone(),
        })
        .unwrap();
        let fast = postcard::to_allocvec(&Entry::V1 {
            id: 7,
            data: Bytes(&data),
        })
        .unwrap();
        assert_eq!(plain, fast);
    }

    #[test]
    fn record_round_trip_and_every_cut_is_incomplete() {
        let mut buf = Vec::new();
        encode_record(&mut buf, u64::MAX, &[9u8; 1000]);
        match parse_record(&buf) {
            Parsed::Record { id, data, bytes } => {
                assert_eq!(id, u64::MAX);
                assert_eq!(data, &[9u8; 1000][..]);
                assert_eq!(bytes, buf.len());
            }
            other => panic!("unexpected {other:?}"),
        }
        for cut in 0..buf.len() {
            assert!(matches!(parse_record(&buf[..cut]), Parsed::NeedMore { .. }));
        }
        assert!(buf.len() <= RECORD_FRAME_BYTES + PAYLOAD_OVERHEAD_BYTES_MAX + 1000);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 42, b"some event data");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    !matches!(parse_record(&bad), Parsed::Record { .. }),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn unknown_variant_is_undecodable_not_invalid() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 1, b"x");
        buf[8] = 5; // a variant this version does not know
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[0..4]), &buf[8..]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(parse_record(&buf), Parsed::Undecodable(_)));
    }

    #[test]
    fn header_golden_bytes_and_checks() {
        let h = SegmentHeader {
            first_id: 1,
            prev_last_id: 0,
        };
        let bytes = h.encode();
        assert_eq!(
            hex(&bytes),
            format!(
                "4f52444f4a4e4c0a01000000{}01000000000000000000000000000000",
                hex(&u32_at(&bytes, 12).to_le_bytes())
            )
        );
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        let mut bad = bytes;
        bad[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::BadChecksum));
        let mut bad = bytes;
        bad[8] = 9;
        assert_eq!(
            SegmentHeader::decode(&bad),
            Err(HeaderError::UnsupportedVersion(9))
        );
        let mut bad = bytes;
        bad[0] = b'X';
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderError::BadMagic));
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let file = encode_snapshot(77, b"state");
        assert_eq!(decode_snapshot(&file), Ok((77, &b"state"[..])));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            assert!(decode_snapshot(&bad).is_err(), "flip at {i} went unnoticed");
        }
        assert!(decode_snapshot(&file[..file.len() - 1]).is_err());
    }
}
