use std::path::Path;

use super::*;

const GOOD: &str = r#"
[dag]
id = "random_users"
schedule = "*/1 * * * *"
start_date = "2026-01-01T00:00:00Z"
timezone = "Europe/Berlin"
catchup = true
max_active_runs = 2
tags = ["demo"]
[dag.params]
api_url = "https://randomuser.me/api/"
results = 500

[[task]]
id = "report"
operator = "shell"
upstream = ["fetch"]
command = "echo {{ upstream.fetch.status }}"
trigger_rule = "all_done"

[[task]]
id = "fetch"
operator = "http"
url = "{{ params.api_url }}?results={{ params.results }}"
retries = 3
retry_delay = "5s"
retry_exponential_backoff = true
max_retry_delay = "1m"
timeout = "30s"
"#;

fn parse(source: &str) -> Result<Dag, DagFileError> {
    parse_dag_file(Path::new("dags/test.toml"), source)
}

fn problems(source: &str) -> Vec<String> {
    let error = parse(source).expect_err("the file should not parse");
    error.to_string().lines().map(str::to_owned).collect()
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

#[test]
fn a_good_file_parses_with_every_field() {
    let dag = parse(GOOD).unwrap();
    assert_eq!(dag.id, "random_users");
    assert!(dag.catchup);
    assert_eq!(dag.max_active_runs, 2);
    assert_eq!(dag.timezone.name(), "Europe/Berlin");
    assert_eq!(dag.tags, vec!["demo"]);
    assert_eq!(dag.params["results"], 500);
    let order: Vec<&str> = dag.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(order, vec!["fetch", "report"], "upstreams come first");
    let fetch = dag.task("fetch").unwrap();
    assert_eq!(fetch.retry.retries, 3);
    assert_eq!(fetch.retry.delay.as_secs(), 5);
    assert!(fetch.retry.exponential_backoff);
    assert_eq!(fetch.retry.max_delay.unwrap().as_secs(), 60);
    assert_eq!(fetch.timeout.unwrap().as_secs(), 30);
    assert_eq!(
        fetch.config["url"],
        "{{ params.api_url }}?results={{ params.results }}"
    );
    assert_eq!(
        dag.task("report").unwrap().trigger_rule,
        TriggerRule::AllDone
    );
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let p = problems("[dag]\nid = \"x\"\nschedule = \n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("dags/test.toml:3:"), "{p:?}");
}

#[test]
fn unknown_keys_are_named_with_their_position() {
    let p = problems(
        "[dag]\nid = \"x\"\nschedul = \"@daily\"\n[[task]]\nid = \"a\"\noperator = \"noop\"\nbogus = 1\n",
    );
    assert!(
        has(&p, "dags/test.toml:3:1: dag: unknown field `schedul`"),
        "{p:?}"
    );
    assert!(
        has(&p, "dags/test.toml:7:1: task \"a\": unknown field `bogus`"),
        "{p:?}"
    );
}

#[test]
fn each_task_gets_only_the_keys_of_its_own_table() {
    // One split of common and operator keys is filled again for every task of a file.
    let dag = parse(
        "[dag]\nid = \"x\"\n[[task]]\nid = \"a\"\noperator = \"shell\"\ncommand = \"true\"\nretries = 2\n[[task]]\nid = \"b\"\noperator = \"noop\"\n",
    )
    .unwrap();
    let (a, b) = (dag.task("a").unwrap(), dag.task("b").unwrap());
    assert_eq!(a.config["command"], "true");
    assert_eq!(a.retry.retries, 2);
    assert_eq!(b.config, serde_json::json!({"operator": "noop"}));
    assert_eq!(b.retry.retries, RetryPolicy::default().retries);
    let p = problems(
        "[dag]\nid = \"x\"\n[[task]]\nid = \"a\"\noperator = \"noop\"\n[[task]]\nid = \"b\"\noperator = \"noop\"\nbogus = 1\n",
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(has(&p, "task \"b\": unknown field `bogus`"), "{p:?}");
}

#[test]
fn unknown_operator_is_reported() {
    let p = problems("[dag]\nid = \"x\"\n[[task]]\nid = \"a\"\noperator = \"teleport\"\n");
    assert!(
        has(
            &p,
            "5:12: task \"a\".operator: unknown operator \"teleport\""
        ),
        "{p:?}"
    );
}

#[test]
fn missing_and_duplicate_task_ids_are_reported() {
    let p = problems(
        "[dag]\nid = \"x\"\n[[task]]\noperator = \"noop\"\n[[task]]\nid = \"a\"\noperator = \"noop\"\n[[task]]\nid = \"a\"\noperator = \"noop\"\n",
    );
    assert!(has(&p, "missing field `id`"), "{p:?}");
    assert!(has(&p, "9:6: task \"a\".id: duplicate task id"), "{p:?}");
}

#[test]
fn unknown_and_cyclic_upstreams_are_reported() {
    let p = problems(
        "[dag]\nid = \"x\"\n[[task]]\nid = \"a\"\noperator = \"noop\"\nupstream = [\"b\"]\n[[task]]\nid = \"b\"\noperator = \"noop\"\nupstream = [\"a\"]\n[[task]]\nid = \"c\"\noperator = \"noop\"\nupstream = [\"ghost\"]\n",
    );
    assert!(has(&p, "cycle among tasks a, b"), "{p:?}");
    assert!(
        has(
            &p,
            "14:13: task \"c\".upstream: unknown upstream task \"ghost\""
        ),
        "{p:?}"
    );
}

#[test]
fn bad_cron_duration_and_timezone_are_reported_together() {
    let p = problems(
        "[dag]\nid = \"x\"\nschedule = \"61 * * * *\"\ntimezone = \"Mars/Olympus\"\n[[task]]\nid = \"a\"\noperator = \"sleep\"\nduration = \"soon\"\n[[task]]\nid = \"b\"\noperator = \"noop\"\nretry_delay = \"often\"\n",
    );
    assert!(has(&p, "3:12: dag.schedule: bad cron expression"), "{p:?}");
    assert!(
        has(&p, "4:12: dag.timezone: unknown timezone \"Mars/Olympus\""),
        "{p:?}"
    );
    assert!(
        has(&p, "8:12: task \"a\".duration: bad duration \"soon\""),
        "{p:?}"
    );
    assert!(has(&p, "12:15: task[1]: bad duration \"often\""), "{p:?}");
    assert_eq!(p.len(), 4, "{p:?}");
}

#[test]
fn bad_ids_and_dates_are_reported() {
    let p = problems(
        "[dag]\nid = \"../etc\"\nstart_date = \"yesterday\"\n[[task]]\nid = \"a b\"\noperator = \"noop\"\n",
    );
    assert!(has(&p, "dag.id: invalid id \"../etc\""), "{p:?}");
    assert!(has(&p, "dag.start_date: bad date \"yesterday\""), "{p:?}");
    assert!(has(&p, "task \"a b\".id: invalid id"), "{p:?}");
}

#[test]
fn missing_tables_are_reported() {
    let p = problems("title = 1\n");
    assert!(has(&p, "title: unknown top-level key"), "{p:?}");
    assert!(has(&p, "missing `[dag]` table"), "{p:?}");
    assert!(has(&p, "no `[[task]]` table"), "{p:?}");
}

#[test]
fn native_toml_dates_and_plain_dates_are_accepted() {
    let dag = parse("[dag]\nid = \"x\"\nstart_date = 2026-01-01T00:00:00Z\nend_date = \"2026-02-01\"\ntimezone = \"Europe/Berlin\"\n[[task]]\nid = \"a\"\noperator = \"noop\"\n").unwrap();
    assert_eq!(
        dag.start_date.unwrap().to_rfc3339(),
        "2026-01-01T00:00:00+00:00"
    );
    assert_eq!(
        dag.end_date.unwrap().to_rfc3339(),
        "2026-01-31T23:00:00+00:00",
        "midnight in Berlin"
    );
}

#[test]
fn a_bad_file_does_not_stop_the_good_ones() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("good.toml"), GOOD).unwrap();
    std::fs::write(folder.path().join("bad.toml"), "[dag]\nid = 3\n").unwrap();
    std::fs::write(folder.path().join("same_id.toml"), GOOD).unwrap();
    let bag = DagBag::load(folder.path()).unwrap();
    assert_eq!(bag.dags.keys().collect::<Vec<_>>(), vec!["random_users"]);
    let errors: Vec<String> = bag.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        has(
            &errors,
            "bad.toml:2:6: dag: invalid type: integer `3`, expected a string"
        ),
        "{errors:?}"
    );
    assert!(
        has(
            &errors,
            "same_id.toml:dag id \"random_users\" is already defined"
        ),
        "{errors:?}"
    );
}

