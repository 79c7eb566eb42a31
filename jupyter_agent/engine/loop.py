"""The agent loop: model -> tool calls (in parallel) -> results -> model, until an answer or a budget.

Each step is an event on the session. Cancelling the turn's task stops it at any await; notebook edits are
single synchronous transactions, so a cancel never leaves half an edit behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyter_agent.engine.llm import LLMClient, StreamHandlers
from jupyter_agent.engine.router import ToolRouter
from jupyter_agent.engine.session import Turn, TurnResult
from jupyter_agent.engine.types import Completion, ToolCall
from jupyter_agent.errors import AgentError
from jupyter_agent.security.redaction import redact
from jupyter_agent.tools.base import Tool, ToolContext, ToolResult

log = logging.getLogger(__name__)

SYSTEM_PROMPT = """You are Jupyter Agent, working inside JupyterLab next to people who may be editing the same \
notebooks at the same time. Use the tools to read and change notebooks and files and to run code; never \
guess what a notebook contains: read it first. Refer to cells by their id. Keep edits small and targeted, \
and run the cells you write to check them. Paths are relative to the workspace root. Answer concisely in \
Markdown once the task is done."""

MAX_TOOL_TEXT = 16_000
#: A loop: the same call (tool and arguments) failing this often in one turn, or made this many times in a
#: row. The next model call then gets no tools (tool_choice "none"), so the model answers with what it has
#: instead of repeating itself until the step budget runs out. Small local models are prone to both.
REPEATED_CALLS = 3
STOP_FAILING = (
    "The same tool call has failed {n} times in this turn, so tools are unavailable for this reply. Answer "
    "the user now: say what you tried, what failed and why, and what they could do."
)
STOP_REPEATING = (
    "You made the same tool call {n} times in a row; its result will not change, so tools are unavailable "
    "for this reply. Answer the user now from the results you already have."
)

ContextFactory = Callable[[Turn, ToolCall], ToolContext]
AuditFn = Callable[[Turn, ToolCall, Any, ToolResult, float], None]


@dataclass
class Budget:
    max_steps: int = 25  # model calls per turn
    turn_timeout: float = 900.0  # seconds for a whole turn
    max_tokens: int | None = None  # prompt + completion tokens per turn


class AgentLoop:
    """Runs turns for a :class:`~jupyter_agent.engine.session.SessionManager`."""

    def __init__(
        self,
        llm: LLMClient,
        router: ToolRouter,
        context_factory: ContextFactory,
        budget: Budget | None = None,
        system_prompt: str = SYSTEM_PROMPT,
        audit: AuditFn | None = None,
    ) -> None:
        self.llm = llm
        self.router = router
        self.context_factory = context_factory
        self.budget = budget or Budget()
        self.system_prompt = system_prompt
        self.audit = audit

    async def run_turn(self, turn: Turn) -> TurnResult:
        try:
            async with asyncio.timeout(self.budget.turn_timeout):
                return await self._run(turn)
        except TimeoutError:
            raise AgentError(
                f"the turn took longer than its {self.budget.turn_timeout:g} s limit and was stopped "
                "(c.JupyterAgent.turn_timeout)",
                code="turn_timeout",
            ) from None

    async def _run(self, turn: Turn) -> TurnResult:
        totals = {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0, "model_calls": 0}
        failures: Counter[tuple[str, str]] = Counter()  # (tool, arguments) -> failed calls this turn
        calls: list[tuple[str, str]] = []  # every call of this turn, in order
        for _step in range(self.budget.max_steps):
            completion = await self._call_model(turn, _loop_note(failures, calls))
            totals["model_calls"] += 1
            totals["prompt_tokens"] += completion.usage.prompt_tokens
            totals["completion_tokens"] += completion.usage.completion_tokens
            totals["cost"] = (
                None
                if completion.usage.cost is None or totals["cost"] is None
                else (totals["cost"] + completion.usage.cost)
            )
            if not completion.tool_calls:
                return TurnResult("completed", totals)
            outcomes = await asyncio.gather(*(self._run_call(turn, call) for call in completion.tool_calls))
            for call, ok in zip(completion.tool_calls, outcomes, strict=True):
                calls.append((call.name, call.arguments))
                if not ok:
                    failures[calls[-1]] += 1
            used = totals["prompt_tokens"] + totals["completion_tokens"]
            if self.budget.max_tokens is not None and used >= self.budget.max_tokens:
                return TurnResult("max_tokens", totals)
        return TurnResult("max_steps", totals)

    async def _call_model(self, turn: Turn, loop_note: str = "") -> Completion:
        """One model call; in a loop of repeated calls (``loop_note`` says which), one without tools."""
        vision = await self.llm.supports_vision(turn.model)
        system = self.system_prompt
        degraded = self.router.degraded()
        if degraded:
            system += "\n\nTools that are failing right now (prefer other ways): " + "; ".join(degraded)
        extra: dict[str, Any] = {}
        if loop_note:
            system += "\n\n" + loop_note
            extra["tool_choice"] = "none"
        messages = [{"role": "system", "content": system}, *turn.transcript(vision)]
        partial: list[str] = []
        handlers = StreamHandlers(
            on_token=lambda text: (partial.append(text), turn.emit("token", text=text)),
            on_thinking=lambda text: turn.emit("thinking", text=text),
        )
        try:
            completion = await self.llm.stream(
                messages, self.router.schemas(), handlers, model=turn.model, **extra
            )
        except asyncio.CancelledError:
            if partial:  # keep what people already saw as part of the conversation
                turn.emit("message", role="assistant", content="".join(partial), partial=True)
            raise
        except AgentError:
            if partial:
                turn.emit("message", role="assistant", content="".join(partial), partial=True)
            raise
        turn.emit("usage", **completion.usage.to_dict())
        calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in completion.tool_calls]
        turn.emit(
            "message",
            role="assistant",
            content=completion.content,
            tool_calls=calls,
            thinking=completion.thinking or None,
        )
        return completion

    async def _run_call(self, turn: Turn, call: ToolCall) -> bool:
        """Run one call the model made, with its events and audit record; whether it succeeded."""
        try:
            shown: Any = call.parsed_arguments()
        except ValueError:
            shown = call.arguments
        turn.emit("tool_call", call_id=call.id, name=call.name, arguments=shown)
        ctx = self.context_factory(turn, call)

        async def approver(tool: Tool, args: dict[str, Any]) -> str:
            return await turn.request_approval(
                call.id, tool.name, args, reason=f"{tool.name} asks before it runs"
            )

        start = time.perf_counter()
        result = await self.router.call(call, ctx, approver, turn.session.policy)
        elapsed = (time.perf_counter() - start) * 1000
        text = result.text
        if len(text) > MAX_TOOL_TEXT:
            text = text[:MAX_TOOL_TEXT] + f"\n[... {len(text) - MAX_TOOL_TEXT} more characters cut]"
        turn.emit(
            "tool_result",
            call_id=call.id,
            name=call.name,
            ok=result.ok,
            content=text,
            data=result.data,
            images=[i.to_dict() for i in result.images],
            duration_ms=round(elapsed, 2),
        )
        if self.audit is not None:
            try:
                self.audit(turn, call, redact(shown), result, elapsed)
            except Exception:
                log.exception("Could not write the audit record for call %s", call.id)
        return result.ok


def _loop_note(failures: Counter[tuple[str, str]], calls: list[tuple[str, str]]) -> str:
    """What to tell a model caught in a loop of repeated tool calls, or '' when it is not in one."""
    failed = max(failures.values(), default=0)
    if failed >= REPEATED_CALLS:
        return STOP_FAILING.format(n=failed)
    last = calls[-REPEATED_CALLS:]
    if len(last) == REPEATED_CALLS and len(set(last)) == 1:
        return STOP_REPEATING.format(n=REPEATED_CALLS)
    return ""
