"""A turn as plain text, printed as it comes: terminal IPython and frontends without rich display."""

from __future__ import annotations

import json
import sys
from typing import Any

from jupyter_agent.kernel.events import Approve, PlanTracker, arguments_of, ask, cut, task_line
from jupyter_agent.kernel.plan_view import Decide, decide_in_text


class PlainView:
    """Text printed as it comes (terminal IPython and other frontends without rich display)."""

    def __init__(self, on_approve: Approve | None, on_plan: Decide | None = None) -> None:
        self.on_approve = on_approve
        self.on_plan = on_plan
        self._plan_asked = False
        self._in_text = False
        self._ended = False
        self._plan = PlanTracker()
        self._plan_shown = False
        self._streamed = False

    def start(self) -> None: ...

    def close(self) -> None:
        self._newline()

    def next_flush_in(self) -> float | None:
        return None

    def flush(self) -> None: ...

    def _newline(self) -> None:
        if self._in_text:
            print(flush=True)
            self._in_text = False

    def handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("plan", "task_update"):
            if self._plan.update(event) and self._plan.tasks:
                self._newline()
                if not self._plan_shown:
                    print("Plan:\n" + "\n".join(f"  {line}" for line in self._plan.lines()), flush=True)
                    self._plan_shown = True
                elif kind == "task_update" and event.get("state") not in ("pending", "ready"):
                    print(f"  {task_line(self._plan.tasks[event['id']])}", flush=True)
            if kind == "plan" and event.get("status") == "awaiting_approval" and not self._plan_asked:
                self._plan_asked = True
                if self.on_plan is not None:
                    decide_in_text(self.on_plan, self.note)
        elif event.get("task") and kind in ("token", "thinking", "message", "usage"):
            return
        elif kind == "token":
            sys.stdout.write(event["text"])
            sys.stdout.flush()
            self._in_text = self._streamed = True
        elif kind == "message" and event.get("role") == "assistant":
            if event.get("content") and not self._streamed and not event.get("partial"):
                self._newline()
                print(event["content"], flush=True)
            self._streamed = False
        elif kind == "tool_call":
            self._newline()
            args = arguments_of(event)
            shown = (
                args.get("code") if event["name"] == "python_run" else json.dumps(args, ensure_ascii=False)
            )
            task = f"[{event['task']}] " if event.get("task") else ""
            print(f"⚙ {task}{event['name']}: {cut(str(shown), 300)}", flush=True)
        elif kind == "tool_result":
            mark = "✓" if event.get("ok") else "✗"
            body = cut(str(event.get("content", "")), 1000).replace("\n", "\n  ")
            print(f"  {mark} {body}", flush=True)
        elif kind == "approval_request":
            self._newline()
            call = f"{event['name']}({json.dumps(event.get('arguments'))[:300]})"
            decision = ask(self._plan.about(event, f"Allow {call}? [y/a/N]: "))  # naming the task that asks
            if self.on_approve is not None:
                self.on_approve(event["call_id"], decision or "deny")
        elif kind in ("done", "error"):
            self.finish(event)

    def finish(self, event: dict[str, Any]) -> None:
        if self._ended:
            return
        self._ended = True
        self._newline()
        if event["type"] == "error":
            self.error(event.get("message") or "the turn failed")
        elif event.get("reason") == "cancelled":
            print("Cancelled.", flush=True)

    def note(self, text: str) -> None:
        if text:
            self._newline()
            print(text, flush=True)

    def error(self, text: str) -> None:
        self._newline()
        print(f"Agent error: {text}", file=sys.stderr, flush=True)

    def plan_refused(self, reason: str) -> None:
        self.error(reason)
