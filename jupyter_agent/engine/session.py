"""Sessions: an append-only event log per conversation, fanned out live to every subscriber.

Every event is stored before it is sent, and carries a per-session sequence number, so any client can
replay from any point and detect gaps. Prompts are queued per session and run one at a time; each ends in
exactly one ``done`` or ``error`` event, which this module (not the agent loop) emits.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from jupyter_agent.engine.history import TRANSCRIPT_EVENTS, Transcript, for_model
from jupyter_agent.engine.types import TERMINAL_EVENTS
from jupyter_agent.errors import AgentError, ApprovalTimeout, BadRequest, NotFound
from jupyter_agent.store import Store

log = logging.getLogger(__name__)

Subscriber = Callable[[dict[str, Any]], None]
DECISIONS = ("once", "always", "deny")


@dataclass
class TurnResult:
    reason: str = "completed"  # completed | max_steps | max_tokens
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass
class Turn:
    """One prompt being answered."""

    id: str
    session: Session
    text: str
    context: dict[str, Any]
    user: dict[str, Any] | None
    model: str | None = None
    plan: bool = False  # plan the goal into a task DAG first (the session manager's planner runs it)
    auto: bool = False  # run the plan without waiting for a person's plan_approve
    resume: bool = False  # go on with the session's stored plan instead of making a new one

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        return self.session.emit(type, turn=self.id, **fields)

    async def request_approval(self, call_id: str, name: str, arguments: Any, reason: str = "") -> str:
        return await self.session.request_approval(self, call_id, name, arguments, reason)

    def transcript(self, vision: bool = False) -> list[dict[str, Any]]:
        """The conversation the model reads for this turn: the session's."""
        return self.session.transcript(vision)


class TurnRunner(Protocol):
    async def run_turn(self, turn: Turn) -> TurnResult: ...


