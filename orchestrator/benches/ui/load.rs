//! The load part of `scripts/bench ui`: one `orchestrator serve` (release binary) with N
//! viewers following a live log over SSE while runs are triggered through the API at a steady
//! rate and the DAG list is fetched; errors, page and trigger times, and serve's RSS. Then two
//! bursts of 200 parallel bad sign-ins (one name from one address; 200 names from another):
//! how many were hashed (answered 401, not 429) and serve's peak RSS rise.

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::StreamExt;

use super::{Sizes, percentile};

const PASSWORD: &str = "bench-password-1";

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary() -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::current_exe()?
        .parent()
        .and_then(|deps| deps.parent())
        .context("the target folder")?
        .join("orchestrator");
    anyhow::ensure!(
        path.exists(),
        "no {} (cargo bench builds it)",
        path.display()
    );
    Ok(path)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub async fn run(sizes: &Sizes) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dags = dir.path().join("dags");
    std::fs::create_dir(&dags)?;
    let lines = sizes.load_seconds * 100 + 200;
    std::fs::write(
        dags.join("talk.toml"),
        format!(
            "[dag]\nid = \"talk\"\n[[task]]\nid = \"say\"\noperator = \"shell\"\ncommand = 'for i in $(seq 1 {lines}); do echo \"line $i\"; sleep 0.01; done'\n"
        ),
    )?;
    std::fs::write(
        dags.join("ping.toml"),
        "[dag]\nid = \"ping\"\nmax_active_runs = 32\n[[task]]\nid = \"a\"\noperator = \"noop\"\n",
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let env = |command: &mut Command| {
        command
            .env("UPDRAFT_DAGS_FOLDER", &dags)
            .env(
                "UPDRAFT_DB",
                format!("sqlite://{}", dir.path().join("u.db").display()),
            )
            .env("UPDRAFT_LOGS_FOLDER", dir.path().join("logs"))
            .env("UPDRAFT_ADMIN_PASSWORD", PASSWORD)
            .env("UPDRAFT_PUBLIC_READ", "true")
            // The viewers all come from this one address.
            .env("UPDRAFT_MAX_LIVE_CONNECTIONS_PER_CLIENT", "10000")
            .env("RUST_LOG", "warn");
    };
    let mut serve = Command::new(binary()?);
    env(&mut serve);
    let serve = Serve(
        serve
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let started = Instant::now();
    while http.get(format!("{base}/health")).send().await.is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut token = Command::new(binary()?);
    env(&mut token);
    let token = token
        .args(["tokens", "create", "--user", "admin"])
        .output()?;
    let token = String::from_utf8(token.stdout)?.trim().to_owned();
    anyhow::ensure!(token.starts_with("updraft_"), "no token: {token:?}");
    let auth = format!("Bearer {token}");

    let run: serde_json::Value = http
        .post(format!("{base}/api/v1/dags/talk/dagRuns"))
        .header("authorization", &auth)
        .json(&serde_json::json!({}))
        .send()
        .await?
        .json()
        .await?;
    let run_id = run["dag_run_id"].as_str().context("a run id")?.to_owned();
    let stream_url = format!("{base}/dags/talk/runs/{run_id}/tasks/say/logs/1/stream");
    let idle_rss = rss_kib(serve.0.id());

    let errors = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(sizes.load_seconds);
    let mut viewers = Vec::new();
    for _ in 0..sizes.viewers {
        let (http, url, errors, received) = (
            http.clone(),
            stream_url.clone(),
            errors.clone(),
            received.clone(),
        );
        viewers.push(tokio::spawn(async move {
            let Ok(response) = http.get(&url).send().await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            if !response.status().is_success() {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let mut body = response.bytes_stream();
            while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.next()).await {
                match chunk {
                    Ok(bytes) => {
                        received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    let mut trigger_times = Vec::new();
    let mut page_times = Vec::new();
    let mut max_rss = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / sizes.triggers_per_second));
    while tokio::time::Instant::now() < deadline {
        tick.tick().await;
        let sent = Instant::now();
        let triggered = http
            .post(format!("{base}/api/v1/dags/ping/dagRuns"))
            .header("authorization", &auth)
            .json(&serde_json::json!({"conf": {}}))
            .send()
            .await;
        match triggered {
            Ok(r) if r.status().is_success() => {
                trigger_times.push(sent.elapsed().as_secs_f64() * 1000.0)
            }
            _ => {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let sent = Instant::now();
        let page = match http.get(format!("{base}/dags")).send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
            _ => false,
        };
        if page {
            page_times.push(sent.elapsed().as_secs_f64() * 1000.0);
        } else {
            errors.fetch_add(1, Ordering::Relaxed);
        }
        max_rss = max_rss.max(rss_kib(serve.0.id()));
    }
    for viewer in viewers {
        let _ = viewer.await;
    }
    trigger_times.sort_by(f64::total_cmp);
    page_times.sort_by(f64::total_cmp);
    println!(
        "load: {} live-log viewers + {} triggers/s + a DAG list fetch per trigger for {} s against one serve: {} errors; \
         trigger p50 {:.1} ms p99 {:.1} ms; DAG list page p50 {:.1} ms p99 {:.1} ms; {:.1} MB of log streamed; serve RSS {} MB idle, {} MB max",
        sizes.viewers,
        sizes.triggers_per_second,
        sizes.load_seconds,
        errors.load(Ordering::Relaxed),
        percentile(&trigger_times, 0.5),
        percentile(&trigger_times, 0.99),
        percentile(&page_times, 0.5),
        percentile(&page_times, 0.99),
        received.load(Ordering::Relaxed) as f64 / 1e6,
        idle_rss / 1024,
        max_rss / 1024,
    );
    for (what, from) in [("one name", [127, 0, 0, 1]), ("200 names", [127, 0, 0, 2])] {
        sign_in_burst(&base, serve.0.id(), what, from).await?;
    }
    Ok(())
}

/// 200 parallel sign-ins with a wrong password from `from` (one name, or a name each): how
/// many got a password check (401; the rest are refused before hashing, 429), and serve's
/// RSS peak over the burst above its RSS before.
async fn sign_in_burst(base: &str, pid: u32, what: &str, from: [u8; 4]) -> anyhow::Result<()> {
    const BURST: usize = 200;
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let before = rss_kib(pid);
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            peak
        })
    };
    let started = Instant::now();
    let attempts = (0..BURST).map(|i| {
        let username = if what == "one name" {
            "admin".to_owned()
        } else {
            format!("guess{i}")
        };
        let form = [
            ("username", username),
            ("password", "wrong guess".to_owned()),
        ];
        let request = http.post(format!("{base}/login")).form(&form).send();
        async move { request.await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures::future::join_all(attempts).await;
    let seconds = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.await?.max(before);
    let count = |code: u16| {
        statuses
            .iter()
            .filter(|s| matches!(s, Ok(c) if *c == code))
            .count()
    };
    println!(
        "sign-in burst, {BURST} parallel wrong passwords ({what}, from {}): {} hashed (401), {} refused before hashing (429), {} other, in {seconds:.2} s; serve RSS {} MB before, peak rise {:.1} MB",
        std::net::IpAddr::from(from),
        count(401),
        count(429),
        BURST - count(401) - count(429),
        before / 1024,
        (peak - before) as f64 / 1024.0,
    );
    Ok(())
}
