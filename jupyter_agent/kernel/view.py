"""How a turn appears under its cell, built from the turn's events as they arrive (main thread only).

In a Jupyter kernel the answer is a sequence of outputs: each stretch of the answer is a Markdown output
updated in place (``update_display_data``, at most every :data:`THROTTLE` seconds while tokens stream), and
each tool call is a collapsible block showing its code and, once it ran, its output and images. These are
plain display outputs rather than widget state, so they stay in the saved notebook and render in every
frontend. Widgets are used only for what needs a click: the Stop button and approvals, shown while the
turn runs and removed when it ends. Without a rich frontend (terminal IPython) text is printed as it comes
(:mod:`jupyter_agent.kernel.plain_view`).
"""

from __future__ import annotations

import html
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from jupyter_agent.kernel.events import Approve, PlanTracker, arguments_of, ask, cut, turn_footer
from jupyter_agent.kernel.plain_view import PlainView
from jupyter_agent.kernel.plan_view import Decide, PlanApproval, decide_in_text

THROTTLE = 0.1  # seconds between two updates of a streaming answer


def make_view(
    shell: Any,
    interactive: bool,
    on_stop: Callable[[], None] | None = None,
    on_approve: Approve | None = None,
    on_plan: Decide | None = None,
) -> Any:
    if getattr(shell, "kernel", None) is not None:
        return RichView(interactive and _comms_while_busy(), on_stop, on_approve, on_plan)
    return PlainView(on_approve, on_plan)


def _comms_while_busy() -> bool:
    """Whether a button click reaches the kernel while an async cell runs: ipykernel 7 dispatches widget
    messages during async cells (or on subshells); older kernels only after the cell, too late to help."""
    try:
        import ipykernel
    except ImportError:
        return False
    return tuple(getattr(ipykernel, "version_info", (0,))[:1]) >= (7,)