class Session:
    """One conversation: its metadata, event log, subscribers, prompt queue and pending approvals."""

    def __init__(self, meta: dict[str, Any], manager: SessionManager) -> None:
        self.id: str = meta["id"]
        self.title: str = meta["title"]
        self.owner: str | None = meta.get("owner")
        self.created: float = meta["created"]
        self.updated: float = meta["updated"]
        self.last_seq: int = meta["last_seq"]
        self._manager = manager
        self._subscribers: list[Subscriber] = []
        self._history: Transcript | None = None
        self._queue: deque[Turn] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._current: asyncio.Task[TurnResult] | None = None
        self._current_turn: Turn | None = None
        self._approvals: dict[str, asyncio.Future[str]] = {}
        self.policy: dict[str, str] = {}  # per-session "always allow" decisions

    @property
    def running(self) -> bool:
        return self._current is not None and not self._current.done()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "owner": self.owner,
            "created": self.created,
            "updated": self.updated,
            "last_seq": self.last_seq,
            "running": self.running,
        }

    # -- the log ------------------------------------------------------------------------------------
    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        """Append an event to the log and send it to every subscriber, in that order."""
        self.last_seq += 1
        event = {"type": type, "session": self.id, "seq": self.last_seq, "ts": time.time(), **fields}
        self.updated = event["ts"]
        self._manager.store.append_event(event)
        if self._history is not None and type in TRANSCRIPT_EVENTS:
            self._history.apply(event)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("Dropping a subscriber of session %s that failed", self.id)
                self.unsubscribe(subscriber)
        return event

    def events(self, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        return self._manager.store.events(self.id, after, limit)

    def subscribe(self, subscriber: Subscriber, after: int | None = 0) -> list[dict[str, Any]]:
        """Subscribe to live events; returns the logged events after ``after`` to send first.

        Replay and subscription happen with no await between them, so nothing falls into a gap.
        """
        backlog = self.events(after) if after is not None else []
        self._subscribers.append(subscriber)
        return backlog

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def transcript(self, vision: bool = False) -> list[dict[str, Any]]:
        """The conversation as the model reads it (with images when the model can see)."""
        if self._history is None:
            self._history = Transcript()
            for event in self._manager.store.iter_events(self.id, TRANSCRIPT_EVENTS):
                self._history.apply(event)
            if self._current_turn is not None:
                self._history.start_turn(self._current_turn.id)
        return for_model(self._history.messages, vision)

    # -- prompts ------------------------------------------------------------------------------------
    def submit(
        self,
        text: str,
        context: dict[str, Any] | None = None,
        user: dict[str, Any] | None = None,
        model: str | None = None,
        *,
        plan: bool = False,
        auto: bool = False,
        resume: bool = False,
    ) -> Turn:
        """Log the user's message at once (everyone sees it) and queue the turn that answers it."""
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("a prompt needs non-empty text")
        context = context or {}
        if not isinstance(context, dict):
            raise BadRequest('context must be an object such as {"notebook": "path.ipynb"}')
        if (plan or resume) and self._manager.planner is None:
            raise BadRequest("planning is not available here")
        turn = Turn(uuid.uuid4().hex[:12], self, text, context, user, model, plan or resume, auto, resume)
        titled = not self.title
        if titled:
            self.rename(text.strip().splitlines()[0][:60])
        self.emit(
            "message",
            turn=turn.id,
            role="user",
            content=text,
            context=context,
            user=user,
            model_content=self._manager.describe_prompt(text, context),
            **({"plan": True} if turn.plan else {}),
        )
        if titled:
            self.emit("session", title=self.title)  # open panels show the new title at once
        self._queue.append(turn)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name=f"agent-session-{self.id}")
        return turn

    async def _work(self) -> None:
        while self._queue:
            turn = self._queue.popleft()
            self._current_turn = turn
            if self._history is not None:
                self._history.start_turn(turn.id)
            runner = self._manager.planner if turn.plan else self._manager.runner
            self._current = asyncio.create_task(runner.run_turn(turn), name=f"agent-turn-{turn.id}")
            try:
                result = await asyncio.shield(self._current)
            except asyncio.CancelledError:
                if not self._current.done():  # the worker itself is being stopped (server shutdown)
                    self._current.cancel()
                    turn.emit("done", reason="cancelled", message="the server is shutting down")
                    raise
                turn.emit("done", reason="cancelled")
            except ApprovalTimeout as err:
                turn.emit("error", code=err.code, message=err.message)
            except AgentError as err:
                turn.emit("error", code=err.code, message=err.message)
            except Exception as err:
                log.exception("Turn %s of session %s failed", turn.id, self.id)
                turn.emit(
                    "error", code="internal_error", message=f"internal error: {type(err).__name__}: {err}"
                )
            else:
                turn.emit("done", reason=result.reason, usage=result.usage)
            finally:
                self._current = None
                self._current_turn = None

    def cancel(self) -> bool:
        """Stop the running turn and drop the queued ones; each ends with ``done`` (reason cancelled)."""
        cancelled = False
        while self._queue:
            self._queue.popleft().emit("done", reason="cancelled")
            cancelled = True
        if self._current is not None and not self._current.done():
            self._current.cancel()
            cancelled = True
        return cancelled

    # -- approvals ----------------------------------------------------------------------------------
    async def request_approval(self, turn: Turn, call_id: str, name: str, arguments: Any, reason: str) -> str:
        """Ask the people in this session about one call and wait for a decision (or the time limit)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._approvals[call_id] = future
        turn.emit("tool_status", call_id=call_id, status="waiting_approval")
        turn.emit("approval_request", call_id=call_id, name=name, arguments=arguments, reason=reason)
        timeout = self._manager.approval_timeout
        try:
            async with asyncio.timeout(timeout):
                decision = await future
        except TimeoutError:
            turn.emit("approval_result", call_id=call_id, decision="timeout")
            raise ApprovalTimeout(
                f"nobody answered the approval request for {name} within {timeout:g} s, so it did not run; "
                "send the prompt again when someone can approve it"
            ) from None
        finally:
            self._approvals.pop(call_id, None)
        if decision == "always":
            self.policy[name] = "allow"
        return decision

    def approve(self, call_id: str, decision: str, user: dict[str, Any] | None = None) -> None:
        if decision not in DECISIONS:
            raise BadRequest(f"decision must be one of {', '.join(DECISIONS)}")
        future = self._approvals.get(call_id)
        if future is None or future.done():
            raise NotFound(f"no approval is waiting for call {call_id!r}")
        turn = self._current_turn
        future.set_result(decision)
        self.emit(
            "approval_result", turn=turn.id if turn else None, call_id=call_id, decision=decision, user=user
        )

    # -- plans (delegated to the session manager's planner) -------------------------------------------
    def plan(self) -> dict[str, Any] | None:
        """The session's current plan (the last one made), or None."""
        return None if self._manager.planner is None else self._manager.planner.current(self)

    def plan_approve(self, user: dict[str, Any] | None = None) -> None:
        self._planner().approve(self, user)

    def plan_edit(self, plan: Any, user: dict[str, Any] | None = None) -> None:
        self._planner().edit(self, plan, user)

    def task_control(self, action: Any, task_id: Any = None, user: dict[str, Any] | None = None) -> None:
        self._planner().control(self, action, task_id, user)

    def _planner(self) -> Any:
        if self._manager.planner is None:
            raise BadRequest("planning is not available here")
        return self._manager.planner

    def rename(self, title: str) -> None:
        self.title = title
        self._manager.store.rename_session(self.id, title)

    async def close(self) -> None:
        self.cancel()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)


