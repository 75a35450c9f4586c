//! Durations as Kubernetes prints and reads them: upstream's `HumanDuration` and
//! `ShortHumanDuration` (`k8s.io/apimachinery/pkg/util/duration`, the AGE columns of
//! kubectl), and Go's `time.ParseDuration` / `Duration.String()` syntax (`1m30s`,
//! `1.5h`, `300ms`) that flags and API fields use.
//!
//! Go durations are signed nanoseconds in an `i64`; the `_nanos` functions take and
//! return exactly that, and the others convert from/to `std::time::Duration`,
//! saturating at `i64::MAX` nanoseconds (about 292 years).

use std::time::Duration;

const NANOSECOND: i64 = 1;
const MICROSECOND: i64 = 1_000 * NANOSECOND;
const MILLISECOND: i64 = 1_000 * MICROSECOND;
const SECOND: i64 = 1_000 * MILLISECOND;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const YEAR_HOURS: i64 = 24 * 365;

/// A `std::time::Duration` as Go's signed nanoseconds, saturating.
pub fn to_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Upstream's `ShortHumanDuration`: one unit, truncated (`45s`, `5m`, `3h`, `12d`, `2y`).
pub fn short_human_duration(d: Duration) -> String {
    short_human_duration_nanos(to_nanos(d))
}

/// [`short_human_duration`] of a signed Go duration: slightly negative durations
/// (clock skew) print as `0s`, more negative ones as `<invalid>`.
pub fn short_human_duration_nanos(d: i64) -> String {
    let seconds = d / SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 {
        return format!("{seconds}s");
    }
    let minutes = d / MINUTE;
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = d / HOUR;
    if hours < 24 {
        return format!("{hours}h");
    }
    if hours < YEAR_HOURS {
        return format!("{}d", hours / 24);
    }
    format!("{}y", d / (YEAR_HOURS * HOUR))
}

/// Upstream's `HumanDuration`: two units while the larger one is small (`3m10s`,
/// `7h59m`, `2d1h`, `2y1d`), one unit otherwise.
pub fn human_duration(d: Duration) -> String {
    human_duration_nanos(to_nanos(d))
}

/// [`human_duration`] of a signed Go duration.
pub fn human_duration_nanos(d: i64) -> String {
    let seconds = d / SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / MINUTE;
    if minutes < 10 {
        let s = (d / SECOND) % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / HOUR;
    if hours < 8 {
        let m = (d / MINUTE) % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < YEAR_HOURS * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < YEAR_HOURS * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / YEAR_HOURS)
        } else {
            format!("{}y{dy}d", hours / YEAR_HOURS)
        };
    }
    format!("{}y", hours / YEAR_HOURS)
}

/// [`human_duration`] of signed whole seconds, such as now minus a creation timestamp
/// (kubectl's AGE column).
pub fn human_duration_seconds(seconds: i64) -> String {
    human_duration_nanos(seconds.saturating_mul(SECOND))
}

/// [`short_human_duration`] of signed whole seconds.
pub fn short_human_duration_seconds(seconds: i64) -> String {
    short_human_duration_nanos(seconds.saturating_mul(SECOND))
}

/// Why a string is not a Go duration. The texts are Go's `time.ParseDuration`'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("time: invalid duration {}", go_time_quote(.0))]
    Invalid(String),
    #[error("time: missing unit in duration {}", go_time_quote(.0))]
    MissingUnit(String),
    #[error("time: unknown unit {} in duration {}", go_time_quote(.unit), go_time_quote(.duration))]
    UnknownUnit { unit: String, duration: String },
    /// A valid but negative duration where only non-negative ones make sense.
    #[error("negative duration {}", go_time_quote(.0))]
    Negative(String),
}

/// The quoting of Go's `time` package: printable ASCII as is (with `"` and `\`
/// escaped), every other byte as `\xNN`.
fn go_time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && c >= ' ' {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

const LIMIT: u64 = 1 << 63;

/// Leading decimal digits; None when they exceed 2^63.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let mut x: u64 = 0;
    let mut i = 0;
    for &c in s.as_bytes() {
        if !c.is_ascii_digit() {
            break;
        }
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(c - b'0');
        if x > LIMIT {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..]))
}

