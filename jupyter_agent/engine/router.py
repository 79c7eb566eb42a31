"""The tool router: registry, argument validation, policy, timeouts and per-tool statistics.

Every failure becomes a :class:`ToolResult` the model can read; nothing a tool does escapes the loop except a
cancellation and an approval that nobody answered in time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import jsonschema

from jupyter_agent.engine.types import ToolCall
from jupyter_agent.errors import AgentError, ApprovalTimeout
from jupyter_agent.tools.base import POLICIES, Tool, ToolContext, ToolResult

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "jupyter_agent.tools"

#: Asks a person about one call: (tool, arguments) -> "once" | "always" | "deny".
Approver = Callable[[Tool, dict[str, Any]], Awaitable[str]]


@dataclass
class ToolStats:
    """Rolling statistics of one tool: counts and the latencies of the last calls."""

    calls: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=500))

    def record(self, ok: bool, elapsed_ms: float) -> None:
        self.calls += 1
        self.errors += 0 if ok else 1
        self.latencies_ms.append(elapsed_ms)

    def to_dict(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "calls": self.calls,
            "errors": self.errors,
            "p50_ms": _percentile(ordered, 50),
            "p95_ms": _percentile(ordered, 95),
        }


def _percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return round(ordered[k], 2)


class ToolRouter:
    """Finds, checks and runs tools for the agent loop."""

    def __init__(self, tools: Iterable[Tool] = (), policy: dict[str, str] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self.policy_overrides: dict[str, str] = dict(policy or {})
        self.stats: dict[str, ToolStats] = {}
        for t in tools:
            self.register(t)

    # -- registry -----------------------------------------------------------------------------------
    def register(self, tool: Tool) -> None:
        validator_cls = jsonschema.validators.validator_for(tool.parameters)
        validator_cls.check_schema(tool.parameters)
        self._tools[tool.name] = tool
        self._validators[tool.name] = validator_cls(tool.parameters)
        self.stats.setdefault(tool.name, ToolStats())

    def load_entry_points(self) -> list[str]:
        """Register third-party tools from the ``jupyter_agent.tools`` entry-point group.

        An entry point names a Tool, a list of Tools, or a callable returning either. One that fails to load
        is reported and skipped; the names of the failures are returned.
        """
        failed = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
                found = obj() if callable(obj) and not isinstance(obj, Tool) else obj
                for t in [found] if isinstance(found, Tool) else list(found):
                    self.register(t)
            except Exception:
                log.exception("Skipping tool entry point %r: it failed to load", ep.name)
                failed.append(ep.name)
        return failed

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    def schemas(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The ``tools=`` list for litellm: every tool not denied by policy (or the named ones)."""
        chosen = self.names if names is None else [n for n in names if n in self._tools]
        return [self._tools[n].schema() for n in chosen if self.policy_for(n) != "deny"]

    def policy_for(self, name: str, session_overrides: dict[str, str] | None = None) -> str:
        if session_overrides and name in session_overrides:
            return session_overrides[name]
        if name in self.policy_overrides:
            return self.policy_overrides[name]
        tool = self._tools.get(name)
        return tool.policy if tool else "deny"

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "policy": self.policy_for(t.name),
                "stats": self.stats[t.name].to_dict(),
            }
            for t in (self._tools[n] for n in self.names)
        ]

    # -- calls --------------------------------------------------------------------------------------
    def check(self, call: ToolCall) -> tuple[Tool, dict[str, Any]] | ToolResult:
        """Look up and validate a call; a ToolResult means it cannot run (the model reads why)."""
        tool = self._tools.get(call.name)
        if tool is None:
            return ToolResult.error(f"unknown tool {call.name!r}. Available tools: {', '.join(self.names)}")
        try:
            args = call.parsed_arguments()
        except ValueError as err:
            return ToolResult.error(f"{call.name}: {err}")
        problems = sorted(self._validators[call.name].iter_errors(args), key=lambda e: list(e.path))
        if problems:
            lines = [f"- {'/'.join(map(str, p.path)) or '(arguments)'}: {p.message}" for p in problems[:5]]
            return ToolResult.error(f"invalid arguments for {call.name}:\n" + "\n".join(lines))
        return tool, args

    async def call(
        self,
        call: ToolCall,
        ctx: ToolContext,
        approver: Approver | None = None,
        session_policy: dict[str, str] | None = None,
    ) -> ToolResult:
        """Run one call through validation, policy and a timeout; always returns a ToolResult."""
        checked = self.check(call)
        if isinstance(checked, ToolResult):
            self.stats.setdefault(call.name, ToolStats()).record(False, 0.0)
            return checked
        tool, args = checked
        policy = self.policy_for(tool.name, session_policy)
        if policy not in POLICIES or policy == "deny":
            return ToolResult.error(f"{tool.name} is denied by the server's tool policy")
        if policy == "ask":
            if approver is None:
                return ToolResult.error(f"{tool.name} needs a person's approval and nobody can approve here")
            decision = await approver(tool, args)
            if decision == "deny":
                return ToolResult.error(
                    f"the user denied this call to {tool.name}; do not retry it unchanged"
                )
        return await self._run(tool, args, ctx)

    async def _run(self, tool: Tool, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        timeout = tool.timeout
        if tool.timeout_argument and args.get(tool.timeout_argument) is not None:
            timeout = (
                float(args[tool.timeout_argument]) + 5.0
            )  # the tool enforces its own; this is a backstop
        start = time.perf_counter()
        try:
            if timeout is None:
                result = await tool(ctx, args)
            else:
                result = await asyncio.wait_for(tool(ctx, args), timeout)
        except TimeoutError:
            result = ToolResult.error(f"{tool.name} timed out after {timeout:g} s")
        except (ApprovalTimeout, asyncio.CancelledError):
            raise
        except AgentError as err:
            result = ToolResult.error(err.message, code=err.code)
        except Exception as err:
            log.exception("Tool %s raised", tool.name)
            result = ToolResult.error(f"{tool.name} failed: {type(err).__name__}: {err}")
        self.stats[tool.name].record(result.ok, (time.perf_counter() - start) * 1000)
        return result
