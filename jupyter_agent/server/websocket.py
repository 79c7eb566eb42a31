"""The session WebSocket: replay the log after ``after``, then stream live events; accept prompts,
cancels, approvals and plan controls. Bad frames get an error frame; the connection and the server live on."""

from __future__ import annotations

import json
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from jupyter_agent.engine.types import PROTOCOL_VERSION
from jupyter_agent.errors import AgentError, BadRequest
from jupyter_agent.server.handlers import AUTH_RESOURCE, user_info

HARD_FRAME_LIMIT = 64 * 1024 * 1024  # tornado closes the socket above this; we answer politely below it


class SessionWebSocket(WebSocketMixin, WebSocketHandler, ExtensionHandlerMixin, JupyterHandler):
    auth_resource = AUTH_RESOURCE

    session: Any = None

    @property
    def agent(self) -> Any:
        return self.extensionapp.service

    @property
    def max_message_size(self) -> int:
        return max(HARD_FRAME_LIMIT, self.agent.max_message_bytes + 1)

    async def _authorized(self, action: str) -> bool:
        return bool(
            await ensure_async(self.authorizer.is_authorized(self, self.current_user, action, AUTH_RESOURCE))
        )

    @ws_authenticated
    async def get(self, session_id: str) -> None:
        if not await self._authorized("read"):
            raise web.HTTPError(403)
        try:
            self.session = self.agent.sessions.get(session_id)
        except AgentError as err:
            raise web.HTTPError(err.status, err.message) from None
        after = self.get_argument("after", "0")
        if not after.isdigit():
            raise web.HTTPError(400, "after must be a non-negative integer")
        self._after = int(after)
        await super().get(session_id)

    def open(self, session_id: str) -> None:  # type: ignore[override]
        super().open(session_id)
        self.set_nodelay(True)  # tokens are small frames: send each at once (Nagle would hold them ~40 ms)
        self._send(
            {
                "type": "hello",
                "session": self.session.id,
                "protocol": PROTOCOL_VERSION,
                "last_seq": self.session.last_seq,
            }
        )
        for event in self.session.subscribe(self._on_event, after=self._after):
            self._send(event)

    def _on_event(self, event: dict[str, Any]) -> None:
        self._send(event)

    def _send(self, frame: dict[str, Any]) -> None:
        try:
            self.write_message(json.dumps(frame))
        except WebSocketClosedError:
            if self.session is not None:
                self.session.unsubscribe(self._on_event)

    def on_close(self) -> None:
        if self.session is not None:
            self.session.unsubscribe(self._on_event)

    async def on_message(self, message: str | bytes) -> None:
        try:
            await self._handle(message)
        except AgentError as err:
            self._send({"type": "error", "code": err.code, "message": err.message})
        except Exception as err:
            self.log.exception("Agent WebSocket message failed")
            self._send({"type": "error", "code": "internal_error", "message": f"{type(err).__name__}: {err}"})

    async def _handle(self, message: str | bytes) -> None:
        if len(message) > self.agent.max_message_bytes:
            raise BadRequest(
                f"message of {len(message)} bytes is over the {self.agent.max_message_bytes} byte limit",
                code="message_too_large",
            )
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
        if kind not in ("prompt", "cancel", "approve", "plan_approve", "plan_edit", "task_control"):
            raise BadRequest(f"unknown message type {kind!r}", code="bad_message")
        if not await self._authorized("write"):
            raise AgentError("you may watch this session but not act in it", code="forbidden")
        user = user_info(self)
        if kind == "prompt":
            model = frame.get("model")
            if model is not None and not isinstance(model, str):
                raise BadRequest("model must be a string", code="bad_message")
            plan, auto = frame.get("plan", False), frame.get("auto", False)
            if not isinstance(plan, bool) or not isinstance(auto, bool):
                raise BadRequest("plan and auto must be true or false", code="bad_message")
            self.session.submit(
                frame.get("text"), frame.get("context"), user, model or None, plan=plan, auto=auto
            )
        elif kind == "cancel":
            self.session.cancel()
        elif kind == "plan_approve":
            self.session.plan_approve(user)
            self.agent.audit(self.session.id, user, "plan_approve", {})
        elif kind == "plan_edit":
            self.session.plan_edit(frame.get("plan"), user)
            self.agent.audit(self.session.id, user, "plan_edit", {"plan": frame.get("plan")})
        elif kind == "task_control":
            action, task_id = frame.get("action"), frame.get("task_id")
            self.session.task_control(action, task_id, user)
            self.agent.audit(self.session.id, user, "task_control", {"action": action, "task_id": task_id})
        else:
            call_id, decision = frame.get("call_id"), frame.get("decision")
            if not isinstance(call_id, str):
                raise BadRequest("approve needs a call_id", code="bad_message")
            self.session.approve(call_id, decision, user)
            self.agent.audit(self.session.id, user, "approve", {"call_id": call_id, "decision": decision})
