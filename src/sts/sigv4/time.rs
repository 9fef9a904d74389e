//! The times SigV4 reads and writes: ISO 8601 basic format, and an HTTP `Date` header.

use crate::policy::Timestamp;

// --- Time ---

/// `yyyymmddThhmmssZ`, the only form SigV4 signs.
pub(super) fn parse_basic(text: &str) -> Option<Timestamp> {
    let bytes: [u8; 16] = text.as_bytes().try_into().ok()?;
    let [y0, y1, y2, y3, mo0, mo1, d0, d1, b'T', h0, h1, mi0, mi1, s0, s1, b'Z'] = bytes else {
        return None;
    };
    civil_timestamp(
        digits(&[y0, y1, y2, y3])?,
        digits(&[mo0, mo1])?,
        digits(&[d0, d1])?,
        [digits(&[h0, h1])?, digits(&[mi0, mi1])?, digits(&[s0, s1])?],
    )
}

/// An HTTP `Date` header in IMF-fixdate form, `Sun, 06 Nov 1994 08:49:37 GMT` (read by
/// `httpdate`, which also checks the weekday). The obsolete RFC 850 and asctime forms, which
/// `httpdate` would accept too, are refused: SigV4 signers send IMF-fixdate.
pub(super) fn parse_http_date(text: &str) -> Option<Timestamp> {
    let imf_fixdate = text.len() == 29 && text.as_bytes().get(3) == Some(&b',');
    if !imf_fixdate {
        return None;
    }
    let since_epoch = httpdate::parse_http_date(text)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(Timestamp::from_epoch_seconds(
        i64::try_from(since_epoch.as_secs()).ok()?,
    ))
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// The UTC instant of a proleptic Gregorian date and time, `None` when a field is out of
/// range.
fn civil_timestamp(year: i64, month: i64, day: i64, [h, m, s]: [i64; 3]) -> Option<Timestamp> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || h > 23 || m > 59 || s > 59 {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(Timestamp::from_epoch_seconds(
        days * 86_400 + h * 3600 + m * 60 + s,
    ))
}

/// `yyyymmddThhmmssZ` for an instant in nanoseconds (rounded down to the second).
pub(super) fn basic_format(nanos: i128) -> String {
    let secs = Timestamp(nanos).epoch_seconds();
    let rfc3339 = Timestamp::from_epoch_seconds(secs).to_string();
    rfc3339
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_read_in_imf_fixdate_form_only() {
        let expected = Some(Timestamp::from_epoch_seconds(784_111_777));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        for refused in [
            "Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850
            "Sun Nov  6 08:49:37 1994",       // asctime
            "Mon, 06 Nov 1994 08:49:37 GMT",  // the wrong weekday
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "",
        ] {
            assert_eq!(parse_http_date(refused), None, "{refused}");
        }
    }

    #[test]
    fn basic_format_round_trips() {
        let t = parse_basic("20150830T123600Z").unwrap();
        assert_eq!(basic_format(t.0), "20150830T123600Z");
        assert_eq!(parse_basic("20150830T123600"), None);
        assert_eq!(parse_basic("20150231T123600Z"), None);
    }
}
