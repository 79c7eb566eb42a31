"""What every event of a session passes on its way out: redaction, the audit record, the redaction summary.

:class:`Outbound` is the session manager's ``outbound`` hook: ``Session.emit`` hands it each event's fields
before the event is stored and sent, in every process that runs the engine (server, kernels, CLI). It

- replaces secrets (and, with ``redact_pii``, personal data) with the session's placeholders;
- writes the audit entries the events stand for: each prompt, and each tool call once its outcome is known,
  with its redacted arguments, whether a person was asked, the decision, who made it and the outcome;
- just before a turn's last event, emits a ``redaction`` event that counts what was hidden during the turn,
  by kind (never the values), so the chat can say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from jupyter_agent.security.audit import AuditTrail
from jupyter_agent.security.redaction import EVENT_FIELDS, Redactor, Vault

log = logging.getLogger(__name__)

TERMINAL = frozenset({"done", "error"})  # engine.types.TERMINAL_EVENTS (security sits below the engine)
MAX_ERROR = 300  # characters of a failed call's message kept in its audit entry
#: Result codes of a tool call the server's Authorizer refused for the person the turn acts for.
REFUSALS = frozenset({"not_permitted", "forbidden"})


class EmittingSession(Protocol):
    id: str

    def emit(self, type: str, **fields: Any) -> dict[str, Any]: ...


@dataclass
class _TurnNotes:
    """What one turn has shown so far: its user, the calls waiting for an outcome, what was hidden."""

    user: str | None = None
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # call id -> what its audit entry says
    hidden: dict[str, str] = field(default_factory=dict)  # placeholder -> kind


class Outbound:
    """The ``SessionManager.outbound`` hook: ``(session, type, fields) -> fields`` as they may leave."""

    def __init__(self, redactor: Redactor, trail: AuditTrail | None = None) -> None:
        self.redactor = redactor
        self.trail = trail
        self._turns: dict[tuple[str, str], _TurnNotes] = {}

    def __call__(self, session: EmittingSession, type: str, fields: dict[str, Any]) -> dict[str, Any]:
        if type == "redaction":  # this hook's own summary: counts by kind, no values
            return fields
        vault = self.redactor.vault(session.id)
        seen: dict[str, str] = {}
        fields = self.redactor.redact(fields, vault, seen, skip=EVENT_FIELDS)
        turn = fields.get("turn")
        if not isinstance(turn, str):
            return fields
        if type == "turn_review":  # a person acted on a finished turn: undo, redo, accept, reject
            self._audit_review(session.id, fields, vault)
            return fields
        key = (session.id, turn)
        notes = self._turns.setdefault(key, _TurnNotes())
        notes.hidden.update(seen)
        if self.trail is not None:
            try:
                self._audit(session.id, type, fields, notes, vault)
            except Exception:  # the turn goes on; the failure is ours and is logged with its context
                log.exception(
                    "Could not write the audit entry for a %s event of session %s", type, session.id
                )
        if type in TERMINAL:
            del self._turns[key]
            if notes.hidden:
                counts: dict[str, int] = {}
                for kind in notes.hidden.values():
                    counts[kind] = counts.get(kind, 0) + 1
                session.emit("redaction", turn=turn, counts=counts, total=len(notes.hidden))
        return fields

    # -- the audit record -----------------------------------------------------------------------------------
    def _audit(
        self, session: str, type: str, fields: dict[str, Any], notes: _TurnNotes, vault: Vault
    ) -> None:
        call_id = fields.get("call_id")
        if type == "message" and fields.get("role") == "user":
            user = fields.get("user")
            notes.user = user.get("username") if isinstance(user, dict) else None
            detail = {"turn": fields["turn"], "text": fields.get("content"), "context": fields.get("context")}
            if fields.get("plan"):
                detail["plan"] = True
            self._record(session, notes.user, "prompt", detail, vault)
        elif type == "tool_call" and isinstance(call_id, str):
            call = {"call_id": call_id, "name": fields.get("name"), "arguments": fields.get("arguments")}
            if fields.get("task"):
                call["task"] = fields["task"]
            notes.calls[call_id] = call
        elif type == "approval_request" and isinstance(call_id, str):
            notes.calls.setdefault(call_id, {"call_id": call_id, "name": fields.get("name")})["approval"] = {
                "decision": None,
                "by": None,
            }
        elif type == "approval_result" and call_id in notes.calls:
            user = fields.get("user")
            by = user.get("username") if isinstance(user, dict) else None
            notes.calls[call_id]["approval"] = {"decision": fields.get("decision"), "by": by}
            if fields.get("decision") == "timeout":
                self._finish(session, notes, call_id, "not_run", vault)
        elif type == "tool_result" and isinstance(call_id, str):
            call = notes.calls.setdefault(call_id, {"call_id": call_id, "name": fields.get("name")})
            call["ok"] = bool(fields.get("ok"))
            call["duration_ms"] = fields.get("duration_ms")
            data = fields.get("data") if isinstance(fields.get("data"), dict) else {}
            if call["ok"]:
                outcome = "ok"
            elif (call.get("approval") or {}).get("decision") == "deny":
                outcome = "denied"
            else:
                outcome = str(data.get("code") or "error")
                call["error"] = str(fields.get("content") or "").removeprefix("Error: ")[:MAX_ERROR]
            self._finish(session, notes, call_id, outcome, vault)
        elif type in TERMINAL:
            outcome = "cancelled" if fields.get("reason") == "cancelled" else "not_run"
            for pending in list(notes.calls):
                self._finish(session, notes, pending, outcome, vault)

    def _finish(self, session: str, notes: _TurnNotes, call_id: str, outcome: str, vault: Vault) -> None:
        call = notes.calls.pop(call_id)
        call.setdefault("approval", None)  # None: the policy let it run unasked
        call["outcome"] = outcome
        self._record(session, notes.user, f"tool:{call.get('name') or 'unknown'}", call, vault)
        if outcome in REFUSALS:  # the Authorizer said no: a refusal like a refused request to the server
            refusal = {"tool": call.get("name"), "call_id": call_id, "reason": call.get("error")}
            self._record(session, notes.user, "refused", refusal, vault)

    def _audit_review(self, session: str, fields: dict[str, Any], vault: Vault) -> None:
        user = fields.get("user")
        detail = {
            "turn": fields["turn"],
            "state": fields.get("state"),
            **{k: fields[k] for k in ("reverted", "applied", "accepted", "kept", "cells") if fields.get(k)},
            "conflicts": [c.get("key") for c in fields.get("conflicts") or []],
        }
        try:
            username = user.get("username") if isinstance(user, dict) else None
            self._record(session, username, f"turn_{fields.get('action')}", detail, vault)
        except Exception:
            log.exception("Could not write the audit entry of a review action in session %s", session)

    def _record(
        self, session: str, user: str | None, action: str, detail: dict[str, Any], vault: Vault
    ) -> None:
        if self.trail is not None:
            self.trail.record(session, user, action, detail, vault)
