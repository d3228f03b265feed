//! The backfill form (plan with Preview, then start) and its page.

use askama::Template;

use super::Chrome;
use crate::views::{BackfillPlanView, BackfillRequest, DagDetail};

/// The backfill form's fields, as shown or as submitted, with what is wrong beside each.
#[derive(Debug, Clone, Default)]
pub struct BackfillFormView {
    pub from_date: String,
    pub to_date: String,
    pub reprocess_behavior: String,
    pub max_active_runs: String,
    pub conf: String,
    /// Start the latest dates first.
    pub run_backwards: bool,
    /// (field, message)
    pub errors: Vec<(String, String)>,
}

impl BackfillFormView {
    /// Empty dates, `none`, the DAG's own `max_active_runs`, `{}`.
    pub fn new(dag: &DagDetail) -> Self {
        Self {
            reprocess_behavior: "none".into(),
            max_active_runs: dag.max_active_runs.to_string(),
            conf: "{}".into(),
            ..Self::default()
        }
    }

    /// The request the fields make, or the field that is wrong and why.
    pub fn request(&self, dry_run: bool) -> Result<BackfillRequest, (String, String)> {
        let max_active_runs = match self.max_active_runs.trim() {
            "" => None,
            text => Some(text.parse::<u32>().map_err(|_| {
                (
                    "max_active_runs".to_string(),
                    format!("{text:?} is not a whole number"),
                )
            })?),
        };
        let dag_run_conf = super::dags::parse_conf_object(&self.conf)
            .map_err(|message| ("conf".to_string(), message))?;
        Ok(BackfillRequest {
            from_date: self.from_date.clone(),
            to_date: self.to_date.clone(),
            reprocess_behavior: Some(self.reprocess_behavior.clone()),
            max_active_runs,
            dag_run_conf,
            dry_run,
            run_backwards: self.run_backwards,
        })
    }

    pub fn add_error(&mut self, field: &str, message: String) {
        // The backend names conf keys `conf.<key>`.
        let field = if field.starts_with("conf") {
            "conf"
        } else {
            field
        };
        self.errors.push((field.to_owned(), message));
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// What is wrong with `field` (its messages joined).
    pub fn error(&self, field: &str) -> String {
        self.errors
            .iter()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Errors of fields the form does not show.
    pub fn other_errors(&self) -> Vec<&str> {
        let shown = [
            "from_date",
            "to_date",
            "reprocess_behavior",
            "max_active_runs",
            "conf",
        ];
        self.errors
            .iter()
            .filter(|(f, _)| !shown.contains(&f.as_str()))
            .map(|(_, m)| m.as_str())
            .collect()
    }
}

#[derive(Template)]
#[template(path = "dags/backfill.html")]
pub struct BackfillPage {
    pub chrome: Chrome,
    pub dag: DagDetail,
    pub form: BackfillFormView,
    /// The dry run's dates, after Preview.
    pub plan: Option<BackfillPlanView>,
}

#[derive(Template)]
#[template(path = "pools.html")]
pub struct PoolsPage {
    pub chrome: Chrome,
    pub pools: Vec<crate::views::PoolView>,
}
