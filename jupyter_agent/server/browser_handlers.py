"""The browser panel's routes: a chat session's live browser tab, and a person taking over from the agent.

``GET /api/agent/sessions/{id}/browser`` answers the live view's state::

    {"active": bool, "url", "title", "controlled_by": {"username", "display_name"} | null, "agent_waiting": bool}

``WS /api/agent/sessions/{id}/browser/ws`` (``read`` to watch) sends

- ``{"type": "state", ...the state above..., "in_control": bool}`` on connect and whenever it changes
  (``in_control``: this connection holds control);
- ``{"type": "frame", "data": <base64 JPEG>, "url", "title", "width", "height", "seq"}`` as the page
  repaints (``width``/``height``: the page's viewport in CSS pixels, the coordinates input uses). A watcher
  that reads slowly gets the newest frame, not every frame.

and accepts (``write`` needed)

- ``{"type": "control", "take": true|false}``: take control (the agent's browser calls then wait for it, see
  :mod:`jupyter_agent.browser.live`) or hand it back. Closing the socket hands it back too.
- ``{"type": "input", "action": "click", "x", "y"}``, ``"type"`` with ``"text"``, ``"key"`` with ``"key"``
  (``Enter``, ``Backspace``, ``ArrowLeft``, ``Control+a``...), ``"scroll"`` with ``"dx"``, ``"dy"`` and
  optional ``"x"``, ``"y"``, ``"navigate"`` with ``"url"`` (through the URL policy), ``"back"``,
  ``"forward"``, ``"reload"``; only from the connection in control;
- ``{"type": "ping", "id"?}`` → ``{"type": "pong", "id"}``.

A bad or refused frame gets ``{"type": "error", "code", "message"}``; the connection stays open.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from jupyter_agent.browser.contexts import BrowserUnavailable
from jupyter_agent.errors import BadRequest
from jupyter_agent.server.handlers import AgentHandler, user_info
from jupyter_agent.server.ws_base import AgentWebSocket

MAX_INPUT_BYTES = 64 * 1024


class BrowserStateHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        await self.session(session_id)
        state = await self.extensionapp.browser.live.state(session_id)
        state.pop("type")
        self.reply(state)


class BrowserWebSocket(AgentWebSocket):
    actions = frozenset({"input", "control"})
    read_only_message = "you may watch this browser but not control it"

    session_id: str | None = None
    _closed = False
    _frame_in_flight = False
    _next_frame: dict[str, Any] | None = None

    @property
    def live(self) -> Any:
        return self.extensionapp.browser.live

    @property
    def max_input_bytes(self) -> int:
        return MAX_INPUT_BYTES

    async def open(self, session_id: str) -> None:  # type: ignore[override]
        super().open(session_id)
        state = await self.live.state(session_id)
        if self._closed:  # gone while we asked
            return
        self.send_frame(state)
        self.session_id = session_id
        self.live.subscribe(session_id, self._on_live)

    def on_close(self) -> None:
        self._closed = True
        if self.session_id is not None:
            self.live.unsubscribe(self.session_id, self._on_live)
            if self.live.release_control(self.session_id, self):
                self._audit("browser_control", {"take": False, "reason": "disconnected"})

    def _on_live(self, message: dict[str, Any]) -> None:
        if message["type"] != "frame":
            self.send_frame({**message, "in_control": self.live.holds_control(self.session_id, self)})
        elif self._frame_in_flight:
            self._next_frame = message  # newest wins: a slow reader skips frames instead of queueing them
        else:
            self._write_frame(message)

    def _write_frame(self, frame: dict[str, Any]) -> None:
        written = self.send_frame(frame)
        if written is None:
            return
        self._frame_in_flight = True
        written.add_done_callback(self._frame_written)

    def _frame_written(self, written: Any) -> None:
        self._frame_in_flight = False
        if written.exception() is None and self._next_frame is not None:
            frame, self._next_frame = self._next_frame, None
            self._write_frame(frame)

    def error_frame(self, err: Exception) -> dict[str, Any] | None:
        if isinstance(err, BrowserUnavailable):
            return {"type": "error", "code": err.code, "message": str(err)}
        return super().error_frame(err)

    async def act(self, kind: str, frame: dict[str, Any]) -> None:
        if kind == "control":
            take = frame.get("take")
            if not isinstance(take, bool):
                raise BadRequest("take must be true or false", code="bad_message")
            if take:
                self.live.take_control(self.session_id, self, user_info(self))
            elif not self.live.release_control(self.session_id, self):
                return
            self._audit("browser_control", {"take": take})
            return
        if frame.get("action") == "navigate":
            self._audit("browser_navigate", {"url": frame.get("url")})
        await self.live.handle_input(self.session_id, self, frame)

    def _audit(self, action: str, details: dict[str, Any]) -> None:
        self.agent.audit(self.session_id, user_info(self), action, details)
