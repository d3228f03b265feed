//! DAG files: the model, the parser with positioned errors, graph validation, schedules,
//! templating, and the folder loader.

mod error;
mod loader;
mod model;
mod parse;
mod schedule;
mod template;
mod validate;
mod watch;

pub use error::{DagFileError, Problem};
pub use loader::DagBag;
pub use model::{
    DEFAULT_QUEUE, Dag, INSTANCE_MARK, RetryPolicy, TaskSpec, TriggerRule, base_task_id,
    merge_params,
};
pub use parse::{check_name, parse_dag_file};
pub use schedule::{
    CronWindow, Schedule, ScheduleError, due_logical_dates, fire_times_between, next_fire,
    parse_date_in,
};
pub use template::{TemplateContext, has_templates, render_config};
pub use watch::watch_folder;

#[cfg(test)]
mod parse_tests;
