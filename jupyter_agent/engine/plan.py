"""A plan as data: a goal and its task DAG with each task's run state, the DAG arithmetic over it (critical
path, expected finish) and the measured task durations that set the estimates.

Making a plan is :mod:`jupyter_agent.engine.planner`'s job and running one is
:mod:`jupyter_agent.engine.plan_run`'s; this module only describes one and does the sums.
"""

from __future__ import annotations

import heapq
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields
from graphlib import TopologicalSorter
from typing import Any

# Plan status: draft awaiting_approval running paused done failed cancelled interrupted.
# Task state: pending ready running done failed skipped cancelled.
SATISFIED = frozenset({"done", "skipped"})  # task states whose dependents may run
FINISHED = frozenset({"done", "failed", "skipped", "cancelled"})
DEFAULT_ESTIMATE_S = 30.0  # a task with no estimate from the model and no measured history
NOTEBOOK_PATH = re.compile(r"[\w./-]+\.ipynb")


@dataclass
class Task:
    """One node of a plan's DAG, with its run state."""

    id: str
    title: str
    description: str = ""
    depends_on: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    notebooks: list[str] = field(default_factory=list)
    estimate_s: float = DEFAULT_ESTIMATE_S  # blended with measured history (EstimateBook)
    model_estimate_s: float | None = None  # what the model (or person) said
    acceptance: str = ""
    state: str = "pending"
    started: float | None = None
    finished: float | None = None
    actual_s: float | None = None
    summary: str = ""
    error: str = ""
    attempt: int = 0
    replaced: bool = False  # failed, and re-planned away: kept only to show what happened

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)  # shallow: dataclasses.asdict deep-copies, and this runs on every change
        for key in ("depends_on", "tools", "notebooks"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def update(self) -> dict[str, Any]:
        """The fields of a ``task_update`` event."""
        keys = ("state", "started", "finished", "estimate_s", "actual_s", "summary", "attempt", "error")
        return {"id": self.id, **{k: getattr(self, k) for k in keys}}

    def notebook_paths(self) -> list[str]:
        """Notebooks the task declares or names: the scheduler serialises tasks on each of them."""
        named = NOTEBOOK_PATH.findall(f"{self.title}\n{self.description}")
        return sorted({p.removeprefix("./") for p in [*self.notebooks, *named]})


@dataclass
class Plan:
    """A goal and its task DAG, as persisted and as sent in ``plan`` events."""

    goal: str
    tasks: list[Task] = field(default_factory=list)
    status: str = "draft"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    context: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    created: float = field(default_factory=time.time)
    error: str = ""
    revision: int = 0  # bumped on every re-plan and edit
    replans: int = 0

    def task(self, task_id: Any) -> Task:
        for task in self.tasks:
            if task.id == task_id and not task.replaced:
                return task
        raise KeyError(task_id)

    @property
    def live(self) -> list[Task]:
        return [t for t in self.tasks if not t.replaced]

    def snapshot(self, max_parallel: int, now: float | None = None) -> dict[str, Any]:
        """The whole plan with its critical path and expected finish, for events and the REST API."""
        now = time.time() if now is None else now
        path, length = critical_path(self.live, now)
        keys = ("id", "goal", "status", "context", "model", "created", "error", "revision", "replans")
        return {
            **{k: getattr(self, k) for k in keys},
            "tasks": [t.to_dict() for t in self.tasks],
            "critical_path": path,
            "critical_path_s": round(length, 3),
            "expected_finish": expected_finish(self.live, max_parallel, now),
            "updated": now,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        known = {f.name for f in fields(cls)} - {"tasks"}
        plan = cls(**{k: v for k, v in data.items() if k in known})
        plan.tasks = [Task.from_dict(t) for t in data.get("tasks", [])]
        return plan


# -- the DAG's arithmetic ----------------------------------------------------------------------------------


def topological(tasks: list[Task]) -> list[Task]:
    """Tasks in an order where every task comes after its (present) dependencies."""
    by_id = {t.id: t for t in tasks}
    order = TopologicalSorter({t.id: [d for d in t.depends_on if d in by_id] for t in tasks}).static_order()
    return [by_id[i] for i in order]


def duration(task: Task, now: float) -> float:
    """Measured duration for finished tasks, the estimate (or elapsed time, if longer) for the others."""
    if task.state in ("skipped", "cancelled"):
        return 0.0
    if task.state in ("done", "failed") and task.actual_s is not None:
        return task.actual_s
    if task.state == "running" and task.started is not None:
        return max(task.estimate_s, now - task.started)
    return task.estimate_s


def critical_path(tasks: list[Task], now: float) -> tuple[list[str], float]:
    """The longest path through the DAG by duration: (task ids in order, its length in seconds)."""
    longest: dict[str, tuple[float, str | None]] = {}
    for task in topological(tasks):
        before = max(((longest[d][0], d) for d in task.depends_on if d in longest), default=(0.0, None))
        longest[task.id] = (before[0] + duration(task, now), before[1])
    if not longest:
        return [], 0.0
    end = max(longest, key=lambda i: longest[i][0])
    path, node = [], end
    while node is not None:
        path.append(node)
        node = longest[node][1]
    return path[::-1], longest[end][0]


def expected_finish(tasks: list[Task], max_parallel: int, now: float) -> float | None:
    """When the plan should end: a simulation of the scheduler with the estimates (None when it cannot)."""
    if not tasks:
        return None
    by_id = {t.id: t for t in tasks}
    ends = {t.id: t.finished or now for t in tasks if t.state in SATISFIED}
    running = [(max(now, (t.started or now) + t.estimate_s), t.id) for t in tasks if t.state == "running"]
    heapq.heapify(running)
    waiting = {
        t.id: {d for d in t.depends_on if d in by_id and d not in ends}
        for t in tasks
        if t.state in ("pending", "ready")
    }
    dependents: dict[str, list[str]] = {}
    for task_id, deps in waiting.items():
        for dep in deps:
            dependents.setdefault(dep, []).append(task_id)
    ready = deque(i for i, deps in waiting.items() if not deps)
    clock, finish = now, max(ends.values(), default=now)
    while ready or running:
        while ready and len(running) < max(1, max_parallel):
            task_id = ready.popleft()
            del waiting[task_id]
            heapq.heappush(running, (clock + by_id[task_id].estimate_s, task_id))
        clock, task_id = heapq.heappop(running)
        finish = max(finish, clock)
        for other in dependents.get(task_id, ()):
            waiting[other].discard(task_id)
            if not waiting[other]:
                ready.append(other)
    return None if waiting else round(finish, 3)  # what is left waits on failed or cancelled tasks


# -- measured durations ------------------------------------------------------------------------------------


class EstimateBook:
    """Measured task durations per suggested tool (a running mean), persisted in the store's key-value table.

    A task's duration is shared equally among its suggested tools; the next plan's estimate for a task is the
    sum of its tools' means, blended with the model's estimate by how much history there is.
    """

    KEY = "planner:tool_durations"
    MAX_WEIGHT = 20  # later measurements keep moving the mean

    def __init__(self, state: Any = None) -> None:
        self._state = state  # anything with get_value/set_value (the Store)
        self.means: dict[str, list[float]] = dict(state.get_value(self.KEY, {}) if state else {})

    def estimate(self, tools: list[str], model_estimate: float | None) -> float:
        known = [self.means[t] for t in tools if t in self.means]
        if not known:
            return DEFAULT_ESTIMATE_S if model_estimate is None else float(model_estimate)
        mean_of_known = sum(m for _, m in known) / len(known)
        history = sum(m for _, m in known) + mean_of_known * (len(tools) - len(known))
        if model_estimate is None:
            return round(history, 3)
        count = min(n for n, _ in known)
        weight = count / (count + 2)  # one measurement: a third; ten: most of it
        return round(weight * history + (1 - weight) * float(model_estimate), 3)

    def record(self, tools: list[str], seconds: float) -> None:
        for tool in tools:
            count, mean = self.means.get(tool, (0, 0.0))
            count = min(count + 1, self.MAX_WEIGHT)
            self.means[tool] = [count, mean + (seconds / len(tools) - mean) / count]
        if tools and self._state is not None:
            self._state.set_value(self.KEY, self.means)
