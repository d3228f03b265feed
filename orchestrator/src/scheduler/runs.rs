//! Manual runs (CLI, REST): conf parsing and the new run.

use crate::{
    dag::Dag,
    store::{NewRun, RunType},
};

/// Parses a trigger's conf: a JSON object (keys override the DAG's params).
pub fn parse_conf(
    text: Option<&str>,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(serde_json::Map::new());
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "conf must be a JSON object such as {{\"results\": 10}}, got {}",
            json_kind(&other)
        )),
        Err(e) => Err(format!(
            "conf is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        )),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The number of the version of `dag`'s file as loaded (stored if it is new).
pub async fn dag_version(
    store: &crate::store::Store,
    dag: &Dag,
) -> Result<i64, crate::store::StoreError> {
    store
        .dag_version(&dag.id, &dag.source_hash, &dag.source)
        .await
}

/// The DAG a run runs with: the version of its file the run was created with, not whatever
/// the file says now (a task since removed from the file still runs in the runs that have
/// it). `current` when it is that version, when the run predates versions, or when the
/// stored text no longer parses (said in the log).
pub async fn dag_of_run(
    store: &crate::store::Store,
    current: std::sync::Arc<Dag>,
    run: &crate::store::DagRunRow,
) -> std::sync::Arc<Dag> {
    let Some(number) = run.dag_version_number else {
        return current;
    };
    let key = (run.dag_id.clone(), number);
    if let Some(dag) = parsed_versions().get(&key) {
        return dag.clone();
    }
    let stored = match store.dag_version_source(&run.dag_id, number).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return current,
        Err(error) => {
            tracing::warn!(dag_id = %run.dag_id, version = number, %error, "Cannot read the run's DAG version; using the file as it is now");
            return current;
        }
    };
    let (row, text) = stored;
    if row.source_hash == current.source_hash {
        return current;
    }
    match crate::dag::parse_dag_file(&current.file, &text) {
        Ok(dag) => {
            let dag = std::sync::Arc::new(dag);
            let mut cache = parsed_versions();
            if cache.len() >= PARSED_VERSIONS {
                cache.clear();
            }
            cache.insert(key, dag.clone());
            dag
        }
        Err(error) => {
            tracing::warn!(dag_id = %run.dag_id, version = number, %error, "The run's DAG version no longer parses; using the file as it is now");
            current
        }
    }
}

/// Older versions parsed for the runs that use them, kept at most.
const PARSED_VERSIONS: usize = 64;

type ParsedVersions = std::collections::HashMap<(String, i64), std::sync::Arc<Dag>>;

fn parsed_versions() -> std::sync::MutexGuard<'static, ParsedVersions> {
    static PARSED: std::sync::LazyLock<std::sync::Mutex<ParsedVersions>> =
        std::sync::LazyLock::new(Default::default);
    PARSED.lock().unwrap_or_else(|e| e.into_inner())
}

/// A manual run of `dag` now; `owner` claims it at once (foreground `run`).
pub fn new_manual_run(
    dag: &Dag,
    conf: serde_json::Map<String, serde_json::Value>,
    owner: Option<String>,
) -> NewRun {
    let logical_date = NewRun::logical_date_now();
    NewRun {
        dag_id: dag.id.clone(),
        run_id: NewRun::run_id_for(RunType::Manual, logical_date),
        logical_date,
        run_type: RunType::Manual,
        conf,
        owner,
        backfill_id: None,
        dag_version_number: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_run_id_names_its_logical_date_to_the_microsecond() {
        let dag = crate::dag::parse_dag_file(
            std::path::Path::new("d.toml"),
            "[dag]\nid = \"d\"\n[[task]]\nid = \"t\"\noperator = \"noop\"\n",
        )
        .unwrap();
        let run = new_manual_run(&dag, serde_json::Map::new(), None);
        let date = run.run_id.strip_prefix("manual__").unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(date).unwrap();
        assert_eq!(parsed, run.logical_date, "{}", run.run_id);
        let fraction = date
            .split_once('.')
            .map_or("", |(_, f)| f.trim_end_matches('Z'));
        assert!(fraction.len() <= 6, "{}", run.run_id);
    }

    #[test]
    fn conf_must_be_an_object() {
        assert!(parse_conf(None).unwrap().is_empty());
        assert_eq!(parse_conf(Some(r#"{"results": 3}"#)).unwrap()["results"], 3);
        let err = parse_conf(Some("[1]")).unwrap_err();
        assert!(
            err.contains("must be a JSON object") && err.contains("an array"),
            "{err}"
        );
        let err = parse_conf(Some("{results: 3}")).unwrap_err();
        assert!(
            err.contains("not valid JSON") && err.contains("column 2"),
            "{err}"
        );
    }
}
