//! Cron schedules as upstream reads them: `github.com/robfig/cron/v3`'s standard parser
//! (five fields — minute, hour, day of month, month, day of week — with ranges, steps,
//! lists, `*`/`?`, month and weekday names, the `@yearly`…`@hourly` descriptors and
//! `@every <duration>`, and an optional `TZ=`/`CRON_TZ=` prefix), with its error messages,
//! which CronJob validation shows to users verbatim.
//!
//! [`Schedule::next_after`] is what the CronJob controller needs: the first activation
//! strictly after a time. The API server validates schedules with the same parser, so
//! what it accepts is exactly what the controller can run.
//!
//! ```
//! use cron_schedule::Schedule;
//! let s = Schedule::parse("*/15 9-17 * * mon-fri").unwrap();
//! assert!(s.every().is_none());
//! ```

use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

/// Set when a field was written as `*` or `?` (upstream's `starBit`): it changes how day
/// of month and day of week combine.
const STAR_BIT: u64 = 1 << 63;

/// A parse failure, with robfig/cron's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

#[derive(Clone, Copy)]
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// The fields of a schedule as bit sets (bit n set: value n matches).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Fields(Fields),
    /// `@every <duration>`: a fixed interval, whole seconds, at least one.
    Every(std::time::Duration),
}

/// A parsed cron schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    kind: Kind,
    /// The zone of a `TZ=`/`CRON_TZ=` prefix.
    time_zone: Option<String>,
}

impl Schedule {
    /// Parse a schedule as upstream's `cron.ParseStandard`.
    pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
        if spec.is_empty() {
            return Err(err("empty spec string"));
        }
        let mut spec = spec;
        let mut time_zone = None;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').unwrap_or(0);
            let end = spec.find(' ').unwrap_or(spec.len());
            let name = &spec[eq + 1..end];
            if let Err(e) = load_location(name) {
                return Err(err(format!("provided bad location {name}: {e}")));
            }
            time_zone = Some(name.to_string());
            spec = spec[end..].trim();
        }
        if spec.starts_with('@') {
            return Ok(Schedule {
                kind: parse_descriptor(spec)?,
                time_zone,
            });
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            )));
        }
        Ok(Schedule {
            kind: Kind::Fields(Fields {
                minute: get_field(fields[0], MINUTES)?,
                hour: get_field(fields[1], HOURS)?,
                dom: get_field(fields[2], DOM)?,
                month: get_field(fields[3], MONTHS)?,
                dow: get_field(fields[4], DOW)?,
            }),
            time_zone,
        })
    }

    /// The zone named by a `TZ=` or `CRON_TZ=` prefix.
    pub fn time_zone(&self) -> Option<&str> {
        self.time_zone.as_deref()
    }

    /// The interval of an `@every` schedule.
    pub fn every(&self) -> Option<std::time::Duration> {
        match &self.kind {
            Kind::Every(d) => Some(*d),
            Kind::Fields(_) => None,
        }
    }

    /// The first activation strictly after `after`, reading the fields in `tz` (the
    /// schedule's own `TZ=` zone wins when it has one). `None` when nothing matches within
    /// five years (e.g. February 30th).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let fields = match &self.kind {
            Kind::Every(d) => {
                // Upstream drops the sub-second part of the start before adding.
                let start = Timestamp::from_second(after.as_second()).ok()?;
                let delay = SignedDuration::try_from(*d).ok()?;
                return start.checked_add(delay).ok();
            }
            Kind::Fields(f) => f,
        };
        let own_tz;
        let tz = match self.time_zone.as_deref().map(load_location) {
            Some(Ok(zone)) => {
                own_tz = zone;
                &own_tz
            }
            _ => tz,
        };
        let start = after.to_zoned(tz.clone()).datetime();
        let mut dt = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let year_limit = dt.year() + 5;
        loop {
            if dt.year() > year_limit {
                return None;
            }
            if !bit(fields.month, dt.month()) {
                let first = Date::new(dt.year(), dt.month(), 1).ok()?;
                dt = first
                    .checked_add(1.month())
                    .ok()?
                    .to_datetime(jiff::civil::time(0, 0, 0, 0));
                continue;
            }
            if !day_matches(fields, dt.date()) {
                dt = dt
                    .date()
                    .tomorrow()
                    .ok()?
                    .to_datetime(jiff::civil::time(0, 0, 0, 0));
                continue;
            }
            if !bit(fields.hour, dt.hour()) {
                dt = dt
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if !bit(fields.minute, dt.minute()) {
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            let at = tz.to_zoned(dt).ok()?.timestamp();
            if at > after {
                return Some(at);
            }
            // A repeated wall-clock time (the end of daylight saving) already passed.
            dt = dt.checked_add(1.minute()).ok()?;
        }
    }
}