class RichView:
    """Display outputs in a Jupyter frontend."""

    def __init__(
        self,
        interactive: bool,
        on_stop: Callable[[], None] | None,
        on_approve: Approve | None,
        on_plan: Decide | None = None,
    ) -> None:
        from IPython.display import display

        self._display = display
        self.interactive = interactive
        self.on_stop = on_stop
        self.on_approve = on_approve
        self.on_plan = on_plan
        self._plan_approval: PlanApproval | None = None
        self._plan_asked = False
        self._started = time.monotonic()
        self._model = ""
        self._footer = ""  # what the turn took, shown under it once it is done
        self._text = ""
        self._text_handle: Any = None
        self._dirty = False
        self._last_update = 0.0
        self._tools: dict[str, dict[str, Any]] = {}
        self._controls: Any = None
        self._approvals: dict[str, Any] = {}
        self._ended = False
        self._plan = PlanTracker()
        self._plan_handle: Any = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.interactive or self.on_stop is None:
            return
        widgets = _widgets()
        if widgets is None:
            return
        button = widgets.Button(description="Stop", icon="stop", tooltip="Cancel the agent's turn")
        button.on_click(lambda _b: self._stop(button))
        self._controls = (button, self._display(button, display_id=True))

    def _stop(self, button: Any) -> None:
        button.disabled = True
        button.description = "Stopping…"
        if self.on_stop is not None:
            self.on_stop()

    def close(self) -> None:
        self.flush()
        footer = {"text/plain": self._footer}
        if self._controls is not None:  # the Stop button's place becomes the turn's footer
            button, handle = self._controls
            handle.update(footer if self._footer else {"text/plain": ""}, raw=True)
            button.close()
            self._controls = None
        elif self._footer:
            self._display(footer, raw=True)
        for call_id in list(self._approvals):
            self._close_approval(call_id, "")
        if self._plan_approval is not None:
            self._plan_approval.close("")

    def next_flush_in(self) -> float | None:
        if not self._dirty:
            return None
        return max(0.0, THROTTLE - (time.monotonic() - self._last_update))

    def flush(self) -> None:
        if self._dirty and self._text_handle is not None:
            self._text_handle.update(self._markdown(), raw=True)
            self._last_update = time.monotonic()
        self._dirty = False

    # -- events -------------------------------------------------------------------------------------
    def handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("plan", "task_update"):
            self._plan_event(event)
        elif kind == "usage":
            self._model = event.get("model") or self._model
        elif event.get("task") and kind in ("token", "thinking", "message"):
            return  # a plan task's own answer: its outcome shows in the plan
        elif kind == "token":
            self._token(event["text"])
        elif kind == "message" and event.get("role") == "assistant":
            if event.get("content") and not self._text and not event.get("partial"):
                self._token(event["content"])  # an answer that was not streamed
            self._end_text()
        elif kind == "tool_call":
            self._end_text()
            self._tool_call(event)
        elif kind == "tool_result":
            self._tool_result(event)
        elif kind == "approval_request":
            self._approval(event)
        elif kind == "approval_result":
            self._close_approval(event["call_id"], event.get("decision", ""))
        elif kind in ("done", "error"):
            self.finish(event)

    def finish(self, event: dict[str, Any]) -> None:
        if self._ended:
            return
        self._ended = True
        self._end_text()
        if event["type"] == "error":
            self.error(event.get("message") or event.get("code") or "the turn failed")
            return
        if event.get("reason") == "cancelled":
            self.note("⏹ Cancelled.")
        elif event.get("reason") in ("max_steps", "max_tokens"):
            self.note(f"The agent stopped: it reached its {event['reason'].replace('_', ' ')} budget.")
        self._footer = turn_footer(self._model, event.get("usage"), time.monotonic() - self._started)

    def note(self, text: str) -> None:
        if text:
            self._display({"text/markdown": f"*{text}*", "text/plain": text}, raw=True)

    def error(self, text: str) -> None:
        self._end_text()
        print(f"Agent error: {text}", file=sys.stderr, flush=True)

    # -- pieces ---------------------------------------------------------------------------------------
    def _plan_event(self, event: dict[str, Any]) -> None:
        if not self._plan.update(event) or not self._plan.tasks:
            return
        text = "\n".join(["**Plan**", "", *(f"- {line}" for line in self._plan.lines())])
        bundle = {"text/markdown": text, "text/plain": "\n".join(self._plan.lines())}
        if self._plan_handle is None:
            self._end_text()
            self._plan_handle = self._display(bundle, raw=True, display_id=True)
        else:
            self._plan_handle.update(bundle, raw=True)
        if event["type"] == "plan":
            self._plan_approval_for(event)

    def _plan_approval_for(self, plan: dict[str, Any]) -> None:
        """Ask for the plan's approval while it waits for it; close the question once it has moved on."""
        waiting = plan.get("status") == "awaiting_approval"
        if not waiting:
            if self._plan_approval is not None:
                running = plan.get("status") in ("running", "paused", "done")
                self._plan_approval.close("Plan approved." if running else f"Plan {plan.get('status')}.")
                self._plan_approval = None
            return
        if self.on_plan is None:
            return
        widgets = _widgets() if self.interactive else None
        if widgets is not None:
            if self._plan_approval is None:
                self._plan_approval = PlanApproval(widgets, self._display, self.on_plan)
            self._plan_approval.show(plan, list(self._plan.tasks.values()))
            return
        if not self._plan_asked:
            self._plan_asked = True
            decide_in_text(self.on_plan, self.note)

    def plan_refused(self, reason: str) -> None:
        if self._plan_approval is not None:
            self._plan_approval.refused(reason)
        else:
            self.error(reason)

    def _markdown(self) -> dict[str, str]:
        return {"text/markdown": self._text, "text/plain": self._text}

    def _token(self, text: str) -> None:
        self._text += text
        if self._text_handle is None:
            self._text_handle = self._display(self._markdown(), raw=True, display_id=True)
            self._last_update = time.monotonic()
            return
        self._dirty = True
        if time.monotonic() - self._last_update >= THROTTLE:
            self.flush()

    def _end_text(self) -> None:
        self.flush()
        self._text = ""
        self._text_handle = None

    def _tool_call(self, event: dict[str, Any]) -> None:
        block = {"name": event["name"], "args": arguments_of(event), "state": "running", "result": None}
        block["task"] = event.get("task")  # a plan's task ran it: say which
        block["handle"] = self._display(self._tool_bundle(block), raw=True, display_id=True)
        self._tools[event["call_id"]] = block

    def _tool_result(self, event: dict[str, Any]) -> None:
        block = self._tools.get(event["call_id"])
        if block is None:
            return
        block["state"] = "ok" if event.get("ok") else "failed"
        block["result"] = event
        block["handle"].update(self._tool_bundle(block), raw=True)

    def _tool_bundle(self, block: dict[str, Any]) -> dict[str, str]:
        name, args, state, result = block["name"], block["args"], block["state"], block["result"]
        code = args.get("code") if name == "python_run" else None
        shown = code if isinstance(code, str) else json.dumps(args, indent=1, ensure_ascii=False)
        first = (shown.strip().splitlines() or [""])[0]
        mark = {"running": "⏳", "ok": "✓", "failed": "✗"}[state]
        took = (
            f" · {result['duration_ms'] / 1000:.1f} s"
            if result and result.get("duration_ms") is not None
            else ""
        )
        task = f"[{block['task']}] " if block.get("task") else ""
        summary = (
            f"{mark} {html.escape(task)}<code>{html.escape(name)}</code> {html.escape(cut(first, 80))}{took}"
        )
        parts = [f"<details><summary>{summary}</summary>", f"<pre>{html.escape(shown)}</pre>"]
        plain = [f"{mark} {task}{name}{took}", shown]
        if result is not None:
            content = cut(str(result.get("content", "")))
            parts.append(f"<pre>{html.escape(content)}</pre>")
            plain.append(content)
            for image in result.get("images") or []:
                parts.append(f'<img src="data:{image["mime"]};base64,{image["data"]}"/>')
        parts.append("</details>")
        return {"text/html": "\n".join(parts), "text/plain": "\n".join(plain)}

    def _approval(self, event: dict[str, Any]) -> None:
        call_id, name = event["call_id"], event["name"]
        arguments = json.dumps(event.get("arguments"), ensure_ascii=False)[:300]
        question = self._plan.about(event, f"Allow {name}({arguments})?")  # a plan's task asks: say which
        widgets = _widgets() if self.interactive else None
        if widgets is None:
            decision = ask(f"{question} [y]es / [a]lways / [N]o: ")
            if decision is None:
                self.note(f"{name} needs approval and this frontend cannot ask; it was denied.")
                decision = "deny"
            if self.on_approve is not None:
                self.on_approve(call_id, decision)
            return
        buttons = []
        for label, decision in (("Allow once", "once"), ("Always allow", "always"), ("Deny", "deny")):
            button = widgets.Button(description=label)
            button.on_click(lambda _b, d=decision: self.on_approve and self.on_approve(call_id, d))
            buttons.append(button)
        box = widgets.VBox([widgets.Label(question), widgets.HBox(buttons)])
        self._approvals[call_id] = (box, self._display(box, display_id=True))

    def _close_approval(self, call_id: str, decision: str) -> None:
        found = self._approvals.pop(call_id, None)
        if found is None:
            return
        box, handle = found
        text = {
            "once": "Allowed once.",
            "always": "Always allowed.",
            "deny": "Denied.",
            "timeout": "No answer.",
        }
        handle.update({"text/plain": text.get(decision, "")}, raw=True)
        box.close()


def _widgets() -> Any:
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets
