"""Approving a plan under its cell: ``%%agent --plan`` shows the plan and waits for the person.

With widgets (JupyterLab, Notebook 7, VS Code) the plan is an editable list: each task's title and
dependencies can be changed, a task can be dropped or a new one added, then **Approve and run** sends the
edits (``plan_edit``) and the approval (``plan_approve``) to the engine; **Cancel** ends the turn. A refused
edit (a dependency on an unknown task, a cycle) is shown and the editor stays open. Without widgets the
person answers on stdin; when nobody can answer, the plan does not run (``--yes`` runs plans unasked).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

#: ``decide(approve, edits)``: ``edits`` is a ``plan_edit`` body, or None when nothing changed.
Decide = Callable[[bool, "dict[str, Any] | None"], None]

NOBODY_TO_ASK = (
    "The plan needs your approval and this frontend cannot ask for it, so it did not run. "
    "Run it with %%agent --plan --yes to start plans without approval."
)


def parse_ids(text: str) -> list[str]:
    """Task ids typed as a list: ``t1, t2`` or ``t1 t2``."""
    return [part for part in re.split(r"[\s,;]+", text.strip()) if part]


def plan_edits(tasks: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``plan_edit`` body for the rows a person edited, or None when the plan is unchanged.

    ``tasks`` are the plan's tasks as shown; each row has ``id`` (None for a new task), ``keep``, ``title``
    and ``depends_on`` (a list of ids). New tasks get the next free ``tN`` id.
    """
    shown = {t["id"]: t for t in tasks}
    taken = set(shown)
    out: list[dict[str, Any]] = []
    changed = False
    counter = len(taken)
    for row in rows:
        title = row["title"].strip()
        if not row["keep"] or not title:
            changed = changed or row["id"] is not None
            continue
        task_id = row["id"]
        if task_id is None:
            counter += 1
            while f"t{counter}" in taken:
                counter += 1
            task_id = f"t{counter}"
            taken.add(task_id)
            changed = True
            out.append({"id": task_id, "title": title, "description": title, "depends_on": row["depends_on"]})
            continue
        task = shown[task_id]
        item = {"id": task_id, "title": title, "description": task.get("description") or title}
        item["depends_on"] = row["depends_on"]
        for key in ("tools", "notebooks", "acceptance"):  # not estimate_s: the engine keeps its own
            if task.get(key) is not None:
                item[key] = task[key]
        if title != task.get("title") or row["depends_on"] != list(task.get("depends_on") or []):
            changed = True
        out.append(item)
    return {"tasks": out} if changed else None


def _estimate(task: dict[str, Any]) -> str:
    seconds = task.get("estimate_s")
    return f"~{seconds:.0f} s" if isinstance(seconds, int | float) else ""


