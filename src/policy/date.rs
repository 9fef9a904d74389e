//! Dates in conditions: W3C ISO 8601 or epoch seconds, as IAM reads them.
//!
//! IAM's parser is lenient in ways policies rely on (a one-digit hour, `t` for `T`, a missing
//! time zone meaning UTC) and strict in others (two-digit zone hours, nine fraction digits at
//! most). The rules below are those of IAM's "legacy parsing" check, which a policy must pass
//! to be stored; the same parser reads request values, so both sides agree on every instant.

use std::fmt;

/// An instant, in nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i128);

const NANOS: i128 = 1_000_000_000;
const MIN_YEAR: i64 = -292_275_054;
const MAX_YEAR: i64 = 292_278_993;

// === impl Timestamp ===

impl Timestamp {
    /// The instant `secs` seconds after the epoch.
    pub fn from_epoch_seconds(secs: i64) -> Self {
        Self(i128::from(secs) * NANOS)
    }

    /// Now, from the system clock (before 1970 reads as the epoch).
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(i128::try_from(since.as_nanos()).unwrap_or(i128::MAX))
    }

    /// Whole milliseconds since the epoch (rounded down).
    pub fn epoch_millis(self) -> i64 {
        self.whole(1_000_000)
    }

    /// Whole seconds since the epoch (rounded down).
    pub fn epoch_seconds(self) -> i64 {
        self.whole(1_000_000_000)
    }

    /// Whole `unit`s of nanoseconds since the epoch (rounded down, clamped to an `i64`).
    #[inline]
    fn whole(self, unit: i64) -> i64 {
        // Between 1677 and 2262 the nanoseconds fit an `i64`, whose division by a constant (once
        // inlined) is a multiplication; an `i128`'s is a call of ~60 instructions, and a request
        // divides the clock's reading at least twice.
        if let Ok(nanos) = i64::try_from(self.0) {
            return nanos.div_euclid(unit);
        }
        let v = self.0.div_euclid(i128::from(unit));
        i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with a fraction only when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(NANOS);
        let nanos = self.0.rem_euclid(NANOS);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )?;
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

/// Parses a date as IAM does: text containing `t`/`T` or `-` is ISO 8601, anything else is a
/// whole number of epoch seconds from 0 to `i64::MAX`. `None` when IAM would refuse it.
pub fn parse_policy_date(text: &str) -> Option<Timestamp> {
    if text.contains(['t', 'T', '-']) {
        parse_iso(&text.to_ascii_lowercase())
    } else {
        let secs: i64 = parse_int(text)?;
        (secs >= 0).then(|| Timestamp::from_epoch_seconds(secs))
    }
}

/// An integer as Python's `int()` reads it without underscores: optional sign, ASCII digits.
fn parse_int<T: std::str::FromStr>(text: &str) -> Option<T> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn in_range(text: &str, lo: i64, hi: i64) -> Option<i64> {
    let v: i64 = parse_int(text)?;
    (lo..=hi).contains(&v).then_some(v)
}

fn parse_iso(text: &str) -> Option<Timestamp> {
    let (date, time) = text.split_once('t').unwrap_or((text, ""));
    let (negative, date) = match date.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, date),
    };
    let mut parts = date.split('-');
    let year_text = parts.next().unwrap_or("");
    let mut year = in_range(year_text, 0, MAX_YEAR.max(-MIN_YEAR))?;
    if negative {
        year = -year;
    }
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return None;
    }
    let month = parts.next().map_or(Some(1), |m| in_range(m, 1, 12))?;
    let day = parts.next().map_or(Some(1), |d| in_range(d, 1, 31))?;
    if parts.next().is_some() {
        return None;
    }

    let mut fields = time.split(':');
    let hours = match fields.next() {
        None | Some("") => 0,
        Some(h) => in_range(h, 0, 23)?,
    };
    let minutes = fields.next().map_or(Some(0), |m| in_range(m, 0, 59))?;
    let (seconds, nanos, offset) = match fields.next() {
        None => (0, 0, 0),
        Some(sec_field) => {
            // The zone may itself contain a colon (`+05:30`), which `split` put in the next field.
            let zone_minutes = fields.next();
            seconds_and_zone(sec_field, zone_minutes)?
        }
    };
    if fields.next().is_some() {
        return None;
    }

    let days = days_from_civil(year, month, day);
    let secs = i128::from(days) * 86_400 + i128::from(hours * 3600 + minutes * 60 + seconds)
        - i128::from(offset);
    Some(Timestamp(secs * NANOS + i128::from(nanos)))
}