fn bit(set: u64, value: i8) -> bool {
    u32::try_from(value).is_ok_and(|v| v < 63 && set & (1 << v) != 0)
}

/// Day of month and day of week: both must match when either is `*`, otherwise either may.
fn day_matches(f: &Fields, date: Date) -> bool {
    let dom = bit(f.dom, date.day());
    let dow = bit(f.dow, date.weekday().to_sunday_zero_offset());
    if f.dom & STAR_BIT != 0 || f.dow & STAR_BIT != 0 {
        dom && dow
    } else {
        dom || dow
    }
}

fn all(b: Bounds) -> u64 {
    bits(b.min, b.max, 1) | STAR_BIT
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max)
        .step_by(step.max(1) as usize)
        .fold(0, |acc, v| acc | (1 << v))
}

fn parse_descriptor(spec: &str) -> Result<Kind, ParseError> {
    let one = |v: u32| 1u64 << v;
    let fields = match spec {
        "@yearly" | "@annually" => Fields {
            minute: one(0),
            hour: one(0),
            dom: one(1),
            month: one(1),
            dow: all(DOW),
        },
        "@monthly" => Fields {
            minute: one(0),
            hour: one(0),
            dom: one(1),
            month: all(MONTHS),
            dow: all(DOW),
        },
        "@weekly" => Fields {
            minute: one(0),
            hour: one(0),
            dom: all(DOM),
            month: all(MONTHS),
            dow: one(0),
        },
        "@daily" | "@midnight" => Fields {
            minute: one(0),
            hour: one(0),
            dom: all(DOM),
            month: all(MONTHS),
            dow: all(DOW),
        },
        "@hourly" => Fields {
            minute: one(0),
            hour: all(HOURS),
            dom: all(DOM),
            month: all(MONTHS),
            dow: all(DOW),
        },
        _ => {
            if let Some(text) = spec.strip_prefix("@every ") {
                let nanos = apimachinery::duration::parse_go_duration_nanos(text)
                    .map_err(|e| err(format!("failed to parse duration {spec}: {e}")))?;
                // Whole seconds, at least one, as upstream's `Every`.
                let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(0).max(1);
                return Ok(Kind::Every(std::time::Duration::from_secs(secs)));
            }
            return Err(err(format!("unrecognized descriptor: {spec}")));
        }
    };
    Ok(Kind::Fields(fields))
}

fn get_field(field: &str, b: Bounds) -> Result<u64, ParseError> {
    field
        .split(',')
        .filter(|s| !s.is_empty())
        .try_fold(0, |acc, expr| Ok(acc | get_range(expr, b)?))
}

fn get_range(expr: &str, b: Bounds) -> Result<u64, ParseError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        start = b.min;
        end = b.max;
        extra = STAR_BIT;
    } else {
        start = parse_int_or_name(low_and_high[0], b)?;
        end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], b)?,
            _ => return Err(err(format!("too many hyphens: {expr}"))),
        };
        extra = 0;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            // `N/step` means `N-max/step`.
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(err(format!("too many slashes: {expr}"))),
    };
    if start < b.min {
        return Err(err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        )));
    }
    if end > b.max {
        return Err(err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        )));
    }
    if start > end {
        return Err(err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(err(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    Ok(bits(start, end, step) | extra)
}

fn parse_int_or_name(expr: &str, b: Bounds) -> Result<u32, ParseError> {
    let lower = expr.to_lowercase();
    match b.names.iter().find(|(name, _)| *name == lower) {
        Some((_, v)) => Ok(*v),
        None => must_parse_int(expr),
    }
}

/// Go's `strconv.Atoi` with robfig's wrapping of its errors and of negative numbers.
fn must_parse_int(expr: &str) -> Result<u32, ParseError> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax"
        )));
    }
    let num: i64 = expr.parse().map_err(|_| {
        err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: value out of range"
        ))
    })?;
    if num < 0 {
        return Err(err(format!("negative number ({num}) not allowed: {expr}")));
    }
    // Values past any field's maximum fail the range checks; clamp to keep them failing.
    Ok(u32::try_from(num).unwrap_or(u32::MAX))
}

