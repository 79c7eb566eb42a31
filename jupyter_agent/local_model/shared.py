"""One embedded model server per model file, shared by the processes of one user on one machine.

The Jupyter server, each agent kernel and each CLI run would otherwise start their own llama.cpp server
(about 2 GB each with the 1.5B model). Instead they meet in Jupyter's runtime directory:

- ``jupyter-agent-model-<key>.json`` describes the running server: launcher pid (and its start time, so a
  reused pid is not mistaken for it), port, model file, runtime.
- ``jupyter-agent-model-<key>.clients/`` holds one empty file per client (``<pid>-<start>-<id>``).
- ``jupyter-agent-model-<key>.lock`` is held (``flock``) while a client looks for, starts or leaves the server,
  and while the launcher decides to exit, so these never interleave.

Lifetime rule: the server lives while any registered client process lives. The launcher checks twice a
second and exits when none is left (a client killed without leaving is noticed by its pid); a client that
leaves last stops it at once. ``<key>`` names the model and its file, so different data directories or
models get different servers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; sharing still works, without the start-up race guard
    fcntl = None  # type: ignore[assignment]

PREFIX = "jupyter-agent-model-"


def server_key(name: str, model_path: Path) -> str:
    digest = hashlib.sha256(str(Path(model_path).resolve()).encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def process_start(pid: int) -> str:
    """When the process started (clock ticks since boot, Linux), '' where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else ""


def pid_alive(pid: int, start: str = "") -> bool:
    """Whether ``pid`` runs and is the same process (same start time) as when it was recorded."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    if Path("/proc").is_dir():
        now = process_start(pid)
        return bool(now) and (not start or now == start)
    return True


def client_token() -> str:
    pid = os.getpid()
    return f"{pid}-{process_start(pid) or '0'}-{uuid.uuid4().hex[:8]}"


def _token_alive(token: str) -> bool:
    pid, _, rest = token.partition("-")
    start = rest.partition("-")[0]
    try:
        return pid_alive(int(pid), "" if start == "0" else start)
    except ValueError:
        return False


class Registry:
    """The files through which processes share one model server (see the module docstring)."""

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = Path(directory)
        self.key = key
        self.info_path = self.directory / f"{PREFIX}{key}.json"
        self.lock_path = self.directory / f"{PREFIX}{key}.lock"
        self.clients_dir = self.directory / f"{PREFIX}{key}.clients"

    @contextlib.contextmanager
    def locked(self, blocking: bool = True) -> Iterator[bool]:
        """Hold the lock (yields True), or yield False at once when ``blocking`` is off and it is taken."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as handle:
            if fcntl is None:
                yield True
                return
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self) -> dict[str, Any] | None:
        try:
            info = json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def write(self, info: dict[str, Any]) -> None:
        tmp = self.info_path.with_name(f"{self.info_path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(info, indent=1))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.info_path)

    def remove_info(self, pid: int | None = None) -> None:
        """Remove the server's description (only if it names ``pid``, when given)."""
        info = self.read()
        if pid is None or (info is not None and info.get("pid") == pid):
            self.info_path.unlink(missing_ok=True)

    def register(self, token: str) -> None:
        self.clients_dir.mkdir(parents=True, exist_ok=True)
        (self.clients_dir / token).touch()

    def unregister(self, token: str) -> None:
        (self.clients_dir / token).unlink(missing_ok=True)

    def live_clients(self) -> list[str]:
        """The registered clients whose process still runs (the others' files are removed)."""
        try:
            tokens = [entry.name for entry in self.clients_dir.iterdir()]
        except OSError:
            return []
        alive = []
        for token in tokens:
            if _token_alive(token):
                alive.append(token)
            else:
                (self.clients_dir / token).unlink(missing_ok=True)
        return alive
