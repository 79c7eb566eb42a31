"""``%%agent --cells``: hand the request to the agent of the Jupyter server this kernel belongs to.

The server's agent writes its code as real cells of the live notebook (the shared document everyone sees)
and runs them in this very kernel. So the cell that asked only sends the prompt and returns: were it to wait,
the kernel would be busy and the cells the agent runs would wait for it. Progress shows in the notebook
itself and in the chat panel (the session is named in the cell's output).

Finding the server and the notebook: jupyter_server lists the running servers (from the Jupyter runtime
directory, with their URL and token); the one whose sessions include this kernel's id knows the notebook's
path. ``JUPYTER_AGENT_SERVER_URL`` and ``JUPYTER_AGENT_SERVER_TOKEN`` name the server instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_agent.errors import AgentError

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 10.0


@dataclass
class ServerLink:
    url: str  # ends with "/"
    token: str
    notebook: str  # API path of the notebook this kernel runs

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, method=method, data=data, headers=self.headers())
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        return headers


def kernel_id() -> str | None:
    """This kernel's id, from its connection file name (``kernel-<id>.json``)."""
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).name
    except Exception:  # not in a kernel started with a connection file
        return None
    return (
        name[len("kernel-") : -len(".json")]
        if name.startswith("kernel-") and name.endswith(".json")
        else None
    )


def _servers() -> list[tuple[str, str]]:
    """(url, token) of the Jupyter servers that may run this kernel."""
    url = os.environ.get("JUPYTER_AGENT_SERVER_URL")
    if url:
        return [(url.rstrip("/") + "/", os.environ.get("JUPYTER_AGENT_SERVER_TOKEN", ""))]
    # Imported here, not with the module: it loads the whole server (~350 modules, seconds), which only
    # --cells needs, and find_server runs in a worker thread so the kernel's loop does not wait for it.
    from jupyter_server.serverapp import list_running_servers

    return [
        (str(info["url"]).rstrip("/") + "/", str(info.get("token", ""))) for info in list_running_servers()
    ]


def find_server() -> ServerLink:
    """The server running this kernel and the notebook the kernel belongs to; AgentError saying why not."""
    kid = kernel_id()
    if kid is None:
        raise AgentError("--cells works in a notebook kernel started by a Jupyter server", code="no_server")
    servers = _servers()
    if not servers:
        raise AgentError(
            "--cells needs the Jupyter server this kernel runs in, and none was found in the Jupyter runtime "
            "directory (set JUPYTER_AGENT_SERVER_URL and JUPYTER_AGENT_SERVER_TOKEN to name it)",
            code="no_server",
        )
    for url, token in servers:
        link = ServerLink(url, token, "")
        try:
            sessions = link.request("GET", "api/sessions")
        except (OSError, urllib.error.URLError, ValueError):
            continue
        for session in sessions or []:
            if (session.get("kernel") or {}).get("id") == kid and session.get(
                "type", "notebook"
            ) == "notebook":
                link.notebook = str(session.get("path", "")).split(":", 1)[-1]
                return link
    raise AgentError(
        "--cells could not tell which notebook this kernel belongs to: no running Jupyter server lists it "
        "(a console, or a server that needs a password?)",
        code="no_notebook",
    )


def cell_instruction(notebook: str, cell_id: str | None) -> str:
    where = f"right below the cell with id {cell_id} (the cell that asked)" if cell_id else "at the end"
    return (
        f"[Write your code as new cells of {notebook}, inserted {where}, and run them. "
        "The notebook's kernel is busy until the cell that asked has finished: that happens at once.]"
    )


async def send_to_server(request: Any, channel: Any, remembered: dict[str, str]) -> None:
    """Send ``request`` to the server's agent; puts a note and then the end on ``channel``."""
    final: dict[str, Any] = {"type": "done", "reason": "completed"}
    try:
        link = await asyncio.to_thread(find_server)
        session_id = await asyncio.to_thread(_session_for, link, remembered, request)
        await _prompt(link, session_id, request)
        channel.put(
            "note",
            f"Sent to the agent of the Jupyter server (session {session_id[:8]}): it writes its cells below "
            f"this one in {link.notebook}. Follow it in the notebook and in the agent's chat panel.",
        )
    except AgentError as err:
        final = {"type": "error", "code": err.code, "message": err.message}
    except (OSError, urllib.error.URLError) as err:
        message = f"the Jupyter server did not answer: {err}"
        final = {"type": "error", "code": "server_error", "message": message}
    except Exception as err:
        log.exception("Sending the request to the Jupyter server failed")
        final = {"type": "error", "code": "internal_error", "message": f"{type(err).__name__}: {err}"}
    finally:
        channel.put("end", final)


def _session_for(link: ServerLink, remembered: dict[str, str], request: Any) -> str:
    """The server session of this kernel's conversation (created the first time)."""
    key = f"{link.url}|{request.session or ''}"
    session_id = remembered.get(key)
    if session_id:
        try:
            link.request("GET", f"api/agent/sessions/{session_id}")
            return session_id
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise
    try:
        created = link.request("POST", "api/agent/sessions", {"title": request.session or ""})
    except urllib.error.HTTPError as err:
        if err.code == 404:
            raise AgentError(
                "the agent extension is not enabled on this Jupyter server", code="no_agent"
            ) from None
        raise
    remembered[key] = created["id"]
    return created["id"]


async def _prompt(link: ServerLink, session_id: str, request: Any) -> dict[str, Any]:
    """Send the prompt over the session's WebSocket; returns the logged user message (the turn began)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    # after=: no replay of the session's log, so the first user message that arrives is this prompt's
    ws_url = "ws" + link.url[len("http") :] + f"api/agent/sessions/{session_id}/ws?after=999999999999"
    conn = await websocket_connect(HTTPRequest(ws_url, headers=link.headers(), connect_timeout=HTTP_TIMEOUT))
    try:
        hello = json.loads(await asyncio.wait_for(conn.read_message(), HTTP_TIMEOUT) or "{}")
        if hello.get("type") != "hello":
            raise AgentError(f"unexpected answer from the server's agent: {hello}", code="server_error")
        text = f"{request.text}\n\n{cell_instruction(link.notebook, request.cell_id)}"
        frame: dict[str, Any] = {"type": "prompt", "text": text, "context": {"notebook": link.notebook}}
        if request.model:
            frame["model"] = request.model
        await conn.write_message(json.dumps(frame))
        while True:
            message = await asyncio.wait_for(conn.read_message(), HTTP_TIMEOUT)
            if message is None:
                raise AgentError(
                    "the server closed the connection before taking the prompt", code="server_error"
                )
            event = json.loads(message)
            if event.get("type") == "error" and "seq" not in event:
                raise AgentError(
                    event.get("message", "the server refused the prompt"), code=event.get("code")
                )
            if event.get("type") == "message" and event.get("role") == "user":
                return event
    finally:
        conn.close()
