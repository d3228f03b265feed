//! One DAG file -> a [`Dag`], or every problem in it with line, column and field.

use std::{ops::Range, path::Path};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, de::IntoDeserializer};
use tasks::{ConfigError, HumanDuration, OperatorConfig, OperatorKind};
use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::{
    DEFAULT_QUEUE, DagFileError, RetryPolicy, Schedule, TaskSpec, TriggerRule,
    error::Problems,
    model::Dag,
    validate::{ParsedTask, validate_graph},
};

/// The keys of a `[[task]]` table common to every operator; the rest belong to the operator.
const COMMON_TASK_KEYS: &[&str] = &[
    "id",
    "operator",
    "upstream",
    "trigger_rule",
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "max_retry_delay",
    "timeout",
    "queue",
    "parallelism",
    "pool",
    "pool_slots",
    "priority_weight",
];

/// The `[dag]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDag {
    id: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    start_date: Option<Spanned<toml::Value>>,
    #[serde(default)]
    end_date: Option<Spanned<toml::Value>>,
    #[serde(default)]
    catchup: Option<bool>,
    #[serde(default)]
    max_active_runs: Option<u32>,
    #[serde(default)]
    max_active_tasks: Option<u32>,
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    allow_extra_conf: bool,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    queue: Option<Spanned<String>>,
    #[serde(default)]
    env_passthrough: Option<Spanned<Vec<String>>>,
}

/// The common fields of a `[[task]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: Spanned<String>,
    operator: Spanned<String>,
    #[serde(default)]
    upstream: Vec<Spanned<String>>,
    #[serde(default)]
    trigger_rule: TriggerRule,
    #[serde(default)]
    retries: u32,
    #[serde(default)]
    retry_delay: Option<HumanDuration>,
    #[serde(default)]
    retry_exponential_backoff: bool,
    #[serde(default)]
    max_retry_delay: Option<HumanDuration>,
    #[serde(default)]
    timeout: Option<HumanDuration>,
    #[serde(default)]
    queue: Option<Spanned<String>>,
    #[serde(default)]
    parallelism: Option<Spanned<u32>>,
    #[serde(default)]
    pool: Option<Spanned<String>>,
    #[serde(default)]
    pool_slots: Option<Spanned<u32>>,
    #[serde(default)]
    priority_weight: Option<i32>,
}

fn deserialize<'de, T: Deserialize<'de>>(
    value: Spanned<DeValue<'de>>,
) -> Result<T, toml::de::Error> {
    T::deserialize(value.into_deserializer())
}

/// Parses and validates one DAG file; `path` only names the file in errors and in the result.
pub fn parse_dag_file(path: &Path, source: &str) -> Result<Dag, DagFileError> {
    let fail = |problems| DagFileError {
        file: path.to_owned(),
        problems,
    };
    let mut problems = Problems::new(source);
    let root = match DeTable::parse(source) {
        Ok(root) => root.into_inner(),
        Err(error) => {
            problems.toml_error(&error, "toml", None, None);
            return Err(fail(problems.list));
        }
    };
    for (key, _) in root.iter() {
        if key.get_ref() != "dag" && key.get_ref() != "task" {
            problems.at(
                Some(key.span()),
                key.get_ref().to_string(),
                "unknown top-level key: expected `[dag]` and `[[task]]` tables",
            );
        }
    }
    let dag = parse_dag_table(&root, &mut problems);
    let tasks = parse_task_tables(&root, &mut problems);
    // The document (a map node per task table) is not needed past here.
    drop(root);
    let tasks = validate_graph(tasks, &mut problems);
    match dag {
        Some(mut dag) if problems.list.is_empty() => {
            dag.file = path.to_owned();
            dag.source = source.into();
            dag.source_hash = source_hash(source);
            let mut tasks = tasks;
            for task in tasks.iter_mut().filter(|t| t.queue.is_empty()) {
                task.queue.clone_from(&dag.queue);
            }
            for task in tasks.iter_mut() {
                pass_through(task, &dag.env_passthrough);
            }
            dag.set_tasks(tasks);
            Ok(dag)
        }
        _ => Err(fail(problems.list)),
    }
}

