"""The planner: plans made by the (scripted) model through structured output, checked, repaired, run as a
task DAG in parallel, controlled by a person, persisted across a restart; and the same over the WebSocket.

Task turns of a plan run concurrently, so their model requests arrive in any order: the scripted model
answers each request by its content (:class:`PlanModel`), not from a FIFO queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_agent.collaboration.files import Workspace
from jupyter_agent.engine.llm import LLMClient
from jupyter_agent.engine.plan import EstimateBook, Plan, Task, critical_path, expected_finish
from jupyter_agent.engine.planner import (
    RESPONSE_FORMAT,
    PlanMaker,
    check_plan,
    parse_check,
    renumbered,
    unresolved_failures,
)
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.scheduler import Scheduler
from jupyter_agent.engine.session import Session, Turn
from jupyter_agent.engine.types import TERMINAL_EVENTS
from jupyter_agent.errors import BadRequest, Conflict, NotFound
from jupyter_agent.store import Store
from jupyter_agent.testing.scripted_llm import Reply, ScriptedLLM, ToolCallSpec
from jupyter_agent.tools.base import Tool, ToolContext, object_schema, tool
from jupyter_agent.tools.files import file_read
from tests.engine_kit import WAIT, Engine, EngineKit, Watch

# -- the scripted model -----------------------------------------------------------------------------------


def spec(
    task_id: str,
    depends_on: tuple[str, ...] = (),
    *,
    tools: tuple[str, ...] = (),
    notebooks: tuple[str, ...] = (),
    estimate: float | None = 1.0,
    title: str = "",
    description: str = "",
) -> dict[str, Any]:
    """One task as the model writes it (every field, as strict structured output requires)."""
    return {
        "id": task_id,
        "title": title or f"Task {task_id}",
        "description": description or f"Do {task_id}.",
        "depends_on": list(depends_on),
        "tools": list(tools),
        "notebooks": list(notebooks),
        "estimate_s": estimate,
        "acceptance": f"{task_id} is done",
    }


def plan_reply(*tasks: dict[str, Any]) -> Reply:
    return Reply(text=json.dumps({"tasks": list(tasks)}))


def task_of(body: dict[str, Any]) -> str:
    first = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return re.search(r"Your task \(id: ([^)]+)\)", first).group(1)


def calls(tool_name: str, /, **arguments: Any) -> Callable[[dict[str, Any]], Reply]:
    """A task step: call the tool, then (once its result is in) answer."""

    def step(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(text=f"{task_of(body)} finished: {body['messages'][-1]['content']}")
        return Reply(tool_calls=[ToolCallSpec(tool_name, arguments)])

    return step


class PlanModel:
    """Answers planning requests (they carry ``response_format``) from ``plans``, in order, task checks
    (``response_format`` named ``task_check``) from ``verdicts``, and each task's requests from
    ``tasks[task_id]`` (a step per turn attempt; a callable step answers every request of it)."""

    def __init__(self, llm: ScriptedLLM) -> None:
        self.plans: deque[Reply] = deque()
        self.verdicts: deque[Reply] = deque()
        self.tasks: dict[str, deque[Any]] = {}
        self.planning: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        self.requests: Counter[str] = Counter()
        self.prompts: dict[str, list[str]] = {}
        llm.default = self

    def __call__(self, body: dict[str, Any]) -> Any:
        if body.get("response_format"):
            if body["response_format"]["json_schema"]["name"] == "task_check":
                self.checks.append(body)
                return self.verdicts.popleft()
            self.planning.append(body)
            return self.plans.popleft()
        task = task_of(body)
        self.requests[task] += 1
        if len(body["messages"]) == 2:  # a new attempt: system prompt + the task's prompt
            self.prompts.setdefault(task, []).append(body["messages"][1]["content"])
            queue = self.tasks.get(task)
            self._current = {**getattr(self, "_current", {}), task: queue.popleft() if queue else None}
        step = self._current.get(task)
        if step is None:
            return Reply(text=f"{task} done")
        return step

    def script(self, task_id: str, *steps: Any) -> None:
        self.tasks.setdefault(task_id, deque()).extend(steps)


# -- the engine ---------------------------------------------------------------------------------------------


class PlanWatch(Watch):
    """A :class:`Watch` that also waits for plan and task updates."""

    async def task(self, task_id: str, state: str, attempt: int | None = None) -> dict[str, Any]:
        return await self.until(
            lambda e: (
                e["type"] == "task_update"
                and e["id"] == task_id
                and e["state"] == state
                and (attempt is None or e["attempt"] == attempt)
            )
        )

    async def plan(self, status: str, revision: int | None = None) -> dict[str, Any]:
        return await self.until(
            lambda e: (
                e["type"] == "plan"
                and e["status"] == status
                and (revision is None or e["revision"] == revision)
            )
        )

    def updates(self, task_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "task_update" and task_id in (None, e["id"])]

    def seq(self, task_id: str, state: str) -> int:
        """Sequence number of the first update that put the task in ``state``."""
        return next(e["seq"] for e in self.updates(task_id) if e["state"] == state)

    def terminals(self, turn: Turn) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("turn") == turn.id and e["type"] in TERMINAL_EVENTS]

    def last_plan(self) -> dict[str, Any]:
        return [e for e in self.events if e["type"] == "plan"][-1]


@pytest.fixture
def model(llm: ScriptedLLM) -> PlanModel:
    return PlanModel(llm)


@pytest.fixture
def make_engine(engines: EngineKit) -> Callable[..., Engine]:
    """Builds engines with a planner, talking to the scripted model; every one is closed after the test."""

    def build(
        *tools: Tool, store: Store | None = None, approval_timeout: float = WAIT, **options: Any
    ) -> Engine:
        engine = engines.engine(*tools, store=store, approval_timeout=approval_timeout, watch_type=PlanWatch)
        manager = engine.sessions
        manager.planner = Scheduler(
            manager.runner, manager.store, approval_timeout=approval_timeout, **options
        )
        return engine

    return build


def verdict(met: bool, reason: str) -> Reply:
    return Reply(text=json.dumps({"met": met, "reason": reason}))


def file_read_in(root: Path) -> Tool:
    """The real ``file_read`` tool, on a workspace at ``root``."""
    workspace = Workspace(root, root / ".backups")

    async def read(ctx: ToolContext, **arguments: Any) -> Any:
        ctx.services["workspace"] = workspace
        return await file_read.fn(ctx, **arguments)

    return dataclasses.replace(file_read, fn=read)


def reads(path: str, answer: str) -> Callable[[dict[str, Any]], Reply]:
    """A task step: read ``path``, then answer ``answer`` whatever the read returned."""

    def step(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(text=answer)
        return Reply(tool_calls=[ToolCallSpec("file_read", {"path": path})])

    return step


def gate_tool(gates: dict[str, asyncio.Event], log: list[tuple[str, str]]) -> Tool:
    """``gate(name)`` waits until the test opens that gate; it records when it enters and leaves."""

    @tool("gate", "Wait for a gate.", object_schema(["name"], name={"type": "string"}), timeout=None)
    async def gate(ctx: ToolContext, name: str) -> str:
        log.append(("enter", name))
        await gates.setdefault(name, asyncio.Event()).wait()
        log.append(("leave", name))
        return f"gate {name} passed"

    return gate


def meet_tool(signals: dict[str, asyncio.Event]) -> Tool:
    """``meet(me, other)`` signals ``me`` and waits for ``other``: both calls return only if they overlap."""

    @tool(
        "meet",
        "Meet another task.",
        object_schema(["me", "other"], me={"type": "string"}, other={"type": "string"}),
        timeout=5.0,
    )
    async def meet(ctx: ToolContext, me: str, other: str) -> str:
        signals.setdefault(me, asyncio.Event()).set()
        await signals.setdefault(other, asyncio.Event()).wait()
        return f"{me} met {other}"

    return meet


async def run_plan(session: Session, watch: PlanWatch, goal: str = "Do the thing", **kw: Any) -> Turn:
    turn = session.submit(goal, plan=True, **{"auto": True, **kw})
    await watch.end_of(turn)
    return turn


# -- plans, checks and estimates (no model) --------------------------------------------------------------


def test_check_plan_names_every_problem() -> None:
    assert check_plan({"tasks": [spec("a"), spec("b", ("a",))]}) == []
    assert "no tasks" in check_plan({"tasks": []})[0]
    assert any("required" in e for e in check_plan({"tasks": [{"id": "a"}]}))
    assert check_plan({"tasks": [spec("a"), spec("a")]}) == ["task id 'a' is used more than once"]
    assert check_plan({"tasks": [spec("a", ("zzz",))]}) == ["task 'a' depends on unknown task 'zzz'"]
    cycle = check_plan({"tasks": [spec("a", ("c",)), spec("b", ("a",)), spec("c", ("b",))]})
    assert cycle == [
        "the dependencies form a cycle: a -> b -> c -> a (each task depends on the one before it)"
    ]
    assert check_plan({"tasks": [spec("a", ("done1",))]}, kept={"done1"}) == []
    assert check_plan({"tasks": [spec("done1")]}, kept={"done1"}) == [
        "task id 'done1' is already used by a finished task"
    ]


def test_new_tasks_reusing_a_kept_id_are_renamed_with_their_dependents() -> None:
    data = {"tasks": [spec("load"), spec("clean", ("load",)), spec("plot", ("clean", "keep")), spec("t")]}
    out, renames = renumbered(data, taken={"load", "keep", "load-2"})
    assert renames == {"load": "load-3"}
    assert [(t["id"], t["depends_on"]) for t in out["tasks"]] == [
        ("load-3", []),
        ("clean", ["load-3"]),
        ("plot", ["clean", "keep"]),
        ("t", []),
    ]
    assert check_plan(out, kept={"keep"}) == []
    # a renamed task that depends on its own old id means the task that kept it
    out, _ = renumbered({"tasks": [spec("load", ("load",))]}, taken={"load"})
    assert out["tasks"][0]["id"] == "load-2" and out["tasks"][0]["depends_on"] == ["load"]
    assert renumbered({"tasks": "nonsense"}, {"a"}) == ({"tasks": "nonsense"}, {})


def test_tool_failures_count_until_the_same_tool_succeeds_and_checks_parse() -> None:
    calls = [
        {"name": "file_read", "ok": False},
        {"name": "file_list", "ok": True},
        {"name": "file_read", "ok": True},
        {"name": "shell_run", "ok": False},
        {"name": "file_read", "ok": False},
    ]
    assert unresolved_failures(calls) == [calls[3], calls[4]]
    assert unresolved_failures(calls[:3]) == []
    assert parse_check('{"met": false, "reason": "no data"}') == (False, "no data")
    assert parse_check('Verdict: {"met": true, "reason": "ok"}') == (True, "ok")
    assert parse_check("yes") is None and parse_check('{"met": "yes"}') is None


def test_critical_path_uses_actual_durations_of_finished_tasks() -> None:
    tasks = [
        Task("a", "A", estimate_s=2),
        Task("b", "B", depends_on=["a"], estimate_s=5),
        Task("c", "C", depends_on=["a"], estimate_s=1),
        Task("d", "D", depends_on=["b", "c"], estimate_s=1),
    ]
    assert critical_path(tasks, now=0) == (["a", "b", "d"], 8)
    assert expected_finish(tasks, max_parallel=3, now=100) == 108
    assert expected_finish(tasks, max_parallel=1, now=100) == 109  # b and c one after the other
    tasks[2].state, tasks[2].actual_s, tasks[2].finished = "done", 9.0, 100.0
    tasks[0].state, tasks[0].actual_s, tasks[0].finished = "done", 2.0, 91.0
    assert critical_path(tasks, now=100) == (["a", "c", "d"], 12)
    assert expected_finish(tasks, max_parallel=3, now=100) == 106


def test_estimates_blend_measured_history_with_the_models() -> None:
    store = Store(":memory:")
    book = EstimateBook(store)
    assert book.estimate(["work"], None) == 30.0  # nothing known: the default
    assert book.estimate(["work"], 12.0) == 12.0
    book.record(["work"], 4.0)
    assert book.estimate(["work"], None) == 4.0
    assert book.estimate(["work"], 10.0) == pytest.approx(8.0)  # one measurement weighs a third
    for _ in range(9):
        book.record(["work"], 4.0)
    assert 4.0 < book.estimate(["work"], 10.0) < 5.5  # ten measurements: mostly history
    assert EstimateBook(store).means == book.means  # persisted in the store


# -- planning -----------------------------------------------------------------------------------------


async def test_a_valid_plan_runs_every_task_after_its_dependencies(make_engine, model: PlanModel) -> None:
    engine = make_engine()
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("a"), spec("b", ("a",)), spec("c", ("a",)), spec("d", ("b", "c"))))

    turn = await run_plan(session, watch, "Build the report")

    assert [e["type"] for e in watch.terminals(turn)] == ["done"]
    planning = model.planning[0]
    assert planning["response_format"] == json.loads(json.dumps(RESPONSE_FORMAT))
    assert planning["response_format"]["json_schema"]["strict"] is True and "tools" not in planning
    assert "Goal: Build the report" in planning["messages"][-1]["content"]
    for before, after in [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]:
        assert watch.seq(before, "done") < watch.seq(after, "running")
    assert "- b (Task b) [done]: b done" in model.prompts["d"][0]
    assert "- c (Task c) [done]: c done" in model.prompts["d"][0]
    assert "Goal of the plan: Build the report" in model.prompts["a"][0]
    final = watch.last_plan()
    assert final["status"] == "done" and [t["state"] for t in final["tasks"]] == ["done"] * 4
    assert final["critical_path"][0] == "a" and final["critical_path"][-1] == "d"
    assert all(t["actual_s"] is not None and t["estimate_s"] == 1.0 for t in final["tasks"])
    answers = [e for e in watch.events if e["type"] == "message" and e["role"] == "assistant"]
    assert sorted(e.get("task", "-") for e in answers) == ["-", "a", "b", "c", "d"]  # 4 tasks and a summary
    assert (
        session.plan()["status"] == "done"
        and engine.store.get_value(f"plan:{session.id}")["status"] == "done"
    )
    summary = [
        e for e in watch.events if e["type"] == "message" and e["role"] == "assistant" and "task" not in e
    ]
    assert len(summary) == 1 and "4 of 4 tasks done" in summary[0]["content"]
    # the session's own conversation is the goal and the summary; the tasks' turns are not part of it
    assert [m["role"] for m in session.transcript()] == ["user", "assistant"]


async def test_an_invalid_plan_is_sent_back_with_the_errors_and_repaired(
    make_engine, model: PlanModel
) -> None:
    engine = make_engine()
    session, watch = engine.open()
    model.plans.extend([Reply(text='{"tasks": [{"id": "a"}]}'), plan_reply(spec("a"))])

    turn = await run_plan(session, watch)

    assert [e["type"] for e in watch.terminals(turn)] == ["done"]
    repair = model.planning[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"tasks": [{"id": "a"}]}'}
    assert "not valid" in repair[-1]["content"] and "'title' is a required property" in repair[-1]["content"]
    assert model.requests["a"] == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ([spec("a", ("b",)), spec("b", ("a",))], "the dependencies form a cycle: a -> b -> a"),
        ([spec("a", ("ghost",))], "task 'a' depends on unknown task 'ghost'"),
    ],
)
async def test_a_cyclic_or_dangling_plan_is_sent_back_with_the_reason(
    make_engine, model: PlanModel, bad: list[dict[str, Any]], reason: str
) -> None:
    engine = make_engine()
    session, watch = engine.open()
    model.plans.extend([plan_reply(*bad), plan_reply(spec("a"), spec("b", ("a",)))])

    turn = await run_plan(session, watch)

    assert [e["type"] for e in watch.terminals(turn)] == ["done"]
    assert reason in model.planning[1]["messages"][-1]["content"]
    assert watch.last_plan()["status"] == "done"


async def test_a_plan_still_invalid_after_the_repair_ends_the_turn_with_a_clear_error(
    make_engine, model: PlanModel
) -> None:
    engine = make_engine()
    session, watch = engine.open()
    cyclic = plan_reply(spec("a", ("b",)), spec("b", ("a",)))
    model.plans.extend([cyclic, cyclic])

    turn = await run_plan(session, watch)

    [end] = watch.terminals(turn)
    assert end["type"] == "error" and end["code"] == "invalid_plan"
    assert "cycle: a -> b -> a" in end["message"] and "even after" in end["message"]
    assert len(model.planning) == 2 and not model.requests
    assert session.plan()["status"] == "failed"


# -- running ------------------------------------------------------------------------------------------


async def test_independent_tasks_really_run_at_the_same_time(make_engine, model: PlanModel) -> None:
    engine = make_engine(meet_tool({}))
    session, watch = engine.open()
    model.plans.append(
        plan_reply(spec("a", tools=("meet",)), spec("b", tools=("meet",)), spec("c", ("a", "b")))
    )
    model.script("a", calls("meet", me="a", other="b"))
    model.script("b", calls("meet", me="b", other="a"))

    turn = await run_plan(session, watch)

    assert [e["type"] for e in watch.terminals(turn)] == ["done"]
    results = [e for e in watch.events if e["type"] == "tool_result"]
    assert sorted(r["content"] for r in results) == ["a met b", "b met a"] and all(r["ok"] for r in results)
    a, b = ({t["id"]: t for t in watch.last_plan()["tasks"]}[k] for k in "ab")
    assert a["started"] < b["finished"] and b["started"] < a["finished"]  # the two runs overlap
    assert all(r["task"] in ("a", "b") for r in results)


async def test_no_more_tasks_run_at_once_than_the_limit(make_engine, model: PlanModel) -> None:
    engine = make_engine(max_parallel_tasks=2)
    session, watch = engine.open()
    model.plans.append(plan_reply(*(spec(f"t{i}") for i in range(5))))

    await run_plan(session, watch)

    running, most = set(), 0
    for update in watch.updates():
        (running.add if update["state"] == "running" else running.discard)(update["id"])
        most = max(most, len(running))
    assert most == 2 and watch.last_plan()["status"] == "done"


async def test_tasks_on_the_same_notebook_never_interleave(make_engine, model: PlanModel) -> None:
    log: list[tuple[str, str]] = []
    gates: dict[str, asyncio.Event] = {}
    engine = make_engine(gate_tool(gates, log), meet_tool({}))
    session, watch = engine.open()
    model.plans.append(
        plan_reply(
            spec("a", notebooks=("work/nb.ipynb",)),
            spec("b", description="Add a chart to work/nb.ipynb."),
            spec("c"),
        )
    )
    model.script("a", calls("gate", name="a"))
    model.script("b", calls("gate", name="b"))
    model.script("c", calls("gate", name="c"))
    turn = session.submit("Two edits", plan=True, auto=True)
    first = await watch.until(lambda e: e["type"] == "tool_call" and e["task"] in ("a", "b"))
    await watch.until(lambda e: e["type"] == "tool_call" and e["task"] == "c")  # c runs alongside
    other = "b" if first["task"] == "a" else "a"
    assert not [u for u in watch.updates(other) if u["state"] == "running"]  # waits for the notebook
    for name in (first["task"], "c", other):
        gates.setdefault(name, asyncio.Event()).set()
    await watch.end_of(turn)

    assert watch.seq(first["task"], "done") < watch.seq(other, "running")
    nb_log = [entry for entry in log if entry[1] in "ab"]
    assert nb_log == [("enter", first["task"]), ("leave", first["task"]), ("enter", other), ("leave", other)]
    assert watch.last_plan()["status"] == "done"


async def test_a_failed_task_is_retried_once_then_the_rest_is_replanned(
    make_engine, model: PlanModel
) -> None:
    engine = make_engine()
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("a"), spec("b", ("a",)), spec("c")))
    model.script("a", Reply(text="FAILED: the data file is missing"), Reply(text="FAILED: still missing"))
    model.plans.append(plan_reply(spec("a2", description="Make the data first."), spec("b2", ("a2",))))

    turn = await run_plan(session, watch)

    assert [e["type"] for e in watch.terminals(turn)] == ["done"]
    assert model.requests["a"] == 2 and "A previous attempt at this task failed" in model.prompts["a"][1]
    assert [u["attempt"] for u in watch.updates("a") if u["state"] == "failed"] == [1, 2]
    replan = model.planning[1]["messages"][-1]["content"]
    assert "Task a (Task a) failed after 2 attempts: FAILED: still missing" in replan
    assert "- b: Task b (after: a)" in replan
    final = watch.last_plan()
    assert final["replans"] == 1 and final["status"] == "done"
    states = {t["id"]: (t["state"], t["replaced"]) for t in final["tasks"]}
    assert states["a"] == ("failed", True) and "b" not in states
    assert states["a2"] == states["b2"] == ("done", False)
    assert states["c"][0] == "done" and model.requests["c"] == 1  # finished work is kept, not redone


async def test_a_task_failing_beyond_replanning_fails_the_plan(make_engine, model: PlanModel) -> None:
    engine = make_engine(max_replans=0)
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("a")))
    model.script("a", Reply(text="FAILED: no"), Reply(text="FAILED: no again"))

    turn = await run_plan(session, watch)

    [end] = watch.terminals(turn)
    assert end["type"] == "error" and end["code"] == "task_failed" and "no again" in end["message"]
    assert watch.last_plan()["status"] == "failed"


async def test_a_task_whose_file_read_failed_but_claims_success_is_failed_retried_and_replanned(
    make_engine, model: PlanModel, tmp_path: Path
) -> None:
    engine = make_engine(file_read_in(tmp_path))
    session, watch = engine.open()
    load = spec("load", tools=("file_read",), title="Load the data", description="Read data.csv.")
    load["acceptance"] = "data.csv is loaded"
    model.plans.append(plan_reply(load, spec("report", ("load",))))
    claim = reads("data.csv", "Loaded data.csv: 120 rows.")  # the read failed: the claim is false
    model.script("load", claim, claim)
    model.verdicts.extend([verdict(False, "data.csv does not exist, so nothing was loaded")] * 2)
    model.plans.append(
        plan_reply(spec("make", description="Create data.csv first."), spec("load", ("make",)))
    )

    turn = await run_plan(session, watch)

    assert [e["type"] for e in watch.terminals(turn)] == ["done"]
    failed = [u for u in watch.updates("load") if u["state"] == "failed"]
    assert [u["attempt"] for u in failed] == [1, 2]  # retried once, then re-planned
    assert "data.csv does not exist, so nothing was loaded" in failed[0]["error"]
    assert "criteria (data.csv is loaded)" in failed[0]["error"]
    assert "file_read: Error: no file at 'data.csv'" in failed[0]["error"]
    assert not [u for u in watch.updates("load") if u["state"] == "done" and u["attempt"] <= 2]
    # the check: one short structured call per doubtful attempt, with the criteria, the error and the claim
    assert len(model.checks) == 2 and "tools" not in model.checks[0]
    check = model.checks[0]["messages"][-1]["content"]
    assert "Acceptance criteria: data.csv is loaded" in check
    assert 'file_read({"path": "data.csv"}): FAILED: Error: no file at \'data.csv\'' in check
    assert "Loaded data.csv: 120 rows." in check
    assert "A previous attempt at this task failed: not done" in model.prompts["load"][1]
    replan = model.planning[1]["messages"][-1]["content"]
    assert "Task load (Load the data) failed after 2 attempts: not done" in replan
    final = watch.last_plan()
    states = {(t["id"], t["replaced"]): t["state"] for t in final["tasks"]}
    assert states == {("load", True): "failed", ("make", False): "done", ("load-2", False): "done"}
    assert final["status"] == "done" and "report" not in model.requests


async def test_only_doubtful_tasks_are_checked_and_a_met_verdict_keeps_the_task_done(
    make_engine, model: PlanModel, tmp_path: Path
) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    engine = make_engine(file_read_in(tmp_path))
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("recovers"), spec("optional"), spec("plain")))

    def recovers(body: dict[str, Any]) -> Reply:  # a failed read, then the right file: no check
        tools = [m for m in body["messages"] if m["role"] == "tool"]
        if len(tools) == 2:
            return Reply(text="Read data.csv: 1 row.")
        path = "data.cvs" if not tools else "data.csv"
        return Reply(tool_calls=[ToolCallSpec("file_read", {"path": path})])

    model.script("recovers", recovers)
    model.script("optional", reads("settings.toml", "There are no settings; the defaults apply."))
    model.verdicts.append(verdict(True, "the settings file is optional"))

    turn = await run_plan(session, watch)

    assert [e["type"] for e in watch.terminals(turn)] == ["done"]
    assert len(model.checks) == 1 and "Task: Task optional" in model.checks[0]["messages"][-1]["content"]
    final = {t["id"]: t for t in watch.last_plan()["tasks"]}
    assert {k: t["state"] for k, t in final.items()} == {
        "recovers": "done",
        "optional": "done",
        "plain": "done",
    }
    assert final["optional"]["summary"] == "There are no settings; the defaults apply."


async def test_a_task_whose_check_cannot_be_made_fails_on_its_tool_errors(
    make_engine, model: PlanModel, tmp_path: Path
) -> None:
    engine = make_engine(file_read_in(tmp_path), max_replans=0, task_retries=0)
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("load")))
    model.script("load", reads("data.csv", "Loaded it."))
    model.verdicts.append(Reply(text="I think so"))  # not a verdict

    turn = await run_plan(session, watch)

    [end] = watch.terminals(turn)
    assert end["type"] == "error" and end["code"] == "task_failed"
    assert "could not be checked (file_read: Error: no file at 'data.csv')" in end["message"]


async def test_a_replan_that_reuses_finished_ids_is_renamed_not_refused(
    make_engine, model: PlanModel
) -> None:
    engine = make_engine()
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("load_data"), spec("b", ("load_data",)), spec("c")))
    model.script("b", Reply(text="FAILED: the data has no header"), Reply(text="FAILED: still no header"))
    # the model reuses the finished task's id and the failed one's, and depends on the reused one
    model.plans.append(
        plan_reply(
            spec("load_data", description="Load it again, with a header."),
            spec("b", ("load_data",)),
            spec("d", ("c",)),
        )
    )

    turn = await run_plan(session, watch)

    assert [e["type"] for e in watch.terminals(turn)] == ["done"]
    assert len(model.planning) == 2  # no repair round was needed
    assert "Do not reuse the ids load_data, c, b" in model.planning[1]["messages"][-1]["content"]
    final = watch.last_plan()
    assert final["status"] == "done" and final["replans"] == 1
    tasks = {(t["id"], t["replaced"]): t for t in final["tasks"]}
    assert {k: t["state"] for k, t in tasks.items()} == {
        ("load_data", False): "done",
        ("b", True): "failed",
        ("c", False): "done",
        ("load_data-2", False): "done",
        ("b-2", False): "done",
        ("d", False): "done",
    }
    assert tasks[("b-2", False)]["depends_on"] == ["load_data-2"]
    assert tasks[("d", False)]["depends_on"] == ["c"]
    assert watch.seq("load_data-2", "done") < watch.seq("b-2", "running")
    assert model.requests["load_data"] == 1 and model.requests["load_data-2"] == 1


# -- a person's controls ----------------------------------------------------------------------------


async def test_pause_holds_new_tasks_resume_goes_on_and_cancel_stops_running_ones(
    make_engine, model: PlanModel
) -> None:
    gates: dict[str, asyncio.Event] = {}
    engine = make_engine(gate_tool(gates, []))
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("a"), spec("b", ("a",)), spec("c", ("a",))))
    model.script("a", calls("gate", name="a"))
    turn = session.submit("Pausable", plan=True, auto=True)
    await watch.until(lambda e: e["type"] == "tool_call" and e["task"] == "a")

    session.task_control("pause")
    paused = await watch.plan("paused")
    gates.setdefault("a", asyncio.Event()).set()  # the running task finishes...
    await watch.task("a", "done")
    with pytest.raises(Conflict):
        session.task_control("pause")
    assert not [u for u in watch.updates("b") if u["state"] == "running"]  # ...but nothing new starts
    session.task_control("resume")
    resumed = await watch.until(
        lambda e: e["type"] == "plan" and e["status"] == "running" and e["seq"] > paused["seq"]
    )
    await watch.end_of(turn)
    assert paused["seq"] < resumed["seq"] < watch.seq("b", "running")
    assert watch.last_plan()["status"] == "done"

    model.plans.append(plan_reply(spec("x"), spec("y"), spec("z", ("x",))))
    model.script("x", calls("gate", name="never"))
    model.script("y", calls("gate", name="never"))
    turn = session.submit("Cancellable", plan=True, auto=True)
    await watch.until(lambda e: e["type"] == "tool_call" and e.get("task") == "y" and e["turn"] == turn.id)
    await watch.until(lambda e: e["type"] == "tool_call" and e.get("task") == "x" and e["turn"] == turn.id)
    session.task_control("cancel")
    await watch.end_of(turn)

    [end] = watch.terminals(turn)
    assert end["type"] == "done" and end["reason"] == "cancelled"
    final = watch.last_plan()
    assert final["status"] == "cancelled" and {t["state"] for t in final["tasks"]} == {"cancelled"}
    assert {u["id"] for u in watch.updates() if u["state"] == "cancelled"} == {"x", "y", "z"}


async def test_skip_and_retry_a_task(make_engine, model: PlanModel) -> None:
    gates: dict[str, asyncio.Event] = {}
    engine = make_engine(gate_tool(gates, []))
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("a"), spec("b", ("a",)), spec("c"), spec("d", ("c",)), spec("e")))
    model.script("a", calls("gate", name="never"))
    model.script("e", calls("gate", name="e"))  # keeps the plan running until the end of the test
    model.script("c", calls("gate", name="c"), calls("gate", name="c"))
    turn = session.submit("Skippable", plan=True, auto=True)
    await watch.until(lambda e: e["type"] == "tool_call" and e["task"] == "a")
    await watch.until(lambda e: e["type"] == "tool_call" and e["task"] == "c")
    await watch.until(lambda e: e["type"] == "tool_call" and e["task"] == "e")

    session.task_control("skip", "a")  # running: its turn stops, and b may go on without it
    await watch.task("a", "skipped")
    await watch.task("b", "done")
    assert "- a (Task a) [skipped]: (no result)" in model.prompts["b"][0]
    session.task_control("cancel", "c")  # d depends on c: cancelled too
    await watch.task("c", "cancelled")
    await watch.task("d", "cancelled")
    with pytest.raises(Conflict):
        session.task_control("retry", "b")  # done tasks do not retry
    with pytest.raises(NotFound):
        session.task_control("skip", "nope")
    with pytest.raises(BadRequest):
        session.task_control("explode", "c")
    gates.setdefault("c", asyncio.Event()).set()
    session.task_control("retry", "c")  # and d, cancelled because of c, comes back
    await watch.task("d", "done")
    gates.setdefault("e", asyncio.Event()).set()
    await watch.end_of(turn)

    final = {t["id"]: t for t in watch.last_plan()["tasks"]}
    states = {k: t["state"] for k, t in final.items()}
    assert states == {"a": "skipped", "b": "done", "c": "done", "d": "done", "e": "done"}
    assert final["c"]["attempt"] == 2 and model.requests["a"] == 1


async def test_a_plan_edited_before_approval_runs_as_edited(make_engine, model: PlanModel) -> None:
    engine = make_engine()
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("a"), spec("b", ("a",)), spec("c", ("a",))))
    turn = session.submit("Needs a look first", plan=True)
    shown = await watch.plan("awaiting_approval")
    assert [t["id"] for t in shown["tasks"]] == ["a", "b", "c"] and not model.requests

    edit = {
        "tasks": [spec("a"), {"id": "b", "title": "Better title", "depends_on": ["a"]}, spec("d", ("b",))]
    }
    with pytest.raises(BadRequest, match="cycle"):
        session.plan_edit({"tasks": [spec("a", ("b",)), spec("b", ("a",))]})
    with pytest.raises(BadRequest):
        session.plan_edit({"tasks": "everything"})
    session.plan_edit(edit)
    edited = await watch.plan("awaiting_approval", revision=1)
    assert [(t["id"], t["title"]) for t in edited["tasks"]] == [
        ("a", "Task a"),
        ("b", "Better title"),
        ("d", "Task d"),
    ]
    session.plan_approve()
    await watch.end_of(turn)

    assert [e["type"] for e in watch.terminals(turn)] == ["done"]
    assert set(model.requests) == {"a", "b", "d"}
    assert "Your task (id: b): Better title" in model.prompts["b"][0]
    with pytest.raises(Conflict):
        session.plan_approve()


async def test_a_plan_nobody_approves_ends_with_a_clear_error(make_engine, model: PlanModel) -> None:
    engine = make_engine(approval_timeout=0.2)
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("a")))

    turn = session.submit("Unattended", plan=True)
    await watch.end_of(turn)

    [end] = watch.terminals(turn)
    assert end["type"] == "error" and end["code"] == "approval_timeout"
    assert "nobody approved the plan within 0.2 s" in end["message"]
    assert session.plan()["status"] == "failed" and not model.requests


async def test_a_plan_cut_off_by_a_restart_is_interrupted_and_resumes_unfinished_tasks(
    make_engine, model: PlanModel, tmp_path: Path
) -> None:
    gates: dict[str, asyncio.Event] = {}
    path = tmp_path / "first" / "agent.db"
    first = make_engine(gate_tool(gates, []), store=Store(path))
    session, watch = first.open()
    model.plans.append(plan_reply(spec("a"), spec("b"), spec("c", ("b",))))
    model.script("b", calls("gate", name="first-run"))
    session.submit("Survive a restart", plan=True, auto=True)
    await watch.task("a", "done")
    await watch.until(lambda e: e["type"] == "tool_call" and e["task"] == "b")

    # The server dies here: the database file is all that is left of it.
    first.store.flush()
    copy = tmp_path / "second" / "agent.db"
    copy.parent.mkdir()
    for suffix in ("", "-wal"):
        if Path(f"{path}{suffix}").exists():
            shutil.copy(f"{path}{suffix}", f"{copy}{suffix}")
    second = make_engine(gate_tool(gates, []), store=Store(copy))
    restored = second.sessions.get(session.id)
    watch = PlanWatch(restored)

    plan = restored.plan()
    assert plan["status"] == "interrupted"
    assert {t["id"]: t["state"] for t in plan["tasks"]} == {"a": "done", "b": "pending", "c": "pending"}
    log = restored.events()
    assert [e["code"] for e in log if e["type"] == "error"] == ["interrupted"]
    assert log[-1]["type"] == "plan" and log[-1]["status"] == "interrupted"

    restored.task_control("resume")
    with pytest.raises(Conflict):
        restored.task_control("resume")  # once is enough
    end = await watch.until(lambda e: e["type"] in TERMINAL_EVENTS)
    assert end["type"] == "done"
    final = restored.plan()
    assert final["status"] == "done" and [t["state"] for t in final["tasks"]] == ["done"] * 3
    assert model.requests["a"] == 1  # finished work is not redone
    assert model.requests["b"] == 2  # the call cut off by the restart, then the resumed run


async def test_a_plan_stopped_by_a_server_shutdown_is_interrupted_and_resumes_on_the_same_file(
    make_engine, model: PlanModel, tmp_path: Path
) -> None:
    gates: dict[str, asyncio.Event] = {}
    path = tmp_path / "agent.db"
    first = make_engine(gate_tool(gates, []), store=Store(path))
    session, watch = first.open()
    model.plans.append(plan_reply(spec("a"), spec("b", ("a",))))
    model.script("a", calls("gate", name="shutdown"))
    turn = session.submit("Survive a shutdown", plan=True, auto=True)
    await watch.until(lambda e: e["type"] == "tool_call" and e["task"] == "a")

    await first.sessions.close()  # the server stops: the plan can be resumed, it was not cancelled

    [end] = watch.terminals(turn)
    assert end["type"] == "done" and end["reason"] == "cancelled"
    await watch.plan("interrupted")  # (were the process gone first, loading the session would mark it)
    second = make_engine(gate_tool(gates, []), store=Store(path))
    restored = second.sessions.get(session.id)
    assert {t["id"]: t["state"] for t in restored.plan()["tasks"]} == {"a": "pending", "b": "pending"}
    watch = PlanWatch(restored)
    gates.setdefault("shutdown", asyncio.Event()).set()
    restored.task_control("resume")
    end = await watch.until(lambda e: e["type"] in TERMINAL_EVENTS)
    assert end["type"] == "done" and restored.plan()["status"] == "done"
    assert [t["attempt"] for t in restored.plan()["tasks"]] == [2, 1]


async def test_the_plan_prompt_needs_a_planner_and_bad_controls_are_refused(make_engine, model) -> None:
    engine = make_engine()
    session, _watch = engine.open()
    with pytest.raises(NotFound):
        session.task_control("resume")
    with pytest.raises(Conflict):
        session.plan_approve()
    with pytest.raises(BadRequest):
        session.task_control("skip")
    with pytest.raises(BadRequest):
        session.task_control("pause", "a")
    assert session.plan() is None
    engine.sessions.planner = None
    with pytest.raises(BadRequest, match="planning is not available"):
        session.submit("x", plan=True)


async def test_estimates_learn_from_measured_durations(make_engine, model: PlanModel) -> None:
    engine = make_engine()
    session, watch = engine.open()
    model.plans.append(plan_reply(spec("a", tools=("file_read",), estimate=500.0)))
    await run_plan(session, watch)
    measured = watch.last_plan()["tasks"][0]["actual_s"]
    assert engine.sessions.planner.book.means["file_read"][1] == pytest.approx(measured)

    model.plans.append(plan_reply(spec("b", tools=("file_read",), estimate=None)))
    await run_plan(session, watch)
    task = next(t for t in watch.last_plan()["tasks"] if t["id"] == "b")
    assert task["estimate_s"] == pytest.approx(measured, abs=1e-3) and task["model_estimate_s"] is None


async def test_the_planner_prompt_lists_tools_with_measured_durations(llm: ScriptedLLM) -> None:
    book = EstimateBook()
    book.record(["gate"], 42.0)
    client = LLMClient(model="openai/scripted", options={"api_base": llm.base_url, "api_key": "sk-test"})
    maker = PlanMaker(client, ToolRouter([gate_tool({}, [])]).schemas, book)
    llm.script(plan_reply(spec("a", tools=("gate",), estimate=None)))
    tasks = await maker.draft("g", {"notebook": "nb.ipynb"}, None, lambda _c: None)
    assert tasks[0].estimate_s == 42.0
    system, user = llm.requests[0]["messages"]
    assert "- gate: Wait for a gate. (measured: about 42 s per task)" in system["content"]
    assert user["content"] == "Goal: g\nActive notebook: nb.ipynb"
    assert Plan.from_dict(Plan("g", tasks).snapshot(3, now=time.time())).tasks == tasks


# -- over the WebSocket --------------------------------------------------------------------------------


async def test_plan_over_the_websocket_with_edit_approval_and_rest(agent, agent_app, llm) -> None:
    model = PlanModel(llm)
    model.plans.append(plan_reply(spec("a"), spec("b", ("a",))))
    sid = await agent.new_session()
    status, _ = await agent.request("GET", "sessions", sid, "plan")
    assert status == 404
    ws = await agent.connect(sid)
    await ws.send(type="plan_approve")
    assert (await ws.next())["code"] == "conflict"
    await ws.send(type="prompt", text="Plan it", plan="yes")
    assert (await ws.next())["code"] == "bad_message"

    await ws.send(type="prompt", text="Plan it", plan=True)
    frames = await ws.until(lambda f: f["type"] == "plan" and f["status"] == "awaiting_approval")
    assert frames[0]["type"] == "message" and frames[0]["plan"] is True
    _, plan = await agent.request("GET", "sessions", sid, "plan", expect=200)
    assert plan["status"] == "awaiting_approval" and [t["id"] for t in plan["tasks"]] == ["a", "b"]
    await ws.send(type="plan_edit", plan={"tasks": [spec("a"), spec("b", ("a",), title="Renamed")]})
    await ws.until(lambda f: f["type"] == "plan" and f["revision"] == 1)
    await ws.send(type="task_control", action="fly")
    assert (await ws.until(lambda f: f["type"] == "error"))[-1]["code"] == "bad_request"
    await ws.send(type="plan_approve")
    frames = await ws.until_type("done", "error")

    assert frames[-1]["type"] == "done" and frames[-1]["reason"] == "completed"
    updates = [f for f in frames if f["type"] == "task_update"]
    assert [(u["id"], u["state"]) for u in updates if u["state"] == "done"] == [("a", "done"), ("b", "done")]
    _, plan = await agent.request("GET", "sessions", sid, "plan", expect=200)
    assert plan["status"] == "done" and plan["tasks"][1]["title"] == "Renamed"
    actions = [r["action"] for r in agent_app.service.store.audit_log()]
    assert "plan_approve" in actions and "plan_edit" in actions


async def test_pause_and_resume_over_the_websocket(agent, agent_app, llm) -> None:
    gates: dict[str, asyncio.Event] = {}
    agent_app.service.router.register(gate_tool(gates, []))
    model = PlanModel(llm)
    model.plans.append(plan_reply(spec("a"), spec("b", ("a",))))
    model.script("a", calls("gate", name="a"))
    sid = await agent.new_session()
    ws = await agent.connect(sid)
    await ws.send(type="prompt", text="Plan it", plan=True, auto=True)
    await ws.until(lambda f: f["type"] == "tool_call" and f.get("task") == "a")

    await ws.send(type="task_control", action="pause")
    await ws.until(lambda f: f["type"] == "plan" and f["status"] == "paused")
    gates.setdefault("a", asyncio.Event()).set()
    await ws.until(lambda f: f["type"] == "task_update" and f["id"] == "a" and f["state"] == "done")
    await ws.send(type="task_control", action="resume")
    frames = await ws.until_type("done", "error")

    assert frames[-1]["type"] == "done"
    assert any(f["type"] == "task_update" and f["id"] == "b" and f["state"] == "done" for f in frames)
