"""Sessions: an append-only event log per conversation, fanned out live to every subscriber.

Every event is stored before it is sent, and carries a per-session sequence number, so any client can
replay from any point and detect gaps. Prompts are queued per session and run one at a time; each ends in
exactly one ``done`` or ``error`` event, which this module (not the agent loop) emits.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from jupyter_agent.engine.history import TRANSCRIPT_EVENTS, Transcript, for_model
from jupyter_agent.engine.metrics import Measurements
from jupyter_agent.engine.types import TERMINAL_EVENTS
from jupyter_agent.errors import AgentError, ApprovalTimeout, BadRequest, Conflict, NotFound
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
    #: Who the turn acts for, as the host knows them (the server: its handler and Jupyter user), for the
    #: authorization of each tool call; None where the person is the process's own user (kernel, CLI).
    principal: Any = None
    #: What this turn has read from outside the workspace (URLs): side effects then ask first.
    untrusted: list[str] = field(default_factory=list)
    #: The W3C trace context (``traceparent``, ``tracestate``) of the request that asked: the turn's span
    #: links to it (engine.tracing).
    origin: dict[str, str] | None = None

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        return self.session.emit(type, turn=self.id, **fields)

    async def request_approval(self, call_id: str, name: str, arguments: Any, reason: str = "") -> str:
        return await self.session.request_approval(self, call_id, name, arguments, reason)

    def transcript(self, vision: bool = False) -> list[dict[str, Any]]:
        """The conversation the model reads for this turn: the session's."""
        return self.session.transcript(vision)

    def memory(self) -> str:
        """The summary of the conversation before the session's last compaction ("" before any)."""
        return self.session.history().memory

    def context_start(self) -> int:
        """Where this turn's prompt is in :meth:`transcript`: what is before it may be summarised."""
        return self.session.history().start(self.id)


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
        self.writer: dict[str, Any] | None = meta.get("writer")
        self.shared: bool = bool(
            meta.get("shared")
        )  # seen by the notebook's collaborators, not only its owner
        self._manager = manager
        self._subscribers: list[Subscriber] = []
        self._access_listeners: list[Subscriber] = []  # told when this process starts or stops writing
        self._history: Transcript | None = None
        self._queue: deque[Turn] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._current: asyncio.Task[TurnResult] | None = None
        self._current_turn: Turn | None = None
        # By call id: the decision to come, the turn that asked and the tool it asks about.
        self._approvals: dict[str, tuple[asyncio.Future[str], Turn, str]] = {}
        self.policy: dict[str, str] = {}  # per-session "always allow" decisions
        self._edit_mode: str | None = None  # read from the store when first asked
        self._review_lock = asyncio.Lock()  # one undo, redo or review of this session's turns at a time

    @property
    def running(self) -> bool:
        return self._current is not None and not self._current.done()

    @property
    def read_only(self) -> bool:
        """True when another process writes this session: this one only shows it (live)."""
        return (self.writer or {}).get("id") != self._manager.store.writer["id"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "owner": self.owner,
            "created": self.created,
            "updated": self.updated,
            "last_seq": self.last_seq,
            "running": self.running,
            "shared": self.shared,
            "writer": self.writer,
            "read_only": self.read_only,
            "edit_mode": self.edit_mode,
            **({"read_only_reason": describe_writer(self.writer)} if self.read_only else {}),
        }

    def access(self) -> dict[str, Any]:
        """Who writes this session, as the clients of this process see it (the ``access`` frame)."""
        frame: dict[str, Any] = {"type": "access", "session": self.id, "read_only": self.read_only}
        if self.read_only:
            frame["writer"] = self.writer
            frame["message"] = describe_writer(self.writer)
        return frame

    def on_access(self, listener: Subscriber) -> None:
        self._access_listeners.append(listener)

    def off_access(self, listener: Subscriber) -> None:
        if listener in self._access_listeners:
            self._access_listeners.remove(listener)

    def notify_access(self) -> None:
        frame = self.access()
        for listener in list(self._access_listeners):
            try:
                listener(frame)
            except Exception:
                log.exception("Dropping an access listener of session %s that failed", self.id)
                self.off_access(listener)

    def _check_writable(self) -> None:
        if self.read_only:
            raise Conflict(describe_writer(self.writer), code="read_only")

    # -- the log ------------------------------------------------------------------------------------
    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        """Append an event to the log and send it to every subscriber, in that order.

        The store numbers it (``seq``), atomically across the processes that share the store.
        """
        self._check_writable()
        # Redaction and the audit record (security.boundary).
        fields = self._manager.outbound(self, type, fields)
        event = {"type": type, "session": self.id, "seq": 0, "ts": time.time(), **fields}
        self.last_seq = self._manager.store.append_event(event)
        self.updated = event["ts"]
        if self._manager.budgets is not None:
            self._manager.budgets.observe(event)
        if self._history is not None and type in TRANSCRIPT_EVENTS:
            self._history.apply(event)
        self._send(event)
        return event

    def _send(self, event: dict[str, Any]) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("Dropping a subscriber of session %s that failed", self.id)
                self.unsubscribe(subscriber)

    def follow(self) -> None:
        """Send subscribers the events another process (this session's writer) has logged since we looked."""
        for event in self._manager.store.events(self.id, self.last_seq):
            self.last_seq = event["seq"]
            self.updated = event["ts"]
            if event["type"] == "session" and isinstance(event.get("title"), str):
                self.title = event["title"]
                self.shared = bool(event.get("shared", self.shared))
            self._history = None  # rebuilt from the log when this process needs it
            self._send(event)

    @property
    def watched(self) -> bool:
        return bool(self._subscribers)

    def events(self, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        return self._manager.store.events(self.id, after, limit)

    def subscribe(self, subscriber: Subscriber, after: int | None = 0) -> list[dict[str, Any]]:
        """Subscribe to live events; returns the logged events after ``after`` to send first.

        Replay and subscription happen with no await between them, so nothing falls into a gap.
        """
        backlog = self.events(after) if after is not None else []
        if backlog:
            self.last_seq = max(self.last_seq, backlog[-1]["seq"])
        self._subscribers.append(subscriber)
        if self.read_only:
            self._manager.watch(self)
        return backlog

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def transcript(self, vision: bool = False) -> list[dict[str, Any]]:
        """The conversation as the model reads it (with images when the model can see)."""
        return for_model(self.history().messages, vision)

    def history(self) -> Transcript:
        """The model's transcript, folded from the log when first needed, then kept up to date."""
        if self._history is None:
            self._history = Transcript()
            for event in self._manager.store.iter_events(self.id, TRANSCRIPT_EVENTS):
                self._history.apply(event)
            if self._current_turn is not None:
                self._history.start_turn(self._current_turn.id)
        return self._history

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
        principal: Any = None,
        origin: dict[str, str] | None = None,
    ) -> Turn:
        """Log the user's message at once (everyone sees it) and queue the turn that answers it.

        ``origin``: the trace context of the request that sent it, for the turn's span to link to."""
        self._check_writable()
        if self._manager.budgets is not None:
            self._manager.budgets.admit(user)  # raises BudgetExceeded with the limit and when it renews
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("a prompt needs non-empty text")
        context = context or {}
        if not isinstance(context, dict):
            raise BadRequest('context must be an object such as {"notebook": "path.ipynb"}')
        if (plan or resume) and self._manager.planner is None:
            raise BadRequest("planning is not available here")
        turn = Turn(
            uuid.uuid4().hex[:12],
            self,
            text,
            context,
            user,
            model,
            plan or resume,
            auto,
            resume,
            principal,
            origin=origin,
        )
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
            user = (turn.user or {}).get("username")
            record = self._manager.measurements.turn(self.id, turn.id, user, turn.origin)
            self._current = record.run(runner.run_turn(turn), name=f"agent-turn-{turn.id}")
            outcome, code = "error", None
            try:
                result = await asyncio.shield(self._current)
            except asyncio.CancelledError:
                outcome = "cancelled"
                if not self._current.done():  # the worker itself is being stopped (server shutdown)
                    self._current.cancel()
                    turn.emit("done", reason="cancelled", message="the server is shutting down")
                    raise
                turn.emit("done", reason="cancelled")
            except ApprovalTimeout as err:
                code = err.code
                turn.emit("error", code=err.code, message=err.message)
            except AgentError as err:
                code = err.code
                turn.emit("error", code=err.code, message=err.message)
            except Exception as err:
                log.exception("Turn %s of session %s failed", turn.id, self.id)
                code = "internal_error"
                turn.emit(
                    "error", code="internal_error", message=f"internal error: {type(err).__name__}: {err}"
                )
            else:
                outcome = result.reason
                turn.emit("done", reason=result.reason, usage=result.usage)
            finally:
                record.finish(outcome, code)
                self._current = None
                self._current_turn = None

    def cancel(self) -> bool:
        """Stop the running turn and drop the queued ones; each ends with ``done`` (reason cancelled)."""
        self._check_writable()
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
        self._approvals[call_id] = (future, turn, name)
        turn.emit("tool_status", call_id=call_id, status="waiting_approval")
        turn.emit("approval_request", call_id=call_id, name=name, arguments=arguments, reason=reason)
        timeout = self._manager.approval_timeout
        asked, decision = self._manager.measurements.approval_asked(), "cancelled"
        try:
            async with asyncio.timeout(timeout):
                decision = await future
        except TimeoutError:
            decision = "timeout"
            turn.emit("approval_result", call_id=call_id, decision="timeout")
            raise ApprovalTimeout(
                f"nobody answered the approval request for {name} within {timeout:g} s, so it did not run; "
                "send the prompt again when someone can approve it"
            ) from None
        finally:
            self._approvals.pop(call_id, None)
            self._manager.measurements.approval_answered(decision, asked)
        if decision == "always":
            self.policy[name] = "allow"
        return decision

    def pending_tool(self, call_id: str) -> str | None:
        """The tool a pending approval asks about (None when no approval waits for ``call_id``)."""
        pending = self._approvals.get(call_id)
        return None if pending is None or pending[0].done() else pending[2]

    def approve(self, call_id: str, decision: str, user: dict[str, Any] | None = None) -> None:
        self._check_writable()
        if decision not in DECISIONS:
            raise BadRequest(f"decision must be one of {', '.join(DECISIONS)}")
        pending = self._approvals.get(call_id)
        if pending is None or pending[0].done():
            raise NotFound(f"no approval is waiting for call {call_id!r}")
        future, turn, _name = pending
        future.set_result(decision)
        # From the turn that asked: a plan task's answer carries its task, as its request did.
        turn.emit("approval_result", call_id=call_id, decision=decision, user=user)

    # -- plans (delegated to the session manager's planner) -------------------------------------------
    def plan(self) -> dict[str, Any] | None:
        """The session's current plan (the last one made), or None."""
        return None if self._manager.planner is None else self._manager.planner.current(self)

    def plan_approve(self, user: dict[str, Any] | None = None, principal: Any = None) -> None:
        """Run the plan waiting for approval; its tasks then act for the person who approved it."""
        self._planner().approve(self, user)
        if principal is not None and self._current_turn is not None:
            self._current_turn.principal = principal

    def plan_edit(self, plan: Any, user: dict[str, Any] | None = None) -> None:
        self._planner().edit(self, plan, user)

    def task_control(
        self, action: Any, task_id: Any = None, user: dict[str, Any] | None = None, principal: Any = None
    ) -> None:
        self._planner().control(self, action, task_id, user, principal)

    def _planner(self) -> Any:
        self._check_writable()
        if self._manager.planner is None:
            raise BadRequest("planning is not available here")
        return self._manager.planner

    # -- review and undo of turns (collaboration.review) -------------------------------------------------------
    @property
    def edit_mode(self) -> str:
        """``live`` (the agent's notebook edits apply at once) or ``review`` (they wait, marked, for a person)."""
        if self._edit_mode is None:
            saved = self._manager.store.get_value(f"edit_mode:{self.id}")
            self._edit_mode = saved if saved in EDIT_MODES else self._manager.edit_mode
        return self._edit_mode

    def set_edit_mode(self, mode: Any) -> None:
        self._check_writable()
        if mode not in EDIT_MODES:
            raise BadRequest(f"edit_mode must be one of {', '.join(EDIT_MODES)}")
        self._edit_mode = mode
        self._manager.store.set_value(f"edit_mode:{self.id}", mode)
        self.emit("session", title=self.title, shared=self.shared, edit_mode=mode)

    def record_change(self, turn: Any, call_id: str, change: dict[str, Any]) -> None:
        """Keep a change a tool call of ``turn`` made (for its review and undo) and show it (a ``change``)."""
        review = self._manager.review
        if review is None:
            return
        task = getattr(getattr(turn, "task", None), "id", None)
        summary = review.record(
            self.id, turn.id, {**change, "call_id": call_id, **({"task": task} if task else {})}
        )
        turn.emit("change", call_id=call_id, change=summary)

    def turn_changes(self, turn_id: Any) -> dict[str, Any]:
        """What a turn changed, with diffs, its review state and open conflicts."""
        return self._reviewer().changes(self.id, _turn_id(turn_id), self.edit_mode)

    async def undo(
        self, turn_id: Any = None, user: dict[str, Any] | None = None, resolve: Any = None
    ) -> dict[str, Any]:
        """Take back a turn's changes (the latest turn that has some when ``turn_id`` is None), keeping
        everyone else's edits; with ``resolve``, settle the conflicts of an undone turn."""
        if resolve is not None and not isinstance(resolve, dict):
            raise BadRequest('resolve maps conflict keys to "keep" or "revert"')
        action = "resolve" if resolve else "undo"
        return await self._review_action(action, turn_id, user, lambda r, t: r.undo(self.id, t, resolve))

    async def redo(self, turn_id: Any = None, user: dict[str, Any] | None = None) -> dict[str, Any]:
        """Apply an undone turn's changes again (the latest undone turn when ``turn_id`` is None)."""
        return await self._review_action("redo", turn_id, user, lambda r, t: r.redo(self.id, t))

    async def review(
        self, turn_id: Any, action: Any, cells: Any = None, user: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Accept or reject a turn's pending (review mode) edits: all of them, or those of ``cells``."""
        if action not in ("accept", "reject"):
            raise BadRequest('action must be "accept" or "reject"')
        return await self._review_action(
            action, turn_id, user, lambda r, t: r.review(self.id, t, action, cells)
        )

    async def _review_action(
        self, action: str, turn_id: Any, user: Any, act: Callable[[Any, str], Any]
    ) -> dict[str, Any]:
        self._check_writable()
        review = self._reviewer()
        if turn_id is None and action == "undo":
            turn = review.last_turn(self.id)
        elif turn_id is None and action == "redo":
            turn = review.last_undone(self.id)
        else:
            turn = _turn_id(turn_id)
        if self._current_turn is not None and self._current_turn.id == turn:
            raise Conflict(f"turn {turn} is still running; stop it first", code="turn_running")
        async with self._review_lock:
            result = await act(review, turn)
        self.emit("turn_review", turn=turn, action=action, user=user, **result)
        return {"turn": turn, **result}

    def _reviewer(self) -> Any:
        if self._manager.review is None:
            raise BadRequest("review and undo are not available here")
        return self._manager.review

    def share(self, shared: bool) -> None:
        """Show this session to the collaborators of its notebook (True), or to its owner only."""
        self._check_writable()
        self.shared = shared
        self._manager.store.share_session(self.id, shared)
        self.emit("session", title=self.title, shared=shared)

    def rename(self, title: str) -> None:
        self._check_writable()
        self.title = title
        self._manager.store.rename_session(self.id, title)

    async def close(self) -> None:
        if not self.read_only:
            self.cancel()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)