fn parse_dag_table(root: &DeTable<'_>, problems: &mut Problems<'_>) -> Option<Dag> {
    let Some(value) = root.get("dag") else {
        problems.at(Some(0..0), "dag", "missing `[dag]` table");
        return None;
    };
    let table = value.get_ref().as_table();
    let raw: RawDag = match deserialize(value.clone()) {
        Ok(raw) => raw,
        Err(error) => {
            problems.toml_error(&error, "dag", table, Some(value.span()));
            return None;
        }
    };
    check_id(raw.id.get_ref(), Some(raw.id.span()), "dag.id", problems);
    if let Some(queue) = &raw.queue {
        check_id(queue.get_ref(), Some(queue.span()), "dag.queue", problems);
    }
    if let Some(names) = &raw.env_passthrough
        && let Err(message) = tasks::shell::check_passthrough(names.get_ref())
    {
        problems.at(Some(names.span()), "dag.env_passthrough", message);
    }
    let schedule = match Schedule::parse(raw.schedule.as_ref().map(|s| s.get_ref().as_str())) {
        Ok(schedule) => schedule,
        Err(error) => {
            problems.at(
                raw.schedule.as_ref().map(|s| s.span()),
                "dag.schedule",
                error.to_string(),
            );
            Schedule::Manual
        }
    };
    let timezone = match &raw.timezone {
        None => Tz::UTC,
        Some(name) => name.get_ref().parse::<Tz>().unwrap_or_else(|_| {
            problems.at(
                Some(name.span()),
                "dag.timezone",
                format!(
                    "unknown timezone {:?} (use an IANA name such as \"Europe/Berlin\")",
                    name.get_ref()
                ),
            );
            Tz::UTC
        }),
    };
    let start_date = raw
        .start_date
        .as_ref()
        .and_then(|d| parse_date(d, "dag.start_date", timezone, problems));
    let end_date = raw
        .end_date
        .as_ref()
        .and_then(|d| parse_date(d, "dag.end_date", timezone, problems));
    if let (Some(start), Some(end)) = (start_date, end_date)
        && end < start
    {
        problems.at(
            raw.end_date.as_ref().map(|d| d.span()),
            "dag.end_date",
            "end_date is before start_date",
        );
    }
    Some(Dag {
        id: raw.id.into_inner(),
        file: Default::default(),
        description: raw.description,
        schedule,
        timezone,
        start_date,
        end_date,
        catchup: raw.catchup.unwrap_or(false),
        max_active_runs: raw.max_active_runs.unwrap_or(16).max(1),
        max_active_tasks: raw.max_active_tasks.unwrap_or(16).max(1),
        params: raw.params,
        allow_extra_conf: raw.allow_extra_conf,
        tags: raw.tags,
        queue: raw
            .queue
            .map_or_else(|| DEFAULT_QUEUE.to_owned(), Spanned::into_inner),
        env_passthrough: raw
            .env_passthrough
            .map(Spanned::into_inner)
            .unwrap_or_default(),
        source: "".into(),
        source_hash: String::new(),
        tasks: Vec::new(),
        positions: Default::default(),
    })
}

/// SHA-256 of a DAG file's text, in hex.
fn source_hash(source: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(source.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Ids name folders of the log tree and appear in URLs: keep them to a safe alphabet.
pub(crate) fn check_id(
    id: &str,
    span: Option<Range<usize>>,
    field: &str,
    problems: &mut Problems<'_>,
) {
    if let Err(message) = check_name(id) {
        problems.at(span, field, message);
    }
}

/// An id (of a DAG, task, queue or pool) keeps to letters, digits, `_`, `-` and `.` (not
/// first), at most 250 bytes: it names folders of the log tree and appears in URLs.
pub fn check_name(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !id.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid id {id:?}: use letters, digits, `_`, `-` and `.` (not first)"
        ))
    }
}

/// A TOML datetime, an RFC 3339 string, or a plain date (midnight in the DAG's timezone).
fn parse_date(
    value: &Spanned<toml::Value>,
    field: &str,
    tz: Tz,
    problems: &mut Problems<'_>,
) -> Option<DateTime<Utc>> {
    let text = match value.get_ref() {
        toml::Value::String(text) => text.clone(),
        toml::Value::Datetime(datetime) => datetime.to_string(),
        other => {
            problems.at(
                Some(value.span()),
                field,
                format!("expected a date or datetime, got {}", other.type_str()),
            );
            return None;
        }
    };
    match super::schedule::parse_date_in(&text, tz) {
        Ok(datetime) => Some(datetime),
        Err(message) => {
            problems.at(Some(value.span()), field, message);
            None
        }
    }
}

