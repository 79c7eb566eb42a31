"""The planner's model side: the plan's JSON schema and checks, the planning call to the model (structured
output, one repair round), the check of a doubtful task's result against its acceptance criteria, a person's
edits, and the text a task's turn and the conversation read.

A plan itself and its DAG arithmetic are in :mod:`jupyter_agent.engine.plan`; running a plan is
:mod:`jupyter_agent.engine.plan_run`'s job. This module never starts a task.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from graphlib import CycleError, TopologicalSorter
from typing import Any

import jsonschema

from jupyter_agent.engine.llm import LLMClient
from jupyter_agent.engine.plan import EstimateBook, Plan, Task
from jupyter_agent.engine.types import Completion
from jupyter_agent.errors import AgentError, BadRequest

log = logging.getLogger(__name__)

MAX_TASKS = 50
TASK_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_STRINGS = {"type": "array", "items": {"type": "string"}}
_TASK_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "description": "short unique id such as t1"},
    "title": {"type": "string"},
    "description": {"type": "string", "description": "what to do, precisely enough to do it alone"},
    "depends_on": {**_STRINGS, "description": "ids of the tasks whose results it needs"},
    "tools": {**_STRINGS, "description": "tools the task will likely use"},
    "notebooks": {**_STRINGS, "description": "notebook paths it edits"},
    "estimate_s": {"type": ["number", "null"], "description": "expected duration in seconds"},
    "acceptance": {"type": "string", "description": "how to tell the task is done"},
}
_TASK = {"type": "object", "properties": _TASK_PROPERTIES}
#: The structured-output schema the model answers with (OpenAI strict mode: every property required).
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tasks"],
    "properties": {
        "tasks": {
            "type": "array",
            "items": {**_TASK, "additionalProperties": False, "required": list(_TASK_PROPERTIES)},
        }
    },
}
#: What a person may send in ``plan_edit``: the same tasks, with only ``id`` and ``title`` required.
EDIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tasks"],
    "properties": {
        "goal": {"type": "string"},
        "tasks": {"type": "array", "items": {**_TASK, "required": ["id", "title"]}},
    },
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "plan", "schema": PLAN_SCHEMA, "strict": True},
}
#: The verdict of a task check: did the task's result meet its acceptance criteria.
CHECK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["met", "reason"],
    "properties": {
        "met": {"type": "boolean", "description": "whether the task's result meets the criteria"},
        "reason": {"type": "string", "description": "one sentence: why"},
    },
}
CHECK_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "task_check", "schema": CHECK_SCHEMA, "strict": True},
}

TASK_INTRO = """You are carrying out one task of a larger plan; other tasks run at the same time in other \
turns. Do only this task. When it is done, answer with a short summary of the result: the tasks that depend \
on it read that summary. A tool call that failed (a file that does not exist, an error) did not do its \
work: fix the cause or find another way. If you cannot complete the task, answer with "FAILED:" followed by \
the reason; never report as done what the tool results do not show."""

PLANNER_PROMPT = """You are the planner of Jupyter Agent. Split the user's goal into a small DAG of tasks \
that separate agent turns will carry out, each seeing only the goal, its own task and the results of the \
tasks it depends on. Make tasks independent where you can, so they run in parallel; add a dependency only \
when a task needs another's result. Each task names the tools it will likely use, the notebook paths it \
edits (tasks on the same notebook never run at the same time), an estimate in seconds and acceptance \
criteria. Answer with the JSON plan only."""

CHECK_PROMPT = """You check the result of one task of a plan that an agent carried out with tools. Some of \
its tool calls failed, or its answer says something could not be done. Decide whether the task's result \
meets its acceptance criteria anyway. Judge from the tool results, not from what the answer claims: a \
file that could not be read was not loaded, whatever the answer says. Answer with JSON only: \
{"met": true or false, "reason": "one sentence"}."""

#: An answer that says it could not do (part of) the task: worth a check even when every tool call worked.
ADMITS_FAILURE = re.compile(
    r"\b(?:could ?n[o'’]t|can ?n[o'’]t|cannot|unable to|was ?n[o'’]t able to|not able to|failed to|"
    r"does ?n[o'’]t exist|do ?n[o'’]t exist|not found|no such file)\b",
    re.IGNORECASE,
)


# -- checks ------------------------------------------------------------------------------------------------


