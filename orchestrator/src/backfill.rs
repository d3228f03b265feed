//! Planning a backfill: the logical dates a cron DAG's schedule fires at between two dates (in
//! its timezone, as the scheduler finds them), and which of them run again given the runs
//! they already have and the reprocess mode.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::{
    dag::{Dag, Schedule, fire_times_between},
    store::RunState,
};

/// The most intervals one backfill takes.
pub const MAX_INTERVALS: usize = 100_000;

/// Which dates that already have a run are run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprocess {
    /// None: a date with a run is skipped.
    None,
    /// Dates whose latest run failed.
    Failed,
    /// Every date (each rerun is a new run; the old one is kept).
    All,
}

impl Reprocess {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Failed => "failed",
            Self::All => "all",
        }
    }
}

impl std::str::FromStr for Reprocess {
    type Err = String;

    /// `none`, `failed`, `all` (Airflow 3's `completed` is taken for `all`).
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(Self::None),
            "failed" => Ok(Self::Failed),
            "all" | "completed" => Ok(Self::All),
            other => Err(format!(
                "unknown reprocess mode {other:?}: use none, failed or all"
            )),
        }
    }
}

/// One logical date of a backfill, and why it is skipped if it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDate {
    pub logical_date: DateTime<Utc>,
    pub skip: Option<String>,
}

/// The dates `dag`'s cron fires at from `from` to `to` (inclusive), each to run or skipped
/// given `existing` (the latest run's state at a date) and `reprocess`. A date whose run is
/// queued or running is always skipped.
pub fn plan(
    dag: &Dag,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    reprocess: Reprocess,
    existing: &HashMap<DateTime<Utc>, RunState>,
) -> Result<Vec<PlannedDate>, String> {
    let Schedule::Cron { cron, .. } = &dag.schedule else {
        return Err(format!(
            "DAG {} has no cron schedule ({}): a backfill runs the intervals of one",
            dag.id,
            dag.schedule.as_text()
        ));
    };
    if from > to {
        return Err(format!("--from {from} is after --to {to}"));
    }
    let dates: Vec<DateTime<Utc>> = fire_times_between(cron, dag.timezone, from, to)
        .take(MAX_INTERVALS + 1)
        .collect();
    if dates.len() > MAX_INTERVALS {
        return Err(format!(
            "more than {MAX_INTERVALS} intervals between {from} and {to}: split the backfill"
        ));
    }
    Ok(dates
        .into_iter()
        .map(|logical_date| PlannedDate {
            logical_date,
            skip: existing
                .get(&logical_date)
                .and_then(|state| why_skipped(*state, reprocess)),
        })
        .collect())
}

fn why_skipped(state: RunState, reprocess: Reprocess) -> Option<String> {
    match (state, reprocess) {
        (RunState::Queued | RunState::Running, _) => Some(format!("a run is {state}")),
        (_, Reprocess::All) | (RunState::Failed, Reprocess::Failed) => None,
        (state, _) => Some(format!("has a run ({state})")),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn dag(schedule: &str, timezone: &str) -> Dag {
        crate::dag::parse_dag_file(
            std::path::Path::new("d.toml"),
            &format!(
                "[dag]\nid = \"d\"\nschedule = \"{schedule}\"\ntimezone = \"{timezone}\"\n[[task]]\nid = \"t\"\noperator = \"noop\"\n"
            ),
        )
        .unwrap()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn dates_are_the_fire_times_between_both_ends() {
        let hourly = dag("0 * * * *", "UTC");
        let dates = plan(
            &hourly,
            utc(2026, 1, 1, 0),
            utc(2026, 1, 1, 3),
            Reprocess::None,
            &HashMap::new(),
        )
        .unwrap();
        let dates: Vec<_> = dates.iter().map(|d| d.logical_date).collect();
        assert_eq!(
            dates,
            (0..=3).map(|h| utc(2026, 1, 1, h)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_dst_change_fires_as_the_scheduler_does() {
        // 02:30 does not exist in Berlin on 2026-03-29: that day has no run at 02:30.
        let daily = dag("30 2 * * *", "Europe/Berlin");
        let dates = plan(
            &daily,
            utc(2026, 3, 27, 0),
            utc(2026, 3, 31, 0),
            Reprocess::None,
            &HashMap::new(),
        )
        .unwrap();
        let days: Vec<u32> = dates
            .iter()
            .map(|d| {
                chrono::Datelike::day(&d.logical_date.with_timezone(&chrono_tz::Europe::Berlin))
            })
            .collect();
        assert!(!days.is_empty() && days.len() <= 4, "{days:?}");
        assert!(days.contains(&27) && days.contains(&30), "{days:?}");
    }

    #[test]
    fn reprocess_decides_which_dates_with_runs_run_again() {
        let hourly = dag("0 * * * *", "UTC");
        let existing = HashMap::from([
            (utc(2026, 1, 1, 0), RunState::Success),
            (utc(2026, 1, 1, 1), RunState::Failed),
            (utc(2026, 1, 1, 2), RunState::Running),
        ]);
        let skipped = |mode| {
            plan(
                &hourly,
                utc(2026, 1, 1, 0),
                utc(2026, 1, 1, 3),
                mode,
                &existing,
            )
            .unwrap()
            .into_iter()
            .map(|d| d.skip.is_some())
            .collect::<Vec<_>>()
        };
        assert_eq!(skipped(Reprocess::None), [true, true, true, false]);
        assert_eq!(skipped(Reprocess::Failed), [true, false, true, false]);
        assert_eq!(skipped(Reprocess::All), [false, false, true, false]);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let manual = dag("@once", "UTC");
        let error = plan(
            &manual,
            utc(2026, 1, 1, 0),
            utc(2026, 1, 2, 0),
            Reprocess::None,
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(error.contains("no cron schedule"), "{error}");
        let hourly = dag("0 * * * *", "UTC");
        let error = plan(
            &hourly,
            utc(2026, 1, 2, 0),
            utc(2026, 1, 1, 0),
            Reprocess::None,
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(error.contains("is after"), "{error}");
        let minutely = dag("* * * * *", "UTC");
        let error = plan(
            &minutely,
            utc(2026, 1, 1, 0),
            utc(2026, 12, 1, 0),
            Reprocess::None,
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(error.contains("more than 100000 intervals"), "{error}");
        assert_eq!("completed".parse::<Reprocess>(), Ok(Reprocess::All));
        assert!(
            "some"
                .parse::<Reprocess>()
                .unwrap_err()
                .contains("none, failed or all")
        );
    }
}
