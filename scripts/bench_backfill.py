#!/usr/bin/env python3
"""Backfill figures, with the release binary on a fresh SQLite file (called by
`scripts/bench backfill`): the dry run of 1,000 hourly intervals, creating them, running them
all (3 noop tasks each) through `serve`, and the DAG page's server time with 25 runs and
with 10,000 runs. Prints figures; asserts nothing."""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench_support import start_serve

BIN = os.path.abspath(sys.argv[1])

DAG = """[dag]
id = "hourly"
schedule = "0 * * * *"
max_active_runs = 16
[[task]]
id = "a"
operator = "noop"
[[task]]
id = "b"
operator = "noop"
upstream = ["a"]
[[task]]
id = "c"
operator = "noop"
upstream = ["b"]
"""


def cli(env, *args):
    started = time.perf_counter()
    out = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, out.stdout


def wait_completed(env, backfill_id, limit=1800):
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        _, out = cli(env, "backfills", "list", "hourly")
        for line in out.splitlines():
            cells = line.split()
            if cells and cells[0] == str(backfill_id) and "completed" in cells:
                return time.perf_counter() - started
        time.sleep(0.2)
    raise SystemExit(f"backfill {backfill_id} did not complete within {limit} s")


def page_times(port, path, n=200):
    url = f"http://127.0.0.1:{port}{path}"
    times = []
    for _ in range(n):
        started = time.perf_counter()
        with urllib.request.urlopen(url) as response:
            response.read()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def created_id(out):
    match = re.search(r"Backfill (\d+) of", out)
    return int(match.group(1))


def main():
    work = tempfile.mkdtemp(prefix="updraft-backfill-bench-")
    os.makedirs(f"{work}/dags")
    with open(f"{work}/dags/hourly.toml", "w") as f:
        f.write(DAG)
    env = dict(os.environ)
    env.update(
        UPDRAFT_DAGS_FOLDER=f"{work}/dags",
        UPDRAFT_DB=f"sqlite://{work}/updraft.db",
        UPDRAFT_LOGS_FOLDER=f"{work}/logs",
        UPDRAFT_PUBLIC_READ="true",
        RUST_LOG="warn",
    )
    serve, port = start_serve(BIN, env, f"{work}/serve.log")
    try:
        _, out = cli(env, "backfill", "hourly", "--from", "2024-12-31T00:00:00Z", "--to", "2024-12-31T23:00:00Z")
        wait_completed(env, created_id(out))
        p50_25, p99_25 = page_times(port, "/dags/hourly")

        # 1,000 hourly intervals: 2025-01-01T00:00 .. 2025-02-11T15:00.
        span = ["--from", "2025-01-01T00:00:00Z", "--to", "2025-02-11T15:00:00Z"]
        dry = sorted(cli(env, "backfill", "hourly", *span, "--dry-run")[0] for _ in range(5))
        _, out = cli(env, "backfill", "hourly", *span, "--dry-run")
        assert "1000 of 1000 dates" in out, out
        created, out = cli(env, "backfill", "hourly", *span, "--max-active-runs", "16")
        ran = wait_completed(env, created_id(out))

        # 9,000 more, queued behind a pause: the page with 10,024 runs.
        more = ["--from", "2025-03-01T00:00:00Z", "--to", "2026-03-10T23:00:00Z"]
        _, out = cli(env, "backfill", "hourly", *more, "--max-active-runs", "1")
        cli(env, "backfills", "pause", str(created_id(out)))
        p50_10k, p99_10k = page_times(port, "/dags/hourly")
        # Deep in the grid (its pages go by logical date) and in the run history (by offset).
        p50_grid, p99_grid = page_times(port, "/dags/hourly?before=2025-06-01T00:00:00Z")
        p50_hist, p99_hist = page_times(port, "/dags/hourly?offset=9000")
        total = sum(1 for _ in open(f"{work}/serve.log"))
    finally:
        serve.terminate()
        serve.wait()
    print("backfill of an hourly DAG (3 noop tasks per run), release build, SQLite:")
    print(f"  dry run of 1,000 intervals (CLI, whole command): min {dry[0]*1000:.0f} ms, median {dry[2]*1000:.0f} ms, max {dry[-1]*1000:.0f} ms")
    print(f"  creating 1,000 runs (3,000 task instances, CLI): {created*1000:.0f} ms")
    print(f"  running them through serve (16 at once): {ran:.1f} s, {1000/ran:.0f} runs/s, {3000/ran:.0f} TI/s")
    print(f"  DAG page with 25 runs: p50 {p50_25:.1f} ms, p99 {p99_25:.1f} ms (200 requests)")
    print(f"  DAG page with ~10,000 runs: p50 {p50_10k:.1f} ms, p99 {p99_10k:.1f} ms (200 requests); ratio p99 {p99_10k/p99_25:.2f}x")
    print(f"  DAG page with ~10,000 runs, grid 6,500 runs deep: p50 {p50_grid:.1f} ms, p99 {p99_grid:.1f} ms; ratio p99 {p99_grid/p99_25:.2f}x")
    print(f"  DAG page with ~10,000 runs, run history at offset 9,000: p50 {p50_hist:.1f} ms, p99 {p99_hist:.1f} ms; ratio p99 {p99_hist/p99_25:.2f}x")
    print(f"  serve log lines at warn: {total}")


if __name__ == "__main__":
    main()