/// Go's `time.LoadLocation` over the system zone database, case-sensitive as on Linux.
pub fn load_location(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() || name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    match TimeZone::get(name) {
        Ok(tz) if tz.iana_name() == Some(name) => Ok(tz),
        _ => Err(format!("unknown time zone {name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(spec: &str) -> String {
        Schedule::parse(spec).unwrap_err().to_string()
    }

    fn next(spec: &str, after: &str) -> String {
        let s = Schedule::parse(spec).unwrap();
        let after: Timestamp = after.parse().unwrap();
        s.next_after(after, &TimeZone::UTC).unwrap().to_string()
    }

    #[test]
    fn parses_standard_forms() {
        for spec in [
            "* * * * *",
            "*/5 * * * *",
            "0 0 1 1 *",
            "15,45 9-17 * * MON-FRI",
            "0 0 ? * sun",
            "5/15 * * jan-mar *",
            "@hourly",
            "@every 1h30m",
            "TZ=UTC 0 * * * *",
            "CRON_TZ=Europe/Berlin 0 6 * * *",
        ] {
            assert!(Schedule::parse(spec).is_ok(), "{spec}");
        }
        assert_eq!(
            Schedule::parse("@every 1h30m").unwrap().every(),
            Some(std::time::Duration::from_secs(5400))
        );
    }

    #[test]
    fn upstream_error_messages() {
        assert_eq!(e(""), "empty spec string");
        assert_eq!(
            e("* * * *"),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert_eq!(e("60 * * * *"), "end of range (60) above maximum (59): 60");
        assert_eq!(
            e("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            e("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(
            e("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(
            e("x * * * *"),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(e("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(e("1/2/3 * * * *"), "too many slashes: 1/2/3");
        assert_eq!(e("@fortnightly"), "unrecognized descriptor: @fortnightly");
        assert_eq!(
            e("@every 1d"),
            "failed to parse duration @every 1d: time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            e("TZ=Mars/Olympus 0 * * * *"),
            "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"
        );
    }

    #[test]
    fn next_activation() {
        assert_eq!(
            next("*/15 * * * *", "2025-01-01T10:07:30Z"),
            "2025-01-01T10:15:00Z"
        );
        assert_eq!(
            next("0 0 * * *", "2025-01-31T23:59:00Z"),
            "2025-02-01T00:00:00Z"
        );
        assert_eq!(
            next("30 9 * * mon", "2025-01-01T00:00:00Z"),
            "2025-01-06T09:30:00Z"
        );
        assert_eq!(
            next("@yearly", "2025-03-01T00:00:00Z"),
            "2026-01-01T00:00:00Z"
        );
        // Day of month or day of week when both are restricted.
        assert_eq!(
            next("0 0 13 * fri", "2025-01-01T00:00:00Z"),
            "2025-01-03T00:00:00Z"
        );
        assert_eq!(
            next("@every 90s", "2025-01-01T00:00:00.5Z"),
            "2025-01-01T00:01:30Z"
        );
        assert!(Schedule::parse("0 0 30 2 *")
            .unwrap()
            .next_after("2025-01-01T00:00:00Z".parse().unwrap(), &TimeZone::UTC)
            .is_none());
        let berlin = Schedule::parse("CRON_TZ=Europe/Berlin 0 6 * * *").unwrap();
        let at = berlin
            .next_after("2025-01-01T00:00:00Z".parse().unwrap(), &TimeZone::UTC)
            .unwrap();
        assert_eq!(at.to_string(), "2025-01-01T05:00:00Z");
    }

    #[test]
    fn locations() {
        assert!(load_location("America/New_York").is_ok());
        assert!(load_location("america/new_york").is_err());
        assert_eq!(
            Schedule::parse("@every 500ms")
                .unwrap()
                .every()
                .unwrap()
                .as_secs(),
            1
        );
    }
}
