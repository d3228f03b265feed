//! Templating of task configs: every string value is a minijinja template rendered at the
//! start of each try. Undefined names are errors, so a typo fails the task with its name.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use tasks::ConfigError;

/// What a template can read.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateContext {
    /// The DAG's params with the run's conf merged over them.
    pub params: serde_json::Map<String, serde_json::Value>,
    pub run_id: String,
    /// The logical date, RFC 3339 in UTC.
    pub logical_date: String,
    /// The logical date's day, `YYYY-MM-DD` in UTC.
    pub ds: String,
    /// The logical date without separators, `YYYYMMDD`.
    pub ds_nodash: String,
    /// `{ id, tags }` of the DAG.
    pub dag: serde_json::Value,
    /// `{ id, try_number }` of the task.
    pub task: serde_json::Value,
    /// The orchestrator's environment variables.
    pub env: std::collections::BTreeMap<String, String>,
    /// The result summary of each finished upstream task, by task id.
    pub upstream: serde_json::Map<String, serde_json::Value>,
}

impl TemplateContext {
    pub fn new(
        run_id: &str,
        logical_date: DateTime<Utc>,
        params: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self {
            params,
            run_id: run_id.to_owned(),
            logical_date: logical_date.to_rfc3339(),
            ds: logical_date.format("%Y-%m-%d").to_string(),
            ds_nodash: logical_date.format("%Y%m%d").to_string(),
            dag: serde_json::Value::Null,
            task: serde_json::Value::Null,
            env: std::env::vars().collect(),
            upstream: serde_json::Map::new(),
        }
    }
}

impl TemplateContext {
    /// The context of the stored run `run` of `dag`.
    pub fn for_dag_run(dag: &super::Dag, run: &crate::store::DagRunRow) -> Self {
        Self::for_run(dag, &run.run_id, run.logical_date, &run.conf)
    }

    /// The context of a run of `dag`: its params with `conf` merged over them, and `dag`.
    pub fn for_run(
        dag: &super::Dag,
        run_id: &str,
        logical_date: DateTime<Utc>,
        conf: &serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let mut context = Self::new(run_id, logical_date, super::merge_params(&dag.params, conf));
        let folder = dag.file.parent().map(|f| f.display().to_string());
        context.dag = serde_json::json!({ "id": dag.id, "tags": dag.tags, "folder": folder });
        context
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env
}

/// Whether any string in `config` is a template (`{{ }}` or `{% %}`).
pub fn has_templates(config: &serde_json::Value) -> bool {
    use serde_json::Value;
    match config {
        Value::String(text) => is_template(text),
        Value::Array(items) => items.iter().any(has_templates),
        Value::Object(map) => map.values().any(has_templates),
        _ => false,
    }
}

fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Renders every string in `config` (keys stay as they are). The error names the field. A
/// config without templates is returned as it is, without building the environment or
/// converting the context (which holds the whole process environment).
pub fn render_config(
    config: &serde_json::Value,
    ctx: &TemplateContext,
) -> Result<serde_json::Value, ConfigError> {
    if !has_templates(config) {
        return Ok(config.clone());
    }
    let env = environment();
    let ctx = minijinja::Value::from_serialize(ctx);
    render_value(&env, config, &ctx, "")
}

fn render_value(
    env: &Environment<'_>,
    value: &serde_json::Value,
    ctx: &minijinja::Value,
    path: &str,
) -> Result<serde_json::Value, ConfigError> {
    use serde_json::Value;
    Ok(match value {
        Value::String(text) if is_template(text) => {
            let rendered = env.render_str(text, ctx).map_err(|e| {
                ConfigError::new(
                    path.trim_start_matches('.'),
                    format!("template error: {}", template_message(&e)),
                )
            })?;
            Value::String(rendered)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_value(env, item, ctx, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        render_value(env, v, ctx, &format!("{path}.{k}"))?,
                    ))
                })
                .collect::<Result<_, ConfigError>>()?,
        ),
        other => other.clone(),
    })
}

