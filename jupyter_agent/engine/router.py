"""The tool router: registry, argument validation, policy, timeouts and per-tool health.

Each call is recorded once, in :class:`~jupyter_agent.engine.metrics.Measurements`: the router's statistics,
circuit breakers and degraded-tool notes read from there, and so does Prometheus.

Every failure becomes a :class:`ToolResult` the model can read; nothing a tool does escapes the loop except a
cancellation and an approval that nobody answered in time.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jupyter_agent.engine.health import ToolBreaker, ToolStats
from jupyter_agent.engine.metrics import Measurements
from jupyter_agent.engine.types import ToolCall
from jupyter_agent.errors import AgentError, ApprovalTimeout
from jupyter_agent.tools.base import POLICIES, Tool, ToolContext, ToolResult

if TYPE_CHECKING:
    import jsonschema

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "jupyter_agent.tools"
#: Outcomes that are the tool's failure, not the model's: they count against its circuit and try fallbacks.
INFRASTRUCTURE = frozenset({"failed", "timeout", "circuit_open"})

#: Asks a person about one call: (tool, arguments) -> "once" | "always" | "deny".
#: Asks a person about a call: (tool, arguments, why it asks beyond the tool's policy, or '') -> decision.
Approver = Callable[[Tool, dict[str, Any], str], Awaitable[str]]


def preload_validation() -> None:
    """Import jsonschema in a daemon thread, so the first tool call does not wait for it."""
    import threading

    if "jsonschema" not in sys.modules:
        threading.Thread(target=importlib.import_module, args=("jsonschema",), daemon=True).start()


class ToolRouter:
    """Finds, checks and runs tools for the agent loop."""

    def __init__(
        self,
        tools: Iterable[Tool] = (),
        policy: dict[str, str] | None = None,
        measurements: Measurements | None = None,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 30.0,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self.policy_overrides: dict[str, str] = dict(policy or {})
        #: Set where no person can answer an approval (a notebook run by nbclient, a command without a
        #: terminal) to the option that allows such calls there (e.g. ``%%agent --yes``): a call that would
        #: ask is then refused at once, saying how to allow it, rather than waiting for an answer that
        #: cannot come.
        self.unattended: str | None = None
        #: "ask": once a turn has read content from outside the workspace (a web page, a fetched URL), its
        #: calls that run code or a shell, write files or open a new host ask first, for the rest of the
        #: turn; "allow": they run as their policy says.
        self.untrusted_content_policy = "ask"
        #: Where every call is recorded; the statistics and circuit breakers below are its.
        self.measurements = measurements or Measurements()
        #: Sources of tools that are down right now (an MCP server that failed to start), name -> why: the
        #: model is told, as it is of failing tools.
        self.outages: dict[str, str] = {}
        self._breaker = (breaker_threshold, breaker_cooldown)
        for t in tools:
            self.register(t)

    # -- registry -----------------------------------------------------------------------------------
    def register(self, tool: Tool, check: bool = False) -> None:
        """Add a tool; ``check`` checks its parameters' JSON schema now (else at its first call).

        jsonschema costs ~1 s to import (its format grammars), so a fresh kernel or CLI process does not pay
        for it before the model answers: :func:`preload_validation` imports it in the background.
        """
        self._tools[tool.name] = tool
        self._validators.pop(tool.name, None)
        if check:
            self._validator(tool.name)
        self.measurements.track(tool.name, *self._breaker)

    @property
    def stats(self) -> dict[str, ToolStats]:
        """Each tool's rolling statistics (refilled from the audit log when first read)."""
        return self.measurements.tool_stats()

    @property
    def breakers(self) -> dict[str, ToolBreaker]:
        return self.measurements.breakers

    def unregister(self, name: str) -> None:
        """Remove a tool (one an MCP server no longer lists); its statistics stay, for when it comes back."""
        self._tools.pop(name, None)
        self._validators.pop(name, None)

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
                    self.register(t, check=True)  # a third-party schema is checked as it loads
            except Exception:
                log.exception("Skipping tool entry point %r: it failed to load", ep.name)
                failed.append(ep.name)
        return failed

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def _validator(self, name: str) -> jsonschema.protocols.Validator:
        """The compiled validator of a tool's parameters (its schema checked once, here)."""
        validator = self._validators.get(name)
        if validator is None:
            import jsonschema

            schema = self._tools[name].parameters
            validator_cls = jsonschema.validators.validator_for(schema)
            validator_cls.check_schema(schema)
            validator = self._validators[name] = validator_cls(schema)
        return validator

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
                "stats": {**self.stats[t.name].to_dict(), "circuit": self.breakers[t.name].state},
                "fallbacks": list(t.fallbacks),
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
        problems = sorted(self._validator(call.name).iter_errors(args), key=lambda e: list(e.path))
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
        """Run one call through validation, policy and a timeout; always returns a ToolResult.

        The call is recorded with its outcome: ok, error (the model's: a wrong path or id), failed (the
        tool's), timeout, invalid, not_permitted, policy_denied, denied, nobody_to_ask, circuit_open or
        cancelled.
        """
        record = self.measurements.tool_call(call.name, call.id)
        outcome = "cancelled"
        try:
            result, outcome = await self._call(call, ctx, approver, session_policy)
        finally:
            record.finish(outcome)
        return result

    async def _call(
        self,
        call: ToolCall,
        ctx: ToolContext,
        approver: Approver | None,
        session_policy: dict[str, str] | None,
    ) -> tuple[ToolResult, str]:
        checked = self.check(call)
        if isinstance(checked, ToolResult):
            self.measurements.tool_rejected(call.name)
            return checked, "invalid"
        tool, args = checked
        refusal = await self._refusal(tool, ctx)
        if refusal is not None:
            return ToolResult.error(refusal, code="not_permitted"), "not_permitted"
        policy = self.policy_for(tool.name, session_policy)
        if policy not in POLICIES or policy == "deny":
            message = f"{tool.name} is denied by the server's tool policy"
            return ToolResult.error(message, code="policy_denied"), "policy_denied"
        reason = ""
        if policy == "allow" and self.untrusted_content_policy == "ask":
            reason = untrusted_reason(tool, args, ctx.untrusted)
            policy = "ask" if reason else policy
        if policy == "ask":
            if approver is None or self.unattended is not None:
                return nobody_to_ask(tool.name, self.unattended, reason), "nobody_to_ask"
            decision = await approver(tool, args, reason)
            if decision == "deny":
                message = f"the user denied this call to {tool.name}; do not retry it unchanged"
                return ToolResult.error(message), "denied"
        result, outcome = await self._run_with_fallbacks(tool, args, ctx)
        if tool.reads_untrusted and result.ok:
            ctx.untrusted.append(str(result.data.get("url") or args.get("url") or tool.name))
        return result, outcome

    @staticmethod
    async def _refusal(tool: Tool, ctx: ToolContext) -> str | None:
        """Why the person the turn acts for may not run ``tool`` (its declared permission), or None."""
        if tool.permission is None or ctx.authorize is None:
            return None
        return await ctx.authorize(tool.permission)

    def degraded(self) -> list[str]:
        """Tools to warn the model about: an open circuit, or most recent calls failing."""
        notes = []
        for name in self.names:
            breaker, stats = self.breakers[name], self.stats[name]
            recent = list(stats.outcomes)[-10:]
            if breaker.state != "closed":
                notes.append(f"{name} (failing; disabled for {max(breaker.open_remaining, 0)} s)")
            elif len(recent) >= 4 and recent.count(False) / len(recent) >= 0.5:
                notes.append(f"{name} (most recent calls failed)")
        return notes + [f"{source} ({why})" for source, why in self.outages.items()]

    async def _run_with_fallbacks(
        self, tool: Tool, args: dict[str, Any], ctx: ToolContext
    ) -> tuple[ToolResult, str]:
        """The result and the call's outcome: the tool's, or that of a fallback that worked."""
        result, outcome = await self._guarded(tool, args, ctx)
        if outcome not in INFRASTRUCTURE:
            return result, outcome
        for name in tool.fallbacks:
            fallback = self._tools.get(name)
            if (
                fallback is None
                or self.policy_for(name) != "allow"
                or not self._validator(name).is_valid(args)
                or await self._refusal(fallback, ctx) is not None
            ):
                continue
            alternative, fallback_outcome = await self._guarded(fallback, args, ctx)
            if fallback_outcome not in INFRASTRUCTURE:
                reason = result.text.removeprefix("Error: ")
                alternative.text = f"[{tool.name} failed ({reason}); used {name} instead]\n{alternative.text}"
                alternative.data["fallback_from"] = tool.name
                return alternative, fallback_outcome
        return result, outcome

    async def _guarded(self, tool: Tool, args: dict[str, Any], ctx: ToolContext) -> tuple[ToolResult, str]:
        """Run through the tool's circuit breaker; the outcome says whose failure it was: the tool's
        (one of ``INFRASTRUCTURE``) or the model's (``error``)."""
        breaker = self.breakers[tool.name]
        if breaker.opened:
            message = f"{tool.name} is disabled for {breaker.open_remaining} s after repeated failures"
            return ToolResult.error(message, code="circuit_open"), "circuit_open"
        return await self._run(tool, args, ctx)

    async def _run(self, tool: Tool, args: dict[str, Any], ctx: ToolContext) -> tuple[ToolResult, str]:
        timeout = tool.timeout
        if tool.timeout_argument and args.get(tool.timeout_argument) is not None:
            timeout = (
                float(args[tool.timeout_argument]) + 5.0
            )  # the tool enforces its own; this is a backstop
        start = time.perf_counter()
        outcome = "ok"
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races completion.
            async with asyncio.timeout(timeout):
                result = await tool(ctx, args)
        except TimeoutError:
            result, outcome = ToolResult.error(f"{tool.name} timed out after {timeout:g} s"), "timeout"
        except (ApprovalTimeout, asyncio.CancelledError):
            raise
        except AgentError as err:  # the request was wrong (a path, an id): the model can fix it
            result = ToolResult.error(err.message, code=err.code)
        except Exception as err:
            log.exception("Tool %s raised", tool.name)
            result, outcome = ToolResult.error(f"{tool.name} failed: {type(err).__name__}: {err}"), "failed"
        if outcome == "ok" and not result.ok:
            outcome = "error"
        infrastructure = outcome in INFRASTRUCTURE
        self.measurements.tool_ran(tool.name, result.ok, time.perf_counter() - start, infrastructure, outcome)
        return result, outcome


