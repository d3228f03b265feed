//! `orchestrator dags validate` on the shipped example DAGs, and on files with every kind of
//! config error an operator checks: each is reported with its file, line, column and field.

use std::{path::Path, process::Command};

fn validate(folder: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["dags", "validate", "--dags-folder"])
        .arg(folder)
        .env("UPDRAFT_DB", "sqlite::memory:")
        .output()
        .expect("run orchestrator dags validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_example_dag_is_valid() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dags");
    let files = std::fs::read_dir(&folder)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert!(
        files >= 4,
        "only {files} example DAGs in {}",
        folder.display()
    );
    let (ok, text) = validate(&folder);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("{files} DAGs loaded")), "{text}");
    assert!(text.contains("No problems found"), "{text}");
}

const STREAM_HEAD: &str = r#"[dag]
id = "d"

[[task]]
id = "s"
operator = "stream"
group_id = "g"
"#;

/// (file name, task part of the file, expected `line:column: field: message` start).
fn broken_files() -> Vec<(&'static str, String, &'static str)> {
    let stream = |rest: &str| format!("{STREAM_HEAD}{rest}");
    vec![
        (
            "slide_above_size",
            stream(
                "topics = [\"t\"]\n[task.window]\nsize = \"1m\"\nslide = \"5m\"\naggregates = { n = \"count\" }\n[task.sink]\nkind = \"kafka\"\ntopic = \"out\"\n",
            ),
            "11:9: task \"s\".window.slide: must be between 1ms and window.size (1m)",
        ),
        (
            "zero_window",
            stream(
                "topics = [\"t\"]\n[task.window]\nsize = \"0s\"\naggregates = { n = \"count\" }\n[task.sink]\nkind = \"kafka\"\ntopic = \"out\"\n",
            ),
            "10:8: task \"s\".window.size: must be at least 1ms",
        ),
        (
            "no_aggregates",
            stream(
                "topics = [\"t\"]\n[task.window]\nsize = \"1m\"\naggregates = {}\n[task.sink]\nkind = \"kafka\"\ntopic = \"out\"\n",
            ),
            "11:14: task \"s\".window.aggregates: name at least one aggregate",
        ),
        (
            "reserved_name",
            stream(
                "topics = [\"t\"]\n[task.window]\nsize = \"1m\"\ngroup_by = { closed = \".x\" }\naggregates = { n = \"count\" }\n[task.sink]\nkind = \"kafka\"\ntopic = \"out\"\n",
            ),
            "11:23: task \"s\".window.group_by.closed: the name is reserved",
        ),
        (
            "bad_topic_pattern",
            stream(
                "topics = [\"users\", \"^users.(\"]\n[task.sink]\nkind = \"kafka\"\ntopic = \"out\"\n",
            ),
            "8:20: task \"s\".topics[1]: bad regular expression \"^users.(\": unclosed group",
        ),
        (
            "no_topics",
            stream("topics = []\n[task.sink]\nkind = \"kafka\"\ntopic = \"out\"\n"),
            "8:10: task \"s\".topics: name at least one topic",
        ),
        (
            "zero_flush",
            stream(
                "topics = [\"t\"]\nflush_interval = \"0s\"\n[task.sink]\nkind = \"kafka\"\ntopic = \"out\"\n",
            ),
            "9:18: task \"s\".flush_interval: must be more than 0",
        ),
        (
            "mongodb_without_key",
            stream(
                "topics = [\"t\"]\n[task.sink]\nkind = \"mongodb\"\ndatabase = \"db\"\ncollection = \"c\"\n",
            ),
            "9:1: task \"s\".sink.key: a MongoDB sink without windows upserts records by a key",
        ),
        (
            "sql_table_name",
            stream(
                "topics = [\"t\"]\n[task.window]\nsize = \"1m\"\naggregates = { n = \"count\" }\n[task.sink]\nkind = \"postgres\"\ntable = \"word-counts\"\n",
            ),
            "14:9: task \"s\".sink.table: \"word-counts\" is not a SQL name",
        ),
        (
            "sql_table_in_a_schema",
            stream(
                "topics = [\"t\"]\n[task.window]\nsize = \"1m\"\naggregates = { n = \"count\" }\n[task.sink]\nkind = \"postgres\"\ntable = \"analytics.word-counts\"\n",
            ),
            "14:9: task \"s\".sink.table: \"word-counts\" is not a SQL name",
        ),
        (
            "sql_table_three_parts",
            stream(
                "topics = [\"t\"]\n[task.window]\nsize = \"1m\"\naggregates = { n = \"count\" }\n[task.sink]\nkind = \"mysql\"\ntable = \"a.b.c\"\n",
            ),
            "14:9: task \"s\".sink.table: \"a.b.c\" is not a table name: use name or schema.name",
        ),
        (
            "sql_reserved_column",
            stream(
                "topics = [\"t\"]\n[task.window]\nsize = \"1m\"\ngroup_by = { id = \".id\" }\naggregates = { n = \"count\" }\n[task.sink]\nkind = \"mysql\"\ntable = \"t\"\n",
            ),
            "11:19: task \"s\".window.group_by.id: a SQL sink's table uses this column itself",
        ),
        (
            "sql_without_key",
            stream("topics = [\"t\"]\n[task.sink]\nkind = \"mysql\"\ntable = \"t\"\n"),
            "9:1: task \"s\".sink.key: a SQL sink without windows upserts records by a key",
        ),
        (
            "http_bad_url",
            "[dag]\nid = \"d\"\n\n[[task]]\nid = \"h\"\noperator = \"http\"\nurl = \"example.com/x\"\n"
                .into(),
            "7:7: task \"h\".url: bad URL \"example.com/x\"",
        ),
        (
            "http_bad_method",
            "[dag]\nid = \"d\"\n\n[[task]]\nid = \"h\"\noperator = \"http\"\nurl = \"http://h/\"\nmethod = \"GE T\"\n"
                .into(),
            "8:10: task \"h\".method: unknown HTTP method \"GE T\"",
        ),
        (
            "http_to_kafka_partitions",
            "[dag]\nid = \"d\"\n\n[[task]]\nid = \"p\"\noperator = \"http_to_kafka\"\nurl = \"http://h/\"\ntopic = \"t\"\npartitions = 0\n"
                .into(),
            "9:14: task \"p\".partitions: must be at least 1, got 0",
        ),
        (
            "generate_weights",
            "[dag]\nid = \"d\"\n\n[[task]]\nid = \"g\"\noperator = \"generate_to_kafka\"\nrecords = 10\ntopic = \"t\"\n[task.fields]\nstatus = { pick = [\"up\", \"down\"], weights = [1] }\n"
                .into(),
            "10:10: task \"g\".fields.status: 1 weights for 2 values",
        ),
        (
            "file_batch",
            "[dag]\nid = \"d\"\n\n[[task]]\nid = \"f\"\noperator = \"file_to_kafka\"\npath = \"x.txt\"\ntopic = \"t\"\nbatch = 0\n"
                .into(),
            "9:9: task \"f\".batch: must be from 1 to 1000000, got 0",
        ),
        (
            "http_to_kafka_header",
            "[dag]\nid = \"d\"\n\n[[task]]\nid = \"p\"\noperator = \"http_to_kafka\"\nurl = \"http://h/\"\ntopic = \"t\"\nheaders = { \"x y\" = \"1\" }\n"
                .into(),
            "9:11: task \"p\".headers: bad header name \"x y\"",
        ),
    ]
}

#[test]
fn every_config_error_is_reported_with_line_column_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = broken_files();
    for (name, text, _) in &cases {
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    }
    let (ok, text) = validate(dir.path());
    assert!(!ok, "validate succeeded on broken files:\n{text}");
    for (name, _, expected) in &cases {
        let wanted = format!("{name}.toml:{expected}");
        assert!(
            text.lines().any(|line| line.contains(&wanted)),
            "no line with {wanted:?} in:\n{text}"
        );
    }
}

#[test]
fn templated_fields_are_checked_when_rendered_not_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("templated.toml"),
        "[dag]\nid = \"d\"\nparams = { url = \"http://h/\" }\n\n[[task]]\nid = \"h\"\noperator = \"http\"\nurl = \"{{ params.url }}\"\n",
    )
    .unwrap();
    let (ok, text) = validate(dir.path());
    assert!(ok, "{text}");
}
