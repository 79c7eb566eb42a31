"""REST handlers: authorise, call the agent service, serialise. Domain errors map to HTTP in one place."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from jupyter_agent.errors import AgentError, BadRequest, Forbidden, NotFound
from jupyter_agent.server import analytics

AUTH_RESOURCE = "agent"
#: The audit log: only people the server's Authorizer lets "read" this resource may page through it.
AUDIT_RESOURCE = "agent_audit"
#: Usage analytics of everyone: only people the Authorizer lets "read" this resource; others see their own.
ANALYTICS_RESOURCE = "agent_analytics"
MAX_AUDIT_PAGE = 1000  # entries
MAX_INT = 2**63 - 1  # the largest integer SQLite stores: sequence numbers, ids and limits must fit


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
        if isinstance(exc, web.HTTPError) and exc.status_code == 403 and self.current_user is not None:
            self._audit_refusal()
        if isinstance(exc, AgentError):
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(exc.to_dict()))
            return
        super().write_error(status_code, **kwargs)

    def _audit_refusal(self) -> None:
        """A known user was refused (the Authorizer said no): that goes in the audit log."""
        method = self.request.method or ""
        detail = {
            "method": method,
            "path": self.request.path,
            "resource": self.auth_resource,
            "permission": HTTP_METHOD_TO_AUTH_ACTION.get(method, ""),
        }
        try:
            self.agent.audit(self.path_kwargs.get("session_id"), user_info(self), "refused", detail)
        except Exception:
            self.log.exception(
                "Could not write the audit entry of a refused %s %s", method, self.request.path
            )

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, AgentError):  # the caller's mistake: answered, not an error of ours
            self.log.debug("%s %s: %s", self.request.method, self.request.path, value.message)
            return
        super().log_exception(typ, value, tb)

    @property
    def principal(self) -> Any:
        """The person behind this request, as turns act for them."""
        from jupyter_agent.server.authorization import Principal

        return Principal.of(self)

    async def session(self, session_id: str) -> Any:
        """The session, if this person may see it (404 otherwise, as for a session that does not exist)."""
        session = self.agent.sessions.get(session_id)
        await self.extensionapp.access.check_see(self.principal, session)
        return session

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        if not is_text(body):
            raise BadRequest("the request body holds a lone surrogate (\\ud800-\\udfff), which is not text")
        return body

    def reply(self, value: Any, status: int = 200, *, redacted: bool = False) -> None:
        """Answer with ``value`` as JSON, secrets in it replaced by placeholders unless it is ``redacted``
        already (session titles and plans come from prompts as people typed them)."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value if redacted else self.agent.outgoing(value)))


class AuditHandler(AgentHandler):
    """The audit log, newest first, a page at a time (``?before=<id>&limit=<n>``): for admins only, i.e. users
    the server's Authorizer allows to ``read`` the resource ``agent_audit``."""

    auth_resource = AUDIT_RESOURCE

    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit = _int_arg(self, "limit", 100)
        if not 1 <= limit <= MAX_AUDIT_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_AUDIT_PAGE}")
        self.reply(self.agent.audit_page(_int_arg(self, "before", 0) or None, limit), redacted=True)


