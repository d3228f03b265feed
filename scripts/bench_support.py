"""What the bench scripts share: a free local port, and `orchestrator serve` started and ready."""

import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(binary, env, log_path, *args):
    """`binary serve` on a free port with `env` (stderr to `log_path`, extra `args`), once its
    /health answers; returns the process and the port."""
    port = free_port()
    serve = subprocess.Popen(
        [binary, "serve", "--bind", f"127.0.0.1:{port}", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "w"),
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read()
            return serve, port
        except OSError:
            time.sleep(0.1)
    serve.terminate()
    raise SystemExit(f"serve did not answer /health within 10 s (its log: {log_path})")