/// Leading fraction digits as (value, 10^digits kept, rest); digits beyond what fits
/// are ignored, as Go does.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let mut x: u64 = 0;
    let mut scale = 1.0;
    let mut overflow = false;
    let mut i = 0;
    for &c in s.as_bytes() {
        if !c.is_ascii_digit() {
            break;
        }
        i += 1;
        if overflow {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[i..])
}

/// Go's `time.ParseDuration`, as signed nanoseconds: a sequence of decimal numbers
/// with optional fractions and units (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), with an
/// optional sign (`-1h30m`, `1.5s`, `0`).
pub fn parse_go_duration_nanos(s: &str) -> Result<i64, DurationError> {
    let orig = s;
    let invalid = || DurationError::Invalid(orig.to_string());
    let mut s = s;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        let before = s.len();
        let (v, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let pre = before != s.len();
        let mut f = 0;
        let mut scale = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            let before = rest.len();
            (f, scale, s) = leading_fraction(rest);
            post = before != s.len();
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .bytes()
            .position(|c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(orig.to_string()));
        }
        let (unit_text, rest) = s.split_at(unit_len);
        s = rest;
        let unit = unit_nanos(unit_text).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_text.to_string(),
            duration: orig.to_string(),
        })?;
        if v > LIMIT / unit {
            return Err(invalid());
        }
        let mut v = v * unit;
        if f > 0 {
            // Go computes the fraction in float64, which is nanosecond-exact for the
            // fractions of an hour that fit.
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        d += v;
        if d > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        // d <= 2^63, so the negation fits.
        return Ok(0i64.wrapping_sub_unsigned(d));
    }
    i64::try_from(d).map_err(|_| invalid())
}

/// Go's `time.ParseDuration` for a duration that must not be negative.
pub fn parse_go_duration(s: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go_duration_nanos(s)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| DurationError::Negative(s.to_string()))
}

/// Go's `time.Duration.String()`: `1h0m0s`, `1m30s`, `1.5s`, `300ms`, `0s`.
pub fn format_go_duration(d: Duration) -> String {
    format_go_duration_nanos(to_nanos(d))
}

/// `digits` of `v / 10^prec` after the point, without trailing zeros (and without the
/// point when they are all zero), and the integer part.
fn frac(v: u64, prec: u32) -> (String, u64) {
    let divisor = 10u64.pow(prec);
    let fraction = v % divisor;
    if fraction == 0 {
        return (String::new(), v / divisor);
    }
    let digits = format!("{fraction:0width$}", width = prec as usize);
    (format!(".{}", digits.trim_end_matches('0')), v / divisor)
}