def check_plan(data: Any, schema: dict[str, Any] = PLAN_SCHEMA, kept: Iterable[str] = ()) -> list[str]:
    """Every reason ``data`` is not a usable plan (empty when it is). ``kept``: ids of tasks that stay
    (finished ones during a re-plan): new tasks may depend on them but not reuse their ids."""
    errors = [
        f"{'/'.join(map(str, e.path)) or '(plan)'}: {e.message}"
        for e in sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    ][:10]
    if errors:
        return errors
    tasks, kept = data["tasks"], set(kept)
    if not tasks:
        return ["the plan has no tasks"]
    if len(tasks) > MAX_TASKS:
        return [f"the plan has {len(tasks)} tasks; at most {MAX_TASKS} are allowed"]
    ids = [t["id"] for t in tasks]
    for task_id in ids:
        if not TASK_ID.match(task_id):
            errors.append(f"task id {task_id!r} must be 1-64 letters, digits, '_', '-' or '.'")
    errors += [f"task id {i!r} is used more than once" for i in sorted({i for i in ids if ids.count(i) > 1})]
    errors += [f"task id {i!r} is already used by a finished task" for i in ids if i in kept]
    known = set(ids) | kept
    for t in tasks:
        if not t["title"].strip():
            errors.append(f"task {t['id']!r} has an empty title")
        if (t.get("estimate_s") or 0) < 0:
            errors.append(f"task {t['id']!r} has a negative estimate")
        for dep in t.get("depends_on", []):
            if dep not in known:
                errors.append(f"task {t['id']!r} depends on unknown task {dep!r}")
    if not errors:
        try:
            tuple(TopologicalSorter({t["id"]: t.get("depends_on", []) for t in tasks}).static_order())
        except CycleError as err:
            cycle = " -> ".join(err.args[1])
            errors.append(f"the dependencies form a cycle: {cycle} (each task depends on the one before it)")
    return errors


def renumbered(data: Any, taken: Iterable[str]) -> tuple[Any, dict[str, str]]:
    """``data`` with every new task whose id is ``taken`` (by a task that stays in the plan: finished,
    running, failed or re-planned away) given a fresh id, and the dependencies among the new tasks on it
    rewritten; and the renames (old id -> new id). A re-plan never fails on an id the model reused.

    A new task that depends on a reused id means the new task of that id (the model wrote them together),
    except the renamed task itself, which can only mean the task that kept the id. Data that is not a list
    of tasks with string ids comes back as it is, for :func:`check_plan` to explain.
    """
    taken = set(taken)
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list) or not all(
        isinstance(t, dict) and isinstance(t.get("id"), str) for t in tasks
    ):
        return data, {}
    used = taken | {t["id"] for t in tasks}
    renames: dict[str, str] = {}
    for task_id in dict.fromkeys(t["id"] for t in tasks):
        if task_id not in taken:
            continue
        base, n = task_id[:60].rstrip("-") or "t", 2
        while f"{base}-{n}" in used:
            n += 1
        renames[task_id] = f"{base}-{n}"
        used.add(renames[task_id])
    if not renames:
        return data, {}
    out = []
    for task in tasks:
        new_id = renames.get(task["id"], task["id"])
        deps = task.get("depends_on")
        if isinstance(deps, list):
            deps = [renames[d] if d in renames and d != task["id"] else d for d in deps]
        out.append({**task, "id": new_id, **({"depends_on": deps} if isinstance(deps, list) else {})})
    return {**data, "tasks": out}, renames


def unresolved_failures(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls of a task's attempt that failed and were not followed by a successful call of the same
    tool (``calls``: name, arguments, ok, content, in the order they were made)."""
    out = []
    for i, call in enumerate(calls):
        if call.get("ok") is False and not any(
            later.get("ok") and later["name"] == call["name"] for later in calls[i + 1 :]
        ):
            out.append(call)
    return out


def check_request(task: Task, answer: str, calls: list[dict[str, Any]]) -> str:
    """What the task check reads: the task, its criteria, its tool calls (failed ones with their errors)
    and its answer."""
    criteria = task.acceptance.strip() or f"the task is carried out as described ({task.title})"
    lines = [f"Task: {task.title}"]
    lines += [task.description] if task.description else []
    lines += [f"Acceptance criteria: {criteria}", "", "Tool calls, in order:"]
    for call in calls[-30:]:
        state = {True: "ok", False: "FAILED"}.get(call.get("ok"), "no result")
        head = f"- {call['name']}({_short(call.get('arguments'), 200)}): {state}"
        if call.get("ok") is False:
            head += f": {_short(call.get('content'), 600)}"
        lines.append(head)
    if not calls:
        lines.append("(none)")
    lines += ["", "The task's answer:", _short(answer, 3000) or "(empty)"]
    lines += ["", "Does the task's result meet the acceptance criteria?"]
    return "\n".join(lines)


def parse_check(content: str) -> tuple[bool, str] | None:
    """The check's verdict, or None when the answer is not one."""
    text = content.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        match = re.search(r"\{.*\}", text, re.DOTALL)  # a model that wrapped the JSON in words
        try:
            data = json.loads(match.group(0)) if match else None
        except json.JSONDecodeError:
            data = None
    if not isinstance(data, dict) or not isinstance(data.get("met"), bool):
        return None
    return data["met"], str(data.get("reason") or "").strip()


def _short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split()) if limit <= 200 else text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tasks_from(data: dict[str, Any], book: EstimateBook) -> list[Task]:
    """Tasks from checked plan data, with estimates blended from history."""
    out = []
    for item in data["tasks"]:
        given, tools = item.get("estimate_s"), list(item.get("tools") or [])
        task = Task(item["id"], item["title"].strip(), item.get("description") or "", tools=tools)
        task.depends_on = list(dict.fromkeys(item.get("depends_on") or []))
        task.notebooks, task.acceptance = list(item.get("notebooks") or []), item.get("acceptance") or ""
        task.estimate_s, task.model_estimate_s = book.estimate(tools, given), given
        out.append(task)
    return out


