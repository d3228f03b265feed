//! Schedules: parsing, and which logical dates are due.
//!
//! A scheduled run's logical date is the cron fire time it stands for (Kestra's and
//! Windmill's convention, not Airflow's start-of-interval). Fire times are computed in the
//! DAG's timezone by croner, with Vixie cron's rules on daylight-saving changes:
//! - spring forward: a fixed-time job whose wall-clock time does not exist that day
//!   (`30 2 * * *` in Europe/Berlin on the last Sunday of March) runs once, at the first valid
//!   time after the gap (03:00 local); jobs with a wildcard hour simply have one hour less;
//! - fall back: a fixed-time job whose wall-clock time happens twice runs once, at the first
//!   occurrence; jobs with a wildcard or stepped hour run in both copies of the repeated hour.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::{Cron, parser::CronParser};

/// When a DAG runs by itself.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// No schedule: runs only when triggered.
    Manual,
    /// `@once`: a single run, as soon as the DAG is seen (or at `start_date`).
    Once,
    /// `@continuous`: keep exactly one run active while the DAG is unpaused.
    Continuous,
    /// A cron expression (5 or 6 fields) or a preset such as `@daily`.
    Cron { expression: String, cron: Box<Cron> },
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("bad cron expression {expression:?}: {reason}")]
pub struct ScheduleError {
    pub expression: String,
    pub reason: String,
}

/// The most runs one scheduling pass creates for one DAG when catching up.
pub const MAX_CATCHUP_RUNS_PER_PASS: usize = 1000;

impl Schedule {
    pub fn parse(text: Option<&str>) -> Result<Self, ScheduleError> {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Self::Manual);
        };
        match text {
            "@once" => return Ok(Self::Once),
            "@continuous" => return Ok(Self::Continuous),
            "@none" => return Ok(Self::Manual),
            _ => {}
        }
        let error = |reason: String| ScheduleError {
            expression: text.to_owned(),
            reason,
        };
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(error(format!(
                "expected 5 fields (minute hour day month weekday) or 6 (seconds first), got {fields}"
            )));
        }
        let cron = CronParser::builder()
            .dom_and_dow(false)
            .build()
            .parse(text)
            .map_err(|e| error(e.to_string()))?;
        Ok(Self::Cron {
            expression: text.to_owned(),
            cron: Box::new(cron),
        })
    }

    pub fn as_text(&self) -> String {
        match self {
            Self::Manual => String::new(),
            Self::Once => "@once".into(),
            Self::Continuous => "@continuous".into(),
            Self::Cron { expression, .. } => expression.clone(),
        }
    }
}

/// The fire times strictly after `after`, in `tz`, in order.
///
/// croner's iterator knows both copies of a repeated (fall-back) hour only when it walks
/// through the first one, so it starts a few hours early and skips ahead.
pub fn fire_times_after(
    cron: &Cron,
    tz: Tz,
    after: DateTime<Utc>,
) -> impl Iterator<Item = DateTime<Utc>> + '_ {
    let lead = after - chrono::Duration::hours(3);
    cron.iter_after(lead.with_timezone(&tz))
        .map(|t| t.with_timezone(&Utc))
        .skip_while(move |t| *t <= after)
}

/// The fire times from `from` to `to`, both inclusive, in `tz` (as the scheduler finds them:
/// a DST change skips or repeats what the cron says).
pub fn fire_times_between(
    cron: &Cron,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> impl Iterator<Item = DateTime<Utc>> + '_ {
    // Whole seconds, as the scheduler asks: croner keeps the fraction of the time it starts
    // from in every time it gives.
    let whole = chrono::SubsecRound::trunc_subsecs(from, 0);
    let first = if whole < from {
        whole + chrono::Duration::seconds(1)
    } else {
        whole
    };
    fire_times_after(cron, tz, first - chrono::Duration::seconds(1)).take_while(move |t| *t <= to)
}

/// A date as users write it: RFC 3339 (`2026-01-01T00:00:00Z`), or a date or a time without
/// offset (`2026-01-01`, `2026-01-01T06:30`, `2026-01-01 06:30:00`) in `tz`.
pub fn parse_date_in(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(datetime) = DateTime::parse_from_rfc3339(text) {
        return Ok(datetime.with_timezone(&Utc));
    }
    let naive = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .or_else(|| {
            [
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        });
    match naive {
        Some(local) => local
            .and_local_timezone(tz)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| format!("{text:?} does not exist in {tz} (a DST gap)")),
        None => Err(format!(
            "bad date {text:?}: expected RFC 3339 (2026-01-01T00:00:00Z), a date (2026-01-01) or a local time (2026-01-01T06:30)"
        )),
    }
}