class AnalyticsHandler(AgentHandler):
    """Usage analytics, ``?since=&until=&user=`` (server/analytics.py): admins (people the server's Authorizer
    lets ``read`` the resource ``agent_analytics``) see everyone's or anyone's; others see their own."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        me = (user_info(self) or {}).get("username")
        asked = self.get_argument("user", None) or None
        admin = await self.extensionapp.access.authorization(self.principal, (ANALYTICS_RESOURCE, "read"))
        if not admin and asked not in (None, me):
            raise Forbidden(
                f"only admins (read access to {ANALYTICS_RESOURCE}) may see another person's usage; "
                "leave out user to see your own"
            )
        since, until = analytics.window(self.get_argument("since", None), self.get_argument("until", None))
        user, scope = (asked, "all" if asked is None else "self") if admin else (me, "self")
        self.reply(analytics.usage_analytics(self.agent.store, since, until, user, scope), redacted=True)


class HealthHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({**self.agent.health(), "private_sessions": self.extensionapp.access.private})


class SessionsHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        sessions = await self.extensionapp.access.visible(self.principal, self.agent.sessions.list())
        self.reply({"sessions": self.agent.outgoing_sessions(sessions)}, redacted=True)

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
        self.reply((await self.session(session_id)).to_dict())

    @web.authenticated
    @authorized
    async def patch(self, session_id: str) -> None:
        """``{"title": str}`` renames; ``{"shared": bool}`` (the owner only) shows it to collaborators;
        ``{"edit_mode": "live" | "review"}`` says how the agent's notebook edits land."""
        body = self.json_body()
        title, shared, edit_mode = body.get("title"), body.get("shared"), body.get("edit_mode")
        if title is None and shared is None and edit_mode is None:
            raise BadRequest(
                'send "title" (a string), "shared" (true or false) or "edit_mode" ("live" or "review")'
            )
        if title is not None and (not isinstance(title, str) or not 0 < len(title) <= 200):
            raise BadRequest("title must be a non-empty string of at most 200 characters")
        if shared is not None and not isinstance(shared, bool):
            raise BadRequest("shared must be true or false")
        session = await self.session(session_id)
        if shared is not None:
            self.extensionapp.access.check_owner(self.principal, session, "share it or make it private")
            session.share(shared)
            self.agent.audit(session_id, user_info(self), "session_share", {"shared": shared})
        if title is not None:
            session.rename(title)
            session.emit("session", title=title, shared=session.shared)
        if edit_mode is not None:
            await self.extensionapp.access.check_editor(self.principal, "change how the agent's edits land")
            session.set_edit_mode(edit_mode)
            self.agent.audit(session_id, user_info(self), "edit_mode", {"edit_mode": edit_mode})
        self.reply(session.to_dict())

    @web.authenticated
    @authorized
    async def delete(self, session_id: str) -> None:
        session = await self.session(session_id)
        self.extensionapp.access.check_owner(self.principal, session, "delete it")
        await self.agent.sessions.delete(session_id)
        self.set_status(204)
        self.finish()


class EventsHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        after = _int_arg(self, "after", 0)
        limit = _int_arg(self, "limit", 10_000)
        session = await self.session(session_id)
        self.reply({"events": session.events(after, limit), "last_seq": session.last_seq}, redacted=True)


class PlanHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        plan = (await self.session(session_id)).plan()
        if plan is None:
            raise NotFound(f"session {session_id!r} has no plan")
        self.reply(plan)


class TurnChangesHandler(AgentHandler):
    """What one turn changed: its notebooks' cells and files, with diffs, review state and conflicts."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str, turn: str) -> None:
        self.reply((await self.session(session_id)).turn_changes(turn))


class TurnActionHandler(AgentHandler):
    """``POST .../turns/{turn}/undo`` (body ``{"resolve": {key: "keep" | "revert"}}`` settles conflicts),
    ``.../redo`` and ``.../review`` (``{"action": "accept" | "reject", "cells": [ids]}``)."""

    @web.authenticated
    @authorized
    async def post(self, session_id: str, turn: str, action: str) -> None:
        body = self.json_body()
        session = await self.session(session_id)
        await self.extensionapp.access.check_editor(self.principal, f"{action} the agent's changes")
        self.reply(await turn_action(session, action, turn, body, user_info(self)))


async def turn_action(
    session: Any, action: str, turn: Any, body: dict[str, Any], user: dict[str, Any] | None
) -> dict[str, Any]:
    """Undo, redo or review a turn of ``session`` as ``user`` (the REST route and the WebSocket frame)."""
    if action == "undo":
        return await session.undo(turn, user, body.get("resolve"))
    if action == "redo":
        return await session.redo(turn, user)
    return await session.review(turn, body.get("action"), body.get("cells"), user)


class VariablesHandler(AgentHandler):
    """``GET /api/agent/variables?notebook=<path>``: the user variables of the notebook's running kernel,
    summarised (the chat's ``@`` completion). It runs a silent request in the kernel, so the person needs
    ``kernels:execute``, as for running a cell."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        path = self.get_argument("notebook", "")
        if not path:
            raise BadRequest("name the notebook: ?notebook=<path>")
        await self.extensionapp.access.check_allowed(
            self.principal, ("kernels", "execute"), "look at a kernel's variables"
        )
        self.reply(await self.extensionapp.tool_services["variables"].listing(path))


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
        await self.session(session_id)
        restored = await self.agent.workspace.restore(session_id, path, body.get("backup"))
        restored.pop("change", None)
        self.agent.audit(
            session_id, user_info(self), "file_restore", {"path": path, "backup": restored["restored_from"]}
        )
        self.reply(restored)

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        await self.session(session_id)
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
    if value > MAX_INT:
        raise BadRequest(f"{name} must be at most {MAX_INT}")
    return value


def is_text(value: Any) -> bool:
    """False when parsed JSON holds a lone surrogate: JSON may escape one, but it cannot be stored as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


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
        self.reply({"text": text, "model": model}, redacted=True)  # the person's own words, for them to edit