/// [`format_go_duration`] of signed nanoseconds.
pub fn format_go_duration_nanos(d: i64) -> String {
    let u = d.unsigned_abs();
    let sign = if d < 0 { "-" } else { "" };
    if u == 0 {
        return "0s".to_string();
    }
    if u < SECOND as u64 {
        let (prec, unit) = if u < MICROSECOND as u64 {
            (0, "ns")
        } else if u < MILLISECOND as u64 {
            (3, "\u{b5}s")
        } else {
            (6, "ms")
        };
        let (fraction, integer) = frac(u, prec);
        return format!("{sign}{integer}{fraction}{unit}");
    }
    let (fraction, seconds) = frac(u, 9);
    let minutes = seconds / 60;
    let hours = minutes / 60;
    if hours > 0 {
        format!("{sign}{hours}h{}m{}{fraction}s", minutes % 60, seconds % 60)
    } else if minutes > 0 {
        format!("{sign}{minutes}m{}{fraction}s", seconds % 60)
    } else {
        format!("{sign}{seconds}{fraction}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = MILLISECOND;

    #[test]
    fn human_durations_from_upstream() {
        for (d, want) in [
            (SECOND, "1s"),
            (70 * SECOND, "70s"),
            (190 * SECOND, "3m10s"),
            (70 * MINUTE, "70m"),
            (47 * HOUR, "47h"),
            (49 * HOUR, "2d1h"),
            ((8 * 24 + 2) * HOUR, "8d"),
            ((367 * 24) * HOUR, "367d"),
            ((365 * 2 * 24 + 25) * HOUR, "2y1d"),
            ((365 * 8 * 24 + 2) * HOUR, "8y"),
        ] {
            assert_eq!(human_duration_nanos(d), want, "{d}");
        }
    }

    #[test]
    fn human_duration_boundaries_from_upstream() {
        let day = 24 * HOUR;
        let year = 365 * day;
        for (d, want) in [
            (-2 * SECOND, "<invalid>"),
            (-2 * SECOND + 1, "0s"),
            (0, "0s"),
            (SECOND - MS, "0s"),
            (2 * MINUTE - MS, "119s"),
            (2 * MINUTE, "2m"),
            (2 * MINUTE + SECOND, "2m1s"),
            (10 * MINUTE - MS, "9m59s"),
            (10 * MINUTE, "10m"),
            (10 * MINUTE + SECOND, "10m"),
            (3 * HOUR - MS, "179m"),
            (3 * HOUR, "3h"),
            (3 * HOUR + MINUTE, "3h1m"),
            (8 * HOUR - MS, "7h59m"),
            (8 * HOUR, "8h"),
            (8 * HOUR + 59 * MINUTE, "8h"),
            (2 * day - MS, "47h"),
            (2 * day, "2d"),
            (2 * day + HOUR, "2d1h"),
            (8 * day - MS, "7d23h"),
            (8 * day, "8d"),
            (8 * day + 23 * HOUR, "8d"),
            (2 * year - MS, "729d"),
            (2 * year, "2y"),
            (2 * year + 23 * HOUR, "2y"),
            (2 * year + 23 * HOUR + 59 * MINUTE, "2y"),
            (2 * year + day - MS, "2y"),
            (2 * year + day, "2y1d"),
            (3 * year, "3y"),
            (4 * year, "4y"),
            (5 * year, "5y"),
            (6 * year, "6y"),
            (7 * year, "7y"),
            (8 * year - MS, "7y364d"),
            (8 * year, "8y"),
            (8 * year + 364 * day, "8y"),
            (9 * year, "9y"),
        ] {
            assert_eq!(human_duration_nanos(d), want, "{d}");
        }
    }

    #[test]
    fn short_human_duration_boundaries_from_upstream() {
        let day = 24 * HOUR;
        let year = 365 * day;
        for (d, want) in [
            (-2 * SECOND, "<invalid>"),
            (-2 * SECOND + 1, "0s"),
            (0, "0s"),
            (SECOND - MS, "0s"),
            (SECOND, "1s"),
            (2 * SECOND - MS, "1s"),
            (MINUTE - MS, "59s"),
            (MINUTE, "1m"),
            (2 * MINUTE - MS, "1m"),
            (HOUR - MS, "59m"),
            (HOUR, "1h"),
            (2 * HOUR - MS, "1h"),
            (day - MS, "23h"),
            (day, "1d"),
            (2 * day - MS, "1d"),
            (year - MS, "364d"),
            (year, "1y"),
            (2 * year - MS, "1y"),
            (2 * year, "2y"),
        ] {
            assert_eq!(short_human_duration_nanos(d), want, "{d}");
        }
    }

    #[test]
    fn std_durations() {
        assert_eq!(human_duration(Duration::from_secs(330)), "5m30s");
        assert_eq!(short_human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(short_human_duration(Duration::from_secs(u64::MAX)), "292y");
        assert_eq!(human_duration_seconds(-1), "0s");
        assert_eq!(human_duration_seconds(-2), "<invalid>");
        assert_eq!(human_duration_seconds(3 * 24 * 3600 + 3600), "3d1h");
        assert_eq!(short_human_duration_seconds(3 * 24 * 3600 + 3600), "3d");
        assert_eq!(human_duration_seconds(i64::MAX), "292y");
    }

    #[test]
    fn parse_go_durations() {
        for (s, want) in [
            ("0", 0),
            ("5s", 5 * SECOND),
            ("30s", 30 * SECOND),
            ("1478s", 1478 * SECOND),
            ("-5s", -5 * SECOND),
            ("+5s", 5 * SECOND),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5 * SECOND),
            ("5.6s", 5 * SECOND + 600 * MS),
            ("5.s", 5 * SECOND),
            (".5s", 500 * MS),
            ("1.0s", SECOND),
            ("1.00s", SECOND),
            ("1.004s", SECOND + 4 * MS),
            ("1.0040s", SECOND + 4 * MS),
            ("100.00100s", 100 * SECOND + MS),
            ("10ns", 10),
            ("11us", 11 * MICROSECOND),
            ("12\u{b5}s", 12 * MICROSECOND),
            ("12\u{3bc}s", 12 * MICROSECOND),
            ("13ms", 13 * MS),
            ("14s", 14 * SECOND),
            ("15m", 15 * MINUTE),
            ("16h", 16 * HOUR),
            ("3h30m", 3 * HOUR + 30 * MINUTE),
            ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MS),
            ("-2m3.4s", -(2 * MINUTE + 3 * SECOND + 400 * MS)),
            (
                "1h2m3s4ms5us6ns",
                HOUR + 2 * MINUTE + 3 * SECOND + 4 * MS + 5 * MICROSECOND + 6,
            ),
            (
                "39h9m14.425s",
                39 * HOUR + 9 * MINUTE + 14 * SECOND + 425 * MS,
            ),
            ("52763797000ns", 52763797000),
            ("0.3333333333333333333h", 20 * MINUTE),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("0.100000000000000000000h", 6 * MINUTE),
            (
                "0.830103483285477580700h",
                49 * MINUTE + 48 * SECOND + 372539827,
            ),
        ] {
            assert_eq!(parse_go_duration_nanos(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn parse_go_duration_errors() {
        let err = |s: &str| parse_go_duration_nanos(s).expect_err(s).to_string();
        assert_eq!(err(""), r#"time: invalid duration """#);
        assert_eq!(err("3"), r#"time: missing unit in duration "3""#);
        assert_eq!(err("-"), r#"time: invalid duration "-""#);
        assert_eq!(err("s"), r#"time: invalid duration "s""#);
        assert_eq!(err("."), r#"time: invalid duration ".""#);
        assert_eq!(err("-."), r#"time: invalid duration "-.""#);
        assert_eq!(err(".s"), r#"time: invalid duration ".s""#);
        assert_eq!(err("+.s"), r#"time: invalid duration "+.s""#);
        assert_eq!(err("1d"), r#"time: unknown unit "d" in duration "1d""#);
        assert_eq!(err("1.1.1s"), r#"time: missing unit in duration "1.1.1s""#);
        assert_eq!(
            err("\u{85}\u{85}"),
            r#"time: invalid duration "\xc2\x85\xc2\x85""#
        );
        assert_eq!(err("\u{fffd}"), r#"time: invalid duration "\xef\xbf\xbd""#);
        assert_eq!(
            err("1\"s"),
            r#"time: unknown unit "\"s" in duration "1\"s""#
        );
        assert_eq!(
            err("9223372036854775808ns"),
            r#"time: invalid duration "9223372036854775808ns""#
        );
        assert_eq!(
            err("9223372036854775.808us"),
            r#"time: invalid duration "9223372036854775.808us""#
        );
        assert_eq!(
            err("9223372036854ms775us808ns"),
            r#"time: invalid duration "9223372036854ms775us808ns""#
        );
        assert_eq!(
            err("-9223372036854775809ns"),
            r#"time: invalid duration "-9223372036854775809ns""#
        );
        assert_eq!(err("1s "), r#"time: unknown unit "s " in duration "1s ""#);
        assert_eq!(
            parse_go_duration("-1s").map_err(|e| e.to_string()),
            Err(r#"negative duration "-1s""#.to_string())
        );
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn format_go_durations() {
        for (d, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1100, "1.1\u{b5}s"),
            (2200 * MICROSECOND, "2.2ms"),
            (3300 * MS, "3.3s"),
            (4 * MINUTE + 5 * SECOND, "4m5s"),
            (4 * MINUTE + 5001 * MS, "4m5.001s"),
            (5 * HOUR + 6 * MINUTE + 7001 * MS, "5h6m7.001s"),
            (8 * MINUTE + 1, "8m0.000000001s"),
            (HOUR, "1h0m0s"),
            (90 * SECOND, "1m30s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (-1100, "-1.1\u{b5}s"),
        ] {
            assert_eq!(format_go_duration_nanos(d), want, "{d}");
            assert_eq!(parse_go_duration_nanos(want), Ok(d), "{want}");
        }
        assert_eq!(format_go_duration(Duration::from_millis(300)), "300ms");
    }
}