class PlanApproval:
    """The widget that shows a plan waiting for approval; one per plan turn, closed once decided."""

    def __init__(self, widgets: Any, display: Callable[..., Any], decide: Decide) -> None:
        self.w = widgets
        self._display = display
        self._decide = decide
        self._tasks: list[dict[str, Any]] = []
        self._rows: list[dict[str, Any]] = []
        self._revision: Any = None
        self.box: Any = None
        self._handle: Any = None
        self._list: Any = None
        self._status: Any = None
        self._buttons: list[Any] = []
        self.decided = False

    def show(self, plan: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
        """Show (or refresh, after an accepted edit) the plan's tasks for approval."""
        if self.box is not None and plan.get("revision") == self._revision:
            return
        self._revision = plan.get("revision")
        self._tasks = tasks
        self._rows = [self._row(t) for t in tasks]
        if self.box is None:
            self._build(plan)
        else:
            self._list.children = [r["box"] for r in self._rows]
            self._enable(True)
            self._status.value = "Edits applied. Approve to run."

    def refused(self, reason: str) -> None:
        """The engine refused the edit: say why and let the person fix it."""
        self.decided = False
        self._status.value = f"⚠ {reason}"
        self._enable(True)

    def close(self, text: str) -> None:
        if self.box is None:
            return
        self._handle.update({"text/plain": text, "text/markdown": f"*{text}*"}, raw=True)
        self.box.close()
        self.box = None

    # -- building ---------------------------------------------------------------------------------------
    def _build(self, plan: dict[str, Any]) -> None:
        w = self.w
        header = w.HTML(
            f"<b>Plan</b> · {len(self._tasks)} tasks · critical path "
            f"{float(plan.get('critical_path_s') or 0):.0f} s · edit titles or dependencies, untick a "
            "task to drop it, then approve"
        )
        self._list = w.VBox([r["box"] for r in self._rows])
        new_title = w.Text(placeholder="A task to add", layout=w.Layout(width="50%"))
        new_deps = w.Text(placeholder="after (ids)", layout=w.Layout(width="20%"))
        add = w.Button(description="Add task", icon="plus")
        add.on_click(lambda _b: self._add(new_title, new_deps))
        approve = w.Button(description="Approve and run", button_style="primary", icon="play")
        approve.on_click(lambda _b: self._finish(True))
        cancel = w.Button(description="Cancel", icon="times")
        cancel.on_click(lambda _b: self._finish(False))
        self._buttons = [add, approve, cancel]
        self._status = w.Label("")
        self.box = w.VBox(
            [header, self._list, w.HBox([new_title, new_deps, add]), w.HBox([approve, cancel]), self._status]
        )
        self._handle = self._display(self.box, display_id=True)

    def _row(self, task: dict[str, Any]) -> dict[str, Any]:
        w = self.w
        keep = w.Checkbox(value=True, indent=False, layout=w.Layout(width="2em"), tooltip="Keep this task")
        title = w.Text(value=task.get("title", ""), layout=w.Layout(width="50%"))
        deps = w.Text(
            value=", ".join(task.get("depends_on") or []),
            placeholder="after (ids)",
            layout=w.Layout(width="20%"),
        )
        label = w.Label(f"{task['id']} {_estimate(task)}", layout=w.Layout(width="7em"))
        return {
            "id": task["id"],
            "keep": keep,
            "title": title,
            "deps": deps,
            "box": w.HBox([keep, label, title, deps]),
        }

    def _add(self, title: Any, deps: Any) -> None:
        if not title.value.strip():
            self._status.value = "Write what the new task should do first."
            return
        row = self._row({"id": "new", "title": title.value, "depends_on": parse_ids(deps.value)})
        row["id"] = None
        self._rows.append(row)
        self._list.children = [r["box"] for r in self._rows]
        title.value = deps.value = ""
        self._status.value = ""

    # -- deciding ---------------------------------------------------------------------------------------
    def values(self) -> list[dict[str, Any]]:
        return [
            {
                "id": r["id"],
                "keep": bool(r["keep"].value),
                "title": r["title"].value,
                "depends_on": parse_ids(r["deps"].value),
            }
            for r in self._rows
        ]

    def _finish(self, approve: bool) -> None:
        if self.decided:
            return
        self.decided = True
        self._enable(False)
        edits = plan_edits(self._tasks, self.values()) if approve else None
        self._status.value = ("Applying your edits…" if edits else "Starting…") if approve else "Cancelling…"
        self._decide(approve, edits)

    def _enable(self, on: bool) -> None:
        for button in self._buttons:
            button.disabled = not on


def ask_in_text() -> bool | None:
    """Ask on stdin whether to run the plan shown above; None when nobody can answer here."""
    try:
        answer = input("Run this plan? [Y]es / [n]o: ")
    except Exception:  # StdinNotImplementedError, EOFError: nobody can answer here
        return None
    return answer.strip().lower() in ("", "y", "yes")


def decide_in_text(decide: Decide, note: Callable[[str], None]) -> None:
    """Approve the plan shown above on stdin; when nobody can answer, say so: it does not run."""
    decision = ask_in_text()
    if decision is None:
        note(NOBODY_TO_ASK)
    decide(bool(decision), None)
