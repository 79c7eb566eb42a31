"""A real JupyterHub on 127.0.0.1 for tests: the hub, configurable-http-proxy (npm, tests/hub), one single-user
server per person (each a Jupyter server with the agent), and a LiteLLM proxy the agents call as their model.

Every process is started here and ended here, by its id, with whatever it started (single-user servers and
the proxy are the hub's children): :func:`stop_process_tree`. State lives in one temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_agent.testing.jupyter import free_port
from jupyter_agent.testing.processes import stop_process_tree
from tests.clients import AgentSocket

HUB_DIR = Path(__file__).parent / "hub"
CHP = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
BIN = Path(sys.executable).parent
LOOPBACK_ENV = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
# litellm offline: its model cost map from the package, not fetched at import.
OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", **LOOPBACK_ENV}


def wait_until(
    check: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen | None = None
) -> Any:
    """Poll ``check`` (every 50 ms) until it returns something truthy; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        with suppress(httpx.HTTPError, OSError):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class LiteLLMProxy:
    """``litellm --config`` in front of an OpenAI-compatible server, under the model name ``alias``.

    Clients authenticate with ``master_key``; it calls ``upstream`` as ``openai/<upstream_model>``.
    """

    def __init__(self, base: Path, upstream: str, alias: str, upstream_model: str = "scripted") -> None:
        self.base = base
        self.port = free_port()
        self.alias = alias
        self.master_key = "sk-hub-test-master-" + os.urandom(8).hex()
        self.log_path = base / "litellm.log"
        config = {
            "model_list": [
                {
                    "model_name": alias,
                    "litellm_params": {
                        "model": f"openai/{upstream_model}",
                        "api_base": upstream,
                        "api_key": "sk-upstream-not-checked",
                    },
                }
            ],
            "general_settings": {"master_key": self.master_key},
            "litellm_settings": {"num_retries": 0},
        }
        self.config_path = base / "litellm.yaml"
        self.config_path.write_text(json.dumps(config, indent=1))  # JSON is YAML
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            **OFFLINE_ENV,
            "LITELLM_EVENT_LOOP": "asyncio",  # uvloop is an optional speed-up we do not install
            "LITELLM_TELEMETRY_DISABLED": "True",  # the proxy's own usage telemetry: off
            "PYTHONUNBUFFERED": "1",  # its access log, which completions_served() reads, written at once
        }
        cmd = [str(BIN / "litellm"), "--config", str(self.config_path), "--host", "127.0.0.1"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(self.port)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.base
            )

    def wait_ready(self, timeout: float = 150) -> None:
        def alive() -> bool:
            return httpx.get(f"{self.url}/health/liveliness", timeout=2).status_code == 200

        try:
            wait_until(alive, timeout, "the LiteLLM proxy", self.proc)
        except Exception as err:
            raise RuntimeError(f"{err}\n--- litellm log ---\n{tail(self.log_path)}") from None

    def completions_served(self) -> int:
        """Chat completions the proxy answered (200), from its access log."""
        return len(re.findall(r'"POST /(?:v1/)?chat/completions HTTP/1.1" 200', tail(self.log_path, 10**7)))

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_tree(self.proc)


