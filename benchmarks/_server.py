"""Start and stop a real Jupyter server with the agent for benchmarks (a subprocess on 127.0.0.1)."""

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """``with JupyterServer(agent=True, llm_base_url=...) as srv:`` — srv.port, srv.token, srv.start_seconds."""

    def __init__(
        self, agent: bool = True, llm_base_url: str | None = None, extra: dict | None = None
    ) -> None:
        self.agent = agent
        self.llm_base_url = llm_base_url
        self.extra = extra or {}
        self.port = free_port()
        self.token = "bench-token"
        self.start_seconds = 0.0
        self.stop_seconds = 0.0
        self._tmp = tempfile.TemporaryDirectory(prefix="jupyter-agent-bench-")
        self.root = Path(self._tmp.name) / "root"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def __enter__(self) -> JupyterServer:
        base = Path(self._tmp.name)
        self.root.mkdir()
        (base / "config").mkdir()
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
            "SQLiteYStore": {"db_path": str(base / "ystore.db")},
            "BaseFileIdManager": {"db_path": str(base / "fileid.db")},
            "JupyterAgent": {
                "model": "openai/scripted",
                "model_options": {
                    "api_base": self.llm_base_url or "http://127.0.0.1:9/v1",
                    "api_key": "sk-bench",
                },
                "db_path": str(base / "agent.db"),
                **self.extra,
            },
        }
        (base / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(base / "config"),
            "JUPYTER_DATA_DIR": str(base / "data"),
            "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        cmd = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--port={self.port}",
            "--ip=127.0.0.1",
            "--allow-root",
            "--ServerApp.port_retries=0",
        ]
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(base / "server.log", "wb")
        )
        deadline = started + 60
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(base / 'server.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url(f"api/status?token={self.token}"), timeout=1).read()
                break
            except OSError:
                time.sleep(0.02)
        else:
            raise RuntimeError("server did not start in 60 s")
        self.start_seconds = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stop_seconds = time.perf_counter() - started
        self._tmp.cleanup()
