"""Measurements of the agent at work: the one place each turn, model call, tool call and approval is recorded.

Everything that reports on them reads what is recorded here:

- the router's per-tool health: latency percentiles, error rate, the circuit breakers and the notes on
  degraded tools the model reads (:class:`~jupyter_agent.engine.health.ToolStats`, ``ToolBreaker``);
- in the server, Prometheus: :mod:`jupyter_agent.engine.prometheus`, attached with :meth:`Measurements.export`,
  serves ``jupyter_agent_*`` on jupyter_server's own ``/metrics``;
- OpenTelemetry spans (:mod:`jupyter_agent.engine.tracing`) when tracing is on;
- the session, turn and call ids of structured logs (:mod:`jupyter_agent.engine.logs`).

The durable record of every tool call is the audit log (tool, outcome, duration). When the tools' statistics
are first read, their rolling windows are refilled from the audit log's recent entries, so health survives a
restart and covers every process on the store, without a second store of statistics.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from jupyter_agent.engine import logs
from jupyter_agent.engine.health import WINDOW, ToolBreaker, ToolStats

if TYPE_CHECKING:
    from jupyter_agent.engine.tracing import Tracing
    from jupyter_agent.engine.types import Usage

#: A live value read when metrics are scraped: (gauge name without the prefix, labels, value).
Sample = tuple[str, dict[str, str], float]
#: Audit outcomes of calls whose tool did not run (refused, denied, never answered): they measure no tool.
NOT_RUN = frozenset(
    {"not_run", "cancelled", "denied", "not_permitted", "forbidden", "policy_denied", "nobody_to_ask"}
    | {"circuit_open"}
)
HISTORY_ROWS = 20_000  # newest audit entries read to refill the tools' windows (bounds the cost at start)
#: Turn outcomes that are not failures (the others: cancelled, error).
TURN_ENDS = frozenset({"completed", "max_steps", "max_tokens"})


class Exporter(Protocol):
    """Where measurements go besides the in-process statistics (Prometheus, in the server)."""

    def turn(self, outcome: str, seconds: float) -> None: ...
    def model_call(self, model: str, outcome: str, usage: Usage | None) -> None: ...
    def tool_call(self, tool: str, outcome: str) -> None: ...
    def tool_ran(self, tool: str, outcome: str, seconds: float) -> None: ...
    def approval(self, decision: str, seconds: float) -> None: ...


class History(Protocol):
    """The audit log's recent tool calls (the Store): ``(tool, ok, duration_ms or None, outcome)``, newest
    first."""

    def recent_tool_calls(self, rows: int) -> list[tuple[str, bool, float | None, str]]: ...


class Measurements:
    """Records the agent's work; see the module docstring for who reads it."""

    def __init__(self, history: History | None = None) -> None:
        self.stats: dict[str, ToolStats] = {}
        self.breakers: dict[str, ToolBreaker] = {}
        self.exporter: Exporter | None = None
        self.tracing: Tracing | None = None
        self.approvals_pending = 0
        self.websockets_open = 0
        self.turns_running: Counter[str] = Counter()  # session id -> its turns running now
        self._history = history
        self._probes: list[Callable[[], Iterable[Sample]]] = []

    # -- wiring -----------------------------------------------------------------------------------------
    def export(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def probe(self, read: Callable[[], Iterable[Sample]]) -> None:
        """Add live values to report at each scrape (the browser pool, the embedded model, plan tasks)."""
        self._probes.append(read)

    def live(self) -> list[Sample]:
        """The gauges' values now: approvals pending, sessions and WebSockets, circuits, and the probes'."""
        samples: list[Sample] = [
            ("approvals_pending", {}, float(self.approvals_pending)),
            ("sessions_active", {}, float(len(self.turns_running))),
            ("websockets_open", {}, float(self.websockets_open)),
        ]
        for name, breaker in self.breakers.items():
            samples.append(("tool_circuit_open", {"tool": name}, 0.0 if breaker.state == "closed" else 1.0))
        for read in self._probes:
            samples.extend(read())
        return samples

    # -- tools ------------------------------------------------------------------------------------------
    def track(self, tool: str, breaker_threshold: int, breaker_cooldown: float) -> None:
        """Keep statistics and a circuit breaker for ``tool`` (both kept when it is registered again)."""
        self.stats.setdefault(tool, ToolStats())
        self.breakers.setdefault(tool, ToolBreaker(breaker_threshold, breaker_cooldown, name=tool))

    def tool_stats(self) -> dict[str, ToolStats]:
        """Every tool's rolling statistics, refilled from the audit log the first time they are read."""
        if self._history is not None:
            history, self._history = self._history, None
            self._refill(history)
        return self.stats

    def _refill(self, history: History) -> None:
        """Fill the tracked tools' windows from the audit log. Runs before this process records any call
        (every record goes through :meth:`tool_stats`), so nothing is counted twice."""
        windows: dict[str, list[tuple[bool, float | None]]] = {}
        for tool, ok, duration_ms, outcome in history.recent_tool_calls(HISTORY_ROWS):
            calls = windows.setdefault(tool, [])
            if tool in self.stats and outcome not in NOT_RUN and len(calls) < WINDOW:
                calls.append((ok, duration_ms))
        for tool, calls in windows.items():
            for ok, duration_ms in reversed(calls):  # oldest first
                self.stats[tool].record(ok, duration_ms)

    def tool_call(self, tool: str, call_id: str) -> ToolCallRecord:
        """Start recording one call the model made (its span; its outcome at :meth:`ToolCallRecord.finish`)."""
        record = ToolCallRecord(self, tool, token=logs.call_id.set(call_id))
        if self.tracing is not None:
            attributes = {"agent.tool": tool, "agent.call_id": call_id}
            record.span = self.tracing.start_child("agent.tool_call", attributes)
        return record

    def tool_ran(self, tool: str, ok: bool, seconds: float, infrastructure: bool, outcome: str) -> None:
        """One run of a tool (a call's own, or a fallback's): its window, circuit breaker and duration."""
        self.tool_stats().setdefault(tool, ToolStats()).record(ok, seconds * 1000)
        breaker = self.breakers.get(tool)
        if breaker is not None:
            breaker.record(failed=infrastructure)
        if self.exporter is not None:
            self.exporter.tool_ran(tool, outcome, seconds)

    def tool_rejected(self, tool: str) -> None:
        """A call the router could not run as asked (unknown tool, invalid arguments): the model's mistake,
        counted in the tool's error rate (the model is told when most recent calls fail)."""
        self.tool_stats().setdefault(tool, ToolStats()).record(False, 0.0)

    # -- model calls and turns --------------------------------------------------------------------------
    def model_call(self, model: str) -> ModelCallRecord:
        """Start recording one model call; :meth:`ModelCallRecord.finish` takes its usage."""
        record = ModelCallRecord(self, model)
        if self.tracing is not None:
            record.span = self.tracing.start_child("agent.model_call", {"agent.model": model})
        return record

    def turn(self, session: str, turn: str, user: str | None, origin: dict[str, str] | None) -> TurnRecord:
        """Start recording a turn: its clock, its span (linked to ``origin``'s trace context), its log ids."""
        context = contextvars.copy_context()
        context.run(logs.session_id.set, session)
        context.run(logs.turn_id.set, turn)
        record = TurnRecord(self, session, context=context)
        if self.tracing is not None:
            attributes = {"agent.session": session, "agent.turn": turn, "agent.user": user or ""}
            record.span = self.tracing.start_turn(attributes, origin)
            context.run(self.tracing.activate, record.span)
        self.turns_running[session] += 1
        return record

    # -- approvals and connections ----------------------------------------------------------------------
    def approval_asked(self) -> float:
        """A call waits for a person's decision; returns the clock to give :meth:`approval_answered`."""
        self.approvals_pending += 1
        return time.perf_counter()

    def approval_answered(self, decision: str, asked: float) -> None:
        """``decision``: once, always, deny, timeout or cancelled."""
        self.approvals_pending -= 1
        if self.exporter is not None:
            self.exporter.approval(decision, time.perf_counter() - asked)

    def websocket(self, opened: bool) -> None:
        self.websockets_open += 1 if opened else -1


@dataclass
class ToolCallRecord:
    """One call the model made, from the router's first check to its result."""

    owner: Measurements
    tool: str
    token: contextvars.Token[str | None]
    span: Any = None

    def finish(self, outcome: str) -> None:
        logs.call_id.reset(self.token)
        if self.owner.exporter is not None:
            self.owner.exporter.tool_call(self.tool, outcome)
        if self.owner.tracing is not None and self.span is not None:
            self.owner.tracing.finish(
                self.span, {"agent.outcome": outcome}, None if outcome == "ok" else outcome
            )


@dataclass
class ModelCallRecord:
    """One model call: its usage once it has streamed (tokens, cost, time to first token)."""

    owner: Measurements
    model: str
    span: Any = None

    def finish(self, usage: Usage | None, outcome: str = "ok") -> None:
        """``outcome``: ok, error or cancelled (then ``usage`` is None)."""
        model = (usage.model if usage is not None else "") or self.model
        if self.owner.exporter is not None:
            self.owner.exporter.model_call(model, outcome, usage)
        if self.owner.tracing is not None and self.span is not None:
            attributes: dict[str, Any] = {"agent.model": model, "agent.outcome": outcome}
            if usage is not None:
                attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
                attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
                attributes["agent.ttft_ms"] = usage.ttft_ms
                attributes["agent.cost_usd"] = usage.cost
            self.owner.tracing.finish(self.span, attributes, None if outcome == "ok" else outcome)


@dataclass
class TurnRecord:
    """One turn, from the moment it starts running to its last event."""

    owner: Measurements
    session: str
    context: contextvars.Context
    span: Any = None
    started: float = field(default_factory=time.perf_counter)

    def run(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run the turn in its own task, with its span and log ids current there (and in its children)."""
        return asyncio.create_task(work, name=name, context=self.context)

    def finish(self, outcome: str, error: str | None = None) -> float:
        """``outcome``: completed, max_steps, max_tokens, cancelled or error (``error``: its code). Returns the
        seconds the turn ran."""
        seconds = time.perf_counter() - self.started
        running = self.owner.turns_running
        running[self.session] -= 1
        if running[self.session] <= 0:
            del running[self.session]
        if self.owner.exporter is not None:
            self.owner.exporter.turn(outcome, seconds)
        if self.owner.tracing is not None and self.span is not None:
            failed = None if outcome in TURN_ENDS else (error or outcome)
            attributes = {"agent.outcome": outcome, "agent.error": error, "agent.duration_ms": seconds * 1000}
            self.owner.tracing.finish(self.span, attributes, failed)
        return seconds
