"""Running one plan: ready tasks run in parallel (up to a limit) as focused agent turns, with a retry, a
re-plan on failure, a person's controls, and every change published as an event and persisted.

A :class:`PlanRun` carries out the plan of one plan prompt's turn for the
:class:`~jupyter_agent.engine.scheduler.Scheduler`; each task runs as a :class:`TaskTurn` through the same
AgentLoop, and task events carry ``task``, so the session's own transcript skips them. Notebooks are
serialised per task: a task holds the lock of every notebook it declares or names for its whole run (locks
shared by all sessions); meanwhile other ready tasks go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from jupyter_agent.engine import planner as plans
from jupyter_agent.engine.history import TRANSCRIPT_EVENTS, apply_event, for_model
from jupyter_agent.engine.plan import FINISHED, SATISFIED, Plan, Task
from jupyter_agent.engine.session import Session, Turn, TurnResult
from jupyter_agent.engine.types import Completion
from jupyter_agent.errors import AgentError, ApprovalTimeout, BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    from jupyter_agent.engine.scheduler import Scheduler

log = logging.getLogger(__name__)

MAX_SUMMARY = 2000


class TaskTurn:
    """One task's agent turn: what the AgentLoop needs from a Turn, with the task's own transcript."""

    def __init__(self, run: PlanRun, task: Task, prompt: str) -> None:
        self.id = run.turn.id
        self.session: Session = run.turn.session
        self.user = run.turn.user
        self.principal = run.turn.principal  # the person who prompted, or who approved the plan
        self.untrusted: list[str] = []  # what this task read from outside the workspace
        self.model = run.turn.model
        self.context = run.turn.context
        self.text = prompt
        self.task = task
        self.answer = ""
        #: This attempt's tool calls in the order made: name, arguments, ok and content once the result is in.
        self.calls: list[dict[str, Any]] = []
        self._history: list[dict[str, Any]] = [{"role": "user", "content": prompt}]

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        event = self.session.emit(type, turn=self.id, task=self.task.id, attempt=self.task.attempt, **fields)
        if type in TRANSCRIPT_EVENTS:
            apply_event(self._history, {k: v for k, v in event.items() if k != "task"})
            if type == "message" and event.get("role") == "assistant":
                self.answer = event.get("content") or ""
        self._track(type, event)
        return event

    def _track(self, type: str, event: dict[str, Any]) -> None:
        if type == "tool_call":
            self.calls.append(
                {"id": event.get("call_id"), "name": event.get("name"), "arguments": event.get("arguments")}
            )
        elif type == "tool_result":
            call = next((c for c in self.calls if c["id"] == event.get("call_id") and "ok" not in c), None)
            if call is None:
                call = {"id": event.get("call_id"), "name": event.get("name"), "arguments": None}
                self.calls.append(call)
            call.update(ok=bool(event.get("ok")), content=str(event.get("content") or ""))

    async def request_approval(self, call_id: str, name: str, arguments: Any, reason: str = "") -> str:
        return await self.session.request_approval(self, call_id, name, arguments, reason)  # type: ignore[arg-type]

    def memory(self) -> str:
        return ""  # a task's conversation is its own, from its prompt: nothing before it to remember

    def context_start(self) -> int:
        return 0

    def transcript(self, vision: bool = False) -> list[dict[str, Any]]:
        return for_model(self._history, vision)


class PlanRun:
    """One plan being made and carried out, for the turn of the prompt that asked for it."""

    def __init__(self, scheduler: Scheduler, turn: Turn, plan: Plan) -> None:
        self.s = scheduler
        self.turn = turn
        self.plan = plan
        self.usage: dict[str, Any] = dict(prompt_tokens=0, completion_tokens=0, cost=0.0, model_calls=0)
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._held: set[str] = set()
        self._failed: list[Task] = []
        self._approved: asyncio.Future[None] | None = None
        self._task: asyncio.Task[Any] | None = None

    # -- events ---------------------------------------------------------------------------------------
    def publish(self) -> None:
        """The whole plan as a ``plan`` event (and persisted)."""
        self.turn.emit("plan", **self.s.save(self.turn.session.id, self.plan))

    def update(self, task: Task, save: bool = True) -> None:
        """One task's state as a ``task_update`` event (and the plan persisted)."""
        if save:
            self.s.save(self.turn.session.id, self.plan)
        self.turn.emit("task_update", task=task.id, **task.update())

    def _count(self, completion: Completion | Any, usage: dict[str, Any] | None = None) -> None:
        if isinstance(completion, Completion):
            self.turn.emit("usage", **completion.usage.to_dict())
            usage = {**completion.usage.to_dict(), "model_calls": 1}
        for key in ("prompt_tokens", "completion_tokens", "model_calls"):
            self.usage[key] += (usage or {}).get(key) or 0
        cost = (usage or {}).get("cost")
        self.usage["cost"] = None if cost is None or self.usage["cost"] is None else self.usage["cost"] + cost

    # -- the run --------------------------------------------------------------------------------------
    async def run(self) -> TurnResult:
        self._task = asyncio.current_task()
        plan = self.plan
        try:
            if plan.status == "draft":
                self.publish()
                plan.tasks = await self.s.maker.draft(plan.goal, plan.context, plan.model, self._count)
                if not getattr(self.turn, "auto", False):
                    await self._await_approval()
            plan.status = "running"
            self.publish()
            await self._drive()
        except asyncio.CancelledError:
            await self._stop_all()
            plan.status = "interrupted" if self.s.closing else "cancelled"
            self.publish()
            raise
        except AgentError as err:
            await self._stop_all()
            plan.status, plan.error = "failed", err.message
            self.publish()
            raise
        plan.status = "done"
        self.publish()
        self.turn.emit("message", role="assistant", content=plans.summary(self.plan))
        return TurnResult("completed", self.usage)

    async def _await_approval(self) -> None:
        self.plan.status = "awaiting_approval"
        self.publish()
        self._approved = asyncio.get_running_loop().create_future()
        timeout = self.s.approval_timeout
        try:
            await asyncio.wait_for(self._approved, timeout)
        except TimeoutError:
            raise ApprovalTimeout(
                f"nobody approved the plan within {timeout:g} s, so it did not run; "
                "resume it (task_control resume) or send the goal again when someone can approve it"
            ) from None
        finally:
            self._approved = None

    async def _drive(self) -> None:
        while True:
            self._wake.clear()  # cleared before looking: whatever changes after this wakes the loop
            if self._failed:
                await self._replan(self._failed.pop(0))
                continue
            if self.plan.status == "running":
                self._start_ready()
            if not self._running and self.plan.status == "running":
                live = self.plan.live
                failed = [t for t in live if t.state == "failed"]
                if failed:
                    raise _task_failed(failed[0])
                if all(t.state in FINISHED for t in live):
                    return
                waiting = ", ".join(t.id for t in live if t.state not in FINISHED)
                raise AgentError(f"tasks {waiting} wait on tasks that will not run", code="plan_stuck")
            await self._wake.wait()

    def _start_ready(self) -> None:
        states = {t.id: t.state for t in self.plan.live}
        for task in self.plan.live:
            if task.state == "pending" and all(states.get(d, "done") in SATISFIED for d in task.depends_on):
                task.state = "ready"
                self.update(task)
        for task in self.plan.live:
            if len(self._running) >= self.s.max_parallel_tasks:
                return
            paths = set(task.notebook_paths())
            if task.state != "ready" or paths & self._held:
                continue  # a task of this plan is editing that notebook: run another one meanwhile
            self._held |= paths
            task.state = "running"  # at once, so the limit counts it; _run_task records when it starts
            job = asyncio.create_task(self._run_task(task, paths), name=f"plan-task-{task.id}")
            job.add_done_callback(functools.partial(self._ended, task, paths))
            self._running[task.id] = job

    async def _run_task(self, task: Task, paths: set[str]) -> None:
        async with self.s.notebook_locks(paths):
            for attempt in range(1 + self.s.task_retries):
                error, retry = await self._attempt(task)
                if error is None or task.state != "running":
                    return
                task.state, task.error = "failed", error
                self.update(task)
                if not retry or attempt == self.s.task_retries:
                    break
            self._failed.append(task)

    def _ended(self, task: Task, paths: set[str], job: asyncio.Task[None]) -> None:
        """A task's run ended (a done callback: it runs even when the task was cancelled before it began)."""
        self._running.pop(task.id, None)
        self._held -= paths
        self._wake.set()
        if job.cancelled():
            if task.state == "running":  # the whole plan was cancelled; a skip or cancel set its own state
                task.state = "pending" if self.s.closing else "cancelled"
            task.finished = time.time()
            self.update(task)
        elif job.exception() is not None:
            error = job.exception()
            log.error("Task %s of plan %s failed", task.id, self.plan.id, exc_info=error)
            task.state, task.error = "failed", f"internal error: {type(error).__name__}: {error}"
            task.finished = time.time()
            self.update(task)

    async def _attempt(self, task: Task) -> tuple[str | None, bool]:
        """One go at a task: (None, _) when it is done, else (why it failed, whether to try again)."""
        previous = task.error
        task.attempt += 1
        task.state, task.started, task.error = "running", time.time(), ""
        task.finished = task.actual_s = None
        self.update(task)
        turn = TaskTurn(self, task, plans.task_prompt(self.plan, task, previous))
        error, retry = None, True
        try:
            result = await self.s.loop.run_turn(turn)  # type: ignore[arg-type]
            self._count(None, result.usage)
            if result.reason != "completed":
                error = f"the task's turn stopped ({result.reason}) before it finished"
            elif turn.answer.lstrip().upper().startswith("FAILED"):
                error = turn.answer.strip()
            else:
                error = await self._check(task, turn)
        except ApprovalTimeout as err:
            error, retry = err.message, False
        except AgentError as err:
            error = err.message
        task.finished = time.time()
        task.actual_s = round(task.finished - task.started, 3)
        if error is not None:
            return error[:1000], retry
        task.state, task.summary = "done", turn.answer.strip()[:MAX_SUMMARY]
        self.s.book.record(task.tools, task.actual_s)
        self.update(task, save=False)
        self.publish()  # persists; the critical path and the expected finish move as tasks finish
        return None, False

    async def _check(self, task: Task, turn: TaskTurn) -> str | None:
        """Why a task whose turn completed is not done, or None when it is.

        A task is doubtful when a tool call of its attempt failed and no later call of the same tool
        succeeded, or when its answer says it could not do something; then one short structured model call
        checks its result against its acceptance criteria. Where that check cannot be made, unresolved
        tool failures fail the task (an answer's words alone do not).
        """
        failures = plans.unresolved_failures(turn.calls)
        if not failures and not plans.ADMITS_FAILURE.search(turn.answer):
            return None
        try:
            verdict = await self.s.maker.check(task, turn.answer, turn.calls, self.plan.model, self._count)
        except AgentError as err:
            log.warning("Could not check task %s of plan %s: %s", task.id, self.plan.id, err.message)
            verdict = None
        failed = "; ".join(f"{c['name']}: {_first_line(c.get('content'))}" for c in failures[:3])
        if verdict is None:
            return f"tool calls failed and the result could not be checked ({failed})" if failures else None
        met, reason = verdict
        log.info(
            "Task %s of plan %s checked: %s (%s)", task.id, self.plan.id, "met" if met else "not met", reason
        )
        if met:
            return None
        criteria = task.acceptance.strip() or "the task as described"
        text = f"not done: the check against its criteria ({criteria}) says: {reason or 'not met'}"
        return text + (f" [failed tool calls: {failed}]" if failed else "")

    async def _replan(self, failed: Task) -> None:
        if failed.state != "failed" or failed.replaced:
            return  # retried or skipped by a person meanwhile
        if self.plan.replans >= self.s.max_replans:
            raise _task_failed(failed)
        self.plan.replans += 1
        tasks = await self.s.maker.replan(self.plan, failed, self.plan.model, self._count)
        failed.replaced = True
        self.plan.tasks = [t for t in self.plan.tasks if t.replaced or t.state not in ("pending", "ready")]
        self.plan.tasks += tasks
        self.plan.revision += 1
        self.publish()

    async def _stop_all(self) -> None:
        jobs = list(self._running.values())
        for job in jobs:
            job.cancel()  # each one's end is recorded by _ended
        for task in self.plan.live:
            if task.state in ("pending", "ready") and not self.s.closing:
                task.state = "cancelled"
                self.update(task)
        with contextlib.suppress(asyncio.CancelledError):  # cancelled again (shutdown): still publish the end
            await asyncio.gather(*jobs, return_exceptions=True)

    # -- a person's controls ----------------------------------------------------------------------------
    def approve(self) -> None:
        if self._approved is None or self._approved.done():
            raise Conflict(f"the plan is {self.plan.status}, not waiting for approval")
        self._approved.set_result(None)

    def edit(self, data: Any) -> None:
        if self.plan.status == "draft":
            raise Conflict("the plan is still being made; edit it once it is shown")
        if isinstance(data, dict) and isinstance(data.get("goal"), str) and data["goal"].strip():
            if self.plan.status != "awaiting_approval":
                raise BadRequest("the goal can change only before the plan is approved")
            self.plan.goal = data["goal"].strip()
        self.plan.tasks = plans.edited_tasks(self.plan, data, self.s.book)
        self.plan.revision += 1
        self.publish()
        self._wake.set()

    def control(self, action: str, task_id: str | None) -> None:
        if task_id is None:
            if action == "cancel":
                assert self._task is not None
                self._task.cancel()  # the session ends the turn with done (cancelled)
                return
            wanted = {"pause": "running", "resume": "paused"}[action]
            if self.plan.status != wanted:
                raise Conflict(f"the plan is {self.plan.status}; {action} needs a {wanted} plan")
            self.plan.status = "paused" if action == "pause" else "running"
            self.publish()
            self._wake.set()
            return
        task = task_for_action(self.plan, task_id, action)
        if action == "retry":
            self._reopen(task)
        else:
            self._close(task, "skipped" if action == "skip" else "cancelled")
        self._wake.set()

    def _close(self, task: Task, state: str) -> None:
        running = self._running.get(task.id)
        task.state = state
        if running is not None:
            running.cancel()  # _run_task records the end, keeping this state
        else:
            task.finished = time.time()
            self.update(task)
        if state == "cancelled":  # what depends on a cancelled task cannot run either
            for other in self.plan.live:
                if task.id in other.depends_on and other.state in ("pending", "ready"):
                    self._close(other, "cancelled")

    def _reopen(self, task: Task) -> None:
        if task in self._failed:
            self._failed.remove(task)
        task.state, task.error = "pending", ""
        self.update(task)
        for other in self.plan.live:
            if task.id in other.depends_on and other.state == "cancelled":
                self._reopen(other)


def _first_line(text: Any, limit: int = 200) -> str:
    line = next((part.strip() for part in str(text or "").splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _task_failed(task: Task) -> AgentError:
    return AgentError(f"task {task.id} ({task.title}) failed: {task.error}", code="task_failed")


def task_for_action(plan: Plan, task_id: Any, action: str) -> Task:
    """The task an action names, if the action applies to it in its state."""
    try:
        task = plan.task(task_id)
    except KeyError:
        raise NotFound(f"the plan has no task {task_id!r}") from None
    if action == "retry" and task.state not in ("failed", "cancelled", "skipped"):
        raise Conflict(f"task {task.id} is {task.state}; only failed, cancelled or skipped tasks retry")
    if action != "retry" and task.state in FINISHED:
        raise Conflict(f"task {task.id} is already {task.state}")
    return task
