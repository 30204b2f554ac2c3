//! Long sequences of numbers in the log index checkpoint, saved as one byte string of LEB128
//! numbers, each the difference from a value the reader already has (the entry before, or the
//! position it belongs to): bincode's own varints take 5 bytes for any number from 65,536 and
//! 9 for a time stamp, and a byte string is one call, not one per element.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Serialized as one byte string.
pub(crate) struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Deserialized from one byte string.
pub(crate) struct ByteBuf(pub Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// Append `v` as LEB128 (7 bits a byte, low first).
pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Read one LEB128 number from the front of `bytes`; `None` when cut short or too long.
pub(crate) fn take(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(v);
        }
    }
    None
}

/// `(stamp, last position)` of each commit: stamps and positions never decrease, so each is
/// saved as its step from the one before (a few bytes a commit instead of 14).
pub(crate) mod commit_times {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(times: &[(i64, u64)], s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(times.len() * 4);
        let (mut t0, mut p0) = (0i64, 0u64);
        for &(t, p) in times {
            put(&mut out, t.wrapping_sub(t0) as u64);
            put(&mut out, p.wrapping_sub(p0));
            (t0, p0) = (t, p);
        }
        Bytes(&out).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(i64, u64)>, D::Error> {
        let ByteBuf(bytes) = ByteBuf::deserialize(d)?;
        let mut rest = bytes.as_slice();
        let mut out = Vec::new();
        let (mut t, mut p) = (0i64, 0u64);
        while !rest.is_empty() {
            let (Some(dt), Some(dp)) = (take(&mut rest), take(&mut rest)) else {
                return Err(de::Error::custom("commit times: a number cut short"));
            };
            t = t.wrapping_add(dt as i64);
            p = p.wrapping_add(dp);
            out.push((t, p));
        }
        Ok(out)
    }
}

/// At `position - 1`, the previous position of that event's stream (0: none): saved as the
/// step back from the position itself, 0 for none (up to 2M back in 3 bytes).
pub(crate) mod previous_positions {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(previous: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(previous.len() * 3);
        for (at, &prev) in previous.iter().enumerate() {
            let position = at as u64 + 1;
            put(
                &mut out,
                if prev == 0 {
                    0
                } else {
                    position.wrapping_sub(prev)
                },
            );
        }
        Bytes(&out).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let ByteBuf(bytes) = ByteBuf::deserialize(d)?;
        let mut rest = bytes.as_slice();
        let mut out = Vec::with_capacity(bytes.len() / 2);
        while !rest.is_empty() {
            let Some(back) = take(&mut rest) else {
                return Err(de::Error::custom("previous positions: a number cut short"));
            };
            let position = out.len() as u64 + 1;
            // Saved as a distance back, so a walk back from any position only goes down and
            // ends; one pointing before the log's start is damage.
            if back >= position {
                return Err(de::Error::custom(format!(
                    "previous positions: the event at {position} points {back} back, before the \
                     log's start"
                )));
            }
            out.push(if back == 0 { 0 } else { position - back });
        }
        out.shrink_to_fit();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back_and_a_cut_one_is_refused() {
        let values = [0, 1, 127, 128, 300, 65_535, 65_536, 1 << 40, u64::MAX];
        let mut bytes = Vec::new();
        for v in values {
            put(&mut bytes, v);
        }
        let mut rest = bytes.as_slice();
        for v in values {
            assert_eq!(take(&mut rest), Some(v));
        }
        assert!(rest.is_empty());
        let mut cut: &[u8] = &[0x80, 0x80];
        assert_eq!(take(&mut cut), None);
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Saved {
        #[serde(with = "commit_times")]
        times: Vec<(i64, u64)>,
        #[serde(with = "previous_positions")]
        previous: Vec<u64>,
    }

    #[test]
    fn commit_times_and_previous_positions_read_back() {
        let saved = Saved {
            times: vec![
                (1_764_000_000_000_000, 3),
                (1_764_000_000_000_000, 9),
                (1_764_000_000_400_123, 700_000),
            ],
            previous: vec![0, 0, 1, 2, 0, 3, 5, 1],
        };
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&saved, cfg).unwrap();
        let (back, _): (Saved, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(back, saved);
    }

    #[test]
    fn a_previous_position_before_the_log_is_refused() {
        // Encoded by hand: the event at position 2 says its stream's previous one is 5 back.
        let mut blob = Vec::new();
        put(&mut blob, 0);
        put(&mut blob, 5);
        let saved = Saved {
            times: Vec::new(),
            previous: Vec::new(),
        };
        let cfg = bincode::config::standard();
        let mut bytes = bincode::serde::encode_to_vec(&saved, cfg).unwrap();
        // The previous positions are last: an empty blob's length byte, replaced by this one.
        bytes.pop();
        bytes.extend(bincode::serde::encode_to_vec(Bytes(&blob), cfg).unwrap());
        let refused = bincode::serde::decode_from_slice::<Saved, _>(&bytes, cfg).unwrap_err();
        assert!(
            refused.to_string().contains("before the log's start"),
            "{refused}"
        );
    }
}
