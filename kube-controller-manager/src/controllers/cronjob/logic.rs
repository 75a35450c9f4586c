//! The CronJob controller's time arithmetic, with the clock passed in: which scheduled
//! time (if any) is due, how many were missed, and when to look again.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::CronJob;

use cron_schedule::Schedule;

/// More missed start times than this earn a `TooManyMissedTimes` warning.
pub const MAX_MISSED: i64 = 100;
/// The annotation with the time a job was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// What the schedule says at `now`.
#[derive(Debug, PartialEq, Eq)]
pub struct Due {
    /// The most recent scheduled time not yet started, if any.
    pub scheduled: Option<Timestamp>,
    /// How many scheduled times passed since the last one started (or creation).
    pub missed: i64,
    /// The first scheduled time after `now`.
    pub next: Option<Timestamp>,
    /// `scheduled` is older than `startingDeadlineSeconds` allows.
    pub too_late: bool,
}

/// The zone a CronJob's schedule is read in: `spec.timeZone`, else the manager's.
pub fn time_zone(cj: &CronJob) -> Result<TimeZone, String> {
    match cj.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
        Some(name) => cron_schedule::load_location(name),
        None => Ok(TimeZone::system()),
    }
}

/// Upstream's `mostRecentScheduleTime` and `nextScheduleTime`: scheduled times are
/// counted from the last schedule time (or creation), no earlier than
/// `startingDeadlineSeconds` ago.
pub fn due(cj: &CronJob, schedule: &Schedule, tz: &TimeZone, now: Timestamp) -> Due {
    let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map_or(created, |t| t.0);
    let deadline = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds);
    if let Some(sds) = deadline {
        let window_start = now - jiff::SignedDuration::from_secs(sds);
        if window_start > earliest {
            earliest = window_start;
        }
    }
    let mut scheduled = None;
    let mut missed = 0i64;
    let mut t = earliest;
    while let Some(n) = schedule.next_after(t, tz) {
        if n > now {
            break;
        }
        scheduled = Some(n);
        missed += 1;
        t = n;
        // Past this many, the count only feeds a warning: stop walking.
        if missed > MAX_MISSED * 10 {
            break;
        }
    }
    if missed > MAX_MISSED * 10 {
        // Jump to the most recent time: walk back from now.
        scheduled = latest_before(schedule, tz, now).or(scheduled);
    }
    let too_late = match (scheduled, deadline) {
        (Some(s), Some(sds)) => s + jiff::SignedDuration::from_secs(sds) < now,
        _ => false,
    };
    Due {
        scheduled,
        missed,
        next: schedule.next_after(now, tz),
        too_late,
    }
}

/// The latest scheduled time at or before `now`, searched back up to a year.
fn latest_before(schedule: &Schedule, tz: &TimeZone, now: Timestamp) -> Option<Timestamp> {
    let mut back = jiff::SignedDuration::from_secs(3600);
    while back <= jiff::SignedDuration::from_hours(24 * 366) {
        let mut t = now - back;
        let mut last = None;
        while let Some(n) = schedule.next_after(t, tz) {
            if n > now {
                break;
            }
            last = Some(n);
            t = n;
        }
        if last.is_some() {
            return last;
        }
        back *= 4;
    }
    None
}