#[test]
fn templated_values_are_left_out_of_the_load_check_at_any_depth() {
    let stream = |window: &str| {
        format!(
            "[dag]\nid = \"d\"\nschedule = \"@continuous\"\nparams = {{ size = \"1m\" }}\n[[task]]\nid = \"s\"\noperator = \"stream\"\ntopics = [\"t\"]\ngroup_id = \"g\"\n[task.window]\n{window}\naggregates = {{ n = \"count\" }}\n[task.sink]\nkind = \"kafka\"\ntopic = \"out\"\n"
        )
    };
    // Templated: a nested required field, and a nested field a rule checks.
    parse(&stream("size = \"{{ params.size }}\"")).unwrap();
    parse(&stream("size = \"1m\"\nslide = \"{{ params.slide }}\"")).unwrap();
    // As written, the same fields are checked.
    let bad = problems(&stream("size = \"soon\""));
    assert!(
        has(&bad, "11:8: task \"s\".window.size: bad duration \"soon\""),
        "{bad:?}"
    );
    let bad = problems(&stream("size = \"1m\"\nslide = \"2m\""));
    assert!(has(&bad, "window.slide"), "{bad:?}");
}

#[test]
fn a_templated_path_overlaps_the_fields_in_and_around_it() {
    assert!(parse::overlaps("window.slide", "window.slide"));
    assert!(parse::overlaps("window", "window.slide"));
    assert!(parse::overlaps("window.slide", "window"));
    assert!(parse::overlaps("topics", "topics[1]"));
    assert!(!parse::overlaps("window.size", "window.slide"));
    assert!(!parse::overlaps("key", "keys"));
}

