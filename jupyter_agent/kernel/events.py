"""What every view of a turn shares: plan lines, tool-call arguments, trimming, stdin answers, the footer.

Used by the views under a cell (:mod:`jupyter_agent.kernel.view`, :mod:`jupyter_agent.kernel.plain_view`) and
by the terminal (:mod:`jupyter_agent.cli`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Approve = Callable[[str, str], None]  # (call_id, decision): a person's answer to an approval request
MAX_SHOWN = 4000  # characters of a tool's output shown under the cell


PLAN_MARKS = {
    "pending": "○",
    "ready": "◔",
    "running": "⏳",
    "done": "✓",
    "failed": "✗",
    "skipped": "↷",
    "cancelled": "⏹",
}


def task_line(task: dict[str, Any]) -> str:
    """One task of a plan as a line: its state, id and title (and why it failed)."""
    line = f"{PLAN_MARKS.get(task.get('state', ''), '·')} {task.get('id')}: {task.get('title', '')}"
    return line + (f" — {task['error']}" if task.get("state") == "failed" and task.get("error") else "")


class PlanTracker:
    """The tasks of the plan a turn runs, kept up to date from ``plan`` and ``task_update`` events."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.status = ""

    def update(self, event: dict[str, Any]) -> bool:
        """Apply a plan event; True when it changed what a person sees."""
        if event["type"] == "plan":
            self.status = event.get("status", "")
            self.tasks = {t["id"]: dict(t) for t in event.get("tasks") or [] if not t.get("replaced")}
            return True
        task = self.tasks.get(event.get("id") or event.get("task"))
        if task is None or task.get("state") == event.get("state"):
            return False
        task.update({k: v for k, v in event.items() if k in ("state", "error", "summary")})
        return True

    def lines(self) -> list[str]:
        return [task_line(t) for t in self.tasks.values()]

    def about(self, event: dict[str, Any], text: str) -> str:
        """``text`` naming the plan task that ``event`` comes from, if any: "Task t2 · Load the data: ..."."""
        task_id = event.get("task")
        if not task_id:
            return text
        title = (self.tasks.get(task_id) or {}).get("title")
        return f"Task {task_id} · {title}: {text}" if title else f"Task {task_id}: {text}"


def turn_footer(model: str, usage: dict[str, Any] | None, seconds: float) -> str:
    """One line on what a finished turn took: model, model calls, tokens, cost when known, time."""
    usage = usage or {}
    calls = usage.get("model_calls") or 0
    if not calls:
        return ""
    tokens = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
    parts = [model] if model else []
    parts += [f"{calls} model call{'s' if calls != 1 else ''}", f"{tokens:,} tokens"]
    cost = usage.get("cost")
    if cost:
        parts.append(f"${cost:.4f}")
    parts.append(f"{seconds:.1f} s")
    return " · ".join(parts)


def arguments_of(event: dict[str, Any]) -> dict[str, Any]:
    args = event.get("arguments")
    return args if isinstance(args, dict) else {"arguments": args}


def cut(text: str, limit: int = MAX_SHOWN) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters]"


def ask(prompt: str) -> str | None:
    """A decision typed by the person, or None when this frontend cannot ask (no stdin)."""
    try:
        answer = input(prompt)
    except Exception:  # StdinNotImplementedError, EOFError: nobody can answer here
        return None
    return {"y": "once", "yes": "once", "a": "always", "always": "always"}.get(answer.strip().lower(), "deny")