/// The task ids a config's templates read as `upstream.<id>` (minijinja's own list of the
/// names a template looks up; a template that does not compile reads nothing here and fails
/// when rendered).
pub fn upstream_reads(config: &serde_json::Value) -> BTreeSet<String> {
    let env = environment();
    let mut read = BTreeSet::new();
    let mut pending = vec![config];
    while let Some(value) = pending.pop() {
        match value {
            serde_json::Value::String(text) if text.contains("upstream") => {
                let Ok(template) = env.template_from_str(text) else {
                    continue;
                };
                read.extend(
                    template
                        .undeclared_variables(true)
                        .iter()
                        .filter_map(|name| {
                            let id = name.strip_prefix("upstream.")?;
                            Some(id.split('.').next().unwrap_or(id).to_owned())
                        }),
                );
            }
            serde_json::Value::Array(items) => pending.extend(items),
            serde_json::Value::Object(map) => pending.extend(map.values()),
            _ => {}
        }
    }
    read
}

fn template_message(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{} ({detail})", error.kind()),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dag_folder_is_the_folder_of_the_dag_file() {
        let dag = crate::dag::parse_dag_file(
            std::path::Path::new("dags/words.toml"),
            "[dag]\nid = \"words\"\n[[task]]\nid = \"a\"\noperator = \"noop\"\n",
        )
        .unwrap();
        let ctx = TemplateContext::for_run(&dag, "r", Utc::now(), &serde_json::Map::new());
        let rendered =
            render_config(&json!({"path": "{{ dag.folder }}/data/words.txt"}), &ctx).unwrap();
        assert_eq!(rendered["path"], "dags/data/words.txt");
    }

    fn context() -> TemplateContext {
        let logical = DateTime::parse_from_rfc3339("2026-03-04T05:06:07Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut params = serde_json::Map::new();
        params.insert("api_url".into(), json!("https://randomuser.me/api/"));
        params.insert("results".into(), json!(500));
        let mut ctx = TemplateContext::new("manual__1", logical, params);
        ctx.upstream.insert("fetch".into(), json!({"records": 42}));
        ctx.dag = json!({"id": "d", "tags": ["x"]});
        ctx.task = json!({"id": "t", "try_number": 2});
        ctx
    }

    #[test]
    fn renders_params_dates_upstream_and_nested_values() {
        let config = json!({
            "url": "{{ params.api_url }}?results={{ params.results }}",
            "headers": {"X-Day": "{{ ds }}", "X-Run": "{{ run_id }}/{{ task.try_number }}"},
            "command": ["echo {{ upstream.fetch.records }}", 3],
            "plain": "no templates here"
        });
        let rendered = render_config(&config, &context()).unwrap();
        assert_eq!(rendered["url"], "https://randomuser.me/api/?results=500");
        assert_eq!(rendered["headers"]["X-Day"], "2026-03-04");
        assert_eq!(rendered["headers"]["X-Run"], "manual__1/2");
        assert_eq!(rendered["command"], json!(["echo 42", 3]));
        assert_eq!(rendered["plain"], "no templates here");
    }

    #[test]
    fn env_is_readable() {
        let mut ctx = context();
        ctx.env
            .insert("UPDRAFT_TEMPLATE_TEST".into(), "hello".into());
        let rendered =
            render_config(&json!({"v": "{{ env.UPDRAFT_TEMPLATE_TEST }}"}), &ctx).unwrap();
        assert_eq!(rendered["v"], "hello");
    }

    #[test]
    fn undefined_names_fail_and_name_the_field() {
        let err = render_config(
            &json!({"headers": {"a": "{{ params.missing }}"}}),
            &context(),
        )
        .unwrap_err();
        assert_eq!(err.field, "headers.a");
        assert!(err.message.starts_with("template error: "), "{err}");
        assert!(err.message.contains("undefined"), "{err}");
    }

    #[test]
    fn syntax_errors_fail_and_name_the_field() {
        let err = render_config(&json!({"url": "{{ params.api_url "}), &context()).unwrap_err();
        assert_eq!(err.field, "url");
        assert!(err.message.starts_with("template error: "), "{err}");
    }
}
