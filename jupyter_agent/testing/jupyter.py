"""A real Jupyter server (or JupyterLab) with the agent in a subprocess on 127.0.0.1.

For end-to-end tests and benchmarks: isolated config, data and runtime directories, a fixed token, and a
stop that sends SIGTERM and measures how long the server takes to exit (SIGKILL after ``stop_timeout``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_environment(base: Path, llm_base_url: str, **extra: str) -> dict[str, str]:
    """The environment of a kernel or CLI process that reaches a scripted model at ``llm_base_url``, with
    Jupyter directories of its own under ``base``."""
    env = {
        **os.environ,
        "JUPYTER_AGENT_MODEL": "openai/scripted",
        "OPENAI_API_BASE": llm_base_url,
        "OPENAI_API_KEY": "sk-test",
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        **extra,
    }
    env.pop("JPY_SESSION_NAME", None)
    return env


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


class JupyterServer:
    """``with JupyterServer(llm_base_url=...) as srv:`` — ``srv.port``, ``srv.token``, ``srv.root``.

    ``app="jupyterlab"`` starts JupyterLab (for browser tests); ``agent=False`` leaves the extension off.
    ``config`` is merged into the server's JSON config (e.g. ``{"JupyterAgent": {"max_steps": 3}}``).
    """

    def __init__(
        self,
        agent: bool = True,
        llm_base_url: str | None = None,
        config: dict[str, Any] | None = None,
        app: str = "jupyter_server",
        stop_timeout: float = 20.0,
    ) -> None:
        self.agent = agent
        self.llm_base_url = llm_base_url
        self.config = config or {}
        self.app = app
        self.stop_timeout = stop_timeout
        self.port = free_port()
        self.token = "agent-test-token"
        self.start_seconds = 0.0
        self.stop_seconds = 0.0
        self.killed = False
        self._tmp = tempfile.TemporaryDirectory(prefix="jupyter-agent-server-")
        self.base = Path(self._tmp.name)
        self.root = self.base / "root"
        self.log_path = self.base / "server.log"

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url(path), method=method, data=data, headers={"Authorization": f"token {self.token}"}
        )
        raw = urllib.request.urlopen(req, timeout=30).read()
        return json.loads(raw) if raw else None

    def __enter__(self) -> JupyterServer:
        self.root.mkdir()
        (self.base / "config").mkdir()
        self._write_config()
        self.start()
        return self

    def _write_config(self) -> None:
        config = {
            "ServerApp": {
                "jpserver_extensions": {
                    "jupyter_agent": self.agent,
                    "jupyter_server_ydoc": True,
                    "jupyter_server_fileid": True,
                },
                "root_dir": str(self.root),
                "open_browser": False,
            },
            "IdentityProvider": {"token": self.token},
            "SQLiteYStore": {"db_path": str(self.base / "ystore.db")},
            "BaseFileIdManager": {"db_path": str(self.base / "fileid.db")},
            "YDocExtension": {"session_store_path": str(self.base / "collaboration_sessions.json")},
            "JupyterAgent": {
                "model": "openai/scripted",
                "model_options": {
                    "api_base": self.llm_base_url or "http://127.0.0.1:9/v1",
                    "api_key": "sk-test",
                },
                "db_path": str(self.base / "agent.db"),
                "backup_dir": str(self.base / "backups"),
            },
        }
        config = _merge(config, self.config)
        (self.base / "config" / "jupyter_server_config.json").write_text(json.dumps(config))

    def start(self) -> None:
        """Start the server process (again, after :meth:`stop`: same port, root and state)."""
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.base / "config"),
            "JUPYTER_DATA_DIR": str(self.base / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.base / "runtime"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        cmd = [
            sys.executable,
            "-m",
            self.app,
            f"--port={self.port}",
            "--ip=127.0.0.1",
            "--allow-root",
            "--ServerApp.port_retries=0",
            "--no-browser",
        ]
        started = time.perf_counter()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.base)
        deadline = started + 90
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url(f"api/status?token={self.token}"), timeout=1).read()
                break
            except OSError:
                time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError("server did not start in 90 s")
        self.start_seconds = time.perf_counter() - started

    def restart(self) -> None:
        """Stop the server (SIGTERM, as a user would) and start it again on the same port, root and state."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            started = time.perf_counter()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait()
            self.stop_seconds = time.perf_counter() - started
        self._log.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()
