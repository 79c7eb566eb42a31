"""The session WebSocket: replay the log after ``after``, then stream live events; accept prompts,
cancels, approvals and plan controls. Bad frames get an error frame; the connection and the server live on."""

from __future__ import annotations

from typing import Any

from tornado import web

from jupyter_agent.engine.tracing import origin_of
from jupyter_agent.engine.types import PROTOCOL_VERSION
from jupyter_agent.errors import BadRequest
from jupyter_agent.server.handlers import MAX_INT, turn_action, user_info
from jupyter_agent.server.ws_base import AgentWebSocket

HARD_FRAME_LIMIT = 64 * 1024 * 1024  # tornado closes the socket above this; we answer politely below it


class SessionWebSocket(AgentWebSocket):
    actions = frozenset(
        {
            "prompt",
            "cancel",
            "approve",
            "plan_approve",
            "plan_edit",
            "task_control",
            "undo",
            "redo",
            "review",
            "edit_mode",
        }
    )

    session: Any = None

    @property
    def max_message_size(self) -> int:
        return max(HARD_FRAME_LIMIT, self.agent.max_message_bytes + 1)

    def before_upgrade(self, session: Any) -> None:
        self.session = session
        after = self.get_argument("after", "0")
        if not (after.isascii() and after.isdigit()) or int(after) > MAX_INT:
            raise web.HTTPError(400, f"after must be an integer from 0 to {MAX_INT}")
        self._after = int(after)

    def open(self, session_id: str) -> None:  # type: ignore[override]
        super().open(session_id)
        self.extensionapp.engine.measurements.websocket(opened=True)
        self._counted = True
        self.set_nodelay(True)  # tokens are small frames: send each at once (Nagle would hold them ~40 ms)
        self.send_frame(
            {
                "type": "hello",
                "session": self.session.id,
                "protocol": PROTOCOL_VERSION,
                "last_seq": self.session.last_seq,
                # read-only when another process runs this session; an ``access`` frame says when it changes
                **{k: v for k, v in self.session.access().items() if k not in ("type", "session")},
            }
        )
        self.session.on_access(self._on_access)
        for event in self.session.subscribe(self._on_event, after=self._after):
            self._on_event(event)

    def _on_access(self, frame: dict[str, Any]) -> None:
        if self.send_frame(frame) is None:
            self.session.off_access(self._on_access)

    def _on_event(self, event: dict[str, Any]) -> None:
        if self.send_frame(event) is None:  # closed: on_close may not have run yet
            self.session.unsubscribe(self._on_event)

    def on_close(self) -> None:
        if getattr(self, "_counted", False):
            self._counted = False
            self.extensionapp.engine.measurements.websocket(opened=False)
        if self.session is not None:
            self.session.unsubscribe(self._on_event)
            self.session.off_access(self._on_access)

    async def act(self, kind: str, frame: dict[str, Any]) -> None:
        user = user_info(self)
        if kind == "prompt":
            model = frame.get("model")
            if model is not None and not isinstance(model, str):
                raise BadRequest("model must be a string", code="bad_message")
            plan, auto = frame.get("plan", False), frame.get("auto", False)
            if not isinstance(plan, bool) or not isinstance(auto, bool):
                raise BadRequest("plan and auto must be true or false", code="bad_message")
            # @mentions: their summaries now, with this person's rights (before the message is logged)
            context = await self.extensionapp.attachments.resolve(frame.get("context"), self.principal)
            self.session.submit(
                frame.get("text"),
                context,
                user,
                model or None,
                plan=plan,
                auto=auto,
                principal=self.principal,  # the turn's tools run with this person's rights, no more
                origin=origin_of(frame, self.request.headers),  # the turn's trace links to this request
            )
        elif kind == "cancel":
            self.session.cancel()
        elif kind in ("undo", "redo", "review"):
            await self.extensionapp.access.check_editor(self.principal, f"{kind} the agent's changes")
            await turn_action(self.session, kind, frame.get("turn"), frame, user)
        elif kind == "edit_mode":
            await self.extensionapp.access.check_editor(self.principal, "change how the agent's edits land")
            self.session.set_edit_mode(frame.get("mode"))
            self.agent.audit(self.session.id, user, "edit_mode", {"edit_mode": frame.get("mode")})
        elif kind == "plan_approve":
            self.session.plan_approve(user, self.principal)
            self.agent.audit(self.session.id, user, "plan_approve", {})
        elif kind == "plan_edit":
            self.session.plan_edit(frame.get("plan"), user)
            self.agent.audit(self.session.id, user, "plan_edit", {"plan": frame.get("plan")})
        elif kind == "task_control":
            action, task_id = frame.get("action"), frame.get("task_id")
            self.session.task_control(action, task_id, user, self.principal)
            self.agent.audit(self.session.id, user, "task_control", {"action": action, "task_id": task_id})
        else:
            call_id, decision = frame.get("call_id"), frame.get("decision")
            if not isinstance(call_id, str):
                raise BadRequest("approve needs a call_id", code="bad_message")
            access = self.extensionapp.access
            await access.check_approver(self.principal, self.agent.router, self.session, call_id)
            self.session.approve(call_id, decision, user)
            self.agent.audit(self.session.id, user, "approve", {"call_id": call_id, "decision": decision})
