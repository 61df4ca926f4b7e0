"""The tests' way to run the command line: a process of its own for every command, forked from
a server that has already imported the command's modules.

A fresh `python -m pipelines` spends about 1.3 s importing dlt, DuckDB, sqlglot and the sources
before it does anything; the suite runs the command hundreds of times. The server imports them
once (and nothing else: no configuration resolved, no thread started, checked), then for each
command forks a process that takes the command's environment, folder, argv and output files and
runs `python -m pipelines` (or a test script) as `__main__`, ending like any interpreter (threads
joined, atexit handlers run, an uncaught exception printed): the command's behaviour and exit
code are those of its own process. `UPLOAD_STATUS_TEST_FORK=0` runs every command as a fresh
interpreter instead.

Protocol, one connection per command over a Unix socket: the client sends one JSON line (args,
cwd, env, script, stdout and stderr paths); a middle process answers `{"pid": N}` once the
command's process is forked, then `{"returncode": N}` when it ends (negative: killed by that
signal, as `subprocess` reports it).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[1]
PRELOAD = [  # what `run`, `report` and the test scripts import, in a fresh process
    "pipelines.commands.cli", "pipelines.run.runner", "pipelines.analytics.report",
    "pipelines.analytics.views", "dlt.common.storages.load_package", "sources",
    "dlt.destinations.impl.duckdb.duck", "dlt.destinations.impl.duckdb.factory",
    "dlt.destinations.impl.postgres.postgres", "dlt.destinations.impl.sqlalchemy.factory",
    "dlt.extract", "dlt.normalize", "dlt.load", "pyarrow", "requests", "rich.console",
    # imported by a run's first pipeline step (found by comparing sys.modules before and after)
    "pandas", "pydantic", "sqlalchemy", "pyarrow.parquet", "pyarrow.fs", "numpy.ma", "pluggy",
    "dlt.__plugins__", "dlt._workspace.cli", "pendulum.locales.en.locale", "rich.live",
    "pipelines.commands.progress", "pipelines.run.dlt_logs", "_strptime", "zoneinfo", "shlex",
    "netrc", "mmap", "dateutil.easter", "psycopg2", "pipelines.commands.demo", "simulator",
]


# ---- the server ---------------------------------------------------------------------------

def _preload() -> None:
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # an extra not installed: imported when used
            importlib.import_module(name)
    import sources

    sources.providers()  # every provider's modules
    if threading.active_count() != 1:
        raise SystemExit("forked_cli: importing started a thread; forking would lose it")
    import gc

    gc.collect()
    gc.freeze()  # what was imported stays out of the commands' collections: fewer pages copied


def _serve(path: str) -> dict[str, Any]:
    """Accept commands for ever; returns only in a command's process, with its request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # middle processes reap themselves
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
            os._exit(0)  # the test process that started it is gone: so is the server
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        if os.fork() != 0:
            conn.close()
            continue
        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        with conn, conn.makefile("rwb") as stream:
            request = json.loads(stream.readline())
            pid = os.fork()
            if pid == 0:
                return request
            stream.write(json.dumps({"pid": pid}).encode() + b"\n")
            stream.flush()
            _, status = os.waitpid(pid, 0)
            stream.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode()
                         + b"\n")
            stream.flush()
        os._exit(0)


def _become(request: dict[str, Any]) -> None:
    """Turn this forked process into the command's own: folder, environment, files, argv."""
    os.setpgid(0, 0)  # a timeout kills the command and whatever it started
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        out = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    os.close(null)
    script = request.get("script")
    # as a fresh interpreter has it: the script's folder, or the working folder for -m
    sys.path[0] = str(Path(script).parent) if script else os.getcwd()
    sys.path[1:1] = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep)
                     if p and p not in sys.path]


def _main(path: str) -> None:
    _preload()
    request = _serve(path)
    _become(request)
    import runpy

    if request.get("script"):
        sys.argv = [request["script"], *request["args"]]
        runpy.run_path(request["script"], run_name="__main__")
    else:
        sys.argv = [str(REPO / "pipelines" / "__main__.py"), *request["args"]]
        runpy.run_module("pipelines", run_name="__main__", alter_sys=True)
    # returning ends the interpreter as any command's does: a SystemExit raised above too


# ---- the client ---------------------------------------------------------------------------

class _Server:
    """This test process's server, started at its first command."""

    def __init__(self, env: dict[str, str]) -> None:
        self.folder = tempfile.mkdtemp(prefix="forked-cli-")
        self.path = os.path.join(self.folder, "socket")
        self.process = subprocess.Popen(
            [sys.executable, __file__, self.path], cwd=self.folder, text=True,
            env={**env, "PYTHONPATH": str(REPO)}, stdin=subprocess.PIPE,  # EOF: we are gone
            stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("forked_cli: the server did not start")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


_SERVER: _Server | None = None
_BASE_ENV = dict(os.environ)  # before any test changed it: the server's own imports see this


def forking() -> bool:
    return os.environ.get("UPLOAD_STATUS_TEST_FORK", "1") != "0" and hasattr(os, "fork")


def run_forked(args: list[str], cwd: Path, env: dict[str, str], script: str | None,
               timeout: float) -> subprocess.CompletedProcess[str]:
    """`subprocess.run([python, -m pipelines | script, *args], capture_output=True, text=True)`
    through the server."""
    global _SERVER
    if _SERVER is None or not _SERVER.alive():
        _SERVER = _Server(_BASE_ENV)
        atexit.register(_SERVER.stop)
    with tempfile.TemporaryDirectory(prefix="cli-out-") as out:
        files = {name: os.path.join(out, name) for name in ("stdout", "stderr")}
        request = {"args": args, "cwd": str(cwd), "env": env, "script": script, **files}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(_SERVER.path)
            conn.settimeout(timeout)
            stream = conn.makefile("rwb")
            stream.write(json.dumps(request).encode() + b"\n")
            stream.flush()
            pid = _answer(stream, "pid")
            try:
                returncode = _answer(stream, "returncode")
            except TimeoutError:
                _kill(pid)
                raise subprocess.TimeoutExpired(args, timeout) from None
        text = [Path(files[name]).read_text(errors="replace").replace("\r\n", "\n")
                for name in ("stdout", "stderr")]
    program = [sys.executable, script] if script else [sys.executable, "-m", "pipelines"]
    return subprocess.CompletedProcess([*program, *args], returncode, *text)


def _answer(stream: Any, key: str) -> int:
    line = stream.readline()
    if not line:
        raise RuntimeError("forked_cli: the command's process ended without telling its "
                           f"{key} (killed from outside the test?)")
    return int(json.loads(line)[key])


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # not yet in a group of its own
        os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    _main(sys.argv[1])
