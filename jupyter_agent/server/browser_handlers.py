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

import json
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from jupyter_agent.browser.service import BrowserUnavailable
from jupyter_agent.errors import AgentError, BadRequest
from jupyter_agent.server.handlers import AUTH_RESOURCE, AgentHandler, user_info

MAX_INPUT_BYTES = 64 * 1024


class BrowserStateHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        self.agent.sessions.get(session_id)
        state = await self.extensionapp.browser.live.state(session_id)
        state.pop("type")
        self.reply(state)


class BrowserWebSocket(WebSocketMixin, WebSocketHandler, ExtensionHandlerMixin, JupyterHandler):
    auth_resource = AUTH_RESOURCE

    session_id: str | None = None
    _closed = False
    _frame_in_flight = False
    _next_frame: dict[str, Any] | None = None

    @property
    def live(self) -> Any:
        return self.extensionapp.browser.live

    async def _authorized(self, action: str) -> bool:
        return bool(
            await ensure_async(self.authorizer.is_authorized(self, self.current_user, action, AUTH_RESOURCE))
        )

    @ws_authenticated
    async def get(self, session_id: str) -> None:
        if not await self._authorized("read"):
            raise web.HTTPError(403)
        try:
            self.extensionapp.service.sessions.get(session_id)
        except AgentError as err:
            raise web.HTTPError(err.status, err.message) from None
        await super().get(session_id)

    async def open(self, session_id: str) -> None:  # type: ignore[override]
        super().open(session_id)
        state = await self.live.state(session_id)
        if self._closed:  # gone while we asked
            return
        self._send(state)
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
            self._send({**message, "in_control": self.live.holds_control(self.session_id, self)})
        elif self._frame_in_flight:
            self._next_frame = message  # newest wins: a slow reader skips frames instead of queueing them
        else:
            self._write_frame(message)

    def _write_frame(self, frame: dict[str, Any]) -> None:
        try:
            written = self.write_message(json.dumps(frame))
        except WebSocketClosedError:
            return
        self._frame_in_flight = True
        written.add_done_callback(self._frame_written)

    def _frame_written(self, written: Any) -> None:
        self._frame_in_flight = False
        if written.exception() is None and self._next_frame is not None:
            frame, self._next_frame = self._next_frame, None
            self._write_frame(frame)

    def _send(self, frame: dict[str, Any]) -> None:
        try:
            self.write_message(json.dumps(frame))
        except WebSocketClosedError:
            pass

    async def on_message(self, message: str | bytes) -> None:
        try:
            await self._handle(message)
        except AgentError as err:
            self._send({"type": "error", "code": err.code, "message": err.message})
        except BrowserUnavailable as err:
            self._send({"type": "error", "code": err.code, "message": str(err)})
        except Exception as err:
            self.log.exception("Agent browser WebSocket message failed")
            self._send({"type": "error", "code": "internal_error", "message": f"{type(err).__name__}: {err}"})

    async def _handle(self, message: str | bytes) -> None:
        if len(message) > MAX_INPUT_BYTES:
            raise BadRequest(f"a message may have at most {MAX_INPUT_BYTES} bytes", code="message_too_large")
        try:
            frame = json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("the message is not valid JSON", code="bad_message") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise BadRequest('a message must be a JSON object with a "type"', code="bad_message")
        kind = frame["type"]
        if kind == "ping":
            self._send({"type": "pong", "id": frame.get("id")})
            return
        if kind not in ("input", "control"):
            raise BadRequest(f"unknown message type {kind!r}", code="bad_message")
        if not await self._authorized("write"):
            raise AgentError("you may watch this browser but not control it", code="forbidden")
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
        self.extensionapp.service.audit(self.session_id, user_info(self), action, details)