const SPLIT_STREAM: &str = r#"
[dag]
id = "s"
queue = "etl"
[[task]]
id = "stats"
operator = "stream"
topics = ["t"]
group_id = "g"
parallelism = PARALLELISM
[task.window]
size = "1m"
group_by = { country = ".country" }
aggregates = { users = "count" }
[task.sink]
SINK
"#;

fn split_stream(parallelism: &str, sink: &str) -> String {
    let sink = match sink {
        "mongodb" => "kind = \"mongodb\"\ndatabase = \"d\"\ncollection = \"c\"",
        "kafka" => "kind = \"kafka\"\ntopic = \"out\"",
        _ => "kind = \"postgres\"\ntable = \"stats\"",
    };
    SPLIT_STREAM
        .replace("PARALLELISM", parallelism)
        .replace("SINK", sink)
}

#[test]
fn a_split_stream_has_an_instance_per_share_on_its_queue() {
    let dag = parse(&split_stream("3", "mongodb")).unwrap();
    let stats = dag.task("stats").unwrap();
    assert_eq!(stats.instance_ids(), ["stats~0", "stats~1", "stats~2"]);
    assert_eq!(
        stats.share_of("stats~2"),
        tasks::Share { index: 2, count: 3 }
    );
    assert_eq!(
        dag.task("stats~1").unwrap().id,
        "stats",
        "an instance id finds its task"
    );
    let instances = dag.new_task_instances();
    assert_eq!(instances.len(), 3);
    assert!(
        instances.iter().all(|ti| ti.queue == "etl"),
        "the DAG's queue"
    );
}