class Hub:
    """JupyterHub with SharedPasswordAuthenticator, SimpleLocalProcessSpawner and a service token for admin
    calls. Each person's server is ``jupyterhub-singleuser`` (Jupyter server + JupyterLab) with the agent,
    jupyter_server_ydoc and fileid, its root ``<home>/work``, configured as ``agent`` says (``JupyterAgent``)."""

    password = "hub-test-password"

    def __init__(
        self, base: Path, people: list[str], roles: list[dict[str, Any]], agent: dict[str, Any]
    ) -> None:
        self.base = base
        self.people = people
        self.port, self.hub_port, self.api_port = free_port(), free_port(), free_port()
        self.admin_token = "hub-test-admin-" + os.urandom(16).hex()
        self.log_path = base / "hub.log"
        self.homes = base / "home"
        self.proc: subprocess.Popen | None = None
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {self.admin_token}"}, timeout=30
        )
        config_dir = base / "singleuser-config"
        config_dir.mkdir()
        server_config = {
            "ServerApp": {
                "jpserver_extensions": {
                    "jupyter_agent": True,
                    "jupyter_server_ydoc": True,
                    "jupyter_server_fileid": True,
                },
                "allow_root": True,
            },
            "YDocExtension": {"document_save_delay": 0.2},
            "JupyterAgent": agent,
        }
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(server_config, indent=1))
        for name in people:
            (self.homes / name / "work").mkdir(parents=True)
        settings = {
            "JupyterHub.bind_url": self.url + "/",
            "JupyterHub.hub_bind_url": f"http://127.0.0.1:{self.hub_port}",
            "JupyterHub.db_url": f"sqlite:///{base / 'jupyterhub.sqlite'}",
            "JupyterHub.cookie_secret_file": str(base / "jupyterhub_cookie_secret"),
            "JupyterHub.authenticator_class": "shared-password",
            "SharedPasswordAuthenticator.user_password": self.password,
            "Authenticator.allowed_users": set(people),
            "JupyterHub.spawner_class": "jupyterhub.spawner.SimpleLocalProcessSpawner",
            "SimpleLocalProcessSpawner.home_dir_template": str(self.homes / "{username}"),
            "Spawner.cmd": [sys.executable, "-m", "jupyterhub.singleuser"],
            "Spawner.notebook_dir": str(self.homes / "{username}" / "work"),
            "Spawner.default_url": "/lab",
            "Spawner.environment": {
                **OFFLINE_ENV,
                "JUPYTER_CONFIG_DIR": str(config_dir),
            },
            "Spawner.start_timeout": 150,
            "Spawner.http_timeout": 150,
            "ConfigurableHTTPProxy.command": [str(CHP)],
            "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{self.api_port}",
            "ConfigurableHTTPProxy.pid_file": str(base / "proxy.pid"),
            "JupyterHub.services": [{"name": "hub-test-admin", "api_token": self.admin_token}],
            "JupyterHub.load_roles": [
                {
                    "name": "hub-test-admin",
                    "scopes": ["admin:users", "admin:servers", "tokens"],
                    "services": ["hub-test-admin"],
                },
                *roles,
            ],
        }
        lines = ["c = get_config()  # noqa"] + [f"c.{key} = {value!r}" for key, value in settings.items()]
        self.config_path = base / "jupyterhub_config.py"
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not CHP.exists():
            raise RuntimeError(f"{CHP} is missing: run `npm ci --prefix tests/hub`")
        env = {**os.environ, **OFFLINE_ENV}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(self.config_path)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base,
            )

    def wait_ready(self, timeout: float = 90) -> None:
        """The hub answers on its own port, then through the proxy (which routes to it once told to)."""

        def up(url: str) -> bool:
            return httpx.get(url, timeout=2).status_code == 200

        hub_api = f"http://127.0.0.1:{self.hub_port}/hub/api/"
        wait_until(lambda: up(hub_api), timeout, "JupyterHub", self.proc)
        wait_until(lambda: up(f"{self.url}/hub/api/"), timeout, "JupyterHub through its proxy", self.proc)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to the hub's REST API as the admin service."""
        return self.client.request(method, f"/hub/api/{path}", **kwargs)

    def spawn(self, name: str) -> None:
        response = self.api("POST", f"users/{name}/server")
        assert response.status_code in (201, 202), response.text

    def wait_server(self, name: str, timeout: float = 150) -> None:
        def ready() -> bool:
            server = self.api("GET", f"users/{name}").json()["servers"].get("")
            return bool(server and server["ready"])

        try:
            wait_until(ready, timeout, f"{name}'s server", self.proc)
        except Exception as err:
            raise RuntimeError(f"{err}\n--- hub log ---\n{tail(self.log_path, 8000)}") from None

    def token(self, name: str) -> str:
        """A new API token of ``name`` (with all of their permissions), minted by the admin service."""
        response = self.api("POST", f"users/{name}/tokens", json={"note": "hub test", "expires_in": 3600})
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def stop(self) -> None:
        self.client.close()
        if self.proc is not None:
            stop_process_tree(self.proc, timeout=30)


NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "same-origin"}  # what a browser sends for a page


