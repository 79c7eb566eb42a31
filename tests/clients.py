"""Test clients: the agent's REST + WebSocket API, and an independent collaborative notebook client."""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Provider
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

TERMINAL = ("done", "error")


class AgentSocket:
    """One WebSocket on one session: send frames, wait for the events you expect."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.received: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.conn.write_message(json.dumps(frame))

    async def send_raw(self, message: str | bytes) -> None:
        await self.conn.write_message(message, binary=isinstance(message, bytes))

    async def next(self, timeout: float = 30.0) -> dict[str, Any]:
        message = await asyncio.wait_for(self.conn.read_message(), timeout)
        if message is None:
            raise ConnectionError("the agent closed the WebSocket")
        frame = json.loads(message)
        self.received.append(frame)
        return frame

    async def until(self, predicate, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Frames up to and including the first one that matches."""
        frames = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next(timeout)
                frames.append(frame)
                if predicate(frame):
                    return frames

    async def until_type(self, *types: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        return await self.until(lambda f: f.get("type") in types, timeout)

    async def turn(self, text: str, timeout: float = 60.0, **fields: Any) -> list[dict[str, Any]]:
        """Send a prompt and return every frame up to the turn's done or error."""
        await self.send(type="prompt", text=text, **fields)
        return await self.until_type(*TERMINAL, timeout=timeout)

    def close(self) -> None:
        self.conn.close()


class AgentClient:
    def __init__(self, fetch, port: int, base_url: str, auth_header: dict[str, str]) -> None:
        self._fetch = fetch
        self.port = port
        self.base_url = base_url
        self.auth_header = auth_header
        self._sockets: list[AgentSocket] = []

    async def request(
        self,
        method: str,
        *parts: str,
        body: Any = None,
        params: dict | None = None,
        expect: int | None = None,
    ) -> Any:
        """Call the API; returns (status, parsed JSON or None). HTTP errors are returned, not raised."""
        kwargs: dict[str, Any] = {"method": method}
        if body is not None:
            kwargs["body"] = body if isinstance(body, str | bytes) else json.dumps(body)
        if params:
            kwargs["params"] = params
        try:
            response = await self._fetch("api", "agent", *parts, **kwargs)
            status, raw = response.code, response.body
        except HTTPClientError as err:
            status, raw = err.code, err.response.body if err.response else b""
        data = json.loads(raw) if raw else None
        if expect is not None:
            assert status == expect, (status, data)
        return status, data

    async def new_session(self, title: str = "") -> str:
        _, data = await self.request("POST", "sessions", body={"title": title}, expect=201)
        return data["id"]

    async def connect(self, session_id: str, after: int | None = None, hello: bool = True) -> AgentSocket:
        url = f"ws://127.0.0.1:{self.port}{self.base_url}api/agent/sessions/{session_id}/ws"
        if after is not None:
            url += f"?after={after}"
        conn = await websocket_connect(HTTPRequest(url, headers=self.auth_header))
        sock = AgentSocket(conn)
        self._sockets.append(sock)
        if hello:
            frame = await sock.next()
            assert frame["type"] == "hello", frame
        return sock

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


def open_agent(fetch, port: int, base_url: str, auth_header: dict[str, str]) -> AgentClient:
    return AgentClient(fetch, port, base_url, auth_header)


class TornadoChannel:
    """pycrdt's Channel over a tornado WebSocket client connection."""

    def __init__(self, conn: WebSocketClientConnection, path: str) -> None:
        self._conn = conn
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        message = await self._conn.read_message()
        if message is None:
            raise StopAsyncIteration
        return message

    async def send(self, message: bytes) -> None:
        await self._conn.write_message(message, binary=True)

    async def recv(self) -> bytes:
        return await self.__anext__()


@asynccontextmanager
async def collaborator(
    fetch, port: int, base_url: str, auth_header: dict[str, str], path: str, kind: str = "notebook"
):
    """An independent collaborative client on ``path`` (as a second person's JupyterLab would be)."""
    doc = YNotebook() if kind == "notebook" else YUnicode()
    conn, room = await room_socket(fetch, port, base_url, auth_header, path, kind)
    async with Provider(doc.ydoc, TornadoChannel(conn, room)):
        yield doc
    conn.close()


async def room_socket(
    fetch, port: int, base_url: str, auth_header: dict[str, str], path: str, kind: str = "notebook"
) -> tuple[WebSocketClientConnection, str]:
    """A raw WebSocket on the collaboration room of ``path`` (it receives the room's sync and awareness
    messages, as JupyterLab does), and the room's name."""
    file_format = "json" if kind == "notebook" else "text"
    response = await fetch(
        "api",
        "collaboration",
        "session",
        path,
        method="PUT",
        body=json.dumps({"format": file_format, "type": kind}),
    )
    session = json.loads(response.body)
    room = f"{file_format}:{kind}:{session['fileId']}"
    # Built by hand: jp_ws_fetch escapes ':' and would silently join another room (STACK-NOTES).
    url = f"ws://127.0.0.1:{port}{base_url}api/collaboration/room/{room}?sessionId={session['sessionId']}"
    return await websocket_connect(HTTPRequest(url, headers=auth_header)), room


async def agent_in_room(conn: WebSocketClientConnection) -> bytes:
    """The first awareness message of the room that shows the agent among the collaborators."""
    async with asyncio.timeout(15):
        while True:
            message = await conn.read_message()
            assert message is not None, "the room closed"
            if isinstance(message, bytes) and message[:1] == b"\x01" and b"Jupyter Agent" in message:
                return message  # 1: an awareness message


async def wait_for(predicate, timeout: float = 15.0, what: str = "condition") -> Any:
    """Wait until ``predicate()`` is truthy, checking after every change the event loop processes."""
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.01)


@contextmanager
def serve_page(page: bytes):
    """Serve one HTML page at every path on 127.0.0.1; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
