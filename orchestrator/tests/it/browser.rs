//! The web UI in a real browser: headless Chromium driven over WebDriver (chromedriver) against
//! `orchestrator serve` as a process. Screenshots go to `target/browser-screenshots/`.

use crate::support;

use std::{
    collections::BTreeMap,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use support::{
    free_port,
    serve::{Serve, cli, cli_output},
    wait_port,
};

const PASSWORD: &str = "browser-test-password";

/// Kills chromedriver and the browsers it started when dropped: chromedriver leads its own
/// process group, and a browser whose session was not closed outlived a chromedriver killed
/// alone (each test left a dozen Chromium processes behind, busy ~5% of a core each).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// ChromeDriver's `POST /session/{id}/se/log` for the browser console (not in W3C WebDriver).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.into()),
        )
    }
}

fn chromedriver() -> PathBuf {
    let path =
        std::env::var("UPDRAFT_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let path = PathBuf::from(path);
    assert!(
        path.exists() && Path::new("/usr/bin/chromium").exists(),
        "no {} or /usr/bin/chromium: install Debian's chromium and chromium-driver (scripts/test does)",
        path.display()
    );
    path
}

const HELLO: &str = r#"
[dag]
id = "hello"
description = "Talks for a few seconds, then reports"
tags = ["browser"]
[dag.params]
name = "world"
lines = 20

[[task]]
id = "talk"
operator = "shell"
command = 'for i in $(seq 1 "$LINES"); do echo "line $i for $NAME"; sleep 0.15; done; until [ -e "TALK_GATE" ]; do sleep 0.05; done'
env = { LINES = "{{ params.lines }}", NAME = "{{ params.name }}" }

[[task]]
id = "report"
operator = "shell"
upstream = ["talk"]
command = "echo done"
"#;

const TICK: &str = r#"
[dag]
id = "tick"
schedule = "* * * * * *"
[[task]]
id = "noop"
operator = "noop"
"#;

struct Ui {
    client: Client,
    base: String,
    shots: PathBuf,
    _serve: Serve,
    _driver: Guard,
    dir: tempfile::TempDir,
}

impl Ui {
    /// `hello`'s `talk` ends only once [`Ui::release_talk`] has run, so a test sees it running
    /// however slow the machine.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("talk.gate");
        let hello = HELLO.replace("TALK_GATE", &gate.display().to_string());
        Self::start_in(
            dir,
            &[("hello.toml", hello), ("tick.toml", TICK.into())],
            &[],
        )
        .await
    }

    /// Lets every run of `hello`'s `talk` end once it has printed its lines.
    fn release_talk(&self) {
        std::fs::write(self.dir.path().join("talk.gate"), "").unwrap();
    }

    /// `serve` over these DAG files (with `env` added) and a browser on it.
    async fn start_with(dags: &[(&str, String)], env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), dags, env).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        dags: &[(&str, String)],
        env: &[(&str, &str)],
    ) -> Self {
        std::fs::create_dir(dir.path().join("dags")).unwrap();
        for (file, source) in dags {
            std::fs::write(dir.path().join("dags").join(file), source).unwrap();
        }
        let mut env = env.to_vec();
        env.push(("UPDRAFT_ADMIN_PASSWORD", PASSWORD));
        let serve = Serve::start(dir.path(), &env);
        let port = serve.port();
        let driver_port = free_port();
        let driver = Guard(
            Command::new(chromedriver())
                .arg(format!("--port={driver_port}"))
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_port(port, "orchestrator serve", Duration::from_secs(30)).await;
        wait_port(driver_port, "chromedriver", Duration::from_secs(30)).await;
        let profile = dir.path().join("chromium-profile");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1400,1000",
                         format!("--user-data-dir={}", profile.display())]
            }),
        );
        // The browser's console, read back by `console_errors`.
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({ "browser": "ALL" }),
        );
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .expect("a WebDriver session in headless Chromium");
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            base: format!("http://127.0.0.1:{port}"),
            shots,
            _serve: serve,
            _driver: driver,
            dir,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// Takes a screenshot, and checks that the page broke no rule of the Content-Security-Policy
    /// (a blocked inline script or handler is only a console message).
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        let refused: Vec<String> = self
            .console_messages()
            .await
            .into_iter()
            .filter(|m| m.contains("Content Security Policy"))
            .collect();
        assert!(refused.is_empty(), "{name}: {refused:#?}");
    }

    /// The console messages since the last call (ChromeDriver's log endpoint).
    async fn console_messages(&self) -> Vec<String> {
        let entries = self.client.issue_cmd(BrowserLog).await.unwrap();
        entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e["message"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Waits (bounded) until `script` returns true.
    async fn until(&self, what: &str, limit: Duration, script: &str) {
        let started = Instant::now();
        loop {
            if self.js(script).await == serde_json::Value::Bool(true) {
                return;
            }
            if started.elapsed() > limit {
                self.shot("timeout").await;
                panic!("timed out after {limit:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks `css`; a live region may replace the element between finding and clicking it,
    /// so a stale element is looked up again (5 times at most).
    async fn click(&self, css: &str) {
        for attempt in 1..=5 {
            let clicked = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.click().await,
                Err(error) => Err(error),
            };
            match clicked {
                Ok(()) => return,
                Err(error)
                    if attempt < 5 && format!("{error:?}").contains("StaleElementReference") =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("clicking {css}: {error}"),
            }
        }
    }

    async fn sign_in(&self) {
        self.sign_in_as("admin", PASSWORD, "#trigger-hello").await;
    }

    /// Signs in and waits for the DAG list showing `css`.
    async fn sign_in_as(&self, username: &str, password: &str, css: &str) {
        self.goto("/login?next=/dags").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("#sign-in").await;
        self.until(
            "the DAG list after signing in",
            Duration::from_secs(10),
            &format!("return location.pathname === '/dags' && !!document.querySelector('{css}')"),
        )
        .await;
    }

    /// Runs `promise` (a JavaScript expression) in the page and returns what it resolves to.
    async fn api(&self, promise: &str) -> serde_json::Value {
        let script = format!("const done = arguments[0]; ({promise}).then(done)");
        self.client.execute_async(&script, vec![]).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_triggers_watches_tails_and_pauses_in_the_browser() {
    let ui = Ui::start().await;
    ui.sign_in().await;
    ui.shot("dags").await;

    // Trigger from the DAG page with a conf; a key that is not a param is refused beside the
    // conf editor, then the run starts.
    ui.goto("/dags/hello").await;
    ui.click("#trigger").await;
    ui.until(
        "the trigger form",
        Duration::from_secs(10),
        "return !!document.querySelector('#trigger-form')",
    )
    .await;
    ui.fill("#conf", "{\"oops\": ").await;
    ui.until(
        "the browser to flag invalid JSON",
        Duration::from_secs(5),
        "return document.querySelector('#conf-error').textContent.includes('invalid JSON')",
    )
    .await;
    ui.shot("trigger-invalid-json").await;
    ui.fill("#conf", "{\"oops\": 1}").await;
    ui.fill("#param-name", "browser").await;
    ui.fill("#param-lines", "30").await;
    ui.click("#trigger-submit").await;
    ui.until(
        "the server's refusal of an unknown key",
        Duration::from_secs(10),
        "return document.querySelector('#conf-error').textContent.includes('not a param')",
    )
    .await;
    ui.shot("trigger-refused").await;
    ui.fill("#conf", "{}").await;
    ui.click("#trigger-submit").await;
    ui.until(
        "the run page",
        Duration::from_secs(10),
        "return location.pathname.startsWith('/dags/hello/runs/manual__')",
    )
    .await;
    let run_path: String = ui
        .js("return location.pathname")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let run_id = run_path.rsplit('/').next().unwrap().to_owned();
    let conf = ui
        .js("return document.querySelector('#run-conf').textContent")
        .await;
    assert!(conf.as_str().unwrap().contains("\"browser\""), "{conf}");

    // The DAG page's grid follows the run live: running, then success, with no reload.
    ui.goto("/dags/hello").await;
    ui.js("window.__notReloaded = true; return true").await;
    let cell = |task: &str| {
        format!("document.querySelector('a.cell[data-task=\"{task}\"][data-run=\"{run_id}\"]')")
    };
    ui.until(
        "the talk cell to show running",
        Duration::from_secs(30),
        &format!(
            "const c = {}; return !!c && c.dataset.state === 'running'",
            cell("talk")
        ),
    )
    .await;
    ui.shot("grid-running").await;
    ui.release_talk();
    ui.until("both cells to turn success", Duration::from_secs(30), &format!("const a = {}, b = {}; return !!a && !!b && a.dataset.state === 'success' && b.dataset.state === 'success'", cell("talk"), cell("report"))).await;
    assert_eq!(
        ui.js("return window.__notReloaded === true").await,
        serde_json::Value::Bool(true),
        "the grid changed without a reload"
    );
    ui.shot("grid-success").await;

    // A running task's log: lines printed after the page opened arrive; a reconnect resumes
    // from the last byte shown, with no duplicate; the end of the log is explicit.
    ui.goto("/dags/hello/trigger").await;
    ui.fill("#param-lines", "40").await;
    ui.click("#trigger-submit").await;
    ui.until("the second run page", Duration::from_secs(10), &format!("return location.pathname.startsWith('/dags/hello/runs/manual__') && location.pathname !== '{run_path}'")).await;
    let second: String = ui
        .js("return location.pathname")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    ui.goto(&format!("{second}/tasks/talk/logs/1")).await;
    let count = "return document.querySelectorAll('#log .line').length";
    ui.until(
        "some lines",
        Duration::from_secs(10),
        "return document.querySelectorAll('#log .line').length >= 2",
    )
    .await;
    let at_open = ui.js(count).await.as_u64().unwrap();
    ui.until(
        "lines printed after the page opened",
        Duration::from_secs(10),
        &format!(
            "return document.querySelectorAll('#log .line').length > {}",
            at_open + 3
        ),
    )
    .await;
    ui.shot("log-live").await;
    ui.js("window.updraftLog.reconnect(); return true").await;
    ui.until(
        "the end of the log",
        Duration::from_secs(30),
        "return !!document.querySelector('#end-of-log')",
    )
    .await;
    ui.shot("log-ended").await;
    let texts = ui.js("return Array.from(document.querySelectorAll('#log .line span')).map(s => s.textContent)").await;
    let texts: Vec<String> = serde_json::from_value(texts).unwrap();
    for i in 1..=40 {
        let wanted = format!("line {i} for world");
        let seen = texts.iter().filter(|t| **t == wanted).count();
        assert_eq!(seen, 1, "{wanted:?} shown {seen} times: {texts:?}");
    }
    let mut unique = texts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), texts.len(), "no line twice: {texts:?}");

    // Pausing from the DAG list stops the scheduler creating runs of `tick` (every second).
    ui.goto("/dags").await;
    let runs_of_tick = "fetch('/api/v1/dags/tick/dagRuns?limit=500').then(r => r.json()).then(b => b.total_entries)";
    let before = ui.api(runs_of_tick).await.as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ticking = ui.api(runs_of_tick).await.as_u64().unwrap();
    assert!(
        ticking > before,
        "tick runs every second while unpaused ({before} -> {ticking})"
    );
    ui.click("#pause-tick").await;
    ui.until(
        "tick to show paused",
        Duration::from_secs(10),
        "return !!document.querySelector('#unpause-tick')",
    )
    .await;
    ui.shot("paused").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let paused_at = ui.api(runs_of_tick).await.as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = ui.api(runs_of_tick).await.as_u64().unwrap();
    assert_eq!(
        later, paused_at,
        "no run of tick is created while it is paused"
    );

    // The admin reads the audit log: the pause above, who and from where.
    ui.goto("/audit").await;
    ui.until(
        "the pause in the audit log",
        Duration::from_secs(10),
        "return !!document.querySelector('#audit tr[data-event=\"pause\"]')",
    )
    .await;
    ui.shot("audit").await;

    // A viewer sees the same pages without their buttons.
    cli_output(
        cli(ui.dir.path())
            .env("UPDRAFT_PASSWORD", "a viewer's password")
            .args(["users", "add", "vera", "--role", "viewer"]),
    );
    ui.click("header form[action=\"/logout\"] button").await;
    // Signing out ends on the DAG list, signed out; going to the sign-in page before then
    // races that navigation, and the page the next step reads may be swapped under it.
    ui.until(
        "the DAG list after signing out",
        Duration::from_secs(10),
        "return location.pathname === '/dags' && !document.querySelector('header form[action=\"/logout\"]')",
    )
    .await;
    ui.sign_in_as("vera", "a viewer's password", "#dag-rows")
        .await;
    let buttons = ui
        .js("return document.querySelectorAll('#dag-rows button, a[id^=\"trigger-\"]').length")
        .await;
    assert_eq!(buttons, serde_json::json!(0), "a viewer gets no buttons");
    ui.shot("dags-viewer").await;
    ui.client.close().await.unwrap();
}

/// The repo's `random_users` (manual here, fed by the fake API) and `user_stats` DAGs, with
/// topics, groups and the database made unique to this test.
fn pipeline_dags(ns: &str) -> Vec<(&'static str, String)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dags");
    let read = |file: &str| std::fs::read_to_string(repo.join(file)).unwrap();
    let producer = read("random_users.toml")
        .replace("schedule = \"* * * * *\"\n", "")
        .replace("\"users.\"", &format!("\"{ns}.users.\""));
    let stream = read("user_stats.toml")
        .replace(
            "'^users\\.[a-z]{2}$'",
            &format!("'^{ns}\\.users\\.[a-z]{{2}}$'"),
        )
        .replace("\"user_stats.", &format!("\"{ns}."))
        .replace("\"dlq.user_stats\"", &format!("\"{ns}.dlq\""))
        .replace("database = \"updraft\"", &format!("database = \"{ns}\""));
    assert!(stream.contains(&format!("{ns}\\.users")), "{stream}");
    vec![("random_users.toml", producer), ("user_stats.toml", stream)]
}

/// Users per `country · gender` in the MongoDB window documents of `window_start`.
async fn users_by_group(db: &mongodb::Database, window_start: &str) -> BTreeMap<String, i64> {
    support::all_documents(&db.collection("user_stats"))
        .await
        .into_iter()
        .filter(|d| d.get_str("window_start") == Ok(window_start))
        .map(|d| {
            let label = format!(
                "{} · {}",
                d.get_str("country").unwrap(),
                d.get_str("gender").unwrap()
            );
            (label, support::int(&d, "users"))
        })
        .collect()
}

/// What the results page shows: its window and `label -> value` of every group in the table;
/// fails unless each bar of the chart (the largest 40 groups) shows its group's value.
async fn chart(ui: &Ui) -> (String, BTreeMap<String, i64>) {
    let shown = ui
        .js("const svg = document.querySelector('#results-chart'); if (!svg) return null; \
             const pairs = (nodes) => Array.from(nodes).map(n => [n.dataset.label || n.dataset.group, n.dataset.value]); \
             return {window: svg.dataset.window, bars: pairs(svg.querySelectorAll('g.bar')), rows: pairs(document.querySelectorAll('#results-table tr[data-group]'))};")
        .await;
    let window = shown["window"].as_str().unwrap_or_default().to_owned();
    let pairs = |key: &str| -> BTreeMap<String, i64> {
        shown[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_owned(),
                    pair[1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    };
    let (bars, rows) = (pairs("bars"), pairs("rows"));
    assert!(!bars.is_empty() && bars.len() <= 40, "{bars:?}");
    for (label, value) in &bars {
        assert_eq!(rows.get(label), Some(value), "the bar of {label}");
    }
    (window, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_results_follow_the_pipeline_live() {
    let ns = support::unique("browser");
    let db = support::mongo(&ns).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/api/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, fake_randomuser::router()).await });
    let ui = Ui::start_with(&pipeline_dags(&ns), &[("UPDRAFT_RANDOMUSER_URL", &api)]).await;
    let trigger = |results: u32| {
        cli_output(cli(ui.dir.path()).args([
            "dags",
            "trigger",
            "random_users",
            "--conf",
            &format!("{{\"results\": {results}}}"),
        ]))
    };

    // The streams page: user_stats' two streams appear; the first users show a rate above zero,
    // then the lag goes back to 0 once they are counted.
    ui.goto("/streams").await;
    ui.until(
        "user_stats' streams on the streams page",
        Duration::from_secs(30),
        "return !!document.querySelector('[data-stream=\"user_stats.stats\"]')",
    )
    .await;
    trigger(300);
    ui.until(
        "a rate above zero",
        Duration::from_secs(30),
        "const v = document.querySelector('[data-stream=\"user_stats.stats\"] [data-rate-in]'); \
         window.maxRate = Math.max(window.maxRate || 0, v ? Number(v.dataset.rateIn) : 0); return window.maxRate > 0;",
    )
    .await;
    ui.until(
        "the lag back to 0 after the users are counted",
        Duration::from_secs(30),
        "const s = document.querySelector('[data-stream=\"user_stats.stats\"]'); \
         return !!s && s.querySelector('[data-lag]').dataset.lag === '0' && s.querySelector('.fig .value time') !== null;",
    )
    .await;
    assert!(
        ui.js(
            "return document.querySelectorAll('[data-stream=\"user_stats.stats\"] polyline').length"
        )
        .await
            == serde_json::json!(2),
        "rate and lag sparklines"
    );
    ui.shot("streams").await;

    // The results page: the bars are the MongoDB counts of the window shown.
    ui.click("[data-stream=\"user_stats.stats\"] a[href$=\"/results\"]")
        .await;
    ui.until(
        "the results chart",
        Duration::from_secs(20),
        "return !!document.querySelector('#results-chart g.bar')",
    )
    .await;
    let (window, bars) = chart(&ui).await;
    assert_eq!(bars, users_by_group(&db, &window).await, "window {window}");
    assert_eq!(bars.values().sum::<i64>(), 300);
    ui.shot("results").await;

    // More users: the chart follows without a reload and matches MongoDB again.
    ui.js("window.notReloaded = true; window.firstWindow = document.querySelector('#results-chart').dataset.window; return true;").await;
    trigger(200);
    ui.until(
        "the chart to change after the next run",
        Duration::from_secs(30),
        "const rows = Array.from(document.querySelectorAll('#results-table tr[data-group]')); \
         const total = rows.reduce((n, r) => n + Number(r.dataset.value), 0); \
         const w = document.querySelector('#results-chart').dataset.window; \
         return window.notReloaded === true && (total === 500 || w !== window.firstWindow);",
    )
    .await;
    support::eventually(
        "the chart to match MongoDB",
        Duration::from_secs(20),
        || async {
            let (window, bars) = chart(&ui).await;
            bars == users_by_group(&db, &window).await
        },
    )
    .await;
    let pushed = ui
        .js("return Number(document.querySelector('#results-live').dataset.pushed || 0)")
        .await;
    assert!(pushed.as_f64().unwrap() >= 1.0, "pushed {pushed}");
    ui.shot("results-after-next-run").await;

    // The window picker acts without an inline handler (the CSP blocks those).
    ui.js("const select = document.querySelector('#window-select'); \
           select.value = select.options[select.options.length - 1].value; \
           select.dispatchEvent(new Event('change', { bubbles: true })); return true;")
        .await;
    ui.until(
        "the picked window's page",
        Duration::from_secs(10),
        "return location.search.includes('window=') && !!document.querySelector('#results-chart')",
    )
    .await;
    ui.shot("results-picked-window").await;

    // A stream's own page: its figures and the dead-letter topic it reads.
    let stream_page = ui
        .js("return document.querySelector('a[href$=\"/stream\"]').getAttribute('href')")
        .await;
    ui.goto(stream_page.as_str().unwrap()).await;
    ui.until(
        "the stream page",
        Duration::from_secs(10),
        "return !!document.querySelector('#no-dead-letters, #dead-letters')",
    )
    .await;
    ui.shot("stream").await;

    // The run page carries the live figures of the run's streams.
    let run_page = stream_page
        .as_str()
        .unwrap()
        .trim_end_matches("/tasks/stats/stream");
    ui.goto(run_page).await;
    ui.until(
        "both streams' figures on the run page",
        Duration::from_secs(10),
        "return document.querySelectorAll('#run-streams [data-stream]').length === 2",
    )
    .await;
    ui.shot("run-streams").await;
}

const HOURLY: &str = r#"
[dag]
id = "hourly"
schedule = "0 * * * *"
max_active_runs = 2
[[task]]
id = "work"
operator = "shell"
command = "sleep 0.5"
"#;

/// An op previews a backfill's dates in the form, starts it, and follows its progress on
/// the DAG page without reloading it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_is_previewed_started_and_followed_live_in_the_browser() {
    let ui = Ui::start_with(&[("hourly.toml", HOURLY.into())], &[]).await;
    ui.sign_in_as("admin", PASSWORD, "#trigger-hourly").await;
    ui.goto("/dags/hourly").await;
    ui.click("#backfill").await;
    ui.until(
        "the backfill form",
        Duration::from_secs(10),
        "return !!document.querySelector('#backfill-form')",
    )
    .await;
    ui.fill("#from_date", "2026-11-01").await;
    ui.fill("#to_date", "2026-11-01T05:00").await;
    ui.click("#backfill-preview").await;
    ui.until(
        "the previewed dates",
        Duration::from_secs(10),
        "const plan = document.querySelector('#backfill-plan'); \
         return !!plan && plan.textContent.includes('6 of 6 dates would run')",
    )
    .await;
    ui.shot("backfill-preview").await;
    ui.click("#backfill-submit").await;
    ui.until(
        "the DAG page with the backfill",
        Duration::from_secs(10),
        "return location.pathname === '/dags/hourly' && !!document.querySelector('#backfill-1')",
    )
    .await;
    ui.js("window.updraftMarker = 'not reloaded'; return true")
        .await;
    ui.until(
        "every run of the backfill done, live",
        Duration::from_secs(60),
        "const b = document.querySelector('#backfill-1'); \
         return !!b && b.textContent.includes('6 done') && b.dataset.state === 'completed'",
    )
    .await;
    assert_eq!(
        ui.js("return window.updraftMarker").await,
        serde_json::json!("not reloaded"),
        "the progress came live, without a reload"
    );
    ui.shot("backfill-done").await;
}
