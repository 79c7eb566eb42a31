"""Sending the fuzz cases of :mod:`tests.fuzz_strategies` to a real agent server, and what must hold after
each one (tests/test_fuzz.py and benchmarks/fuzz.py share it):

- every HTTP answer is below 500, or a 5xx whose body is JSON with a ``code`` and a ``message``;
- every bad WebSocket frame gets an error frame with ``code`` and ``message`` (never ``internal_error``), and
  the connection stays open: the ``ping`` sent after each frame gets its ``pong``;
- every turn a case starts ends (the case cancels what still runs, then waits for each turn's done/error);
- the server keeps serving (``GET /api/agent/health`` answers 200 after every case);
- nothing outside the server's root changes: a sentinel directory next to the root (which the root's
  symlinks point into) and the names in the root's parent are the same after every case.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from jupyter_agent.engine.types import TERMINAL_EVENTS
from jupyter_agent.server.browser_handlers import MAX_INPUT_BYTES as BROWSER_INPUT_BYTES
from jupyter_agent.testing.scripted_llm import Reply
from tests.fuzz_strategies import OUTSIDE, PLAN_TASK_IDS, ROOT, SESSION, ConnectCase, Frame, HttpCase, WsCase

WAIT = 60.0  # seconds one answer (a pong, a turn's end, an HTTP reply) may take before it counts as a hang
SOCKET_TYPES = {
    "session": frozenset(
        {"prompt", "cancel", "approve", "plan_approve", "plan_edit", "task_control", "ping"}
    ),
    "browser": frozenset({"input", "control", "ping"}),
}


class Violation(AssertionError):
    """A property of the server did not hold for a case."""


def fuzz_model(body: dict[str, Any]) -> Reply:
    """The scripted model's answers during fuzzing: a two-task plan to planning requests, "met" to task checks,
    and a short text to everything else (so every turn ends quickly)."""
    response_format = body.get("response_format") or {}
    name = (response_format.get("json_schema") or {}).get("name")
    if name == "task_check":
        return Reply(text=json.dumps({"met": True, "reason": "ok"}))
    if name:
        first, second = PLAN_TASK_IDS
        tasks = [
            {
                "id": task_id,
                "title": f"Task {task_id}",
                "description": f"Do {task_id}.",
                "depends_on": deps,
                "tools": [],
                "notebooks": [],
                "estimate_s": 1.0,
                "acceptance": f"{task_id} is done",
            }
            for task_id, deps in ((first, []), (second, [first]))
        ]
        return Reply(text=json.dumps({"tasks": tasks}))
    return Reply(text="ok")


# -- the sandbox around the root --------------------------------------------------------------------------------


def prepare_sandbox(root: Path) -> Path:
    """Put a sentinel directory ``outside`` next to ``root`` and symlinks into it inside the root
    (``escape`` -> the directory, ``escape_file`` -> its ``secret.txt``); return the sentinel directory."""
    outside = root.parent / "outside"
    (outside / "sub").mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text("the sentinel: must never change\n")
    (outside / "sub" / "deep.txt").write_text("deeper\n")
    (root / "escape").symlink_to(Path("..") / "outside", target_is_directory=True)
    (root / "escape_file").symlink_to(Path("..") / "outside" / "secret.txt")
    (root / "notes.txt").write_text("notes in the root\n")
    return outside


@dataclass
class Snapshot:
    """Every file under the sentinel directory (content hash, size, mtime) and the names in the root's
    parent, except the server's own state (``state``: name prefixes it may create or change there)."""

    parent: Path
    outside: Path
    state: tuple[str, ...]
    taken: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.taken = self._take()

    def _take(self) -> dict[str, Any]:
        files: dict[str, Any] = {}
        for dirpath, dirnames, filenames in os.walk(self.outside):
            for name in [*dirnames, *filenames]:
                path = Path(dirpath) / name
                info = path.lstat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
                files[str(path.relative_to(self.outside))] = (
                    info.st_mode,
                    info.st_size,
                    info.st_mtime_ns,
                    digest,
                )
        names = sorted(n for n in os.listdir(self.parent) if not n.startswith(self.state))
        return {"outside": files, "parent": names}

    def changes(self) -> list[str]:
        now = self._take()
        before, after = self.taken["outside"], now["outside"]
        out = [
            f"{self.outside / p} changed"
            for p in sorted(before.keys() & after.keys())
            if before[p] != after[p]
        ]
        out += [f"{self.outside / p} was removed" for p in sorted(before.keys() - after.keys())]
        out += [f"{self.outside / p} appeared" for p in sorted(after.keys() - before.keys())]
        if now["parent"] != self.taken["parent"]:
            out.append(f"the names in {self.parent} changed: {self.taken['parent']} -> {now['parent']}")
        return out


