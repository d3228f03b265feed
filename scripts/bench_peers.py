#!/usr/bin/env python3
"""`scripts/bench peers`: the same work on Updraft, Apache Airflow 2.10 and Prefect 3, one after
the other on this machine, as their users run it; prints one table of wall times and Updraft's
ratio to each.

Work: 40 sequential no-op tasks, 40 sequential ~10 ms tasks (a 10 ms sleep), 500 independent
no-op tasks. Systems:
- Updraft: `orchestrator run <dag>` (release build) on a fresh SQLite file: the whole command.
- Airflow `dags test` (its fastest honest mode: one process, SQLite): the whole command.
- Airflow with its scheduler: `airflow scheduler` with the LocalExecutor on PostgreSQL, as a user
  runs it; from `airflow dags trigger` returning to the run recorded successful.
- Prefect 3: a flow of tasks run by `python flow.py` against its local server
  (`prefect server start`): the whole command.

Airflow and Prefect are installed from PyPI into venvs under $UPDRAFT_CACHE/peers (reused).
UPDRAFT_PEERS_REPEATS (default 3) runs each cell that many times and keeps the median;
UPDRAFT_PEERS_SKIP=airflow-scheduler (comma-separated system keys) leaves systems out.
Usage: bench_peers.py ORCHESTRATOR_BINARY POSTGRES_ADMIN_URL
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from bench_support import free_port

CACHE = Path(os.environ.get("UPDRAFT_CACHE", Path.home() / ".cache" / "updraft")) / "peers"
AIRFLOW = CACHE / "airflow-2.10.5"
PREFECT = CACHE / "prefect-3"
REPEATS = int(os.environ.get("UPDRAFT_PEERS_REPEATS", "3"))
SKIP = set(filter(None, os.environ.get("UPDRAFT_PEERS_SKIP", "").split(",")))

WORK = [
    ("chain40_noop", "40 sequential no-op tasks"),
    ("chain40_sleep", "40 sequential ~10 ms tasks"),
    ("wide500_noop", "500 independent no-op tasks"),
]


def log(message):
    print(message, file=sys.stderr, flush=True)


def venv(path, requirement):
    """The venv at `path` with `requirement` installed (installed once, then reused)."""
    marker = path / ".installed"
    if not marker.exists():
        log(f"Installing {requirement} into {path} (once)")
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        pip = [str(path / "bin" / "pip"), "install", "-q"]
        subprocess.run(pip + ["--upgrade", "pip"], check=True)
        subprocess.run(pip + [requirement], check=True)
        marker.write_text(requirement)
    return path / "bin"


def timed(command, env=None, cwd=None):
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def median_of(measure):
    return statistics.median(measure() for _ in range(REPEATS))


# --- Updraft -------------------------------------------------------------------------------

def updraft_dag(work):
    lines = [f'[dag]\nid = "{work}"\nmax_active_tasks = 32\n']
    count = 500 if work == "wide500_noop" else 40
    for i in range(count):
        task = f'[[task]]\nid = "t{i}"\n'
        task += 'operator = "sleep"\nduration = "10ms"\n' if work == "chain40_sleep" else 'operator = "noop"\n'
        if work.startswith("chain") and i > 0:
            task += f'upstream = ["t{i - 1}"]\n'
        lines.append(task)
    return "".join(lines)


def updraft(binary, work):
    def once():
        with tempfile.TemporaryDirectory() as tmp:
            dags = Path(tmp, "dags")
            dags.mkdir()
            (dags / f"{work}.toml").write_text(updraft_dag(work))
            env = dict(os.environ, UPDRAFT_DAGS_FOLDER=str(dags), UPDRAFT_DB=f"sqlite://{tmp}/u.db",
                       UPDRAFT_LOGS_FOLDER=f"{tmp}/logs", RUST_LOG="warn")
            return timed([binary, "run", work], env=env)
    return median_of(once)


# --- Airflow -------------------------------------------------------------------------------

def airflow_dag(work):
    count = 500 if work == "wide500_noop" else 40
    body = "time.sleep(0.01)" if work == "chain40_sleep" else "pass"
    chain = "    for a, b in zip(tasks, tasks[1:]):\n        a >> b\n" if work.startswith("chain") else ""
    return textwrap.dedent(f"""\
        import time
        import pendulum
        from airflow import DAG
        from airflow.operators.python import PythonOperator

        def step():
            {body}

        with DAG("{work}", start_date=pendulum.datetime(2026, 1, 1), schedule=None, catchup=False,
                 max_active_tasks=32) as dag:
            tasks = [PythonOperator(task_id=f"t{{i}}", python_callable=step) for i in range({count})]
        """) + chain


def airflow_home(tmp, sql_conn=None, executor="SequentialExecutor"):
    dags = Path(tmp, "dags")
    dags.mkdir(exist_ok=True)
    for work, _ in WORK:
        (dags / f"{work}.py").write_text(airflow_dag(work))
    env = dict(os.environ, AIRFLOW_HOME=tmp, AIRFLOW__CORE__DAGS_FOLDER=str(dags),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__EXECUTOR=executor,
               AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
               AIRFLOW__CORE__PARALLELISM="32", AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5")
    if sql_conn:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = sql_conn
    subprocess.run([str(AIRFLOW_BIN / "airflow"), "db", "migrate"], env=env, check=True,
                   capture_output=True)
    return env


def airflow_dags_test(work):
    with tempfile.TemporaryDirectory() as tmp:
        env = airflow_home(tmp)
        return median_of(lambda: timed([str(AIRFLOW_BIN / "airflow"), "dags", "test", work], env=env))


def psql(admin_url, database, sql):
    url = admin_url.rsplit("/", 1)[0] + "/" + database
    done = subprocess.run(["psql", url, "-At", "-c", sql], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def airflow_scheduler(admin_url, works):
    """Every work item's median under one `airflow scheduler` (LocalExecutor, PostgreSQL)."""
    database = f"airflow_bench_{os.getpid()}"
    psql(admin_url, admin_url.rsplit("/", 1)[1], f"CREATE DATABASE {database}")
    conn = "postgresql+psycopg2://" + admin_url.split("://", 1)[1].rsplit("/", 1)[0] + "/" + database
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = airflow_home(tmp, conn, "LocalExecutor")
        scheduler = subprocess.Popen([str(AIRFLOW_BIN / "airflow"), "scheduler"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: psql(admin_url, database, "SELECT count(*) FROM dag") == str(len(WORK)),
                     "the scheduler to parse the DAGs", 180)
            for work in works:
                runs = []
                for repeat in range(REPEATS):
                    run_id = f"bench_{repeat}"
                    subprocess.run([str(AIRFLOW_BIN / "airflow"), "dags", "trigger", work, "-r", run_id],
                                   env=env, check=True, capture_output=True)
                    triggered = time.time()
                    state = f"SELECT state FROM dag_run WHERE dag_id = '{work}' AND run_id = '{run_id}'"
                    wait_for(lambda: psql(admin_url, database, state) in ("success", "failed"),
                             f"{work} to finish under the scheduler", 1800)
                    runs.append(time.time() - triggered)
                results[work] = statistics.median(runs)
        finally:
            scheduler.terminate()
            scheduler.wait(60)
    return results


def wait_for(check, what, limit):
    deadline = time.time() + limit
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {limit} s waiting for {what}")


# --- Prefect -------------------------------------------------------------------------------

PREFECT_FLOW = textwrap.dedent("""\
    import sys, time
    from prefect import flow, task
    from prefect.futures import wait

    @task
    def noop(i):
        return i

    @task
    def nap(i):
        time.sleep(0.01)
        return i

    @flow
    def chain(step):
        for i in range(40):
            step(i)

    @flow
    def wide():
        wait([noop.submit(i) for i in range(500)])

    work = sys.argv[1]
    if work == "chain40_noop":
        chain(noop)
    elif work == "chain40_sleep":
        chain(nap)
    else:
        wide()
    """)


def prefect(works):
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = dict(os.environ, PREFECT_HOME=tmp, PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
        server = subprocess.Popen([str(PREFECT_BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/api/health"), "the Prefect server", 120)
            flow = Path(tmp, "flow.py")
            flow.write_text(PREFECT_FLOW)
            python = str(PREFECT_BIN / "python")
            timed([python, str(flow), "chain40_noop"], env=env)  # warm the server up once
            for work in works:
                results[work] = median_of(lambda: timed([python, str(flow), work], env=env))
        finally:
            server.terminate()
            server.wait(60)
    return results


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


# --- The table -----------------------------------------------------------------------------

def main():
    global AIRFLOW_BIN, PREFECT_BIN
    binary, admin_url = sys.argv[1], sys.argv[2]
    AIRFLOW_BIN = venv(AIRFLOW, "apache-airflow[postgres]==2.10.5")
    PREFECT_BIN = venv(PREFECT, "prefect>=3,<4")
    works = [work for work, _ in WORK]
    columns = {"updraft": "Updraft `orchestrator run`"}
    walls = {"updraft": {work: updraft(binary, work) for work in works}}
    log("Updraft done")
    if "airflow-test" not in SKIP:
        columns["airflow-test"] = "Airflow 2.10 `dags test` (SQLite)"
        walls["airflow-test"] = {work: airflow_dags_test(work) for work in works}
        log("Airflow dags test done")
    if "airflow-scheduler" not in SKIP:
        columns["airflow-scheduler"] = "Airflow 2.10 scheduler, LocalExecutor, PostgreSQL"
        walls["airflow-scheduler"] = airflow_scheduler(admin_url, works)
        log("Airflow scheduler done")
    if "prefect" not in SKIP:
        columns["prefect"] = "Prefect 3, local server"
        walls["prefect"] = prefect(works)
        log("Prefect done")
    print(f"medians of {REPEATS} runs each; ratio = the peer's wall / Updraft's")
    print("| work | " + " | ".join(columns.values()) + " |")
    print("| --- |" + " --- |" * len(columns))
    for work, label in WORK:
        ours = walls["updraft"][work]
        cells = [f"{ours * 1000:.0f} ms"]
        for key in list(columns)[1:]:
            theirs = walls[key][work]
            cells.append(f"{theirs:.2f} s ({theirs / ours:.0f}x)")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