class SessionManager:
    """Creates, finds and deletes sessions; owns the store and the turn runner."""

    def __init__(
        self,
        store: Store,
        runner: TurnRunner,
        approval_timeout: float = 600.0,
        describe_prompt: Callable[[str, dict[str, Any]], str] | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.approval_timeout = approval_timeout
        self.describe_prompt = describe_prompt or (lambda text, _context: text)
        self.planner: Any = None  # runs plan prompts (engine.scheduler.Scheduler); None: no planning
        self._sessions: dict[str, Session] = {}

    def create(self, title: str = "", owner: str | None = None) -> Session:
        if not isinstance(title, str) or len(title) > 200:
            raise BadRequest("title must be a string of at most 200 characters")
        meta = self.store.create_session(uuid.uuid4().hex, title, owner)
        session = self._sessions[meta["id"]] = Session(meta, self)
        return session

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is not None:
            return session
        meta = self.store.get_session(session_id) if isinstance(session_id, str) else None
        if meta is None:
            raise NotFound(f"no session {session_id!r}")
        session = self._sessions[session_id] = Session(meta, self)
        self._close_interrupted_turn(session)
        if self.planner is not None:
            self.planner.restore(session)  # a plan cut off by a restart shows as interrupted
        return session

    def _close_interrupted_turn(self, session: Session) -> None:
        """A turn cut off by a server restart gets its terminal event, so the log stays well formed."""
        open_turns: dict[str, None] = {}
        for event in self.store.iter_events(session.id, ("message", *TERMINAL_EVENTS)):
            if event["type"] == "message" and event.get("role") == "user" and event.get("turn"):
                open_turns[event["turn"]] = None
            elif event["type"] in TERMINAL_EVENTS:
                open_turns.pop(event.get("turn"), None)
        for turn_id in open_turns:
            session.emit(
                "error",
                turn=turn_id,
                code="interrupted",
                message="the server restarted before this turn finished; send the prompt again",
            )

    def list(self) -> list[dict[str, Any]]:
        live = {sid: s for sid, s in self._sessions.items()}
        out = []
        for meta in self.store.list_sessions():
            session = live.get(meta["id"])
            out.append(session.to_dict() if session else {**meta, "running": False})
        return out

    async def delete(self, session_id: str) -> None:
        session = self.get(session_id)
        await session.close()
        self._sessions.pop(session_id, None)
        self.store.delete_session(session_id)

    async def close(self) -> None:
        if self.planner is not None:
            self.planner.closing = True  # plans cut off now can be resumed after the restart
        await asyncio.gather(*(s.close() for s in list(self._sessions.values())), return_exceptions=True)
        self.store.flush()