def nobody_to_ask(name: str, option: str | None, reason: str = "") -> ToolResult:
    """The result of a call that needs a person's approval where nobody can answer: how to allow it."""
    if reason:  # asked because of what the turn read, not by the tool's policy
        setting = 'set c.JupyterAgent.untrusted_content_policy = "allow"'
        why = f" ({reason})"
    else:
        setting, why = f'set c.JupyterAgent.tool_policy = {{"{name}": "allow"}}', ""
    how = f"run with {option}, or {setting}" if option else setting
    return ToolResult.error(
        f"{name} needs approval{why} and nobody can answer here, so it did not run; {how}",
        code="nobody_to_ask",
    )


def untrusted_reason(tool: Tool, args: dict[str, Any], read: list[str]) -> str:
    """Why this call must ask because the turn read content from outside the workspace; '' when it need not.

    Calls that run code or a shell or write files ask; so does opening a host the turn has not read yet
    (a page could tell the agent to send what it knows elsewhere).
    """
    if not read:
        return ""
    sources = ", ".join(dict.fromkeys(read[:3])) + (" and more" if len(set(read)) > 3 else "")
    because = f"the agent read {sources} in this turn"
    if tool.side_effects:
        return because
    url = args.get("url")
    if tool.reads_untrusted and isinstance(url, str):
        host = urlsplit(url.strip()).hostname
        if host and host not in {urlsplit(r).hostname for r in read}:
            return f"{because}, and this opens a new host ({host})"
    return ""