/// Reads `ss[.fffffffff][z|±hh[:mm]]`; returns (seconds, nanos, zone offset in seconds).
fn seconds_and_zone(field: &str, zone_minutes: Option<&str>) -> Option<(i64, i64, i64)> {
    let (secs_text, offset) = if let Some((secs, rest)) = field.split_once('z') {
        if !rest.is_empty() || zone_minutes.is_some() {
            return None;
        }
        (secs, 0)
    } else if let Some(pos) = field.find(['+', '-']) {
        let (secs, zone) = field.split_at(pos);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let hours_text = zone.get(1..)?;
        if hours_text.len() != 2 {
            return None;
        }
        let hours = in_range(hours_text, 0, 23)?;
        let minutes = match zone_minutes {
            Some(m) if m.len() == 2 => in_range(m, 0, 59)?,
            Some(_) => return None,
            None => 0,
        };
        (secs, sign * (hours * 3600 + minutes * 60))
    } else {
        if zone_minutes.is_some() {
            return None;
        }
        (field, 0)
    };
    let (whole, fraction) = match secs_text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (secs_text, None),
    };
    let seconds = in_range(whole, 0, 59)?;
    let nanos = match fraction {
        None => 0,
        Some(f) => {
            in_range(f, 0, 999_999_999)?;
            let digits = f.trim_start_matches(['+', '-']);
            // `.5` is half a second: scale the digits to nine places.
            let mut scaled = 0i64;
            for b in digits.bytes().chain(std::iter::repeat(b'0')).take(9) {
                scaled = scaled * 10 + i64::from(b - b'0');
            }
            scaled
        }
    };
    Some((seconds, nanos, offset))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> i64 {
        parse_policy_date(text).unwrap().epoch_seconds()
    }

    #[test]
    fn iso_forms() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0);
        assert_eq!(secs("2017-07-01T00:00:00Z"), 1_498_867_200);
        assert_eq!(secs("2017-07-01"), 1_498_867_200);
        assert_eq!(secs("2017-07-01T02:00:00+02:00"), 1_498_867_200);
        assert_eq!(secs("2017-06-30T19:00:00-05:00"), 1_498_867_200);
        assert_eq!(secs("2017-07-01t2:00:00+02"), 1_498_867_200);
        assert_eq!(
            parse_policy_date("2016-12-13T21:20:37.593194+00:00")
                .unwrap()
                .0
                % 1_000_000_000,
            593_194_000
        );
    }

    #[test]
    fn epoch_seconds() {
        assert_eq!(secs("1498867200"), 1_498_867_200);
        assert!(parse_policy_date("9223372036854775808").is_none());
        assert!(parse_policy_date("1.5").is_none());
    }

    #[test]
    fn seconds_and_millis_round_down_on_both_sides_of_an_i64s_nanoseconds() {
        let big = i128::from(i64::MAX);
        let small = i128::from(i64::MIN);
        for nanos in [
            0,
            1,
            -1,
            999_999_999,
            -999_999_999,
            -1_000_000_000,
            -1_000_000_001,
            1_764_892_800_123_456_789,
            -1_764_892_800_123_456_789,
            big,
            big + 1,
            small,
            small - 1,
            i128::MAX,
            i128::MIN,
        ] {
            let t = Timestamp(nanos);
            let secs = nanos.div_euclid(1_000_000_000);
            let millis = nanos.div_euclid(1_000_000);
            let clamp =
                |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
            assert_eq!(t.epoch_seconds(), clamp(secs), "{nanos}");
            assert_eq!(t.epoch_millis(), clamp(millis), "{nanos}");
        }
    }

    #[test]
    fn what_iam_refuses() {
        for bad in [
            "sdfdsf",
            "234-13",
            "2016-12-13t2:00:00.593194+1",
            "2016-12-13t2:00:00.1999999999+10:59",
            "2016-12-13-01",
            "2016-12-13T24:00:00Z",
            "2016-12-13T10:00:00Zx",
            "2017-07-01t2:00:00+0200",
        ] {
            assert!(parse_policy_date(bad).is_none(), "{bad}");
        }
        for good in [
            "01T",
            "-292275054",
            "2016-12-13t2:00:00.593194+23",
            "2019-07-01T13:20:15Z",
        ] {
            assert!(parse_policy_date(good).is_some(), "{good}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "2017-07-01T00:00:00Z",
            "1969-12-31T23:59:59.5Z",
            "2400-02-29T12:34:56Z",
        ] {
            let t = parse_policy_date(text).unwrap();
            assert_eq!(t.to_string(), text);
            assert_eq!(parse_policy_date(&t.to_string()), Some(t));
        }
    }
}
