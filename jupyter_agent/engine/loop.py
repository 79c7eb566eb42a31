"""The agent loop: model -> tool calls (in parallel) -> results -> model, until an answer or a budget.

Each step is an event on the session. Cancelling the turn's task stops it at any await; notebook edits are
single synchronous transactions, so a cancel never leaves half an edit behind.

``activity`` events say what the turn is doing while people wait (a model reading a long prompt can be silent
for minutes): the first goes out before anything else happens, then one per change of phase, step or
progress (see :class:`Activity`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyter_agent.engine.answer_check import answer_note
from jupyter_agent.engine.context import (
    CHARS_PER_TOKEN,
    MEMORY_HEADING,
    SUMMARY_PROMPT,
    SUMMARY_TOKENS,
    Compact,
    ContextWindow,
    transcript_text,
)
from jupyter_agent.engine.llm import LLMClient, ModelProgress, StreamHandlers
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

MIN_SUMMARY = 40  # characters: a shorter "summary" says nothing the model could work from
MAX_TOOL_TEXT = 200_000  # characters of a tool result logged; the model reads a window-sized part (context)
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

#: Final answers sent back, per turn, for leaving out fields of the request's answer template
#: (engine.answer_check): the model then gets the same tools and a note of what is missing.
ANSWER_CHECKS = 2

#: Seconds between two activity events that only move a progress figure on.
ACTIVITY_INTERVAL = 0.25

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
        context: ContextWindow | None = None,
    ) -> None:
        self.llm = llm
        self.router = router
        self.context_factory = context_factory
        self.budget = budget or Budget()
        self.system_prompt = system_prompt
        self.audit = audit
        #: Fits each call's messages into the model's window (engine.context); None: sent as they are.
        self.context = context

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
        activity = Activity(turn)
        checks, check_note = 0, ""  # answers sent back for missing template fields; what they were told
        for step in range(1, self.budget.max_steps + 1):
            activity.step = step
            activity.show("prompt")  # before anything that may take time (litellm's import, the model)
            completion = await self._call_model(turn, _loop_note(failures, calls), activity, check_note)
            totals["model_calls"] += 1
            totals["prompt_tokens"] += completion.usage.prompt_tokens
            totals["completion_tokens"] += completion.usage.completion_tokens
            totals["cost"] = (
                None
                if completion.usage.cost is None or totals["cost"] is None
                else (totals["cost"] + completion.usage.cost)
            )
            if not completion.tool_calls:
                check_note = answer_note(turn.text, completion.content) if checks < ANSWER_CHECKS else ""
                if not check_note:
                    return TurnResult("completed", totals)
                checks += 1
                continue
            check_note = ""
            activity.show("tools", tools=[call.name for call in completion.tool_calls])
            outcomes = await asyncio.gather(
                *(self._run_call(turn, call, activity) for call in completion.tool_calls)
            )
            for call, ok in zip(completion.tool_calls, outcomes, strict=True):
                calls.append((call.name, call.arguments))
                if not ok:
                    failures[calls[-1]] += 1
            used = totals["prompt_tokens"] + totals["completion_tokens"]
            if self.budget.max_tokens is not None and used >= self.budget.max_tokens:
                return TurnResult("max_tokens", totals)
        return TurnResult("max_steps", totals)

    async def _call_model(
        self, turn: Turn, loop_note: str, activity: Activity, check_note: str = ""
    ) -> Completion:
        """One model call; in a loop of repeated calls (``loop_note`` says which), one without tools.
        ``check_note`` says what the previous answer left out of the request's answer template: it follows
        that answer as a user message (after it, where a model reads it as the reply to its answer)."""
        vision = await self.llm.supports_vision(turn.model)
        system = self.system_prompt
        degraded = self.router.degraded()
        if degraded:
            system += "\n\nTools that are failing right now (prefer other ways): " + "; ".join(degraded)
        extra: dict[str, Any] = {}
        if loop_note:
            system += "\n\n" + loop_note
            extra["tool_choice"] = "none"
        messages = await self._fit(turn, system, vision, activity)
        if check_note:
            messages.append({"role": "user", "content": check_note})
        partial: list[str] = []
        handlers = StreamHandlers(
            on_token=lambda text: (partial.append(text), turn.emit("token", text=text)),
            on_thinking=lambda text: turn.emit("thinking", text=text),
            on_retry=lambda _model, attempt, reason: activity.show("retry", attempt=attempt, reason=reason),
            on_progress=activity.model,
        )
        try:
            completion = await self.llm.stream(
                messages, self.router.schemas(), handlers, model=turn.model, session=turn.session.id, **extra
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

    async def _fit(self, turn: Turn, system: str, vision: bool, activity: Activity) -> list[dict[str, Any]]:
        """The call's messages within the model's window; the earlier conversation summarised when needed."""
        model = turn.model or self.llm.model
        # The embedded model reads a short list of tools in its own prompt, not these schemas (~2,000 tokens
        # of its 4,096): counting them would cut its conversation for room it does not use.
        local = self.llm.local is not None and self.llm.local.handles(model)
        tools = None if local else self.router.schemas()
        if self.context is None:
            return [
                {"role": "system", "content": _with_memory(system, turn.memory())},
                *turn.transcript(vision),
            ]
        summarise = True
        while True:
            try:
                fitted = await self.context.fit(
                    model,
                    _with_memory(system, turn.memory()),
                    turn.transcript(vision),
                    tools,
                    turn.context_start(),
                    summarise,
                )
                return fitted.messages
            except Compact as need:
                summarise = False
                activity.show("summarising")
                await self._summarise(turn, need.older, model)
            except AgentError as err:
                if not (local and err.code == "context_overflow"):
                    raise
                # The embedded model's adapter keeps the latest messages that fit its window itself, and
                # the transcript measured here (full results, the long system prompt) is not what it sends.
                return [
                    {"role": "system", "content": _with_memory(system, turn.memory())},
                    *turn.transcript(vision),
                ]

    async def _summarise(self, turn: Turn, older: list[dict[str, Any]], model: str) -> None:
        """Ask the model for a memory of ``older`` (the conversation before this turn) and log it: from the
        ``compaction`` event on, the transcript starts at this turn, with the memory in the system prompt."""
        assert self.context is not None
        before = self.context.count(older)
        window = await self.context.window(model)
        previous = turn.memory()
        text = transcript_text(older, int((window // 2) * CHARS_PER_TOKEN))
        if previous:
            text = f"Earlier summary:\n{previous}\n\nThen:\n{text}"
        request = [
            {"role": "system", "content": SUMMARY_PROMPT.format(words=int(SUMMARY_TOKENS * 0.7))},
            {"role": "user", "content": text},
        ]
        fallback = False
        try:
            done = await self.llm.stream(request, None, None, model=turn.model, session=turn.session.id)
            summary = (done.content or "").strip()
            usage = done.usage.to_dict()
        except AgentError as err:  # the summary is a convenience: the turn goes on with a plain one
            log.warning("Could not summarise the conversation of session %s: %s", turn.session.id, err)
            summary, usage = "", {}
        if (
            len(summary) < MIN_SUMMARY
        ):  # none, or a word (small models): keep the requests and answers instead
            fallback = True
            summary = _plain_memory(previous, older)
        turn.emit(
            "compaction",
            summary=summary,
            messages=len(older),
            tokens_before=before,
            tokens_after=self.context.count_text(summary),
            fallback=fallback,
            usage=usage,
        )

    async def _run_call(self, turn: Turn, call: ToolCall, activity: Activity) -> bool:
        """Run one call the model made, with its events and audit record; whether it succeeded."""
        try:
            shown: Any = call.parsed_arguments()
        except ValueError:
            shown = call.arguments
        turn.emit("tool_call", call_id=call.id, name=call.name, arguments=shown)
        ctx = self.context_factory(turn, call)

        async def approver(tool: Tool, args: dict[str, Any], why: str) -> str:
            activity.waiting(tool.name)
            try:
                return await turn.request_approval(
                    call.id, tool.name, args, reason=why or f"{tool.name} asks before it runs"
                )
            finally:
                activity.answered(tool.name)

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


class Activity:
    """A turn's ``activity`` events: what it is doing right now, in words, for the people waiting on it.

    Each event has ``phase`` (starting | prompt | thinking | writing | calling | tools | approval | retry),
    ``text`` (e.g. "reading your request (prompt 1,870 tokens, 45%)", "step 2: running notebook_run_cell"),
    ``step`` (the model call of the turn, from 1), ``started`` (when this phase began, epoch seconds: front
    ends count the time from it), ``prompt_tokens`` and ``progress`` (0..1 of the prompt the model has read,
    where its server says so; else null). Activity is not part of the model's transcript.
    """

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.step = 1
        self._key: tuple[Any, ...] = ()  # (step, phase, what): a new key is a new phase
        self._started = 0.0
        self._text = ""  # of the last event sent
        self._progress: float | None = None  # of the last event sent
        self._sent_at = 0.0
        self._waiting: list[str] = []  # tools waiting for a person's approval, in order
        self._tools: list[str] = []  # the tools of the current step

    def show(
        self,
        phase: str,
        *,
        tool: str = "",
        tools: list[str] | None = None,
        prompt_tokens: int | None = None,
        estimated: bool = False,
        progress: float | None = None,
        attempt: int = 0,
        reason: str = "",
    ) -> None:
        """Send what the turn does now, unless it says nothing new (or only moves a figure on too soon)."""
        if tools is not None:
            self._tools = tools
        key = (self.step, phase, tool or tuple(self._tools if phase == "tools" else ()))
        text = _activity_text(
            self.step, phase, tool, self._tools, prompt_tokens, estimated, progress, attempt, reason
        )
        now = time.time()
        if key == self._key:
            if text == self._text:
                return
            moved_on = progress is not None and self._progress is not None and progress < 1
            if moved_on and now - self._sent_at < ACTIVITY_INTERVAL:
                return  # only a figure moved on: the next report says more (and 100% always goes out)
        else:
            self._key, self._started = key, now
        self._text, self._progress, self._sent_at = text, progress, now
        self.turn.emit(
            "activity",
            phase=phase,
            text=text,
            step=self.step,
            started=self._started,
            prompt_tokens=prompt_tokens,
            progress=None if progress is None else round(progress, 3),
        )

    def model(self, progress: ModelProgress) -> None:
        """What the model call says about itself (see :class:`~jupyter_agent.engine.llm.ModelProgress`)."""
        if progress.phase == "output":
            phase = {"thinking": "thinking", "tool_call": "calling"}.get(progress.output, "writing")
            self.show(phase, tool=progress.tool)
        else:
            self.show(
                progress.phase,
                prompt_tokens=progress.prompt_tokens,
                estimated=progress.estimated,
                progress=progress.progress,
            )

    def waiting(self, tool: str) -> None:
        self._waiting.append(tool)
        self.show("approval", tool=tool)

    def answered(self, tool: str) -> None:
        if tool in self._waiting:
            self._waiting.remove(tool)
        if self._waiting:
            self.show("approval", tool=self._waiting[-1])
        else:
            self.show("tools")


def _activity_text(
    step: int,
    phase: str,
    tool: str,
    tools: list[str],
    prompt_tokens: int | None,
    estimated: bool,
    progress: float | None,
    attempt: int,
    reason: str,
) -> str:
    """An activity in words: "reading your request (prompt 1,870 tokens, 45%)", "step 2: running X"."""
    if phase == "prompt":
        text = "reading your request" if step == 1 else "reading the tool results"
        if prompt_tokens:
            size = f"prompt {'~' if estimated else ''}{prompt_tokens:,} tokens"
            text += f" ({size}, {progress:.0%})" if progress is not None else f" ({size})"
    elif phase == "starting":
        text = "starting the model"
    elif phase == "thinking":
        text = "thinking"
    elif phase == "writing":
        text = "writing the answer"
    elif phase == "calling":
        text = f"preparing the {tool} call" if tool else "preparing a tool call"
    elif phase == "tools":
        names = list(dict.fromkeys(tools))
        text = "running " + (", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else ""))
    elif phase == "approval":
        text = f"waiting for approval to run {tool}"
    elif phase == "summarising":
        text = "summarising the earlier conversation to fit the model's context window"
    elif phase == "retry":
        text = f"the model call failed ({reason[:120].rstrip('. ')}); trying again (attempt {attempt + 1})"
    else:
        text = phase
    return text if step == 1 else f"step {step}: {text}"


def _with_memory(system: str, memory: str) -> str:
    if not memory:
        return system
    return f"{system}\n\n{MEMORY_HEADING}\n{memory}"


def _plain_memory(previous: str, older: list[dict[str, Any]]) -> str:
    """A memory made without the model: the requests and the answers, short."""
    lines = [previous] if previous else []
    for message in older:
        if message.get("role") in ("user", "assistant") and isinstance(message.get("content"), str):
            text = " ".join(message["content"].split())
            if text:
                lines.append(f"- {message['role']}: {text[:300]}")
    return "\n".join(lines[-40:])


def _loop_note(failures: Counter[tuple[str, str]], calls: list[tuple[str, str]]) -> str:
    """What to tell a model caught in a loop of repeated tool calls, or '' when it is not in one."""
    failed = max(failures.values(), default=0)
    if failed >= REPEATED_CALLS:
        return STOP_FAILING.format(n=failed)
    last = calls[-REPEATED_CALLS:]
    if len(last) == REPEATED_CALLS and len(set(last)) == 1:
        return STOP_REPEATING.format(n=REPEATED_CALLS)
    return ""