#[test]
fn parallelism_is_checked_where_it_is_written() {
    let found = problems(&split_stream("0", "mongodb"));
    assert!(
        has(
            &found,
            "task \"stats\".parallelism: parallelism must be from 1 to 256, got 0"
        ),
        "{found:?}"
    );
    let found = problems(&split_stream("2", "kafka"));
    assert!(
        has(
            &found,
            "parallelism > 1 needs a mongodb, postgres or mysql sink"
        ),
        "{found:?}"
    );
    assert!(
        parse(&split_stream("2", "postgres")).is_ok(),
        "SQL window tables merge too"
    );
    let source = split_stream("2", "mongodb")
        + "[[task]]\nid = \"after\"\noperator = \"noop\"\nupstream = [\"stats\"]\n";
    let found = problems(&source);
    assert!(
        has(
            &found,
            "\"stats\" is a stream split into 2 instances: no task can follow it"
        ),
        "{found:?}"
    );
    let found =
        problems("[dag]\nid = \"d\"\n[[task]]\nid = \"t\"\noperator = \"noop\"\nparallelism = 2\n");
    assert!(
        has(&found, "only stream tasks split into instances"),
        "{found:?}"
    );
    assert!(
        parse(&split_stream("1", "postgres")).is_ok(),
        "one instance needs nothing"
    );
}

#[test]
fn a_template_may_read_only_its_upstreams_results() {
    let source = |upstream: &str| {
        format!(
            r#"
[dag]
id = "d"
[[task]]
id = "a"
operator = "noop"
[[task]]
id = "b"
operator = "noop"
upstream = ["a"]
[[task]]
id = "c"
operator = "shell"
upstream = [{upstream}]
command = "echo {{{{ upstream.a.output }}}} {{% if upstream.b.x %}}y{{% endif %}} upstream.z"
"#
        )
    };
    let p = problems(&source("\"b\""));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        has(&p, "task \"c\".upstream") && has(&p, "reads upstream.a") && has(&p, "list it"),
        "{p:?}"
    );
    // Both read tasks listed: fine (`upstream.z` outside a template block is text).
    assert!(parse(&source("\"a\", \"b\"")).is_ok());
}

#[test]
fn the_dags_env_passthrough_reaches_every_shell_task() {
    let dag = parse(
        r#"
[dag]
id = "d"
env_passthrough = ["AWS_PROFILE"]
[[task]]
id = "own"
operator = "shell"
command = "env"
env_passthrough = ["KUBECONFIG", "AWS_PROFILE"]
[[task]]
id = "plain"
operator = "shell"
command = "env"
[[task]]
id = "wait"
operator = "noop"
"#,
    )
    .unwrap();
    let names = |id: &str| dag.task(id).unwrap().config.get("env_passthrough").cloned();
    assert_eq!(
        names("own"),
        Some(serde_json::json!(["KUBECONFIG", "AWS_PROFILE"]))
    );
    assert_eq!(names("plain"), Some(serde_json::json!(["AWS_PROFILE"])));
    assert_eq!(names("wait"), None);
}

#[test]
fn no_updraft_variable_can_be_passed_through() {
    let dag_level = problems(
        "[dag]\nid = \"d\"\nenv_passthrough = [\"UPDRAFT_DB\"]\n[[task]]\nid = \"t\"\noperator = \"noop\"\n",
    );
    assert!(
        dag_level
            .iter()
            .any(|p| p.contains("dag.env_passthrough") && p.contains("UPDRAFT_DB")),
        "{dag_level:?}"
    );
    let task_level = problems(
        "[dag]\nid = \"d\"\n[[task]]\nid = \"t\"\noperator = \"shell\"\ncommand = \"env\"\nenv_passthrough = [\"UPDRAFT_ADMIN_PASSWORD\"]\n",
    );
    assert!(
        task_level
            .iter()
            .any(|p| p.contains("env_passthrough") && p.contains("UPDRAFT_ADMIN_PASSWORD")),
        "{task_level:?}"
    );
}
