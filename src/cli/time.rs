//! Instants on the command line: RFC 3339 (`2025-01-31T12:00:00Z`, `...+02:00`, fractions
//! allowed) or Unix seconds in, RFC 3339 UTC out. No calendar crate needed for UTC.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Microseconds since the epoch from RFC 3339 or Unix seconds. The error names the value, not
/// the flag: the caller puts its flag in front.
pub fn parse_instant(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<i64>() {
        return secs
            .checked_mul(1_000_000)
            .ok_or_else(|| format!("{s}: out of range"));
    }
    let bad = || format!("{s:?}: expected RFC 3339 like 2025-01-31T12:00:00Z or Unix seconds");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    // Digits only: `parse` would also take a sign. `get`: a non-ASCII character would put a
    // byte range inside it.
    let digits = |t: &str, r: std::ops::Range<usize>| -> Result<i64, String> {
        t.get(r)
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let num = |r| digits(s, r);
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':'
        || b[16] != b':'
        || !(1..=12).contains(&mo)
        || !(1..=days_in_month(y, mo)).contains(&d)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return Err(bad());
        }
        let padded: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(6)
            .collect();
        micros = padded.parse().map_err(|_| bad())?;
        rest = &frac[digits.len()..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6
            && (o.starts_with('+') || o.starts_with('-'))
            && o.as_bytes()[3] == b':' =>
        {
            let (oh, om) = (digits(o, 1..3)?, digits(o, 4..6)?);
            if oh > 23 || om > 59 {
                return Err(format!("{s:?}: the offset {o} is not a time of day"));
            }
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return Err(bad()),
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Ok(secs * 1_000_000 + micros)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// RFC 3339 UTC with microseconds.
pub fn format_us(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// A duration like `90d`, `12h`, `30m` or `45s`, in microseconds.
pub fn parse_duration_us(s: &str) -> Result<i64, String> {
    let s = s.trim();
    // The unit is the last character (which may be more than a byte: then no unit known).
    let cut = s.char_indices().last().map_or(0, |(i, _)| i);
    let (n, unit) = s.split_at(cut);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit, e.g. 90d, 12h, 30m, 45s"))?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("{s:?}: the unit is one of d, h, m, s")),
    };
    n.checked_mul(seconds * 1_000_000)
        .filter(|us| *us > 0)
        .ok_or_else(|| format!("{s:?}: must be positive and at most a few thousand years"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_with_a_multibyte_last_character_is_refused() {
        assert_eq!(parse_duration_us("90d").unwrap(), 90 * 86_400 * 1_000_000);
        for bad in ["5é", "é", "", "3ü"] {
            assert!(parse_duration_us(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn round_trips_and_offsets() {
        for us in [0, 1_700_000_000_123_456, 951_782_400_000_000] {
            assert_eq!(parse_instant(&format_us(us)).unwrap(), us);
        }
        assert_eq!(parse_instant("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert_eq!(
            parse_instant("2000-02-29T00:00:00Z").unwrap(),
            951_782_400_000_000
        );
        assert_eq!(parse_instant("60").unwrap(), 60_000_000);
        assert!(parse_instant("yesterday").is_err());
        assert!(parse_instant("2025-13-01T00:00:00Z").is_err());
        // Offsets with a character of two bytes in them: refused, not a panic.
        assert!(parse_instant("2025-01-31T12:00:00+0é:0").is_err());
        assert!(parse_instant("2025-01-31T12:00:00+é:00").is_err());
        // Offsets and dates out of range, and signs inside fields.
        for bad in [
            "2025-01-31T12:00:00+99:99",
            "2025-01-31T12:00:00+24:00",
            "2025-01-31T12:00:00+-1:00",
            "2025-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-01-+1T00:00:00Z",
        ] {
            let e = parse_instant(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert!(parse_instant("2024-02-29T00:00:00Z").is_ok());
        assert!(parse_instant("2025-01-31T12:00:00-23:59").is_ok());
    }
}
