//! The framing of a log chunk of format 2: the commit's time stamp, then a table of each
//! event's encoded length, then the events, each encoded on its own. A reader after a few
//! events of a chunk (an account's history, a point-in-time fold) decodes only those instead
//! of all 256; a range read decodes them all, as with format 1.
//!
//! Layout after the version byte: `recorded_at_us` (i64 LE), event count (LEB128), each
//! event's length (LEB128), the events' bytes back to back. Lengths of 50-300 bytes take 1-2
//! bytes each.

/// A chunk's parts, borrowed from its bytes.
pub struct ChunkTable<'a> {
    pub recorded_at_us: i64,
    pub events: Vec<&'a [u8]>,
}

/// `recorded_at_us` and the events, encoded back to back in `bodies` with their `lengths` in
/// order, as one chunk body (without the version byte).
pub fn write(out: &mut Vec<u8>, recorded_at_us: i64, bodies: &[u8], lengths: &[usize]) {
    debug_assert_eq!(lengths.iter().sum::<usize>(), bodies.len());
    out.extend_from_slice(&recorded_at_us.to_le_bytes());
    write_varint(out, lengths.len() as u64);
    for &len in lengths {
        write_varint(out, len as u64);
    }
    out.extend_from_slice(bodies);
}

/// Split a chunk body (after the version byte); `Err` names what is wrong.
pub fn split(body: &[u8]) -> Result<ChunkTable<'_>, String> {
    let stamp: [u8; 8] = body
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or("shorter than its time stamp")?;
    let mut at = 8;
    let count = read_varint(body, &mut at)?;
    // Each event takes at least its length byte: a count beyond that is damage, not a size
    // to allocate for.
    if count > (body.len() - at) as u64 {
        return Err(format!("claims {count} events in {} bytes", body.len()));
    }
    let lengths = (0..count)
        .map(|_| read_varint(body, &mut at))
        .collect::<Result<Vec<u64>, String>>()?;
    let mut events = Vec::with_capacity(lengths.len());
    for len in lengths {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| at.checked_add(len))
            .filter(|end| *end <= body.len())
            .ok_or("an event's length runs past the chunk's end")?;
        events.push(&body[at..end]);
        at = end;
    }
    if at != body.len() {
        return Err(format!("{} bytes after the last event", body.len() - at));
    }
    Ok(ChunkTable {
        recorded_at_us: i64::from_le_bytes(stamp),
        events,
    })
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or("cut short inside its length table")?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a length longer than 64 bits".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_events_split_back_whole() {
        let big = vec![7u8; 300];
        let events: Vec<&[u8]> = vec![b"a", b"", &big, b"xyz"];
        let lengths: Vec<usize> = events.iter().map(|e| e.len()).collect();
        let mut out = Vec::new();
        write(&mut out, -42, &events.concat(), &lengths);
        let table = split(&out).unwrap();
        assert_eq!(table.recorded_at_us, -42);
        assert_eq!(table.events, events);
    }

    #[test]
    fn damage_is_refused_not_followed() {
        let mut out = Vec::new();
        write(&mut out, 1, b"abcde", &[3, 2]);
        for cut in 0..out.len() {
            assert!(split(&out[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut longer = out.clone();
        longer.push(0);
        assert!(split(&longer).is_err());
        // A count of 2^62 events in a few bytes.
        let mut huge = 1i64.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
        assert!(split(&huge).is_err());
    }
}
