"""What the agent's WebSockets share: ``read`` to connect, JSON frames each way, ``ping`` answered, ``write``
to act, and an error frame for a bad or refused message (the connection stays open)."""

from __future__ import annotations

import json
from asyncio import Future
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from jupyter_agent.errors import AgentError, BadRequest
from jupyter_agent.server.authorization import Principal
from jupyter_agent.server.handlers import AUTH_RESOURCE, is_text, user_info


class AgentWebSocket(WebSocketMixin, WebSocketHandler, ExtensionHandlerMixin, JupyterHandler):
    """Base of a WebSocket at ``.../sessions/{id}/...``. A subclass lists the message types it acts on in
    ``actions`` and handles them in :meth:`act`, which runs only for a user allowed to ``write``."""

    auth_resource = AUTH_RESOURCE

    actions: frozenset[str] = frozenset()
    read_only_message = "you may watch this session but not act in it"

    @property
    def agent(self) -> Any:
        return self.extensionapp.service

    @property
    def principal(self) -> Principal | None:
        """The person on this socket, as turns act for them."""
        return Principal.of(self)

    @property
    def max_input_bytes(self) -> int:
        """Messages longer than this get a ``message_too_large`` error frame."""
        return self.agent.max_message_bytes

    async def _authorized(self, action: str) -> bool:
        return bool(
            await ensure_async(self.authorizer.is_authorized(self, self.current_user, action, AUTH_RESOURCE))
        )

    @ws_authenticated
    async def get(self, session_id: str) -> None:
        if not await self._authorized("read"):
            self._audit_refusal(session_id, "read", "connect")
            raise web.HTTPError(403)
        try:
            session = self.agent.sessions.get(session_id)
            await self.extensionapp.access.check_see(self.principal, session)
        except AgentError as err:
            raise web.HTTPError(err.status, err.message) from None
        self.before_upgrade(session)
        await super().get(session_id)

    def _audit_refusal(self, session_id: str | None, permission: str, message: str) -> None:
        """The Authorizer refused a known user: that goes in the audit log."""
        if self.current_user is None:
            return
        detail = {
            "path": self.request.path,
            "resource": AUTH_RESOURCE,
            "permission": permission,
            "message": message,
        }
        try:
            self.agent.audit(session_id, user_info(self), "refused", detail)
        except Exception:
            self.log.exception(
                "Could not write the audit entry of a refused %s on %s", message, self.request.path
            )

    def before_upgrade(self, session: Any) -> None:
        """Check the request for ``session`` before it becomes a WebSocket; raise ``HTTPError`` to refuse."""

    def send_frame(self, frame: dict[str, Any]) -> Future[None] | None:
        """Send one frame; the write's future, or None when the connection has closed."""
        try:
            return self.write_message(json.dumps(frame))
        except WebSocketClosedError:
            return None

    async def on_message(self, message: str | bytes) -> None:
        try:
            await self._receive(message)
        except Exception as err:
            error = self.error_frame(err)
            if error is None:
                self.log.exception("Agent WebSocket message failed on %s", self.request.path)
                error = {"type": "error", "code": "internal_error", "message": f"{type(err).__name__}: {err}"}
            self.send_frame(error)

    def error_frame(self, err: Exception) -> dict[str, Any] | None:
        """The error frame for an error the sender can act on, or None for a failure of ours (logged)."""
        if isinstance(err, AgentError):
            return {"type": "error", "code": err.code, "message": err.message}
        return None

    async def _receive(self, message: str | bytes) -> None:
        limit = self.max_input_bytes
        if len(message) > limit:
            raise BadRequest(
                f"message of {len(message)} bytes is over the {limit} byte limit", code="message_too_large"
            )
        try:
            frame = json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("the message is not valid JSON", code="bad_message") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise BadRequest('a message must be a JSON object with a "type"', code="bad_message")
        if not is_text(frame):
            raise BadRequest(
                "the message holds a lone surrogate (\\ud800-\\udfff), which is not text", code="bad_message"
            )
        kind = frame["type"]
        if kind == "ping":
            self.send_frame({"type": "pong", "id": frame.get("id")})
            return
        if kind not in self.actions:
            raise BadRequest(f"unknown message type {kind!r}", code="bad_message")
        if not await self._authorized("write"):
            self._audit_refusal(self.path_kwargs.get("session_id"), "write", kind)
            raise AgentError(self.read_only_message, code="forbidden")
        await self.act(kind, frame)

    async def act(self, kind: str, frame: dict[str, Any]) -> None:
        """Carry out a message of one of the ``actions`` types."""
        raise NotImplementedError
