#!/usr/bin/env python3
"""What a request costs as the history grows (called by `scripts/bench history`): 20 DAGs of 3
chained noop tasks on SQLite, backfilled and run through `serve` to 1,000 runs, then to 50,000
runs (150,000 task instances); at each size the server time of the requests that could read
every run or task instance stored (/metrics, the DAG list, the API's lists across DAGs) and of
a DAG page, and the ratio of the big history's to the small one's. Prints figures; asserts
nothing."""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench_support import start_serve

BIN = os.path.abspath(sys.argv[1])
DAGS = [f"d{i:02d}" for i in range(1, 21)]
USER, PASSWORD = "bench", "bench-password-1"

DAG = """[dag]
id = "{id}"
schedule = "* * * * *"
start_date = "2026-01-01T00:00:00Z"
catchup = false
[[task]]
id = "extract"
operator = "noop"
[[task]]
id = "transform"
operator = "noop"
upstream = ["extract"]
[[task]]
id = "load"
operator = "noop"
upstream = ["transform"]
"""

# (label, method, path, JSON body)
REQUESTS = [
    ("GET /metrics", "GET", "/metrics", None),
    ("GET /dags (the DAG list)", "GET", "/dags", None),
    ("GET /api/v1/dags", "GET", "/api/v1/dags", None),
    ("GET /dags/d05 (a DAG page)", "GET", "/dags/d05", None),
    ("taskInstances/list, first 100", "POST", "/api/v1/dags/~/dagRuns/~/taskInstances/list", {"page_limit": 100}),
    ("taskInstances/list, one DAG", "POST", "/api/v1/dags/~/dagRuns/~/taskInstances/list", {"page_limit": 100, "dag_ids": ["d05"]}),
    ("dagRuns/list, first 100", "POST", "/api/v1/dags/~/dagRuns/list", {"page_limit": 100}),
]


def cli(env, *args, extra_env=None):
    out = subprocess.run(
        [BIN, *args], env={**env, **(extra_env or {})}, capture_output=True, text=True, check=True
    )
    return out.stdout


def request_ms(port, method, path, body, token, n=15):
    data = None if body is None else json.dumps(body).encode()
    times = []
    for _ in range(n):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
        request.add_header("authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("content-type", "application/json")
        started = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            response.read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def grow(env, port, token, first, last):
    """Backfills every DAG from minute `first` to minute `last` of 2026-01-01 onwards and waits
    until no run is queued or running."""
    start = time.perf_counter()
    for dag in DAGS:
        cli(env, "backfill", dag, "--from", minute(first), "--to", minute(last), "--max-active-runs", "16")
    while True:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/dags/~/dagRuns/list",
            data=json.dumps({"page_limit": 1, "states": ["queued", "running"]}).encode(),
            method="POST",
        )
        request.add_header("authorization", f"Bearer {token}")
        request.add_header("content-type", "application/json")
        with urllib.request.urlopen(request) as response:
            if json.load(response)["total_entries"] == 0:
                break
        time.sleep(0.5)
    return time.perf_counter() - start


def minute(n):
    return f"2026-01-{1 + n // 1440:02d}T{(n % 1440) // 60:02d}:{n % 60:02d}:00Z"


def main():
    work = tempfile.mkdtemp(prefix="updraft-history-bench-")
    os.makedirs(f"{work}/dags")
    for dag in DAGS:
        with open(f"{work}/dags/{dag}.toml", "w") as f:
            f.write(DAG.format(id=dag))
    env = dict(os.environ)
    env.update(
        UPDRAFT_DAGS_FOLDER=f"{work}/dags",
        UPDRAFT_DB=f"sqlite://{work}/updraft.db",
        UPDRAFT_LOGS_FOLDER=f"{work}/logs",
        RUST_LOG="warn",
    )
    cli(env, "users", "add", USER, "--role", "admin", extra_env={"UPDRAFT_PASSWORD": PASSWORD})
    # The token alone is printed on stdout (how to send it goes to stderr).
    token = cli(env, "tokens", "create", "--user", USER).strip()
    serve, port = start_serve(BIN, env, f"{work}/serve.log", "--metrics-token", token)
    figures = {}
    try:
        sizes = [(0, 49), (50, 2499)]
        for first, last in sizes:
            took = grow(env, port, token, first, last)
            runs = len(DAGS) * (last + 1)
            print(f"  {runs:,} runs: backfilled and run in {took:.1f} s", flush=True)
            figures[runs] = [request_ms(port, m, p, b, token) for _, m, p, b in REQUESTS]
    finally:
        serve.terminate()
        serve.wait()
    small, big = sorted(figures)
    print(f"request server time as the history grows (20 DAGs of 3 noop tasks, SQLite, median of 15):")
    print(f"  {'request':<34} {small:>7,} runs {big:>7,} runs   ratio")
    for i, (label, *_) in enumerate(REQUESTS):
        a, b = figures[small][i], figures[big][i]
        print(f"  {label:<34} {a:>9.1f} ms {b:>9.1f} ms   {b / a:.2f}x")


if __name__ == "__main__":
    main()