fn parse_task_tables(root: &DeTable<'_>, problems: &mut Problems<'_>) -> Vec<ParsedTask> {
    let Some(value) = root.get("task") else {
        problems.at(
            Some(0..0),
            "task",
            "no `[[task]]` table: a DAG needs at least one task",
        );
        return Vec::new();
    };
    let DeValue::Array(array) = value.get_ref() else {
        problems.at(
            Some(value.span()),
            "task",
            "`task` must be an array of tables: write `[[task]]`",
        );
        return Vec::new();
    };
    let mut split = SplitTable::default();
    // Sized once: grown by doubling, a 20,000-task file's list was copied ~15 times over.
    let mut tasks = Vec::with_capacity(array.len());
    for (index, task) in array.iter().enumerate() {
        tasks.extend(parse_task_table(index, task, &mut split, problems));
    }
    tasks
}

fn parse_task_table<'i>(
    index: usize,
    value: &Spanned<DeValue<'i>>,
    split: &mut SplitTable<'i>,
    problems: &mut Problems<'_>,
) -> Option<ParsedTask> {
    let field = format!("task[{index}]");
    let DeValue::Table(table) = value.get_ref() else {
        problems.at(Some(value.span()), field, "expected a table");
        return None;
    };
    split.fill(table);
    let SplitTable { common, operator } = &*split;
    let raw: RawTask = match deserialize(Spanned::new(value.span(), DeValue::Table(common.clone())))
    {
        Ok(raw) => raw,
        Err(error) => {
            problems.toml_error(&error, &field, Some(common), Some(value.span()));
            return None;
        }
    };
    let field = format!("task {:?}", raw.id.get_ref());
    check_id(
        raw.id.get_ref(),
        Some(raw.id.span()),
        &format!("{field}.id"),
        problems,
    );
    if let Some(queue) = &raw.queue {
        check_id(
            queue.get_ref(),
            Some(queue.span()),
            &format!("{field}.queue"),
            problems,
        );
    }
    if let Some(pool) = &raw.pool {
        check_id(
            pool.get_ref(),
            Some(pool.span()),
            &format!("{field}.pool"),
            problems,
        );
    }
    if let Some(slots) = raw.pool_slots.as_ref().filter(|s| *s.get_ref() == 0) {
        problems.at(
            Some(slots.span()),
            format!("{field}.pool_slots"),
            "pool_slots must be at least 1",
        );
    }
    let Some(kind) = OperatorKind::from_name(raw.operator.get_ref()) else {
        let message = format!(
            "unknown operator {:?}: expected one of {}",
            raw.operator.get_ref(),
            OperatorKind::names()
        );
        problems.at(
            Some(raw.operator.span()),
            format!("{field}.operator"),
            message,
        );
        return None;
    };
    let operator_value = Spanned::new(value.span(), DeValue::Table(operator.clone()));
    match check_operator_config(kind, operator, value.span()) {
        Err(ConfigProblem::Toml(error)) => {
            problems.toml_error(&error, &field, Some(operator), Some(value.span()));
            return None;
        }
        Err(ConfigProblem::Rule(error)) => {
            let span = value_span(operator, &error.field).unwrap_or(value.span());
            problems.at(
                Some(span),
                format!("{field}.{}", error.field),
                error.message,
            );
            return None;
        }
        Ok(()) => {}
    }
    let config: serde_json::Value = match deserialize(operator_value) {
        Ok(mut config) => {
            shrink(&mut config);
            config
        }
        Err(error) => {
            problems.toml_error(&error, &field, Some(operator), Some(value.span()));
            return None;
        }
    };
    if let Some(parallelism) = &raw.parallelism {
        check_parallelism(parallelism, kind, &config, &field, problems);
    }
    Some(task_spec(raw, kind, config))
}

