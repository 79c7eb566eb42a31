"""REST handlers: authorise, call the agent service, serialise. Domain errors map to HTTP in one place."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from jupyter_agent.errors import AgentError, BadRequest, NotFound

AUTH_RESOURCE = "agent"


def user_info(handler: Any) -> dict[str, Any] | None:
    """The identity of the person behind a request, as events and the audit log record it."""
    user = handler.current_user
    if user is None:
        return None
    return {
        "username": getattr(user, "username", str(user)),
        "display_name": getattr(user, "display_name", ""),
    }


class AgentHandler(ExtensionHandlerMixin, APIHandler):
    """Base of the agent's REST handlers."""

    auth_resource = AUTH_RESOURCE

    @property
    def agent(self) -> Any:
        return self.extensionapp.service

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, AgentError):
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(exc.to_dict()))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, AgentError):  # the caller's mistake: answered, not an error of ours
            self.log.debug("%s %s: %s", self.request.method, self.request.path, value.message)
            return
        super().log_exception(typ, value, tb)

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value))


class HealthHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(self.agent.health())


class SessionsHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"sessions": self.agent.sessions.list()})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        user = user_info(self)
        session = self.agent.sessions.create(self.json_body().get("title", ""), user and user["username"])
        self.reply(session.to_dict(), 201)


class SessionHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        self.reply(self.agent.sessions.get(session_id).to_dict())

    @web.authenticated
    @authorized
    async def patch(self, session_id: str) -> None:
        title = self.json_body().get("title")
        if not isinstance(title, str) or not 0 < len(title) <= 200:
            raise BadRequest("title must be a non-empty string of at most 200 characters")
        session = self.agent.sessions.get(session_id)
        session.rename(title)
        session.emit("session", title=title)
        self.reply(session.to_dict())

    @web.authenticated
    @authorized
    async def delete(self, session_id: str) -> None:
        await self.agent.sessions.delete(session_id)
        self.set_status(204)
        self.finish()


class EventsHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        after = _int_arg(self, "after", 0)
        limit = _int_arg(self, "limit", 10_000)
        session = self.agent.sessions.get(session_id)
        self.reply({"events": session.events(after, limit), "last_seq": session.last_seq})


class PlanHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        plan = self.agent.sessions.get(session_id).plan()
        if plan is None:
            raise NotFound(f"session {session_id!r} has no plan")
        self.reply(plan)


class ToolsHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"tools": self.agent.router.describe()})


class RestoreHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        body = self.json_body()
        path = body.get("path")
        if not isinstance(path, str):
            raise BadRequest("path is required")
        self.agent.sessions.get(session_id)
        restored = await self.agent.workspace.restore(session_id, path, body.get("backup"))
        self.agent.audit(
            session_id, user_info(self), "file_restore", {"path": path, "backup": restored["restored_from"]}
        )
        self.reply(restored)

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        self.agent.sessions.get(session_id)
        self.reply({"backups": self.agent.workspace.backups(session_id, self.get_argument("path", None))})


def _int_arg(handler: AgentHandler, name: str, default: int) -> int:
    raw = handler.get_argument(name, None)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative")
    return value


MAX_AUDIO_BYTES = 25 * 1024 * 1024


class TranscribeHandler(AgentHandler):
    """Voice input: audio in (multipart field ``file``), text out, for the person to review and send."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        files = self.request.files.get("file")
        if not files:
            raise BadRequest('send the audio as a multipart form field named "file"')
        audio = files[0]
        if not audio.body:
            raise BadRequest("the audio is empty")
        if len(audio.body) > MAX_AUDIO_BYTES:
            raise BadRequest(f"the audio is over {MAX_AUDIO_BYTES // (1024 * 1024)} MB")
        model = self.get_body_argument("model", None) or self.agent.transcription_model
        text = await self.agent.llm.transcribe(audio.body, audio.filename or "audio.webm", model)
        self.agent.audit(None, user_info(self), "transcribe", {"model": model, "bytes": len(audio.body)})
        self.reply({"text": text, "model": model})