/// The name of the job for `scheduled`: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// The scheduled-timestamp annotation's value: RFC 3339 in the schedule's zone.
pub fn scheduled_annotation(scheduled: Timestamp, tz: &TimeZone) -> String {
    let s = scheduled
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    match s.strip_suffix("+00:00") {
        Some(utc) => format!("{utc}Z"),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{CronJobSpec, CronJobStatus, JobTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cj(schedule: &str, created: &str, last: Option<&str>, sds: Option<i64>) -> CronJob {
        let mut c = CronJob {
            spec: Some(CronJobSpec {
                schedule: schedule.into(),
                starting_deadline_seconds: sds,
                job_template: JobTemplateSpec::default(),
                ..Default::default()
            }),
            status: Some(CronJobStatus {
                last_schedule_time: last.map(|l| Time(ts(l))),
                ..Default::default()
            }),
            ..Default::default()
        };
        c.metadata.creation_timestamp = Some(Time(ts(created)));
        c
    }

    fn due_at(c: &CronJob, now: &str) -> Due {
        let s = Schedule::parse(&c.spec.as_ref().unwrap().schedule).unwrap();
        due(c, &s, &TimeZone::UTC, ts(now))
    }

    #[test]
    fn nothing_due_before_the_first_time() {
        let c = cj("*/5 * * * *", "2026-01-01T10:01:00Z", None, None);
        let d = due_at(&c, "2026-01-01T10:04:59Z");
        assert_eq!(d.scheduled, None);
        assert_eq!(d.next, Some(ts("2026-01-01T10:05:00Z")));
    }

    #[test]
    fn the_most_recent_missed_time_is_due() {
        let c = cj(
            "*/5 * * * *",
            "2026-01-01T09:00:00Z",
            Some("2026-01-01T10:00:00Z"),
            None,
        );
        let d = due_at(&c, "2026-01-01T10:16:00Z");
        assert_eq!(d.scheduled, Some(ts("2026-01-01T10:15:00Z")));
        assert_eq!(d.missed, 3);
        assert!(!d.too_late);
        assert_eq!(d.next, Some(ts("2026-01-01T10:20:00Z")));
    }

    #[test]
    fn starting_deadline_limits_the_window_and_flags_late_starts() {
        // Created long ago, never run: without a deadline, thousands were missed, and
        // the latest is still the one due.
        let c = cj("* * * * *", "2025-12-01T00:00:00Z", None, None);
        let d = due_at(&c, "2026-01-01T00:00:30Z");
        assert!(d.missed > MAX_MISSED);
        assert_eq!(d.scheduled, Some(ts("2026-01-01T00:00:00Z")));
        // A 200 s deadline only looks back that far.
        let c = cj("* * * * *", "2025-12-01T00:00:00Z", None, Some(200));
        let d = due_at(&c, "2026-01-01T00:00:30Z");
        assert_eq!(d.missed, 3);
        assert_eq!(d.scheduled, Some(ts("2026-01-01T00:00:00Z")));
        assert!(!d.too_late);
        // An hourly job 10 minutes late with a 60 s deadline: nothing in the window.
        let c = cj(
            "0 * * * *",
            "2026-01-01T00:00:00Z",
            Some("2026-01-01T00:00:00Z"),
            Some(60),
        );
        assert_eq!(due_at(&c, "2026-01-01T01:10:00Z").scheduled, None);
        let c = cj(
            "0 * * * *",
            "2026-01-01T00:00:00Z",
            Some("2026-01-01T00:00:00Z"),
            Some(700),
        );
        let d = due_at(&c, "2026-01-01T01:10:00Z");
        assert_eq!(d.scheduled, Some(ts("2026-01-01T01:00:00Z")));
        assert!(!d.too_late);
    }

    #[test]
    fn time_zones_shift_the_schedule() {
        let mut c = cj("0 9 * * *", "2025-12-31T23:00:00Z", None, None);
        c.spec.as_mut().unwrap().time_zone = Some("Asia/Tokyo".into());
        let tz = time_zone(&c).unwrap();
        let s = Schedule::parse("0 9 * * *").unwrap();
        let d = due(&c, &s, &tz, ts("2026-01-01T00:30:00Z"));
        // 09:00 in Tokyo is 00:00 UTC.
        assert_eq!(d.scheduled, Some(ts("2026-01-01T00:00:00Z")));
        assert_eq!(
            scheduled_annotation(ts("2026-01-01T00:00:00Z"), &tz),
            "2026-01-01T09:00:00+09:00"
        );
        assert_eq!(
            scheduled_annotation(ts("2026-01-01T00:00:00Z"), &TimeZone::UTC),
            "2026-01-01T00:00:00Z"
        );
        c.spec.as_mut().unwrap().time_zone = Some("Mars/Olympus".into());
        assert!(time_zone(&c).is_err());
    }

    #[test]
    fn job_names_count_minutes() {
        let t = ts("2026-01-01T00:01:00Z");
        assert_eq!(
            job_name("hello", t),
            format!("hello-{}", t.as_second() / 60)
        );
    }
}