/// `parallelism`: a stream task split into instances, each owning a share of the partitions;
/// its shares' states merge only where the sink supports it (MongoDB and SQL window tables;
/// a Kafka sink's records are keyed by window, one per share).
fn check_parallelism(
    parallelism: &Spanned<u32>,
    kind: OperatorKind,
    config: &serde_json::Value,
    field: &str,
    problems: &mut Problems<'_>,
) {
    let n = *parallelism.get_ref();
    let sink = config.pointer("/sink/kind").and_then(|k| k.as_str());
    let problem = if !(1..=MAX_PARALLELISM).contains(&n) {
        Some(format!(
            "parallelism must be from 1 to {MAX_PARALLELISM}, got {n}"
        ))
    } else if n > 1 && kind != OperatorKind::Stream {
        Some(format!(
            "only stream tasks split into instances (this is a {} task)",
            kind
        ))
    } else if n > 1 && !matches!(sink, Some("mongodb" | "postgres" | "mysql")) {
        Some(format!(
            "parallelism > 1 needs a mongodb, postgres or mysql sink (each share keeps its own rows, merged when read); this sink is {}",
            sink.unwrap_or("unknown")
        ))
    } else {
        None
    };
    if let Some(message) = problem {
        problems.at(
            Some(parallelism.span()),
            format!("{field}.parallelism"),
            message,
        );
    }
}

/// The most instances one stream task splits into.
const MAX_PARALLELISM: u32 = 256;

/// Adds the DAG's `env_passthrough` names to a shell task's own.
fn pass_through(task: &mut TaskSpec, names: &[String]) {
    if names.is_empty() || task.operator != OperatorKind::Shell {
        return;
    }
    let Some(config) = task.config.as_object_mut() else {
        return;
    };
    let listed = config
        .entry("env_passthrough")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(listed) = listed.as_array_mut() {
        for name in names {
            if !listed.iter().any(|n| n.as_str() == Some(name.as_str())) {
                listed.push(name.clone().into());
            }
        }
    }
}

/// Gives back the spare room of a config's maps and lists: it is kept for the life of the
/// DAG, once per task (a two-key map held 312 bytes; 6 MB in a 20,000-task DAG).
fn shrink(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.values_mut().for_each(shrink);
            // Collected again at its exact size (the map has no shrink of its own).
            *map = std::mem::take(map).into_iter().collect();
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(shrink);
            items.shrink_to_fit();
        }
        _ => {}
    }
}

/// What is wrong with an operator config: a key or type (serde), or a rule of the operator.
enum ConfigProblem {
    Toml(toml::de::Error),
    Rule(ConfigError),
}

/// Checks the operator config's keys, types and rules now, leaving out templated values (at
/// any depth of tables): they are known only once rendered, and checked then, before the try
/// starts.
fn check_operator_config(
    kind: OperatorKind,
    operator: &DeTable<'_>,
    span: Range<usize>,
) -> Result<(), ConfigProblem> {
    let mut templated = Vec::new();
    let untemplated = without_templates(operator, "", &mut templated);
    let config = Spanned::new(span, DeValue::Table(untemplated));
    match deserialize::<OperatorConfig>(config.clone()) {
        Err(error)
            if error.message().starts_with("missing field")
                && templated.iter().any(|path| {
                    let leaf = path.rsplit('.').next().unwrap_or(path);
                    error.message().contains(&format!("`{leaf}`"))
                }) =>
        {
            Ok(())
        }
        Err(error) if error.message().starts_with("unknown field") => {
            Err(ConfigProblem::Toml(error))
        }
        // A wrong value: the tagged enum's error has lost the field; find it.
        Err(error) => Err(field_of_type_error(kind, config)
            .map_or(ConfigProblem::Toml(error), ConfigProblem::Rule)),
        Ok(config) => match config.validate() {
            Err(error) if !templated.iter().any(|path| overlaps(path, &error.field)) => {
                Err(ConfigProblem::Rule(error))
            }
            _ => Ok(()),
        },
    }
}

/// A type error of `config` with the path of the value it is about (`window.size`), from
/// deserializing it once more as the `kind` operator's config.
fn field_of_type_error(kind: OperatorKind, config: Spanned<DeValue<'_>>) -> Option<ConfigError> {
    let json: serde_json::Value = deserialize(config).ok()?;
    let error = OperatorConfig::from_json(kind, json).err()?;
    let path = error.path().to_string();
    (path != ".").then(|| ConfigError::new(path, error.inner().to_string()))
}

