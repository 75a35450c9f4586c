//! Text forms upstream's Go code gives times and durations in JSON.

use crate::error::Malformed;

/// Go's zero `time.Time` (January 1, year 1, UTC) in Unix seconds; upstream's JSON writes it
/// as `null`.
pub(crate) const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Seconds since the epoch as `2006-01-02T15:04:05Z`, plus `.000000` microseconds when
/// `micros` is given (`meta.v1.MicroTime`).
pub(crate) fn rfc3339(seconds: i64, micros: Option<u32>) -> Result<String, Malformed> {
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // Go's RFC 3339 marshalling refuses years it cannot write in four digits.
    if !(0..=9999).contains(&year) {
        return Err(Malformed::TimeOutOfRange { seconds });
    }
    let (h, m, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    Ok(match micros {
        None => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
        Some(us) => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{us:06}Z"),
    })
}

/// Splits a protobuf `Timestamp`'s seconds and nanos into whole seconds and nanoseconds in
/// `0..1e9`, the way Go's `time.Unix` normalises out-of-range nanos.
pub(crate) fn normalize(seconds: i64, nanos: i64) -> Result<(i64, u32), Malformed> {
    let carry = nanos.div_euclid(NANOS_PER_SECOND);
    let seconds = seconds
        .checked_add(carry)
        .ok_or(Malformed::TimeOutOfRange { seconds })?;
    // rem_euclid of a positive divisor lies in 0..1e9, which fits u32.
    let nanos = u32::try_from(nanos.rem_euclid(NANOS_PER_SECOND)).unwrap_or(0);
    Ok((seconds, nanos))
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01; the usual
/// era-based conversion, exact for every i64 day count that matters here.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction.
    (year, month as u32, day as u32)
}

/// A duration in nanoseconds as Go's `time.Duration.String()` writes it: `1h0m0s`,
/// `1m30s`, `1.5s`, `250ms`, `3µs`, `0s`.
pub(crate) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", fraction(u, 3));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(u, 6));
    }
    let seconds = fraction(u % 60_000_000_000, 9);
    let total_minutes = u / 60_000_000_000;
    if total_minutes == 0 {
        return format!("{sign}{seconds}s");
    }
    let minutes = total_minutes % 60;
    let hours = total_minutes / 60;
    if hours == 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    }
}

/// `value / 10^digits` in decimal, without trailing zeros in the fraction.
fn fraction(value: u64, digits: u32) -> String {
    let scale = 10u64.pow(digits);
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_seconds_and_micros() {
        assert_eq!(rfc3339(0, None).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_704_164_645, None).unwrap(),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            rfc3339(1_704_164_645, Some(123_456)).unwrap(),
            "2024-01-02T03:04:05.123456Z"
        );
        assert_eq!(
            rfc3339(1_704_164_645, Some(7)).unwrap(),
            "2024-01-02T03:04:05.000007Z"
        );
        // Leap day, and a day before the epoch.
        assert_eq!(rfc3339(951_782_400, None).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1, None).unwrap(), "1969-12-31T23:59:59Z");
        assert_eq!(
            rfc3339(GO_ZERO_TIME_SECONDS, None).unwrap(),
            "0001-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(253_402_300_799, None).unwrap(),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            rfc3339(253_402_300_800, None),
            Err(Malformed::TimeOutOfRange {
                seconds: 253_402_300_800
            })
        );
        assert!(rfc3339(i64::MIN, None).is_err());
        assert!(rfc3339(i64::MAX, None).is_err());
    }

    #[test]
    fn normalizes_nanos() {
        assert_eq!(normalize(10, 1_500_000_000).unwrap(), (11, 500_000_000));
        assert_eq!(normalize(10, -1).unwrap(), (9, 999_999_999));
        assert!(normalize(i64::MAX, NANOS_PER_SECOND).is_err());
    }

    #[test]
    fn go_durations() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1_000, "1µs"),
            (1_500, "1.5µs"),
            (1_000_000, "1ms"),
            (250_000_000, "250ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (30_000_000_000, "30s"),
            (90_000_000_000, "1m30s"),
            (120_000_000_000, "2m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (i64::MAX, "2562047h47m16.854775807s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
    }
}
