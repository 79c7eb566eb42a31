"""A turn's events on a terminal, for ``jupyter agent run``: tokens as they come, a line per tool call (with a
spinner on a TTY while it runs), the plan and its progress, approvals asked on the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from jupyter_agent.kernel.events import PlanTracker, ask, task_line

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class TerminalPrinter:
    """A turn's events on a terminal: tokens as they arrive, one line per tool call (with a spinner on a
    TTY while it runs), approvals asked on the terminal; plain lines when stdout is not a TTY."""

    def __init__(self, session: Any, can_ask: bool, out: Any = None) -> None:
        self.session = session
        self.can_ask = can_ask
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self._running: dict[str, str] = {}
        self._started: dict[str, float] = {}
        self._spinner: asyncio.Task[None] | None = None
        self._in_text = False
        self._status_shown = False
        self._asking: set[asyncio.Task[None]] = set()
        self._plan = PlanTracker()
        self._plan_shown = False
        self._plan_asked = False
        self._streamed = False

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _clear_status(self) -> None:
        if self._status_shown:
            self._write("\r\x1b[K")
            self._status_shown = False

    def _line(self, text: str) -> None:
        self._clear_status()
        if self._in_text:
            self._write("\n")
            self._in_text = False
        self._write(text + "\n")

    def handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("plan", "task_update"):
            self._plan_event(event)
        elif event.get("task") and kind in ("token", "thinking", "message", "usage"):
            return  # a plan task's own answer: its outcome shows in the plan's lines
        elif kind == "token":
            self._clear_status()
            self._write(event["text"])
            self._in_text = self._streamed = True
        elif kind == "message" and event.get("role") == "assistant":
            if event.get("content") and not self._streamed and not event.get("partial"):
                self._line(event["content"])  # an answer that was not streamed (a plan's summary)
            self._streamed = False
        elif kind == "tool_call":
            label = f"{event['name']} {short_args(event.get('arguments'))}".strip()
            self._running[event["call_id"]] = label
            self._started[event["call_id"]] = time.monotonic()
            if self.tty:
                self._ensure_spinner()
            else:
                self._line(f"→ {label}")
        elif kind == "tool_result":
            label = self._running.pop(event["call_id"], event["name"])
            mark = "✓" if event.get("ok") else "✗"
            seconds = (event.get("duration_ms") or 0) / 1000
            first = (str(event.get("content", "")).strip().splitlines() or [""])[0]
            self._line(f"{mark} {label} ({seconds:.1f} s) {first[:160]}".rstrip())
        elif kind == "approval_request":
            task = asyncio.get_running_loop().create_task(self._approve(event))
            self._asking.add(task)
            task.add_done_callback(self._asking.discard)
        elif kind == "error":
            self._clear_status()
            if self._in_text:
                self._line("")
            print(f"error: {event.get('message') or event.get('code')}", file=sys.stderr, flush=True)
        elif kind == "done":
            if self._in_text:
                self._line("")
            if event.get("reason") not in (None, "completed"):
                self._line(f"(stopped: {event.get('reason')})")

    def _plan_event(self, event: dict[str, Any]) -> None:
        if not self._plan.update(event) or not self._plan.tasks:
            return
        if not self._plan_shown:
            self._line("Plan:\n" + "\n".join(f"  {line}" for line in self._plan.lines()))
            self._plan_shown = True
        elif event["type"] == "task_update" and event.get("state") not in ("pending", "ready"):
            self._line(f"  {task_line(self._plan.tasks[event['id']])}")
        if event["type"] == "plan" and event.get("status") == "awaiting_approval" and not self._plan_asked:
            self._plan_asked = True
            task = asyncio.get_running_loop().create_task(self._approve_plan())
            self._asking.add(task)
            task.add_done_callback(self._asking.discard)

    async def _approve_plan(self) -> None:
        """Run the plan shown above? Asked on the terminal; with no terminal it does not run."""
        if self.can_ask:
            answer = await asyncio.to_thread(input, "Run this plan? [Y]es / [n]o: ")
            approved = answer.strip().lower() in ("", "y", "yes")
        else:
            approved = False
            self._line("✗ the plan needs approval and there is no terminal to ask on (use --yes to run it)")
        if approved:
            self.session.plan_approve()
        else:
            self.session.task_control("cancel")

    def _ensure_spinner(self) -> None:
        if self._spinner is None or self._spinner.done():
            self._spinner = asyncio.get_running_loop().create_task(self._spin())

    async def _spin(self) -> None:
        frame = 0
        while self._running:
            if not self._asking:
                labels = ", ".join(self._running.values())
                if self._in_text:
                    self._write("\n")
                    self._in_text = False
                self._write(f"\r\x1b[K{SPINNER[frame % len(SPINNER)]} {labels}"[:200])
                self._status_shown = True
            frame += 1
            await asyncio.sleep(0.1)
        self._clear_status()

    async def _approve(self, event: dict[str, Any]) -> None:
        from jupyter_agent.errors import AgentError

        call = f"{event['name']}({short_args(event.get('arguments'), 300)})"
        self._clear_status()
        question = self._plan.about(event, f"Allow {call}? [y]es / [a]lways / [N]o: ")  # naming the task
        decision = await asyncio.to_thread(ask, question) or "deny"
        with contextlib.suppress(AgentError):  # it timed out meanwhile: the turn already reported it
            self.session.approve(event["call_id"], decision)

    async def close(self) -> None:
        self._running.clear()
        if self._spinner is not None:
            await asyncio.gather(self._spinner, return_exceptions=True)
        for task in list(self._asking):
            task.cancel()
        self._clear_status()


def short_args(arguments: Any, limit: int = 100) -> str:
    if isinstance(arguments, dict):
        text = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    else:
        text = str(arguments or "")
    text = text.replace("\n", "⏎")
    return text if len(text) <= limit else text[: limit - 1] + "…"