/// `table` without its templated text values, at any depth of tables; their dotted paths
/// (`url`, `window.size`) go to `templated`.
fn without_templates<'a>(
    table: &DeTable<'a>,
    prefix: &str,
    templated: &mut Vec<String>,
) -> DeTable<'a> {
    let is_template = |value: &DeValue<'_>| {
        value
            .as_str()
            .is_some_and(|s| s.contains("{{") || s.contains("{%"))
    };
    let mut kept = DeTable::new();
    for (key, value) in table.iter() {
        let path = match prefix {
            "" => key.get_ref().to_string(),
            _ => format!("{prefix}.{}", key.get_ref()),
        };
        match value.get_ref() {
            inner if is_template(inner) => templated.push(path),
            DeValue::Table(inner) => {
                let inner = without_templates(inner, &path, templated);
                kept.insert(
                    key.clone(),
                    Spanned::new(value.span(), DeValue::Table(inner)),
                );
            }
            _ => {
                kept.insert(key.clone(), value.clone());
            }
        }
    }
    kept
}

/// Whether a rule's `field` (`window.slide`, `topics[1]`) is, holds or lies inside the
/// templated `path`.
pub(super) fn overlaps(path: &str, field: &str) -> bool {
    let within = |long: &str, short: &str| {
        long.strip_prefix(short)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    within(field, path) || within(path, field)
}

/// The span of the value at `field` (`window.slide`, `topics[1]`), or of the deepest part of
/// it that the table has.
fn value_span(table: &DeTable<'_>, field: &str) -> Option<Range<usize>> {
    let mut found = None;
    let mut current: Option<&DeValue<'_>> = None;
    for part in field.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let entries = match current {
            None => Some(table),
            Some(DeValue::Table(inner)) => Some(inner),
            Some(_) => None,
        };
        let Some(mut value) = entries.and_then(|t| t.get(key)) else {
            break;
        };
        if let (Some(i), DeValue::Array(items)) = (index, value.get_ref())
            && let Some(item) = items.get(i)
        {
            value = item;
        }
        found = Some(value.span());
        current = Some(value.get_ref());
    }
    found
}

/// A task table split into its common keys and its operator's keys (`operator` in both: it
/// tags the operator config). One split is filled again for each task of a file: two maps
/// made and dropped per task emptied a page of the allocator each time, which mimalloc gave
/// back to the system at once, a `madvise` per task and half the parse of a 20,000-task DAG
/// (BENCHMARKS.md).
#[derive(Default)]
struct SplitTable<'i> {
    common: DeTable<'i>,
    operator: DeTable<'i>,
}

impl<'i> SplitTable<'i> {
    fn fill(&mut self, table: &DeTable<'i>) {
        self.common.clear();
        self.operator.clear();
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            if COMMON_TASK_KEYS.contains(&name) {
                self.common.insert(key.clone(), value.clone());
            }
            if name == "operator" || !COMMON_TASK_KEYS.contains(&name) {
                self.operator.insert(key.clone(), value.clone());
            }
        }
    }
}

fn task_spec(raw: RawTask, operator: OperatorKind, config: serde_json::Value) -> ParsedTask {
    let defaults = RetryPolicy::default();
    let retry = RetryPolicy {
        retries: raw.retries,
        delay: raw
            .retry_delay
            .map_or(defaults.delay, HumanDuration::as_duration),
        exponential_backoff: raw.retry_exponential_backoff,
        max_delay: raw.max_retry_delay.map(HumanDuration::as_duration),
    };
    ParsedTask {
        id_span: raw.id.span(),
        upstream_spans: raw.upstream.iter().map(|u| u.span()).collect(),
        spec: TaskSpec {
            id: raw.id.into_inner(),
            operator,
            upstream: raw.upstream.into_iter().map(Spanned::into_inner).collect(),
            trigger_rule: raw.trigger_rule,
            retry,
            timeout: raw.timeout.map(HumanDuration::as_duration),
            // Empty: the DAG's queue, filled in once the `[dag]` table is known.
            queue: raw.queue.map(Spanned::into_inner).unwrap_or_default(),
            parallelism: raw.parallelism.as_ref().map_or(1, |p| *p.get_ref()),
            pool: raw.pool.map_or_else(
                || crate::store::DEFAULT_POOL.to_owned(),
                Spanned::into_inner,
            ),
            pool_slots: raw.pool_slots.map_or(1, |s| s.into_inner().max(1)),
            priority_weight: raw.priority_weight.unwrap_or(1),
            config,
        },
    }
}