/// The first fire time strictly after `after`, in `tz`.
pub fn next_fire(cron: &Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    fire_times_after(cron, tz, after).next()
}

/// Where a cron DAG stands: what the scheduler needs to decide what is due.
#[derive(Debug, Clone, Copy)]
pub struct CronWindow {
    pub start_date: DateTime<Utc>,
    pub end_date: Option<DateTime<Utc>>,
    /// The logical date of the newest scheduled run, if any.
    pub last_logical: Option<DateTime<Utc>>,
    pub catchup: bool,
}

/// The logical dates due at `now`, oldest first: every fire time after the last scheduled run
/// (or from `start_date`, inclusive) up to `now` and `end_date`; with catchup off only the
/// newest of them. At most [`MAX_CATCHUP_RUNS_PER_PASS`]; the rest come on the next pass.
pub fn due_logical_dates(
    cron: &Cron,
    tz: Tz,
    window: CronWindow,
    now: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let horizon = window.end_date.map_or(now, |end| end.min(now));
    let after = match window.last_logical {
        Some(last) => last,
        None => window.start_date - chrono::Duration::seconds(1),
    };
    if window.catchup {
        fire_times_after(cron, tz, after)
            .take_while(|t| *t <= horizon)
            .take(MAX_CATCHUP_RUNS_PER_PASS)
            .collect()
    } else {
        // Whole seconds: inside a second the cron matches, croner would give `now` itself,
        // fraction and all.
        let horizon = chrono::SubsecRound::trunc_subsecs(horizon, 0);
        cron.find_previous_occurrence(&horizon.with_timezone(&tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > after)
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn cron(text: &str) -> Box<Cron> {
        match Schedule::parse(Some(text)).expect(text) {
            Schedule::Cron { cron, .. } => cron,
            other => panic!("{text} parsed as {other:?}"),
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect(text)
            .with_timezone(&Utc)
    }

    fn window(start: &str, last: Option<&str>, catchup: bool) -> CronWindow {
        CronWindow {
            start_date: utc(start),
            end_date: None,
            last_logical: last.map(utc),
            catchup,
        }
    }

    #[test]
    fn presets_and_keywords_parse() {
        assert!(matches!(Schedule::parse(None).unwrap(), Schedule::Manual));
        assert!(matches!(
            Schedule::parse(Some("@once")).unwrap(),
            Schedule::Once
        ));
        assert!(matches!(
            Schedule::parse(Some("@continuous")).unwrap(),
            Schedule::Continuous
        ));
        for preset in ["@hourly", "@daily", "@weekly", "@monthly", "@yearly"] {
            assert!(
                matches!(
                    Schedule::parse(Some(preset)).unwrap(),
                    Schedule::Cron { .. }
                ),
                "{preset}"
            );
        }
    }

    #[test]
    fn five_and_six_fields_parse_and_others_do_not() {
        let five = cron("*/15 * * * *");
        let six = cron("30 */15 * * * *");
        let t0 = utc("2026-01-01T00:00:00Z");
        assert_eq!(
            next_fire(&five, Tz::UTC, t0),
            Some(utc("2026-01-01T00:15:00Z"))
        );
        assert_eq!(
            next_fire(&six, Tz::UTC, t0),
            Some(utc("2026-01-01T00:00:30Z"))
        );
        let err = Schedule::parse(Some("* * *")).unwrap_err().to_string();
        assert!(err.contains("expected 5 fields"), "{err}");
        let err = Schedule::parse(Some("61 * * * *")).unwrap_err().to_string();
        assert!(err.contains("bad cron expression \"61 * * * *\""), "{err}");
    }

    #[test]
    fn catchup_creates_every_missed_run_in_order() {
        let due = due_logical_dates(
            &cron("0 * * * *"),
            Tz::UTC,
            window("2026-01-01T00:00:00Z", None, true),
            utc("2026-01-01T03:30:00Z"),
        );
        assert_eq!(
            due,
            vec![
                utc("2026-01-01T00:00:00Z"),
                utc("2026-01-01T01:00:00Z"),
                utc("2026-01-01T02:00:00Z"),
                utc("2026-01-01T03:00:00Z")
            ]
        );
    }

    #[test]
    fn catchup_resumes_after_the_last_run() {
        let due = due_logical_dates(
            &cron("0 * * * *"),
            Tz::UTC,
            window("2026-01-01T00:00:00Z", Some("2026-01-01T02:00:00Z"), true),
            utc("2026-01-01T03:30:00Z"),
        );
        assert_eq!(due, vec![utc("2026-01-01T03:00:00Z")]);
    }

    #[test]
    fn no_catchup_creates_only_the_latest() {
        let due = due_logical_dates(
            &cron("0 * * * *"),
            Tz::UTC,
            window("2026-01-01T00:00:00Z", None, false),
            utc("2026-01-01T03:30:00Z"),
        );
        assert_eq!(due, vec![utc("2026-01-01T03:00:00Z")]);
    }

    #[test]
    fn the_latest_fire_time_of_a_seconds_cron_is_on_the_second() {
        let due = due_logical_dates(
            &cron("*/10 * * * * *"),
            Tz::UTC,
            window("2026-01-01T00:00:00Z", None, false),
            utc("2026-12-02T07:52:30.464365Z"),
        );
        assert_eq!(due, vec![utc("2026-12-02T07:52:30Z")]);
    }

    #[test]
    fn nothing_is_due_before_start_or_after_end() {
        let w = window("2026-02-01T00:00:00Z", None, true);
        assert!(
            due_logical_dates(&cron("0 * * * *"), Tz::UTC, w, utc("2026-01-31T12:00:00Z"))
                .is_empty()
        );
        let w = CronWindow {
            end_date: Some(utc("2026-02-01T01:30:00Z")),
            ..w
        };
        let due = due_logical_dates(&cron("0 * * * *"), Tz::UTC, w, utc("2026-02-02T00:00:00Z"));
        assert_eq!(
            due,
            vec![utc("2026-02-01T00:00:00Z"), utc("2026-02-01T01:00:00Z")]
        );
    }

    #[test]
    fn catchup_is_bounded_per_pass() {
        let due = due_logical_dates(
            &cron("* * * * *"),
            Tz::UTC,
            window("2026-01-01T00:00:00Z", None, true),
            utc("2026-01-03T00:00:00Z"),
        );
        assert_eq!(due.len(), MAX_CATCHUP_RUNS_PER_PASS);
    }

    #[test]
    fn daily_schedule_follows_the_timezone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let next = next_fire(&cron("0 9 * * *"), berlin, utc("2026-01-10T12:00:00Z"));
        assert_eq!(
            next,
            Some(utc("2026-01-11T08:00:00Z")),
            "09:00 CET is 08:00 UTC"
        );
        let next = next_fire(&cron("0 9 * * *"), berlin, utc("2026-07-10T12:00:00Z"));
        assert_eq!(
            next,
            Some(utc("2026-07-11T07:00:00Z")),
            "09:00 CEST is 07:00 UTC"
        );
    }

    #[test]
    fn spring_forward_runs_a_skipped_time_once_after_the_gap() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let w = window("2026-03-28T00:00:00Z", None, true);
        let due = due_logical_dates(&cron("30 2 * * *"), berlin, w, utc("2026-03-31T00:00:00Z"));
        assert_eq!(
            due,
            vec![
                utc("2026-03-28T01:30:00Z"),
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-30T00:30:00Z")
            ]
        );
        let day = window("2026-03-28T23:00:00Z", None, true);
        let hourly =
            due_logical_dates(&cron("0 * * * *"), berlin, day, utc("2026-03-29T21:59:00Z"));
        assert_eq!(hourly.len(), 23, "the local day has 23 hours: {hourly:?}");
    }

    #[test]
    fn fall_back_runs_a_repeated_time_once() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC).
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let w = window("2026-10-24T00:00:00Z", None, true);
        let due = due_logical_dates(&cron("30 2 * * *"), berlin, w, utc("2026-10-27T00:00:00Z"));
        assert_eq!(
            due,
            vec![
                utc("2026-10-24T00:30:00Z"),
                utc("2026-10-25T00:30:00Z"),
                utc("2026-10-26T01:30:00Z")
            ]
        );
        let day = window("2026-10-24T22:00:00Z", None, true);
        let hourly =
            due_logical_dates(&cron("0 * * * *"), berlin, day, utc("2026-10-25T22:59:00Z"));
        assert_eq!(hourly.len(), 25, "the local day has 25 hours: {hourly:?}");
    }

    #[test]
    fn utc_helper_round_trips() {
        assert_eq!(
            utc("2026-01-01T00:00:00Z"),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
        );
    }
}