def edited_tasks(plan: Plan, data: Any, book: EstimateBook) -> list[Task]:
    """The task list after a person's ``plan_edit``; raises BadRequest when the edit is not valid.

    Tasks that have started must stay, unchanged; the others may be changed, removed or added.
    """
    errors = check_plan(data, EDIT_SCHEMA)
    if errors:
        raise BadRequest("the edited plan is not valid: " + "; ".join(errors))
    started = {t.id: t for t in plan.live if t.state not in ("pending", "ready")}
    edited = {item["id"]: item for item in data["tasks"]}
    for task_id, task in started.items():
        item = edited.get(task_id)
        if item is None:
            raise BadRequest(f"task {task_id!r} has already started ({task.state}) and cannot be removed")
        fields_now = (task.title, task.description, task.depends_on)
        if (
            item["title"].strip(),
            item.get("description", fields_now[1]),
            item.get("depends_on", fields_now[2]),
        ) != fields_now:
            raise BadRequest(
                f"task {task_id!r} has started ({task.state}); only tasks not started can change"
            )
    fresh = iter(tasks_from({"tasks": [i for i in data["tasks"] if i["id"] not in started]}, book))
    before = {t.id: t for t in plan.live}
    out = [t for t in plan.tasks if t.replaced]
    for item in data["tasks"]:
        if item["id"] in started:
            out.append(started[item["id"]])
            continue
        task, old = next(fresh), before.get(item["id"])
        if old is not None:
            task.attempt = old.attempt
            if "estimate_s" not in item:
                task.estimate_s, task.model_estimate_s = old.estimate_s, old.model_estimate_s
        out.append(task)
    return out


# -- what a task's turn and the conversation read ----------------------------------------------------------


def task_prompt(plan: Plan, task: Task, previous_error: str = "") -> str:
    """What a task's turn reads: the goal, its task, and the results of the tasks it depends on."""
    by_id = {t.id: t for t in plan.live}
    lines = [TASK_INTRO, "", f"Goal of the plan: {plan.goal}"]
    if isinstance(plan.context.get("notebook"), str):
        lines.append(f"Active notebook: {plan.context['notebook']}")
    lines += ["", f"Your task (id: {task.id}): {task.title}"]
    lines += [task.description] if task.description else []
    lines += [f"Done when: {task.acceptance}"] if task.acceptance else []
    lines += [f"Suggested tools: {', '.join(task.tools)}"] if task.tools else []
    deps = [by_id[d] for d in task.depends_on if d in by_id]
    if deps:
        lines += ["", "Results of the tasks it depends on:"]
        lines += [f"- {d.id} ({d.title}) [{d.state}]: {d.summary or '(no result)'}" for d in deps]
    if previous_error:
        lines += ["", f"A previous attempt at this task failed: {previous_error}"]
    return "\n".join(lines)


def summary(plan: Plan) -> str:
    """The plan's outcome as the assistant's answer to the goal in the session's conversation."""
    live = plan.live
    done = sum(t.state == "done" for t in live)
    lines = [f"Plan finished: {done} of {len(live)} tasks done."]
    for task in live:
        result = (task.summary or task.error or "").strip().splitlines()
        lines.append(f"- **{task.title}** ({task.state}){': ' + result[0][:200] if result else ''}")
    return "\n".join(lines)


# -- the planning call ------------------------------------------------------------------------------------