#: How each kind of process is named when it writes a session that another one shows.
EDIT_MODES = ("live", "review")


def _turn_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise BadRequest("turn must be a turn id (a string)")
    return value


ROLE_NAMES = {"server": "the Jupyter server", "kernel": "a kernel", "cli": "a `jupyter agent` command"}
FOLLOW_INTERVAL = 0.2  # seconds between looks for other processes' events in sessions shown read-only


def describe_writer(writer: dict[str, Any] | None) -> str:
    """Why a session is read-only here, for people: which process writes it."""
    writer = writer or {}
    who = ROLE_NAMES.get(str(writer.get("role")), "another process")
    where = f"pid {writer.get('pid')}" + (
        "" if writer.get("host") in (None, socket.gethostname()) else f" on {writer.get('host')}"
    )
    return (
        f"this session is being run by {who} ({where}); it is read-only here, and you can continue it "
        "once that process ends"
    )


class SessionManager:
    """Creates, finds and deletes sessions; owns the store and the turn runner.

    Sessions written by another process sharing the store are read-only here: they are followed (their new
    events are sent to this process's subscribers) and taken over once their writer has gone.
    """

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
        self.review: Any = None  # collaboration.review.TurnReview: what turns changed, undo; None: none
        self.edit_mode = "live"  # the default of new sessions (c.JupyterAgent.edit_mode)
        #: What each event's fields pass before they are logged (security.boundary.Outbound); default: nothing.
        self.outbound: Callable[[Session, str, dict[str, Any]], dict[str, Any]] = lambda _s, _t, fields: (
            fields
        )
        self._sessions: dict[str, Session] = {}
        self.budgets: Any = None  # engine.budgets.Budgets: per-person limits; None: none
        #: Where turns and approvals are recorded (engine.metrics); the composition shares one with the router.
        self.measurements = Measurements()
        self._followed: set[Session] = set()
        self._follower: asyncio.Task[None] | None = None

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
        self._take_over_if_abandoned(session)
        return session

    def _take_over_if_abandoned(self, session: Session) -> bool:
        """Become the writer of ``session`` when its writer has gone; close what that writer left open."""
        previous = session.writer
        if not session.read_only or self.store.writer_alive(previous):
            return False
        session.writer = self.store.claim_session(session.id)
        if session.read_only:  # another process claimed it first
            return False
        session.last_seq = self.store.last_seq(session.id)
        session._history = None
        self._close_interrupted_turn(session, previous)
        if self.planner is not None:
            self.planner.restore(session)  # a plan cut off by a restart shows as interrupted
        return True

    def _close_interrupted_turn(self, session: Session, writer: dict[str, Any] | None) -> None:
        """A turn cut off by its process ending gets its terminal event, so the log stays well formed."""
        open_turns: dict[str, None] = {}
        for event in self.store.iter_events(session.id, ("message", *TERMINAL_EVENTS)):
            if event["type"] == "message" and event.get("role") == "user" and event.get("turn"):
                open_turns[event["turn"]] = None
            elif event["type"] in TERMINAL_EVENTS:
                open_turns.pop(event.get("turn"), None)
        who = ROLE_NAMES.get(str((writer or {}).get("role")), "the server").replace("a ", "the ", 1)
        for turn_id in open_turns:
            session.emit(
                "error",
                turn=turn_id,
                code="interrupted",
                message=f"{who} that ran this turn stopped before it finished; send the prompt again",
            )

    # -- following other processes' sessions ----------------------------------------------------------
    def watch(self, session: Session) -> None:
        """Follow a read-only session while it has subscribers (needs a running event loop)."""
        self._followed.add(session)
        if self._follower is None or self._follower.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: subscribers see the backlog only
            self._follower = loop.create_task(self._follow(), name="agent-follow-sessions")

    async def _follow(self) -> None:
        version = None
        checks = 0
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL)
            followed = [s for s in self._followed if s.watched and s.read_only]
            self._followed = set(followed)
            if not followed:
                return
            try:
                now = self.store.data_version()
                if now != version:
                    version = now
                    for session in followed:
                        session.follow()
                checks += 1
                if checks % 5 == 0:  # about once a second: has a writer gone?
                    for session in followed:
                        if self._take_over_if_abandoned(session):
                            self._followed.discard(session)
                            session.notify_access()
            except Exception:
                log.exception("Following sessions written by other processes failed; trying again")

    def list(self) -> list[dict[str, Any]]:
        live = {sid: s for sid, s in self._sessions.items()}
        out = []
        for meta in self.store.list_sessions():
            session = live.get(meta["id"])
            if session is not None:
                out.append(session.to_dict())
                continue
            writer = meta.get("writer")
            mine = (writer or {}).get("id") == self.store.writer["id"]
            read_only = not mine and self.store.writer_alive(writer)
            reason = {"read_only_reason": describe_writer(writer)} if read_only else {}
            out.append({**meta, "running": False, "read_only": read_only, **reason})
        return out

    async def delete(self, session_id: str) -> None:
        session = self.get(session_id)
        session._check_writable()
        await session.close()
        self._sessions.pop(session_id, None)
        self.store.delete_session(session_id)

    async def close(self) -> None:
        if self.planner is not None:
            self.planner.closing = True  # plans cut off now can be resumed after the restart
        if self._follower is not None:
            self._follower.cancel()
        await asyncio.gather(*(s.close() for s in list(self._sessions.values())), return_exceptions=True)
        if self._follower is not None:
            await asyncio.gather(self._follower, return_exceptions=True)
        self.store.release_sessions()  # a clean stop: another process may continue these sessions at once
        self.store.flush()
