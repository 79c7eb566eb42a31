"""The planner's scheduler: the session manager's ``planner``, keeping one plan per session at a time.

A plan prompt's turn runs through :class:`Scheduler`, which makes (or resumes) the session's plan and hands
it to a :class:`~jupyter_agent.engine.plan_run.PlanRun` to carry out. Between runs it keeps the plans in the
store, marks those a restart cut off as ``interrupted``, and takes a person's approval, edits and controls
to the running plan (or, for a resume or a retry, to the saved one). It also holds the notebook locks that
all sessions' tasks share.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from jupyter_agent.engine.loop import AgentLoop
from jupyter_agent.engine.plan import SATISFIED, EstimateBook, Plan
from jupyter_agent.engine.plan_run import PlanRun, task_for_action
from jupyter_agent.engine.planner import PlanMaker
from jupyter_agent.engine.session import Session, Turn, TurnResult
from jupyter_agent.errors import BadRequest, Conflict, NotFound

ACTIONS = ("pause", "resume", "cancel", "skip", "retry")
ACTIVE = ("draft", "awaiting_approval", "running", "paused")
RESUMABLE = ("interrupted", "failed", "cancelled")


class Scheduler:
    """Plans and runs goals for a session manager; one plan per session at a time."""

    def __init__(
        self,
        loop: AgentLoop,
        store: Any,
        *,
        max_parallel_tasks: int = 3,
        approval_timeout: float = 600.0,
        task_retries: int = 1,
        max_replans: int = 2,
    ) -> None:
        self.loop = loop
        self.store = store  # anything with get_value/set_value: plans persist there on every change
        self.book = EstimateBook(store)
        self.maker = PlanMaker(loop.llm, loop.router.schemas, self.book)
        self.max_parallel_tasks = max_parallel_tasks
        self.approval_timeout = approval_timeout
        self.task_retries = task_retries
        self.max_replans = max_replans
        self.runs: dict[str, PlanRun] = {}
        self.closing = False  # the server is stopping: runs cut off now are interrupted, not cancelled
        self._resuming: set[str] = set()
        self._notebook_locks: dict[str, asyncio.Lock] = {}

    # -- what the session calls -------------------------------------------------------------------------
    async def run_turn(self, turn: Turn) -> TurnResult:
        session = turn.session
        if getattr(turn, "resume", False):
            self._resuming.discard(session.id)
            plan = self.saved(session.id)
            if plan is None:
                raise NotFound("this session has no plan to resume")
            for task in plan.live:
                if task.state not in SATISFIED:
                    task.state = "pending"
            plan.status, plan.error = ("running" if plan.tasks else "draft"), ""  # cut off while planning
        else:
            plan = Plan(goal=turn.text, context=dict(turn.context), model=turn.model)
        run = self.runs[session.id] = PlanRun(self, turn, plan)
        try:
            return await run.run()
        finally:
            if self.runs.get(session.id) is run:
                del self.runs[session.id]

    def current(self, session: Session) -> dict[str, Any] | None:
        run = self.runs.get(session.id)
        if run is not None:
            return run.plan.snapshot(self.max_parallel_tasks)
        return self.store.get_value(_key(session.id))

    def restore(self, session: Session) -> None:
        """When a session is loaded: a plan that was active when the server stopped is ``interrupted``."""
        plan = self.saved(session.id)
        if plan is None or plan.status not in ACTIVE or session.id in self.runs:
            return
        plan.status = "interrupted"
        for task in plan.live:
            if task.state in ("running", "ready"):
                task.state = "pending"
        snapshot = self.save(session.id, plan)
        session.emit("plan", **snapshot)

    def approve(self, session: Session, user: dict[str, Any] | None = None) -> None:
        self._live(session).approve()

    def edit(self, session: Session, data: Any, user: dict[str, Any] | None = None) -> None:
        self._live(session).edit(data)

    def control(
        self,
        session: Session,
        action: Any,
        task_id: Any = None,
        user: dict[str, Any] | None = None,
        principal: Any = None,
    ) -> None:
        if action not in ACTIONS:
            raise BadRequest(f"action must be one of {', '.join(ACTIONS)}")
        if task_id is not None and not isinstance(task_id, str):
            raise BadRequest("task_id must be a string")
        if task_id is None and action in ("skip", "retry"):
            raise BadRequest(f"{action} needs a task_id")
        if task_id is not None and action in ("pause", "resume"):
            raise BadRequest(f"{action} applies to the whole plan: send it without a task_id")
        run = self.runs.get(session.id)
        if run is not None:
            run.control(action, task_id)
            return
        plan = self.saved(session.id)
        if plan is None:
            raise NotFound("this session has no plan")
        if plan.status not in RESUMABLE or session.id in self._resuming:
            raise Conflict(f"the plan is {plan.status}, not running")
        if action not in ("resume", "retry"):
            raise Conflict(f"the plan is {plan.status}; resume it first")
        if task_id is not None:
            task_for_action(plan, task_id, action).state = "pending"
            self.save(session.id, plan)
        self._resuming.add(session.id)  # a second resume before this one starts is refused
        session.submit(
            f"Resume the plan: {plan.goal}", plan.context, user, plan.model, resume=True, principal=principal
        )

    # -- shared state -----------------------------------------------------------------------------------
    def saved(self, session_id: str) -> Plan | None:
        data = self.store.get_value(_key(session_id))
        return Plan.from_dict(data) if data else None

    def save(self, session_id: str, plan: Plan) -> dict[str, Any]:
        snapshot = plan.snapshot(self.max_parallel_tasks)
        self.store.set_value(_key(session_id), snapshot)
        return snapshot

    @asynccontextmanager
    async def notebook_locks(self, paths: Iterable[str]) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for path in sorted(paths):  # always in the same order: two tasks never deadlock
                await stack.enter_async_context(self._notebook_locks.setdefault(path, asyncio.Lock()))
            yield

    def _live(self, session: Session) -> PlanRun:
        run = self.runs.get(session.id)
        if run is None:
            raise Conflict("no plan is running in this session")
        return run


def _key(session_id: str) -> str:
    return f"plan:{session_id}"