class PlanMaker:
    """Asks the model for a plan (or a revised one) and returns checked tasks; one repair round."""

    def __init__(self, llm: LLMClient, tools: Callable[[], list[dict[str, Any]]], book: EstimateBook) -> None:
        self.llm = llm
        self.tools = tools  # the tool schemas the tasks may use (the router's)
        self.book = book

    def _system(self) -> str:
        lines = []
        for schema in self.tools():
            fn = schema["function"]
            measured = self.book.means.get(fn["name"])
            typical = f" (measured: about {measured[1]:.0f} s per task)" if measured else ""
            lines.append(f"- {fn['name']}: {(fn.get('description') or '').splitlines()[0][:160]}{typical}")
        return PLANNER_PROMPT + "\n\nTools the tasks can use:\n" + ("\n".join(lines) or "(none)")

    async def draft(
        self, goal: str, context: dict[str, Any], model: str | None, on_usage: Callable[[Completion], None]
    ) -> list[Task]:
        text = f"Goal: {goal}"
        if isinstance(context.get("notebook"), str) and context["notebook"]:
            text += f"\nActive notebook: {context['notebook']}"
        return await self._ask([{"role": "user", "content": text}], model, set(), on_usage)

    async def replan(self, plan: Plan, failed: Task, model: str | None, on_usage: Callable) -> list[Task]:
        """New tasks for the work not done yet, knowing why ``failed`` failed."""
        kept = [t for t in plan.live if t.state not in ("pending", "ready") and t is not failed]
        waiting = [t for t in plan.live if t.state in ("pending", "ready")]
        lines = [f"Goal: {plan.goal}", "", "Tasks finished or still running (you may depend on them):"]
        lines += [f"- {t.id} [{t.state}] {t.title}: {t.summary[:300]}" for t in kept] or ["(none)"]
        lines += [
            "",
            f"Task {failed.id} ({failed.title}) failed after {failed.attempt} attempts: {failed.error}",
        ]
        lines += ["", "Tasks not started yet (revise, replace or drop them):"]
        lines += [f"- {t.id}: {t.title} (after: {', '.join(t.depends_on) or '-'})" for t in waiting]
        used = ", ".join(t.id for t in [*kept, failed])
        lines += ["", f"Plan the remaining work another way, as new tasks. Do not reuse the ids {used}."]
        known = {t.id for t in kept}
        # ids that stay in the plan (finished, running, failed, re-planned away): a new task reusing one
        # is renamed rather than refused
        taken = {t.id for t in plan.tasks if t.replaced or t.state not in ("pending", "ready")} | {failed.id}
        messages = [{"role": "user", "content": "\n".join(lines)}]
        return await self._ask(messages, model, known, on_usage, taken)

    async def check(
        self, task: Task, answer: str, calls: list[dict[str, Any]], model: str | None, on_usage: Callable
    ) -> tuple[bool, str] | None:
        """Whether a doubtful task's result meets its acceptance criteria: (met, reason), from one short
        structured call; None when the model's answer is not a verdict. Raises AgentError when the call
        fails."""
        messages = [
            {"role": "system", "content": CHECK_PROMPT},
            {"role": "user", "content": check_request(task, answer, calls)},
        ]
        completion = await self.llm.stream(messages, None, model=model, response_format=CHECK_FORMAT)
        on_usage(completion)
        return parse_check(completion.content)

    async def _ask(
        self,
        messages: list[dict[str, Any]],
        model: str | None,
        kept: set[str],
        on_usage: Callable,
        taken: Iterable[str] = (),
    ) -> list[Task]:
        messages = [{"role": "system", "content": self._system()}, *messages]
        for attempt in range(2):
            completion = await self.llm.stream(messages, None, model=model, response_format=RESPONSE_FORMAT)
            on_usage(completion)
            data, errors = parse_plan(completion.content, kept, taken)
            if not errors:
                return tasks_from(data, self.book)
            if attempt == 0:
                reasons = "\n".join(f"- {e}" for e in errors)
                messages.append({"role": "assistant", "content": completion.content})
                messages.append(
                    {"role": "user", "content": f"That plan is not valid:\n{reasons}\nSend a corrected plan."}
                )
        reasons = "; ".join(errors)
        message = f"the model did not produce a valid plan, even after being told what was wrong: {reasons}"
        raise AgentError(message, code="invalid_plan")


def parse_plan(
    content: str, kept: Iterable[str] = (), taken: Iterable[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """The plan in the model's answer and every reason it is not usable; new tasks reusing a ``taken`` id
    are renamed first (see :func:`renumbered`)."""
    text = content.strip().removeprefix("```json").removeprefix("```").removesuffix("```")  # fenced anyway
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return {}, [f"the answer is not valid JSON ({err.msg} at position {err.pos})"]
    data, renames = renumbered(data, taken)
    if renames:
        log.info("Re-plan: renamed new tasks that reused ids: %s", renames)
    return data, check_plan(data, PLAN_SCHEMA, kept)