# -- the server ------------------------------------------------------------------------------------------------


@dataclass
class Target:
    """A running server with the agent: where it listens, how to authenticate, where its files are."""

    url: str  # "http://127.0.0.1:<port><base_url>"
    headers: dict[str, str]
    root: Path
    backup_dir: Path
    snapshot: Snapshot
    max_message_bytes: int = 1_048_576

    @property
    def outside(self) -> Path:
        return self.snapshot.outside

    def fill(self, value: str) -> str:
        return value.replace(ROOT, str(self.root)).replace(OUTSIDE, str(self.outside))


@dataclass
class Outcome:
    """What a case saw: its route, the kinds of frames it sent, and the answers (HTTP statuses, handshake
    statuses, the error codes of frame answers, ``ok`` for a frame answered without an error)."""

    route: str
    kinds: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


class FuzzRunner:
    """Runs cases one at a time against ``target`` and raises :class:`Violation` when a property fails."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.http_client = AsyncHTTPClient()

    async def run(self, case: HttpCase | WsCase | ConnectCase) -> Outcome:
        async with asyncio.timeout(4 * WAIT):
            if isinstance(case, HttpCase):
                outcome = await self.run_http(case)
            elif isinstance(case, WsCase):
                outcome = await self.run_ws(case)
            else:
                outcome = await self.run_connect(case)
            await self.check_server()
        return outcome

    # -- HTTP ---------------------------------------------------------------------------------------------

    async def fetch(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> HTTPResponse:
        headers = dict(self.target.headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = HTTPRequest(
            f"{self.target.url}api/agent/{path}",
            method=method,
            headers=headers,
            body=body,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            request_timeout=WAIT,
        )
        return await self.http_client.fetch(request, raise_error=False)

    async def run_http(self, case: HttpCase) -> Outcome:
        named = [case.path, *case.query.values()]
        wanted = any(SESSION in s for s in named) or SESSION.encode() in (case.body or b"")
        sid = await self.new_session(backups="files/restore" in case.path) if wanted else None
        path = self.target.fill(case.path.replace(SESSION, sid or SESSION))
        query = {k: self.target.fill(v.replace(SESSION, sid or SESSION)) for k, v in case.query.items()}
        if query:
            path += "?" + urlencode(query, encoding="utf-8", errors="surrogatepass")
        body = case.body
        if body is not None:
            for mark, value in (
                (SESSION, sid or SESSION),
                (ROOT, str(self.target.root)),
                (OUTSIDE, str(self.target.outside)),
            ):
                body = body.replace(mark.encode(), value.encode())
        response = await self.fetch(case.method, path, body, case.content_type)
        check_http(case.route, response)
        if sid is not None:
            await self.delete_session(sid)
        return Outcome(case.route, answers=[str(response.code)])

    async def new_session(self, backups: bool = False) -> str:
        response = await self.fetch("POST", "sessions", b"{}")
        if response.code != 201:
            raise Violation(f"POST sessions answered {response.code}: {response.body[:500]!r}")
        sid = json.loads(response.body)["id"]
        if backups:
            self.plant_backups(sid)
        return sid

    def plant_backups(self, sid: str) -> None:
        """Backups as the agent keeps them before it writes a file (``<stamp>~<percent-encoded path>``), so
        that a restore has something to restore: one inside the root, others whose paths leave it."""
        folder = self.target.backup_dir / sid
        folder.mkdir(parents=True, exist_ok=True)
        paths = ("notes.txt", "escape/secret.txt", "escape_file", "../outside/secret.txt")
        for i, path in enumerate(paths):
            (folder / f"20240101T000000.00000{i}~{quote(path, safe='')}").write_text(f"backup of {path}\n")

    async def delete_session(self, sid: str) -> None:
        response = await self.fetch("DELETE", f"sessions/{sid}")
        check_http("DELETE sessions/{id} (cleanup)", response)

    async def check_server(self) -> None:
        response = await self.fetch("GET", "health")
        if response.code != 200 or json.loads(response.body).get("status") != "ok":
            raise Violation(f"health answered {response.code} after the case: {response.body[:500]!r}")
        changes = self.target.snapshot.changes()
        if changes:
            raise Violation("files outside the root changed: " + "; ".join(changes))

    # -- WebSockets ---------------------------------------------------------------------------------------

    def ws_url(self, socket: str, sid: str, query: dict[str, str] | None = None) -> str:
        url = f"ws{self.target.url.removeprefix('http')}api/agent/sessions/{sid}/"
        url += "ws" if socket == "session" else "browser/ws"
        return url + ("?" + urlencode(query) if query else "")

    async def connect(self, url: str) -> WebSocketClientConnection:
        request = HTTPRequest(url, headers=self.target.headers, request_timeout=WAIT)
        return await websocket_connect(request, max_message_size=256 * 1024 * 1024)

    async def run_connect(self, case: ConnectCase) -> Outcome:
        sid = await self.new_session() if case.session_id == SESSION else None
        url = self.ws_url(case.socket, sid or case.session_id, case.query)
        try:
            conn = await self.connect(url)
        except HTTPClientError as err:
            if err.code >= 500:
                body = err.response.body if err.response is not None else b""
                raise Violation(f"the {case.route} handshake answered {err.code}: {body[:500]!r}") from None
            answer = str(err.code)
        else:  # accepted: the socket must greet (hello, or the browser's state) and stay open
            talk = Conversation(conn, case.socket)
            try:
                first = await talk.next()
                await talk.exchange(json.dumps({"type": "ping"}))
            finally:
                conn.close()
            if first.get("type") not in ("hello", "state"):
                raise Violation(f"the {case.route} socket opened with {first} instead of a greeting")
            answer = "101"
        if sid is not None:
            await self.delete_session(sid)
        return Outcome(case.route, answers=[answer])

    async def run_ws(self, case: WsCase) -> Outcome:
        sid = await self.new_session()
        conn = await self.connect(self.ws_url(case.socket, sid))
        talk = Conversation(conn, case.socket)
        outcome = Outcome(case.route)
        try:
            if case.planned:
                await talk.send_text(json.dumps({"type": "prompt", "text": "Plan the fuzzing", "plan": True}))
                await talk.read_until(
                    lambda f: f.get("type") == "plan" and f.get("status") == "awaiting_approval"
                )
            limit = self.target.max_message_bytes if case.socket == "session" else BROWSER_INPUT_BYTES
            for frame in case.frames:
                message = encode(frame, limit, self.target.fill)
                answers = await talk.exchange(message)
                check_answers(case.socket, frame, message, answers, limit)
                outcome.kinds.append(frame.kind)
                outcome.answers += [a["code"] for a in answers] or ["ok"]
            if case.socket == "session":
                await talk.finish_turns()
        finally:
            conn.close()
        await self.delete_session(sid)
        return outcome


class Conversation:
    """One WebSocket: sends a message then a ping, collects what comes back until the pong; follows the
    turns it sees start (a user ``message``) and end (``done``/``error`` with a ``seq``)."""

    def __init__(self, conn: WebSocketClientConnection, socket: str) -> None:
        self.conn = conn
        self.socket = socket
        self.started: set[str] = set()
        self.ended: set[str] = set()
        self._pings = itertools.count(1)

    async def send_text(self, message: str | bytes) -> None:
        try:
            await self.conn.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            raise Violation(
                f"the server closed the {self.socket} WebSocket (code {self.conn.close_code})"
            ) from None

    async def next(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self.conn.read_message(), WAIT)
        if message is None:
            raise Violation(f"the server closed the {self.socket} WebSocket (code {self.conn.close_code})")
        frame = json.loads(message)
        if not isinstance(frame, dict):
            raise Violation(f"the server sent a frame that is not an object: {message[:300]!r}")
        if "seq" in frame and "task" not in frame and frame.get("turn"):
            if frame.get("type") == "message" and frame.get("role") == "user":
                self.started.add(frame["turn"])
            elif frame.get("type") in TERMINAL_EVENTS:
                self.ended.add(frame["turn"])
        return frame

    async def read_until(self, predicate: Any) -> list[dict[str, Any]]:
        frames = []
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    frames.append(await self.next())
                    if predicate(frames[-1]):
                        return frames
        except TimeoutError:
            raise Violation(f"no answer in {WAIT:g} s; last frames: {frames[-3:]}") from None

    async def exchange(self, message: str | bytes) -> list[dict[str, Any]]:
        """Send ``message`` then a ping; the error frames (not part of any turn) that came before the pong."""
        ping = f"fuzz-{next(self._pings)}"
        await self.send_text(message)
        await self.send_text(json.dumps({"type": "ping", "id": ping}))
        frames = await self.read_until(lambda f: f.get("type") == "pong" and f.get("id") == ping)
        return [f for f in frames if f.get("type") == "error" and "seq" not in f]

    async def finish_turns(self) -> None:
        """Cancel what still runs and wait until every turn seen starting has ended."""
        if self.started - self.ended:
            await self.exchange(json.dumps({"type": "cancel"}))
        try:
            async with asyncio.timeout(WAIT):
                while self.started - self.ended:
                    await self.next()
        except TimeoutError:
            raise Violation(f"turns {sorted(self.started - self.ended)} did not end after a cancel") from None


def encode(frame: Frame, limit: int, fill: Any) -> str | bytes:
    """The message a frame stands for, with the placeholders filled in."""
    if frame.oversize is not None:
        return json.dumps({"type": "ping", "pad": "x" * (limit + frame.oversize)})
    if frame.raw is not None:
        return frame.raw
    return fill(json.dumps(frame.payload))  # ASCII: lone surrogates and NULs travel as \u escapes


def expects_error(socket: str, message: str | bytes, limit: int) -> bool:
    """Whether the socket must refuse ``message`` whatever the session's state: too big, not JSON, not an
    object with a string ``type``, a type it does not know, or text with a lone surrogate."""
    if len(message) > limit:
        return True
    try:
        frame = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        return True
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return True
    try:
        json.dumps(frame, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return frame["type"] not in SOCKET_TYPES[socket]


def check_answers(
    socket: str, frame: Frame, message: str | bytes, answers: list[dict[str, Any]], limit: int
) -> None:
    """Error frames carry a code and a message, none is an ``internal_error``, and a bad frame gets one."""
    for answer in answers:
        if not (isinstance(answer.get("code"), str) and isinstance(answer.get("message"), str)):
            raise Violation(f"an error frame without code and message: {answer}")
        if answer["code"] == "internal_error":
            raise Violation(f"the server failed on a {frame.kind} frame: {answer['message']}")
    if expects_error(socket, message, limit) and not answers:
        raise Violation(f"the {socket} socket answered a bad {frame.kind} frame without an error frame")


def check_http(route: str, response: HTTPResponse) -> None:
    """An answer came, and a 5xx one says what went wrong as JSON ``code`` and ``message``."""
    if response.code == 599:  # tornado's client: no HTTP answer at all (connection closed, timeout)
        raise Violation(f"{route}: no answer ({response.error})")
    if response.code < 500:
        return
    try:
        data = json.loads(response.body)
    except ValueError:
        data = None
    if not (
        isinstance(data, dict) and isinstance(data.get("code"), str) and isinstance(data.get("message"), str)
    ):
        raise Violation(
            f"{route} answered {response.code} without a JSON code and message: {response.body[:800]!r}"
        )