def log_in_with_browser(hub: Hub, name: str, timeout: float = 150) -> tuple[httpx.Cookies, list[str]]:
    """Log ``name`` in as a browser does: the login form (with its XSRF field), the spawn it starts, then
    JupyterLab on their server, which sends the browser through the hub's OAuth. Returns the cookies and
    the paths of the pages the browser went through."""
    with httpx.Client(base_url=hub.url, headers=NAVIGATE, timeout=30, follow_redirects=True) as browser:
        page = browser.get("/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        assert page.status_code == 200 and xsrf, page.text[:2000]
        form = {"username": name, "password": hub.password, "_xsrf": xsrf.group(1)}
        landed = browser.post("/hub/login", data=form)  # -> /hub/spawn: the hub starts the server
        assert landed.status_code == 200, (landed.url, landed.text[:2000])
        hub.wait_server(name, timeout)  # the "server is starting" page waits the same way
        lab = browser.get(f"/user/{name}/lab")
        assert lab.status_code == 200 and "jupyter-config-data" in lab.text, (lab.url, lab.text[:2000])
        visited = [page.url.path, *(r.url.path for r in (*landed.history, landed, *lab.history, lab))]
        return browser.cookies, visited


class Person:
    """One person's client of the hub: their browser's cookies, or an API token."""

    def __init__(
        self, hub: Hub, name: str, *, token: str | None = None, cookies: httpx.Cookies | None = None
    ) -> None:
        self.hub = hub
        self.name = name
        self.token = token
        headers = {"Authorization": f"token {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=hub.url, headers=headers, cookies=cookies, timeout=30)
        self._sockets: list[AgentSocket] = []

    async def open_lab(self, owner: str) -> httpx.Response:
        """Open ``/user/<owner>/lab`` as a page (the hub's OAuth decides whether this person may)."""
        return await self.http.get(f"/user/{owner}/lab", headers=NAVIGATE, follow_redirects=True)

    def _api_headers(self, owner: str) -> dict[str, str]:
        if self.token:
            return {}
        # A page's fetch(), as JupyterLab makes it: the XSRF token the server set as a cookie, sent back
        # as a header (the hub checks it on every cookie-authenticated API request).
        xsrf = self.http.cookies.get("_xsrf", path=f"/user/{owner}/") or ""
        return {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin", "X-XSRFToken": xsrf}

    async def call(self, method: str, owner: str, *parts: str, body: Any = None) -> tuple[int, Any]:
        """``method /user/<owner>/<parts>``; returns (status, parsed JSON or the text)."""
        path = "/".join((f"/user/{owner}", *parts))
        response = await self.http.request(
            method,
            path,
            headers=self._api_headers(owner),
            content=None if body is None else json.dumps(body),
        )
        try:
            data = response.json()
        except ValueError:
            data = response.text
        return response.status_code, data

    async def agent(self, method: str, owner: str, *parts: str, body: Any = None) -> tuple[int, Any]:
        return await self.call(method, owner, "api", "agent", *parts, body=body)

    async def new_session(self, owner: str, title: str) -> str:
        status, data = await self.agent("POST", owner, "sessions", body={"title": title})
        assert status == 201, (status, data)
        return data["id"]

    async def connect(self, owner: str, session: str) -> AgentSocket:
        """The session's WebSocket on ``owner``'s server; raises on a refused upgrade."""
        url = f"ws://127.0.0.1:{self.hub.port}/user/{owner}/api/agent/sessions/{session}/ws"
        headers = {"Sec-Fetch-Mode": "websocket", "Sec-Fetch-Site": "same-origin"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        else:
            # What the browser sends to this address: the cookies whose path covers it.
            sent = {
                c.name: c.value for c in self.http.cookies.jar if f"/user/{owner}/".startswith(c.path or "/")
            }
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in sent.items())
        sock = AgentSocket(await websocket_connect(HTTPRequest(url, headers=headers)))
        self._sockets.append(sock)
        hello = await sock.next()
        assert hello["type"] == "hello", hello
        return sock

    async def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        await self.http.aclose()


async def answer(sock: AgentSocket, text: str, timeout: float = 60) -> dict[str, Any]:
    """Send ``text`` as a prompt and return the turn: its user message, assistant answer and end frame."""
    frames = await sock.turn(text, timeout=timeout)
    messages = [f for f in frames if f["type"] == "message" and not f.get("partial")]
    user = next(f for f in messages if f["role"] == "user")
    reply = [f["content"] for f in messages if f["role"] == "assistant"]
    return {"user": user, "answer": "".join(reply), "end": frames[-1], "frames": frames}
